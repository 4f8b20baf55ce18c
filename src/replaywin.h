/*
 * The replay window (README "Hardening and limits"): what an endpoint's
 * `replay_window` remembers so that a byte-identical body arriving under
 * another delivery id within the window is a duplicate. Schemes that sign
 * the body but not the id (GitHub's X-GitHub-Delivery, hmac's id_header)
 * let one captured request be resent under fresh ids; this refuses those.
 *
 * It remembers, per endpoint, the SHA-256 of each body admitted with the
 * id it came under and its arrival time, in memory: a restart forgets the
 * window. At most `max` bodies are remembered; past that the oldest is
 * forgotten first. For the event loop's thread alone.
 *
 * Two steps, so that only a delivery hookd takes is remembered (one
 * refused with a 503 may come again): replaywin_check() digests the body
 * and says whether it is a duplicate; replaywin_commit() remembers the
 * body last checked, once its delivery is recorded.
 */
#ifndef HOOKD_REPLAYWIN_H
#define HOOKD_REPLAYWIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* What a dispatcher remembers at most: about 100 bytes each. */
#define REPLAYWIN_MAX 65536

struct replaywin;

struct replaywin *replaywin_new(size_t max);
void replaywin_free(struct replaywin *w);

/*
 * Whether `body` came to `endpoint` within window_ms before now_ms under
 * an id other than `id`. A generated id (the sender gave none) is never
 * the same id: without an id, the same body within the window is a
 * duplicate. A body seen under this same id is not (the id rules of the
 * dispatcher decide on a resend). now_ms: a monotonic clock.
 */
bool replaywin_check(struct replaywin *w, const char *endpoint, const char *id,
                     bool id_generated, const unsigned char *body, size_t len, int64_t window_ms,
                     int64_t now_ms);

/*
 * Remembers the body of the last replaywin_check() that said "not a
 * duplicate", when it was for this endpoint and id; anything else is a
 * no-op. A body already remembered keeps its first arrival time.
 */
void replaywin_commit(struct replaywin *w, const char *endpoint, const char *id);

/*
 * Forgets `body` at `endpoint` (a no-op when it is not remembered): its
 * delivery failed, and the sender's resend, under whatever id, must run.
 */
void replaywin_forget(struct replaywin *w, const char *endpoint, const unsigned char *body,
                      size_t len);

/* How many bodies are remembered (expired ones may still count). */
size_t replaywin_count(const struct replaywin *w);

#endif
