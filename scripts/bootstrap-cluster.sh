#!/usr/bin/env bash
# Prepare a Kubernetes cluster (kind or real) for the kube-sentiment charts, with the versions pinned in
# k8s/versions.env:
#   1. namespaces (k8s/namespaces.yaml)
#   2. cert-manager                      CERT_MANAGER_VERSION
#   3. Gateway API standard-channel CRDs GATEWAY_API_VERSION
#   4. Envoy Gateway (no bundled Gateway API CRDs) and the shared Gateway   ENVOY_GATEWAY_VERSION
#   5. KServe CRDs and controller in Standard mode with Gateway API ingress KSERVE_VERSION   (skip: --no-kserve)
# Every step waits for readiness with `kubectl wait` / `helm --wait`, never with sleeps; re-running is safe.
#
#   scripts/bootstrap-cluster.sh [--kind] [--no-kserve] [--dry-run]
#     --kind       create the kind cluster from k8s/kind-config.yaml first (KIND_NODE_IMAGE)
#     --no-kserve  skip KServe (deployment serving mode only)
#     --dry-run    print the commands instead of running them
#
# Needs kubectl and helm on PATH (helm: scripts/build-tools.sh helm) and network access to the release
# artefacts; the kubectl context must point at the target cluster.
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=/dev/null  # KEY=value lines only
source "${repo_root}/k8s/versions.env"

create_kind=false
with_kserve=true
dry_run=false
for arg in "$@"; do
  case "${arg}" in
    --kind) create_kind=true ;;
    --no-kserve) with_kserve=false ;;
    --dry-run) dry_run=true ;;
    -h | --help)
      sed -n '2,18p' "${BASH_SOURCE[0]}"
      exit 0
      ;;
    *)
      printf 'unknown argument: %s (see --help)\n' "${arg}" >&2
      exit 2
      ;;
  esac
done

for var in CERT_MANAGER_VERSION GATEWAY_API_VERSION ENVOY_GATEWAY_VERSION KSERVE_VERSION KIND_NODE_IMAGE; do
  [[ -n "${!var:-}" ]] || {
    printf '%s is not set in k8s/versions.env\n' "${var}" >&2
    exit 2
  }
done

log() { printf '[bootstrap] %s\n' "$*" >&2; }

run() {
  if "${dry_run}"; then
    printf '+ %s\n' "$*"
  else
    "$@"
  fi
}

# apply_url <url>: server-side apply of a released manifest.
apply_url() {
  run kubectl apply --server-side --force-conflicts -f "$1"
}

if ! "${dry_run}"; then
  for bin in kubectl helm; do
    command -v "${bin}" >/dev/null 2>&1 || {
      printf '%s is not on PATH\n' "${bin}" >&2
      exit 2
    }
  done
fi

if "${create_kind}"; then
  log "kind cluster (${KIND_NODE_IMAGE})"
  if ! kind get clusters 2>/dev/null | grep -qx kube-sentiment; then
    run kind create cluster --config "${repo_root}/k8s/kind-config.yaml" --image "${KIND_NODE_IMAGE}" --wait 180s
  fi
fi

log "namespaces"
run kubectl apply -f "${repo_root}/k8s/namespaces.yaml"

log "cert-manager ${CERT_MANAGER_VERSION}"
apply_url "https://github.com/cert-manager/cert-manager/releases/download/${CERT_MANAGER_VERSION}/cert-manager.yaml"
run kubectl -n cert-manager wait --for=condition=Available deployment --all --timeout=300s

log "Gateway API ${GATEWAY_API_VERSION} (standard channel)"
apply_url "https://github.com/kubernetes-sigs/gateway-api/releases/download/${GATEWAY_API_VERSION}/standard-install.yaml"
run kubectl wait --for=condition=Established crd/gateways.gateway.networking.k8s.io \
  crd/httproutes.gateway.networking.k8s.io crd/grpcroutes.gateway.networking.k8s.io --timeout=120s

log "Envoy Gateway ${ENVOY_GATEWAY_VERSION}"
# Envoy Gateway's own CRDs only: the Gateway API CRDs above are the pinned ones.
if "${dry_run}"; then
  printf '+ helm template eg-crds oci://docker.io/envoyproxy/gateway-crds-helm --version %s ... | kubectl apply --server-side -f -\n' \
    "${ENVOY_GATEWAY_VERSION}"
else
  helm template eg-crds oci://docker.io/envoyproxy/gateway-crds-helm --version "${ENVOY_GATEWAY_VERSION}" \
    --set crds.gatewayAPI.enabled=false --set crds.envoyGateway.enabled=true |
    kubectl apply --server-side --force-conflicts -f -
fi
run helm upgrade --install eg oci://docker.io/envoyproxy/gateway-helm --version "${ENVOY_GATEWAY_VERSION}" \
  --namespace envoy-gateway-system --create-namespace --skip-crds --wait --timeout 5m
run kubectl -n envoy-gateway-system wait --for=condition=Available deployment/envoy-gateway --timeout=300s
run kubectl apply -f "${repo_root}/k8s/gateway/envoyproxy.yaml" -f "${repo_root}/k8s/gateway/gateway.yaml"
run kubectl wait --for=condition=Accepted gatewayclass/envoy --timeout=120s
run kubectl -n gateway wait --for=condition=Programmed gateway/kube-sentiment --timeout=300s

if "${with_kserve}"; then
  log "KServe ${KSERVE_VERSION} (Standard mode, Gateway API)"
  run helm upgrade --install kserve-crd oci://ghcr.io/kserve/charts/kserve-crd --version "${KSERVE_VERSION}" \
    --namespace kserve --create-namespace --wait
  run kubectl wait --for=condition=Established crd/inferenceservices.serving.kserve.io --timeout=120s
  run helm upgrade --install kserve "oci://ghcr.io/kserve/charts/${KSERVE_CHART:-kserve-resources}" \
    --version "${KSERVE_VERSION}" --namespace kserve -f "${repo_root}/k8s/kserve/values.yaml" --wait --timeout 10m
  run kubectl -n kserve wait --for=condition=Available deployment/kserve-controller-manager --timeout=300s
  run kubectl apply -f "${repo_root}/k8s/kserve/gateway.yaml"
  run kubectl -n kserve wait --for=condition=Programmed gateway/kserve-ingress-gateway --timeout=300s
fi

log "ready: install MLflow and the app per environment, see docs/deploy.md"
