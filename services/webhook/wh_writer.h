/*
 * Group commit of accepted deliveries. Intake (main thread) submits verified deliveries; writer
 * threads, each with its own database connection, archive everything that arrived since their
 * last commit in ONE statement (archive rows, dedupe, outbox rows: one transaction, one fsync),
 * then hand the batch back to the event loop, where each delivery is answered (202 archived,
 * 200 already seen, 503 archive unavailable). No HTTP happens on a writer thread and no
 * database work on the loop. docs/internals/webhook.md has the design and the measurements.
 */
#ifndef WH_WRITER_H
#define WH_WRITER_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/error.h"
#include "fg/http_server.h"
#include "fg/metrics.h"
#include "fg/proto.h"
#include "wh_json.h"

struct event_base;
typedef struct fg_service fg_service;

#define WH_EVENT_MAX          64   /* bytes of an X-GitHub-Event / X-Gitlab-Event value */
#define WH_WRITER_BATCH_MAX   5000 /* the most deliveries one statement may carry */
#define WH_WRITER_THREADS_MAX 16   /* writer threads (database connections) */

typedef enum { WH_ROUTE_COMMIT_SYNC, WH_ROUTE_FORGE_EVENT, WH_ROUTE_IGNORED } wh_route;

/* "commit_sync", "forge_event", "ignored" (the archive's spelling). */
const char *wh_route_name(wh_route route);

/* One delivery on its way to the archive. Filled by intake on the main thread; owned by the
 * writer from wh_writer_submit until the answer callback, which frees it (wh_delivery_free). */
typedef struct wh_delivery {
    struct wh_delivery *next;
    fg_http_request *req; /* main thread only: the writer never touches it */
    int status;           /* the answer, set by the writer: 202, 200, 400, 503 */
    long long archive_id; /* delivery.id when status is 202 */
    fg_proto_forge forge;
    wh_route route;
    bool duplicate_in_batch; /* writer: a delivery earlier in the batch has the same key */
    size_t position;         /* writer: place in its batch */
    long long queued_ms;     /* when it was submitted (monotonic ms) */
    char dedupe_key[FG_PROTO_DELIVERY_ID_MAX + 1];
    char event[WH_EVENT_MAX + 1];
    char action[WH_JSON_ACTION_BYTES_MAX + 1]; /* "" when none */
    char forge_id[WH_JSON_ID_DIGITS_MAX + 1];  /* "" when the delivery names no project */
    char project_id[24];                       /* "" when it names none */
    char project_path[FG_PROTO_PROJECT_PATH_MAX + 1];
    char body_bytes[24];
    char *headers; /* JSON object text, inside this allocation (after the body) */
    size_t body_len;
    char body[]; /* NUL-terminated copy of the request body */
} wh_delivery;

/* A delivery holding copies of the body (body_len bytes) and of the archived headers' JSON
 * object (headers_len bytes), everything else empty; one allocation. NULL when memory runs out. */
wh_delivery *wh_delivery_new(const char *body, size_t body_len, const char *headers,
                             size_t headers_len);
void wh_delivery_free(wh_delivery *d);

/* Called on the loop thread for every finished delivery, in submission order within a batch. It
 * answers d->req and frees d. */
typedef void (*wh_writer_answer_fn)(wh_delivery *d, void *payload);

typedef struct {
    const char *db_url;
    struct event_base *base;     /* the service's loop (evthread_use_pthreads() was called) */
    fg_service *svc;             /* woken (fg_service_wake) after a commit that queued messages */
    size_t writers;              /* threads, each with its connection, 1..WH_WRITER_THREADS_MAX */
    size_t batch_max;            /* deliveries per statement, 1..WH_WRITER_BATCH_MAX */
    size_t queue_max;            /* deliveries waiting before submit refuses */
    size_t queue_bytes_max;      /* their bodies */
    long long commit_timeout_ms; /* a delivery not committed by then is answered 503 */
    fg_metric *commit_rows;      /* histogram, may be NULL */
    fg_metric *commit_seconds;   /* histogram, may be NULL */
    wh_writer_answer_fn answer;
    void *payload;
} wh_writer_options;

typedef struct wh_writer wh_writer;

/* Starts the writer threads (they connect by themselves, retrying). FG_EINVALID for bad options,
 * FG_ENOMEM, FG_ERROR when the thread or the loop event cannot be created. */
int wh_writer_new(wh_writer **out, const wh_writer_options *opts) FG_MUST_CHECK;

/* Stops the threads after the statements in hand and frees the writer. Deliveries never answered
 * are freed without touching their request (the HTTP server frees those). Call on the loop
 * thread with the loop stopped. Accepts NULL. */
void wh_writer_free(wh_writer *w);

/* Queues d (main thread). FG_EUNAVAILABLE when the queue is full or the writer is stopping: d
 * stays the caller's, who answers 503. */
int wh_writer_submit(wh_writer *w, wh_delivery *d) FG_MUST_CHECK;

/* Whether the writer's last attempt to reach the database worked (any thread). */
bool wh_writer_connected(const wh_writer *w);

#endif
