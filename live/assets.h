/* SPDX-License-Identifier: MIT */
/* assets.h - the live page's files, embedded at build time (live/module.mk
 * turns live/page/<file> into a C array in the build directory). */
#ifndef ST_LIVE_ASSETS_H
#define ST_LIVE_ASSETS_H

#include <stddef.h>

extern const unsigned char st_live_index_html[];
extern const size_t st_live_index_html_len;
extern const unsigned char st_live_app_js[];
extern const size_t st_live_app_js_len;
extern const unsigned char st_live_app_css[];
extern const size_t st_live_app_css_len;

#endif
