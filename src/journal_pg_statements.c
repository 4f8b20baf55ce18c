/*
 * The PostgreSQL journal's prepared statements: the ones that run once or
 * more for every delivery (its lookup and record, its attempt's start and
 * outcome, a turn on its key) or on every tick (the lease, the counts),
 * each with its name on the server and its SQL. run_prepared
 * (journal_pg_connect.c) prepares one on a connection the first time it
 * runs there, so that the server parses it once a session rather than
 * once a call (it still plans it at every run: ask_custom_plans in
 * journal_pg_connect.c); a new
 * connection (a reconnect) prepares again.
 * Statements that run rarely stay text (run) where they are used.
 */
#include "journal_pg_private.h"

/*
 * The outcome and the attempt in one statement (the attempt row only when
 * the fence matched); a final state cuts the body to body_max and gives up
 * the lease. In an UPDATE every expression sees the old row.
 */
#define SQL_FINISH \
	"WITH u AS (UPDATE hookd_deliveries SET state = $3::int," \
	" attempts = greatest(attempts, $4::int), http = $5::int, status = $6::text," \
	" error = $7::text, next_due_ms = $8::bigint, updated_ms = $9::bigint, run_attempt = 0," \
	" body_cut = CASE WHEN $3::int >= 3 AND length(body) > $10::bigint THEN true" \
	"  ELSE body_cut END," \
	" body = CASE WHEN $3::int >= 3 AND length(body) > $10::bigint" \
	"  THEN substr(body, 1, least($10::bigint, 2147483647)::int) ELSE body END," \
	" owner = CASE WHEN $3::int >= 3 THEN NULL ELSE owner END" \
	" WHERE id = $1::bigint AND fence = $2::bigint AND owner = $11::text" \
	" RETURNING id, async, body_len, replay_attempt, state)," \
	" a AS (INSERT INTO hookd_attempts (delivery, attempt, started_ms, finished_ms, http," \
	"  status, error, replay, instance, client_gone) SELECT id, $4::int, $12::bigint," \
	"  $13::bigint, $5::int, $14::text, $7::text, replay_attempt = $4::int, $11::text," \
	"  $15::boolean FROM u" \
	"  ON CONFLICT (delivery, attempt) DO UPDATE SET started_ms = excluded.started_ms," \
	"  finished_ms = excluded.finished_ms, http = excluded.http, status = excluded.status," \
	"  error = excluded.error, replay = excluded.replay, instance = excluded.instance," \
	"  client_gone = excluded.client_gone)" \
	" SELECT async, body_len FROM u"

/*
 * A new row, or a resend of a FAILED one updated in place (attempts, the
 * last attempt's outcome and the first receipt kept; a replay before it no
 * longer counts its retries, README "Async mode"). Any other existing row
 * (another instance recorded it since the caller's lookup) returns
 * nothing: JOURNAL_LOST.
 */
#define SQL_RECORD \
	"INSERT INTO hookd_deliveries AS d (endpoint, delivery_id, event, remote_addr, async," \
	" state, received_ms, updated_ms, run_attempt, run_started_ms, headers, body, body_len," \
	" body_cut, serial_key, owner, fence, instance)" \
	" VALUES ($1::text, $2::text, $3::text, coalesce($4::text, ''), $5::boolean, $6::int," \
	" $7::bigint, $7::bigint, CASE WHEN $6::int = 1 THEN 1 ELSE 0 END, $7::bigint, $8::text," \
	" $9::bytea, $10::bigint, $11::boolean, $12::text, $13::text, 1, $13::text)" \
	" ON CONFLICT (delivery_id, endpoint) DO UPDATE SET event = excluded.event," \
	" remote_addr = coalesce($4::text, d.remote_addr), async = excluded.async," \
	" state = excluded.state, updated_ms = $14::bigint, next_due_ms = 0, replay_attempt = 0," \
	" run_attempt = CASE WHEN excluded.state = 1 THEN d.attempts + 1 ELSE 0 END," \
	" run_started_ms = $14::bigint, headers = excluded.headers, body = excluded.body," \
	" body_len = excluded.body_len, body_cut = excluded.body_cut," \
	" serial_key = excluded.serial_key, owner = excluded.owner," \
	" fence = d.fence + 1, instance = excluded.instance," \
	" queued_seq = nextval('hookd_queue_seq')" \
	" WHERE d.state = 4" \
	" RETURNING id, fence, run_attempt"

/* The fenced "mark running" of attempt_started and take_turn. take_turn's
 * key goes in the row too: one recorded without it (imported, or before its
 * endpoint had serialize) must hold its key for the other instances while
 * it runs. Only under this instance's lease: once it ran out, another
 * instance may adopt the row at any moment and run it too (mark_running
 * tells that from a fence that moved). */
#define SQL_STARTED \
	"UPDATE hookd_deliveries SET state = 1, run_attempt = $3::int, run_started_ms = $4::bigint," \
	" updated_ms = $4::bigint, serial_key = coalesce($6::text, serial_key)" \
	" WHERE id = $1::bigint AND fence = $2::bigint AND owner = $5::text AND state < 3" \
	" AND EXISTS (SELECT 1 FROM hookd_instances WHERE name = $5::text" \
	"  AND lease_until > now())"

/* replay: true/false as given, or NULL: whether the delivery's last
 * requeue asked for this attempt. */
#define SQL_ATTEMPT \
	"INSERT INTO hookd_attempts (delivery, attempt, started_ms, finished_ms, http, status," \
	" error, replay, instance, client_gone) VALUES ($1::bigint, $2::int, $3::bigint," \
	" $4::bigint, $5::int, $6::text, $7::text, coalesce($8::boolean, (SELECT replay_attempt =" \
	" $2::int FROM hookd_deliveries WHERE id = $1::bigint), false), $9::text, $10::boolean)" \
	" ON CONFLICT (delivery, attempt) DO UPDATE SET started_ms = excluded.started_ms," \
	" finished_ms = excluded.finished_ms, http = excluded.http, status = excluded.status," \
	" error = excluded.error, replay = excluded.replay, instance = excluded.instance," \
	" client_gone = excluded.client_gone"

#define SQL_HOOK \
	"INSERT INTO hookd_hook_runs (delivery, attempt, seq, hook, exit, signal, ms, error, output)" \
	" VALUES ($1::bigint, $2::int, $3::int, $4::text, $5::int, $6::text, $7::bigint, $8::text," \
	" $9::bytea) ON CONFLICT (delivery, attempt, seq) DO UPDATE SET hook = excluded.hook," \
	" exit = excluded.exit, signal = excluded.signal, ms = excluded.ms," \
	" error = excluded.error, output = excluded.output"

/* A key's turn: an earlier delivery of the key running or queued ahead
 * (a row: not its turn), and whether what it waits for is only the first
 * of those queued ahead, held by this instance ($3): none of the key runs. */
#define SQL_TURN_WAIT \
	"SELECT NOT EXISTS (SELECT 1 FROM hookd_deliveries WHERE serial_key = $1::text" \
	"  AND state = 1 AND id <> $2::bigint) AND coalesce(owner = $3::text, false)" \
	" FROM hookd_deliveries WHERE serial_key = $1::text AND state < 3" \
	" AND id <> $2::bigint AND (state = 1 OR (state = 0 AND queued_seq <" \
	" (SELECT queued_seq FROM hookd_deliveries WHERE id = $2::bigint)))" \
	" ORDER BY queued_seq LIMIT 1"

/* This instance's lease, from now: one row, whatever it holds. */
#define SQL_RENEW_LEASE \
	"INSERT INTO hookd_instances AS i (name, lease_until)" \
	" VALUES ($1::text, now() + $2::bigint * interval '1 millisecond')" \
	" ON CONFLICT (name) DO UPDATE SET lease_until = excluded.lease_until"

const struct pg_statement pg_statements[STMT_N] = {
	[STMT_LOOKUP] = {"hookd_lookup",
	                 "SELECT id, state, attempts FROM hookd_deliveries"
	                 " WHERE delivery_id = $2::text AND endpoint = $1::text"},
	[STMT_RECORD] = {"hookd_record", SQL_RECORD},
	[STMT_STARTED] = {"hookd_started", SQL_STARTED},
	[STMT_ATTEMPT] = {"hookd_attempt", SQL_ATTEMPT},
	[STMT_HOOK] = {"hookd_hook", SQL_HOOK},
	[STMT_FINISH] = {"hookd_finish", SQL_FINISH},
	[STMT_TURN_LOCK] = {"hookd_turn_lock",
	                    "SELECT pg_advisory_xact_lock(" LOCK_KEY_CLASS ", hashtext($1::text))"},
	[STMT_TURN_WAIT] = {"hookd_turn_wait", SQL_TURN_WAIT},
	[STMT_RENEW_LEASE] = {"hookd_renew_lease", SQL_RENEW_LEASE},
	[STMT_PENDING] = {"hookd_pending",
	                  "SELECT count(*), coalesce(sum(body_len), 0) FROM hookd_deliveries"
	                  " WHERE state < 3 AND async"},
};

/* run_prepared keeps a bit a statement in a uint32_t. */
_Static_assert(STMT_N <= 32, "more statements than bits in pg_journal.prepared");
