# SPDX-License-Identifier: MIT
# The `shardtrie` command: cli/*.c plus whatever front-ends add to CLI_EXTRA_OBJS
# (bpf/module.mk adds the tracers) and CLI_EXTRA_LIBS.
CLI_SRCS := $(sort $(wildcard cli/*.c))
CLI_OBJS := $(CLI_SRCS:%.c=$(B)/%.o)
CLI      := $(B)/shardtrie

.PHONY: cli
cli: $(CLI)

$(CLI): $(CLI_OBJS) $(CLI_EXTRA_OBJS) $(LIB_A)
	$(CC) $(LDFLAGS_ALL) -o $@ $(CLI_OBJS) $(CLI_EXTRA_OBJS) $(LIB_A) $(CLI_EXTRA_LIBS) $(LIBS_ENGINE) $(LIBS_MALLOC)

# make demo: convert the shipped sample (or, once bpf/ provides it, a fresh
# recording) and print where the result went and the top frames by self.
.PHONY: demo
demo: deps
	@$(MAKE) --no-print-directory cli
	@bash scripts/demo.sh $(CLI)
