{{/* Names, labels and the values every template shares. */}}

{{- define "tableguard.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Full name, used for every object; at most 63 characters (a Service name is a DNS label). */}}
{{- define "tableguard.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "tableguard.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of the webhook server's objects; tableguard.baseLabels plus a component of your own
for the others (monitoring, cleanup, test). */}}
{{- define "tableguard.labels" -}}
{{ include "tableguard.baseLabels" . }}
app.kubernetes.io/component: webhook
{{- end }}

{{- define "tableguard.baseLabels" -}}
helm.sh/chart: {{ include "tableguard.chart" . }}
{{ include "tableguard.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: tableguard
{{- end }}

{{/* Labels of the hooks' objects (dict "root" . "component" "cleanup"): their own name, so the
Service, the PodDisruptionBudget and the NetworkPolicy never select a hook's pod. */}}
{{- define "tableguard.hookLabels" -}}
helm.sh/chart: {{ include "tableguard.chart" .root }}
app.kubernetes.io/name: {{ printf "%s-%s" (include "tableguard.name" .root) .component | trunc 63 | trimSuffix "-" }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/version: {{ .root.Values.image.tag | default .root.Chart.AppVersion | trunc 63 | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: tableguard
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "tableguard.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tableguard.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "tableguard.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tableguard.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tableguard.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* The Secret the pods mount as /etc/tableguard/tls. */}}
{{- define "tableguard.tlsSecretName" -}}
{{- if .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-tls" (include "tableguard.fullname" .) }}
{{- end }}
{{- end }}

{{/* Webhook names have three dot-separated segments, as the API server requires. */}}
{{- define "tableguard.webhookName" -}}
{{- printf "%s.%s.tableguard.io" .kind (include "tableguard.fullname" .root) }}
{{- end }}

{{/* The exceptions document as text: the value when set (string or map), else none. */}}
{{- define "tableguard.exceptions" -}}
{{- if kindIs "string" .Values.exceptions }}
{{- if .Values.exceptions }}
{{- .Values.exceptions }}
{{- else }}
{{- .Files.Get "files/exceptions.yaml" }}
{{- end }}
{{- else if kindIs "map" .Values.exceptions }}
{{- toYaml .Values.exceptions }}
{{- else }}
{{- fail "exceptions must be a YAML string or a map" }}
{{- end }}
{{- end }}

{{/* The policy document as text: the value when set (string or map), else files/policy.yaml. */}}
{{- define "tableguard.policy" -}}
{{- if kindIs "string" .Values.policy }}
{{- if .Values.policy }}
{{- .Values.policy }}
{{- else }}
{{- .Files.Get "files/policy.yaml" }}
{{- end }}
{{- else if kindIs "map" .Values.policy }}
{{- toYaml .Values.policy }}
{{- else }}
{{- fail "policy must be a YAML string or a map" }}
{{- end }}
{{- end }}

{{- define "tableguard.checkValues" -}}
{{- $drain := add .Values.server.shutdownDelaySeconds .Values.server.drainTimeoutSeconds }}
{{- if le (int .Values.terminationGracePeriodSeconds) (int $drain) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) must exceed server.shutdownDelaySeconds + server.drainTimeoutSeconds (%v), or pods are killed mid-drain" .Values.terminationGracePeriodSeconds $drain) }}
{{- end }}
{{- if and .Values.certManager.enabled (not (.Capabilities.APIVersions.Has "cert-manager.io/v1")) }}
{{- fail "certManager.enabled needs the cert-manager.io/v1 API: install cert-manager first (helm template: --api-versions cert-manager.io/v1)" }}
{{- end }}
{{- if and .Values.tls.existingSecret (not .Values.certManager.enabled) (not .Values.tls.caBundle) }}
{{- fail "tls.existingSecret needs tls.caBundle, the CA that signed its certificate" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not .Values.metrics.enabled) }}
{{- fail "serviceMonitor.enabled needs metrics.enabled" }}
{{- end }}
{{- if and .Values.webhook.matchConditions (semverCompare "<1.28.0-0" .Capabilities.KubeVersion.Version) }}
{{- fail (printf "webhook.matchConditions needs Kubernetes 1.28 or later (this cluster: %s); leave it empty or use objectSelector" .Capabilities.KubeVersion.Version) }}
{{- end }}
{{- if and .Values.prometheusRule.enabled (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}
{{- fail "prometheusRule.enabled needs the monitoring.coreos.com/v1 API (Prometheus Operator; helm template: --api-versions monitoring.coreos.com/v1)" }}
{{- end }}
{{- if and .Values.serviceMonitor.enabled (not (.Capabilities.APIVersions.Has "monitoring.coreos.com/v1")) }}
{{- fail "serviceMonitor.enabled needs the monitoring.coreos.com/v1 API (Prometheus Operator; helm template: --api-versions monitoring.coreos.com/v1)" }}
{{- end }}
{{- end }}

{{/* "true" when each replica gets its own audit volume (a StatefulSet's volumeClaimTemplates). */}}
{{- define "tableguard.auditPerReplica" -}}
{{- and (eq .Values.audit.mode "persistentVolumeClaim") (not .Values.audit.persistence.existingClaim) }}
{{- end }}

{{/*
Rotated audit files kept. On a volume the retention is asked for in days: the files that
retentionDays x bytesPerDay fill, rounded up (at least 1). Elsewhere audit.maxFiles.
*/}}
{{- define "tableguard.auditMaxFiles" -}}
{{- $p := .Values.audit.persistence }}
{{- if and (eq .Values.audit.mode "persistentVolumeClaim") (gt (int64 $p.retentionDays) 0) }}
{{- $bytes := mul (int64 $p.retentionDays) (int64 $p.bytesPerDay) }}
{{- $size := int64 .Values.audit.maxSizeBytes }}
{{- max 1 (div (add $bytes $size -1) $size) }}
{{- else }}
{{- .Values.audit.maxFiles }}
{{- end }}
{{- end }}

{{/*
Size of each replica's audit claim: audit.persistence.size, else room for the rotated files
plus the live one (each at most maxSizeBytes and a rotate record) and a tenth more, in MiB.
*/}}
{{- define "tableguard.auditClaimSize" -}}
{{- if .Values.audit.persistence.size }}
{{- .Values.audit.persistence.size }}
{{- else }}
{{- $files := add (int64 (include "tableguard.auditMaxFiles" .)) 1 }}
{{- $bytes := div (mul $files (int64 .Values.audit.maxSizeBytes) 11) 10 }}
{{- printf "%dMi" (div (add $bytes 1048575) 1048576) }}
{{- end }}
{{- end }}
