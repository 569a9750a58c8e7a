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
PodSpec fields of one serving track, shared by the Deployment (deployment mode) and the InferenceService
predictor (kserve mode, whose predictor inlines PodSpec fields). Call with (dict "ctx" $ "track" "stable").
*/}}
{{- define "kube-sentiment.serving.podSpec" -}}
{{- $ctx := .ctx }}
{{- $v := $ctx.Values }}
serviceAccountName: {{ include "kube-sentiment.serviceAccountName" (dict "ctx" $ctx "component" "serving") }}
{{ include "kube-sentiment.podCommon" $ctx }}
terminationGracePeriodSeconds: {{ $v.serving.terminationGracePeriodSeconds }}
{{- if and $v.shipper.enabled $v.shipper.nativeSidecar }}
initContainers:
  {{- include "kube-sentiment.shipper.container" . | nindent 2 }}
{{- end }}
containers:
  {{- /* KServe requires the model server container of a custom predictor to be named kserve-container. */}}
  - name: {{ if eq $v.serving.mode "kserve" }}kserve-container{{ else }}serve{{ end }}
    image: {{ include "kube-sentiment.image" $ctx }}
    imagePullPolicy: {{ $v.image.pullPolicy }}
    args:
      - serve
      - {{ printf "--http_port=%d" ($v.serving.ports.http | int) | quote }}
      - {{ printf "--grpc_port=%d" ($v.serving.ports.grpc | int) | quote }}
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
    envFrom:
      - configMapRef:
          name: {{ include "kube-sentiment.fullname" $ctx }}-serving
    env:
      {{- include "kube-sentiment.env.serving.track" . | nindent 6 }}
      {{- with $v.serving.extraEnv }}
      {{- toYaml . | nindent 6 }}
      {{- end }}
    volumeMounts:
      - name: tmp
        mountPath: /tmp
      {{- if $v.shipper.enabled }}
      - name: spool
        mountPath: {{ $v.shipper.spool.mountPath }}
      {{- end }}
    startupProbe:
      {{- toYaml $v.serving.probes.startup | nindent 6 }}
    readinessProbe:
      {{- toYaml $v.serving.probes.readiness | nindent 6 }}
    livenessProbe:
      {{- toYaml $v.serving.probes.liveness | nindent 6 }}
    {{- if $v.serving.preStopSleepSeconds }}
    lifecycle:
      preStop:
        sleep:
          seconds: {{ $v.serving.preStopSleepSeconds }}
    {{- end }}
    resources:
      {{- toYaml $v.serving.resources | nindent 6 }}
    securityContext:
      {{- toYaml $v.containerSecurityContext | nindent 6 }}
  {{- if and $v.shipper.enabled (not $v.shipper.nativeSidecar) }}
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
