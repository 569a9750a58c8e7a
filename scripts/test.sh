#!/usr/bin/env bash
# The test command (README, .ci/run): install, lint, build the pinned Kubernetes tools (cached), run every tier.
#   scripts/test.sh [pytest args]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

scripts/setup.sh --dev
export PATH="${PWD}/.venv/bin:${PATH}"

echo "[test] lint: ruff, mypy, shellcheck" >&2
ruff check .
mypy model serving control
shellcheck scripts/*.sh .ci/run

# Kubernetes tools (helm, kubeconform, actionlint, kwok, etcd, kube-apiserver, ...) and the KServe and Gateway API
# CRDs from pinned Go modules; the first run on a machine builds and downloads them (minutes), later runs reuse
# ~/.cache/kube-sentiment/tools.
set +e
tools_bin="$(scripts/build-tools.sh --print-bin | tail -n 1)"
status=$?
if [[ ${status} -eq 0 ]]; then
  crds_dir="$(scripts/build-tools.sh --crds | tail -n 1)"
  status=$?
fi
set -e
if [[ ${status} -eq 3 ]]; then
  cat >&2 <<'MSG'
************************************************************************************************
[test] Go (or the Go module proxy) is missing: the chart and cluster tiers CANNOT run on this machine.
[test] Install Go >= 1.24 (https://go.dev/doc/install) and re-run to test the charts on a real API server.
[test] Running every other tier now; the skipped tests are listed with this reason below.
************************************************************************************************
MSG
  export KS_NO_TOOLS_REASON="Go toolchain or module proxy unavailable (scripts/build-tools.sh exit 3)"
elif [[ ${status} -ne 0 ]]; then
  echo "[test] building the Kubernetes tools or fetching the CRDs failed (see above)" >&2
  exit "${status}"
else
  export KS_TOOLS_BIN="${tools_bin}" KS_CRDS_DIR="${crds_dir}"
  export PATH="${tools_bin}:${PATH}"
fi

# The console's browser test drives Debian's Chromium through Debian's chromedriver (no browser download). Install them
# when missing on Debian as root (CI runs as root); elsewhere that test is skipped loudly, naming what is missing.
# KS_CHROMIUM / KS_CHROMEDRIVER point the test at another Chromium (the GitHub runner's preinstalled Chrome).
if [[ -z "${KS_CHROMIUM:-}" && ( ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ) ]]; then
  if [[ ${EUID} -eq 0 ]] && grep -qs '^ID=debian' /etc/os-release; then
    echo "[test] installing Debian's chromium and chromium-driver for the console's browser test" >&2
    if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      chromium chromium-driver; } >&2; then
      echo "[test] apt-get could not install chromium: the browser test will be skipped (pytest prints why)" >&2
    fi
  else
    cat >&2 <<'MSG'
************************************************************************************************
[test] /usr/bin/chromium or /usr/bin/chromedriver is missing and cannot be installed here (not root on Debian):
[test] the console's browser test (tests/control/console/test_browser.py) will be SKIPPED.
[test] Install them with: apt-get install chromium chromium-driver
************************************************************************************************
MSG
  fi
fi

# The benchmark's native load generators, driven for one short turn each by tests/bench/test_loadgen_tools.py: wrk
# (Debian) and ghz (built from its Go module like the other tools). Where they cannot be had, those tests are
# skipped and say how to get them; the benchmark itself falls back to its Python client.
if ! command -v wrk >/dev/null 2>&1 && [[ ${EUID} -eq 0 ]] && grep -qs '^ID=debian' /etc/os-release; then
  echo "[test] installing Debian's wrk for the benchmark's load generator test" >&2
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends wrk; } >&2 ||
    echo "[test] apt-get could not install wrk: its test will be skipped (pytest prints why)" >&2
fi
if [[ -n "${KS_TOOLS_BIN:-}" ]]; then
  scripts/build-tools.sh ghz >/dev/null || echo "[test] ghz could not be built: its test will be skipped" >&2
fi

echo "[test] pytest: unit, integration, cluster" >&2
exec pytest "$@"
