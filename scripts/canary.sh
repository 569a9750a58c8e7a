#!/usr/bin/env bash
# Canary releases of the model server, one `helm upgrade` (or `helm rollback`) each, waited for and rolled back
# automatically when the new revision does not become ready.
#
#   scripts/canary.sh <env> start <version> <weight>   run registry version <version> as the canary at <weight> %
#   scripts/canary.sh <env> weight <weight>            change the canary's share of the traffic
#   scripts/canary.sh <env> promote                    the canary's version becomes stable, the canary goes away
#   scripts/canary.sh <env> rollback [revision]        helm rollback to <revision> (default: the previous one)
#   scripts/canary.sh <env> status                     revision, stable and canary versions, weight
#
#   <env> is staging or production (release "kube-sentiment" in that namespace). Extra helm args may follow
#   start, weight and promote. KS_TIMEOUT: wait timeout (default 10m).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="${repo_root}/helm/kube-sentiment"
timeout="${KS_TIMEOUT:-10m}"
readonly release=kube-sentiment

usage() {
  sed -n '2,13p' "${BASH_SOURCE[0]}" >&2
  exit 2
}
log() { printf '[canary] %s\n' "$*" >&2; }
# is_int <value> <what>: exit 2 unless value is a whole number.
is_int() {
  [[ "$1" =~ ^[0-9]+$ ]] || {
    printf 'canary: %s must be a whole number, not %q\n' "$2" "$1" >&2
    exit 2
  }
}

[[ $# -ge 2 ]] || usage
ns="$1"
action="$2"
shift 2
case "${ns}" in staging | production) ;; *) usage ;; esac

# value <jsonpath>: one value of the release's computed values (helm get values --all).
value() {
  helm -n "${ns}" get values "${release}" --all -o json |
    python3 -c 'import json, sys
v = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    v = v.get(key) if isinstance(v, dict) else None
print("" if v is None else str(v).lower() if isinstance(v, bool) else v)' "$1"
}

# wait_kserve <namespace>: in kserve mode Helm's --wait cannot see the predictor Deployments that KServe creates
# from the InferenceService, so wait for them (and the canary's) to exist and roll out, then for the
# InferenceService to be Ready. Nothing to do in deployment mode.
wait_kserve() {
  local ns="$1" name names
  kubectl -n "${ns}" get inferenceservices.serving.kserve.io "${release}" >/dev/null 2>&1 || return 0
  names=("${release}-predictor")
  if [[ -n "$(kubectl -n "${ns}" get inferenceservices.serving.kserve.io "${release}" -o jsonpath='{.spec.canary}')" ]]; then
    names+=("${release}-predictor-canary")
  fi
  for name in "${names[@]}"; do
    kubectl -n "${ns}" wait --for=create "deployment/${name}" --timeout="${timeout}" >/dev/null
    kubectl -n "${ns}" rollout status "deployment/${name}" --timeout="${timeout}" >&2
  done
  kubectl -n "${ns}" wait --for=condition=Ready "inferenceservices.serving.kserve.io/${release}" --timeout="${timeout}" >&2
}

upgrade() {
  helm upgrade "${release}" "${chart}" --namespace "${ns}" --reuse-values --wait --atomic --timeout "${timeout}" "$@"
  wait_kserve "${ns}"
}

case "${action}" in
  start)
    [[ $# -ge 2 ]] || usage
    version="$1" weight="$2"
    shift 2
    is_int "${version}" version
    is_int "${weight}" weight
    log "${ns}: canary version ${version} at ${weight} % (stable $(value serving.stable.modelVersion))"
    upgrade --set serving.canary.enabled=true --set "serving.canary.modelVersion=${version}" \
      --set "serving.canary.weight=${weight}" "$@"
    ;;
  weight)
    [[ $# -ge 1 ]] || usage
    weight="$1"
    shift
    is_int "${weight}" weight
    [[ "$(value serving.canary.enabled)" == true ]] || {
      printf 'canary: no canary runs in %s\n' "${ns}" >&2
      exit 1
    }
    log "${ns}: canary weight ${weight} %"
    upgrade --set "serving.canary.weight=${weight}" "$@"
    ;;
  promote)
    [[ "$(value serving.canary.enabled)" == true ]] || {
      printf 'canary: no canary runs in %s, nothing to promote\n' "${ns}" >&2
      exit 1
    }
    version="$(value serving.canary.modelVersion)"
    log "${ns}: promoting version ${version} to stable"
    upgrade --set "serving.stable.modelVersion=${version}" --set serving.canary.enabled=false \
      --set serving.canary.modelVersion=null "$@"
    ;;
  rollback)
    revision="${1:-}"
    [[ -z "${revision}" ]] || is_int "${revision}" revision
    log "${ns}: helm rollback to revision ${revision:-previous}"
    # shellcheck disable=SC2086  # an empty revision means "the previous one"
    helm rollback "${release}" ${revision} --namespace "${ns}" --wait --timeout "${timeout}"
    wait_kserve "${ns}"
    ;;
  status) ;;
  *) usage ;;
esac

printf 'revision=%s stable=%s canary=%s weight=%s\n' \
  "$(helm -n "${ns}" status "${release}" -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')" \
  "$(value serving.stable.modelVersion)" \
  "$([[ "$(value serving.canary.enabled)" == true ]] && value serving.canary.modelVersion || echo none)" \
  "$(value serving.canary.weight)"
