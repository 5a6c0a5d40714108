/*
 * fg-token-repository: keeps each project's forge access token encrypted at rest (AES-256-GCM
 * under a key id, FG_TOKEN_KEYS) and hands it only to callers holding the internal service key.
 * This file only wires: the API and its metrics are tr_api.c, the store tr_store.c, the input
 * checks tr_validate.c. It uses no broker.
 */
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "fg/crypto.h"
#include "fg/service.h"
#include "tr_api.h"
#include "tr_validate.h"

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

int main(int argc, char **argv)
{
    token_repository_config cfg = {0};
    fg_service_options opts = {0};
    fg_crypto_keyring *keyring = NULL;
    const size_t nvars = sizeof(token_repository_vars) / sizeof(token_repository_vars[0]);
    tr_api api;
    int status;

    if (!fg_service_configure(&status, &cfg, token_repository_vars, nvars, "token-repository", argc,
                              argv))
        return status;
    if (fg_crypto_keyring_new(&keyring, cfg.token_keys) < 0) {
        fprintf(stderr, "fg-token-repository: configuration: FG_TOKEN_KEYS: %s\n", fg_error_last());
        status = 2;
        goto done;
    }
    /* the keyring holds the keys from here on; the text copy has no reason to stay readable */
    fg_crypto_wipe(cfg.token_keys, strlen(cfg.token_keys));
    tr_api_init(&api, keyring, cfg.expiry_warning_days);
    opts.name = "token-repository";
    opts.config = &cfg.service;
    opts.migrations_dir = FG_DEFAULT_MIGRATIONS_DIR;
    opts.routes = tr_api_start;
    opts.max_body = TR_BODY_MAX;
    opts.payload = &api;
    status = fg_service_run(&opts);
done:
    fg_crypto_keyring_free(keyring);
    fg_config_dispose(&cfg, token_repository_vars, nvars);
    return status;
}
