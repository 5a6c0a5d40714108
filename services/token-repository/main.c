/*
 * fg-token-repository: keeps each project's forge access token encrypted at rest (AES-256-GCM
 * under a key id, FG_TOKEN_KEYS) and hands it only to callers holding the internal service key.
 * This file only wires. The token API comes with the webhook/token issue; until then its routes
 * answer 501.
 */
#include <stddef.h>

#include "fg/crypto.h"
#include "fg/service.h"

typedef struct {
    fg_service_config service; /* first: see fg/service.h */
    char *token_keys;
    long long expiry_warning_days;
} token_repository_config;

/* FG_TOKEN_KEYS must parse as a keyring at start-up, not at the first token. */
static int check_token_keys(const char *value)
{
    fg_crypto_keyring *keyring = NULL;
    int rc = fg_crypto_keyring_new(&keyring, value);

    fg_crypto_keyring_free(keyring);
    return rc;
}

static const fg_config_var token_repository_vars[] = {
    FG_SERVICE_VARS(token_repository_config, 9003),
    FG_SERVICE_DB_VARS(token_repository_config, "TOKEN_REPOSITORY",
                       "postgresql://fg_token_repository@127.0.0.1:55432/fg_tokens"),
    {"FG_TOKEN_KEYS", FG_CONFIG_STRING, offsetof(token_repository_config, token_keys), NULL,
     FG_CONFIG_REQUIRED | FG_CONFIG_SECRET, 0, 0,
     "id:base64key[,id:base64key...]: AES-256 keys; the first encrypts, all decrypt",
     check_token_keys},
    {"FG_TOKEN_EXPIRY_WARNING_DAYS", FG_CONFIG_INT,
     offsetof(token_repository_config, expiry_warning_days), "14", 0, 1, 3650,
     "tokens expiring within this many days are reported", NULL},
};

static const fg_service_route token_routes[] = {
    {FG_HTTP_PUT, "/projects/{id}/tokens", fg_service_not_implemented, false},
    {FG_HTTP_GET, "/projects/{id}/tokens", fg_service_not_implemented, false},
    {FG_HTTP_DELETE, "/projects/{id}/tokens", fg_service_not_implemented, false},
    {FG_HTTP_GET, "/tokens", fg_service_not_implemented, false},
    {FG_HTTP_POST, "/tokens/rotate", fg_service_not_implemented, false},
};

static int add_routes(fg_service *svc, fg_http_server *http, void *payload)
{
    (void)svc;
    return fg_service_add_routes(http, token_routes, sizeof(token_routes) / sizeof(token_routes[0]),
                                 payload);
}

int main(int argc, char **argv)
{
    token_repository_config cfg = {0};
    fg_service_options opts = {0};
    const size_t nvars = sizeof(token_repository_vars) / sizeof(token_repository_vars[0]);
    int status;

    if (!fg_service_configure(&status, &cfg, token_repository_vars, nvars, "token-repository", argc,
                              argv))
        return status;
    opts.name = "token-repository";
    opts.config = &cfg.service;
    opts.migrations_dir = FG_DEFAULT_MIGRATIONS_DIR;
    opts.routes = add_routes;
    opts.payload = &cfg;
    status = fg_service_run(&opts);
    fg_config_dispose(&cfg, token_repository_vars, nvars);
    return status;
}
