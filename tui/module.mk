# SPDX-License-Identifier: MIT
# tui/: the terminal live view (`shardtrie top`, `record --tui`): ncurses for
# the terminal, libcurl for the live server, jansson for its JSON.  The model
# (tui/model.c) is pure and linked into the tests as well.
TUI_SRCS := $(sort $(wildcard tui/*.c))
TUI_OBJS := $(TUI_SRCS:%.c=$(B)/%.o)
CLI_EXTRA_OBJS += $(TUI_OBJS)
CLI_EXTRA_LIBS += -lncursesw -lcurl -ljansson

# The tests link the model alone (no terminal, no network).
TUI_MODEL_OBJ := $(B)/tui/model.o
TEST_EXTRA_OBJS += $(TUI_MODEL_OBJ)

# cli/*.c include "tui/tui.h".
$(B)/cli/top.o $(B)/cli/record_tui.o: CPPFLAGS_ALL += -I.
