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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text__hex_digits),
        cmocka_unit_test(test_text__percent_decoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
