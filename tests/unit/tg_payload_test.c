/* The triples payload: base64 of gzip, a round trip that keeps every byte, and refusals of what
 * is not a payload (not base64, not gzip, cut short, followed by garbage) or would inflate past
 * its cap, each leaving the output untouched. */
#include "test_support.h"

#include <string.h>

#include "fg/base64.h"
#include "tg_payload.h"

static const char nt[] = "<http://s> <http://p> \"caf\xc3\xa9 \\\"q\\\"\\n\" .\n"
                         "<http://s> <http://p> <http://o> .\n";

static void test_tg_payload__round_trip_keeps_every_byte(void **state)
{
    fg_buf b64, back;

    (void)state;
    fg_buf_init(&b64, 1 << 20);
    fg_buf_init(&back, 1 << 20);
    assert_int_equal(tg_payload_encode(&b64, nt, strlen(nt)), 0);
    assert_int_equal(tg_payload_decode(&back, b64.ptr, b64.len), 0);
    assert_string_equal(back.ptr, nt);
    fg_buf_clear(&back); /* an empty document is a payload too */
    fg_buf_clear(&b64);
    assert_int_equal(tg_payload_encode(&b64, "", 0), 0);
    assert_int_equal(tg_payload_decode(&back, b64.ptr, b64.len), 0);
    assert_int_equal(back.len, 0);
    fg_buf_dispose(&b64);
    fg_buf_dispose(&back);
}

static void test_tg_payload__is_base64_of_gzip(void **state)
{
    fg_buf b64, gz;

    (void)state;
    fg_buf_init(&b64, 1 << 20);
    fg_buf_init(&gz, 1 << 20);
    assert_int_equal(tg_payload_encode(&b64, nt, strlen(nt)), 0);
    assert_int_equal(fg_base64_decode(&gz, b64.ptr, b64.len), 0);
    assert_true(gz.len > 18);
    assert_int_equal((unsigned char)gz.ptr[0], 0x1f); /* gzip magic, deflate */
    assert_int_equal((unsigned char)gz.ptr[1], 0x8b);
    assert_int_equal((unsigned char)gz.ptr[2], 8);
    fg_buf_dispose(&b64);
    fg_buf_dispose(&gz);
}

static void expect_refused(const char *b64, size_t len, int code, const char *reason_part)
{
    fg_buf out;

    fg_buf_init(&out, 1 << 20);
    assert_int_equal(fg_buf_puts(&out, "kept"), 0);
    assert_int_equal(tg_payload_decode(&out, b64, len), code);
    assert_non_null(strstr(fg_error_last(), reason_part));
    assert_string_equal(out.ptr, "kept");
    fg_buf_dispose(&out);
}

static void test_tg_payload__what_is_not_a_payload_is_refused(void **state)
{
    fg_buf good, text, tail;

    (void)state;
    fg_buf_init(&good, 1 << 20);
    fg_buf_init(&text, 1 << 20);
    fg_buf_init(&tail, 1 << 20);
    assert_int_equal(tg_payload_encode(&good, nt, strlen(nt)), 0);
    expect_refused("not base64!", 11, FG_EINVALID, "not base64");
    assert_int_equal(fg_base64_encode(&text, nt, strlen(nt)), 0); /* base64, but not gzip */
    expect_refused(text.ptr, text.len, FG_EINVALID, "not gzip");
    /* a gzip stream cut short: drop the last 8 base64 characters (6 bytes of its trailer) */
    expect_refused(good.ptr, good.len - 8, FG_EINVALID, "payload");
    /* a complete stream followed by more bytes */
    assert_int_equal(fg_base64_decode(&tail, good.ptr, good.len), 0);
    assert_int_equal(fg_buf_puts(&tail, "junk!"), 0);
    fg_buf_clear(&text);
    assert_int_equal(fg_base64_encode(&text, tail.ptr, tail.len), 0);
    expect_refused(text.ptr, text.len, FG_EINVALID, "after the gzip stream");
    fg_buf_dispose(&good);
    fg_buf_dispose(&text);
    fg_buf_dispose(&tail);
}

static void test_tg_payload__inflating_stops_at_the_cap(void **state)
{
    static char zeros[1 << 20]; /* 1 MiB of zeros compresses to about 1 KiB */
    fg_buf b64, out;

    (void)state;
    memset(zeros, 'a', sizeof(zeros));
    fg_buf_init(&b64, 1 << 20);
    fg_buf_init(&out, 4096);
    assert_int_equal(tg_payload_encode(&b64, zeros, sizeof(zeros)), 0);
    assert_true(b64.len < 8192);
    assert_int_equal(tg_payload_decode(&out, b64.ptr, b64.len), FG_ETOOBIG);
    assert_int_equal(out.len, 0);
    fg_buf_dispose(&b64);
    fg_buf_dispose(&out);
}

static void test_tg_payload__encoding_past_the_cap_leaves_out_unchanged(void **state)
{
    static char noise[65536];
    fg_buf b64;
    unsigned x = 12345;

    (void)state;
    for (size_t i = 0; i < sizeof(noise); i++) { /* incompressible */
        x = x * 1103515245u + 12345u;
        noise[i] = (char)(x >> 16);
    }
    fg_buf_init(&b64, 1024);
    assert_int_equal(fg_buf_puts(&b64, "kept"), 0);
    assert_int_equal(tg_payload_encode(&b64, noise, sizeof(noise)), FG_ETOOBIG);
    assert_string_equal(b64.ptr, "kept");
    fg_buf_dispose(&b64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tg_payload__round_trip_keeps_every_byte),
        cmocka_unit_test(test_tg_payload__is_base64_of_gzip),
        cmocka_unit_test(test_tg_payload__what_is_not_a_payload_is_refused),
        cmocka_unit_test(test_tg_payload__inflating_stops_at_the_cap),
        cmocka_unit_test(test_tg_payload__encoding_past_the_cap_leaves_out_unchanged),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
