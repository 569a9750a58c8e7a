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
