{{/*
Pod template of the training Job.
*/}}
{{- define "kube-sentiment.train.podTemplate" -}}
metadata:
  labels:
    {{- include "kube-sentiment.labels" (dict "ctx" . "component" "train") | nindent 4 }}
  annotations:
    checksum/train-config: {{ include "kube-sentiment.checksum" (dict "ctx" . "file" "/train/configmap.yaml") }}
spec:
  restartPolicy: Never
  serviceAccountName: {{ include "kube-sentiment.serviceAccountName" (dict "ctx" . "component" "train") }}
  {{- include "kube-sentiment.podCommon" . | nindent 2 }}
  {{- $production := .Values.train.productionData }}
  {{- if $production.enabled }}
  initContainers:
    # The labelled production data of the last window, from the sink, for the training container (/tmp is shared).
    - name: snapshot
      image: {{ include "kube-sentiment.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - feedback
        - snapshot
      envFrom:
        - configMapRef:
            name: {{ include "kube-sentiment.fullname" . }}-train
      {{- with include "kube-sentiment.env.s3Credentials" . }}
      env:
        {{- . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if eq .Values.shipper.sink.type "pvc" }}
        - name: sink
          mountPath: {{ .Values.shipper.sink.pvc.mountPath }}
          readOnly: true
        {{- end }}
      resources:
        {{- toYaml $production.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.containerSecurityContext | nindent 8 }}
  {{- end }}
  containers:
    - name: train
      image: {{ include "kube-sentiment.image" . }}
      imagePullPolicy: {{ .Values.image.pullPolicy }}
      args:
        - train
      envFrom:
        - configMapRef:
            name: {{ include "kube-sentiment.fullname" . }}-train
      {{- with .Values.train.extraEnv }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: tmp
          mountPath: /tmp
        {{- if .Values.train.dataClaim }}
        - name: data
          mountPath: /data
          readOnly: true
        {{- end }}
      resources:
        {{- toYaml .Values.train.resources | nindent 8 }}
      securityContext:
        {{- toYaml .Values.containerSecurityContext | nindent 8 }}
  volumes:
    {{- include "kube-sentiment.tmpVolume" . | nindent 4 }}
    {{- if and $production.enabled (eq .Values.shipper.sink.type "pvc") }}
    - name: sink
      persistentVolumeClaim:
        claimName: {{ include "kube-sentiment.sinkClaimName" . }}
        readOnly: true
    {{- end }}
    {{- if .Values.train.dataClaim }}
    - name: data
      persistentVolumeClaim:
        claimName: {{ .Values.train.dataClaim }}
        readOnly: true
    {{- end }}
  {{- with .Values.train.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with .Values.train.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/*
Spec of a training Job (this chart's Job, the retraining trigger's and the schedule's). Call with
(dict "ctx" $ "ttl" <seconds or nil>).
*/}}
{{- define "kube-sentiment.train.jobSpec" -}}
backoffLimit: {{ .ctx.Values.train.backoffLimit }}
activeDeadlineSeconds: {{ .ctx.Values.train.activeDeadlineSeconds }}
{{- if not (kindIs "invalid" .ttl) }}
ttlSecondsAfterFinished: {{ .ttl }}
{{- end }}
podFailurePolicy:
  rules:
    # Exit 10: the quality gate refused the candidate (a verdict, not an error); 65, 66, 78: the data, an input
    # (model, registry version) or a setting is wrong, which the same pod cannot fix by running again. Only faults
    # that may pass (1, 69: a service stayed unreachable) are retried, up to backoffLimit.
    - action: FailJob
      onExitCodes:
        containerName: train
        operator: In
        values: [10, 65, 66, 78]
    # A pod evicted or preempted does not count against backoffLimit.
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
template:
  {{- include "kube-sentiment.train.podTemplate" .ctx | nindent 2 }}
{{- end }}
