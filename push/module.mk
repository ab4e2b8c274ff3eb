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
