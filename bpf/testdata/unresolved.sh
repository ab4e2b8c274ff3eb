#!/bin/sh
# SPDX-License-Identifier: MIT
# unresolved.sh - the share of user frames left unresolved by `shardtrie
# record cpu` and by `perf record -g`, measured on the same run (both sample
# the same processes at the same time, cpu-clock at $HZ, default 999 Hz), for the three
# short-lived cases of docs/bpf.md "Frames of processes that have exited":
#   a: record cpu -- spin 0.5        (the command, 0.5 s, exits)
#   b: record cpu -a while sixty 30 ms processes (flash 30) run one after another
#      (b-every-process: the same run, every process sampled)
#   c: record cpu -p PID on a process (flash 600) that exits
# Counted over the workload's own samples (comm spin/flash) on both sides:
#   shardtrie: user frames = frames between the comm and the first _[k] frame
#              of each folded line (weighted), unresolved = "[unknown]";
#   perf:      user frames = callchain lines below 0xffff800000000000 in
#              `perf script`, unresolved = symbol "[unknown]" in no known
#              file ("[unknown] ([unknown])"); "no symbol" = [unknown] in a
#              known file (shardtrie shows those as "[file]").
# usage: [HZ=999] [KEEP=1] unresolved.sh BUILD_DIR [a|b|c]...   (root; perf from linux-perf)
set -eu
HZ=${HZ:-999}
B=${1:?usage: unresolved.sh BUILD_DIR [a|b|c]...}
shift
S=$B/shardtrie
W=$(mktemp -d /tmp/unresolved.XXXXXX)
trap '[ -n "${KEEP:-}" ] || rm -rf "$W"' EXIT
[ $# -gt 0 ] || set -- a b c

ours() { # folded comm-regex -> "unknown total"
	awk -v re="$2" '{
		n = $NF; sub(/ [0-9]+$/, ""); k = split($0, f, ";")
		if (f[1] !~ re) next
		for (i = 2; i <= k && f[i] !~ /_\[k\]$/; i++) { t += n; if (f[i] == "[unknown]") u += n }
	} END { printf "%d %d\n", u, t }' "$1"
}
theirs() { # perf.data comm-regex -> "unknown nosym total"
	perf script -i "$1" 2>/dev/null | awk -v re="$2" '
		/^[^ \t]/ { keep = ($1 ~ re); next }
		keep && /^[ \t]+[0-9a-f]+ / {
			a = $1; if (length(a) == 16 && a >= "ffff800000000000") next
			t++
			if ($0 ~ /\[unknown\] \(\[unknown\]\)/) u++
			else if ($2 == "[unknown]") s++
		} END { printf "%d %d %d\n", u, s, t }'
}
report() { # case ours-file perf-file comm-regex
	set -- "$1" "$2" "$3" "$4" "$(ours "$2" "$4")" "$(theirs "$3" "$4")"
	echo "$1: shardtrie $(echo "$5" | awk '{printf "%d of %d unresolved (%.2f%%)", $1, $2, $2 ? 100*$1/$2 : 0}');" \
	     "perf $(echo "$6" | awk '{printf "%d of %d unresolved (%.2f%%), %d without a symbol", $1, $3, $3 ? 100*$1/$3 : 0, $2}')"
	grep -h "user frames unresolved" "$W/err" | sed "s/^/$1:   /"
}
tracing() { # wait (bounded) for record's "tracing;" line
	i=0
	while ! grep -q "tracing;" "$W/err" 2>/dev/null; do
		i=$((i + 1)); [ $i -lt 300 ] || { echo "record never started" >&2; exit 1; }
		sleep 0.05
	done
}

for c in "$@"; do
	case $c in
	a)
		perf record -q -e cpu-clock -F $HZ -g -o "$W/p.data" -- \
			"$S" record cpu -F $HZ -o "$W/s.folded" -- "$B/bpf/spin" 0.5 2>"$W/err" >/dev/null
		report a "$W/s.folded" "$W/p.data" '^spin$' ;;
	b)
		: >"$W/err"
		"$S" record cpu -a -F $HZ -d 60 -o "$W/s.folded" 2>"$W/err" & rp=$!
		tracing
		perf record -q -a -e cpu-clock -F $HZ -g -o "$W/p.data" -- \
			sh -c "for i in \$(seq 60); do '$B/bpf/flash' 30; done" >/dev/null 2>&1
		kill -INT $rp; wait $rp || true
		report b "$W/s.folded" "$W/p.data" '^flash$'
		report b-every-process "$W/s.folded" "$W/p.data" '.' ;;
	c)
		: >"$W/err"
		"$B/bpf/flash" 600 & fp=$!
		"$S" record cpu -p $fp -F $HZ -d 30 -o "$W/s.folded" 2>"$W/err" & rp=$!
		perf record -q -e cpu-clock -F $HZ -g -p $fp -o "$W/p.data" >/dev/null 2>&1 || true
		wait $fp || true
		wait $rp || true
		report c "$W/s.folded" "$W/p.data" '^flash$' ;;
	esac
done
