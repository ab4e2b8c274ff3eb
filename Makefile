# SPDX-License-Identifier: MIT
#
# shardtrie: one non-recursive Makefile.  Each area adds its own rules in a
# module.mk fragment that is included here (the "Recursive Make Considered
# Harmful" layout): one make process sees the whole dependency graph.
#
#   make            library + CLI            make test    Criterion + corpora
#   make demo       the README's main job    make bench   full benchmark
#   make deps       install Debian packages  make fuzz    libFuzzer targets
#
# Variables: SANITIZE=address,undefined   WERROR=0   CC=clang   O=2
# Every output goes under build/<config>/.

CC      ?= cc
O       ?= 2
WERROR  ?= 1
SANITIZE ?=

comma := ,
ifeq ($(SANITIZE),)
CONFIG  := release
else
CONFIG  := san-$(subst $(comma),-,$(SANITIZE))
endif
# BUILD=dir puts this build's outputs elsewhere (parallel work trees).
B       := $(or $(BUILD),build/$(CONFIG))

WARN    := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	   -Wformat=2 -Wpointer-arith -Wundef -Wno-unused-parameter
ifeq ($(WERROR),1)
WARN    += -Werror
endif

CPPFLAGS_ALL := -D_GNU_SOURCE -D_LGPL_SOURCE -Iengine/include -MMD -MP
CFLAGS_ALL   := -std=c11 -O$(O) -g -fno-omit-frame-pointer -pthread $(WARN) $(CFLAGS)
LDFLAGS_ALL  := -pthread $(LDFLAGS)
ifneq ($(SANITIZE),)
CFLAGS_ALL  += -fsanitize=$(SANITIZE) -fno-sanitize-recover=all
LDFLAGS_ALL += -fsanitize=$(SANITIZE)
endif

LIBS_ENGINE := -lurcu-memb -lurcu-common -lxxhash -lm
# jemalloc only where nothing else intercepts malloc (sanitizers do).
ifeq ($(SANITIZE),)
LIBS_MALLOC := -ljemalloc
endif

.PHONY: all deps deps-test demo test clean
all: lib cli

deps:
	@bash scripts/deps.sh

deps-test:
	@bash scripts/deps.sh test

$(B)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS_ALL) $(CFLAGS_ALL) -fPIC -c $< -o $@

include engine/module.mk
-include bpf/module.mk
-include live/module.mk
-include tui/module.mk
include cli/module.mk
include tests/module.mk
-include push/module.mk
-include bench/module.mk
-include bench/seed/module.mk
-include bench/tui/module.mk
-include bench/cut/module.mk
-include fuzz/module.mk

clean:
	rm -rf build

-include $(shell find build -name '*.d' 2>/dev/null)
