#!/usr/bin/env bash
# Canary releases of the model server through `helm upgrade` (or `helm rollback`), each waited for and rolled back
# automatically when the new revision does not become ready.
#
#   scripts/canary.sh <env> start <version> <weight>   run registry version <version> as the canary (ready first, at
#                                                      0 %), then give it <weight> % of the traffic
#   scripts/canary.sh <env> weight <weight>            change the canary's share of the traffic
#   scripts/canary.sh <env> promote                    the canary's version becomes stable, the canary goes away
#   scripts/canary.sh <env> rollback [revision]        helm rollback to <revision> (default: the previous one)
#   scripts/canary.sh <env> status                     revision, stable and canary versions, weight
#
#   <env> is staging or production (release "kube-sentiment" in that namespace). Extra helm args may follow
#   start, weight and promote. KS_TIMEOUT: wait timeout (default 10m).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

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
    # Two revisions: the canary's pods start and become ready with no share of the traffic, then it gets its
    # weight. In one step the routes name the canary before it has a ready pod, and its share of the requests is
    # refused ("no available server") until it has.
    upgrade --set serving.canary.enabled=true --set "serving.canary.modelVersion=${version}" \
      --set serving.canary.weight=0 "$@"
    log "${ns}: canary version ${version} ready; weight ${weight} %"
    upgrade --set "serving.canary.weight=${weight}"
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
