{{/*
In-cluster HTTP and gRPC endpoints (host:port) of a track. Call with (dict "ctx" $ "track" "stable").
deployment mode: the per-track Services of this chart.
kserve mode (Standard): the predictor Services that KServe creates (`<isvc>-predictor`, port 80 -> 8080,
`<isvc>-predictor-canary` for the canary, and `<isvc>-shadow-predictor` of the shadow's own InferenceService).
*/}}
{{- define "kube-sentiment.httpEndpoint" -}}
{{- $ns := .ctx.Release.Namespace }}
{{- $name := include "kube-sentiment.fullname" .ctx }}
{{- if eq .ctx.Values.serving.mode "kserve" }}
{{- if eq .track "canary" }}
{{- printf "%s-predictor-canary.%s.svc.cluster.local:80" $name $ns }}
{{- else if eq .track "shadow" }}
{{- printf "%s-shadow-predictor.%s.svc.cluster.local:80" $name $ns }}
{{- else }}
{{- printf "%s-predictor.%s.svc.cluster.local:80" $name $ns }}
{{- end }}
{{- else }}
{{- printf "%s-%s.%s.svc.cluster.local:%d" $name .track $ns (.ctx.Values.serving.ports.http | int) }}
{{- end }}
{{- end }}

{{- define "kube-sentiment.grpcEndpoint" -}}
{{- $ns := .ctx.Release.Namespace }}
{{- $name := include "kube-sentiment.fullname" .ctx }}
{{- if eq .ctx.Values.serving.mode "kserve" }}
{{- if eq .track "canary" }}
{{- printf "%s-predictor-canary.%s.svc.cluster.local:%d" $name $ns (.ctx.Values.serving.ports.grpc | int) }}
{{- else if eq .track "shadow" }}
{{- printf "%s-shadow-predictor.%s.svc.cluster.local:%d" $name $ns (.ctx.Values.serving.ports.grpc | int) }}
{{- else }}
{{- printf "%s-predictor.%s.svc.cluster.local:%d" $name $ns (.ctx.Values.serving.ports.grpc | int) }}
{{- end }}
{{- else }}
{{- printf "%s-%s.%s.svc.cluster.local:%d" $name .track $ns (.ctx.Values.serving.ports.grpc | int) }}
{{- end }}
{{- end }}
