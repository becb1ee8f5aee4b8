"""Names the operator, the local cluster's KWOK stages and the chart agree on."""

GROUP = "agentic.scale.dev"
VERSION = "v1alpha1"
PLURAL = "workflowdags"
KIND = "WorkflowDAG"
SCHEDULER_NAME = "scale-scheduler"

# Labels on every pod the operator creates.
MANAGED_BY_LABEL = "app.kubernetes.io/managed-by"
MANAGED_BY_VALUE = "scale-scheduler"
WORKFLOW_LABEL = "agentic.scale.dev/workflow"
PRIMITIVE_LABEL = "agentic.scale.dev/primitive"
PRIMITIVE_KIND_LABEL = "agentic.scale.dev/kind"

# How long the pod runs on its node, as a Go duration string ("12.345s"). The local cluster's
# KWOK stage completes the pod exactly this long after it starts running, so the real test
# cluster runs on the simulator's clock. Any pod carrying it is completed that way.
DURATION_ANNOTATION = "scale.dev/duration"
