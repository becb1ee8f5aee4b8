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

# The operator's estimate of that duration (same format). The live cluster view predicts when a
# running pod frees its node from it, so the policy sees estimates only, as in the simulator;
# pods without it are predicted from DURATION_ANNOTATION.
ESTIMATED_DURATION_ANNOTATION = "scale.dev/estimated-duration"
# Which attempt of its primitive a pod is (0, 1, ...): retries and reschedules get new pods.
ATTEMPT_LABEL = "agentic.scale.dev/attempt"
# The node the policy chose when the pod was created; the operator binds the pod there, and its
# duration annotation was drawn for that node.
PLANNED_NODE_ANNOTATION = "agentic.scale.dev/planned-node"
POLICY_ANNOTATION = "agentic.scale.dev/policy"
