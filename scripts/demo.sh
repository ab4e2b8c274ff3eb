#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make demo: the main job on a built-in default.  Records the bundled CPU
# workload with BPF when it can (else converts the shipped stack sample)
# through the engine into build/demo/ (folded, ior JSON, HTML flamegraph) and
# prints where the results went and the top frames by self value.
set -euo pipefail
cli=${1:-build/release/shardtrie}
out=build/demo
mkdir -p "$out"
input=data/sample.folded
# A live recording of the bundled CPU workload when BPF works here (root,
# kernel BTF, the tracer built); the shipped sample otherwise.
spin=$(dirname "$cli")/bpf/spin
why=
if [ "$(id -u)" -ne 0 ]; then why="not root (BPF tracing needs root or CAP_BPF+CAP_PERFMON)"
elif [ ! -x "$spin" ]; then why="the BPF tracers were not built (see 'make bpf')"
elif ! probe=$("$cli" record io --selftest 2>&1 >/dev/null); then why="BPF unusable here: ${probe%%$'\n'*}"
fi
recorded=0
if [ -z "$why" ]; then
	echo "demo: BPF usable: recording 3 s of the bundled workload ($spin: burn_a/burn_b 75/25)"
	if "$cli" record cpu -F 499 -o "$out/profile.folded" -- "$spin" 3; then
		recorded=1
		"$cli" convert -t json --min-fraction 0.001 -o "$out/profile.json" "$out/profile.folded"
	else
		why="record cpu failed"
	fi
fi
if [ "$recorded" -eq 0 ]; then
	echo "demo: not recording ($why): converting the shipped sample $input (perf record -g of data/sample-workload.c)"
	"$cli" convert -t folded -o "$out/profile.folded" "$input"
	"$cli" convert -t json --min-fraction 0.001 -o "$out/profile.json" "$input"
fi
# A flamegraph to open in a browser (self-contained: flamegraph, table, sandwich).
"$cli" convert -t html --title "shardtrie demo" -o "$out/profile.html" "$out/profile.folded"
echo "demo: wrote $out/profile.folded, $out/profile.json and $out/profile.html"
echo "demo: top frames by self value:"
# The leaf of each folded line is the frame whose self value the count is.
awk '{ c=$NF; $NF=""; sub(/ $/,""); n=split($0,f,";"); self[f[n]]+=c; tot+=c }
     END { for (k in self) printf "%10d %5.1f%%  %s\n", self[k], 100*self[k]/tot, k }' \
	"$out/profile.folded" | sort -rn | head -10
