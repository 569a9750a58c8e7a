#!/usr/bin/env bash
# Install the Debian packages a real node needs (containerd, runc, CNI plugins, iptables, conntrack, ipset, nftables)
# and those scripts/build-images.sh needs (debootstrap, buildah, gcc), when any is missing. Idempotent; as root.
#
#   scripts/realnode-deps.sh [--check]     --check: only say what is missing (exit 69 when something is)
#
# Exit codes: 0 everything present; 69 something missing (with --check) or cannot be installed (not root, no apt).
set -euo pipefail

packages=(containerd runc containernetworking-plugins iptables conntrack ipset nftables debootstrap buildah gcc
  libc6-dev)
missing=()
for pkg in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q 'install ok installed' || missing+=("${pkg}")
done
if [[ ${#missing[@]} -eq 0 ]]; then
  exit 0
fi
if [[ "${1:-}" == --check ]]; then
  printf 'realnode-deps: missing Debian packages: %s\n' "${missing[*]}" >&2
  exit 69
fi
if [[ "$(id -u)" -ne 0 ]] || ! command -v apt-get >/dev/null 2>&1; then
  printf 'realnode-deps: cannot install %s (needs root and apt-get)\n' "${missing[*]}" >&2
  exit 69
fi
printf 'realnode-deps: apt-get install %s\n' "${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
if ! { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${missing[@]}"; } >&2; then
  printf 'realnode-deps: apt-get install failed\n' >&2
  exit 69
fi
