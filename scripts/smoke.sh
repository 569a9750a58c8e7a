#!/usr/bin/env bash
# Smoke checks of a running kube-sentiment from inside the cluster (short-lived client pods in the target
# namespace take the same network path as real clients). The checks are pytest tests (tests/e2e/test_smoke.py on
# tests/support/cluster_checks.py); this script picks one and runs it with the repository's virtualenv.
#
#   scripts/smoke.sh mlflow                        helm test of the MLflow release
#   scripts/smoke.sh <env> [calls]                 helm test, then V1 and V2 REST and V2 gRPC on every track
#   scripts/smoke.sh <env> split <weight> [n]      n requests (default 1000) through the Gateway: both versions
#                                                  answer and the canary's share is within KS_SPLIT_Z (default 4)
#                                                  binomial standard deviations of <weight> %
#   scripts/smoke.sh <env> only <version> [n]      through the Gateway, n answers (default 50) all from <version>
#   scripts/smoke.sh <env> registry [decision]     MLflow: the 'candidate' version is registered with the gate's
#                                                  decision recorded (and equal to [decision] when given)
#   scripts/smoke.sh <env> drift                   run the drift CronJob now as a Job and check its report
#   scripts/smoke.sh <env> traffic start|stop      live traffic through the Gateway from a Deployment in <env>
#                                                  (varied texts, V1 REST, back to back) for automatic rollouts
#   scripts/smoke.sh <env> rollout <version> <decision>
#                                                  the last rollout of <version>: its MLflow tag
#                                                  rollout.<env>.decision = <decision>, and its Events
#
#   <env> is staging or production (release "kube-sentiment"). KS_IMAGE: the kube-sentiment image (default
#   kube-sentiment:<appVersion>); KS_CLIENT_IMAGE: the curl image (default CURL_IMAGE of k8s/versions.env);
#   KS_MLFLOW_URL (default http://mlflow.mlflow.svc.cluster.local:5000). Needs .venv (scripts/setup.sh --dev).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

usage() {
  sed -n '2,23p' "${BASH_SOURCE[0]}" >&2
  exit 2
}
number() { [[ "${1:-}" =~ ^[0-9]+$ ]] || usage; }

[[ $# -ge 1 ]] || usage
case "$1" in
  mlflow) env=mlflow action=mlflow ;;
  staging | production)
    env="$1" action="${2:-calls}"
    shift $(($# >= 2 ? 2 : 1))
    case "${action}" in
      calls | drift) [[ $# -eq 0 ]] || usage ;;
      split | only)
        number "${1:-}"
        [[ $# -lt 2 ]] || number "$2"
        [[ $# -le 2 ]] || usage
        ;;
      registry) [[ $# -le 1 ]] || usage ;;
      traffic) [[ $# -eq 1 && ("$1" == start || "$1" == stop) ]] || usage ;;
      rollout)
        number "${1:-}"
        [[ $# -eq 2 ]] || usage
        ;;
      *) usage ;;
    esac
    ;;
  *) usage ;;
esac

python="${repo_root}/.venv/bin/python"
[[ -x "${python}" ]] || {
  printf 'smoke: %s is missing; run scripts/setup.sh --dev\n' "${python}" >&2
  exit 2
}
cd "${repo_root}"
KS_SMOKE_ENV="${env}" KS_SMOKE_ARGS="$*" exec "${python}" -m pytest -q -s -p no:cacheprovider --no-header \
  "tests/e2e/test_smoke.py::test_${action}"
