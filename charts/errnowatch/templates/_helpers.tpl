{{/* Names, labels and the few values several templates share. */}}

{{- define "errnowatch.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Object name prefix; room is left for suffixes like -collector-headless. */}}
{{- define "errnowatch.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 40 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "errnowatch.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "errnowatch.labels" -}}
helm.sh/chart: {{ include "errnowatch.chart" . }}
app.kubernetes.io/name: {{ include "errnowatch.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: errnowatch
{{- end }}

{{/* Selector labels of one component: include with (list $ "agent"). */}}
{{- define "errnowatch.selectorLabels" -}}
{{- $ := index . 0 -}}
app.kubernetes.io/name: {{ include "errnowatch.name" $ }}
app.kubernetes.io/instance: {{ $.Release.Name }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "errnowatch.componentLabels" -}}
{{ include "errnowatch.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end }}

{{- define "errnowatch.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{- define "errnowatch.agentServiceAccount" -}}
{{- default (printf "%s-agent" (include "errnowatch.fullname" .)) .Values.agent.serviceAccount.name }}
{{- end }}

{{- define "errnowatch.collectorServiceAccount" -}}
{{- default (printf "%s-collector" (include "errnowatch.fullname" .)) .Values.collector.serviceAccount.name }}
{{- end }}

{{- define "errnowatch.collectorService" -}}
{{- printf "%s-collector" (include "errnowatch.fullname" .) }}
{{- end }}

{{/* host:port agents dial. */}}
{{- define "errnowatch.collectorAddress" -}}
{{- printf "%s.%s.svc:%d" (include "errnowatch.collectorService" .) .Release.Namespace (int .Values.collector.service.port) }}
{{- end }}

{{/* DNS names in the collector certificate. localhost serves kubectl port-forward. */}}
{{- define "errnowatch.collectorDNSNames" -}}
{{- $svc := include "errnowatch.collectorService" . }}
{{- $names := list $svc (printf "%s.%s" $svc .Release.Namespace) (printf "%s.%s.svc" $svc .Release.Namespace) (printf "%s.%s.svc.cluster.local" $svc .Release.Namespace) "localhost" }}
{{- concat $names .Values.tls.extraDNSNames | toJson }}
{{- end }}

{{- define "errnowatch.serverTLSSecret" -}}
{{- if and (eq .Values.tls.mode "existingSecret") .Values.tls.existingSecret }}
{{- .Values.tls.existingSecret }}
{{- else }}
{{- printf "%s-collector-tls" (include "errnowatch.fullname" .) }}
{{- end }}
{{- end }}

{{- define "errnowatch.clientTLSSecret" -}}
{{- if and (eq .Values.tls.mode "existingSecret") .Values.tls.mtls.existingSecret }}
{{- .Values.tls.mtls.existingSecret }}
{{- else }}
{{- printf "%s-agent-tls" (include "errnowatch.fullname" .) }}
{{- end }}
{{- end }}

{{- define "errnowatch.siemServiceAccount" -}}
{{- printf "%s-siem" (include "errnowatch.fullname" .) }}
{{- end }}

{{/* The agent's capability set when not privileged. */}}
{{- define "errnowatch.agentCapabilities" -}}
{{- concat .Values.agent.capabilities .Values.agent.extraCapabilities | uniq | toJson }}
{{- end }}

{{- /* The ConfigMap that publishes the collector's CA (auto TLS mode): readers
and agents get the CA without access to a Secret that also holds the key. */}}
{{- define "errnowatch.caConfigMap" -}}
{{- printf "%s-collector-ca" (include "errnowatch.fullname" .) }}
{{- end }}

{{/* Endpoint fields both ServiceMonitors share. */}}
{{- define "errnowatch.scrapeOptions" -}}
{{- $sm := .Values.serviceMonitor -}}
interval: {{ $sm.interval }}
{{- with $sm.scrapeTimeout }}
scrapeTimeout: {{ . }}
{{- end }}
scheme: {{ $sm.scheme }}
{{- with $sm.tlsConfig }}
tlsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}
