/*
 * fg-commit-sync: keeps a bare mirror of every project (libgit2) and tells the event log what is
 * new or gone (DESIGN.md flow 3). Its store is FG_MIRROR_DIR. This file only wires. Syncing comes
 * with the commit-sync issue; until then messages are validated and parked with a reason.
 */
#include <errno.h>
#include <stddef.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "fg/proto.h"
#include "fg/service.h"

typedef struct {
    fg_service_config service; /* first: see fg/service.h */
    char *mirror_dir;
    char *event_log_url;
    char *token_repository_url;
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
};

static const char *const commit_sync_categories[] = {
    "COMMIT_SYNC",
    "GLOBAL_COMMIT_SYNC",
    "PROJECT_REMOVED",
    NULL,
};

/* The mirror folder is this service's store: it must exist and be writable to be ready. */
static void check_mirror_dir(fg_http_readiness *r, void *payload)
{
    const commit_sync_config *cfg = payload;

    if (access(cfg->mirror_dir, W_OK | X_OK) != 0)
        fg_http_readiness_report(r, "mirrors", strerror(errno));
}

static int handle_message(fg_service_bus *bus, const fg_amqp_delivery *delivery, void *payload)
{
    fg_proto_msg msg;
    int rc;

    (void)bus;
    (void)payload;
    fg_proto_msg_init(&msg);
    rc = fg_proto_msg_parse(&msg, fg_amqp_delivery_body(delivery),
                            fg_amqp_delivery_body_len(delivery));
    if (rc == 0)
        rc = fg_error_set(FG_EINVALID, "commit-sync does not handle %s in this version yet",
                          fg_proto_category_name(msg.category));
    fg_proto_msg_dispose(&msg);
    return rc;
}

int main(int argc, char **argv)
{
    commit_sync_config cfg = {0};
    fg_service_options opts = {0};
    const size_t nvars = sizeof(commit_sync_vars) / sizeof(commit_sync_vars[0]);
    int status;

    if (!fg_service_configure(&status, &cfg, commit_sync_vars, nvars, "commit-sync", argc, argv))
        return status;
    if (mkdir(cfg.mirror_dir, 0750) != 0 && errno != EEXIST)
        fg_log_warn("cannot create FG_MIRROR_DIR %s: %s", cfg.mirror_dir, strerror(errno));
    opts.name = "commit-sync";
    opts.config = &cfg.service;
    opts.categories = commit_sync_categories;
    opts.handler = handle_message;
    opts.ready = check_mirror_dir;
    opts.payload = &cfg;
    status = fg_service_run(&opts);
    fg_config_dispose(&cfg, commit_sync_vars, nvars);
    return status;
}
