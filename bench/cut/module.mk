# SPDX-License-Identifier: MIT
# The cost of the live server's cut exports (bench/cut/export_cut.c, issue 17):
#   make BUILD=... bench-export-cut    flamebearer max_nodes=1024 and json
#                                      min_fraction=0.001 of a ~165 K-node snapshot
CUT_BIN := $(B)/bench/cut/export_cut
$(CUT_BIN): $(B)/bench/cut/export_cut.o $(B)/bench/workload.o $(LIB_A)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ENGINE) $(LIBS_MALLOC) -lxxhash -lm
.PHONY: bench-export-cut
bench-export-cut: $(CUT_BIN)
	$(CUT_BIN) $(CUT_ARGS)
