{{/*
Names are the release name plus the component, so that the default release "llm-d" gives "llm-d-operator"
and "llm-d-scaler", the names the operator's built-in --scaler-address and the README use. Cluster-scoped
objects (ClusterRoles, bindings) carry the same names, so that two releases never collide.
*/}}
{{- define "llm-d.operator.name" -}}
{{- printf "%s-operator" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "llm-d.scaler.name" -}}
{{- printf "%s-scaler" .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels of every object; the component is passed as .component. */}}
{{- define "llm-d.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .ctx.Chart.Name .ctx.Chart.Version | replace "+" "_" }}
app.kubernetes.io/name: llm-d
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: llm-d
{{- with .component }}
app.kubernetes.io/component: {{ . }}
{{- end }}
{{- end -}}

{{/* Selector labels: immutable once a Deployment exists, so they never include the version. */}}
{{- define "llm-d.selectorLabels" -}}
app.kubernetes.io/name: llm-d
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* image renders repository:tag, the tag defaulting to the chart's appVersion. */}}
{{- define "llm-d.image" -}}
{{- printf "%s:%s" .image.repository (.image.tag | default .ctx.Chart.AppVersion) -}}
{{- end -}}

{{/*
Restricted Pod Security Standard: both programs are static Go binaries that write nothing to disk and
need no privilege, so the strictest profile costs nothing.
*/}}
{{- define "llm-d.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
runAsGroup: 65532
fsGroup: 65532
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "llm-d.containerSecurityContext" -}}
runAsNonRoot: true
runAsUser: 65532
readOnlyRootFilesystem: true
allowPrivilegeEscalation: false
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The operator elects a leader when asked to, and always when it runs more than one replica. */}}
{{- define "llm-d.operator.leaderElect" -}}
{{- if or .Values.operator.leaderElection.enabled (gt (int .Values.operator.replicas) 1) }}true{{ end -}}
{{- end -}}

{{/* scalerAddress: an explicit value, else this release's scaler Service when it is installed. */}}
{{- define "llm-d.operator.scalerAddress" -}}
{{- if .Values.operator.scalerAddress -}}
{{- .Values.operator.scalerAddress -}}
{{- else if .Values.scaler.enabled -}}
{{- printf "%s.%s.svc:9090" (include "llm-d.scaler.name" .) .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* Secrets of the mutual-TLS certificates: the scaler's (release namespace) and KEDA's (KEDA's namespace). */}}
{{- define "llm-d.scaler.tlsServerSecret" -}}
{{- if eq .Values.scaler.tls.source "existing" -}}
{{- required "scaler.tls.existing.serverSecret is required when scaler.tls.source is existing" .Values.scaler.tls.existing.serverSecret -}}
{{- else -}}
{{- printf "%s-tls" (include "llm-d.scaler.name" .) -}}
{{- end -}}
{{- end -}}

{{- define "llm-d.scaler.tlsClientSecret" -}}
{{- if eq .Values.scaler.tls.source "existing" -}}
{{- required "scaler.tls.existing.clientSecret is required when scaler.tls.source is existing" .Values.scaler.tls.existing.clientSecret -}}
{{- else -}}
{{- printf "%s-client-tls" (include "llm-d.scaler.name" .) -}}
{{- end -}}
{{- end -}}

{{/* The names KEDA may dial the scaler by; the serving certificate carries them all. */}}
{{- define "llm-d.scaler.dnsNames" -}}
{{- $n := include "llm-d.scaler.name" . -}}
{{- $ns := .Release.Namespace -}}
{{- list $n (printf "%s.%s" $n $ns) (printf "%s.%s.svc" $n $ns) (printf "%s.%s.svc.cluster.local" $n $ns) | toJson -}}
{{- end -}}
