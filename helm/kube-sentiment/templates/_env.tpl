{{/*
Every environment variable the kube-sentiment processes read is named here, in this one file. The
per-component ConfigMaps render the `*.config` maps; containers add the per-track and Secret-backed lists.
Keep the names in step with the Python settings classes (env prefixes KS_SERVE_, KS_SHIP_, KS_DRIFT_, KS_TRAIN_).
*/}}

{{/* Sink location shared by the shipper (writes) and the drift job (reads): a directory or s3://bucket/prefix. */}}
{{- define "kube-sentiment.sinkLocation" -}}
{{- if eq .Values.shipper.sink.type "s3" }}
{{- .Values.shipper.sink.s3.uri | trimSuffix "/" }}
{{- else }}
{{- printf "%s/predictions" .Values.shipper.sink.pvc.mountPath }}
{{- end }}
{{- end }}

{{/* The journal directory on the shared spool volume: the model server writes there, the sidecar reads
(serving/eventlog/journal.py). */}}
{{- define "kube-sentiment.journalDir" -}}
{{- printf "%s/journal" (.Values.shipper.spool.mountPath | trimSuffix "/") }}
{{- end }}

{{/* `kube-sentiment serve` (serving/settings.py, KS_SERVE_*): settings common to both tracks (ConfigMap data). */}}
{{- define "kube-sentiment.env.serving.config" -}}
MLFLOW_TRACKING_URI: {{ .Values.mlflow.trackingUri | quote }}
KS_SERVE_ENVIRONMENT: {{ .Values.environment | quote }}
KS_SERVE_MODEL_NAME: {{ .Values.serving.modelName | quote }}
KS_SERVE_DOWNLOAD_DIR: "/tmp/models"
KS_SERVE_JSON_LOGS: "true"
KS_SERVE_LOG_TEXT: {{ .Values.serving.logText | quote }}
KS_SERVE_FEEDBACK_MAX_ITEMS: {{ .Values.serving.feedback.maxItems | quote }}
{{- if .Values.shipper.enabled }}
KS_SERVE_EVENTS_DIR: {{ include "kube-sentiment.journalDir" . | quote }}
KS_SERVE_EVENTS_MAX_BYTES: {{ mul .Values.shipper.spool.journalMaxMiB 1048576 | int64 | toString | quote }}
{{- else }}
KS_SERVE_EVENTS_DIR: ""
{{- end }}
{{- end }}

{{/* `kube-sentiment serve`: per-track settings (EnvVar list). Call with (dict "ctx" $ "track" "stable"). */}}
{{- define "kube-sentiment.env.serving.track" -}}
- name: KS_SERVE_TRACK
  value: {{ .track | quote }}
- name: KS_SERVE_MODEL_URI
  value: {{ include "kube-sentiment.modelUri" . | quote }}
- name: KS_SERVE_MODEL_VERSION
  value: {{ include "kube-sentiment.modelVersion" . | quote }}
{{- $shadow := .ctx.Values.serving.shadow }}
{{- if and (include "kube-sentiment.predictorMirrors" .ctx) (ne .track "shadow") }}
{{- /* kserve mode (KServe cannot mirror) or mirror.by predictor: the answering predictors send the copies. */}}
- name: KS_SERVE_MIRROR_URL
  value: {{ printf "http://%s" (include "kube-sentiment.httpEndpoint" (dict "ctx" .ctx "track" "shadow")) | quote }}
- name: KS_SERVE_MIRROR_PERCENT
  value: {{ $shadow.percent | quote }}
- name: KS_SERVE_MIRROR_QUEUE_SIZE
  value: {{ $shadow.mirror.queueSize | quote }}
- name: KS_SERVE_MIRROR_CONCURRENCY
  value: {{ $shadow.mirror.concurrency | quote }}
- name: KS_SERVE_MIRROR_TIMEOUT_S
  value: {{ $shadow.mirror.timeoutSeconds | quote }}
{{- end }}
{{- end }}

{{/* `kube-sentiment ship` (serving/shipper/settings.py, KS_SHIP_*): ConfigMap data. */}}
{{- define "kube-sentiment.env.shipper.config" -}}
{{- $sink := .Values.shipper.sink }}
KS_SHIP_PORT: {{ .Values.shipper.port | quote }}
KS_SHIP_SPOOL_DIR: {{ .Values.shipper.spool.mountPath | quote }}
KS_SHIP_JOURNAL_DIR: {{ include "kube-sentiment.journalDir" . | quote }}
KS_SHIP_SPOOL_MAX_BYTES: {{ mul .Values.shipper.spool.shipperMaxMiB 1048576 | int64 | toString | quote }}
KS_SHIP_ENVIRONMENT: {{ .Values.environment | quote }}
KS_SHIP_MODEL_NAME: {{ .Values.serving.modelName | quote }}
KS_SHIP_DRAIN_TIMEOUT_S: {{ .Values.shipper.drainTimeoutSeconds | quote }}
KS_SHIP_JSON_LOGS: "true"
{{- if eq $sink.type "s3" }}
{{- $path := $sink.s3.uri | trimPrefix "s3://" | trimSuffix "/" }}
KS_SHIP_SINK: "s3"
KS_SHIP_S3_BUCKET: {{ regexReplaceAll "/.*$" $path "" | quote }}
KS_SHIP_S3_PREFIX: {{ if contains "/" $path }}{{ regexReplaceAll "^[^/]*/" $path "" | quote }}{{ else }}""{{ end }}
{{- with $sink.s3.endpointUrl }}
KS_SHIP_S3_ENDPOINT_URL: {{ . | quote }}
{{- end }}
{{- with $sink.s3.region }}
KS_SHIP_S3_REGION: {{ . | quote }}
{{- end }}
{{- else }}
KS_SHIP_SINK: "local"
KS_SHIP_SINK_DIR: {{ include "kube-sentiment.sinkLocation" . | quote }}
{{- end }}
{{- end }}

{{/* `kube-sentiment ship`: per-track settings, used for KServe logger records (EnvVar list). */}}
{{- define "kube-sentiment.env.shipper.track" -}}
- name: KS_SHIP_TRACK
  value: {{ .track | quote }}
- name: KS_SHIP_MODEL_VERSION
  value: {{ include "kube-sentiment.modelVersion" . | quote }}
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

{{/* `kube-sentiment drift` (model/drift/settings.py, KS_DRIFT_*): ConfigMap data. References come from the
MLflow registry (the model versions seen in the window). */}}
{{- define "kube-sentiment.env.drift.config" -}}
MLFLOW_TRACKING_URI: {{ .Values.mlflow.trackingUri | quote }}
KS_DRIFT_REGISTERED_MODEL: {{ .Values.mlflow.registeredModel | quote }}
KS_DRIFT_ENVIRONMENT: {{ .Values.environment | quote }}
KS_DRIFT_SOURCE: {{ include "kube-sentiment.sinkLocation" . | quote }}
KS_DRIFT_WINDOW: {{ .Values.drift.window | quote }}
KS_DRIFT_MIN_SAMPLES: {{ .Values.drift.minSamples | quote }}
KS_DRIFT_OUTPUT_DIR: {{ include "kube-sentiment.driftOutput" . | quote }}
KS_DRIFT_LOG_TO_MLFLOW: {{ .Values.drift.logToMlflow | quote }}
KS_DRIFT_JSON_LOGS: "true"
KS_DRIFT_QUALITY: {{ .Values.drift.quality.enabled | quote }}
KS_DRIFT_LATENESS: {{ .Values.drift.quality.lateness | quote }}
KS_DRIFT_MIN_LABELLED: {{ .Values.drift.quality.minLabelled | quote }}
KS_DRIFT_MAX_F1_DROP: {{ .Values.drift.quality.maxF1Drop | quote }}
{{- if .Values.retrain.trigger.enabled }}
KS_DRIFT_RETRAIN_ON: {{ .Values.retrain.trigger.verdicts | toJson | quote }}
KS_DRIFT_RETRAIN_JOB: "/etc/kube-sentiment/retrain/job.json"
{{- end }}
{{- with .Values.drift.pushgatewayUrl }}
KS_DRIFT_PUSHGATEWAY_URL: {{ . | quote }}
{{- end }}
{{- if eq .Values.shipper.sink.type "s3" }}
{{- with .Values.shipper.sink.s3.endpointUrl }}
KS_DRIFT_S3_ENDPOINT_URL: {{ . | quote }}
{{- end }}
{{- with .Values.shipper.sink.s3.region }}
KS_DRIFT_S3_REGION: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* `kube-sentiment train` (model/settings.py, KS_TRAIN_*): ConfigMap data. */}}
{{- define "kube-sentiment.env.train.config" -}}
MLFLOW_TRACKING_URI: {{ .Values.mlflow.trackingUri | quote }}
KS_TRAIN_TRACKING_URI: {{ .Values.mlflow.trackingUri | quote }}
KS_TRAIN_REGISTERED_MODEL: {{ .Values.mlflow.registeredModel | quote }}
{{- with .Values.train.dataPath }}
KS_TRAIN_DATA_PATH: {{ . | quote }}
{{- end }}
KS_TRAIN_ACTOR: {{ .Values.train.actor | quote }}
KS_TRAIN_OUTPUT_DIR: "/tmp/train"
KS_TRAIN_JSON_LOGS: "true"
{{- with .Values.train.productionData }}
{{- if .enabled }}
KS_TRAIN_PRODUCTION_DATA: "/tmp/production/production.parquet"
KS_TRAIN_RECENT_SHARE: {{ .recentShare | quote }}
KS_TRAIN_RECENT_MIN_ROWS: {{ .recentMinRows | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* `kube-sentiment feedback snapshot` (control/feedback/settings.py, KS_FEEDBACK_*), the training pod's init
container: ConfigMap data (in the training ConfigMap). */}}
{{- define "kube-sentiment.env.snapshot.config" -}}
KS_FEEDBACK_SINK: {{ include "kube-sentiment.sinkLocation" . | quote }}
KS_FEEDBACK_ENVIRONMENT: {{ .Values.environment | quote }}
KS_FEEDBACK_WINDOW: {{ .Values.train.productionData.window | quote }}
KS_FEEDBACK_LATENESS: {{ .Values.train.productionData.lateness | quote }}
KS_FEEDBACK_OUT: "/tmp/production/production.parquet"
KS_FEEDBACK_JSON_LOGS: "true"
{{- if eq .Values.shipper.sink.type "s3" }}
{{- with .Values.shipper.sink.s3.endpointUrl }}
KS_FEEDBACK_S3_ENDPOINT_URL: {{ . | quote }}
{{- end }}
{{- with .Values.shipper.sink.s3.region }}
KS_FEEDBACK_S3_REGION: {{ . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/* `kube-sentiment console` (control/console/settings.py, KS_CONSOLE_*): ConfigMap data. Lists are
comma-separated. */}}
{{- define "kube-sentiment.env.console.config" -}}
{{- $c := .Values.console }}
MLFLOW_TRACKING_URI: {{ .Values.mlflow.trackingUri | quote }}
KS_CONSOLE_REGISTERED_MODEL: {{ .Values.mlflow.registeredModel | quote }}
KS_CONSOLE_SOURCE: "kubernetes"
KS_CONSOLE_NAMESPACES: {{ join "," (include "kube-sentiment.consoleNamespaces" . | fromJsonArray) | quote }}
KS_CONSOLE_HOST: "0.0.0.0"
KS_CONSOLE_PORT: {{ $c.port | quote }}
KS_CONSOLE_SERVING_PORT: {{ .Values.serving.ports.http | quote }}
KS_CONSOLE_MODEL_NAME: {{ .Values.serving.modelName | quote }}
KS_CONSOLE_SCRAPE_INTERVAL_S: {{ $c.scrapeIntervalSeconds | quote }}
KS_CONSOLE_READ_REQUIRES_TOKEN: {{ $c.auth.readRequiresToken | quote }}
KS_CONSOLE_SECURE_COOKIES: {{ $c.auth.secureCookies | quote }}
KS_CONSOLE_ACTION_LOG_DIR: "/tmp/actions"
KS_CONSOLE_JSON_LOGS: "true"
{{- with $c.mlflowUiUrl }}
KS_CONSOLE_MLFLOW_UI_URL: {{ . | quote }}
{{- end }}
{{- with $c.prometheusUrl }}
KS_CONSOLE_PROMETHEUS_URL: {{ . | quote }}
{{- end }}
{{- if $c.auth.existingSecret }}
KS_CONSOLE_TOKEN_FILE: "/var/run/secrets/kube-sentiment-console/token"
{{- end }}
{{- if eq .Values.shipper.sink.type "s3" }}
KS_CONSOLE_EVENTS_SOURCE: {{ include "kube-sentiment.sinkLocation" . | quote }}
{{- with .Values.shipper.sink.s3.endpointUrl }}
KS_CONSOLE_S3_ENDPOINT_URL: {{ . | quote }}
{{- end }}
{{- with .Values.shipper.sink.s3.region }}
KS_CONSOLE_S3_REGION: {{ . | quote }}
{{- end }}
{{- else if $c.readSink }}
KS_CONSOLE_EVENTS_SOURCE: {{ include "kube-sentiment.sinkLocation" . | quote }}
KS_CONSOLE_DRIFT_DIRS: {{ include "kube-sentiment.driftOutput" . | quote }}
{{- end }}
{{- end }}
