# shellcheck shell=bash disable=SC2154  # ns, release and timeout are set by the sourcing script
# Functions shared by the scripts (sourced, not run). value and wait_kserve need ${ns}, ${release} and ${timeout}.

lib_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# app_version: appVersion of helm/kube-sentiment (the default image tag).
app_version() {
  sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "${lib_root}/helm/kube-sentiment/Chart.yaml"
}

# default_image: KS_IMAGE, else kube-sentiment:<appVersion>.
default_image() {
  printf '%s\n' "${KS_IMAGE:-kube-sentiment:$(app_version)}"
}

# value <dotted.key>: one value of the release's computed values in ${ns} (helm get values --all).
value() {
  helm -n "${ns}" get values "${release}" --all -o json |
    python3 -c 'import json, sys
v = json.load(sys.stdin)
for key in sys.argv[1].split("."):
    v = v.get(key) if isinstance(v, dict) else None
print("" if v is None else str(v).lower() if isinstance(v, bool) else v)' "$1"
}

# wait_job <namespace> <job> <timeout>: wait until the Job completes (0) or fails (1), whichever comes first.
wait_job() {
  local job_ns="$1" job="$2" limit="$3" done_pid failed_pid state
  kubectl -n "${job_ns}" wait --for=condition=Complete "job/${job}" --timeout="${limit}" >/dev/null 2>&1 &
  done_pid=$!
  kubectl -n "${job_ns}" wait --for=condition=Failed "job/${job}" --timeout="${limit}" >/dev/null 2>&1 &
  failed_pid=$!
  wait -n "${done_pid}" "${failed_pid}" || true
  kill "${done_pid}" "${failed_pid}" 2>/dev/null || true
  wait "${done_pid}" "${failed_pid}" 2>/dev/null || true
  state="$(kubectl -n "${job_ns}" get "job/${job}" \
    -o jsonpath='{range .status.conditions[?(@.status=="True")]}{.type}{" "}{end}' 2>/dev/null || true)"
  printf '[lib] job %s/%s: %s\n' "${job_ns}" "${job}" "${state:-no terminal condition within ${limit}}" >&2
  [[ " ${state} " == *" Complete "* ]]
}

# wait_kserve <namespace>: in kserve mode Helm's --wait cannot see the predictor Deployments that KServe creates
# from the InferenceService, so wait for them (and the canary's) to exist and roll out, then for the
# InferenceService (and the shadow's) to be Ready. Nothing to do in deployment mode.
wait_kserve() {
  local ns="$1" name names
  kubectl -n "${ns}" get inferenceservices.serving.kserve.io "${release}" >/dev/null 2>&1 || return 0
  names=("${release}-predictor")
  if [[ -n "$(kubectl -n "${ns}" get inferenceservices.serving.kserve.io "${release}" -o jsonpath='{.spec.canary}')" ]]; then
    names+=("${release}-canary-predictor")
  fi
  for name in "${names[@]}"; do
    kubectl -n "${ns}" wait --for=create "deployment/${name}" --timeout="${timeout}" >/dev/null
    kubectl -n "${ns}" rollout status "deployment/${name}" --timeout="${timeout}" >&2
  done
  # Not --for=condition=Ready: KServe v0.20 copies the stable predictor Deployment's observedGeneration into the
  # InferenceService's status, so after a change that leaves that Deployment alone (a canary's weight) it stays
  # below metadata.generation and kubectl's condition wait, which requires it, never returns.
  local ready='{.status.conditions[?(@.type=="Ready")].status}=True'
  kubectl -n "${ns}" wait --for=jsonpath="${ready}" "inferenceservices.serving.kserve.io/${release}" \
    --timeout="${timeout}" >&2
  # The shadow is an InferenceService of its own (the predictors above mirror to it).
  local shadow
  shadow="$(kubectl -n "${ns}" get inferenceservices.serving.kserve.io "${release}-shadow" \
    -o jsonpath='{.metadata.name}/{.metadata.deletionTimestamp}' 2>/dev/null || true)"
  if [[ "${shadow}" == "${release}-shadow/" ]]; then # exists and is not being deleted
    kubectl -n "${ns}" wait --for=create "deployment/${release}-shadow-predictor" --timeout="${timeout}" >/dev/null
    kubectl -n "${ns}" rollout status "deployment/${release}-shadow-predictor" --timeout="${timeout}" >&2
    kubectl -n "${ns}" wait --for=jsonpath="${ready}" "inferenceservices.serving.kserve.io/${release}-shadow" \
      --timeout="${timeout}" >&2
  fi
}
