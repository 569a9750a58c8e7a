#!/usr/bin/env bash
# Canary and shadow releases of the model server, one `helm upgrade --reset-then-reuse-values` (or `helm rollback`)
# each, waited for and rolled back automatically when the new revision does not become ready.
#
#   scripts/canary.sh <env> start <version> <weight>   run registry version <version> as the canary (ready first, at
#                                                      0 %), then give it <weight> % of the traffic (a shadow of the
#                                                      same version ends: it becomes the canary)
#   scripts/canary.sh <env> weight <weight>            change the canary's share of the traffic
#   scripts/canary.sh <env> shadow <version> <percent> run <version> as the shadow: it gets a copy of <percent> %
#                                                      of the requests, its answers are only logged
#   scripts/canary.sh <env> promote                    the canary's (else the shadow's) version becomes stable, the
#                                                      candidate goes away
#   scripts/canary.sh <env> rollback [revision]        helm rollback to <revision> (default: the previous one)
#   scripts/canary.sh <env> auto <version> [flags]     the automatic rollout: kube-sentiment rollout run <env>
#                                                      <version> (shadow, canary steps, analyses, promote or roll
#                                                      back; docs/deploy.md); flags go to rollout run
#   scripts/canary.sh <env> abort                      stop a rollout: helm rollback to the revision before it,
#                                                      remove its lock (kill its driver first)
#   scripts/canary.sh <env> status                     revision, stable, canary, weight, shadow, rollout in progress
#
#   <env> is staging or production (release "kube-sentiment" in that namespace). Extra helm args may follow
#   start, weight, shadow and promote. While `rollout run` holds the environment (the kube-sentiment/rollout
#   annotation on the serving object), start/weight/shadow/promote are refused (exit 75) unless KS_ROLLOUT_VERSION
#   names the version it rolls out. KS_TIMEOUT: wait timeout (default 10m). KS_CLI: the kube-sentiment command
#   (default: on PATH, else .venv/bin/kube-sentiment).
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="${repo_root}/helm/kube-sentiment"
timeout="${KS_TIMEOUT:-10m}"
readonly release=kube-sentiment lock_key=kube-sentiment/rollout

usage() {
  sed -n '2,25p' "${BASH_SOURCE[0]}" >&2
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

# --reset-then-reuse-values: the release's values over this chart's defaults, so values a newer chart adds exist.
upgrade() {
  helm upgrade "${release}" "${chart}" --namespace "${ns}" --reset-then-reuse-values --wait --atomic \
    --timeout "${timeout}" "$@"
  wait_kserve "${ns}"
}

# serving_object: the object that carries the rollout lock (the InferenceService, or the stable Deployment).
serving_object() {
  local name
  name="$(value fullnameOverride)"
  name="${name:-${release}}"
  if [[ "$(value serving.mode)" == kserve ]]; then
    printf 'inferenceservices.serving.kserve.io/%s\n' "${name}"
  else
    printf 'deployment/%s-stable\n' "${name}"
  fi
}

# rollout_lock: the lock of the rollout in progress (JSON), or nothing.
rollout_lock() {
  kubectl -n "${ns}" get "$(serving_object)" -o json 2>/dev/null |
    python3 -c 'import json, sys
print((json.load(sys.stdin)["metadata"].get("annotations") or {}).get(sys.argv[1], ""))' "${lock_key}" || true
}

# lock_field <lock json> <field>
lock_field() { python3 -c 'import json, sys; print(json.loads(sys.argv[1])[sys.argv[2]])' "$1" "$2"; }

# guard: refuse a change while a rollout of another version holds the environment (exit 75).
guard() {
  local lock version
  lock="$(rollout_lock)"
  [[ -n "${lock}" ]] || return 0
  version="$(lock_field "${lock}" version)"
  [[ "${version}" == "${KS_ROLLOUT_VERSION:-}" ]] && return 0
  printf 'canary: a rollout of version %s holds %s (since %s, by %s); let it finish, or stop it with: %s %s abort\n' \
    "${version}" "${ns}" "$(lock_field "${lock}" started_at)" "$(lock_field "${lock}" owner)" "$0" "${ns}" >&2
  exit 75
}

case "${action}" in
  start)
    [[ $# -ge 2 ]] || usage
    version="$1" weight="$2"
    shift 2
    is_int "${version}" version
    is_int "${weight}" weight
    guard
    extra=()
    if [[ "$(value serving.shadow.enabled)" == true && "$(value serving.shadow.modelVersion)" == "${version}" ]]; then
      extra+=(--set serving.shadow.enabled=false)
    fi
    log "${ns}: canary version ${version} at ${weight} % (stable $(value serving.stable.modelVersion))"
    # Two revisions: the canary's pods start and become ready with no share of the traffic, then it gets its
    # weight. In one step the routes name the canary before it has a ready pod, and its share of the requests is
    # refused ("no available server") until it has.
    upgrade --set serving.canary.enabled=true --set "serving.canary.modelVersion=${version}" \
      --set serving.canary.weight=0 "${extra[@]}" "$@"
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
    guard
    log "${ns}: canary weight ${weight} %"
    upgrade --set "serving.canary.weight=${weight}" "$@"
    ;;
  shadow)
    [[ $# -ge 2 ]] || usage
    version="$1" percent="$2"
    shift 2
    is_int "${version}" version
    is_int "${percent}" percent
    guard
    log "${ns}: shadow version ${version} gets a copy of ${percent} % of the requests (stable $(value serving.stable.modelVersion))"
    upgrade --set serving.shadow.enabled=true --set "serving.shadow.modelVersion=${version}" \
      --set "serving.shadow.percent=${percent}" "$@"
    ;;
  promote)
    if [[ "$(value serving.canary.enabled)" == true ]]; then
      version="$(value serving.canary.modelVersion)"
    elif [[ "$(value serving.shadow.enabled)" == true ]]; then
      version="$(value serving.shadow.modelVersion)"
    else
      printf 'canary: no canary or shadow runs in %s, nothing to promote\n' "${ns}" >&2
      exit 1
    fi
    guard
    log "${ns}: promoting version ${version} to stable"
    upgrade --set "serving.stable.modelVersion=${version}" --set serving.canary.enabled=false \
      --set serving.canary.modelVersion=null --set serving.shadow.enabled=false \
      --set serving.shadow.modelVersion=null "$@"
    ;;
  rollback)
    revision="${1:-}"
    [[ -z "${revision}" ]] || is_int "${revision}" revision
    log "${ns}: helm rollback to revision ${revision:-previous}"
    # shellcheck disable=SC2086  # an empty revision means "the previous one"
    helm rollback "${release}" ${revision} --namespace "${ns}" --wait --timeout "${timeout}"
    wait_kserve "${ns}"
    ;;
  auto)
    [[ $# -ge 1 ]] || usage
    version="$1"
    shift
    is_int "${version}" version
    cli="${KS_CLI:-$(command -v kube-sentiment || printf '%s' "${repo_root}/.venv/bin/kube-sentiment")}"
    log "${ns}: automatic rollout of version ${version} (${cli} rollout run)"
    exec "${cli}" rollout run "${ns}" "${version}" --chart "${chart}" --canary-script "${BASH_SOURCE[0]}" \
      --timeout "${timeout}" "$@"
    ;;
  abort)
    lock="$(rollout_lock)"
    [[ -n "${lock}" ]] || {
      printf 'canary: no rollout holds %s\n' "${ns}" >&2
      exit 1
    }
    revision="$(lock_field "${lock}" from_revision)"
    log "${ns}: aborting the rollout of version $(lock_field "${lock}" version): helm rollback to revision ${revision}"
    helm rollback "${release}" "${revision}" --namespace "${ns}" --wait --timeout "${timeout}"
    wait_kserve "${ns}"
    kubectl -n "${ns}" annotate "$(serving_object)" "${lock_key}-" >/dev/null
    ;;
  status) ;;
  *) usage ;;
esac

lock="$(rollout_lock)"
printf 'revision=%s stable=%s canary=%s weight=%s shadow=%s rollout=%s\n' \
  "$(helm -n "${ns}" status "${release}" -o json | python3 -c 'import json, sys; print(json.load(sys.stdin)["version"])')" \
  "$(value serving.stable.modelVersion)" \
  "$([[ "$(value serving.canary.enabled)" == true ]] && value serving.canary.modelVersion || echo none)" \
  "$(value serving.canary.weight)" \
  "$([[ "$(value serving.shadow.enabled)" == true ]] && echo "$(value serving.shadow.modelVersion)@$(value serving.shadow.percent)" || echo none)" \
  "$([[ -n "${lock}" ]] && lock_field "${lock}" version || echo none)"
