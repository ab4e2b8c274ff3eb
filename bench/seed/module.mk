# SPDX-License-Identifier: MIT
# shardtrie against the design it replaces: the seed's LiveTrie written here
# in Go (bench/seed/livetrie.go), fed the same events (bench/seed/compare.c).
#   make bench-seed          medians of 3, 20 M events (a few minutes)
#   SEED_ARGS=--events 5000000 --reps 1   a quick look
SEED_BIN  := $(B)/bench/seed/shardtrie_seed
SEED_PEER := $(B)/bench/seed/livetrie

$(SEED_BIN): $(B)/bench/seed/compare.o $(LIB_A)
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(LIBS_ENGINE) $(LIBS_MALLOC) -lm

$(SEED_PEER): bench/seed/livetrie.go bench/seed/main.go
	@mkdir -p $(@D)
	cd bench/seed && GO111MODULE=off go build -o $(CURDIR)/$@ livetrie.go main.go

.PHONY: bench-seed
bench-seed: $(SEED_BIN) $(SEED_PEER)
	@command -v go >/dev/null || { echo "bench-seed: needs go (Debian golang-go: scripts/deps.sh test)"; exit 2; }
	$(SEED_BIN) --peer $(SEED_PEER) --dir $(B)/bench/seed $(SEED_ARGS)
