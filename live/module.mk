# SPDX-License-Identifier: MIT
# live/: the live view's HTTP server (libmicrohttpd), linked into the CLI.
# The page (live/page/*) is embedded at build time: each file becomes a C
# array in $(B)/live/assets.c (xxd -i), so the binary serves it without
# touching the disk and with no CDN.
LIVE_SRCS   := $(sort $(filter-out %_test.c,$(wildcard live/*.c)))
LIVE_PAGE   := live/page/index.html live/page/app.js live/page/app.css
LIVE_OBJS   := $(LIVE_SRCS:%.c=$(B)/%.o) $(B)/live/assets.o
CLI_EXTRA_OBJS += $(LIVE_OBJS)
CLI_EXTRA_LIBS += -lmicrohttpd -ljansson

$(LIVE_SRCS:%.c=$(B)/%.o): CPPFLAGS_ALL += -Ilive

# name of the array for a page file: index.html -> st_live_index_html
live_sym = st_live_$(subst .,_,$(notdir $(1)))

$(B)/live/assets.c: $(LIVE_PAGE) live/module.mk
	@mkdir -p $(@D)
	@command -v xxd >/dev/null || { echo "live: xxd missing (Debian: apt-get install xxd)" >&2; exit 1; }
	@{ echo '/* generated from live/page/ by live/module.mk: do not edit */'; \
	   echo '#include <stddef.h>'; \
	   $(foreach f,$(LIVE_PAGE),echo 'const unsigned char $(call live_sym,$(f))[] = {'; \
	     xxd -i < $(f); echo '};'; \
	     echo 'const size_t $(call live_sym,$(f))_len = sizeof($(call live_sym,$(f)));';) \
	 } > $@.tmp && mv $@.tmp $@

$(B)/live/assets.o: $(B)/live/assets.c
	$(CC) $(CFLAGS_ALL) -fPIC -c $< -o $@

# cli/serve.c includes "live/server.h".
$(B)/cli/serve.o: CPPFLAGS_ALL += -I.

# White-box suites of the window ring (live/window_test.c, simulated clock)
# and of the cache with windows and base options (live/cache_test.c):
# linked into the test binary with window.c and cache.c (which need only
# the engine and pthreads), like engine/core's *_test.c suites.
CORE_TEST_SRCS += live/window_test.c live/window.c live/cache_test.c live/cache.c
$(B)/live/window_test.o $(B)/live/cache_test.o: CPPFLAGS_ALL += -Ilive
