#!/usr/bin/env bash
# Install or upgrade one piece of kube-sentiment with Helm and wait for it to be ready (rolled back on failure).
#
#   scripts/deploy.sh mlflow [helm args]
#       helm/mlflow as release "mlflow" in namespace mlflow
#   scripts/deploy.sh <staging|production> [helm args]
#       helm/kube-sentiment as release "kube-sentiment" in the namespace of the environment, with
#       helm/kube-sentiment/values-<env>.yaml, then any -f/--set you add (e.g. -f .github/e2e/values-kind.yaml)
#   scripts/deploy.sh train <staging|production> [--builtin-corpus] [--env NAME=VALUE ...] [helm args]
#       one training run: the chart's training ConfigMap and Job (release "kube-sentiment-train", so it works
#       before the environment's release exists and never collides with it), applied and waited for until it
#       completes or fails. --builtin-corpus trains on the corpus shipped in the image (no data volume);
#       --env adds KS_TRAIN_* settings (e.g. --env KS_TRAIN_FLOOR=0.5).
#
#   KS_IMAGE        image reference for every workload (default kube-sentiment:<appVersion>)
#   KS_TIMEOUT      Helm and wait timeout (default 10m)
#   KS_TRAIN_TIMEOUT  training wait timeout (default 30m)
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
chart="${repo_root}/helm/kube-sentiment"
image="$(default_image)"
timeout="${KS_TIMEOUT:-10m}"
readonly release=kube-sentiment train_release=kube-sentiment-train

usage() {
  sed -n '2,18p' "${BASH_SOURCE[0]}" >&2
  exit 2
}
log() { printf '[deploy] %s\n' "$*" >&2; }
[[ $# -ge 1 ]] || usage
[[ "${image}" == *:* ]] || {
  printf 'deploy: KS_IMAGE %s has no tag\n' "${image}" >&2
  exit 2
}
image_args=(--set "image.repository=${image%:*}" --set-string "image.tag=${image##*:}")

# env_of <name>: the name when it is an environment, else exit 2.
env_of() {
  case "${1:-}" in
    staging | production) printf '%s\n' "$1" ;;
    *)
      printf 'deploy: environment must be staging or production, not %q\n' "${1:-}" >&2
      exit 2
      ;;
  esac
}

target="$1"
shift
case "${target}" in
  mlflow)
    log "helm upgrade --install mlflow (${image})"
    helm upgrade --install mlflow "${repo_root}/helm/mlflow" --namespace mlflow --create-namespace \
      "${image_args[@]}" --wait --atomic --timeout "${timeout}" "$@"
    ;;
  staging | production)
    log "helm upgrade --install ${release} in ${target} (${image})"
    helm upgrade --install "${release}" "${chart}" --namespace "${target}" \
      -f "${chart}/values-${target}.yaml" "${image_args[@]}" --wait --atomic --timeout "${timeout}" "$@"
    wait_kserve "${target}"
    helm -n "${target}" history "${release}" --max 3 >&2
    ;;
  train)
    ns="$(env_of "${1:-}")"
    shift
    envs=()
    helm_args=()
    while [[ $# -gt 0 ]]; do
      case "$1" in
        --builtin-corpus)
          # An empty train.dataPath leaves KS_TRAIN_DATA_PATH unset: the trainer reads the corpus in its image.
          helm_args+=(--set-string train.dataPath= --set-string train.dataClaim=)
          shift
          ;;
        --env)
          [[ "${2:-}" == *=* ]] || usage
          envs+=("$2")
          shift 2
          ;;
        *)
          helm_args+=("$1")
          shift
          ;;
      esac
    done
    extra_env="["
    for pair in "${envs[@]}"; do
      extra_env+="{\"name\":\"${pair%%=*}\",\"value\":\"${pair#*=}\"},"
    done
    extra_env="${extra_env%,}]"
    # Only the training objects of the chart: no ServiceAccount (the Job uses the namespace's default one,
    # whose token it does not mount), no serving, so a model version is not needed yet.
    manifest="$(helm template "${train_release}" "${chart}" --namespace "${ns}" -f "${chart}/values-${ns}.yaml" \
      "${image_args[@]}" --set train.enabled=true --set serviceAccounts.create=false \
      --set-json "train.extraEnv=${extra_env}" "${helm_args[@]}" \
      --show-only templates/train/configmap.yaml --show-only templates/train/job.yaml)"
    job="$(kubectl -n "${ns}" apply -f - -o name <<<"${manifest}" | sed -n 's#^job.batch/##p')"
    [[ -n "${job}" ]] || {
      printf 'deploy: the chart rendered no training Job\n' >&2
      exit 1
    }
    log "training job ${ns}/${job} (${image}); waiting up to ${KS_TRAIN_TIMEOUT:-30m}"
    status=0
    wait_job "${ns}" "${job}" "${KS_TRAIN_TIMEOUT:-30m}" || status=1
    kubectl -n "${ns}" logs "job/${job}" --tail=40 >&2 || true
    exit "${status}"
    ;;
  *) usage ;;
esac
