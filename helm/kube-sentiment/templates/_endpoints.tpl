{{/*
The name KServe gives the canary's predictor (spec.canary[].predictor.name): its Deployment and Service are
`<isvc>-<name>-predictor`.
*/}}
{{- define "kube-sentiment.kserve.canaryName" -}}canary{{- end }}

{{/*
The Service in front of a track's pods. Call with (dict "ctx" $ "track" "stable").
deployment mode: the per-track Services of this chart.
kserve mode (Standard): the predictor Services that KServe creates (`<isvc>-predictor`, port 80 -> 8080,
`<isvc>-canary-predictor` for the canary, and `<isvc>-shadow-predictor` of the shadow's own InferenceService; the
gRPC port keeps its number).
*/}}
{{- define "kube-sentiment.serving.serviceName" -}}
{{- $name := include "kube-sentiment.fullname" .ctx }}
{{- if ne .ctx.Values.serving.mode "kserve" }}
{{- printf "%s-%s" $name .track }}
{{- else if eq .track "canary" }}
{{- printf "%s-%s-predictor" $name (include "kube-sentiment.kserve.canaryName" .ctx) }}
{{- else if eq .track "shadow" }}
{{- printf "%s-shadow-predictor" $name }}
{{- else }}
{{- printf "%s-predictor" $name }}
{{- end }}
{{- end }}

{{/*
The HTTP port of a track's Service (KServe's predictor Services answer HTTP on 80).
*/}}
{{- define "kube-sentiment.serving.servicePort" -}}
{{- if eq .ctx.Values.serving.mode "kserve" }}80{{ else }}{{ .ctx.Values.serving.ports.http | int }}{{ end }}
{{- end }}

{{/*
In-cluster HTTP and gRPC endpoints (host:port) of a track. Call with (dict "ctx" $ "track" "stable").
*/}}
{{- define "kube-sentiment.httpEndpoint" -}}
{{- printf "%s.%s.svc.cluster.local:%s" (include "kube-sentiment.serving.serviceName" .) .ctx.Release.Namespace (include "kube-sentiment.serving.servicePort" .) }}
{{- end }}

{{- define "kube-sentiment.grpcEndpoint" -}}
{{- printf "%s.%s.svc.cluster.local:%d" (include "kube-sentiment.serving.serviceName" .) .ctx.Release.Namespace (.ctx.Values.serving.ports.grpc | int) }}
{{- end }}
