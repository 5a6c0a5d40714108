/*
 * The message bus on librabbitmq-c 0.11 (see fg/amqp.h and docs/internals/amqp.md).
 *
 * One connection, one channel in confirm mode. Every frame that arrives, whichever call happens
 * to be reading, goes through handle_method(): confirms update the batch in flight, a
 * basic.return marks its message, a delivery joins a bounded queue for fg_amqp_next. So a publish
 * waiting for confirms on a consuming channel never throws a delivery away (infra.md §3).
 */
#include "fg/amqp.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "fg/log.h"

#define CHANNEL        1
#define FRAME_MAX      131072
#define DRAIN_EVERY    64 /* publishes between non-blocking reads of what the broker sent */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define ATTEMPTS_CAP   1000000u
#define WHERE_MAX      (FG_AMQP_NAME_MAX * 3)
#define SVC_QUEUE_MAX  (FG_AMQP_NAME_MAX + 16)

/* ------------------------------------------------------------------------------------------ */
/* Types                                                                                      */
/* ------------------------------------------------------------------------------------------ */

typedef enum {
    FG_AMQP_DISCONNECTED, /* conn == NULL, the delivery queue is empty; the want_* flags say what
                             fg_amqp_connect must redo */
    FG_AMQP_CONNECTED     /* logged in, CHANNEL open in confirm mode, next_seq is the tag of the
                             next publish; consuming says whether basic.consume is active */
} fg_amqp_state;

enum { CONFIRM_ACKED = 1, CONFIRM_NACKED = 2, CONFIRM_RETURNED = 4 };

/* The publishes awaiting confirms. Tags are per channel and count every publish from 1 after
 * confirm.select, so msgs[i] has tag first_seq + i. */
typedef struct {
    const fg_amqp_message *msgs; /* NULL when no batch is in flight */
    unsigned char *status;       /* CONFIRM_* bits per message */
    uint64_t first_seq;
    size_t published;
    size_t resolved; /* acked or nacked */
    size_t low;      /* every message before it is resolved */
    char return_text[128];
} confirm_batch;

struct fg_amqp_delivery {
    uint64_t tag;
    unsigned generation; /* the connection it came on */
    bool settled;
    char *id;
    char *category;
    char *content_type; /* NULL when absent */
    unsigned char *body;
    size_t body_len;
    unsigned attempts;
    bool has_timestamp;
    uint64_t timestamp;
    amqp_table_t headers; /* cloned into pool */
    amqp_pool_t pool;
};

struct fg_amqp {
    fg_amqp_state state;
    amqp_connection_state_t conn;
    fg_amqp_url url;
    char where[WHERE_MAX]; /* user@host:port vhost, for messages: never the password */
    char *service;
    char **categories;
    size_t ncategories;
    char main_queue[SVC_QUEUE_MAX];
    char retry_queue[SVC_QUEUE_MAX];
    char parked_queue[SVC_QUEUE_MAX];
    int retry_ttl_ms, max_attempts, prefetch, heartbeat_s, io_timeout_ms;
    bool want_declared, want_consuming, consuming;
    unsigned generation;
    uint64_t next_seq;
    confirm_batch batch;
    fg_amqp_delivery **ring; /* deliveries received, not yet handed out; prefetch bounds it */
    size_t ring_head, ring_len, ring_cap;
    uint64_t rng;
};

/* A republish to a queue through the default exchange, with prepared properties. */
typedef struct {
    const char *queue;
    const amqp_basic_properties_t *props;
} reroute;

static int pump(fg_amqp *h, int timeout_ms);

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                              */
/* ------------------------------------------------------------------------------------------ */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static struct timeval ms_to_tv(long long ms)
{
    struct timeval tv;

    ms = ms < 0 ? 0 : ms;
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    return tv;
}

static void sleep_ms(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0)
        ;
}

static uint64_t next_random(fg_amqp *h)
{
    h->rng ^= h->rng << 13;
    h->rng ^= h->rng >> 7;
    h->rng ^= h->rng << 17;
    return h->rng;
}

static char *dup_bytes(amqp_bytes_t b)
{
    char *s = malloc(b.len + 1);

    if (s == NULL)
        return NULL;
    if (b.len > 0)
        memcpy(s, b.bytes, b.len);
    s[b.len] = '\0';
    return s;
}

static bool bytes_equal(amqp_bytes_t b, const char *s)
{
    size_t n = strlen(s);

    return b.len == n && (n == 0 || memcmp(b.bytes, s, n) == 0);
}

static bool bytes_prefix(amqp_bytes_t b, const char *prefix)
{
    size_t n = strlen(prefix);

    return b.len >= n && memcmp(b.bytes, prefix, n) == 0;
}

static amqp_bytes_t const_bytes(const void *p, size_t len)
{
    amqp_bytes_t b;

    b.len = len;
    b.bytes = (void *)(uintptr_t)p; /* librabbitmq only reads what it is given to send */
    return b;
}

/* Queue and routing names: what RabbitMQ and our logs can both carry unquoted. */
static bool name_ok(const char *s)
{
    size_t n = s ? strnlen(s, FG_AMQP_NAME_MAX + 1) : 0;

    if (n == 0 || n > FG_AMQP_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];

        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static bool message_id_ok(const char *s)
{
    size_t n = s ? strnlen(s, FG_AMQP_NAME_MAX + 1) : 0;

    if (n == 0 || n > FG_AMQP_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return false;
    }
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* State, teardown and the one place librabbitmq errors become FG_E* codes                   */
/* ------------------------------------------------------------------------------------------ */

static void ring_clear(fg_amqp *h)
{
    while (h->ring_len > 0) {
        fg_amqp_delivery_free(h->ring[h->ring_head]);
        h->ring_head = (h->ring_head + 1) % h->ring_cap;
        h->ring_len--;
    }
    h->ring_head = 0;
}

/* The one place the state changes. Both transitions are legal; staying put is not logged. */
static void set_state(fg_amqp *h, fg_amqp_state to, fg_log_level level, const char *why)
{
    static const char *names[] = {"disconnected", "connected"};

    if (h->state == to)
        return;
    fg_log_emit(level,
                FG_LOG_FIELDS(FG_LOG_STR("amqp", h->where), FG_LOG_STR("from", names[h->state]),
                              FG_LOG_STR("to", names[to])),
                "amqp %s: %s", names[to], why ? why : "");
    h->state = to;
}

/* Drops the connection. Unacked deliveries, queued or handed out, go back to their queue on the
 * broker's side, so forgetting the queued ones loses nothing. */
static void teardown_as(fg_amqp *h, fg_log_level level, const char *why)
{
    ring_clear(h);
    if (h->conn != NULL)
        amqp_destroy_connection(h->conn);
    h->conn = NULL;
    h->consuming = false;
    set_state(h, FG_AMQP_DISCONNECTED, level, why);
}

static void teardown(fg_amqp *h, const char *why)
{
    teardown_as(h, FG_LOG_WARN, why);
}

static int close_code_to_error(unsigned code)
{
    switch (code) {
    case AMQP_ACCESS_REFUSED:
    case AMQP_NOT_ALLOWED:
        return FG_EAUTH;
    case AMQP_NOT_FOUND:
        return FG_ENOTFOUND;
    case AMQP_PRECONDITION_FAILED:
    case AMQP_RESOURCE_LOCKED:
        return FG_ECONFLICT;
    default:
        return FG_EUNAVAILABLE;
    }
}

/* The broker closed the channel or the connection: answer with close-ok (the protocol asks for
 * it) and record why. `async` is for closes noticed while reading: whatever the cause, the caller
 * only needs to know that it must reconnect. */
static int broker_closed(fg_amqp *h, const amqp_method_t *m, const char *what, bool async)
{
    unsigned code;
    amqp_bytes_t text;
    const char *scope;

    if (m->id == AMQP_CONNECTION_CLOSE_METHOD) {
        const amqp_connection_close_t *c = m->decoded;
        amqp_connection_close_ok_t ok = {0};

        code = c->reply_code;
        text = c->reply_text;
        scope = "connection";
        (void)amqp_send_method(h->conn, 0, AMQP_CONNECTION_CLOSE_OK_METHOD, &ok);
    } else if (m->id == AMQP_CHANNEL_CLOSE_METHOD) {
        const amqp_channel_close_t *c = m->decoded;
        amqp_channel_close_ok_t ok = {0};

        code = c->reply_code;
        text = c->reply_text;
        scope = "channel";
        (void)amqp_send_method(h->conn, CHANNEL, AMQP_CHANNEL_CLOSE_OK_METHOD, &ok);
    } else {
        return fg_error_set(FG_EUNAVAILABLE, "amqp %s: %s: unexpected method 0x%08x", h->where,
                            what, m->id);
    }
    return fg_error_set(async ? FG_EUNAVAILABLE : close_code_to_error(code),
                        "amqp %s: %s: %s closed by the broker: %u %.*s", h->where, what, scope,
                        code, (int)(text.len > 300 ? 300 : text.len), (const char *)text.bytes);
}

/* Converts any librabbitmq failure into FG_E* and drops the connection, which is unusable after
 * every one of them (a timed-out RPC has already closed the socket). */
static int lib_reply(fg_amqp *h, amqp_rpc_reply_t r, const char *what, bool async)
{
    int rc;

    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL:
        return 0;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        rc = fg_error_set(r.library_error == AMQP_STATUS_NO_MEMORY ? FG_ENOMEM : FG_EUNAVAILABLE,
                          "amqp %s: %s: %s", h->where, what, amqp_error_string2(r.library_error));
        break;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        rc = broker_closed(h, &r.reply, what, async);
        break;
    default:
        rc = fg_error_set(FG_EUNAVAILABLE, "amqp %s: %s: no reply", h->where, what);
        break;
    }
    teardown(h, fg_error_last());
    return rc;
}

static int lib_status(fg_amqp *h, int status, const char *what)
{
    amqp_rpc_reply_t r;

    memset(&r, 0, sizeof(r));
    r.reply_type = AMQP_RESPONSE_LIBRARY_EXCEPTION;
    r.library_error = status;
    return lib_reply(h, r, what, true);
}

static int rpc_result(fg_amqp *h, const char *what)
{
    return lib_reply(h, amqp_get_rpc_reply(h->conn), what, false);
}

static int require_connected(fg_amqp *h)
{
    if (h->state != FG_AMQP_CONNECTED)
        return fg_error_set(FG_EUNAVAILABLE, "amqp %s: not connected", h->where);
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Handle                                                                                     */
/* ------------------------------------------------------------------------------------------ */

void fg_amqp_options_init(fg_amqp_options *o)
{
    memset(o, 0, sizeof(*o));
    o->retry_ttl_ms = FG_AMQP_RETRY_TTL_DEFAULT_MS;
    o->max_attempts = FG_AMQP_MAX_ATTEMPTS_DEFAULT;
    o->prefetch = FG_AMQP_PREFETCH_DEFAULT;
    o->heartbeat_s = FG_AMQP_HEARTBEAT_DEFAULT_S;
    o->io_timeout_ms = FG_AMQP_IO_TIMEOUT_DEFAULT_MS;
}

static int check_options(const fg_amqp_options *o)
{
    if (o->service != NULL && !name_ok(o->service))
        return fg_error_set(FG_EINVALID, "amqp: service name must be 1-%d of [A-Za-z0-9_.-]",
                            FG_AMQP_NAME_MAX);
    if (o->ncategories > FG_AMQP_CATEGORIES_MAX)
        return fg_error_set(FG_EINVALID, "amqp: more than %d categories", FG_AMQP_CATEGORIES_MAX);
    for (size_t i = 0; i < o->ncategories; i++) {
        if (o->categories == NULL || !name_ok(o->categories[i]))
            return fg_error_set(FG_EINVALID, "amqp: category #%zu is not 1-%d of [A-Za-z0-9_.-]", i,
                                FG_AMQP_NAME_MAX);
    }
    if (o->ncategories > 0 && o->service == NULL)
        return fg_error_set(FG_EINVALID, "amqp: categories need a service to consume them");
    if (o->retry_ttl_ms < 1 || o->max_attempts < 1 || o->prefetch < 1 ||
        o->prefetch > FG_AMQP_PREFETCH_MAX || o->heartbeat_s < 0 || o->io_timeout_ms < 1)
        return fg_error_set(FG_EINVALID,
                            "amqp: retry_ttl_ms, max_attempts, io_timeout_ms must be "
                            "positive, prefetch 1-%d, heartbeat_s >= 0",
                            FG_AMQP_PREFETCH_MAX);
    return 0;
}

static int copy_names(fg_amqp *h, const fg_amqp_options *o)
{
    if (o->service != NULL) {
        if ((h->service = strdup(o->service)) == NULL)
            return fg_error_set(FG_ENOMEM, "amqp: out of memory");
        snprintf(h->main_queue, sizeof(h->main_queue), "fg.%s", o->service);
        snprintf(h->retry_queue, sizeof(h->retry_queue), "fg.%s.retry", o->service);
        snprintf(h->parked_queue, sizeof(h->parked_queue), "fg.%s.parked", o->service);
    }
    if (o->ncategories > 0 && (h->categories = calloc(o->ncategories, sizeof(char *))) == NULL)
        return fg_error_set(FG_ENOMEM, "amqp: out of memory");
    for (size_t i = 0; i < o->ncategories; i++) {
        if ((h->categories[i] = strdup(o->categories[i])) == NULL)
            return fg_error_set(FG_ENOMEM, "amqp: out of memory");
        h->ncategories = i + 1;
    }
    return 0;
}

int fg_amqp_new(fg_amqp **out, const fg_amqp_options *opts)
{
    fg_amqp *h = NULL;
    int rc = FG_ERROR;

    *out = NULL;
    if ((rc = check_options(opts)) < 0)
        goto done;
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "amqp: out of memory");
        goto done;
    }
    if ((rc = fg_amqp_url_parse(&h->url, opts->url)) < 0 || (rc = copy_names(h, opts)) < 0)
        goto done;
    snprintf(h->where, sizeof(h->where), "%.100s@%.200s:%d vhost %.100s", h->url.user, h->url.host,
             h->url.port, h->url.vhost);
    h->retry_ttl_ms = opts->retry_ttl_ms;
    h->max_attempts = opts->max_attempts;
    h->prefetch = opts->prefetch;
    h->heartbeat_s = opts->heartbeat_s;
    h->io_timeout_ms = opts->io_timeout_ms;
    h->ring_cap = (size_t)opts->prefetch;
    if ((h->ring = calloc(h->ring_cap, sizeof(*h->ring))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "amqp: out of memory");
        goto done;
    }
    h->rng = (uint64_t)now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)h;
    h->rng |= 1;
    *out = h;
    h = NULL;
    rc = 0;
done:
    fg_amqp_free(h);
    return rc;
}

void fg_amqp_free(fg_amqp *h)
{
    if (h == NULL)
        return;
    if (h->state == FG_AMQP_CONNECTED)
        (void)amqp_connection_close(h->conn, AMQP_REPLY_SUCCESS);
    teardown_as(h, FG_LOG_INFO, "closed by the application");
    for (size_t i = 0; i < h->ncategories; i++)
        free(h->categories[i]);
    free(h->categories);
    free(h->service);
    free(h->ring);
    fg_amqp_url_dispose(&h->url);
    free(h);
}

bool fg_amqp_is_connected(const fg_amqp *h)
{
    return h != NULL && h->state == FG_AMQP_CONNECTED;
}

size_t fg_amqp_buffered(const fg_amqp *h)
{
    return h->ring_len;
}

/* ------------------------------------------------------------------------------------------ */
/* Topology and consuming                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void table_set(amqp_table_entry_t *e, const char *key, amqp_field_value_t value)
{
    e->key = amqp_cstring_bytes(key);
    e->value = value;
}

static amqp_field_value_t field_str(const char *s)
{
    amqp_field_value_t v;

    v.kind = AMQP_FIELD_KIND_UTF8;
    v.value.bytes = amqp_cstring_bytes(s);
    return v;
}

static amqp_field_value_t field_i64(int64_t n)
{
    amqp_field_value_t v;

    v.kind = AMQP_FIELD_KIND_I64;
    v.value.i64 = n;
    return v;
}

static int declare_queue(fg_amqp *h, const char *queue, amqp_table_entry_t *args, int nargs)
{
    amqp_table_t table = {nargs, args};
    char what[SVC_QUEUE_MAX + 32];

    snprintf(what, sizeof(what), "queue.declare %s", queue);
    (void)amqp_queue_declare(h->conn, CHANNEL, amqp_cstring_bytes(queue), 0, 1, 0, 0, table);
    return rpc_result(h, what);
}

/* Quorum queues everywhere: replicated when clustered, and they count redeliveries in
 * x-delivery-count. The retry queue dead-letters at-least-once (RabbitMQ >= 3.10, which requires
 * reject-publish overflow), so an expiring message is never dropped on its way back. */
static int declare_service_queues(fg_amqp *h)
{
    amqp_table_entry_t args[6];
    int rc;

    table_set(&args[0], "x-queue-type", field_str("quorum"));
    if ((rc = declare_queue(h, h->main_queue, args, 1)) < 0 ||
        (rc = declare_queue(h, h->parked_queue, args, 1)) < 0)
        return rc;
    table_set(&args[1], "x-message-ttl", field_i64(h->retry_ttl_ms));
    table_set(&args[2], "x-dead-letter-exchange", field_str(""));
    table_set(&args[3], "x-dead-letter-routing-key", field_str(h->main_queue));
    table_set(&args[4], "x-dead-letter-strategy", field_str("at-least-once"));
    table_set(&args[5], "x-overflow", field_str("reject-publish"));
    return declare_queue(h, h->retry_queue, args, 6);
}

static int declare_all(fg_amqp *h)
{
    char what[FG_AMQP_NAME_MAX + SVC_QUEUE_MAX + 32];
    int rc;

    (void)amqp_exchange_declare(h->conn, CHANNEL, amqp_cstring_bytes(FG_AMQP_EXCHANGE),
                                amqp_cstring_bytes("topic"), 0, 1, 0, 0, amqp_empty_table);
    if ((rc = rpc_result(h, "exchange.declare " FG_AMQP_EXCHANGE)) < 0)
        return rc;
    if (h->service == NULL)
        return 0;
    if ((rc = declare_service_queues(h)) < 0)
        return rc;
    for (size_t i = 0; i < h->ncategories; i++) {
        snprintf(what, sizeof(what), "queue.bind %s to %s", h->main_queue, h->categories[i]);
        (void)amqp_queue_bind(h->conn, CHANNEL, amqp_cstring_bytes(h->main_queue),
                              amqp_cstring_bytes(FG_AMQP_EXCHANGE),
                              amqp_cstring_bytes(h->categories[i]), amqp_empty_table);
        if ((rc = rpc_result(h, what)) < 0)
            return rc;
    }
    return 0;
}

int fg_amqp_declare(fg_amqp *h)
{
    int rc;

    if ((rc = require_connected(h)) < 0 || (rc = declare_all(h)) < 0)
        return rc;
    h->want_declared = true;
    return 0;
}

static int start_consume(fg_amqp *h)
{
    int rc;

    (void)amqp_basic_qos(h->conn, CHANNEL, 0, (uint16_t)h->prefetch, 0);
    if ((rc = rpc_result(h, "basic.qos")) < 0)
        return rc;
    (void)amqp_basic_consume(h->conn, CHANNEL, amqp_cstring_bytes(h->main_queue), amqp_empty_bytes,
                             0, 0, 0, amqp_empty_table);
    if ((rc = rpc_result(h, "basic.consume")) < 0)
        return rc;
    h->consuming = true;
    return 0;
}

int fg_amqp_consume(fg_amqp *h)
{
    int rc;

    if (h->service == NULL)
        return fg_error_set(FG_EINVALID, "amqp: a publish-only handle cannot consume");
    if ((rc = require_connected(h)) < 0)
        return rc;
    if (!h->consuming && (rc = start_consume(h)) < 0)
        return rc;
    h->want_consuming = true;
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Connecting                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static int connect_once(fg_amqp *h)
{
    struct timeval tv = ms_to_tv(h->io_timeout_ms);
    amqp_socket_t *sock;
    int rc = FG_ERROR, st;

    if ((h->conn = amqp_new_connection()) == NULL)
        return fg_error_set(FG_ENOMEM, "amqp: out of memory");
    if ((sock = amqp_tcp_socket_new(h->conn)) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "amqp: out of memory");
        teardown(h, fg_error_last());
        return rc;
    }
    if ((st = amqp_socket_open_noblock(sock, h->url.host, h->url.port, &tv)) != AMQP_STATUS_OK)
        return lib_status(h, st, "connect");
    if ((st = amqp_set_handshake_timeout(h->conn, &tv)) != AMQP_STATUS_OK ||
        (st = amqp_set_rpc_timeout(h->conn, &tv)) != AMQP_STATUS_OK)
        return lib_status(h, st, "set timeouts");
    if ((rc = lib_reply(h,
                        amqp_login(h->conn, h->url.vhost, 0, FRAME_MAX, h->heartbeat_s,
                                   AMQP_SASL_METHOD_PLAIN, h->url.user, h->url.password),
                        "login", false)) < 0)
        return rc;
    (void)amqp_channel_open(h->conn, CHANNEL);
    if ((rc = rpc_result(h, "channel.open")) < 0)
        return rc;
    (void)amqp_confirm_select(h->conn, CHANNEL);
    if ((rc = rpc_result(h, "confirm.select")) < 0)
        return rc;
    h->next_seq = 1;
    h->generation++;
    set_state(h, FG_AMQP_CONNECTED, FG_LOG_INFO, "logged in");
    if (h->want_declared && (rc = declare_all(h)) < 0)
        return rc;
    if (h->want_consuming && (rc = start_consume(h)) < 0)
        return rc;
    return 0;
}

/* Equal jitter: half the delay fixed, half random, so a fleet restarting together spreads out
 * but each client still backs off. */
static long long backoff_ms(fg_amqp *h, long long delay)
{
    return delay / 2 + (long long)(next_random(h) % (uint64_t)(delay / 2 + 1));
}

int fg_amqp_connect(fg_amqp *h, int timeout_ms)
{
    long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    long long delay = BACKOFF_MIN_MS, left, wait_ms;
    char last[512];
    int rc, tries = 0;

    if (h->state == FG_AMQP_CONNECTED)
        return 0;
    for (;;) {
        tries++;
        if ((rc = connect_once(h)) == 0)
            return 0;
        /* Anything but an unreachable broker or a refused login (the stack may still be
         * creating the user) will not get better by waiting. */
        if (rc != FG_EUNAVAILABLE && rc != FG_EAUTH)
            return rc;
        left = deadline - now_ms();
        if (left <= 0)
            break;
        wait_ms = backoff_ms(h, delay);
        sleep_ms(wait_ms < left ? wait_ms : left);
        delay = delay * 2 < BACKOFF_MAX_MS ? delay * 2 : BACKOFF_MAX_MS;
    }
    snprintf(last, sizeof(last), "%s", fg_error_last());
    return fg_error_set(rc, "%s (gave up after %d tries in %d ms)", last, tries, timeout_ms);
}

/* ------------------------------------------------------------------------------------------ */
/* Reading frames                                                                             */
/* ------------------------------------------------------------------------------------------ */

static bool header_int(long long *out, const amqp_table_t *t, const char *key)
{
    for (int i = 0; t != NULL && i < t->num_entries; i++) {
        const amqp_field_value_t *v = &t->entries[i].value;

        if (!bytes_equal(t->entries[i].key, key))
            continue;
        switch (v->kind) {
        case AMQP_FIELD_KIND_I8:
            *out = v->value.i8;
            return true;
        case AMQP_FIELD_KIND_U8:
            *out = v->value.u8;
            return true;
        case AMQP_FIELD_KIND_I16:
            *out = v->value.i16;
            return true;
        case AMQP_FIELD_KIND_U16:
            *out = v->value.u16;
            return true;
        case AMQP_FIELD_KIND_I32:
            *out = v->value.i32;
            return true;
        case AMQP_FIELD_KIND_U32:
            *out = v->value.u32;
            return true;
        case AMQP_FIELD_KIND_I64:
            *out = v->value.i64;
            return true;
        case AMQP_FIELD_KIND_U64:
            *out = v->value.u64 > LLONG_MAX ? LLONG_MAX : (long long)v->value.u64;
            return true;
        default:
            return false;
        }
    }
    return false;
}

static unsigned clamp_count(long long n)
{
    return n < 0 ? 0 : n > (long long)ATTEMPTS_CAP ? ATTEMPTS_CAP : (unsigned)n;
}

/* Our own header counts the retries; x-delivery-count (quorum queues) counts redeliveries of this
 * copy after a consumer died or the connection dropped, which never reached fg_amqp_retry. */
static unsigned attempts_of(const amqp_table_t *headers, bool redelivered)
{
    long long own = 0, redeliveries = 0;

    (void)header_int(&own, headers, FG_AMQP_HEADER_ATTEMPTS);
    if (!header_int(&redeliveries, headers, "x-delivery-count"))
        redeliveries = redelivered ? 1 : 0;
    return clamp_count((long long)clamp_count(own) + clamp_count(redeliveries) + 1);
}

/* Reads the header and body frames that follow a basic.deliver or basic.return; on success
 * *out_props points into the connection's frame pool (valid until the next read) and the
 * caller owns *out_body. The broker sends a message's content frames back to back, so waiting
 * io_timeout_ms only trips on a dead peer; after any failure the stream is out of step and the
 * connection is dropped. */
static int read_content(fg_amqp *h, const amqp_basic_properties_t **out_props,
                        unsigned char **out_body, size_t *out_len)
{
    struct timeval tv = ms_to_tv(h->io_timeout_ms);
    amqp_frame_t f;
    unsigned char *body = NULL;
    size_t size, got = 0;
    int st;

    if ((st = amqp_simple_wait_frame_noblock(h->conn, &f, &tv)) != AMQP_STATUS_OK)
        return lib_status(h, st, "reading a content header");
    if (f.frame_type == AMQP_FRAME_METHOD)
        return lib_reply(h, (amqp_rpc_reply_t){AMQP_RESPONSE_SERVER_EXCEPTION, f.payload.method, 0},
                         "reading a content header", true);
    if (f.frame_type != AMQP_FRAME_HEADER || f.payload.properties.body_size > FG_AMQP_BODY_MAX)
        return lib_status(h, AMQP_STATUS_BAD_AMQP_DATA, "content header missing or body too big");
    size = (size_t)f.payload.properties.body_size;
    *out_props = f.payload.properties.decoded;
    if ((body = malloc(size + 1)) == NULL) {
        teardown(h, "out of memory");
        return fg_error_set(FG_ENOMEM, "amqp: out of memory for a %zu-byte body", size);
    }
    while (got < size) {
        if ((st = amqp_simple_wait_frame_noblock(h->conn, &f, &tv)) != AMQP_STATUS_OK ||
            f.frame_type != AMQP_FRAME_BODY || f.payload.body_fragment.len > size - got) {
            free(body);
            return lib_status(h, st != AMQP_STATUS_OK ? st : AMQP_STATUS_BAD_AMQP_DATA,
                              "reading a content body");
        }
        memcpy(body + got, f.payload.body_fragment.bytes, f.payload.body_fragment.len);
        got += f.payload.body_fragment.len;
    }
    body[size] = '\0';
    *out_body = body;
    *out_len = size;
    return 0;
}

static int delivery_new(fg_amqp_delivery **out, const amqp_basic_properties_t *p,
                        amqp_bytes_t routing_key, bool redelivered)
{
    fg_amqp_delivery *d = calloc(1, sizeof(*d));
    amqp_flags_t fl = p->_flags;

    if (d == NULL)
        return fg_error_set(FG_ENOMEM, "amqp: out of memory");
    init_amqp_pool(&d->pool, 1024);
    d->id = dup_bytes((fl & AMQP_BASIC_MESSAGE_ID_FLAG) ? p->message_id : amqp_empty_bytes);
    d->category = dup_bytes((fl & AMQP_BASIC_TYPE_FLAG) ? p->type : routing_key);
    if (fl & AMQP_BASIC_CONTENT_TYPE_FLAG)
        d->content_type = dup_bytes(p->content_type);
    d->has_timestamp = (fl & AMQP_BASIC_TIMESTAMP_FLAG) != 0;
    d->timestamp = p->timestamp;
    d->headers = amqp_empty_table;
    if (d->id == NULL || d->category == NULL ||
        ((fl & AMQP_BASIC_CONTENT_TYPE_FLAG) && d->content_type == NULL) ||
        ((fl & AMQP_BASIC_HEADERS_FLAG) &&
         amqp_table_clone(&p->headers, &d->headers, &d->pool) != AMQP_STATUS_OK)) {
        fg_amqp_delivery_free(d);
        return fg_error_set(FG_ENOMEM, "amqp: out of memory");
    }
    d->attempts = attempts_of(&d->headers, redelivered);
    *out = d;
    return 0;
}

static int on_deliver(fg_amqp *h, const amqp_basic_deliver_t *m)
{
    uint64_t tag = m->delivery_tag;
    bool redelivered = m->redelivered != 0;
    amqp_bytes_t routing_key = m->routing_key; /* in the frame pool, like the properties */
    const amqp_basic_properties_t *props = NULL;
    fg_amqp_delivery *d = NULL;
    unsigned char *body = NULL;
    size_t len = 0;
    int rc;

    if ((rc = read_content(h, &props, &body, &len)) < 0)
        return rc;
    rc = delivery_new(&d, props, routing_key, redelivered);
    if (rc < 0 || d == NULL) { /* d == NULL never happens; gcc -O2 cannot see that */
        free(body);
        if (rc == 0)
            rc = fg_error_set(FG_ERROR, "amqp %s: delivery lost", h->where);
        teardown(h, fg_error_last());
        return rc;
    }
    d->tag = tag;
    d->generation = h->generation;
    d->body = body;
    d->body_len = len;
    if (h->ring_len == h->ring_cap) {
        /* The broker never has more than prefetch unacked deliveries out, so this is a protocol
         * breach; dropping the connection hands every one of them back. */
        fg_amqp_delivery_free(d);
        rc = fg_error_set(FG_EUNAVAILABLE, "amqp %s: more than %d deliveries in flight", h->where,
                          h->prefetch);
        teardown(h, fg_error_last());
        return rc;
    }
    h->ring[(h->ring_head + h->ring_len) % h->ring_cap] = d;
    h->ring_len++;
    return 0;
}

static void confirm_mark(fg_amqp *h, uint64_t tag, bool multiple, unsigned char bit)
{
    confirm_batch *b = &h->batch;
    size_t hi, lo;

    /* Confirms for an earlier batch that timed out carry older tags: nobody waits for them. */
    if (b->msgs == NULL || tag < b->first_seq || tag - b->first_seq >= b->published)
        return;
    hi = (size_t)(tag - b->first_seq);
    lo = multiple ? b->low : hi;
    for (size_t i = lo; i <= hi; i++) {
        if (!(b->status[i] & (CONFIRM_ACKED | CONFIRM_NACKED))) {
            b->status[i] |= bit;
            b->resolved++;
        }
    }
    while (b->low < b->published && (b->status[b->low] & (CONFIRM_ACKED | CONFIRM_NACKED)))
        b->low++;
}

/* A basic.return carries no delivery tag; it comes before the ack of the same message, so the
 * message id finds it among the unresolved ones. */
static int on_return(fg_amqp *h, const amqp_basic_return_t *m)
{
    const amqp_basic_properties_t *props = NULL;
    confirm_batch *b = &h->batch;
    unsigned char *body = NULL;
    size_t len = 0;
    unsigned code = m->reply_code;
    amqp_bytes_t text = m->reply_text;
    int rc;

    if ((rc = read_content(h, &props, &body, &len)) < 0)
        return rc;
    free(body);
    for (size_t i = b->low; b->msgs != NULL && i < b->published; i++) {
        if ((props->_flags & AMQP_BASIC_MESSAGE_ID_FLAG) &&
            bytes_equal(props->message_id, b->msgs[i].id) &&
            !(b->status[i] & (CONFIRM_RETURNED | CONFIRM_ACKED | CONFIRM_NACKED))) {
            b->status[i] |= CONFIRM_RETURNED;
            if (b->return_text[0] == '\0')
                snprintf(b->return_text, sizeof(b->return_text), "%u %.*s", code,
                         (int)(text.len > 100 ? 100 : text.len), (const char *)text.bytes);
            break;
        }
    }
    return 0;
}

static int handle_method(fg_amqp *h, const amqp_method_t *m)
{
    switch (m->id) {
    case AMQP_BASIC_DELIVER_METHOD:
        return on_deliver(h, m->decoded);
    case AMQP_BASIC_ACK_METHOD: {
        const amqp_basic_ack_t *a = m->decoded;

        confirm_mark(h, a->delivery_tag, a->multiple != 0, CONFIRM_ACKED);
        return 0;
    }
    case AMQP_BASIC_NACK_METHOD: {
        const amqp_basic_nack_t *n = m->decoded;

        confirm_mark(h, n->delivery_tag, n->multiple != 0, CONFIRM_NACKED);
        return 0;
    }
    case AMQP_BASIC_RETURN_METHOD:
        return on_return(h, m->decoded);
    case AMQP_CHANNEL_CLOSE_METHOD:
    case AMQP_CONNECTION_CLOSE_METHOD:
        return lib_reply(h, (amqp_rpc_reply_t){AMQP_RESPONSE_SERVER_EXCEPTION, *m, 0}, "reading",
                         true);
    case AMQP_BASIC_CANCEL_METHOD:
        teardown(h, "consumer cancelled by the broker");
        return fg_error_set(FG_EUNAVAILABLE, "amqp %s: the broker cancelled the consumer of %s",
                            h->where, h->main_queue);
    case AMQP_CONNECTION_BLOCKED_METHOD:
        fg_log_warn("amqp %s: broker blocked publishing (resource alarm)", h->where);
        return 0;
    default:
        return 0;
    }
}

/* Reads and handles one frame, waiting up to timeout_ms (0: only what has already arrived).
 * Returns 0 when a frame was handled, FG_ETIMEOUT, or an error after dropping the connection. */
static int pump(fg_amqp *h, int timeout_ms)
{
    struct timeval tv = ms_to_tv(timeout_ms);
    amqp_frame_t f;
    int rc, st;

    if ((rc = require_connected(h)) < 0)
        return rc;
    /* Frees the previous frames' memory; it keeps anything still queued by an RPC. */
    amqp_maybe_release_buffers(h->conn);
    st = amqp_simple_wait_frame_noblock(h->conn, &f, &tv);
    if (st == AMQP_STATUS_TIMEOUT)
        return FG_ETIMEOUT;
    if (st != AMQP_STATUS_OK)
        return lib_status(h, st, "reading from the broker");
    if (f.frame_type != AMQP_FRAME_METHOD)
        return lib_status(h, AMQP_STATUS_BAD_AMQP_DATA, "content frame outside a message");
    return handle_method(h, &f.payload.method);
}

/* ------------------------------------------------------------------------------------------ */
/* Publishing with confirms                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void standard_props(amqp_basic_properties_t *p, const fg_amqp_message *m)
{
    memset(p, 0, sizeof(*p));
    p->_flags = AMQP_BASIC_CONTENT_TYPE_FLAG | AMQP_BASIC_DELIVERY_MODE_FLAG |
                AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG | AMQP_BASIC_TIMESTAMP_FLAG;
    p->content_type = amqp_cstring_bytes("application/json");
    p->delivery_mode = AMQP_DELIVERY_PERSISTENT;
    p->message_id = amqp_cstring_bytes(m->id);
    p->type = amqp_cstring_bytes(m->category);
    p->timestamp = (uint64_t)time(NULL);
}

static int publish_one(fg_amqp *h, const fg_amqp_message *m, const reroute *via)
{
    amqp_basic_properties_t props;
    int st;

    if (via == NULL)
        standard_props(&props, m);
    /* mandatory: an unroutable message comes back as basic.return instead of vanishing. */
    st = amqp_basic_publish(h->conn, CHANNEL, amqp_cstring_bytes(via ? "" : FG_AMQP_EXCHANGE),
                            amqp_cstring_bytes(via ? via->queue : m->category), 1, 0,
                            via ? via->props : &props, const_bytes(m->body, m->body_len));
    if (st != AMQP_STATUS_OK)
        return lib_status(h, st, "basic.publish");
    h->next_seq++;
    h->batch.published++;
    return 0;
}

/* Handles whatever already arrived, without waiting: confirms and deliveries keep flowing while
 * a long batch is written, so neither side's buffers fill up. */
static int drain(fg_amqp *h)
{
    int rc;

    while ((rc = pump(h, 0)) == 0)
        ;
    return rc == FG_ETIMEOUT ? 0 : rc;
}

static size_t confirmed_prefix(const confirm_batch *b)
{
    size_t i = 0;

    while (i < b->published && b->status[i] == CONFIRM_ACKED)
        i++;
    return i;
}

static int batch_verdict(fg_amqp *h, size_t n)
{
    const confirm_batch *b = &h->batch;

    for (size_t i = 0; i < n; i++) {
        if (b->status[i] & CONFIRM_RETURNED)
            return fg_error_set(FG_ENOTFOUND,
                                "amqp %s: message %s (#%zu, category %s) is unroutable: no queue "
                                "is bound to it (%s)",
                                h->where, b->msgs[i].id, i, b->msgs[i].category, b->return_text);
        if (b->status[i] & CONFIRM_NACKED)
            return fg_error_set(FG_EUNAVAILABLE, "amqp %s: the broker nacked message %s (#%zu)",
                                h->where, b->msgs[i].id, i);
    }
    return 0;
}

static int wait_confirms(fg_amqp *h, size_t n, long long deadline, int timeout_ms)
{
    long long left;
    int rc;

    while (h->batch.resolved < n) {
        if ((left = deadline - now_ms()) <= 0)
            return fg_error_set(FG_ETIMEOUT, "amqp %s: %zu of %zu messages confirmed in %d ms",
                                h->where, confirmed_prefix(&h->batch), n, timeout_ms);
        rc = pump(h, left > INT_MAX ? INT_MAX : (int)left);
        if (rc < 0 && rc != FG_ETIMEOUT)
            return rc;
    }
    return batch_verdict(h, n);
}

/* Publishes msgs[0..n) (through `via` when republishing) and waits for every confirm. */
static int publish_confirmed(size_t *out, fg_amqp *h, const fg_amqp_message *msgs, size_t n,
                             const reroute *via, int timeout_ms)
{
    long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    char cause[320];
    int rc = FG_ERROR;

    *out = 0;
    if ((rc = require_connected(h)) < 0)
        return rc;
    memset(&h->batch, 0, sizeof(h->batch));
    if ((h->batch.status = calloc(n, 1)) == NULL)
        return fg_error_set(FG_ENOMEM, "amqp: out of memory");
    h->batch.msgs = msgs;
    h->batch.first_seq = h->next_seq;
    for (size_t i = 0; i < n; i++) {
        if ((rc = publish_one(h, &msgs[i], via)) < 0)
            goto done;
        if ((i + 1) % DRAIN_EVERY == 0 && (rc = drain(h)) < 0)
            goto done;
    }
    if ((rc = wait_confirms(h, n, deadline, timeout_ms)) < 0)
        goto done;
    rc = 0;
done:
    *out = confirmed_prefix(&h->batch);
    if (rc < 0 && h->state != FG_AMQP_CONNECTED) {
        snprintf(cause, sizeof(cause), "%s", fg_error_last());
        rc = fg_error_set(FG_EUNAVAILABLE, "connection lost with %zu of %zu messages confirmed: %s",
                          *out, n, cause);
    }
    free(h->batch.status);
    memset(&h->batch, 0, sizeof(h->batch));
    return rc;
}

int fg_amqp_publish_batch(size_t *out, fg_amqp *h, const fg_amqp_message *msgs, size_t n,
                          int timeout_ms)
{
    *out = 0;
    if (n > FG_AMQP_BATCH_MAX)
        return fg_error_set(FG_ETOOBIG, "amqp: a batch of %zu messages exceeds %d", n,
                            FG_AMQP_BATCH_MAX);
    for (size_t i = 0; i < n; i++) {
        if (!message_id_ok(msgs[i].id))
            return fg_error_set(FG_EINVALID, "amqp: message #%zu has no id or a bad one", i);
        if (!name_ok(msgs[i].category))
            return fg_error_set(FG_EINVALID, "amqp: message %s has a bad category", msgs[i].id);
        if (msgs[i].body_len > FG_AMQP_BODY_MAX || (msgs[i].body == NULL && msgs[i].body_len > 0))
            return fg_error_set(FG_ETOOBIG, "amqp: message %s: body of %zu bytes (limit %u)",
                                msgs[i].id, msgs[i].body_len, FG_AMQP_BODY_MAX);
    }
    if (n == 0)
        return 0;
    return publish_confirmed(out, h, msgs, n, NULL, timeout_ms);
}

/* ------------------------------------------------------------------------------------------ */
/* Consuming: next, ack, retry, park                                                          */
/* ------------------------------------------------------------------------------------------ */

/* Headers a republished copy must not carry over: the broker's, and the ones we rewrite. */
static bool replaced_header(amqp_bytes_t key)
{
    return bytes_equal(key, "x-delivery-count") || bytes_prefix(key, "x-death") ||
           bytes_prefix(key, "x-first-death-") || bytes_prefix(key, "x-last-death-") ||
           bytes_equal(key, FG_AMQP_HEADER_ATTEMPTS);
}

/* Cuts s to at most FG_AMQP_REASON_MAX bytes without splitting a UTF-8 sequence. */
static amqp_bytes_t reason_bytes(const char *s)
{
    size_t n = s ? strnlen(s, FG_AMQP_REASON_MAX + 1) : 0;

    if (n > FG_AMQP_REASON_MAX) {
        n = FG_AMQP_REASON_MAX;
        while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
            n--;
    }
    return const_bytes(s ? s : "", n);
}

/* The copy keeps the publisher's properties and headers, drops the broker's bookkeeping
 * (x-delivery-count, x-death...) and records attempts so far plus the reason under reason_key. */
static int republish(fg_amqp *h, fg_amqp_delivery *d, const char *queue, unsigned attempts,
                     const char *reason_key, const char *reason)
{
    amqp_table_entry_t *entries = NULL;
    amqp_basic_properties_t props;
    fg_amqp_message msg = {d->id, d->category, d->body, d->body_len};
    reroute via = {queue, &props};
    size_t confirmed = 0;
    int n = 0, rc = FG_ERROR;

    if ((entries = calloc((size_t)d->headers.num_entries + 2, sizeof(*entries))) == NULL)
        return fg_error_set(FG_ENOMEM, "amqp: out of memory");
    for (int i = 0; i < d->headers.num_entries; i++) {
        const amqp_table_entry_t *e = &d->headers.entries[i];

        if (!replaced_header(e->key) && !bytes_equal(e->key, reason_key))
            entries[n++] = *e;
    }
    table_set(&entries[n++], FG_AMQP_HEADER_ATTEMPTS, field_i64(attempts));
    entries[n].key = amqp_cstring_bytes(reason_key);
    entries[n].value.kind = AMQP_FIELD_KIND_UTF8;
    entries[n++].value.value.bytes = reason_bytes(reason);
    memset(&props, 0, sizeof(props));
    props._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_TYPE_FLAG |
                   AMQP_BASIC_DELIVERY_MODE_FLAG | AMQP_BASIC_HEADERS_FLAG;
    props.message_id = amqp_cstring_bytes(d->id);
    props.type = amqp_cstring_bytes(d->category);
    props.delivery_mode = AMQP_DELIVERY_PERSISTENT;
    props.headers.num_entries = n;
    props.headers.entries = entries;
    if (d->content_type != NULL) {
        props._flags |= AMQP_BASIC_CONTENT_TYPE_FLAG;
        props.content_type = amqp_cstring_bytes(d->content_type);
    }
    if (d->has_timestamp) {
        props._flags |= AMQP_BASIC_TIMESTAMP_FLAG;
        props.timestamp = d->timestamp;
    }
    rc = publish_confirmed(&confirmed, h, &msg, 1, &via, h->io_timeout_ms);
    free(entries);
    return rc;
}

static int check_settle(fg_amqp *h, const fg_amqp_delivery *d)
{
    if (d == NULL || d->settled)
        return fg_error_set(FG_EINVALID, "amqp: delivery %s was already settled",
                            d ? d->id : "(null)");
    if (h->state != FG_AMQP_CONNECTED || d->generation != h->generation)
        return fg_error_set(FG_EUNAVAILABLE,
                            "amqp %s: delivery %s came on an earlier connection; the broker "
                            "redelivers it",
                            h->where, d->id);
    return 0;
}

static int ack(fg_amqp *h, fg_amqp_delivery *d)
{
    int st = amqp_basic_ack(h->conn, CHANNEL, d->tag, 0);

    d->settled = true;
    return st == AMQP_STATUS_OK ? 0 : lib_status(h, st, "basic.ack");
}

/* The copy could not be confirmed, so the original must stay: requeue it (a redelivery, counted
 * in x-delivery-count). After a lost connection the broker requeues it by itself. */
static int requeue_after(fg_amqp *h, fg_amqp_delivery *d, int rc)
{
    d->settled = true;
    if (h->state == FG_AMQP_CONNECTED &&
        amqp_basic_nack(h->conn, CHANNEL, d->tag, 0, 1) != AMQP_STATUS_OK)
        teardown(h, "basic.nack failed");
    return rc;
}

/* Park without the checks: fg_amqp_park, a retry that ran out of attempts, a crash loop. */
static int park(fg_amqp *h, fg_amqp_delivery *d, const char *reason)
{
    int rc;

    if ((rc = republish(h, d, h->parked_queue, d->attempts, FG_AMQP_HEADER_PARK_REASON, reason)) <
        0)
        return requeue_after(h, d, rc);
    fg_log_emit(FG_LOG_WARN,
                FG_LOG_FIELDS(FG_LOG_STR("message", d->id), FG_LOG_STR("category", d->category),
                              FG_LOG_INT("attempts", d->attempts)),
                "amqp: parked in %s: %.200s", h->parked_queue, reason ? reason : "");
    return ack(h, d);
}

int fg_amqp_ack(fg_amqp *h, fg_amqp_delivery *d)
{
    int rc;

    if ((rc = check_settle(h, d)) < 0)
        return rc;
    return ack(h, d);
}

int fg_amqp_park(fg_amqp *h, fg_amqp_delivery *d, const char *reason)
{
    int rc;

    if (h->service == NULL)
        return fg_error_set(FG_EINVALID, "amqp: a publish-only handle has no parked queue");
    if ((rc = check_settle(h, d)) < 0)
        return rc;
    return park(h, d, reason);
}

int fg_amqp_retry(fg_amqp *h, fg_amqp_delivery *d, const char *reason)
{
    char why[FG_AMQP_REASON_MAX];
    int rc;

    if (h->service == NULL)
        return fg_error_set(FG_EINVALID, "amqp: a publish-only handle has no retry queue");
    if ((rc = check_settle(h, d)) < 0)
        return rc;
    if (d->attempts >= (unsigned)h->max_attempts) {
        snprintf(why, sizeof(why), "gave up after %u attempts: %s", d->attempts,
                 reason ? reason : "");
        return park(h, d, why);
    }
    if ((rc = republish(h, d, h->retry_queue, d->attempts, FG_AMQP_HEADER_LAST_ERROR, reason)) < 0)
        return requeue_after(h, d, rc);
    return ack(h, d);
}

static fg_amqp_delivery *ring_pop(fg_amqp *h)
{
    fg_amqp_delivery *d;

    if (h->ring_len == 0)
        return NULL;
    d = h->ring[h->ring_head];
    h->ring_head = (h->ring_head + 1) % h->ring_cap;
    h->ring_len--;
    return d;
}

/* A message past max_attempts that never reached fg_amqp_retry kept killing its consumer (or
 * the connection): handing it out again would crash again. */
static int park_crash_loop(fg_amqp *h, fg_amqp_delivery *d)
{
    char why[128];
    int rc;

    snprintf(why, sizeof(why), "delivered %u times without ack or retry (consumer died on it?)",
             d->attempts);
    rc = park(h, d, why);
    fg_amqp_delivery_free(d);
    return rc;
}

int fg_amqp_next(fg_amqp_delivery **out, fg_amqp *h, int timeout_ms)
{
    long long deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0), left;
    fg_amqp_delivery *d;
    int rc;

    *out = NULL;
    if (!h->want_consuming)
        return fg_error_set(FG_EINVALID, "amqp: fg_amqp_next before fg_amqp_consume");
    for (;;) {
        if ((d = ring_pop(h)) != NULL && d->attempts <= (unsigned)h->max_attempts) {
            *out = d;
            return 0;
        }
        if (d != NULL) {
            if ((rc = park_crash_loop(h, d)) < 0)
                return rc;
            continue;
        }
        left = deadline - now_ms();
        rc = pump(h, left <= 0 ? 0 : left > INT_MAX ? INT_MAX : (int)left);
        if (rc == FG_ETIMEOUT && h->ring_len == 0 && now_ms() >= deadline)
            return fg_error_set(FG_ETIMEOUT, "amqp %s: no delivery within %d ms", h->where,
                                timeout_ms);
        if (rc < 0 && rc != FG_ETIMEOUT)
            return rc;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Deliveries                                                                                 */
/* ------------------------------------------------------------------------------------------ */

void fg_amqp_delivery_free(fg_amqp_delivery *d)
{
    if (d == NULL)
        return;
    free(d->id);
    free(d->category);
    free(d->content_type);
    free(d->body);
    empty_amqp_pool(&d->pool);
    free(d);
}

const char *fg_amqp_delivery_id(const fg_amqp_delivery *d)
{
    return d->id;
}

const char *fg_amqp_delivery_category(const fg_amqp_delivery *d)
{
    return d->category;
}

const void *fg_amqp_delivery_body(const fg_amqp_delivery *d)
{
    return d->body;
}

size_t fg_amqp_delivery_body_len(const fg_amqp_delivery *d)
{
    return d->body_len;
}

unsigned fg_amqp_delivery_attempts(const fg_amqp_delivery *d)
{
    return d->attempts;
}
