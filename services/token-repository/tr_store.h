/*
 * The token store: table `tokens` of fg_tokens (migrations/0001_tokens.sql), one sealed token per
 * project. A token is sealed with AES-256-GCM under the keyring's current key (fg/crypto.h) with
 * "project:<id>" as authenticated context, so a sealed value copied to another row does not open.
 * Plaintext exists only in the caller's buffers and in fg_crypto's, never in SQL text, a log line
 * or an error message. Not thread-safe: the caller's connection is used by one thread (the main
 * thread in fg-token-repository).
 */
#ifndef TR_STORE_H
#define TR_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg/buf.h"
#include "fg/crypto.h"
#include "fg/error.h"
#include "fg/pg.h"
#include "tr_validate.h"

#define TR_LIST_LIMIT_MAX      1000 /* tokens in one listing page */
#define TR_ROTATE_BATCH        100  /* tokens re-encrypted in one transaction */
#define TR_ROTATE_FAILED_SHOWN 100  /* projects named in a rotation's failure list */
#define TR_CONTEXT_MAX         32   /* "project:" + 19 digits */

/* What may be shown about a stored token: never its value. */
typedef struct {
    int64_t project;
    char key_id[FG_CRYPTO_KEY_ID_MAX + 1];
    char expires_at[TR_TIME_TEXT_MAX]; /* RFC 3339 UTC; "" when the token does not expire */
    char created_at[TR_TIME_TEXT_MAX];
    char updated_at[TR_TIME_TEXT_MAX];
    bool expiring_soon; /* expires within the warning window, or has expired */
    bool expired;
} tr_token_info;

/* Stores (inserts or replaces) the token of `project`, sealed under the current key; expires_at
 * is a checked RFC 3339 text or NULL. *out_created says whether the project had none; *out
 * describes the stored row. FG_ETOOBIG for a token over FG_CRYPTO_PLAINTEXT_MAX, the database's
 * errors (fg/pg.h), FG_ERROR when sealing fails. */
int tr_store_put(bool *out_created, tr_token_info *out, fg_pg_conn *db,
                 const fg_crypto_keyring *keyring, int64_t project, const char *token, size_t len,
                 const char *expires_at, long long warning_days) FG_MUST_CHECK;

/* Appends the plaintext token of `project` to out_token (the caller wipes it with fg_crypto_wipe
 * once answered) and describes the row in *out. FG_ENOTFOUND when the project has no token.
 * FG_ECONFLICT when the stored value does not open here; *out_open_error then holds fg_crypto's
 * code (FG_ENOTFOUND: its key id is not in the keyring; FG_EAUTH: tampered, moved from another
 * row, or another key under that id; FG_EINVALID: not a sealed value) and the message says which,
 * without any value. Otherwise the database's errors. */
int tr_store_get(fg_buf *out_token, tr_token_info *out, int *out_open_error, fg_pg_conn *db,
                 const fg_crypto_keyring *keyring, int64_t project,
                 long long warning_days) FG_MUST_CHECK;

/* Deletes the token of `project`. FG_ENOTFOUND when there was none; the database's errors. */
int tr_store_delete(fg_pg_conn *db, int64_t project) FG_MUST_CHECK;

/* One page of the listing, by project id: up to `limit` (1..TR_LIST_LIMIT_MAX) tokens whose
 * project is greater than `after`. *out is a new array of *out_n entries (free() it; NULL when
 * empty). FG_EINVALID for a bad limit; the database's errors; FG_ENOMEM. */
int tr_store_list(tr_token_info **out, size_t *out_n, fg_pg_conn *db, int64_t after, size_t limit,
                  long long warning_days) FG_MUST_CHECK;

typedef struct {
    size_t rotated;   /* re-encrypted under the current key by this call */
    size_t failed;    /* under an old key but not openable here: left as they were */
    size_t remaining; /* not under the current key when the call ended (failed ones, and rows a
                         concurrent writer held) */
    size_t total;     /* tokens in the store when the call ended */
    int64_t failed_projects[TR_ROTATE_FAILED_SHOWN]; /* the first failed ones */
    size_t nfailed_shown;
} tr_rotation;

/* Re-encrypts every token not sealed under the keyring's current key, TR_ROTATE_BATCH rows per
 * transaction, rows locked with SKIP LOCKED so concurrent rotations (or instances) share the work
 * instead of waiting; a second run finds nothing to do. A token that does not open is logged
 * (project and key id only), counted as failed and left alone. On a database error the batches
 * already committed stay done (run it again); FG_EUNAVAILABLE, FG_ECONFLICT or FG_ERROR then. */
int tr_store_rotate(tr_rotation *out, fg_pg_conn *db,
                    const fg_crypto_keyring *keyring) FG_MUST_CHECK;

typedef struct {
    long long total;
    long long expiring_soon; /* expiring within the window, or expired */
    long long expired;
    long long stale_key; /* not under the current key: a rotation is due */
} tr_stats;

/* Counts for the metrics. The database's errors. */
int tr_store_stats(tr_stats *out, fg_pg_conn *db, const fg_crypto_keyring *keyring,
                   long long warning_days) FG_MUST_CHECK;

#endif
