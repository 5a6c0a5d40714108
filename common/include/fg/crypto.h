/*
 * Cryptography on OpenSSL 3 (libcrypto): digests, HMAC, constant-time comparison, random bytes,
 * the webhook secrets of DESIGN.md "Trust and secrets", and AES-256-GCM with key ids for tokens
 * at rest. It does not manage configuration (callers pass key bytes or the FG_TOKEN_KEYS text) and
 * never logs; no error message it records contains key material, a secret or a plaintext.
 * Every function is thread-safe; a keyring is immutable after fg_crypto_keyring_new and may be
 * shared between threads.
 */
#ifndef FG_CRYPTO_H
#define FG_CRYPTO_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/buf.h"
#include "fg/error.h"

#define FG_CRYPTO_SHA1_LEN             20
#define FG_CRYPTO_SHA1_HEX_LEN         40
#define FG_CRYPTO_SHA256_LEN           32
#define FG_CRYPTO_SHA256_HEX_LEN       64
#define FG_CRYPTO_KEY_LEN              32 /* AES-256 key bytes; every FG_TOKEN_KEYS key has exactly this */
#define FG_CRYPTO_KEY_ID_MAX           32    /* a key id is 1..32 of [A-Za-z0-9_-] */
#define FG_CRYPTO_KEYS_MAX             16    /* keys in one keyring */
#define FG_CRYPTO_KEYRING_SPEC_MAX     4096  /* bytes of the FG_TOKEN_KEYS text */
#define FG_CRYPTO_PLAINTEXT_MAX        65536 /* bytes one fg_crypto_encrypt call accepts */
#define FG_CRYPTO_SEALED_MAX           (FG_CRYPTO_PLAINTEXT_MAX / 3 * 4 + 256) /* text it produces */
#define FG_CRYPTO_SIGNATURE_HEADER_MAX 128 /* bytes of an X-Hub-Signature-256 value */

/* Raw HMAC-SHA256 of data under key into out. FG_ERROR when libcrypto fails. */
int fg_crypto_hmac_sha256(unsigned char out[FG_CRYPTO_SHA256_LEN], const void *key, size_t key_len,
                          const void *data, size_t len) FG_MUST_CHECK;

/* Lower-case hex HMAC-SHA256, NUL-terminated. FG_ERROR when libcrypto fails. */
int fg_crypto_hmac_sha256_hex(char out[FG_CRYPTO_SHA256_HEX_LEN + 1], const void *key,
                              size_t key_len, const void *data, size_t len) FG_MUST_CHECK;

/* Lower-case hex SHA-256 of data, NUL-terminated (delivery dedupe keys). FG_ERROR when libcrypto
 * fails. */
int fg_crypto_sha256_hex(char out[FG_CRYPTO_SHA256_HEX_LEN + 1], const void *data,
                         size_t len) FG_MUST_CHECK;

/* Lower-case hex SHA-1 of data, NUL-terminated. Not for security: it names persons and
 * activities in the graph (DESIGN.md "The graph"). FG_ERROR when libcrypto fails. */
int fg_crypto_sha1_hex(char out[FG_CRYPTO_SHA1_HEX_LEN + 1], const void *data,
                       size_t len) FG_MUST_CHECK;

/* True when the len bytes at a and b are equal; the time taken does not depend on where they
 * differ (CRYPTO_memcmp). */
bool fg_crypto_equal(const void *a, const void *b, size_t len);

/* True when the two byte strings are equal; compares their SHA-256 digests in constant time, so
 * neither the content nor the length of the expected value leaks through timing (GitLab's
 * X-Gitlab-Token against the hook secret). */
bool fg_crypto_equal_text(const void *a, size_t a_len, const void *b, size_t b_len);

/* Fills out with len cryptographically strong random bytes. FG_ERROR when the generator fails. */
int fg_crypto_random(void *out, size_t len) FG_MUST_CHECK;

/* Overwrites len bytes at p with zeros in a way the compiler cannot drop (OPENSSL_cleanse). Use
 * it on every buffer that held a key, a token or a hook secret before freeing it. */
void fg_crypto_wipe(void *p, size_t len);

/* The hook secret of a project: lower-case hex(HMAC-SHA256(key, "<forge>:<id>")), NUL-terminated.
 * key is the decoded FG_HOOK_SECRET_KEY; id the decimal forge repository/project id as text.
 * FG_EINVALID when forge is empty or contains ':' or id is not a non-empty string of decimal
 * digits (the derivation must be unambiguous); FG_ERROR when libcrypto fails. */
int fg_crypto_hook_secret(char out[FG_CRYPTO_SHA256_HEX_LEN + 1], const void *key, size_t key_len,
                          const char *forge, const char *id) FG_MUST_CHECK;

/* Checks a GitHub X-Hub-Signature-256 header ("sha256=" + 64 hex digits, either case) against
 * HMAC-SHA256(secret, body), in constant time. Returns 0 when it matches, FG_EINVALID when the
 * header is NULL or malformed, FG_EAUTH when it is well-formed but does not match, FG_ERROR when
 * libcrypto fails. */
int fg_crypto_github_verify(const char *header, const void *body, size_t body_len,
                            const void *secret, size_t secret_len) FG_MUST_CHECK;

/* ---- AES-256-GCM with key ids (tokens at rest) ----
 *
 * A sealed value is text: "v1:<keyid>:<base64(nonce[12] | ciphertext | tag[16])>". The version
 * and key id are authenticated as additional data along with the caller's optional context, so
 * a value cannot be moved under another key id, nor (with a context) to another row. */

typedef struct fg_crypto_keyring fg_crypto_keyring;

/* Parses FG_TOKEN_KEYS ("id:base64,id:base64"; the first key encrypts, all decrypt) into a new
 * keyring the caller frees with fg_crypto_keyring_free. FG_EINVALID when the text is empty, an
 * entry has no valid id ([A-Za-z0-9_-], 1..FG_CRYPTO_KEY_ID_MAX; the entry is then named by its
 * position, since a missing id may mean the text is a bare key), an id repeats, a key is not
 * base64 or is not exactly FG_CRYPTO_KEY_LEN bytes (named by its id), or there are more than
 * FG_CRYPTO_KEYS_MAX keys; FG_ETOOBIG past FG_CRYPTO_KEYRING_SPEC_MAX; FG_ENOMEM. Messages never
 * contain key material. */
int fg_crypto_keyring_new(fg_crypto_keyring **out, const char *spec) FG_MUST_CHECK;

/* Wipes every key and frees the keyring. Accepts NULL. */
void fg_crypto_keyring_free(fg_crypto_keyring *keyring);

/* Id of the key that encrypts (the first one). Owned by the keyring. */
const char *fg_crypto_keyring_current_id(const fg_crypto_keyring *keyring);

/* Number of keys in the keyring. */
size_t fg_crypto_keyring_count(const fg_crypto_keyring *keyring);

/* Seals plain (len bytes) under the current key with a fresh random nonce and appends the sealed
 * text to out. context (context_len bytes, may be NULL/0) is authenticated but not stored: the
 * same context must be given to fg_crypto_decrypt. FG_ETOOBIG when len exceeds
 * FG_CRYPTO_PLAINTEXT_MAX or out's cap is reached; FG_ERROR when libcrypto fails. On error out is
 * unchanged. */
int fg_crypto_encrypt(fg_buf *out, const fg_crypto_keyring *keyring, const void *context,
                      size_t context_len, const void *plain, size_t len) FG_MUST_CHECK;

/* Opens sealed text (len bytes) with the key its id names and appends the plaintext to out
 * (NUL-terminated by fg_buf; wipe it with fg_crypto_wipe(out->ptr, out->len) when done).
 * FG_EINVALID when the text is not a v1 sealed value; FG_ENOTFOUND when no key has its id;
 * FG_EAUTH when authentication fails (tampered text, wrong key under that id, other context);
 * FG_ETOOBIG when out's cap is reached; FG_ERROR when libcrypto fails. On error out is unchanged
 * and no partial plaintext is left in memory. */
int fg_crypto_decrypt(fg_buf *out, const fg_crypto_keyring *keyring, const void *context,
                      size_t context_len, const char *sealed, size_t len) FG_MUST_CHECK;

/* True when sealed is a well-formed v1 value under the keyring's current key, i.e. it needs no
 * re-encryption after a rotation. Does not authenticate it. */
bool fg_crypto_is_current(const fg_crypto_keyring *keyring, const char *sealed, size_t len);

#endif
