#!/usr/bin/env bash
# Start the local control plane (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kwok) in the
# background on free loopback ports, install the pinned KServe and Gateway API CRDs (scripts/build-tools.sh --crds)
# and the namespaces of k8s/namespaces.yaml, and print the kubeconfig path on stdout. Stop it with
# scripts/cluster-down.sh.
#
#   scripts/cluster-up.sh [--real]
#     --real  a real node instead of kwok (root): containerd + runc + CNI bridge, kubelet, kube-proxy, CoreDNS,
#             a default StorageClass, the images of scripts/build-images.sh, the KServe controller (Standard mode)
#             and Traefik as the Gateway API implementation (tests/cluster/realnode.py; docs/ci.md)
#
#   KS_CLUSTER_DIR  work directory (default: a new temp dir); logs are in $KS_CLUSTER_DIR/logs/
#   KS_TOOLS_DIR    tools cache used by scripts/build-tools.sh
#
# Exit codes: 0 up; 1 start failed; 3 Go/module proxy missing (from build-tools.sh); 69 (--real) this machine
# cannot run a node (the reason is printed).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=/dev/null  # KEY=value lines only
source "${repo_root}/k8s/versions.env"
python="${repo_root}/.venv/bin/python"
[[ -x "${python}" ]] || { echo "cluster-up: ${python} missing; run 'uv sync --frozen --extra dev'" >&2; exit 1; }

if [[ "${1:-}" == --real ]]; then
  "${repo_root}/scripts/realnode-deps.sh"
  "${python}" "${repo_root}/tests/cluster/realnode.py" check
  "${repo_root}/scripts/build-tools.sh" >/dev/null
  bin_dir="$("${repo_root}/scripts/build-tools.sh" --real-node | tail -n 1)"
  images_env="$("${repo_root}/scripts/build-images.sh" | tail -n 1)"
  crds="$("${repo_root}/scripts/build-tools.sh" --crds | tail -n 1)"
  module_dir() { go mod download -json "$1" | "${python}" -c 'import json, sys; print(json.load(sys.stdin)["Dir"])'; }
  workdir="${KS_CLUSTER_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ks-realnode.XXXXXX")}"
  kubeconfig="$("${python}" "${repo_root}/tests/cluster/realnode.py" up --workdir "${workdir}" --bin-dir "${bin_dir}" \
    --images-env "${images_env}" --kserve-module "$(module_dir "github.com/kserve/kserve@${KSERVE_VERSION}")" \
    --crds "${crds}/kserve-${KSERVE_VERSION}" --crds "${crds}/gateway-api-${GATEWAY_API_VERSION}" \
    --apply "${repo_root}/k8s/namespaces.yaml")"
  echo "cluster-up: real node running; stop with: KS_CLUSTER_DIR=${workdir} scripts/cluster-down.sh" >&2
  echo "cluster-up: export KUBECONFIG=${kubeconfig}" >&2
  printf '%s\n' "${kubeconfig}"
  exit 0
fi

bin_dir="$("${repo_root}/scripts/build-tools.sh" | tail -n 1)"
crds="$("${repo_root}/scripts/build-tools.sh" --crds | tail -n 1)"
workdir="${KS_CLUSTER_DIR:-$(mktemp -d "${TMPDIR:-/tmp}/ks-cluster.XXXXXX")}"
kubeconfig="$("${python}" "${repo_root}/tests/cluster/localcluster.py" up --workdir "${workdir}" \
  --bin-dir "${bin_dir}" --crds "${crds}/kserve-${KSERVE_VERSION}" \
  --crds "${crds}/gateway-api-${GATEWAY_API_VERSION}" \
  --apply "${repo_root}/k8s/namespaces.yaml")"
echo "cluster-up: running; stop with: KS_CLUSTER_DIR=${workdir} scripts/cluster-down.sh" >&2
echo "cluster-up: export KUBECONFIG=${kubeconfig}" >&2
printf '%s\n' "${kubeconfig}"
