"""Names the operator, the local cluster's KWOK stages and the chart agree on."""

from scale_scheduler.simulator import manifests

# The CRD's identity: the simulator reads and writes WorkflowDAG manifests, so it holds the name.
API_VERSION = manifests.API_VERSION
GROUP, VERSION = API_VERSION.split("/")
PLURAL = "workflowdags"
KIND = manifests.KIND
SCHEDULER_NAME = "scale-scheduler"

# kwok manages nodes carrying this annotation; on a cluster with real nodes (kind) the taint of the same
# key keeps ordinary pods off the fake ones, and the operator's pods tolerate it.
KWOK_NODE_KEY = "kwok.x-k8s.io/node"
KWOK_TAINT = {"key": KWOK_NODE_KEY, "value": "fake", "effect": "NoSchedule"}
KWOK_TOLERATION = {"key": KWOK_NODE_KEY, "operator": "Exists", "effect": "NoSchedule"}

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
# The static node model's estimate (same format), without the corrections learned from finished pods: what the
# learned run-time ratios are measured against, so a correction in effect does not feed back into itself.
PRIOR_ESTIMATED_DURATION_ANNOTATION = "scale.dev/prior-estimated-duration"
# The template the pod's workflow is learned under (spec.template, else a hash of its DAG): a finished pod's run
# time also corrects its primitive's declared work in later workflows of that template (operator/core/estimates.py).
TEMPLATE_ANNOTATION = "scale.dev/template"
# On simulated nodes, how fast the node "really" is against its class profile (a factor, e.g. "0.5": twice as
# slow): the run times drawn for its pods are divided by it, so a local cluster can stand in for hardware its
# profile misjudges and the operator's learned run times have something to find (docs/node-classes.md).
SIMULATED_SPEED_LABEL = "scale.dev/simulated-speed"
# On simulated nodes, what the pod's container "writes" as its termination message (its output): the local
# cluster's completion stage copies it there, from a primitive's simulatedOutput.
SIMULATED_OUTPUT_ANNOTATION = "scale.dev/simulated-output"
# Which attempt of its primitive a pod is (0, 1, ...): retries and reschedules get new pods.
ATTEMPT_LABEL = "agentic.scale.dev/attempt"
# The node the policy chose when the pod was created; the operator binds the pod there, and its
# duration annotation was drawn for that node.
PLANNED_NODE_ANNOTATION = "agentic.scale.dev/planned-node"
POLICY_ANNOTATION = "agentic.scale.dev/policy"
