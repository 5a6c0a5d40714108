/*
 * The HTTP API of fg-token-repository (see tr_api.h).
 */
#include "tr_api.h"

#include <event2/event.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fg/log.h"
#include "tr_store.h"
#include "tr_validate.h"

#define RESPONSE_MAX   ((size_t)1024 * 1024) /* a listing page of TR_LIST_LIMIT_MAX fits */
#define QUERY_INT_MAX  INT64_MAX
#define QUERY_DIGITS   19
#define OPEN_REASONS_N 3

static const char *const open_reasons[OPEN_REASONS_N] = {"unknown_key", "authentication",
                                                         "malformed"};

/* ---- answers ----------------------------------------------------------------------------- */

/* The fg error rc as an answer. Server-side failures are logged (no value is in a message). */
static void respond_failure(fg_http_request *req, int rc, const char *what)
{
    if (rc == FG_EINVALID || rc == FG_ENOTFOUND || rc == FG_ETOOBIG) {
        fg_http_respond_fg_error(req, rc);
        return;
    }
    fg_log_error("%s failed: %s", what, fg_error_last());
    fg_http_respond_fg_error(req, rc);
}

static int put_time(fg_buf *b, const char *name, const char *text)
{
    if (text[0] == '\0')
        return fg_buf_printf(b, ",\"%s\":null", name);
    return fg_buf_printf(b, ",\"%s\":\"%s\"", name, text); /* RFC 3339 text needs no escaping */
}

/* {"project":..,"keyId":..,"expiresAt":..,"createdAt":..,"updatedAt":..,"expiringSoon":..,
 * "expired":..}: everything about a token but its value. */
static int put_info(fg_buf *b, const tr_token_info *info)
{
    int rc;

    if ((rc = fg_buf_printf(b, "{\"project\":%lld,\"keyId\":\"", (long long)info->project)) < 0 ||
        (rc = fg_buf_put_json_string(b, info->key_id, strlen(info->key_id))) < 0 ||
        (rc = fg_buf_putc(b, '"')) < 0 || (rc = put_time(b, "expiresAt", info->expires_at)) < 0 ||
        (rc = put_time(b, "createdAt", info->created_at)) < 0 ||
        (rc = put_time(b, "updatedAt", info->updated_at)) < 0)
        return rc;
    return fg_buf_printf(b, ",\"expiringSoon\":%s,\"expired\":%s}",
                         info->expiring_soon ? "true" : "false", info->expired ? "true" : "false");
}

/* ---- metrics ----------------------------------------------------------------------------- */

static void refresh(tr_api *api)
{
    tr_stats st;

    if (tr_store_stats(&st, fg_service_db(api->svc), api->keyring, api->warning_days) < 0) {
        if (!api->refresh_failing)
            fg_log_warn("cannot count tokens for the metrics: %s", fg_error_last());
        api->refresh_failing = true;
        return;
    }
    if (api->refresh_failing)
        fg_log_info("token metrics are counted again");
    api->refresh_failing = false;
    fg_metric_set(api->total, (double)st.total);
    fg_metric_set(api->expiring_soon, (double)st.expiring_soon);
    fg_metric_set(api->expired, (double)st.expired);
    fg_metric_set(api->stale_key, (double)st.stale_key);
}

static void arm_timer(tr_api *api);

/* A once-event: libevent frees it when it fires, or with the loop at shutdown, so nothing of the
 * timer outlives fg_service_run. */
static void on_refresh_timer(evutil_socket_t fd, short what, void *payload)
{
    tr_api *api = payload;

    (void)fd;
    (void)what;
    refresh(api);
    arm_timer(api);
}

static void arm_timer(tr_api *api)
{
    struct timeval tv = {TR_API_REFRESH_MS / 1000, (TR_API_REFRESH_MS % 1000) * 1000};

    if (event_base_once(fg_service_event_base(api->svc), -1, EV_TIMEOUT, on_refresh_timer, api,
                        &tv) < 0)
        fg_log_error("cannot arm the token metrics timer: the gauges change only with the tokens");
}

static int add_metrics(tr_api *api, fg_metrics *reg)
{
    int rc;

    if ((rc = fg_metrics_gauge(&api->total, reg, "fg_tokens_total", "tokens stored", NULL)) < 0 ||
        (rc = fg_metrics_gauge(&api->expiring_soon, reg, "fg_tokens_expiring_soon",
                               "tokens that expire within FG_TOKEN_EXPIRY_WARNING_DAYS days or "
                               "have expired",
                               NULL)) < 0 ||
        (rc = fg_metrics_gauge(&api->expired, reg, "fg_tokens_expired", "tokens past their expiry",
                               NULL)) < 0 ||
        (rc = fg_metrics_gauge(&api->stale_key, reg, "fg_tokens_stale_key",
                               "tokens not sealed under the current key (a rotation is due)",
                               NULL)) < 0)
        return rc;
    for (size_t i = 0; i < OPEN_REASONS_N; i++)
        if ((rc = fg_metrics_counter(&api->undecryptable[i], reg, "fg_token_open_failures_total",
                                     "stored tokens that did not open, by reason",
                                     FG_METRIC_LABELS("reason", open_reasons[i]))) < 0)
            return rc;
    return 0;
}

static void count_open_failure(tr_api *api, int crypto_rc)
{
    size_t i = crypto_rc == FG_ENOTFOUND ? 0 : crypto_rc == FG_EAUTH ? 1 : 2;

    fg_metric_inc(api->undecryptable[i]);
}

/* ---- PUT /projects/{id}/tokens ----------------------------------------------------------- */

static void put_token(fg_http_request *req, void *payload)
{
    tr_api *api = payload;
    tr_put_request put;
    tr_token_info info;
    bool created = false;
    int64_t project = 0;
    const char *body;
    size_t len = 0;
    fg_buf out;
    int rc;

    memset(&put, 0, sizeof(put));
    fg_buf_init(&out, RESPONSE_MAX);
    if ((rc = tr_parse_project_id(&project, fg_http_request_param(req, "id"))) < 0)
        goto done;
    if ((body = fg_http_request_body(req, &len)) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory reading the body");
        goto done;
    }
    if ((rc = tr_put_request_parse(&put, body, len)) < 0 ||
        (rc = tr_store_put(&created, &info, fg_service_db(api->svc), api->keyring, project,
                           put.token, put.token_len, put.has_expiry ? put.expires_at : NULL,
                           api->warning_days)) < 0 ||
        (rc = put_info(&out, &info)) < 0)
        goto done;
    fg_log_emit(FG_LOG_INFO,
                FG_LOG_FIELDS(FG_LOG_INT("project", project), FG_LOG_STR("keyId", info.key_id)),
                created ? "token stored" : "token replaced");
    fg_http_respond_json_buf(req, created ? 201 : 200, &out);
    refresh(api);
    rc = 0;
done:
    if (rc < 0)
        respond_failure(req, rc, "storing a token");
    tr_put_request_dispose(&put);
    fg_buf_dispose(&out);
}

/* ---- GET /projects/{id}/tokens: the one answer that carries a token ---------------------- */

static int put_token_body(fg_buf *b, const tr_token_info *info, const fg_buf *token)
{
    int rc;

    if ((rc = fg_buf_printf(b, "{\"project\":%lld,\"token\":\"", (long long)info->project)) < 0 ||
        (rc = fg_buf_put_json_string(b, token->ptr, token->len)) < 0 ||
        (rc = fg_buf_puts(b, "\",\"keyId\":\"")) < 0 ||
        (rc = fg_buf_put_json_string(b, info->key_id, strlen(info->key_id))) < 0 ||
        (rc = fg_buf_putc(b, '"')) < 0 || (rc = put_time(b, "expiresAt", info->expires_at)) < 0)
        return rc;
    return fg_buf_putc(b, '}');
}

static void get_token(fg_http_request *req, void *payload)
{
    tr_api *api = payload;
    tr_token_info info;
    int64_t project = 0;
    int open_error = 0, rc;
    fg_buf token, out;

    fg_buf_init(&token, FG_CRYPTO_PLAINTEXT_MAX);
    fg_buf_init(&out, RESPONSE_MAX);
    if ((rc = tr_parse_project_id(&project, fg_http_request_param(req, "id"))) < 0 ||
        (rc = tr_store_get(&token, &info, &open_error, fg_service_db(api->svc), api->keyring,
                           project, api->warning_days)) < 0 ||
        (rc = put_token_body(&out, &info, &token)) < 0)
        goto done;
    fg_log_emit(FG_LOG_INFO,
                FG_LOG_FIELDS(FG_LOG_INT("project", project), FG_LOG_STR("keyId", info.key_id)),
                "token handed out");
    fg_http_respond_json_buf(req, 200, &out);
    rc = 0;
done:
    if (rc < 0 && open_error != 0) {
        /* the caller did nothing wrong and retrying will not help: the stored value conflicts
         * with this instance's keys or row (409), which an operator must resolve */
        count_open_failure(api, open_error);
        fg_log_emit(FG_LOG_ERROR, FG_LOG_FIELDS(FG_LOG_INT("project", project)), "%s",
                    fg_error_last());
        fg_http_respond_error(req, 409, "token_undecryptable", "%s", fg_error_last());
    } else if (rc < 0) {
        respond_failure(req, rc, "reading a token");
    }
    fg_crypto_wipe(token.ptr, token.len);
    fg_crypto_wipe(out.ptr, out.len);
    fg_buf_dispose(&token);
    fg_buf_dispose(&out);
}

/* ---- DELETE /projects/{id}/tokens -------------------------------------------------------- */

static void delete_token(fg_http_request *req, void *payload)
{
    tr_api *api = payload;
    int64_t project = 0;
    int rc;

    if ((rc = tr_parse_project_id(&project, fg_http_request_param(req, "id"))) < 0 ||
        (rc = tr_store_delete(fg_service_db(api->svc), project)) < 0) {
        respond_failure(req, rc, "deleting a token");
        return;
    }
    fg_log_emit(FG_LOG_INFO, FG_LOG_FIELDS(FG_LOG_INT("project", project)), "token deleted");
    fg_http_respond_text(req, 204, NULL, "", 0);
    refresh(api);
}

/* ---- GET /tokens ------------------------------------------------------------------------- */

/* Query parameter `name` as an integer in [min, max]; def when absent. */
static int query_int(long long *out, fg_http_request *req, const char *name, long long min,
                     long long max, long long def)
{
    const char *text = fg_http_request_query(req, name);
    size_t len = text ? strlen(text) : 0;
    long long value = 0;

    *out = def;
    if (text == NULL)
        return 0;
    if (len == 0 || len > QUERY_DIGITS)
        goto invalid;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9' || value > (QUERY_INT_MAX - (text[i] - '0')) / 10)
            goto invalid;
        value = value * 10 + (text[i] - '0');
    }
    if (value < min || value > max)
        goto invalid;
    *out = value;
    return 0;
invalid:
    return fg_error_set(FG_EINVALID, "%s must be an integer from %lld to %lld", name, min, max);
}

static int put_listing(fg_buf *b, const tr_api *api, const tr_token_info *list, size_t n,
                       size_t limit)
{
    const char *current = fg_crypto_keyring_current_id(api->keyring);
    int rc;

    if ((rc = fg_buf_puts(b, "{\"tokens\":[")) < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if ((i > 0 && (rc = fg_buf_putc(b, ',')) < 0) || (rc = put_info(b, &list[i])) < 0)
            return rc;
    if (n == limit && n > 0)
        rc = fg_buf_printf(b, "],\"next\":%lld", (long long)list[n - 1].project);
    else
        rc = fg_buf_puts(b, "],\"next\":null");
    if (rc < 0 || (rc = fg_buf_puts(b, ",\"currentKeyId\":\"")) < 0 ||
        (rc = fg_buf_put_json_string(b, current, strlen(current))) < 0)
        return rc;
    return fg_buf_printf(b, "\",\"expiryWarningDays\":%lld}", api->warning_days);
}

static void list_tokens(fg_http_request *req, void *payload)
{
    tr_api *api = payload;
    tr_token_info *list = NULL;
    long long after = 0, limit = 0;
    size_t n = 0;
    fg_buf out;
    int rc;

    fg_buf_init(&out, RESPONSE_MAX);
    if ((rc = query_int(&after, req, "after", 0, INT64_MAX, 0)) < 0 ||
        (rc = query_int(&limit, req, "limit", 1, TR_LIST_LIMIT_MAX, TR_API_LIST_LIMIT)) < 0 ||
        (rc = tr_store_list(&list, &n, fg_service_db(api->svc), (int64_t)after, (size_t)limit,
                            api->warning_days)) < 0 ||
        (rc = put_listing(&out, api, list, n, (size_t)limit)) < 0)
        goto done;
    fg_http_respond_json_buf(req, 200, &out);
    rc = 0;
done:
    if (rc < 0)
        respond_failure(req, rc, "listing tokens");
    free(list);
    fg_buf_dispose(&out);
}

/* ---- POST /tokens/rotate ----------------------------------------------------------------- */

static int put_rotation(fg_buf *b, const tr_rotation *r, const char *key_id)
{
    int rc;

    if ((rc = fg_buf_printf(b, "{\"rotated\":%zu,\"failed\":%zu,\"failedProjects\":[", r->rotated,
                            r->failed)) < 0)
        return rc;
    for (size_t i = 0; i < r->nfailed_shown; i++)
        if ((rc = fg_buf_printf(b, "%s%lld", i > 0 ? "," : "", (long long)r->failed_projects[i])) <
            0)
            return rc;
    if ((rc = fg_buf_printf(b, "],\"remaining\":%zu,\"total\":%zu,\"keyId\":\"", r->remaining,
                            r->total)) < 0 ||
        (rc = fg_buf_put_json_string(b, key_id, strlen(key_id))) < 0)
        return rc;
    return fg_buf_puts(b, "\"}");
}

static void rotate_tokens(fg_http_request *req, void *payload)
{
    tr_api *api = payload;
    const char *current = fg_crypto_keyring_current_id(api->keyring);
    tr_rotation r;
    fg_buf out;
    int rc;

    fg_buf_init(&out, RESPONSE_MAX);
    if ((rc = tr_store_rotate(&r, fg_service_db(api->svc), api->keyring)) < 0 ||
        (rc = put_rotation(&out, &r, current)) < 0)
        goto done;
    fg_log_emit(r.failed > 0 ? FG_LOG_WARN : FG_LOG_INFO,
                FG_LOG_FIELDS(FG_LOG_STR("keyId", current), FG_LOG_INT("rotated", r.rotated),
                              FG_LOG_INT("failed", r.failed), FG_LOG_INT("remaining", r.remaining),
                              FG_LOG_INT("total", r.total)),
                "tokens rotated");
    fg_http_respond_json_buf(req, 200, &out);
    refresh(api);
    rc = 0;
done:
    if (rc < 0)
        respond_failure(req, rc, "rotating tokens");
    fg_buf_dispose(&out);
}

/* ---- wiring ------------------------------------------------------------------------------ */

static const fg_service_route routes[] = {
    {FG_HTTP_PUT, "/projects/{id}/tokens", put_token, false},
    {FG_HTTP_GET, "/projects/{id}/tokens", get_token, false},
    {FG_HTTP_DELETE, "/projects/{id}/tokens", delete_token, false},
    {FG_HTTP_GET, "/tokens", list_tokens, false},
    {FG_HTTP_POST, "/tokens/rotate", rotate_tokens, false},
};

void tr_api_init(tr_api *api, const fg_crypto_keyring *keyring, long long warning_days)
{
    memset(api, 0, sizeof(*api));
    api->keyring = keyring;
    api->warning_days = warning_days;
}

int tr_api_start(fg_service *svc, fg_http_server *http, void *payload)
{
    tr_api *api = payload;
    int rc;

    api->svc = svc;
    if ((rc = add_metrics(api, fg_service_metrics(svc))) < 0 ||
        (rc = fg_service_add_routes(http, routes, sizeof(routes) / sizeof(routes[0]), api)) < 0)
        return rc;
    refresh(api);
    arm_timer(api);
    return 0;
}
