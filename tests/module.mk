# SPDX-License-Identifier: MIT
# Criterion suites: every tests/test_*.c (plus tests/support/*.c) links into
# ONE binary so a run ends with one Criterion "Synthesis" line.
# Other areas add phony targets to TEST_EXTRA (e.g. fuzz corpus replay);
# `make test` runs them after the Criterion binary.
TEST_SRCS := $(sort $(wildcard tests/test_*.c tests/support/*.c)) $(CORE_TEST_SRCS) $(BPF_TEST_SRCS)
TEST_OBJS := $(TEST_SRCS:%.c=$(B)/%.o)
TEST_BIN  := $(B)/tests/shardtrie_tests
TEST_JOBS ?= 2

$(TEST_BIN): $(TEST_OBJS) $(TEST_EXTRA_OBJS) $(LIB_ORACLE_A) $(LIB_A)
	$(CC) $(LDFLAGS_ALL) -o $@ $(TEST_OBJS) $(TEST_EXTRA_OBJS) $(LIB_ORACLE_A) $(LIB_A) -lcriterion -ljansson $(TEST_LIBS) $(LIBS_ENGINE)

$(B)/tests/%.o: CPPFLAGS_ALL += -Itests $(ORACLE_CPPFLAGS) -DST_TEST_CLI='"$(CURDIR)/$(CLI)"' -DST_TEST_DATA='"$(CURDIR)/tests/data"'

.PHONY: test test-build
test-build: $(TEST_BIN) $(CLI)
test: deps-test
	@$(MAKE) --no-print-directory test-build
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(TEST_BIN) --jobs $(TEST_JOBS) $(TEST_ARGS)
	@$(MAKE) --no-print-directory $(TEST_EXTRA) test-extra-done

.PHONY: test-extra-done
test-extra-done:
	@echo "test: all suites passed ($(CONFIG))"

# engine/core/*_test.c: white-box suites of core internals, with the core's
# headers and the tests' own support on their path.
$(CORE_TEST_SRCS:%.c=$(B)/%.o): CPPFLAGS_ALL += -Itests $(ORACLE_CPPFLAGS)

# Layout rules (docs/design.md): exported symbols == the public headers'
# ST_API declarations, internal headers stay in their folder, arrows one way.
TEST_EXTRA += check-layout
.PHONY: check-layout
check-layout: $(LIB_CORE_SO) $(LIB_FORMATS_SO) $(LIB_CORE_A) $(LIB_FORMATS_A)
	@bash tests/check_layout.sh $(B)
