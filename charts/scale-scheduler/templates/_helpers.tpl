{{/* Names and labels shared by every template. */}}

{{- define "scale-scheduler.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "scale-scheduler.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "scale-scheduler.selectorLabels" -}}
app.kubernetes.io/name: {{ include "scale-scheduler.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "scale-scheduler.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{ include "scale-scheduler.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "scale-scheduler.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "scale-scheduler.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "scale-scheduler.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The namespaces the operator serves, as a JSON list: [] for every namespace (watchAllNamespaces), else
watchNamespaces, or the release namespace when that list is empty. */}}
{{- define "scale-scheduler.watchedNamespaces" -}}
{{- if .Values.watchAllNamespaces -}}
{{- if .Values.watchNamespaces -}}
{{- fail "watchNamespaces lists namespaces to serve instead of all of them: set watchAllNamespaces=false with it" -}}
{{- end -}}
[]
{{- else -}}
{{- toJson (.Values.watchNamespaces | default (list .Release.Namespace) | uniq) -}}
{{- end -}}
{{- end -}}

{{/* The operator's rights inside each namespace it serves: a ClusterRole's rules when it serves them all, a Role's
in each otherwise. Each rule names what the operator (or kopf underneath it) does there. */}}
{{- define "scale-scheduler.namespacedRules" -}}
# The WorkflowDAG is the one object with state-changing handlers: read it, kopf's progress
# annotations (patch/update; no finalizer), write its status; delete it once its ttlSecondsAfterFinished ran out.
- apiGroups: ["agentic.scale.dev"]
  resources: ["workflowdags"]
  verbs: ["get", "list", "watch", "patch", "update", "delete"]
- apiGroups: ["agentic.scale.dev"]
  resources: ["workflowdags/status"]
  verbs: ["get", "patch", "update"]
# Pods' ownerReferences set blockOwnerDeletion, which the OwnerReferencesPermissionEnforcement
# admission plugin (on in many managed clusters) only allows to who may update the owner's finalizers.
- apiGroups: ["agentic.scale.dev"]
  resources: ["workflowdags/finalizers"]
  verbs: ["update"]
# One pod per primitive: created when its dependencies finish, followed to completion,
# deleted on cancellation / WorkflowDAG deletion, patched with the chosen node's annotations.
- apiGroups: [""]
  resources: ["pods"]
  verbs: ["create", "get", "list", "watch", "delete", "patch"]
# PodScheduled=False/Unschedulable on a pod waiting for room, as kube-scheduler reports it; Failed with reason
# DeadlineExceeded on a pod past its activeDeadlineSeconds that its node did not end (a KWOK node).
- apiGroups: [""]
  resources: ["pods/status"]
  verbs: ["patch"]
# The scheduler's own act: POST .../pods/{name}/binding.
- apiGroups: [""]
  resources: ["pods/binding"]
  verbs: ["create"]
# A ConfigMap per workflow holds the outputs its primitives hand to their children (created, then merged into).
- apiGroups: [""]
  resources: ["configmaps"]
  verbs: ["create", "patch"]
# Scheduled / FailedScheduling events on pods and kopf's handler events on WorkflowDAGs.
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create", "patch"]
- apiGroups: ["events.k8s.io"]
  resources: ["events"]
  verbs: ["create", "patch"]
{{- if .Values.peering.enabled }}
# kopf peering, its stand-in for leader election between replicas: a KopfPeering per served namespace.
- apiGroups: ["kopf.dev"]
  resources: ["kopfpeerings"]
  verbs: ["get", "list", "watch", "patch"]
{{- end }}
{{- end -}}
