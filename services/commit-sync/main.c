/*
 * fg-commit-sync: keeps a bare mirror of every project (libgit2) and tells the event log what is
 * new or gone (DESIGN.md flow 3). Its store is FG_MIRROR_DIR. This file only wires: the
 * configuration, libgit2's global options, the metrics registry, and the bus handler that hands
 * each message to cs_sync (cs_sync.h) with a publisher on the bus thread's connection.
 */
#include <errno.h>
#include <git2.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cs_sync.h"
#include "fg/proto.h"
#include "fg/service.h"

typedef struct {
    fg_service_config service; /* first: see fg/service.h */
    char *mirror_dir;
    char *event_log_url;
    char *token_repository_url;
    long long lock_timeout_ms;
    long long http_timeout_ms;
    long long publish_timeout_ms;
    long long batch_bytes;
    long long extract_threads;
} commit_sync_config;

static const fg_config_var commit_sync_vars[] = {
    FG_SERVICE_VARS(commit_sync_config, 9006),
    FG_SERVICE_BUS_VARS(commit_sync_config),
    {"FG_MIRROR_DIR", FG_CONFIG_STRING, offsetof(commit_sync_config, mirror_dir),
     "var/stack/mirrors", 0, 0, 0, "folder of the bare git mirrors (this service's store)", NULL},
    {"FG_EVENT_LOG_URL", FG_CONFIG_URL, offsetof(commit_sync_config, event_log_url),
     "http://127.0.0.1:9005", 0, 0, 0, "event-log service URL", NULL},
    {"FG_TOKEN_REPOSITORY_URL", FG_CONFIG_URL, offsetof(commit_sync_config, token_repository_url),
     "http://127.0.0.1:9003", 0, 0, 0, "token-repository service URL", NULL},
    {"FG_COMMIT_SYNC_LOCK_TIMEOUT_MS", FG_CONFIG_INT, offsetof(commit_sync_config, lock_timeout_ms),
     "30000", 0, 0, 3600000,
     "longest wait for another process's sync of the same project before the message is retried "
     "later",
     NULL},
    {"FG_COMMIT_SYNC_HTTP_TIMEOUT_MS", FG_CONFIG_INT, offsetof(commit_sync_config, http_timeout_ms),
     "30000", 0, 100, 600000, "timeout of one call to event-log or token-repository", NULL},
    {"FG_COMMIT_SYNC_PUBLISH_TIMEOUT_MS", FG_CONFIG_INT,
     offsetof(commit_sync_config, publish_timeout_ms), "30000", 0, 100, 600000,
     "how long a published message waits for the broker's confirm", NULL},
    {"FG_COMMIT_SYNC_BATCH_BYTES", FG_CONFIG_INT, offsetof(commit_sync_config, batch_bytes),
     "4194304", 0, 65536, 33554432,
     "commit body bytes in one CREATION message (which also holds at most 1000 commits)", NULL},
    {"FG_COMMIT_SYNC_EXTRACT_THREADS", FG_CONFIG_INT, offsetof(commit_sync_config, extract_threads),
     "0", 0, 0, 64, "threads extracting commits; 0: one per online core", NULL},
};

static const char *const commit_sync_categories[] = {
    "COMMIT_SYNC",
    "GLOBAL_COMMIT_SYNC",
    "PROJECT_REMOVED",
    NULL,
};

typedef struct {
    commit_sync_config cfg;
    cs_sync *sync;
} commit_sync_app;

typedef struct {
    fg_service_bus *bus;
    int timeout_ms;
} bus_publisher;

/* The mirror folder is this service's store: it must exist and be writable to be ready. */
static void check_mirror_dir(fg_http_readiness *r, void *payload)
{
    const commit_sync_app *app = payload;

    if (access(app->cfg.mirror_dir, W_OK | X_OK) != 0)
        fg_http_readiness_report(r, "mirrors", strerror(errno));
}

static int publish_on_bus(const fg_amqp_message *msgs, size_t n, void *payload)
{
    const bus_publisher *p = payload;
    size_t confirmed = 0;

    /* a partial failure is retried whole by the runtime; consumers dedupe by message id */
    return fg_amqp_publish_batch(&confirmed, fg_service_bus_amqp(p->bus), msgs, n, p->timeout_ms);
}

static int handle_message(fg_service_bus *bus, const fg_amqp_delivery *delivery, void *payload)
{
    commit_sync_app *app = payload;
    bus_publisher publisher = {bus, (int)app->cfg.publish_timeout_ms};
    fg_proto_msg msg;
    int rc;

    fg_proto_msg_init(&msg);
    rc = fg_proto_msg_parse(&msg, fg_amqp_delivery_body(delivery),
                            fg_amqp_delivery_body_len(delivery));
    if (rc == 0)
        rc = cs_sync_handle(app->sync, &msg, publish_on_bus, &publisher);
    fg_proto_msg_dispose(&msg);
    return rc;
}

static int start_syncer(commit_sync_app *app, fg_metrics *metrics)
{
    cs_sync_settings settings = {
        .mirror_dir = app->cfg.mirror_dir,
        .event_log_url = app->cfg.event_log_url,
        .token_repository_url = app->cfg.token_repository_url,
        .service_key = app->cfg.service.service_key,
        .lock_timeout_ms = (int)app->cfg.lock_timeout_ms,
        .http_timeout_ms = (int)app->cfg.http_timeout_ms,
        .batch_bytes = (size_t)app->cfg.batch_bytes,
        .extract_threads = (int)app->cfg.extract_threads,
    };

    if (git_libgit2_init() < 0)
        return fg_error_set(FG_ERROR, "libgit2 does not start");
    /* git itself does not re-hash what it reads; verifying halves the walk (infra.md §6).
     * A walk reads each commit once and the extraction has its own object reader, so caching
     * commits only kept 100,000 of them (60 MB) after a first sync. */
    if (git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, 0) < 0 ||
        git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_COMMIT, (size_t)0) < 0)
        return fg_error_set(FG_ERROR, "libgit2 refuses its options");
    return cs_sync_new(&app->sync, &settings, metrics);
}

int main(int argc, char **argv)
{
    commit_sync_app app = {0};
    fg_service_options opts = {0};
    fg_metrics *metrics = NULL;
    const size_t nvars = sizeof(commit_sync_vars) / sizeof(commit_sync_vars[0]);
    int status;

    if (!fg_service_configure(&status, &app.cfg, commit_sync_vars, nvars, "commit-sync", argc,
                              argv))
        return status;
    if (mkdir(app.cfg.mirror_dir, 0750) != 0 && errno != EEXIST)
        fg_log_warn("cannot create FG_MIRROR_DIR %s: %s", app.cfg.mirror_dir, strerror(errno));
    if (fg_metrics_new(&metrics) < 0 || start_syncer(&app, metrics) < 0) {
        fg_log_error("start-up failed: %s", fg_error_last());
        status = 1;
        goto done;
    }
    opts.name = "commit-sync";
    opts.config = &app.cfg.service;
    opts.categories = commit_sync_categories;
    opts.handler = handle_message;
    opts.ready = check_mirror_dir;
    opts.metrics = metrics;
    opts.payload = &app;
    status = fg_service_run(&opts);
done:
    cs_sync_free(app.sync);
    fg_metrics_free(metrics);
    git_libgit2_shutdown();
    fg_config_dispose(&app.cfg, commit_sync_vars, nvars);
    return status;
}
