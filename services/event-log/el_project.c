/*
 * Projects (see el_project.h). Registration relies on the schema's two partial unique indexes:
 * INSERT ... ON CONFLICT DO NOTHING either creates the row or proves an equal identity exists,
 * so concurrent registrations of one project end with one row and no error.
 */
#include "el_project.h"

#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define EL_PROJECT_ID_TEXT_MAX 24 /* a long long in decimal */
#define EL_PROJECT_TX_ATTEMPTS 3  /* a transaction that lost a race is tried this often */

/* RFC 3339 UTC with milliseconds, as every time in the API. */
#define SQL_TIME(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

#define SQL_PROJECT_COLUMNS                                                                        \
    "id, forge, forge_id, path, url, " SQL_TIME("created_at") ", " SQL_TIME(                       \
        "latest_event_date") ", " SQL_TIME("first_synced_at")

static const char *const forge_names[] = {"github", "gitlab", "git"};

const char *el_forge_name(el_forge forge)
{
    return (unsigned)forge < sizeof(forge_names) / sizeof(forge_names[0]) ? forge_names[forge]
                                                                          : "unknown";
}

static bool forge_parse(el_forge *out, const char *name)
{
    for (size_t i = 0; i < sizeof(forge_names) / sizeof(forge_names[0]); i++) {
        if (strcmp(forge_names[i], name) == 0) {
            *out = (el_forge)i;
            return true;
        }
    }
    return false;
}

/* ---- validation ------------------------------------------------------------------------- */

static bool segment_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

static int check_path(const char *path, el_forge forge)
{
    size_t len = strlen(path), segments = 0, seg_len = 0;

    if (len == 0 || len > EL_PROJECT_PATH_MAX)
        return fg_error_set(FG_EINVALID, "path: must be 3 to %d bytes of \"namespace/name\"",
                            EL_PROJECT_PATH_MAX);
    for (size_t i = 0; i <= len; i++) {
        if (path[i] == '/' || path[i] == '\0') {
            const char *seg = path + i - seg_len;

            if (seg_len == 0 || (seg_len == 1 && seg[0] == '.') ||
                (seg_len == 2 && seg[0] == '.' && seg[1] == '.'))
                return fg_error_set(FG_EINVALID,
                                    "path: \"%.*s\" has an empty, \".\" or \"..\" segment",
                                    EL_PROJECT_PATH_MAX, path);
            segments++;
            seg_len = 0;
            continue;
        }
        if (!segment_char_ok(path[i]))
            return fg_error_set(FG_EINVALID,
                                "path: only letters, digits, '.', '_', '-' and '/' are allowed");
        if (++seg_len > EL_PROJECT_PATH_SEGMENT_MAX)
            return fg_error_set(FG_EINVALID, "path: a segment is longer than %d bytes",
                                EL_PROJECT_PATH_SEGMENT_MAX);
    }
    if (segments < 2)
        return fg_error_set(FG_EINVALID, "path: \"%s\" is not \"namespace/name\"", path);
    if (forge == EL_FORGE_GITHUB && segments != 2)
        return fg_error_set(FG_EINVALID, "path: a github path is exactly \"owner/name\"");
    return 0;
}

/* A password in a clone URL would be stored, listed and logged: tokens belong in
 * token-repository. userinfo is the part before '@' of an authority. */
static int check_userinfo(const char *authority, size_t len)
{
    const char *at = memchr(authority, '@', len);

    if (at != NULL && memchr(authority, ':', (size_t)(at - authority)) != NULL)
        return fg_error_set(FG_EINVALID, "url: must not carry a password (tokens go to "
                                         "token-repository)");
    return 0;
}

static int check_scheme_url(const char *url, const char *sep)
{
    static const char *const schemes[] = {"https", "http", "ssh", "git", "file"};
    size_t scheme_len = (size_t)(sep - url), authority_len;
    const char *authority = sep + 3, *slash;
    bool known = false;

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        known = known ||
                (strlen(schemes[i]) == scheme_len && strncmp(schemes[i], url, scheme_len) == 0);
    if (!known)
        return fg_error_set(FG_EINVALID,
                            "url: scheme \"%.*s\" is not one of https, http, ssh, git, file",
                            (int)(scheme_len < 32 ? scheme_len : 32), url);
    slash = strchr(authority, '/');
    authority_len = slash != NULL ? (size_t)(slash - authority) : strlen(authority);
    if (scheme_len == 4 && strncmp(url, "file", 4) == 0) {
        if (authority_len != 0 || slash == NULL || slash[1] == '\0')
            return fg_error_set(FG_EINVALID, "url: a file URL is file:///absolute/path");
        return 0;
    }
    if (authority_len == 0 || slash == NULL || slash[1] == '\0')
        return fg_error_set(FG_EINVALID, "url: needs a host and a repository path");
    return check_userinfo(authority, authority_len);
}

/* user@host:path, as ssh and git understand it: the ':' comes before any '/'. */
static int check_scp_url(const char *url)
{
    const char *at = strchr(url, '@');
    const char *host = at != NULL ? at + 1 : url;
    const char *colon = strchr(host, ':');
    const char *slash = strchr(url, '/');

    if (colon == NULL || colon == host || colon[1] == '\0' || (slash != NULL && slash < colon))
        return fg_error_set(FG_EINVALID, "url: not a clone URL (https://, ssh://, git://, file://, "
                                         "user@host:path) nor an absolute local path");
    return check_userinfo(url, (size_t)(colon - url));
}

static int check_url(const char *url)
{
    size_t len = strlen(url);
    const char *sep;

    if (len == 0 || len > EL_PROJECT_URL_MAX)
        return fg_error_set(FG_EINVALID, "url: must be 1 to %d bytes", EL_PROJECT_URL_MAX);
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)url[i] <= 0x20 || url[i] == 0x7f)
            return fg_error_set(FG_EINVALID, "url: spaces and control characters are not allowed");
    if (url[0] == '/')
        return 0;
    if ((sep = strstr(url, "://")) != NULL)
        return check_scheme_url(url, sep);
    return check_scp_url(url);
}

static int string_field(const char **out, const struct json_object *obj, const char *name)
{
    struct json_object *v = NULL;

    *out = NULL;
    if (!json_object_object_get_ex(obj, name, &v) || v == NULL)
        return fg_error_set(FG_EINVALID, "%s: required", name);
    if (!json_object_is_type(v, json_type_string))
        return fg_error_set(FG_EINVALID, "%s: must be a string", name);
    *out = json_object_get_string(v);
    return 0;
}

static int check_fields(const struct json_object *obj)
{
    static const char *const allowed[] = {"forge", "forgeId", "path", "url"};

    json_object_object_foreach((struct json_object *)obj, key, value)
    {
        bool known = false;

        (void)value;
        for (size_t i = 0; i < sizeof(allowed) / sizeof(allowed[0]); i++)
            known = known || strcmp(key, allowed[i]) == 0;
        if (!known)
            return fg_error_set(FG_EINVALID,
                                "%.64s: unknown field (a registration has forge, forgeId, path, "
                                "url)",
                                key);
    }
    return 0;
}

static int forge_id_field(el_project_registration *out, const struct json_object *obj)
{
    struct json_object *v = NULL;
    int64_t id;

    if (!json_object_object_get_ex(obj, "forgeId", &v) || v == NULL) {
        if (out->forge != EL_FORGE_GIT)
            return fg_error_set(FG_EINVALID, "forgeId: required for %s projects",
                                el_forge_name(out->forge));
        return 0;
    }
    if (out->forge == EL_FORGE_GIT)
        return fg_error_set(FG_EINVALID, "forgeId: not allowed for plain git projects (their "
                                         "identity is the url)");
    if (!json_object_is_type(v, json_type_int))
        return fg_error_set(FG_EINVALID, "forgeId: must be a positive integer");
    /* json-c clamps numbers beyond int64 to INT64_MAX: that edge is refused with them */
    id = json_object_get_int64(v);
    if (id <= 0 || id == INT64_MAX)
        return fg_error_set(FG_EINVALID, "forgeId: must be a positive integer");
    out->forge_id = (long long)id;
    return 0;
}

int el_project_registration_from_json(el_project_registration *out, const struct json_object *obj)
{
    const char *forge, *path, *url;
    int rc;

    memset(out, 0, sizeof(*out));
    if (obj == NULL || !json_object_is_type(obj, json_type_object))
        return fg_error_set(FG_EINVALID, "body: must be a JSON object");
    if ((rc = check_fields(obj)) < 0 || (rc = string_field(&forge, obj, "forge")) < 0)
        return rc;
    if (!forge_parse(&out->forge, forge))
        return fg_error_set(FG_EINVALID, "forge: must be github, gitlab or git");
    if ((rc = forge_id_field(out, obj)) < 0 || (rc = string_field(&path, obj, "path")) < 0 ||
        (rc = check_path(path, out->forge)) < 0 || (rc = string_field(&url, obj, "url")) < 0 ||
        (rc = check_url(url)) < 0)
        return rc;
    snprintf(out->path, sizeof(out->path), "%s", path);
    snprintf(out->url, sizeof(out->url), "%s", url);
    return 0;
}

/* ---- rows ------------------------------------------------------------------------------- */

static void copy_text(char *out, size_t size, const fg_pg_result *res, size_t row, size_t col)
{
    const char *v = fg_pg_result_text(res, row, col);

    snprintf(out, size, "%s", v != NULL ? v : "");
}

/* A row of SQL_PROJECT_COLUMNS. */
static int project_from_row(el_project *out, const fg_pg_result *res, size_t row)
{
    int64_t id, forge_id = 0;
    const char *forge = fg_pg_result_text(res, row, 1);

    memset(out, 0, sizeof(*out));
    if (fg_pg_result_int64(&id, res, row, 0) < 0 || forge == NULL ||
        !forge_parse(&out->forge, forge) ||
        (!fg_pg_result_is_null(res, row, 2) && fg_pg_result_int64(&forge_id, res, row, 2) < 0))
        return fg_error_set(FG_ERROR, "unexpected project row from the database");
    out->id.value = id;
    out->forge_id = forge_id;
    copy_text(out->path, sizeof(out->path), res, row, 3);
    copy_text(out->url, sizeof(out->url), res, row, 4);
    copy_text(out->created_at, sizeof(out->created_at), res, row, 5);
    copy_text(out->latest_event_date, sizeof(out->latest_event_date), res, row, 6);
    copy_text(out->first_synced_at, sizeof(out->first_synced_at), res, row, 7);
    return 0;
}

static int put_json_text(fg_buf *b, const char *s)
{
    int rc;

    if ((rc = fg_buf_putc(b, '"')) < 0 || (rc = fg_buf_put_json_string(b, s, strlen(s))) < 0)
        return rc;
    return fg_buf_putc(b, '"');
}

static int put_json_time(fg_buf *b, const char *s)
{
    return s[0] == '\0' ? fg_buf_puts(b, "null") : put_json_text(b, s);
}

int el_project_put_json(fg_buf *out, const el_project *p)
{
    int rc;

    if ((rc = fg_buf_printf(out, "{\"id\":%lld,\"forge\":\"%s\",\"forgeId\":", p->id.value,
                            el_forge_name(p->forge))) < 0 ||
        (rc = p->forge_id > 0 ? fg_buf_printf(out, "%lld", p->forge_id)
                              : fg_buf_puts(out, "null")) < 0 ||
        (rc = fg_buf_puts(out, ",\"path\":")) < 0 || (rc = put_json_text(out, p->path)) < 0 ||
        (rc = fg_buf_puts(out, ",\"url\":")) < 0 || (rc = put_json_text(out, p->url)) < 0 ||
        (rc = fg_buf_puts(out, ",\"createdAt\":")) < 0 ||
        (rc = put_json_time(out, p->created_at)) < 0 ||
        (rc = fg_buf_puts(out, ",\"latestEventDate\":")) < 0 ||
        (rc = put_json_time(out, p->latest_event_date)) < 0 ||
        (rc = fg_buf_puts(out, ",\"firstSyncedAt\":")) < 0 ||
        (rc = put_json_time(out, p->first_synced_at)) < 0)
        return rc;
    return fg_buf_putc(out, '}');
}

/* ---- registration and look-up ----------------------------------------------------------- */

/* One project row from a statement, FG_ENOTFOUND when it returned none. */
static int exec_one_project(el_project *out, fg_pg_conn *pg, const char *name, const char *sql,
                            size_t nparams, const char *const *params)
{
    fg_pg_result *res = NULL;
    int rc;

    if ((rc = fg_pg_exec_prepared(&res, pg, name, sql, nparams, params)) < 0)
        goto done;
    if (fg_pg_result_rows(res) == 0) {
        rc = FG_ENOTFOUND;
        goto done;
    }
    rc = project_from_row(out, res, 0);
done:
    fg_pg_result_free(res);
    return rc;
}

int el_project_register(el_project *out, bool *out_created, fg_pg_conn *pg,
                        const el_project_registration *reg)
{
    char forge_id[EL_PROJECT_ID_TEXT_MAX];
    const char *insert[4], *find[2];
    int rc = FG_ERROR;

    *out_created = false;
    snprintf(forge_id, sizeof(forge_id), "%lld", reg->forge_id);
    insert[0] = el_forge_name(reg->forge);
    insert[1] = reg->forge == EL_FORGE_GIT ? NULL : forge_id;
    insert[2] = reg->path;
    insert[3] = reg->url;
    find[0] = insert[0];
    find[1] = reg->forge == EL_FORGE_GIT ? reg->url : forge_id;
    /* Looking first keeps repeats from drawing ids they would not use; the row found, or the one
     * a conflicting insert proves, may be deleted before it is read: then round again. */
    for (int attempt = 0; attempt < EL_PROJECT_TX_ATTEMPTS; attempt++) {
        if (reg->forge == EL_FORGE_GIT)
            rc = exec_one_project(out, pg, "el_project_find_git",
                                  "SELECT " SQL_PROJECT_COLUMNS " FROM project"
                                  " WHERE forge = $1 AND url = $2",
                                  2, find);
        else
            rc = exec_one_project(out, pg, "el_project_find_forge",
                                  "SELECT " SQL_PROJECT_COLUMNS " FROM project"
                                  " WHERE forge = $1 AND forge_id = $2::bigint",
                                  2, find);
        if (rc != FG_ENOTFOUND)
            return rc;
        rc = exec_one_project(out, pg, "el_project_insert",
                              "INSERT INTO project (forge, forge_id, path, url)"
                              " VALUES ($1, $2::bigint, $3, $4) ON CONFLICT DO NOTHING"
                              " RETURNING " SQL_PROJECT_COLUMNS,
                              4, insert);
        if (rc == 0)
            *out_created = true;
        if (rc != FG_ENOTFOUND)
            return rc;
    }
    return fg_error_set(FG_ECONFLICT, "the registration of %s raced with its removal; try again",
                        reg->path);
}

int el_project_get(el_project *out, fg_pg_conn *pg, el_project_id id)
{
    char id_text[EL_PROJECT_ID_TEXT_MAX];
    const char *params[1] = {id_text};
    int rc;

    snprintf(id_text, sizeof(id_text), "%lld", id.value);
    rc = exec_one_project(out, pg, "el_project_get",
                          "SELECT " SQL_PROJECT_COLUMNS " FROM project WHERE id = $1::bigint", 1,
                          params);
    if (rc == FG_ENOTFOUND)
        return fg_error_set(FG_ENOTFOUND, "no project %lld", id.value);
    return rc;
}

int el_project_list(fg_buf *out, long long *out_next, fg_pg_conn *pg, long long after,
                    long long limit, const char *path)
{
    char after_text[EL_PROJECT_ID_TEXT_MAX], limit_text[EL_PROJECT_ID_TEXT_MAX];
    const char *params[3] = {after_text, limit_text, path};
    fg_pg_result *res = NULL;
    size_t rows;
    el_project p;
    int rc;

    *out_next = 0;
    if (limit < 1 || limit > EL_PROJECT_LIST_MAX)
        return fg_error_set(FG_EINVALID, "limit: must be 1 to %d", EL_PROJECT_LIST_MAX);
    snprintf(after_text, sizeof(after_text), "%lld", after);
    /* one row more than asked tells whether another page follows */
    snprintf(limit_text, sizeof(limit_text), "%lld", limit + 1);
    if ((rc = fg_pg_exec_prepared(&res, pg, "el_project_list",
                                  "SELECT " SQL_PROJECT_COLUMNS " FROM project"
                                  " WHERE id > $1::bigint AND ($3::text IS NULL OR path = $3)"
                                  " ORDER BY id LIMIT $2::bigint",
                                  3, params)) < 0)
        goto done;
    rows = fg_pg_result_rows(res);
    for (size_t i = 0; i < rows && i < (size_t)limit; i++) {
        if ((rc = project_from_row(&p, res, i)) < 0 ||
            (i > 0 && (rc = fg_buf_putc(out, ',')) < 0) || (rc = el_project_put_json(out, &p)) < 0)
            goto done;
        if (rows > (size_t)limit)
            *out_next = p.id.value;
    }
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

/* ---- status ----------------------------------------------------------------------------- */

static void status_summarise(el_project_status *st)
{
    bool waiting = false;

    for (int s = EL_STATUS_NEW; s < EL_STATUS_DELETED; s++) {
        long long n = st->by_status[s];

        st->total += n;
        if (el_status_is_final((el_status)s))
            st->final += n;
        else if (n > 0)
            waiting = true;
    }
    st->failed = st->by_status[EL_STATUS_GENERATION_NON_RECOVERABLE_FAILURE] +
                 st->by_status[EL_STATUS_TRANSFORMATION_NON_RECOVERABLE_FAILURE];
    /* A project registered a moment ago has no events and is not done: commit sync has yet to
     * say what there is. */
    st->done = st->synced && !waiting;
    if (st->total == 0)
        st->progress = st->done ? 100 : 0;
    else
        st->progress = (int)(st->final * 100 / st->total);
    if (!st->done && st->progress == 100)
        st->progress = 99;
}

/* A project's events per status, read from the partial indexes of event, which between them cover
 * every status but TRIPLES_STORE (each arm's condition is exactly one index's predicate:
 * event_ready_generation, event_ready_transformation, event_awaiting_deletion, event_processing,
 * event_stopped); TRIPLES_STORE is the rest of the project's event_commit rows, every event having
 * exactly one (migration 0005). So the cost follows the project's unfinished events, and a stored
 * project costs a count of its keys. One statement, one snapshot: the rest is never negative. */
#define SQL_STATUS_ARM(WHERE, PREDICATE)                                                           \
    "SELECT e.status FROM event e WHERE " WHERE "e.status " PREDICATE
/* (clang-format would break these literals apart) */
/* clang-format off */
#define SQL_UNFINISHED(WHERE)                                                                      \
    SQL_STATUS_ARM(WHERE, "IN ('NEW', 'GENERATION_RECOVERABLE_FAILURE')")                          \
    " UNION ALL "                                                                                  \
    SQL_STATUS_ARM(WHERE, "IN ('TRIPLES_GENERATED', 'TRANSFORMATION_RECOVERABLE_FAILURE')")        \
    " UNION ALL "                                                                                  \
    SQL_STATUS_ARM(WHERE, "= 'AWAITING_DELETION'")                                                 \
    " UNION ALL "                                                                                  \
    SQL_STATUS_ARM(WHERE, "IN ('GENERATING_TRIPLES', 'TRANSFORMING_TRIPLES', 'DELETING')")         \
    " UNION ALL "                                                                                  \
    SQL_STATUS_ARM(WHERE, "IN ('SKIPPED', 'GENERATION_NON_RECOVERABLE_FAILURE',"                   \
                          " 'TRANSFORMATION_NON_RECOVERABLE_FAILURE')")

/* The unfinished events counted per status: the arms over WHERE ("" or SQL_PROJECT_FILTER). */
#define SQL_COUNTED(WHERE)                                                                         \
    "WITH unfinished AS (" SQL_UNFINISHED(WHERE) "), "                                             \
    "counted AS (SELECT u.status::text AS status, count(*) AS n FROM unfinished u"                 \
    " GROUP BY u.status)"
#define SQL_PROJECT_FILTER "e.project_id = $1::bigint AND "

/* One project: its counts, TRIPLES_STORE as the rest, and whether it is synced. */
#define SQL_STATUS_COUNTS                                                                          \
    SQL_COUNTED(SQL_PROJECT_FILTER)                                                                \
    ", stored AS (SELECT (SELECT count(*) FROM event_commit c WHERE c.project_id = $1::bigint)"    \
    " - (SELECT coalesce(sum(n), 0) FROM counted) AS n) "                                          \
    "SELECT p.first_synced_at IS NOT NULL AND (p.sync_requested_at IS NULL"                        \
    " OR coalesce(p.sync_answered_at >= p.sync_requested_at, false)), c.status, c.n "              \
    "FROM project p LEFT JOIN (SELECT status, n FROM counted UNION ALL"                            \
    " SELECT 'TRIPLES_STORE', s.n FROM stored s WHERE s.n > 0) c ON true WHERE p.id = $1::bigint"

/* Every project: the same, over the whole table (the fg_el_events gauge). */
#define SQL_ALL_STATUS_COUNTS                                                                      \
    SQL_COUNTED("")                                                                                \
    " SELECT status, n FROM counted UNION ALL SELECT 'TRIPLES_STORE',"                             \
    " (SELECT count(*) FROM event_commit) - (SELECT coalesce(sum(n), 0) FROM counted)"
/* clang-format on */

int el_project_status_get(el_project_status *out, fg_pg_conn *pg, el_project_id id)
{
    char id_text[EL_PROJECT_ID_TEXT_MAX];
    const char *params[1] = {id_text};
    fg_pg_result *res = NULL;
    size_t rows;
    int rc;

    memset(out, 0, sizeof(*out));
    out->id = id;
    snprintf(id_text, sizeof(id_text), "%lld", id.value);
    /* synced: a sync completed, and none asked for since is still to complete (migration
     * 0003); the counts: SQL_STATUS_COUNTS */
    if ((rc = fg_pg_exec_prepared(&res, pg, "el_project_status", SQL_STATUS_COUNTS, 1, params)) < 0)
        goto done;
    if ((rows = fg_pg_result_rows(res)) == 0) {
        rc = fg_error_set(FG_ENOTFOUND, "no project %lld", id.value);
        goto done;
    }
    for (size_t i = 0; i < rows; i++) {
        const char *name = fg_pg_result_text(res, i, 1);
        el_status s;
        int64_t n;

        if ((rc = fg_pg_result_bool(&out->synced, res, i, 0)) < 0)
            goto done;
        if (name == NULL)
            continue; /* no events */
        if (!el_status_parse(&s, name) || fg_pg_result_int64(&n, res, i, 2) < 0) {
            rc = fg_error_set(FG_ERROR, "unexpected status row from the database");
            goto done;
        }
        out->by_status[s] = n;
    }
    status_summarise(out);
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

int el_project_count_events(long long out[EL_STATUS_COUNT], fg_pg_conn *pg)
{
    fg_pg_result *res = NULL;
    int rc;

    memset(out, 0, sizeof(long long) * EL_STATUS_COUNT);
    if ((rc = fg_pg_exec_prepared(&res, pg, "el_project_count_events", SQL_ALL_STATUS_COUNTS, 0,
                                  NULL)) < 0)
        goto done;
    for (size_t i = 0; i < fg_pg_result_rows(res); i++) {
        const char *name = fg_pg_result_text(res, i, 0);
        el_status s;
        int64_t n;

        if (name == NULL || !el_status_parse(&s, name) || fg_pg_result_int64(&n, res, i, 1) < 0) {
            rc = fg_error_set(FG_ERROR, "unexpected status row from the database");
            goto done;
        }
        out[s] = n > 0 ? (long long)n : 0;
    }
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

int el_project_status_put_json(fg_buf *out, const el_project_status *st)
{
    int rc;

    if ((rc = fg_buf_printf(out, "{\"id\":%lld,\"total\":%lld,\"byStatus\":{", st->id.value,
                            st->total)) < 0)
        return rc;
    for (int s = EL_STATUS_NEW; s < EL_STATUS_DELETED; s++)
        if ((rc = fg_buf_printf(out, "%s\"%s\":%lld", s == EL_STATUS_NEW ? "" : ",",
                                el_status_name((el_status)s), st->by_status[s])) < 0)
            return rc;
    return fg_buf_printf(out, "},\"done\":%s,\"progress\":%d,\"synced\":%s,\"failed\":%lld}",
                         st->done ? "true" : "false", st->progress, st->synced ? "true" : "false",
                         st->failed);
}

/* ---- removal and requests --------------------------------------------------------------- */

/* *out_retry: the failure was a serialization failure, deadlock or lost connection, which a
 * new attempt may not meet (read before the rollback resets the handle's SQLSTATE). */
static int remove_once(el_project *out, bool *out_retry, fg_pg_conn *pg, const char *id_text)
{
    const char *params[3] = {id_text, NULL, NULL};
    el_project p;
    int rc;

    if ((rc = fg_pg_begin(pg)) < 0)
        return rc;
    rc = exec_one_project(&p, pg, "el_project_lock",
                          "SELECT " SQL_PROJECT_COLUMNS " FROM project WHERE id = $1::bigint"
                          " FOR UPDATE",
                          1, params);
    if (rc < 0)
        goto done;
    params[1] = el_forge_name(p.forge);
    params[2] = p.path;
    /* The status log outlives the events (it is history) and must say they are gone, or a
     * rebuild from it would find events that vanished. PROJECT_REMOVED outlives the row (no
     * foreign key); a re-provision of it would not. */
    if ((rc = fg_pg_exec_prepared(NULL, pg, "el_project_log_removal",
                                  "INSERT INTO status_log (event_id, project_id, from_status,"
                                  " to_status, cause) SELECT e.id, e.project_id, e.status, NULL,"
                                  " 'PROJECT_REMOVED' FROM event_commit c"
                                  " JOIN event e ON e.id = c.event_id"
                                  " WHERE c.project_id = $1::bigint",
                                  1, params)) < 0 ||
        (rc = fg_pg_exec_prepared(NULL, pg, "el_project_drop_requests",
                                  "DELETE FROM project_request WHERE project_id = $1::bigint"
                                  " AND kind = 'REPROVISION'",
                                  1, params)) < 0 ||
        (rc = fg_pg_exec_prepared(
             NULL, pg, "el_project_removed",
             "INSERT INTO project_request (project_id, kind, project_forge, project_path)"
             " VALUES ($1::bigint, 'PROJECT_REMOVED', $2, $3) ON CONFLICT (project_id, kind)"
             " DO UPDATE SET project_forge = EXCLUDED.project_forge,"
             " project_path = EXCLUDED.project_path, requested_at = now()",
             3, params)) < 0 ||
        (rc = fg_pg_exec_prepared(NULL, pg, "el_project_delete",
                                  "DELETE FROM project WHERE id = $1::bigint", 1, params)) < 0 ||
        (rc = fg_pg_commit(pg)) < 0)
        goto done;
    if (out != NULL)
        *out = p;
    rc = 0;
done:
    *out_retry = rc < 0 && fg_pg_sqlstate_retryable(fg_pg_sqlstate(pg));
    if (rc < 0 && fg_pg_rollback(pg) < 0)
        rc = FG_EUNAVAILABLE;
    return rc;
}

int el_project_remove(el_project *out, fg_pg_conn *pg, el_project_id id)
{
    char id_text[EL_PROJECT_ID_TEXT_MAX];
    int rc = FG_ERROR;

    snprintf(id_text, sizeof(id_text), "%lld", id.value);
    for (int attempt = 0; attempt < EL_PROJECT_TX_ATTEMPTS; attempt++) {
        bool retry = false;

        rc = remove_once(out, &retry, pg, id_text);
        if (rc == FG_ENOTFOUND)
            return fg_error_set(FG_ENOTFOUND, "no project %lld", id.value);
        if (rc == 0 || !retry)
            return rc;
    }
    return rc;
}

/* Runs a statement whose one row counts the projects it found (0 or 1). */
static int exec_project_request(fg_pg_conn *pg, el_project_id id, const char *name, const char *sql)
{
    char id_text[EL_PROJECT_ID_TEXT_MAX];
    const char *params[1] = {id_text};
    fg_pg_result *res = NULL;
    int64_t found = 0;
    int rc;

    snprintf(id_text, sizeof(id_text), "%lld", id.value);
    if ((rc = fg_pg_exec_prepared(&res, pg, name, sql, 1, params)) < 0 ||
        (rc = fg_pg_result_int64(&found, res, 0, 0)) < 0)
        goto done;
    rc = found > 0 ? 0 : fg_error_set(FG_ENOTFOUND, "no project %lld", id.value);
done:
    fg_pg_result_free(res);
    return rc;
}

int el_project_request_reprovision(fg_pg_conn *pg, el_project_id id)
{
    return exec_project_request(
        pg, id, "el_project_reprovision",
        "WITH p AS (SELECT id, forge, path FROM project WHERE id = $1::bigint),"
        " r AS (INSERT INTO project_request (project_id, kind, project_forge, project_path)"
        " SELECT id, 'REPROVISION', forge, path FROM p ON CONFLICT (project_id, kind) DO NOTHING)"
        " SELECT count(*) FROM p");
}

int el_project_request_sync(fg_pg_conn *pg, el_project_id id)
{
    return exec_project_request(pg, id, "el_project_sync",
                                "WITH p AS (UPDATE project SET sync_requested_at = now()"
                                " WHERE id = $1::bigint RETURNING id),"
                                " d AS (DELETE FROM sync_time s USING p WHERE s.project_id = p.id"
                                " AND s.category = 'COMMIT_SYNC')"
                                " SELECT count(*) FROM p");
}
