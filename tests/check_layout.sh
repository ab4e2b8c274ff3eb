#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# check_layout.sh BUILD_DIR - the layout rules of docs/design.md, checked on
# the sources and the built libraries (part of `make test`).
#
#   1. Each shared library exports exactly the functions its public headers
#      declare with ST_API: libshardtrie.so <-> shardtrie.h,
#      libshardtrie-formats.so <-> shardtrie_export.h + shardtrie_parse.h.
#   2. A core-internal header (engine/core/*.h) is included only by files in
#      engine/core/; a formats-internal header only inside engine/formats/.
#   3. The oracle (engine/oracle/, shardtrie_ref.h) is used only by tests/,
#      fuzz/, bench/ and itself, and nothing of it is in libshardtrie.
#   4. Arrows run one way: bpf/, live/, push/ and tui/ include no cli/
#      header; push/ none of live/ or bpf/ either, tui/ none of live/ or bpf/
#      (it is a client of the server, over HTTP); engine/ includes no header
#      of cli/, bpf/, live/, push/, tui/, tests/, fuzz/ or bench/.
#
# Prints one line per violation and exits 1 if there is any.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${1:?usage: tests/check_layout.sh BUILD_DIR}
fail=0
bad() { echo "check_layout: $*"; fail=1; }

# ---- 1. exported symbols == ST_API declarations
declared() { # the names declared ST_API in the given headers
	grep -v '^[[:space:]]*#' "$@" | tr '\n' ' ' | grep -oE 'ST_API[^;{}]*\(' |
		grep -oE '[A-Za-z_][A-Za-z0-9_]*[[:space:]]*\($' | tr -d '( ' | sort -u
}
exported() { # the functions and objects a shared library exports
	nm -D --defined-only "$1" | awk '$2 ~ /^[TWDBRV]$/ { print $3 }' | sort -u
}
check_exports() {
	local so=$1; shift
	[ -f "$so" ] || { bad "$so not built"; return; }
	local extra missing
	extra=$(comm -23 <(exported "$so") <(declared "$@"))
	missing=$(comm -13 <(exported "$so") <(declared "$@"))
	for s in $extra; do bad "$so exports $s, which no public header declares (ST_API)"; done
	for s in $missing; do bad "$so does not export $s, declared ST_API in $*"; done
}
check_exports "$B/libshardtrie.so" engine/include/shardtrie.h
check_exports "$B/libshardtrie-formats.so" engine/include/shardtrie_export.h \
	engine/include/shardtrie_parse.h

# ---- 2-4. who includes what (every tracked or new C file)
mapfile -t files < <(git ls-files -co --exclude-standard -- '*.c' '*.h' | grep -v '^fuzz/corpus/')
core_hdrs=$(cd engine/core && ls *.h)
fmt_hdrs=$(cd engine/formats && find . -name '*.h' -printf '%f\n')
cli_hdrs=$(cd cli && ls *.h)
# internal_only FILE INC FOLDER "HEADERS" WHAT: FILE, outside FOLDER, must not
# include one of FOLDER's HEADERS (a header of its own folder by that name is fine).
internal_only() {
	case "$1" in "$3"/*) return ;; esac
	local h
	for h in $4; do
		if [ "${2##*/}" = "$h" ] && [ ! -f "$(dirname "$1")/$2" ]; then
			bad "$1 includes $5 header $2"
		fi
	done
}
for f in "${files[@]}"; do
	[ -f "$f" ] || continue
	incs=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$f")
	for inc in $incs; do
		base=${inc##*/}
		internal_only "$f" "$inc" engine/core "$core_hdrs" core-internal
		internal_only "$f" "$inc" engine/formats "$fmt_hdrs" formats-internal
		if [ "$base" = shardtrie_ref.h ]; then
			case "$f" in tests/*|fuzz/*|bench/*|engine/oracle/*) ;;
			*) bad "$f includes the oracle (shardtrie_ref.h)" ;; esac
		fi
		case "$f" in bpf/*)
			for h in $cli_hdrs; do
				[ "$base" = "$h" ] && bad "$f includes CLI header $inc (arrows: cli -> bpf)"
			done ;;
		esac
		case "$f" in live/*)
			for h in $cli_hdrs; do
				[ "$base" = "$h" ] && bad "$f includes CLI header $inc (arrows: cli -> live)"
			done
			case "$inc" in *bpf/*) bad "$f includes $inc (live uses the public API only)" ;; esac ;;
		esac
		case "$f" in push/*)
			for h in $cli_hdrs; do
				[ "$base" = "$h" ] && bad "$f includes CLI header $inc (arrows: cli -> push)"
			done
			case "$inc" in *bpf/*|*live/*|live.h|server.h|http.h)
				bad "$f includes $inc (push uses the public API only)" ;; esac ;;
		esac
		case "$f" in tui/*)
			for h in $cli_hdrs; do
				[ "$base" = "$h" ] && bad "$f includes CLI header $inc (arrows: cli -> tui)"
			done
			case "$inc" in *bpf/*|*live/*) bad "$f includes $inc (tui talks to live over HTTP only)" ;; esac ;;
		esac
		case "$f" in engine/*)
			case "$inc" in *cli/*|*bpf/*|*live/*|*push/*|*tui/*|*tests/*|*fuzz/*|*bench/*)
				bad "$f includes $inc from outside engine/" ;;
			esac ;;
		esac
	done
done
if nm "$B/libshardtrie.a" "$B/libshardtrie-formats.a" 2>/dev/null | grep -q ' T st_ref_'; then
	bad "the reference trie (st_ref_*) is inside a library users link"
fi
if grep -rlE 'ST_PLANTED_BUG|fuzz-selftest only' engine/core engine/formats >/dev/null; then
	bad "planted-bug code in the library sources: $(grep -rlE 'ST_PLANTED_BUG|fuzz-selftest only' engine/core engine/formats | tr '\n' ' ')"
fi

if [ $fail -ne 0 ]; then
	echo "check_layout: FAILED (docs/design.md, 'Layout rules')"
	exit 1
fi
echo "check_layout: exports match the public headers; includes follow the layout"
