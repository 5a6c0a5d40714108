/*
 * HTTP client on libcurl (see fg/http_client.h; the retry policy is in
 * docs/internals/http_client.md). One easy handle per client is reset and reused for every
 * request: curl_easy_reset keeps the live connections, so keep-alive survives across requests.
 */
#include "fg/http_client.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "fg/log.h"

#ifndef FG_VERSION
#define FG_VERSION "0"
#endif

#define FG_HTTP_CLIENT_METHOD_MAX      16
#define FG_HTTP_CLIENT_ATTEMPTS_MAX    100
#define FG_HTTP_CLIENT_REDIRECTS_MAX   20
#define FG_HTTP_CLIENT_RETRY_AFTER_MAX 1000000000LL /* seconds; keeps * 1000 in range */
#define FG_HTTP_CLIENT_REASON_MAX      512

struct fg_http_client {
    CURL *curl;
    fg_http_client_options opt; /* opt.user_agent points at user_agent below */
    char *user_agent;
    uint64_t rng;
    char errbuf[CURL_ERROR_SIZE];
};

/* What curl's callbacks of one attempt write into. */
typedef struct {
    fg_buf *body;
    size_t header_bytes;
    bool body_too_big;
    bool headers_too_big;
    bool nomem;
} attempt_io;

/* One send's fixed facts, computed once before the first attempt. */
typedef struct {
    const fg_http_client_request *req;
    const char *method;
    const char *safe_url; /* for logs and errors */
    bool idempotent;
    long timeout_ms;
    size_t body_max;
    struct curl_slist *headers;
} send_ctx;

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc = CURLE_FAILED_INIT;

static const char *const github_rate_names[] = {"x-ratelimit-limit", "x-ratelimit-remaining",
                                                "x-ratelimit-reset", "x-ratelimit-used",
                                                "x-ratelimit-resource"};
static const char *const gitlab_rate_names[] = {"RateLimit-Limit", "RateLimit-Remaining",
                                                "RateLimit-Reset", "RateLimit-Observed",
                                                "RateLimit-Name"};

/* ---------------------------------------------------------------- small helpers */

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void default_sleep(long long ms, void *payload)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    (void)payload;
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* xorshift64*: jitter only needs to spread clients apart, not to be unpredictable. */
static uint64_t next_random(fg_http_client *c)
{
    c->rng ^= c->rng >> 12;
    c->rng ^= c->rng << 25;
    c->rng ^= c->rng >> 27;
    return c->rng * 2685821657736338717ULL;
}

static uint64_t random_seed(const fg_http_client *c)
{
    struct timespec ts;
    uint64_t seed;

    clock_gettime(CLOCK_REALTIME, &ts);
    seed = (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)(uintptr_t)c ^
           ((uint64_t)getpid() << 40);
    return seed != 0 ? seed : 0x9e3779b97f4a7c15ULL;
}

static bool has_crlf(const char *s)
{
    return strpbrk(s, "\r\n") != NULL;
}

static bool is_tchar(char ch)
{
    return ch != '\0' && (isalnum((unsigned char)ch) || strchr("!#$%&'*+-.^_`|~", ch) != NULL);
}

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

/* A non-negative decimal with optional surrounding blanks; false for anything else ("" too). */
static bool parse_count(const char *text, long long *out)
{
    const char *p = skip_ows(text);
    char *end = NULL;
    long long v;

    if (!isdigit((unsigned char)*p))
        return false;
    errno = 0;
    v = strtoll(p, &end, 10);
    if (errno != 0 || end == p || *skip_ows(end) != '\0')
        return false;
    *out = v;
    return true;
}

static bool method_is(const char *method, const char *name)
{
    return strcmp(method, name) == 0;
}

/* ---------------------------------------------------------------- Link header (RFC 8288) */

/* A parameter value is a token or a quoted-string whose backslash escapes are undone
 * (RFC 7230 §3.2.6). */
static int parse_param_value(const char **pp, fg_buf *value)
{
    const char *p = *pp;
    const char *start;
    int rc;

    if (*p != '"') {
        for (start = p; is_tchar(*p); p++)
            ;
        *pp = p;
        return fg_buf_put(value, start, (size_t)(p - start));
    }
    for (p++; *p != '"'; p++) {
        if (*p == '\\')
            p++;
        if (*p == '\0')
            return fg_error_set(FG_EINVALID, "Link header: unterminated quoted string");
        if ((rc = fg_buf_putc(value, *p)) < 0)
            return rc;
    }
    *pp = p + 1;
    return 0;
}

/* rel may name several relation types separated by blanks (RFC 8288 §3.3). */
static bool rel_names_next(const char *rel)
{
    const char *p;
    size_t n;

    for (p = skip_ows(rel); *p != '\0'; p = skip_ows(p + n)) {
        n = strcspn(p, " \t");
        if (n == 4 && strncasecmp(p, "next", 4) == 0)
            return true;
    }
    return false;
}

/* One link-value at *pp; leaves *pp on the ',' that ends it or on the final NUL. */
static int parse_link(const char **pp, const char **target, size_t *target_len, bool *is_next,
                      fg_buf *scratch)
{
    const char *p = skip_ows(*pp);
    const char *end, *name;
    size_t name_len;
    int rc;

    end = *p == '<' ? strchr(p + 1, '>') : NULL;
    if (end == NULL || end == p + 1)
        return fg_error_set(FG_EINVALID, "Link header: expected <target>");
    *target = p + 1;
    *target_len = (size_t)(end - p - 1);
    *is_next = false;
    p = skip_ows(end + 1);
    while (*p == ';') {
        for (name = p = skip_ows(p + 1); is_tchar(*p); p++)
            ;
        name_len = (size_t)(p - name);
        if (name_len == 0)
            return fg_error_set(FG_EINVALID, "Link header: parameter without a name");
        fg_buf_clear(scratch);
        p = skip_ows(p);
        if (*p == '=') {
            p = skip_ows(p + 1);
            if ((rc = parse_param_value(&p, scratch)) < 0)
                return rc;
            p = skip_ows(p);
        }
        if (name_len == 3 && strncasecmp(name, "rel", 3) == 0 && rel_names_next(scratch->ptr))
            *is_next = true;
    }
    if (*p != ',' && *p != '\0')
        return fg_error_set(FG_EINVALID, "Link header: unexpected character after a link");
    *pp = p;
    return 0;
}

/* *target is NULL when no link is rel="next". */
static int find_link_next(const char *header, const char **target, size_t *target_len)
{
    fg_buf scratch;
    const char *p = header;
    bool is_next = false;
    int rc = FG_ERROR;

    fg_buf_init(&scratch, FG_HTTP_CLIENT_HEADER_BYTES_MAX);
    *target = NULL;
    *target_len = 0;
    for (;;) {
        /* the list rule allows empty elements ("a, , b") */
        for (p = skip_ows(p); *p == ','; p = skip_ows(p + 1))
            ;
        if (*p == '\0')
            break;
        if ((rc = parse_link(&p, target, target_len, &is_next, &scratch)) < 0)
            goto done;
        if (is_next)
            break;
        *target = NULL;
    }
    rc = 0;
done:
    if (rc < 0)
        *target = NULL;
    fg_buf_dispose(&scratch);
    return rc;
}

int fg_http_link_next(char **out, const char *link_header)
{
    const char *target;
    size_t len;
    int rc = FG_ERROR;

    *out = NULL;
    if (link_header == NULL)
        return fg_error_set(FG_EINVALID, "no Link header given");
    if ((rc = find_link_next(link_header, &target, &len)) < 0)
        return rc;
    if (target == NULL)
        return 0;
    *out = strndup(target, len);
    if (*out == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory copying a Link target");
    return 0;
}

/* ---------------------------------------------------------------- URLs */

/* The URL as logs and errors show it: no userinfo (a password), no query and no fragment (the
 * forges accept ?access_token= and ?private_token=). Also checks the URL parses and is http(s). */
static int prepare_url(fg_buf *safe, const char *url)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *text = NULL;
    int rc = FG_ERROR;

    if (u == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory parsing a URL");
        goto done;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK) {
        rc = fg_error_set(FG_EINVALID, "request URL does not parse");
        goto done;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        rc = fg_error_set(FG_EINVALID, "request URL scheme '%s' is not http or https", scheme);
        goto done;
    }
    if (curl_url_set(u, CURLUPART_USER, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_PASSWORD, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_OPTIONS, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_QUERY, NULL, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_FRAGMENT, NULL, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &text, 0) != CURLUE_OK) {
        rc = fg_error_set(FG_ENOMEM, "out of memory redacting a URL");
        goto done;
    }
    if ((rc = fg_buf_puts(safe, text)) < 0)
        goto done;
    rc = 0;
done:
    curl_free(text);
    curl_free(scheme);
    curl_url_cleanup(u);
    return rc;
}

/* A relative Link target is resolved against the URL that answered (RFC 8288 §3.1). */
static int resolve_url(char **out, const char *base, const char *ref, size_t ref_len)
{
    CURLU *u = curl_url();
    char *copy = strndup(ref, ref_len);
    char *text = NULL;
    int rc = FG_ERROR;

    *out = NULL;
    if (u == NULL || copy == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory resolving a Link target");
        goto done;
    }
    if (curl_url_set(u, CURLUPART_URL, base, 0) != CURLUE_OK ||
        curl_url_set(u, CURLUPART_URL, copy, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_URL, &text, 0) != CURLUE_OK) {
        rc = fg_error_set(FG_EINVALID, "Link target does not resolve to a URL");
        goto done;
    }
    *out = strdup(text);
    if (*out == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory copying a Link target");
        goto done;
    }
    rc = 0;
done:
    curl_free(text);
    free(copy);
    curl_url_cleanup(u);
    return rc;
}

/* ---------------------------------------------------------------- libcurl errors */

/* The one place where libcurl's failures become fg errors. `retryable` says whether repeating
 * the request may help and is safe: a transient failure, and either an idempotent request or
 * one that never left this host (CURLINFO_REQUEST_SIZE is still 0). */
static int map_curl_error(CURLcode cc, const attempt_io *io, const fg_http_client *c,
                          const send_ctx *s, bool *retryable)
{
    const char *detail = c->errbuf[0] != '\0' ? c->errbuf : curl_easy_strerror(cc);
    long sent = 0;
    bool may_repeat;

    *retryable = false;
    if (curl_easy_getinfo(c->curl, CURLINFO_REQUEST_SIZE, &sent) != CURLE_OK)
        sent = 1;
    may_repeat = s->idempotent || sent == 0;
    if (io->body_too_big || cc == CURLE_FILESIZE_EXCEEDED)
        return fg_error_set(FG_ETOOBIG, "%s %s: response body larger than %zu bytes", s->method,
                            s->safe_url, s->body_max);
    if (io->headers_too_big)
        return fg_error_set(FG_ETOOBIG, "%s %s: response headers larger than %zu bytes", s->method,
                            s->safe_url, FG_HTTP_CLIENT_HEADER_BYTES_MAX);
    if (io->nomem || cc == CURLE_OUT_OF_MEMORY)
        return fg_error_set(FG_ENOMEM, "%s %s: out of memory", s->method, s->safe_url);
    switch (cc) {
    case CURLE_COULDNT_RESOLVE_PROXY:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_COULDNT_CONNECT:
        *retryable = true;
        return fg_error_set(FG_EUNAVAILABLE, "%s %s: %s", s->method, s->safe_url, detail);
    case CURLE_OPERATION_TIMEDOUT:
        *retryable = may_repeat;
        return fg_error_set(FG_ETIMEOUT, "%s %s: %s", s->method, s->safe_url, detail);
    case CURLE_SEND_ERROR:
    case CURLE_RECV_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_PARTIAL_FILE:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
        *retryable = may_repeat;
        return fg_error_set(FG_EUNAVAILABLE, "%s %s: %s", s->method, s->safe_url, detail);
    case CURLE_URL_MALFORMAT:
    case CURLE_UNSUPPORTED_PROTOCOL:
        return fg_error_set(FG_EINVALID, "%s %s: %s", s->method, s->safe_url, detail);
    default:
        return fg_error_set(FG_ERROR, "%s %s: %s", s->method, s->safe_url, detail);
    }
}

/* ---------------------------------------------------------------- request set-up */

static int check_request(const fg_http_client_request *req)
{
    const char *method = req->method != NULL ? req->method : "GET";
    size_t i, n = strlen(method);

    if (req->url == NULL || req->url[0] == '\0')
        return fg_error_set(FG_EINVALID, "request without a URL");
    if (strlen(req->url) > FG_HTTP_CLIENT_URL_MAX)
        return fg_error_set(FG_EINVALID, "request URL longer than %d bytes",
                            FG_HTTP_CLIENT_URL_MAX);
    for (i = 0; i < n && isupper((unsigned char)method[i]); i++)
        ;
    if (n == 0 || n > FG_HTTP_CLIENT_METHOD_MAX || i != n)
        return fg_error_set(FG_EINVALID, "request method must be 1 to %d upper-case letters",
                            FG_HTTP_CLIENT_METHOD_MAX);
    if (req->nheaders > FG_HTTP_CLIENT_REQUEST_HEADERS_MAX ||
        (req->nheaders > 0 && req->headers == NULL))
        return fg_error_set(FG_EINVALID, "request carries more than %d headers or none given",
                            FG_HTTP_CLIENT_REQUEST_HEADERS_MAX);
    /* headers are never quoted in errors: they may hold a token */
    for (i = 0; i < req->nheaders; i++) {
        const char *h = req->headers[i];
        if (h == NULL || has_crlf(h) || strchr(h, ':') == NULL || h[0] == ':')
            return fg_error_set(FG_EINVALID, "request header %zu is not one 'Name: value' line", i);
    }
    if (req->if_none_match != NULL && has_crlf(req->if_none_match))
        return fg_error_set(FG_EINVALID, "If-None-Match value holds CR or LF");
    if (req->body == NULL && req->body_len > 0)
        return fg_error_set(FG_EINVALID, "request body length without a body");
    if (req->auth != FG_HTTP_AUTH_NONE &&
        (req->username == NULL || req->password == NULL || strchr(req->username, ':') != NULL))
        return fg_error_set(FG_EINVALID, "auth needs a username (without ':') and a password");
    return 0;
}

static int append_header(struct curl_slist **list, const char *line)
{
    struct curl_slist *next = curl_slist_append(*list, line);

    if (next == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory building request headers");
    *list = next;
    return 0;
}

static int build_headers(struct curl_slist **out, const fg_http_client_request *req)
{
    struct curl_slist *list = NULL;
    fg_buf line;
    int rc = FG_ERROR;

    fg_buf_init(&line, FG_HTTP_CLIENT_HEADER_BYTES_MAX);
    for (size_t i = 0; i < req->nheaders; i++) {
        if ((rc = append_header(&list, req->headers[i])) < 0)
            goto done;
    }
    /* libcurl would otherwise send "Expect: 100-continue" with large bodies and wait a round
     * trip (or a second) for an answer the forges and Virtuoso do not need to give. */
    if ((rc = append_header(&list, "Expect:")) < 0)
        goto done;
    if (req->if_none_match != NULL) {
        if ((rc = fg_buf_printf(&line, "If-None-Match: %s", req->if_none_match)) < 0 ||
            (rc = append_header(&list, line.ptr)) < 0)
            goto done;
    }
    *out = list;
    list = NULL;
    rc = 0;
done:
    curl_slist_free_all(list);
    fg_buf_dispose(&line);
    return rc;
}

/* ---------------------------------------------------------------- curl callbacks */

static size_t on_body(char *data, size_t size, size_t nmemb, void *userdata)
{
    attempt_io *io = userdata;
    int rc = fg_buf_put(io->body, data, size * nmemb);

    if (rc == FG_ETOOBIG)
        io->body_too_big = true;
    else if (rc < 0)
        io->nomem = true;
    return rc < 0 ? 0 : size * nmemb;
}

/* libcurl 7.88 keeps every header line for curl_easy_header() without a total limit, so the
 * count here is what bounds the memory a hostile server can make us hold. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *userdata)
{
    attempt_io *io = userdata;
    size_t len = size * nmemb;

    if (len >= 5 && memcmp(data, "HTTP/", 5) == 0) {
        /* a new response begins (digest challenge answered, redirect followed): the body
         * gathered so far belonged to the previous one */
        io->header_bytes = 0;
        fg_buf_clear(io->body);
    }
    if (len > FG_HTTP_CLIENT_HEADER_BYTES_MAX - io->header_bytes) {
        io->headers_too_big = true;
        return 0;
    }
    io->header_bytes += len;
    return len;
}

/* ---------------------------------------------------------------- one attempt */

/* libcurl's setopt fails only on out-of-memory or an option this build lacks: stop at the first. */
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (cc == CURLE_OK)                                                                        \
            cc = curl_easy_setopt(h, opt, val);                                                    \
    } while (0)

/* NOLINTNEXTLINE(readability-function-cognitive-complexity): curl's setopt type checks */
static CURLcode set_method(CURL *h, const fg_http_client_request *req, const char *method)
{
    CURLcode cc = CURLE_OK;
    bool sends_body = req->body != NULL || method_is(method, "POST") || method_is(method, "PUT") ||
                      method_is(method, "PATCH");

    if (method_is(method, "HEAD")) {
        SET(CURLOPT_NOBODY, 1L);
    } else if (sends_body) {
        /* the size first: a zero-length POSTFIELDS alone would mean "no body" */
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_POSTFIELDS, req->body != NULL ? req->body : "");
        if (!method_is(method, "POST"))
            SET(CURLOPT_CUSTOMREQUEST, method);
    } else if (!method_is(method, "GET")) {
        SET(CURLOPT_CUSTOMREQUEST, method);
    }
    if (req->auth != FG_HTTP_AUTH_NONE) {
        SET(CURLOPT_HTTPAUTH,
            (long)(req->auth == FG_HTTP_AUTH_DIGEST ? CURLAUTH_DIGEST : CURLAUTH_BASIC));
        SET(CURLOPT_USERNAME, req->username);
        SET(CURLOPT_PASSWORD, req->password);
    }
    return cc;
}

/* NOLINTNEXTLINE(readability-function-cognitive-complexity): curl's setopt type checks */
static CURLcode set_options(fg_http_client *c, const send_ctx *s, attempt_io *io, long timeout_ms)
{
    CURL *h = c->curl;
    CURLcode cc = CURLE_OK;
    long connect_ms =
        c->opt.connect_timeout_ms < timeout_ms ? c->opt.connect_timeout_ms : timeout_ms;

    curl_easy_reset(h);
    c->errbuf[0] = '\0';
    SET(CURLOPT_URL, s->req->url);
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    /* signals are process-wide; a client lives in one thread among others */
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_ERRORBUFFER, c->errbuf);
    SET(CURLOPT_USERAGENT, c->user_agent);
    SET(CURLOPT_HTTPHEADER, s->headers);
    SET(CURLOPT_CONNECTTIMEOUT_MS, connect_ms);
    SET(CURLOPT_TIMEOUT_MS, timeout_ms);
    /* refuses early when Content-Length says too much; on_body catches the rest */
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)s->body_max);
    SET(CURLOPT_ACCEPT_ENCODING, "");
    /* CURLOPT_MAXREDIRS 0 would also stop libcurl from answering a Digest challenge (it
     * counts that second request like a redirect), so without following it stays unset */
    if (c->opt.max_redirects > 0) {
        SET(CURLOPT_FOLLOWLOCATION, 1L);
        SET(CURLOPT_MAXREDIRS, c->opt.max_redirects);
    }
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, io);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, io);
    if (cc == CURLE_OK)
        cc = set_method(h, s->req, s->method);
    return cc;
}

#undef SET

/* The value of the last response's first header `name`, or NULL. */
static const char *header_value(CURL *h, const char *name)
{
    struct curl_header *hdr = NULL;

    if (curl_easy_header(h, name, 0, CURLH_HEADER, -1, &hdr) != CURLHE_OK)
        return NULL;
    return hdr->value;
}

static int copy_header(CURL *h, const char *name, char **out)
{
    const char *value = header_value(h, name);

    if (value == NULL)
        return 0;
    *out = strdup(value);
    if (*out == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory copying header %s", name);
    return 0;
}

static bool header_count(CURL *h, const char *name, long long *out)
{
    const char *value = header_value(h, name);

    return value != NULL && parse_count(value, out);
}

/* Seconds or an HTTP-date (RFC 9110 §10.2.3), as milliseconds from now. */
static bool parse_retry_after(const char *value, long long *out_ms)
{
    long long seconds;
    time_t when;

    if (!parse_count(value, &seconds)) {
        when = curl_getdate(value, NULL);
        if (when == -1)
            return false;
        seconds = (long long)(when - time(NULL));
        if (seconds < 0)
            seconds = 0;
    }
    if (seconds > FG_HTTP_CLIENT_RETRY_AFTER_MAX)
        seconds = FG_HTTP_CLIENT_RETRY_AFTER_MAX;
    *out_ms = seconds * 1000;
    return true;
}

/* names: limit, remaining, reset, used, resource. */
static bool read_rate_family(CURL *h, const char *const names[5], fg_http_rate_limit *rl)
{
    bool *present[] = {&rl->limit_present, &rl->remaining_present, &rl->reset_present,
                       &rl->used_present};
    long long *value[] = {&rl->limit, &rl->remaining, &rl->reset, &rl->used};
    const char *resource;
    bool any = false;

    for (size_t i = 0; i < sizeof(value) / sizeof(value[0]); i++) {
        *present[i] = header_count(h, names[i], value[i]);
        any = any || *present[i];
    }
    resource = header_value(h, names[4]);
    if (resource != NULL) {
        snprintf(rl->resource, sizeof(rl->resource), "%s", resource);
        rl->resource_present = true;
        any = true;
    }
    return any;
}

static void read_rate_limit(CURL *h, fg_http_rate_limit *rl)
{
    const char *reset_time;
    time_t when;

    memset(rl, 0, sizeof(*rl));
    if (read_rate_family(h, github_rate_names, rl)) {
        rl->source = FG_HTTP_RATE_LIMIT_GITHUB;
        return;
    }
    memset(rl, 0, sizeof(*rl));
    if (!read_rate_family(h, gitlab_rate_names, rl))
        return;
    rl->source = FG_HTTP_RATE_LIMIT_GITLAB;
    reset_time = rl->reset_present ? NULL : header_value(h, "RateLimit-ResetTime");
    when = reset_time != NULL ? curl_getdate(reset_time, NULL) : -1;
    if (when != -1) {
        rl->reset = (long long)when;
        rl->reset_present = true;
    }
}

/* Several Link headers may come; the first rel="next" among them wins. A malformed one is
 * logged and ignored rather than failing a response that arrived. */
static int read_link_next(CURL *h, fg_http_client_response *out, const send_ctx *s)
{
    struct curl_header *hdr = NULL;
    const char *target = NULL, *base = NULL;
    size_t len = 0, amount = 1;
    int rc = 0;

    /* target points into hdr, which the next curl_easy_header call invalidates: stop there */
    for (size_t i = 0; i < amount && target == NULL && rc == 0; i++) {
        if (curl_easy_header(h, "Link", i, CURLH_HEADER, -1, &hdr) != CURLHE_OK)
            break;
        amount = hdr->amount;
        rc = find_link_next(hdr->value, &target, &len);
    }
    if (rc == 0 && target != NULL) {
        if (curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &base) != CURLE_OK || base == NULL)
            base = s->req->url;
        rc = resolve_url(&out->next_url, base, target, len);
    }
    if (rc == FG_ENOMEM)
        return rc;
    if (rc < 0)
        fg_log_emit(FG_LOG_WARN,
                    FG_LOG_FIELDS(FG_LOG_STR("method", s->method), FG_LOG_STR("url", s->safe_url)),
                    "http: ignoring a malformed Link header: %s", fg_error_last());
    return 0;
}

static int read_response(CURL *h, fg_http_client_response *out, const send_ctx *s)
{
    const char *retry_after;
    int rc;

    if (curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &out->status) != CURLE_OK)
        out->status = 0;
    if (out->status == 0)
        return 0;
    if ((rc = copy_header(h, "Content-Type", &out->content_type)) < 0 ||
        (rc = copy_header(h, "ETag", &out->etag)) < 0 ||
        (rc = copy_header(h, "Location", &out->location)) < 0 ||
        (rc = read_link_next(h, out, s)) < 0)
        return rc;
    out->next_page_present = header_count(h, "X-Next-Page", &out->next_page);
    out->total_pages_present = header_count(h, "X-Total-Pages", &out->total_pages);
    read_rate_limit(h, &out->rate_limit);
    retry_after = header_value(h, "Retry-After");
    if (retry_after != NULL)
        out->retry_after_present = parse_retry_after(retry_after, &out->retry_after_ms);
    return 0;
}

static void response_reset(fg_http_client_response *r, size_t body_max)
{
    fg_http_client_response_dispose(r);
    memset(r, 0, sizeof(*r));
    fg_buf_init(&r->body, body_max);
}

/* 0 when an HTTP answer arrived (whatever its status); an fg error otherwise. */
static int attempt_once(fg_http_client *c, fg_http_client_response *out, const send_ctx *s,
                        long timeout_ms, bool *retryable)
{
    attempt_io io = {&out->body, 0, false, false, false};
    CURLcode cc;
    int rc;

    *retryable = false;
    response_reset(out, s->body_max);
    cc = set_options(c, s, &io, timeout_ms);
    if (cc != CURLE_OK)
        return map_curl_error(cc, &io, c, s, retryable);
    cc = curl_easy_perform(c->curl);
    if ((rc = read_response(c->curl, out, s)) < 0)
        return rc;
    if (cc != CURLE_OK)
        return map_curl_error(cc, &io, c, s, retryable);
    return 0;
}

/* ---------------------------------------------------------------- retry policy */

/* 429 and 503 say the server did not act, so any method may repeat; a gateway's 502 or 504
 * may come after the upstream acted, so only idempotent requests repeat then. */
static bool status_retryable(long status, bool idempotent)
{
    if (status == 429 || status == 503)
        return true;
    return (status == 502 || status == 504) && idempotent;
}

/* Full jitter: uniform in [0, min(max, base * 2^(retry-1))]. */
static long long backoff_ms(fg_http_client *c, int retry)
{
    long long ceiling = c->opt.backoff_base_ms;

    for (int i = 1; i < retry && ceiling < c->opt.backoff_max_ms; i++)
        ceiling *= 2;
    if (ceiling > c->opt.backoff_max_ms)
        ceiling = c->opt.backoff_max_ms;
    if (ceiling <= 0)
        return 0;
    return (long long)(next_random(c) % (uint64_t)(ceiling + 1));
}

/* Rewrites the error recorded for the last attempt into the one the caller gets. */
static int give_up(int code, int attempt, const char *why)
{
    char last[FG_HTTP_CLIENT_REASON_MAX];

    snprintf(last, sizeof(last), "%s", fg_error_last());
    return fg_error_set(code, "%s (%s; %d attempt%s)", last, why, attempt, attempt == 1 ? "" : "s");
}

/* After attempt number `attempt` ended with *rc: true to sleep *delay_ms and try again; false
 * to stop with *rc, rewritten into the final error where retrying was wanted but not allowed. */
static bool plan_retry(fg_http_client *c, const fg_http_client_response *out, const send_ctx *s,
                       int attempt, long long spent_ms, bool retryable, int *rc,
                       long long *delay_ms)
{
    bool by_status = *rc == 0;
    char why[128];

    if (by_status) {
        if (!status_retryable(out->status, s->idempotent))
            return false;
        *rc = fg_error_set(FG_EUNAVAILABLE, "%s %s: HTTP %ld", s->method, s->safe_url, out->status);
    } else if (!retryable) {
        return false;
    }
    if (by_status && out->retry_after_present) {
        if (out->retry_after_ms > c->opt.retry_after_max_ms) {
            snprintf(why, sizeof(why), "Retry-After %lld ms exceeds the %ld ms cap",
                     out->retry_after_ms, c->opt.retry_after_max_ms);
            *rc = give_up(FG_EUNAVAILABLE, attempt, why);
            return false;
        }
        *delay_ms = out->retry_after_ms;
    } else {
        *delay_ms = backoff_ms(c, attempt);
    }
    if (attempt >= c->opt.max_attempts) {
        *rc = give_up(*rc, attempt, "no attempt left");
        return false;
    }
    if (spent_ms + *delay_ms >= c->opt.max_total_ms) {
        snprintf(why, sizeof(why), "waiting %lld ms more would pass the %ld ms budget", *delay_ms,
                 c->opt.max_total_ms);
        *rc = give_up(*rc, attempt, why);
        return false;
    }
    return true;
}

static void log_attempt(const send_ctx *s, const fg_http_client_response *out, int attempt,
                        long long ms, int rc, long long delay_ms, bool retrying)
{
    if (retrying) {
        fg_log_emit(FG_LOG_WARN,
                    FG_LOG_FIELDS(FG_LOG_STR("method", s->method), FG_LOG_STR("url", s->safe_url),
                                  FG_LOG_INT("status", out->status), FG_LOG_INT("attempt", attempt),
                                  FG_LOG_INT("delay_ms", delay_ms)),
                    "http: retrying: %s", fg_error_last());
    } else if (fg_log_enabled(FG_LOG_DEBUG)) {
        fg_log_emit(FG_LOG_DEBUG,
                    FG_LOG_FIELDS(FG_LOG_STR("method", s->method), FG_LOG_STR("url", s->safe_url),
                                  FG_LOG_INT("status", out->status), FG_LOG_INT("attempt", attempt),
                                  FG_LOG_INT("ms", ms), FG_LOG_INT("rc", rc)),
                    "http: done");
    }
}

static int send_with_retries(fg_http_client *c, fg_http_client_response *out, const send_ctx *s)
{
    long long spent_ms = 0, started, delay_ms = 0, left;
    bool retryable, again;
    int rc = FG_ERROR;

    for (int attempt = 1;; attempt++) {
        left = c->opt.max_total_ms - spent_ms;
        started = now_ms();
        rc = attempt_once(c, out, s, (long)(left < s->timeout_ms ? left : s->timeout_ms),
                          &retryable);
        spent_ms += now_ms() - started;
        out->attempts = attempt;
        again = plan_retry(c, out, s, attempt, spent_ms, retryable, &rc, &delay_ms);
        log_attempt(s, out, attempt, now_ms() - started, rc, delay_ms, again);
        if (!again)
            break;
        c->opt.sleep(delay_ms, c->opt.sleep_payload);
        spent_ms += delay_ms;
    }
    return rc;
}

/* ---------------------------------------------------------------- public */

void fg_http_client_options_init(fg_http_client_options *o)
{
    memset(o, 0, sizeof(*o));
    o->connect_timeout_ms = 10000;
    o->timeout_ms = 60000;
    o->max_response_bytes = FG_HTTP_CLIENT_BODY_MAX_DEFAULT;
    o->max_attempts = 4;
    o->max_total_ms = 120000;
    o->backoff_base_ms = 500;
    o->backoff_max_ms = 30000;
    o->retry_after_max_ms = 60000;
    o->max_redirects = 0;
}

static int check_options(const fg_http_client_options *o)
{
    if (o->connect_timeout_ms <= 0 || o->timeout_ms <= 0 || o->max_total_ms <= 0)
        return fg_error_set(FG_EINVALID, "http client timeouts must be positive");
    if (o->max_response_bytes == 0 || o->max_response_bytes > FG_BUF_UNLIMITED)
        return fg_error_set(FG_EINVALID, "http client max_response_bytes out of range");
    if (o->max_attempts < 1 || o->max_attempts > FG_HTTP_CLIENT_ATTEMPTS_MAX)
        return fg_error_set(FG_EINVALID, "http client max_attempts must be 1 to %d",
                            FG_HTTP_CLIENT_ATTEMPTS_MAX);
    if (o->backoff_base_ms < 0 || o->backoff_max_ms < o->backoff_base_ms ||
        o->retry_after_max_ms < 0)
        return fg_error_set(FG_EINVALID, "http client backoff settings out of range");
    if (o->max_redirects < 0 || o->max_redirects > FG_HTTP_CLIENT_REDIRECTS_MAX)
        return fg_error_set(FG_EINVALID, "http client max_redirects must be 0 to %d",
                            FG_HTTP_CLIENT_REDIRECTS_MAX);
    if (o->user_agent != NULL && has_crlf(o->user_agent))
        return fg_error_set(FG_EINVALID, "http client user agent holds CR or LF");
    return 0;
}

int fg_http_client_new(fg_http_client **out, const fg_http_client_options *options)
{
    fg_http_client_options defaults;
    fg_http_client *c = NULL;
    int rc = FG_ERROR;

    *out = NULL;
    fg_http_client_options_init(&defaults);
    if (options == NULL)
        options = &defaults;
    if ((rc = check_options(options)) < 0)
        goto done;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK) {
        rc = fg_error_set(FG_ERROR, "curl_global_init: %s", curl_easy_strerror(global_rc));
        goto done;
    }
    c = calloc(1, sizeof(*c));
    if (c == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory creating an http client");
        goto done;
    }
    c->opt = *options;
    c->user_agent = strdup(options->user_agent ? options->user_agent : "forgegraph/" FG_VERSION);
    c->curl = curl_easy_init();
    if (c->user_agent == NULL || c->curl == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory creating an http client");
        goto done;
    }
    c->opt.user_agent = c->user_agent;
    if (c->opt.sleep == NULL)
        c->opt.sleep = default_sleep;
    c->rng = random_seed(c);
    *out = c;
    c = NULL;
    rc = 0;
done:
    fg_http_client_free(c);
    return rc;
}

void fg_http_client_free(fg_http_client *c)
{
    if (c == NULL)
        return;
    curl_easy_cleanup(c->curl);
    free(c->user_agent);
    free(c);
}

void fg_http_client_request_init(fg_http_client_request *r)
{
    memset(r, 0, sizeof(*r));
    r->auth = FG_HTTP_AUTH_NONE;
}

void fg_http_client_response_init(fg_http_client_response *r)
{
    memset(r, 0, sizeof(*r));
    fg_buf_init(&r->body, FG_HTTP_CLIENT_BODY_MAX_DEFAULT);
}

void fg_http_client_response_dispose(fg_http_client_response *r)
{
    if (r == NULL)
        return;
    fg_buf_dispose(&r->body);
    free(r->content_type);
    free(r->etag);
    free(r->location);
    free(r->next_url);
    r->content_type = r->etag = r->location = r->next_url = NULL;
}

int fg_http_client_send(fg_http_client *c, fg_http_client_response *out,
                        const fg_http_client_request *req)
{
    send_ctx s = {0};
    fg_buf safe_url;
    int rc = FG_ERROR;

    fg_buf_init(&safe_url, FG_HTTP_CLIENT_URL_MAX);
    if (c == NULL || out == NULL || req == NULL) {
        rc = fg_error_set(FG_EINVALID, "http send without a client, response or request");
        goto done;
    }
    s.req = req;
    s.method = req->method != NULL ? req->method : "GET";
    s.body_max = req->max_response_bytes > 0 ? req->max_response_bytes : c->opt.max_response_bytes;
    s.timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : c->opt.timeout_ms;
    s.idempotent = req->idempotent || method_is(s.method, "GET") || method_is(s.method, "HEAD") ||
                   method_is(s.method, "PUT") || method_is(s.method, "DELETE") ||
                   method_is(s.method, "OPTIONS");
    response_reset(out, s.body_max);
    if ((rc = check_request(req)) < 0 || (rc = prepare_url(&safe_url, req->url)) < 0 ||
        (rc = build_headers(&s.headers, req)) < 0)
        goto done;
    s.safe_url = safe_url.ptr;
    rc = send_with_retries(c, out, &s);
done:
    curl_slist_free_all(s.headers);
    fg_buf_dispose(&safe_url);
    return rc;
}
