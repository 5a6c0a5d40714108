/*
 * event-log's bus handler (see el_consume.h). Every message runs in one transaction that starts
 * by claiming its id in processed_message (ON CONFLICT DO NOTHING): a redelivered message finds
 * the id taken and commits nothing; two event-log processes handling the same message serialise
 * on that row, and the second one finds it taken. Status changes go through el_change_apply.
 */
#include "el_consume.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "el_change.h"
#include "el_creation.h"
#include "el_dispatch.h"
#include "fg/buf.h"
#include "fg/log.h"
#include "fg/proto.h"

#define EL_CONSUME_TX_ATTEMPTS  3   /* a deadlock or serialization failure is retried at once */
#define EL_CONSUME_NUM_MAX      24u /* a long long in decimal */
#define EL_CONSUME_ARRAY_MAX    ((size_t)FG_AMQP_CATEGORIES_MAX * 48u + 16u) /* SUBSCRIPTION */
#define EL_CONSUME_SHIFT_MAX    40        /* 2^40 x base is past any cap */
#define EL_CONSUME_WHY_MAX      512       /* an error message kept across the rollback */
#define EL_CONSUME_SYNC_LOST_MS 3600000LL /* a COMMIT_SYNC not completed within: lost */
#define EL_CONSUME_GROUP_TRIES  3 /* group commits tried, each without the last one that failed */
#define EL_CONSUME_GROUP_BYTES  ((size_t)4 << 20) /* message bytes in one group (held parsed) */

/* ---- settings and small helpers ----------------------------------------------------------- */

static long long setting(long long value, long long fallback)
{
    return value > 0 ? value : fallback;
}

static void put_id(char out[EL_CONSUME_NUM_MAX], long long v)
{
    snprintf(out, EL_CONSUME_NUM_MAX, "%lld", v);
}

/* Recoverable failures wait base * 2^attempts, capped (the consumer's own delay, when longer,
 * wins). */
static long long backoff_ms(const el_context *ctx, long long attempts, long long asked)
{
    long long base = setting(ctx ? ctx->settings.backoff_base_ms : 0, 30000);
    long long cap = setting(ctx ? ctx->settings.backoff_max_ms : 0, 3600000);
    long long delay = cap;

    if (attempts < 0)
        attempts = 0;
    if (attempts < EL_CONSUME_SHIFT_MAX && base <= (cap >> attempts))
        delay = base << attempts;
    return asked > delay ? asked : delay;
}

static bool is_recoverable_failure(el_status s)
{
    return s == EL_STATUS_GENERATION_RECOVERABLE_FAILURE ||
           s == EL_STATUS_TRANSFORMATION_RECOVERABLE_FAILURE;
}

static bool is_failure(el_status s)
{
    return is_recoverable_failure(s) || s == EL_STATUS_GENERATION_NON_RECOVERABLE_FAILURE ||
           s == EL_STATUS_TRANSFORMATION_NON_RECOVERABLE_FAILURE;
}

/* What one message did, for the metrics (added after the commit) and the log. */
typedef struct {
    el_change_result change;
    size_t created;
} effect;

static void add_change(effect *e, const el_change_result *r)
{
    e->change.applied += r->applied;
    e->change.stale += r->stale;
    e->change.illegal += r->illegal;
    e->change.missing += r->missing;
}

/* ---- status changes ----------------------------------------------------------------------- */

/* The shas of events[] (borrowed from msg), or none when the message names no events. */
typedef struct {
    const char *items[FG_PROTO_BATCH_MAX];
    size_t n;
} sha_list;

static void read_shas(sha_list *out, const fg_proto_msg *msg)
{
    size_t n = fg_proto_msg_count(msg, "events");

    out->n = 0;
    for (size_t i = 0; i < n && i < FG_PROTO_BATCH_MAX; i++)
        out->items[out->n++] = fg_proto_msg_event_sha(msg, i);
}

static int apply(effect *e, fg_pg_conn *pg, const el_change *c)
{
    el_change_result r;
    int rc;

    if ((rc = el_change_apply(&r, pg, c)) < 0)
        return rc;
    add_change(e, &r);
    if (r.missing > 0)
        fg_log_emit(FG_LOG_INFO,
                    FG_LOG_FIELDS(FG_LOG_INT("project", c->project.value),
                                  FG_LOG_STR("cause", el_cause_name(c->cause)),
                                  FG_LOG_INT("missing", (long long)r.missing)),
                    "%zu events of a %s change are unknown (deleted, or never created)", r.missing,
                    el_cause_name(c->cause));
    return 0;
}

/* The highest attempt count among the named events: the exponent of the batch's backoff. */
static int max_attempts(long long *out, fg_pg_conn *pg, const el_change *c)
{
    char project[EL_CONSUME_NUM_MAX];
    const char *params[2] = {project, NULL};
    fg_buf shas;
    fg_pg_result *res = NULL;
    int64_t v = 0;
    int rc;

    fg_buf_init(&shas, (size_t)FG_PROTO_BATCH_MAX * 42u + 16u);
    put_id(project, c->project.value);
    rc = fg_buf_putc(&shas, '{');
    for (size_t i = 0; rc == 0 && i < c->nshas; i++)
        rc = fg_buf_printf(&shas, "%s%s", i ? "," : "", c->shas[i]);
    if (rc == 0 && (rc = fg_buf_putc(&shas, '}')) == 0) {
        params[1] = shas.ptr;
        rc = fg_pg_exec_prepared(&res, pg, "el_consume_attempts",
                                 "SELECT coalesce(max(e.attempts), 0) FROM event_commit c"
                                 " JOIN event e ON e.id = c.event_id"
                                 " WHERE c.project_id = $1 AND c.sha = ANY($2::text[])",
                                 2, params);
    }
    if (rc == 0)
        rc = fg_pg_result_int64(&v, res, 0, 0);
    fg_pg_result_free(res);
    fg_buf_dispose(&shas);
    *out = (long long)v;
    return rc;
}

static int to_failure(effect *e, fg_pg_conn *pg, const el_context *ctx, el_change *c,
                      const fg_proto_msg *msg)
{
    const char *status = fg_proto_msg_get_string(msg, "newStatus");
    long long attempts = 0;
    int rc;

    if (status == NULL || !el_status_parse(&c->to, status) || !is_failure(c->to))
        return fg_error_set(FG_EINVALID, "ToFailure: newStatus is not a failure status");
    c->message = fg_proto_msg_get_string(msg, "message");
    if (is_recoverable_failure(c->to)) {
        if ((rc = max_attempts(&attempts, pg, c)) < 0)
            return rc;
        c->delay_ms = backoff_ms(ctx, attempts, fg_proto_msg_get_int(msg, "executionDelay", 0));
    }
    return apply(e, pg, c);
}

/* The payload is stored by the change itself, when an event moves (el_change.h): a stale or
 * redelivered reply stores none, a project that is gone has no events to move. A payload that is
 * not base64 is a data error (class 22): the message is parked. */
static int to_triples_generated(effect *e, fg_pg_conn *pg, el_change *c, const fg_proto_msg *msg)
{
    c->payload_base64 = fg_proto_msg_get_string(msg, "payload");
    if (c->payload_base64 == NULL)
        return fg_error_set(FG_EINVALID, "ToTriplesGenerated without payload");
    return apply(e, pg, c);
}

/* AllEventsToNew: ProjectEventsToNew for every project, in this one transaction. */
static int all_events_to_new(effect *e, fg_pg_conn *pg)
{
    fg_pg_result *res = NULL;
    el_change c;
    int rc;

    if ((rc = fg_pg_exec_prepared(&res, pg, "el_consume_projects",
                                  "SELECT id FROM project ORDER BY id", 0, NULL)) < 0)
        return rc;
    for (size_t i = 0; rc == 0 && i < fg_pg_result_rows(res); i++) {
        int64_t id = 0;

        if ((rc = fg_pg_result_int64(&id, res, i, 0)) < 0)
            break;
        memset(&c, 0, sizeof(c));
        c.project.value = (long long)id;
        c.to = EL_STATUS_NEW;
        c.cause = EL_CAUSE_REPROVISION;
        c.whole_project = true;
        rc = apply(e, pg, &c);
    }
    fg_pg_result_free(res);
    return rc;
}

/* What each EVENTS_STATUS_CHANGE sub-category asks of el_change: the status and cause; ToFailure
 * takes its status from the message. RedoProjectTransformation sends stored events back to NEW:
 * they have no payload left to upload again, so they are generated again. */
static const el_status only_store[1] = {EL_STATUS_TRIPLES_STORE};

static const struct {
    el_status to;
    el_cause cause;
    const el_status *only_from;
} sub_changes[FG_PROTO_SUB_COUNT] = {
    [FG_PROTO_SUB_TO_TRIPLES_GENERATED] = {EL_STATUS_TRIPLES_GENERATED,
                                           EL_CAUSE_TO_TRIPLES_GENERATED, NULL},
    [FG_PROTO_SUB_TO_TRIPLES_STORE] = {EL_STATUS_TRIPLES_STORE, EL_CAUSE_TO_TRIPLES_STORE, NULL},
    [FG_PROTO_SUB_TO_FAILURE] = {EL_STATUS_NONE, EL_CAUSE_TO_FAILURE, NULL},
    [FG_PROTO_SUB_ROLLBACK_TO_NEW] = {EL_STATUS_NEW, EL_CAUSE_ROLLBACK_TO_NEW, NULL},
    [FG_PROTO_SUB_ROLLBACK_TO_TRIPLES_GENERATED] = {EL_STATUS_TRIPLES_GENERATED,
                                                    EL_CAUSE_ROLLBACK_TO_TRIPLES_GENERATED, NULL},
    [FG_PROTO_SUB_TO_AWAITING_DELETION] = {EL_STATUS_AWAITING_DELETION,
                                           EL_CAUSE_TO_AWAITING_DELETION, NULL},
    /* named events, or all DELETING ones */
    [FG_PROTO_SUB_ROLLBACK_TO_AWAITING_DELETION] = {EL_STATUS_AWAITING_DELETION,
                                                    EL_CAUSE_ROLLBACK_TO_AWAITING_DELETION, NULL},
    [FG_PROTO_SUB_REDO_PROJECT_TRANSFORMATION] = {EL_STATUS_NEW, EL_CAUSE_REPLAY, only_store},
    [FG_PROTO_SUB_PROJECT_EVENTS_TO_NEW] = {EL_STATUS_NEW, EL_CAUSE_REPROVISION, NULL},
    [FG_PROTO_SUB_CLEAN_UP_DONE] = {EL_STATUS_DELETED, EL_CAUSE_CLEAN_UP_DONE, NULL},
};

static int status_change(effect *e, fg_pg_conn *pg, const el_context *ctx, const fg_proto_msg *msg)
{
    fg_proto_sub_category sub = msg->sub_category;
    sha_list *shas = NULL;
    el_change c;
    int rc;

    if (sub == FG_PROTO_SUB_ALL_EVENTS_TO_NEW)
        return all_events_to_new(e, pg);
    /* an empty row has cause CREATION, which no sub-category carries */
    if ((unsigned)sub >= FG_PROTO_SUB_COUNT || sub_changes[sub].cause == EL_CAUSE_CREATION)
        return fg_error_set(FG_EINVALID, "EVENTS_STATUS_CHANGE: unknown sub-category");
    if ((shas = calloc(1, sizeof(*shas))) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory");
    read_shas(shas, msg);
    memset(&c, 0, sizeof(c));
    c.project.value = msg->has_project ? msg->project.id : 0;
    c.shas = shas->items;
    c.nshas = shas->n;
    c.whole_project = shas->n == 0;
    c.to = sub_changes[sub].to;
    c.cause = sub_changes[sub].cause;
    c.only_from = sub_changes[sub].only_from;
    c.nonly_from = c.only_from != NULL ? 1 : 0;
    if (sub == FG_PROTO_SUB_TO_TRIPLES_GENERATED)
        rc = to_triples_generated(e, pg, &c, msg);
    else if (sub == FG_PROTO_SUB_TO_FAILURE)
        rc = to_failure(e, pg, ctx, &c, msg);
    else
        rc = apply(e, pg, &c);
    free(shas);
    return rc;
}

/* ---- the other categories ----------------------------------------------------------------- */

static int project_statement(fg_pg_conn *pg, const char *name, const char *sql, long long project,
                             long long a, long long b, size_t nparams)
{
    char p[3][EL_CONSUME_NUM_MAX];
    const char *params[3] = {p[0], p[1], p[2]};

    put_id(p[0], project);
    put_id(p[1], a);
    put_id(p[2], b);
    return fg_pg_exec_prepared(NULL, pg, name, sql, nparams, params);
}

/* The COMMIT_SYNC sends still in flight, oldest first, less those sent longer ago than
 * EL_CONSUME_SYNC_LOST_MS (a sync that never completes must not stand for a later one forever);
 * read from the row being updated, so two completions racing take one send each. */
#define SQL_IN_FLIGHT                                                                              \
    "array(SELECT x FROM unnest(p.sync_in_flight) x"                                               \
    " WHERE x > now() - $2::bigint * interval '1 millisecond' ORDER BY x)"

/* A sync completed that names its COMMIT_SYNC (syncSentAt, the sentAt event-log gave it): that
 * send is answered, however long the sync ran, and leaves the list. */
static int sync_answered_exactly(fg_pg_conn *pg, long long project, const char *sent_at)
{
    char id[EL_CONSUME_NUM_MAX];
    const char *params[2] = {id, sent_at};

    put_id(id, project);
    return fg_pg_exec_prepared(NULL, pg, "el_consume_sync_answered_exactly",
                               "UPDATE project p SET sync_answered_at ="
                               " greatest(p.sync_answered_at, $2::timestamptz),"
                               " sync_in_flight = array_remove(p.sync_in_flight, $2::timestamptz)"
                               " WHERE p.id = $1::bigint",
                               2, params);
}

/* A sync completed without naming its COMMIT_SYNC (a commit-sync from before syncSentAt): it
 * answers the oldest COMMIT_SYNC in flight (migration 0003 says why that never answers a request
 * too early), which leaves the list. */
static int sync_answered(fg_pg_conn *pg, long long project, const char *sent_at)
{
    if (sent_at != NULL)
        return sync_answered_exactly(pg, project, sent_at);
    return project_statement(
        pg, "el_consume_sync_answered",
        "UPDATE project p SET sync_answered_at = CASE WHEN cardinality(" SQL_IN_FLIGHT
        ") > 0 THEN greatest(p.sync_answered_at, (" SQL_IN_FLIGHT ")[1])"
        " ELSE p.sync_answered_at END,"
        " sync_in_flight = coalesce((" SQL_IN_FLIGHT ")[2:], '{}')"
        " WHERE p.id = $1::bigint",
        project, EL_CONSUME_SYNC_LOST_MS, 0, 2);
}

static int creation(effect *e, fg_pg_conn *pg, const fg_proto_msg *msg)
{
    el_creation_result r;
    int rc;

    if ((rc = el_creation_apply(&r, pg, msg)) < 0)
        return rc;
    if (!r.project_missing && fg_proto_msg_get_bool(msg, "syncComplete") &&
        (rc = sync_answered(pg, msg->project.id, fg_proto_msg_get_string(msg, "syncSentAt"))) < 0)
        return rc;
    e->created = r.created;
    if (r.project_missing)
        fg_log_emit(
            FG_LOG_WARN,
            FG_LOG_FIELDS(FG_LOG_INT("project", msg->project.id), FG_LOG_STR("message", msg->id)),
            "CREATION for project %lld, which is not registered (removed?): dropped",
            msg->project.id);
    return 0;
}

/* Due now (the schedule treats a missing sync_time row as never synced, and a request newer
 * than the latest COMMIT_SYNC as due), and not synced until a sync sent from now on completed. */
static int commit_sync_request(fg_pg_conn *pg, const fg_proto_msg *msg)
{
    el_dispatch_commit_sync_due(); /* the tick after this group's commit publishes it */
    return project_statement(pg, "el_consume_commit_sync",
                             "WITH r AS (UPDATE project SET sync_requested_at = now()"
                             " WHERE id = $1::bigint RETURNING id)"
                             " DELETE FROM sync_time s USING r WHERE s.project_id = r.id"
                             " AND s.category = 'COMMIT_SYNC'",
                             msg->project.id, 0, 0, 1);
}

/* Due after the delay (forge statistics lag behind pushes): last_synced is set so that the
 * schedule's period ends then, unless the sync was due sooner anyway. */
static int global_commit_sync_request(fg_pg_conn *pg, const el_context *ctx,
                                      const fg_proto_msg *msg)
{
    long long period = setting(ctx ? ctx->settings.global_sync_ms : 0, 604800000);
    long long delay = setting(ctx ? ctx->settings.global_sync_delay_ms : 0, 300000);

    return project_statement(
        pg, "el_consume_global_sync",
        "INSERT INTO sync_time (project_id, category, last_synced) SELECT id, "
        "'GLOBAL_COMMIT_SYNC', now() - ($2::bigint - $3::bigint) * interval '1 millisecond' "
        "FROM project WHERE id = $1 ON CONFLICT (project_id, category) DO UPDATE SET "
        "last_synced = least(sync_time.last_synced, excluded.last_synced)",
        msg->project.id, period, delay, 3);
}

/* Without events: re-provision (the tick publishes CLEAN_UP {"all"}); with events: those
 * commits leave the graph through AWAITING_DELETION. */
static int clean_up_request(effect *e, fg_pg_conn *pg, const fg_proto_msg *msg)
{
    sha_list *shas;
    el_change c;
    int rc;

    if (fg_proto_msg_count(msg, "events") == 0)
        return project_statement(pg, "el_consume_reprovision",
                                 "INSERT INTO project_request (project_id, kind, project_forge, "
                                 "project_path) SELECT id, 'REPROVISION', forge, path FROM "
                                 "project WHERE id = $1 ON CONFLICT DO NOTHING",
                                 msg->project.id, 0, 0, 1);
    if ((shas = calloc(1, sizeof(*shas))) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory");
    read_shas(shas, msg);
    memset(&c, 0, sizeof(c));
    c.project.value = msg->project.id;
    c.to = EL_STATUS_AWAITING_DELETION;
    c.cause = EL_CAUSE_TO_AWAITING_DELETION;
    c.shas = shas->items;
    c.nshas = shas->n;
    rc = apply(e, pg, &c);
    free(shas);
    return rc;
}

/* Appends {"a","b"} / {1,2} element by element; names come validated (category names). */
static int put_array_item(fg_buf *out, const char *text, bool quoted)
{
    return fg_buf_printf(out, "%s%s%s%s", out->len > 1 ? "," : "", quoted ? "\"" : "", text,
                         quoted ? "\"" : "");
}

/* The instance's rows become exactly its announced categories, heard from now. */
static int subscription(fg_pg_conn *pg, const fg_proto_msg *msg)
{
    struct json_object *capacity = fg_proto_msg_get(msg, "capacity");
    struct json_object *in_flight = fg_proto_msg_get(msg, "inFlight");
    fg_buf cats, caps, flights;
    const char *params[6];
    int rc = 0;

    fg_buf_init(&cats, EL_CONSUME_ARRAY_MAX);
    fg_buf_init(&caps, EL_CONSUME_ARRAY_MAX);
    fg_buf_init(&flights, EL_CONSUME_ARRAY_MAX);
    if (capacity == NULL || (rc = fg_buf_putc(&cats, '{')) < 0 ||
        (rc = fg_buf_putc(&caps, '{')) < 0 || (rc = fg_buf_putc(&flights, '{')) < 0) {
        rc = rc < 0 ? rc : fg_error_set(FG_EINVALID, "SUBSCRIPTION without capacity");
        goto done;
    }
    json_object_object_foreach(capacity, category, value)
    {
        struct json_object *now = NULL;
        char cap[EL_CONSUME_NUM_MAX], flight[EL_CONSUME_NUM_MAX];

        put_id(cap, (long long)json_object_get_int64(value));
        put_id(flight, in_flight && json_object_object_get_ex(in_flight, category, &now)
                           ? (long long)json_object_get_int64(now)
                           : 0);
        if ((rc = put_array_item(&cats, category, true)) < 0 ||
            (rc = put_array_item(&caps, cap, false)) < 0 ||
            (rc = put_array_item(&flights, flight, false)) < 0)
            goto done;
    }
    if ((rc = fg_buf_putc(&cats, '}')) < 0 || (rc = fg_buf_putc(&caps, '}')) < 0 ||
        (rc = fg_buf_putc(&flights, '}')) < 0)
        goto done;
    params[0] = fg_proto_msg_get_string(msg, "service");
    params[1] = fg_proto_msg_get_string(msg, "instance");
    params[2] = cats.ptr;
    params[3] = caps.ptr;
    params[4] = flights.ptr;
    params[5] = msg->occurred_at;
    /* The heartbeat is when the consumer spoke, not when we read it: a SUBSCRIPTION that waited in
     * the queue must not make a consumer that died meanwhile look alive. */
    rc = fg_pg_exec_prepared(
        NULL, pg, "el_consume_subscription",
        "WITH gone AS (DELETE FROM consumer WHERE service = $1 AND instance = $2 "
        "AND category <> ALL($3::text[])) "
        "INSERT INTO consumer (service, instance, category, capacity, in_flight, last_heartbeat) "
        "SELECT $1, $2, t.category, t.capacity, t.in_flight, least(now(), $6::timestamptz) "
        "FROM unnest($3::text[], $4::integer[], $5::integer[]) AS t(category, capacity, in_flight) "
        "ON CONFLICT (service, instance, category) DO UPDATE SET capacity = excluded.capacity, "
        "in_flight = excluded.in_flight, "
        "last_heartbeat = greatest(consumer.last_heartbeat, excluded.last_heartbeat)",
        6, params);
done:
    fg_buf_dispose(&cats);
    fg_buf_dispose(&caps);
    fg_buf_dispose(&flights);
    return rc;
}

/* ---- one message, one transaction --------------------------------------------------------- */

static int effect_of(effect *e, fg_pg_conn *pg, const el_context *ctx, const fg_proto_msg *msg)
{
    switch (msg->category) {
    case FG_PROTO_CREATION:
        return creation(e, pg, msg);
    case FG_PROTO_EVENTS_STATUS_CHANGE:
        return status_change(e, pg, ctx, msg);
    case FG_PROTO_COMMIT_SYNC_REQUEST:
        return commit_sync_request(pg, msg);
    case FG_PROTO_GLOBAL_COMMIT_SYNC_REQUEST:
        return global_commit_sync_request(pg, ctx, msg);
    case FG_PROTO_CLEAN_UP_REQUEST:
        return clean_up_request(e, pg, msg);
    case FG_PROTO_SUBSCRIPTION:
        return subscription(pg, msg);
    default:
        return fg_error_set(FG_EINVALID, "event-log does not consume %s",
                            fg_proto_category_name(msg->category));
    }
}

/* Claims the message id; *out_new is false when it was processed before. */
static int claim(bool *out_new, fg_pg_conn *pg, const fg_proto_msg *msg)
{
    const char *params[2] = {msg->id, fg_proto_category_name(msg->category)};
    fg_pg_result *res = NULL;
    int rc;

    rc = fg_pg_exec_prepared(&res, pg, "el_consume_claim",
                             "INSERT INTO processed_message (id, category) VALUES ($1, $2) "
                             "ON CONFLICT (id) DO NOTHING",
                             2, params);
    *out_new = rc == 0 && fg_pg_result_affected(res) == 1;
    fg_pg_result_free(res);
    return rc;
}

/* One attempt. *out_retry: it failed on a deadlock or serialization failure, which a new
 * attempt may not meet (read before the rollback clears the SQLSTATE). */
static int transaction(effect *e, bool *out_new, bool *out_retry, fg_pg_conn *pg,
                       const el_context *ctx, const fg_proto_msg *msg)
{
    char why[EL_CONSUME_WHY_MAX];
    int rc, rolled;

    memset(e, 0, sizeof(*e));
    *out_retry = false;
    if ((rc = fg_pg_begin(pg)) < 0)
        return rc;
    if ((rc = claim(out_new, pg, msg)) == 0 && *out_new)
        rc = effect_of(e, pg, ctx, msg);
    if (rc == 0 && *out_new)
        rc = fg_pg_commit(pg);
    if (rc == 0 && *out_new)
        return 0;
    *out_retry = rc == FG_ECONFLICT && fg_pg_sqlstate_retryable(fg_pg_sqlstate(pg));
    snprintf(why, sizeof(why), "%s", fg_error_last());
    rolled = fg_pg_rollback(pg); /* a duplicate has nothing to commit; a failure nothing to keep */
    (void)rolled;
    return rc < 0 ? fg_error_set(rc, "%s", why) : 0;
}

static void count(const el_context *ctx, const effect *e)
{
    if (ctx == NULL)
        return;
    fg_metric_add(ctx->m.transitions, (double)e->change.applied);
    fg_metric_add(ctx->m.illegal, (double)e->change.illegal);
    fg_metric_add(ctx->m.stale, (double)e->change.stale);
    fg_metric_add(ctx->m.created, (double)e->created);
}

/* After the commit: the metrics, and a debug line per message. */
static void report(const el_context *ctx, const char *id, fg_proto_category category, bool fresh,
                   const effect *e)
{
    if (!fresh) {
        fg_log_emit(FG_LOG_DEBUG, FG_LOG_FIELDS(FG_LOG_STR("message", id)),
                    "message %s was processed before: nothing to do", id);
        return;
    }
    count(ctx, e);
    fg_log_emit(FG_LOG_DEBUG,
                FG_LOG_FIELDS(FG_LOG_STR("message", id),
                              FG_LOG_STR("category", fg_proto_category_name(category)),
                              FG_LOG_INT("applied", (long long)e->change.applied),
                              FG_LOG_INT("stale", (long long)e->change.stale),
                              FG_LOG_INT("illegal", (long long)e->change.illegal),
                              FG_LOG_INT("created", (long long)e->created)),
                "handled %s", fg_proto_category_name(category));
}

static int handle(fg_pg_conn *pg, const el_context *ctx, const fg_proto_msg *msg)
{
    effect e;
    bool fresh = false, retry = true;
    int rc = FG_ERROR;

    for (int attempt = 1; retry && attempt <= EL_CONSUME_TX_ATTEMPTS; attempt++)
        rc = transaction(&e, &fresh, &retry, pg, ctx, msg);
    if (rc < 0)
        return rc;
    report(ctx, msg->id, msg->category, fresh, &e);
    return 0;
}

/* Parses a body; a message too big for the codec will never fit: FG_EINVALID (park). */
static int parse(fg_proto_msg *msg, const char *body, size_t len)
{
    int rc;

    if (body == NULL)
        return fg_error_set(FG_EINVALID, "el_consume: NULL body");
    rc = fg_proto_msg_parse(msg, body, len);
    if (rc == FG_ETOOBIG)
        rc = fg_error_set(FG_EINVALID, "%s", fg_error_last());
    return rc;
}

static void set_outcome(fg_service_outcome *out, int rc)
{
    out->rc = rc;
    snprintf(out->reason, sizeof(out->reason), "%s", rc < 0 ? fg_error_last() : "");
}

/* ---- groups ------------------------------------------------------------------------------- */

/* One message of a group, parsed once for all the group's tries. */
typedef struct {
    enum { MEMBER_PENDING, MEMBER_ALONE, MEMBER_DONE } state;
    fg_proto_msg msg;
    bool fresh;
    effect e;
} member;

/* Claims the ids of the pending members [from, to) in one statement (in id order, so two groups
 * claiming the same ids cannot deadlock) and sets each one's `fresh`: a message id met twice in
 * the group is fresh the first time only. */
static int claim_group(member *m, fg_pg_conn *pg, size_t from, size_t to)
{
    fg_buf ids, cats;
    fg_pg_result *res = NULL;
    const char *params[2];
    int rc = 0;

    fg_buf_init(&ids, (to - from) * (FG_AMQP_NAME_MAX + 1) + 16);
    fg_buf_init(&cats, (to - from) * (FG_AMQP_NAME_MAX + 1) + 16);
    for (size_t i = from; rc == 0 && i < to; i++) {
        m[i].fresh = false;
        if (m[i].state != MEMBER_PENDING)
            continue;
        if ((rc = fg_buf_puts(&ids, ids.len > 0 ? "," : "{")) == 0 &&
            (rc = fg_buf_puts(&ids, m[i].msg.id)) == 0 &&
            (rc = fg_buf_puts(&cats, cats.len > 0 ? "," : "{")) == 0)
            rc = fg_buf_puts(&cats, fg_proto_category_name(m[i].msg.category));
    }
    if (rc < 0 || (rc = fg_buf_putc(&ids, '}')) < 0 || (rc = fg_buf_putc(&cats, '}')) < 0)
        goto done;
    params[0] = ids.ptr;
    params[1] = cats.ptr;
    if ((rc = fg_pg_exec_prepared(&res, pg, "el_consume_claim_group",
                                  "INSERT INTO processed_message (id, category) SELECT t.id, t.c "
                                  "FROM unnest($1::text::uuid[], $2::text::text[]) AS t(id, c) "
                                  "ORDER BY t.id ON CONFLICT (id) DO NOTHING RETURNING id::text",
                                  2, params)) < 0)
        goto done;
    for (size_t row = 0; row < fg_pg_result_rows(res); row++) {
        const char *id = fg_pg_result_text(res, row, 0);

        for (size_t i = from; id != NULL && i < to; i++) {
            /* ids are validated UUIDs; PostgreSQL hands them back in the same lower-case form */
            if (m[i].state == MEMBER_PENDING && strcasecmp(m[i].msg.id, id) == 0) {
                m[i].fresh = true;
                break;
            }
        }
    }
done:
    fg_pg_result_free(res);
    fg_buf_dispose(&ids);
    fg_buf_dispose(&cats);
    return rc;
}

/* The pending members of [from, to) in one transaction: one claim for all, each fresh one's
 * effect, commit. On a failing effect, *out_bad is that member and nothing is committed; when
 * BEGIN, the claim or COMMIT fails, *out_bad stays `to`. */
static int group_transaction(size_t *out_bad, member *m, fg_pg_conn *pg, const el_context *ctx,
                             size_t from, size_t to)
{
    int rc, rolled;

    *out_bad = to;
    if ((rc = fg_pg_begin(pg)) < 0)
        return rc;
    rc = claim_group(m, pg, from, to);
    for (size_t i = from; rc == 0 && i < to; i++) {
        if (m[i].state != MEMBER_PENDING)
            continue;
        memset(&m[i].e, 0, sizeof(m[i].e));
        if (m[i].fresh && (rc = effect_of(&m[i].e, pg, ctx, &m[i].msg)) < 0)
            *out_bad = i;
    }
    if (rc == 0 && (rc = fg_pg_commit(pg)) == 0)
        return 0;
    rolled = fg_pg_rollback(pg);
    (void)rolled;
    return rc;
}

/* Messages [from, to) as one group: committed together, or, when one of them fails, that one is
 * set aside and the others are tried together again (at most EL_CONSUME_GROUP_TRIES times). What
 * is left is handled message by message afterwards, in order: the one that failed gets its own
 * transaction, attempts and outcome, as it would have without a group. */
static void run_group(member *m, fg_service_outcome *out, fg_pg_conn *pg, const el_context *ctx,
                      const el_consume_input *in, size_t from, size_t to)
{
    size_t bad = to, pending = 0;
    int rc = FG_ERROR;

    for (size_t i = from; i < to; i++) {
        fg_proto_msg_init(&m[i].msg);
        if ((rc = parse(&m[i].msg, in[i].body, in[i].len)) < 0) {
            set_outcome(&out[i], rc);
            m[i].state = MEMBER_DONE;
        } else {
            m[i].state = MEMBER_PENDING;
            pending++;
        }
    }
    rc = FG_ERROR;
    for (int tries = 0; pending > 1 && tries < EL_CONSUME_GROUP_TRIES; tries++) {
        if ((rc = group_transaction(&bad, m, pg, ctx, from, to)) == 0 || bad == to)
            break; /* done, or nobody to blame (BEGIN, claim, COMMIT): everyone alone */
        m[bad].state = MEMBER_ALONE;
        pending--;
    }
    for (size_t i = from; i < to; i++) {
        if (rc == 0 && m[i].state == MEMBER_PENDING) {
            report(ctx, m[i].msg.id, m[i].msg.category, m[i].fresh, &m[i].e);
            set_outcome(&out[i], 0);
            m[i].state = MEMBER_DONE;
        }
    }
    for (size_t i = from; i < to; i++) {
        if (m[i].state != MEMBER_DONE)
            set_outcome(&out[i], handle(pg, ctx, &m[i].msg));
        fg_proto_msg_dispose(&m[i].msg);
    }
}

/* ---- public ------------------------------------------------------------------------------- */

int el_consume_body(fg_pg_conn *pg, const el_context *ctx, const char *body, size_t len)
{
    fg_proto_msg msg;
    int rc;

    if (pg == NULL || body == NULL)
        return fg_error_set(FG_EINVALID, "el_consume: NULL argument");
    fg_proto_msg_init(&msg);
    if ((rc = parse(&msg, body, len)) == 0)
        rc = handle(pg, ctx, &msg);
    fg_proto_msg_dispose(&msg);
    return rc;
}

int el_consume_group(fg_service_outcome *out, fg_pg_conn *pg, const el_context *ctx,
                     const el_consume_input *in, size_t n)
{
    member *m = NULL;
    size_t from = 0, bytes = 0;

    if (out == NULL || pg == NULL || (in == NULL && n > 0))
        return fg_error_set(FG_EINVALID, "el_consume_group: NULL argument");
    if (n == 1) {
        set_outcome(&out[0], el_consume_body(pg, ctx, in[0].body, in[0].len));
        return 0;
    }
    if (n > 0 && (m = calloc(n, sizeof(*m))) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory for a group of %zu messages", n);
    /* a group ends at EL_CONSUME_GROUP_BYTES: large CREATIONs commit in smaller groups, and never
     * too many are held parsed at once */
    for (size_t i = 0; i < n; i++) {
        bytes += in[i].len;
        if (i + 1 == n || bytes + in[i + 1].len > EL_CONSUME_GROUP_BYTES) {
            run_group(m, out, pg, ctx, in, from, i + 1);
            from = i + 1;
            bytes = 0;
        }
    }
    free(m);
    return 0;
}

void el_consume_batch(fg_service_bus *bus, fg_amqp_delivery *const *deliveries,
                      fg_service_outcome *outcomes, size_t n, void *payload)
{
    el_consume_input *in = calloc(n > 0 ? n : 1, sizeof(*in));
    int rc;

    if (in == NULL) {
        for (size_t i = 0; i < n; i++)
            set_outcome(&outcomes[i], fg_error_set(FG_ENOMEM, "out of memory"));
        return;
    }
    for (size_t i = 0; i < n; i++) {
        in[i].body = fg_amqp_delivery_body(deliveries[i]);
        in[i].len = fg_amqp_delivery_body_len(deliveries[i]);
    }
    if ((rc = el_consume_group(outcomes, fg_service_bus_db(bus), payload, in, n)) < 0) {
        for (size_t i = 0; i < n; i++)
            set_outcome(&outcomes[i], rc);
    }
    free(in);
}

int el_consume_delivery(fg_pg_conn *pg, const el_context *ctx, const fg_amqp_delivery *d)
{
    if (d == NULL)
        return fg_error_set(FG_EINVALID, "el_consume: NULL delivery");
    return el_consume_body(pg, ctx, fg_amqp_delivery_body(d), fg_amqp_delivery_body_len(d));
}

int el_consume(fg_service_bus *bus, const fg_amqp_delivery *d, void *payload)
{
    return el_consume_delivery(fg_service_bus_db(bus), payload, d);
}
