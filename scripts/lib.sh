# shellcheck shell=bash disable=SC2154  # ns, release and timeout are set by the sourcing script
# Functions shared by scripts/deploy.sh, canary.sh and smoke.sh (sourced, not run). The caller sets ${ns},
# ${release} and ${timeout} first.

# value <dotted.key>: one value of the release's computed values in ${ns} (helm get values --all).
value() {
  helm -n "${ns}" get values "${release}" --all -o json |
    python3 -c 'import json, sys
v = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    v = v.get(key) if isinstance(v, dict) else None
print("" if v is None else str(v).lower() if isinstance(v, bool) else v)' "$1"
}

# wait_kserve <namespace>: in kserve mode Helm's --wait cannot see the predictor Deployments that KServe creates
# from the InferenceService, so wait for them (and the canary's) to exist and roll out, then for the
# InferenceService to be Ready. Nothing to do in deployment mode.
wait_kserve() {
  local ns="$1" name names
  kubectl -n "${ns}" get inferenceservices.serving.kserve.io "${release}" >/dev/null 2>&1 || return 0
  names=("${release}-predictor")
  if [[ -n "$(kubectl -n "${ns}" get inferenceservices.serving.kserve.io "${release}" -o jsonpath='{.spec.canary}')" ]]; then
    names+=("${release}-predictor-canary")
  fi
  for name in "${names[@]}"; do
    kubectl -n "${ns}" wait --for=create "deployment/${name}" --timeout="${timeout}" >/dev/null
    kubectl -n "${ns}" rollout status "deployment/${name}" --timeout="${timeout}" >&2
  done
  kubectl -n "${ns}" wait --for=condition=Ready "inferenceservices.serving.kserve.io/${release}" --timeout="${timeout}" >&2
}
