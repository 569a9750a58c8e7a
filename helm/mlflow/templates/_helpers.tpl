{{/*
Chart name.
*/}}
{{- define "mlflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Full name: the release name when it contains the chart name, else `<release>-<chart>`.
*/}}
{{- define "mlflow.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart label.
*/}}
{{- define "mlflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels; call with (dict "ctx" $ "component" "server").
*/}}
{{- define "mlflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "mlflow.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Recommended labels; call with (dict "ctx" $ "component" "server").
*/}}
{{- define "mlflow.labels" -}}
helm.sh/chart: {{ include "mlflow.chart" .ctx }}
{{ include "mlflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: kube-sentiment
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "mlflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}{{ include "mlflow.fullname" . }}{{ else }}default{{ end }}
{{- end }}

{{/*
Host names the server accepts (--allowed-hosts): every DNS form of the Service, with and without a port,
plus localhost for probes and port-forwarding, plus server.extraAllowedHosts.
*/}}
{{- define "mlflow.allowedHosts" -}}
{{- $svc := include "mlflow.fullname" . }}
{{- $ns := .Release.Namespace }}
{{- $hosts := list "localhost" "127.0.0.1" }}
{{- range $name := list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns) }}
{{- $hosts = append $hosts $name }}
{{- end }}
{{- range .Values.server.extraAllowedHosts }}
{{- $hosts = append $hosts . }}
{{- end }}
{{- $withPorts := list }}
{{- range $hosts }}
{{- $withPorts = append $withPorts . }}
{{- $withPorts = append $withPorts (printf "%s:*" .) }}
{{- end }}
{{- join "," $withPorts }}
{{- end }}

{{/*
Artefact destination: artifactStore.destination, or /mlflow/artifacts on the PVC.
*/}}
{{- define "mlflow.artifactsDestination" -}}
{{- default "/mlflow/artifacts" .Values.artifactStore.destination }}
{{- end }}
