/*
 * Synchronous HTTP client on libcurl: one request at a time with retries, backoff, Retry-After,
 * capped bodies, forge rate-limit and pagination headers (GitHub and GitLab), conditional
 * requests, and basic or digest auth. It does not cache (the caller keeps ETags and bodies), does
 * not follow Link pagination by itself and does not pace requests against rate limits.
 * A client is NOT thread-safe: use one per thread; it reuses one connection (keep-alive).
 * The caller owns requests and responses; the client copies nothing it does not need after send.
 */
#ifndef FG_HTTP_CLIENT_H
#define FG_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/buf.h"
#include "fg/error.h"

#define FG_HTTP_CLIENT_BODY_MAX_DEFAULT    ((size_t)16 * 1024 * 1024) /* response body cap */
#define FG_HTTP_CLIENT_HEADER_BYTES_MAX    ((size_t)64 * 1024) /* all header lines of one response */
#define FG_HTTP_CLIENT_REQUEST_HEADERS_MAX 64                  /* headers a request may carry */
#define FG_HTTP_CLIENT_URL_MAX             8192                /* request URL length */
#define FG_HTTP_CLIENT_RESOURCE_MAX        64 /* rate-limit bucket name, truncated */

typedef struct fg_http_client fg_http_client;

/* Sleeps between retries. Injectable so that tests see the delay without waiting. */
typedef void (*fg_http_sleep_fn)(long long ms, void *payload);

typedef struct {
    long connect_timeout_ms;   /* per attempt; default 10 s */
    long timeout_ms;           /* whole attempt (connect to last body byte); default 60 s */
    size_t max_response_bytes; /* body cap; FG_ETOOBIG beyond; default 16 MiB */
    int max_attempts;          /* requests sent at most, first one included; default 4 */
    long max_total_ms;         /* attempts plus sleeps; no retry would end past it; default 120 s */
    long backoff_base_ms;      /* first backoff ceiling, doubled per retry; default 500 ms */
    long backoff_max_ms;       /* backoff ceiling cap; default 30 s */
    long retry_after_max_ms;   /* longest Retry-After slept; longer is returned; default 60 s */
    long max_redirects;        /* 0 (default): a 3xx is returned with its Location */
    const char *user_agent;    /* copied; NULL: "forgegraph/<version>" (GitHub requires one) */
    fg_http_sleep_fn sleep;    /* NULL: nanosleep */
    void *sleep_payload;
} fg_http_client_options;

typedef enum { FG_HTTP_AUTH_NONE = 0, FG_HTTP_AUTH_BASIC, FG_HTTP_AUTH_DIGEST } fg_http_auth;

/* Everything the caller sends. All pointers are borrowed for the duration of fg_http_client_send.
 */
typedef struct {
    const char *method;         /* NULL: GET */
    const char *url;            /* http or https; never logged with its userinfo or query */
    const char *const *headers; /* "Name: value" lines (no CR or LF), nheaders of them */
    size_t nheaders;
    const void *body; /* NULL: no body (an empty one for POST, PUT and PATCH) */
    size_t body_len;
    fg_http_auth auth; /* with username and password, which are never logged */
    const char *username;
    const char *password;
    const char *if_none_match; /* an ETag from an earlier response: a 304 means unchanged */
    bool idempotent;           /* retry even if the request may have reached the server; GET,
                                  HEAD, PUT, DELETE and OPTIONS are idempotent anyway */
    long timeout_ms;           /* 0: the client's */
    size_t max_response_bytes; /* 0: the client's */
} fg_http_client_request;

typedef enum {
    FG_HTTP_RATE_LIMIT_NONE = 0, /* no rate-limit header */
    FG_HTTP_RATE_LIMIT_GITHUB,   /* x-ratelimit-* */
    FG_HTTP_RATE_LIMIT_GITLAB    /* RateLimit-* */
} fg_http_rate_limit_source;

/* Both forges' rate-limit headers in one shape; each field is meaningful only when present. */
typedef struct {
    fg_http_rate_limit_source source;
    bool limit_present; /* x-ratelimit-limit (per hour) / RateLimit-Limit (per minute) */
    long long limit;
    bool remaining_present; /* x-ratelimit-remaining / RateLimit-Remaining */
    long long remaining;
    bool reset_present; /* x-ratelimit-reset / RateLimit-Reset (else RateLimit-ResetTime) */
    long long reset;    /* Unix seconds when the window resets */
    bool used_present;  /* x-ratelimit-used / RateLimit-Observed */
    long long used;
    bool resource_present; /* x-ratelimit-resource ("core", "search") / RateLimit-Name */
    char resource[FG_HTTP_CLIENT_RESOURCE_MAX];
} fg_http_rate_limit;

/* What came back from the last attempt. Owned by the caller between init and dispose. */
typedef struct {
    long status;            /* 0 when no response arrived */
    fg_buf body;            /* empty for 304 and HEAD */
    char *content_type;     /* NULL when absent */
    char *etag;             /* NULL when absent */
    char *location;         /* NULL when absent (3xx with max_redirects 0) */
    char *next_url;         /* Link rel="next", resolved against the request URL */
    bool next_page_present; /* GitLab X-Next-Page (absent or empty on the last page) */
    long long next_page;
    bool total_pages_present; /* GitLab X-Total-Pages (absent on very large collections) */
    long long total_pages;
    fg_http_rate_limit rate_limit;
    bool retry_after_present; /* Retry-After, seconds or HTTP-date, as milliseconds from now */
    long long retry_after_ms;
    int attempts; /* requests sent by the last fg_http_client_send */
} fg_http_client_response;

/* Fills o with the defaults listed above. */
void fg_http_client_options_init(fg_http_client_options *o);

/* A new client with one reusable curl handle; options may be NULL (defaults) and are copied.
 * The first call in the process runs curl_global_init (once, under pthread_once; libcurl 7.88
 * built threadsafe makes that safe beside other threads). curl_global_cleanup is never called.
 * FG_EINVALID for a bad option, FG_ENOMEM, FG_ERROR when libcurl cannot start. */
int fg_http_client_new(fg_http_client **out, const fg_http_client_options *options) FG_MUST_CHECK;

/* Closes the connection and frees the client; NULL is fine. */
void fg_http_client_free(fg_http_client *c);

/* Sets every field of r to its default (GET, no headers, no body, no auth). */
void fg_http_client_request_init(fg_http_client_request *r);

/* Prepares an empty response; dispose it after use, send reuses it. */
void fg_http_client_response_init(fg_http_client_response *r);
void fg_http_client_response_dispose(fg_http_client_response *r);

/*
 * Sends req, retrying as docs/internals/http_client.md says, and leaves the last attempt's
 * answer in out (previous contents are dropped). Any HTTP status that ends the retries returns 0
 * with out->status set: 2xx, 304, 3xx, 401, 403, 404, 500... are answers, not errors.
 * Errors (out keeps what the last attempt got, out->status may be 0):
 *   FG_EUNAVAILABLE  connection or DNS failure, or 429/502/503/504 after the last allowed attempt,
 *                    or a Retry-After longer than retry_after_max_ms or than the time budget left
 *                    (out->retry_after_ms says when to come back);
 *   FG_ETIMEOUT      the last attempt timed out;
 *   FG_ETOOBIG       body over the cap, or header lines over FG_HTTP_CLIENT_HEADER_BYTES_MAX;
 *   FG_EINVALID      bad request (no URL, CR/LF in a header, auth without credentials...);
 *   FG_ENOMEM, FG_ERROR (TLS verification and other libcurl failures).
 * Thread: the client's own thread only.
 */
int fg_http_client_send(fg_http_client *c, fg_http_client_response *out,
                        const fg_http_client_request *req) FG_MUST_CHECK;

/*
 * Finds the target of the first link whose rel (one of its space-separated values, any case) is
 * "next" in a Link header value (RFC 8288: several comma-separated links, quoted parameters).
 * *out is a malloc'd copy for the caller to free, or NULL when there is no next link (returns 0).
 * FG_EINVALID for a malformed header, FG_ENOMEM.
 */
int fg_http_link_next(char **out, const char *link_header) FG_MUST_CHECK;

#endif
