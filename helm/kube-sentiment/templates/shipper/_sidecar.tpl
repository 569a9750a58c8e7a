{{/*
The monitoring sidecar container (`kube-sentiment ship`). Call with (dict "ctx" $ "track" "stable"). With shipper.nativeSidecar it is rendered into
initContainers with `restartPolicy: Always` (a native sidecar: up before the model server, down after it).
*/}}
{{- define "kube-sentiment.shipper.container" -}}
{{- $track := .track }}
{{- with .ctx }}
- name: shipper
  image: {{ include "kube-sentiment.shipperImage" . }}
  imagePullPolicy: {{ .Values.image.pullPolicy }}
  {{- if .Values.shipper.nativeSidecar }}
  restartPolicy: Always
  {{- end }}
  args:
    - ship
    {{- range .Values.shipper.extraArgs }}
    - {{ . | quote }}
    {{- end }}
  ports:
    - name: ship
      containerPort: {{ .Values.shipper.port }}
      protocol: TCP
  envFrom:
    - configMapRef:
        name: {{ include "kube-sentiment.fullname" . }}-shipper
  env:
    {{- include "kube-sentiment.env.shipper.track" (dict "ctx" . "track" $track) | nindent 4 }}
    {{- with include "kube-sentiment.env.s3Credentials" . }}
    {{- . | nindent 4 }}
    {{- end }}
    {{- with .Values.shipper.extraEnv }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
    - name: spool
      mountPath: {{ .Values.shipper.spool.mountPath }}
    {{- if eq .Values.shipper.sink.type "pvc" }}
    - name: sink
      mountPath: {{ .Values.shipper.sink.pvc.mountPath }}
    {{- end }}
  readinessProbe:
    {{- toYaml .Values.shipper.probes.readiness | nindent 4 }}
  livenessProbe:
    {{- toYaml .Values.shipper.probes.liveness | nindent 4 }}
  resources:
    {{- toYaml .Values.shipper.resources | nindent 4 }}
  securityContext:
    {{- toYaml .Values.containerSecurityContext | nindent 4 }}
{{- end }}
{{- end }}
