/*
 * Dispatch: hands ready events to the consumers that announced capacity (AWAITING_GENERATION,
 * TRIPLES_GENERATED, CLEAN_UP), as batches of one project's events, picking projects round-robin
 * among those with ready work; publishes the project_request rows the API wrote; and el_tick, the
 * service tick that also runs the schedules (el_schedule.h) and zombie chasing (el_zombie.h).
 * A claim is one transaction: lock (SKIP LOCKED), el_change_apply(DISPATCH), publish with
 * confirms, commit; a failed publish rolls back. It does not consume (el_consume.h does).
 * Bus thread only: the connection and AMQP handle are the bus thread's; el_tick keeps its
 * round-robin cursors and timers in one file-scope el_dispatcher (one dispatcher per process).
 * docs/internals/event-log.md explains credits, fairness and the queries.
 */
#ifndef EL_DISPATCH_H
#define EL_DISPATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "el_change.h"
#include "el_context.h"
#include "fg/amqp.h"
#include "fg/buf.h"
#include "fg/error.h"
#include "fg/pg.h"
#include "fg/proto.h"
#include "fg/service.h"

#define EL_DISPATCH_PROJECTS_MAX    1000        /* projects_per_round is clamped to this */
#define EL_DISPATCH_ROUND_BYTES_MAX (64u << 20) /* message bytes one round may hold */
#define EL_DISPATCH_TICK_BUDGET_MS  100   /* rounds of one kind in one tick stop after this long */
#define EL_DISPATCH_CONFIRM_MS      10000 /* publisher confirms of one round */
#define EL_DISPATCH_REQUESTS_MAX    100   /* project_request rows published per tick */
#define EL_DISPATCH_BACKOFF_MAX_MS  30000 /* a failing part of the tick waits at most this */
#define EL_DISPATCH_LOCK_CLASS      1162626128 /* 'ELDP': advisory lock class of event-log */
#define EL_DISPATCH_COALESCE_MS     200 /* a crumb of credit waits at most this long for more */

/* What is dispatched; each kind has its own credit, cursor and (advisory) dispatch lock. */
typedef enum {
    EL_DISPATCH_GENERATION,     /* NEW, GENERATION_RECOVERABLE_FAILURE -> AWAITING_GENERATION */
    EL_DISPATCH_TRANSFORMATION, /* TRIPLES_GENERATED, ..._RECOVERABLE_FAILURE -> TRIPLES_GENERATED
                                 */
    EL_DISPATCH_CLEAN_UP,       /* AWAITING_DELETION -> CLEAN_UP {events} */
    EL_DISPATCH_KIND_COUNT
} el_dispatch_kind;

/* The SQL behind each kind (for the docs, the bench and tests): the statuses are literals so
 * that the planner can match the partial indexes of migration 0001. */
typedef enum {
    EL_DISPATCH_SQL_CREDIT, /* $1 consumer ttl ms -> capacity, consumers, in processing */
    EL_DISPATCH_SQL_PICK,   /* $1 after project id, $2 limit -> id, forge, path (ascending) */
    EL_DISPATCH_SQL_CLAIM,  /* $1 project, $2 limit -> id, sha, body | payload_id; locks rows */
    EL_DISPATCH_SQL_COUNT
} el_dispatch_sql_kind;

/* The category name (routing key, and the key of the consumers' capacity), the processing status
 * DISPATCH moves events to, and the ready statuses; NULL / EL_STATUS_NONE / 0 out of range. */
const char *el_dispatch_category(el_dispatch_kind kind);
el_status el_dispatch_processing(el_dispatch_kind kind);
size_t el_dispatch_ready_statuses(el_status out[EL_STATUS_COUNT], el_dispatch_kind kind);
const char *el_dispatch_sql(el_dispatch_kind kind, el_dispatch_sql_kind which);

/* ---- credit ------------------------------------------------------------------------------ */

typedef struct {
    long long capacity;   /* sum over consumers heard from within the ttl */
    long long consumers;  /* such consumer rows (live, even with capacity 0) */
    long long processing; /* events in the processing status; CLEAN_UP: projects in DELETING */
    long long free;       /* capacity - processing, never below 0 */
} el_credit;

/* Reads the credit of `kind` (inside or outside a transaction). FG_EUNAVAILABLE / FG_ERROR from
 * the database. */
int el_dispatch_credit(el_credit *out, fg_pg_conn *pg, const el_context *ctx,
                       el_dispatch_kind kind) FG_MUST_CHECK;

/* pg_try_advisory_xact_lock(EL_DISPATCH_LOCK_CLASS, object) in the caller's transaction: *out
 * is false when another session holds it. Objects 0..EL_DISPATCH_KIND_COUNT-1 are the dispatch
 * kinds, 100 + n the schedules. Database errors as fg_pg_exec. */
int el_dispatch_try_lock(bool *out, fg_pg_conn *pg, int object) FG_MUST_CHECK;

/* ---- pick and claim ---------------------------------------------------------------------- */

/* Projects with ready work, ascending by id. Paths are borrowed from the pick. */
typedef struct {
    fg_proto_project *projects;
    size_t n;
    fg_pg_result *rows; /* owns the paths */
} el_pick;

void el_pick_init(el_pick *p);
void el_pick_dispose(el_pick *p);

/* Fills *out (initialised, replaced) with up to max projects that have ready work of `kind` and
 * an id above `after`. FG_EINVALID for max 0 or above EL_DISPATCH_PROJECTS_MAX; FG_ERROR for a
 * row that is not a project forgegraph can address; database errors as fg_pg_exec. */
int el_dispatch_pick(el_pick *out, fg_pg_conn *pg, el_dispatch_kind kind, long long after,
                     size_t max) FG_MUST_CHECK;

/* Ready events of one project, locked FOR UPDATE SKIP LOCKED: only inside a transaction. */
typedef struct {
    size_t n;
    el_event_id *ids;
    const char **shas;
    const char **bodies;    /* generation: the stored commit body, NULL when none */
    long long *payload_ids; /* transformation: the payload row, 0 when none */
    fg_pg_result *rows;     /* owns the texts */
} el_claim;

void el_claim_init(el_claim *c);
void el_claim_dispose(el_claim *c);

/* Locks up to max ready events of `project` (oldest execution_date first; transformation keeps
 * payload groups together) into *out (initialised, replaced). FG_EINVALID for max 0 or above
 * FG_PROTO_BATCH_MAX; database errors as fg_pg_exec. */
int el_dispatch_claim(el_claim *out, fg_pg_conn *pg, el_dispatch_kind kind, el_project_id project,
                      size_t max) FG_MUST_CHECK;

/* ---- outgoing messages ------------------------------------------------------------------- */

/* Serialised messages waiting for one confirmed publish. */
typedef struct {
    char id[FG_PROTO_UUID_LEN + 1];
    const char *category;
    fg_buf body;
} el_outgoing;

typedef struct {
    el_outgoing *items;
    size_t n, cap;
    size_t bytes; /* of every body */
} el_outbox;

void el_outbox_init(el_outbox *o);
void el_outbox_dispose(el_outbox *o);

/* Validates and serialises msg into the outbox. FG_EINVALID (the message breaks its schema),
 * FG_ETOOBIG (over FG_PROTO_MESSAGE_MAX: split the batch), FG_ENOMEM. */
int el_outbox_add(el_outbox *o, fg_proto_msg *msg) FG_MUST_CHECK;

/* Publishes everything with confirms; 0 when every message was confirmed and routed, else the
 * error of fg_amqp_publish_batch (FG_ENOTFOUND: no queue bound for a category). */
int el_outbox_publish(el_outbox *o, fg_amqp *amqp) FG_MUST_CHECK;

/* ---- rounds ------------------------------------------------------------------------------ */

/* A dispatcher's state: where the round robin of each kind stands, and the tick's timers. */
typedef enum {
    EL_TICK_ZOMBIES,
    EL_TICK_GENERATION,
    EL_TICK_TRANSFORMATION,
    EL_TICK_CLEAN_UP,
    EL_TICK_REQUESTS,
    EL_TICK_COMMIT_SYNC,
    EL_TICK_GLOBAL_COMMIT_SYNC,
    EL_TICK_MEMBER_SYNC,
    EL_TICK_PROJECT_SYNC,
    EL_TICK_PRUNE,
    EL_TICK_PAYLOADS,
    EL_TICK_GAUGES,
    EL_TICK_PART_COUNT
} el_tick_part;

typedef struct {
    long long cursor[EL_DISPATCH_KIND_COUNT]; /* last project served; the next round starts after */
    long long next_ms[EL_TICK_PART_COUNT];    /* monotonic time a part runs next */
    unsigned failures[EL_TICK_PART_COUNT];    /* consecutive failures: the part's backoff */
    long long started_ms;                     /* monotonic time of el_dispatcher_init */
    long long last_sent_ms[EL_DISPATCH_KIND_COUNT]; /* the last round that sent something */
} el_dispatcher;

void el_dispatcher_init(el_dispatcher *d);

typedef struct {
    bool locked_out;  /* another event-log process was dispatching this kind: skipped */
    bool deferred;    /* only a crumb of credit was free: waiting briefly for more */
    el_credit credit; /* as read inside the round */
    size_t projects;  /* projects that got a message */
    size_t events;    /* events dispatched (published) */
    size_t failed;    /* events that could not be sent (unreadable body, missing payload...) */
    size_t messages;  /* messages published */
} el_dispatch_result;

/* One round of `kind` in one transaction: credit, pick after d's cursor (wrapping around), claim
 * a share of the credit per project, DISPATCH, publish with confirms, commit; then advances the
 * cursor. Nothing dispatched (no credit, no work, or another process holds the kind's lock) is
 * success with out->events 0. A crumb of credit (under a quarter of a batch) while batches are
 * in flight waits up to EL_DISPATCH_COALESCE_MS after the last round that sent, so that credit
 * coming back in odd sizes does not split every later batch in two. On failure everything is
 * rolled back: FG_EUNAVAILABLE / FG_ETIMEOUT / FG_ENOTFOUND from the broker, database errors as
 * fg_pg_exec, FG_ECONFLICT when the claimed events did not all move. */
int el_dispatch_round(el_dispatch_result *out, el_dispatcher *d, fg_pg_conn *pg, fg_amqp *amqp,
                      const el_context *ctx, el_dispatch_kind kind) FG_MUST_CHECK;

/* Publishes up to EL_DISPATCH_REQUESTS_MAX project_request rows (REPROVISION -> CLEAN_UP
 * {"all": true}; PROJECT_REMOVED -> PROJECT_REMOVED) and deletes them in the same transaction.
 * *out: messages published. Errors as el_dispatch_round. */
int el_dispatch_requests(size_t *out, fg_pg_conn *pg, fg_amqp *amqp) FG_MUST_CHECK;

/* Everything a tick does, with explicit state: zombies and schedules every second, dispatch
 * rounds of each kind until no credit or no work is left (or EL_DISPATCH_TICK_BUDGET_MS per
 * kind), project requests, pruning of processed_message. A part that fails is logged here (warn,
 * naming the part) and retried after a backoff; the others still run. Returns 0, or the first
 * failure's code. */
int el_dispatcher_tick(el_dispatcher *d, fg_pg_conn *pg, fg_amqp *amqp,
                       const el_context *ctx) FG_MUST_CHECK;

/* Makes the COMMIT_SYNC schedule run at the next tick instead of within its second: a sync asked
 * for (a push's COMMIT_SYNC_REQUEST, POST /projects/{id}/sync) is published at once, which is
 * most of a pushed commit's way to the graph. Any thread; the API thread then wakes the bus. */
void el_dispatch_commit_sync_due(void);

/* The fg_service_tick_fn of fg-event-log (payload: the el_context): el_dispatcher_tick on the
 * process's dispatcher. Returns 0: failures were logged by the tick itself, and the runtime
 * would log them a second time. */
int el_tick(fg_service_bus *bus, void *payload);

/* Settings with the defaults of el_context.h where main.c left a value at 0. */
long long el_setting(long long value, long long fallback);

#endif
