/*
 * The context's metrics (see el_context.h), made in one place: the service's main.c, the tests
 * that drive el_consume and the bench all count in the same families.
 */
#include "el_context.h"

#include <string.h>

static const double dispatch_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01,
                                          0.025,  0.05,  0.1,    0.25,  1};

static int register_counters(el_metrics *m, fg_metrics *reg)
{
    int rc;

    if ((rc = fg_metrics_counter(&m->transitions, reg, "fg_el_transitions_total",
                                 "events moved from one status to another", NULL)) < 0 ||
        (rc = fg_metrics_counter(&m->illegal, reg, "fg_el_illegal_transitions_total",
                                 "status changes refused: no transition allows them", NULL)) < 0 ||
        (rc = fg_metrics_counter(&m->stale, reg, "fg_el_stale_changes_total",
                                 "replies about events that had moved on, ignored", NULL)) < 0 ||
        (rc = fg_metrics_counter(&m->zombies, reg, "fg_el_zombies_chased_total",
                                 "processing events returned to the status before", NULL)) < 0)
        return rc;
    return fg_metrics_counter(&m->created, reg, "fg_el_events_created_total",
                              "events created from CREATION", NULL);
}

static int register_gauges(el_metrics *m, fg_metrics *reg)
{
    int rc;

    for (int s = EL_STATUS_NEW; s < EL_STATUS_DELETED; s++) {
        const char *labels[] = {"status", el_status_name((el_status)s), NULL};

        if ((rc = fg_metrics_gauge(&m->events[s], reg, "fg_el_events",
                                   "events per status over every project, refreshed every 10 s",
                                   labels)) < 0)
            return rc;
    }
    return 0;
}

int el_context_metrics_new(el_context *ctx)
{
    int rc;

    memset(&ctx->m, 0, sizeof(ctx->m));
    if ((rc = fg_metrics_new(&ctx->metrics)) < 0)
        return rc;
    if ((rc = register_counters(&ctx->m, ctx->metrics)) < 0 ||
        (rc = register_gauges(&ctx->m, ctx->metrics)) < 0 ||
        (rc = fg_metrics_histogram(
             &ctx->m.dispatch_seconds, ctx->metrics, "fg_el_dispatch_duration_seconds",
             "time to claim and publish one dispatched batch", NULL, dispatch_buckets,
             sizeof(dispatch_buckets) / sizeof(dispatch_buckets[0]))) < 0) {
        el_context_metrics_free(ctx);
        return rc;
    }
    return 0;
}

void el_context_metrics_free(el_context *ctx)
{
    if (ctx == NULL)
        return;
    fg_metrics_free(ctx->metrics);
    ctx->metrics = NULL;
    memset(&ctx->m, 0, sizeof(ctx->m));
}
