/*
 * The control socket, state_dir/control.sock (mode 0600): how `hookd
 * replay` asks the running daemon to run a journaled delivery again, so
 * that max_running, serialization and the journal's bookkeeping hold.
 *
 * The protocol is one request line, "replay ENDPOINT ID\n" (ENDPOINT "-"
 * for any), and one answer line, "CODE message\n": 0 queued, 1 unknown,
 * 2 already pending, 3 body not kept, 4 ambiguous.
 */
#ifndef HOOKD_CONTROL_H
#define HOOKD_CONTROL_H

#include <stddef.h>

struct event_base;
struct dispatcher;
struct journal;
struct control;

struct control *control_new(struct event_base *base, const char *state_dir,
                            struct dispatcher *ds, struct journal *j, char *err, size_t errlen);
void control_free(struct control *c);

/* The client side: returns the command's exit status (README "Command line"). */
int control_replay(const char *state_dir, const char *endpoint, const char *id);

#endif
