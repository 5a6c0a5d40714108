/*
 * CREATION (see el_creation.h): the commits travel as three parallel arrays (sha, committer time,
 * body) in ONE statement that inserts the events with ON CONFLICT DO NOTHING and, from what it
 * inserted, their bodies, their status_log rows and the project's latest_event_date. A redelivered
 * or repeated batch therefore inserts nothing, without a per-commit round trip.
 */
#include "el_creation.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "fg/buf.h"
#include "fg/log.h"

#define EL_CREATION_BODY_BYTES_MAX ((size_t)FG_PROTO_MESSAGE_MAX) /* one serialised body */
#define EL_CREATION_NUM_MAX        24u
#define EL_CREATION_BULK           100u /* commits in one CREATION that make it a bulk one */

/* $1 project, $2 shas (text[]), $3 committer times (timestamptz[]), $4 bodies (text[]). A sha
 * twice in one message is stored once (DISTINCT ON), so its body is inserted once. The commit row
 * (event_commit) carries the unique (project, sha) key, so it is inserted first, with an id taken
 * from event's sequence; the event and its body follow for the commits that were new. (The
 * foreign key from event_commit to event is checked at the end of the statement.) An id drawn for
 * a commit that was already known is simply skipped. */
static const char creation_sql[] =
    "WITH input AS ("
    " SELECT nextval('event_id_seq') AS id, d.sha, d.event_date, d.body FROM ("
    " SELECT DISTINCT ON (t.sha) t.sha, t.event_date, t.body"
    " FROM unnest($2::text[], $3::timestamptz[], $4::text[]) AS t(sha, event_date, body)"
    " WHERE EXISTS (SELECT 1 FROM project WHERE id = $1) ORDER BY t.sha) d), "
    "ins AS ("
    " INSERT INTO event_commit (event_id, project_id, sha, event_date)"
    " SELECT i.id, $1, i.sha, i.event_date FROM input i"
    " ON CONFLICT (project_id, sha) DO NOTHING RETURNING event_id AS id, event_date), "
    "events AS ("
    " INSERT INTO event (id, project_id, status) SELECT ins.id, $1, 'NEW' FROM ins), "
    "bodies AS ("
    " INSERT INTO event_body (event_id, body) SELECT ins.id, i.body FROM ins JOIN input i"
    " ON i.id = ins.id), "
    "logged AS ("
    " INSERT INTO status_log (event_id, project_id, from_status, to_status, cause)"
    " SELECT ins.id, $1, NULL, 'NEW', 'CREATION' FROM ins), "
    "latest AS ("
    " UPDATE project SET latest_event_date = greatest(latest_event_date,"
    " (SELECT max(event_date) FROM ins)) WHERE id = $1 AND EXISTS (SELECT 1 FROM ins)) "
    "SELECT (SELECT count(*) FROM ins), (SELECT count(*) FROM input),"
    " EXISTS (SELECT 1 FROM project WHERE id = $1)";

/* $1 project. No row: no such project. The COMMIT_SYNC row the schedule wrote when it sent this
 * sync moves to now; a row that is gone stays gone: a request (POST /projects/{id}/sync,
 * COMMIT_SYNC_REQUEST) deleted it while the sync ran, and re-creating it here would swallow the
 * sync asked for until the next cadence. */
static const char sync_complete_sql[] =
    "WITH p AS (UPDATE project SET first_synced_at = coalesce(first_synced_at, now())"
    " WHERE id = $1 RETURNING id), "
    "s AS (UPDATE sync_time t SET last_synced = now() FROM p"
    " WHERE t.project_id = p.id AND t.category = 'COMMIT_SYNC') "
    "SELECT id FROM p";

/* $1 project. The planner's estimate of the project's events is on the first line of the plan
 * ("... rows=N ..."). */
static const char estimate_sql[] =
    "EXPLAIN SELECT 1 FROM event_commit WHERE project_id = $1::bigint";

/* $1 project, $2 limit: the project's events, counted up to the limit. */
static const char count_sql[] =
    "SELECT count(*) FROM (SELECT 1 FROM event_commit WHERE project_id = $1::bigint"
    " LIMIT $2::bigint) c";

/* ---- array literals --------------------------------------------------------------------- */

/* One quoted element of a PostgreSQL array literal: backslash and double quote escaped. */
static int put_element(fg_buf *out, const char *s, size_t len)
{
    int rc;

    if ((rc = fg_buf_putc(out, out->len > 0 ? ',' : '{')) < 0 || (rc = fg_buf_putc(out, '"')) < 0)
        return rc;
    for (size_t i = 0; i < len; i++) {
        if ((s[i] == '"' || s[i] == '\\') && (rc = fg_buf_putc(out, '\\')) < 0)
            return rc;
        if ((rc = fg_buf_putc(out, s[i])) < 0)
            return rc;
    }
    return fg_buf_putc(out, '"');
}

static int close_array(fg_buf *out)
{
    return out->len == 0 ? fg_buf_puts(out, "{}") : fg_buf_putc(out, '}');
}

static const char *member_string(struct json_object *obj, const char *a, const char *b)
{
    struct json_object *v = NULL;

    if (!json_object_object_get_ex(obj, a, &v))
        return NULL;
    if (b != NULL && !json_object_object_get_ex(v, b, &v))
        return NULL;
    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

typedef struct {
    fg_buf shas, dates, bodies, one;
} arrays;

static void arrays_init(arrays *a)
{
    fg_buf_init(&a->shas, EL_CREATION_ARRAY_MAX);
    fg_buf_init(&a->dates, EL_CREATION_ARRAY_MAX);
    fg_buf_init(&a->bodies, EL_CREATION_ARRAY_MAX);
    fg_buf_init(&a->one, EL_CREATION_BODY_BYTES_MAX);
}

static void arrays_dispose(arrays *a)
{
    fg_buf_dispose(&a->shas);
    fg_buf_dispose(&a->dates);
    fg_buf_dispose(&a->bodies);
    fg_buf_dispose(&a->one);
}

/* The commits of msg as the three array parameters. The body is stored as commit-sync sent it
 * (compact JSON); the event date is the committer's time, with its own offset. */
static int build_arrays(arrays *a, const fg_proto_msg *msg, size_t n)
{
    int rc;

    for (size_t i = 0; i < n; i++) {
        struct json_object *body = fg_proto_msg_commit_body(msg, i);
        const char *sha = body ? member_string(body, "sha", NULL) : NULL;
        const char *at = body ? member_string(body, "committer", "at") : NULL;

        if (sha == NULL || at == NULL)
            return fg_error_set(FG_EINVALID, "CREATION commits[%zu]: no sha or committer time", i);
        fg_buf_clear(&a->one);
        if ((rc = fg_proto_json_write(&a->one, body)) < 0 ||
            (rc = put_element(&a->shas, sha, strlen(sha))) < 0 ||
            (rc = put_element(&a->dates, at, strlen(at))) < 0 ||
            (rc = put_element(&a->bodies, a->one.ptr, a->one.len)) < 0)
            return rc;
    }
    if ((rc = close_array(&a->shas)) < 0 || (rc = close_array(&a->dates)) < 0 ||
        (rc = close_array(&a->bodies)) < 0)
        return rc;
    return 0;
}

/* ---- statements ------------------------------------------------------------------------- */

static int insert_commits(el_creation_result *out, fg_pg_conn *pg, const char *project,
                          const arrays *a)
{
    const char *params[4] = {project, a->shas.ptr, a->dates.ptr, a->bodies.ptr};
    fg_pg_result *res = NULL;
    int64_t created = 0, named = 0;
    bool exists = false;
    int rc;

    if ((rc = fg_pg_exec_prepared(&res, pg, "el_creation", creation_sql, 4, params)) < 0)
        goto done;
    if ((rc = fg_pg_result_int64(&created, res, 0, 0)) < 0 ||
        (rc = fg_pg_result_int64(&named, res, 0, 1)) < 0 ||
        (rc = fg_pg_result_bool(&exists, res, 0, 2)) < 0)
        goto done;
    out->created = (size_t)created;
    out->existing = named > created ? (size_t)(named - created) : 0;
    out->project_missing = !exists;
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

/* A project's first sync inserts its events in bulk, faster than autovacuum analyzes (a minute
 * apart at best, and never when the project is small beside the table): meanwhile the planner
 * takes the new project for nearly empty, and the status changes by sha (el_change) plan an index
 * scan on project_id alone that filters the batch's shas over every event of the project.
 * Measured on a new project of 20,000 commits beside 160,000 older events (before migration 0005,
 * when the names were in event): 300-760 ms per change of 100 events (3-11 s per change of
 * 1000), 27 s of the 51 s the project took; 5-10 ms each once the table is analyzed. So after a
 * bulk creation, when the project has twice the events the planner believes (plus
 * EL_CREATION_BULK x 10), event_commit (where names are looked up now) and event are analyzed,
 * 50-200 ms each time:
 * three times for that project, once for a 100,000-commit project alone in the table (the
 * planner scales the analyzed row count by the table's current size, so a project's known share
 * keeps its estimate right). The check costs a plan and a count capped at twice the estimate; a
 * push of fewer than EL_CREATION_BULK commits skips it. */
static int refresh_statistics(fg_pg_conn *pg, const char *project)
{
    char limit[EL_CREATION_NUM_MAX];
    const char *params[2] = {project, limit};
    fg_pg_result *res = NULL;
    const char *plan, *rows;
    int64_t estimate = 0, counted = 0, cap;
    int rc;

    if ((rc = fg_pg_exec(&res, pg, estimate_sql, 1, params)) < 0)
        goto done;
    plan = fg_pg_result_rows(res) > 0 ? fg_pg_result_text(res, 0, 0) : NULL;
    if (plan != NULL && (rows = strstr(plan, " rows=")) != NULL)
        for (rows += 6; *rows >= '0' && *rows <= '9' && estimate < INT64_MAX / 20; rows++)
            estimate = estimate * 10 + (*rows - '0');
    fg_pg_result_free(res);
    res = NULL;
    cap = 2 * (estimate > 0 ? estimate : 0) + (int64_t)EL_CREATION_BULK * 10;
    snprintf(limit, sizeof(limit), "%lld", (long long)cap);
    if ((rc = fg_pg_exec_prepared(&res, pg, "el_creation_count", count_sql, 2, params)) < 0 ||
        (rc = fg_pg_result_int64(&counted, res, 0, 0)) < 0)
        goto done;
    if (counted >= cap && (rc = fg_pg_exec(NULL, pg, "ANALYZE event_commit, event", 0, NULL)) < 0)
        goto done;
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

static int complete_sync(el_creation_result *out, fg_pg_conn *pg, const char *project)
{
    const char *params[1] = {project};
    fg_pg_result *res = NULL;
    int rc;

    if ((rc = fg_pg_exec_prepared(&res, pg, "el_creation_sync_complete", sync_complete_sql, 1,
                                  params)) < 0)
        goto done;
    out->project_missing = fg_pg_result_rows(res) == 0;
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

/* ---- public ----------------------------------------------------------------------------- */

int el_creation_apply(el_creation_result *out, fg_pg_conn *pg, const fg_proto_msg *msg)
{
    arrays a;
    char project[EL_CREATION_NUM_MAX];
    size_t n;
    int rc = FG_ERROR;

    arrays_init(&a);
    if (out == NULL || pg == NULL || msg == NULL) {
        rc = fg_error_set(FG_EINVALID, "el_creation: NULL argument");
        goto done;
    }
    memset(out, 0, sizeof(*out));
    if (msg->category != FG_PROTO_CREATION || !msg->has_project || msg->project.id <= 0) {
        rc = fg_error_set(FG_EINVALID, "el_creation: not a CREATION message with a project");
        goto done;
    }
    /* the transition table is the authority on creation too */
    if (el_transition_check(EL_STATUS_NONE, EL_STATUS_NEW, EL_CAUSE_CREATION) != EL_APPLY) {
        rc = fg_error_set(FG_ERROR, "el_creation: the transition table forbids creation");
        goto done;
    }
    snprintf(project, sizeof(project), "%lld", msg->project.id);
    n = fg_proto_msg_count(msg, "commits");
    if (n > 0 &&
        ((rc = build_arrays(&a, msg, n)) < 0 || (rc = insert_commits(out, pg, project, &a)) < 0))
        goto done;
    if (out->created >= EL_CREATION_BULK && (rc = refresh_statistics(pg, project)) < 0)
        goto done;
    if (!out->project_missing && fg_proto_msg_get_bool(msg, "syncComplete") &&
        (rc = complete_sync(out, pg, project)) < 0)
        goto done;
    rc = 0;
done:
    if (rc < 0 && out != NULL)
        memset(out, 0, sizeof(*out));
    arrays_dispose(&a);
    return rc;
}
