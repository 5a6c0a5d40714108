/*
 * The message bus: one RabbitMQ connection with one channel, publisher confirms, manual-ack
 * consumption, retry through a TTL queue and parking (docs/internals/amqp.md).
 *
 * It does not decode messages (proto/ does) and does not decide what a failure means (the caller
 * chooses ack, retry or park). A handle owns its connection and copies its options; a delivery is
 * owned by the caller until fg_amqp_delivery_free and may outlive the handle. A handle is NOT
 * thread-safe: each service does all its bus work on one thread.
 */
#ifndef FG_AMQP_H
#define FG_AMQP_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/error.h"

/* The one topic exchange; the routing key is the message category. */
#define FG_AMQP_EXCHANGE "fg.events"

/* Limits on what callers and the broker can make this module hold. */
#define FG_AMQP_URL_MAX        2048        /* bytes of an amqp:// URL */
#define FG_AMQP_NAME_MAX       200         /* service, category, message id (AMQP shortstr) */
#define FG_AMQP_CATEGORIES_MAX 64          /* categories one service consumes */
#define FG_AMQP_BATCH_MAX      10000       /* messages in one fg_amqp_publish_batch */
#define FG_AMQP_BODY_MAX       (64u << 20) /* bytes of one message body, both ways */
#define FG_AMQP_PREFETCH_MAX   10000       /* prefetch; it also bounds the delivery queue */
#define FG_AMQP_REASON_MAX     512         /* bytes of a retry/park reason kept in a header */

/* Option defaults (fg_amqp_options_init). */
#define FG_AMQP_MAX_ATTEMPTS_DEFAULT  5
#define FG_AMQP_RETRY_TTL_DEFAULT_MS  10000
#define FG_AMQP_PREFETCH_DEFAULT      100
#define FG_AMQP_HEARTBEAT_DEFAULT_S   30
#define FG_AMQP_IO_TIMEOUT_DEFAULT_MS 10000

/* Headers this module writes (readable by anyone inspecting the queues). */
#define FG_AMQP_HEADER_ATTEMPTS    "x-fg-attempts"    /* failed attempts so far (int64) */
#define FG_AMQP_HEADER_LAST_ERROR  "x-fg-last-error"  /* reason given to the last retry */
#define FG_AMQP_HEADER_PARK_REASON "x-fg-park-reason" /* why the message was parked */

typedef struct fg_amqp fg_amqp;
typedef struct fg_amqp_delivery fg_amqp_delivery;

/* A parsed amqp:// URL. Every string is owned (fg_amqp_url_dispose frees them). */
typedef struct {
    char *host;
    int port;       /* 5672 when absent */
    char *user;     /* "guest" when absent */
    char *password; /* "guest" when absent; never put it in a message */
    char *vhost;    /* percent-decoded ("%2f" -> "/"); "/" when the URL has no path */
} fg_amqp_url;

typedef struct {
    const char *url;               /* amqp://user:pass@host:port/vhost (required) */
    const char *service;           /* queues fg.<service>[.retry|.parked]; NULL = publish only */
    const char *const *categories; /* routing keys bound to fg.<service> */
    size_t ncategories;
    int retry_ttl_ms;  /* how long a retried message waits before coming back */
    int max_attempts;  /* attempts before a message is parked */
    int prefetch;      /* unacked deliveries the broker may send at once */
    int heartbeat_s;   /* 0 disables; serviced only while inside a call */
    int io_timeout_ms; /* TCP connect, login and each broker RPC */
} fg_amqp_options;

/* One message to publish; nothing is copied beyond the call. */
typedef struct {
    const char *id;       /* message_id; consumers dedupe on it */
    const char *category; /* routing key and `type` property */
    const void *body;     /* JSON */
    size_t body_len;
} fg_amqp_message;

/* Fills o with the defaults above (url and service NULL, no categories). */
void fg_amqp_options_init(fg_amqp_options *o);

/* Parses an amqp:// URL into out (which the caller disposes). FG_EINVALID on a malformed URL,
 * amqps:// or a query string; FG_ETOOBIG past FG_AMQP_URL_MAX; FG_ENOMEM. The error message
 * never contains the password. */
int fg_amqp_url_parse(fg_amqp_url *out, const char *url) FG_MUST_CHECK;
void fg_amqp_url_dispose(fg_amqp_url *u);

/* Creates a disconnected handle; opts (and every string in it) is copied. FG_EINVALID for a bad
 * URL, service or category name or an option out of range; FG_ENOMEM. */
int fg_amqp_new(fg_amqp **out, const fg_amqp_options *opts) FG_MUST_CHECK;

/* Closes the connection (unacked deliveries go back to their queue) and frees h. NULL is fine. */
void fg_amqp_free(fg_amqp *h);

/* Connects, or reconnects after a loss: retries with exponential backoff and jitter for up to
 * timeout_ms (at least one try). When fg_amqp_declare / fg_amqp_consume succeeded earlier on this
 * handle they are redone, so one call resumes a consumer after a broker restart. Deliveries from
 * the previous connection become stale (the broker redelivers them). Returns 0;
 * FG_EUNAVAILABLE or FG_EAUTH (the last failure) when the time is up; FG_ECONFLICT when the
 * broker refuses the topology (never retried); FG_ENOMEM. */
int fg_amqp_connect(fg_amqp *h, int timeout_ms) FG_MUST_CHECK;

/* Whether the handle believes its connection is up (for /ready). A loss is only noticed inside a
 * call, so keep calling fg_amqp_next. */
bool fg_amqp_is_connected(const fg_amqp *h);

/* Declares the durable topic exchange fg.events and, for a consuming service, the quorum queues
 * fg.<service> (bound to each category), fg.<service>.retry (TTL, dead-letters back) and
 * fg.<service>.parked. Idempotent. FG_EUNAVAILABLE when not connected or the connection drops;
 * FG_ECONFLICT when an existing queue has other arguments (e.g. a changed retry TTL); FG_EAUTH.
 * Any refusal closes the connection. */
int fg_amqp_declare(fg_amqp *h) FG_MUST_CHECK;

/* Publishes msgs[0..n) to fg.events, mandatory and persistent, then waits up to timeout_ms for
 * every publisher confirm. *out is set to the number of leading messages confirmed and routed:
 * after a failure, republish msgs[*out..n) (duplicates are harmless, consumers dedupe by id).
 * Returns 0 when all n are confirmed; FG_ENOTFOUND when one was unroutable (basic.return, the
 * error names it); FG_EUNAVAILABLE when one was nacked (the error names it) or the connection
 * was lost (reconnect first); FG_ETIMEOUT; FG_EINVALID / FG_ETOOBIG for a bad message or batch,
 * before anything is sent. Deliveries arriving meanwhile are kept for fg_amqp_next. */
int fg_amqp_publish_batch(size_t *out, fg_amqp *h, const fg_amqp_message *msgs, size_t n,
                          int timeout_ms) FG_MUST_CHECK;

/* Starts consuming fg.<service> with manual ack and the prefetch of the options. FG_EINVALID for
 * a publish-only handle; FG_EUNAVAILABLE; FG_ENOTFOUND when the queue is not declared. */
int fg_amqp_consume(fg_amqp *h) FG_MUST_CHECK;

/* Hands out the next delivery (the caller frees it), waiting up to timeout_ms. A delivery seen
 * more than max_attempts times without an ack or retry (its consumer kept dying) is parked here
 * and skipped. FG_ETIMEOUT when none came; FG_EUNAVAILABLE when the connection is down (call
 * fg_amqp_connect); FG_EINVALID before fg_amqp_consume. */
int fg_amqp_next(fg_amqp_delivery **out, fg_amqp *h, int timeout_ms) FG_MUST_CHECK;

/* Deliveries received but not yet handed out by fg_amqp_next. */
size_t fg_amqp_buffered(const fg_amqp *h);

/* Acknowledges d: the broker forgets the message. Call it only after the effect is committed.
 * FG_EINVALID when d was already settled; FG_EUNAVAILABLE when d came from an earlier
 * connection (the broker redelivers it) or the connection drops. */
int fg_amqp_ack(fg_amqp *h, fg_amqp_delivery *d) FG_MUST_CHECK;

/* Sends d back later: republishes it (confirmed) to fg.<service>.retry with its attempt count
 * and reason, then acks the original. Parks it instead once it has had max_attempts attempts.
 * When the copy is not confirmed the original is requeued, never acked, so nothing is lost; d
 * is settled either way. Returns as fg_amqp_ack, plus FG_ETIMEOUT (confirm late), FG_ENOTFOUND
 * (retry queue missing) or FG_EUNAVAILABLE (copy nacked); FG_EINVALID on a publish-only handle.
 */
int fg_amqp_retry(fg_amqp *h, fg_amqp_delivery *d, const char *reason) FG_MUST_CHECK;

/* Moves d to fg.<service>.parked with the reason in a header (confirmed), then acks it. For a
 * message that fails its schema, or gave up. Returns as fg_amqp_retry. */
int fg_amqp_park(fg_amqp *h, fg_amqp_delivery *d, const char *reason) FG_MUST_CHECK;

void fg_amqp_delivery_free(fg_amqp_delivery *d);

/* Accessors; what they return lives as long as d. id is "" when the publisher set none;
 * category is the `type` property (or the routing key when absent); the body is followed by a
 * NUL that body_len does not count. */
const char *fg_amqp_delivery_id(const fg_amqp_delivery *d);
const char *fg_amqp_delivery_category(const fg_amqp_delivery *d);
const void *fg_amqp_delivery_body(const fg_amqp_delivery *d);
size_t fg_amqp_delivery_body_len(const fg_amqp_delivery *d);

/* This delivery's attempt number, from 1: retries recorded in x-fg-attempts plus broker
 * redeliveries counted in x-delivery-count, plus this one. */
unsigned fg_amqp_delivery_attempts(const fg_amqp_delivery *d);

#endif
