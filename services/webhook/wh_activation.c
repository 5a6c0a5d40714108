/*
 * Activation (see wh_activation.h). The loop thread parses and checks a request, then hands it
 * to the job worker, which does the slow part with its own database connection and HTTP client
 * and writes the answer; the loop sends it and forgets the project map (the table changed). The
 * order of the steps is chosen so that a failure leaves nothing that a retry cannot finish: the
 * project row (and with it the acceptance of deliveries) comes after event-log and
 * token-repository agreed, and the hook after the row, so the forge's first ping finds the
 * project. A token is wiped from memory as soon as the request is over and is never logged.
 */
#include "wh_activation.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg/buf.h"
#include "fg/crypto.h"
#include "fg/http_client.h"
#include "fg/log.h"
#include "fg/pg.h"
#include "wh_forge.h"
#include "wh_jobs.h"
#include "wh_json.h"
#include "wh_projects.h"

#define ANSWER_MAX   (64 * 1024)
#define BODY_MAX     (64 * 1024)
#define CONNECT_MS   5000
#define NUM_TEXT_MAX 24
#define CALL_URL_MAX FG_HTTP_CLIENT_URL_MAX

struct wh_activation {
    wh_context *ctx;
    wh_jobs *jobs;
    fg_pg_conn *db;       /* worker thread */
    fg_http_client *http; /* worker thread */
};

typedef enum { KIND_ADD, KIND_REMOVE, KIND_VALIDATE } job_kind;

typedef struct {
    wh_job base; /* first: wh_jobs hands this pointer back */
    job_kind kind;
    fg_http_request *req; /* loop thread only */
    fg_proto_forge forge;
    char path[FG_PROTO_PROJECT_PATH_MAX + 1];
    char url[WH_ACTIVATION_URL_MAX + 1];
    long long forge_id; /* -1: to be looked up */
    char *token;        /* NULL: none given */
    long long project;  /* event-log's id */
    int status;         /* the answer, written by the worker */
    const char *code;   /* error code when status >= 400 */
    fg_buf answer;      /* JSON (success) or the message (error) */
} job;

static const char sql_record[] =
    "WITH gone AS (DELETE FROM project WHERE forge = $2 AND forge_id = $3::bigint"
    " AND id <> $1::bigint),"
    " row AS (INSERT INTO project (id, forge, forge_id, path, url)"
    " VALUES ($1::bigint, $2, $3::bigint, $4, $5) ON CONFLICT (id) DO UPDATE"
    " SET forge = EXCLUDED.forge, forge_id = EXCLUDED.forge_id, path = EXCLUDED.path,"
    " url = EXCLUDED.url RETURNING hook_id, (xmax = 0) AS inserted)"
    " SELECT hook_id, inserted FROM row";
static const char sql_queue_sync[] =
    "INSERT INTO outbox (project_id, forge, project_path) VALUES ($1::bigint, $2, $3)";
static const char sql_read[] =
    "SELECT forge, forge_id, path, hook_id FROM project WHERE id = $1::bigint";
static const char sql_set_hook[] = "UPDATE project SET hook_id = $2::bigint WHERE id = $1::bigint";
static const char sql_forget[] = "DELETE FROM project WHERE id = $1::bigint";

/* ---- answers (worker side) -------------------------------------------------------------- */

static void fail(job *j, int status, const char *code, const char *fmt, ...) FG_PRINTF(4, 5);

static void fail(job *j, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    j->status = status;
    j->code = code;
    fg_buf_clear(&j->answer);
    va_start(ap, fmt);
    if (fg_buf_vprintf(&j->answer, fmt, ap) < 0)
        fg_buf_clear(&j->answer);
    va_end(ap);
}

/* An upstream failure as an answer: the forge or a sibling service said no, or is away. */
static void fail_upstream(job *j, int rc, const char *who)
{
    switch (rc) {
    case FG_ENOTFOUND:
        fail(j, 404, "not_found", "%s: %s", who, fg_error_last());
        break;
    case FG_EAUTH:
        fail(j, 400, "invalid", "%s: %s", who, fg_error_last());
        break;
    case FG_EUNAVAILABLE:
    case FG_ETIMEOUT:
        fail(j, 503, "unavailable", "%s: %s", who, fg_error_last());
        break;
    default:
        fail(j, 502, "bad_gateway", "%s: %s", who, fg_error_last());
        break;
    }
}

/* ---- worker resources ------------------------------------------------------------------- */

static int resources(wh_activation *a)
{
    fg_http_client_options o;
    int rc;

    if (a->db == NULL && (rc = fg_pg_connect(&a->db, a->ctx->cfg->service.db_url, CONNECT_MS)) < 0)
        return rc;
    if (a->http != NULL)
        return 0;
    fg_http_client_options_init(&o);
    o.connect_timeout_ms = 5000;
    o.timeout_ms = 20000;
    o.max_attempts = 3;
    o.max_total_ms = 45000;
    o.max_response_bytes = (size_t)8 << 20;
    return fg_http_client_new(&a->http, &o);
}

static wh_forge forge_api(const wh_activation *a)
{
    const wh_config *cfg = a->ctx->cfg;
    wh_forge f = {a->http, cfg->github_api_url, cfg->gitlab_url, cfg->public_url};

    return f;
}

/* A call to event-log or token-repository with the service key. */
static int internal(wh_activation *a, const char *method, const char *base, const char *path,
                    const fg_buf *body, fg_http_client_response *res)
{
    char url[CALL_URL_MAX], auth[512];
    const char *headers[2] = {auth, "Content-Type: application/json"};
    fg_http_client_request req;
    int rc;

    snprintf(url, sizeof(url), "%s%s", base, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", a->ctx->cfg->service.service_key);
    fg_http_client_request_init(&req);
    req.method = method;
    req.url = url;
    req.headers = headers;
    req.nheaders = body != NULL ? 2 : 1;
    req.body = body != NULL ? body->ptr : NULL;
    req.body_len = body != NULL ? body->len : 0;
    req.idempotent = true; /* every call here can be repeated safely */
    fg_http_client_response_init(res);
    rc = fg_http_client_send(a->http, res, &req);
    fg_crypto_wipe(auth, sizeof(auth));
    if (rc < 0 && res->status == 0)
        return fg_error_set(FG_EUNAVAILABLE, "cannot be reached");
    if (res->status == 404)
        return fg_error_set(FG_ENOTFOUND, "answered 404");
    if (res->status == 501) /* an older version of the service: waiting will not help */
        return fg_error_set(FG_ERROR, "answered 501 (not implemented)");
    if (res->status >= 500 || res->status == 0)
        return fg_error_set(FG_EUNAVAILABLE, "answered %ld", res->status);
    return 0;
}

/* The message of an {"error","message"} answer, for passing a refusal on. */
static void error_message(char *out, size_t size, const fg_http_client_response *res)
{
    json_object *root = json_tokener_parse(res->body.ptr), *m;

    snprintf(out, size, "answered %ld", res->status);
    if (root != NULL && json_object_object_get_ex(root, "message", &m))
        snprintf(out, size, "%s", json_object_get_string(m));
    json_object_put(root);
}

/* ---- activation steps (worker) ---------------------------------------------------------- */

/* event-log assigns the project id; a repeat answers 200 with the same project. */
static int register_with_event_log(wh_activation *a, job *j, bool *out_new)
{
    fg_http_client_response res;
    json_object *root = NULL, *v;
    fg_buf body;
    char message[512];
    int rc;

    fg_buf_init(&body, BODY_MAX);
    rc = fg_buf_printf(&body, "{\"forge\":\"%s\",", fg_proto_forge_name(j->forge));
    if (rc == 0 && j->forge != FG_PROTO_FORGE_GIT)
        rc = fg_buf_printf(&body, "\"forgeId\":%lld,", j->forge_id);
    if (rc == 0)
        rc = fg_buf_printf(&body, "\"path\":\"%s\",\"url\":\"", j->path);
    if (rc == 0 && (rc = fg_buf_put_json_string(&body, j->url, strlen(j->url))) == 0)
        rc = fg_buf_puts(&body, "\"}");
    if (rc < 0) {
        fail(j, 500, "internal", "cannot build the registration");
        goto done;
    }
    if ((rc = internal(a, "POST", a->ctx->cfg->event_log_url, "/projects", &body, &res)) < 0) {
        fail_upstream(j, rc == FG_ENOTFOUND ? FG_EUNAVAILABLE : rc, "event-log");
        goto done;
    }
    if (res.status != 200 && res.status != 201) {
        error_message(message, sizeof(message), &res);
        fail(j, res.status == 400 ? 400 : 502, res.status == 400 ? "invalid" : "bad_gateway",
             "event-log: %s", message);
        rc = FG_EINVALID;
        goto done;
    }
    root = json_tokener_parse(res.body.ptr);
    if (root == NULL || !json_object_object_get_ex(root, "id", &v) ||
        !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1) {
        fail(j, 502, "bad_gateway", "event-log: the registration answer has no project id");
        rc = FG_EINVALID;
        goto done;
    }
    j->project = json_object_get_int64(v);
    *out_new = res.status == 201;
    rc = 0;
done:
    json_object_put(root);
    fg_http_client_response_dispose(&res);
    fg_buf_dispose(&body);
    return rc;
}

static int store_token(wh_activation *a, job *j)
{
    fg_http_client_response res;
    char path[64], message[512];
    fg_buf body;
    int rc;

    fg_buf_init(&body, WH_ACTIVATION_TOKEN_MAX + 64);
    fg_http_client_response_init(&res);
    snprintf(path, sizeof(path), "/projects/%lld/tokens", j->project);
    if ((rc = fg_buf_puts(&body, "{\"token\":\"")) < 0 ||
        (rc = fg_buf_put_json_string(&body, j->token, strlen(j->token))) < 0 ||
        (rc = fg_buf_puts(&body, "\"}")) < 0) {
        fail(j, 400, "invalid", "token: too long");
        goto done;
    }
    if ((rc = internal(a, "PUT", a->ctx->cfg->token_repository_url, path, &body, &res)) < 0) {
        fail_upstream(j, rc == FG_ENOTFOUND ? FG_EUNAVAILABLE : rc, "token-repository");
        goto done;
    }
    if (res.status != 200 && res.status != 201) {
        error_message(message, sizeof(message), &res);
        fail(j, res.status == 400 ? 400 : 502, res.status == 400 ? "invalid" : "bad_gateway",
             "token-repository: %s", message);
        rc = FG_EINVALID;
    }
done:
    fg_http_client_response_dispose(&res);
    fg_crypto_wipe(body.ptr, body.len);
    fg_buf_dispose(&body);
    return rc;
}

/* The stored token of the project, or NULL (none, or token-repository away). Wipe and free it. */
static char *fetch_token(wh_activation *a, long long project)
{
    fg_http_client_response res;
    json_object *root = NULL, *v;
    char path[64];
    char *token = NULL;

    snprintf(path, sizeof(path), "/projects/%lld/tokens", project);
    if (internal(a, "GET", a->ctx->cfg->token_repository_url, path, NULL, &res) == 0 &&
        res.status == 200 && (root = json_tokener_parse(res.body.ptr)) != NULL &&
        json_object_object_get_ex(root, "token", &v) && json_object_is_type(v, json_type_string))
        token = strdup(json_object_get_string(v));
    if (root != NULL) {
        /* json-c keeps its own copy of the string: overwrite it before the tree goes */
        if (json_object_object_get_ex(root, "token", &v) &&
            json_object_is_type(v, json_type_string))
            fg_crypto_wipe((char *)json_object_get_string(v),
                           (size_t)json_object_get_string_len(v));
        json_object_put(root);
    }
    fg_crypto_wipe(res.body.ptr, res.body.len);
    fg_http_client_response_dispose(&res);
    return token;
}

static void free_token(char *token)
{
    if (token == NULL)
        return;
    fg_crypto_wipe(token, strlen(token));
    free(token);
}

/* Records the project and queues its first COMMIT_SYNC_REQUEST, in one transaction. */
static int record(wh_activation *a, job *j, bool *out_new, long long *out_hook)
{
    char id[NUM_TEXT_MAX], forge_id[NUM_TEXT_MAX];
    const char *git = j->forge == FG_PROTO_FORGE_GIT ? NULL : forge_id;
    const char *params[5] = {id, fg_proto_forge_name(j->forge), git, j->path, j->url};
    fg_pg_result *res = NULL;
    int64_t hook = -1;
    bool inserted = false;
    int rc;

    snprintf(id, sizeof(id), "%lld", j->project);
    snprintf(forge_id, sizeof(forge_id), "%lld", j->forge_id);
    if ((rc = fg_pg_begin(a->db)) < 0 ||
        (rc = fg_pg_exec(&res, a->db, sql_record, 5, params)) < 0 ||
        (rc = fg_pg_result_bool(&inserted, res, 0, 1)) < 0 ||
        (rc = fg_pg_exec(NULL, a->db, sql_queue_sync, 3,
                         (const char *const[]){id, params[1], j->path})) < 0 ||
        (rc = fg_pg_commit(a->db)) < 0) {
        if (fg_pg_rollback(a->db) < 0)
            fg_log_debug("activation: rollback: %s", fg_error_last());
        fail(j, 503, "unavailable", "the webhook's database: %s", fg_error_last());
        fg_pg_result_free(res);
        return rc;
    }
    if (!fg_pg_result_is_null(res, 0, 0) && fg_pg_result_int64(&hook, res, 0, 0) < 0)
        hook = -1;
    *out_new = inserted;
    *out_hook = (long long)hook;
    fg_pg_result_free(res);
    fg_service_wake(a->ctx->svc); /* the relay publishes the COMMIT_SYNC_REQUEST */
    return 0;
}

static void save_hook(wh_activation *a, long long project, long long hook)
{
    char id[NUM_TEXT_MAX], h[NUM_TEXT_MAX];
    const char *params[2] = {id, h};

    snprintf(id, sizeof(id), "%lld", project);
    snprintf(h, sizeof(h), "%lld", hook);
    if (fg_pg_exec(NULL, a->db, sql_set_hook, 2, params) < 0)
        fg_log_warn("activation: cannot record hook %lld of project %lld: %s", hook, project,
                    fg_error_last());
}

/* Appends "hook":{...} to out: created, updated, skipped (why) or failed (why). Only a full
 * buffer is an error. */
static int hook_step(wh_activation *a, job *j, const char *token, fg_buf *out)
{
    const wh_config *cfg = a->ctx->cfg;
    const fg_config_key *k = &cfg->hook_secret_key;
    char secret[FG_CRYPTO_SHA256_HEX_LEN + 1], forge_id[NUM_TEXT_MAX], message[512];
    wh_forge f = forge_api(a);
    long long hook = -1;
    bool created = false;
    int rc;

    if (j->forge == FG_PROTO_FORGE_GIT || cfg->public_url == NULL)
        return fg_buf_printf(out, "\"hook\":{\"status\":\"skipped\",\"reason\":\"%s\"}",
                             j->forge == FG_PROTO_FORGE_GIT ? "plain git projects have no hook"
                                                            : "FG_PUBLIC_URL is not set");
    if (token == NULL)
        return fg_buf_puts(out, "\"hook\":{\"status\":\"skipped\",\"reason\":\"no token: the "
                                "forge needs one to manage hooks\"}");
    snprintf(forge_id, sizeof(forge_id), "%lld", j->forge_id);
    rc = fg_crypto_hook_secret(secret, k->bytes, k->len, fg_proto_forge_name(j->forge), forge_id);
    if (rc == 0)
        rc = wh_forge_ensure_hook(&hook, &created, &f, j->forge, j->path, j->forge_id, secret,
                                  token);
    fg_crypto_wipe(secret, sizeof(secret));
    if (rc < 0) {
        snprintf(message, sizeof(message), "%s", fg_error_last());
        fg_log_warn("activation: project %lld: hook: %s", j->project, message);
        if ((rc = fg_buf_puts(out, "\"hook\":{\"status\":\"failed\",\"message\":\"")) < 0 ||
            (rc = fg_buf_put_json_string(out, message, strlen(message))) < 0)
            return rc;
        return fg_buf_puts(out, "\"}");
    }
    save_hook(a, j->project, hook);
    return fg_buf_printf(out, "\"hook\":{\"status\":\"%s\",\"id\":%lld}",
                         created ? "created" : "updated", hook);
}

static void run_add(job *j, wh_activation *a)
{
    wh_forge f;
    bool registered_new = false, recorded_new = false;
    long long old_hook = -1;
    char *stored = NULL;
    const char *token;
    int rc;

    if ((rc = resources(a)) < 0) {
        fail_upstream(j, FG_EUNAVAILABLE, "the webhook's database");
        return;
    }
    f = forge_api(a); /* the client exists from here on */
    if (j->forge != FG_PROTO_FORGE_GIT && j->forge_id < 0 &&
        (rc = wh_forge_lookup_id(&j->forge_id, &f, j->forge, j->path, j->token)) < 0) {
        fail_upstream(j, rc, fg_proto_forge_name(j->forge));
        return;
    }
    if (register_with_event_log(a, j, &registered_new) < 0 ||
        (j->token != NULL && store_token(a, j) < 0) || record(a, j, &recorded_new, &old_hook) < 0)
        return;
    token = j->token;
    if (token == NULL && j->forge != FG_PROTO_FORGE_GIT && a->ctx->cfg->public_url != NULL)
        token = stored = fetch_token(a, j->project);
    j->status = registered_new || recorded_new ? 201 : 200;
    fg_buf_clear(&j->answer);
    rc = fg_buf_printf(&j->answer, "{\"id\":%lld,\"forge\":\"%s\",", j->project,
                       fg_proto_forge_name(j->forge));
    if (rc == 0 && j->forge != FG_PROTO_FORGE_GIT)
        rc = fg_buf_printf(&j->answer, "\"forgeId\":%lld,", j->forge_id);
    if (rc == 0)
        rc = fg_buf_printf(&j->answer, "\"path\":\"%s\",\"url\":\"", j->path);
    if (rc == 0 && (rc = fg_buf_put_json_string(&j->answer, j->url, strlen(j->url))) == 0 &&
        (rc = fg_buf_puts(&j->answer, "\",")) == 0 &&
        (rc = hook_step(a, j, token, &j->answer)) == 0)
        rc = fg_buf_putc(&j->answer, '}');
    free_token(stored);
    if (rc < 0)
        fail(j, 500, "internal", "the answer does not fit");
    fg_log_emit(FG_LOG_INFO,
                FG_LOG_FIELDS(FG_LOG_INT("project", j->project),
                              FG_LOG_STR("forge", fg_proto_forge_name(j->forge)),
                              FG_LOG_STR("path", j->path), FG_LOG_INT("status", j->status),
                              FG_LOG_INT("had_hook", old_hook >= 0)),
                "project activated");
}

/* ---- removal and validation (worker) ---------------------------------------------------- */

typedef struct {
    fg_proto_forge forge;
    long long forge_id, hook;
    char path[FG_PROTO_PROJECT_PATH_MAX + 1];
} recorded;

static int read_project(wh_activation *a, job *j, recorded *out)
{
    char id[NUM_TEXT_MAX];
    const char *params[1] = {id};
    fg_pg_result *res = NULL;
    int64_t v = -1;
    int rc;

    snprintf(id, sizeof(id), "%lld", j->project);
    if ((rc = fg_pg_exec(&res, a->db, sql_read, 1, params)) < 0) {
        fail(j, 503, "unavailable", "the webhook's database: %s", fg_error_last());
        goto done;
    }
    if (fg_pg_result_rows(res) == 0) {
        fail(j, 404, "not_found", "project %lld is not activated here", j->project);
        rc = FG_ENOTFOUND;
        goto done;
    }
    if ((rc = fg_proto_forge_parse(&out->forge, fg_pg_result_text(res, 0, 0))) < 0)
        goto done;
    out->forge_id = fg_pg_result_int64(&v, res, 0, 1) == 0 ? (long long)v : -1;
    out->hook = fg_pg_result_int64(&v, res, 0, 3) == 0 ? (long long)v : -1;
    snprintf(out->path, sizeof(out->path), "%s", fg_pg_result_text(res, 0, 2));
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

static void run_remove(job *j, wh_activation *a)
{
    wh_forge f;
    fg_http_client_response res;
    const char *hook_state = "none";
    char path[64], id[NUM_TEXT_MAX];
    const char *params[1] = {id};
    char *token = NULL;
    recorded p;
    int rc;

    if (resources(a) < 0) {
        fail_upstream(j, FG_EUNAVAILABLE, "the webhook's database");
        return;
    }
    f = forge_api(a);
    if (read_project(a, j, &p) < 0)
        return;
    if (p.hook >= 0) {
        token = fetch_token(a, j->project);
        hook_state = token != NULL ? "deleted" : "left (no token to delete it with)";
        /* stop here when the forge says no: a retry can still find the token and the hook */
        if (token != NULL &&
            (rc = wh_forge_delete_hook(&f, p.forge, p.path, p.forge_id, p.hook, token)) < 0) {
            fail_upstream(j, rc, fg_proto_forge_name(p.forge));
            free_token(token);
            return;
        }
        free_token(token);
    }
    snprintf(path, sizeof(path), "/projects/%lld/tokens", j->project);
    if ((rc = internal(a, "DELETE", a->ctx->cfg->token_repository_url, path, NULL, &res)) < 0 &&
        rc != FG_ENOTFOUND) {
        fail_upstream(j, rc, "token-repository");
        fg_http_client_response_dispose(&res);
        return;
    }
    fg_http_client_response_dispose(&res);
    snprintf(path, sizeof(path), "/projects/%lld", j->project);
    if ((rc = internal(a, "DELETE", a->ctx->cfg->event_log_url, path, NULL, &res)) < 0 &&
        rc != FG_ENOTFOUND) {
        fail_upstream(j, rc, "event-log");
        fg_http_client_response_dispose(&res);
        return;
    }
    fg_http_client_response_dispose(&res);
    snprintf(id, sizeof(id), "%lld", j->project);
    if (fg_pg_exec(NULL, a->db, sql_forget, 1, params) < 0) {
        fail(j, 503, "unavailable", "the webhook's database: %s", fg_error_last());
        return;
    }
    j->status = 200;
    fg_buf_clear(&j->answer);
    if (fg_buf_printf(&j->answer, "{\"id\":%lld,\"removed\":true,\"hook\":\"%s\"}", j->project,
                      hook_state) < 0)
        fail(j, 500, "internal", "the answer does not fit");
    fg_log_emit(FG_LOG_INFO, FG_LOG_FIELDS(FG_LOG_INT("project", j->project)), "project removed");
}

static void run_validate(job *j, wh_activation *a)
{
    wh_forge f;
    char *token = NULL;
    recorded p;
    int rc;

    if (resources(a) < 0) {
        fail_upstream(j, FG_EUNAVAILABLE, "the webhook's database");
        return;
    }
    f = forge_api(a);
    if (read_project(a, j, &p) < 0)
        return;
    j->forge = p.forge;
    j->forge_id = p.forge_id;
    snprintf(j->path, sizeof(j->path), "%s", p.path);
    if (p.forge == FG_PROTO_FORGE_GIT || a->ctx->cfg->public_url == NULL) {
        fail(j, 409, "conflict", "%s",
             p.forge == FG_PROTO_FORGE_GIT ? "plain git projects have no hook"
                                           : "FG_PUBLIC_URL is not set: hooks are not managed");
        return;
    }
    if ((token = fetch_token(a, j->project)) == NULL) {
        fail(j, 409, "conflict", "project %lld has no token to manage its hook with", j->project);
        return;
    }
    rc = p.hook >= 0 ? wh_forge_check_hook(&f, p.forge, p.path, p.forge_id, p.hook, token)
                     : FG_ENOTFOUND;
    j->status = 200;
    fg_buf_clear(&j->answer);
    if (rc == 0) {
        rc = fg_buf_printf(&j->answer, "{\"id\":%lld,\"hook\":{\"status\":\"ok\",\"id\":%lld}}",
                           j->project, p.hook);
    } else if (rc == FG_ENOTFOUND) {
        /* gone (deleted on the forge by hand) or never made: make it again */
        if ((rc = fg_buf_printf(&j->answer, "{\"id\":%lld,", j->project)) == 0 &&
            (rc = hook_step(a, j, token, &j->answer)) == 0)
            rc = fg_buf_putc(&j->answer, '}');
    } else {
        fail_upstream(j, rc, fg_proto_forge_name(p.forge));
    }
    free_token(token);
    if (rc < 0 && j->status < 400)
        fail(j, 500, "internal", "the answer does not fit");
}

/* ---- the loop side ---------------------------------------------------------------------- */

static void job_free(job *j)
{
    if (j == NULL)
        return;
    free_token(j->token);
    fg_buf_dispose(&j->answer);
    free(j);
}

static void release(wh_job *base)
{
    job_free((job *)base);
}

static void run(wh_job *base, void *payload)
{
    job *j = (job *)base;
    wh_activation *a = payload;

    if (j->kind == KIND_ADD)
        run_add(j, a);
    else if (j->kind == KIND_REMOVE)
        run_remove(j, a);
    else
        run_validate(j, a);
    /* the token is not needed any more: do not keep it until the loop gets round to us */
    free_token(j->token);
    j->token = NULL;
}

static void done(wh_job *base, void *payload)
{
    job *j = (job *)base;
    wh_activation *a = payload;

    /* the table changed (or may have): the map refills from it */
    wh_projects_clear(a->ctx->projects);
    if (j->status >= 400)
        fg_http_respond_error(j->req, j->status, j->code, "%s", j->answer.ptr);
    else
        fg_http_respond_json_buf(j->req, j->status, &j->answer);
    job_free(j);
}

static job *job_new(fg_http_request *req, job_kind kind)
{
    job *j = calloc(1, sizeof(*j));

    if (j == NULL) {
        fg_http_respond_fg_error(req, FG_ENOMEM);
        return NULL;
    }
    j->base.run = run;
    j->base.done = done;
    j->kind = kind;
    j->req = req;
    j->forge_id = -1;
    fg_buf_init(&j->answer, ANSWER_MAX);
    return j;
}

static void submit(wh_context *ctx, job *j)
{
    if (wh_jobs_submit(ctx->activation->jobs, &j->base) < 0) {
        fg_http_respond_error(j->req, 503, "unavailable", "%s", fg_error_last());
        job_free(j);
    }
}

int wh_activation_start(wh_context *ctx)
{
    wh_activation *a = calloc(1, sizeof(*a));
    int rc;

    if (a == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory for activation");
    a->ctx = ctx;
    if ((rc = wh_jobs_new(&a->jobs, fg_service_event_base(ctx->svc), a)) < 0) {
        free(a);
        return rc;
    }
    ctx->activation = a;
    return 0;
}

void wh_activation_stop(wh_context *ctx)
{
    wh_activation *a = ctx->activation;

    if (a == NULL)
        return;
    wh_jobs_free(a->jobs, release);
    fg_pg_free(a->db);
    fg_http_client_free(a->http);
    free(a);
    ctx->activation = NULL;
}

/* ---- request parsing (loop) ------------------------------------------------------------- */

static const char *string_field(json_object *root, const char *name, bool *bad)
{
    json_object *v;

    if (!json_object_object_get_ex(root, name, &v) || json_object_is_type(v, json_type_null))
        return NULL;
    if (!json_object_is_type(v, json_type_string)) {
        *bad = true;
        return NULL;
    }
    return json_object_get_string(v);
}

/* Reads the activation request into j; returns a reason when it is not acceptable. */
static const char *read_add(job *j, json_object *root)
{
    static const char *const known[] = {"forge", "path", "url", "forgeId", "token", NULL};
    const char *forge, *path, *url, *token;
    bool bad = false;
    json_object *v;

    json_object_object_foreach(root, key, value)
    {
        bool ok = false;
        (void)value;
        for (size_t i = 0; known[i] != NULL; i++)
            ok = ok || strcmp(known[i], key) == 0;
        if (!ok)
            return "unknown field (expected forge, path, url, forgeId, token)";
    }
    forge = string_field(root, "forge", &bad);
    path = string_field(root, "path", &bad);
    url = string_field(root, "url", &bad);
    token = string_field(root, "token", &bad);
    if (bad || forge == NULL || fg_proto_forge_parse(&j->forge, forge) < 0)
        return "forge: must be github, gitlab or git";
    if (path == NULL || !wh_projects_path_valid(path))
        return "path: must be namespace/name (segments of letters, digits, '.', '_', '-')";
    if (url == NULL || url[0] == '\0' || strlen(url) > WH_ACTIVATION_URL_MAX)
        return "url: required, at most 2048 bytes";
    if (token != NULL && (token[0] == '\0' || strlen(token) > WH_ACTIVATION_TOKEN_MAX))
        return "token: 1 to 4096 bytes";
    if (json_object_object_get_ex(root, "forgeId", &v) && !json_object_is_type(v, json_type_null)) {
        if (!json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 1)
            return "forgeId: must be a positive integer";
        if (j->forge == FG_PROTO_FORGE_GIT)
            return "forgeId: not allowed for plain git projects";
        j->forge_id = json_object_get_int64(v);
    }
    snprintf(j->path, sizeof(j->path), "%s", path);
    snprintf(j->url, sizeof(j->url), "%s", url);
    if (token != NULL && (j->token = strdup(token)) == NULL)
        return "out of memory";
    return NULL;
}

void wh_activation_add(fg_http_request *req, void *payload)
{
    wh_context *ctx = payload;
    size_t len = 0;
    const char *body = fg_http_request_body(req, &len);
    wh_json_facts facts;
    json_object *root = NULL, *v;
    const char *reason;
    job *j;

    if (body == NULL || len > BODY_MAX || wh_json_scan(&facts, body, len) < 0 ||
        (root = json_tokener_parse(body)) == NULL) {
        fg_http_respond_error(req, 400, "invalid", "body: one JSON object of at most %d bytes",
                              BODY_MAX);
        return;
    }
    if ((j = job_new(req, KIND_ADD)) == NULL) {
        json_object_put(root);
        return;
    }
    reason = read_add(j, root);
    /* json-c's copy of the token goes with the tree: overwrite it first */
    if (json_object_object_get_ex(root, "token", &v) && json_object_is_type(v, json_type_string))
        fg_crypto_wipe((char *)json_object_get_string(v), (size_t)json_object_get_string_len(v));
    json_object_put(root);
    fg_crypto_wipe((char *)body, len);
    if (reason != NULL) {
        fg_http_respond_error(req, 400, "invalid", "%s", reason);
        job_free(j);
        return;
    }
    submit(ctx, j);
}

static bool project_param(fg_http_request *req, long long *out)
{
    const char *s = fg_http_request_param(req, "id");
    long long v = 0;

    for (size_t i = 0; s != NULL && s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9' || i >= 15)
            s = NULL;
        else
            v = v * 10 + (s[i] - '0');
    }
    if (s == NULL || s[0] == '\0' || v < 1) {
        fg_http_respond_error(req, 400, "invalid", "id must be a project id");
        return false;
    }
    *out = v;
    return true;
}

static void by_id(fg_http_request *req, void *payload, job_kind kind)
{
    long long id;
    job *j;

    if (!project_param(req, &id) || (j = job_new(req, kind)) == NULL)
        return;
    j->project = id;
    submit(payload, j);
}

void wh_activation_remove(fg_http_request *req, void *payload)
{
    by_id(req, payload, KIND_REMOVE);
}

void wh_activation_validate(fg_http_request *req, void *payload)
{
    by_id(req, payload, KIND_VALIDATE);
}
