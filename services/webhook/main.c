/*
 * fg-webhook: receives GitHub and GitLab deliveries, verifies, deduplicates and archives them,
 * and publishes them from its outbox (DESIGN.md flows 1, 2, 7). This file only wires: the
 * configuration table, the metrics, the routes, the archive writer and the relay tick.
 * docs/internals/webhook.md explains the design.
 */
#include <event2/thread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

#include "fg/service.h"
#include "wh_activation.h"
#include "wh_admin.h"
#include "wh_context.h"
#include "wh_intake.h"
#include "wh_projects.h"
#include "wh_relay.h"
#include "wh_writer.h"

#define WEBHOOK_BODY_MAX (25u * 1024 * 1024) /* DESIGN.md: over 25 MiB is 413 */

static const fg_config_var webhook_vars[] = {
    FG_SERVICE_VARS(wh_config, 9001),
    FG_SERVICE_DB_VARS(wh_config, "WEBHOOK", "postgresql://fg_webhook@127.0.0.1:55432/fg_webhook"),
    FG_SERVICE_AMQP_VAR(wh_config),
    {"FG_HOOK_SECRET_KEY", FG_CONFIG_KEY, offsetof(wh_config, hook_secret_key), NULL,
     FG_CONFIG_REQUIRED | FG_CONFIG_SECRET, 32, 0,
     "base64 key (32+ bytes) from which every project's hook secret is derived", NULL},
    {"FG_GITHUB_WEBHOOK_SECRET", FG_CONFIG_STRING, offsetof(wh_config, github_webhook_secret), NULL,
     FG_CONFIG_SECRET, 0, 0, "GitHub App-wide webhook secret (optional)", NULL},
    {"FG_PUBLIC_URL", FG_CONFIG_URL, offsetof(wh_config, public_url), NULL, 0, 0, 0,
     "public URL the forges reach this service at; hooks are created only when set", NULL},
    {"FG_GITHUB_API_URL", FG_CONFIG_URL, offsetof(wh_config, github_api_url),
     "https://api.github.com", 0, 0, 0, "GitHub REST API base URL", NULL},
    {"FG_GITLAB_URL", FG_CONFIG_URL, offsetof(wh_config, gitlab_url), "https://gitlab.com", 0, 0, 0,
     "GitLab base URL", NULL},
    {"FG_EVENT_LOG_URL", FG_CONFIG_URL, offsetof(wh_config, event_log_url), "http://127.0.0.1:9005",
     0, 0, 0, "event-log service URL", NULL},
    {"FG_TOKEN_REPOSITORY_URL", FG_CONFIG_URL, offsetof(wh_config, token_repository_url),
     "http://127.0.0.1:9003", 0, 0, 0, "token-repository service URL", NULL},
    {"FG_WEBHOOK_RETENTION_DAYS", FG_CONFIG_INT, offsetof(wh_config, retention_days), "30", 0, 1,
     36500, "days archived deliveries are kept", NULL},
    {"FG_WEBHOOK_WRITERS", FG_CONFIG_INT, offsetof(wh_config, writers), "1", 0, 1,
     WH_WRITER_THREADS_MAX,
     "archive writer threads (database connections); their group commits overlap", NULL},
    {"FG_WEBHOOK_BATCH_MAX", FG_CONFIG_INT, offsetof(wh_config, batch_max), "1000", 0, 1,
     WH_WRITER_BATCH_MAX, "most deliveries archived by one group commit", NULL},
    {"FG_WEBHOOK_QUEUE_MAX", FG_CONFIG_INT, offsetof(wh_config, queue_max), "50000", 0, 1, 10000000,
     "deliveries waiting for the archive before new ones get 503", NULL},
    {"FG_WEBHOOK_QUEUE_MIB", FG_CONFIG_INT, offsetof(wh_config, queue_mib), "512", 0, 26, 65536,
     "MiB of delivery bodies waiting for the archive before new ones get 503", NULL},
    {"FG_WEBHOOK_COMMIT_TIMEOUT_MS", FG_CONFIG_INT, offsetof(wh_config, commit_timeout_ms), "5000",
     0, 100, 60000,
     "how long a delivery waits for the archive (database down) before it is answered 503", NULL},
    {"FG_WEBHOOK_RELAY_BATCH", FG_CONFIG_INT, offsetof(wh_config, relay_batch), "1000", 0, 1,
     FG_AMQP_BATCH_MAX, "messages the relay publishes per confirmed batch", NULL},
};

static const fg_service_route webhook_routes[] = {
    {FG_HTTP_POST, "/webhooks/github", wh_intake_github, true},
    {FG_HTTP_POST, "/webhooks/gitlab", wh_intake_gitlab, true},
    {FG_HTTP_PUT, "/hooks/{forge}/{forgeId}", wh_admin_hook_put, false},
    {FG_HTTP_GET, "/hooks/{forge}/{forgeId}", wh_admin_hook_get, false},
    {FG_HTTP_DELETE, "/hooks/{forge}/{forgeId}", wh_admin_hook_delete, false},
    {FG_HTTP_POST, "/deliveries/replay", wh_admin_replay, false},
    {FG_HTTP_GET, "/deliveries/export", wh_admin_export, false},
    {FG_HTTP_POST, "/projects", wh_activation_add, false},
    {FG_HTTP_DELETE, "/projects/{id}", wh_activation_remove, false},
    {FG_HTTP_POST, "/projects/{id}/webhooks/validation", wh_activation_validate, false},
};

static const double commit_rows_buckets[] = {1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 5000};
static const double commit_seconds_buckets[] = {0.0005, 0.001, 0.002, 0.005, 0.01, 0.02,
                                                0.05,   0.1,   0.5,   1,     5};

static int add_metrics(wh_metrics *m, fg_metrics *reg)
{
    static const char deliveries[] = "fg_webhook_deliveries_total";
    static const char deliveries_help[] = "deliveries answered, by forge and outcome";
    static const char published[] = "fg_webhook_published_total";
    static const char published_help[] = "messages the relay published (confirmed), by category";
    int rc = 0;

    for (int f = 0; f < 2 && rc == 0; f++) {
        for (int o = 0; o < WH_OUTCOME_COUNT && rc == 0; o++)
            rc = fg_metrics_counter(&m->outcome[f][o], reg, deliveries, deliveries_help,
                                    FG_METRIC_LABELS("forge", f == 0 ? "github" : "gitlab",
                                                     "outcome", wh_outcome_name(o)));
    }
    if (rc < 0 ||
        (rc =
             fg_metrics_histogram(&m->commit_rows, reg, "fg_webhook_commit_deliveries",
                                  "deliveries archived per group commit", NULL, commit_rows_buckets,
                                  sizeof(commit_rows_buckets) / sizeof(double))) < 0 ||
        (rc = fg_metrics_histogram(&m->commit_seconds, reg, "fg_webhook_commit_seconds",
                                   "duration of one group commit", NULL, commit_seconds_buckets,
                                   sizeof(commit_seconds_buckets) / sizeof(double))) < 0 ||
        (rc = fg_metrics_counter(&m->published[0], reg, published, published_help,
                                 FG_METRIC_LABELS("category", "COMMIT_SYNC_REQUEST"))) < 0 ||
        (rc = fg_metrics_counter(&m->published[1], reg, published, published_help,
                                 FG_METRIC_LABELS("category", "FORGE_EVENT"))) < 0 ||
        (rc = fg_metrics_gauge(&m->outbox_pending, reg, "fg_webhook_outbox_pending",
                               "deliveries archived but not yet published", NULL)) < 0 ||
        (rc = fg_metrics_counter(&m->retention_deleted, reg, "fg_webhook_retention_deleted_total",
                                 "archived deliveries deleted by retention", NULL)) < 0)
        return rc;
    return fg_metrics_counter(&m->unpublishable, reg, "fg_webhook_unpublishable_total",
                              "outbox rows dropped because no valid message could be built", NULL);
}

static int add_routes(fg_service *svc, fg_http_server *http, void *payload)
{
    wh_context *ctx = payload;
    const wh_config *cfg = ctx->cfg;
    wh_writer_options w = {0};
    int rc;

    ctx->svc = svc;
    if ((rc = add_metrics(&ctx->metrics, fg_service_metrics(svc))) < 0 ||
        (rc = wh_projects_new(&ctx->projects)) < 0)
        return rc;
    w.db_url = cfg->service.db_url;
    w.base = fg_service_event_base(svc);
    w.svc = svc;
    w.writers = (size_t)cfg->writers;
    w.batch_max = (size_t)cfg->batch_max;
    w.queue_max = (size_t)cfg->queue_max;
    w.queue_bytes_max = (size_t)cfg->queue_mib << 20;
    w.commit_timeout_ms = cfg->commit_timeout_ms;
    w.commit_rows = ctx->metrics.commit_rows;
    w.commit_seconds = ctx->metrics.commit_seconds;
    w.answer = wh_intake_answer;
    w.payload = ctx;
    if ((rc = wh_writer_new(&ctx->writer, &w)) < 0 || (rc = wh_activation_start(ctx)) < 0)
        return rc;
    return fg_service_add_routes(http, webhook_routes,
                                 sizeof(webhook_routes) / sizeof(webhook_routes[0]), ctx);
}

/* The loop has stopped: the writer must be gone before the loop and the server are freed. */
static void stop(fg_service *svc, void *payload)
{
    wh_context *ctx = payload;

    (void)svc;
    wh_activation_stop(ctx);
    wh_writer_free(ctx->writer);
    ctx->writer = NULL;
    wh_projects_free(ctx->projects);
    ctx->projects = NULL;
}

/* RabbitMQ is not a readiness condition: the outbox buffers while it is away (DESIGN.md). */
static void ready(fg_http_readiness *r, void *payload)
{
    wh_context *ctx = payload;

    if (ctx->writer != NULL && !wh_writer_connected(ctx->writer))
        fg_http_readiness_report(r, "archive", "the archive writer cannot reach the database");
}

int main(int argc, char **argv)
{
    wh_config cfg = {0};
    wh_context ctx = {0};
    fg_service_options opts = {0};
    int status;

    if (!fg_service_configure(&status, &cfg, webhook_vars,
                              sizeof(webhook_vars) / sizeof(webhook_vars[0]), "webhook", argc,
                              argv))
        return status;
    /* the archive writer answers through the loop from its own thread (event_active) */
    if (evthread_use_pthreads() != 0) {
        fprintf(stderr, "fg-webhook: libevent has no pthreads support\n");
        fg_config_dispose(&cfg, webhook_vars, sizeof(webhook_vars) / sizeof(webhook_vars[0]));
        return 1;
    }
    ctx.cfg = &cfg;
    opts.name = "webhook";
    opts.config = &cfg.service;
    opts.migrations_dir = FG_DEFAULT_MIGRATIONS_DIR;
    opts.routes = add_routes;
    opts.stop = stop;
    opts.ready = ready;
    opts.tick = wh_relay_tick;
    opts.max_body = WEBHOOK_BODY_MAX;
    opts.payload = &ctx;
    status = fg_service_run(&opts);
    fg_config_dispose(&cfg, webhook_vars, sizeof(webhook_vars) / sizeof(webhook_vars[0]));
    return status;
}
