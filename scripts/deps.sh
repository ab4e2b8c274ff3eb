#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Install the Debian packages the build needs, only when some are missing.
# Idempotent and quiet when everything is there.  Run as root (or via sudo).
#   scripts/deps.sh          what building and `make demo` need
#   scripts/deps.sh test     plus the real readers the tests check output
#                            with (go tool pprof, headless Chromium, and
#                            Pyroscope's flamegraph component: `npm ci` of
#                            tests/readers/package-lock.json)
set -euo pipefail
pkgs=(
	build-essential pkg-config clang llvm lld libclang-rt-14-dev
	libtsan2	# gcc's ThreadSanitizer runtime (`make tsan`; gcc-12 pulls it in too)
	liburcu-dev libjemalloc-dev libxxhash-dev zlib1g-dev
	libcriterion-dev libjansson-dev
	libmicrohttpd-dev xxd curl libcurl4-openssl-dev libncurses-dev
	libbpf-dev bpftool libelf-dev libdw-dev
	libprotobuf-c-dev protobuf-c-compiler
	gnuplot-nox linux-perf
)
if [ "${1:-}" = test ]; then
	pkgs+=(golang-go chromium libxml2-utils nodejs tmux)
	# Debian's npm, unless a nodejs that bundles its own (NodeSource) is there.
	command -v npm >/dev/null || pkgs+=(npm)
fi
# The npm packages of tests/readers, exactly as locked; again only when the
# lock changed since the last install.  Offline, the reader tests skip.
readers_npm() {
	[ "${1:-}" = test ] || return 0
	local dir
	dir="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/tests/readers"
	cmp -s "$dir/package-lock.json" "$dir/node_modules/.shardtrie-lock" && return 0
	echo "deps: npm ci in tests/readers" >&2
	if (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2); then
		cp "$dir/package-lock.json" "$dir/node_modules/.shardtrie-lock"
	else
		echo "deps: npm ci failed: the Pyroscope reader tests will skip" >&2
	fi
}
missing=()
for p in "${pkgs[@]}"; do
	st=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
	[ "$st" = "install ok installed" ] || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
	readers_npm "${1:-}"
	exit 0
fi
echo "deps: installing ${missing[*]}" >&2
SUDO=
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >&2
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
readers_npm "${1:-}"
