# SPDX-License-Identifier: MIT
# "Rendering never slows ingest" (docs/tui.md): `serve -` ingesting one
# stream alone and with `shardtrie top` attached in a tmux terminal.
#   make bench-tui                      5 reps of 2 M lines (about a minute)
#   TUI_BENCH_ARGS=--lines 500000 --reps 3   a quick look
TUI_BENCH_BIN := $(B)/bench/tui/shardtrie_tui_bench

$(TUI_BENCH_BIN): $(B)/bench/tui/ingest.o
	$(CC) $(LDFLAGS_ALL) -o $@ $^ -lcurl -ljansson

.PHONY: bench-tui
bench-tui: $(TUI_BENCH_BIN) $(CLI)
	$(TUI_BENCH_BIN) --cli $(CLI) $(TUI_BENCH_ARGS)
