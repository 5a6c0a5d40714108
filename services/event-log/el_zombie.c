/*
 * Zombie chasing (see el_zombie.h). The queries name the processing status as a literal so the
 * planner uses the partial index event_processing (status, execution_date): the scan touches
 * only what is processing, never the finished events.
 */
#include "el_zombie.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg/log.h"

#define NUM_MAX 24

#define SQL_ZOMBIES(STATUS)                                                                        \
    "SELECT z.id, z.project_id FROM (SELECT e.id, e.project_id FROM event e"                       \
    " WHERE e.status = '" STATUS "'"                                                               \
    " AND e.execution_date < now() - $1::bigint * interval '1 millisecond'"                        \
    " ORDER BY e.execution_date LIMIT $2::bigint FOR UPDATE SKIP LOCKED) z"                        \
    " ORDER BY z.project_id, z.id"

static const char *const zombie_sql[EL_DISPATCH_KIND_COUNT] = {
    SQL_ZOMBIES("GENERATING_TRIPLES"),
    SQL_ZOMBIES("TRANSFORMING_TRIPLES"),
    SQL_ZOMBIES("DELETING"),
};

static const char *const zombie_names[EL_DISPATCH_KIND_COUNT] = {
    "el_zombie_gen",
    "el_zombie_trans",
    "el_zombie_clean",
};

static long long timeout_of(const el_context *ctx, el_dispatch_kind kind)
{
    switch (kind) {
    case EL_DISPATCH_GENERATION:
        return el_setting(ctx->settings.generation_timeout_ms, 600000);
    case EL_DISPATCH_TRANSFORMATION:
        return el_setting(ctx->settings.transformation_timeout_ms, 600000);
    default:
        return el_setting(ctx->settings.deletion_timeout_ms, 600000);
    }
}

/* Moves ids (all of `project`) back; adds what moved to *chased. */
static int send_back(size_t *chased, fg_pg_conn *pg, const el_context *ctx, el_dispatch_kind kind,
                     long long project, const el_event_id *ids, size_t n, const char *why)
{
    el_change c;
    el_change_result r;
    int rc;

    memset(&c, 0, sizeof(c));
    c.project.value = project;
    c.cause = EL_CAUSE_ZOMBIE;
    c.to = el_status_before_processing(el_dispatch_processing(kind));
    c.ids = ids;
    c.nids = n;
    c.message = why;
    if ((rc = el_change_apply(&r, pg, &c)) < 0)
        return rc;
    fg_metric_add(ctx->m.transitions, (double)r.applied);
    fg_metric_add(ctx->m.zombies, (double)r.applied);
    fg_metric_add(ctx->m.illegal, (double)r.illegal);
    *chased += r.applied;
    return 0;
}

static int chase_rows(size_t *chased, fg_pg_conn *pg, const el_context *ctx, el_dispatch_kind kind,
                      const fg_pg_result *res, const char *why)
{
    size_t rows = fg_pg_result_rows(res), n = 0;
    el_event_id *ids = calloc(rows > 0 ? rows : 1, sizeof(*ids));
    long long project = 0;
    int rc = 0;

    if (ids == NULL)
        return fg_error_set(FG_ENOMEM, "zombie: out of memory");
    for (size_t row = 0; row <= rows && rc == 0; row++) {
        int64_t id = 0, pid = 0;

        if (row < rows && ((rc = fg_pg_result_int64(&id, res, row, 0)) < 0 ||
                           (rc = fg_pg_result_int64(&pid, res, row, 1)) < 0))
            break;
        /* rows come ordered by project: one change per project */
        if (n > 0 && (row == rows || pid != project)) {
            rc = send_back(chased, pg, ctx, kind, project, ids, n, why);
            n = 0;
        }
        if (row < rows) {
            project = (long long)pid;
            ids[n++].value = (long long)id;
        }
    }
    free(ids);
    return rc;
}

static int chase_kind(size_t *chased, fg_pg_conn *pg, const el_context *ctx, el_dispatch_kind kind,
                      bool consumer_rule)
{
    fg_pg_result *res = NULL;
    el_credit credit;
    char older[NUM_MAX], limit[NUM_MAX], why[160];
    const char *params[2] = {older, limit};
    long long timeout = timeout_of(ctx, kind);
    bool in_tx = false, gone;
    int rc;

    *chased = 0;
    if ((rc = fg_pg_begin(pg)) < 0)
        goto done;
    in_tx = true;
    if ((rc = el_dispatch_credit(&credit, pg, ctx, kind)) < 0)
        goto done;
    if (credit.processing == 0) /* the usual case: nothing is processing */
        goto done;
    /* without a live consumer nobody will answer: everything processing goes back at once */
    gone = consumer_rule && credit.consumers == 0;
    if (gone)
        snprintf(why, sizeof(why), "zombie: no live consumer of %s", el_dispatch_category(kind));
    else
        snprintf(why, sizeof(why), "zombie: %s for longer than %lld ms",
                 el_status_name(el_dispatch_processing(kind)), timeout);
    snprintf(older, sizeof(older), "%lld", gone ? 0 : timeout);
    snprintf(limit, sizeof(limit), "%d", EL_ZOMBIE_BATCH_MAX);
    if ((rc = fg_pg_exec_prepared(&res, pg, zombie_names[kind], zombie_sql[kind], 2, params)) < 0 ||
        (rc = chase_rows(chased, pg, ctx, kind, res, why)) < 0)
        goto done;
    in_tx = false;
    if ((rc = fg_pg_commit(pg)) < 0)
        goto done;
    if (*chased > 0)
        fg_log_emit(FG_LOG_WARN,
                    FG_LOG_FIELDS(FG_LOG_STR("category", el_dispatch_category(kind)),
                                  FG_LOG_INT("events", (long long)*chased)),
                    "%s: %zu events back to %s", why, *chased,
                    el_status_name(el_status_before_processing(el_dispatch_processing(kind))));
    rc = 0;
done:
    if (in_tx && fg_pg_rollback(pg) < 0)
        fg_log_warn("zombie: rollback: %s", fg_error_last());
    if (rc < 0)
        *chased = 0;
    fg_pg_result_free(res);
    return rc;
}

int el_zombie_chase(el_zombie_result *out, fg_pg_conn *pg, const el_context *ctx,
                    bool consumer_rule)
{
    int first = 0;

    memset(out, 0, sizeof(*out));
    for (int k = 0; k < EL_DISPATCH_KIND_COUNT; k++) {
        int rc = chase_kind(&out->chased[k], pg, ctx, (el_dispatch_kind)k, consumer_rule);

        if (rc < 0 && first == 0)
            first = rc;
    }
    return first;
}
