/* fg_text: hex digits and percent decoding. */
#include "test_support.h"

#include <string.h>

#include "fg/text.h"

static void test_text__hex_digits(void **state)
{
    (void)state;
    assert_int_equal(fg_hex_value('0'), 0);
    assert_int_equal(fg_hex_value('9'), 9);
    assert_int_equal(fg_hex_value('a'), 10);
    assert_int_equal(fg_hex_value('F'), 15);
    assert_int_equal(fg_hex_value('g'), -1);
    assert_int_equal(fg_hex_value('\0'), -1);
}

static void test_text__percent_decoding(void **state)
{
    char out[64];
    (void)state;
    assert_int_equal(fg_percent_decode(out, "a%2Fb+c", 7, false), 0);
    assert_string_equal(out, "a/b+c");
    assert_int_equal(fg_percent_decode(out, "a%2fb+c", 7, true), 0);
    assert_string_equal(out, "a/b c");
    assert_int_equal(fg_percent_decode(out, "%2", 2, false), FG_EINVALID);
    assert_int_equal(fg_percent_decode(out, "%zz", 3, false), FG_EINVALID);
    assert_int_equal(fg_percent_decode(out, "x%00y", 5, false), FG_EINVALID);
    assert_non_null(strstr(fg_error_last(), "NUL"));
    assert_int_equal(fg_percent_decode(out, "", 0, false), 0);
    assert_string_equal(out, "");
}

static void test_text__utf8_sequences(void **state)
{
    static const struct {
        const char *bytes;
        size_t len;
        size_t want;
    } cases[] = {
        {"a", 1, 1},
        {"\xC3\xA9", 2, 2},         /* é */
        {"\xE2\x82\xAC", 3, 3},     /* € */
        {"\xF0\x9F\x98\x80", 4, 4}, /* U+1F600 */
        {"\xC0\xAF", 2, 0},         /* overlong */
        {"\xE0\x80\xAF", 3, 0},     /* overlong */
        {"\xED\xA0\x80", 3, 0},     /* surrogate */
        {"\xF4\x90\x80\x80", 4, 0}, /* past U+10FFFF */
        {"\xE2\x82", 2, 0},         /* cut short */
        {"\x80", 1, 0},             /* continuation alone */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const unsigned char *p = (const unsigned char *)cases[i].bytes;
        assert_int_equal(fg_utf8_sequence(p, p + cases[i].len), cases[i].want);
    }
}

static void test_text__hex4(void **state)
{
    const unsigned char good[] = "00aF", bad[] = "00g0";
    unsigned v = 0;
    (void)state;
    assert_int_equal(fg_hex4(&v, good, good + 4), 0);
    assert_int_equal(v, 0xaf);
    assert_int_equal(fg_hex4(&v, bad, bad + 4), -1);
    assert_int_equal(fg_hex4(&v, good, good + 3), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text__hex_digits),
        cmocka_unit_test(test_text__percent_decoding),
        cmocka_unit_test(test_text__utf8_sequences),
        cmocka_unit_test(test_text__hex4),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
