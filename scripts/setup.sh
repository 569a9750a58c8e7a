#!/usr/bin/env bash
# Install what kube-sentiment needs on a fresh machine: uv (pinned) and the locked Python environment in .venv.
#   scripts/setup.sh [--dev]      --dev adds the test and lint tools
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

readonly UV_VERSION=0.13.9
extras=()
[[ "${1:-}" == "--dev" ]] && extras=(--extra dev)

if ! command -v uv >/dev/null 2>&1 || [[ "$(uv --version | cut -d' ' -f2)" != "${UV_VERSION}" ]]; then
  echo "[setup] installing uv ${UV_VERSION} with pip" >&2
  python3 -m pip install --quiet --user "uv==${UV_VERSION}"
  export PATH="${HOME}/.local/bin:${PATH}"
fi
# Python >= 3.11 must be on the machine; uv never downloads an interpreter here (pyproject: python-downloads).
# Bytecode compiled once here, as in the image (UV_COMPILE_BYTECODE): with PYTHONDONTWRITEBYTECODE set (as on CI
# machines) every process would otherwise compile each module it imports on every start (~10 s for the predictor).
uv sync --frozen --compile-bytecode "${extras[@]}" >&2
