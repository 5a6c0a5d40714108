/*
 * Rebuild from the status log (see el_rebuild.h). The log's last row per event is its status
 * (to_status NULL: deleted). One REPEATABLE READ transaction reads the counts, the first
 * differences and, when applying, corrects the rows, all from one snapshot: a change committed
 * meanwhile by el_change_apply makes the fix fail with a serialization failure (FG_ECONFLICT,
 * retry) instead of overwriting it.
 */
#include "el_rebuild.h"

#include <stdio.h>
#include <string.h>

#include "fg/log.h"

#define EL_REBUILD_WHY_MAX 512

/* The log's verdict per event (the newest row wins), and every event where table and log
 * disagree, with the kind of disagreement. */
#define SQL_DIFF                                                                                   \
    "WITH last AS ("                                                                               \
    " SELECT DISTINCT ON (event_id) event_id, project_id, to_status FROM status_log"               \
    " ORDER BY event_id DESC, id DESC), "                                                          \
    "diff AS ("                                                                                    \
    " SELECT coalesce(e.id, l.event_id) AS id, coalesce(e.project_id, l.project_id) AS project,"   \
    " e.status::text AS live, l.to_status::text AS logged,"                                        \
    " CASE WHEN e.id IS NULL THEN 'vanished' WHEN l.event_id IS NULL THEN 'unlogged'"              \
    " WHEN l.to_status IS NULL THEN 'not_deleted' ELSE 'mismatched' END AS kind"                   \
    " FROM event e FULL JOIN last l ON l.event_id = e.id"                                          \
    " WHERE (e.id IS NULL AND l.to_status IS NOT NULL)"                                            \
    " OR (e.id IS NOT NULL AND (l.event_id IS NULL OR e.status IS DISTINCT FROM l.to_status))) "

static const char counts_sql[] =
    SQL_DIFF "SELECT (SELECT count(*) FROM event), (SELECT count(*) FROM last),"
             " count(*) FILTER (WHERE kind = 'mismatched'),"
             " count(*) FILTER (WHERE kind = 'not_deleted'),"
             " count(*) FILTER (WHERE kind = 'unlogged'),"
             " count(*) FILTER (WHERE kind = 'vanished') FROM diff";

static const char list_sql[] =
    SQL_DIFF "SELECT id, project, live, logged, kind FROM diff ORDER BY id LIMIT $1";

/* The log's status wins; the rows it says are deleted go (their bodies with them). */
static const char apply_sql[] =
    "WITH last AS ("
    " SELECT DISTINCT ON (event_id) event_id, to_status FROM status_log"
    " ORDER BY event_id DESC, id DESC), "
    "fixed AS (UPDATE event e SET status = l.to_status FROM last l"
    " WHERE l.event_id = e.id AND l.to_status IS NOT NULL AND e.status <> l.to_status"
    " RETURNING e.id), "
    "deleted AS (DELETE FROM event e USING last l"
    " WHERE l.event_id = e.id AND l.to_status IS NULL RETURNING e.id) "
    "SELECT (SELECT count(*) FROM fixed) + (SELECT count(*) FROM deleted)";

static int read_size(size_t *out, const fg_pg_result *res, size_t row, size_t col)
{
    int64_t v = 0;
    int rc = fg_pg_result_int64(&v, res, row, col);

    *out = rc == 0 && v > 0 ? (size_t)v : 0;
    return rc;
}

static int read_counts(el_rebuild_report *out, fg_pg_conn *pg)
{
    fg_pg_result *res = NULL;
    int rc;

    if ((rc = fg_pg_exec(&res, pg, counts_sql, 0, NULL)) < 0)
        goto done;
    if ((rc = read_size(&out->events, res, 0, 0)) < 0 ||
        (rc = read_size(&out->logged, res, 0, 1)) < 0 ||
        (rc = read_size(&out->mismatched, res, 0, 2)) < 0 ||
        (rc = read_size(&out->not_deleted, res, 0, 3)) < 0 ||
        (rc = read_size(&out->unlogged, res, 0, 4)) < 0 ||
        (rc = read_size(&out->vanished, res, 0, 5)) < 0)
        goto done;
    out->differences = out->mismatched + out->not_deleted + out->unlogged + out->vanished;
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

static el_status status_of(const char *name, el_status absent)
{
    el_status s = absent;

    if (name != NULL && !el_status_parse(&s, name))
        s = EL_STATUS_NONE;
    return s;
}

static int read_diffs(el_rebuild_report *out, fg_pg_conn *pg)
{
    char limit[16];
    const char *params[1] = {limit};
    fg_pg_result *res = NULL;
    int rc;

    snprintf(limit, sizeof(limit), "%d", EL_REBUILD_DIFFS_MAX);
    if ((rc = fg_pg_exec(&res, pg, list_sql, 1, params)) < 0)
        goto done;
    for (size_t i = 0; i < fg_pg_result_rows(res) && i < EL_REBUILD_DIFFS_MAX; i++) {
        el_rebuild_diff *d = &out->diffs[i];
        const char *kind = fg_pg_result_text(res, i, 4);
        int64_t id = 0, project = 0;

        if ((rc = fg_pg_result_int64(&id, res, i, 0)) < 0 ||
            (rc = fg_pg_result_int64(&project, res, i, 1)) < 0)
            goto done;
        d->event.value = (long long)id;
        d->project.value = (long long)project;
        d->live = status_of(fg_pg_result_text(res, i, 2), EL_STATUS_NONE);
        /* no log row at all is NONE; a log row without a status says deleted */
        d->logged = kind != NULL && strcmp(kind, "unlogged") == 0
                        ? EL_STATUS_NONE
                        : status_of(fg_pg_result_text(res, i, 3), EL_STATUS_DELETED);
        out->ndiffs = i + 1;
    }
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

static int fix(el_rebuild_report *out, fg_pg_conn *pg)
{
    fg_pg_result *res = NULL;
    int rc;

    if ((rc = fg_pg_exec(&res, pg, apply_sql, 0, NULL)) == 0)
        rc = read_size(&out->fixed, res, 0, 0);
    fg_pg_result_free(res);
    return rc;
}

static void log_differences(const el_rebuild_report *r)
{
    if (r->differences == 0)
        return;
    fg_log_emit(FG_LOG_WARN,
                FG_LOG_FIELDS(FG_LOG_INT("mismatched", (long long)r->mismatched),
                              FG_LOG_INT("not_deleted", (long long)r->not_deleted),
                              FG_LOG_INT("unlogged", (long long)r->unlogged),
                              FG_LOG_INT("vanished", (long long)r->vanished),
                              FG_LOG_INT("fixed", (long long)r->fixed)),
                "rebuild: %zu events differ from the status log", r->differences);
}

int el_rebuild(el_rebuild_report *out, fg_pg_conn *pg, bool apply)
{
    char why[EL_REBUILD_WHY_MAX];
    bool open = false;
    int rc = FG_ERROR;

    if (out == NULL || pg == NULL)
        return fg_error_set(FG_EINVALID, "el_rebuild: NULL argument");
    memset(out, 0, sizeof(*out));
    if ((rc = fg_pg_begin(pg)) < 0)
        goto done;
    open = true;
    if ((rc = fg_pg_exec(NULL, pg, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ", 0, NULL)) <
            0 ||
        (rc = read_counts(out, pg)) < 0 || (rc = read_diffs(out, pg)) < 0)
        goto done;
    if (apply && out->mismatched + out->not_deleted > 0 && (rc = fix(out, pg)) < 0)
        goto done;
    open = false;
    if ((rc = fg_pg_commit(pg)) < 0)
        goto done;
    log_differences(out);
    rc = 0;
done:
    if (rc < 0) {
        snprintf(why, sizeof(why), "%s", fg_error_last());
        if (open && fg_pg_rollback(pg) < 0)
            fg_log_warn("el_rebuild: rollback failed: %s", fg_error_last());
        memset(out, 0, sizeof(*out));
        rc = fg_error_set(rc, "el_rebuild: %s", why);
    }
    return rc;
}
