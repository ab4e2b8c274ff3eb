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

# snapcpu.c finds the merger's threads by name with the suites' helper
# (tests/support/threads.c: no Criterion in it).
$(B)/bench/snapcpu.o: CPPFLAGS_ALL += -Itests
BENCH_SUPPORT_OBJS := $(B)/tests/support/threads.o

$(BENCH_BIN): $(BENCH_OBJS) $(BENCH_SUPPORT_OBJS) $(LIVE_OBJS) $(LIB_ORACLE_A) $(LIB_A)
	$(CC) $(LDFLAGS_ALL) -o $@ $(BENCH_OBJS) $(BENCH_SUPPORT_OBJS) $(LIVE_OBJS) $(LIB_ORACLE_A) \
		$(LIB_A) \
		-lmicrohttpd -ljansson -lcurl $(LIBS_ENGINE) $(LIBS_MALLOC) -lxxhash -lm

$(PROBE_BIN): $(B)/bench/probe/probe.o $(B)/bench/workload.o $(LIB_A)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ENGINE) $(LIBS_MALLOC) -lxxhash -lm

.PHONY: bench bench-short bench-build
bench-build: $(BENCH_BIN) $(PROBE_BIN)
bench: bench-build bench-seed-line bench-push-line
	$(BENCH_BIN) --replay $(BENCH_REPLAY) --out build/bench --seed-line $(BENCH_SEED_LINE) \
		--push-line $(BENCH_PUSH_LINE) $(BENCH_ARGS)
bench-short: bench-build
	$(MAKE) --no-print-directory bench-seed-line BENCH_SEED_ARGS='--events 5000000 --reps 3'
	$(MAKE) --no-print-directory bench-push-line BENCH_PUSH_ARGS='2 15'
	$(BENCH_BIN) --short --replay $(BENCH_REPLAY) --out build/bench \
		--seed-line $(BENCH_SEED_LINE) --push-line $(BENCH_PUSH_LINE) $(BENCH_ARGS)

# The comparison with the seed's LiveTrie (bench/seed, needs go) runs first;
# its SEED line goes into the SUMMARY (vs_seed_1t, vs_seed_nt, stalls).
# Without go the file says so and those keys are 0.
BENCH_SEED_LINE := build/bench/seed.txt
BENCH_SEED_ARGS ?=
.PHONY: bench-seed-line
bench-seed-line:
	@mkdir -p $(dir $(BENCH_SEED_LINE))
	@if command -v go >/dev/null 2>&1; then \
		$(MAKE) --no-print-directory bench-seed SEED_ARGS="$(BENCH_SEED_ARGS)" \
			> $(BENCH_SEED_LINE).tmp || { cat $(BENCH_SEED_LINE).tmp; exit 1; }; \
		mv $(BENCH_SEED_LINE).tmp $(BENCH_SEED_LINE); cat $(BENCH_SEED_LINE); \
	else echo "no go: bench/seed not run (scripts/deps.sh test installs golang-go)" \
		> $(BENCH_SEED_LINE); cat $(BENCH_SEED_LINE); fi

# The cost of pushing (bench/push/push_cost.c: ingest with --push every 1 s
# against none, pinned pairs): its PUSH_COST line gives push_drop and
# push_drop_wall.  BENCH_PUSH_ARGS: SECONDS PAIRS (short: 2 s x 15 pairs:
# pairs of runs swing by +-30 % on this host, 7 pairs were not enough).
BENCH_PUSH_LINE := build/bench/push.txt
BENCH_PUSH_ARGS ?=
.PHONY: bench-push-line
bench-push-line: $(PUSH_BENCH)
	@mkdir -p $(dir $(BENCH_PUSH_LINE))
	$(PUSH_BENCH) $(BENCH_PUSH_ARGS) > $(BENCH_PUSH_LINE).tmp
	@mv $(BENCH_PUSH_LINE).tmp $(BENCH_PUSH_LINE); cat $(BENCH_PUSH_LINE)
