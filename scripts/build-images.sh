#!/usr/bin/env bash
# Build the images of the real-pods tier without any registry, into a cache outside the repository:
#   pause        the pod sandbox image: k8s/images/pause.c compiled statically (gcc), FROM scratch
#   ks-debian    Debian bookworm (debootstrap --variant=minbase) with curl and ca-certificates: the helm test and
#                client-pod image (what curlimages/curl is on kind)
#   ks-python    ks-debian plus Debian's Python 3.11 and pip: the base image the Dockerfile is built FROM
#   kube-sentiment  the project's own Dockerfile, built by buildah with --build-arg PYTHON_IMAGE=<ks-python>
# Each one is a docker-archive in ${KS_IMAGES_DIR:-~/.cache/kube-sentiment/images}/archives; its tag carries a hash
# of its inputs, so an unchanged image is not built again. The last line on stdout is the path of images.env
# (KEY=value: KS_IMAGE_<NAME>=<reference> and KS_ARCHIVE_<NAME>=<path>), which scripts/realnode.sh imports into
# containerd's k8s.io namespace; the digests used in Helm values are read from containerd after that import.
#
#   scripts/build-images.sh [--force]
#     --force  rebuild every image
#
# Needs root, debootstrap, buildah and gcc (Debian packages; scripts/realnode-deps.sh installs them) and the
# Debian archive and PyPI (the apt sources of this machine name the archive; KS_DEBIAN_MIRROR overrides it).
# Exit codes: 0 ok; 1 a build failed; 2 usage; 69 a needed program or the package archive is unavailable.
set -euo pipefail

# Everything runs inside main (bash has read the whole function before it starts, so editing this file while a
# build runs is safe); shellcheck cannot see the calls of the functions defined in it.
# shellcheck disable=SC2329
main() {

readonly EXIT_BUILD=1 EXIT_USAGE=2 EXIT_UNAVAILABLE=69
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cache="${KS_IMAGES_DIR:-${HOME}/.cache/kube-sentiment/images}"
archives="${cache}/archives"
readonly suite=bookworm debian_packages=ca-certificates,curl python_packages="python3 python3-pip python3-venv"
# Bump when the way the root filesystems are made changes (their cache key; the package lists are in it too).
readonly rootfs_recipe=1

log() { printf '[build-images] %s\n' "$*" >&2; }
die() {
  local code="$1"
  shift
  printf '[build-images] ERROR: %s\n' "$*" >&2
  exit "${code}"
}

force=false
for arg in "$@"; do
  case "${arg}" in
    --force) force=true ;;
    -h | --help)
      sed -n '2,19p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) die "${EXIT_USAGE}" "unknown argument '${arg}' (see --help)" ;;
  esac
done

[[ "$(id -u)" -eq 0 ]] || die "${EXIT_UNAVAILABLE}" "must run as root (debootstrap, buildah storage)"
for bin in debootstrap buildah gcc sha256sum tar; do
  command -v "${bin}" >/dev/null 2>&1 || die "${EXIT_UNAVAILABLE}" "${bin} is not installed (scripts/realnode-deps.sh)"
done

# The Debian archive this machine's apt uses (deb822 sources or sources.list), unless KS_DEBIAN_MIRROR is set.
debian_mirror() {
  if [[ -n "${KS_DEBIAN_MIRROR:-}" ]]; then
    printf '%s\n' "${KS_DEBIAN_MIRROR}"
    return
  fi
  local found
  found="$(awk '/^URIs:/ { uri = $2 } /^Suites:/ && / '"${suite}"'( |$)/ && uri != "" { print uri; exit }' \
    /etc/apt/sources.list.d/*.sources 2>/dev/null || true)"
  if [[ -z "${found}" && -f /etc/apt/sources.list ]]; then
    found="$(awk '$1 == "deb" && $3 == "'"${suite}"'" { print $2; exit }' /etc/apt/sources.list)"
  fi
  [[ -n "${found}" ]] || die "${EXIT_UNAVAILABLE}" "no Debian ${suite} archive in this machine's apt sources; set KS_DEBIAN_MIRROR"
  printf '%s\n' "${found}"
}

# short_hash: a short content hash of stdin, for image tags.
short_hash() { sha256sum | cut -c1-12; }

# Buildah keeps its layers under the cache (later builds reuse them) and its run state under /run.
runroot=/run/kube-sentiment-buildah
bah() { buildah --root "${cache}/buildah" --runroot "${runroot}" --storage-driver overlay "$@"; }
cleanup() {
  # Containers of an interrupted build and their overlay mounts must not outlive this script.
  bah rm --all >/dev/null 2>&1 || true
  bah unmount --all >/dev/null 2>&1 || true
  if [[ -d "${runroot}" ]]; then
    grep -o " ${runroot}[^ ]*" /proc/self/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
    rm -rf "${runroot}"
  fi
}
trap cleanup EXIT

mkdir -p "${archives}" "${cache}/rootfs"

# save <reference> <archive>: write a built image as a docker-archive (the format ctr imports with its name).
save() {
  rm -f "$2.tmp"
  bah push --quiet "$1" "docker-archive:$2.tmp:$1" >/dev/null
  mv "$2.tmp" "$2"
}

# have <archive>: the archive exists and --force was not given.
have() { [[ -s "$1" ]] && ! "${force}"; }

# --- pause ----------------------------------------------------------------------------------------------------
pause_tag="$(short_hash <"${repo_root}/k8s/images/pause.c")"
pause_ref="localhost/kube-sentiment/pause:${pause_tag}"
pause_archive="${archives}/pause-${pause_tag}.tar"
if have "${pause_archive}"; then
  log "pause: ${pause_ref} cached"
else
  log "pause: gcc -static k8s/images/pause.c"
  work="$(mktemp -d)"
  gcc -Os -static -o "${work}/pause" "${repo_root}/k8s/images/pause.c" || die "${EXIT_BUILD}" "pause: gcc failed"
  ctr="$(bah from scratch)"
  bah copy "${ctr}" "${work}/pause" /pause >/dev/null
  bah config --entrypoint '["/pause"]' --user 65535:65535 "${ctr}"
  bah commit --quiet --rm "${ctr}" "${pause_ref}" >/dev/null
  save "${pause_ref}" "${pause_archive}"
  rm -rf "${work}"
fi

# --- Debian root filesystems ----------------------------------------------------------------------------------
# rootfs <name> <key> <setup function>: a cached tarball of a root filesystem built by <setup function> <dir>.
rootfs() {
  local name="$1" setup="$3" tarball="${cache}/rootfs/$1-$2.tar" dir
  if [[ -s "${tarball}" ]] && ! "${force}"; then
    printf '%s\n' "${tarball}"
    return
  fi
  dir="$(mktemp -d "${cache}/rootfs/.${name}.XXXXXX")"
  "${setup}" "${dir}"
  # Nothing of the build host inside: apt lists and caches, logs, the host's resolv.conf.
  rm -rf "${dir}"/var/lib/apt/lists/* "${dir}"/var/cache/apt/*.bin "${dir}"/var/cache/apt/archives/*.deb \
    "${dir}"/var/log/* "${dir}/etc/resolv.conf" "${dir}"/tmp/* "${dir}"/root/.cache
  tar --numeric-owner --xattrs -C "${dir}" -cf "${tarball}.tmp" .
  mv "${tarball}.tmp" "${tarball}"
  rm -rf "${dir}"
  printf '%s\n' "${tarball}"
}

setup_debian() {
  local dir="$1" mirror
  mirror="$(debian_mirror)"
  log "ks-debian: debootstrap --variant=minbase ${suite} (${debian_packages}) from this machine's Debian archive"
  debootstrap --variant=minbase --include="${debian_packages}" "${suite}" "$1" "${mirror}" >&2 ||
    die "${EXIT_UNAVAILABLE}" "debootstrap failed (is the Debian archive reachable?)"
}

setup_python() {
  local dir="$1"
  tar -C "${dir}" -xf "${debian_tar}"
  cp /etc/resolv.conf "${dir}/etc/resolv.conf"
  log "ks-python: apt-get install ${python_packages} (chroot)"
  chroot "${dir}" sh -ec "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ${python_packages}" >&2 ||
    die "${EXIT_UNAVAILABLE}" "apt-get in the ks-python root filesystem failed"
  # The official python images install Python under /usr/local and let pip install into it; the Dockerfile names
  # /usr/local/bin/python3.11 and runs 'pip install'. Debian's Python is /usr/bin/python3.11 and refuses pip
  # installs (PEP 668 marker): link it, drop the marker.
  ln -sf /usr/bin/python3.11 "${dir}/usr/local/bin/python3.11"
  ln -sf /usr/bin/python3 "${dir}/usr/local/bin/python3"
  ln -sf /usr/bin/python3 "${dir}/usr/local/bin/python"
  rm -f "${dir}"/usr/lib/python3.*/EXTERNALLY-MANAGED
}

# image_from_rootfs <reference> <tarball> <cmd json> [config args...]: an image of one layer.
image_from_rootfs() {
  local ref="$1" tarball="$2" cmd="$3" ctr
  shift 3
  ctr="$(bah from scratch)"
  bah add "${ctr}" "${tarball}" / >/dev/null
  bah config --cmd "${cmd}" --env LANG=C.UTF-8 "$@" "${ctr}"
  bah commit --quiet --rm "${ctr}" "${ref}" >/dev/null
}

debian_key="$(printf '%s\n%s\n%s\n' "${suite}" "${debian_packages}" "${rootfs_recipe}" | short_hash)"
debian_ref="localhost/kube-sentiment/ks-debian:${suite}-${debian_key}"
debian_archive="${archives}/ks-debian-${debian_key}.tar"
debian_tar="$(rootfs ks-debian "${debian_key}" setup_debian)"
if ! have "${debian_archive}"; then
  image_from_rootfs "${debian_ref}" "${debian_tar}" '["/bin/bash"]'
  save "${debian_ref}" "${debian_archive}"
fi
log "ks-debian: ${debian_ref}"

python_key="$(printf '%s\n%s\n' "${debian_key}" "${python_packages}" | short_hash)"
python_ref="localhost/kube-sentiment/ks-python:3.11-${suite}-${python_key}"
python_archive="${archives}/ks-python-${python_key}.tar"
python_tar="$(rootfs ks-python "${python_key}" setup_python)"
# The Dockerfile's FROM needs the base in buildah's store; SSL_CERT_FILE makes uv (which otherwise trusts only
# its bundled roots) use the system bundle, as Debian's pip and OpenSSL do.
if ! have "${python_archive}" || ! bah inspect "${python_ref}" >/dev/null 2>&1; then
  image_from_rootfs "${python_ref}" "${python_tar}" '["python3"]' --env SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
  save "${python_ref}" "${python_archive}"
fi
log "ks-python: ${python_ref}"

# --- kube-sentiment from the project's Dockerfile -------------------------------------------------------------
app_version="$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' "${repo_root}/helm/kube-sentiment/Chart.yaml")"
# The build context is what .dockerignore lets in: pyproject.toml, uv.lock, README.md, model/, serving/.
app_key="$(
  cd "${repo_root}"
  {
    printf '%s\n' "${python_ref}"
    git ls-files -co --exclude-standard -- Dockerfile .dockerignore pyproject.toml uv.lock README.md model serving |
      grep -v -e '/tests/' -e '__pycache__' | sort | xargs sha256sum
  } | short_hash
)"
app_ref="localhost/kube-sentiment/kube-sentiment:${app_version}-${app_key}"
app_archive="${archives}/kube-sentiment-${app_key}.tar"
if have "${app_archive}"; then
  log "kube-sentiment: ${app_ref} cached"
else
  log "kube-sentiment: buildah bud ${repo_root}/Dockerfile (PYTHON_IMAGE=${python_ref})"
  # Host network for the build's own downloads (PyPI) and the machine's CA bundle mounted read-only, so a
  # TLS-intercepting proxy's CA is trusted during the build and never stored in the image.
  bah bud --quiet --layers --network host --pull-never \
    --volume /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro \
    --build-arg "PYTHON_IMAGE=${python_ref}" -t "${app_ref}" -f "${repo_root}/Dockerfile" "${repo_root}" >&2 ||
    die "${EXIT_BUILD}" "kube-sentiment: buildah bud failed"
  save "${app_ref}" "${app_archive}"
fi

# Only the current images are kept: older archives and buildah images of earlier builds are removed.
local archive ref
for archive in "${archives}"/*.tar; do
  case "${archive}" in
    "${pause_archive}" | "${debian_archive}" | "${python_archive}" | "${app_archive}") ;;
    *) rm -f "${archive}" ;;
  esac
done
while read -r ref; do
  case "${ref}" in
    "${pause_ref}" | "${debian_ref}" | "${python_ref}" | "${app_ref}") ;;
    localhost/kube-sentiment/*) bah rmi --force "${ref}" >/dev/null 2>&1 || true ;;
  esac
done < <(bah images --format '{{.Name}}:{{.Tag}}' 2>/dev/null || true)

images_env="${cache}/images.env"
cat >"${images_env}.tmp" <<ENV
KS_IMAGE_PAUSE=${pause_ref}
KS_ARCHIVE_PAUSE=${pause_archive}
KS_IMAGE_DEBIAN=${debian_ref}
KS_ARCHIVE_DEBIAN=${debian_archive}
KS_IMAGE_PYTHON=${python_ref}
KS_ARCHIVE_PYTHON=${python_archive}
KS_IMAGE_APP=${app_ref}
KS_ARCHIVE_APP=${app_archive}
ENV
mv "${images_env}.tmp" "${images_env}"
log "images: ${images_env}"
printf '%s\n' "${images_env}"
}

main "$@"; exit  # one line: bash stops here even if this file is edited while it runs
