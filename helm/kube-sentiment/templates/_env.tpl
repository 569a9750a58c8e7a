{{/*
Every environment variable the kube-sentiment processes read is named here, in this one file. The
per-component ConfigMaps render the `*.config` maps; containers add the per-track and Secret-backed lists.
Keep the names in step with the Python settings classes (env prefixes KS_SERVE_, KS_SHIP_, KS_DRIFT_, KS_TRAIN_).
*/}}

{{/* Sink location shared by the shipper (writes) and the drift job (reads). */}}
{{- define "kube-sentiment.sinkLocation" -}}
{{- if eq .Values.shipper.sink.type "s3" }}
{{- .Values.shipper.sink.s3.uri }}
{{- else }}
{{- printf "%s/events" .Values.shipper.sink.pvc.mountPath }}
{{- end }}
{{- end }}

{{/* `kube-sentiment serve`: settings common to both tracks (ConfigMap data). */}}
{{- define "kube-sentiment.env.serving.config" -}}
MLFLOW_TRACKING_URI: {{ .Values.mlflow.trackingUri | quote }}
KS_SERVE_ENVIRONMENT: {{ .Values.environment | quote }}
KS_SERVE_MODEL_NAME: {{ .Values.serving.modelName | quote }}
{{- if .Values.shipper.enabled }}
KS_SERVE_EVENTS_URL: {{ printf "http://127.0.0.1:%d/v1/events" (.Values.shipper.port | int) | quote }}
{{- end }}
{{- end }}

{{/* `kube-sentiment serve`: per-track settings (EnvVar list). Call with (dict "ctx" $ "track" "stable"). */}}
{{- define "kube-sentiment.env.serving.track" -}}
- name: KS_SERVE_TRACK
  value: {{ .track | quote }}
- name: KS_SERVE_MODEL_URI
  value: {{ include "kube-sentiment.modelUri" . | quote }}
{{- end }}

{{/* `kube-sentiment ship`: ConfigMap data. */}}
{{- define "kube-sentiment.env.shipper.config" -}}
KS_SHIP_PORT: {{ .Values.shipper.port | quote }}
KS_SHIP_SPOOL_DIR: {{ .Values.shipper.spool.mountPath | quote }}
KS_SHIP_SINK: {{ include "kube-sentiment.sinkLocation" . | quote }}
KS_SHIP_ENVIRONMENT: {{ .Values.environment | quote }}
{{- if eq .Values.shipper.sink.type "s3" }}
{{- with .Values.shipper.sink.s3.endpointUrl }}
KS_SHIP_S3_ENDPOINT_URL: {{ . | quote }}
{{- end }}
{{- with .Values.shipper.sink.s3.region }}
AWS_DEFAULT_REGION: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* S3 credentials from the referenced Secret (EnvVar list); empty for the PVC sink. */}}
{{- define "kube-sentiment.env.s3Credentials" -}}
{{- if and (eq .Values.shipper.sink.type "s3") .Values.shipper.sink.s3.credentialsSecret.name }}
- name: AWS_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .Values.shipper.sink.s3.credentialsSecret.name }}
      key: {{ .Values.shipper.sink.s3.credentialsSecret.accessKeyIdKey }}
- name: AWS_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .Values.shipper.sink.s3.credentialsSecret.name }}
      key: {{ .Values.shipper.sink.s3.credentialsSecret.secretAccessKeyKey }}
{{- end }}
{{- end }}

{{/* `kube-sentiment drift`: ConfigMap data. The reference is the stable track's model version. */}}
{{- define "kube-sentiment.env.drift.config" -}}
MLFLOW_TRACKING_URI: {{ .Values.mlflow.trackingUri | quote }}
KS_DRIFT_ENVIRONMENT: {{ .Values.environment | quote }}
KS_DRIFT_MODEL_NAME: {{ .Values.serving.modelName | quote }}
KS_DRIFT_SOURCE: {{ include "kube-sentiment.sinkLocation" . | quote }}
KS_DRIFT_WINDOW: {{ .Values.drift.window | quote }}
KS_DRIFT_REFERENCE_MODEL_URI: {{ include "kube-sentiment.modelUri" (dict "ctx" . "track" "stable") | quote }}
KS_DRIFT_OUTPUT: {{ include "kube-sentiment.driftOutput" . | quote }}
{{- with .Values.drift.pushgatewayUrl }}
KS_DRIFT_PUSHGATEWAY_URL: {{ . | quote }}
{{- end }}
{{- if eq .Values.shipper.sink.type "s3" }}
{{- with .Values.shipper.sink.s3.endpointUrl }}
KS_DRIFT_S3_ENDPOINT_URL: {{ . | quote }}
{{- end }}
{{- with .Values.shipper.sink.s3.region }}
AWS_DEFAULT_REGION: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* `kube-sentiment train`: ConfigMap data. */}}
{{- define "kube-sentiment.env.train.config" -}}
MLFLOW_TRACKING_URI: {{ .Values.mlflow.trackingUri | quote }}
KS_TRAIN_TRACKING_URI: {{ .Values.mlflow.trackingUri | quote }}
KS_TRAIN_REGISTERED_MODEL: {{ .Values.mlflow.registeredModel | quote }}
KS_TRAIN_DATA_PATH: {{ .Values.train.dataPath | quote }}
KS_TRAIN_ACTOR: {{ .Values.train.actor | quote }}
KS_TRAIN_OUTPUT_DIR: "/tmp/train"
KS_TRAIN_JSON_LOGS: "true"
{{- end }}
