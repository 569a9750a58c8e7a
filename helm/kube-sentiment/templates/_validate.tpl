{{/*
Checks across values that the JSON schema cannot express. Rendered (for its failures only) by serving/configmap.yaml.
*/}}
{{- define "kube-sentiment.validate" -}}
{{- $s := .Values.serving }}
{{- if and $s.canary.enabled (eq (toString $s.canary.modelVersion) (toString $s.stable.modelVersion)) }}
{{- fail (printf "serving.canary.modelVersion (%v) must differ from serving.stable.modelVersion: a canary of the stable model tests nothing" $s.canary.modelVersion) }}
{{- end }}
{{- if and $s.shadow.enabled (eq (toString $s.shadow.modelVersion) (toString $s.stable.modelVersion)) }}
{{- fail (printf "serving.shadow.modelVersion (%v) must differ from serving.stable.modelVersion: a shadow of the stable model tests nothing" $s.shadow.modelVersion) }}
{{- end }}
{{- if and $s.canary.enabled (eq $s.mode "kserve") }}
{{- $stableMin := ternary $s.autoscaling.minReplicas $s.stable.replicas $s.autoscaling.enabled | int }}
{{- if gt ($s.canary.replicas | int) $stableMin }}
{{- fail (printf "serving.canary.replicas (%v) must not exceed the stable track's minimum (%v) in kserve mode: KServe refuses a canary with more replicas than the stable predictor's minReplicas" $s.canary.replicas $stableMin) }}
{{- end }}
{{- end }}
{{- if and $s.autoscaling.enabled (gt ($s.autoscaling.minReplicas | int) ($s.autoscaling.maxReplicas | int)) }}
{{- fail "serving.autoscaling.minReplicas must not exceed serving.autoscaling.maxReplicas" }}
{{- end }}
{{- $spool := .Values.shipper.spool }}
{{- $limit := toString $spool.sizeLimit }}
{{- if regexMatch "^[0-9]+(Mi|Gi)$" $limit }}
{{- $mib := int (trimSuffix "Mi" (trimSuffix "Gi" $limit)) }}
{{- if hasSuffix "Gi" $limit }}{{ $mib = mul $mib 1024 }}{{ end }}
{{- $needed := add $spool.shipperMaxMiB $spool.journalMaxMiB 64 }}
{{- if and .Values.shipper.enabled (lt $mib $needed) }}
{{- fail (printf "shipper.spool.sizeLimit (%s) must hold shipper.spool.shipperMaxMiB (%v) + journalMaxMiB (%v) + 64 MiB = %v MiB: the kubelet evicts a pod whose emptyDir outgrows its limit" $limit $spool.shipperMaxMiB $spool.journalMaxMiB $needed) }}
{{- end }}
{{- end }}
{{- if and .Values.retrain.trigger.enabled (not .Values.drift.enabled) }}
{{- fail "retrain.trigger.enabled needs drift.enabled: the drift job starts the retraining" }}
{{- end }}
{{- if and .Values.retrain.trigger.enabled (not (and .Values.serviceAccounts.create .Values.rbac.create)) }}
{{- fail "retrain.trigger.enabled needs serviceAccounts.create and rbac.create: the drift ServiceAccount gets the Role that lets it create the training Job" }}
{{- end }}
{{- if and .Values.train.productionData.enabled (not .Values.serving.logText) }}
{{- fail "train.productionData.enabled needs serving.logText: training needs the logged texts of the labelled predictions" }}
{{- end }}
{{- if and .Values.serving.kserve.logger.enabled (not .Values.shipper.enabled) }}
{{- fail "serving.kserve.logger.enabled needs shipper.enabled: the logger sends to the sidecar" }}
{{- end }}
{{- end }}
