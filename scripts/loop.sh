#!/usr/bin/env bash
# The whole loop on this machine, no cluster: install, then `kube-sentiment loop` (MLflow server, train + gate,
# serve, ship, drift). Arguments go to `kube-sentiment loop` (e.g. --keep-running, --traffic 5000).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
scripts/setup.sh
exec .venv/bin/kube-sentiment loop "$@"
