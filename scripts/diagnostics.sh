#!/usr/bin/env bash
# Dump what explains a failed deploy or test: nodes, Helm releases, then per namespace the objects, events
# (oldest first), pod descriptions and the logs of every container (and of its previous run after a restart).
# Never fails on its own: a missing kind or an unreachable API server is printed and skipped.
#
#   scripts/diagnostics.sh [namespace ...]
#     default: every namespace kube-sentiment touches (staging production mlflow gateway kserve cert-manager
#     envoy-gateway-system monitoring)
set -euo pipefail

namespaces=("$@")
if [[ ${#namespaces[@]} -eq 0 ]]; then
  namespaces=(staging production mlflow gateway kserve cert-manager envoy-gateway-system monitoring)
fi

# Kinds listed per namespace; a kind whose CRD is not installed is skipped.
kinds=(pods deployments replicasets statefulsets jobs cronjobs services endpointslices configmaps
  persistentvolumeclaims networkpolicies poddisruptionbudgets horizontalpodautoscalers
  inferenceservices.serving.kserve.io servingruntimes.serving.kserve.io gateways.gateway.networking.k8s.io
  httproutes.gateway.networking.k8s.io grpcroutes.gateway.networking.k8s.io)

section() { printf '\n======== %s ========\n' "$*"; }
# try <command...>: run it, print its failure instead of stopping.
try() { "$@" 2>&1 || printf '(failed: %s)\n' "$*"; }

section "cluster"
try kubectl version
try kubectl get nodes -o wide
try kubectl describe nodes
try kubectl get persistentvolumes
try kubectl get gatewayclasses.gateway.networking.k8s.io
if command -v helm >/dev/null 2>&1; then
  try helm list --all-namespaces --all
fi

for ns in "${namespaces[@]}"; do
  if ! kubectl get namespace "${ns}" >/dev/null 2>&1; then
    section "namespace ${ns}: absent"
    continue
  fi
  section "namespace ${ns}: objects"
  for kind in "${kinds[@]}"; do
    kubectl -n "${ns}" get "${kind}" -o wide 2>/dev/null || true
  done
  if command -v helm >/dev/null 2>&1; then
    while read -r release; do
      [[ -n "${release}" ]] || continue
      section "namespace ${ns}: helm history ${release}"
      try helm -n "${ns}" history "${release}"
    done < <(helm -n "${ns}" list --all --short 2>/dev/null || true)
  fi
  section "namespace ${ns}: events"
  try kubectl -n "${ns}" get events --sort-by=.lastTimestamp
  section "namespace ${ns}: describe pods, jobs, inferenceservices"
  try kubectl -n "${ns}" describe pods
  try kubectl -n "${ns}" describe jobs
  kubectl -n "${ns}" describe inferenceservices.serving.kserve.io 2>/dev/null || true
  kubectl -n "${ns}" describe httproutes.gateway.networking.k8s.io grpcroutes.gateway.networking.k8s.io 2>/dev/null || true
  while read -r pod; do
    [[ -n "${pod}" ]] || continue
    section "namespace ${ns}: logs ${pod}"
    try kubectl -n "${ns}" logs "${pod}" --all-containers --prefix --timestamps --tail=500
    restarts="$(kubectl -n "${ns}" get "${pod}" \
      -o jsonpath='{range .status.containerStatuses[*]}{.restartCount}{"\n"}{end}' 2>/dev/null | sort -n | tail -n 1)"
    if [[ "${restarts:-0}" -gt 0 ]]; then
      section "namespace ${ns}: logs ${pod} (previous run)"
      try kubectl -n "${ns}" logs "${pod}" --all-containers --prefix --timestamps --tail=500 --previous
    fi
  done < <(kubectl -n "${ns}" get pods -o name 2>/dev/null || true)
done
exit 0
