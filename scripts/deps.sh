#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian packages the build needs, only when some are missing.
# Idempotent and quiet when everything is there.  Run as root (or via sudo).
#   scripts/deps.sh          what building and `make demo` need
#   scripts/deps.sh test     plus the real readers the tests check output
#                            with (go tool pprof, headless Chromium)
set -euo pipefail
pkgs=(
	build-essential pkg-config clang llvm lld libclang-rt-14-dev
	liburcu-dev libjemalloc-dev libxxhash-dev zlib1g-dev
	libcriterion-dev libjansson-dev
	libmicrohttpd-dev xxd curl
	libbpf-dev bpftool libelf-dev libdw-dev
	libprotobuf-c-dev protobuf-c-compiler
	gnuplot-nox linux-perf
)
if [ "${1:-}" = test ]; then
	pkgs+=(golang-go chromium libxml2-utils)
fi
missing=()
for p in "${pkgs[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
echo "deps: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
