/* fg_buf: capped growth, NUL termination, JSON escaping; base64 round trips. */
#include "test_support.h"

#include <stdlib.h>
#include <string.h>

#include "fg/base64.h"
#include "fg/buf.h"

static void test_buf__grows_and_stays_terminated(void **state)
{
    fg_buf b;
    (void)state;
    fg_buf_init(&b, 1 << 20);
    assert_string_equal(b.ptr, "");
    for (int i = 0; i < 1000; i++)
        assert_int_equal(fg_buf_printf(&b, "%d,", i), 0);
    assert_int_equal(b.len, strlen(b.ptr));
    assert_memory_equal(b.ptr, "0,1,2,", 6);
    fg_buf_dispose(&b);
}

static void test_buf__refuses_past_cap_and_keeps_content(void **state)
{
    fg_buf b;
    (void)state;
    fg_buf_init(&b, 8);
    assert_int_equal(fg_buf_puts(&b, "12345678"), 0);
    assert_int_equal(fg_buf_putc(&b, '9'), FG_ETOOBIG);
    assert_string_equal(b.ptr, "12345678");
    assert_int_equal(fg_buf_printf(&b, "%s", "x"), FG_ETOOBIG);
    fg_buf_dispose(&b);
}

static void test_buf__escapes_json(void **state)
{
    fg_buf b;
    const char raw[] = "a\"b\\c\nd\x01"
                       "e";
    (void)state;
    fg_buf_init(&b, 1024);
    assert_int_equal(fg_buf_put_json_string(&b, raw, sizeof(raw) - 1), 0);
    assert_string_equal(b.ptr, "a\\\"b\\\\c\\nd\\u0001e");
    fg_buf_dispose(&b);
}

static void test_buf__detach_hands_over_storage(void **state)
{
    fg_buf b;
    size_t len;
    char *p;
    (void)state;
    fg_buf_init(&b, 64);
    assert_int_equal(fg_buf_puts(&b, "hello"), 0);
    p = fg_buf_detach(&b, &len);
    assert_int_equal(len, 5);
    assert_string_equal(p, "hello");
    assert_int_equal(b.len, 0);
    free(p);
    p = fg_buf_detach(&b, &len); /* empty buffer still gives a freeable string */
    assert_string_equal(p, "");
    free(p);
}

static void test_base64__round_trips_every_length(void **state)
{
    unsigned char data[64];
    (void)state;
    for (size_t i = 0; i < sizeof(data); i++)
        data[i] = (unsigned char)(i * 37 + 11);
    for (size_t n = 0; n <= sizeof(data); n++) {
        fg_buf enc, dec;
        fg_buf_init(&enc, 1024);
        fg_buf_init(&dec, 1024);
        assert_int_equal(fg_base64_encode(&enc, data, n), 0);
        assert_int_equal(enc.len % 4, 0);
        assert_int_equal(fg_base64_decode(&dec, enc.ptr, enc.len), 0);
        assert_int_equal(dec.len, n);
        assert_memory_equal(dec.ptr, data, n);
        fg_buf_dispose(&enc);
        fg_buf_dispose(&dec);
    }
}

static void test_base64__known_vectors_and_garbage(void **state)
{
    fg_buf b;
    (void)state;
    fg_buf_init(&b, 1024);
    assert_int_equal(fg_base64_encode(&b, "foobar", 6), 0);
    assert_string_equal(b.ptr, "Zm9vYmFy");
    fg_buf_clear(&b);
    assert_int_equal(fg_base64_decode(&b, "Zm9vYg==", 8), 0);
    assert_string_equal(b.ptr, "foob");
    fg_buf_clear(&b);
    assert_int_equal(fg_base64_decode(&b, "Zm9v!g==", 8), FG_EINVALID);
    assert_int_equal(fg_base64_decode(&b, "Zm9", 3), FG_EINVALID);
    fg_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buf__grows_and_stays_terminated),
        cmocka_unit_test(test_buf__refuses_past_cap_and_keeps_content),
        cmocka_unit_test(test_buf__escapes_json),
        cmocka_unit_test(test_buf__detach_hands_over_storage),
        cmocka_unit_test(test_base64__round_trips_every_length),
        cmocka_unit_test(test_base64__known_vectors_and_garbage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
