/*
 * What event-log's bus handler (el_consume), tick (el_tick) and HTTP routes (el_api) share: the
 * settings from the configuration table in main.c and the metrics (el_context_metrics_new). Built
 * once in main.c before the service starts; read-only afterwards (metrics are internally locked,
 * any thread).
 */
#ifndef EL_CONTEXT_H
#define EL_CONTEXT_H

#include "el_status.h"
#include "fg/metrics.h"
#include "fg/service.h"

typedef struct {
    long long batch_max; /* events in one dispatched message (FG_EL_BATCH_MAX, 100) */
    long long
        projects_per_round; /* projects served per dispatch round (FG_EL_PROJECTS_PER_ROUND, 16) */
    long long consumer_ttl_ms;           /* a consumer unheard of this long is gone (90000) */
    long long generation_timeout_ms;     /* GENERATING_TRIPLES longer: zombie
                                            (FG_EL_GENERATION_TIMEOUT_MS, 600000) */
    long long transformation_timeout_ms; /* TRANSFORMING_TRIPLES (FG_EL_TRANSFORMATION_TIMEOUT_MS,
                                            600000) */
    long long deletion_timeout_ms;       /* DELETING (FG_EL_DELETION_TIMEOUT_MS, 600000) */
    long long backoff_base_ms; /* recoverable failure: base * 2^attempts ... (FG_EL_BACKOFF_BASE_MS,
                                  30000) */
    long long backoff_max_ms;  /* ... capped (FG_EL_BACKOFF_MAX_MS, 3600000) */
    long long
        commit_sync_active_ms; /* COMMIT_SYNC of a project active in the last 7 days (3600000) */
    long long commit_sync_idle_ms;  /* ... otherwise (86400000) */
    long long global_sync_ms;       /* GLOBAL_COMMIT_SYNC (FG_EL_GLOBAL_SYNC_MS, 604800000) */
    long long global_sync_delay_ms; /* GLOBAL_COMMIT_SYNC_REQUEST runs after (300000) */
    long long processed_ttl_ms;     /* processed_message rows kept (604800000) */
    long long group_max; /* deliveries handled in one transaction (FG_EL_GROUP_MAX, 64) */
} el_settings;

typedef struct {
    fg_metric *transitions;      /* fg_el_transitions_total: events moved */
    fg_metric *illegal;          /* fg_el_illegal_transitions_total */
    fg_metric *stale;            /* fg_el_stale_changes_total */
    fg_metric *zombies;          /* fg_el_zombies_chased_total */
    fg_metric *dispatch_seconds; /* fg_el_dispatch_duration_seconds histogram */
    fg_metric *created;          /* fg_el_events_created_total */
    /* fg_el_events{status}: events per status, over every project, refreshed by the tick;
     * indexed by el_status (NONE and DELETED: NULL) */
    fg_metric *events[EL_STATUS_COUNT];
} el_metrics;

typedef struct {
    const fg_service_config *service;
    el_settings settings;
    fg_metrics *metrics; /* the registry: el_context_metrics_new, passed to the runtime */
    el_metrics m;        /* its families */
} el_context;

/* Makes ctx->metrics and registers every family of ctx->m in it (fg_el_*); FG_ENOMEM or
 * fg_metrics' errors, nothing left allocated. el_context_metrics_free undoes it. */
int el_context_metrics_new(el_context *ctx) FG_MUST_CHECK;
void el_context_metrics_free(el_context *ctx);

#endif
