/*
 * Delivery intake (see wh_intake.h). Everything here is CPU work on the loop thread (one JSON
 * scan, one or two HMACs, a map lookup, a copy of the body); the only database access is the
 * project table on a map miss. Secrets derived for a check are wiped right after it, and no
 * answer or log line carries a secret, a token or a signature.
 */
#include "wh_intake.h"

#include <stdio.h>
#include <string.h>

#include "fg/buf.h"
#include "fg/crypto.h"
#include "fg/log.h"
#include "wh_json.h"
#include "wh_projects.h"

#define HEADER_VALUE_MAX 512         /* bytes of one header value kept in the archive */
#define HEADERS_JSON_MAX (16 * 1024) /* the archived headers object, at most 8 x ~1 KiB */

/* The headers intake reads, fetched in one pass (fg_http_request_headers). The first
 * *_ARCHIVED of each list are the ones a replay or an audit needs and go into the archive; never
 * X-Gitlab-Token, which is the secret itself. */
enum { GH_EVENT, GH_DELIVERY, GH_SIGNATURE, GH_ARCHIVED = 8, GH_COUNT = GH_ARCHIVED };
static const char *const github_headers[GH_COUNT] = {
    "X-GitHub-Event",
    "X-GitHub-Delivery",
    "X-Hub-Signature-256",
    "X-GitHub-Hook-ID",
    "X-GitHub-Hook-Installation-Target-Type",
    "X-GitHub-Hook-Installation-Target-ID",
    "User-Agent",
    "Content-Type",
};
enum {
    GL_EVENT,
    GL_IDEMPOTENCY_KEY,
    GL_EVENT_UUID,
    GL_ARCHIVED = 7,
    GL_TOKEN = GL_ARCHIVED,
    GL_COUNT
};
_Static_assert((int)GH_ARCHIVED >= (int)GL_ARCHIVED &&
                   HEADERS_JSON_MAX > 2 + GH_ARCHIVED * (64 + 2 * HEADER_VALUE_MAX + 8),
               "the archived headers' JSON must fit (names are under 64 bytes)");
static const char *const gitlab_headers[GL_COUNT] = {
    "X-Gitlab-Event",    "Idempotency-Key", "X-Gitlab-Event-UUID", "X-Gitlab-Webhook-UUID",
    "X-Gitlab-Instance", "User-Agent",      "Content-Type",        "X-Gitlab-Token",
};

static const char *const github_forge_events[] = {
    "pull_request", "pull_request_review", "issues", "issue_comment", "member", "star", "watch",
    "fork",         "repository",          NULL,
};
static const char *const gitlab_forge_events[] = {
    "Merge Request Hook", "Issue Hook", "Note Hook", "Member Hook", NULL,
};
static const char *const gitlab_pushes[] = {"Push Hook", "Tag Push Hook", NULL};

static const char *const outcome_names[WH_OUTCOME_COUNT] = {
    "accepted", "duplicate", "ping", "invalid", "unauthorized", "not_found", "unavailable",
};

const char *wh_outcome_name(wh_outcome outcome)
{
    return outcome < WH_OUTCOME_COUNT ? outcome_names[outcome] : "unknown";
}

static bool listed(const char *const *list, const char *s)
{
    for (; *list != NULL; list++) {
        if (strcmp(*list, s) == 0)
            return true;
    }
    return false;
}

wh_route wh_intake_route(fg_proto_forge forge, const char *event, bool names_project)
{
    if (!names_project)
        return WH_ROUTE_IGNORED;
    if (forge == FG_PROTO_FORGE_GITHUB) {
        if (strcmp(event, "push") == 0)
            return WH_ROUTE_COMMIT_SYNC;
        return listed(github_forge_events, event) ? WH_ROUTE_FORGE_EVENT : WH_ROUTE_IGNORED;
    }
    if (listed(gitlab_pushes, event))
        return WH_ROUTE_COMMIT_SYNC;
    return listed(gitlab_forge_events, event) ? WH_ROUTE_FORGE_EVENT : WH_ROUTE_IGNORED;
}

/* ---- answers ---------------------------------------------------------------------------- */

static void count(wh_context *ctx, fg_proto_forge forge, wh_outcome outcome)
{
    fg_metric *m = ctx->metrics.outcome[forge == FG_PROTO_FORGE_GITLAB][outcome];

    if (m != NULL)
        fg_metric_inc(m);
}

static void refuse(wh_context *ctx, fg_http_request *req, fg_proto_forge forge, wh_outcome outcome,
                   const char *reason)
{
    static const int statuses[WH_OUTCOME_COUNT] = {202, 200, 200, 400, 401, 404, 503};
    static const char *const codes[WH_OUTCOME_COUNT] = {
        "", "", "", "invalid", "unauthorized", "not_found", "unavailable"};

    count(ctx, forge, outcome);
    fg_log_emit(outcome == WH_OUTCOME_UNAVAILABLE ? FG_LOG_WARN : FG_LOG_INFO,
                FG_LOG_FIELDS(FG_LOG_STR("forge", fg_proto_forge_name(forge)),
                              FG_LOG_INT("status", statuses[outcome])),
                "delivery refused: %s", reason);
    if (outcome == WH_OUTCOME_UNAVAILABLE &&
        fg_http_response_add_header(req, "Retry-After", "5") < 0) {
        fg_http_respond_fg_error(req, FG_ENOMEM);
        return;
    }
    fg_http_respond_error(req, statuses[outcome], codes[outcome], "%s", reason);
}

void wh_intake_answer(wh_delivery *d, void *payload)
{
    wh_context *ctx = payload;
    char json[96];

    switch (d->status) {
    case 202:
        count(ctx, d->forge, WH_OUTCOME_ACCEPTED);
        snprintf(json, sizeof(json), "{\"status\":\"accepted\",\"id\":%lld}", d->archive_id);
        fg_http_respond_json(d->req, 202, json);
        break;
    case 200:
        count(ctx, d->forge, WH_OUTCOME_DUPLICATE);
        fg_http_respond_json(d->req, 200, "{\"status\":\"duplicate\"}");
        break;
    case 400:
        refuse(ctx, d->req, d->forge, WH_OUTCOME_INVALID, "the archive refused the delivery");
        break;
    default:
        refuse(ctx, d->req, d->forge, WH_OUTCOME_UNAVAILABLE,
               "the delivery archive is unavailable; nothing was stored");
        break;
    }
    wh_delivery_free(d);
}

/* ---- checks ----------------------------------------------------------------------------- */

/* An event name: 1..WH_EVENT_MAX bytes of printable ASCII (GitLab's have spaces). */
static bool event_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > WH_EVENT_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x20 || s[i] > 0x7E)
            return false;
    }
    return true;
}

/* A delivery id or idempotency key: 1..FG_PROTO_DELIVERY_ID_MAX bytes of visible ASCII. */
static bool key_ok(const char *s)
{
    size_t n = s != NULL ? strlen(s) : 0;

    if (n == 0 || n > FG_PROTO_DELIVERY_ID_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < 0x21 || s[i] > 0x7E)
            return false;
    }
    return true;
}

/* The signature may be made with the repository's derived secret or the App-wide one. */
static bool github_signed(const wh_context *ctx, const char *signature, const wh_json_facts *f,
                          const char *body, size_t len)
{
    const fg_config_key *k = &ctx->cfg->hook_secret_key;
    const char *app = ctx->cfg->github_webhook_secret;
    char secret[FG_CRYPTO_SHA256_HEX_LEN + 1];
    bool ok = false;

    if (signature == NULL)
        return false;
    if (f->has_repository_id &&
        fg_crypto_hook_secret(secret, k->bytes, k->len, "github", f->repository_id) == 0)
        ok = fg_crypto_github_verify(signature, body, len, secret, FG_CRYPTO_SHA256_HEX_LEN) == 0;
    fg_crypto_wipe(secret, sizeof(secret));
    if (!ok && app != NULL && app[0] != '\0')
        ok = fg_crypto_github_verify(signature, body, len, app, strlen(app)) == 0;
    return ok;
}

static bool gitlab_token_ok(const wh_context *ctx, const char *token, const char *project_id)
{
    const fg_config_key *k = &ctx->cfg->hook_secret_key;
    char secret[FG_CRYPTO_SHA256_HEX_LEN + 1];
    bool ok = false;

    if (token != NULL && fg_crypto_hook_secret(secret, k->bytes, k->len, "gitlab", project_id) == 0)
        ok = fg_crypto_equal_text(token, strlen(token), secret, FG_CRYPTO_SHA256_HEX_LEN);
    fg_crypto_wipe(secret, sizeof(secret));
    return ok;
}

/* The headers worth keeping, as a JSON object into out (HEADERS_JSON_MAX bytes, enough for
 * every name with HEADER_VALUE_MAX bytes each, all escaped); values outside printable ASCII
 * become '?'. Returns its length. */
static size_t headers_json(char *out, const char *const *names, const char *const *values, size_t n)
{
    size_t len = 0;

    out[len++] = '{';
    for (size_t i = 0; i < n; i++) {
        const char *v = values[i];
        size_t name_len;

        if (v == NULL)
            continue;
        if (len > 1)
            out[len++] = ',';
        out[len++] = '"';
        name_len = strlen(names[i]);
        memcpy(out + len, names[i], name_len);
        len += name_len;
        memcpy(out + len, "\":\"", 3);
        len += 3;
        for (size_t k = 0; v[k] != '\0' && k < HEADER_VALUE_MAX; k++) {
            char c = v[k] >= 0x20 && v[k] <= 0x7E ? v[k] : '?';
            if (c == '"' || c == '\\')
                out[len++] = '\\';
            out[len++] = c;
        }
        out[len++] = '"';
    }
    out[len++] = '}';
    out[len] = '\0';
    return len;
}

/* src cut to cap - 1 bytes, NUL-terminated (the callers' values were checked already). */
static void copy_text(char *dst, size_t cap, const char *src)
{
    size_t n = strnlen(src, cap - 1);

    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Looks the project up; answers 404 or 503 itself and returns false when it cannot go on. */
static bool find_project(wh_context *ctx, fg_http_request *req, fg_proto_forge forge,
                         const char *forge_id, wh_project *out)
{
    int rc = wh_projects_find(out, ctx->projects, fg_service_db(ctx->svc), forge, forge_id);

    if (rc == 0)
        return true;
    if (rc == FG_ENOTFOUND)
        refuse(ctx, req, forge, WH_OUTCOME_NOT_FOUND, fg_error_last());
    else
        refuse(ctx, req, forge, WH_OUTCOME_UNAVAILABLE, "the project table cannot be read");
    return false;
}

/* Everything that is the same for both forges once the checks passed: copy, route, queue. */
static void submit(wh_context *ctx, fg_http_request *req, fg_proto_forge forge, const char *event,
                   const char *dedupe_key, const char *action, const char *forge_id,
                   const wh_project *project, const char *const *header_names,
                   const char *const *header_values, size_t nheaders)
{
    char headers[HEADERS_JSON_MAX];
    size_t len = 0, headers_len = headers_json(headers, header_names, header_values, nheaders);
    const char *body = fg_http_request_body(req, &len);
    wh_delivery *d = wh_delivery_new(body, len, headers, headers_len);

    if (d == NULL) {
        fg_http_respond_fg_error(req, FG_ENOMEM);
        return;
    }
    d->req = req;
    d->forge = forge;
    d->route = wh_intake_route(forge, event, project != NULL);
    copy_text(d->event, sizeof(d->event), event);
    copy_text(d->dedupe_key, sizeof(d->dedupe_key), dedupe_key);
    copy_text(d->action, sizeof(d->action), action != NULL ? action : "");
    if (project != NULL) {
        copy_text(d->forge_id, sizeof(d->forge_id), forge_id);
        snprintf(d->project_id, sizeof(d->project_id), "%lld", project->id);
        copy_text(d->project_path, sizeof(d->project_path), project->path);
    }
    if (wh_writer_submit(ctx->writer, d) < 0) {
        refuse(ctx, req, forge, WH_OUTCOME_UNAVAILABLE, fg_error_last());
        wh_delivery_free(d);
    }
}

/* ---- the handlers ----------------------------------------------------------------------- */

void wh_intake_github(fg_http_request *req, void *payload)
{
    wh_context *ctx = payload;
    const fg_proto_forge forge = FG_PROTO_FORGE_GITHUB;
    const char *h[GH_COUNT];
    const char *event, *delivery;
    wh_json_facts facts;
    wh_project project;
    size_t len = 0;
    const char *body = fg_http_request_body(req, &len);

    fg_http_request_headers(h, req, github_headers, GH_COUNT);
    event = h[GH_EVENT];
    delivery = h[GH_DELIVERY];
    if (body == NULL) {
        fg_http_respond_fg_error(req, FG_ENOMEM);
        return;
    }
    if (!event_ok(event) || !key_ok(delivery)) {
        refuse(ctx, req, forge, WH_OUTCOME_INVALID,
               "X-GitHub-Event and X-GitHub-Delivery must be present and well-formed");
        return;
    }
    if (wh_json_scan(&facts, body, len) < 0) {
        refuse(ctx, req, forge, WH_OUTCOME_INVALID, fg_error_last());
        return;
    }
    if (!github_signed(ctx, h[GH_SIGNATURE], &facts, body, len)) {
        refuse(ctx, req, forge, WH_OUTCOME_UNAUTHORIZED,
               "X-Hub-Signature-256 is missing or does not match the body");
        return;
    }
    /* A delivery naming no repository passed with the App-wide secret: archived, ignored. */
    if (facts.has_repository_id && !find_project(ctx, req, forge, facts.repository_id, &project))
        return;
    if (strcmp(event, "ping") == 0) {
        count(ctx, forge, WH_OUTCOME_PING);
        fg_http_respond_json(req, 200, "{\"status\":\"pong\"}");
        return;
    }
    submit(ctx, req, forge, event, delivery, facts.has_action ? facts.action : NULL,
           facts.repository_id, facts.has_repository_id ? &project : NULL, github_headers, h,
           GH_ARCHIVED);
}

/* Idempotency-Key (stable across GitLab's retries), else X-Gitlab-Event-UUID, else the body's
 * SHA-256. A header that is present must be well-formed. */
static bool gitlab_dedupe_key(char *out, const char *const *h, const char *body, size_t len)
{
    const char *const candidates[] = {h[GL_IDEMPOTENCY_KEY], h[GL_EVENT_UUID]};

    for (size_t i = 0; i < 2; i++) {
        const char *v = candidates[i];
        if (v == NULL)
            continue;
        if (!key_ok(v))
            return false;
        copy_text(out, FG_PROTO_DELIVERY_ID_MAX + 1, v);
        return true;
    }
    return fg_crypto_sha256_hex(out, body, len) == 0;
}

void wh_intake_gitlab(fg_http_request *req, void *payload)
{
    wh_context *ctx = payload;
    const fg_proto_forge forge = FG_PROTO_FORGE_GITLAB;
    const char *h[GL_COUNT];
    const char *event;
    char key[FG_PROTO_DELIVERY_ID_MAX + 1];
    const char *forge_id;
    wh_json_facts facts;
    wh_project project;
    size_t len = 0;
    const char *body = fg_http_request_body(req, &len);

    fg_http_request_headers(h, req, gitlab_headers, GL_COUNT);
    event = h[GL_EVENT];
    if (body == NULL) {
        fg_http_respond_fg_error(req, FG_ENOMEM);
        return;
    }
    if (!event_ok(event) || !gitlab_dedupe_key(key, h, body, len)) {
        refuse(ctx, req, forge, WH_OUTCOME_INVALID,
               "X-Gitlab-Event must be present, and Idempotency-Key / X-Gitlab-Event-UUID "
               "well-formed when present");
        return;
    }
    if (wh_json_scan(&facts, body, len) < 0) {
        refuse(ctx, req, forge, WH_OUTCOME_INVALID, fg_error_last());
        return;
    }
    /* GitLab has no App-wide secret: without a project id nothing can be verified. */
    forge_id = facts.has_project_id       ? facts.project_id
               : facts.has_top_project_id ? facts.top_project_id
                                          : NULL;
    if (forge_id == NULL) {
        refuse(ctx, req, forge, WH_OUTCOME_INVALID,
               "the body names no project (project.id or project_id)");
        return;
    }
    if (!gitlab_token_ok(ctx, h[GL_TOKEN], forge_id)) {
        refuse(ctx, req, forge, WH_OUTCOME_UNAUTHORIZED, "X-Gitlab-Token is missing or wrong");
        return;
    }
    if (!find_project(ctx, req, forge, forge_id, &project))
        return;
    submit(ctx, req, forge, event, key, facts.has_oa_action ? facts.oa_action : NULL, forge_id,
           &project, gitlab_headers, h, GL_ARCHIVED);
}
