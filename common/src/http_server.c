/*
 * HTTP server on libevent 2.1 evhttp (see fg/http_server.h and docs/internals/http.md).
 *
 * evhttp parses, enforces the header and body limits and writes responses; everything else
 * (routing, 404/405, JSON errors, metrics) happens in one generic callback, because evhttp's own
 * per-path callbacks match whole paths only and its method filter answers 501 instead of 405.
 */
#include "fg/http_server.h"

#include "fg/crypto.h"
#include "fg/text.h"

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/util.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <time.h>

#include "fg/log.h"

#ifndef FG_VERSION
#define FG_VERSION "unknown"
#endif
#ifndef FG_REVISION
#define FG_REVISION "unknown"
#endif

#define METHODS_COUNT    8  /* fg_http_method values, FG_HTTP_OTHER included */
#define STATUS_CACHE_MAX 16 /* (method, status) counters a route keeps at hand */
#define SERVICE_NAME_MAX 64
#define READY_TEXT_MAX   256 /* a dependency name or reason shown by /ready, bytes */
#define SHOWN_PATH_MAX   256 /* how much of a path a 404 repeats */
#define UNMATCHED_ROUTE  "unmatched"
#define REQUESTS_METRIC  "fg_http_requests_total"
#define DURATION_METRIC  "fg_http_request_duration_seconds"
#define METRICS_CONTENT  "text/plain; version=0.0.4; charset=utf-8"
/* Every bit, including libevent's internal one for a method it does not know (1 << 15 in
 * http-internal.h): only a method in this set reaches the generic callback, others get 501. */
#define ALL_EVHTTP_METHODS 0xFFFFu

/* Counters and histograms of one route, looked up once and then kept (loop thread only). */
typedef struct {
    fg_metric *duration[METHODS_COUNT];
    struct {
        fg_http_method method;
        int status;
        fg_metric *metric;
    } counts[STATUS_CACHE_MAX];
    size_t ncounts;
} route_stats;

typedef struct {
    char *pattern;
    fg_http_method method;
    fg_http_handler handler;
    void *payload;
    size_t nseg;
    char *seg[FG_HTTP_PATH_SEGMENTS_MAX]; /* literal text, or the parameter's name */
    bool is_param[FG_HTTP_PATH_SEGMENTS_MAX];
    bool public_route; /* answered without the service key */
    route_stats stats;
} route;

struct fg_http_request {
    fg_http_server *srv;
    struct evhttp_request *ev;
    const route *route;  /* the route answering, NULL before routing or when none matched */
    route_stats *stats;  /* where the answer is counted */
    const char *pattern; /* the route label of the metrics */
    fg_http_method method;
    const char *path; /* raw, owned by evhttp */
    char *strings;    /* decoded segments, query names and values, one allocation */
    const char *seg[FG_HTTP_PATH_SEGMENTS_MAX];
    size_t nseg;
    bool too_many_segments;
    const char *qname[FG_HTTP_QUERY_PARAMS_MAX];
    const char *qvalue[FG_HTTP_QUERY_PARAMS_MAX];
    size_t nquery;
    const char *body;
    size_t body_len;
    bool body_ready;
    struct timespec start;
    fg_http_request *prev, *next; /* the server's unanswered requests */
    /* a streamed answer (fg_http_stream_start): the producer, the event that calls it on a loop
     * turn of its own, and whether evhttp dropped the connection (the evhttp request is then
     * ours to free) */
    fg_http_stream_fn stream_next;
    void *stream_payload;
    struct event *stream_turn;
    bool streaming;
    bool stream_detached;
};

/* A server's life; only server_set_state moves it, and only forward. */
typedef enum {
    SERVER_LISTENING, /* accepting connections, serving requests */
    SERVER_DRAINING,  /* listener closed; requests already received are answered with
                         Connection: close; the shutdown timer is armed */
    SERVER_DRAINED    /* done() was called: nothing was in flight, or the deadline passed */
} server_state;

static const char *const state_names[] = {"listening", "draining", "drained"};

struct fg_http_server {
    struct event_base *base;
    struct evhttp *http;
    struct evhttp_bound_socket *listener;
    uint16_t port;
    size_t max_body;
    route **routes;
    size_t nroutes, routes_cap;
    route_stats unmatched;
    fg_metrics *metrics;
    bool owns_metrics;
    char *service;
    char *service_key; /* NULL: routes are open */
    fg_http_ready_fn ready;
    void *ready_payload;
    fg_http_request *pending;
    size_t in_flight;
    server_state state;
    struct event *shutdown_timer;
    void (*done)(void *payload);
    void *done_payload;
};

struct fg_http_readiness {
    fg_buf checks;  /* "name":"ok"|"reason" pairs, comma-separated */
    fg_buf reasons; /* "name: reason" strings, comma-separated */
    size_t count;
    bool ready;
    bool failed; /* a buffer ran out of memory */
};

static const char *const method_names[METHODS_COUNT] = {"OTHER", "GET",   "HEAD",   "POST",
                                                        "PUT",   "PATCH", "DELETE", "OPTIONS"};

static void respond_error_v(fg_http_request *req, int status, const char *code, const char *fmt,
                            va_list ap) FG_PRINTF(4, 0);
static void stream_abort(fg_http_request *req);

/* ---- small helpers ----------------------------------------------------------------------- */

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 202:
        return "Accepted";
    case 204:
        return "No Content";
    case 301:
        return "Moved Permanently";
    case 302:
        return "Found";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 409:
        return "Conflict";
    case 410:
        return "Gone";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return "Status";
    }
}

static fg_http_method method_from_evhttp(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return FG_HTTP_GET;
    case EVHTTP_REQ_HEAD:
        return FG_HTTP_HEAD;
    case EVHTTP_REQ_POST:
        return FG_HTTP_POST;
    case EVHTTP_REQ_PUT:
        return FG_HTTP_PUT;
    case EVHTTP_REQ_PATCH:
        return FG_HTTP_PATCH;
    case EVHTTP_REQ_DELETE:
        return FG_HTTP_DELETE;
    case EVHTTP_REQ_OPTIONS:
        return FG_HTTP_OPTIONS;
    default:
        return FG_HTTP_OTHER;
    }
}

/* Length of s cut to at most max bytes without splitting a UTF-8 sequence, so truncated text
 * stays valid JSON string content. */
static size_t utf8_prefix(const char *s, size_t max)
{
    size_t len = strnlen(s, max + 1);

    if (len <= max)
        return len;
    len = max;
    while (len > 0 && ((unsigned char)s[len] & 0xC0) == 0x80)
        len--;
    return len;
}

static int put_json_text(fg_buf *b, const char *s, size_t max)
{
    return fg_buf_put_json_string(b, s, utf8_prefix(s, max));
}

/* Percent-decodes into dst (room for len + 1); the message names the request target. */
static int percent_decode(char *dst, const char *src, size_t len, bool plus_is_space)
{
    if (fg_percent_decode(dst, src, len, plus_is_space) < 0)
        return fg_error_set(FG_EINVALID, "%s in the request target", fg_error_last());
    return 0;
}

static uint64_t elapsed_ns(const struct timespec *start)
{
    struct timespec now;

    clock_gettime(CLOCK_MONOTONIC, &now);
    return (uint64_t)(now.tv_sec - start->tv_sec) * 1000000000u + (uint64_t)now.tv_nsec -
           (uint64_t)start->tv_nsec;
}

/* ---- routes ------------------------------------------------------------------------------ */

static void route_free(route *r)
{
    size_t i;

    if (r == NULL)
        return;
    for (i = 0; i < r->nseg; i++)
        free(r->seg[i]);
    free(r->pattern);
    free(r);
}

static bool param_name_ok(const char *s, size_t len)
{
    size_t i;

    for (i = 0; i < len; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return len > 0;
}

/* Splits a pattern into literal and {parameter} segments; "/" has none. */
static int route_parse(route *r, const char *pattern)
{
    const char *p = pattern + 1, *end;
    size_t i;

    if (pattern[0] != '/')
        return fg_error_set(FG_EINVALID, "route pattern \"%s\" does not start with /", pattern);
    while (*p != '\0' || (p > pattern + 1 && p[-1] == '/')) {
        size_t len;

        end = strchr(p, '/');
        len = end != NULL ? (size_t)(end - p) : strlen(p);
        if (len == 0)
            return fg_error_set(FG_EINVALID, "route pattern \"%s\" has an empty segment", pattern);
        if (r->nseg == FG_HTTP_PATH_SEGMENTS_MAX)
            return fg_error_set(FG_EINVALID, "route pattern \"%s\" has over %d segments", pattern,
                                FG_HTTP_PATH_SEGMENTS_MAX);
        r->is_param[r->nseg] = p[0] == '{';
        if (r->is_param[r->nseg] && (p[len - 1] != '}' || !param_name_ok(p + 1, len - 2)))
            return fg_error_set(FG_EINVALID, "route pattern \"%s\": bad parameter", pattern);
        if (!r->is_param[r->nseg] && memchr(p, '{', len) != NULL)
            return fg_error_set(FG_EINVALID,
                                "route pattern \"%s\": a parameter must be a whole "
                                "segment",
                                pattern);
        r->seg[r->nseg] = r->is_param[r->nseg] ? strndup(p + 1, len - 2) : strndup(p, len);
        if (r->seg[r->nseg++] == NULL)
            return fg_error_set(FG_ENOMEM, "out of memory adding a route");
        if (end == NULL)
            break;
        p = end + 1;
    }
    for (i = 0; i < r->nseg; i++)
        for (size_t j = i + 1; j < r->nseg; j++)
            if (r->is_param[i] && r->is_param[j] && strcmp(r->seg[i], r->seg[j]) == 0)
                return fg_error_set(FG_EINVALID, "route pattern \"%s\" repeats {%s}", pattern,
                                    r->seg[i]);
    return 0;
}

static bool route_matches(const route *r, const fg_http_request *req)
{
    size_t i;

    if (r->nseg != req->nseg || req->too_many_segments)
        return false;
    for (i = 0; i < r->nseg; i++) {
        if (r->is_param[i] ? req->seg[i][0] == '\0' : strcmp(r->seg[i], req->seg[i]) != 0)
            return false;
    }
    return true;
}

/* True when a is more literal than b at the first segment where they differ. */
static bool route_more_specific(const route *a, const route *b)
{
    size_t i;

    for (i = 0; i < a->nseg; i++)
        if (a->is_param[i] != b->is_param[i])
            return !a->is_param[i];
    return false;
}

/* The route for the request's method and path (a GET one answers HEAD), the first route whose
 * path matches at all, and the methods the path allows (a bit per fg_http_method). */
static route *route_find(fg_http_server *srv, const fg_http_request *req, route **out_any,
                         unsigned *out_allowed)
{
    route *best = NULL, *best_get = NULL;
    size_t i;

    *out_any = NULL;
    *out_allowed = 0;
    for (i = 0; i < srv->nroutes; i++) {
        route *r = srv->routes[i];

        if (!route_matches(r, req))
            continue;
        if (*out_any == NULL)
            *out_any = r;
        *out_allowed |= 1u << r->method;
        if (r->method == FG_HTTP_GET)
            *out_allowed |= 1u << FG_HTTP_HEAD;
        if (r->method == req->method && (best == NULL || route_more_specific(r, best)))
            best = r;
        if (r->method == FG_HTTP_GET && (best_get == NULL || route_more_specific(r, best_get)))
            best_get = r;
    }
    if (best == NULL && req->method == FG_HTTP_HEAD)
        best = best_get;
    return best;
}

/* ---- metrics ----------------------------------------------------------------------------- */

static fg_metric *stats_counter(fg_http_server *srv, route_stats *st, const char *pattern,
                                fg_http_method method, int status)
{
    char status_text[16];
    fg_metric *m = NULL;
    size_t i;

    for (i = 0; i < st->ncounts; i++)
        if (st->counts[i].method == method && st->counts[i].status == status)
            return st->counts[i].metric;
    snprintf(status_text, sizeof(status_text), "%d", status);
    /* A full registry must not break serving: the answer is then simply not counted. */
    if (fg_metrics_counter(&m, srv->metrics, REQUESTS_METRIC,
                           "HTTP requests answered, by method, route pattern and status.",
                           FG_METRIC_LABELS("method", method_names[method], "route", pattern,
                                            "status", status_text)) < 0)
        return NULL;
    if (st->ncounts < STATUS_CACHE_MAX) {
        st->counts[st->ncounts].method = method;
        st->counts[st->ncounts].status = status;
        st->counts[st->ncounts++].metric = m;
    }
    return m;
}

static void count_answer(fg_http_request *req, int status)
{
    fg_http_server *srv = req->srv;
    route_stats *st = req->stats != NULL ? req->stats : &srv->unmatched;
    fg_metric **duration = &st->duration[req->method];
    uint64_t ns = elapsed_ns(&req->start);

    fg_metric_inc(stats_counter(srv, st, req->pattern, req->method, status));
    if (*duration == NULL &&
        fg_metrics_histogram(
            duration, srv->metrics, DURATION_METRIC,
            "Time from a request's dispatch to its answer, by route pattern.",
            FG_METRIC_LABELS("method", method_names[req->method], "route", req->pattern), NULL,
            0) < 0)
        *duration = NULL;
    fg_metric_observe(*duration, (double)ns / 1e9);
    if (fg_log_enabled(FG_LOG_DEBUG))
        fg_log_emit(FG_LOG_DEBUG,
                    FG_LOG_FIELDS(FG_LOG_STR("method", method_names[req->method]),
                                  FG_LOG_STR("route", req->pattern), FG_LOG_INT("status", status),
                                  FG_LOG_INT("us", ns / 1000)),
                    "http request answered");
}

/* ---- requests ---------------------------------------------------------------------------- */

static void request_free(fg_http_request *req)
{
    fg_http_server *srv = req->srv;

    if (req->prev != NULL)
        req->prev->next = req->next;
    else
        srv->pending = req->next;
    if (req->next != NULL)
        req->next->prev = req->prev;
    if (req->stream_turn != NULL)
        event_free(req->stream_turn);
    free(req->strings);
    free(req);
}

/* Splits and decodes the path into segments and the query into name/value pairs. */
static int parse_target(fg_http_request *req)
{
    const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req->ev);
    const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
    const char *query = uri != NULL ? evhttp_uri_get_query(uri) : NULL;
    size_t plen, qlen;
    char *out;

    req->path = path != NULL && path[0] != '\0' ? path : "/";
    if (req->path[0] != '/')
        return fg_error_set(FG_EINVALID, "the request target is not an absolute path");
    plen = strlen(req->path);
    qlen = query != NULL ? strlen(query) : 0;
    if (plen > FG_HTTP_PATH_MAX || qlen > FG_HTTP_QUERY_MAX)
        return fg_error_set(FG_ETOOBIG, "the request path or query is over %d or %d bytes",
                            FG_HTTP_PATH_MAX, FG_HTTP_QUERY_MAX);
    if ((out = req->strings = malloc(plen + qlen + 4)) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory parsing a request target");
    for (const char *p = req->path + 1; plen > 1;) {
        const char *end = strchr(p, '/');
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        int rc;

        if (req->nseg == FG_HTTP_PATH_SEGMENTS_MAX) {
            req->too_many_segments = true; /* no route can match: a 404, not bad input */
            break;
        }
        if ((rc = percent_decode(out, p, len, false)) < 0)
            return rc;
        req->seg[req->nseg++] = out;
        out += strlen(out) + 1;
        if (end == NULL)
            break;
        p = end + 1;
    }
    for (const char *p = query; p != NULL && *p != '\0';) {
        const char *end = strchr(p, '&'), *eq;
        size_t len = end != NULL ? (size_t)(end - p) : strlen(p);
        int rc;

        eq = memchr(p, '=', len);
        if (len > 0 && req->nquery == FG_HTTP_QUERY_PARAMS_MAX)
            return fg_error_set(FG_EINVALID, "more than %d query parameters",
                                FG_HTTP_QUERY_PARAMS_MAX);
        if (len > 0) {
            size_t nlen = eq != NULL ? (size_t)(eq - p) : len;

            if ((rc = percent_decode(out, p, nlen, true)) < 0)
                return rc;
            req->qname[req->nquery] = out;
            out += strlen(out) + 1;
            if ((rc = percent_decode(out, eq != NULL ? eq + 1 : p + len,
                                     eq != NULL ? len - nlen - 1 : 0, true)) < 0)
                return rc;
            req->qvalue[req->nquery++] = out;
            out += strlen(out) + 1;
        }
        p = end != NULL ? end + 1 : NULL;
    }
    return 0;
}

static void on_complete(struct evhttp_request *ev, void *arg)
{
    fg_http_server *srv = arg;

    (void)ev;
    if (srv->in_flight > 0)
        srv->in_flight--;
    /* The done callback runs from the timer, never from inside evhttp's write path. */
    if (srv->state == SERVER_DRAINING && srv->in_flight == 0)
        event_active(srv->shutdown_timer, EV_TIMEOUT, 0);
}

/* The method as the client sent it, for messages (FG_HTTP_OTHER covers two of them). */
static const char *method_text(const fg_http_request *req)
{
    switch (evhttp_request_get_command(req->ev)) {
    case EVHTTP_REQ_TRACE:
        return "TRACE";
    case EVHTTP_REQ_CONNECT:
        return "CONNECT";
    default:
        return method_names[req->method];
    }
}

static void answer_405(fg_http_request *req, unsigned allowed)
{
    char list[128] = "";
    size_t used = 0;
    int m;

    for (m = FG_HTTP_GET; m < METHODS_COUNT; m++) {
        if (allowed & (1u << m))
            used += (size_t)snprintf(list + used, sizeof(list) - used, "%s%s", used > 0 ? ", " : "",
                                     method_names[m]);
    }
    if (fg_http_response_add_header(req, "Allow", list) < 0) {
        fg_http_respond_fg_error(req, FG_ENOMEM);
        return;
    }
    fg_http_respond_error(req, 405, "method_not_allowed", "%s is not allowed on %.*s; allowed: %s",
                          method_text(req), SHOWN_PATH_MAX, req->path, list);
}

static void dispatch(fg_http_request *req)
{
    fg_http_server *srv = req->srv;
    size_t len = evbuffer_get_length(evhttp_request_get_input_buffer(req->ev));
    route *r, *any;
    unsigned allowed;
    int rc;

    /* evhttp enforces the same limit while reading and answers with its own fixed HTML 413
     * (libevent 2.1 has no hook for it); this check only guarantees that no handler ever sees a
     * larger body, and answers it in JSON. */
    if (len > srv->max_body) {
        fg_http_respond_error(req, 413, "too_big",
                              "request body of %zu bytes exceeds the limit of %zu bytes", len,
                              srv->max_body);
        return;
    }
    if ((rc = parse_target(req)) < 0) {
        if (rc == FG_ETOOBIG)
            fg_http_respond_error(req, 414, "too_big", "%s", fg_error_last());
        else
            fg_http_respond_fg_error(req, rc);
        return;
    }
    r = route_find(srv, req, &any, &allowed);
    if (r != NULL) {
        req->route = r;
        req->stats = &r->stats;
        req->pattern = r->pattern;
        /* require_auth answers the 401 itself, and answering frees req */
        if (srv->service_key == NULL || r->public_route ||
            fg_http_request_require_auth(req, srv->service_key) == 0)
            r->handler(req, r->payload);
    } else if (any != NULL) {
        req->stats = &any->stats;
        req->pattern = any->pattern;
        answer_405(req, allowed);
    } else {
        fg_http_respond_error(req, 404, "not_found", "no route for %.*s", SHOWN_PATH_MAX,
                              req->path);
    }
}

static void on_request(struct evhttp_request *ev, void *arg)
{
    fg_http_server *srv = arg;
    fg_http_request *req = calloc(1, sizeof(*req));

    if (req == NULL) {
        evhttp_send_error(ev, 500, NULL);
        return;
    }
    clock_gettime(CLOCK_MONOTONIC, &req->start);
    req->srv = srv;
    req->ev = ev;
    req->method = method_from_evhttp(evhttp_request_get_command(ev));
    req->pattern = UNMATCHED_ROUTE;
    req->path = "/";
    req->next = srv->pending;
    if (srv->pending != NULL)
        srv->pending->prev = req;
    srv->pending = req;
    srv->in_flight++;
    evhttp_request_set_on_complete_cb(ev, on_complete, srv);
    dispatch(req);
}

/* ---- standard endpoints ------------------------------------------------------------------ */

static void on_health(fg_http_request *req, void *payload)
{
    (void)payload;
    fg_http_respond_json(req, 200, "{\"status\":\"up\"}");
}

static void on_version(fg_http_request *req, void *payload)
{
    fg_http_server *srv = payload;
    fg_buf b;
    int rc;

    fg_buf_init(&b, 1024);
    if ((rc = fg_buf_puts(&b, "{\"service\":\"")) == 0 &&
        (rc = put_json_text(&b, srv->service, SERVICE_NAME_MAX)) == 0 &&
        (rc = fg_buf_puts(&b, "\",\"version\":\"")) == 0 &&
        (rc = put_json_text(&b, FG_VERSION, 128)) == 0 &&
        (rc = fg_buf_puts(&b, "\",\"revision\":\"")) == 0 &&
        (rc = put_json_text(&b, FG_REVISION, 128)) == 0)
        rc = fg_buf_puts(&b, "\"}");
    if (rc < 0)
        fg_http_respond_fg_error(req, rc);
    else
        fg_http_respond_json_buf(req, 200, &b);
    fg_buf_dispose(&b);
}

static void on_ready(fg_http_request *req, void *payload)
{
    fg_http_server *srv = payload;
    fg_http_readiness r;
    fg_buf b;
    int rc;

    fg_buf_init(&r.checks, FG_HTTP_READY_CHECKS_MAX * (12 * READY_TEXT_MAX + 8));
    fg_buf_init(&r.reasons, FG_HTTP_READY_CHECKS_MAX * (12 * READY_TEXT_MAX + 8));
    fg_buf_init(&b, 2 * FG_HTTP_READY_CHECKS_MAX * (12 * READY_TEXT_MAX + 8) + 64);
    r.count = 0;
    r.ready = true;
    r.failed = false;
    if (srv->ready != NULL)
        srv->ready(&r, srv->ready_payload);
    rc = fg_buf_printf(&b, "{\"ready\":%s,\"reasons\":[%s],\"checks\":{%s}}",
                       r.ready ? "true" : "false", r.reasons.ptr, r.checks.ptr);
    if (r.failed || rc < 0)
        fg_http_respond_fg_error(req, FG_ENOMEM);
    else
        fg_http_respond_json_buf(req, r.ready ? 200 : 503, &b);
    fg_buf_dispose(&b);
    fg_buf_dispose(&r.checks);
    fg_buf_dispose(&r.reasons);
}

static void on_metrics(fg_http_request *req, void *payload)
{
    fg_http_server *srv = payload;
    fg_buf b;

    fg_buf_init(&b, FG_HTTP_METRICS_TEXT_MAX);
    if (fg_metrics_render(srv->metrics, &b) < 0)
        fg_http_respond_error(req, 500, "error", "cannot render the metrics: %s", fg_error_last());
    else
        fg_http_respond_text(req, 200, METRICS_CONTENT, b.ptr, b.len);
    fg_buf_dispose(&b);
}

void fg_http_readiness_report(fg_http_readiness *r, const char *dependency, const char *reason)
{
    int rc = 0;

    if (reason != NULL)
        r->ready = false;
    if (dependency == NULL)
        dependency = "unnamed";
    if (r->count == FG_HTTP_READY_CHECKS_MAX)
        return; /* still not ready, just not listed */
    r->count++;
    if (r->checks.len > 0)
        rc = fg_buf_putc(&r->checks, ',');
    if (rc == 0 && reason != NULL && r->reasons.len > 0)
        rc = fg_buf_putc(&r->reasons, ',');
    if (rc == 0 && (rc = fg_buf_putc(&r->checks, '"')) == 0 &&
        (rc = put_json_text(&r->checks, dependency, READY_TEXT_MAX)) == 0 &&
        (rc = fg_buf_puts(&r->checks, "\":\"")) == 0 &&
        (rc = put_json_text(&r->checks, reason != NULL ? reason : "ok", READY_TEXT_MAX)) == 0)
        rc = fg_buf_putc(&r->checks, '"');
    if (rc == 0 && reason != NULL && (rc = fg_buf_putc(&r->reasons, '"')) == 0 &&
        (rc = put_json_text(&r->reasons, dependency, READY_TEXT_MAX)) == 0 &&
        (rc = fg_buf_puts(&r->reasons, ": ")) == 0 &&
        (rc = put_json_text(&r->reasons, reason, READY_TEXT_MAX)) == 0)
        rc = fg_buf_putc(&r->reasons, '"');
    if (rc < 0)
        r->failed = true;
}

/* ---- public: server ---------------------------------------------------------------------- */

void fg_http_server_options_init(fg_http_server_options *opts)
{
    memset(opts, 0, sizeof(*opts));
    opts->address = "127.0.0.1";
    opts->max_body = FG_HTTP_BODY_DEFAULT;
    opts->timeout_secs = 30;
}

static int server_listen(fg_http_server *srv, const char *address, uint16_t port)
{
    struct sockaddr_storage ss;
    socklen_t sslen = sizeof(ss);
    evutil_socket_t fd;

    srv->listener = evhttp_bind_socket_with_handle(srv->http, address, port);
    if (srv->listener == NULL)
        return fg_error_set(FG_EUNAVAILABLE, "cannot listen on %s port %u: %s", address,
                            (unsigned)port, evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
    fd = evhttp_bound_socket_get_fd(srv->listener);
    if (getsockname(fd, (struct sockaddr *)&ss, &sslen) != 0)
        return fg_error_set(FG_ERROR, "cannot read the bound address of %s", address);
    srv->port = ss.ss_family == AF_INET6 ? ntohs(((struct sockaddr_in6 *)&ss)->sin6_port)
                                         : ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return 0;
}

int fg_http_server_new(fg_http_server **out, struct event_base *base,
                       const fg_http_server_options *opts)
{
    fg_http_server_options defaults;
    fg_http_server *srv = NULL;
    int rc = FG_ENOMEM;

    *out = NULL;
    fg_http_server_options_init(&defaults);
    if (opts == NULL)
        opts = &defaults;
    if (opts->max_body > FG_HTTP_BODY_LIMIT_MAX) {
        rc = fg_error_set(FG_EINVALID, "a body limit of %zu bytes is over the %d maximum",
                          opts->max_body, FG_HTTP_BODY_LIMIT_MAX);
        goto done;
    }
    if ((srv = calloc(1, sizeof(*srv))) == NULL)
        goto done;
    srv->base = base;
    srv->max_body = opts->max_body > 0 ? opts->max_body : FG_HTTP_BODY_DEFAULT;
    srv->metrics = opts->metrics;
    if (srv->metrics == NULL) {
        if ((rc = fg_metrics_new(&srv->metrics)) < 0)
            goto done;
        srv->owns_metrics = true;
    }
    if (opts->service_key != NULL && (srv->service_key = strdup(opts->service_key)) == NULL)
        goto done;
    if ((srv->service = strdup("forgegraph")) == NULL || (srv->http = evhttp_new(base)) == NULL) {
        rc = FG_ENOMEM;
        goto done;
    }
    /* Every method reaches our callback, so an unknown one gets 405 with Allow, not evhttp's
     * 501. Lingering close reads an oversized body to its end before the 413 goes out; closing
     * at once would reset the connection and the client would never see the answer. */
    evhttp_set_allowed_methods(srv->http, ALL_EVHTTP_METHODS);
    evhttp_set_max_body_size(srv->http, (ev_ssize_t)srv->max_body);
    evhttp_set_max_headers_size(srv->http, FG_HTTP_HEADERS_SIZE_MAX);
    evhttp_set_timeout(srv->http, opts->timeout_secs > 0 ? opts->timeout_secs : 30);
    evhttp_set_flags(srv->http, EVHTTP_SERVER_LINGERING_CLOSE);
    evhttp_set_gencb(srv->http, on_request, srv);
    if ((rc = server_listen(srv, opts->address != NULL ? opts->address : "127.0.0.1", opts->port)) <
        0)
        goto done;
    *out = srv;
    srv = NULL;
    rc = 0;
done:
    if (rc == FG_ENOMEM)
        fg_error_set(rc, "out of memory creating an HTTP server");
    fg_http_server_free(srv);
    return rc;
}

uint16_t fg_http_server_port(const fg_http_server *srv)
{
    return srv->port;
}

fg_metrics *fg_http_server_metrics(const fg_http_server *srv)
{
    return srv->metrics;
}

size_t fg_http_server_in_flight(const fg_http_server *srv)
{
    return srv->in_flight;
}

static int add_route(fg_http_server *srv, fg_http_method method, const char *pattern,
                     fg_http_handler handler, void *payload, bool public_route)
{
    route *r = NULL, **grown;
    size_t i;
    int rc = FG_ENOMEM;

    if (method <= FG_HTTP_OTHER || method >= METHODS_COUNT || handler == NULL || pattern == NULL) {
        rc = fg_error_set(FG_EINVALID, "a route needs a method, a pattern and a handler");
        goto done;
    }
    if ((r = calloc(1, sizeof(*r))) == NULL || (r->pattern = strdup(pattern)) == NULL)
        goto done;
    if ((rc = route_parse(r, pattern)) < 0)
        goto done;
    for (i = 0; i < srv->nroutes; i++) {
        if (srv->routes[i]->method == method && strcmp(srv->routes[i]->pattern, pattern) == 0) {
            rc = fg_error_set(FG_ECONFLICT, "route %s %s exists already", method_names[method],
                              pattern);
            goto done;
        }
    }
    if (srv->nroutes == srv->routes_cap) {
        size_t cap = srv->routes_cap ? srv->routes_cap * 2 : 16;

        if ((grown = realloc(srv->routes, cap * sizeof(*grown))) == NULL) {
            rc = FG_ENOMEM;
            goto done;
        }
        srv->routes = grown;
        srv->routes_cap = cap;
    }
    r->method = method;
    r->handler = handler;
    r->payload = payload;
    r->public_route = public_route;
    srv->routes[srv->nroutes++] = r;
    r = NULL;
    rc = 0;
done:
    if (rc == FG_ENOMEM)
        fg_error_set(rc, "out of memory adding a route");
    route_free(r);
    return rc;
}

int fg_http_server_route(fg_http_server *srv, fg_http_method method, const char *pattern,
                         fg_http_handler handler, void *payload)
{
    return add_route(srv, method, pattern, handler, payload, false);
}

int fg_http_server_route_public(fg_http_server *srv, fg_http_method method, const char *pattern,
                                fg_http_handler handler, void *payload)
{
    return add_route(srv, method, pattern, handler, payload, true);
}

int fg_http_server_add_standard(fg_http_server *srv, const fg_http_standard *std)
{
    char *service = NULL;
    int rc = FG_ENOMEM;

    if (std->service != NULL && (service = strndup(std->service, SERVICE_NAME_MAX)) == NULL)
        goto done;
    /* Probes and Prometheus hold no service key. */
    if ((rc = fg_http_server_route_public(srv, FG_HTTP_GET, "/health", on_health, srv)) < 0 ||
        (rc = fg_http_server_route_public(srv, FG_HTTP_GET, "/ready", on_ready, srv)) < 0 ||
        (rc = fg_http_server_route_public(srv, FG_HTTP_GET, "/metrics", on_metrics, srv)) < 0 ||
        (rc = fg_http_server_route_public(srv, FG_HTTP_GET, "/version", on_version, srv)) < 0)
        goto done;
    if (service != NULL) {
        free(srv->service);
        srv->service = service;
        service = NULL;
    }
    srv->ready = std->ready;
    srv->ready_payload = std->ready_payload;
    rc = 0;
done:
    if (rc == FG_ENOMEM)
        fg_error_set(rc, "out of memory adding the standard endpoints");
    free(service);
    return rc;
}

/* The one place the state changes: forward by one step only, so a second shutdown call or a
 * second timer firing is refused (FG_ECONFLICT) and does nothing. */
static int server_set_state(fg_http_server *srv, server_state next)
{
    if (next != srv->state + 1)
        return fg_error_set(FG_ECONFLICT, "http server cannot go from %s to %s",
                            state_names[srv->state], state_names[next]);
    fg_log_debug("http server %s -> %s", state_names[srv->state], state_names[next]);
    srv->state = next;
    return 0;
}

static void on_shutdown_timer(evutil_socket_t fd, short what, void *arg)
{
    fg_http_server *srv = arg;

    (void)fd;
    (void)what;
    if (server_set_state(srv, SERVER_DRAINED) < 0)
        return;
    if (srv->in_flight > 0)
        fg_log_warn("http shutdown: %zu requests still in flight at the deadline", srv->in_flight);
    if (srv->done != NULL)
        srv->done(srv->done_payload);
}

int fg_http_server_shutdown(fg_http_server *srv, int timeout_ms, void (*done)(void *payload),
                            void *payload)
{
    struct timeval tv = {0, 0};

    if (srv->state != SERVER_LISTENING)
        return 0;
    /* The timer first: once draining, on_complete relies on it. */
    if ((srv->shutdown_timer = evtimer_new(srv->base, on_shutdown_timer, srv)) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory arming the shutdown timer");
    if (server_set_state(srv, SERVER_DRAINING) < 0)
        return FG_ECONFLICT;
    evhttp_del_accept_socket(srv->http, srv->listener);
    srv->listener = NULL;
    srv->done = done;
    srv->done_payload = payload;
    if (srv->in_flight > 0 && timeout_ms > 0) {
        tv.tv_sec = timeout_ms / 1000;
        tv.tv_usec = (timeout_ms % 1000) * 1000;
    }
    evtimer_add(srv->shutdown_timer, &tv);
    return 0;
}

void fg_http_server_free(fg_http_server *srv)
{
    size_t i;

    if (srv == NULL)
        return;
    for (fg_http_request *req = srv->pending, *next; req != NULL; req = next) {
        next = req->next;
        if (req->streaming)
            stream_abort(req);
    }
    while (srv->pending != NULL)
        request_free(srv->pending);
    if (srv->http != NULL)
        evhttp_free(srv->http);
    if (srv->shutdown_timer != NULL)
        event_free(srv->shutdown_timer);
    for (i = 0; i < srv->nroutes; i++)
        route_free(srv->routes[i]);
    free(srv->routes);
    if (srv->owns_metrics)
        fg_metrics_free(srv->metrics);
    free(srv->service);
    if (srv->service_key != NULL)
        fg_crypto_wipe(srv->service_key, strlen(srv->service_key));
    free(srv->service_key);
    free(srv);
}

/* ---- public: request accessors ----------------------------------------------------------- */

fg_http_method fg_http_request_method(const fg_http_request *req)
{
    return req->method;
}

const char *fg_http_method_name(fg_http_method method)
{
    return method < METHODS_COUNT ? method_names[method] : "OTHER";
}

const char *fg_http_request_path(const fg_http_request *req)
{
    return req->path;
}

const char *fg_http_request_param(const fg_http_request *req, const char *name)
{
    size_t i;

    if (req->route == NULL)
        return NULL;
    for (i = 0; i < req->route->nseg; i++)
        if (req->route->is_param[i] && strcmp(req->route->seg[i], name) == 0)
            return req->seg[i];
    return NULL;
}

const char *fg_http_request_query(const fg_http_request *req, const char *name)
{
    size_t i;

    for (i = 0; i < req->nquery; i++)
        if (strcmp(req->qname[i], name) == 0)
            return req->qvalue[i];
    return NULL;
}

const char *fg_http_request_header(const fg_http_request *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req->ev), name);
}

void fg_http_request_headers(const char **out, const fg_http_request *req, const char *const *names,
                             size_t n)
{
    const struct evkeyvalq *headers = evhttp_request_get_input_headers(req->ev);
    size_t lens[FG_HTTP_HEADER_NAMES_MAX], missing = n;
    const struct evkeyval *h;

    if (n > FG_HTTP_HEADER_NAMES_MAX) { /* correct, only slower */
        for (size_t i = 0; i < n; i++)
            out[i] = fg_http_request_header(req, names[i]);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        out[i] = NULL;
        lens[i] = strlen(names[i]);
    }
    /* the length first: most names differ in it, and it spares a case-folding compare */
    /* keyvalq_struct.h's TAILQ fields (its macros need <sys/queue.h>) */
    for (h = headers->tqh_first; h != NULL && missing > 0; h = h->next.tqe_next) {
        size_t len = strlen(h->key);

        for (size_t i = 0; i < n; i++) {
            if (out[i] == NULL && lens[i] == len &&
                evutil_ascii_strcasecmp(h->key, names[i]) == 0) {
                out[i] = h->value;
                missing--;
            }
        }
    }
}

const char *fg_http_request_body(fg_http_request *req, size_t *out_len)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req->ev);
    size_t len = evbuffer_get_length(in);

    if (!req->body_ready) {
        req->body = "";
        req->body_len = 0;
        /* The NUL goes into evhttp's buffer so the pull-up makes one contiguous C string. */
        if (len > 0) {
            req->body = evbuffer_add(in, "", 1) == 0 ? (const char *)evbuffer_pullup(in, -1) : NULL;
            req->body_len = req->body != NULL ? len : 0;
        }
        req->body_ready = true;
    }
    *out_len = req->body_len;
    return req->body;
}

bool fg_http_request_authorized(const fg_http_request *req, const char *key)
{
    const char *h = fg_http_request_header(req, "Authorization");
    unsigned char want[SHA256_DIGEST_LENGTH], got[SHA256_DIGEST_LENGTH];

    if (key == NULL || key[0] == '\0' || h == NULL)
        return false;
    if (strncasecmp(h, "Bearer", 6) != 0 || (h[6] != ' ' && h[6] != '\t'))
        return false;
    for (h += 6; *h == ' ' || *h == '\t'; h++)
        ;
    /* Comparing digests keeps the time independent of where the strings differ and of the
     * key's length. */
    SHA256((const unsigned char *)h, strlen(h), got);
    SHA256((const unsigned char *)key, strlen(key), want);
    return CRYPTO_memcmp(got, want, sizeof(got)) == 0;
}

int fg_http_request_require_auth(fg_http_request *req, const char *key)
{
    if (fg_http_request_authorized(req, key))
        return 0;
    if (fg_http_response_add_header(req, "WWW-Authenticate", "Bearer") < 0) {
        fg_http_respond_fg_error(req, FG_ENOMEM);
        return FG_EAUTH;
    }
    fg_http_respond_error(req, 401, "unauthorized", "missing or wrong service key");
    return FG_EAUTH;
}

/* ---- public: answers --------------------------------------------------------------------- */

int fg_http_response_add_header(fg_http_request *req, const char *name, const char *value)
{
    if (strpbrk(name, "\r\n") != NULL || strpbrk(value, "\r\n") != NULL)
        return fg_error_set(FG_EINVALID, "a response header may not contain CR or LF");
    if (evhttp_add_header(evhttp_request_get_output_headers(req->ev), name, value) != 0)
        return fg_error_set(FG_ENOMEM, "out of memory adding a response header");
    return 0;
}

static void send_response(fg_http_request *req, int status, const char *content_type,
                          const char *body, size_t len)
{
    struct evhttp_request *ev = req->ev;
    struct evkeyvalq *headers = evhttp_request_get_output_headers(ev);
    struct evbuffer *out = evhttp_request_get_output_buffer(ev);

    evhttp_remove_header(headers, "Content-Type");
    if (evhttp_add_header(headers, "Content-Type", content_type) != 0 ||
        evbuffer_add(out, body, len) != 0) {
        evbuffer_drain(out, evbuffer_get_length(out));
        status = 500;
    }
    if (req->srv->state != SERVER_LISTENING)
        evhttp_add_header(headers, "Connection", "close");
    count_answer(req, status);
    request_free(req);
    evhttp_send_reply(ev, status, reason_phrase(status), NULL);
}

void fg_http_respond_json(fg_http_request *req, int status, const char *json)
{
    send_response(req, status, "application/json", json, strlen(json));
}

void fg_http_respond_json_buf(fg_http_request *req, int status, const fg_buf *body)
{
    send_response(req, status, "application/json", body->ptr, body->len);
}

void fg_http_respond_text(fg_http_request *req, int status, const char *content_type,
                          const char *body, size_t len)
{
    send_response(req, status, content_type != NULL ? content_type : "text/plain; charset=utf-8",
                  body, len);
}

static void respond_error_v(fg_http_request *req, int status, const char *code, const char *fmt,
                            va_list ap)
{
    char message[FG_HTTP_ERROR_MESSAGE_MAX + 1];
    fg_buf b;
    int rc;

    vsnprintf(message, sizeof(message), fmt, ap);
    fg_buf_init(&b, 8 * FG_HTTP_ERROR_MESSAGE_MAX);
    if ((rc = fg_buf_puts(&b, "{\"error\":\"")) == 0 && (rc = put_json_text(&b, code, 64)) == 0 &&
        (rc = fg_buf_puts(&b, "\",\"message\":\"")) == 0 &&
        (rc = put_json_text(&b, message, FG_HTTP_ERROR_MESSAGE_MAX)) == 0)
        rc = fg_buf_puts(&b, "\"}");
    if (rc < 0)
        fg_http_respond_json(req, 500, "{\"error\":\"out_of_memory\",\"message\":\"\"}");
    else
        fg_http_respond_json_buf(req, status, &b);
    fg_buf_dispose(&b);
}

void fg_http_respond_error(fg_http_request *req, int status, const char *code, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    respond_error_v(req, status, code, fmt, ap);
    va_end(ap);
}

void fg_http_respond_fg_error(fg_http_request *req, int err)
{
    int status;

    switch (err) {
    case FG_ENOTFOUND:
        status = 404;
        break;
    case FG_EINVALID:
        status = 400;
        break;
    case FG_ETOOBIG:
        status = 413;
        break;
    case FG_EAUTH:
        status = 401;
        break;
    case FG_ECONFLICT:
        status = 409;
        break;
    case FG_EUNAVAILABLE:
        status = 503;
        break;
    case FG_ETIMEOUT:
        status = 504;
        break;
    default:
        status = 500;
        break;
    }
    fg_http_respond_error(req, status, fg_error_name(err), "%s", fg_error_last());
}

/* ---- public: streamed answers ------------------------------------------------------------ */

/*
 * A stream's life: the producer runs on a loop turn of its own (stream_turn), never inside
 * evhttp's write callback, so nothing it does re-enters evhttp. evhttp calls on_stream_written
 * when a piece has left the output buffer, and on_stream_closed (the connection's close
 * callback) when the client goes away mid-answer: evhttp then detaches the request from the dying
 * connection instead of freeing it (the user is not done with it), so freeing it falls to us.
 */

/* The answer is over without the producer: tell it once, free the request, count it done. */
static void stream_abort(fg_http_request *req)
{
    fg_http_server *srv = req->srv;
    struct evhttp_request *ev = req->ev;
    fg_http_stream_fn next = req->stream_next;
    bool detached = req->stream_detached;

    req->stream_next = NULL;
    if (next != NULL)
        next(req, true, req->stream_payload);
    /* still attached (the server is being freed): the connection must not call back into it */
    if (!detached && evhttp_request_get_connection(ev) != NULL)
        evhttp_connection_set_closecb(evhttp_request_get_connection(ev), NULL, NULL);
    request_free(req);
    if (detached) {
        evhttp_request_free(ev);
        on_complete(NULL, srv);
    }
}

static void on_stream_turn(evutil_socket_t fd, short what, void *arg)
{
    fg_http_request *req = arg;

    (void)fd;
    (void)what;
    if (req->stream_detached || req->stream_next == NULL)
        stream_abort(req);
    else
        req->stream_next(req, false, req->stream_payload);
}

static void on_stream_written(struct evhttp_connection *evcon, void *arg)
{
    fg_http_request *req = arg;

    (void)evcon;
    event_active(req->stream_turn, EV_TIMEOUT, 0);
}

static void on_stream_closed(struct evhttp_connection *evcon, void *arg)
{
    fg_http_request *req = arg;

    (void)evcon;
    req->stream_detached = true;
    event_active(req->stream_turn, EV_TIMEOUT, 0);
}

int fg_http_stream_start(fg_http_request *req, int status, const char *content_type,
                         fg_http_stream_fn next, void *payload)
{
    struct evhttp_request *ev = req->ev;
    struct evkeyvalq *headers = evhttp_request_get_output_headers(ev);
    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);

    if (req->streaming || next == NULL || evcon == NULL)
        return fg_error_set(FG_EINVALID, "this request cannot start a streamed answer");
    if ((req->stream_turn = evtimer_new(req->srv->base, on_stream_turn, req)) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory starting a streamed answer");
    evhttp_remove_header(headers, "Content-Type");
    if (evhttp_add_header(headers, "Content-Type",
                          content_type != NULL ? content_type : "application/octet-stream") != 0 ||
        (req->srv->state != SERVER_LISTENING &&
         evhttp_add_header(headers, "Connection", "close") != 0)) {
        event_free(req->stream_turn);
        req->stream_turn = NULL;
        return fg_error_set(FG_ENOMEM, "out of memory starting a streamed answer");
    }
    req->streaming = true;
    req->stream_next = next;
    req->stream_payload = payload;
    count_answer(req, status);
    evhttp_connection_set_closecb(evcon, on_stream_closed, req);
    evhttp_send_reply_start(ev, status, reason_phrase(status));
    /* HEAD (or a status without a body) gets the head alone: evhttp would drop every piece
     * silently and never report it written, so the stream ends here. */
    if (req->method == FG_HTTP_HEAD || status == 204 || status == 304) {
        fg_http_stream_fn producer = req->stream_next;

        req->stream_next = NULL;
        producer(req, true, payload);
        fg_http_stream_end(req, false);
        return 0;
    }
    event_active(req->stream_turn, EV_TIMEOUT, 0);
    return 0;
}

int fg_http_stream_write(fg_http_request *req, const void *data, size_t len)
{
    struct evbuffer *piece;

    if (len == 0) {
        event_active(req->stream_turn, EV_TIMEOUT, 0);
        return 0;
    }
    if ((piece = evbuffer_new()) == NULL || evbuffer_add(piece, data, len) != 0) {
        if (piece != NULL)
            evbuffer_free(piece);
        return fg_error_set(FG_ENOMEM, "out of memory queueing %zu bytes of an answer", len);
    }
    evhttp_send_reply_chunk_with_cb(req->ev, piece, on_stream_written, req);
    evbuffer_free(piece);
    return 0;
}

void fg_http_stream_end(fg_http_request *req, bool failed)
{
    struct evhttp_request *ev = req->ev;
    struct evhttp_connection *evcon = evhttp_request_get_connection(ev);
    struct bufferevent *bev;

    req->stream_next = NULL;
    if (failed && evcon != NULL && (bev = evhttp_connection_get_bufferevent(evcon)) != NULL) {
        /* No final chunk: shutting the socket down makes evhttp see the end of the connection,
         * which detaches the request and calls on_stream_closed; the clean-up runs from there. */
        shutdown(bufferevent_getfd(bev), SHUT_RDWR);
        return;
    }
    if (evcon != NULL)
        evhttp_connection_set_closecb(evcon, NULL, NULL);
    if (req->stream_detached) {
        event_active(req->stream_turn, EV_TIMEOUT, 0);
        return;
    }
    request_free(req);
    evhttp_send_reply_end(ev);
}
