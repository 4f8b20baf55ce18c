/*
 * The deliveries page's files (src/web/), compiled into the binary at build
 * time (scripts/embed_web.py), so that the page needs nothing at install
 * time and nothing from elsewhere when it runs.
 */
#ifndef HOOKD_WEB_ASSETS_H
#define HOOKD_WEB_ASSETS_H

#include <stddef.h>

struct web_asset {
	const char *name; /* "index.html", "app.js", "style.css" */
	const char *content_type;
	const char *data; /* NUL-terminated text */
	size_t len;
};
extern const struct web_asset web_assets[];
extern const size_t web_assets_count;

#endif
