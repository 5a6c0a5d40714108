/* The webhook's body scanner (services/webhook/wh_json.c) where it reads 8 bytes at a time: every
 * byte that ends or interrupts a run of plain string content (a quote, a backslash, a control
 * character, DEL, a UTF-8 sequence, invalid UTF-8) at every place in and around an 8-byte word,
 * in a value that is decoded (action) and in one that is only checked. The full table of cases
 * (RFC 8259, nesting, ids) runs in tests/integration/webhook_test.c. */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "wh_json.h"

#define RUN_MAX 24 /* plain bytes around the one under test: three words */

typedef struct {
    const char *name;
    const char *raw;     /* the bytes placed in the string */
    const char *decoded; /* what the action reads back; NULL: the body must be refused */
    bool control;        /* decoded, but a control character: no action */
} special;

static const special specials[] = {
    {"escaped quote", "\\\"", "\"", false},
    {"escaped backslash", "\\\\", "\\", false},
    {"unicode escape", "\\u00e9", "\xc3\xa9", false},
    {"escaped newline", "\\n", "\n", true},
    {"two-byte UTF-8", "\xc3\xa9", "\xc3\xa9", false},
    {"four-byte UTF-8", "\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80", false},
    {"DEL", "\x7f", "\x7f", true},
    {"raw control character", "\x01", NULL, false},
    {"raw tab", "\t", NULL, false},
    {"invalid UTF-8", "\xff", NULL, false},
    {"lone continuation byte", "\x80", NULL, false},
    {"truncated sequence", "\xe2\x82", NULL, false},
};

/* Scans a copy of exactly len bytes on the heap, no terminator: under ASan (the Debug build), any
 * read past the end of the body fails the test. */
static int scan_exact(wh_json_facts *f, const char *body, size_t len)
{
    char *copy = malloc(len > 0 ? len : 1);
    int rc;

    assert_non_null(copy);
    memcpy(copy, body, len);
    rc = wh_json_scan(f, copy, len);
    free(copy);
    return rc;
}

/* {"action":"<pre><special><post>","pad":"<pre><special><post>","repository":{"id":42}} */
static size_t body_with(char *out, size_t cap, size_t pre, size_t post, const char *raw)
{
    char run[2 * RUN_MAX + 16];
    size_t n = 0;

    memset(run, 'a', pre);
    n = pre;
    memcpy(run + n, raw, strlen(raw));
    n += strlen(raw);
    memset(run + n, 'b', post);
    n += post;
    run[n] = '\0';
    return (size_t)snprintf(
        out, cap, "{\"action\":\"%s\",\"pad\":\"%s\",\"repository\":{\"id\":42}}", run, run);
}

static void test_wh_json__specials_at_every_place_in_a_word(void **state)
{
    char body[512], want[2 * RUN_MAX + 16];
    wh_json_facts f;
    (void)state;

    for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
        const special *sp = &specials[k];
        for (size_t pre = 0; pre <= RUN_MAX; pre++) {
            for (size_t post = 0; post <= 9; post++) {
                size_t len = body_with(body, sizeof(body), pre, post, sp->raw);
                int rc = scan_exact(&f, body, len);

                if (sp->decoded == NULL) {
                    if (rc != FG_EINVALID)
                        fail_msg("%s after %zu bytes was accepted", sp->name, pre);
                    continue;
                }
                if (rc != 0)
                    fail_msg("%s after %zu bytes refused: %s", sp->name, pre, fg_error_last());
                assert_true(f.has_repository_id);
                assert_string_equal(f.repository_id, "42");
                snprintf(want, sizeof(want), "%.*s%s%.*s", (int)pre,
                         "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", sp->decoded, (int)post,
                         "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb");
                if (sp->control) {
                    assert_false(f.has_action);
                } else if (strlen(want) <= FG_PROTO_ACTION_MAX) {
                    assert_true(f.has_action);
                    assert_string_equal(f.action, want);
                }
            }
        }
    }
}

static void test_wh_json__plain_runs_end_exactly_at_the_quote(void **state)
{
    char body[256];
    wh_json_facts f;
    (void)state;

    /* A closing quote at every offset of a word, and a string running to the end of the body
     * (the last word of a body shorter than 8 bytes past it must not be read). */
    for (size_t n = 0; n <= 3 * 8; n++) {
        size_t len = (size_t)snprintf(body, sizeof(body), "{\"k\":\"%.*s\"}", (int)n,
                                      "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
        assert_int_equal(scan_exact(&f, body, len), 0);
        assert_int_equal(scan_exact(&f, body, len - 2), FG_EINVALID); /* unterminated */
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wh_json__specials_at_every_place_in_a_word),
        cmocka_unit_test(test_wh_json__plain_runs_end_exactly_at_the_quote),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
