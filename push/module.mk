# SPDX-License-Identifier: MIT
# push/: the pusher to Grafana Pyroscope (libcurl), linked into the CLI and,
# for its unit tests (the queue, metric switches), into the test binary.
# Included after tests/module.mk: prerequisites are added here, recipes
# expand CLI_EXTRA_* and TEST_* when they run.
PUSH_SRCS := $(sort $(wildcard push/*.c))
PUSH_OBJS := $(PUSH_SRCS:%.c=$(B)/%.o)
CLI_EXTRA_OBJS += $(PUSH_OBJS)
CLI_EXTRA_LIBS += -lcurl
$(CLI): $(PUSH_OBJS)

$(PUSH_OBJS): CPPFLAGS_ALL += -Ipush

# cli/cli.h includes "push/push.h".
$(CLI_OBJS): CPPFLAGS_ALL += -I.

# tests/test_push.c drives push/ directly too; the receiver
# (tests/support/pyroscope_rx.c) is a libmicrohttpd server.
TEST_OBJS += $(PUSH_OBJS)
TEST_LIBS += -lcurl -lmicrohttpd
$(TEST_BIN): $(PUSH_OBJS)
$(B)/tests/test_push.o: CPPFLAGS_ALL += -I.

# The bench key for pushing (bench/push/push_cost.c, docs/push.md):
#   make BUILD=... bench-push    ingest with and without --push every 1 s
PUSH_BENCH := $(B)/bench/push/push_cost
$(B)/bench/push/push_cost.o: CPPFLAGS_ALL += -I. -Itests
$(PUSH_BENCH): $(B)/bench/push/push_cost.o $(B)/tests/support/pyroscope_rx.o $(PUSH_OBJS) $(LIB_A)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ -lcurl -lmicrohttpd $(LIBS_ENGINE) $(LIBS_MALLOC)
.PHONY: bench-push
bench-push: $(PUSH_BENCH)
	$(PUSH_BENCH) $(PUSH_BENCH_ARGS)
