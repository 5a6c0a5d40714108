/*
 * The relay and retention (see wh_relay.h). One round: read the head of the outbox (no bodies),
 * cut it at WH_RELAY_BYTES_MAX of forge-event bodies, fetch those bodies, build and serialise the
 * messages with proto (which refuses anything a consumer would park), publish them as one
 * confirmed batch, delete the confirmed rows. Publishing comes before deleting, so a crash in
 * between publishes again (same message id: consumers dedupe) and never skips. A row whose
 * message cannot be built (it could not pass intake's checks, so this means a bug) is logged,
 * counted and dropped from the outbox rather than blocking everything behind it; its delivery
 * stays in the archive for a replay.
 */
#include "wh_relay.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "fg/buf.h"
#include "fg/log.h"
#include "fg/proto.h"
#include "wh_context.h"

#define NUM_TEXT_MAX 24
enum {
    C_SEQ,
    C_MESSAGE_ID,
    C_OUTBOX_DELIVERY,
    C_DELIVERY,
    C_FORGE,
    C_KEY,
    C_EVENT,
    C_ACTION,
    C_PROJECT_ID,
    C_PATH,
    C_ROUTE,
    C_RECEIVED,
    C_BODY_BYTES,
    C_CTID
};

/* An outbox row without a delivery is activation's COMMIT_SYNC_REQUEST; one whose delivery is
 * gone (C_OUTBOX_DELIVERY set, C_DELIVERY null) cannot be published. The head of the outbox is
 * taken first, then each of its rows looks its delivery up by primary key: a LATERAL subquery
 * that LIMIT keeps from being flattened into a join, which the planner (misjudging the size of
 * the head from a generic LIMIT $1 and stale statistics) made a hash join over the whole
 * archive. */
static const char sql_head[] =
    "SELECT o.seq, o.message_id, o.delivery_id, d.id, coalesce(d.forge, o.forge), d.dedupe_key,"
    " d.event, d.action, coalesce(d.project_id, o.project_id),"
    " coalesce(d.project_path, o.project_path),"
    " CASE WHEN o.delivery_id IS NULL THEN 'commit_sync' ELSE d.route END,"
    " to_char(coalesce(d.received_at, o.queued_at) AT TIME ZONE 'UTC',"
    " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    " coalesce(d.body_bytes, 0), o.ctid"
    " FROM (SELECT ctid, seq, message_id, delivery_id, project_id, forge, project_path, queued_at"
    " FROM outbox ORDER BY seq LIMIT $1::integer) o"
    " LEFT JOIN LATERAL (SELECT id, forge, dedupe_key, event, action, project_id, project_path,"
    " route, received_at, body_bytes FROM delivery WHERE id = o.delivery_id LIMIT 1) d ON true"
    " ORDER BY o.seq";
static const char sql_bodies[] = "SELECT id, body FROM delivery WHERE id = ANY($1::bigint[])";
/* By ctid, in the transaction that read them (a row cannot move meanwhile: only the relay deletes
 * outbox rows, and VACUUM FULL waits for our lock): a TID scan, where `seq = ANY(...)` was planned
 * as a sequential scan of the whole outbox, dead rows included, testing each against the array. */
static const char sql_delete[] = "DELETE FROM outbox WHERE ctid = ANY($1::tid[])";
static const char sql_lock[] = "SELECT pg_try_advisory_xact_lock(7300000000000000001)";
/* Every statement of a round fetches a few hundred rows by key (the outbox's head through its
 * primary key, archive rows by id, outbox rows by ctid). The outbox is a queue, so its statistics
 * are always stale (absent on a new database), and the planner, believing it small, picked
 * sequential scans: of the outbox with its dead rows, testing each against the whole array
 * (`ctid = ANY`), and of the archive. That cost the relay's backend more CPU per delivery than
 * the writer's. For the round's transaction only. */
static const char sql_plan[] = "SET LOCAL enable_seqscan = off";
static const char sql_pending[] = "SELECT count(*) FROM outbox";
/* Deliveries are archived in id order (give or take the seconds two writers' statements can
 * overlap), so when the first one is younger than the cutoff there is nothing to delete, and the
 * DELETE below need not run: its BRIN scan reads every page not summarised yet. */
static const char sql_retention_due[] =
    "SELECT EXISTS (SELECT 1 FROM (SELECT received_at FROM delivery ORDER BY id LIMIT 1) f"
    " WHERE f.received_at < now() - $1::integer * interval '1 day')";
static const char sql_retention[] =
    "DELETE FROM delivery WHERE id IN (SELECT d.id FROM delivery d"
    " WHERE d.received_at < now() - $1::integer * interval '1 day'"
    " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = d.id) LIMIT $2::integer)";

/* One round's working set. */
typedef struct {
    fg_pg_result *head;   /* the outbox rows */
    fg_pg_result *bodies; /* bodies of the forge events among them */
    size_t rows;          /* rows of head this round handles */
    fg_amqp_message *msgs;
    size_t *msg_row; /* head row of msgs[i] */
    size_t nmsgs;
    fg_buf *texts; /* serialised messages */
    bool *drop;    /* head row i has no message to publish and leaves the outbox */
} round_state;

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void round_dispose(round_state *r)
{
    for (size_t i = 0; r->texts != NULL && i < r->rows; i++)
        fg_buf_dispose(&r->texts[i]);
    free(r->texts);
    free(r->msgs);
    free(r->msg_row);
    free(r->drop);
    fg_pg_result_free(r->head);
    fg_pg_result_free(r->bodies);
}

/* "{1,2,3}" of column col over the given rows (those with want[i] when want is not NULL). */
static int id_array(fg_buf *out, const fg_pg_result *res, size_t col, size_t rows, const bool *want,
                    bool want_value)
{
    int rc = fg_buf_putc(out, '{');
    bool first = true;

    for (size_t i = 0; rc == 0 && i < rows; i++) {
        if (want != NULL && want[i] != want_value)
            continue;
        rc = fg_buf_printf(out, "%s%s", first ? "" : ",", fg_pg_result_text(res, i, col));
        first = false;
    }
    return rc == 0 ? fg_buf_putc(out, '}') : rc;
}

static bool is_forge_event(const fg_pg_result *head, size_t row)
{
    const char *route = fg_pg_result_text(head, row, C_ROUTE);

    return route != NULL && strcmp(route, "forge_event") == 0;
}

/* How many head rows fit in WH_RELAY_BYTES_MAX of bodies (at least one). */
static size_t rows_within_budget(const fg_pg_result *head)
{
    size_t n = fg_pg_result_rows(head), bytes = 0, i;

    for (i = 0; i < n; i++) {
        int64_t b = 0;
        if (!is_forge_event(head, i))
            continue;
        if (fg_pg_result_int64(&b, head, i, C_BODY_BYTES) < 0)
            b = 0;
        if (i > 0 && bytes + (size_t)b > WH_RELAY_BYTES_MAX)
            break;
        bytes += (size_t)b;
    }
    return i;
}

static int fetch_bodies(round_state *r, fg_pg_conn *db)
{
    bool any = false;
    bool *fe = calloc(r->rows, sizeof(bool));
    fg_buf ids;
    const char *params[1];
    int rc;

    if (fe == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory in the relay");
    for (size_t i = 0; i < r->rows; i++) {
        fe[i] = is_forge_event(r->head, i) && !fg_pg_result_is_null(r->head, i, C_DELIVERY);
        any = any || fe[i];
    }
    fg_buf_init(&ids, r->rows * NUM_TEXT_MAX + 2);
    rc = any ? id_array(&ids, r->head, C_DELIVERY, r->rows, fe, true) : 0;
    params[0] = ids.ptr;
    if (rc == 0 && any)
        rc = fg_pg_exec(&r->bodies, db, sql_bodies, 1, params);
    fg_buf_dispose(&ids);
    free(fe);
    return rc;
}

static const char *body_of(const round_state *r, const char *delivery_id)
{
    for (size_t i = 0; r->bodies != NULL && i < fg_pg_result_rows(r->bodies); i++) {
        if (strcmp(fg_pg_result_text(r->bodies, i, 0), delivery_id) == 0)
            return fg_pg_result_text(r->bodies, i, 1);
    }
    return NULL;
}

static int parse_payload(struct json_object **out, const char *body)
{
    struct json_tokener *tok = json_tokener_new_ex(FG_PROTO_DEPTH_MAX);
    size_t len = strlen(body);
    int rc = 0;

    *out = NULL;
    if (tok == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory parsing a payload");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    if (len > INT32_MAX || (*out = json_tokener_parse_ex(tok, body, (int)len)) == NULL ||
        json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(*out);
        *out = NULL;
        rc = fg_error_set(FG_EINVALID, "the archived body does not parse");
    }
    json_tokener_free(tok);
    return rc;
}

static int add_forge_event_fields(fg_proto_msg *msg, const round_state *r, size_t row)
{
    const fg_pg_result *h = r->head;
    const char *body = body_of(r, fg_pg_result_text(h, row, C_DELIVERY));
    struct json_object *payload = NULL;
    int rc;

    if (body == NULL)
        return fg_error_set(FG_EINVALID, "the archived body is gone");
    if ((rc = parse_payload(&payload, body)) < 0 ||
        (rc = fg_proto_msg_set(msg, "payload", payload)) < 0 ||
        (rc = fg_proto_msg_set_string(msg, "event", fg_pg_result_text(h, row, C_EVENT))) < 0 ||
        (rc = fg_proto_msg_set_string(msg, "deliveryId", fg_pg_result_text(h, row, C_KEY))) < 0)
        return rc;
    if (!fg_pg_result_is_null(h, row, C_ACTION))
        rc = fg_proto_msg_set_string(msg, "action", fg_pg_result_text(h, row, C_ACTION));
    return rc;
}

/* Builds and serialises head row `row` into out. FG_EINVALID when the row cannot make a valid
 * message (no project, a body that no longer parses...). */
static int build_message(fg_buf *out, const round_state *r, size_t row)
{
    const fg_pg_result *h = r->head;
    bool forge_event = is_forge_event(h, row);
    fg_proto_msg msg;
    fg_proto_project project;
    int64_t id = 0;
    int rc;

    fg_proto_msg_init(&msg);
    if (!fg_pg_result_is_null(h, row, C_OUTBOX_DELIVERY) &&
        fg_pg_result_is_null(h, row, C_DELIVERY)) {
        rc = fg_error_set(FG_EINVALID, "the archived delivery is gone");
        goto done;
    }
    if ((rc = fg_pg_result_int64(&id, h, row, C_PROJECT_ID)) < 0 ||
        (rc = fg_proto_forge_parse(&project.forge, fg_pg_result_text(h, row, C_FORGE))) < 0)
        goto done;
    project.id = (long long)id;
    project.path = fg_pg_result_text(h, row, C_PATH);
    if ((rc = fg_proto_msg_start(&msg,
                                 forge_event ? FG_PROTO_FORGE_EVENT : FG_PROTO_COMMIT_SYNC_REQUEST,
                                 &project)) < 0 ||
        (rc = fg_proto_msg_set_string(&msg, "id", fg_pg_result_text(h, row, C_MESSAGE_ID))) < 0 ||
        (rc = fg_proto_msg_set_string(&msg, "occurredAt", fg_pg_result_text(h, row, C_RECEIVED))) <
            0)
        goto done;
    if (forge_event && (rc = add_forge_event_fields(&msg, r, row)) < 0)
        goto done;
    rc = fg_proto_msg_serialise(out, &msg);
done:
    fg_proto_msg_dispose(&msg);
    return rc;
}

static int build_messages(round_state *r, wh_context *ctx)
{
    r->texts = calloc(r->rows, sizeof(fg_buf));
    r->msgs = calloc(r->rows, sizeof(fg_amqp_message));
    r->msg_row = calloc(r->rows, sizeof(size_t));
    r->drop = calloc(r->rows, sizeof(bool));
    if (r->texts == NULL || r->msgs == NULL || r->msg_row == NULL || r->drop == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory in the relay");
    for (size_t i = 0; i < r->rows; i++) {
        int rc;
        fg_buf_init(&r->texts[i], FG_PROTO_MESSAGE_MAX);
        if ((rc = build_message(&r->texts[i], r, i)) == FG_EINVALID) {
            fg_log_emit(FG_LOG_ERROR,
                        FG_LOG_FIELDS(FG_LOG_STR("delivery", fg_pg_result_text(r->head, i, C_KEY)),
                                      FG_LOG_STR("seq", fg_pg_result_text(r->head, i, C_SEQ))),
                        "outbox row cannot be published, dropped: %s", fg_error_last());
            fg_metric_inc(ctx->metrics.unpublishable);
            r->drop[i] = true;
            continue;
        }
        if (rc < 0)
            return rc;
        r->msgs[r->nmsgs] =
            (fg_amqp_message){fg_pg_result_text(r->head, i, C_MESSAGE_ID),
                              is_forge_event(r->head, i) ? "FORGE_EVENT" : "COMMIT_SYNC_REQUEST",
                              r->texts[i].ptr, r->texts[i].len};
        r->msg_row[r->nmsgs++] = i;
    }
    return 0;
}

/* Deletes the outbox rows before head row `upto` (published or dropped). */
static int delete_rows(fg_pg_conn *db, const round_state *r, size_t upto)
{
    fg_buf tids;
    const char *params[1];
    int rc;

    if (upto == 0)
        return 0;
    /* {"(0,1)","(0,2)"}: a tid's text has a comma, so each element is quoted */
    fg_buf_init(&tids, upto * (NUM_TEXT_MAX + 3) + 2);
    rc = fg_buf_putc(&tids, '{');
    for (size_t i = 0; rc == 0 && i < upto; i++) {
        if ((i == 0 || (rc = fg_buf_putc(&tids, ',')) == 0) &&
            (rc = fg_buf_putc(&tids, '"')) == 0 &&
            (rc = fg_buf_puts(&tids, fg_pg_result_text(r->head, i, C_CTID))) == 0)
            rc = fg_buf_putc(&tids, '"');
    }
    if (rc == 0 && (rc = fg_buf_putc(&tids, '}')) == 0) {
        params[0] = tids.ptr;
        rc = fg_pg_exec_prepared(NULL, db, "wh_outbox_delete", sql_delete, 1, params);
    }
    fg_buf_dispose(&tids);
    return rc;
}

static void count_published(wh_context *ctx, const round_state *r, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fg_metric_inc(ctx->metrics.published[is_forge_event(r->head, r->msg_row[i])]);
}

/* Whether this instance may publish now: one relay at a time, whatever the number of webhook
 * instances sharing the database, or two would publish the same rows (and out of order). The
 * lock is the transaction's, so it goes with the round, also when the connection dies. */
static int take_relay_lock(bool *out, fg_pg_conn *db)
{
    fg_pg_result *res = NULL;
    int rc = fg_pg_exec_prepared(&res, db, "wh_relay_lock", sql_lock, 0, NULL);

    if (rc == 0)
        rc = fg_pg_result_bool(out, res, 0, 0);
    fg_pg_result_free(res);
    return rc;
}

/* One round, in one transaction; *out_rows is how many outbox rows it took (0: the outbox is
 * empty, or another instance is publishing). */
static int relay_round(wh_context *ctx, fg_pg_conn *db, fg_amqp *amqp, size_t *out_rows)
{
    round_state r = {0};
    char limit[NUM_TEXT_MAX];
    const char *params[1] = {limit};
    size_t confirmed = 0, upto;
    bool mine = false;
    int rc, prc = 0;

    *out_rows = 0;
    snprintf(limit, sizeof(limit), "%lld", ctx->cfg->relay_batch);
    if ((rc = fg_pg_begin(db)) < 0)
        return rc;
    if ((rc = take_relay_lock(&mine, db)) < 0 || !mine ||
        (rc = fg_pg_exec_prepared(NULL, db, "wh_relay_plan", sql_plan, 0, NULL)) < 0)
        goto done;
    if ((rc = fg_pg_exec_prepared(&r.head, db, "wh_outbox_head", sql_head, 1, params)) < 0)
        goto done;
    if ((r.rows = rows_within_budget(r.head)) == 0)
        goto done;
    if ((rc = fetch_bodies(&r, db)) < 0 || (rc = build_messages(&r, ctx)) < 0)
        goto done;
    if (r.nmsgs > 0)
        prc = fg_amqp_publish_batch(&confirmed, amqp, r.msgs, r.nmsgs, WH_RELAY_CONFIRM_MS);
    count_published(ctx, &r, confirmed);
    /* every row before the first unconfirmed message has been published or dropped */
    upto = confirmed < r.nmsgs ? r.msg_row[confirmed] : r.rows;
    if ((rc = delete_rows(db, &r, upto)) < 0 || (rc = fg_pg_commit(db)) < 0)
        goto done;
    *out_rows = upto;
    rc = prc;
done:
    /* after a failure, or when the lock was not ours; a no-op after the commit */
    if (fg_pg_rollback(db) < 0)
        fg_log_debug("relay: rollback: %s", fg_error_last());
    round_dispose(&r);
    return rc;
}

static void update_pending(wh_context *ctx, fg_pg_conn *db)
{
    fg_pg_result *res = NULL;
    int64_t n = 0;

    if (fg_pg_exec_prepared(&res, db, "wh_outbox_pending", sql_pending, 0, NULL) == 0 &&
        fg_pg_result_int64(&n, res, 0, 0) == 0)
        fg_metric_set(ctx->metrics.outbox_pending, (double)n);
    fg_pg_result_free(res);
}

static int retention_due(bool *out, fg_pg_conn *db, const char *days)
{
    fg_pg_result *res = NULL;
    const char *params[1] = {days};
    int rc = fg_pg_exec_prepared(&res, db, "wh_retention_due", sql_retention_due, 1, params);

    *out = false;
    if (rc == 0)
        rc = fg_pg_result_bool(out, res, 0, 0);
    fg_pg_result_free(res);
    return rc;
}

static int retention(wh_context *ctx, fg_pg_conn *db)
{
    char days[NUM_TEXT_MAX], batch[NUM_TEXT_MAX];
    const char *params[2] = {days, batch};
    uint64_t total = 0;
    bool due = false;
    int rc = 0;

    snprintf(days, sizeof(days), "%lld", ctx->cfg->retention_days);
    snprintf(batch, sizeof(batch), "%d", WH_RETENTION_BATCH);
    if ((rc = retention_due(&due, db, days)) < 0 || !due)
        return rc;
    for (int i = 0; i < WH_RETENTION_BATCHES_MAX; i++) {
        fg_pg_result *res = NULL;
        uint64_t n;
        if ((rc = fg_pg_exec_prepared(&res, db, "wh_retention", sql_retention, 2, params)) < 0)
            break;
        n = fg_pg_result_affected(res);
        fg_pg_result_free(res);
        total += n;
        if (n < WH_RETENTION_BATCH)
            break;
    }
    if (total > 0) {
        fg_metric_add(ctx->metrics.retention_deleted, (double)total);
        fg_log_emit(FG_LOG_INFO,
                    FG_LOG_FIELDS(FG_LOG_INT("deleted", total),
                                  FG_LOG_INT("days", ctx->cfg->retention_days)),
                    "retention: deleted archived deliveries");
    }
    return rc;
}

/* Says once that publishing stalls, and once that it resumed. */
static void note_stall(wh_context *ctx, int rc)
{
    if (rc < 0 && !ctx->relay.stalled)
        fg_log_warn("relay: cannot publish, deliveries stay in the outbox: %s", fg_error_last());
    else if (rc == 0 && ctx->relay.stalled)
        fg_log_info("relay: publishing again");
    ctx->relay.stalled = rc < 0;
}

/* Intake first: when the CPU is short (a burst), the thread that publishes from the outbox, and
 * with it RabbitMQ's share of the work, yields to the loop and the archive writer, whose answers
 * forges wait for; the outbox absorbs the difference and the relay catches up after the burst.
 * When the CPU is not short a nice value changes nothing. Linux gives each thread its own. */
static void lower_priority(wh_context *ctx)
{
    ctx->relay.niced = true;
    if (setpriority(PRIO_PROCESS, (id_t)gettid(), WH_RELAY_NICE) != 0)
        fg_log_info("relay: cannot lower the publishing thread's priority; it keeps the loop's");
}

int wh_relay_tick(fg_service_bus *bus, void *payload)
{
    wh_context *ctx = payload;
    fg_pg_conn *db = fg_service_bus_db(bus);
    fg_amqp *amqp = fg_service_bus_amqp(bus);
    long long start = now_ms();
    size_t rows = 0;
    int rc;

    if (!ctx->relay.niced)
        lower_priority(ctx);
    if (db == NULL)
        return fg_error_set(FG_EUNAVAILABLE, "the relay has no database connection");
    /* Woken after every group commit, the relay would publish a few messages per confirmed
     * batch; RabbitMQ's cost is per batch (a disk sync per confirm round), so let a batch gather
     * for WH_RELAY_LINGER_MS first. It delays publication, never the answer to a forge. */
    if (now_ms() - ctx->relay.last_round_ms < WH_RELAY_LINGER_MS) {
        struct timespec linger = {0, (WH_RELAY_LINGER_MS - (now_ms() - ctx->relay.last_round_ms)) *
                                         1000000L};
        nanosleep(&linger, NULL);
    }
    do {
        ctx->relay.last_round_ms = now_ms();
        rc = relay_round(ctx, db, amqp, &rows);
    } while (rc == 0 && rows > 0 && now_ms() - start < WH_RELAY_TICK_BUDGET_MS);
    note_stall(ctx, rc);
    if (now_ms() - ctx->relay.last_gauge_ms >= 5000) {
        update_pending(ctx, db);
        ctx->relay.last_gauge_ms = now_ms();
    }
    if (now_ms() - ctx->relay.last_retention_ms >= WH_RETENTION_EVERY_MS) {
        ctx->relay.last_retention_ms = now_ms();
        if (retention(ctx, db) < 0)
            fg_log_warn("retention: %s", fg_error_last());
    }
    /* a stall was logged once above (the runtime would log it on every tick), and a lost
     * connection is the runtime's to notice and repair */
    return 0;
}
