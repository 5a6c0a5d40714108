/*
 * The token store (see tr_store.h). Every statement is parameterised and prepared once per
 * connection; timestamps come back as RFC 3339 UTC text from tokens_rfc3339() in the migration.
 */
#include "tr_store.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg/log.h"

/* The shown columns of a row; every statement using them binds the warning window as $1. */
#define INFO_COLUMNS                                                                               \
    "project_id, key_id, coalesce(tokens_rfc3339(expires_at), ''), tokens_rfc3339(created_at), "   \
    "tokens_rfc3339(updated_at), "                                                                 \
    "coalesce(expires_at <= now() + make_interval(days => $1::int), false), "                      \
    "coalesce(expires_at <= now(), false)"

#define SQL_PUT                                                                                    \
    "INSERT INTO tokens (project_id, sealed, expires_at) VALUES ($2::bigint, $3, "                 \
    "$4::timestamptz) "                                                                            \
    "ON CONFLICT (project_id) DO UPDATE SET sealed = EXCLUDED.sealed, "                            \
    "expires_at = EXCLUDED.expires_at, updated_at = now() "                                        \
    "RETURNING xmax = 0, " INFO_COLUMNS
#define SQL_GET    "SELECT sealed, " INFO_COLUMNS " FROM tokens WHERE project_id = $2::bigint"
#define SQL_DELETE "DELETE FROM tokens WHERE project_id = $1::bigint"
#define SQL_LIST                                                                                   \
    "SELECT " INFO_COLUMNS " FROM tokens WHERE project_id > $2::bigint "                           \
    "ORDER BY project_id LIMIT $3::int"
/* SKIP LOCKED: a row another rotation holds is that rotation's job; waiting for it would only
 * re-check a row that is current by then. */
#define SQL_ROTATE_CLAIM                                                                           \
    "SELECT project_id, key_id, sealed FROM tokens WHERE key_id <> $1 AND project_id > "           \
    "$2::bigint "                                                                                  \
    "ORDER BY project_id LIMIT $3::int FOR UPDATE SKIP LOCKED"
#define SQL_ROTATE_UPDATE "UPDATE tokens SET sealed = $2 WHERE project_id = $1::bigint"
#define SQL_ROTATE_COUNT  "SELECT count(*), count(*) FILTER (WHERE key_id <> $1) FROM tokens"
#define SQL_STATS                                                                                  \
    "SELECT count(*), "                                                                            \
    "count(*) FILTER (WHERE expires_at <= now() + make_interval(days => $1::int)), "               \
    "count(*) FILTER (WHERE expires_at <= now()), count(*) FILTER (WHERE key_id <> $2) "           \
    "FROM tokens"

#define INT_TEXT_MAX 24

/* ---- helpers ----------------------------------------------------------------------------- */

static void context_of(char out[TR_CONTEXT_MAX], int64_t project)
{
    snprintf(out, TR_CONTEXT_MAX, "project:%lld", (long long)project);
}

static void copy_text(char *out, size_t size, const char *text)
{
    snprintf(out, size, "%s", text ? text : "");
}

static int read_info(tr_token_info *out, const fg_pg_result *res, size_t row, size_t col)
{
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = fg_pg_result_int64(&out->project, res, row, col)) < 0 ||
        (rc = fg_pg_result_bool(&out->expiring_soon, res, row, col + 5)) < 0 ||
        (rc = fg_pg_result_bool(&out->expired, res, row, col + 6)) < 0)
        return rc;
    copy_text(out->key_id, sizeof(out->key_id), fg_pg_result_text(res, row, col + 1));
    copy_text(out->expires_at, sizeof(out->expires_at), fg_pg_result_text(res, row, col + 2));
    copy_text(out->created_at, sizeof(out->created_at), fg_pg_result_text(res, row, col + 3));
    copy_text(out->updated_at, sizeof(out->updated_at), fg_pg_result_text(res, row, col + 4));
    return 0;
}

/* Records why a sealed value did not open, naming the project and key id, never a value. */
static int open_failure(int crypto_rc, int64_t project, const char *key_id)
{
    switch (crypto_rc) {
    case FG_ENOTFOUND:
        return fg_error_set(FG_ECONFLICT,
                            "the token of project %lld is sealed under key \"%s\", which this "
                            "instance's FG_TOKEN_KEYS does not hold (every instance needs the new "
                            "keys before a rotation)",
                            (long long)project, key_id);
    case FG_EAUTH:
        return fg_error_set(FG_ECONFLICT,
                            "the token of project %lld does not authenticate under key \"%s\" "
                            "with this project as context: it was altered, copied from another "
                            "project's row, or that key id now names another key; store it again",
                            (long long)project, key_id);
    case FG_EINVALID:
        return fg_error_set(FG_ECONFLICT, "the stored value of project %lld is not a sealed token",
                            (long long)project);
    default:
        return fg_error_set(FG_ECONFLICT, "cannot open the token of project %lld: %s",
                            (long long)project, fg_error_last());
    }
}

/* Opens `sealed` of `project` into out; FG_ECONFLICT (see open_failure) with *out_crypto_rc. */
static int open_sealed(fg_buf *out, int *out_crypto_rc, const fg_crypto_keyring *keyring,
                       int64_t project, const char *key_id, const char *sealed)
{
    char context[TR_CONTEXT_MAX];
    int rc;

    context_of(context, project);
    *out_crypto_rc = 0;
    if ((rc = fg_crypto_decrypt(out, keyring, context, strlen(context), sealed, strlen(sealed))) <
        0) {
        *out_crypto_rc = rc;
        return open_failure(rc, project, key_id);
    }
    return 0;
}

/* ---- put, get, delete, list -------------------------------------------------------------- */

int tr_store_put(bool *out_created, tr_token_info *out, fg_pg_conn *db,
                 const fg_crypto_keyring *keyring, int64_t project, const char *token, size_t len,
                 const char *expires_at, long long warning_days)
{
    char context[TR_CONTEXT_MAX], id[INT_TEXT_MAX], days[INT_TEXT_MAX];
    const char *params[4];
    fg_pg_result *res = NULL;
    fg_buf sealed;
    int rc = FG_ERROR;

    fg_buf_init(&sealed, FG_CRYPTO_SEALED_MAX);
    context_of(context, project);
    if ((rc = fg_crypto_encrypt(&sealed, keyring, context, strlen(context), token, len)) < 0)
        goto done;
    snprintf(id, sizeof(id), "%lld", (long long)project);
    snprintf(days, sizeof(days), "%lld", warning_days);
    params[0] = days;
    params[1] = id;
    params[2] = sealed.ptr;
    params[3] = expires_at;
    if ((rc = fg_pg_exec_prepared(&res, db, "tr_put", SQL_PUT, 4, params)) < 0)
        goto done;
    if (fg_pg_result_rows(res) != 1) {
        rc = fg_error_set(FG_ERROR, "storing the token of project %lld returned no row",
                          (long long)project);
        goto done;
    }
    if ((rc = fg_pg_result_bool(out_created, res, 0, 0)) < 0 ||
        (rc = read_info(out, res, 0, 1)) < 0)
        goto done;
    rc = 0;
done:
    fg_pg_result_free(res);
    fg_buf_dispose(&sealed);
    return rc;
}

int tr_store_get(fg_buf *out_token, tr_token_info *out, int *out_open_error, fg_pg_conn *db,
                 const fg_crypto_keyring *keyring, int64_t project, long long warning_days)
{
    char id[INT_TEXT_MAX], days[INT_TEXT_MAX];
    const char *params[2] = {days, id};
    fg_pg_result *res = NULL;
    int rc = FG_ERROR;

    *out_open_error = 0;
    snprintf(id, sizeof(id), "%lld", (long long)project);
    snprintf(days, sizeof(days), "%lld", warning_days);
    if ((rc = fg_pg_exec_prepared(&res, db, "tr_get", SQL_GET, 2, params)) < 0)
        goto done;
    if (fg_pg_result_rows(res) == 0) {
        rc = fg_error_set(FG_ENOTFOUND, "project %lld has no token", (long long)project);
        goto done;
    }
    if ((rc = read_info(out, res, 0, 1)) < 0 ||
        (rc = open_sealed(out_token, out_open_error, keyring, project, out->key_id,
                          fg_pg_result_text(res, 0, 0))) < 0)
        goto done;
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

int tr_store_delete(fg_pg_conn *db, int64_t project)
{
    char id[INT_TEXT_MAX];
    const char *params[1] = {id};
    fg_pg_result *res = NULL;
    int rc = FG_ERROR;

    snprintf(id, sizeof(id), "%lld", (long long)project);
    if ((rc = fg_pg_exec_prepared(&res, db, "tr_delete", SQL_DELETE, 1, params)) < 0)
        goto done;
    if (fg_pg_result_affected(res) == 0) {
        rc = fg_error_set(FG_ENOTFOUND, "project %lld has no token", (long long)project);
        goto done;
    }
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

int tr_store_list(tr_token_info **out, size_t *out_n, fg_pg_conn *db, int64_t after, size_t limit,
                  long long warning_days)
{
    char from[INT_TEXT_MAX], count[INT_TEXT_MAX], days[INT_TEXT_MAX];
    const char *params[3] = {days, from, count};
    fg_pg_result *res = NULL;
    tr_token_info *list = NULL;
    size_t n = 0;
    int rc = FG_ERROR;

    *out = NULL;
    *out_n = 0;
    if (limit < 1 || limit > TR_LIST_LIMIT_MAX)
        return fg_error_set(FG_EINVALID, "limit must be 1 to %d", TR_LIST_LIMIT_MAX);
    snprintf(from, sizeof(from), "%lld", (long long)after);
    snprintf(count, sizeof(count), "%zu", limit);
    snprintf(days, sizeof(days), "%lld", warning_days);
    if ((rc = fg_pg_exec_prepared(&res, db, "tr_list", SQL_LIST, 3, params)) < 0)
        goto done;
    n = fg_pg_result_rows(res);
    if (n > 0 && (list = calloc(n, sizeof(*list))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory listing tokens");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        if ((rc = read_info(&list[i], res, i, 0)) < 0)
            goto done;
    *out = list;
    *out_n = n;
    list = NULL;
    rc = 0;
done:
    free(list);
    fg_pg_result_free(res);
    return rc;
}

/* ---- rotation ---------------------------------------------------------------------------- */

/* Re-seals one claimed row under the current key inside the open transaction. Returns 0 when
 * done, 1 when it does not open here (counted and logged by the caller), or a database error. */
static int rotate_row(fg_pg_conn *db, const fg_crypto_keyring *keyring, int64_t project,
                      const char *key_id, const char *sealed)
{
    char context[TR_CONTEXT_MAX], id[INT_TEXT_MAX];
    const char *params[2];
    fg_buf plain, resealed;
    int crypto_rc, rc = FG_ERROR;

    fg_buf_init(&plain, FG_CRYPTO_PLAINTEXT_MAX);
    fg_buf_init(&resealed, FG_CRYPTO_SEALED_MAX);
    context_of(context, project);
    if (open_sealed(&plain, &crypto_rc, keyring, project, key_id, sealed) < 0) {
        fg_log_emit(FG_LOG_WARN,
                    FG_LOG_FIELDS(FG_LOG_INT("project", project), FG_LOG_STR("keyId", key_id)),
                    "rotation skips a token: %s", fg_error_last());
        rc = 1;
        goto done;
    }
    if ((rc = fg_crypto_encrypt(&resealed, keyring, context, strlen(context), plain.ptr,
                                plain.len)) < 0)
        goto done;
    snprintf(id, sizeof(id), "%lld", (long long)project);
    params[0] = id;
    params[1] = resealed.ptr;
    if ((rc = fg_pg_exec_prepared(NULL, db, "tr_rotate_update", SQL_ROTATE_UPDATE, 2, params)) < 0)
        goto done;
    rc = 0;
done:
    fg_crypto_wipe(plain.ptr, plain.len);
    fg_buf_dispose(&plain);
    fg_buf_dispose(&resealed);
    return rc;
}

/* One transaction: claims up to TR_ROTATE_BATCH stale rows after *cursor and re-seals them.
 * *out_claimed is how many rows it claimed (0: nothing left for this call). */
static int rotate_batch(tr_rotation *out, size_t *out_claimed, int64_t *cursor, fg_pg_conn *db,
                        const fg_crypto_keyring *keyring)
{
    char from[INT_TEXT_MAX], count[INT_TEXT_MAX];
    const char *params[3] = {fg_crypto_keyring_current_id(keyring), from, count};
    fg_pg_result *res = NULL;
    size_t rotated = 0;
    int rc = FG_ERROR;

    *out_claimed = 0;
    snprintf(from, sizeof(from), "%lld", (long long)*cursor);
    snprintf(count, sizeof(count), "%d", TR_ROTATE_BATCH);
    if ((rc = fg_pg_begin(db)) < 0)
        return rc;
    if ((rc = fg_pg_exec_prepared(&res, db, "tr_rotate_claim", SQL_ROTATE_CLAIM, 3, params)) < 0)
        goto done;
    for (size_t i = 0; i < fg_pg_result_rows(res); i++) {
        int64_t project;
        if ((rc = fg_pg_result_int64(&project, res, i, 0)) < 0 ||
            (rc = rotate_row(db, keyring, project, fg_pg_result_text(res, i, 1),
                             fg_pg_result_text(res, i, 2))) < 0)
            goto done;
        if (rc == 0) {
            rotated++;
        } else {
            if (out->nfailed_shown < TR_ROTATE_FAILED_SHOWN)
                out->failed_projects[out->nfailed_shown++] = project;
            out->failed++;
        }
        *cursor = project; /* a row that does not open is passed over, not claimed again */
    }
    if ((rc = fg_pg_commit(db)) < 0)
        goto done;
    *out_claimed = fg_pg_result_rows(res);
    out->rotated += rotated;
    rc = 0;
done:
    if (rc < 0 && fg_pg_rollback(db) < 0)
        fg_log_warn("rollback after a failed rotation batch: %s", fg_error_last());
    fg_pg_result_free(res);
    return rc;
}

static int count_rows(tr_rotation *out, fg_pg_conn *db, const fg_crypto_keyring *keyring)
{
    const char *params[1] = {fg_crypto_keyring_current_id(keyring)};
    fg_pg_result *res = NULL;
    int64_t total = 0, stale = 0;
    int rc;

    if ((rc = fg_pg_exec_prepared(&res, db, "tr_rotate_count", SQL_ROTATE_COUNT, 1, params)) < 0 ||
        (rc = fg_pg_result_int64(&total, res, 0, 0)) < 0 ||
        (rc = fg_pg_result_int64(&stale, res, 0, 1)) < 0)
        goto done;
    out->total = (size_t)total;
    out->remaining = (size_t)stale;
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

int tr_store_rotate(tr_rotation *out, fg_pg_conn *db, const fg_crypto_keyring *keyring)
{
    int64_t cursor = 0;
    size_t claimed;
    int rc;

    memset(out, 0, sizeof(*out));
    do {
        if ((rc = rotate_batch(out, &claimed, &cursor, db, keyring)) < 0)
            return rc;
    } while (claimed > 0);
    return count_rows(out, db, keyring);
}

/* ---- metrics ----------------------------------------------------------------------------- */

int tr_store_stats(tr_stats *out, fg_pg_conn *db, const fg_crypto_keyring *keyring,
                   long long warning_days)
{
    char days[INT_TEXT_MAX];
    const char *params[2] = {days, fg_crypto_keyring_current_id(keyring)};
    fg_pg_result *res = NULL;
    int64_t v[4];
    int rc = FG_ERROR;

    snprintf(days, sizeof(days), "%lld", warning_days);
    if ((rc = fg_pg_exec_prepared(&res, db, "tr_stats", SQL_STATS, 2, params)) < 0)
        goto done;
    for (size_t i = 0; i < 4; i++)
        if ((rc = fg_pg_result_int64(&v[i], res, 0, i)) < 0)
            goto done;
    out->total = v[0];
    out->expiring_soon = v[1];
    out->expired = v[2];
    out->stale_key = v[3];
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}
