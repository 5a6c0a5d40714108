/*
 * Internal routes (see wh_admin.h). A replay inserts new outbox rows, and so new message ids:
 * consumers dedupe by message id, so re-sending the old id would be a no-op exactly where an
 * operator wants the effect again; FORGE_EVENT keeps the forge's deliveryId, for consumers that
 * want to recognise the delivery itself. A delivery still waiting in the outbox is not queued a
 * second time. These routes block the loop for one bounded statement (a page), never longer.
 */
#include "wh_admin.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg/buf.h"
#include "fg/log.h"
#include "fg/pg.h"
#include "fg/proto.h"
#include "wh_context.h"
#include "wh_json.h"
#include "wh_projects.h"

#define NUM_TEXT_MAX 24

#define SQL_QUEUE_PICKED                                                                           \
    " queued AS (INSERT INTO outbox (delivery_id) SELECT p.id FROM picked p"                       \
    " WHERE p.route <> 'ignored'"                                                                  \
    " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = p.id) ORDER BY p.id"            \
    " RETURNING 1)"                                                                                \
    " SELECT (SELECT count(*) FROM queued), (SELECT count(*) FROM picked),"                        \
    " (SELECT count(*) FROM picked WHERE route = 'ignored'), (SELECT max(id) FROM picked)"

static const char sql_replay_id[] =
    "WITH picked AS (SELECT id, route FROM delivery WHERE id = $1::bigint)," SQL_QUEUE_PICKED;
static const char sql_replay_key[] =
    "WITH picked AS (SELECT id, route FROM delivery WHERE dedupe_key = $1::text)," SQL_QUEUE_PICKED;
static const char sql_replay_range[] =
    "WITH picked AS (SELECT d.id, d.route FROM delivery d"
    " WHERE d.received_at >= $1::timestamptz"
    " AND ($2::timestamptz IS NULL OR d.received_at < $2::timestamptz)"
    " AND ($3::bigint IS NULL OR d.project_id = $3::bigint) AND d.id > $4::bigint"
    " ORDER BY d.id LIMIT $5::integer)," SQL_QUEUE_PICKED;

enum {
    E_ID,
    E_FORGE,
    E_KEY,
    E_EVENT,
    E_ACTION,
    E_FORGE_ID,
    E_PROJECT_ID,
    E_PATH,
    E_ROUTE,
    E_RECEIVED,
    E_PENDING,
    E_HEADERS,
    E_BODY,
    E_PAGE
};

/* The page's rows up to the byte budget (the running sum reads no body), and how many rows the
 * page had before the budget cut it (E_PAGE), so the caller knows whether there is more. */
static const char sql_export[] =
    "WITH page AS (SELECT d.id, d.body_bytes, sum(d.body_bytes) OVER (ORDER BY d.id) AS running"
    " FROM delivery d"
    " WHERE ($1::timestamptz IS NULL OR d.received_at >= $1::timestamptz)"
    " AND ($2::timestamptz IS NULL OR d.received_at < $2::timestamptz)"
    " AND ($3::bigint IS NULL OR d.project_id = $3::bigint) AND d.id > $4::bigint"
    " ORDER BY d.id LIMIT $5::integer)"
    " SELECT d.id, d.forge, d.dedupe_key, d.event, d.action, d.forge_id, d.project_id,"
    " d.project_path, d.route,"
    " to_char(d.received_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'),"
    " EXISTS (SELECT 1 FROM outbox o WHERE o.delivery_id = d.id), d.headers, d.body,"
    " (SELECT count(*) FROM page)"
    " FROM page p JOIN delivery d ON d.id = p.id"
    " WHERE p.running - p.body_bytes < $6::bigint OR p.running = p.body_bytes ORDER BY d.id";

/* ---- helpers ---------------------------------------------------------------------------- */

static void respond_pg_error(fg_http_request *req, int rc)
{
    /* class 22 is the caller's bad value (a timestamp that does not parse, say) */
    fg_http_respond_fg_error(req, rc == FG_EINVALID ? FG_EINVALID : rc);
}

/* The request body as a JSON object (strictly read); answers 400 itself on failure. */
static struct json_object *read_object(fg_http_request *req)
{
    size_t len = 0;
    const char *body = fg_http_request_body(req, &len);
    wh_json_facts facts;
    struct json_object *root;

    if (body == NULL) {
        fg_http_respond_fg_error(req, FG_ENOMEM);
        return NULL;
    }
    if (len > WH_ADMIN_BODY_MAX) {
        fg_http_respond_error(req, 413, "too_big", "request body over %d bytes", WH_ADMIN_BODY_MAX);
        return NULL;
    }
    if (wh_json_scan(&facts, body, len) < 0) {
        fg_http_respond_error(req, 400, "invalid", "%s", fg_error_last());
        return NULL;
    }
    if ((root = json_tokener_parse(body)) == NULL)
        fg_http_respond_fg_error(req, FG_ENOMEM);
    return root;
}

static bool digits_only(const char *s, size_t max)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > max)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
    }
    return true;
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM). PostgreSQL reads far more
 * ("yesterday", "epoch", dates alone); an API that says RFC 3339 should mean it. */
static bool rfc3339_ok(const char *s)
{
    static const char shape[] = "dddd-dd-ddTdd:dd:dd";
    size_t i = 0;

    if (s == NULL)
        return true; /* absent is fine: the caller decides whether it may be */
    for (; shape[i] != '\0'; i++) {
        if (shape[i] == 'd' ? (s[i] < '0' || s[i] > '9')
                            : (s[i] != shape[i] && !(shape[i] == 'T' && s[i] == 't')))
            return false;
    }
    if (s[i] == '.') {
        size_t digits = 0;
        for (i++; s[i] >= '0' && s[i] <= '9'; i++)
            digits++;
        if (digits == 0 || digits > 9)
            return false;
    }
    if (s[i] == 'Z' || s[i] == 'z')
        return s[i + 1] == '\0';
    return (s[i] == '+' || s[i] == '-') && s[i + 1] >= '0' && s[i + 1] <= '9' && s[i + 2] >= '0' &&
           s[i + 2] <= '9' && s[i + 3] == ':' && s[i + 4] >= '0' && s[i + 4] <= '9' &&
           s[i + 5] >= '0' && s[i + 5] <= '9' && s[i + 6] == '\0';
}

/* {forge}/{forgeId} of a /hooks route; answers 400 itself when they are not usable. */
static bool hook_target(fg_http_request *req, fg_proto_forge *forge, const char **forge_id)
{
    const char *f = fg_http_request_param(req, "forge");

    *forge_id = fg_http_request_param(req, "forgeId");
    if (f == NULL || fg_proto_forge_parse(forge, f) < 0 || *forge == FG_PROTO_FORGE_GIT) {
        fg_http_respond_error(req, 400, "invalid", "forge must be github or gitlab");
        return false;
    }
    if (!digits_only(*forge_id, WH_JSON_ID_DIGITS_MAX)) {
        fg_http_respond_error(req, 400, "invalid",
                              "forgeId must be a decimal id of at most %d digits",
                              WH_JSON_ID_DIGITS_MAX);
        return false;
    }
    return true;
}

static void respond_hook(fg_http_request *req, int status, fg_proto_forge forge,
                         const char *forge_id, long long id, const char *path)
{
    fg_buf b;

    fg_buf_init(&b, 4096);
    if (fg_buf_printf(&b, "{\"forge\":\"%s\",\"forgeId\":%s,\"projectId\":%lld,\"path\":\"",
                      fg_proto_forge_name(forge), forge_id, id) < 0 ||
        fg_buf_put_json_string(&b, path, strlen(path)) < 0 || fg_buf_puts(&b, "\"}") < 0)
        fg_http_respond_fg_error(req, FG_ENOMEM);
    else
        fg_http_respond_json_buf(req, status, &b);
    fg_buf_dispose(&b);
}

/* ---- /hooks ------------------------------------------------------------------------------ */

void wh_admin_hook_put(fg_http_request *req, void *payload)
{
    wh_context *ctx = payload;
    fg_proto_forge forge;
    const char *forge_id, *path;
    struct json_object *root, *v;
    long long id;
    int rc;

    if (!hook_target(req, &forge, &forge_id) || (root = read_object(req)) == NULL)
        return;
    if (!json_object_object_get_ex(root, "projectId", &v) ||
        !json_object_is_type(v, json_type_int) || (id = json_object_get_int64(v)) < 1 ||
        id > FG_PROTO_INT_MAX || !json_object_object_get_ex(root, "path", &v) ||
        !json_object_is_type(v, json_type_string)) {
        fg_http_respond_error(req, 400, "invalid",
                              "expected {\"projectId\": 1..2^53-1, \"path\": \"ns/name\"}");
        goto done;
    }
    path = json_object_get_string(v);
    rc = wh_projects_register(ctx->projects, fg_service_db(ctx->svc), forge, forge_id, id, path);
    if (rc < 0) {
        fg_http_respond_fg_error(req, rc);
        goto done;
    }
    fg_log_emit(FG_LOG_INFO,
                FG_LOG_FIELDS(FG_LOG_STR("forge", fg_proto_forge_name(forge)),
                              FG_LOG_STR("forge_id", forge_id), FG_LOG_INT("project", id),
                              FG_LOG_STR("path", path)),
                "hook registered");
    respond_hook(req, 200, forge, forge_id, id, path);
done:
    json_object_put(root);
}

void wh_admin_hook_get(fg_http_request *req, void *payload)
{
    wh_context *ctx = payload;
    fg_proto_forge forge;
    const char *forge_id;
    wh_project project;
    int rc;

    if (!hook_target(req, &forge, &forge_id))
        return;
    rc = wh_projects_find(&project, ctx->projects, fg_service_db(ctx->svc), forge, forge_id);
    if (rc < 0)
        fg_http_respond_fg_error(req, rc);
    else
        respond_hook(req, 200, forge, forge_id, project.id, project.path);
}

void wh_admin_hook_delete(fg_http_request *req, void *payload)
{
    wh_context *ctx = payload;
    fg_proto_forge forge;
    const char *forge_id;
    int rc;

    if (!hook_target(req, &forge, &forge_id))
        return;
    rc = wh_projects_unregister(ctx->projects, fg_service_db(ctx->svc), forge, forge_id);
    if (rc < 0)
        fg_http_respond_fg_error(req, rc);
    else
        fg_http_respond_text(req, 204, NULL, "", 0);
}

/* ---- replay ----------------------------------------------------------------------------- */

typedef struct {
    const char *since, *until;
    char project[NUM_TEXT_MAX], after[NUM_TEXT_MAX];
    bool has_project;
} range;

static const char *string_member(struct json_object *root, const char *name)
{
    struct json_object *v;

    if (!json_object_object_get_ex(root, name, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* Reads {"since","until","project","after"}; FG_EINVALID naming what is wrong. */
static int read_range(range *out, struct json_object *root)
{
    struct json_object *v;
    long long after = 0;

    memset(out, 0, sizeof(*out));
    if ((out->since = string_member(root, "since")) == NULL)
        return fg_error_set(FG_EINVALID, "expected {\"id\": ...} or {\"since\": \"<RFC 3339>\"}");
    out->until = string_member(root, "until");
    if (!rfc3339_ok(out->since) || !rfc3339_ok(out->until))
        return fg_error_set(FG_EINVALID,
                            "since and until are RFC 3339 times (2024-05-01T00:00:00Z)");
    if (json_object_object_get_ex(root, "project", &v)) {
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1)
            return fg_error_set(FG_EINVALID, "project must be a project id");
        snprintf(out->project, sizeof(out->project), "%lld", (long long)json_object_get_int64(v));
        out->has_project = true;
    }
    if (json_object_object_get_ex(root, "after", &v)) {
        if (!json_object_is_type(v, json_type_int) || (after = json_object_get_int64(v)) < 0)
            return fg_error_set(FG_EINVALID, "after must be a delivery id");
    }
    snprintf(out->after, sizeof(out->after), "%lld", after);
    return 0;
}

static void answer_replay(wh_context *ctx, fg_http_request *req, const fg_pg_result *res,
                          bool by_id)
{
    int64_t queued = 0, matched = 0, ignored = 0, last = 0;
    char json[160];

    if (fg_pg_result_int64(&queued, res, 0, 0) < 0 || fg_pg_result_int64(&matched, res, 0, 1) < 0 ||
        fg_pg_result_int64(&ignored, res, 0, 2) < 0) {
        fg_http_respond_fg_error(req, FG_ERROR);
        return;
    }
    if (by_id && matched == 0) {
        fg_http_respond_error(req, 404, "not_found", "no archived delivery has that id");
        return;
    }
    if (by_id && matched == ignored) {
        fg_http_respond_error(
            req, 409, "conflict",
            "that delivery was archived as ignored: it has no message to publish");
        return;
    }
    if (queued > 0)
        fg_service_wake(ctx->svc);
    if (!by_id && matched == WH_ADMIN_PAGE_MAX && fg_pg_result_int64(&last, res, 0, 3) == 0)
        snprintf(json, sizeof(json), "{\"replayed\":%lld,\"matched\":%lld,\"next\":%lld}",
                 (long long)queued, (long long)matched, (long long)last);
    else
        snprintf(json, sizeof(json), "{\"replayed\":%lld,\"matched\":%lld,\"next\":null}",
                 (long long)queued, (long long)matched);
    fg_log_emit(FG_LOG_INFO, FG_LOG_FIELDS(FG_LOG_INT("replayed", queued)),
                "deliveries queued for re-publication");
    fg_http_respond_json(req, 200, json);
}

void wh_admin_replay(fg_http_request *req, void *payload)
{
    wh_context *ctx = payload;
    struct json_object *root = read_object(req), *id = NULL;
    fg_pg_result *res = NULL;
    char num[NUM_TEXT_MAX], limit[NUM_TEXT_MAX];
    bool by_id;
    range r;
    int rc;

    if (root == NULL)
        return;
    by_id = json_object_object_get_ex(root, "id", &id);
    if (by_id) {
        const char *params[1] = {num};
        if (json_object_is_type(id, json_type_int)) {
            snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(id));
            rc = fg_pg_exec(&res, fg_service_db(ctx->svc), sql_replay_id, 1, params);
        } else if (json_object_is_type(id, json_type_string)) {
            params[0] = json_object_get_string(id);
            rc = fg_pg_exec(&res, fg_service_db(ctx->svc), sql_replay_key, 1, params);
        } else {
            rc = fg_error_set(FG_EINVALID, "id must be an archive id or a delivery id");
        }
    } else if ((rc = read_range(&r, root)) == 0) {
        const char *params[5] = {r.since, r.until, r.has_project ? r.project : NULL, r.after,
                                 limit};
        snprintf(limit, sizeof(limit), "%d", WH_ADMIN_PAGE_MAX);
        rc = fg_pg_exec(&res, fg_service_db(ctx->svc), sql_replay_range, 5, params);
    }
    if (rc < 0)
        respond_pg_error(req, rc);
    else
        answer_replay(ctx, req, res, by_id);
    fg_pg_result_free(res);
    json_object_put(root);
}

/* ---- export ----------------------------------------------------------------------------- */

static int put_nullable_number(fg_buf *b, const fg_pg_result *res, size_t row, size_t col)
{
    return fg_buf_puts(b, fg_pg_result_is_null(res, row, col) ? "null"
                                                              : fg_pg_result_text(res, row, col));
}

static int put_string(fg_buf *b, const fg_pg_result *res, size_t row, size_t col)
{
    const char *s = fg_pg_result_text(res, row, col);
    int rc;

    if (s == NULL)
        return fg_buf_puts(b, "null");
    if ((rc = fg_buf_putc(b, '"')) < 0 || (rc = fg_buf_put_json_string(b, s, strlen(s))) < 0)
        return rc;
    return fg_buf_putc(b, '"');
}

/* One JSON line. The headers object (built by intake) goes in as it is; the body goes in as a
 * string holding the exact bytes the forge sent, so a signature can be checked again and the
 * line stays one line whatever whitespace the body has. */
static int export_line(fg_buf *b, const fg_pg_result *res, size_t row)
{
    bool pending = false;
    int rc;

    if (fg_pg_result_bool(&pending, res, row, E_PENDING) < 0)
        pending = false;
    if ((rc = fg_buf_printf(b, "{\"id\":%s,\"forge\":", fg_pg_result_text(res, row, E_ID))) < 0 ||
        (rc = put_string(b, res, row, E_FORGE)) < 0 ||
        (rc = fg_buf_puts(b, ",\"deliveryId\":")) < 0 ||
        (rc = put_string(b, res, row, E_KEY)) < 0 || (rc = fg_buf_puts(b, ",\"event\":")) < 0 ||
        (rc = put_string(b, res, row, E_EVENT)) < 0 || (rc = fg_buf_puts(b, ",\"action\":")) < 0 ||
        (rc = put_string(b, res, row, E_ACTION)) < 0 ||
        (rc = fg_buf_puts(b, ",\"forgeId\":")) < 0 ||
        (rc = put_nullable_number(b, res, row, E_FORGE_ID)) < 0 ||
        (rc = fg_buf_puts(b, ",\"projectId\":")) < 0 ||
        (rc = put_nullable_number(b, res, row, E_PROJECT_ID)) < 0 ||
        (rc = fg_buf_puts(b, ",\"path\":")) < 0 || (rc = put_string(b, res, row, E_PATH)) < 0 ||
        (rc = fg_buf_puts(b, ",\"route\":")) < 0 || (rc = put_string(b, res, row, E_ROUTE)) < 0 ||
        (rc = fg_buf_puts(b, ",\"receivedAt\":")) < 0 ||
        (rc = put_string(b, res, row, E_RECEIVED)) < 0 ||
        (rc = fg_buf_printf(b,
                            ",\"pending\":%s,\"headers\":%s,\"body\":", pending ? "true" : "false",
                            fg_pg_result_text(res, row, E_HEADERS))) < 0 ||
        (rc = put_string(b, res, row, E_BODY)) < 0)
        return rc;
    return fg_buf_puts(b, "}\n");
}

static int export_limit(long long *out, fg_http_request *req)
{
    const char *s = fg_http_request_query(req, "limit");
    char *end = NULL;
    long long v;

    *out = WH_ADMIN_EXPORT_DEFAULT;
    if (s == NULL)
        return 0;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (end == s || *end != '\0' || errno != 0 || v < 1 || v > WH_ADMIN_PAGE_MAX)
        return fg_error_set(FG_EINVALID, "limit must be 1..%d", WH_ADMIN_PAGE_MAX);
    *out = v;
    return 0;
}

void wh_admin_export(fg_http_request *req, void *payload)
{
    wh_context *ctx = payload;
    const char *project = fg_http_request_query(req, "project");
    const char *after = fg_http_request_query(req, "after");
    char limit_text[NUM_TEXT_MAX], bytes_text[NUM_TEXT_MAX];
    const char *params[6] = {fg_http_request_query(req, "since"),
                             fg_http_request_query(req, "until"),
                             project,
                             after != NULL ? after : "0",
                             limit_text,
                             bytes_text};
    fg_pg_result *res = NULL;
    long long limit = 0;
    int64_t page = 0;
    size_t rows;
    fg_buf b;
    int rc;

    fg_buf_init(&b, WH_ADMIN_EXPORT_BYTES + (size_t)(1 << 20));
    if ((project != NULL && !digits_only(project, 18)) ||
        (after != NULL && !digits_only(after, 18)) || !rfc3339_ok(params[0]) ||
        !rfc3339_ok(params[1]) || export_limit(&limit, req) < 0) {
        fg_http_respond_error(req, 400, "invalid",
                              "since/until are RFC 3339 times, project and after ids, limit 1..%d",
                              WH_ADMIN_PAGE_MAX);
        goto done;
    }
    snprintf(limit_text, sizeof(limit_text), "%lld", limit);
    snprintf(bytes_text, sizeof(bytes_text), "%zu", WH_ADMIN_EXPORT_BYTES);
    if ((rc = fg_pg_exec(&res, fg_service_db(ctx->svc), sql_export, 6, params)) < 0) {
        respond_pg_error(req, rc);
        goto done;
    }
    rows = fg_pg_result_rows(res);
    for (size_t i = 0; i < rows; i++) {
        if ((rc = export_line(&b, res, i)) < 0) {
            fg_http_respond_fg_error(req, rc);
            goto done;
        }
    }
    /* a short page is the last one unless the byte budget cut it */
    if (rows > 0 && fg_pg_result_int64(&page, res, 0, E_PAGE) < 0)
        page = 0;
    if (rows > 0 && (rows == (size_t)limit || (size_t)page > rows) &&
        fg_http_response_add_header(req, "X-Fg-Next-After",
                                    fg_pg_result_text(res, rows - 1, E_ID)) < 0) {
        fg_http_respond_fg_error(req, FG_ENOMEM);
        goto done;
    }
    fg_http_respond_text(req, 200, "application/x-ndjson", b.ptr, b.len);
done:
    fg_buf_dispose(&b);
    fg_pg_result_free(res);
}
