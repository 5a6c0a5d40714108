/*
 * el_change_apply (see el_change.h): one statement per change. The statement reads the named
 * events, moves (locking them in id order) those whose status is a legal source, appends their
 * status_log rows through a data-modifying CTE, and hands back the named events whose status was
 * not a legal source, so that stale and illegal requests are told apart here, with el_status.c's
 * table, and never in SQL. Payloads an event lets go of are the tick's sweep's to delete.
 */
#include "el_change.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg/buf.h"
#include "fg/log.h"

/* "{" + EL_CHANGE_BATCH_MAX x (40-hex sha or 19-digit id + ",") + "}" */
#define EL_CHANGE_NAMES_MAX   ((size_t)EL_CHANGE_BATCH_MAX * 42u + 16u)
#define EL_CHANGE_SOURCES_MAX 1024u /* "{NEW,SKIPPED,...}": every status once */
#define EL_CHANGE_LOGGED_MAX  20u   /* illegal requests logged one by one per change */
#define EL_CHANGE_NUM_MAX     24u   /* a long long in decimal */

/* ---- the statements --------------------------------------------------------------------- */

/* Parameters: $1 project, $2 legal sources (event_status[]), $3 cause, $4 message; the updates
 * add $5 target status, $6 delay ms, $7 attempts (+n, or -1 to reset), $8 payload (NULL: keep,
 * 0: clear, else set); the named forms end with the names ($5 or $9). Every form must reference
 * each of its parameters: libpq infers their count and types from the text.
 * The arrays arrive as text and are cast inside ($9::text::bigint[]): array_in is only STABLE, so
 * a custom plan cannot fold them into constants and costs what the generic plan costs; the plan
 * cache then keeps the generic plan after its five trial runs. With plain array parameters a
 * one-event change looked cheaper custom-planned and was planned on every call (planning took
 * longer than executing). */

/* The named events, locked in id order (two changes over overlapping batches queue rather than
 * deadlock). Locking here, not only in the UPDATE, matters with several event-log instances: a
 * consumer's reply can reach one instance before the other's dispatch committed; FOR UPDATE
 * makes the reply wait for that commit and then read the event's new status, where a plain
 * snapshot would see the old one and wrongly call the reply stale. The UPDATE moves a row only if
 * its status is still the one read here, so the status logged as from_status is exactly the one
 * left. Reaching the row by its ctid spares an index probe per event. By id, "project_id + 0"
 * keeps the planner from AND-ing the primary key with a partial index led by project_id (tens of
 * thousands of entries for a big project) instead of filtering 500 rows. By sha, the name is
 * found in event_commit's unique (project_id, sha) and the event by its id (migration 0005). */
#define SQL_NAMED(FROM, FILTER)                                                                    \
    "WITH named AS MATERIALIZED ("                                                                 \
    " SELECT e.ctid AS tid, e.id, e.status, e.payload_id FROM " FROM " WHERE " FILTER              \
    " ORDER BY e.id FOR UPDATE OF e), "

/* A project's events are found through event_commit's (project_id, event_id): event itself has
 * no index by project but the partial ones (migration 0005). */
#define SQL_WHOLE_PROJECT                                                                          \
    SQL_NAMED("event_commit c JOIN event e ON e.id = c.event_id",                                  \
              "c.project_id = $1 AND e.status = ANY($2::text::event_status[])")

#define SQL_MOVABLE                                                                                \
    " e.ctid = n.tid AND e.id = n.id AND e.status = n.status"                                      \
    " AND n.status = ANY($2::text::event_status[])"

#define SQL_UPDATE_SETTING(PAYLOAD)                                                                \
    "moved AS ("                                                                                   \
    " UPDATE event e SET status = $5::event_status,"                                               \
    " execution_date = now() + $6::bigint * interval '1 millisecond',"                             \
    " attempts = CASE WHEN $7::integer < 0 THEN 0 ELSE e.attempts + $7::integer END,"              \
    " message = $4::text, payload_id = " PAYLOAD " FROM named n WHERE" SQL_MOVABLE                 \
    " RETURNING e.id, n.status AS from_status), "                                                  \
    "logged AS ("                                                                                  \
    " INSERT INTO status_log (event_id, project_id, from_status, to_status, cause, message)"       \
    " SELECT m.id, $1, m.from_status, $5::event_status, $3::text, $4::text FROM moved m) "

/* $8: NULL keeps the event's payload, 0 clears it, else the payload row to take. */
#define SQL_UPDATE                                                                                 \
    SQL_UPDATE_SETTING("CASE WHEN $8::bigint IS NULL THEN e.payload_id"                            \
                       " WHEN $8::bigint = 0 THEN NULL ELSE $8::bigint END")

/* $8: the payload in base64, stored when an event is in a legal source (named locked them: those
 * move), so a stale or redelivered reply stores nothing; one round trip for the reply instead of
 * an insert and then the change. */
#define SQL_STORE                                                                                  \
    "stored AS (INSERT INTO payload (project_id, data) SELECT $1, decode($8::text, 'base64')"      \
    " WHERE EXISTS (SELECT 1 FROM named n WHERE n.status = ANY($2::text::event_status[]))"         \
    " RETURNING id), " SQL_UPDATE_SETTING("(SELECT s.id FROM stored s)")

#define SQL_DELETE                                                                                 \
    "moved AS ("                                                                                   \
    " DELETE FROM event e USING named n WHERE" SQL_MOVABLE                                         \
    " RETURNING e.id, n.status AS from_status), "                                                  \
    "logged AS ("                                                                                  \
    " INSERT INTO status_log (event_id, project_id, from_status, to_status, cause, message)"       \
    " SELECT m.id, $1, m.from_status, NULL, $3::text, $4::text FROM moved m) "

/* Payloads are not freed here: a payload no event refers to any more (the batch is stored, or
 * went back to NEW, or was deleted) is deleted by the tick's sweep (el_schedule_sweep_payloads)
 * within a second. Deleting it in this statement needed a join on payload whose cached generic
 * plan was made when the table was small: a sequential scan of every payload per change once it
 * had grown (4x the time of a one-event ToTriplesStore in bench/eventlog.sh). */

/* Row 0: how many moved, were found and were in a legal source status (those that did not move
 * changed concurrently); then each named event whose status was not a legal source, with that
 * status and its sha (looked up for those rows only), for the verdicts. How many distinct events
 * were named is counted in C (distinct_names): in SQL it meant parsing and sorting the array a
 * second time, 3% of a batch. */
#define SQL_NAMED_RESULT                                                                           \
    "SELECT NULL::text AS sha, NULL::text AS status, (SELECT count(*) FROM moved) AS moved,"       \
    " (SELECT count(*) FROM named) AS found,"                                                      \
    " (SELECT count(*) FROM named WHERE status = ANY($2::text::event_status[])) AS legal "         \
    "UNION ALL "                                                                                   \
    "SELECT (SELECT c.sha FROM event_commit c WHERE c.event_id = n.id), n.status::text, NULL,"     \
    " NULL, NULL FROM named n WHERE NOT (n.status = ANY($2::text::event_status[]))"

#define SQL_PROJECT_RESULT "SELECT count(*) FROM moved"

/* One named event, the common case of replies one by one: the same steps without the arrays,
 * the sort and the counting subqueries, so there is less plan to start and run per call (the
 * primary key, or event_commit's (project_id, sha) and then the primary key, finds the row). The
 * scalar name is compared by equality on a unique key, so the generic plan costs what a custom one
 * would and the plan cache keeps it. Result: no row when the event does not exist; else its sha,
 * status and whether it moved. */
#define SQL_ONE(FROM, FILTER)                                                                      \
    "WITH named AS MATERIALIZED ("                                                                 \
    " SELECT e.ctid AS tid, e.id, e.status, e.payload_id FROM " FROM " WHERE " FILTER              \
    " FOR UPDATE OF e), "
#define SQL_ONE_BY_SHA(NAME)                                                                       \
    SQL_ONE("event_commit c JOIN event e ON e.id = c.event_id",                                    \
            "c.project_id = $1 AND c.sha = " NAME "::text")
#define SQL_ONE_BY_ID(NAME) SQL_ONE("event e", "e.id = " NAME "::bigint AND e.project_id = $1")
#define SQL_ONE_RESULT                                                                             \
    "SELECT (SELECT c.sha FROM event_commit c WHERE c.event_id = n.id), n.status::text,"           \
    " (SELECT count(*) FROM moved) FROM named n"

typedef enum { SEL_SHA, SEL_ID, SEL_PROJECT } selection;

typedef enum { FORM_UPDATE, FORM_DELETE, FORM_STORE, FORM_COUNT } form;

typedef struct {
    const char *name;
    const char *sql;
} statement;

#define SQL_BY_SHA(NAMES)                                                                          \
    SQL_NAMED("event_commit c JOIN event e ON e.id = c.event_id",                                  \
              "c.project_id = $1 AND c.sha = ANY(" NAMES "::text::text[])")
#define SQL_BY_ID(NAMES)                                                                           \
    SQL_NAMED("event e", "e.project_id + 0 = $1 AND e.id = ANY(" NAMES "::text::bigint[])")

/* [selection][form]; a whole project never stores a payload (check_change) */
static const statement statements[3][FORM_COUNT] = {
    {
        {"el_change_sha", SQL_BY_SHA("$9") SQL_UPDATE SQL_NAMED_RESULT},
        {"el_change_sha_delete", SQL_BY_SHA("$5") SQL_DELETE SQL_NAMED_RESULT},
        {"el_change_sha_store", SQL_BY_SHA("$9") SQL_STORE SQL_NAMED_RESULT},
    },
    {
        {"el_change_id", SQL_BY_ID("$9") SQL_UPDATE SQL_NAMED_RESULT},
        {"el_change_id_delete", SQL_BY_ID("$5") SQL_DELETE SQL_NAMED_RESULT},
        {"el_change_id_store", SQL_BY_ID("$9") SQL_STORE SQL_NAMED_RESULT},
    },
    {
        {"el_change_project", SQL_WHOLE_PROJECT SQL_UPDATE SQL_PROJECT_RESULT},
        {"el_change_project_delete", SQL_WHOLE_PROJECT SQL_DELETE SQL_PROJECT_RESULT},
        {NULL, NULL},
    },
};

/* [selection][form] for one named event */
static const statement one_statements[2][FORM_COUNT] = {
    {
        {"el_change_sha1", SQL_ONE_BY_SHA("$9") SQL_UPDATE SQL_ONE_RESULT},
        {"el_change_sha1_delete", SQL_ONE_BY_SHA("$5") SQL_DELETE SQL_ONE_RESULT},
        {"el_change_sha1_store", SQL_ONE_BY_SHA("$9") SQL_STORE SQL_ONE_RESULT},
    },
    {
        {"el_change_id1", SQL_ONE_BY_ID("$9") SQL_UPDATE SQL_ONE_RESULT},
        {"el_change_id1_delete", SQL_ONE_BY_ID("$5") SQL_DELETE SQL_ONE_RESULT},
        {"el_change_id1_store", SQL_ONE_BY_ID("$9") SQL_STORE SQL_ONE_RESULT},
    },
};

/* ---- checks and parameters -------------------------------------------------------------- */

static bool is_sha(const char *s)
{
    size_t i;

    if (s == NULL)
        return false;
    for (i = 0; i < 40; i++) {
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    }
    return s[40] == '\0';
}

static int check_change(const el_change *c, selection *out)
{
    int selections = (c->nshas > 0) + (c->nids > 0) + (c->whole_project ? 1 : 0);

    if (c->project.value <= 0)
        return fg_error_set(FG_EINVALID, "el_change: project id %lld", c->project.value);
    if ((unsigned)c->to <= EL_STATUS_NONE || (unsigned)c->to >= EL_STATUS_COUNT ||
        (unsigned)c->cause >= EL_CAUSE_COUNT)
        return fg_error_set(FG_EINVALID, "el_change: bad target status or cause");
    if (selections != 1)
        return fg_error_set(FG_EINVALID, "el_change: %s",
                            selections == 0 ? "no events named" : "name events one way only");
    if (c->nshas > EL_CHANGE_BATCH_MAX || c->nids > EL_CHANGE_BATCH_MAX)
        return fg_error_set(FG_EINVALID, "el_change: more than %d events in one change",
                            EL_CHANGE_BATCH_MAX);
    if ((c->nshas > 0 && c->shas == NULL) || (c->nids > 0 && c->ids == NULL) ||
        (c->nonly_from > 0 && c->only_from == NULL))
        return fg_error_set(FG_EINVALID, "el_change: a count without its array");
    if (c->delay_ms < 0 || c->payload_id < 0)
        return fg_error_set(FG_EINVALID, "el_change: negative delay or payload id");
    if (c->payload_base64 != NULL &&
        (c->payload_id > 0 || c->whole_project || c->to == EL_STATUS_DELETED))
        return fg_error_set(FG_EINVALID, "el_change: a payload to store is for named events "
                                         "that stay, without a payload id");
    for (size_t i = 0; i < c->nonly_from; i++) {
        if ((unsigned)c->only_from[i] >= EL_STATUS_COUNT)
            return fg_error_set(FG_EINVALID, "el_change: bad status in only_from");
    }
    *out = c->nshas > 0 ? SEL_SHA : c->nids > 0 ? SEL_ID : SEL_PROJECT;
    return 0;
}

static bool listed(const el_status *list, size_t n, el_status s)
{
    for (size_t i = 0; i < n; i++) {
        if (list[i] == s)
            return true;
    }
    return false;
}

/* The table's sources for (to, cause), narrowed to only_from, as an event_status[] literal.
 * NONE (creation) and DELETED are never stored, so they never match a row. */
static int put_sources(fg_buf *out, const el_change *c)
{
    el_status sources[EL_STATUS_COUNT];
    size_t n = el_transition_sources(sources, c->to, c->cause);
    const char *sep = "";
    int rc;

    if ((rc = fg_buf_putc(out, '{')) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (sources[i] == EL_STATUS_NONE || sources[i] == EL_STATUS_DELETED)
            continue;
        if (c->nonly_from > 0 && !listed(c->only_from, c->nonly_from, sources[i]))
            continue;
        if ((rc = fg_buf_printf(out, "%s%s", sep, el_status_name(sources[i]))) < 0)
            return rc;
        sep = ",";
    }
    return fg_buf_putc(out, '}');
}

static int put_names(fg_buf *out, const el_change *c, selection sel)
{
    size_t n = sel == SEL_SHA ? c->nshas : c->nids;
    int rc;

    if ((rc = fg_buf_putc(out, '{')) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (sel == SEL_SHA && !is_sha(c->shas[i]))
            return fg_error_set(FG_EINVALID, "el_change: shas[%zu] is not 40 lower-case hex", i);
        if (sel == SEL_ID && c->ids[i].value <= 0)
            return fg_error_set(FG_EINVALID, "el_change: ids[%zu] is %lld", i, c->ids[i].value);
        if (i > 0 && (rc = fg_buf_putc(out, ',')) < 0)
            return rc;
        rc = sel == SEL_SHA ? fg_buf_puts(out, c->shas[i])
                            : fg_buf_printf(out, "%lld", c->ids[i].value);
        if (rc < 0)
            return rc;
    }
    return fg_buf_putc(out, '}');
}

static bool is_recoverable_failure(el_status s)
{
    return s == EL_STATUS_GENERATION_RECOVERABLE_FAILURE ||
           s == EL_STATUS_TRANSFORMATION_RECOVERABLE_FAILURE;
}

/* Attempts count the recoverable failures in a row (the backoff exponent); an operator's or a
 * re-provision's fresh start forgets them. */
static const char *attempts_param(const el_change *c)
{
    if (is_recoverable_failure(c->to))
        return "1";
    if (c->cause == EL_CAUSE_REPROVISION || c->cause == EL_CAUSE_REPLAY ||
        c->cause == EL_CAUSE_RETRY)
        return "-1";
    return "0";
}

/* The payload follows the event through transformation and its failures; back to NEW it is
 * obsolete, and in TRIPLES_STORE it has served (schema: kept until every event of the batch is
 * stored). */
static const char *payload_param(const el_change *c, char buf[EL_CHANGE_NUM_MAX])
{
    if (c->payload_id > 0) {
        snprintf(buf, EL_CHANGE_NUM_MAX, "%lld", c->payload_id);
        return buf;
    }
    if (c->to == EL_STATUS_NEW || c->to == EL_STATUS_TRIPLES_STORE)
        return "0";
    return NULL;
}

/* ---- verdicts --------------------------------------------------------------------------- */

static void log_illegal(const el_change *c, const char *sha, el_status from, size_t nth)
{
    if (nth >= EL_CHANGE_LOGGED_MAX)
        return;
    fg_log_emit(FG_LOG_WARN,
                FG_LOG_FIELDS(FG_LOG_INT("project", c->project.value), FG_LOG_STR("sha", sha),
                              FG_LOG_STR("from", el_status_name(from)),
                              FG_LOG_STR("to", el_status_name(c->to)),
                              FG_LOG_STR("cause", el_cause_name(c->cause))),
                "illegal transition refused: %s -> %s by %s", el_status_name(from),
                el_status_name(c->to), el_cause_name(c->cause));
}

static int read_count(size_t *out, const fg_pg_result *res, size_t col)
{
    int64_t v = 0;
    int rc;

    if ((rc = fg_pg_result_int64(&v, res, 0, col)) < 0)
        return rc;
    *out = v < 0 ? 0 : (size_t)v;
    return 0;
}

static int compare_sha(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int compare_id(const void *a, const void *b)
{
    long long x = ((const el_event_id *)a)->value, y = ((const el_event_id *)b)->value;

    return (x > y) - (x < y);
}

/* How many different events c names (a batch may name one twice). n <= EL_CHANGE_BATCH_MAX
 * (check_change), so the sorted copy fits on the stack. */
static int distinct_names(size_t *out, const el_change *c)
{
    union {
        const char *sha;
        el_event_id id;
    } copy[EL_CHANGE_BATCH_MAX];
    size_t n = c->nshas > 0 ? c->nshas : c->nids;
    int (*compare)(const void *, const void *) = c->nshas > 0 ? compare_sha : compare_id;

    *out = n;
    if (n > EL_CHANGE_BATCH_MAX)
        return fg_error_set(FG_EINVALID, "el_change: more than %d events", EL_CHANGE_BATCH_MAX);
    for (size_t i = 0; i < n; i++) {
        if (c->nshas > 0)
            copy[i].sha = c->shas[i];
        else
            copy[i].id = c->ids[i];
    }
    qsort(copy, n, sizeof(copy[0]), compare);
    for (size_t i = 1; i < n; i++) {
        if (compare(&copy[i - 1], &copy[i]) == 0)
            (*out)--;
    }
    return 0;
}

/* Named events the statement left alone: a legal source excluded by only_from, or a reply about
 * an event that moved on, is stale; anything else is illegal. */
static int judge(el_change_result *out, const el_change *c, const fg_pg_result *res)
{
    size_t found = 0, legal = 0, named = 0;
    int rc;

    if (fg_pg_result_rows(res) < 1)
        return fg_error_set(FG_ERROR, "el_change: the statement returned no counts");
    if ((rc = read_count(&out->applied, res, 2)) < 0 || (rc = read_count(&found, res, 3)) < 0 ||
        (rc = read_count(&legal, res, 4)) < 0 || (rc = distinct_names(&named, c)) < 0)
        return rc;
    out->missing = named > found ? named - found : 0;
    out->stale = legal > out->applied ? legal - out->applied : 0; /* moved on meanwhile */
    for (size_t row = 1; row < fg_pg_result_rows(res); row++) {
        const char *sha = fg_pg_result_text(res, row, 0);
        const char *name = fg_pg_result_text(res, row, 1);
        el_status from;

        if (sha == NULL || name == NULL || !el_status_parse(&from, name))
            return fg_error_set(FG_ERROR, "el_change: unexpected status %s", name ? name : "NULL");
        if (el_transition_check(from, c->to, c->cause) == EL_ILLEGAL) {
            log_illegal(c, sha, from, out->illegal);
            out->illegal++;
        } else {
            out->stale++;
        }
    }
    if (out->illegal > EL_CHANGE_LOGGED_MAX)
        fg_log_warn("%zu more illegal transitions of project %lld refused (not listed)",
                    out->illegal - EL_CHANGE_LOGGED_MAX, c->project.value);
    return 0;
}

/* The verdict on one named event from SQL_ONE_RESULT. */
static int judge_one(el_change_result *out, const el_change *c, const fg_pg_result *res)
{
    const char *sha, *name;
    size_t moved = 0;
    el_status from;
    int rc;

    if (fg_pg_result_rows(res) == 0) {
        out->missing = 1;
        return 0;
    }
    if ((rc = read_count(&moved, res, 2)) < 0)
        return rc;
    if (moved > 0) {
        out->applied = 1;
        return 0;
    }
    sha = fg_pg_result_text(res, 0, 0);
    name = fg_pg_result_text(res, 0, 1);
    if (sha == NULL || name == NULL || !el_status_parse(&from, name))
        return fg_error_set(FG_ERROR, "el_change: unexpected status %s", name ? name : "NULL");
    /* a legal source that did not move, or one only_from left out, is stale, as in judge() */
    if (el_transition_check(from, c->to, c->cause) == EL_ILLEGAL) {
        log_illegal(c, sha, from, 0);
        out->illegal = 1;
    } else {
        out->stale = 1;
    }
    return 0;
}

/* ---- public ----------------------------------------------------------------------------- */

int el_change_apply(el_change_result *out, fg_pg_conn *pg, const el_change *change)
{
    fg_buf names, sources;
    fg_pg_result *res = NULL;
    selection sel = SEL_PROJECT;
    const statement *st;
    const char *params[9];
    char project[EL_CHANGE_NUM_MAX], delay[EL_CHANGE_NUM_MAX], payload[EL_CHANGE_NUM_MAX];
    char one_id[EL_CHANGE_NUM_MAX];
    const char *payload_id;
    form f;
    bool deleting, one;
    size_t nparams;
    int rc = FG_ERROR;

    fg_buf_init(&names, EL_CHANGE_NAMES_MAX);
    fg_buf_init(&sources, EL_CHANGE_SOURCES_MAX);
    if (out == NULL || pg == NULL || change == NULL) {
        rc = fg_error_set(FG_EINVALID, "el_change: NULL argument");
        goto done;
    }
    memset(out, 0, sizeof(*out));
    if ((rc = check_change(change, &sel)) < 0 || (rc = put_sources(&sources, change)) < 0)
        goto done;
    if (sel != SEL_PROJECT && (rc = put_names(&names, change, sel)) < 0)
        goto done;
    deleting = change->to == EL_STATUS_DELETED;
    payload_id = deleting ? NULL : payload_param(change, payload);
    f = deleting ? FORM_DELETE : change->payload_base64 != NULL ? FORM_STORE : FORM_UPDATE;
    one = sel != SEL_PROJECT && change->nshas + change->nids == 1;
    st = one ? &one_statements[sel][f] : &statements[sel][f];
    if (one && sel == SEL_ID)
        snprintf(one_id, sizeof(one_id), "%lld", change->ids[0].value);
    snprintf(project, sizeof(project), "%lld", change->project.value);
    snprintf(delay, sizeof(delay), "%lld", change->delay_ms);
    params[0] = project;
    params[1] = sources.ptr;
    params[2] = el_cause_name(change->cause);
    params[3] = change->message;
    nparams = 4;
    if (!deleting) {
        params[4] = el_status_name(change->to);
        params[5] = delay;
        params[6] = attempts_param(change);
        params[7] = f == FORM_STORE ? change->payload_base64 : payload_id;
        nparams = 8;
    }
    if (one)
        params[nparams++] = sel == SEL_SHA ? change->shas[0] : one_id;
    else if (sel != SEL_PROJECT)
        params[nparams++] = names.ptr;
    if ((rc = fg_pg_exec_prepared(&res, pg, st->name, st->sql, nparams, params)) < 0)
        goto done;
    if (sel == SEL_PROJECT)
        rc = read_count(&out->applied, res, 0);
    else if (one)
        rc = judge_one(out, change, res);
    else
        rc = judge(out, change, res);
    if (rc < 0)
        goto done;
    rc = 0;
done:
    if (rc < 0 && out != NULL)
        memset(out, 0, sizeof(*out));
    fg_pg_result_free(res);
    fg_buf_dispose(&names);
    fg_buf_dispose(&sources);
    return rc;
}
