/*
 * Cryptography on OpenSSL 3 (see fg/crypto.h). Only the EVP/one-shot interfaces are used: the
 * low-level SHA*_Init and HMAC_CTX families are deprecated in OpenSSL 3.
 */
#include "fg/crypto.h"

#include "fg/text.h"

#include <stdint.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>

#include "fg/base64.h"

#define SEALED_VERSION "v1"
#define NONCE_LEN      12
#define TAG_LEN        16

typedef struct {
    char id[FG_CRYPTO_KEY_ID_MAX + 1];
    unsigned char key[FG_CRYPTO_KEY_LEN];
} keyring_key;

struct fg_crypto_keyring {
    size_t count;
    keyring_key keys[FG_CRYPTO_KEYS_MAX]; /* keys[0] encrypts */
};

/* ---- digests, HMAC, comparison ---- */

static void to_hex(char *out, const unsigned char *bytes, size_t len)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < len; i++) {
        out[2 * i] = digits[bytes[i] >> 4];
        out[2 * i + 1] = digits[bytes[i] & 15];
    }
    out[2 * len] = '\0';
}

static int digest(unsigned char *out, const EVP_MD *md, const void *data, size_t len)
{
    if (EVP_Digest(data, len, out, NULL, md, NULL) != 1)
        return fg_error_set(FG_ERROR, "libcrypto: digest failed");
    return 0;
}

int fg_crypto_hmac_sha256(unsigned char out[FG_CRYPTO_SHA256_LEN], const void *key, size_t key_len,
                          const void *data, size_t len)
{
    unsigned int out_len = FG_CRYPTO_SHA256_LEN;
    static const unsigned char no_key[1];

    if (key_len > INT32_MAX)
        return fg_error_set(FG_EINVALID, "HMAC key too long");
    /* HMAC() treats a NULL key as "reuse the previous one"; an empty key must be a real one. */
    if (HMAC(EVP_sha256(), key_len ? key : no_key, (int)key_len, data, len, out, &out_len) == NULL)
        return fg_error_set(FG_ERROR, "libcrypto: HMAC-SHA256 failed");
    return 0;
}

int fg_crypto_hmac_sha256_hex(char out[FG_CRYPTO_SHA256_HEX_LEN + 1], const void *key,
                              size_t key_len, const void *data, size_t len)
{
    unsigned char mac[FG_CRYPTO_SHA256_LEN];
    int rc;

    if ((rc = fg_crypto_hmac_sha256(mac, key, key_len, data, len)) < 0)
        return rc;
    to_hex(out, mac, sizeof(mac));
    fg_crypto_wipe(mac, sizeof(mac));
    return 0;
}

int fg_crypto_sha256_hex(char out[FG_CRYPTO_SHA256_HEX_LEN + 1], const void *data, size_t len)
{
    unsigned char md[FG_CRYPTO_SHA256_LEN];
    int rc;

    if ((rc = digest(md, EVP_sha256(), data, len)) < 0)
        return rc;
    to_hex(out, md, sizeof(md));
    return 0;
}

int fg_crypto_sha1_hex(char out[FG_CRYPTO_SHA1_HEX_LEN + 1], const void *data, size_t len)
{
    unsigned char md[FG_CRYPTO_SHA1_LEN];
    int rc;

    if ((rc = digest(md, EVP_sha1(), data, len)) < 0)
        return rc;
    to_hex(out, md, sizeof(md));
    return 0;
}

bool fg_crypto_equal(const void *a, const void *b, size_t len)
{
    return CRYPTO_memcmp(a, b, len) == 0;
}

bool fg_crypto_equal_text(const void *a, size_t a_len, const void *b, size_t b_len)
{
    unsigned char da[FG_CRYPTO_SHA256_LEN], db[FG_CRYPTO_SHA256_LEN];
    bool same;

    if (digest(da, EVP_sha256(), a, a_len) < 0 || digest(db, EVP_sha256(), b, b_len) < 0)
        return false;
    same = CRYPTO_memcmp(da, db, sizeof(da)) == 0;
    fg_crypto_wipe(da, sizeof(da));
    fg_crypto_wipe(db, sizeof(db));
    return same;
}

int fg_crypto_random(void *out, size_t len)
{
    if (len > INT32_MAX || RAND_bytes(out, (int)len) != 1)
        return fg_error_set(FG_ERROR, "libcrypto: random generator failed");
    return 0;
}

void fg_crypto_wipe(void *p, size_t len)
{
    if (p != NULL && len > 0)
        OPENSSL_cleanse(p, len);
}

/* ---- webhook secrets ---- */

int fg_crypto_hook_secret(char out[FG_CRYPTO_SHA256_HEX_LEN + 1], const void *key, size_t key_len,
                          const char *forge, const char *id)
{
    fg_buf input;
    int rc;

    if (forge == NULL || forge[0] == '\0' || strchr(forge, ':') != NULL)
        return fg_error_set(FG_EINVALID, "hook secret: the forge name is empty or contains ':'");
    if (id == NULL || id[0] == '\0' || strspn(id, "0123456789") != strlen(id))
        return fg_error_set(FG_EINVALID, "hook secret: the project id is not a decimal number");
    fg_buf_init(&input, 256);
    rc = fg_buf_printf(&input, "%s:%s", forge, id);
    if (rc == 0)
        rc = fg_crypto_hmac_sha256_hex(out, key, key_len, input.ptr, input.len);
    fg_buf_dispose(&input);
    return rc;
}

int fg_crypto_github_verify(const char *header, const void *body, size_t body_len,
                            const void *secret, size_t secret_len)
{
    static const char prefix[] = "sha256=";
    unsigned char given[FG_CRYPTO_SHA256_LEN], expected[FG_CRYPTO_SHA256_LEN];
    const char *hex;
    int rc;

    if (header == NULL)
        return fg_error_set(FG_EINVALID, "signature header is missing");
    if (strncmp(header, prefix, sizeof(prefix) - 1) != 0)
        return fg_error_set(FG_EINVALID, "signature header does not start with sha256=");
    hex = header + sizeof(prefix) - 1;
    if (strnlen(hex, FG_CRYPTO_SHA256_HEX_LEN + 1) != FG_CRYPTO_SHA256_HEX_LEN)
        return fg_error_set(FG_EINVALID, "signature header does not hold 64 hex digits");
    for (size_t i = 0; i < FG_CRYPTO_SHA256_LEN; i++) {
        int hi = fg_hex_value(hex[2 * i]), lo = fg_hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return fg_error_set(FG_EINVALID, "signature header holds a non-hex character");
        given[i] = (unsigned char)(hi << 4 | lo);
    }
    if ((rc = fg_crypto_hmac_sha256(expected, secret, secret_len, body, body_len)) < 0)
        return rc;
    rc = fg_crypto_equal(given, expected, sizeof(given))
             ? 0
             : fg_error_set(FG_EAUTH, "signature does not match the body");
    fg_crypto_wipe(expected, sizeof(expected));
    return rc;
}

/* ---- keyring ---- */

static bool valid_key_id(const char *id, size_t len)
{
    static const char allowed[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";

    if (len == 0 || len > FG_CRYPTO_KEY_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (id[i] == '\0' || strchr(allowed, id[i]) == NULL)
            return false;
    }
    return true;
}

static const keyring_key *find_key(const fg_crypto_keyring *kr, const char *id, size_t len)
{
    for (size_t i = 0; i < kr->count; i++) {
        if (strlen(kr->keys[i].id) == len && memcmp(kr->keys[i].id, id, len) == 0)
            return &kr->keys[i];
    }
    return NULL;
}

/* One "id:base64" entry; position is 1-based, for messages about entries without a usable id. */
static int parse_entry(fg_crypto_keyring *kr, const char *entry, size_t len, size_t position)
{
    const char *colon = memchr(entry, ':', len);
    size_t id_len = colon ? (size_t)(colon - entry) : 0;
    keyring_key *slot;
    fg_buf raw;
    int rc = FG_ERROR;

    if (colon == NULL || !valid_key_id(entry, id_len))
        return fg_error_set(FG_EINVALID,
                            "FG_TOKEN_KEYS: entry %zu has no valid key id (expected "
                            "id:base64 with id of 1-%d characters [A-Za-z0-9_-])",
                            position, FG_CRYPTO_KEY_ID_MAX);
    if (find_key(kr, entry, id_len) != NULL)
        return fg_error_set(FG_EINVALID, "FG_TOKEN_KEYS: key id '%.*s' appears twice", (int)id_len,
                            entry);
    if (kr->count == FG_CRYPTO_KEYS_MAX)
        return fg_error_set(FG_EINVALID, "FG_TOKEN_KEYS: more than %d keys", FG_CRYPTO_KEYS_MAX);
    slot = &kr->keys[kr->count];
    memcpy(slot->id, entry, id_len);
    slot->id[id_len] = '\0';
    fg_buf_init(&raw, 3 * FG_CRYPTO_KEYRING_SPEC_MAX / 4 + 4);
    if (fg_base64_decode(&raw, colon + 1, len - id_len - 1) < 0) {
        rc = fg_error_set(FG_EINVALID, "FG_TOKEN_KEYS: key '%s' is not valid base64", slot->id);
        goto done;
    }
    if (raw.len != FG_CRYPTO_KEY_LEN) {
        rc =
            fg_error_set(FG_EINVALID, "FG_TOKEN_KEYS: key '%s' is %zu bytes, exactly %d are needed",
                         slot->id, raw.len, FG_CRYPTO_KEY_LEN);
        goto done;
    }
    memcpy(slot->key, raw.ptr, FG_CRYPTO_KEY_LEN);
    kr->count++;
    rc = 0;
done:
    fg_crypto_wipe(raw.ptr, raw.len);
    fg_buf_dispose(&raw);
    return rc;
}

int fg_crypto_keyring_new(fg_crypto_keyring **out, const char *spec)
{
    fg_crypto_keyring *kr = NULL;
    size_t len, start = 0, position = 1;
    int rc = FG_ERROR;

    *out = NULL;
    if (spec == NULL || spec[0] == '\0')
        return fg_error_set(FG_EINVALID, "FG_TOKEN_KEYS: no key given (expected id:base64,...)");
    len = strnlen(spec, FG_CRYPTO_KEYRING_SPEC_MAX + 1);
    if (len > FG_CRYPTO_KEYRING_SPEC_MAX)
        return fg_error_set(FG_ETOOBIG, "FG_TOKEN_KEYS: longer than %d bytes",
                            FG_CRYPTO_KEYRING_SPEC_MAX);
    if ((kr = calloc(1, sizeof(*kr))) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory");
    while (start <= len) {
        const char *comma = memchr(spec + start, ',', len - start);
        size_t end = comma ? (size_t)(comma - spec) : len;

        if ((rc = parse_entry(kr, spec + start, end - start, position++)) < 0)
            goto done;
        start = end + 1;
    }
    *out = kr;
    kr = NULL;
    rc = 0;
done:
    fg_crypto_keyring_free(kr);
    return rc;
}

void fg_crypto_keyring_free(fg_crypto_keyring *keyring)
{
    if (keyring == NULL)
        return;
    fg_crypto_wipe(keyring, sizeof(*keyring));
    free(keyring);
}

const char *fg_crypto_keyring_current_id(const fg_crypto_keyring *keyring)
{
    return keyring->keys[0].id;
}

size_t fg_crypto_keyring_count(const fg_crypto_keyring *keyring)
{
    return keyring->count;
}

/* ---- AES-256-GCM ---- */

/* The additional authenticated data: "v1:<keyid>:" then the caller's context. EVP_CipherUpdate
 * with a NULL output feeds AAD in either direction. */
static int put_aad(EVP_CIPHER_CTX *ctx, const char *id, const void *context, size_t context_len)
{
    char header[FG_CRYPTO_KEY_ID_MAX + 8];
    int n = snprintf(header, sizeof(header), "%s:%s:", SEALED_VERSION, id);
    int ignored;

    if (n < 0 || (size_t)n >= sizeof(header) || context_len > INT32_MAX)
        return fg_error_set(FG_EINVALID, "sealed value: key id or context too long");
    if (EVP_CipherUpdate(ctx, NULL, &ignored, (const unsigned char *)header, n) != 1)
        return fg_error_set(FG_ERROR, "libcrypto: AES-GCM additional data failed");
    if (context_len > 0 && EVP_CipherUpdate(ctx, NULL, &ignored, context, (int)context_len) != 1)
        return fg_error_set(FG_ERROR, "libcrypto: AES-GCM additional data failed");
    return 0;
}

int fg_crypto_encrypt(fg_buf *out, const fg_crypto_keyring *keyring, const void *context,
                      size_t context_len, const void *plain, size_t len)
{
    const keyring_key *key = &keyring->keys[0];
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *blob = NULL; /* nonce | ciphertext | tag */
    size_t blob_len = NONCE_LEN + len + TAG_LEN, mark = out->len;
    int n, tail, rc = FG_ERROR;

    if (len > FG_CRYPTO_PLAINTEXT_MAX)
        return fg_error_set(FG_ETOOBIG, "plaintext of %zu bytes exceeds %d", len,
                            FG_CRYPTO_PLAINTEXT_MAX);
    if ((blob = malloc(blob_len)) == NULL || (ctx = EVP_CIPHER_CTX_new()) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory");
        goto done;
    }
    if ((rc = fg_crypto_random(blob, NONCE_LEN)) < 0)
        goto done;
    rc = FG_ERROR;
    if (EVP_EncryptInit_ex2(ctx, EVP_aes_256_gcm(), key->key, blob, NULL) != 1) {
        rc = fg_error_set(FG_ERROR, "libcrypto: AES-GCM init failed");
        goto done;
    }
    if ((rc = put_aad(ctx, key->id, context, context_len)) < 0)
        goto done;
    if (EVP_EncryptUpdate(ctx, blob + NONCE_LEN, &n, plain, (int)len) != 1 ||
        EVP_EncryptFinal_ex(ctx, blob + NONCE_LEN + n, &tail) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, TAG_LEN, blob + NONCE_LEN + len) != 1) {
        rc = fg_error_set(FG_ERROR, "libcrypto: AES-GCM encryption failed");
        goto done;
    }
    if ((rc = fg_buf_printf(out, "%s:%s:", SEALED_VERSION, key->id)) < 0 ||
        (rc = fg_base64_encode(out, blob, blob_len)) < 0)
        goto done;
    rc = 0;
done:
    if (rc < 0 && out->len > mark) {
        out->len = mark;
        out->ptr[mark] = '\0';
    }
    EVP_CIPHER_CTX_free(ctx);
    free(blob);
    return rc;
}

/* Splits "v1:<id>:<base64>" into its key id and base64 part, without copying. */
static int split_sealed(const char **out_id, size_t *out_id_len, const char **out_b64,
                        size_t *out_b64_len, const char *sealed, size_t len)
{
    static const char prefix[] = SEALED_VERSION ":";
    const char *id, *colon;

    if (sealed == NULL || len < sizeof(prefix) || memcmp(sealed, prefix, sizeof(prefix) - 1) != 0)
        return fg_error_set(FG_EINVALID, "sealed value: not a " SEALED_VERSION " value");
    id = sealed + sizeof(prefix) - 1;
    colon = memchr(id, ':', len - (size_t)(id - sealed));
    if (colon == NULL || !valid_key_id(id, (size_t)(colon - id)))
        return fg_error_set(FG_EINVALID, "sealed value: no valid key id");
    *out_id = id;
    *out_id_len = (size_t)(colon - id);
    *out_b64 = colon + 1;
    *out_b64_len = len - (size_t)(colon + 1 - sealed);
    return 0;
}

static int open_blob(fg_buf *out, const keyring_key *key, const void *context, size_t context_len,
                     const unsigned char *blob, size_t blob_len)
{
    size_t text_len = blob_len - NONCE_LEN - TAG_LEN;
    EVP_CIPHER_CTX *ctx = NULL;
    unsigned char *plain = NULL;
    unsigned char tag[TAG_LEN];
    int n = 0, tail = 0, rc = FG_ERROR;

    memcpy(tag, blob + blob_len - TAG_LEN, TAG_LEN);
    if ((plain = malloc(text_len + 1)) == NULL || (ctx = EVP_CIPHER_CTX_new()) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory");
        goto done;
    }
    if (EVP_DecryptInit_ex2(ctx, EVP_aes_256_gcm(), key->key, blob, NULL) != 1) {
        rc = fg_error_set(FG_ERROR, "libcrypto: AES-GCM init failed");
        goto done;
    }
    if ((rc = put_aad(ctx, key->id, context, context_len)) < 0)
        goto done;
    if (EVP_DecryptUpdate(ctx, plain, &n, blob + NONCE_LEN, (int)text_len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, TAG_LEN, tag) != 1) {
        rc = fg_error_set(FG_ERROR, "libcrypto: AES-GCM decryption failed");
        goto done;
    }
    /* GCM releases plaintext before the tag is checked: nothing reaches out unless Final
     * succeeds. */
    if (EVP_DecryptFinal_ex(ctx, plain + n, &tail) != 1) {
        rc = fg_error_set(FG_EAUTH, "sealed value under key '%s' failed authentication", key->id);
        goto done;
    }
    rc = fg_buf_put(out, plain, text_len);
done:
    fg_crypto_wipe(plain, text_len);
    free(plain);
    EVP_CIPHER_CTX_free(ctx);
    return rc;
}

int fg_crypto_decrypt(fg_buf *out, const fg_crypto_keyring *keyring, const void *context,
                      size_t context_len, const char *sealed, size_t len)
{
    const char *id = NULL, *b64 = NULL;
    size_t id_len = 0, b64_len = 0;
    const keyring_key *key;
    fg_buf blob;
    int rc = FG_ERROR;

    fg_buf_init(&blob, FG_CRYPTO_SEALED_MAX);
    if ((rc = split_sealed(&id, &id_len, &b64, &b64_len, sealed, len)) < 0)
        goto done;
    if ((key = find_key(keyring, id, id_len)) == NULL) {
        rc = fg_error_set(FG_ENOTFOUND, "sealed value: no key with id '%.*s'", (int)id_len, id);
        goto done;
    }
    if (fg_base64_decode(&blob, b64, b64_len) < 0 || blob.len < NONCE_LEN + TAG_LEN) {
        rc = fg_error_set(FG_EINVALID, "sealed value under key '%s': malformed body", key->id);
        goto done;
    }
    rc = open_blob(out, key, context, context_len, (const unsigned char *)blob.ptr, blob.len);
done:
    fg_buf_dispose(&blob);
    return rc;
}

bool fg_crypto_is_current(const fg_crypto_keyring *keyring, const char *sealed, size_t len)
{
    const char *id = NULL, *b64 = NULL;
    size_t id_len = 0, b64_len = 0;
    const char *current = keyring->keys[0].id;

    if (split_sealed(&id, &id_len, &b64, &b64_len, sealed, len) < 0)
        return false;
    return id_len == strlen(current) && memcmp(id, current, id_len) == 0 && b64_len > 0;
}
