#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# make demo: the main job on a built-in default.  Converts the shipped stack
# sample through the engine into build/demo/ (folded + ior JSON) and prints
# where the results went and the top frames by self value.
set -euo pipefail
cli=${1:-build/release/shardtrie}
out=build/demo
mkdir -p "$out"
input=data/sample.folded
echo "demo: converting the shipped sample $input (perf record -g of data/sample-workload.c)"
"$cli" convert -t folded -o "$out/profile.folded" "$input"
"$cli" convert -t json --min-fraction 0.001 -o "$out/profile.json" "$input"
echo "demo: wrote $out/profile.folded and $out/profile.json"
echo "demo: top frames by self value:"
# The leaf of each folded line is the frame whose self value the count is.
awk '{ c=$NF; $NF=""; sub(/ $/,""); n=split($0,f,";"); self[f[n]]+=c; tot+=c }
     END { for (k in self) printf "%10d %5.1f%%  %s\n", self[k], 100*self[k]/tot, k }' \
	"$out/profile.folded" | sort -rn | head -10
