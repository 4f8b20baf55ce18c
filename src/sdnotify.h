/*
 * systemd's readiness protocol (sd_notify(3)), spoken directly: one
 * datagram of NAME=value lines to the unix socket in $NOTIFY_SOCKET
 * (a path, or an abstract name written with a leading '@').
 *
 * Why not libsystemd's sd_notify: the protocol is a few documented lines
 * that systemd keeps stable (it is meant to be reimplemented), and speaking
 * it directly keeps hookd free of a dependency that only matters under
 * systemd. Nothing happens when NOTIFY_SOCKET is unset.
 *
 * hookd sends READY=1 once it listens, STATUS=... lines for `systemctl
 * status`, RELOADING=1 (with MONOTONIC_USEC) around a SIGHUP reload,
 * STOPPING=1 on SIGTERM, and WATCHDOG=1 from the event loop at half of
 * $WATCHDOG_USEC, so a loop that hangs is restarted by WatchdogSec=.
 */
#ifndef HOOKD_SDNOTIFY_H
#define HOOKD_SDNOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;

/* Reads NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID, opens the socket and
 * removes the variables from the environment. Returns 1 when notifications
 * go out, 0 when there is no NOTIFY_SOCKET, -errno when it cannot be used
 * (err says why; hookd then runs on without notifications). */
int sdnotify_open(char *err, size_t errlen);
bool sdnotify_enabled(void);
/* Sends one message; fmt gives its NAME=value lines ("READY=1\nSTATUS=x").
 * Returns 0, or -errno when it could not be sent. No-op when disabled. */
int sdnotify_send(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* "RELOADING=1" with MONOTONIC_USEC= the CLOCK_MONOTONIC time now. */
int sdnotify_reloading(void);
/* The watchdog interval systemd asked for, in microseconds; 0: none (no
 * WATCHDOG_USEC, or WATCHDOG_PID names another process). */
uint64_t sdnotify_watchdog_usec(void);
/* Sends WATCHDOG=1 now and then every half interval from base's loop.
 * Returns 1 when started, 0 when there is no watchdog. */
int sdnotify_watchdog_start(struct event_base *base);
void sdnotify_close(void);

#endif
