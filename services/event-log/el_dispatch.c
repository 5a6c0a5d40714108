/*
 * Dispatch (see el_dispatch.h and docs/internals/event-log.md). A round holds an advisory
 * transaction lock per kind, so the credit it reads cannot be spent twice by two event-log
 * processes at once; the rows themselves are claimed FOR UPDATE SKIP LOCKED and moved by
 * el_change_apply, whose conditional update is what finally makes a double dispatch impossible.
 * Messages are published with confirms BEFORE the commit: a crash in between leaves the events
 * where they were and the consumer's late reply is stale (at worst work is done twice, never lost).
 */
#include "el_dispatch.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>

#include "el_project.h"
#include "el_schedule.h"
#include "el_zombie.h"
#include "fg/log.h"

#define NUM_MAX 24 /* a long long in decimal */
/* "{id,id,...}" for one claim */
#define IDS_TEXT_MAX ((size_t)FG_PROTO_BATCH_MAX * 21u + 8u)

/* ---- the statements ---------------------------------------------------------------------- */

#define GEN_READY   "('NEW', 'GENERATION_RECOVERABLE_FAILURE')"
#define TRANS_READY "('TRIPLES_GENERATED', 'TRANSFORMATION_RECOVERABLE_FAILURE')"
#define CLEAN_READY "('AWAITING_DELETION')"

#define SQL_CREDIT(CATEGORY, PROCESSING)                                                           \
    "SELECT (SELECT coalesce(sum(c.capacity), 0) FROM consumer c WHERE c.category = '" CATEGORY    \
    "' AND c.last_heartbeat > now() - $1::bigint * interval '1 millisecond'),"                     \
    " (SELECT count(*) FROM consumer c WHERE c.category = '" CATEGORY                              \
    "' AND c.last_heartbeat > now() - $1::bigint * interval '1 millisecond'),"                     \
    " (" PROCESSING ")"

/* A loose index scan: each step jumps to the next project id in the kind's partial index, so
 * the cost is a few index probes per project returned, whatever the number of events. */
#define SQL_PICK(READY, HAS_WORK)                                                                  \
    "WITH RECURSIVE ready(pid) AS ("                                                               \
    " (SELECT e.project_id FROM event e WHERE e.status IN " READY                                  \
    " AND e.project_id > $1::bigint ORDER BY e.project_id LIMIT 1)"                                \
    " UNION ALL"                                                                                   \
    " SELECT (SELECT e.project_id FROM event e WHERE e.status IN " READY                           \
    " AND e.project_id > r.pid ORDER BY e.project_id LIMIT 1)"                                     \
    " FROM ready r WHERE r.pid IS NOT NULL) "                                                      \
    "SELECT p.id, p.forge, p.path FROM"                                                            \
    " (SELECT r.pid FROM ready r WHERE r.pid IS NOT NULL AND " HAS_WORK " LIMIT $2::bigint) w"     \
    " JOIN project p ON p.id = w.pid ORDER BY p.id"

#define SQL_READY_NOW(READY)                                                                       \
    "EXISTS (SELECT 1 FROM event x WHERE x.project_id = r.pid AND x.status IN " READY              \
    " AND x.execution_date <= now())"

/* one CLEAN_UP in flight per project: its DELETING events are the credit it holds */
#define SQL_NOT_DELETING                                                                           \
    "NOT EXISTS (SELECT 1 FROM event x WHERE x.project_id = r.pid AND x.status = 'DELETING')"

/* The claimed event's sha, from event_commit (migration 0005), looked up for the rows claimed. */
#define SQL_SHA "(SELECT c.sha FROM event_commit c WHERE c.event_id = e.id)"

typedef struct {
    const char *category;
    fg_proto_category proto;
    el_status processing;
    el_status ready[2];
    size_t nready;
    const char *names[EL_DISPATCH_SQL_COUNT];
    const char *sql[EL_DISPATCH_SQL_COUNT];
} kind_info;

static const kind_info kinds[EL_DISPATCH_KIND_COUNT] = {
    [EL_DISPATCH_GENERATION] =
        {"AWAITING_GENERATION",
         FG_PROTO_AWAITING_GENERATION,
         EL_STATUS_GENERATING_TRIPLES,
         {EL_STATUS_NEW, EL_STATUS_GENERATION_RECOVERABLE_FAILURE},
         2,
         {"el_dispatch_credit_gen", "el_dispatch_pick_gen", "el_dispatch_claim_gen"},
         {SQL_CREDIT("AWAITING_GENERATION",
                     "SELECT count(*) FROM event e WHERE e.status = 'GENERATING_TRIPLES'"),
          SQL_PICK(GEN_READY, SQL_READY_NOW(GEN_READY)),
          "SELECT e.id, " SQL_SHA
          ", b.body FROM event e LEFT JOIN event_body b ON b.event_id = e.id"
          " WHERE e.project_id = $1::bigint AND e.status IN " GEN_READY
          " AND e.execution_date <= now() ORDER BY e.execution_date LIMIT $2::bigint"
          " FOR UPDATE OF e SKIP LOCKED"}},
    [EL_DISPATCH_TRANSFORMATION] =
        {"TRIPLES_GENERATED",
         FG_PROTO_TRIPLES_GENERATED,
         EL_STATUS_TRANSFORMING_TRIPLES,
         {EL_STATUS_TRIPLES_GENERATED, EL_STATUS_TRANSFORMATION_RECOVERABLE_FAILURE},
         2,
         {"el_dispatch_credit_trans", "el_dispatch_pick_trans", "el_dispatch_claim_trans"},
         {SQL_CREDIT("TRIPLES_GENERATED",
                     "SELECT count(*) FROM event e WHERE e.status = 'TRANSFORMING_TRIPLES'"),
          SQL_PICK(TRANS_READY, SQL_READY_NOW(TRANS_READY)),
          /* a payload group shares its execution_date (set by one reply): ordering by it and
           * then the payload keeps each group contiguous */
          "SELECT e.id, " SQL_SHA ", coalesce(e.payload_id, 0) FROM event e"
          " WHERE e.project_id = $1::bigint AND e.status IN " TRANS_READY
          " AND e.execution_date <= now() ORDER BY e.execution_date, e.payload_id"
          " LIMIT $2::bigint FOR UPDATE SKIP LOCKED"}},
    [EL_DISPATCH_CLEAN_UP] = {"CLEAN_UP",
                              FG_PROTO_CLEAN_UP,
                              EL_STATUS_DELETING,
                              {EL_STATUS_AWAITING_DELETION, EL_STATUS_NONE},
                              1,
                              {"el_dispatch_credit_clean", "el_dispatch_pick_clean",
                               "el_dispatch_claim_clean"},
                              {SQL_CREDIT("CLEAN_UP",
                                          "SELECT count(DISTINCT e.project_id) FROM event e"
                                          " WHERE e.status = 'DELETING'"),
                               SQL_PICK(CLEAN_READY, SQL_NOT_DELETING),
                               "SELECT e.id, " SQL_SHA ", NULL::text FROM event e"
                               " WHERE e.project_id = $1::bigint AND e.status = 'AWAITING_DELETION'"
                               " LIMIT $2::bigint FOR UPDATE SKIP LOCKED"}},
};

#define SQL_TRY_LOCK "SELECT pg_try_advisory_xact_lock($1::integer, $2::integer)"

#define SQL_PAYLOADS                                                                               \
    "SELECT p.id, translate(encode(p.data, 'base64'), E'\\n', '') FROM payload p"                  \
    " WHERE p.id = ANY($1::bigint[])"

#define SQL_REQUESTS                                                                               \
    "SELECT r.project_id, r.kind, r.project_forge, r.project_path FROM project_request r"          \
    " ORDER BY r.requested_at LIMIT $1::bigint FOR UPDATE SKIP LOCKED"

#define SQL_REQUESTS_DONE                                                                          \
    "DELETE FROM project_request r USING unnest($1::bigint[], $2::text[]) AS d(project_id, kind)"  \
    " WHERE r.project_id = d.project_id AND r.kind = d.kind"

/* ---- small helpers ----------------------------------------------------------------------- */

long long el_setting(long long value, long long fallback)
{
    return value > 0 ? value : fallback;
}

static long long mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool valid_kind(el_dispatch_kind kind)
{
    return (unsigned)kind < EL_DISPATCH_KIND_COUNT;
}

const char *el_dispatch_category(el_dispatch_kind kind)
{
    return valid_kind(kind) ? kinds[kind].category : NULL;
}

el_status el_dispatch_processing(el_dispatch_kind kind)
{
    return valid_kind(kind) ? kinds[kind].processing : EL_STATUS_NONE;
}

size_t el_dispatch_ready_statuses(el_status out[EL_STATUS_COUNT], el_dispatch_kind kind)
{
    if (!valid_kind(kind))
        return 0;
    for (size_t i = 0; i < kinds[kind].nready; i++)
        out[i] = kinds[kind].ready[i];
    return kinds[kind].nready;
}

const char *el_dispatch_sql(el_dispatch_kind kind, el_dispatch_sql_kind which)
{
    if (!valid_kind(kind) || (unsigned)which >= EL_DISPATCH_SQL_COUNT)
        return NULL;
    return kinds[kind].sql[which];
}

static int get_int64(long long *out, const fg_pg_result *res, size_t row, size_t col)
{
    int64_t v = 0;
    int rc = fg_pg_result_int64(&v, res, row, col);

    if (rc == 0)
        *out = (long long)v;
    return rc;
}

/* Appends {a,b,c} of the ids for an array parameter. */
static int put_id_array(fg_buf *out, const long long *ids, size_t n)
{
    int rc;

    if ((rc = fg_buf_putc(out, '{')) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if ((rc = fg_buf_printf(out, i > 0 ? ",%lld" : "%lld", ids[i])) < 0)
            return rc;
    }
    return fg_buf_putc(out, '}');
}

/* el_change_apply, counted in the service's metrics. */
static int apply(size_t *out, fg_pg_conn *pg, const el_context *ctx, const el_change *change)
{
    el_change_result r;
    int rc;

    if ((rc = el_change_apply(&r, pg, change)) < 0)
        return rc;
    fg_metric_add(ctx->m.transitions, (double)r.applied);
    fg_metric_add(ctx->m.stale, (double)r.stale);
    fg_metric_add(ctx->m.illegal, (double)r.illegal);
    *out = r.applied;
    return 0;
}

static int apply_ids(size_t *out, fg_pg_conn *pg, const el_context *ctx, el_project_id project,
                     el_cause cause, el_status to, const el_event_id *ids, size_t n,
                     const char *message)
{
    el_change c;

    *out = 0;
    if (n == 0)
        return 0;
    memset(&c, 0, sizeof(c));
    c.project = project;
    c.cause = cause;
    c.to = to;
    c.ids = ids;
    c.nids = n;
    c.message = message;
    return apply(out, pg, ctx, &c);
}

/* DISPATCH of events this transaction holds locked: each must move, or something else wrote
 * event.status behind the locks. */
static int dispatch_ids(fg_pg_conn *pg, const el_context *ctx, el_dispatch_kind kind,
                        el_project_id project, const el_event_id *ids, size_t n)
{
    size_t applied = 0;
    int rc = apply_ids(&applied, pg, ctx, project, EL_CAUSE_DISPATCH, kinds[kind].processing, ids,
                       n, NULL);

    if (rc < 0)
        return rc;
    if (applied != n)
        return fg_error_set(FG_ECONFLICT,
                            "dispatch: %zu of %zu claimed events of project %lld did not move",
                            n - applied, n, project.value);
    return 0;
}

/* ---- credit ------------------------------------------------------------------------------ */

int el_dispatch_credit(el_credit *out, fg_pg_conn *pg, const el_context *ctx, el_dispatch_kind kind)
{
    fg_pg_result *res = NULL;
    char ttl[NUM_MAX];
    const char *params[1];
    int rc = FG_ERROR;

    memset(out, 0, sizeof(*out));
    if (!valid_kind(kind))
        return fg_error_set(FG_EINVALID, "dispatch: no such kind %d", (int)kind);
    snprintf(ttl, sizeof(ttl), "%lld", el_setting(ctx->settings.consumer_ttl_ms, 90000));
    params[0] = ttl;
    if ((rc = fg_pg_exec_prepared(&res, pg, kinds[kind].names[EL_DISPATCH_SQL_CREDIT],
                                  kinds[kind].sql[EL_DISPATCH_SQL_CREDIT], 1, params)) < 0)
        goto done;
    if ((rc = get_int64(&out->capacity, res, 0, 0)) < 0 ||
        (rc = get_int64(&out->consumers, res, 0, 1)) < 0 ||
        (rc = get_int64(&out->processing, res, 0, 2)) < 0)
        goto done;
    out->free = out->capacity > out->processing ? out->capacity - out->processing : 0;
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

/* ---- pick -------------------------------------------------------------------------------- */

void el_pick_init(el_pick *p)
{
    memset(p, 0, sizeof(*p));
}

void el_pick_dispose(el_pick *p)
{
    if (p == NULL)
        return;
    free(p->projects);
    fg_pg_result_free(p->rows);
    el_pick_init(p);
}

int el_dispatch_pick(el_pick *out, fg_pg_conn *pg, el_dispatch_kind kind, long long after,
                     size_t max)
{
    char after_text[NUM_MAX], max_text[NUM_MAX];
    const char *params[2] = {after_text, max_text};
    size_t n;
    int rc = FG_ERROR;

    el_pick_dispose(out);
    if (!valid_kind(kind) || max == 0 || max > EL_DISPATCH_PROJECTS_MAX)
        return fg_error_set(FG_EINVALID, "dispatch: pick of %zu projects", max);
    snprintf(after_text, sizeof(after_text), "%lld", after);
    snprintf(max_text, sizeof(max_text), "%zu", max);
    if ((rc = fg_pg_exec_prepared(&out->rows, pg, kinds[kind].names[EL_DISPATCH_SQL_PICK],
                                  kinds[kind].sql[EL_DISPATCH_SQL_PICK], 2, params)) < 0)
        goto done;
    n = fg_pg_result_rows(out->rows);
    if (n > 0 && (out->projects = calloc(n, sizeof(*out->projects))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "dispatch: out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        fg_proto_project *p = &out->projects[i];
        const char *forge = fg_pg_result_text(out->rows, i, 1);

        if ((rc = get_int64(&p->id, out->rows, i, 0)) < 0)
            goto done;
        if (forge == NULL || fg_proto_forge_parse(&p->forge, forge) < 0) {
            rc = fg_error_set(FG_ERROR, "dispatch: project %lld has no known forge", p->id);
            goto done;
        }
        p->path = fg_pg_result_text(out->rows, i, 2);
    }
    out->n = n;
    rc = 0;
done:
    if (rc < 0)
        el_pick_dispose(out);
    return rc;
}

/* ---- claim ------------------------------------------------------------------------------- */

void el_claim_init(el_claim *c)
{
    memset(c, 0, sizeof(*c));
}

void el_claim_dispose(el_claim *c)
{
    if (c == NULL)
        return;
    free(c->ids);
    free(c->shas);
    free(c->bodies);
    free(c->payload_ids);
    fg_pg_result_free(c->rows);
    el_claim_init(c);
}

static int claim_alloc(el_claim *c, size_t n)
{
    if (n == 0)
        return 0;
    c->ids = calloc(n, sizeof(*c->ids));
    c->shas = calloc(n, sizeof(*c->shas));
    c->bodies = calloc(n, sizeof(*c->bodies));
    c->payload_ids = calloc(n, sizeof(*c->payload_ids));
    if (c->ids == NULL || c->shas == NULL || c->bodies == NULL || c->payload_ids == NULL)
        return fg_error_set(FG_ENOMEM, "dispatch: out of memory");
    return 0;
}

int el_dispatch_claim(el_claim *out, fg_pg_conn *pg, el_dispatch_kind kind, el_project_id project,
                      size_t max)
{
    char project_text[NUM_MAX], max_text[NUM_MAX];
    const char *params[2] = {project_text, max_text};
    size_t n;
    int rc = FG_ERROR;

    el_claim_dispose(out);
    if (!valid_kind(kind) || max == 0 || max > FG_PROTO_BATCH_MAX)
        return fg_error_set(FG_EINVALID, "dispatch: claim of %zu events", max);
    snprintf(project_text, sizeof(project_text), "%lld", project.value);
    snprintf(max_text, sizeof(max_text), "%zu", max);
    if ((rc = fg_pg_exec_prepared(&out->rows, pg, kinds[kind].names[EL_DISPATCH_SQL_CLAIM],
                                  kinds[kind].sql[EL_DISPATCH_SQL_CLAIM], 2, params)) < 0)
        goto done;
    n = fg_pg_result_rows(out->rows);
    if ((rc = claim_alloc(out, n)) < 0)
        goto done;
    for (size_t i = 0; i < n; i++) {
        if ((rc = get_int64(&out->ids[i].value, out->rows, i, 0)) < 0)
            goto done;
        out->shas[i] = fg_pg_result_text(out->rows, i, 1);
        if (kind == EL_DISPATCH_GENERATION)
            out->bodies[i] = fg_pg_result_text(out->rows, i, 2);
        else if (kind == EL_DISPATCH_TRANSFORMATION &&
                 (rc = get_int64(&out->payload_ids[i], out->rows, i, 2)) < 0)
            goto done;
    }
    out->n = n;
    rc = 0;
done:
    if (rc < 0)
        el_claim_dispose(out);
    return rc;
}

/* ---- outbox ------------------------------------------------------------------------------ */

void el_outbox_init(el_outbox *o)
{
    memset(o, 0, sizeof(*o));
}

void el_outbox_dispose(el_outbox *o)
{
    if (o == NULL)
        return;
    for (size_t i = 0; i < o->n; i++)
        fg_buf_dispose(&o->items[i].body);
    free(o->items);
    el_outbox_init(o);
}

int el_outbox_add(el_outbox *o, fg_proto_msg *msg)
{
    el_outgoing *item;
    int rc;

    if (o->n == o->cap) {
        size_t cap = o->cap == 0 ? 16 : o->cap * 2;
        el_outgoing *items = realloc(o->items, cap * sizeof(*items));

        if (items == NULL)
            return fg_error_set(FG_ENOMEM, "dispatch: out of memory");
        o->items = items;
        o->cap = cap;
    }
    item = &o->items[o->n];
    fg_buf_init(&item->body, FG_PROTO_MESSAGE_MAX);
    if ((rc = fg_proto_msg_serialise(&item->body, msg)) < 0) {
        fg_buf_dispose(&item->body);
        return rc;
    }
    snprintf(item->id, sizeof(item->id), "%s", msg->id);
    item->category = fg_proto_category_name(msg->category);
    o->bytes += item->body.len;
    o->n++;
    return 0;
}

int el_outbox_publish(el_outbox *o, fg_amqp *amqp)
{
    fg_amqp_message *msgs = NULL;
    size_t done_n = 0;
    int rc = FG_ERROR;

    if (o->n == 0)
        return 0;
    if ((msgs = calloc(o->n, sizeof(*msgs))) == NULL)
        return fg_error_set(FG_ENOMEM, "dispatch: out of memory");
    for (size_t i = 0; i < o->n; i++) {
        msgs[i].id = o->items[i].id;
        msgs[i].category = o->items[i].category;
        msgs[i].body = o->items[i].body.ptr;
        msgs[i].body_len = o->items[i].body.len;
    }
    while (done_n < o->n) {
        size_t n = o->n - done_n, confirmed = 0;

        if (n > FG_AMQP_BATCH_MAX)
            n = FG_AMQP_BATCH_MAX;
        if ((rc = fg_amqp_publish_batch(&confirmed, amqp, msgs + done_n, n,
                                        EL_DISPATCH_CONFIRM_MS)) < 0)
            goto done;
        done_n += n;
    }
    rc = 0;
done:
    free(msgs);
    return rc;
}

/* ---- building the messages of one project ------------------------------------------------ */

typedef struct {
    size_t sent;   /* events in messages */
    size_t failed; /* events moved to a failure (or back) instead */
} project_outcome;

static int add_event_with_body(fg_proto_msg *msg, const char *sha, json_object *body)
{
    json_object *ev = json_object_new_object();
    json_object *sha_obj = json_object_new_string(sha);

    if (ev == NULL || sha_obj == NULL || json_object_object_add(ev, "sha", sha_obj) < 0) {
        json_object_put(sha_obj);
        json_object_put(ev);
        return fg_error_set(FG_ENOMEM, "dispatch: out of memory");
    }
    if (json_object_object_add(ev, "body", json_object_get(body)) < 0) {
        json_object_put(body);
        json_object_put(ev);
        return fg_error_set(FG_ENOMEM, "dispatch: out of memory");
    }
    return fg_proto_msg_append(msg, "events", ev);
}

/* AWAITING_GENERATION for claim rows idx[lo..hi); halves the batch while the message is over
 * FG_PROTO_MESSAGE_MAX (large commit bodies). */
static int build_generation(el_outbox *ob, const fg_proto_project *project, const el_claim *c,
                            json_object *const *bodies, const size_t *idx, size_t lo, size_t hi)
{
    fg_proto_msg msg;
    int rc;

    if (lo >= hi)
        return 0;
    fg_proto_msg_init(&msg);
    if ((rc = fg_proto_msg_start(&msg, FG_PROTO_AWAITING_GENERATION, project)) < 0)
        goto done;
    for (size_t i = lo; i < hi; i++) {
        if ((rc = add_event_with_body(&msg, c->shas[idx[i]], bodies[idx[i]])) < 0)
            goto done;
    }
    rc = el_outbox_add(ob, &msg);
    if (rc == FG_ETOOBIG && hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        fg_proto_msg_dispose(&msg);
        if ((rc = build_generation(ob, project, c, bodies, idx, lo, mid)) < 0)
            goto done;
        rc = build_generation(ob, project, c, bodies, idx, mid, hi);
    }
done:
    fg_proto_msg_dispose(&msg);
    return rc;
}

static int generation_project(project_outcome *out, fg_pg_conn *pg, const el_context *ctx,
                              const fg_proto_project *project, const el_claim *c, el_outbox *ob)
{
    el_project_id pid = {project->id};
    json_object **bodies = NULL;
    size_t *good = NULL, ngood = 0, nbad = 0, applied = 0;
    el_event_id *bad = NULL;
    char why[256] = "stored commit body is missing or not valid";
    size_t outbox_before = ob->n;
    int rc = FG_ERROR;

    bodies = calloc(c->n, sizeof(*bodies));
    good = calloc(c->n, sizeof(*good));
    bad = calloc(c->n, sizeof(*bad));
    if (bodies == NULL || good == NULL || bad == NULL) {
        rc = fg_error_set(FG_ENOMEM, "dispatch: out of memory");
        goto done;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (c->bodies[i] != NULL &&
            fg_proto_commit_parse(&bodies[i], c->bodies[i], strlen(c->bodies[i])) == 0)
            good[ngood++] = i;
        else
            bad[nbad++] = c->ids[i];
    }
    rc = build_generation(ob, project, c, bodies, good, 0, ngood);
    if (rc == FG_EINVALID) {
        /* the project itself cannot be addressed in a message: its events fail visibly rather
         * than blocking every round */
        snprintf(why, sizeof(why), "%s", fg_error_last());
        for (size_t i = outbox_before; i < ob->n; i++)
            fg_buf_dispose(&ob->items[i].body);
        ob->n = outbox_before;
        for (size_t i = 0; i < ngood; i++)
            bad[nbad++] = c->ids[good[i]];
        ngood = 0;
    } else if (rc < 0) {
        goto done;
    }
    if ((rc = dispatch_ids(pg, ctx, EL_DISPATCH_GENERATION, pid, c->ids, c->n)) < 0 ||
        (rc = apply_ids(&applied, pg, ctx, pid, EL_CAUSE_TO_FAILURE,
                        EL_STATUS_GENERATION_NON_RECOVERABLE_FAILURE, bad, nbad, why)) < 0)
        goto done;
    if (nbad > 0)
        fg_log_emit(FG_LOG_WARN, FG_LOG_FIELDS(FG_LOG_INT("project", project->id)),
                    "dispatch: %zu events not sent: %s", nbad, why);
    out->sent = ngood;
    out->failed = nbad;
    rc = 0;
done:
    for (size_t i = 0; bodies != NULL && i < c->n; i++)
        json_object_put(bodies[i]);
    free(bodies);
    free(good);
    free(bad);
    return rc;
}

/* Claimed rows of the payload groups to send: when the claim hit its limit, the last group may
 * be cut short, so it waits for the next round unless it is the only one. */
static void transformation_keep(const el_claim *c, size_t limit, bool keep[])
{
    long long last = c->n > 0 ? c->payload_ids[c->n - 1] : 0;
    bool cut = c->n == limit && last != 0;
    bool other = false;

    for (size_t i = 0; cut && i < c->n; i++)
        other = other || c->payload_ids[i] != last;
    for (size_t i = 0; i < c->n; i++)
        keep[i] = !(cut && other && c->payload_ids[i] == last);
}

static int load_payloads(fg_pg_result **out, fg_pg_conn *pg, const el_claim *c, const bool keep[])
{
    long long *ids = calloc(c->n > 0 ? c->n : 1, sizeof(*ids));
    fg_buf text;
    const char *params[1];
    size_t n = 0;
    int rc;

    fg_buf_init(&text, IDS_TEXT_MAX);
    if (ids == NULL) {
        rc = fg_error_set(FG_ENOMEM, "dispatch: out of memory");
        goto done;
    }
    for (size_t i = 0; i < c->n; i++) {
        if (keep[i] && c->payload_ids[i] != 0)
            ids[n++] = c->payload_ids[i];
    }
    if ((rc = put_id_array(&text, ids, n)) < 0)
        goto done;
    params[0] = text.ptr;
    rc = fg_pg_exec_prepared(out, pg, "el_dispatch_payloads", SQL_PAYLOADS, 1, params);
done:
    free(ids);
    fg_buf_dispose(&text);
    return rc;
}

static const char *payload_text(const fg_pg_result *res, long long id)
{
    for (size_t row = 0; row < fg_pg_result_rows(res); row++) {
        long long v = 0;

        if (get_int64(&v, res, row, 0) == 0 && v == id)
            return fg_pg_result_text(res, row, 1);
    }
    return NULL;
}

/* One TRIPLES_GENERATED per payload group; a group whose message cannot be built (no payload
 * row, too big) is listed in failed[] instead. */
static int build_transformation(el_outbox *ob, const fg_proto_project *project, const el_claim *c,
                                const bool keep[], const fg_pg_result *payloads,
                                el_event_id *failed, size_t *nfailed)
{
    bool *done_row = calloc(c->n > 0 ? c->n : 1, sizeof(*done_row));
    fg_proto_msg msg;
    int rc = 0;

    fg_proto_msg_init(&msg);
    if (done_row == NULL)
        return fg_error_set(FG_ENOMEM, "dispatch: out of memory");
    for (size_t i = 0; i < c->n && rc == 0; i++) {
        long long group = c->payload_ids[i];
        const char *data = payload_text(payloads, group);

        if (!keep[i] || group == 0 || done_row[i])
            continue;
        rc = data == NULL ? FG_ENOTFOUND
                          : fg_proto_msg_start(&msg, FG_PROTO_TRIPLES_GENERATED, project);
        for (size_t j = i; j < c->n && rc == 0; j++) {
            if (keep[j] && c->payload_ids[j] == group)
                rc = fg_proto_msg_add_event(&msg, c->shas[j]);
        }
        if (rc == 0 && (rc = fg_proto_msg_set_string(&msg, "payload", data)) == 0)
            rc = el_outbox_add(ob, &msg);
        if (rc == FG_ENOTFOUND || rc == FG_ETOOBIG || rc == FG_EINVALID) {
            for (size_t j = i; j < c->n; j++) {
                if (keep[j] && c->payload_ids[j] == group)
                    failed[(*nfailed)++] = c->ids[j];
            }
            rc = 0;
        }
        for (size_t j = i; j < c->n; j++)
            done_row[j] = done_row[j] || c->payload_ids[j] == group;
    }
    fg_proto_msg_dispose(&msg);
    free(done_row);
    return rc;
}

static int transformation_project(project_outcome *out, fg_pg_conn *pg, const el_context *ctx,
                                  const fg_proto_project *project, const el_claim *c, size_t limit,
                                  el_outbox *ob)
{
    el_project_id pid = {project->id};
    fg_pg_result *payloads = NULL;
    bool *keep = NULL;
    el_event_id *send = NULL, *orphans = NULL, *failed = NULL;
    size_t nsend = 0, norphans = 0, nfailed = 0, applied = 0;
    int rc = FG_ERROR;

    keep = calloc(c->n, sizeof(*keep));
    send = calloc(c->n, sizeof(*send));
    orphans = calloc(c->n, sizeof(*orphans));
    failed = calloc(c->n, sizeof(*failed));
    if (keep == NULL || send == NULL || orphans == NULL || failed == NULL) {
        rc = fg_error_set(FG_ENOMEM, "dispatch: out of memory");
        goto done;
    }
    transformation_keep(c, limit, keep);
    for (size_t i = 0; i < c->n; i++) {
        if (keep[i] && c->payload_ids[i] == 0)
            orphans[norphans++] = c->ids[i];
        else if (keep[i])
            send[nsend++] = c->ids[i];
    }
    if ((rc = load_payloads(&payloads, pg, c, keep)) < 0 ||
        (rc = build_transformation(ob, project, c, keep, payloads, failed, &nfailed)) < 0)
        goto done;
    /* without its payload an event cannot be uploaded: it is generated again */
    if ((rc = apply_ids(&applied, pg, ctx, pid, EL_CAUSE_REPLAY, EL_STATUS_NEW, orphans, norphans,
                        "payload missing: generating again")) < 0 ||
        (rc = dispatch_ids(pg, ctx, EL_DISPATCH_TRANSFORMATION, pid, send, nsend)) < 0 ||
        (rc = apply_ids(&applied, pg, ctx, pid, EL_CAUSE_TO_FAILURE,
                        EL_STATUS_TRANSFORMATION_NON_RECOVERABLE_FAILURE, failed, nfailed,
                        "payload cannot be sent (missing, or over the message limit)")) < 0)
        goto done;
    if (norphans + nfailed > 0)
        fg_log_emit(FG_LOG_WARN, FG_LOG_FIELDS(FG_LOG_INT("project", project->id)),
                    "dispatch: %zu events without payload regenerate, %zu failed", norphans,
                    nfailed);
    out->sent = nsend - nfailed;
    out->failed = norphans + nfailed;
    rc = 0;
done:
    fg_pg_result_free(payloads);
    free(keep);
    free(send);
    free(orphans);
    free(failed);
    return rc;
}

static int clean_up_project(project_outcome *out, fg_pg_conn *pg, const el_context *ctx,
                            const fg_proto_project *project, const el_claim *c, el_outbox *ob)
{
    el_project_id pid = {project->id};
    fg_proto_msg msg;
    int rc;

    fg_proto_msg_init(&msg);
    if ((rc = fg_proto_msg_start(&msg, FG_PROTO_CLEAN_UP, project)) < 0)
        goto done;
    for (size_t i = 0; i < c->n && rc == 0; i++)
        rc = fg_proto_msg_add_event(&msg, c->shas[i]);
    if (rc < 0 || (rc = el_outbox_add(ob, &msg)) < 0)
        goto done;
    if ((rc = dispatch_ids(pg, ctx, EL_DISPATCH_CLEAN_UP, pid, c->ids, c->n)) < 0)
        goto done;
    out->sent = c->n;
done:
    fg_proto_msg_dispose(&msg);
    return rc;
}

static int dispatch_project(project_outcome *out, fg_pg_conn *pg, const el_context *ctx,
                            el_dispatch_kind kind, const fg_proto_project *project, size_t share,
                            el_outbox *ob)
{
    el_claim c;
    el_project_id pid = {project->id};
    int rc;

    memset(out, 0, sizeof(*out));
    el_claim_init(&c);
    if ((rc = el_dispatch_claim(&c, pg, kind, pid, share)) < 0 || c.n == 0)
        goto done;
    if (kind == EL_DISPATCH_GENERATION)
        rc = generation_project(out, pg, ctx, project, &c, ob);
    else if (kind == EL_DISPATCH_TRANSFORMATION)
        rc = transformation_project(out, pg, ctx, project, &c, share, ob);
    else
        rc = clean_up_project(out, pg, ctx, project, &c, ob);
done:
    el_claim_dispose(&c);
    return rc;
}

/* ---- a round ----------------------------------------------------------------------------- */

void el_dispatcher_init(el_dispatcher *d)
{
    memset(d, 0, sizeof(*d));
    d->started_ms = mono_ms();
}

static int try_lock(bool *out, fg_pg_conn *pg, int object)
{
    fg_pg_result *res = NULL;
    char cls[NUM_MAX], obj[NUM_MAX];
    const char *params[2] = {cls, obj};
    int rc;

    snprintf(cls, sizeof(cls), "%d", EL_DISPATCH_LOCK_CLASS);
    snprintf(obj, sizeof(obj), "%d", object);
    if ((rc = fg_pg_exec_prepared(&res, pg, "el_dispatch_try_lock", SQL_TRY_LOCK, 2, params)) == 0)
        rc = fg_pg_result_bool(out, res, 0, 0);
    fg_pg_result_free(res);
    return rc;
}

int el_dispatch_try_lock(bool *out, fg_pg_conn *pg, int object)
{
    return try_lock(out, pg, object);
}

/* The round's projects in round-robin order: those after the cursor, then from the start. */
typedef struct {
    el_pick after, wrapped;
    const fg_proto_project **order;
    size_t n;
} round_order;

static void round_order_dispose(round_order *r)
{
    el_pick_dispose(&r->after);
    el_pick_dispose(&r->wrapped);
    free(r->order);
}

static int pick_round(round_order *out, fg_pg_conn *pg, el_dispatch_kind kind, long long cursor,
                      size_t max)
{
    int rc;

    if ((rc = el_dispatch_pick(&out->after, pg, kind, cursor, max)) < 0)
        return rc;
    if (out->after.n < max && cursor > 0 &&
        (rc = el_dispatch_pick(&out->wrapped, pg, kind, 0, max - out->after.n)) < 0)
        return rc;
    if ((out->order = calloc(max, sizeof(*out->order))) == NULL)
        return fg_error_set(FG_ENOMEM, "dispatch: out of memory");
    for (size_t i = 0; i < out->after.n; i++)
        out->order[out->n++] = &out->after.projects[i];
    for (size_t i = 0; i < out->wrapped.n && out->n < max; i++) {
        if (out->wrapped.projects[i].id > cursor) /* already in `after` */
            break;
        out->order[out->n++] = &out->wrapped.projects[i];
    }
    return 0;
}

static size_t round_projects(const el_context *ctx, long long free_credit)
{
    long long n = el_setting(ctx->settings.projects_per_round, 16);

    if (n > EL_DISPATCH_PROJECTS_MAX)
        n = EL_DISPATCH_PROJECTS_MAX;
    /* one event (or, for CLEAN_UP, one project) per credit: more projects than credit would
     * only be picked to be skipped */
    if (n > free_credit)
        n = free_credit;
    return (size_t)n;
}

static size_t batch_max(const el_context *ctx)
{
    long long n = el_setting(ctx->settings.batch_max, 100);

    return n > FG_PROTO_BATCH_MAX ? FG_PROTO_BATCH_MAX : (size_t)n;
}

/* The share of the remaining credit for the i-th of n projects: an equal split, rounded up,
 * so what a small project leaves unused goes to the ones after it. */
static size_t share_of(const el_context *ctx, el_dispatch_kind kind, long long remaining, size_t i,
                       size_t n)
{
    size_t batch = batch_max(ctx);
    long long left = (long long)(n - i);
    long long share = (remaining + left - 1) / left;

    if (kind == EL_DISPATCH_CLEAN_UP)
        return batch;
    return share < (long long)batch ? (size_t)share : batch;
}

/* Whether to let a crumb of free credit wait for the batches in flight to come back. */
static bool crumb(const el_dispatcher *d, const el_context *ctx, el_dispatch_kind kind,
                  const el_credit *credit)
{
    long long whole = (long long)batch_max(ctx);

    if (credit->capacity < whole)
        whole = credit->capacity;
    return kind != EL_DISPATCH_CLEAN_UP && credit->processing > 0 && credit->free * 4 < whole &&
           mono_ms() - d->last_sent_ms[kind] < EL_DISPATCH_COALESCE_MS;
}

static int run_round(el_dispatch_result *out, const el_dispatcher *d, long long *cursor,
                     fg_pg_conn *pg, fg_amqp *amqp, const el_context *ctx, el_dispatch_kind kind,
                     el_outbox *ob, round_order *order)
{
    long long remaining;
    bool locked = false;
    int rc;

    if ((rc = try_lock(&locked, pg, (int)kind)) < 0)
        return rc;
    if (!locked) {
        out->locked_out = true;
        return 0;
    }
    if ((rc = el_dispatch_credit(&out->credit, pg, ctx, kind)) < 0)
        return rc;
    if (out->credit.free <= 0)
        return 0;
    if (crumb(d, ctx, kind, &out->credit)) {
        out->deferred = true;
        return 0;
    }
    if ((rc = pick_round(order, pg, kind, *cursor, round_projects(ctx, out->credit.free))) < 0)
        return rc;
    remaining = out->credit.free;
    for (size_t i = 0; i < order->n && remaining > 0; i++) {
        project_outcome po;

        if (ob->bytes >= EL_DISPATCH_ROUND_BYTES_MAX)
            break;
        if ((rc = dispatch_project(&po, pg, ctx, kind, order->order[i],
                                   share_of(ctx, kind, remaining, i, order->n), ob)) < 0)
            return rc;
        *cursor = order->order[i]->id;
        out->projects += po.sent > 0;
        out->events += po.sent;
        out->failed += po.failed;
        remaining -= kind == EL_DISPATCH_CLEAN_UP ? (po.sent > 0) : (long long)po.sent;
    }
    return el_outbox_publish(ob, amqp);
}

int el_dispatch_round(el_dispatch_result *out, el_dispatcher *d, fg_pg_conn *pg, fg_amqp *amqp,
                      const el_context *ctx, el_dispatch_kind kind)
{
    el_outbox ob;
    round_order order;
    long long cursor, t0 = mono_ms();
    bool in_tx = false;
    int rc = FG_ERROR;

    memset(out, 0, sizeof(*out));
    memset(&order, 0, sizeof(order));
    el_outbox_init(&ob);
    if (!valid_kind(kind)) {
        rc = fg_error_set(FG_EINVALID, "dispatch: no such kind %d", (int)kind);
        goto done;
    }
    cursor = d->cursor[kind];
    if ((rc = fg_pg_begin(pg)) < 0)
        goto done;
    in_tx = true;
    if ((rc = run_round(out, d, &cursor, pg, amqp, ctx, kind, &ob, &order)) < 0)
        goto done;
    in_tx = false;
    if ((rc = fg_pg_commit(pg)) < 0)
        goto done;
    d->cursor[kind] = cursor;
    out->messages = ob.n;
    if (ob.n > 0)
        d->last_sent_ms[kind] = mono_ms();
    if (out->events + out->failed > 0) {
        fg_metric_observe(ctx->m.dispatch_seconds, (double)(mono_ms() - t0) / 1000.0);
        fg_log_emit(FG_LOG_DEBUG,
                    FG_LOG_FIELDS(FG_LOG_STR("category", kinds[kind].category),
                                  FG_LOG_INT("events", (long long)out->events),
                                  FG_LOG_INT("projects", (long long)out->projects),
                                  FG_LOG_INT("free", out->credit.free)),
                    "dispatched %zu events of %zu projects in %zu messages", out->events,
                    out->projects, out->messages);
    }
    rc = 0;
done:
    if (in_tx && fg_pg_rollback(pg) < 0)
        fg_log_warn("dispatch: rollback: %s", fg_error_last());
    if (rc < 0) {
        out->events = out->failed = out->messages = out->projects = 0;
    }
    round_order_dispose(&order);
    el_outbox_dispose(&ob);
    return rc;
}

/* ---- project requests -------------------------------------------------------------------- */

static int request_message(el_outbox *ob, const fg_pg_result *res, size_t row)
{
    fg_proto_project project;
    fg_proto_msg msg;
    const char *kind = fg_pg_result_text(res, row, 1);
    const char *forge = fg_pg_result_text(res, row, 2);
    int rc;

    fg_proto_msg_init(&msg);
    memset(&project, 0, sizeof(project));
    project.path = fg_pg_result_text(res, row, 3);
    if ((rc = get_int64(&project.id, res, row, 0)) < 0)
        goto done;
    if (kind == NULL || forge == NULL || fg_proto_forge_parse(&project.forge, forge) < 0) {
        rc = fg_error_set(FG_EINVALID, "project_request of %lld: bad kind or forge", project.id);
        goto done;
    }
    if (strcmp(kind, "REPROVISION") == 0) {
        if ((rc = fg_proto_msg_start(&msg, FG_PROTO_CLEAN_UP, &project)) < 0 ||
            (rc = fg_proto_msg_set_bool(&msg, "all", true)) < 0)
            goto done;
    } else if ((rc = fg_proto_msg_start(&msg, FG_PROTO_PROJECT_REMOVED, &project)) < 0) {
        goto done;
    }
    rc = el_outbox_add(ob, &msg);
done:
    fg_proto_msg_dispose(&msg);
    return rc;
}

static int delete_requests(fg_pg_conn *pg, const fg_pg_result *res)
{
    fg_buf ids, kinds_text;
    const char *params[2];
    int rc = 0;

    fg_buf_init(&ids, IDS_TEXT_MAX);
    fg_buf_init(&kinds_text, IDS_TEXT_MAX);
    rc = fg_buf_putc(&ids, '{');
    if (rc == 0)
        rc = fg_buf_putc(&kinds_text, '{');
    for (size_t row = 0; rc == 0 && row < fg_pg_result_rows(res); row++) {
        const char *sep = row > 0 ? "," : "";

        if ((rc = fg_buf_printf(&ids, "%s%s", sep, fg_pg_result_text(res, row, 0))) == 0)
            rc = fg_buf_printf(&kinds_text, "%s%s", sep, fg_pg_result_text(res, row, 1));
    }
    if (rc == 0 && (rc = fg_buf_putc(&ids, '}')) == 0 &&
        (rc = fg_buf_putc(&kinds_text, '}')) == 0) {
        params[0] = ids.ptr;
        params[1] = kinds_text.ptr;
        rc = fg_pg_exec_prepared(NULL, pg, "el_dispatch_requests_done", SQL_REQUESTS_DONE, 2,
                                 params);
    }
    fg_buf_dispose(&ids);
    fg_buf_dispose(&kinds_text);
    return rc;
}

int el_dispatch_requests(size_t *out, fg_pg_conn *pg, fg_amqp *amqp)
{
    fg_pg_result *res = NULL;
    el_outbox ob;
    char limit[NUM_MAX];
    const char *params[1] = {limit};
    bool in_tx = false;
    int rc = FG_ERROR;

    *out = 0;
    el_outbox_init(&ob);
    snprintf(limit, sizeof(limit), "%d", EL_DISPATCH_REQUESTS_MAX);
    if ((rc = fg_pg_begin(pg)) < 0)
        goto done;
    in_tx = true;
    if ((rc = fg_pg_exec_prepared(&res, pg, "el_dispatch_requests", SQL_REQUESTS, 1, params)) < 0)
        goto done;
    if (fg_pg_result_rows(res) == 0)
        goto done;
    for (size_t row = 0; row < fg_pg_result_rows(res); row++) {
        /* a row no message can carry is dropped (and said so): it would block the others */
        if ((rc = request_message(&ob, res, row)) == FG_EINVALID)
            fg_log_error("dispatch: project_request dropped: %s", fg_error_last());
        else if (rc < 0)
            goto done;
    }
    if ((rc = el_outbox_publish(&ob, amqp)) < 0 || (rc = delete_requests(pg, res)) < 0)
        goto done;
    in_tx = false;
    if ((rc = fg_pg_commit(pg)) < 0)
        goto done;
    *out = ob.n;
    rc = 0;
done:
    if (in_tx && fg_pg_rollback(pg) < 0)
        fg_log_warn("dispatch: rollback: %s", fg_error_last());
    fg_pg_result_free(res);
    el_outbox_dispose(&ob);
    return rc;
}

/* ---- the tick ---------------------------------------------------------------------------- */

static const long long part_interval_ms[EL_TICK_PART_COUNT] = {
    [EL_TICK_ZOMBIES] = 1000,
    [EL_TICK_GENERATION] = 0,
    [EL_TICK_TRANSFORMATION] = 0,
    [EL_TICK_CLEAN_UP] = 0,
    [EL_TICK_REQUESTS] = 100,
    [EL_TICK_COMMIT_SYNC] = 1000,
    [EL_TICK_GLOBAL_COMMIT_SYNC] = 1000,
    [EL_TICK_MEMBER_SYNC] = 1000,
    [EL_TICK_PROJECT_SYNC] = 1000,
    [EL_TICK_PRUNE] = 600000,
    [EL_TICK_PAYLOADS] = 1000,
    [EL_TICK_GAUGES] = 10000,
};

static const char *const part_names[EL_TICK_PART_COUNT] = {
    [EL_TICK_ZOMBIES] = "zombie chasing",
    [EL_TICK_GENERATION] = "dispatch AWAITING_GENERATION",
    [EL_TICK_TRANSFORMATION] = "dispatch TRIPLES_GENERATED",
    [EL_TICK_CLEAN_UP] = "dispatch CLEAN_UP",
    [EL_TICK_REQUESTS] = "project requests",
    [EL_TICK_COMMIT_SYNC] = "schedule COMMIT_SYNC",
    [EL_TICK_GLOBAL_COMMIT_SYNC] = "schedule GLOBAL_COMMIT_SYNC",
    [EL_TICK_MEMBER_SYNC] = "schedule MEMBER_SYNC",
    [EL_TICK_PROJECT_SYNC] = "schedule PROJECT_SYNC",
    [EL_TICK_PRUNE] = "pruning processed_message",
    [EL_TICK_PAYLOADS] = "sweeping payloads",
    [EL_TICK_GAUGES] = "counting events per status",
};

/* Rounds until the credit is spent, the work is done, or the budget is: a round serves at most
 * projects_per_round projects, so a backlog of many projects takes several. */
static int dispatch_rounds(el_dispatcher *d, fg_pg_conn *pg, fg_amqp *amqp, const el_context *ctx,
                           el_dispatch_kind kind)
{
    long long deadline = mono_ms() + EL_DISPATCH_TICK_BUDGET_MS;
    el_dispatch_result r;
    int rc;

    do {
        if ((rc = el_dispatch_round(&r, d, pg, amqp, ctx, kind)) < 0)
            return rc;
    } while (r.events + r.failed > 0 && r.credit.free > (long long)r.events &&
             mono_ms() < deadline);
    return 0;
}

/* fg_el_events{status}: a snapshot every 10 s. The count reads the partial indexes and counts
 * event_commit: 0.09-0.17 s on the bench's million events, ~1% of a core at this period. */
static int set_gauges(fg_pg_conn *pg, const el_context *ctx)
{
    long long counts[EL_STATUS_COUNT];
    int rc;

    if ((rc = el_project_count_events(counts, pg)) < 0)
        return rc;
    for (int s = 0; s < EL_STATUS_COUNT; s++) {
        if (ctx->m.events[s] != NULL)
            fg_metric_set(ctx->m.events[s], (double)counts[s]);
    }
    return 0;
}

static int run_part(el_dispatcher *d, el_tick_part part, fg_pg_conn *pg, fg_amqp *amqp,
                    const el_context *ctx)
{
    el_zombie_result zr;
    size_t n = 0;

    switch (part) {
    case EL_TICK_ZOMBIES:
        return el_zombie_chase(&zr, pg, ctx,
                               mono_ms() - d->started_ms >=
                                   el_setting(ctx->settings.consumer_ttl_ms, 90000));
    case EL_TICK_GENERATION:
        return dispatch_rounds(d, pg, amqp, ctx, EL_DISPATCH_GENERATION);
    case EL_TICK_TRANSFORMATION:
        return dispatch_rounds(d, pg, amqp, ctx, EL_DISPATCH_TRANSFORMATION);
    case EL_TICK_CLEAN_UP:
        return dispatch_rounds(d, pg, amqp, ctx, EL_DISPATCH_CLEAN_UP);
    case EL_TICK_REQUESTS:
        return el_dispatch_requests(&n, pg, amqp);
    case EL_TICK_COMMIT_SYNC:
        return el_schedule_run(&n, pg, amqp, ctx, EL_SCHEDULE_COMMIT_SYNC);
    case EL_TICK_GLOBAL_COMMIT_SYNC:
        return el_schedule_run(&n, pg, amqp, ctx, EL_SCHEDULE_GLOBAL_COMMIT_SYNC);
    case EL_TICK_MEMBER_SYNC:
        return el_schedule_run(&n, pg, amqp, ctx, EL_SCHEDULE_MEMBER_SYNC);
    case EL_TICK_PROJECT_SYNC:
        return el_schedule_run(&n, pg, amqp, ctx, EL_SCHEDULE_PROJECT_SYNC);
    case EL_TICK_PRUNE:
        return el_schedule_prune(&n, pg, ctx);
    case EL_TICK_PAYLOADS:
        return el_schedule_sweep_payloads(&n, pg);
    case EL_TICK_GAUGES:
        return set_gauges(pg, ctx);
    default:
        return fg_error_set(FG_EINVALID, "tick: no such part %d", (int)part);
    }
}

/* Parts made due out of their period, one bit per el_tick_part; set from any thread. */
static atomic_uint parts_due;

void el_dispatch_commit_sync_due(void)
{
    atomic_fetch_or(&parts_due, 1u << EL_TICK_COMMIT_SYNC);
}

int el_dispatcher_tick(el_dispatcher *d, fg_pg_conn *pg, fg_amqp *amqp, const el_context *ctx)
{
    unsigned due = atomic_exchange(&parts_due, 0u);
    int first = 0;

    for (int p = 0; p < EL_TICK_PART_COUNT; p++) {
        long long now = mono_ms();
        int rc;

        if (now < d->next_ms[p] && (due & (1u << p)) == 0)
            continue;
        if ((rc = run_part(d, (el_tick_part)p, pg, amqp, ctx)) < 0) {
            unsigned shift = d->failures[p] < 8 ? d->failures[p] : 8;
            long long backoff = 250LL << shift;

            d->failures[p]++;
            if (backoff > EL_DISPATCH_BACKOFF_MAX_MS)
                backoff = EL_DISPATCH_BACKOFF_MAX_MS;
            d->next_ms[p] = mono_ms() + backoff;
            fg_log_emit(
                FG_LOG_WARN,
                FG_LOG_FIELDS(FG_LOG_STR("part", part_names[p]), FG_LOG_INT("retry_ms", backoff)),
                "tick: %s: %s", part_names[p], fg_error_last());
            if (first == 0)
                first = rc;
            continue;
        }
        d->failures[p] = 0;
        d->next_ms[p] = now + part_interval_ms[p];
    }
    return first;
}

/* One dispatcher per process: el_tick's signature (fg_service_tick_fn) has no room for state
 * beyond the shared, read-only el_context. Bus thread only. */
static el_dispatcher tick_state;
static bool tick_state_ready;

int el_tick(fg_service_bus *bus, void *payload)
{
    const el_context *ctx = payload;

    if (!tick_state_ready) {
        el_dispatcher_init(&tick_state);
        tick_state_ready = true;
    }
    if (el_dispatcher_tick(&tick_state, fg_service_bus_db(bus), fg_service_bus_amqp(bus), ctx) < 0)
        fg_error_clear();
    return 0;
}
