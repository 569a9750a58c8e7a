{{/*
An InferenceService predictor for one track: KServe component settings, the `model` (the chart's ServingRuntime,
with the track's container fields merged over its kserve-container) and the PodSpec fields (shipper sidecar,
volumes, service account, security). No storageUri and an empty storage spec: the model server loads its version
from the MLflow registry itself, so KServe injects no storage initializer and no model agent. Call with
(dict "ctx" $ "track" "stable").

KServe v0.20 builds the canary's pods from the stable predictor with the canary's fields over it, and its webhook
wants: a `model` (or storageUri) on the stable predictor without a container name, a `name` on each canary, fixed
canary replicas (minReplicas only: no maxReplicas, scaleMetric, scaleTarget).
*/}}
{{- define "kube-sentiment.serving.predictor" -}}
{{- $v := .ctx.Values }}
{{- $t := index $v.serving .track }}
{{- if eq .track "canary" }}
name: {{ include "kube-sentiment.kserve.canaryName" .ctx }}
{{- end }}
labels:
  {{- include "kube-sentiment.trackLabels" . | nindent 2 }}
annotations:
  {{- include "kube-sentiment.serving.podAnnotations" . | nindent 2 }}
{{- if eq .track "canary" }}
minReplicas: {{ $t.replicas }}
{{- else if $v.serving.autoscaling.enabled }}
minReplicas: {{ $v.serving.autoscaling.minReplicas }}
maxReplicas: {{ $v.serving.autoscaling.maxReplicas }}
scaleMetric: cpu
scaleTarget: {{ $v.serving.autoscaling.targetCPUUtilizationPercentage }}
{{- else }}
minReplicas: {{ $t.replicas }}
maxReplicas: {{ $t.replicas }}
{{- end }}
timeout: {{ $v.serving.kserve.timeout }}
deploymentStrategy:
  type: RollingUpdate
  rollingUpdate:
    maxSurge: 1
    maxUnavailable: 0
{{- if and $v.shipper.enabled $v.serving.kserve.logger.enabled }}
logger:
  mode: {{ $v.serving.kserve.logger.mode }}
  url: {{ printf "http://127.0.0.1:%d/" ($v.shipper.port | int) }}
{{- end }}
model:
  {{- if eq .track "canary" }}
  {{- /* The CRD wants a container name in a canary's model, the webhook refuses one in the stable's; KServe names
  the merged container after it. */}}
  name: kserve-container
  {{- end }}
  modelFormat:
    name: {{ include "kube-sentiment.kserve.modelFormat" .ctx }}
  runtime: {{ include "kube-sentiment.fullname" .ctx }}
  {{- /* KServe v0.20 takes a model with neither storageUri nor storage for multi-model serving (IsMMSPredictor):
  it injects its model-puller agent (image kserve/agent) and a modelconfig ConfigMap. An empty storage spec says
  "one model, its storage is the server's business": no agent, no storage initializer (no path, no URI). */}}
  storage: {}
  {{- include "kube-sentiment.serving.serverTrack" . | nindent 2 }}
{{ include "kube-sentiment.serving.podSpec" . }}
{{- end }}

{{/*
The model format the chart's ServingRuntime serves (and only it: not auto-selected for other InferenceServices).
*/}}
{{- define "kube-sentiment.kserve.modelFormat" -}}kube-sentiment{{- end }}
