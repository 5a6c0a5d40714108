/*
 * Events for the API (see el_events.h). Listings are keyset-paginated on the event id (the
 * primary key), so a page costs the same on the first and on the ten-thousandth call; the
 * listing's SQL is assembled from fixed fragments for the filters present (never with values in
 * it), so each combination gets its own plan instead of a generic one full of "IS NULL OR".
 */
#include "el_events.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EL_EVENTS_NUM_MAX  24                                 /* a long long in decimal */
#define EL_EVENTS_SQL_MAX  2048                               /* the assembled listing statement */
#define EL_EVENTS_LIST_MAX (EL_EVENTS_RETRY_IDS_MAX * 22 + 8) /* "{id,id,...}" */

#define EL_EVENTS_STR_(x) #x
#define EL_EVENTS_STR(x)  EL_EVENTS_STR_(x)

#define SQL_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* The columns put_event_fields reads, in this order. An event's sha and dates are in
 * event_commit, its state in event (migration 0005); listings walk event_commit's keys. */
#define SQL_EVENT_TIMES                                                                            \
    SQL_TIME("c.event_date") ", " SQL_TIME("c.created_at") ", " SQL_TIME("e.execution_date")
#define SQL_EVENT_COLUMNS                                                                          \
    "c.event_id, c.project_id, p.forge, p.path, c.sha, e.status::text, " SQL_EVENT_TIMES           \
    ", e.attempts, e.message"
#define COL_BODY_AFTER 11 /* the first column after SQL_EVENT_COLUMNS */

#define SQL_EVENT_FROM                                                                             \
    " FROM event_commit c JOIN event e ON e.id = c.event_id JOIN project p ON p.id = c.project_id"

/* ---- times ------------------------------------------------------------------------------ */

static bool digits(const char *s, size_t n, int min, int max)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    return v >= min && v <= max;
}

/* The zone of a time: Z, +hh:mm or -hh:mm. */
static bool zone_valid(const char *z)
{
    if (z[0] == 'Z' || z[0] == 'z')
        return z[1] == '\0';
    return (z[0] == '+' || z[0] == '-') && digits(z + 1, 2, 0, 23) && z[3] == ':' &&
           digits(z + 4, 2, 0, 59) && z[6] == '\0';
}

/* Checks `text` (see el_events_filter.since) and writes the form PostgreSQL reads the same way
 * whatever the session's time zone: a plain date becomes midnight UTC. */
static bool time_normalise(char out[EL_EVENTS_TIME_TEXT_MAX], const char *text)
{
    size_t len = strlen(text);
    const char *t = text + 10, *z;

    if (len >= EL_EVENTS_TIME_TEXT_MAX || len < 10 || !digits(text, 4, 1, 9999) || text[4] != '-' ||
        !digits(text + 5, 2, 1, 12) || text[7] != '-' || !digits(text + 8, 2, 1, 31))
        return false;
    if (len == 10) {
        snprintf(out, EL_EVENTS_TIME_TEXT_MAX, "%sT00:00:00Z", text);
        return true;
    }
    if ((*t != 'T' && *t != 't' && *t != ' ') || !digits(t + 1, 2, 0, 23) || t[3] != ':' ||
        !digits(t + 4, 2, 0, 59) || t[6] != ':' || !digits(t + 7, 2, 0, 60))
        return false;
    z = t + 9;
    if (*z == '.') {
        do
            z++;
        while (*z >= '0' && *z <= '9');
        if (z == t + 10)
            return false;
    }
    if (!zone_valid(z))
        return false;
    snprintf(out, EL_EVENTS_TIME_TEXT_MAX, "%s", text);
    return true;
}

/* Every other value is checked before it is bound, so bad data (class 22) means a `since` of
 * the right shape that is no real time (February 30th). */
static int since_checked(int rc, const char *since)
{
    if (rc == FG_EINVALID && since != NULL)
        return fg_error_set(FG_EINVALID, "since: %.64s is not a real time", since);
    return rc;
}

/* ---- JSON ------------------------------------------------------------------------------- */

static int put_string_or_null(fg_buf *b, const char *s)
{
    int rc;

    if (s == NULL)
        return fg_buf_puts(b, "null");
    if ((rc = fg_buf_putc(b, '"')) < 0 || (rc = fg_buf_put_json_string(b, s, strlen(s))) < 0)
        return rc;
    return fg_buf_putc(b, '"');
}

static int put_field(fg_buf *b, const char *name, const char *value)
{
    int rc;

    if ((rc = fg_buf_printf(b, ",\"%s\":", name)) < 0)
        return rc;
    return put_string_or_null(b, value);
}

/* The listing's fields of row `row` (SQL_EVENT_COLUMNS), without the braces. Numbers come from
 * bigint and integer columns, so their text is already valid JSON. */
static int put_event_fields(fg_buf *b, const fg_pg_result *res, size_t row)
{
    const char *id = fg_pg_result_text(res, row, 0);
    const char *project = fg_pg_result_text(res, row, 1);
    const char *attempts = fg_pg_result_text(res, row, 9);
    int rc;

    if (id == NULL || project == NULL || attempts == NULL)
        return fg_error_set(FG_ERROR, "unexpected event row from the database");
    if ((rc = fg_buf_printf(b, "\"id\":%s,\"project\":{\"id\":%s", id, project)) < 0 ||
        (rc = put_field(b, "forge", fg_pg_result_text(res, row, 2))) < 0 ||
        (rc = put_field(b, "path", fg_pg_result_text(res, row, 3))) < 0 ||
        (rc = fg_buf_putc(b, '}')) < 0 ||
        (rc = put_field(b, "sha", fg_pg_result_text(res, row, 4))) < 0 ||
        (rc = put_field(b, "status", fg_pg_result_text(res, row, 5))) < 0 ||
        (rc = put_field(b, "date", fg_pg_result_text(res, row, 6))) < 0 ||
        (rc = put_field(b, "createdAt", fg_pg_result_text(res, row, 7))) < 0 ||
        (rc = put_field(b, "executionDate", fg_pg_result_text(res, row, 8))) < 0 ||
        (rc = fg_buf_printf(b, ",\"attempts\":%s", attempts)) < 0)
        return rc;
    return put_field(b, "message", fg_pg_result_text(res, row, 10));
}

/* The commit body is stored as the JSON text commit-sync sent (validated against its schema on
 * the way in), so it is embedded as it is rather than parsed and printed again. */
static int put_body(fg_buf *b, const fg_pg_result *res, size_t row, size_t col)
{
    const char *body = fg_pg_result_text(res, row, col);
    int rc;

    if ((rc = fg_buf_puts(b, ",\"body\":")) < 0)
        return rc;
    return body != NULL && body[0] != '\0' ? fg_buf_puts(b, body) : fg_buf_puts(b, "null");
}

/* ---- listing ---------------------------------------------------------------------------- */

int el_events_list(fg_buf *out, long long *out_next, fg_pg_conn *pg, const el_events_filter *filter)
{
    char after[EL_EVENTS_NUM_MAX], project[EL_EVENTS_NUM_MAX], limit[EL_EVENTS_NUM_MAX];
    char since[EL_EVENTS_TIME_TEXT_MAX];
    const char *params[5];
    fg_pg_result *res = NULL;
    size_t nparams = 0, rows;
    fg_buf sql;
    int rc;

    *out_next = 0;
    fg_buf_init(&sql, EL_EVENTS_SQL_MAX);
    if (filter->limit < 1 || filter->limit > EL_EVENTS_LIMIT_MAX) {
        rc = fg_error_set(FG_EINVALID, "limit: must be 1 to %d", EL_EVENTS_LIMIT_MAX);
        goto done;
    }
    if (filter->since != NULL && !time_normalise(since, filter->since)) {
        rc = fg_error_set(FG_EINVALID, "since: not an RFC 3339 time (2026-01-02T03:04:05Z) "
                                       "nor a date (2026-01-02)");
        goto done;
    }
    snprintf(after, sizeof(after), "%lld", filter->after > 0 ? filter->after : 0);
    snprintf(project, sizeof(project), "%lld", filter->project);
    /* one row more than asked tells whether another page follows */
    snprintf(limit, sizeof(limit), "%lld", filter->limit + 1);
    params[nparams++] = after;
    if ((rc = fg_buf_puts(&sql, "SELECT " SQL_EVENT_COLUMNS SQL_EVENT_FROM
                                " WHERE c.event_id > $1::bigint")) < 0)
        goto done;
    if (filter->project > 0) {
        params[nparams++] = project;
        if ((rc = fg_buf_printf(&sql, " AND c.project_id = $%zu::bigint", nparams)) < 0)
            goto done;
    }
    if (filter->has_status) {
        params[nparams++] = el_status_name(filter->status);
        if ((rc = fg_buf_printf(&sql, " AND e.status = $%zu::event_status", nparams)) < 0)
            goto done;
    }
    if (filter->since != NULL) {
        params[nparams++] = since;
        if ((rc = fg_buf_printf(&sql, " AND c.created_at >= $%zu::timestamptz", nparams)) < 0)
            goto done;
    }
    params[nparams++] = limit;
    if ((rc = fg_buf_printf(&sql, " ORDER BY c.event_id LIMIT $%zu::bigint", nparams)) < 0 ||
        (rc = since_checked(fg_pg_exec(&res, pg, sql.ptr, nparams, params), filter->since)) < 0)
        goto done;
    rows = fg_pg_result_rows(res);
    for (size_t i = 0; i < rows && i < (size_t)filter->limit; i++) {
        if ((i > 0 && (rc = fg_buf_putc(out, ',')) < 0) || (rc = fg_buf_putc(out, '{')) < 0 ||
            (rc = put_event_fields(out, res, i)) < 0 || (rc = fg_buf_putc(out, '}')) < 0)
            goto done;
    }
    if (rows > (size_t)filter->limit) {
        int64_t last;

        if ((rc = fg_pg_result_int64(&last, res, (size_t)filter->limit - 1, 0)) < 0)
            goto done;
        *out_next = last;
    }
    rc = 0;
done:
    fg_pg_result_free(res);
    fg_buf_dispose(&sql);
    return rc;
}

/* ---- one event -------------------------------------------------------------------------- */

static bool sha_valid(const char *sha)
{
    size_t i;

    for (i = 0; i < 40; i++)
        if (!((sha[i] >= '0' && sha[i] <= '9') || (sha[i] >= 'a' && sha[i] <= 'f')))
            return false;
    return sha[40] == '\0';
}

static int put_history(fg_buf *out, fg_pg_conn *pg, const char *event_id)
{
    const char *params[1] = {event_id};
    fg_pg_result *res = NULL;
    int rc;

    if ((rc = fg_pg_exec_prepared(
             &res, pg, "el_events_history",
             "SELECT from_status::text, to_status::text, " SQL_TIME(
                 "at") ", cause, message FROM status_log WHERE event_id = $1::bigint"
                       " ORDER BY id LIMIT " EL_EVENTS_STR(EL_EVENTS_HISTORY_MAX),
             1, params)) < 0 ||
        (rc = fg_buf_puts(out, ",\"history\":[")) < 0)
        goto done;
    for (size_t i = 0; i < fg_pg_result_rows(res); i++) {
        if ((rc = fg_buf_puts(out, i > 0 ? ",{\"from\":" : "{\"from\":")) < 0 ||
            (rc = put_string_or_null(out, fg_pg_result_text(res, i, 0))) < 0 ||
            (rc = put_field(out, "to", fg_pg_result_text(res, i, 1))) < 0 ||
            (rc = put_field(out, "at", fg_pg_result_text(res, i, 2))) < 0 ||
            (rc = put_field(out, "cause", fg_pg_result_text(res, i, 3))) < 0 ||
            (rc = put_field(out, "message", fg_pg_result_text(res, i, 4))) < 0 ||
            (rc = fg_buf_putc(out, '}')) < 0)
            goto done;
    }
    rc = fg_buf_putc(out, ']');
done:
    fg_pg_result_free(res);
    return rc;
}

int el_events_show(fg_buf *out, fg_pg_conn *pg, el_project_id project, const char *sha)
{
    char project_text[EL_EVENTS_NUM_MAX];
    const char *params[2] = {project_text, sha};
    fg_pg_result *res = NULL;
    const char *payload;
    int rc;

    if (!sha_valid(sha))
        return fg_error_set(FG_EINVALID, "sha: must be 40 lower-case hex digits");
    snprintf(project_text, sizeof(project_text), "%lld", project.value);
    if ((rc =
             fg_pg_exec_prepared(&res, pg, "el_events_show",
                                 "SELECT " SQL_EVENT_COLUMNS ", e.payload_id, b.body" SQL_EVENT_FROM
                                 " LEFT JOIN event_body b ON b.event_id = e.id"
                                 " WHERE c.project_id = $1::bigint AND c.sha = $2",
                                 2, params)) < 0)
        goto done;
    if (fg_pg_result_rows(res) == 0) {
        rc = fg_error_set(FG_ENOTFOUND, "no event %s in project %lld", sha, project.value);
        goto done;
    }
    payload = fg_pg_result_text(res, 0, COL_BODY_AFTER);
    if ((rc = fg_buf_putc(out, '{')) < 0 || (rc = put_event_fields(out, res, 0)) < 0 ||
        (rc = fg_buf_printf(out, ",\"payloadId\":%s", payload != NULL ? payload : "null")) < 0 ||
        (rc = put_body(out, res, 0, COL_BODY_AFTER + 1)) < 0 ||
        (rc = put_history(out, pg, fg_pg_result_text(res, 0, 0))) < 0)
        goto done;
    rc = fg_buf_putc(out, '}');
done:
    fg_pg_result_free(res);
    return rc;
}

/* ---- export ----------------------------------------------------------------------------- */

#define SQL_EXPORT(WHERE)                                                                          \
    "SELECT " SQL_EVENT_COLUMNS ", b.body" SQL_EVENT_FROM                                          \
    " LEFT JOIN event_body b ON b.event_id = e.id WHERE c.event_id > $1::bigint" WHERE             \
    " ORDER BY c.event_id LIMIT $2::bigint"

int el_events_export_page(fg_buf *out, long long *inout_after, bool *out_done, fg_pg_conn *pg,
                          const char *since)
{
    char after[EL_EVENTS_NUM_MAX], rows_text[EL_EVENTS_NUM_MAX];
    char since_text[EL_EVENTS_TIME_TEXT_MAX];
    const char *params[3] = {after, rows_text, since_text};
    fg_pg_result *res = NULL;
    size_t rows, i;
    int rc;

    *out_done = false;
    if (since != NULL && !time_normalise(since_text, since))
        return fg_error_set(FG_EINVALID, "since: not an RFC 3339 time (2026-01-02T03:04:05Z) "
                                         "nor a date (2026-01-02)");
    snprintf(after, sizeof(after), "%lld", *inout_after);
    snprintf(rows_text, sizeof(rows_text), "%d", EL_EVENTS_EXPORT_ROWS);
    if (since != NULL)
        rc = fg_pg_exec_prepared(&res, pg, "el_events_export_since",
                                 SQL_EXPORT(" AND c.created_at >= $3::timestamptz"), 3, params);
    else
        rc = fg_pg_exec_prepared(&res, pg, "el_events_export", SQL_EXPORT(""), 2, params);
    if ((rc = since_checked(rc, since)) < 0)
        goto done;
    rows = fg_pg_result_rows(res);
    for (i = 0; i < rows && out->len < EL_EVENTS_EXPORT_PAGE_BYTES; i++) {
        int64_t id;

        if ((rc = fg_pg_result_int64(&id, res, i, 0)) < 0 || (rc = fg_buf_putc(out, '{')) < 0 ||
            (rc = put_event_fields(out, res, i)) < 0 ||
            (rc = put_body(out, res, i, COL_BODY_AFTER)) < 0 || (rc = fg_buf_puts(out, "}\n")) < 0)
            goto done;
        *inout_after = id;
    }
    *out_done = i == rows && rows < EL_EVENTS_EXPORT_ROWS;
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

/* ---- operator actions ------------------------------------------------------------------- */

typedef int (*tx_body)(fg_pg_conn *pg, void *arg);

/* Runs body in a transaction of its own, again when it lost a race (serialization failure,
 * deadlock) or the connection; body starts by resetting whatever it reports. */
static int in_transaction(fg_pg_conn *pg, tx_body body, void *arg)
{
    int rc = FG_ERROR;

    for (int attempt = 0; attempt < EL_EVENTS_TX_ATTEMPTS; attempt++) {
        bool retry;

        if ((rc = fg_pg_begin(pg)) < 0)
            return rc;
        if ((rc = body(pg, arg)) == 0 && (rc = fg_pg_commit(pg)) == 0)
            return 0;
        /* read before the rollback, which resets the handle's SQLSTATE */
        retry = fg_pg_sqlstate_retryable(fg_pg_sqlstate(pg));
        if (fg_pg_rollback(pg) < 0 || !retry)
            return rc;
    }
    return rc;
}

/* Counts the project's events; FG_ENOTFOUND when the project does not exist. */
static int count_events(long long *out, fg_pg_conn *pg, el_project_id project)
{
    char id[EL_EVENTS_NUM_MAX];
    const char *params[1] = {id};
    fg_pg_result *res = NULL;
    int64_t found = 0, n = 0;
    int rc;

    snprintf(id, sizeof(id), "%lld", project.value);
    if ((rc = fg_pg_exec_prepared(
             &res, pg, "el_events_count",
             "SELECT (SELECT count(*) FROM project WHERE id = $1::bigint),"
             " (SELECT count(*) FROM event_commit WHERE project_id = $1::bigint)",
             1, params)) < 0 ||
        (rc = fg_pg_result_int64(&found, res, 0, 0)) < 0 ||
        (rc = fg_pg_result_int64(&n, res, 0, 1)) < 0)
        goto done;
    rc = found > 0 ? 0 : fg_error_set(FG_ENOTFOUND, "no project %lld", project.value);
    *out = n;
done:
    fg_pg_result_free(res);
    return rc;
}

static void add_result(el_events_outcome *out, const el_change_result *r)
{
    out->applied += r->applied;
    out->skipped += r->stale + r->illegal;
    out->missing += r->missing;
}

/* Applies `change` to ids[0..n) in batches el_change_apply accepts. */
static int apply_ids(el_events_outcome *out, fg_pg_conn *pg, el_change *change,
                     const el_event_id *ids, size_t n)
{
    el_change_result r;
    int rc;

    for (size_t i = 0; i < n; i += EL_CHANGE_BATCH_MAX) {
        change->ids = ids + i;
        change->nids = n - i < EL_CHANGE_BATCH_MAX ? n - i : EL_CHANGE_BATCH_MAX;
        if ((rc = el_change_apply(&r, pg, change)) < 0)
            return rc;
        add_result(out, &r);
    }
    return 0;
}

/* Reads the first column of every row as event ids (malloc'd into *out). */
static int read_ids(el_event_id **out, size_t *out_n, const fg_pg_result *res)
{
    size_t rows = fg_pg_result_rows(res);
    el_event_id *ids;

    *out = NULL;
    *out_n = 0;
    if (rows == 0)
        return 0;
    if ((ids = calloc(rows, sizeof(*ids))) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory reading %zu event ids", rows);
    for (size_t i = 0; i < rows; i++) {
        int64_t v;

        if (fg_pg_result_int64(&v, res, i, 0) < 0) {
            free(ids);
            return fg_error_set(FG_ERROR, "unexpected event id from the database");
        }
        ids[i].value = v;
    }
    *out = ids;
    *out_n = rows;
    return 0;
}

/* The table's sources for (to, cause) as an event_status[] literal. */
static int put_sources(fg_buf *out, el_status to, el_cause cause)
{
    el_status sources[EL_STATUS_COUNT];
    size_t n = el_transition_sources(sources, to, cause);
    int rc;

    if ((rc = fg_buf_putc(out, '{')) < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = fg_buf_printf(out, "%s%s", i > 0 ? "," : "", el_status_name(sources[i]))) < 0)
            return rc;
    return fg_buf_putc(out, '}');
}

/* TRIPLES_GENERATED is only worth returning to with the payload to upload: payloads go once
 * their events reached TRIPLES_STORE, so those are picked by id, payload still there. */
static int replay_with_payload(el_events_outcome *out, fg_pg_conn *pg, el_change *change)
{
    char id[EL_EVENTS_NUM_MAX];
    const char *params[2] = {id, NULL};
    fg_pg_result *res = NULL;
    el_event_id *ids = NULL;
    size_t n = 0;
    fg_buf sources;
    int rc;

    fg_buf_init(&sources, 1024);
    snprintf(id, sizeof(id), "%lld", change->project.value);
    if ((rc = put_sources(&sources, change->to, change->cause)) < 0)
        goto done;
    params[1] = sources.ptr;
    if ((rc = fg_pg_exec_prepared(&res, pg, "el_events_replayable",
                                  "SELECT id FROM event WHERE project_id = $1::bigint"
                                  " AND payload_id IS NOT NULL"
                                  " AND status = ANY($2::event_status[]) ORDER BY id",
                                  2, params)) < 0 ||
        (rc = read_ids(&ids, &n, res)) < 0)
        goto done;
    rc = apply_ids(out, pg, change, ids, n);
done:
    free(ids);
    fg_pg_result_free(res);
    fg_buf_dispose(&sources);
    return rc;
}

typedef struct {
    el_events_outcome *out;
    el_project_id project;
    el_status to;
} replay_args;

static int replay_body(fg_pg_conn *pg, void *arg)
{
    replay_args *a = arg;
    el_change change;
    el_change_result r;
    long long total = 0;
    int rc;

    memset(a->out, 0, sizeof(*a->out));
    memset(&change, 0, sizeof(change));
    change.project = a->project;
    change.cause = EL_CAUSE_REPLAY;
    change.to = a->to;
    if ((rc = count_events(&total, pg, a->project)) < 0)
        return rc;
    if (a->to == EL_STATUS_TRIPLES_GENERATED) {
        if ((rc = replay_with_payload(a->out, pg, &change)) < 0)
            return rc;
    } else {
        change.whole_project = true;
        if ((rc = el_change_apply(&r, pg, &change)) < 0)
            return rc;
        add_result(a->out, &r);
    }
    a->out->skipped = total > (long long)a->out->applied ? (size_t)total - a->out->applied : 0;
    return 0;
}

int el_events_replay(el_events_outcome *out, fg_pg_conn *pg, el_project_id project, el_status to)
{
    replay_args a = {out, project, to};

    memset(out, 0, sizeof(*out));
    if (to != EL_STATUS_NEW && to != EL_STATUS_TRIPLES_GENERATED)
        return fg_error_set(FG_EINVALID, "to: must be NEW or TRIPLES_GENERATED");
    return in_transaction(pg, replay_body, &a);
}

/* Where RETRY takes a failure status; EL_STATUS_NONE for a status that is not a failure. */
static el_status retry_target(el_status failed)
{
    switch (failed) {
    case EL_STATUS_GENERATION_RECOVERABLE_FAILURE:
    case EL_STATUS_GENERATION_NON_RECOVERABLE_FAILURE:
        return EL_STATUS_NEW;
    case EL_STATUS_TRANSFORMATION_RECOVERABLE_FAILURE:
    case EL_STATUS_TRANSFORMATION_NON_RECOVERABLE_FAILURE:
        return EL_STATUS_TRIPLES_GENERATED;
    default:
        return EL_STATUS_NONE;
    }
}

typedef struct {
    long long project;
    el_status to;
    el_event_id id;
} retry_item;

static int retry_item_cmp(const void *a, const void *b)
{
    const retry_item *x = a, *y = b;

    if (x->project != y->project)
        return x->project < y->project ? -1 : 1;
    if (x->to != y->to)
        return x->to < y->to ? -1 : 1;
    return x->id.value < y->id.value ? -1 : x->id.value > y->id.value;
}

typedef struct {
    el_events_outcome *out;
    const char *ids_literal;
    size_t nnamed; /* distinct ids asked for */
} retry_ids_args;

/* Retries the items[0..n) sorted by (project, target): one change per run of equal keys. */
static int retry_groups(el_events_outcome *out, fg_pg_conn *pg, retry_item *items, size_t n,
                        el_event_id *ids)
{
    size_t start = 0;
    int rc;

    for (size_t i = 0; i < n; i++)
        ids[i] = items[i].id;
    while (start < n) {
        size_t end = start;
        el_change change;

        while (end < n && items[end].project == items[start].project &&
               items[end].to == items[start].to)
            end++;
        memset(&change, 0, sizeof(change));
        change.project.value = items[start].project;
        change.cause = EL_CAUSE_RETRY;
        change.to = items[start].to;
        if ((rc = apply_ids(out, pg, &change, ids + start, end - start)) < 0)
            return rc;
        start = end;
    }
    return 0;
}

static int retry_ids_body(fg_pg_conn *pg, void *arg)
{
    retry_ids_args *a = arg;
    const char *params[1] = {a->ids_literal};
    fg_pg_result *res = NULL;
    retry_item *items = NULL;
    el_event_id *ids = NULL;
    size_t rows, n = 0;
    int rc;

    memset(a->out, 0, sizeof(*a->out));
    /* locked in id order, as el_change_apply locks, so concurrent changes queue */
    if ((rc = fg_pg_exec_prepared(&res, pg, "el_events_retry_lock",
                                  "SELECT id, project_id, status::text FROM event"
                                  " WHERE id = ANY($1::bigint[]) ORDER BY id FOR UPDATE",
                                  1, params)) < 0)
        goto done;
    rows = fg_pg_result_rows(res);
    a->out->missing = a->nnamed > rows ? a->nnamed - rows : 0;
    if (rows > 0 && ((items = calloc(rows, sizeof(*items))) == NULL ||
                     (ids = calloc(rows, sizeof(*ids))) == NULL)) {
        rc = fg_error_set(FG_ENOMEM, "out of memory retrying %zu events", rows);
        goto done;
    }
    for (size_t i = 0; i < rows; i++) {
        const char *name = fg_pg_result_text(res, i, 2);
        int64_t id, project;
        el_status s;

        if (fg_pg_result_int64(&id, res, i, 0) < 0 || fg_pg_result_int64(&project, res, i, 1) < 0 ||
            name == NULL || !el_status_parse(&s, name)) {
            rc = fg_error_set(FG_ERROR, "unexpected event row from the database");
            goto done;
        }
        if (retry_target(s) == EL_STATUS_NONE) {
            a->out->skipped++;
            continue;
        }
        items[n].project = project;
        items[n].to = retry_target(s);
        items[n++].id.value = id;
    }
    if (n > 1)
        qsort(items, n, sizeof(*items), retry_item_cmp);
    rc = retry_groups(a->out, pg, items, n, ids);
done:
    free(items);
    free(ids);
    fg_pg_result_free(res);
    return rc;
}

static int id_cmp(const void *a, const void *b)
{
    const el_event_id *x = a, *y = b;

    return x->value < y->value ? -1 : x->value > y->value;
}

int el_events_retry_ids(el_events_outcome *out, fg_pg_conn *pg, const el_event_id *ids, size_t nids)
{
    el_event_id sorted[EL_EVENTS_RETRY_IDS_MAX];
    retry_ids_args a = {out, NULL, 0};
    fg_buf literal;
    int rc;

    memset(out, 0, sizeof(*out));
    if (nids == 0 || nids > EL_EVENTS_RETRY_IDS_MAX)
        return fg_error_set(FG_EINVALID, "ids: 1 to %d event ids", EL_EVENTS_RETRY_IDS_MAX);
    memcpy(sorted, ids, nids * sizeof(*ids));
    qsort(sorted, nids, sizeof(*sorted), id_cmp);
    fg_buf_init(&literal, EL_EVENTS_LIST_MAX);
    if ((rc = fg_buf_putc(&literal, '{')) < 0)
        goto done;
    for (size_t i = 0; i < nids; i++) {
        if (sorted[i].value <= 0) {
            rc = fg_error_set(FG_EINVALID, "ids: %lld is not an event id", sorted[i].value);
            goto done;
        }
        if (i > 0 && sorted[i].value == sorted[i - 1].value)
            continue;
        if ((rc = fg_buf_printf(&literal, "%s%lld", a.nnamed > 0 ? "," : "", sorted[i].value)) < 0)
            goto done;
        a.nnamed++;
    }
    if ((rc = fg_buf_putc(&literal, '}')) < 0)
        goto done;
    a.ids_literal = literal.ptr;
    rc = in_transaction(pg, retry_ids_body, &a);
done:
    fg_buf_dispose(&literal);
    return rc;
}

typedef struct {
    el_events_outcome *out;
    el_project_id project;
    bool has_status;
    el_status status;
} retry_project_args;

static int retry_project_body(fg_pg_conn *pg, void *arg)
{
    static const el_status failures[] = {
        EL_STATUS_GENERATION_RECOVERABLE_FAILURE,
        EL_STATUS_GENERATION_NON_RECOVERABLE_FAILURE,
        EL_STATUS_TRANSFORMATION_RECOVERABLE_FAILURE,
        EL_STATUS_TRANSFORMATION_NON_RECOVERABLE_FAILURE,
    };
    retry_project_args *a = arg;
    long long total;
    int rc;

    memset(a->out, 0, sizeof(*a->out));
    if ((rc = count_events(&total, pg, a->project)) < 0)
        return rc;
    for (size_t i = 0; i < sizeof(failures) / sizeof(failures[0]); i++) {
        el_change change;
        el_change_result r;

        if (a->has_status && a->status != failures[i])
            continue;
        memset(&change, 0, sizeof(change));
        change.project = a->project;
        change.cause = EL_CAUSE_RETRY;
        change.to = retry_target(failures[i]);
        change.whole_project = true;
        change.only_from = &failures[i];
        change.nonly_from = 1;
        if ((rc = el_change_apply(&r, pg, &change)) < 0)
            return rc;
        add_result(a->out, &r);
    }
    return 0;
}

int el_events_retry_project(el_events_outcome *out, fg_pg_conn *pg, el_project_id project,
                            bool has_status, el_status status)
{
    retry_project_args a = {out, project, has_status, status};

    memset(out, 0, sizeof(*out));
    if (has_status && retry_target(status) == EL_STATUS_NONE)
        return fg_error_set(FG_EINVALID,
                            "status: %s is not a failure status (retry takes "
                            "GENERATION_ or TRANSFORMATION_ failures)",
                            el_status_name(status));
    return in_transaction(pg, retry_project_body, &a);
}
