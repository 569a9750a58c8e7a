{{/*
Chart name, truncated to 63 characters (the DNS label limit).
*/}}
{{- define "kube-sentiment.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: the release name when it already contains the chart name, else `<release>-<chart>`.
Truncated to 40 characters so that suffixes such as `-canary-predictor` and `-train-<hash>` stay within 63.
*/}}
{{- define "kube-sentiment.fullname" -}}
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

{{/*
Chart name and version for the helm.sh/chart label.
*/}}
{{- define "kube-sentiment.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels of one component. Call with (dict "ctx" $ "component" "serving").
The component is part of every selector so that components never select each other's pods.
*/}}
{{- define "kube-sentiment.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kube-sentiment.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
Selector labels of one serving track. Call with (dict "ctx" $ "track" "stable").
*/}}
{{- define "kube-sentiment.trackSelectorLabels" -}}
{{ include "kube-sentiment.selectorLabels" (dict "ctx" .ctx "component" "serving") }}
kube-sentiment/track: {{ .track }}
{{- end }}

{{/*
Recommended labels of one component. Call with (dict "ctx" $ "component" "serving").
*/}}
{{- define "kube-sentiment.labels" -}}
helm.sh/chart: {{ include "kube-sentiment.chart" .ctx }}
{{ include "kube-sentiment.selectorLabels" . }}
app.kubernetes.io/version: {{ include "kube-sentiment.imageTag" .ctx | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
app.kubernetes.io/part-of: kube-sentiment
kube-sentiment/environment: {{ .ctx.Values.environment }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Labels of one serving track's objects. Call with (dict "ctx" $ "track" "stable").
*/}}
{{- define "kube-sentiment.trackLabels" -}}
{{ include "kube-sentiment.labels" (dict "ctx" .ctx "component" "serving") }}
kube-sentiment/track: {{ .track }}
kube-sentiment/model-version: {{ include "kube-sentiment.modelVersion" . | quote }}
{{- end }}

{{/*
Name of a component's ServiceAccount. Call with (dict "ctx" $ "component" "serving").
*/}}
{{- define "kube-sentiment.serviceAccountName" -}}
{{- if .ctx.Values.serviceAccounts.create }}
{{- printf "%s-%s" (include "kube-sentiment.fullname" .ctx) .component }}
{{- else }}
{{- "default" }}
{{- end }}
{{- end }}

{{/*
Image tag: image.tag or the chart's appVersion.
*/}}
{{- define "kube-sentiment.imageTag" -}}
{{- default .Chart.AppVersion .Values.image.tag }}
{{- end }}

{{/*
Main image reference: repository:tag[@digest].
*/}}
{{- define "kube-sentiment.image" -}}
{{- $ref := printf "%s:%s" .Values.image.repository (include "kube-sentiment.imageTag" .) }}
{{- if .Values.image.digest }}
{{- $ref = printf "%s@%s" $ref .Values.image.digest }}
{{- end }}
{{- $ref }}
{{- end }}

{{/*
Shipper sidecar image: its own repository/tag when set, else the main image.
*/}}
{{- define "kube-sentiment.shipperImage" -}}
{{- if or .Values.shipper.image.repository .Values.shipper.image.tag }}
{{- printf "%s:%s" (default .Values.image.repository .Values.shipper.image.repository) (default (include "kube-sentiment.imageTag" .) .Values.shipper.image.tag) }}
{{- else }}
{{- include "kube-sentiment.image" . }}
{{- end }}
{{- end }}

{{/*
Model version of a track. Call with (dict "ctx" $ "track" "stable").
*/}}
{{- define "kube-sentiment.modelVersion" -}}
{{- $track := index .ctx.Values.serving .track }}
{{- $track.modelVersion | toString }}
{{- end }}

{{/*
MLflow model URI of a track: models:/<registered model>/<version>. Call with (dict "ctx" $ "track" "stable").
*/}}
{{- define "kube-sentiment.modelUri" -}}
{{- printf "models:/%s/%s" .ctx.Values.mlflow.registeredModel (include "kube-sentiment.modelVersion" .) }}
{{- end }}

{{/*
Tracks that run: stable, plus canary and shadow when enabled. Returns a comma-separated list.
*/}}
{{- define "kube-sentiment.tracks" -}}
{{- include "kube-sentiment.routedTracks" . }}{{ if .Values.serving.shadow.enabled }},shadow{{ end }}
{{- end }}

{{/*
Tracks that answer requests (the routes' backends): stable, plus canary when enabled. The shadow only gets copies.
*/}}
{{- define "kube-sentiment.routedTracks" -}}
{{- if .Values.serving.canary.enabled }}stable,canary{{ else }}stable{{ end }}
{{- end }}

{{/*
Weight of a track in percent. Call with (dict "ctx" $ "track" "stable").
*/}}
{{- define "kube-sentiment.trackWeight" -}}
{{- if not .ctx.Values.serving.canary.enabled }}100
{{- else if eq .track "canary" }}{{ .ctx.Values.serving.canary.weight | int }}
{{- else }}{{ sub 100 (.ctx.Values.serving.canary.weight | int) }}
{{- end }}
{{- end }}

{{/*
Name of the sink PersistentVolumeClaim.
*/}}
{{- define "kube-sentiment.sinkClaimName" -}}
{{- default (printf "%s-sink" (include "kube-sentiment.fullname" .)) .Values.shipper.sink.pvc.existingClaim }}
{{- end }}

{{/*
Drift report directory: drift.output, or <sink mount>/drift-reports on the PVC sink, or a scratch emptyDir for
the S3 sink (then set drift.logToMlflow so the reports land in the MLflow artefact store).
*/}}
{{- define "kube-sentiment.driftOutput" -}}
{{- if .Values.drift.output }}
{{- .Values.drift.output }}
{{- else if eq .Values.shipper.sink.type "s3" }}
{{- "/var/lib/kube-sentiment/drift-reports" }}
{{- else }}
{{- printf "%s/drift-reports" .Values.shipper.sink.pvc.mountPath }}
{{- end }}
{{- end }}

{{/*
Pod-level settings shared by every workload.
*/}}
{{- define "kube-sentiment.podCommon" -}}
automountServiceAccountToken: false
securityContext:
  {{- toYaml .Values.podSecurityContext | nindent 2 }}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
The /tmp emptyDir volume (read-only root filesystem).
*/}}
{{- define "kube-sentiment.tmpVolume" -}}
- name: tmp
  emptyDir:
    sizeLimit: {{ .Values.tmpSizeLimit }}
{{- end }}

{{/*
Checksum of the rendered configuration of one component; rolls pods when it changes.
Call with (dict "ctx" $ "file" "/serving/configmap.yaml").
*/}}
{{- define "kube-sentiment.checksum" -}}
{{- include (print .ctx.Template.BasePath .file) .ctx | sha256sum }}
{{- end }}

{{/*
Namespaces the console reads, as a JSON array: console.namespaces, or the release namespace alone.
*/}}
{{- define "kube-sentiment.consoleNamespaces" -}}
{{- if .Values.console.namespaces }}
{{- toJson .Values.console.namespaces }}
{{- else }}
{{- toJson (list .Release.Namespace) }}
{{- end }}
{{- end }}

{{/*
"true" when any training runs from this release: the chart's Job, the retraining trigger or the schedule (the
training ConfigMap, ServiceAccount and NetworkPolicy exist then).
*/}}
{{- define "kube-sentiment.trainingEnabled" -}}
{{- if or .Values.train.enabled .Values.retrain.trigger.enabled .Values.retrain.schedule.enabled }}true{{ end }}
{{- end }}

{{/*
Whether a component's ServiceAccount, Role and NetworkPolicy are rendered: serving always, train when any
training runs, the others when enabled. Call with (dict "ctx" $ "component" "train"); returns "true" or "".
*/}}
{{- define "kube-sentiment.componentEnabled" -}}
{{- if eq .component "serving" }}true
{{- else if eq .component "train" }}{{ include "kube-sentiment.trainingEnabled" .ctx }}
{{- else if (index .ctx.Values .component).enabled }}true
{{- end }}
{{- end }}

{{/*
"true" when a shadow runs and the answering predictors send it the copies (kserve mode, where KServe cannot
mirror, or `serving.shadow.mirror.by: predictor`), else "". Call with $.
*/}}
{{- define "kube-sentiment.predictorMirrors" -}}
{{- $shadow := .Values.serving.shadow }}
{{- if and $shadow.enabled (or (eq .Values.serving.mode "kserve") (eq $shadow.mirror.by "predictor")) }}true{{ end }}
{{- end }}

{{/*
The routes' RequestMirror filter to the shadow track (nothing when no shadow runs): the Gateway copies `percent` %
of the requests to the shadow's Service and drops its answers. Call with (dict "ctx" $ "port" <port>).
*/}}
{{- define "kube-sentiment.mirrorFilter" -}}
{{- if and .ctx.Values.serving.shadow.enabled (not (include "kube-sentiment.predictorMirrors" .ctx)) -}}
filters:
  - type: RequestMirror
    requestMirror:
      backendRef:
        name: {{ include "kube-sentiment.fullname" .ctx }}-shadow
        port: {{ .port }}
      percent: {{ .ctx.Values.serving.shadow.percent }}
{{- end }}
{{- end }}
