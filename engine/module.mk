# SPDX-License-Identifier: MIT
# engine/: three libraries, each built from one folder, arrows one way.
#
#   engine/core/     -> libshardtrie          (.a and .so)  the engine
#   engine/formats/  -> libshardtrie-formats  (.a and .so)  read/ + write/,
#                       on the public API of libshardtrie alone
#   engine/oracle/   -> libshardtrie-oracle.a  the reference trie; linked only
#                       by tests, fuzzers and the bench
#
# Only engine/include/ is on everyone's include path.  Core and formats are
# compiled with -fvisibility=hidden: what they export is what their public
# headers mark ST_API (tests/check_layout.sh checks `nm -D`).
CORE_SRCS    := $(filter-out %_test.c,$(sort $(wildcard engine/core/*.c)))
# White-box tests of core internals live beside them (engine/core/*_test.c)
# and link into the Criterion binary (tests/module.mk), not the library.
CORE_TEST_SRCS := $(sort $(wildcard engine/core/*_test.c))
FORMATS_SRCS := $(sort $(wildcard engine/formats/read/*.c engine/formats/write/*.c))
ORACLE_SRCS  := $(sort $(wildcard engine/oracle/*.c))
CORE_OBJS    := $(CORE_SRCS:%.c=$(B)/%.o)
FORMATS_OBJS := $(FORMATS_SRCS:%.c=$(B)/%.o)
ORACLE_OBJS  := $(ORACLE_SRCS:%.c=$(B)/%.o)
# Every engine source, for builds that compile them their own way (fuzz/).
ENGINE_SRCS  := $(CORE_SRCS) $(FORMATS_SRCS) $(ORACLE_SRCS)

# The shared libraries' ABI version, their soname's suffix: bump it when a
# public struct's layout or a function's meaning changes incompatibly
# (1: struct st_stats became size-versioned, its caller sets .size).  The
# file is libX.so.$(SO_ABI); libX.so links to it for -lX.
SO_ABI        := 1
LIB_CORE_A    := $(B)/libshardtrie.a
LIB_CORE_SO   := $(B)/libshardtrie.so
LIB_FORMATS_A := $(B)/libshardtrie-formats.a
LIB_FORMATS_SO := $(B)/libshardtrie-formats.so
LIB_ORACLE_A  := $(B)/libshardtrie-oracle.a
# What a program links statically: formats first (they use the core).
LIB_A         := $(LIB_FORMATS_A) $(LIB_CORE_A)
# pprof output is gzipped.
LIBS_ENGINE   += -lz

# Per-folder include paths: a core header is visible to core files only.
CORE_CPPFLAGS    := -Iengine/core
FORMATS_CPPFLAGS := -Iengine/formats -Iengine/formats/write
ORACLE_CPPFLAGS  := -Iengine/oracle
$(CORE_OBJS) $(CORE_TEST_SRCS:%.c=$(B)/%.o): CPPFLAGS_ALL += $(CORE_CPPFLAGS)
$(CORE_OBJS): CFLAGS_ALL += -fvisibility=hidden
$(FORMATS_OBJS): CPPFLAGS_ALL += $(FORMATS_CPPFLAGS)
$(FORMATS_OBJS): CFLAGS_ALL += -fvisibility=hidden
$(ORACLE_OBJS): CPPFLAGS_ALL += $(ORACLE_CPPFLAGS)

.PHONY: lib
lib: $(LIB_CORE_A) $(LIB_CORE_SO) $(LIB_FORMATS_A) $(LIB_FORMATS_SO) $(LIB_ORACLE_A)

$(LIB_CORE_A): $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $^
$(LIB_FORMATS_A): $(FORMATS_OBJS)
	@rm -f $@
	ar rcs $@ $^
$(LIB_ORACLE_A): $(ORACLE_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(LIB_CORE_SO): $(CORE_OBJS)
	$(CC) -shared $(LDFLAGS_ALL) -Wl,-soname,libshardtrie.so.$(SO_ABI) -o $@.$(SO_ABI) $^ \
		-lurcu-memb -lurcu-common -lxxhash
	ln -sf libshardtrie.so.$(SO_ABI) $@
$(LIB_FORMATS_SO): $(FORMATS_OBJS) $(LIB_CORE_SO)
	$(CC) -shared $(LDFLAGS_ALL) -Wl,-soname,libshardtrie-formats.so.$(SO_ABI) \
		-o $@.$(SO_ABI) $(FORMATS_OBJS) -L$(B) -lshardtrie -lz -lm
	ln -sf libshardtrie-formats.so.$(SO_ABI) $@
