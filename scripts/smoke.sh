#!/usr/bin/env bash
# Smoke tests against a running kube-sentiment, from inside the cluster: short-lived client pods (the pinned
# CURL_IMAGE for HTTP, the kube-sentiment image itself for gRPC, whose KServe stubs it ships) in the target
# namespace, so the calls take the same network path (and NetworkPolicies) as real clients.
#
#   scripts/smoke.sh mlflow                        helm test of the MLflow release
#   scripts/smoke.sh <env> [calls]                 helm test, then V1 and V2 REST and V2 gRPC on every track
#   scripts/smoke.sh <env> split <weight> [n]      n requests (default 300) through the Gateway: both versions
#                                                  answer and the canary's share is within KS_SPLIT_TOLERANCE
#                                                  (default 10) percentage points of <weight>
#   scripts/smoke.sh <env> only <version> [n]      through the Gateway, n answers (default 50) all from <version>
#   scripts/smoke.sh <env> registry [decision]     MLflow: the 'candidate' version is registered with the gate's
#                                                  decision recorded (and equal to [decision] when given)
#   scripts/smoke.sh <env> drift                   run the drift CronJob now as a Job and check its report
#
#   <env> is staging or production (release "kube-sentiment"). KS_IMAGE: the kube-sentiment image (default
#   kube-sentiment:<appVersion>); KS_MLFLOW_URL (default http://mlflow.mlflow.svc.cluster.local:5000).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=/dev/null  # KEY=value lines only
source "${repo_root}/k8s/versions.env"
app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "${repo_root}/helm/kube-sentiment/Chart.yaml")"
image="${KS_IMAGE:-kube-sentiment:${app_version}}"
mlflow_url="${KS_MLFLOW_URL:-http://mlflow.mlflow.svc.cluster.local:5000}"
readonly release=kube-sentiment model=sentiment text="I love this product, it works great"

usage() {
  sed -n '2,20p' "${BASH_SOURCE[0]}" >&2
  exit 2
}
log() { printf '[smoke] %s\n' "$*" >&2; }
die() {
  printf '[smoke] FAILED: %s\n' "$*" >&2
  exit 1
}

[[ $# -ge 1 ]] || usage
if [[ "$1" == mlflow ]]; then
  helm test mlflow --namespace mlflow --logs --timeout 5m
  exit 0
fi
ns="$1"
action="${2:-calls}"
shift
[[ $# -eq 0 ]] || shift
case "${ns}" in staging | production) ;; *) usage ;; esac

# client <image> <command...>: run a one-shot pod in the namespace (restricted Pod Security), print its output,
# return its exit code. KS_CLIENT_VOLUME="<claim>:<mount path>" mounts a PersistentVolumeClaim read-only.
client() {
  local img="$1" name volumes="" mounts=""
  shift
  name="ks-smoke-${RANDOM}${RANDOM}"
  if [[ -n "${KS_CLIENT_VOLUME:-}" ]]; then
    volumes=",\"volumes\":[{\"name\":\"data\",\"persistentVolumeClaim\":{\"claimName\":\"${KS_CLIENT_VOLUME%%:*}\",\"readOnly\":true}}]"
    mounts=",\"volumeMounts\":[{\"name\":\"data\",\"mountPath\":\"${KS_CLIENT_VOLUME#*:}\",\"readOnly\":true}]"
  fi
  kubectl -n "${ns}" run "${name}" --image="${img}" --restart=Never --rm --attach --quiet --pod-running-timeout=5m \
    --labels=app.kubernetes.io/name=kube-sentiment-smoke --override-type=strategic --overrides="$(
      cat <<JSON
{"spec": {"automountServiceAccountToken": false,
  "securityContext": {"runAsNonRoot": true, "runAsUser": 10001, "runAsGroup": 10001,
                      "seccompProfile": {"type": "RuntimeDefault"}}${volumes},
  "containers": [{"name": "${name}",
    "securityContext": {"allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}},
    "resources": {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "256Mi"}}${mounts}}]}}
JSON
    )" --command -- "$@"
}

# track_targets: "<track> <http host:port> <grpc host:port>" per running track, from the Services themselves.
track_targets() {
  local track svc http grpc
  for track in stable canary; do
    if [[ "$(value serving.mode)" == kserve ]]; then
      svc="${release}-predictor"
      [[ "${track}" == stable ]] || svc="${release}-predictor-canary"
    else
      svc="${release}-${track}"
    fi
    kubectl -n "${ns}" get service "${svc}" >/dev/null 2>&1 || continue
    http="$(kubectl -n "${ns}" get service "${svc}" \
      -o jsonpath='{.spec.ports[?(@.name=="http")].port}{" "}{.spec.ports[0].port}' | awk '{ print $1 }')"
    grpc="$(kubectl -n "${ns}" get service "${svc}" -o jsonpath='{.spec.ports[?(@.name=="grpc")].port}')"
    if [[ -n "${grpc}" ]]; then
      grpc="${svc}.${ns}.svc.cluster.local:${grpc}"
    else
      # No gRPC port on the Service (KServe names its ports itself): a ready pod behind it, on the server's port.
      grpc="$(kubectl -n "${ns}" get endpointslices -l "kubernetes.io/service-name=${svc}" \
        -o jsonpath='{.items[0].endpoints[?(@.conditions.ready==true)].addresses[0]}' 2>/dev/null | awk '{ print $1 }')"
      grpc="${grpc}:$(value serving.ports.grpc)"
    fi
    printf '%s %s %s\n' "${track}" "${svc}.${ns}.svc.cluster.local:${http}" "${grpc}"
  done
}

# The gRPC call (V2 ModelInfer with a BYTES input) in the kube-sentiment image.
read -r -d '' grpc_call <<'PY' || true
import sys

import grpc
from kserve.protocol.grpc import grpc_predict_v2_pb2 as pb
from kserve.protocol.grpc import grpc_predict_v2_pb2_grpc as rpc

target, model, text = sys.argv[1:4]
with grpc.insecure_channel(target) as channel:
    grpc.channel_ready_future(channel).result(timeout=60)
    stub = rpc.GRPCInferenceServiceStub(channel)
    if not stub.ModelReady(pb.ModelReadyRequest(name=model), timeout=10).ready:
        sys.exit(f"gRPC {target}: model {model} is not ready")
    tensor = pb.ModelInferRequest.InferInputTensor(
        name="text", datatype="BYTES", shape=[1], contents=pb.InferTensorContents(bytes_contents=[text.encode()])
    )
    answer = stub.ModelInfer(pb.ModelInferRequest(model_name=model, inputs=[tensor]), timeout=30)
    if not answer.outputs:
        sys.exit(f"gRPC {target}: no outputs in {answer}")
    print(f"gRPC {target}: model {answer.model_name} version {answer.model_version} outputs",
          [o.name for o in answer.outputs])
PY

calls() {
  local track http grpc out body
  helm test "${release}" --namespace "${ns}" --logs --timeout 5m
  while read -r track http grpc; do
    log "${ns}/${track}: HTTP ${http}, gRPC ${grpc}"
    out="$(client "${CURL_IMAGE}" curl -fsS --max-time 30 --retry 5 --retry-connrefused -H 'Content-Type: application/json' \
      -d "{\"instances\": [\"${text}\"]}" "http://${http}/v1/models/${model}:predict")" ||
      die "${track}: V1 REST call failed"
    printf 'V1 %s\n' "${out}"
    [[ "${out}" == *'"predictions"'* ]] || die "${track}: V1 answer has no predictions"
    body="{\"inputs\": [{\"name\": \"text\", \"shape\": [1], \"datatype\": \"BYTES\", \"data\": [\"${text}\"]}]}"
    out="$(client "${CURL_IMAGE}" curl -fsS --max-time 30 --retry 5 --retry-connrefused -H 'Content-Type: application/json' \
      -d "${body}" "http://${http}/v2/models/${model}/infer")" || die "${track}: V2 REST call failed"
    printf 'V2 %s\n' "${out}"
    [[ "${out}" == *'"outputs"'* ]] || die "${track}: V2 answer has no outputs"
    client "${image}" python -c "${grpc_call}" "${grpc}" "${model}" "${text}" || die "${track}: V2 gRPC call failed"
  done < <(track_targets)
}

# gateway: "<url> <host>" of the HTTP entry point that splits traffic between the tracks.
gateway() {
  local gw_ns gw_name host svc port route
  if kubectl -n "${ns}" get inferenceservices.serving.kserve.io "${release}" >/dev/null 2>&1; then
    # KServe Standard mode: KServe's HTTPRoute on its ingress Gateway (k8s/kserve/values.yaml), host from the URL.
    kubectl -n "${ns}" wait --for=condition=Ready "inferenceservices.serving.kserve.io/${release}" --timeout=10m >/dev/null
    host="$(kubectl -n "${ns}" get inferenceservices.serving.kserve.io "${release}" -o jsonpath='{.status.url}')"
    host="${host#*://}"
    host="${host%%/*}"
    gw_ns=kserve gw_name=kserve-ingress-gateway port=80
  else
    route="$(kubectl -n "${ns}" get httproutes.gateway.networking.k8s.io \
      -l "app.kubernetes.io/instance=${release}" -o name | head -n 1)"
    [[ -n "${route}" ]] || die "no HTTPRoute of ${release} in ${ns}"
    # helm --wait has returned, so the Gateway controller has had time to accept the route; the request loop
    # below waits for the data plane.
    [[ "$(kubectl -n "${ns}" get "${route}" -o jsonpath='{.status.parents[*].conditions[?(@.type=="Accepted")].status}')" == *True* ]] ||
      log "warning: ${route} is not Accepted yet: $(kubectl -n "${ns}" get "${route}" -o jsonpath='{.status}')"
    host="$(kubectl -n "${ns}" get "${route}" -o jsonpath='{.spec.hostnames[0]}')"
    gw_ns="$(kubectl -n "${ns}" get "${route}" -o jsonpath='{.spec.parentRefs[0].namespace}')"
    gw_name="$(kubectl -n "${ns}" get "${route}" -o jsonpath='{.spec.parentRefs[0].name}')"
    port="$(kubectl -n "${gw_ns:-${ns}}" get gateways.gateway.networking.k8s.io "${gw_name}" \
      -o jsonpath='{.spec.listeners[?(@.protocol=="HTTP")].port}' | awk '{ print $1 }')"
  fi
  svc="$(kubectl -n envoy-gateway-system get services -o name \
    -l "gateway.envoyproxy.io/owning-gateway-name=${gw_name},gateway.envoyproxy.io/owning-gateway-namespace=${gw_ns:-${ns}}" |
    head -n 1)"
  [[ -n "${svc}" ]] || die "no Envoy Service for Gateway ${gw_ns}/${gw_name}"
  printf 'http://%s.envoy-gateway-system.svc.cluster.local:%s %s\n' "${svc#service/}" "${port:-80}" \
    "${host:-kube-sentiment.local}"
}

# versions <n> <first>: n model_version values of V1 answers through the Gateway, one a line, counted after the
# first answer from version <first> (at most 60 tries): the route's new weights are live from there on.
read -r -d '' version_loop <<'SH' || true
url="$1" host="$2" n="$3" first="$4" body="$5"
ask() {
  curl -fsS --max-time 10 --retry 5 --retry-all-errors --retry-delay 1 -H "Host: ${host}" -H 'Content-Type: application/json' \
    -d "${body}" "${url}/v1/models/sentiment:predict" | sed -n 's/.*"model_version": *"\{0,1\}\([^",}]*\).*/\1/p'
}
i=0
until [ "$(ask)" = "${first}" ]; do
  i=$((i + 1))
  [ "${i}" -lt 60 ] || { echo "no answer from version ${first} in 60 requests" >&2; exit 1; }
done
i=0
while [ "${i}" -lt "${n}" ]; do ask; i=$((i + 1)); done
SH

versions() {
  local url host
  read -r url host < <(gateway)
  log "${ns}: ${1} requests through ${url} (Host: ${host})"
  client "${CURL_IMAGE}" sh -ec "${version_loop}" versions "${url}" "${host}" "$1" "$2" \
    "{\"instances\": [\"${text}\"]}"
}

split() {
  local weight="$1" n="${2:-300}" tolerance="${KS_SPLIT_TOLERANCE:-10}" stable canary answers got_canary got_total
  local share
  stable="$(value serving.stable.modelVersion)"
  canary="$(value serving.canary.modelVersion)"
  [[ "$(value serving.canary.enabled)" == true ]] || die "no canary runs in ${ns}"
  answers="$(versions "${n}" "${canary}")" || die "requests through the Gateway failed"
  printf '%s\n' "${answers}" | sort | uniq -c >&2
  got_total="$(printf '%s\n' "${answers}" | grep -cxE "${stable}|${canary}" || true)"
  got_canary="$(printf '%s\n' "${answers}" | grep -cx "${canary}" || true)"
  [[ "${got_total}" -eq "${n}" ]] || die "${got_total} of ${n} answers came from version ${stable} or ${canary}"
  [[ "${got_canary}" -gt 0 && "${got_canary}" -lt "${n}" ]] || die "not both versions answered"
  share=$((100 * got_canary / n))
  log "canary version ${canary}: ${share} % of ${n} answers (weight ${weight} %, tolerance ${tolerance})"
  ((share >= weight - tolerance && share <= weight + tolerance)) || die "canary share ${share} % is not ~${weight} %"
}

only() {
  local version="$1" n="${2:-50}" answers wrong
  answers="$(versions "${n}" "${version}")" || die "requests through the Gateway failed"
  printf '%s\n' "${answers}" | sort | uniq -c >&2
  wrong="$(printf '%s\n' "${answers}" | grep -cvx "${version}" || true)"
  [[ "${wrong}" -eq 0 ]] || die "${wrong} of ${n} answers did not come from version ${version}"
  log "all ${n} answers came from version ${version}"
}

registry() {
  local expect="${1:-}" out
  out="$(client "${CURL_IMAGE}" curl -fsS --max-time 30 --retry 5 --retry-connrefused \
    "${mlflow_url}/api/2.0/mlflow/registered-models/alias?name=${model}&alias=candidate")" ||
    die "MLflow has no 'candidate' alias on ${model}"
  python3 -c 'import json, sys
mv = json.loads(sys.argv[1])["model_version"]
tags = {t["key"]: t["value"] for t in mv.get("tags", [])}
decision, reason = tags.get("gate.decision"), tags.get("gate.reason")
name, version, run = mv["name"], mv["version"], mv.get("run_id")
print(f"registered model {name} version {version} (run {run}): gate {decision}: {reason}")
if not decision:
    sys.exit("the gate decision is not recorded on the version")
if sys.argv[2] and decision != sys.argv[2]:
    sys.exit(f"gate decision {decision}, expected {sys.argv[2]}")' "${out}" "${expect}" || die "registry check"
}

drift() {
  local job code state out report
  job="drift-smoke-$(date +%s)"
  kubectl -n "${ns}" create job --from="cronjob/${release}-drift" "${job}" >&2
  kubectl -n "${ns}" wait --for=condition=Complete "job/${job}" --timeout=15m >/dev/null 2>&1 &
  local ok=$!
  kubectl -n "${ns}" wait --for=condition=Failed "job/${job}" --timeout=15m >/dev/null 2>&1 &
  local failed=$!
  wait -n "${ok}" "${failed}" || true
  kill "${ok}" "${failed}" 2>/dev/null || true
  wait "${ok}" "${failed}" 2>/dev/null || true
  state="$(kubectl -n "${ns}" get "job/${job}" \
    -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}' 2>/dev/null || true)"
  code="$(kubectl -n "${ns}" get pods -l "job-name=${job}" \
    -o jsonpath='{.items[-1:].status.containerStatuses[?(@.name=="drift")].state.terminated.exitCode}' 2>/dev/null ||
    true)"
  out="$(kubectl -n "${ns}" logs "job/${job}" -c drift --tail=200 || true)"
  printf '%s\n' "${out}" | tail -n 20 >&2
  log "drift job ${job}: ${state:-not finished}, exit ${code:-none}"
  # 0 no drift, 3 drift, 4 insufficient data: each is a verdict with a report. Anything else is an error.
  [[ "${code}" =~ ^(0|3|4)$ ]] || die "drift job ended with exit ${code:-none} (${state:-not finished})"
  # the job prints a JSON summary on stdout: {"verdict": ..., "report_html": "<path>", ...}
  report="$(printf '%s\n' "${out}" | sed -n 's/^ *"report_html": "\(.*\)",\{0,1\}$/\1/p' | tail -n 1)"
  [[ -n "${report}" ]] || die "the drift job printed no report path"
  if [[ "$(value shipper.sink.type)" == pvc ]]; then
    local claim show
    claim="$(value shipper.sink.pvc.existingClaim)"
    # shellcheck disable=SC2016  # $1 is expanded by the pod's shell
    show='grep -q "\"groups\"" "$1" && head -c 600 "$1" && echo'
    KS_CLIENT_VOLUME="${claim:-${release}-sink}:$(value shipper.sink.pvc.mountPath)" \
      client "${CURL_IMAGE}" sh -ec "${show}" report "${report%/*}/report.json" ||
      die "no drift report at ${report%/*}/report.json"
  else
    log "report ${report} is in the MLflow artefact store (drift.logToMlflow)"
  fi
}

case "${action}" in
  calls) calls ;;
  split)
    [[ $# -ge 1 && "$1" =~ ^[0-9]+$ ]] || usage
    split "$@"
    ;;
  only)
    [[ $# -ge 1 && "$1" =~ ^[0-9]+$ ]] || usage
    only "$@"
    ;;
  registry) registry "$@" ;;
  drift) drift ;;
  *) usage ;;
esac
log "${ns} ${action}: ok"
