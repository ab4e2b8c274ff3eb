# SPDX-License-Identifier: MIT
# bpf/: the libbpf CO-RE tracers behind `shardtrie record cpu|io`, called by
# cli/record.c through bpf/tracer.h (cli -> bpf, never back).  Each tool is a
# triplet (x.bpf.c, x.c, x.h = the ABI) plus its other user-side files;
# bpf/common/ holds what they share.
#
#   /sys/kernel/btf/vmlinux --bpftool btf dump--> $(B)/bpf/vmlinux.h
#   bpf/T/x.bpf.c --clang -target bpf--> $(B)/bpf/T/x.bpf.o --bpftool gen skeleton--> x.skel.h
#   bpf/T/*.c (x.c includes x.skel.h) + bpf/common/*.c --> CLI_EXTRA_OBJS, -lbpf -lelf
#
# Without the toolchain (clang, bpftool, libbpf, libelf) or without kernel
# BTF at build time the CLI still builds: bpf/stub.c stands in for the
# tracers and `record` then says what was missing (st_trace_missing()).
BPF_CLANG ?= clang
BPFTOOL   ?= $(firstword $(shell command -v bpftool 2>/dev/null) $(wildcard /usr/sbin/bpftool /sbin/bpftool))
BPF_BTF   ?= /sys/kernel/btf/vmlinux
BPF_ARCH  := $(shell uname -m | sed -e 's/x86_64/x86/' -e 's/aarch64/arm64/' -e 's/ppc64le/powerpc/' -e 's/riscv64/riscv/' -e 's/s390x/s390/')
BPF_DIR   := $(B)/bpf

BPF_MISSING :=
ifeq ($(shell command -v $(BPF_CLANG) 2>/dev/null),)
BPF_MISSING += clang
endif
ifeq ($(BPFTOOL),)
BPF_MISSING += bpftool
endif
ifneq ($(shell pkg-config --exists libbpf libelf 2>/dev/null && echo ok),ok)
BPF_MISSING += libbpf-dev/libelf-dev
endif
ifeq ($(wildcard $(BPF_BTF)),)
BPF_MISSING += $(BPF_BTF)
endif

# fuzz/fuzz_ringbuf.c: the record decoder alone (no libbpf needed).
FUZZ_SRCS_ringbuf := bpf/common/decode.c
# The tests link record io's decode step and field order (no libbpf needed).
BPF_TEST_SRCS := bpf/common/decode.c bpf/io/order.c

# The bundled CPU workload (tests, make demo): a frame pointer in every
# function, leaves included, and no inlining.  -O0, because gcc 12 sets up no
# frame in a leaf at -O1 even with -fno-omit-frame-pointer
# -mno-omit-leaf-frame-pointer, and a sample in burn_a() then unwinds past main.
$(BPF_DIR)/spin: bpf/testdata/spin.c bpf/module.mk
	@mkdir -p $(@D)
	$(CC) -std=c11 -O0 -g -fno-omit-frame-pointer -fno-inline -o $@ $<
# The short-lived workload of the record cpu tests (frames of processes that
# have exited): built as spin is, for the same reason.
$(BPF_DIR)/flash: bpf/testdata/flash.c bpf/module.mk
	@mkdir -p $(@D)
	$(CC) -std=c11 -O0 -g -fno-omit-frame-pointer -fno-inline -o $@ $<
# Syscall load for the record io benchmark (docs/benchmarking.md).
$(BPF_DIR)/sysflood: bpf/testdata/sysflood.c
	@mkdir -p $(@D)
	$(CC) -O2 -pthread -o $@ $<
$(B)/shardtrie: | $(BPF_DIR)/spin $(BPF_DIR)/flash $(BPF_DIR)/sysflood

ifeq ($(strip $(BPF_MISSING)),)
BPF_TOOLS     := cpu/profile io/iotrace
BPF_SKELS     := $(BPF_TOOLS:%=$(BPF_DIR)/%.skel.h)
BPF_USER_SRCS := $(sort $(filter-out %.bpf.c,$(wildcard bpf/common/*.c bpf/cpu/*.c bpf/io/*.c)))
BPF_USER_OBJS := $(BPF_USER_SRCS:%.c=$(B)/%.o)
BPF_HDRS      := $(wildcard bpf/*.h bpf/common/*.h bpf/cpu/*.h bpf/io/*.h)

$(BPF_DIR)/vmlinux.h:
	@mkdir -p $(@D)
	$(BPFTOOL) btf dump file $(BPF_BTF) format c > $@.tmp && mv $@.tmp $@

$(BPF_DIR)/%.bpf.o: bpf/%.bpf.c $(BPF_HDRS) $(BPF_DIR)/vmlinux.h
	@mkdir -p $(@D)
	$(BPF_CLANG) -g -O2 -target bpf -D__TARGET_ARCH_$(BPF_ARCH) -I$(BPF_DIR) -Wall -Werror -c $< -o $@

$(BPF_DIR)/%.skel.h: $(BPF_DIR)/%.bpf.o
	$(BPFTOOL) gen skeleton $< name $(notdir $*)_bpf > $@.tmp && mv $@.tmp $@

$(BPF_USER_OBJS): CPPFLAGS_ALL += -I$(BPF_DIR)/cpu -I$(BPF_DIR)/io -Ibpf
$(BPF_USER_OBJS): $(BPF_SKELS)

.SECONDARY: $(BPF_TOOLS:%=$(BPF_DIR)/%.bpf.o)

CLI_EXTRA_OBJS += $(BPF_USER_OBJS)
CLI_EXTRA_LIBS += $(shell pkg-config --libs libbpf libelf) -lz

.PHONY: bpf
bpf: $(BPF_SKELS) $(BPF_DIR)/spin
else
# cli/record.c parses --fields and --metric with the decoder and makes the
# field order (no libbpf).
$(B)/bpf/stub.o: CPPFLAGS_ALL += -DST_BPF_MISSING='"$(strip $(BPF_MISSING))"'
CLI_EXTRA_OBJS += $(B)/bpf/stub.o $(B)/bpf/common/decode.o $(B)/bpf/io/order.o
.PHONY: bpf
bpf:
	@echo "bpf: not built, missing: $(strip $(BPF_MISSING))"
endif
