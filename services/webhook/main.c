/*
 * fg-webhook: receives GitHub and GitLab deliveries, verifies, deduplicates and archives them,
 * and publishes them from its outbox (DESIGN.md flows 1, 2). This file only wires: the
 * configuration table, the stores, and the routes.
 *
 * Delivery intake, project activation and the outbox relay come with the webhook issue; until
 * then the routes answer 501 with a reason rather than pretending to accept anything.
 */
#include <stddef.h>

#include "fg/service.h"

#define WEBHOOK_BODY_MAX (25u * 1024 * 1024) /* DESIGN.md: over 25 MiB is 413 */

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
} webhook_config;

static const fg_config_var webhook_vars[] = {
    FG_SERVICE_VARS(webhook_config, 9001),
    FG_SERVICE_DB_VARS(webhook_config, "WEBHOOK",
                       "postgresql://fg_webhook@127.0.0.1:55432/fg_webhook"),
    FG_SERVICE_AMQP_VAR(webhook_config),
    {"FG_HOOK_SECRET_KEY", FG_CONFIG_KEY, offsetof(webhook_config, hook_secret_key), NULL,
     FG_CONFIG_REQUIRED | FG_CONFIG_SECRET, 32, 0,
     "base64 key (32+ bytes) from which every project's hook secret is derived", NULL},
    {"FG_GITHUB_WEBHOOK_SECRET", FG_CONFIG_STRING, offsetof(webhook_config, github_webhook_secret),
     NULL, FG_CONFIG_SECRET, 0, 0, "GitHub App-wide webhook secret (optional)", NULL},
    {"FG_PUBLIC_URL", FG_CONFIG_URL, offsetof(webhook_config, public_url), NULL, 0, 0, 0,
     "public URL the forges reach this service at; hooks are created only when set", NULL},
    {"FG_GITHUB_API_URL", FG_CONFIG_URL, offsetof(webhook_config, github_api_url),
     "https://api.github.com", 0, 0, 0, "GitHub REST API base URL", NULL},
    {"FG_GITLAB_URL", FG_CONFIG_URL, offsetof(webhook_config, gitlab_url), "https://gitlab.com", 0,
     0, 0, "GitLab base URL", NULL},
    {"FG_EVENT_LOG_URL", FG_CONFIG_URL, offsetof(webhook_config, event_log_url),
     "http://127.0.0.1:9005", 0, 0, 0, "event-log service URL", NULL},
    {"FG_TOKEN_REPOSITORY_URL", FG_CONFIG_URL, offsetof(webhook_config, token_repository_url),
     "http://127.0.0.1:9003", 0, 0, 0, "token-repository service URL", NULL},
    {"FG_WEBHOOK_RETENTION_DAYS", FG_CONFIG_INT, offsetof(webhook_config, retention_days), "30", 0,
     1, 36500, "days archived deliveries are kept", NULL},
};

/* Declared now so callers get a clear 501 until the webhook issue implements them. */
static const fg_service_route webhook_routes[] = {
    {FG_HTTP_POST, "/webhooks/github", fg_service_not_implemented, true},
    {FG_HTTP_POST, "/webhooks/gitlab", fg_service_not_implemented, true},
    {FG_HTTP_POST, "/projects", fg_service_not_implemented, false},
    {FG_HTTP_DELETE, "/projects/{id}", fg_service_not_implemented, false},
    {FG_HTTP_POST, "/projects/{id}/webhooks/validation", fg_service_not_implemented, false},
};

static int add_routes(fg_service *svc, fg_http_server *http, void *payload)
{
    (void)svc;
    return fg_service_add_routes(http, webhook_routes,
                                 sizeof(webhook_routes) / sizeof(webhook_routes[0]), payload);
}

int main(int argc, char **argv)
{
    webhook_config cfg = {0};
    fg_service_options opts = {0};
    int status;

    if (!fg_service_configure(&status, &cfg, webhook_vars,
                              sizeof(webhook_vars) / sizeof(webhook_vars[0]), "webhook", argc,
                              argv))
        return status;
    opts.name = "webhook";
    opts.config = &cfg.service;
    opts.migrations_dir = FG_DEFAULT_MIGRATIONS_DIR;
    opts.routes = add_routes;
    opts.max_body = WEBHOOK_BODY_MAX;
    opts.payload = &cfg;
    status = fg_service_run(&opts);
    fg_config_dispose(&cfg, webhook_vars, sizeof(webhook_vars) / sizeof(webhook_vars[0]));
    return status;
}
