{{/*
Pod-level annotations of a serving track: config checksums (a changed ConfigMap rolls the pods) and the
Prometheus scrape annotations. Call with (dict "ctx" $ "track" "stable").
*/}}
{{- define "kube-sentiment.serving.podAnnotations" -}}
checksum/serving-config: {{ include "kube-sentiment.checksum" (dict "ctx" .ctx "file" "/serving/configmap.yaml") }}
{{- if .ctx.Values.shipper.enabled }}
checksum/shipper-config: {{ include "kube-sentiment.checksum" (dict "ctx" .ctx "file" "/shipper/configmap.yaml") }}
{{- end }}
{{- if .ctx.Values.metrics.podAnnotations }}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .ctx.Values.serving.ports.http | quote }}
prometheus.io/path: /metrics
{{- end }}
{{- with .ctx.Values.serving.podAnnotations }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The model server container's track-independent part: name, image, arguments, ports. deployment mode puts it in
each track's container named `serve`; kserve mode in the ServingRuntime's `kserve-container`.
*/}}
{{- define "kube-sentiment.serving.serverRuntime" -}}
{{- $v := .Values -}}
- name: {{ if eq $v.serving.mode "kserve" }}kserve-container{{ else }}serve{{ end }}
  image: {{ include "kube-sentiment.image" . }}
  imagePullPolicy: {{ $v.image.pullPolicy }}
  args:
    - serve
    - {{ printf "--http_port=%d" ($v.serving.ports.http | int) | quote }}
    - {{ printf "--grpc_port=%d" ($v.serving.ports.grpc | int) | quote }}
    {{- if gt ($v.serving.workers | int) 1 }}
    - {{ printf "--workers=%d" ($v.serving.workers | int) | quote }}
    {{- end }}
    {{- range $v.serving.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  ports:
    - name: http
      containerPort: {{ $v.serving.ports.http }}
      protocol: TCP
    - name: grpc
      containerPort: {{ $v.serving.ports.grpc }}
      protocol: TCP
{{- end }}

{{/*
The model server container's per-track part: configuration, the track's model (env), mounts, probes, resources.
deployment mode: the rest of the `serve` container; kserve mode: the predictor's `model` (container fields that
KServe merges over the ServingRuntime's `kserve-container`). Call with (dict "ctx" $ "track" "stable").
*/}}
{{- define "kube-sentiment.serving.serverTrack" -}}
{{- $ctx := .ctx }}
{{- $v := $ctx.Values -}}
envFrom:
  - configMapRef:
      name: {{ include "kube-sentiment.fullname" $ctx }}-serving
env:
  {{- include "kube-sentiment.env.serving.track" . | nindent 2 }}
  {{- with $v.serving.extraEnv }}
  {{- toYaml . | nindent 2 }}
  {{- end }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  {{- if $v.shipper.enabled }}
  - name: spool
    mountPath: {{ $v.shipper.spool.mountPath }}
  {{- end }}
startupProbe:
  {{- toYaml $v.serving.probes.startup | nindent 2 }}
readinessProbe:
  {{- toYaml $v.serving.probes.readiness | nindent 2 }}
livenessProbe:
  {{- toYaml $v.serving.probes.liveness | nindent 2 }}
{{- if $v.serving.preStopSleepSeconds }}
lifecycle:
  preStop:
    sleep:
      seconds: {{ $v.serving.preStopSleepSeconds }}
{{- end }}
resources:
  {{- toYaml $v.serving.resources | nindent 2 }}
securityContext:
  {{- toYaml $v.containerSecurityContext | nindent 2 }}
{{- end }}

{{/*
PodSpec fields of one serving track, shared by the Deployment (deployment mode) and the InferenceService
predictor (kserve mode: the PodSpec fields inlined in the predictor; the model server container itself comes from
the ServingRuntime and the predictor's `model`, see _predictor.tpl). Call with (dict "ctx" $ "track" "stable").
*/}}
{{- define "kube-sentiment.serving.podSpec" -}}
{{- $ctx := .ctx }}
{{- $v := $ctx.Values }}
{{- $kserve := eq $v.serving.mode "kserve" }}
serviceAccountName: {{ include "kube-sentiment.serviceAccountName" (dict "ctx" $ctx "component" "serving") }}
{{ include "kube-sentiment.podCommon" $ctx }}
terminationGracePeriodSeconds: {{ $v.serving.terminationGracePeriodSeconds }}
{{- if and $v.shipper.enabled $v.shipper.nativeSidecar }}
initContainers:
  {{- include "kube-sentiment.shipper.container" . | nindent 2 }}
{{- end }}
{{- if not $kserve }}
containers:
  {{- include "kube-sentiment.serving.serverRuntime" $ctx | nindent 2 }}
    {{- include "kube-sentiment.serving.serverTrack" . | nindent 4 }}
  {{- if and $v.shipper.enabled (not $v.shipper.nativeSidecar) }}
  {{- include "kube-sentiment.shipper.container" . | nindent 2 }}
  {{- end }}
{{- else if and $v.shipper.enabled (not $v.shipper.nativeSidecar) }}
{{- /* Containers beside `model` are kept by KServe next to kserve-container. */}}
containers:
  {{- include "kube-sentiment.shipper.container" . | nindent 2 }}
{{- end }}
volumes:
  {{- include "kube-sentiment.tmpVolume" $ctx | nindent 2 }}
  {{- if $v.shipper.enabled }}
  - name: spool
    emptyDir:
      sizeLimit: {{ $v.shipper.spool.sizeLimit }}
  {{- if eq $v.shipper.sink.type "pvc" }}
  - name: sink
    persistentVolumeClaim:
      claimName: {{ include "kube-sentiment.sinkClaimName" $ctx }}
  {{- end }}
  {{- end }}
{{- with $v.serving.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.serving.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.serving.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $v.serving.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range . }}
  - {{- toYaml (merge (dict) . (dict "labelSelector" (dict "matchLabels" (include "kube-sentiment.trackSelectorLabels" $ | fromYaml)))) | nindent 4 }}
  {{- end }}
{{- end }}
{{- end }}
