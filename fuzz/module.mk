# SPDX-License-Identifier: MIT
# Fuzzing (docs/testing.md).  Every fuzz/fuzz_<name>.c is a target; nothing
# here lists them, so adding a target is adding a file (+ fuzz/corpus/<name>/).
#
#   make fuzz                 libFuzzer binaries   build/fuzz/fuzz_<name>
#   make fuzz-run FUZZ_TIME=60   each target that long, FUZZ_JOBS at a time;
#                             fails on crash, leak, timeout or mismatch and
#                             keeps the input in build/fuzz/artifacts/<name>/
#   make fuzz-replay          checked-in corpora through fuzz/standalone.c,
#                             built with $(CC) in $(B) (part of `make test`)
#   make fuzz-selftest        the engine with a planted bug must be caught
#   make tsan                 the concurrency stress under ThreadSanitizer (CI)
#
# Per-target hooks another area's fragment (or this one) may set:
#   FUZZ_SRCS_<name>  extra .c files the target needs besides libshardtrie
#   FUZZ_LIBS_<name>  extra -l flags        FUZZ_OPTS_<name>  libFuzzer flags
#   FUZZ_TIME_<name>  seconds in fuzz-run (default FUZZ_TIME)

FUZZ_TARGETS  := $(patsubst fuzz/fuzz_%.c,%,$(sort $(wildcard fuzz/fuzz_*.c)))
FUZZ_SUPPORT  := $(sort $(wildcard fuzz/support/*.c))
FUZZ_LIBS     := -ljansson
FUZZ_CC       ?= clang
FUZZ_TIME     ?= 60
FUZZ_JOBS     ?= 2
# fuzz-run gives each target min(FUZZ_TIME, FUZZ_BUDGET * FUZZ_JOBS / targets)
# seconds, so the step stays within FUZZ_BUDGET (+ build) as targets are added.
FUZZ_BUDGET   ?= 420
FUZZ_TIMEOUT  ?= 25
FUZZ_RSS_MB   ?= 2048
# Seconds each planted bug may take to be caught before the selftest fails.
FUZZ_SELFTEST_TIME ?= 120
FUZZ_PLANTED  := 1 2
FZ            := build/fuzz

FUZZ_SAN      := -fsanitize=address,undefined -fno-sanitize-recover=all
# folded: long inputs (a line needs > 256 frames to reach the frame-array
# growth path); folded/export reuse one engine across inputs, so libFuzzer's
# per-input leak check would scan the heap after every input: leaks there
# are left to fuzz_ops (fresh engine per input, leak-checked) and to the
# corpus replay under `make test SANITIZE=address,undefined`.
FUZZ_OPTS_folded ?= -max_len=1200 -len_control=0 -detect_leaks=0
FUZZ_OPTS_export ?= -detect_leaks=0

FUZZ_CFLAGS   := -std=c11 -O1 -g -fno-omit-frame-pointer -pthread $(WARN) $(FUZZ_SAN) \
		 -fsanitize=fuzzer-no-link $(CFLAGS)
FUZZ_CPPFLAGS := $(CPPFLAGS_ALL) -Ifuzz $(ORACLE_CPPFLAGS)
FUZZ_LDFLAGS  := -pthread -fsanitize=fuzzer $(FUZZ_SAN) $(LDFLAGS)

FUZZ_ENGINE_OBJS := $(ENGINE_SRCS:%.c=$(FZ)/%.o)
# The engine's own objects see their folder's headers, as in engine/module.mk.
$(FZ)/engine/core/%.o: FUZZ_CPPFLAGS += $(CORE_CPPFLAGS)
$(FZ)/engine/formats/%.o: FUZZ_CPPFLAGS += $(FORMATS_CPPFLAGS)
FUZZ_SUPPORT_OBJS := $(FUZZ_SUPPORT:%.c=$(FZ)/%.o)

.PHONY: fuzz fuzz-run fuzz-replay fuzz-selftest tsan
fuzz: $(FUZZ_TARGETS:%=$(FZ)/fuzz_%)

$(FZ)/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(FUZZ_CFLAGS) -c $< -o $@

# The replay objects use the normal $(B)/%.o rule, plus fuzz/ and the oracle.
$(B)/fuzz/%.o: CPPFLAGS_ALL += -Ifuzz $(ORACLE_CPPFLAGS)

# fuzz_target_rules(name): the libFuzzer binary and the gcc replay binary.
define fuzz_target_rules
$(FZ)/fuzz_$(1): $(FZ)/fuzz/fuzz_$(1).o $(FUZZ_SUPPORT_OBJS) $(FUZZ_SRCS_$(1):%.c=$(FZ)/%.o) \
		 $(FUZZ_ENGINE_OBJS)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $$@ $$^ $(FUZZ_LIBS) $(FUZZ_LIBS_$(1)) $(LIBS_ENGINE)

$(B)/fuzz/replay_$(1): $(B)/fuzz/fuzz_$(1).o $(B)/fuzz/standalone.o \
		       $(FUZZ_SUPPORT:%.c=$(B)/%.o) $(FUZZ_SRCS_$(1):%.c=$(B)/%.o) $(LIB_ORACLE_A) $(LIB_A)
	$(CC) $(LDFLAGS_ALL) -o $$@ $$(filter %.o,$$^) $(LIB_ORACLE_A) $(LIB_A) $(FUZZ_LIBS) $(FUZZ_LIBS_$(1)) \
		$(LIBS_ENGINE)
endef
$(foreach t,$(FUZZ_TARGETS),$(eval $(call fuzz_target_rules,$(t))))

# ---------------------------------------------------------------- replay
# `make test` runs this after the Criterion suites (TEST_EXTRA).
TEST_EXTRA += fuzz-replay
fuzz-replay: $(FUZZ_TARGETS:%=$(B)/fuzz/replay_%)
	@set -e; for t in $(FUZZ_TARGETS); do \
		if [ -d fuzz/corpus/$$t ]; then $(B)/fuzz/replay_$$t fuzz/corpus/$$t; \
		else echo "fuzz-replay: $$t has no fuzz/corpus/$$t, skipped"; fi; \
	done

# ---------------------------------------------------------------- run
# Each target gets its own log; new inputs go to build/fuzz/corpus/<name>
# (the checked-in seeds are read, never written).
fuzz-run: fuzz
	@rm -rf $(FZ)/logs && mkdir -p $(FZ)/logs
	@n=$(words $(FUZZ_TARGETS)); t=$$(( $(FUZZ_BUDGET) * $(FUZZ_JOBS) / n )); \
	[ $$t -gt $(FUZZ_TIME) ] && t=$(FUZZ_TIME); [ $$t -lt 1 ] && t=1; \
	echo "fuzz-run: $(FUZZ_TARGETS) for $${t}s each, $(FUZZ_JOBS) at a time"; \
	start=$$(date +%s); \
	$(MAKE) --no-print-directory -k -j$(FUZZ_JOBS) FUZZ_RUN_TIME=$$t $(FUZZ_TARGETS:%=fuzz-run-%); st=$$?; \
	echo "fuzz-run: $$(( $$(date +%s) - start ))s wall"; \
	if [ $$st -ne 0 ]; then echo "fuzz-run: FAILED (logs in $(FZ)/logs, inputs in $(FZ)/artifacts)"; exit 1; fi; \
	echo "fuzz-run: every target clean"

fuzz-run-%: $(FZ)/fuzz_%
	@mkdir -p $(FZ)/artifacts/$* $(FZ)/corpus/$* fuzz/corpus/$*
	@log=$(FZ)/logs/$*.log; \
	if $(FZ)/fuzz_$* -max_total_time=$(or $(FUZZ_TIME_$*),$(FUZZ_RUN_TIME),$(FUZZ_TIME)) \
		-timeout=$(FUZZ_TIMEOUT) -rss_limit_mb=$(FUZZ_RSS_MB) -print_final_stats=1 \
		-artifact_prefix=$(FZ)/artifacts/$*/ $(FUZZ_OPTS_$*) \
		$(FZ)/corpus/$* fuzz/corpus/$* >$$log 2>&1; then \
		echo "fuzz: $* clean: $$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' $$log | grep -o '[0-9]*$$') execs, $$(ls $(FZ)/corpus/$* | wc -l) new inputs"; \
	else \
		echo "fuzz: $* FAILED"; grep -m3 -E '$(FZ_MISMATCH_RE)|ERROR:|SUMMARY:' $$log || true; \
		tail -n 25 $$log | sed 's/^/  | /'; \
		for a in $(FZ)/artifacts/$*/*; do [ -f "$$a" ] && \
			echo "  reproduce: $(FZ)/fuzz_$* $$a   (or: make fuzz-replay-one T=$* F=$$a)"; done; \
		exit 1; \
	fi

FZ_MISMATCH_RE := FUZZ-MISMATCH

# Replay one input under the configured compiler: make fuzz-replay-one T=ops F=file
.PHONY: fuzz-replay-one
fuzz-replay-one: $(B)/fuzz/replay_$(T)
	$(B)/fuzz/replay_$(T) $(F)

# ---------------------------------------------------------------- selftest
# The planted bugs are patches to engine/core/master.c kept with the oracle
# (engine/oracle/planted/N-*.patch), applied to a copy in build/fuzz only:
# no planted code is in the library's sources.
#   1  st_master_add_rec drops one stack's values (a stack whose hash & 15 == 0)
#   2  st_master_sort swaps two new siblings (a merge that adds exactly two)
# Each must make fuzz_ops report a mismatch within FUZZ_SELFTEST_TIME.  A
# patch that no longer applies fails the build: update it with master.c.
FUZZ_ENGINE_OBJS_NO_MASTER := $(filter-out %/master.o,$(FUZZ_ENGINE_OBJS))

define fuzz_planted_rules
$(FZ)/planted-$(1)/master.c: engine/core/master.c $(wildcard engine/oracle/planted/$(1)-*.patch)
	@mkdir -p $$(@D)
	cp engine/core/master.c $$@.tmp
	patch --quiet --no-backup-if-mismatch $$@.tmp < $$(filter %.patch,$$^)
	mv $$@.tmp $$@

$(FZ)/planted-$(1)/master.o: $(FZ)/planted-$(1)/master.c
	$(FUZZ_CC) $(FUZZ_CPPFLAGS) $(CORE_CPPFLAGS) $(FUZZ_CFLAGS) -c $$< -o $$@

$(FZ)/planted-$(1)/fuzz_ops: $(FZ)/fuzz/fuzz_ops.o $(FUZZ_SUPPORT_OBJS) \
			     $(FZ)/planted-$(1)/master.o $(FUZZ_ENGINE_OBJS_NO_MASTER)
	$(FUZZ_CC) $(FUZZ_LDFLAGS) -o $$@ $$^ $(FUZZ_LIBS) $(LIBS_ENGINE)
endef
$(foreach n,$(FUZZ_PLANTED),$(eval $(call fuzz_planted_rules,$(n))))

fuzz-selftest: $(FUZZ_PLANTED:%=$(FZ)/planted-%/fuzz_ops)
	@set -e; for n in $(FUZZ_PLANTED); do \
		d=$(FZ)/planted-$$n; rm -rf $$d/corpus $$d/artifacts; mkdir -p $$d/corpus $$d/artifacts; \
		start=$$(date +%s); st=0; \
		$$d/fuzz_ops -max_total_time=$(FUZZ_SELFTEST_TIME) -timeout=$(FUZZ_TIMEOUT) \
			-artifact_prefix=$$d/artifacts/ $$d/corpus fuzz/corpus/ops >$$d/log 2>&1 || st=$$?; \
		secs=$$(( $$(date +%s) - start )); \
		if [ $$st -ne 0 ] && grep -q '$(FZ_MISMATCH_RE)' $$d/log; then \
			echo "fuzz-selftest: planted bug $$n caught in $${secs}s: $$(grep -m1 '$(FZ_MISMATCH_RE)' $$d/log)"; \
		else \
			echo "fuzz-selftest: planted bug $$n NOT caught in $${secs}s (exit $$st), see $$d/log"; \
			tail -n 20 $$d/log; exit 1; \
		fi; \
	done; echo "fuzz-selftest: every planted bug caught"

# ---------------------------------------------------------------- tsan
# A CI step (.ci/run, docs/testing.md "ThreadSanitizer").  Criterion cannot
# map its inheritable arena under ThreadSanitizer, so this runs
# fuzz/tsan_stress.c (every ingest path, readers, exports, deltas, flushes
# and resets against the reference, merge_workers 0, 2 and 4) and the
# fuzz_ops corpus (its threaded programs).  gcc's TSan (libtsan2, a
# dependency of gcc-12) by default; TSAN_CC=clang builds in its own dir.
# liburcu is not instrumented: engine/core/rcu.h tells TSan its edges, and
# fuzz/tsan.supp lists what is left inside liburcu, each with its reason.
# A report fails the step (halt_on_error=1; TSan exits 66).
TSAN_CC      ?= $(CC)
TSAN_B       := build/san-thread$(if $(findstring clang,$(notdir $(TSAN_CC))),-clang)
# Samples per writer per phase (fuzz/tsan_stress.c); the run scales with it.
TSAN_SAMPLES ?= 10000
# gcc 12's TSan (LLVM 14's runtime) dies with "unexpected memory mapping"
# where vm.mmap_rnd_bits > 28 (newer kernels' default on some distributions);
# run without address randomization when setarch may (not in every container).
TSAN_NOASLR   = $(shell setarch $$(uname -m) -R true 2>/dev/null && echo setarch $$(uname -m) -R)
TSAN_RUN      = TSAN_OPTIONS="suppressions=$(CURDIR)/fuzz/tsan.supp second_deadlock_stack=1 \
		history_size=7 halt_on_error=1 $(TSAN_OPTIONS)" $(TSAN_NOASLR)

$(B)/fuzz/tsan_stress: $(B)/fuzz/tsan_stress.o $(B)/fuzz/support/fz.o $(LIB_ORACLE_A) $(LIB_A)
	$(CC) $(LDFLAGS_ALL) -o $@ $(filter %.o,$^) $(LIB_ORACLE_A) $(LIB_A) $(LIBS_ENGINE)

tsan:
	@start=$$(date +%s); \
	$(MAKE) --no-print-directory SANITIZE=thread CC=$(TSAN_CC) BUILD=$(TSAN_B) \
		$(TSAN_B)/fuzz/tsan_stress $(TSAN_B)/fuzz/replay_ops || exit 1; \
	echo "tsan: built in $$(( $$(date +%s) - start ))s"
	@start=$$(date +%s); \
	$(TSAN_RUN) $(TSAN_B)/fuzz/tsan_stress $(TSAN_SAMPLES) || \
		{ echo "tsan: FAILED (a ThreadSanitizer report or a FUZZ-MISMATCH above)"; exit 1; }; \
	$(TSAN_RUN) $(TSAN_B)/fuzz/replay_ops fuzz/corpus/ops || \
		{ echo "tsan: FAILED on the fuzz_ops corpus"; exit 1; }; \
	echo "tsan: no data race reported ($$(( $$(date +%s) - start ))s)"
