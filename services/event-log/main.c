/*
 * fg-event-log: the event store and its status state machine, dispatch to the consumers, zombie
 * chasing and replay (DESIGN.md "Event statuses"). This file only wires: the configuration
 * table, the metrics, and the three entry points — el_consume_batch (bus handler, group commit),
 * el_tick (dispatch, schedules, zombies) and el_api_add_routes (REST API).
 * docs/internals/event-log.md explains them.
 */
#include <stddef.h>

#include "el_api.h"
#include "el_consume.h"
#include "el_context.h"
#include "el_dispatch.h"
#include "fg/service.h"

typedef struct {
    fg_service_config service; /* first: see fg/service.h */
    el_settings el;
} event_log_config;

#define EL_VAR(NAME, FIELD, DEF, MIN, MAX, HELP)                                                   \
    {                                                                                              \
        NAME, FG_CONFIG_INT, offsetof(event_log_config, el.FIELD), DEF, 0, MIN, MAX, HELP, NULL    \
    }

static const fg_config_var event_log_vars[] = {
    FG_SERVICE_VARS(event_log_config, 9005),
    FG_SERVICE_DB_VARS(event_log_config, "EVENT_LOG",
                       "postgresql://fg_event_log@127.0.0.1:55432/fg_event_log"),
    FG_SERVICE_BUS_VARS(event_log_config),
    EL_VAR("FG_EL_BATCH_MAX", batch_max, "100", 1, 1000, "events in one dispatched message"),
    EL_VAR("FG_EL_PROJECTS_PER_ROUND", projects_per_round, "16", 1, 1000,
           "projects served per dispatch round"),
    EL_VAR("FG_EL_CONSUMER_TTL_MS", consumer_ttl_ms, "90000", 1000, 86400000,
           "a consumer not heard from for this long is gone"),
    EL_VAR("FG_EL_GENERATION_TIMEOUT_MS", generation_timeout_ms, "600000", 100, 604800000,
           "GENERATING_TRIPLES longer than this is a zombie"),
    EL_VAR("FG_EL_TRANSFORMATION_TIMEOUT_MS", transformation_timeout_ms, "600000", 100, 604800000,
           "TRANSFORMING_TRIPLES longer than this is a zombie"),
    EL_VAR("FG_EL_DELETION_TIMEOUT_MS", deletion_timeout_ms, "600000", 100, 604800000,
           "DELETING longer than this is a zombie"),
    EL_VAR("FG_EL_BACKOFF_BASE_MS", backoff_base_ms, "30000", 1, 86400000,
           "first delay after a recoverable failure (doubles per attempt)"),
    EL_VAR("FG_EL_BACKOFF_MAX_MS", backoff_max_ms, "3600000", 1, 604800000,
           "longest delay after a recoverable failure"),
    EL_VAR("FG_EL_COMMIT_SYNC_ACTIVE_MS", commit_sync_active_ms, "3600000", 1000, 604800000,
           "COMMIT_SYNC interval of a project with commits in the last 7 days"),
    EL_VAR("FG_EL_COMMIT_SYNC_IDLE_MS", commit_sync_idle_ms, "86400000", 1000, 604800000,
           "COMMIT_SYNC interval of other projects"),
    EL_VAR("FG_EL_GLOBAL_SYNC_MS", global_sync_ms, "604800000", 1000, 2592000000LL,
           "GLOBAL_COMMIT_SYNC interval"),
    EL_VAR("FG_EL_GLOBAL_SYNC_DELAY_MS", global_sync_delay_ms, "300000", 0, 86400000,
           "GLOBAL_COMMIT_SYNC_REQUEST runs after this delay"),
    EL_VAR("FG_EL_PROCESSED_TTL_MS", processed_ttl_ms, "604800000", 60000, 2592000000LL,
           "how long processed message ids are kept for deduplication"),
    EL_VAR("FG_EL_GROUP_MAX", group_max, "64", 1, 1000,
           "messages already arrived that are handled in one transaction (group commit; 1: "
           "one transaction per message)"),
};
#define NVARS (sizeof(event_log_vars) / sizeof(event_log_vars[0]))

static const char *const event_log_categories[] = {
    "CREATION",
    "EVENTS_STATUS_CHANGE",
    "COMMIT_SYNC_REQUEST",
    "GLOBAL_COMMIT_SYNC_REQUEST",
    "CLEAN_UP_REQUEST",
    "SUBSCRIPTION",
    NULL,
};

int main(int argc, char **argv)
{
    event_log_config cfg = {0};
    el_context ctx = {0};
    fg_service_options opts = {0};
    int status;

    if (!fg_service_configure(&status, &cfg, event_log_vars, NVARS, "event-log", argc, argv))
        return status;
    ctx.service = &cfg.service;
    ctx.settings = cfg.el;
    if (el_context_metrics_new(&ctx) < 0) {
        fg_log_error("start-up failed: %s", fg_error_last());
        status = 1;
        goto done;
    }
    opts.name = "event-log";
    opts.config = &cfg.service;
    opts.migrations_dir = FG_DEFAULT_MIGRATIONS_DIR;
    opts.categories = event_log_categories;
    opts.handler = el_consume;
    opts.batch_handler = el_consume_batch;
    opts.batch_max = (size_t)cfg.el.group_max;
    opts.tick = el_tick;
    opts.routes = el_api_add_routes;
    opts.metrics = ctx.metrics;
    opts.payload = &ctx;
    status = fg_service_run(&opts);
done:
    el_context_metrics_free(&ctx);
    fg_config_dispose(&cfg, event_log_vars, NVARS);
    return status;
}
