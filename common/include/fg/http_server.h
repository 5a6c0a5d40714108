/*
 * An HTTP/1.1 server on libevent's evhttp: routes by method and path pattern ("/projects/{id}"),
 * bounds what a client can send, answers JSON errors, checks the service key, serves the
 * standard endpoints (/health, /ready, /metrics, /version) and counts requests in a metrics
 * registry. It does not parse JSON bodies nor run handlers on other threads. Everything here runs
 * on the thread of the caller's event_base, except where a comment says otherwise. The server
 * owns its requests: a handler borrows one until it answers with exactly one fg_http_respond_*
 * (or hands it to a stream: fg_http_stream_start).
 */
#ifndef FG_HTTP_SERVER_H
#define FG_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg/buf.h"
#include "fg/error.h"
#include "fg/metrics.h"

struct event_base;

#define FG_HTTP_BODY_DEFAULT      (1024 * 1024)       /* default request body limit */
#define FG_HTTP_BODY_LIMIT_MAX    (256 * 1024 * 1024) /* most a server may be configured for */
#define FG_HTTP_HEADERS_SIZE_MAX  (64 * 1024)         /* request line + headers, bytes */
#define FG_HTTP_PATH_MAX          2048                /* request path, bytes, before decoding */
#define FG_HTTP_PATH_SEGMENTS_MAX 16                  /* '/'-separated path segments */
#define FG_HTTP_QUERY_MAX         4096                /* query string, bytes */
#define FG_HTTP_QUERY_PARAMS_MAX  32                  /* name=value pairs in the query */
#define FG_HTTP_READY_CHECKS_MAX  16                  /* dependencies one /ready reports */
#define FG_HTTP_METRICS_TEXT_MAX  (4 * 1024 * 1024)   /* rendered /metrics page */
#define FG_HTTP_ERROR_MESSAGE_MAX 1024                /* the "message" of an error body */
#define FG_HTTP_HEADER_NAMES_MAX  32                  /* names fg_http_request_headers takes */

typedef enum {
    FG_HTTP_OTHER = 0, /* a method no route can have (TRACE, CONNECT) */
    FG_HTTP_GET,
    FG_HTTP_HEAD,
    FG_HTTP_POST,
    FG_HTTP_PUT,
    FG_HTTP_PATCH,
    FG_HTTP_DELETE,
    FG_HTTP_OPTIONS
} fg_http_method;

typedef struct fg_http_server fg_http_server;
typedef struct fg_http_request fg_http_request;

/* A route's handler. It must answer `req` with one fg_http_respond_* call, now or later on the
 * loop thread (then req stays valid until that call or fg_http_server_free). */
typedef void (*fg_http_handler)(fg_http_request *req, void *payload);

typedef struct {
    const char *address;     /* where to listen; "127.0.0.1" by default */
    uint16_t port;           /* 0: an ephemeral port (see fg_http_server_port) */
    size_t max_body;         /* request body limit in bytes; FG_HTTP_BODY_DEFAULT by default */
    int timeout_secs;        /* read/write idle timeout of a connection; 30 by default */
    fg_metrics *metrics;     /* request counts and /metrics; NULL: the server makes its own */
    const char *service_key; /* when set (copied), every route but the four standard endpoints
                                requires `Authorization: Bearer <key>`; 401 otherwise */
} fg_http_server_options;

/* Fills in the defaults. */
void fg_http_server_options_init(fg_http_server_options *opts);

/*
 * Creates a server on `base` and starts listening (connections are served once the caller runs
 * the loop). `opts` may be NULL for all defaults; strings are copied, metrics is borrowed and
 * must outlive the server. FG_EINVALID for a bad option (max_body over FG_HTTP_BODY_LIMIT_MAX),
 * FG_EUNAVAILABLE when the address cannot be bound, FG_ENOMEM.
 */
int fg_http_server_new(fg_http_server **out, struct event_base *base,
                       const fg_http_server_options *opts) FG_MUST_CHECK;

/* The port the server listens on (the kernel's choice when the option was 0). */
uint16_t fg_http_server_port(const fg_http_server *srv);

/* The registry the server counts into (its own or the one from the options). */
fg_metrics *fg_http_server_metrics(const fg_http_server *srv);

/*
 * Adds a route. `pattern` is an absolute path whose segments are literals or whole-segment
 * parameters "{name}" ([A-Za-z0-9_]+), at most FG_HTTP_PATH_SEGMENTS_MAX; "/" is the root. When
 * several patterns match a path the most literal one wins (compared left to right). A GET route
 * also answers HEAD. FG_EINVALID for a bad pattern or method, FG_ECONFLICT when the method and
 * pattern are taken, FG_ENOMEM.
 */
int fg_http_server_route(fg_http_server *srv, fg_http_method method, const char *pattern,
                         fg_http_handler handler, void *payload) FG_MUST_CHECK;

/* Like fg_http_server_route, for a route answered without the service key even when the server
 * has one: the standard endpoints, and forge webhooks, which prove themselves by signature. */
int fg_http_server_route_public(fg_http_server *srv, fg_http_method method, const char *pattern,
                                fg_http_handler handler, void *payload) FG_MUST_CHECK;

/* What a /ready probe collects; filled by the readiness callback. */
typedef struct fg_http_readiness fg_http_readiness;

/* Records one dependency: reason NULL means it is fine, otherwise a short text shown in /ready
 * (never a secret: redact URLs). Both strings are copied. */
void fg_http_readiness_report(fg_http_readiness *r, const char *dependency, const char *reason);

/* Called on every GET /ready; must not block (report the state the service already knows). */
typedef void (*fg_http_ready_fn)(fg_http_readiness *r, void *payload);

typedef struct {
    const char *service;    /* name shown by /version, copied */
    fg_http_ready_fn ready; /* NULL: always ready */
    void *ready_payload;
} fg_http_standard;

/*
 * Installs GET /health (200 {"status":"up"}), GET /ready (200 {"ready":true,...} or 503
 * {"ready":false,"reasons":[...],...}), GET /metrics (the registry, Prometheus text format) and
 * GET /version ({"service","version","revision"}). None requires the service key.
 * FG_ECONFLICT when one of the routes exists, FG_ENOMEM.
 */
int fg_http_server_add_standard(fg_http_server *srv, const fg_http_standard *std) FG_MUST_CHECK;

/*
 * Begins a clean shutdown: closes the listening socket at once, lets requests already received
 * finish (their answers carry Connection: close), then calls done(payload) on the loop thread
 * once none is in flight or timeout_ms passed (<= 0: at once), whichever comes first. The caller
 * then typically leaves the loop and calls fg_http_server_free. A second call is a no-op
 * returning 0. FG_ENOMEM when the timer cannot be created (nothing changed then).
 */
int fg_http_server_shutdown(fg_http_server *srv, int timeout_ms, void (*done)(void *payload),
                            void *payload) FG_MUST_CHECK;

/* Requests received whose answer is not completely written yet. */
size_t fg_http_server_in_flight(const fg_http_server *srv);

/* Closes every connection and frees the server, its routes and any unanswered request; accepts
 * NULL. Call with the loop stopped or from a loop callback that is not a handler. */
void fg_http_server_free(fg_http_server *srv);

/* ---- requests: accessors (valid until the request is answered) ---------------------------- */

fg_http_method fg_http_request_method(const fg_http_request *req);

/* "GET", "POST", ...; "OTHER" for FG_HTTP_OTHER. */
const char *fg_http_method_name(fg_http_method method);

/* The raw (still percent-encoded) path, without the query. */
const char *fg_http_request_path(const fg_http_request *req);

/* The value of path parameter {name}, percent-decoded; NULL when the route has none. */
const char *fg_http_request_param(const fg_http_request *req, const char *name);

/* The first value of query parameter `name`, percent- and '+'-decoded; "" for a bare "?name";
 * NULL when absent. */
const char *fg_http_request_query(const fg_http_request *req, const char *name);

/* A request header (case-insensitive name), NULL when absent. */
const char *fg_http_request_header(const fg_http_request *req, const char *name);

/* Several headers in one pass over the request's headers: out[i] is the first value of
 * names[i] (case-insensitive), NULL when absent. For a handler that reads many headers. */
void fg_http_request_headers(const char **out, const fg_http_request *req, const char *const *names,
                             size_t n);

/* The request body, contiguous and followed by a NUL byte that *out_len does not count (a body
 * may itself contain NULs); an empty body is "". NULL only when memory runs out. */
const char *fg_http_request_body(fg_http_request *req, size_t *out_len);

/* True when the request carries "Authorization: Bearer <key>" with exactly `key`, compared in
 * constant time. An empty or NULL key authorises nobody. Neither key is ever logged. */
bool fg_http_request_authorized(const fg_http_request *req, const char *key);

/* As fg_http_request_authorized, but answers 401 {"error":"unauthorized",...} itself when the
 * check fails and returns FG_EAUTH: the handler must then return without touching req. */
int fg_http_request_require_auth(fg_http_request *req, const char *key) FG_MUST_CHECK;

/* ---- requests: answers (each consumes req) ------------------------------------------------ */

/* Adds a response header (Location, Retry-After...) before the answer. FG_EINVALID when name or
 * value holds CR or LF, FG_ENOMEM. */
int fg_http_response_add_header(fg_http_request *req, const char *name,
                                const char *value) FG_MUST_CHECK;

/* Answers with an application/json body (the caller's JSON text, NUL-terminated). */
void fg_http_respond_json(fg_http_request *req, int status, const char *json);

/* Answers with the content of `body` as application/json; body is left to the caller. */
void fg_http_respond_json_buf(fg_http_request *req, int status, const fg_buf *body);

/* Answers {"error":"<code>","message":"<formatted text>"}; the message is cut at
 * FG_HTTP_ERROR_MESSAGE_MAX bytes and JSON-escaped. Never put a secret in it. */
void fg_http_respond_error(fg_http_request *req, int status, const char *code, const char *fmt, ...)
    FG_PRINTF(4, 5);

/* Answers an FG_E* code as its usual status (not_found 404, invalid 400, too_big 413, auth 401,
 * conflict 409, unavailable 503, timeout 504, anything else 500) with code fg_error_name(err)
 * and fg_error_last() as the message. */
void fg_http_respond_fg_error(fg_http_request *req, int err);

/* Answers with any body and content type ("text/plain; charset=utf-8" when NULL). */
void fg_http_respond_text(fg_http_request *req, int status, const char *content_type,
                          const char *body, size_t len);

/* ---- requests: streamed answers (chunked) ------------------------------------------------- */

/* Produces the next piece of a streamed answer, on the loop thread, once the answer's head or
 * the previous piece has been written to the socket (so one piece at a time is buffered, however
 * long the answer). Each call must either queue one piece (fg_http_stream_write), end the answer
 * (fg_http_stream_end), or both, in that order. With aborted true the answer is over without the
 * producer (the client went away, a HEAD request has no body, the server is being freed): it
 * must only release what payload holds, and never touch req again. */
typedef void (*fg_http_stream_fn)(fg_http_request *req, bool aborted, void *payload);

/*
 * Starts answering req with `status` and `content_type` in pieces (Transfer-Encoding: chunked;
 * an HTTP/1.0 client gets the body up to the connection's close). On success req now belongs to
 * the stream: the handler returns without touching it, and next(req, ..., payload) is called as
 * said above until it ends the answer; it is called exactly once with aborted true if the answer
 * ends any other way. FG_ENOMEM, or FG_EINVALID when req is streaming already; on failure
 * nothing was sent and the caller still answers req with an fg_http_respond_* call.
 */
int fg_http_stream_start(fg_http_request *req, int status, const char *content_type,
                         fg_http_stream_fn next, void *payload) FG_MUST_CHECK;

/* Queues one piece (copied) of a streamed answer; only from the producer. An empty piece sends
 * nothing and simply asks for the next one. FG_ENOMEM (nothing queued). */
int fg_http_stream_write(fg_http_request *req, const void *data, size_t len) FG_MUST_CHECK;

/* Ends a streamed answer (consumes req; the producer is not called again). With failed, the
 * connection is closed without the final empty chunk, so the client sees a truncated answer
 * (curl: "transfer closed with outstanding read data") rather than a complete-looking one. */
void fg_http_stream_end(fg_http_request *req, bool failed);

#endif
