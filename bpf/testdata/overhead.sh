#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# CPU overhead of `record cpu -F 999 -a` vs bpftrace profile:hz:999 over the same
# workload (two bpf/testdata/spin processes). Root; needs bpftrace (apt-get install bpftrace).
# usage: bpf/testdata/overhead.sh [build/release]
set -u
B=${1:-build/release}
command -v bpftrace >/dev/null || { echo "overhead: bpftrace not installed" >&2; exit 1; }
cli=$B/shardtrie; spin=$B/bpf/spin; D=10
measure() {
  local label=$1; shift
  $spin $((D+6)) >/dev/null & s1=$!; $spin $((D+6)) >/dev/null & s2=$!
  sleep 1
  sysctl -qw kernel.bpf_stats_enabled=1
  ( /usr/bin/time -f "TIME %U %S" -o /tmp/ovh.time "$@" >/dev/null 2>/tmp/ovh.err ) & t=$!
  sleep $((D-1))
  bpftool prog show 2>/dev/null | grep -E "^[0-9]+: perf_event" > /tmp/ovh.progs
  wait $t
  sysctl -qw kernel.bpf_stats_enabled=0
  wait $s1 $s2
  local cpu=$(awk '/^TIME/{print $2+$3}' /tmp/ovh.time)
  local bpf=$(awk '{for(i=1;i<NF;i++){if($i=="run_time_ns")t+=$(i+1); if($i=="run_cnt")c+=$(i+1)}} END{printf "%.3f s in %d runs (%.0f ns/run)", t/1e9, c, c?t/c:0}' /tmp/ovh.progs)
  echo "$label: process user+sys ${cpu} s; BPF program (first $((D-1)) s): $bpf"
}
measure "record cpu -F 999 -a" $cli record cpu -F 999 -a -d $D -o /tmp/ovh.folded
measure "bpftrace profile:hz:999" timeout -s INT $((D+5)) bpftrace -e "profile:hz:999 { @[kstack, ustack, comm] = count(); } interval:s:$D { exit(); }"
