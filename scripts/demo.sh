#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make demo: the main job on a built-in default.  Records the bundled CPU
# workload with BPF wherever BPF works here (root or CAP_BPF+CAP_PERFMON,
# kernel BTF, the tracers built; record mounts tracefs itself), else says so
# loudly on stderr, with the reason, and converts the shipped stack sample.
# Either way: through the engine into build/demo/ (folded, ior JSON, HTML
# flamegraph), then where the results went and the top frames by self value.
set -euo pipefail
cli=${1:-build/release/shardtrie}
out=build/demo
mkdir -p "$out"
input=data/sample.folded
spin=$(dirname "$cli")/bpf/spin

# The fallback is not a recording of this machine: say so where nobody can
# miss it, before doing it.
not_recording() {
	{
		echo
		echo "demo: ========================================================================"
		echo "demo: NOT RECORDING WITH BPF ON THIS MACHINE."
		echo "demo: Why: $1"
		echo "demo: Showing the SHIPPED SAMPLE $input instead: a perf record -g"
		echo "demo: capture of data/sample-workload.c made elsewhere, not a profile of here."
		echo "demo: ========================================================================"
		echo
	} >&2
}

why=
if [ ! -x "$spin" ]; then
	why="the BPF tracers were not built (clang, bpftool, libbpf-dev or kernel BTF missing at build time; see 'make deps')"
elif ! probe=$("$cli" record io --selftest 2>&1 >/dev/null); then
	why="BPF is unusable here: ${probe:-record io --selftest failed}"
	[ "$(id -u)" -eq 0 ] || why="not root (BPF tracing needs root or CAP_BPF+CAP_PERFMON); $why"
fi
recorded=0
if [ -z "$why" ]; then
	echo "demo: BPF usable: recording 3 s of the bundled workload ($spin: burn_a/burn_b 75/25)"
	rc=0
	"$cli" record cpu -F 499 -o "$out/profile.folded" -- "$spin" 3 2>"$out/record.err" || rc=$?
	cat "$out/record.err" >&2
	if [ "$rc" -eq 0 ]; then
		recorded=1
		"$cli" convert -t json --min-fraction 0.001 -o "$out/profile.json" "$out/profile.folded"
	else
		why="'record cpu' failed with exit $rc: $(grep -v '^  ' "$out/record.err" | tail -n 1)"
	fi
fi
if [ "$recorded" -eq 0 ]; then
	not_recording "$why"
	"$cli" convert -t folded -o "$out/profile.folded" "$input"
	"$cli" convert -t json --min-fraction 0.001 -o "$out/profile.json" "$input"
fi
# A flamegraph to open in a browser (self-contained: flamegraph, table, sandwich).
"$cli" convert -t html --title "shardtrie demo" -o "$out/profile.html" "$out/profile.folded"
echo "demo: wrote $out/profile.folded, $out/profile.json and $out/profile.html"
if [ "$recorded" -eq 1 ]; then
	echo "demo: recorded live with BPF on this machine"
else
	echo "demo: NOT a recording of this machine (see the message above): the shipped sample"
fi
echo "demo: top frames by self value:"
# The leaf of each folded line is the frame whose self value the count is.
awk '{ c=$NF; $NF=""; sub(/ $/,""); n=split($0,f,";"); self[f[n]]+=c; tot+=c }
     END { for (k in self) printf "%10d %5.1f%%  %s\n", self[k], 100*self[k]/tot, k }' \
	"$out/profile.folded" | sort -rn | head -10
