/* N-Triples output of triples-generator: canonical escaping of every string (quotes,
 * backslashes, each control character), U+FFFD for every kind of invalid UTF-8, percent-encoded
 * IRIs, the exact form of a triple line, and the buffer cap. */
#include "test_support.h"

#include <string.h>

#include "tg_ntriples.h"

/* The literal text of s (len bytes) as tg_nt_put_string writes it. */
static char *escaped(const char *s, size_t len)
{
    static char out[1024];
    fg_buf b;

    fg_buf_init(&b, sizeof(out) - 1);
    assert_int_equal(tg_nt_put_string(&b, s, len), 0);
    memcpy(out, b.ptr, b.len + 1);
    fg_buf_dispose(&b);
    return out;
}

#define ESCAPED(lit) escaped(lit, sizeof(lit) - 1)

static void test_tg_ntriples__plain_text_is_copied(void **state)
{
    (void)state;
    assert_string_equal(ESCAPED("lib: fix x (#42) 100% {ok} <a@b>"),
                        "lib: fix x (#42) 100% {ok} <a@b>");
    assert_string_equal(ESCAPED(""), "");
}

static void test_tg_ntriples__quotes_and_backslashes_are_escaped(void **state)
{
    (void)state;
    assert_string_equal(ESCAPED("say \"hi\" to C:\\dir\\"), "say \\\"hi\\\" to C:\\\\dir\\\\");
    assert_string_equal(ESCAPED("'single' stays"), "'single' stays");
}

static void test_tg_ntriples__control_characters_use_canonical_escapes(void **state)
{
    (void)state;
    /* ECHAR for the six that have one... */
    assert_string_equal(ESCAPED("a\bb\tc\nd\fe\rf"), "a\\bb\\tc\\nd\\fe\\rf");
    /* ...\u00XX (upper-case hex) for every other C0 control and DEL */
    assert_string_equal(ESCAPED("\x01\x07\x0b\x0e\x1b\x1f\x7f"),
                        "\\u0001\\u0007\\u000B\\u000E\\u001B\\u001F\\u007F");
    assert_string_equal(escaped("a\0b", 3), "a\\u0000b");
    /* a commit message: subject, blank line, body, trailer, final newline */
    assert_string_equal(ESCAPED("fix: \"x\"\n\nSigned-off-by: A <a@b>\n"),
                        "fix: \\\"x\\\"\\n\\nSigned-off-by: A <a@b>\\n");
}

static void test_tg_ntriples__valid_utf8_stays_raw(void **state)
{
    (void)state;
    assert_string_equal(ESCAPED("caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd"),
                        "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 \xef\xbf\xbd");
    /* the edges: U+0080, U+07FF, U+0800, U+D7FF, U+E000, U+FFFF, U+10000, U+10FFFF */
    assert_string_equal(ESCAPED("\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
                                "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf"),
                        "\xc2\x80\xdf\xbf\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf"
                        "\xf0\x90\x80\x80\xf4\x8f\xbf\xbf");
}

static void test_tg_ntriples__invalid_utf8_becomes_replacement_characters(void **state)
{
    static const struct {
        const char *in;
        const char *out;
    } cases[] = {
        {"a\x80z", "a\xef\xbf\xbdz"},                             /* lone continuation byte */
        {"a\xffz", "a\xef\xbf\xbdz"},                             /* never valid */
        {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},                 /* overlong '/' */
        {"\xe0\x80\xaf", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* overlong, 3 bytes */
        {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* surrogate U+D800 */
        {"\xf4\x90\x80\x80",
         "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"}, /* past U+10FFFF */
        {"ok\xe2\x82", "ok\xef\xbf\xbd\xef\xbf\xbd"},         /* cut short at the end */
        {"\xe2\x82z", "\xef\xbf\xbd\xef\xbf\xbdz"},           /* cut short mid-text */
        {"latin-1 caf\xe9!", "latin-1 caf\xef\xbf\xbd!"},     /* another encoding */
        {"\"\x80\\", "\\\"\xef\xbf\xbd\\\\"},                 /* mixed with escapes */
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_string_equal(escaped(cases[i].in, strlen(cases[i].in)), cases[i].out);
}

static void test_tg_ntriples__iri_forbidden_bytes_are_percent_encoded(void **state)
{
    fg_buf b;
    const char *iri = "https://h/a b<c>\"{|}^`\\\x01\xc3\xa9%41?q#f";

    (void)state;
    fg_buf_init(&b, 1024);
    assert_int_equal(tg_nt_put_iri(&b, iri, strlen(iri)), 0);
    assert_string_equal(b.ptr, "https://h/a%20b%3Cc%3E%22%7B%7C%7D%5E%60%5C%01%C3%A9%41?q#f");
    fg_buf_dispose(&b);
}

static void test_tg_ntriples__triples_have_the_exact_form(void **state)
{
    fg_buf b;

    (void)state;
    fg_buf_init(&b, 1024);
    assert_int_equal(tg_nt_triple_iri(&b, "http://s", "http://p", "http://o"), 0);
    assert_int_equal(tg_nt_triple_literal(&b, "http://s", "http://p", "a\"b", 3, NULL), 0);
    assert_int_equal(tg_nt_triple_literal(&b, "http://s", "http://p", "12", 2, TG_NT_XSD_INTEGER),
                     0);
    assert_string_equal(b.ptr, "<http://s> <http://p> <http://o> .\n"
                               "<http://s> <http://p> \"a\\\"b\" .\n"
                               "<http://s> <http://p> "
                               "\"12\"^^<http://www.w3.org/2001/XMLSchema#integer> .\n");
    fg_buf_dispose(&b);
}

static void test_tg_ntriples__a_full_buffer_says_so(void **state)
{
    fg_buf b;

    (void)state;
    fg_buf_init(&b, 8);
    assert_int_equal(tg_nt_put_string(&b, "0123456789", 10), FG_ETOOBIG);
    assert_int_equal(tg_nt_put_iri(&b, "0123456789", 10), FG_ETOOBIG);
    assert_int_equal(tg_nt_triple_iri(&b, "http://s", "http://p", "http://o"), FG_ETOOBIG);
    fg_buf_dispose(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tg_ntriples__plain_text_is_copied),
        cmocka_unit_test(test_tg_ntriples__quotes_and_backslashes_are_escaped),
        cmocka_unit_test(test_tg_ntriples__control_characters_use_canonical_escapes),
        cmocka_unit_test(test_tg_ntriples__valid_utf8_stays_raw),
        cmocka_unit_test(test_tg_ntriples__invalid_utf8_becomes_replacement_characters),
        cmocka_unit_test(test_tg_ntriples__iri_forbidden_bytes_are_percent_encoded),
        cmocka_unit_test(test_tg_ntriples__triples_have_the_exact_form),
        cmocka_unit_test(test_tg_ntriples__a_full_buffer_says_so),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
