#!/usr/bin/env bash
# Build the pinned Kubernetes tools from Go modules into a cache outside the repository.
#
#   scripts/build-tools.sh [--print-bin] [tool ...]
#   scripts/build-tools.sh --crds             # fetch the pinned KServe and Gateway API CRDs, print their folder
#   scripts/build-tools.sh --sync-modules     # rewrite k8s/tools/*/go.mod after a version bump
#
# Tools (built in this order, quick ones first): helm kubeconform helm-docs actionlint kwok etcd controlplane.
# Aliases: kwokctl -> kwok; kube-apiserver, kube-controller-manager, kube-scheduler -> controlplane.
# Real-node tools (tests/cluster/realpods, cluster-up.sh --real; built only when named, or all with --real-node):
#   node (kubelet, kube-proxy), coredns, kserve-manager, traefik.
# Benchmark tools (built only when named; scripts/test.sh builds it for its test): ghz, the gRPC load generator of
# bench/serve_bench.py.
# Versions come from k8s/versions.env. Binaries land in
#   ${KS_TOOLS_DIR:-$HOME/.cache/kube-sentiment/tools}/<tool>-<version>/<binary>
# with stable symlinks in ${KS_TOOLS_DIR}/bin/. A version that is already built is skipped.
# The bin directory is printed on stdout as the last line; progress goes to stderr.
#
# --crds takes the CRDs from the Go modules github.com/kserve/kserve@${KSERVE_VERSION} and
# sigs.k8s.io/gateway-api@${GATEWAY_API_VERSION} (whole modules stay in the Go module cache: `go mod download
# -json <module>@<version>` prints their Dir) and keeps only these files, printing ${KS_TOOLS_DIR}/crds last:
#   crds/kserve-<version>/*.yaml          the CRDs config/crd/full/kustomization.yaml installs (one file each)
#   crds/kserve-<version>/configmap/inferenceservice.yaml   the KServe controller's config (config/configmap)
#   crds/gateway-api-<version>/*.yaml     the standard-channel CRDs config/crd/kustomization.yaml installs
#   crds/<name>-<version>/SOURCE          module, version and go.sum hash the files come from
# `kubectl apply -f crds/<name>-<version>` applies the CRDs only (it does not descend into configmap/).
#
# Exit codes: 0 ok; 1 a build failed (the message names the tool and the step); 2 usage error;
#             3 Go is missing or the Go module proxy is unreachable (callers skip the cluster tier loudly).
# The build_* functions are called through build_tool's builder argument.
# shellcheck disable=SC2329
set -euo pipefail

readonly EXIT_BUILD=1 EXIT_USAGE=2 EXIT_NO_GO=3

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
versions_file="${repo_root}/k8s/versions.env"
tools_dir="${KS_TOOLS_DIR:-${HOME}/.cache/kube-sentiment/tools}"
bin_dir="${tools_dir}/bin"
all_tools=(helm kubeconform helm-docs actionlint kwok etcd controlplane)
real_node_tools=(node coredns kserve-manager traefik)
bench_tools=(ghz)

log() { printf '[build-tools] %s\n' "$*" >&2; }

die() {
  local code="$1"
  shift
  printf '[build-tools] ERROR: %s\n' "$*" >&2
  exit "${code}"
}

loud_no_go() {
  {
    printf '\n%s\n' '************************************************************************'
    printf '[build-tools] %s\n' "$@"
    printf '%s\n\n' '************************************************************************'
  } >&2
  exit "${EXIT_NO_GO}"
}

# shellcheck source=/dev/null  # KEY=value lines only
source "${versions_file}"
for var in KUBERNETES_VERSION ETCD_VERSION KWOK_VERSION HELM_VERSION KUBECONFORM_VERSION HELM_DOCS_VERSION \
  ACTIONLINT_VERSION KSERVE_VERSION COREDNS_VERSION TRAEFIK_VERSION; do
  [[ -n "${!var:-}" ]] || die "${EXIT_USAGE}" "${var} is not set in ${versions_file}"
done

export CGO_ENABLED=0
# Keep any GOFLAGS the caller set; add -trimpath (reproducible binaries) and -buildvcs=false (the wrapper
# modules live inside this git work tree, whose state says nothing about the tools).
export GOFLAGS="${GOFLAGS:+${GOFLAGS} }-trimpath -buildvcs=false"
build_date="$(date -u -d "@${SOURCE_DATE_EPOCH:-0}" +%Y-%m-%dT%H:%M:%SZ)"

require_go() {
  command -v go >/dev/null 2>&1 || loud_no_go \
    "Go is not on PATH: the Kubernetes tools (helm, kubeconform, etcd, kube-apiserver, ...) are built from" \
    "pinned Go modules. Install Go >= 1.24 (https://go.dev/dl/ or 'apt-get install golang-go') and re-run." \
    "The cluster test tier (pytest -m cluster) is SKIPPED until then."
}

# After a failed build: if the module proxy cannot be reached, that is the cause (exit 3), not the tool.
check_proxy_or_exit() {
  local probe_dir
  probe_dir="$(mktemp -d)"
  if ! (cd "${probe_dir}" && GOFLAGS='' timeout 60 go list -m -json golang.org/x/mod@latest >/dev/null 2>&1); then
    rm -rf "${probe_dir}"
    loud_no_go \
      "The Go module proxy ($(go env GOPROXY)) is unreachable and the module cache lacks what is needed." \
      "Give this machine access to the proxy (or point GOPROXY at a reachable mirror) and re-run." \
      "The cluster test tier (pytest -m cluster) is SKIPPED until then."
  fi
  rm -rf "${probe_dir}"
}

# run_step <tool> <step description> <command...>: run a build step and explain a failure.
run_step() {
  local tool="$1" step="$2"
  shift 2
  log "${tool}: ${step}"
  if ! "$@"; then
    check_proxy_or_exit
    die "${EXIT_BUILD}" "${tool}: step '${step}' failed (command: $*). See the Go output above."
  fi
}

# link_tool <dir> <binary...>: point bin/<binary> at ../<dir>/<binary>.
link_tool() {
  local dir="$1" binary
  shift
  mkdir -p "${bin_dir}"
  for binary in "$@"; do
    ln -sfn "../${dir}/${binary}" "${bin_dir}/${binary}"
  done
}

# is_built <dir> <binary...>: all binaries of a tool version exist.
is_built() {
  local dir="$1" binary
  shift
  for binary in "$@"; do
    [[ -x "${tools_dir}/${dir}/${binary}" ]] || return 1
  done
}

# build_tool <tool> <dir> <binaries> <builder>: skip when built, else build into a temp dir and move it in place.
build_tool() {
  local tool="$1" dir="$2" binaries="$3" builder="$4" staging start
  local -a bins
  read -r -a bins <<<"${binaries}"
  if is_built "${dir}" "${bins[@]}"; then
    log "${tool}: ${dir} already built, skipping"
    link_tool "${dir}" "${bins[@]}"
    return 0
  fi
  require_go
  start="${SECONDS}"
  staging="$(mktemp -d "${tools_dir}/.${dir}.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: the trap must remove this staging dir
  trap "rm -rf '${staging}'" EXIT
  "${builder}" "${staging}"
  local binary
  for binary in "${bins[@]}"; do
    [[ -x "${staging}/${binary}" ]] || die "${EXIT_BUILD}" "${tool}: build produced no '${binary}' binary"
  done
  rm -rf "${tools_dir:?}/${dir}"
  mv "${staging}" "${tools_dir}/${dir}"
  trap - EXIT
  link_tool "${dir}" "${bins[@]}"
  log "${tool}: built ${dir} in $((SECONDS - start))s"
}

# Major/minor of k8s.io/client-go required by a module's go.mod, as helm's Makefile derives them.
client_go_minor() {
  local gomod="$1"
  awk '$1 == "k8s.io/client-go" { sub(/^v0\./, "", $2); split($2, v, "."); print v[1] }' "${gomod}"
}

build_helm() {
  local out="$1" gomod minor
  run_step helm "download helm.sh/helm/v3@${HELM_VERSION}" \
    go mod download helm.sh/helm/v3@"${HELM_VERSION}"
  gomod="$(go mod download -json helm.sh/helm/v3@"${HELM_VERSION}" | awk -F'"' '$2 == "GoMod" { print $4 }')"
  minor="$(client_go_minor "${gomod}")"
  [[ -n "${minor}" ]] || die "${EXIT_BUILD}" "helm: cannot find k8s.io/client-go in ${gomod}"
  local pkg=helm.sh/helm/v3
  local ldflags="-s -w -X ${pkg}/internal/version.version=${HELM_VERSION}"
  ldflags+=" -X ${pkg}/internal/version.gitTreeState=clean"
  ldflags+=" -X ${pkg}/pkg/lint/rules.k8sVersionMajor=1 -X ${pkg}/pkg/lint/rules.k8sVersionMinor=${minor}"
  ldflags+=" -X ${pkg}/pkg/chartutil.k8sVersionMajor=1 -X ${pkg}/pkg/chartutil.k8sVersionMinor=${minor}"
  run_step helm "go install ${pkg}/cmd/helm@${HELM_VERSION}" \
    env GOBIN="${out}" go install -ldflags "${ldflags}" "${pkg}/cmd/helm@${HELM_VERSION}"
}

build_kubeconform() {
  local out="$1"
  run_step kubeconform "go install github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}" \
    env GOBIN="${out}" go install -ldflags "-s -w -X main.version=${KUBECONFORM_VERSION}" \
    "github.com/yannh/kubeconform/cmd/kubeconform@${KUBECONFORM_VERSION}"
}

build_helm_docs() {
  local out="$1"
  run_step helm-docs "go install github.com/norwoodj/helm-docs/cmd/helm-docs@${HELM_DOCS_VERSION}" \
    env GOBIN="${out}" go install -ldflags "-s -w -X main.version=${HELM_DOCS_VERSION#v}" \
    "github.com/norwoodj/helm-docs/cmd/helm-docs@${HELM_DOCS_VERSION}"
}

build_actionlint() {
  local out="$1"
  run_step actionlint "go install github.com/rhysd/actionlint/cmd/actionlint@${ACTIONLINT_VERSION}" \
    env GOBIN="${out}" go install \
    -ldflags "-s -w -X github.com/rhysd/actionlint.version=${ACTIONLINT_VERSION}" \
    "github.com/rhysd/actionlint/cmd/actionlint@${ACTIONLINT_VERSION}"
}

build_ghz() {
  local out="$1"
  [[ -n "${GHZ_VERSION:-}" ]] || die "${EXIT_USAGE}" "GHZ_VERSION is not set in ${versions_file}"
  run_step ghz "go install github.com/bojand/ghz/cmd/ghz@${GHZ_VERSION}" \
    env GOBIN="${out}" go install -ldflags "-s -w -X main.version=${GHZ_VERSION#v}" \
    "github.com/bojand/ghz/cmd/ghz@${GHZ_VERSION}"
}

build_kwok() {
  local out="$1" consts=sigs.k8s.io/kwok/pkg/consts
  local ldflags="-s -w -X ${consts}.Version=${KWOK_VERSION#v} -X ${consts}.KubeVersion=${KUBERNETES_VERSION#v}"
  # One go install for both commands so they share compiled packages.
  run_step kwok "go install sigs.k8s.io/kwok/cmd/{kwok,kwokctl}@${KWOK_VERSION}" \
    env GOBIN="${out}" go install -ldflags "${ldflags}" \
    "sigs.k8s.io/kwok/cmd/kwok@${KWOK_VERSION}" "sigs.k8s.io/kwok/cmd/kwokctl@${KWOK_VERSION}"
}

# A wrapper module under k8s/tools/<name> must require <module> at the pinned version.
check_wrapper() {
  local name="$1" module="$2" version="$3" gomod="${repo_root}/k8s/tools/$1/go.mod"
  [[ -f "${gomod}" ]] || die "${EXIT_BUILD}" "${name}: wrapper module ${gomod} is missing"
  if ! awk -v m="${module}" -v v="${version}" '$1 == "require" { $1 = ""; $0 = $0 } $1 == m && $2 == v { found = 1 } END { exit !found }' "${gomod}"; then
    die "${EXIT_BUILD}" "${name}: ${gomod} does not require ${module} ${version} (k8s/versions.env)." \
      "Run 'scripts/build-tools.sh --sync-modules' and commit the result."
  fi
}

build_etcd() {
  local out="$1" wrapper="${repo_root}/k8s/tools/etcd"
  check_wrapper etcd go.etcd.io/etcd/server/v3 "${ETCD_VERSION}"
  # etcd 3.5's server module has local replace directives, so 'go install @version' is refused; the wrapper
  # module requires the published api/client/pkg/raft modules at the same version instead.
  # The version is a constant of go.etcd.io/etcd/api/v3 (the module version); no git SHA is known here.
  run_step etcd "go build go.etcd.io/etcd/server/v3 (wrapper k8s/tools/etcd)" \
    go -C "${wrapper}" build -ldflags "-s -w" -o "${out}/etcd" go.etcd.io/etcd/server/v3
}

build_controlplane() {
  local out="$1" wrapper="${repo_root}/k8s/tools/controlplane" v="${KUBERNETES_VERSION}"
  check_wrapper controlplane k8s.io/kubernetes "${v}"
  local ldflags
  ldflags="$(k8s_ldflags)"
  # One go build for the three binaries: they share most of their packages.
  run_step controlplane "go build kube-apiserver kube-controller-manager kube-scheduler (wrapper k8s/tools/controlplane)" \
    go -C "${wrapper}" build -ldflags "${ldflags}" -o "${out}/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler
}

# ------------------------------------------------------------------------------------------------ CRDs (--crds)
crds_dir="${tools_dir}/crds"

# copy_kustomized_crds <dir> <out>: copy the CRD files listed under `resources:` in <dir>/kustomization.yaml
# (following listed folders) flat into <out>; other kinds (Gateway API's ValidatingAdmissionPolicy) are left out.
copy_kustomized_crds() {
  local dir="$1" out="$2" entry
  [[ -f "${dir}/kustomization.yaml" ]] || die "${EXIT_BUILD}" "crds: ${dir}/kustomization.yaml is missing"
  while read -r entry; do
    entry="${entry#./}"
    if [[ -d "${dir}/${entry}" ]]; then
      copy_kustomized_crds "${dir}/${entry}" "${out}"
    elif [[ ! -f "${dir}/${entry}" ]]; then
      die "${EXIT_BUILD}" "crds: ${dir}/kustomization.yaml lists ${entry}, which is missing"
    elif grep -q '^kind: CustomResourceDefinition$' "${dir}/${entry}"; then
      cp "${dir}/${entry}" "${out}/"
    fi
  done < <(awk '/^resources:/ { on = 1; next } /^[^ #-]/ { on = 0 } on && $1 == "-" { print $2 }' \
    "${dir}/kustomization.yaml")
}

# fetch_crd_set <name> <module> <version> <kustomization dir> [file ...]: fill crds/<name>-<version>/ from the
# module's config/<kustomization dir> (the CRDs) and config/<file> (kept at that relative path).
fetch_crd_set() {
  local name="$1" module="$2" version="$3" kdir="$4" dir="$1-$3" info src sum staging file
  shift 4
  if [[ -f "${crds_dir}/${dir}/SOURCE" ]]; then
    log "crds: ${dir} already fetched, skipping"
    return 0
  fi
  require_go
  run_step crds "download ${module}@${version}" go mod download "${module}@${version}"
  info="$(go mod download -json "${module}@${version}")"
  src="$(awk -F'"' '$2 == "Dir" { print $4 }' <<<"${info}")"
  sum="$(awk -F'"' '$2 == "Sum" { print $4 }' <<<"${info}")"
  [[ -d "${src}/config" ]] || die "${EXIT_BUILD}" "crds: ${module}@${version} has no config/ folder (${src})"
  staging="$(mktemp -d "${crds_dir}/.${dir}.XXXXXX")"
  # shellcheck disable=SC2064  # expand now: the trap must remove this staging dir
  trap "rm -rf '${staging}'" EXIT
  copy_kustomized_crds "${src}/config/${kdir}" "${staging}"
  compgen -G "${staging}/*.yaml" >/dev/null || die "${EXIT_BUILD}" "crds: no CRD found in ${src}/config/${kdir}"
  for file in "$@"; do
    [[ -f "${src}/config/${file}" ]] || die "${EXIT_BUILD}" "crds: ${module}@${version} has no config/${file}"
    mkdir -p "${staging}/$(dirname "${file}")"
    cp "${src}/config/${file}" "${staging}/${file}"
  done
  {
    printf '%s %s %s\n' "${module}" "${version}" "${sum}"
    printf 'config/%s\n' "${kdir}" "$@"
  } >"${staging}/SOURCE"
  chmod -R u+w,go+rX "${staging}" # module cache files are read-only; the cache must stay removable
  rm -rf "${crds_dir:?}/${dir}"
  mv "${staging}" "${crds_dir}/${dir}"
  trap - EXIT
  log "crds: fetched ${dir} ($(find "${crds_dir}/${dir}" -maxdepth 1 -name '*.yaml' | wc -l) CRD files)"
}

fetch_crds() {
  local var
  for var in KSERVE_VERSION GATEWAY_API_VERSION; do
    [[ -n "${!var:-}" ]] || die "${EXIT_USAGE}" "${var} is not set in ${versions_file}"
  done
  fetch_crd_set kserve github.com/kserve/kserve "${KSERVE_VERSION}" crd/full configmap/inferenceservice.yaml
  fetch_crd_set gateway-api sigs.k8s.io/gateway-api "${GATEWAY_API_VERSION}" crd
}

# k8s_ldflags: the version stamps of a Kubernetes binary (what its Makefile sets).
k8s_ldflags() {
  local v="${KUBERNETES_VERSION}" major minor ldflags="-s -w" pkg
  major="${v#v}"
  minor="${major#*.}"
  minor="${minor%%.*}"
  major="${major%%.*}"
  for pkg in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    ldflags+=" -X ${pkg}.gitVersion=${v} -X ${pkg}.gitMajor=${major} -X ${pkg}.gitMinor=${minor}"
    ldflags+=" -X ${pkg}.gitTreeState=clean -X ${pkg}.buildDate=${build_date}"
  done
  printf '%s\n' "${ldflags}"
}

# --- real-node tools -------------------------------------------------------------------------------------------
# kubelet and kube-proxy from the control plane's wrapper module (same pins, shared compiled packages).
build_node() {
  local out="$1" wrapper="${repo_root}/k8s/tools/controlplane"
  check_wrapper controlplane k8s.io/kubernetes "${KUBERNETES_VERSION}"
  run_step node "go build kubelet kube-proxy (wrapper k8s/tools/controlplane)" \
    go -C "${wrapper}" build -ldflags "$(k8s_ldflags)" -o "${out}/" \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy
}

build_coredns() {
  local out="$1"
  run_step coredns "go install github.com/coredns/coredns@${COREDNS_VERSION}" \
    env GOBIN="${out}" go install -ldflags "-s -w" "github.com/coredns/coredns@${COREDNS_VERSION}"
}

# module_dir <module@version>: download a module and print its directory in the module cache.
module_dir() {
  go mod download -json "$1" | awk -F'"' '$2 == "Dir" { print $4 }'
}

# KServe's and Traefik's go.mod have replace directives, so 'go install pkg@version' is refused: build inside
# the downloaded (read-only) module directory, whose go.sum pins every dependency.
build_kserve_manager() {
  local out="$1" dir
  run_step kserve-manager "download github.com/kserve/kserve@${KSERVE_VERSION}" \
    go mod download github.com/kserve/kserve@"${KSERVE_VERSION}"
  dir="$(module_dir github.com/kserve/kserve@"${KSERVE_VERSION}")"
  run_step kserve-manager "go build ./cmd/manager (in ${dir})" \
    go -C "${dir}" build -ldflags "-s -w" -o "${out}/kserve-manager" ./cmd/manager
}

build_traefik() {
  local out="$1" dir
  run_step traefik "download github.com/traefik/traefik/v3@${TRAEFIK_VERSION}" \
    go mod download github.com/traefik/traefik/v3@"${TRAEFIK_VERSION}"
  dir="$(module_dir github.com/traefik/traefik/v3@"${TRAEFIK_VERSION}")"
  run_step traefik "go build ./cmd/traefik (in ${dir})" \
    go -C "${dir}" build -ldflags "-s -w -X github.com/traefik/traefik/v3/pkg/version.Version=${TRAEFIK_VERSION}" \
    -o "${out}/traefik" ./cmd/traefik
}

build() {
  case "$1" in
    helm) build_tool helm "helm-${HELM_VERSION}" helm build_helm ;;
    kubeconform) build_tool kubeconform "kubeconform-${KUBECONFORM_VERSION}" kubeconform build_kubeconform ;;
    helm-docs) build_tool helm-docs "helm-docs-${HELM_DOCS_VERSION}" helm-docs build_helm_docs ;;
    actionlint) build_tool actionlint "actionlint-${ACTIONLINT_VERSION}" actionlint build_actionlint ;;
    kwok) build_tool kwok "kwok-${KWOK_VERSION}" "kwok kwokctl" build_kwok ;;
    etcd) build_tool etcd "etcd-${ETCD_VERSION}" etcd build_etcd ;;
    controlplane)
      build_tool controlplane "kubernetes-${KUBERNETES_VERSION}" \
        "kube-apiserver kube-controller-manager kube-scheduler" build_controlplane
      ;;
    node) build_tool node "kubernetes-node-${KUBERNETES_VERSION}" "kubelet kube-proxy" build_node ;;
    coredns) build_tool coredns "coredns-${COREDNS_VERSION}" coredns build_coredns ;;
    kserve-manager) build_tool kserve-manager "kserve-manager-${KSERVE_VERSION}" kserve-manager build_kserve_manager ;;
    traefik) build_tool traefik "traefik-${TRAEFIK_VERSION}" traefik build_traefik ;;
    ghz) build_tool ghz "ghz-${GHZ_VERSION}" ghz build_ghz ;;
    *) die "${EXIT_USAGE}" "unknown tool '$1'" ;;
  esac
}

canonical() {
  case "$1" in
    kwokctl) echo kwok ;;
    kube-apiserver | kube-controller-manager | kube-scheduler | kubernetes) echo controlplane ;;
    kubelet | kube-proxy) echo node ;;
    *) echo "$1" ;;
  esac
}

# Rewrite the wrapper go.mod files from k8s/versions.env (needs the module proxy).
sync_modules() {
  require_go
  local cp="${repo_root}/k8s/tools/controlplane" etcd="${repo_root}/k8s/tools/etcd" kgomod staging_v
  run_step controlplane "download k8s.io/kubernetes@${KUBERNETES_VERSION}" \
    go mod download k8s.io/kubernetes@"${KUBERNETES_VERSION}"
  kgomod="$(go mod download -json k8s.io/kubernetes@"${KUBERNETES_VERSION}" | awk -F'"' '$2 == "GoMod" { print $4 }')"
  staging_v="v0.${KUBERNETES_VERSION#v1.}"
  (
    cd "${cp}"
    go mod edit -require="k8s.io/kubernetes@${KUBERNETES_VERSION}"
    # Every staging module is required as v0.0.0 by k8s.io/kubernetes; map each to its published release.
    # If the proxy refuses that exact release, fall back to the newest earlier patch of the same minor and
    # say so loudly (the fallback is recorded in go.mod and must be reviewed).
    awk '$1 ~ /^k8s\.io\// && $2 == "v0.0.0" { print $1 }' "${kgomod}" | sort -u | while read -r mod; do
      local want="${staging_v}" patch
      if ! go mod download "${mod}@${want}" 2>/dev/null; then
        patch="${staging_v##*.}"
        want=""
        while ((patch > 0)); do
          patch=$((patch - 1))
          if go mod download "${mod}@${staging_v%.*}.${patch}" 2>/dev/null; then
            want="${staging_v%.*}.${patch}"
            break
          fi
        done
        [[ -n "${want}" ]] || die "${EXIT_BUILD}" "controlplane: no published ${mod} ${staging_v%.*}.x is downloadable"
        log "WARNING: ${mod}@${staging_v} is not downloadable from $(go env GOPROXY); using ${want}"
      fi
      go mod edit -replace="${mod}=${mod}@${want}"
    done
    run_step controlplane "go mod tidy (k8s/tools/controlplane)" go mod tidy
  )
  (
    cd "${etcd}"
    # The server's own go.mod requires its siblings (api, client, pkg, raft) at the same release.
    go mod edit -require="go.etcd.io/etcd/server/v3@${ETCD_VERSION}"
    run_step etcd "go mod tidy (k8s/tools/etcd)" go mod tidy
  )
  log "wrapper modules updated; review and commit k8s/tools/*/go.mod and go.sum"
}

main() {
  local -a requested=()
  local arg tool crds=false
  for arg in "$@"; do
    case "${arg}" in
      -h | --help)
        sed -n '2,28p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
        exit 0
        ;;
      --print-bin) ;; # accepted for clarity: the bin directory is always the last line on stdout
      --crds) crds=true ;;
      --real-node) requested+=("${real_node_tools[@]}") ;;
      --sync-modules)
        sync_modules
        exit 0
        ;;
      -*) die "${EXIT_USAGE}" "unknown option '${arg}'" ;;
      *)
        tool="$(canonical "${arg}")"
        [[ " ${all_tools[*]} ${real_node_tools[*]} ${bench_tools[*]} " == *" ${tool} "* ]] ||
          die "${EXIT_USAGE}" "unknown tool '${arg}' (known: ${all_tools[*]} ${real_node_tools[*]} ${bench_tools[*]} kwokctl kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy)"
        requested+=("${tool}")
        ;;
    esac
  done
  if [[ "${crds}" == true && ${#requested[@]} -gt 0 ]]; then
    die "${EXIT_USAGE}" "--crds takes no tool names (run the two separately)"
  fi
  mkdir -p "${tools_dir}" "${bin_dir}" "${crds_dir}"
  # Serialise concurrent runs (two test sessions, or a developer and a test) on the same cache; fetching the CRDs
  # has its own lock so that it never waits for a long build.
  if command -v flock >/dev/null 2>&1; then
    if [[ "${crds}" == true ]]; then exec 9>"${crds_dir}/.lock"; else exec 9>"${tools_dir}/.lock"; fi
    flock 9
  fi
  if [[ "${crds}" == true ]]; then
    fetch_crds
    printf '%s\n' "${crds_dir}"
    return 0
  fi
  for tool in "${all_tools[@]}"; do
    if [[ ${#requested[@]} -eq 0 ]] || [[ " ${requested[*]} " == *" ${tool} "* ]]; then
      build "${tool}"
    fi
  done
  for tool in "${real_node_tools[@]}" "${bench_tools[@]}"; do
    if [[ " ${requested[*]} " == *" ${tool} "* ]]; then
      build "${tool}"
    fi
  done
  printf '%s\n' "${bin_dir}"
}

main "$@"; exit  # one line: bash stops here even if this file is edited while it runs
