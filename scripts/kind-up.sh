#!/usr/bin/env bash
# The laptop cluster (Docker): create the kind cluster of k8s/kind-config.yaml with the pinned node image, install
# cert-manager, Gateway API, Envoy Gateway and KServe (scripts/bootstrap-cluster.sh), and put the kube-sentiment
# image on its nodes. Every version comes from k8s/versions.env. Re-running is safe.
#
#   scripts/kind-up.sh [--no-create] [--no-kserve] [--build | --load]
#     --no-create  use the existing cluster (CI creates it with helm/kind-action)
#     --no-kserve  skip KServe (serving.mode=deployment only)
#     --build      docker build the image first, then kind load it
#     --load       kind load an image that is already built
#   KS_IMAGE     image reference (default kube-sentiment:<appVersion of helm/kube-sentiment>)
#
# Needs docker, kind (KIND_VERSION), kubectl and helm (scripts/build-tools.sh helm) on PATH.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=/dev/null  # KEY=value lines only
source "${repo_root}/k8s/versions.env"
readonly cluster=kube-sentiment
# shellcheck source=scripts/lib.sh
source "${repo_root}/scripts/lib.sh"
image="$(default_image)"

create=true
bootstrap_args=()
image_step=none
for arg in "$@"; do
  case "${arg}" in
    --no-create) create=false ;;
    --no-kserve) bootstrap_args+=(--no-kserve) ;;
    --build) image_step=build ;;
    --load) image_step=load ;;
    -h | --help)
      sed -n '2,13p' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *)
      printf 'kind-up: unknown argument %s (see --help)\n' "${arg}" >&2
      exit 2
      ;;
  esac
done

log() { printf '[kind-up] %s\n' "$*" >&2; }

for bin in docker kind kubectl helm; do
  command -v "${bin}" >/dev/null 2>&1 || {
    printf 'kind-up: %s is not on PATH\n' "${bin}" >&2
    exit 2
  }
done
have_kind="$(kind version | awk '{ print $2 }')"
if [[ "${have_kind}" != "${KIND_VERSION}" ]]; then
  log "warning: kind ${have_kind} is not the pinned ${KIND_VERSION} (k8s/versions.env)"
fi

if "${create}"; then
  if kind get clusters 2>/dev/null | grep -qx "${cluster}"; then
    log "cluster ${cluster} exists"
  else
    log "creating ${cluster} (${KIND_NODE_IMAGE})"
    kind create cluster --name "${cluster}" --config "${repo_root}/k8s/kind-config.yaml" \
      --image "${KIND_NODE_IMAGE}" --wait 180s
  fi
fi
kubectl config use-context "kind-${cluster}" >/dev/null
kubectl wait --for=condition=Ready nodes --all --timeout=180s

"${repo_root}/scripts/bootstrap-cluster.sh" "${bootstrap_args[@]}"

case "${image_step}" in
  build)
    log "docker build ${image}"
    docker build -t "${image}" "${repo_root}"
    ;&
  load)
    log "kind load ${image}"
    kind load docker-image "${image}" --name "${cluster}"
    ;;
  none) log "image not loaded (use --build or --load, or KS_IMAGE from a registry)" ;;
esac
log "ready: scripts/deploy.sh mlflow; scripts/deploy.sh train staging --builtin-corpus; see docs/ci.md"
