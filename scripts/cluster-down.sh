#!/usr/bin/env bash
# Stop the local control plane started by scripts/cluster-up.sh and remove its work directory.
#
#   KS_CLUSTER_DIR=<dir printed by cluster-up.sh> scripts/cluster-down.sh
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
workdir="${KS_CLUSTER_DIR:?set KS_CLUSTER_DIR to the work directory printed by scripts/cluster-up.sh}"
if [[ -f /run/kube-sentiment-node/state.json ]]; then
  # A real node (cluster-up.sh --real): stops its control plane too, cleans the host, exits 1 if anything is left.
  "${repo_root}/.venv/bin/python" "${repo_root}/tests/cluster/realnode.py" down
else
  "${repo_root}/.venv/bin/python" "${repo_root}/tests/cluster/localcluster.py" down --workdir "${workdir}"
fi
if [[ "${KS_CLUSTER_KEEP:-0}" != 1 ]]; then
  rm -rf "${workdir}"
fi
