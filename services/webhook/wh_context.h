/*
 * What the webhook's modules share: its configuration (the table is in main.c), the runtime
 * handle, and the parts built at start. One context per process, created in main.c; each field
 * says which thread may use it.
 */
#ifndef WH_CONTEXT_H
#define WH_CONTEXT_H

#include <stdbool.h>

#include "fg/config.h"
#include "fg/metrics.h"
#include "fg/service.h"

typedef struct wh_projects wh_projects;
typedef struct wh_writer wh_writer;
typedef struct wh_activation wh_activation;

typedef struct {
    fg_service_config service; /* first: see fg/service.h */
    fg_config_key hook_secret_key;
    char *github_webhook_secret;
    char *public_url;
    char *github_api_url;
    char *gitlab_url;
    char *event_log_url;
    char *token_repository_url;
    long long retention_days;
    long long writers;           /* archive writer threads */
    long long batch_max;         /* deliveries in one group commit */
    long long queue_max;         /* deliveries waiting for the writer before 503 */
    long long queue_mib;         /* their bodies, MiB */
    long long commit_timeout_ms; /* how long a delivery may wait for its commit before 503 */
    long long relay_batch;       /* messages in one confirmed publish */
} wh_config;

/* Counters and gauges; fg_metric updates are atomic, so any thread may count. */
typedef struct {
    fg_metric *outcome[2][8];  /* [forge][wh_outcome] deliveries answered, by outcome */
    fg_metric *commit_rows;    /* histogram: deliveries per group commit */
    fg_metric *commit_seconds; /* histogram: time of one group commit */
    fg_metric *published[2];   /* [0] COMMIT_SYNC_REQUEST, [1] FORGE_EVENT */
    fg_metric *outbox_pending;
    fg_metric *retention_deleted;
    fg_metric *unpublishable;
} wh_metrics;

/* The relay's memory between ticks (bus thread only). */
typedef struct {
    long long last_retention_ms;
    long long last_gauge_ms;
    long long last_round_ms;
    bool stalled; /* the last round could not publish: said once in the log, until it can */
    bool niced;   /* the bus thread's priority was lowered (first tick) */
} wh_relay_state;

typedef struct {
    const wh_config *cfg;
    fg_service *svc;       /* set by the routes callback */
    wh_projects *projects; /* main thread */
    wh_writer *writer;     /* submitted to from the main thread */
    wh_activation *activation;
    wh_metrics metrics;
    wh_relay_state relay;
} wh_context;

#endif
