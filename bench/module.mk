# SPDX-License-Identifier: MIT
# The benchmark harness (docs/benchmarking.md).
#   make bench         full run, minutes: 7 repetitions, longer streams
#   make bench-short   the same measurements in under a minute
#   BENCH_ARGS=...     extra flags, e.g. --depth 64 or --replay FILE.folded
#   build/release/bench/shardtrie_probe flush|ingest   narrow probes (probe.c)
BENCH_SRCS := $(sort $(wildcard bench/*.c))
BENCH_OBJS := $(BENCH_SRCS:%.c=$(B)/%.o)
BENCH_BIN  := $(B)/bench/shardtrie_bench
BENCH_REPLAY ?= data/sample.folded

# Narrow probes behind some figures of docs/benchmarking.md (bench/probe/).
PROBE_BIN  := $(B)/bench/shardtrie_probe

$(B)/bench/%.o: CPPFLAGS_ALL += $(ORACLE_CPPFLAGS)
# live_load.c serves the engine in process (live/server.h) and loads it with
# libcurl clients (Debian libcurl4-openssl-dev, scripts/deps.sh).
$(B)/bench/live_load.o: CPPFLAGS_ALL += -I.

$(BENCH_BIN): $(BENCH_OBJS) $(LIVE_OBJS) $(LIB_ORACLE_A) $(LIB_A)
	$(CC) $(LDFLAGS_ALL) -o $@ $(BENCH_OBJS) $(LIVE_OBJS) $(LIB_ORACLE_A) $(LIB_A) \
		-lmicrohttpd -ljansson -lcurl $(LIBS_ENGINE) $(LIBS_MALLOC) -lxxhash -lm

$(PROBE_BIN): $(B)/bench/probe/probe.o $(B)/bench/workload.o $(LIB_A)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ENGINE) $(LIBS_MALLOC) -lxxhash -lm

.PHONY: bench bench-short bench-build
bench-build: $(BENCH_BIN) $(PROBE_BIN)
bench: bench-build
	$(BENCH_BIN) --replay $(BENCH_REPLAY) --out build/bench $(BENCH_ARGS)
bench-short: bench-build
	$(BENCH_BIN) --short --replay $(BENCH_REPLAY) --out build/bench $(BENCH_ARGS)
