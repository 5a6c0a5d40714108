/* fg/crypto: published vectors for the digests and HMAC, GitHub's signature example, the hook
 * secret derivation, and AES-256-GCM sealing with key ids (tamper, wrong key, rotation). */
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

#include "fg/crypto.h"

#define KEY_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=" /* bytes 0..31 */
#define KEY_B "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM=" /* bytes 100..131 */

static const char github_secret[] = "It's a Secret to Everybody";
static const char github_body[] = "Hello, World!";
static const char github_signature[] =
    "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";

static int verify_github(const char *header)
{
    return fg_crypto_github_verify(header, github_body, strlen(github_body), github_secret,
                                   strlen(github_secret));
}

static void test_crypto__github_documentation_vector_is_accepted(void **state)
{
    (void)state;
    assert_int_equal(verify_github(github_signature), 0);
}

static void test_crypto__github_one_bit_change_is_refused(void **state)
{
    char header[sizeof(github_signature)];
    (void)state;
    memcpy(header, github_signature, sizeof(header));
    header[sizeof(header) - 2] ^= 0x01; /* '7' -> '6': one bit of the last digit */
    assert_int_equal(verify_github(header), FG_EAUTH);
    /* the same holds for a one-bit change of the body */
    assert_int_equal(fg_crypto_github_verify(github_signature, "Hello, World ", 13, github_secret,
                                             strlen(github_secret)),
                     FG_EAUTH);
}

static void test_crypto__github_malformed_headers_are_refused(void **state)
{
    static const char *bad[] = {
        "",
        "sha256=",
        "sha1=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "SHA256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e1",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e177",
        "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043eXY",
        " sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    };
    (void)state;
    assert_int_equal(verify_github(NULL), FG_EINVALID);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(verify_github(bad[i]), FG_EINVALID);
}

static void test_crypto__hmac_matches_rfc4231(void **state)
{
    unsigned char key[20];
    char hex[FG_CRYPTO_SHA256_HEX_LEN + 1];
    unsigned char raw[FG_CRYPTO_SHA256_LEN];
    (void)state;
    memset(key, 0x0b, sizeof(key));
    assert_int_equal(fg_crypto_hmac_sha256_hex(hex, key, sizeof(key), "Hi There", 8), 0);
    assert_string_equal(hex, "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
    assert_int_equal(fg_crypto_hmac_sha256_hex(hex, "Jefe", 4, "what do ya want for nothing?", 28),
                     0);
    assert_string_equal(hex, "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
    assert_int_equal(fg_crypto_hmac_sha256(raw, "Jefe", 4, "what do ya want for nothing?", 28), 0);
    assert_int_equal(raw[0], 0x5b);
    assert_int_equal(raw[31], 0x43);
}

static void test_crypto__digests_of_abc(void **state)
{
    char sha1[FG_CRYPTO_SHA1_HEX_LEN + 1], sha256[FG_CRYPTO_SHA256_HEX_LEN + 1];
    (void)state;
    assert_int_equal(fg_crypto_sha1_hex(sha1, "abc", 3), 0);
    assert_string_equal(sha1, "a9993e364706816aba3e25717850c26c9cd0d89d");
    assert_int_equal(fg_crypto_sha256_hex(sha256, "abc", 3), 0);
    assert_string_equal(sha256, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

static void test_crypto__hook_secret_is_hmac_of_forge_and_id(void **state)
{
    unsigned char key[32];
    char secret[FG_CRYPTO_SHA256_HEX_LEN + 1];
    (void)state;
    for (int i = 0; i < 32; i++)
        key[i] = (unsigned char)i;
    assert_int_equal(fg_crypto_hook_secret(secret, key, sizeof(key), "github", "12345"), 0);
    /* python3: hmac.new(bytes(range(32)), b"github:12345", hashlib.sha256).hexdigest() */
    assert_string_equal(secret, "fcdbf2489b357d6dadcecff9f17dddf362037eb98b6b7b7629fe1a4d3f0a73b0");
    assert_int_equal(fg_crypto_hook_secret(secret, key, sizeof(key), "github", "12a"), FG_EINVALID);
    assert_int_equal(fg_crypto_hook_secret(secret, key, sizeof(key), "git:hub", "1"), FG_EINVALID);
    assert_int_equal(fg_crypto_hook_secret(secret, key, sizeof(key), "gitlab", ""), FG_EINVALID);
}

static void test_crypto__equal_is_exact(void **state)
{
    (void)state;
    assert_true(fg_crypto_equal("abcd", "abcd", 4));
    assert_false(fg_crypto_equal("abcd", "abce", 4));
    assert_true(fg_crypto_equal_text("token", 5, "token", 5));
    assert_false(fg_crypto_equal_text("token", 5, "token2", 6));
    assert_false(fg_crypto_equal_text("token", 5, "tokem", 5));
    assert_true(fg_crypto_equal_text("", 0, "", 0));
}

static void test_crypto__random_bytes_differ(void **state)
{
    unsigned char a[32], b[32];
    (void)state;
    assert_int_equal(fg_crypto_random(a, sizeof(a)), 0);
    assert_int_equal(fg_crypto_random(b, sizeof(b)), 0);
    assert_memory_not_equal(a, b, sizeof(a));
}

static fg_crypto_keyring *keyring(const char *spec)
{
    fg_crypto_keyring *kr = NULL;
    assert_int_equal(fg_crypto_keyring_new(&kr, spec), 0);
    assert_non_null(kr);
    return kr;
}

static void test_crypto__seal_round_trips_and_names_the_key(void **state)
{
    fg_crypto_keyring *kr = keyring("k1:" KEY_A);
    fg_buf sealed, plain;
    const char token[] = "glpat-secret-token-value";
    (void)state;
    fg_buf_init(&sealed, FG_CRYPTO_SEALED_MAX);
    fg_buf_init(&plain, FG_CRYPTO_PLAINTEXT_MAX);
    assert_int_equal(fg_crypto_encrypt(&sealed, kr, "project:42", 10, token, strlen(token)), 0);
    assert_memory_equal(sealed.ptr, "v1:k1:", 6);
    assert_null(strstr(sealed.ptr, token));
    assert_int_equal(fg_crypto_decrypt(&plain, kr, "project:42", 10, sealed.ptr, sealed.len), 0);
    assert_string_equal(plain.ptr, token);
    assert_true(fg_crypto_is_current(kr, sealed.ptr, sealed.len));
    /* another context (another row) does not open it */
    fg_buf_clear(&plain);
    assert_int_equal(fg_crypto_decrypt(&plain, kr, "project:43", 10, sealed.ptr, sealed.len),
                     FG_EAUTH);
    assert_int_equal(plain.len, 0);
    /* the empty plaintext is a value too */
    fg_buf_clear(&sealed);
    assert_int_equal(fg_crypto_encrypt(&sealed, kr, NULL, 0, "", 0), 0);
    assert_int_equal(fg_crypto_decrypt(&plain, kr, NULL, 0, sealed.ptr, sealed.len), 0);
    assert_int_equal(plain.len, 0);
    fg_crypto_wipe(plain.ptr, plain.len);
    fg_buf_dispose(&sealed);
    fg_buf_dispose(&plain);
    fg_crypto_keyring_free(kr);
}

static void test_crypto__seal_uses_a_fresh_nonce(void **state)
{
    fg_crypto_keyring *kr = keyring("k1:" KEY_A);
    fg_buf a, b;
    (void)state;
    fg_buf_init(&a, FG_CRYPTO_SEALED_MAX);
    fg_buf_init(&b, FG_CRYPTO_SEALED_MAX);
    assert_int_equal(fg_crypto_encrypt(&a, kr, NULL, 0, "same", 4), 0);
    assert_int_equal(fg_crypto_encrypt(&b, kr, NULL, 0, "same", 4), 0);
    assert_string_not_equal(a.ptr, b.ptr);
    fg_buf_dispose(&a);
    fg_buf_dispose(&b);
    fg_crypto_keyring_free(kr);
}

static char flip_high_bit(char digit)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const char *at = strchr(alphabet, digit);
    assert_non_null(at);
    return alphabet[(at - alphabet) ^ 32];
}

static void test_crypto__tampering_is_detected(void **state)
{
    fg_crypto_keyring *kr = keyring("k1:" KEY_A);
    fg_buf sealed, plain;
    (void)state;
    fg_buf_init(&sealed, FG_CRYPTO_SEALED_MAX);
    fg_buf_init(&plain, FG_CRYPTO_PLAINTEXT_MAX);
    assert_int_equal(fg_crypto_encrypt(&sealed, kr, NULL, 0, "a token of some length", 22), 0);
    /* flip the high bit of a base64 digit in the nonce, the ciphertext and the tag in turn (the
     * last digits before the padding carry unused low bits, so those are left alone) */
    for (size_t pos = 6; pos < sealed.len - 4; pos += 5) {
        char saved = sealed.ptr[pos];
        sealed.ptr[pos] = flip_high_bit(saved);
        assert_int_equal(fg_crypto_decrypt(&plain, kr, NULL, 0, sealed.ptr, sealed.len), FG_EAUTH);
        assert_int_equal(plain.len, 0);
        sealed.ptr[pos] = saved;
    }
    /* truncated body, bad base64, wrong version, unknown key id */
    assert_int_equal(fg_crypto_decrypt(&plain, kr, NULL, 0, sealed.ptr, 12), FG_EINVALID);
    assert_int_equal(fg_crypto_decrypt(&plain, kr, NULL, 0, "v1:k1:!!!!", 10), FG_EINVALID);
    assert_int_equal(fg_crypto_decrypt(&plain, kr, NULL, 0, "v2:k1:AAAA", 10), FG_EINVALID);
    assert_int_equal(fg_crypto_decrypt(&plain, kr, NULL, 0, "garbage", 7), FG_EINVALID);
    sealed.ptr[4] = '9'; /* "v1:k9:..." */
    assert_int_equal(fg_crypto_decrypt(&plain, kr, NULL, 0, sealed.ptr, sealed.len), FG_ENOTFOUND);
    assert_non_null(strstr(fg_error_last(), "'k9'"));
    assert_false(fg_crypto_is_current(kr, sealed.ptr, sealed.len));
    fg_buf_dispose(&sealed);
    fg_buf_dispose(&plain);
    fg_crypto_keyring_free(kr);
}

static void test_crypto__wrong_key_under_same_id_fails(void **state)
{
    fg_crypto_keyring *a = keyring("k1:" KEY_A), *b = keyring("k1:" KEY_B);
    fg_buf sealed, plain;
    (void)state;
    fg_buf_init(&sealed, FG_CRYPTO_SEALED_MAX);
    fg_buf_init(&plain, FG_CRYPTO_PLAINTEXT_MAX);
    assert_int_equal(fg_crypto_encrypt(&sealed, a, NULL, 0, "token", 5), 0);
    assert_int_equal(fg_crypto_decrypt(&plain, b, NULL, 0, sealed.ptr, sealed.len), FG_EAUTH);
    assert_int_equal(plain.len, 0);
    fg_buf_dispose(&sealed);
    fg_buf_dispose(&plain);
    fg_crypto_keyring_free(a);
    fg_crypto_keyring_free(b);
}

static void test_crypto__rotation_keeps_old_values_readable(void **state)
{
    fg_crypto_keyring *old_ring = keyring("old:" KEY_A);
    fg_crypto_keyring *new_ring = keyring("new:" KEY_B ",old:" KEY_A);
    fg_buf sealed, resealed, plain;
    (void)state;
    fg_buf_init(&sealed, FG_CRYPTO_SEALED_MAX);
    fg_buf_init(&resealed, FG_CRYPTO_SEALED_MAX);
    fg_buf_init(&plain, FG_CRYPTO_PLAINTEXT_MAX);
    assert_int_equal(fg_crypto_keyring_count(new_ring), 2);
    assert_string_equal(fg_crypto_keyring_current_id(new_ring), "new");
    assert_int_equal(fg_crypto_encrypt(&sealed, old_ring, "ctx", 3, "token", 5), 0);
    assert_true(fg_crypto_is_current(old_ring, sealed.ptr, sealed.len));
    assert_false(fg_crypto_is_current(new_ring, sealed.ptr, sealed.len));
    assert_int_equal(fg_crypto_decrypt(&plain, new_ring, "ctx", 3, sealed.ptr, sealed.len), 0);
    assert_string_equal(plain.ptr, "token");
    /* re-encrypting moves it to the new key, which the old keyring does not know */
    assert_int_equal(fg_crypto_encrypt(&resealed, new_ring, "ctx", 3, plain.ptr, plain.len), 0);
    assert_memory_equal(resealed.ptr, "v1:new:", 7);
    assert_true(fg_crypto_is_current(new_ring, resealed.ptr, resealed.len));
    fg_buf_clear(&plain);
    assert_int_equal(fg_crypto_decrypt(&plain, old_ring, "ctx", 3, resealed.ptr, resealed.len),
                     FG_ENOTFOUND);
    fg_buf_dispose(&sealed);
    fg_buf_dispose(&resealed);
    fg_buf_dispose(&plain);
    fg_crypto_keyring_free(old_ring);
    fg_crypto_keyring_free(new_ring);
}

static void expect_keyring_error(const char *spec, int code, const char *needle)
{
    fg_crypto_keyring *kr = (fg_crypto_keyring *)&kr; /* must be reset to NULL */
    assert_int_equal(fg_crypto_keyring_new(&kr, spec), code);
    assert_null(kr);
    if (needle != NULL)
        assert_non_null(strstr(fg_error_last(), needle));
    /* no key material in the message */
    assert_null(strstr(fg_error_last(), "AAECAwQF"));
    assert_null(strstr(fg_error_last(), "AAAAAAAA"));
}

static void test_crypto__keyring_parse_errors(void **state)
{
    (void)state;
    expect_keyring_error("", FG_EINVALID, NULL);
    expect_keyring_error(NULL, FG_EINVALID, NULL);
    expect_keyring_error(KEY_A, FG_EINVALID, "entry 1");        /* bare key, no id */
    expect_keyring_error(":" KEY_A, FG_EINVALID, "entry 1");    /* empty id */
    expect_keyring_error("k 1:" KEY_A, FG_EINVALID, "entry 1"); /* bad id character */
    expect_keyring_error("k1:" KEY_A ",", FG_EINVALID, "entry 2");
    expect_keyring_error("k1:" KEY_A ",k1:" KEY_B, FG_EINVALID, "'k1' appears twice");
    expect_keyring_error("short:AAAAAAAAAAAAAAAAAAAAAA==", FG_EINVALID, "'short' is 16 bytes");
    expect_keyring_error("k1:" KEY_A ",b64:not-base64!", FG_EINVALID, "'b64' is not valid base64");
    expect_keyring_error("k1:", FG_EINVALID, "'k1' is 0 bytes");
    expect_keyring_error("a_very_long_key_identifier_over_32_chars:" KEY_A, FG_EINVALID, "entry 1");
}

static void test_crypto__keyring_accepts_ids_and_many_keys(void **state)
{
    fg_crypto_keyring *kr = keyring("2024-01_a:" KEY_A ",b:" KEY_B ",C-3:" KEY_A);
    (void)state;
    assert_int_equal(fg_crypto_keyring_count(kr), 3);
    assert_string_equal(fg_crypto_keyring_current_id(kr), "2024-01_a");
    fg_crypto_keyring_free(kr);
    fg_crypto_keyring_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crypto__github_documentation_vector_is_accepted),
        cmocka_unit_test(test_crypto__github_one_bit_change_is_refused),
        cmocka_unit_test(test_crypto__github_malformed_headers_are_refused),
        cmocka_unit_test(test_crypto__hmac_matches_rfc4231),
        cmocka_unit_test(test_crypto__digests_of_abc),
        cmocka_unit_test(test_crypto__hook_secret_is_hmac_of_forge_and_id),
        cmocka_unit_test(test_crypto__equal_is_exact),
        cmocka_unit_test(test_crypto__random_bytes_differ),
        cmocka_unit_test(test_crypto__seal_round_trips_and_names_the_key),
        cmocka_unit_test(test_crypto__seal_uses_a_fresh_nonce),
        cmocka_unit_test(test_crypto__tampering_is_detected),
        cmocka_unit_test(test_crypto__wrong_key_under_same_id_fails),
        cmocka_unit_test(test_crypto__rotation_keeps_old_values_readable),
        cmocka_unit_test(test_crypto__keyring_parse_errors),
        cmocka_unit_test(test_crypto__keyring_accepts_ids_and_many_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
