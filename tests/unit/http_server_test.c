/* fg_http_server against a real server on 127.0.0.1 (ephemeral port, loop in a thread), driven
 * with libcurl and, for requests curl would not send, a raw socket: routing with parameters,
 * 404/405 and what they name, several headers read in one pass, the body limit at exactly the
 * limit and one byte over, the standard endpoints, the service key, bad input answered 4xx, and a
 * clean shutdown. */
#include "test_support.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <errno.h>
#include <event2/event.h>
#include <event2/thread.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "fg/http_server.h"
#include "fg/log.h"

#define SERVICE_KEY "s3cr3t-Service-Key-0123456789"
#define SMALL_LIMIT 1000

typedef struct {
    struct event_base *base;
    fg_http_server *srv;
    fg_metrics *metrics;
    pthread_t loop;
    uint16_t port;
    atomic_bool broker_up;
    _Atomic(fg_http_request *) slow;
    atomic_bool shutdown_started;
    atomic_bool shutdown_done;
    atomic_size_t in_flight_at_done;
    atomic_size_t in_flight_now;
    /* the streamed answer of /stream: pieces sent, how it ended */
    atomic_int stream_pieces_sent;
    atomic_bool stream_aborted;
    atomic_bool stream_fail_after_first; /* end the answer as failed after one piece */
} fixture;

typedef struct {
    long status;
    fg_buf body;
    fg_buf headers;
} response;

/* route names the echo handler repeats (payloads are void *, literals are const) */
static char name_get_event[] = "get-event", name_post_event[] = "post-event",
            name_get_project[] = "get-project", name_new_project[] = "new-project",
            name_root[] = "root";

/* ---- handlers (loop thread) -------------------------------------------------------------- */

static int put_field(fg_buf *b, const char *name, const char *value)
{
    int rc = fg_buf_printf(b, "%s\"%s\":", b->len > 1 ? "," : "", name);

    if (rc == 0 && value == NULL)
        return fg_buf_puts(b, "null");
    if (rc == 0 && (rc = fg_buf_putc(b, '"')) == 0 &&
        (rc = fg_buf_put_json_string(b, value, strlen(value))) == 0)
        rc = fg_buf_putc(b, '"');
    return rc;
}

static void on_echo(fg_http_request *req, void *payload)
{
    fg_buf b;
    int rc;

    fg_buf_init(&b, 8192);
    if ((rc = fg_buf_putc(&b, '{')) == 0 && (rc = put_field(&b, "route", payload)) == 0 &&
        (rc = put_field(&b, "method", fg_http_method_name(fg_http_request_method(req)))) == 0 &&
        (rc = put_field(&b, "id", fg_http_request_param(req, "id"))) == 0 &&
        (rc = put_field(&b, "sha", fg_http_request_param(req, "sha"))) == 0 &&
        (rc = put_field(&b, "nope", fg_http_request_param(req, "nope"))) == 0 &&
        (rc = put_field(&b, "q", fg_http_request_query(req, "q"))) == 0 &&
        (rc = put_field(&b, "flag", fg_http_request_query(req, "flag"))) == 0 &&
        (rc = put_field(&b, "agent", fg_http_request_header(req, "x-test-agent"))) == 0)
        rc = fg_buf_putc(&b, '}');
    if (rc < 0)
        fg_http_respond_fg_error(req, rc);
    else
        fg_http_respond_json_buf(req, 200, &b);
    fg_buf_dispose(&b);
}

/* fg_http_request_headers: the named headers in one pass, echoed as {"name": value|null}. With
 * ?many it asks for more names than the function takes at once (fillers nobody sends): the
 * fallback must give the same answers. */
#define ASKED 6
static void on_headers(fg_http_request *req, void *payload)
{
    static const char *const asked[ASKED] = {"X-One", "x-two",      "X-Missing",
                                             "X-Dup", "X-One-More", "X-On"};
    static char fillers[FG_HTTP_HEADER_NAMES_MAX + 1][32];
    const char *names[FG_HTTP_HEADER_NAMES_MAX + 1], *values[FG_HTTP_HEADER_NAMES_MAX + 1];
    size_t n = fg_http_request_query(req, "many") != NULL ? FG_HTTP_HEADER_NAMES_MAX + 1 : ASKED;
    fg_buf b;
    int rc;

    (void)payload;
    for (size_t i = 0; i < n; i++) {
        snprintf(fillers[i], sizeof(fillers[i]), "X-Filler-%zu", i);
        names[i] = i < ASKED ? asked[i] : fillers[i];
    }
    fg_http_request_headers(values, req, names, n);
    fg_buf_init(&b, 8192);
    rc = fg_buf_putc(&b, '{');
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (i < ASKED || values[i] != NULL)
            rc = put_field(&b, names[i], values[i]);
    }
    if (rc == 0 && (rc = fg_buf_putc(&b, '}')) == 0)
        fg_http_respond_json_buf(req, 200, &b);
    else
        fg_http_respond_fg_error(req, rc);
    fg_buf_dispose(&b);
}

static void on_upload(fg_http_request *req, void *payload)
{
    size_t len;
    const char *body = fg_http_request_body(req, &len);

    (void)payload;
    if (body == NULL || body[len] != '\0') {
        fg_http_respond_error(req, 500, "error", "body not terminated");
        return;
    }
    fg_http_respond_error(req, 200, "ok", "received %zu bytes", len);
}

static void on_secret(fg_http_request *req, void *payload)
{
    (void)payload;
    if (fg_http_request_require_auth(req, SERVICE_KEY) < 0)
        return;
    fg_http_respond_json(req, 200, "{\"ok\":true}");
}

static void on_slow(fg_http_request *req, void *payload)
{
    fixture *fx = payload;

    atomic_store(&fx->slow, req); /* answered later, from answer_slow */
}

static void on_text(fg_http_request *req, void *payload)
{
    (void)payload;
    if (fg_http_response_add_header(req, "X-Bad", "a\r\nInjected: yes") != FG_EINVALID) {
        fg_http_respond_error(req, 500, "error", "header injection accepted");
        return;
    }
    fg_http_respond_text(req, 200, NULL, "plain\n", 6);
}

#define STREAM_PIECES     64
#define STREAM_PIECE_SIZE (64 * 1024)

/* Piece i is STREAM_PIECE_SIZE bytes of the letter 'a' + i % 26, so the client can check order. */
static void stream_next(fg_http_request *req, bool aborted, void *payload)
{
    fixture *fx = payload;
    static char piece[STREAM_PIECE_SIZE];
    int i = atomic_load(&fx->stream_pieces_sent);

    if (aborted) {
        atomic_store(&fx->stream_aborted, true);
        return;
    }
    if (i == STREAM_PIECES || (i == 1 && atomic_load(&fx->stream_fail_after_first))) {
        fg_http_stream_end(req, i != STREAM_PIECES);
        return;
    }
    memset(piece, 'a' + i % 26, sizeof(piece));
    if (fg_http_stream_write(req, piece, sizeof(piece)) < 0) {
        fg_http_stream_end(req, true);
        return;
    }
    atomic_store(&fx->stream_pieces_sent, i + 1);
}

static void on_stream(fg_http_request *req, void *payload)
{
    if (fg_http_stream_start(req, 200, "application/x-ndjson", stream_next, payload) < 0)
        fg_http_respond_fg_error(req, fg_error_last_code());
}

static void ready_check(fg_http_readiness *r, void *payload)
{
    fixture *fx = payload;

    fg_http_readiness_report(r, "postgres", NULL);
    fg_http_readiness_report(r, "rabbitmq",
                             atomic_load(&fx->broker_up) ? NULL : "connection \"refused\"");
}

/* ---- fixture ----------------------------------------------------------------------------- */

static void *run_loop(void *arg)
{
    fixture *fx = arg;

    event_base_dispatch(fx->base);
    return NULL;
}

/* When set, start_server makes a server that requires this key on every non-standard route. */
static const char *fixture_service_key;

static fixture *start_server(size_t max_body)
{
    fixture *fx = calloc(1, sizeof(*fx));
    fg_http_server_options opts;
    fg_http_standard std = {"test-service", ready_check, NULL};

    assert_non_null(fx);
    atomic_init(&fx->broker_up, true);
    std.ready_payload = fx;
    assert_non_null(fx->base = event_base_new());
    assert_int_equal(fg_metrics_new(&fx->metrics), 0);
    fg_http_server_options_init(&opts);
    opts.port = 0;
    opts.max_body = max_body;
    opts.metrics = fx->metrics;
    opts.service_key = fixture_service_key;
    assert_int_equal(fg_http_server_new(&fx->srv, fx->base, &opts), 0);
    fx->port = fg_http_server_port(fx->srv);
    assert_true(fx->port > 0);
    assert_int_equal(fg_http_server_add_standard(fx->srv, &std), 0);
    assert_int_equal(fg_http_server_route(fx->srv, FG_HTTP_GET, "/projects/{id}/events/{sha}",
                                          on_echo, name_get_event),
                     0);
    assert_int_equal(fg_http_server_route(fx->srv, FG_HTTP_POST, "/projects/{id}/events/{sha}",
                                          on_echo, name_post_event),
                     0);
    assert_int_equal(
        fg_http_server_route(fx->srv, FG_HTTP_GET, "/projects/{id}", on_echo, name_get_project), 0);
    assert_int_equal(
        fg_http_server_route(fx->srv, FG_HTTP_GET, "/projects/new", on_echo, name_new_project), 0);
    assert_int_equal(fg_http_server_route(fx->srv, FG_HTTP_GET, "/", on_echo, name_root), 0);
    assert_int_equal(fg_http_server_route(fx->srv, FG_HTTP_POST, "/upload", on_upload, NULL), 0);
    assert_int_equal(fg_http_server_route(fx->srv, FG_HTTP_GET, "/secret", on_secret, NULL), 0);
    assert_int_equal(fg_http_server_route(fx->srv, FG_HTTP_GET, "/slow", on_slow, fx), 0);
    assert_int_equal(fg_http_server_route(fx->srv, FG_HTTP_GET, "/text", on_text, NULL), 0);
    assert_int_equal(fg_http_server_route(fx->srv, FG_HTTP_GET, "/stream", on_stream, fx), 0);
    assert_int_equal(fg_http_server_route(fx->srv, FG_HTTP_GET, "/headers", on_headers, NULL), 0);
    assert_int_equal(pthread_create(&fx->loop, NULL, run_loop, fx), 0);
    return fx;
}

static void stop_server(fixture *fx)
{
    assert_int_equal(event_base_loopexit(fx->base, NULL), 0);
    assert_int_equal(pthread_join(fx->loop, NULL), 0);
    fg_http_server_free(fx->srv);
    fg_metrics_free(fx->metrics);
    event_base_free(fx->base);
    free(fx);
}

/* Runs fn(fx) on the loop thread (libevent is thread-aware: evthread_use_pthreads in main). */
static void on_loop(fixture *fx, event_callback_fn fn)
{
    struct timeval now = {0, 0};

    assert_int_equal(event_base_once(fx->base, -1, EV_TIMEOUT, fn, fx, &now), 0);
}

/* ---- clients ----------------------------------------------------------------------------- */

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
    return fg_buf_put(arg, data, size * n) == 0 ? size * n : 0;
}

typedef struct {
    size_t left;
} chunk_source;

static size_t read_zeros(char *out, size_t size, size_t n, void *arg)
{
    chunk_source *src = arg;
    size_t len = size * n < src->left ? size * n : src->left;

    memset(out, 'z', len);
    src->left -= len;
    return len;
}

/* One request with curl; headers is NULL or a NULL-terminated list; body_len < 0 sends the body
 * chunked (body_len = -size) instead of with a Content-Length. */
static void http(response *r, fixture *fx, const char *method, const char *target,
                 const char *const *headers, const char *body, long body_len)
{
    CURL *c = curl_easy_init();
    struct curl_slist *list = NULL;
    chunk_source src = {0};
    char url[4096];

    assert_non_null(c);
    fg_buf_init(&r->body, 16 << 20);
    fg_buf_init(&r->headers, 1 << 16);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u%s", (unsigned)fx->port, target);
    curl_easy_setopt(c, CURLOPT_URL, url);
    if (strcmp(method, "HEAD") == 0)
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    if (body != NULL) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    } else if (body_len < 0) {
        src.left = (size_t)-body_len;
        curl_easy_setopt(c, CURLOPT_POST, 1L);
        curl_easy_setopt(c, CURLOPT_READFUNCTION, read_zeros);
        curl_easy_setopt(c, CURLOPT_READDATA, &src);
        list = curl_slist_append(list, "Transfer-Encoding: chunked");
    }
    for (; headers != NULL && *headers != NULL; headers++)
        list = curl_slist_append(list, *headers);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, list);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r->headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(list);
    curl_easy_cleanup(c);
}

static void get(response *r, fixture *fx, const char *target)
{
    http(r, fx, "GET", target, NULL, NULL, 0);
}

static void response_dispose(response *r)
{
    fg_buf_dispose(&r->body);
    fg_buf_dispose(&r->headers);
}

/* Sends raw bytes (then closes the sending side when half_close), reads the answer to the end,
 * returns the status code (-1 when none came). */
static int raw_request(fixture *fx, const char *bytes, size_t len, bool half_close, fg_buf *answer)
{
    struct sockaddr_in addr = {0};
    struct timeval tv = {10, 0};
    char chunk[4096];
    ssize_t n;
    int fd, status = -1;

    addr.sin_family = AF_INET;
    addr.sin_port = htons(fx->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(send(fd, bytes, len, MSG_NOSIGNAL), (ssize_t)len);
    if (half_close)
        assert_int_equal(shutdown(fd, SHUT_WR), 0);
    while ((n = recv(fd, chunk, sizeof(chunk), 0)) > 0)
        assert_int_equal(fg_buf_put(answer, chunk, (size_t)n), 0);
    close(fd);
    if (sscanf(answer->ptr, "HTTP/1.%*d %d", &status) != 1)
        status = -1;
    return status;
}

static int connect_refused(fixture *fx)
{
    struct sockaddr_in addr = {0};
    int fd, rc, err;

    addr.sin_family = AF_INET;
    addr.sin_port = htons(fx->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    rc = connect(fd, (struct sockaddr *)&addr, sizeof(addr));
    err = errno;
    close(fd);
    return rc != 0 && err == ECONNREFUSED;
}

static bool header_has(const response *r, const char *line)
{
    return strstr(r->headers.ptr, line) != NULL;
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_http_server__routes_with_parameters(void **state)
{
    fixture *fx = start_server(0);
    const char *const agent[] = {"X-Test-Agent: tester/1", NULL};
    response r;
    (void)state;

    http(&r, fx, "GET", "/projects/42/events/ab%2Fcd%20e?q=a+b%26c&flag&q=second", agent, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_true(header_has(&r, "Content-Type: application/json"));
    assert_string_equal(r.body.ptr, "{\"route\":\"get-event\",\"method\":\"GET\",\"id\":\"42\","
                                    "\"sha\":\"ab/cd e\",\"nope\":null,\"q\":\"a b&c\","
                                    "\"flag\":\"\",\"agent\":\"tester/1\"}");
    response_dispose(&r);

    http(&r, fx, "POST", "/projects/7/events/f00", NULL, "{}", 2);
    assert_int_equal(r.status, 200);
    assert_non_null(
        strstr(r.body.ptr, "\"route\":\"post-event\",\"method\":\"POST\",\"id\":\"7\""));
    response_dispose(&r);

    get(&r, fx, "/projects/new"); /* the literal route beats {id} */
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.ptr, "\"route\":\"new-project\""));
    assert_non_null(strstr(r.body.ptr, "\"id\":null"));
    response_dispose(&r);

    get(&r, fx, "/projects/news");
    assert_int_equal(r.status, 200);
    assert_non_null(
        strstr(r.body.ptr, "\"route\":\"get-project\",\"method\":\"GET\",\"id\":\"news\""));
    response_dispose(&r);

    get(&r, fx, "/");
    assert_int_equal(r.status, 200);
    assert_non_null(strstr(r.body.ptr, "\"route\":\"root\""));
    response_dispose(&r);

    http(&r, fx, "HEAD", "/projects/42", NULL, NULL, 0); /* a GET route answers HEAD, no body */
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    response_dispose(&r);

    get(&r, fx, "/text");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.ptr, "plain\n");
    assert_true(header_has(&r, "Content-Type: text/plain; charset=utf-8"));
    assert_false(header_has(&r, "Injected"));
    response_dispose(&r);
    stop_server(fx);
}

static void test_http_server__headers_in_one_pass(void **state)
{
    fixture *fx = start_server(0);
    const char *const sent[] = {
        "x-one: 1", "X-TWO: 2", "X-Dup: first", "X-Dup: second", "X-One-Mor: no", "X-On: on", NULL};
    const char *const expected = "{\"X-One\":\"1\",\"x-two\":\"2\",\"X-Missing\":null,"
                                 "\"X-Dup\":\"first\",\"X-One-More\":null,\"X-On\":\"on\"}";
    response r;
    (void)state;

    /* names match whatever their case, only whole names match, the first of two values wins
     * (as fg_http_request_header), an absent one is NULL */
    http(&r, fx, "GET", "/headers", sent, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.ptr, expected);
    response_dispose(&r);
    http(&r, fx, "GET", "/headers?many", sent, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.ptr, expected);
    response_dispose(&r);
    stop_server(fx);
}

static void test_http_server__404_names_the_path(void **state)
{
    fixture *fx = start_server(0);
    response r;
    (void)state;

    get(&r, fx, "/nowhere/at%20all?q=1");
    assert_int_equal(r.status, 404);
    assert_true(header_has(&r, "Content-Type: application/json"));
    assert_string_equal(r.body.ptr,
                        "{\"error\":\"not_found\",\"message\":\"no route for /nowhere/at%20all\"}");
    response_dispose(&r);

    get(&r, fx, "/health/"); /* a trailing slash is another path */
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body.ptr, "no route for /health/"));
    response_dispose(&r);

    get(&r, fx, "/projects//events/x"); /* a parameter never matches an empty segment */
    assert_int_equal(r.status, 404);
    response_dispose(&r);

    get(&r, fx, "/a/b/c/d/e/f/g/h/i/j/k/l/m/n/o/p/q/r/s"); /* more segments than any route */
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body.ptr, "\"error\":\"not_found\""));
    response_dispose(&r);
    stop_server(fx);
}

static void test_http_server__405_lists_allowed_methods(void **state)
{
    fixture *fx = start_server(0);
    response r;
    (void)state;

    http(&r, fx, "DELETE", "/projects/1/events/abc", NULL, NULL, 0);
    assert_int_equal(r.status, 405);
    assert_true(header_has(&r, "Allow: GET, HEAD, POST\r\n"));
    assert_string_equal(r.body.ptr, "{\"error\":\"method_not_allowed\",\"message\":\"DELETE is "
                                    "not allowed on /projects/1/events/abc; allowed: GET, "
                                    "HEAD, POST\"}");
    response_dispose(&r);

    /* methods evhttp would answer 501 for when not in its allowed set */
    http(&r, fx, "PATCH", "/health", NULL, NULL, 0);
    assert_int_equal(r.status, 405);
    assert_true(header_has(&r, "Allow: GET, HEAD\r\n"));
    response_dispose(&r);
    http(&r, fx, "OPTIONS", "/upload", NULL, NULL, 0);
    assert_int_equal(r.status, 405);
    assert_true(header_has(&r, "Allow: POST\r\n"));
    response_dispose(&r);
    http(&r, fx, "TRACE", "/metrics", NULL, NULL, 0);
    assert_int_equal(r.status, 405);
    assert_non_null(strstr(r.body.ptr, "TRACE is not allowed on /metrics; allowed: GET, HEAD"));
    response_dispose(&r);
    stop_server(fx);
}

static void check_body_limit(size_t limit)
{
    fixture *fx = start_server(limit);
    const char *const no_expect[] = {"Expect:", NULL};
    const char *const expect[] = {"Expect: 100-continue", NULL};
    char *body = malloc(limit + 1), expected[128];
    response r;

    assert_non_null(body);
    memset(body, 'b', limit + 1);
    snprintf(expected, sizeof(expected), "{\"error\":\"ok\",\"message\":\"received %zu bytes\"}",
             limit);

    http(&r, fx, "POST", "/upload", no_expect, body, (long)limit);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.ptr, expected);
    response_dispose(&r);

    http(&r, fx, "POST", "/upload", no_expect, body, (long)limit + 1); /* body sent at once */
    assert_int_equal(r.status, 413);
    response_dispose(&r);

    http(&r, fx, "POST", "/upload", expect, body, (long)limit + 1); /* refused before the body */
    assert_int_equal(r.status, 413);
    response_dispose(&r);

    http(&r, fx, "POST", "/upload", NULL, NULL, -(long)(limit + 1)); /* chunked */
    assert_int_equal(r.status, 413);
    response_dispose(&r);

    http(&r, fx, "POST", "/upload", NULL, NULL, -(long)limit);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.ptr, expected);
    response_dispose(&r);

    get(&r, fx, "/health"); /* the server is still fine */
    assert_int_equal(r.status, 200);
    response_dispose(&r);
    free(body);
    stop_server(fx);
}

static void test_http_server__413_one_byte_over_the_default_limit(void **state)
{
    (void)state;
    check_body_limit(FG_HTTP_BODY_DEFAULT);
}

static void test_http_server__413_one_byte_over_a_configured_limit(void **state)
{
    (void)state;
    check_body_limit(SMALL_LIMIT);
}

static void test_http_server__standard_endpoints(void **state)
{
    fixture *fx = start_server(0);
    response r;
    (void)state;

    get(&r, fx, "/health");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.ptr, "{\"status\":\"up\"}");
    response_dispose(&r);

    get(&r, fx, "/version");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.ptr, "{\"service\":\"test-service\",\"version\":\"" FG_VERSION
                                    "\",\"revision\":\"" FG_REVISION "\"}");
    response_dispose(&r);

    get(&r, fx, "/ready");
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.ptr, "{\"ready\":true,\"reasons\":[],\"checks\":{\"postgres\":"
                                    "\"ok\",\"rabbitmq\":\"ok\"}}");
    response_dispose(&r);

    atomic_store(&fx->broker_up, false);
    get(&r, fx, "/ready");
    assert_int_equal(r.status, 503);
    assert_true(header_has(&r, "Content-Type: application/json"));
    assert_string_equal(r.body.ptr,
                        "{\"ready\":false,\"reasons\":[\"rabbitmq: connection \\\"refused\\\"\"],"
                        "\"checks\":{\"postgres\":\"ok\",\"rabbitmq\":\"connection "
                        "\\\"refused\\\"\"}}");
    response_dispose(&r);

    get(&r, fx, "/missing");
    response_dispose(&r);
    get(&r, fx, "/metrics");
    assert_int_equal(r.status, 200);
    assert_true(header_has(&r, "Content-Type: text/plain; version=0.0.4; charset=utf-8"));
    assert_non_null(strstr(r.body.ptr, "# TYPE fg_http_requests_total counter\n"));
    assert_non_null(strstr(
        r.body.ptr, "fg_http_requests_total{method=\"GET\",route=\"/health\",status=\"200\"} 1\n"));
    assert_non_null(strstr(
        r.body.ptr, "fg_http_requests_total{method=\"GET\",route=\"/ready\",status=\"200\"} 1\n"));
    assert_non_null(strstr(
        r.body.ptr, "fg_http_requests_total{method=\"GET\",route=\"/ready\",status=\"503\"} 1\n"));
    assert_non_null(
        strstr(r.body.ptr,
               "fg_http_requests_total{method=\"GET\",route=\"unmatched\",status=\"404\"} 1\n"));
    assert_non_null(strstr(r.body.ptr, "# TYPE fg_http_request_duration_seconds histogram\n"));
    assert_non_null(strstr(r.body.ptr, "fg_http_request_duration_seconds_count{method=\"GET\","
                                       "route=\"/ready\"} 2\n"));
    assert_non_null(strstr(r.body.ptr, "fg_http_request_duration_seconds_bucket{method=\"GET\","
                                       "route=\"/health\",le=\"+Inf\"} 1\n"));
    response_dispose(&r);
    stop_server(fx);
}

static bool key_absent(const response *r)
{
    return strstr(r->body.ptr, SERVICE_KEY) == NULL && strstr(r->headers.ptr, SERVICE_KEY) == NULL;
}

static void test_http_server__service_key(void **state)
{
    static const char *const wrong[][2] = {
        {"Authorization: Bearer wrong-key", NULL},
        {"Authorization: Bearer " SERVICE_KEY "x", NULL},
        {"Authorization: Bearer s3cr3t-Service-Key-012345678", NULL}, /* a prefix */
        {"Authorization: Basic " SERVICE_KEY, NULL},
        {"Authorization: Bearer", NULL},
        {"Authorization: Bearer s3cr3t-service-key-0123456789", NULL}, /* case matters */
    };
    const char *const right[] = {"Authorization: Bearer " SERVICE_KEY, NULL};
    const char *const lower_scheme[] = {"Authorization: bearer " SERVICE_KEY, NULL};
    char log_path[] = "/tmp/fg-http-test-log-XXXXXX";
    int log_fd = mkstemp(log_path);
    fixture *fx;
    fg_buf log;
    FILE *f;
    response r;
    (void)state;

    assert_true(log_fd >= 0);
    fg_log_setup("http-test", FG_LOG_DEBUG);
    fg_log_set_fd(log_fd);
    fx = start_server(0);

    get(&r, fx, "/secret");
    assert_int_equal(r.status, 401);
    assert_true(header_has(&r, "WWW-Authenticate: Bearer"));
    assert_string_equal(
        r.body.ptr, "{\"error\":\"unauthorized\",\"message\":\"missing or wrong service key\"}");
    response_dispose(&r);
    for (size_t i = 0; i < sizeof(wrong) / sizeof(wrong[0]); i++) {
        http(&r, fx, "GET", "/secret", wrong[i], NULL, 0);
        assert_int_equal(r.status, 401);
        assert_true(key_absent(&r));
        response_dispose(&r);
    }
    http(&r, fx, "GET", "/secret", right, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_string_equal(r.body.ptr, "{\"ok\":true}");
    assert_true(key_absent(&r));
    response_dispose(&r);
    http(&r, fx, "GET", "/secret", lower_scheme, NULL, 0); /* the scheme is case-insensitive */
    assert_int_equal(r.status, 200);
    response_dispose(&r);
    stop_server(fx);

    fg_log_set_fd(2);
    fg_log_setup("http-test", FG_LOG_INFO);
    fg_buf_init(&log, 1 << 20);
    assert_non_null(f = fopen(log_path, "r"));
    for (int c; (c = fgetc(f)) != EOF;)
        assert_int_equal(fg_buf_putc(&log, (char)c), 0);
    fclose(f);
    close(log_fd);
    unlink(log_path);
    assert_non_null(strstr(log.ptr, "\"route\":\"/secret\"")); /* the requests were logged... */
    assert_null(strstr(log.ptr, SERVICE_KEY));                 /* ...without the key */
    assert_null(strstr(log.ptr, "s3cr3t"));
    fg_buf_dispose(&log);
}

static void test_http_server__server_key_guards_all_but_standard_routes(void **state)
{
    static const char *const open_paths[] = {"/health", "/ready", "/metrics", "/version"};
    const char *const right[] = {"Authorization: Bearer " SERVICE_KEY, NULL};
    fixture *fx;
    response r;
    (void)state;

    fixture_service_key = SERVICE_KEY;
    fx = start_server(0);
    fixture_service_key = NULL;
    get(&r, fx, "/projects/7");
    assert_int_equal(r.status, 401);
    assert_true(key_absent(&r));
    response_dispose(&r);
    http(&r, fx, "GET", "/projects/7", right, NULL, 0);
    assert_int_equal(r.status, 200);
    response_dispose(&r);
    for (size_t i = 0; i < sizeof(open_paths) / sizeof(open_paths[0]); i++) {
        get(&r, fx, open_paths[i]);
        assert_int_equal(r.status, 200);
        response_dispose(&r);
    }
    get(&r, fx, "/nowhere"); /* no route: 404 whoever asks */
    assert_int_equal(r.status, 404);
    response_dispose(&r);
    stop_server(fx);
}

static void test_http_server__bad_input_is_4xx(void **state)
{
    static const struct {
        const char *request;
        int status;        /* -1: no answer, the connection is closed */
        const char *error; /* the JSON error code, NULL when evhttp answers by itself */
        bool half_close;
    } cases[] = {
        {"GET /projects/%zz/events/x HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "invalid", false},
        {"GET /projects/1/events/a%00b HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "invalid",
         false},
        {"GET /projects/1/events/ab%4 HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "invalid",
         false},
        {"GET /projects/1?q=%G1 HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "invalid", false},
        {"GET * HTTP/1.1\r\nConnection: close\r\n\r\n", 400, "invalid", false},
        {"BREW /coffee HTTP/1.1\r\nConnection: close\r\n\r\n", 404, "not_found", false},
        {"BREW /health HTTP/1.1\r\nConnection: close\r\n\r\n", 405, "method_not_allowed", false},
        {"NONSENSE\r\n\r\n", 400, NULL, false},
        {"POST /upload HTTP/1.1\r\nContent-Length: -5\r\nConnection: close\r\n\r\n", 400, NULL,
         false},
        /* libevent answers a malformed chunk size with its 413, like an oversized body */
        {"POST /upload HTTP/1.1\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
         "zz\r\n",
         413, NULL, false},
        /* evhttp waits for the declared body (lingering close) until the client gives up */
        {"POST /upload HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\n", -1, NULL, true},
    };
    fixture *fx = start_server(0);
    fg_buf answer, big;
    int status;
    (void)state;

    fg_buf_init(&answer, 1 << 20);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fg_buf_clear(&answer);
        status = raw_request(fx, cases[i].request, strlen(cases[i].request), cases[i].half_close,
                             &answer);
        assert_int_equal(status, cases[i].status);
        if (cases[i].error != NULL) {
            char expected[64];

            snprintf(expected, sizeof(expected), "{\"error\":\"%s\",\"message\":\"",
                     cases[i].error);
            assert_non_null(strstr(answer.ptr, expected));
        }
    }

    fg_buf_init(&big, 1 << 20);
    assert_int_equal(fg_buf_puts(&big, "GET /projects/1?"), 0); /* too many query parameters */
    for (int i = 0; i <= FG_HTTP_QUERY_PARAMS_MAX; i++)
        assert_int_equal(fg_buf_printf(&big, "p%d=%d&", i, i), 0);
    assert_int_equal(fg_buf_puts(&big, " HTTP/1.1\r\nConnection: close\r\n\r\n"), 0);
    fg_buf_clear(&answer);
    assert_int_equal(raw_request(fx, big.ptr, big.len, false, &answer), 400);
    assert_non_null(strstr(answer.ptr, "more than 32 query parameters"));

    fg_buf_clear(&big); /* a path over FG_HTTP_PATH_MAX */
    assert_int_equal(fg_buf_puts(&big, "GET /"), 0);
    for (int i = 0; i <= FG_HTTP_PATH_MAX; i++)
        assert_int_equal(fg_buf_putc(&big, 'p'), 0);
    assert_int_equal(fg_buf_puts(&big, " HTTP/1.1\r\nConnection: close\r\n\r\n"), 0);
    fg_buf_clear(&answer);
    assert_int_equal(raw_request(fx, big.ptr, big.len, false, &answer), 414);
    assert_non_null(strstr(answer.ptr, "\"error\":\"too_big\""));

    fg_buf_clear(&big); /* headers over FG_HTTP_HEADERS_SIZE_MAX */
    assert_int_equal(fg_buf_puts(&big, "GET /health HTTP/1.1\r\nX-Big: "), 0);
    for (int i = 0; i <= FG_HTTP_HEADERS_SIZE_MAX; i++)
        assert_int_equal(fg_buf_putc(&big, 'h'), 0);
    assert_int_equal(fg_buf_puts(&big, "\r\nConnection: close\r\n\r\n"), 0);
    fg_buf_clear(&answer);
    assert_int_equal(raw_request(fx, big.ptr, big.len, false, &answer), 400); /* by evhttp */

    fg_buf_dispose(&big);
    fg_buf_dispose(&answer);
    stop_server(fx);
}

static void begin_shutdown_done(void *payload)
{
    fixture *fx = payload;

    atomic_store(&fx->in_flight_at_done, fg_http_server_in_flight(fx->srv));
    atomic_store(&fx->shutdown_done, true);
}

static void begin_shutdown(evutil_socket_t fd, short what, void *arg)
{
    fixture *fx = arg;

    (void)fd;
    (void)what;
    /* the second call changes nothing: done stays the first one's */
    if (fg_http_server_shutdown(fx->srv, 10000, begin_shutdown_done, fx) == 0 &&
        fg_http_server_shutdown(fx->srv, 0, NULL, NULL) == 0)
        atomic_store(&fx->shutdown_started, true);
}

static void answer_slow(evutil_socket_t fd, short what, void *arg)
{
    fixture *fx = arg;

    (void)fd;
    (void)what;
    fg_http_respond_json(atomic_exchange(&fx->slow, NULL), 200, "{\"slow\":true}");
}

typedef struct {
    fixture *fx;
    response r;
} slow_call;

static void *call_slow(void *arg)
{
    slow_call *call = arg;

    get(&call->r, call->fx, "/slow");
    return NULL;
}

static bool slow_arrived(void *payload)
{
    return atomic_load(&((fixture *)payload)->slow) != NULL;
}

static bool shutdown_started(void *payload)
{
    return atomic_load(&((fixture *)payload)->shutdown_started);
}

static bool shutdown_done(void *payload)
{
    return atomic_load(&((fixture *)payload)->shutdown_done);
}

static void test_http_server__shutdown_lets_in_flight_requests_finish(void **state)
{
    fixture *fx = start_server(0);
    slow_call call = {fx, {0}};
    pthread_t client;
    (void)state;

    assert_int_equal(pthread_create(&client, NULL, call_slow, &call), 0);
    assert_true(fg_test_wait_until(slow_arrived, fx, 10000));
    on_loop(fx, begin_shutdown);
    assert_true(fg_test_wait_until(shutdown_started, fx, 10000));
    assert_true(connect_refused(fx));              /* no longer accepting */
    assert_false(atomic_load(&fx->shutdown_done)); /* the slow request holds it */
    on_loop(fx, answer_slow);
    assert_int_equal(pthread_join(client, NULL), 0);
    assert_int_equal(call.r.status, 200);
    assert_string_equal(call.r.body.ptr, "{\"slow\":true}");
    assert_true(header_has(&call.r, "Connection: close"));
    response_dispose(&call.r);
    assert_true(fg_test_wait_until(shutdown_done, fx, 10000));
    assert_int_equal(atomic_load(&fx->in_flight_at_done), 0);
    stop_server(fx);
}

static void test_http_server__free_with_an_unanswered_request(void **state)
{
    fixture *fx = start_server(0);
    const char request[] = "GET /slow HTTP/1.1\r\nHost: t\r\n\r\n";
    struct sockaddr_in addr = {0};
    int fd;
    (void)state;

    addr.sin_family = AF_INET;
    addr.sin_port = htons(fx->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(send(fd, request, sizeof(request) - 1, MSG_NOSIGNAL),
                     (ssize_t)sizeof(request) - 1);
    assert_true(fg_test_wait_until(slow_arrived, fx, 10000));
    stop_server(fx); /* frees the pending request: ASan would see a leak or a bad access */
    close(fd);
}

static void test_http_server__stream_sends_every_piece_in_order(void **state)
{
    fixture *fx = start_server(0);
    response r;
    (void)state;

    get(&r, fx, "/stream");
    assert_int_equal(r.status, 200);
    assert_true(header_has(&r, "Transfer-Encoding: chunked"));
    assert_true(header_has(&r, "Content-Type: application/x-ndjson"));
    assert_int_equal(r.body.len, (size_t)STREAM_PIECES * STREAM_PIECE_SIZE);
    for (size_t i = 0; i < STREAM_PIECES; i++)
        assert_int_equal(r.body.ptr[i * STREAM_PIECE_SIZE + STREAM_PIECE_SIZE - 1], 'a' + i % 26);
    assert_false(atomic_load(&fx->stream_aborted));
    response_dispose(&r);
    stop_server(fx);
}

static void read_in_flight(evutil_socket_t fd, short what, void *arg)
{
    fixture *fx = arg;

    (void)fd;
    (void)what;
    atomic_store(&fx->in_flight_now, fg_http_server_in_flight(fx->srv));
}

static bool stream_aborted(void *payload)
{
    return atomic_load(&((fixture *)payload)->stream_aborted);
}

/* True once a count read on the loop thread (scheduled by an earlier call) saw nothing. */
static bool nothing_in_flight(void *payload)
{
    fixture *fx = payload;
    bool none = atomic_load(&fx->in_flight_now) == 0;

    on_loop(fx, read_in_flight);
    return none;
}

static bool stream_started(void *payload)
{
    return atomic_load(&((fixture *)payload)->stream_pieces_sent) > 0;
}

static int connect_and_send(fixture *fx, const char *request)
{
    struct sockaddr_in addr = {0};
    int fd;

    addr.sin_family = AF_INET;
    addr.sin_port = htons(fx->port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(send(fd, request, strlen(request), MSG_NOSIGNAL), (ssize_t)strlen(request));
    return fd;
}

static void test_http_server__stream_client_gone_mid_answer(void **state)
{
    fixture *fx = start_server(0);
    char some[4096];
    response r;
    int fd;
    (void)state;

    atomic_store(&fx->in_flight_now, 1);
    fd = connect_and_send(fx, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(recv(fd, some, sizeof(some), MSG_WAITALL) > 0);
    close(fd); /* unread data makes this a reset: the server's next write fails */
    assert_true(fg_test_wait_until(stream_aborted, fx, 10000));
    assert_true(atomic_load(&fx->stream_pieces_sent) < STREAM_PIECES);
    assert_true(fg_test_wait_until(nothing_in_flight, fx, 10000));
    get(&r, fx, "/projects/7"); /* still serving */
    assert_int_equal(r.status, 200);
    response_dispose(&r);
    stop_server(fx); /* ASan: the dropped request was freed exactly once */
}

static void test_http_server__stream_failure_truncates_the_answer(void **state)
{
    fixture *fx = start_server(0);
    CURL *c = curl_easy_init();
    fg_buf body;
    char url[256];
    (void)state;

    atomic_store(&fx->stream_fail_after_first, true);
    atomic_store(&fx->in_flight_now, 1);
    fg_buf_init(&body, 16 << 20);
    snprintf(url, sizeof(url), "http://127.0.0.1:%u/stream", (unsigned)fx->port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    /* the client must not mistake a cut answer for a complete one */
    assert_int_not_equal(curl_easy_perform(c), CURLE_OK);
    assert_int_equal(body.len, STREAM_PIECE_SIZE);
    curl_easy_cleanup(c);
    fg_buf_dispose(&body);
    assert_true(fg_test_wait_until(nothing_in_flight, fx, 10000));
    assert_false(atomic_load(&fx->stream_aborted)); /* it ended the answer itself */
    stop_server(fx);
}

static void test_http_server__stream_head_sends_the_head_only(void **state)
{
    fixture *fx = start_server(0);
    response r;
    (void)state;

    http(&r, fx, "HEAD", "/stream", NULL, NULL, 0);
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body.len, 0);
    assert_true(atomic_load(&fx->stream_aborted)); /* told once, so it could free its state */
    assert_int_equal(atomic_load(&fx->stream_pieces_sent), 0);
    response_dispose(&r);
    stop_server(fx);
}

static void test_http_server__free_while_streaming(void **state)
{
    fixture *fx = start_server(0);
    int fd;
    (void)state;

    /* a client that never reads: the answer stalls once the socket buffers are full */
    fd = connect_and_send(fx, "GET /stream HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_true(fg_test_wait_until(stream_started, fx, 10000));
    assert_int_equal(event_base_loopexit(fx->base, NULL), 0);
    assert_int_equal(pthread_join(fx->loop, NULL), 0);
    fg_http_server_free(fx->srv); /* nothing leaks, nothing is freed twice (ASan) */
    assert_true(atomic_load(&fx->stream_aborted)); /* the producer was told */
    fg_metrics_free(fx->metrics);
    event_base_free(fx->base);
    free(fx);
    close(fd);
}

static void test_http_server__refuses_bad_routes_and_options(void **state)
{
    struct event_base *base = event_base_new();
    fg_http_server *srv = NULL, *other = NULL;
    fg_http_server_options opts;
    (void)state;

    assert_non_null(base);
    fg_http_server_options_init(&opts);
    opts.max_body = (size_t)FG_HTTP_BODY_LIMIT_MAX + 1;
    assert_int_equal(fg_http_server_new(&srv, base, &opts), FG_EINVALID);
    assert_null(srv);
    opts.max_body = 25 * 1024 * 1024; /* the webhook's limit */
    assert_int_equal(fg_http_server_new(&srv, base, &opts), 0);
    opts.port = fg_http_server_port(srv); /* taken */
    assert_int_equal(fg_http_server_new(&other, base, &opts), FG_EUNAVAILABLE);
    assert_null(other);
    assert_non_null(fg_http_server_metrics(srv)); /* its own registry */

    assert_int_equal(fg_http_server_route(srv, FG_HTTP_GET, "no-slash", on_echo, NULL),
                     FG_EINVALID);
    assert_int_equal(fg_http_server_route(srv, FG_HTTP_GET, "/a//b", on_echo, NULL), FG_EINVALID);
    assert_int_equal(fg_http_server_route(srv, FG_HTTP_GET, "/a/", on_echo, NULL), FG_EINVALID);
    assert_int_equal(fg_http_server_route(srv, FG_HTTP_GET, "/a/{}", on_echo, NULL), FG_EINVALID);
    assert_int_equal(fg_http_server_route(srv, FG_HTTP_GET, "/a/{b-c}", on_echo, NULL),
                     FG_EINVALID);
    assert_int_equal(fg_http_server_route(srv, FG_HTTP_GET, "/a/x{b}", on_echo, NULL), FG_EINVALID);
    assert_int_equal(fg_http_server_route(srv, FG_HTTP_GET, "/{a}/{a}", on_echo, NULL),
                     FG_EINVALID);
    assert_int_equal(fg_http_server_route(srv, FG_HTTP_GET,
                                          "/1/2/3/4/5/6/7/8/9/10/11/12/13/14/15/16/17", on_echo,
                                          NULL),
                     FG_EINVALID);
    assert_int_equal(fg_http_server_route(srv, FG_HTTP_OTHER, "/x", on_echo, NULL), FG_EINVALID);
    assert_int_equal(fg_http_server_route(srv, FG_HTTP_GET, "/a/{b}", on_echo, NULL), 0);
    assert_int_equal(fg_http_server_route(srv, FG_HTTP_GET, "/a/{b}", on_echo, NULL), FG_ECONFLICT);
    assert_int_equal(fg_http_server_route(srv, FG_HTTP_POST, "/a/{b}", on_echo, NULL), 0);
    assert_int_equal(fg_http_server_route(srv, FG_HTTP_GET, "/health", on_echo, NULL), 0);
    {
        fg_http_standard std = {"svc", NULL, NULL};
        assert_int_equal(fg_http_server_add_standard(srv, &std), FG_ECONFLICT);
    }
    fg_http_server_free(srv);
    fg_http_server_free(NULL);
    event_base_free(base);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_http_server__routes_with_parameters),
        cmocka_unit_test(test_http_server__headers_in_one_pass),
        cmocka_unit_test(test_http_server__404_names_the_path),
        cmocka_unit_test(test_http_server__405_lists_allowed_methods),
        cmocka_unit_test(test_http_server__413_one_byte_over_the_default_limit),
        cmocka_unit_test(test_http_server__413_one_byte_over_a_configured_limit),
        cmocka_unit_test(test_http_server__standard_endpoints),
        cmocka_unit_test(test_http_server__service_key),
        cmocka_unit_test(test_http_server__server_key_guards_all_but_standard_routes),
        cmocka_unit_test(test_http_server__bad_input_is_4xx),
        cmocka_unit_test(test_http_server__shutdown_lets_in_flight_requests_finish),
        cmocka_unit_test(test_http_server__free_with_an_unanswered_request),
        cmocka_unit_test(test_http_server__stream_sends_every_piece_in_order),
        cmocka_unit_test(test_http_server__stream_client_gone_mid_answer),
        cmocka_unit_test(test_http_server__stream_failure_truncates_the_answer),
        cmocka_unit_test(test_http_server__stream_head_sends_the_head_only),
        cmocka_unit_test(test_http_server__free_while_streaming),
        cmocka_unit_test(test_http_server__refuses_bad_routes_and_options),
    };
    int rc;

    evthread_use_pthreads();
    curl_global_init(CURL_GLOBAL_DEFAULT);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    libevent_global_shutdown();
    return rc;
}
