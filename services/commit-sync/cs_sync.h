/*
 * What commit-sync does with a message (DESIGN.md flow 3, docs/internals/commit-sync.md):
 * COMMIT_SYNC fetches the project's mirror and sends what is new (CREATION, in batches, parents
 * before children, the last one with syncComplete) and what is gone (EVENTS_STATUS_CHANGE
 * ToAwaitingDeletion); GLOBAL_COMMIT_SYNC compares the event log's count and latest commit with
 * the mirror and repairs any difference both ways; PROJECT_REMOVED deletes the mirror. It asks
 * event-log (the project's clone URL, its events) and token-repository over HTTP, and publishes
 * through the caller's function. Not thread-safe: one cs_sync per thread (the bus thread).
 */
#ifndef CS_SYNC_H
#define CS_SYNC_H

#include <stddef.h>

#include "cs_extract.h"
#include "fg/amqp.h"
#include "fg/error.h"
#include "fg/metrics.h"
#include "fg/proto.h"

#define CS_SYNC_EVENTS_PAGE         1000       /* events asked for per GET /events page */
#define CS_SYNC_PAGES_MAX           100000     /* pages of one project's events (100 M events) */
#define CS_SYNC_CURSOR_MAX          1024       /* bytes of an event-log paging cursor */
#define CS_SYNC_BATCH_BYTES_DEFAULT (4u << 20) /* commit body bytes in one CREATION */

typedef struct {
    const char *mirror_dir;           /* FG_MIRROR_DIR */
    const char *event_log_url;        /* FG_EVENT_LOG_URL */
    const char *token_repository_url; /* FG_TOKEN_REPOSITORY_URL */
    const char *service_key;          /* FG_SERVICE_KEY, for both */
    int lock_timeout_ms;              /* longest wait for another sync of the same project */
    int http_timeout_ms;              /* one call to event-log or token-repository */
    size_t batch_bytes;               /* commit body bytes per CREATION (and <= 1000 commits) */
    int extract_threads;              /* 0: one per core */
} cs_sync_settings;

/* Publishes msgs[0..n) with confirms; returns 0 once all are confirmed, < 0 (with the error
 * recorded) otherwise. main.c wires it to fg_amqp_publish_batch on the bus. */
typedef int (*cs_publish_fn)(const fg_amqp_message *msgs, size_t n, void *payload);

typedef struct cs_sync cs_sync;

/* A syncer with its own HTTP client; settings are copied (the strings are borrowed and must
 * outlive it); counters go to metrics (borrowed; may be NULL). FG_ENOMEM, FG_ERROR. */
int cs_sync_new(cs_sync **out, const cs_sync_settings *settings, fg_metrics *metrics) FG_MUST_CHECK;
void cs_sync_free(cs_sync *s);

/*
 * Handles one parsed COMMIT_SYNC, GLOBAL_COMMIT_SYNC or PROJECT_REMOVED message (msg borrowed),
 * holding the project's mirror lock throughout and publishing through publish(payload).
 * Returns 0 when the effect is done (every message it sent confirmed; also for a project the
 * event log does not know any more); FG_EINVALID for a category commit-sync does not handle;
 * FG_EUNAVAILABLE when the remote, event-log, token-repository or the broker cannot be reached
 * or the remote refuses the credentials (the message names the project and the remote, never a
 * credential); FG_ETIMEOUT when another sync of the project holds the lock too long; FG_ERROR
 * for a local failure. Every failure leaves nothing half-recorded: the message can be retried.
 */
int cs_sync_handle(cs_sync *s, const fg_proto_msg *msg, cs_publish_fn publish,
                   void *payload) FG_MUST_CHECK;

#endif
