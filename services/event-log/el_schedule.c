/*
 * Schedules (see el_schedule.h). A run takes the due projects oldest-first (missing rows first),
 * so a backlog drains in order; the due query reads project and sync_time only, and the per-project
 * queries (known shas, counts) use the project's own index range, so a global sync never scans
 * the whole event table: GLOBAL_COMMIT_SYNC carries count and latest precisely so that
 * commit-sync can compare them with the forge and skip the full walk when they agree.
 */
#include "el_schedule.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "el_dispatch.h"
#include "fg/log.h"
#include "fg/proto.h"

#define NUM_MAX                   24
#define IDS_TEXT_MAX              ((size_t)EL_SCHEDULE_BATCH_MAX * 21u + 8u)
#define LOCK_OBJECT_BASE          100 /* el_dispatch_try_lock objects of the schedules */
#define EL_SCHEDULE_IN_FLIGHT_MAX 16  /* COMMIT_SYNC send times kept per project */

/* Columns: id, forge, path, then the kind's own (COMMIT_SYNC: lastSynced, sentAt). */
#define SQL_DUE_HEAD(COLUMNS, CATEGORY)                                                            \
    "SELECT p.id, p.forge, p.path, " COLUMNS " FROM project p"                                     \
    " LEFT JOIN sync_time s ON s.project_id = p.id AND s.category = '" CATEGORY "' WHERE "

#define MS1 "($1::bigint * interval '1 millisecond')"
#define MS2 "($2::bigint * interval '1 millisecond')"
#define MS3 "($3::bigint * interval '1 millisecond')"

/* lastSynced is absent until a sync has completed (first_synced_at): commit-sync then knows
 * the project was never walked, even when a request deleted the row */
#define SQL_LAST_SYNCED                                                                            \
    "CASE WHEN p.first_synced_at IS NULL THEN NULL ELSE to_char(coalesce(s.last_synced,"           \
    " p.first_synced_at) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"') END"

/* When this COMMIT_SYNC is sent, to the microsecond: the transaction's now(), which SQL_MARK_SENT
 * records in sync_in_flight; commit-sync echoes it (syncSentAt) when the sync completes, so the
 * completion is matched with its own send. */
#define SQL_SENT_AT "to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"

/* $1 active cadence, $2 idle cadence, $3 the active window, $4 limit; a request made after the
 * latest COMMIT_SYNC was sent makes the project due whatever sync_time says */
#define SQL_DUE_COMMIT_SYNC                                                                        \
    SQL_DUE_HEAD(SQL_LAST_SYNCED ", " SQL_SENT_AT, "COMMIT_SYNC")                                  \
    "s.last_synced IS NULL OR s.last_synced <= now() - CASE"                                       \
    " WHEN p.latest_event_date > now() - " MS3 " THEN " MS1 " ELSE " MS2 " END"                    \
    " OR p.sync_requested_at > coalesce(p.sync_dispatched_at, '-infinity')"                        \
    " ORDER BY s.last_synced NULLS FIRST, p.id LIMIT $4::bigint FOR KEY SHARE OF p SKIP LOCKED"

/* $1 cadence, $2 limit; only after the first completed commit sync */
#define SQL_DUE_GLOBAL_COMMIT_SYNC                                                                 \
    SQL_DUE_HEAD("NULL::text", "GLOBAL_COMMIT_SYNC")                                               \
    "p.first_synced_at IS NOT NULL AND (s.last_synced IS NULL"                                     \
    " OR s.last_synced <= now() - " MS1 ")"                                                        \
    " ORDER BY s.last_synced NULLS FIRST, p.id LIMIT $2::bigint FOR KEY SHARE OF p SKIP LOCKED"

/* $1 hot, $2 warm, $3 cold cadence, $4 limit; a plain git repository has no forge to ask */
#define SQL_DUE_MEMBER_SYNC                                                                        \
    SQL_DUE_HEAD("NULL::text", "MEMBER_SYNC")                                                      \
    "p.forge <> 'git' AND (s.last_synced IS NULL OR s.last_synced <= now() - CASE"                 \
    " WHEN p.latest_event_date > now() - interval '1 hour' THEN " MS1                              \
    " WHEN p.latest_event_date > now() - interval '1 day' THEN " MS2 " ELSE " MS3 " END)"          \
    " ORDER BY s.last_synced NULLS FIRST, p.id LIMIT $4::bigint FOR KEY SHARE OF p SKIP LOCKED"

/* $1 cadence, $2 limit; forge projects only */
#define SQL_DUE_PROJECT_SYNC                                                                       \
    SQL_DUE_HEAD("NULL::text", "PROJECT_SYNC")                                                     \
    "p.forge <> 'git' AND (s.last_synced IS NULL OR s.last_synced <= now() - " MS1 ")"             \
    " ORDER BY s.last_synced NULLS FIRST, p.id LIMIT $2::bigint FOR KEY SHARE OF p SKIP LOCKED"

typedef struct {
    const char *category;
    fg_proto_category proto;
    const char *name;
    const char *sql;
} schedule_info;

static const schedule_info schedules[EL_SCHEDULE_COUNT] = {
    [EL_SCHEDULE_COMMIT_SYNC] = {"COMMIT_SYNC", FG_PROTO_COMMIT_SYNC, "el_schedule_due_commit_sync",
                                 SQL_DUE_COMMIT_SYNC},
    [EL_SCHEDULE_GLOBAL_COMMIT_SYNC] = {"GLOBAL_COMMIT_SYNC", FG_PROTO_GLOBAL_COMMIT_SYNC,
                                        "el_schedule_due_global_sync", SQL_DUE_GLOBAL_COMMIT_SYNC},
    [EL_SCHEDULE_MEMBER_SYNC] = {"MEMBER_SYNC", FG_PROTO_MEMBER_SYNC, "el_schedule_due_member_sync",
                                 SQL_DUE_MEMBER_SYNC},
    [EL_SCHEDULE_PROJECT_SYNC] = {"PROJECT_SYNC", FG_PROTO_PROJECT_SYNC,
                                  "el_schedule_due_project_sync", SQL_DUE_PROJECT_SYNC},
};

#define SQL_MARK                                                                                   \
    "INSERT INTO sync_time (project_id, category, last_synced)"                                    \
    " SELECT x, $2::text, now() FROM unnest($1::bigint[]) x"                                       \
    " ON CONFLICT (project_id, category) DO UPDATE SET last_synced = excluded.last_synced"

/* A COMMIT_SYNC sent: when, for the requests it answers once completed (migration 0003). Only
 * the latest EL_SCHEDULE_IN_FLIGHT_MAX sends are kept; an older one is taken as lost. */
#define SQL_MARK_SENT                                                                              \
    "UPDATE project SET sync_dispatched_at = now(), sync_in_flight = (sync_in_flight || now())"    \
    "[greatest(1, cardinality(sync_in_flight) + 2 - $2::integer):] WHERE id = ANY($1::bigint[])"

/* What commit-sync is told event-log knows: events on their way out are not known any more. */
#define SQL_LATEST                                                                                 \
    "SELECT c.sha FROM event_commit c JOIN event e ON e.id = c.event_id"                           \
    " WHERE c.project_id = $1::bigint AND e.status NOT IN ('AWAITING_DELETION', 'DELETING')"       \
    " ORDER BY c.event_date DESC, c.event_id DESC LIMIT $2::bigint"

#define SQL_COUNT                                                                                  \
    "SELECT count(*) FROM event_commit c JOIN event e ON e.id = c.event_id"                        \
    " WHERE c.project_id = $1::bigint AND e.status NOT IN ('AWAITING_DELETION', 'DELETING')"

#define SQL_PRUNE                                                                                  \
    "DELETE FROM processed_message WHERE id IN (SELECT m.id FROM processed_message m"              \
    " WHERE m.processed_at < now() - $1::bigint * interval '1 millisecond' LIMIT $2::bigint)"

const char *el_schedule_category(el_schedule_kind kind)
{
    return (unsigned)kind < EL_SCHEDULE_COUNT ? schedules[kind].category : NULL;
}

/* ---- messages ---------------------------------------------------------------------------- */

static int latest(fg_pg_result **out, fg_pg_conn *pg, long long project, int limit)
{
    char id[NUM_MAX], lim[NUM_MAX];
    const char *params[2] = {id, lim};

    snprintf(id, sizeof(id), "%lld", project);
    snprintf(lim, sizeof(lim), "%d", limit);
    return fg_pg_exec_prepared(out, pg, "el_schedule_latest", SQL_LATEST, 2, params);
}

static int set_known(fg_proto_msg *msg, fg_pg_conn *pg, long long project)
{
    fg_pg_result *res = NULL;
    json_object *known = NULL;
    int rc;

    if ((rc = latest(&res, pg, project, FG_PROTO_KNOWN_MAX)) < 0)
        goto done;
    if ((known = json_object_new_array()) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "schedule: out of memory");
        goto done;
    }
    for (size_t row = 0; row < fg_pg_result_rows(res); row++) {
        json_object *sha = json_object_new_string(fg_pg_result_text(res, row, 0));

        if (sha == NULL || json_object_array_add(known, sha) < 0) {
            json_object_put(sha);
            rc = fg_error_set(FG_ENOMEM, "schedule: out of memory");
            goto done;
        }
    }
    rc = fg_proto_msg_set(msg, "known", known);
    known = NULL; /* taken, even on failure */
done:
    json_object_put(known);
    fg_pg_result_free(res);
    return rc;
}

static int set_counts(fg_proto_msg *msg, fg_pg_conn *pg, long long project)
{
    fg_pg_result *count = NULL, *last = NULL;
    char id[NUM_MAX];
    const char *params[1] = {id};
    int64_t n = 0;
    int rc;

    snprintf(id, sizeof(id), "%lld", project);
    if ((rc = fg_pg_exec_prepared(&count, pg, "el_schedule_count", SQL_COUNT, 1, params)) < 0 ||
        (rc = fg_pg_result_int64(&n, count, 0, 0)) < 0 ||
        (rc = fg_proto_msg_set_int(msg, "count", (long long)n)) < 0)
        goto done;
    if (n > 0 && ((rc = latest(&last, pg, project, 1)) < 0 ||
                  (rc = fg_proto_msg_set_string(msg, "latest", fg_pg_result_text(last, 0, 0))) < 0))
        goto done;
    rc = 0;
done:
    fg_pg_result_free(count);
    fg_pg_result_free(last);
    return rc;
}

static int build(el_outbox *ob, fg_pg_conn *pg, el_schedule_kind kind, const fg_pg_result *due,
                 size_t row)
{
    fg_proto_project project;
    fg_proto_msg msg;
    const char *forge = fg_pg_result_text(due, row, 1);
    const char *last_synced = fg_pg_result_text(due, row, 3);
    const char *sent_at = kind == EL_SCHEDULE_COMMIT_SYNC ? fg_pg_result_text(due, row, 4) : NULL;
    int64_t id = 0;
    int rc;

    fg_proto_msg_init(&msg);
    memset(&project, 0, sizeof(project));
    if ((rc = fg_pg_result_int64(&id, due, row, 0)) < 0)
        goto done;
    project.id = (long long)id;
    project.path = fg_pg_result_text(due, row, 2);
    if (forge == NULL || (rc = fg_proto_forge_parse(&project.forge, forge)) < 0) {
        rc = fg_error_set(FG_EINVALID, "project %lld: unknown forge", project.id);
        goto done;
    }
    if ((rc = fg_proto_msg_start(&msg, schedules[kind].proto, &project)) < 0)
        goto done;
    if (kind == EL_SCHEDULE_COMMIT_SYNC &&
        ((rc = set_known(&msg, pg, project.id)) < 0 ||
         (last_synced != NULL &&
          (rc = fg_proto_msg_set_string(&msg, "lastSynced", last_synced)) < 0) ||
         (sent_at != NULL && (rc = fg_proto_msg_set_string(&msg, "sentAt", sent_at)) < 0)))
        goto done;
    if (kind == EL_SCHEDULE_GLOBAL_COMMIT_SYNC && (rc = set_counts(&msg, pg, project.id)) < 0)
        goto done;
    rc = el_outbox_add(ob, &msg);
done:
    fg_proto_msg_dispose(&msg);
    return rc;
}

/* ---- a run ------------------------------------------------------------------------------- */

static int due(fg_pg_result **out, fg_pg_conn *pg, const el_context *ctx, el_schedule_kind kind)
{
    const el_settings *s = &ctx->settings;
    char p[4][NUM_MAX];
    const char *params[4] = {p[0], p[1], p[2], p[3]};
    size_t n;

    switch (kind) {
    case EL_SCHEDULE_COMMIT_SYNC:
        snprintf(p[0], NUM_MAX, "%lld", el_setting(s->commit_sync_active_ms, 3600000));
        snprintf(p[1], NUM_MAX, "%lld", el_setting(s->commit_sync_idle_ms, 86400000));
        snprintf(p[2], NUM_MAX, "%lld", (long long)EL_SCHEDULE_ACTIVE_MS);
        snprintf(p[3], NUM_MAX, "%d", EL_SCHEDULE_BATCH_MAX);
        n = 4;
        break;
    case EL_SCHEDULE_GLOBAL_COMMIT_SYNC:
        snprintf(p[0], NUM_MAX, "%lld", el_setting(s->global_sync_ms, 604800000));
        snprintf(p[1], NUM_MAX, "%d", EL_SCHEDULE_BATCH_MAX);
        n = 2;
        break;
    case EL_SCHEDULE_MEMBER_SYNC:
        snprintf(p[0], NUM_MAX, "%lld", (long long)EL_SCHEDULE_MEMBER_HOT_MS);
        snprintf(p[1], NUM_MAX, "%lld", (long long)EL_SCHEDULE_MEMBER_WARM_MS);
        snprintf(p[2], NUM_MAX, "%lld", (long long)EL_SCHEDULE_MEMBER_COLD_MS);
        snprintf(p[3], NUM_MAX, "%d", EL_SCHEDULE_BATCH_MAX);
        n = 4;
        break;
    default:
        snprintf(p[0], NUM_MAX, "%lld", (long long)EL_SCHEDULE_PROJECT_MS);
        snprintf(p[1], NUM_MAX, "%d", EL_SCHEDULE_BATCH_MAX);
        n = 2;
        break;
    }
    return fg_pg_exec_prepared(out, pg, schedules[kind].name, schedules[kind].sql, n, params);
}

static int mark(fg_pg_conn *pg, el_schedule_kind kind, const fg_pg_result *res)
{
    fg_buf ids;
    const char *params[2];
    int rc;

    fg_buf_init(&ids, IDS_TEXT_MAX);
    rc = fg_buf_putc(&ids, '{');
    for (size_t row = 0; rc == 0 && row < fg_pg_result_rows(res); row++)
        rc = fg_buf_printf(&ids, row > 0 ? ",%s" : "%s", fg_pg_result_text(res, row, 0));
    if (rc == 0 && (rc = fg_buf_putc(&ids, '}')) == 0) {
        params[0] = ids.ptr;
        params[1] = schedules[kind].category;
        rc = fg_pg_exec_prepared(NULL, pg, "el_schedule_mark", SQL_MARK, 2, params);
    }
    if (rc == 0 && kind == EL_SCHEDULE_COMMIT_SYNC) {
        char max[NUM_MAX];

        snprintf(max, sizeof(max), "%d", EL_SCHEDULE_IN_FLIGHT_MAX);
        params[1] = max;
        rc = fg_pg_exec_prepared(NULL, pg, "el_schedule_mark_sent", SQL_MARK_SENT, 2, params);
    }
    fg_buf_dispose(&ids);
    return rc;
}

int el_schedule_run(size_t *out, fg_pg_conn *pg, fg_amqp *amqp, const el_context *ctx,
                    el_schedule_kind kind)
{
    fg_pg_result *res = NULL;
    el_outbox ob;
    bool in_tx = false, locked = false;
    int rc = FG_ERROR;

    *out = 0;
    el_outbox_init(&ob);
    if ((unsigned)kind >= EL_SCHEDULE_COUNT)
        return fg_error_set(FG_EINVALID, "schedule: no such kind %d", (int)kind);
    if ((rc = fg_pg_begin(pg)) < 0)
        goto done;
    in_tx = true;
    /* one process runs a category at a time, so two never send the same project's sync */
    if ((rc = el_dispatch_try_lock(&locked, pg, LOCK_OBJECT_BASE + (int)kind)) < 0 || !locked ||
        (rc = due(&res, pg, ctx, kind)) < 0 || fg_pg_result_rows(res) == 0)
        goto done;
    for (size_t row = 0; row < fg_pg_result_rows(res); row++) {
        /* a project no message can name is skipped (and said so) but marked: it must not come
         * back every second */
        if ((rc = build(&ob, pg, kind, res, row)) == FG_EINVALID)
            fg_log_error("schedule %s: %s", schedules[kind].category, fg_error_last());
        else if (rc < 0)
            goto done;
    }
    if ((rc = mark(pg, kind, res)) < 0 || (rc = el_outbox_publish(&ob, amqp)) < 0)
        goto done;
    in_tx = false;
    if ((rc = fg_pg_commit(pg)) < 0)
        goto done;
    *out = ob.n;
    if (ob.n > 0)
        fg_log_emit(FG_LOG_DEBUG,
                    FG_LOG_FIELDS(FG_LOG_STR("category", schedules[kind].category),
                                  FG_LOG_INT("projects", (long long)ob.n)),
                    "scheduled %zu %s", ob.n, schedules[kind].category);
    rc = 0;
done:
    if (in_tx && fg_pg_rollback(pg) < 0)
        fg_log_warn("schedule: rollback: %s", fg_error_last());
    fg_pg_result_free(res);
    el_outbox_dispose(&ob);
    return rc;
}

int el_schedule_prune(size_t *out, fg_pg_conn *pg, const el_context *ctx)
{
    char ttl[NUM_MAX], chunk[NUM_MAX];
    const char *params[2] = {ttl, chunk};
    int rc = 0;

    *out = 0;
    snprintf(ttl, sizeof(ttl), "%lld", el_setting(ctx->settings.processed_ttl_ms, 604800000));
    snprintf(chunk, sizeof(chunk), "%d", EL_SCHEDULE_PRUNE_CHUNK);
    for (int i = 0; i < EL_SCHEDULE_PRUNE_ROUNDS; i++) {
        fg_pg_result *res = NULL;
        uint64_t n;

        if ((rc = fg_pg_exec_prepared(&res, pg, "el_schedule_prune", SQL_PRUNE, 2, params)) < 0)
            return rc;
        n = fg_pg_result_affected(res);
        fg_pg_result_free(res);
        *out += (size_t)n;
        if (n < EL_SCHEDULE_PRUNE_CHUNK)
            break;
    }
    return 0;
}

int el_schedule_sweep_payloads(size_t *out, fg_pg_conn *pg)
{
    char chunk[NUM_MAX];
    const char *params[1] = {chunk};
    fg_pg_result *res = NULL;
    int rc;

    *out = 0;
    snprintf(chunk, sizeof(chunk), "%d", EL_SCHEDULE_SWEEP_CHUNK);
    /* fg_pg_exec, not prepared: a cached generic plan made while the table was small would scan
     * it whole once it has grown */
    if ((rc = fg_pg_exec(&res, pg,
                         "DELETE FROM payload WHERE id IN (SELECT p.id FROM payload p"
                         " WHERE NOT EXISTS (SELECT 1 FROM event e WHERE e.payload_id = p.id)"
                         " LIMIT $1::bigint)",
                         1, params)) < 0)
        return rc;
    *out = (size_t)fg_pg_result_affected(res);
    fg_pg_result_free(res);
    return 0;
}
