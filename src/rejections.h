/*
 * The last refused requests, in memory (the admin's GET /api/v1/rejections):
 * the answer to "why did it not fire?". A ring of REJECTIONS_MAX entries:
 * time, client address, endpoint (or the path when no endpoint matched),
 * HTTP answer and reason. The callers pass the reason they log, which
 * never holds a credential; nothing of the request's headers is kept.
 */
#ifndef HOOKD_REJECTIONS_H
#define HOOKD_REJECTIONS_H

#include <stdint.h>

#define REJECTIONS_MAX 1000

struct strbuf;

/* Any argument but status may be NULL. */
void rejections_add(int status, const char *client, const char *endpoint, const char *path,
                    const char *reason);
/* Newest first, at most limit (<= 0: all), as a JSON array appended to out. */
void rejections_json(struct strbuf *out, int limit);
/* Entries held now. */
int rejections_count(void);
void rejections_cleanup(void);

#endif
