/*
 * SPARQL 1.1 client (see tg_store.h). Queries go as URL-encoded POSTs and updates as direct
 * application/sparql-update POSTs: both are SPARQL 1.1 Protocol, and those two are the forms every
 * store accepts (Virtuoso 7 never answers a direct application/sparql-query POST). Every request
 * is idempotent here (GSP POST of triples a set already holds, DELETE WHERE, DROP SILENT), so the
 * HTTP client may repeat any of them after a transient failure.
 */
#include "tg_store.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DEFAULT_TIMEOUT_MS 60000
#define DEFAULT_ATTEMPTS   3

struct tg_store {
    char *url;
    char *user;
    char *password;
    const tg_store_dialect *dialect;
    size_t chunk_bytes;
    fg_http_client *http;
};

int tg_store_new(tg_store **out, const tg_store_options *o)
{
    tg_store *s = NULL;
    fg_http_client_options ho;
    int rc = FG_ERROR;

    *out = NULL;
    if (o->url == NULL || o->dialect == NULL)
        return fg_error_set(FG_EINVALID, "triple store: no URL or dialect");
    if ((s = calloc(1, sizeof(*s))) == NULL || (s->url = strdup(o->url)) == NULL ||
        (o->user != NULL && (s->user = strdup(o->user)) == NULL) ||
        (o->password != NULL && (s->password = strdup(o->password)) == NULL)) {
        rc = fg_error_set(FG_ENOMEM, "out of memory");
        goto done;
    }
    while (strlen(s->url) > 0 && s->url[strlen(s->url) - 1] == '/')
        s->url[strlen(s->url) - 1] = '\0';
    s->dialect = o->dialect;
    s->chunk_bytes = o->chunk_bytes ? o->chunk_bytes : TG_STORE_CHUNK_DEFAULT;
    fg_http_client_options_init(&ho);
    ho.timeout_ms = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    ho.connect_timeout_ms = ho.timeout_ms < 5000 ? ho.timeout_ms : 5000;
    ho.max_attempts = o->max_attempts ? o->max_attempts : DEFAULT_ATTEMPTS;
    ho.max_total_ms = ho.timeout_ms * ho.max_attempts + 10000;
    ho.backoff_base_ms = 200;
    ho.backoff_max_ms = 2000;
    ho.max_response_bytes = TG_STORE_RESULTS_MAX;
    if ((rc = fg_http_client_new(&s->http, &ho)) < 0)
        goto done;
    *out = s;
    s = NULL;
    rc = 0;
done:
    tg_store_free(s);
    return rc;
}

void tg_store_free(tg_store *s)
{
    if (s == NULL)
        return;
    fg_http_client_free(s->http);
    free(s->url);
    free(s->user);
    if (s->password != NULL) {
        memset(s->password, 0, strlen(s->password));
        free(s->password);
    }
    free(s);
}

/* ---- requests ---------------------------------------------------------------------------- */

/* Appends s percent-encoded for a query string or a form body (RFC 3986 unreserved kept). */
static int put_form_encoded(fg_buf *out, const char *s, size_t len)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;

    for (size_t i = 0; i < len && rc == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        char pct[3] = {'%', hex[c >> 4], hex[c & 15]};
        bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                     c == '-' || c == '.' || c == '_' || c == '~';
        rc = plain ? fg_buf_putc(out, (char)c) : fg_buf_put(out, pct, 3);
    }
    return rc;
}

/* The store's answer as a short printable quote for an error message. */
static void quote_body(char *out, size_t size, const fg_buf *body)
{
    size_t n = 0;

    for (size_t i = 0; i < body->len && n + 1 < size; i++) {
        unsigned char c = (unsigned char)body->ptr[i];
        out[n++] = c < 0x20 || c >= 0x7F ? ' ' : (char)c;
    }
    out[n] = '\0';
}

/* Folds a response into the error model (tg_store.h lists the mapping). */
static int judge(int rc, const fg_http_client_response *res, const char *what)
{
    char quote[TG_STORE_ERROR_TEXT_MAX + 1], cause[512];
    int code;

    if (rc < 0 && res->status == 0) {
        snprintf(cause, sizeof(cause), "%s", fg_error_last()); /* fg_error_set writes there */
        return fg_error_set(rc, "triple store %s: %s", what, cause);
    }
    if (res->status >= 200 && res->status < 300)
        return 0;
    quote_body(quote, sizeof(quote), &res->body);
    if (res->status == 401 || res->status == 403)
        code = FG_EAUTH;
    else if (res->status >= 500 || res->status == 429 || res->status == 408)
        code = FG_EUNAVAILABLE;
    else if (res->status == 413)
        code = FG_ETOOBIG;
    else
        code = FG_EINVALID;
    return fg_error_set(code, "triple store %s: HTTP %ld: %s", what, res->status, quote);
}

/* POSTs body; `results` asks for SPARQL JSON results (queries, updates). A Graph Store POST
 * sends no Accept: Virtuoso answers 406 to one it cannot satisfy, and its answer is not read. */
static int post(tg_store *s, fg_http_client_response *res, const char *url,
                const char *content_type, const void *body, size_t len, bool authenticated,
                bool results, const char *what)
{
    char ct[128];
    const char *headers[2] = {ct, "Accept: application/sparql-results+json"};
    fg_http_client_request req;

    snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
    fg_http_client_request_init(&req);
    req.method = "POST";
    req.url = url;
    req.headers = headers;
    req.nheaders = results ? 2 : 1;
    req.body = body;
    req.body_len = len;
    req.idempotent = true;
    if (authenticated && s->user != NULL) {
        req.auth = s->dialect->auth;
        req.username = s->user;
        req.password = s->password != NULL ? s->password : "";
    }
    return judge(fg_http_client_send(s->http, res, &req), res, what);
}

static int make_url(fg_buf *out, const tg_store *s, const char *path)
{
    int rc;

    if ((rc = fg_buf_puts(out, s->url)) < 0 || (rc = fg_buf_puts(out, path)) < 0)
        return rc;
    return 0;
}

/* Length of the longest prefix of nt[0..len) that ends a line and fits max bytes; a single
 * line longer than max is sent alone. */
static size_t chunk_length(const char *nt, size_t len, size_t max)
{
    size_t n;

    if (len <= max)
        return len;
    for (n = max; n > 0 && nt[n - 1] != '\n'; n--)
        ;
    if (n > 0)
        return n;
    for (n = max; n < len && nt[n - 1] != '\n'; n++)
        ;
    return n;
}

int tg_store_upload(tg_store *s, size_t *out_requests, const char *graph, const char *nt,
                    size_t len)
{
    fg_buf url;
    fg_http_client_response res;
    size_t off = 0, requests = 0;
    int rc = FG_ERROR;

    fg_buf_init(&url, FG_HTTP_CLIENT_URL_MAX);
    fg_http_client_response_init(&res);
    if ((rc = make_url(&url, s, s->dialect->gsp_path)) < 0 || (rc = fg_buf_putc(&url, '?')) < 0 ||
        (rc = fg_buf_puts(&url, s->dialect->gsp_graph)) < 0 || (rc = fg_buf_putc(&url, '=')) < 0 ||
        (rc = put_form_encoded(&url, graph, strlen(graph))) < 0)
        goto done;
    while (off < len) {
        size_t n = chunk_length(nt + off, len - off, s->chunk_bytes);
        requests++;
        if ((rc = post(s, &res, url.ptr, "application/n-triples", nt + off, n, true, false,
                       "upload")) < 0)
            goto done;
        off += n;
    }
    rc = 0;
done:
    if (out_requests != NULL)
        *out_requests = requests;
    fg_http_client_response_dispose(&res);
    fg_buf_dispose(&url);
    return rc;
}

int tg_store_update(tg_store *s, const char *update, size_t len)
{
    fg_buf url;
    fg_http_client_response res;
    int rc = FG_ERROR;

    fg_buf_init(&url, FG_HTTP_CLIENT_URL_MAX);
    fg_http_client_response_init(&res);
    if (len > TG_STORE_QUERY_MAX) {
        rc = fg_error_set(FG_ETOOBIG, "SPARQL update of %zu bytes", len);
        goto done;
    }
    if ((rc = make_url(&url, s, s->dialect->update_path)) < 0 ||
        (rc = post(s, &res, url.ptr, "application/sparql-update", update, len, true, true,
                   "update")) < 0)
        goto done;
    rc = 0;
done:
    fg_http_client_response_dispose(&res);
    fg_buf_dispose(&url);
    return rc;
}

int tg_store_drop_graph(tg_store *s, const char *graph)
{
    fg_buf q;
    int rc = FG_ERROR;

    fg_buf_init(&q, TG_STORE_QUERY_MAX);
    if ((rc = fg_buf_printf(&q, "DROP SILENT GRAPH <%s>", graph)) < 0 ||
        (rc = tg_store_update(s, q.ptr, q.len)) < 0)
        goto done;
    rc = 0;
done:
    fg_buf_dispose(&q);
    return rc;
}

int tg_store_query(tg_store *s, fg_buf *out, const char *query, size_t len)
{
    fg_buf url, form;
    fg_http_client_response res;
    json_object *root = NULL;
    int rc = FG_ERROR;

    fg_buf_init(&url, FG_HTTP_CLIENT_URL_MAX);
    fg_buf_init(&form, TG_STORE_QUERY_MAX * 3 + 8);
    fg_http_client_response_init(&res);
    if (len > TG_STORE_QUERY_MAX) {
        rc = fg_error_set(FG_ETOOBIG, "SPARQL query of %zu bytes", len);
        goto done;
    }
    if ((rc = make_url(&url, s, s->dialect->query_path)) < 0 ||
        (rc = fg_buf_puts(&form, "query=")) < 0 || (rc = put_form_encoded(&form, query, len)) < 0 ||
        (rc = post(s, &res, url.ptr, "application/x-www-form-urlencoded", form.ptr, form.len, false,
                   true, "query")) < 0)
        goto done;
    if ((root = json_tokener_parse(res.body.ptr)) == NULL) {
        rc = fg_error_set(FG_EINVALID, "triple store query: the results are not JSON");
        goto done;
    }
    if (s->dialect->normalise != NULL && (rc = s->dialect->normalise(root)) < 0)
        goto done;
    if ((rc = fg_buf_puts(out, json_object_to_json_string_ext(root, JSON_C_TO_STRING_PLAIN))) < 0)
        goto done;
    rc = 0;
done:
    json_object_put(root);
    fg_http_client_response_dispose(&res);
    fg_buf_dispose(&form);
    fg_buf_dispose(&url);
    return rc;
}

int tg_store_query_count(tg_store *s, long long *out, const char *query, const char *var)
{
    fg_buf results;
    json_object *root = NULL, *r, *b, *v, *value;
    char *end = NULL;
    const char *text;
    int rc = FG_ERROR;

    fg_buf_init(&results, TG_STORE_RESULTS_MAX);
    if ((rc = tg_store_query(s, &results, query, strlen(query))) < 0)
        goto done;
    rc = fg_error_set(FG_EINVALID, "triple store query: no integer ?%s in the first row", var);
    if ((root = json_tokener_parse(results.ptr)) == NULL ||
        !json_object_object_get_ex(root, "results", &r) ||
        !json_object_object_get_ex(r, "bindings", &b) || json_object_array_length(b) < 1 ||
        !json_object_object_get_ex(json_object_array_get_idx(b, 0), var, &v) ||
        !json_object_object_get_ex(v, "value", &value) ||
        (text = json_object_get_string(value)) == NULL)
        goto done;
    errno = 0;
    *out = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || errno == ERANGE)
        goto done;
    fg_error_clear();
    rc = 0;
done:
    json_object_put(root);
    fg_buf_dispose(&results);
    return rc;
}
