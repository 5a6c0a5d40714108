/*
 * fg_http_client against a scripted stand-in for GitHub, GitLab and Virtuoso: a libevent evhttp
 * server in a thread on 127.0.0.1 (ephemeral port) answers each request with the next scripted
 * reply (status, headers as the forges' docs show them, body), records what it received, and
 * can demand HTTP Digest auth (RFC 2617, MD5, qop=auth) the way Virtuoso's -auth endpoints do.
 * The client's sleep is injected, so backoff and Retry-After are observed without waiting.
 */
#include "test_support.h"

#include <arpa/inet.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <event2/thread.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "fg/base64.h"
#include "fg/http_client.h"
#include "fg/log.h"

#define SCRIPT_MAX  16
#define RECORD_MAX  32
#define HUNG_MAX    8
#define SLEEPS_MAX  16
#define REALM       "fg-test"
#define NONCE       "dcd98b7102dd2f0e8b11d0f600bfb0c093"
#define DIGEST_USER "app"

/* ================================================================ fake server */

typedef enum { REPLY_NORMAL, REPLY_CHUNKED, REPLY_HANG } reply_kind;

typedef struct {
    int status;
    const char *headers; /* "Name: value" lines split by \n; "{base}" = server base URL */
    const char *body;
    reply_kind kind;
    const char *digest_password; /* demand Digest for DIGEST_USER; else a 401 challenge */
    const char *etag_match;      /* If-None-Match equal to it gets 304 instead */
} fake_reply;

typedef struct {
    char method[16];
    char uri[1024];
    char if_none_match[128];
    char authorization[512];
    char private_token[128];
    unsigned short peer_port;
    size_t body_len;
    bool digest_ok;
} fake_record;

typedef struct {
    struct event_base *base;
    struct evhttp *http;
    pthread_t thread;
    int port;
    char base_url[64];
    pthread_mutex_t lock; /* guards everything below */
    fake_reply script[SCRIPT_MAX];
    size_t nscript, next;
    fake_record records[RECORD_MAX];
    size_t nrecords;
    int challenges;
    struct evhttp_request *hung[HUNG_MAX]; /* loop thread only */
    size_t nhung;
} fake_server;

static void md5_hex(char out[33], const char *fmt, ...) FG_PRINTF(2, 3);

static void md5_hex(char out[33], const char *fmt, ...)
{
    char text[1024];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    EVP_Digest(text, strlen(text), md, &n, EVP_md5(), NULL);
    for (unsigned int i = 0; i < n && i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* key=value or key="value" from a Digest header; key must start a parameter. */
static bool digest_param(const char *auth, const char *key, char *out, size_t outlen)
{
    size_t klen = strlen(key), n;
    const char *p = auth;

    while ((p = strstr(p, key)) != NULL) {
        if ((p[-1] == ' ' || p[-1] == ',') && p[klen] == '=') {
            p += klen + 1;
            if (*p == '"')
                n = strcspn(++p, "\"");
            else
                n = strcspn(p, ", ");
            if (n >= outlen)
                return false;
            memcpy(out, p, n);
            out[n] = '\0';
            return true;
        }
        p += klen;
    }
    return false;
}

/* RFC 2617 §3.2.2 with qop=auth: response = MD5(HA1:nonce:nc:cnonce:qop:HA2). */
static bool digest_valid(const char *auth, const char *method, const char *password)
{
    char user[64], realm[64], nonce[64], uri[512], nc[16], cnonce[128], qop[16], response[64];
    char ha1[33], ha2[33], expected[33];

    if (strncmp(auth, "Digest ", 7) != 0 || !digest_param(auth, "username", user, sizeof(user)) ||
        !digest_param(auth, "realm", realm, sizeof(realm)) ||
        !digest_param(auth, "nonce", nonce, sizeof(nonce)) ||
        !digest_param(auth, "uri", uri, sizeof(uri)) || !digest_param(auth, "nc", nc, sizeof(nc)) ||
        !digest_param(auth, "cnonce", cnonce, sizeof(cnonce)) ||
        !digest_param(auth, "qop", qop, sizeof(qop)) ||
        !digest_param(auth, "response", response, sizeof(response)))
        return false;
    if (strcmp(user, DIGEST_USER) != 0 || strcmp(realm, REALM) != 0 || strcmp(nonce, NONCE) != 0 ||
        strcmp(qop, "auth") != 0)
        return false;
    md5_hex(ha1, "%s:%s:%s", user, realm, password);
    md5_hex(ha2, "%s:%s", method, uri);
    md5_hex(expected, "%s:%s:%s:%s:%s:%s", ha1, nonce, nc, cnonce, qop, ha2);
    return strcmp(expected, response) == 0;
}

static const char *method_name(enum evhttp_cmd_type cmd)
{
    switch (cmd) {
    case EVHTTP_REQ_GET:
        return "GET";
    case EVHTTP_REQ_POST:
        return "POST";
    case EVHTTP_REQ_PUT:
        return "PUT";
    case EVHTTP_REQ_DELETE:
        return "DELETE";
    case EVHTTP_REQ_HEAD:
        return "HEAD";
    case EVHTTP_REQ_PATCH:
        return "PATCH";
    default:
        return "OTHER";
    }
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 304:
        return "Not Modified";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 429:
        return "Too Many Requests";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    default:
        return "Status";
    }
}

static void copy_header_value(char *out, size_t outlen, struct evkeyvalq *headers, const char *name)
{
    const char *v = evhttp_find_header(headers, name);

    snprintf(out, outlen, "%s", v != NULL ? v : "");
}

static void record_request(fake_record *rec, struct evhttp_request *req)
{
    struct evkeyvalq *in = evhttp_request_get_input_headers(req);
    char *address = NULL;
    ev_uint16_t port = 0;

    memset(rec, 0, sizeof(*rec));
    snprintf(rec->method, sizeof(rec->method), "%s", method_name(evhttp_request_get_command(req)));
    snprintf(rec->uri, sizeof(rec->uri), "%s", evhttp_request_get_uri(req));
    copy_header_value(rec->if_none_match, sizeof(rec->if_none_match), in, "If-None-Match");
    copy_header_value(rec->authorization, sizeof(rec->authorization), in, "Authorization");
    copy_header_value(rec->private_token, sizeof(rec->private_token), in, "PRIVATE-TOKEN");
    evhttp_connection_get_peer(evhttp_request_get_connection(req), &address, &port);
    rec->peer_port = port;
    rec->body_len = evbuffer_get_length(evhttp_request_get_input_buffer(req));
}

/* Adds "Name: value" lines, with "{base}" in values replaced by the server's base URL. */
static void add_headers(struct evkeyvalq *out, const char *lines, const char *base_url)
{
    char line[2048], value[2048];
    const char *p = lines;

    while (p != NULL && *p != '\0') {
        size_t n = strcspn(p, "\n");
        char *colon, *v, *mark;
        snprintf(line, sizeof(line), "%.*s", (int)n, p);
        p += n + (p[n] == '\n');
        if ((colon = strchr(line, ':')) == NULL)
            continue;
        *colon = '\0';
        for (v = colon + 1; *v == ' '; v++)
            ;
        value[0] = '\0';
        while ((mark = strstr(v, "{base}")) != NULL) {
            size_t used = strlen(value);
            snprintf(value + used, sizeof(value) - used, "%.*s%s", (int)(mark - v), v, base_url);
            v = mark + 6;
        }
        snprintf(value + strlen(value), sizeof(value) - strlen(value), "%s", v);
        evhttp_add_header(out, line, value);
    }
}

static void send_reply(fake_server *fs, struct evhttp_request *req, const fake_reply *r, int status)
{
    struct evbuffer *body = evbuffer_new();

    add_headers(evhttp_request_get_output_headers(req), r->headers, fs->base_url);
    if (r->body != NULL && status != 304)
        evbuffer_add(body, r->body, strlen(r->body));
    if (r->kind == REPLY_CHUNKED) {
        evhttp_send_reply_start(req, status, reason_phrase(status));
        evhttp_send_reply_chunk(req, body);
        evhttp_send_reply_end(req);
    } else {
        evhttp_send_reply(req, status, reason_phrase(status), body);
    }
    evbuffer_free(body);
}

static void fake_handle(struct evhttp_request *req, void *arg)
{
    fake_server *fs = arg;
    struct evkeyvalq *out = evhttp_request_get_output_headers(req);
    fake_record rec;
    fake_reply reply = {
        .status = 500, .headers = "Content-Type: text/plain", .body = "script exhausted"};
    bool challenge = false;

    record_request(&rec, req);
    pthread_mutex_lock(&fs->lock);
    if (fs->next < fs->nscript)
        reply = fs->script[fs->next];
    if (reply.digest_password != NULL) {
        rec.digest_ok = digest_valid(rec.authorization, rec.method, reply.digest_password);
        challenge = !rec.digest_ok;
        fs->challenges += challenge;
    }
    /* a challenge does not use up the scripted reply: the authenticated retry gets it */
    if (!challenge && fs->next < fs->nscript)
        fs->next++;
    if (fs->nrecords < RECORD_MAX)
        fs->records[fs->nrecords++] = rec;
    pthread_mutex_unlock(&fs->lock);

    if (challenge) {
        evhttp_add_header(out, "WWW-Authenticate",
                          "Digest realm=\"" REALM "\", nonce=\"" NONCE "\", qop=\"auth\", "
                          "opaque=\"5ccc069c403ebaf9f0171e9517f40e41\", algorithm=MD5");
        evhttp_add_header(out, "Content-Type", "text/plain");
        reply.headers = NULL;
        reply.body = "auth required";
        reply.kind = REPLY_NORMAL;
        send_reply(fs, req, &reply, 401);
    } else if (reply.kind == REPLY_HANG && fs->nhung < HUNG_MAX) {
        fs->hung[fs->nhung++] = req; /* answered when the server stops, so nothing leaks */
    } else if (reply.etag_match != NULL && strcmp(rec.if_none_match, reply.etag_match) == 0) {
        send_reply(fs, req, &reply, 304);
    } else {
        send_reply(fs, req, &reply, reply.status);
    }
}

static void *fake_loop(void *arg)
{
    fake_server *fs = arg;

    event_base_loop(fs->base, EVLOOP_NO_EXIT_ON_EMPTY);
    return NULL;
}

static void fake_stop_cb(evutil_socket_t fd, short what, void *arg)
{
    fake_server *fs = arg;

    (void)fd;
    (void)what;
    /* a request the client gave up on is freed by this reply (evhttp frees it when its
     * connection is gone) */
    for (size_t i = 0; i < fs->nhung; i++)
        evhttp_send_reply(fs->hung[i], 503, "Stopping", NULL);
    fs->nhung = 0;
    event_base_loopbreak(fs->base);
}

static void fake_start(fake_server *fs)
{
    struct evhttp_bound_socket *sock;
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);

    memset(fs, 0, sizeof(*fs));
    pthread_mutex_init(&fs->lock, NULL);
    fs->base = event_base_new();
    assert_non_null(fs->base);
    fs->http = evhttp_new(fs->base);
    assert_non_null(fs->http);
    evhttp_set_allowed_methods(fs->http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                             EVHTTP_REQ_DELETE | EVHTTP_REQ_HEAD |
                                             EVHTTP_REQ_PATCH);
    evhttp_set_gencb(fs->http, fake_handle, fs);
    sock = evhttp_bind_socket_with_handle(fs->http, "127.0.0.1", 0);
    assert_non_null(sock);
    assert_int_equal(getsockname(evhttp_bound_socket_get_fd(sock), (struct sockaddr *)&sin, &len),
                     0);
    fs->port = ntohs(sin.sin_port);
    snprintf(fs->base_url, sizeof(fs->base_url), "http://127.0.0.1:%d", fs->port);
    assert_int_equal(pthread_create(&fs->thread, NULL, fake_loop, fs), 0);
}

/* The stop runs as an event in the loop thread, so it works even before the loop has started. */
static void fake_stop(fake_server *fs)
{
    assert_int_equal(event_base_once(fs->base, -1, EV_TIMEOUT, fake_stop_cb, fs, NULL), 0);
    pthread_join(fs->thread, NULL);
    evhttp_free(fs->http);
    event_base_free(fs->base);
    pthread_mutex_destroy(&fs->lock);
}

static void fake_script(fake_server *fs, const fake_reply *replies, size_t n)
{
    assert_true(n <= SCRIPT_MAX);
    pthread_mutex_lock(&fs->lock);
    memcpy(fs->script, replies, n * sizeof(*replies));
    fs->nscript = n;
    fs->next = 0;
    pthread_mutex_unlock(&fs->lock);
}

static size_t fake_nrecords(fake_server *fs)
{
    size_t n;

    pthread_mutex_lock(&fs->lock);
    n = fs->nrecords;
    pthread_mutex_unlock(&fs->lock);
    return n;
}

static fake_record fake_record_at(fake_server *fs, size_t i)
{
    fake_record rec;

    pthread_mutex_lock(&fs->lock);
    assert_true(i < fs->nrecords);
    rec = fs->records[i];
    pthread_mutex_unlock(&fs->lock);
    return rec;
}

/* ================================================================ per-test context */

typedef struct {
    fake_server server;
    fg_http_client_options options;
    fg_http_client *client;
    fg_http_client_request req;
    fg_http_client_response resp;
    long long sleeps[SLEEPS_MAX];
    int nsleeps;
    char url[2048];
    size_t wait_for; /* records awaited by records_reached() */
} test_ctx;

static void fake_sleep(long long ms, void *payload)
{
    test_ctx *t = payload;

    if (t->nsleeps < SLEEPS_MAX)
        t->sleeps[t->nsleeps] = ms;
    t->nsleeps++;
}

static int setup(void **state)
{
    test_ctx *t = calloc(1, sizeof(*t));

    assert_non_null(t);
    fake_start(&t->server);
    fg_http_client_options_init(&t->options);
    t->options.sleep = fake_sleep;
    t->options.sleep_payload = t;
    t->options.timeout_ms = 5000;
    t->options.backoff_base_ms = 100;
    t->options.backoff_max_ms = 1000;
    fg_http_client_request_init(&t->req);
    fg_http_client_response_init(&t->resp);
    fg_log_setup("http_client_test", FG_LOG_ERROR);
    *state = t;
    return 0;
}

static int teardown(void **state)
{
    test_ctx *t = *state;

    fg_http_client_free(t->client);
    fg_http_client_response_dispose(&t->resp);
    fake_stop(&t->server);
    free(t);
    return 0;
}

/* The client, created on first use from t->options (tests adjust those first). */
static fg_http_client *client(test_ctx *t)
{
    if (t->client == NULL)
        assert_int_equal(fg_http_client_new(&t->client, &t->options), 0);
    return t->client;
}

static const char *url(test_ctx *t, const char *path)
{
    snprintf(t->url, sizeof(t->url), "%s%s", t->server.base_url, path);
    return t->url;
}

static int send_get(test_ctx *t, const char *path)
{
    t->req.url = url(t, path);
    return fg_http_client_send(client(t), &t->resp, &t->req);
}

static bool records_reached(void *payload)
{
    test_ctx *t = payload;

    return fake_nrecords(&t->server) >= t->wait_for;
}

/* Like assert_int_equal(expr, 0), but shows the client's error message on failure. */
#define assert_ok(expr)                                                                            \
    do {                                                                                           \
        int rc_ = (expr);                                                                          \
        if (rc_ != 0)                                                                              \
            fail_msg("%s: rc %d: %s", #expr, rc_, fg_error_last());                                \
    } while (0)

#define R(s, h, b)                                                                                 \
    {                                                                                              \
        .status = (s), .headers = (h), .body = (b)                                                 \
    }
#define RX(s, h, b, k, d, e)                                                                       \
    {                                                                                              \
        .status = (s), .headers = (h), .body = (b), .kind = (k), .digest_password = (d),           \
        .etag_match = (e)                                                                          \
    }
#define SCRIPT(t, ...)                                                                             \
    do {                                                                                           \
        const fake_reply replies_[] = {__VA_ARGS__};                                               \
        fake_script(&(t)->server, replies_, sizeof(replies_) / sizeof(replies_[0]));               \
    } while (0)

/* ================================================================ retries */

static void test_http_client__retries_503_then_succeeds(void **state)
{
    test_ctx *t = *state;

    SCRIPT(t, R(503, "Content-Type: text/plain", "busy"),
           R(503, "Content-Type: text/plain", "busy"),
           R(200, "Content-Type: application/json; charset=utf-8", "{\"ok\":true}"));
    assert_ok(send_get(t, "/repos/octo/hello"));
    assert_int_equal(t->resp.status, 200);
    assert_string_equal(t->resp.body.ptr, "{\"ok\":true}");
    assert_string_equal(t->resp.content_type, "application/json; charset=utf-8");
    assert_int_equal(t->resp.attempts, 3);
    assert_int_equal(fake_nrecords(&t->server), 3);
    /* full jitter: the n-th wait lies in [0, base * 2^(n-1)] */
    assert_int_equal(t->nsleeps, 2);
    assert_in_range(t->sleeps[0], 0, 100);
    assert_in_range(t->sleeps[1], 0, 200);
}

static void test_http_client__gives_up_after_max_attempts(void **state)
{
    test_ctx *t = *state;

    t->options.max_attempts = 3;
    SCRIPT(t, R(503, NULL, "a"), R(503, NULL, "b"), R(503, NULL, "c"), R(200, NULL, "never"));
    assert_int_equal(send_get(t, "/x"), FG_EUNAVAILABLE);
    assert_int_equal(t->resp.status, 503);
    assert_string_equal(t->resp.body.ptr, "c");
    assert_int_equal(t->resp.attempts, 3);
    assert_int_equal(fake_nrecords(&t->server), 3);
    assert_int_equal(t->nsleeps, 2);
    assert_non_null(strstr(fg_error_last(), "HTTP 503"));
}

static void test_http_client__post_not_retried_on_502_but_on_503(void **state)
{
    test_ctx *t = *state;

    t->req.method = "POST";
    t->req.body = "{}";
    t->req.body_len = 2;
    SCRIPT(t, R(502, NULL, "gateway"), R(503, NULL, "busy"), R(201, NULL, "created"));
    assert_ok(send_get(t, "/items"));
    assert_int_equal(t->resp.status, 502);
    assert_int_equal(t->resp.attempts, 1);
    /* 503 says the server did not act, so even a POST repeats */
    assert_ok(send_get(t, "/items"));
    assert_int_equal(t->resp.status, 201);
    assert_int_equal(t->resp.attempts, 2);
    assert_int_equal(fake_record_at(&t->server, 2).body_len, 2);
}

static void test_http_client__honours_retry_after_seconds(void **state)
{
    test_ctx *t = *state;
    long long started = fg_test_now_ms();

    /* GitLab's throttled answer (user_and_ip_rate_limits.md) */
    SCRIPT(t,
           R(429,
             "Content-Type: text/plain\nRateLimit-Limit: 60\nRateLimit-Observed: 67\n"
             "RateLimit-Remaining: 0\nRateLimit-Reset: 1609844400\nRetry-After: 1",
             "Retry later"),
           R(200, "Content-Type: application/json", "[]"));
    assert_ok(send_get(t, "/api/v4/projects"));
    assert_int_equal(t->resp.status, 200);
    assert_int_equal(t->nsleeps, 1);
    assert_int_equal(t->sleeps[0], 1000);
    assert_int_equal(t->resp.attempts, 2);
    assert_true(fg_test_now_ms() - started < 900); /* the injected sleep did not wait */
}

static void test_http_client__honours_retry_after_http_date(void **state)
{
    test_ctx *t = *state;
    char headers[128], date[64];
    time_t when = time(NULL) + 30;
    struct tm tm;

    gmtime_r(&when, &tm);
    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm);
    snprintf(headers, sizeof(headers), "Retry-After: %s", date);
    SCRIPT(t, R(503, headers, "down"), R(200, NULL, "up"));
    assert_ok(send_get(t, "/x"));
    assert_int_equal(t->resp.status, 200);
    assert_int_equal(t->nsleeps, 1);
    assert_in_range(t->sleeps[0], 28000, 30000);
}

static void test_http_client__retry_after_above_cap_is_returned(void **state)
{
    test_ctx *t = *state;

    t->options.retry_after_max_ms = 60000;
    SCRIPT(t, R(429, "Retry-After: 120\nx-ratelimit-remaining: 0", "slow down"),
           R(200, NULL, "never"));
    assert_int_equal(send_get(t, "/x"), FG_EUNAVAILABLE);
    assert_int_equal(t->resp.status, 429);
    assert_true(t->resp.retry_after_present);
    assert_int_equal(t->resp.retry_after_ms, 120000);
    assert_int_equal(t->resp.attempts, 1);
    assert_int_equal(t->nsleeps, 0);
    assert_int_equal(fake_nrecords(&t->server), 1);
    assert_non_null(strstr(fg_error_last(), "Retry-After 120000 ms"));
}

static void test_http_client__stops_at_max_total_time(void **state)
{
    test_ctx *t = *state;

    t->options.max_total_ms = 1500;
    SCRIPT(t, R(429, "Retry-After: 1", "a"), R(429, "Retry-After: 1", "b"), R(200, NULL, "c"));
    assert_int_equal(send_get(t, "/x"), FG_EUNAVAILABLE);
    assert_int_equal(t->resp.attempts, 2);
    assert_int_equal(t->nsleeps, 1);
    assert_int_equal(t->sleeps[0], 1000);
    assert_int_equal(t->resp.retry_after_ms, 1000);
    assert_non_null(strstr(fg_error_last(), "budget"));
}

static void test_http_client__connection_refused_retried_then_unavailable(void **state)
{
    test_ctx *t = *state;
    struct sockaddr_in sin = {0};
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    /* bound but never listening: connects are refused, and no one else can take the port */
    assert_true(fd >= 0);
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
    snprintf(t->url, sizeof(t->url), "http://127.0.0.1:%d/x", ntohs(sin.sin_port));
    t->options.max_attempts = 3;
    t->req.url = t->url;
    t->req.method = "POST"; /* never sent, so safe to repeat even for a POST */
    assert_int_equal(fg_http_client_send(client(t), &t->resp, &t->req), FG_EUNAVAILABLE);
    assert_int_equal(t->resp.status, 0);
    assert_int_equal(t->resp.attempts, 3);
    assert_int_equal(t->nsleeps, 2);
    close(fd);
}

static void test_http_client__timeout_is_etimeout(void **state)
{
    test_ctx *t = *state;

    t->options.max_attempts = 2;
    t->req.timeout_ms = 300;
    SCRIPT(t, RX(0, NULL, NULL, REPLY_HANG, NULL, NULL), RX(0, NULL, NULL, REPLY_HANG, NULL, NULL),
           RX(0, NULL, NULL, REPLY_HANG, NULL, NULL));
    assert_int_equal(send_get(t, "/slow"), FG_ETIMEOUT);
    assert_int_equal(t->resp.attempts, 2);
    assert_int_equal(t->nsleeps, 1);
    /* a POST that timed out may have been acted on: not repeated */
    t->req.method = "POST";
    assert_int_equal(send_get(t, "/slow"), FG_ETIMEOUT);
    assert_int_equal(t->resp.attempts, 1);
    t->wait_for = 3;
    assert_true(fg_test_wait_until(records_reached, t, 2000));
    assert_int_equal(fake_nrecords(&t->server), 3);
}

/* ================================================================ conditional requests */

static void test_http_client__if_none_match_gets_304(void **state)
{
    test_ctx *t = *state;
    const char *etag = "\"644b5b0155e6404a9cc4bd9d8b1ae730\"";
    char *kept;

    SCRIPT(t,
           RX(200, "Content-Type: application/json\nETag: \"644b5b0155e6404a9cc4bd9d8b1ae730\"",
              "{\"id\":1296269}", REPLY_NORMAL, NULL, "\"644b5b0155e6404a9cc4bd9d8b1ae730\""),
           RX(200, "ETag: \"644b5b0155e6404a9cc4bd9d8b1ae730\"", "{\"id\":1296269}", REPLY_NORMAL,
              NULL, "\"644b5b0155e6404a9cc4bd9d8b1ae730\""));
    assert_ok(send_get(t, "/repos/octocat/Hello-World"));
    assert_int_equal(t->resp.status, 200);
    assert_string_equal(t->resp.etag, etag);
    kept = strdup(t->resp.etag);
    t->req.if_none_match = kept;
    assert_ok(send_get(t, "/repos/octocat/Hello-World"));
    assert_int_equal(t->resp.status, 304);
    assert_int_equal(t->resp.body.len, 0);
    assert_int_equal(t->resp.attempts, 1);
    assert_string_equal(fake_record_at(&t->server, 0).if_none_match, "");
    assert_string_equal(fake_record_at(&t->server, 1).if_none_match, etag);
    free(kept);
}

/* ================================================================ pagination */

/* Appends the "id" of each object of a JSON array body to ids. */
static void collect_ids(const fg_buf *body, int *ids, int *nids, int max)
{
    json_object *arr = json_tokener_parse(body->ptr);

    assert_non_null(arr);
    assert_true(json_object_is_type(arr, json_type_array));
    for (size_t i = 0; i < json_object_array_length(arr); i++) {
        json_object *id;
        assert_true(json_object_object_get_ex(json_object_array_get_idx(arr, i), "id", &id));
        assert_true(*nids < max);
        ids[(*nids)++] = json_object_get_int(id);
    }
    json_object_put(arr);
}

static void test_http_client__follows_github_link_pagination(void **state)
{
    test_ctx *t = *state;
    int ids[16], nids = 0, pages = 0;
    char *next = NULL;

    /* using-pagination-in-the-rest-api.md: next, prev, first, last in any order */
    SCRIPT(t,
           R(200,
             "Content-Type: application/json; charset=utf-8\n"
             "Link: <{base}/repositories/1300192/issues?per_page=2&page=2>; rel=\"next\", "
             "<{base}/repositories/1300192/issues?per_page=2&page=3>; rel=\"last\"",
             "[{\"id\":1},{\"id\":2}]"),
           R(200,
             "Content-Type: application/json; charset=utf-8\n"
             "Link: <{base}/repositories/1300192/issues?per_page=2&page=1>; rel=\"prev\", "
             "<{base}/repositories/1300192/issues?per_page=2&page=3>; rel=\"next\", "
             "<{base}/repositories/1300192/issues?per_page=2&page=3>; rel=\"last\", "
             "<{base}/repositories/1300192/issues?per_page=2&page=1>; rel=\"first\"",
             "[{\"id\":3},{\"id\":4}]"),
           R(200,
             "Content-Type: application/json; charset=utf-8\n"
             "Link: <{base}/repositories/1300192/issues?per_page=2&page=2>; rel=\"prev\", "
             "<{base}/repositories/1300192/issues?per_page=2&page=1>; rel=\"first\"",
             "[{\"id\":5},{\"id\":6}]"));
    t->req.url = url(t, "/repositories/1300192/issues?per_page=2");
    for (;;) {
        assert_ok(fg_http_client_send(client(t), &t->resp, &t->req));
        assert_int_equal(t->resp.status, 200);
        collect_ids(&t->resp.body, ids, &nids, 16);
        pages++;
        free(next);
        next = t->resp.next_url ? strdup(t->resp.next_url) : NULL;
        if (next == NULL)
            break;
        t->req.url = next;
    }
    assert_int_equal(pages, 3);
    assert_int_equal(nids, 6);
    for (int i = 0; i < 6; i++)
        assert_int_equal(ids[i], i + 1);
    assert_string_equal(fake_record_at(&t->server, 1).uri,
                        "/repositories/1300192/issues?per_page=2&page=2");
    assert_string_equal(fake_record_at(&t->server, 2).uri,
                        "/repositories/1300192/issues?per_page=2&page=3");
}

static void test_http_client__resolves_relative_link(void **state)
{
    test_ctx *t = *state;
    char expected[128];

    SCRIPT(t, R(200, "Link: </api/v4/projects?page=2>; rel=\"next\"", "[]"));
    assert_ok(send_get(t, "/api/v4/projects?page=1"));
    snprintf(expected, sizeof(expected), "%s/api/v4/projects?page=2", t->server.base_url);
    assert_string_equal(t->resp.next_url, expected);
}

static void test_http_client__follows_gitlab_next_page(void **state)
{
    test_ctx *t = *state;
    int ids[16], nids = 0, pages = 0;
    char path[128];

    /* GitLab's offset pagination headers; X-Next-Page is empty on the last page */
    SCRIPT(t,
           R(200,
             "Content-Type: application/json\nX-Page: 1\nX-Per-Page: 2\nX-Next-Page: 2\n"
             "X-Prev-Page: \nX-Total: 5\nX-Total-Pages: 3",
             "[{\"id\":1},{\"id\":2}]"),
           R(200,
             "Content-Type: application/json\nX-Page: 2\nX-Per-Page: 2\nX-Next-Page: 3\n"
             "X-Prev-Page: 1\nX-Total: 5\nX-Total-Pages: 3",
             "[{\"id\":3},{\"id\":4}]"),
           R(200,
             "Content-Type: application/json\nX-Page: 3\nX-Per-Page: 2\nX-Next-Page: \n"
             "X-Prev-Page: 2\nX-Total: 5\nX-Total-Pages: 3",
             "[{\"id\":5}]"));
    snprintf(path, sizeof(path), "/api/v4/projects/42/issues?per_page=2&page=1");
    for (;;) {
        assert_ok(send_get(t, path));
        collect_ids(&t->resp.body, ids, &nids, 16);
        pages++;
        assert_true(t->resp.total_pages_present);
        assert_int_equal(t->resp.total_pages, 3);
        if (!t->resp.next_page_present)
            break;
        snprintf(path, sizeof(path), "/api/v4/projects/42/issues?per_page=2&page=%lld",
                 t->resp.next_page);
    }
    assert_int_equal(pages, 3);
    assert_int_equal(nids, 5);
    for (int i = 0; i < 5; i++)
        assert_int_equal(ids[i], i + 1);
    assert_null(t->resp.next_url);
}

/* ================================================================ rate limits */

static void test_http_client__parses_github_rate_limit(void **state)
{
    test_ctx *t = *state;
    const fg_http_rate_limit *rl = &t->resp.rate_limit;

    /* rate-limits-for-the-rest-api.md; then the primary limit's 403, which is an answer */
    SCRIPT(t,
           R(200,
             "x-ratelimit-limit: 5000\nx-ratelimit-remaining: 4999\nx-ratelimit-used: 1\n"
             "x-ratelimit-reset: 1691591363\nx-ratelimit-resource: core",
             "{}"),
           R(403,
             "x-ratelimit-limit: 60\nx-ratelimit-remaining: 0\nx-ratelimit-used: 60\n"
             "x-ratelimit-reset: 1691591400\nx-ratelimit-resource: search",
             "{\"message\":\"API rate limit exceeded\"}"));
    assert_ok(send_get(t, "/rate"));
    assert_int_equal(rl->source, FG_HTTP_RATE_LIMIT_GITHUB);
    assert_true(rl->limit_present && rl->remaining_present && rl->used_present &&
                rl->reset_present && rl->resource_present);
    assert_int_equal(rl->limit, 5000);
    assert_int_equal(rl->remaining, 4999);
    assert_int_equal(rl->used, 1);
    assert_int_equal(rl->reset, 1691591363);
    assert_string_equal(rl->resource, "core");
    assert_false(t->resp.retry_after_present);

    assert_ok(send_get(t, "/search"));
    assert_int_equal(t->resp.status, 403);
    assert_int_equal(t->resp.attempts, 1);
    assert_int_equal(rl->remaining, 0);
    assert_int_equal(rl->reset, 1691591400);
    assert_string_equal(rl->resource, "search");
}

static void test_http_client__parses_gitlab_rate_limit(void **state)
{
    test_ctx *t = *state;
    const fg_http_rate_limit *rl = &t->resp.rate_limit;

    SCRIPT(
        t,
        R(200,
          "RateLimit-Limit: 60\nRateLimit-Name: throttle_authenticated_api\n"
          "RateLimit-Observed: 45\nRateLimit-Remaining: 15\nRateLimit-Reset: 1609844400\n"
          "RateLimit-ResetTime: Tue, 05 Jan 2021 11:00:00 GMT",
          "[]"),
        R(200, "RateLimit-Remaining: 14\nRateLimit-ResetTime: Tue, 05 Jan 2021 11:00:00 GMT", "[]"),
        R(200, "Content-Type: application/json", "[]"));
    assert_ok(send_get(t, "/api/v4/projects"));
    assert_int_equal(rl->source, FG_HTTP_RATE_LIMIT_GITLAB);
    assert_true(rl->limit_present && rl->remaining_present && rl->used_present &&
                rl->reset_present && rl->resource_present);
    assert_int_equal(rl->limit, 60);
    assert_int_equal(rl->remaining, 15);
    assert_int_equal(rl->used, 45);
    assert_int_equal(rl->reset, 1609844400);
    assert_string_equal(rl->resource, "throttle_authenticated_api");

    /* no RateLimit-Reset: the HTTP date stands in */
    assert_ok(send_get(t, "/api/v4/projects"));
    assert_int_equal(rl->source, FG_HTTP_RATE_LIMIT_GITLAB);
    assert_false(rl->limit_present);
    assert_int_equal(rl->remaining, 14);
    assert_true(rl->reset_present);
    assert_int_equal(rl->reset, 1609844400);

    assert_ok(send_get(t, "/api/v4/version"));
    assert_int_equal(rl->source, FG_HTTP_RATE_LIMIT_NONE);
    assert_false(rl->remaining_present);
}

/* ================================================================ limits and auth */

static void test_http_client__max_response_size_is_etoobig(void **state)
{
    test_ctx *t = *state;
    char big[2001], small[501];

    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    memset(small, 'y', sizeof(small) - 1);
    small[sizeof(small) - 1] = '\0';
    t->options.max_response_bytes = 1000;
    /* with Content-Length, then chunked (no length known up front), then one that fits */
    SCRIPT(t, R(200, "Content-Type: text/plain", big),
           RX(200, "Content-Type: text/plain", big, REPLY_CHUNKED, NULL, NULL),
           RX(200, "Content-Type: text/plain", small, REPLY_CHUNKED, NULL, NULL));
    assert_int_equal(send_get(t, "/big"), FG_ETOOBIG);
    assert_int_equal(t->resp.attempts, 1);
    assert_int_equal(send_get(t, "/big-chunked"), FG_ETOOBIG);
    assert_true(t->resp.body.len <= 1000);
    assert_ok(send_get(t, "/small"));
    assert_int_equal(t->resp.body.len, 500);
    assert_int_equal(fake_nrecords(&t->server), 3);
}

static void test_http_client__digest_auth(void **state)
{
    test_ctx *t = *state;
    const char *update = "update=INSERT DATA { GRAPH <urn:g:test> { <http://ex/a> <http://ex/p> "
                         "\"hello\" } }";
    fake_record last;

    /* Virtuoso's /sparql-auth accepts Digest only */
    SCRIPT(t,
           RX(200, "Content-Type: application/sparql-results+json", "{}", REPLY_NORMAL, "s3cret",
              NULL),
           RX(200, NULL, "{}", REPLY_NORMAL, "s3cret", NULL));
    t->req.method = "POST";
    t->req.body = update;
    t->req.body_len = strlen(update);
    t->req.auth = FG_HTTP_AUTH_DIGEST;
    t->req.username = DIGEST_USER;
    t->req.password = "s3cret";
    assert_ok(send_get(t, "/sparql-auth"));
    assert_int_equal(t->resp.status, 200);
    assert_string_equal(t->resp.content_type, "application/sparql-results+json");
    last = fake_record_at(&t->server, fake_nrecords(&t->server) - 1);
    assert_true(last.digest_ok);
    assert_int_equal(last.body_len, strlen(update));
    /* the unauthenticated first leg carries no body; the body goes once, with the answer */
    assert_false(fake_record_at(&t->server, 0).digest_ok);
    assert_int_equal(fake_record_at(&t->server, 0).body_len, 0);
    pthread_mutex_lock(&t->server.lock);
    assert_true(t->server.challenges >= 1);
    pthread_mutex_unlock(&t->server.lock);

    /* a wrong password is an answer (401), not a transport error */
    t->req.password = "wrong";
    assert_ok(send_get(t, "/sparql-auth"));
    assert_int_equal(t->resp.status, 401);
    last = fake_record_at(&t->server, fake_nrecords(&t->server) - 1);
    assert_false(last.digest_ok);
}

static void test_http_client__basic_auth(void **state)
{
    test_ctx *t = *state;
    fake_record rec;
    fg_buf decoded;

    SCRIPT(t, R(200, NULL, "ok"));
    t->req.auth = FG_HTTP_AUTH_BASIC;
    t->req.username = "octocat";
    t->req.password = "ghp_16C7e42F292c6912E7710c838347Ae178B4a";
    assert_ok(send_get(t, "/user"));
    rec = fake_record_at(&t->server, 0);
    assert_int_equal(strncmp(rec.authorization, "Basic ", 6), 0);
    fg_buf_init(&decoded, 256);
    assert_int_equal(
        fg_base64_decode(&decoded, rec.authorization + 6, strlen(rec.authorization + 6)), 0);
    assert_string_equal(decoded.ptr, "octocat:ghp_16C7e42F292c6912E7710c838347Ae178B4a");
    fg_buf_dispose(&decoded);
}

static void test_http_client__reuses_connection(void **state)
{
    test_ctx *t = *state;

    SCRIPT(t, R(200, NULL, "one"), R(200, NULL, "two"));
    assert_ok(send_get(t, "/a"));
    assert_ok(send_get(t, "/b"));
    assert_string_equal(t->resp.body.ptr, "two");
    assert_int_equal(fake_record_at(&t->server, 0).peer_port,
                     fake_record_at(&t->server, 1).peer_port);
}

static void test_http_client__returns_redirect_unless_following(void **state)
{
    test_ctx *t = *state;
    fg_http_client *follower = NULL;
    char expected[128];

    /* GitHub answers a transferred repository with 301 and its new address */
    SCRIPT(t, R(301, "Location: {base}/repositories/42", "moved"),
           R(301, "Location: {base}/repositories/42", "moved"), R(200, NULL, "{\"id\":42}"));
    assert_ok(send_get(t, "/repos/old/name"));
    assert_int_equal(t->resp.status, 301);
    snprintf(expected, sizeof(expected), "%s/repositories/42", t->server.base_url);
    assert_string_equal(t->resp.location, expected);
    t->options.max_redirects = 2;
    assert_ok(fg_http_client_new(&follower, &t->options));
    assert_ok(fg_http_client_send(follower, &t->resp, &t->req));
    assert_int_equal(t->resp.status, 200);
    assert_string_equal(t->resp.body.ptr, "{\"id\":42}");
    assert_string_equal(fake_record_at(&t->server, 2).uri, "/repositories/42");
    fg_http_client_free(follower);
}

static void test_http_client__rejects_bad_requests(void **state)
{
    test_ctx *t = *state;
    const char *injected[] = {"X-Test: a\r\nX-Evil: b"};

    t->req.headers = injected;
    t->req.nheaders = 1;
    assert_int_equal(send_get(t, "/x"), FG_EINVALID);
    t->req.nheaders = 0;
    t->req.if_none_match = "\"a\"\nX: y";
    assert_int_equal(send_get(t, "/x"), FG_EINVALID);
    t->req.if_none_match = NULL;
    t->req.url = "ftp://127.0.0.1/x";
    assert_int_equal(fg_http_client_send(client(t), &t->resp, &t->req), FG_EINVALID);
    t->req.url = NULL;
    assert_int_equal(fg_http_client_send(client(t), &t->resp, &t->req), FG_EINVALID);
    t->req.auth = FG_HTTP_AUTH_DIGEST;
    t->req.username = "app";
    assert_int_equal(send_get(t, "/x"), FG_EINVALID);
    t->req.auth = FG_HTTP_AUTH_NONE;
    t->req.method = "get";
    assert_int_equal(send_get(t, "/x"), FG_EINVALID);
    assert_int_equal(fake_nrecords(&t->server), 0);
}

/* ================================================================ secrets */

static void test_http_client__never_logs_secrets(void **state)
{
    test_ctx *t = *state;
    const char *secrets[] = {"url-pass-1", "query-secret-2", "auth-pass-3", "header-token-4"};
    const char *headers[] = {"PRIVATE-TOKEN: header-token-4"};
    char path[] = "/tmp/fg_http_client_logXXXXXX";
    char text[16384], expected_url[128], refused[128];
    int fd = mkstemp(path);
    ssize_t n;

    assert_true(fd >= 0);
    unlink(path);
    fg_log_setup("http_client_test", FG_LOG_DEBUG);
    fg_log_set_fd(fd);
    SCRIPT(t, R(503, NULL, "busy"),
           R(200, "Link: <{base}/next?private_token=query-secret-2>; rel=next", "ok"));
    snprintf(t->url, sizeof(t->url),
             "http://app:url-pass-1@127.0.0.1:%d/private?private_token=query-secret-2#frag",
             t->server.port);
    t->req.url = t->url;
    t->req.auth = FG_HTTP_AUTH_BASIC;
    t->req.username = "app";
    t->req.password = "auth-pass-3";
    t->req.headers = headers;
    t->req.nheaders = 1;
    t->options.max_attempts = 2;
    assert_ok(fg_http_client_send(client(t), &t->resp, &t->req));
    assert_string_equal(fake_record_at(&t->server, 1).private_token, "header-token-4");
    /* and a failure, whose error message is checked too */
    snprintf(refused, sizeof(refused), "http://app:url-pass-1@127.0.0.1:1/p?token=query-secret-2");
    t->req.url = refused;
    assert_int_equal(fg_http_client_send(client(t), &t->resp, &t->req), FG_EUNAVAILABLE);
    fg_log_set_fd(2);
    fg_log_setup("http_client_test", FG_LOG_ERROR);

    n = pread(fd, text, sizeof(text) - 1, 0);
    close(fd);
    assert_true(n > 0);
    text[n] = '\0';
    snprintf(expected_url, sizeof(expected_url), "\"url\":\"http://127.0.0.1:%d/private\"",
             t->server.port);
    assert_non_null(strstr(text, "http: retrying"));
    assert_non_null(strstr(text, "http: done"));
    assert_non_null(strstr(text, expected_url));
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        assert_null(strstr(text, secrets[i]));
        assert_null(strstr(fg_error_last(), secrets[i]));
    }
    assert_non_null(strstr(fg_error_last(), "http://127.0.0.1:1/p"));
}

/* ================================================================ Link parser */

static void test_http_client__link_next_parses_rfc8288(void **state)
{
    static const struct {
        const char *header;
        int rc;
        const char *next; /* NULL: none */
    } cases[] = {
        {"<https://api.github.com/repositories/1300192/issues?page=2>; rel=\"prev\", "
         "<https://api.github.com/repositories/1300192/issues?page=4>; rel=\"next\", "
         "<https://api.github.com/repositories/1300192/issues?page=515>; rel=\"last\", "
         "<https://api.github.com/repositories/1300192/issues?page=1>; rel=\"first\"",
         0, "https://api.github.com/repositories/1300192/issues?page=4"},
        {"<https://a/1>; rel=\"prev\", <https://a/2>; title=\"x, y; rel=next\"; rel=\"next\"", 0,
         "https://a/2"},
        {"<https://a/1>; title=\"x, <https://b>; rel=next\"", 0, NULL},
        {"<https://a/1>; title=\"say \\\"rel=next\\\"\"; rel=prev", 0, NULL},
        {"<https://a/1>; rel=\"last NEXT\"", 0, "https://a/1"},
        {"<https://a/1>;rel=next", 0, "https://a/1"},
        {"<https://a/1>; rel=\"nextpage\"", 0, NULL},
        {"<https://a/?q=a,b;c>; rel=\"next\"", 0, "https://a/?q=a,b;c"},
        {"<https://a/1>; title*=UTF-8'de'n%c3%a4chstes; rel=\"next\"", 0, "https://a/1"},
        {" , <https://a/1>; rel=\"next\" ,", 0, "https://a/1"},
        {"<https://a/1>; REL=\"Next\"", 0, "https://a/1"},
        {"", 0, NULL},
        {"<https://a/1>; rel=\"prev\"", 0, NULL},
        {"<https://a/1>; title=\"unterminated", FG_EINVALID, NULL},
        {"https://a/1; rel=next", FG_EINVALID, NULL},
        {"<https://a/1>; rel=\"prev\" junk", FG_EINVALID, NULL},
        {"<https://a/1", FG_EINVALID, NULL},
        {"<>; rel=next", FG_EINVALID, NULL},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char sentinel[] = "unset";
        char *next = sentinel;
        int rc = fg_http_link_next(&next, cases[i].header);
        if (rc != cases[i].rc)
            fail_msg("case %zu (%s): rc %d, want %d", i, cases[i].header, rc, cases[i].rc);
        if (cases[i].next == NULL)
            assert_null(next);
        else
            assert_string_equal(next, cases[i].next);
        free(next);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
#define T(name) cmocka_unit_test_setup_teardown(name, setup, teardown)
        T(test_http_client__retries_503_then_succeeds),
        T(test_http_client__gives_up_after_max_attempts),
        T(test_http_client__post_not_retried_on_502_but_on_503),
        T(test_http_client__honours_retry_after_seconds),
        T(test_http_client__honours_retry_after_http_date),
        T(test_http_client__retry_after_above_cap_is_returned),
        T(test_http_client__stops_at_max_total_time),
        T(test_http_client__connection_refused_retried_then_unavailable),
        T(test_http_client__timeout_is_etimeout),
        T(test_http_client__if_none_match_gets_304),
        T(test_http_client__follows_github_link_pagination),
        T(test_http_client__resolves_relative_link),
        T(test_http_client__follows_gitlab_next_page),
        T(test_http_client__parses_github_rate_limit),
        T(test_http_client__parses_gitlab_rate_limit),
        T(test_http_client__max_response_size_is_etoobig),
        T(test_http_client__digest_auth),
        T(test_http_client__basic_auth),
        T(test_http_client__reuses_connection),
        T(test_http_client__returns_redirect_unless_following),
        T(test_http_client__rejects_bad_requests),
        T(test_http_client__never_logs_secrets),
        cmocka_unit_test(test_http_client__link_next_parses_rfc8288),
#undef T
    };

    /* the fake server's loop is stopped from the test thread */
    if (evthread_use_pthreads() != 0)
        return 1;
    /* a proxy from the environment must not see (or swallow) loopback test traffic */
    unsetenv("http_proxy");
    unsetenv("HTTP_PROXY");
    unsetenv("https_proxy");
    unsetenv("HTTPS_PROXY");
    unsetenv("ALL_PROXY");
    unsetenv("all_proxy");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
