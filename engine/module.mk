# SPDX-License-Identifier: MIT
# libshardtrie: every engine/src/*.c goes into the static and shared library.
ENGINE_SRCS := $(sort $(wildcard engine/src/*.c))
ENGINE_OBJS := $(ENGINE_SRCS:%.c=$(B)/%.o)
LIB_A       := $(B)/libshardtrie.a
LIB_SO      := $(B)/libshardtrie.so
# export_pprof.c gzips its output.
LIBS_ENGINE += -lz

.PHONY: lib
lib: $(LIB_A) $(LIB_SO)

$(LIB_A): $(ENGINE_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(LIB_SO): $(ENGINE_OBJS)
	$(CC) -shared $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ENGINE)
