{{/*
An InferenceService predictor for one track: KServe component settings plus the inlined PodSpec.
Call with (dict "ctx" $ "track" "stable").
*/}}
{{- define "kube-sentiment.serving.predictor" -}}
{{- $v := .ctx.Values }}
{{- $t := index $v.serving .track }}
labels:
  {{- include "kube-sentiment.trackLabels" . | nindent 2 }}
annotations:
  {{- include "kube-sentiment.serving.podAnnotations" . | nindent 2 }}
{{- if $v.serving.autoscaling.enabled }}
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
{{ include "kube-sentiment.serving.podSpec" . }}
{{- end }}
