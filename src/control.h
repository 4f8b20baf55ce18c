/*
 * The control socket, state_dir/control.sock (mode 0600): how `hookd
 * replay` asks the running daemon to run a journaled delivery again, so
 * that max_running, serialization and the journal's bookkeeping hold.
 *
 * The protocol is one request line, "replay ENDPOINT ID\n" (ENDPOINT "-"
 * for any), and one answer line, "CODE message\n": the code is an enum
 * result (result.h): 0 queued, 1 unknown, 2 already pending, 3 body not
 * kept, 4 ambiguous.
 */
#ifndef HOOKD_CONTROL_H
#define HOOKD_CONTROL_H

#include <stddef.h>

#include "result.h"

/* The longest request or answer line. */
#define CONTROL_LINE_MAX 1024

struct event_base;
struct dispatcher;
struct journal;
struct control;

struct control *control_new(struct event_base *base, const char *state_dir,
                            struct dispatcher *ds, struct journal *j, char *err, size_t errlen);
void control_free(struct control *c);

/*
 * The client side: asks the daemon behind state_dir to replay (endpoint, or
 * NULL for any, id). RESULT_OK when it was queued; else the daemon's answer
 * code, or RESULT_ERROR when no answer came, with the words for the user in
 * err (without the leading "hookd: ").
 */
enum result control_replay(const char *state_dir, const char *endpoint, const char *id,
                           char *err, size_t errlen);

#endif
