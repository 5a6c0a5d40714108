/* fg_proto_json_scan (proto/src/json.c), the one strict JSON scanner: what a visitor is told and
 * where (only tagged places, names and strings decoded, numbers as written, too-long text as NULL),
 * the caller's depth limit, and the 8-bytes-at-a-time path without a visitor (every byte that ends
 * or interrupts a run of plain string content at every place around a word, on exact-size heap
 * copies so that ASan sees any read past the end). The rules themselves are proto_test's and
 * wh_json_test's. */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg/proto.h"

#define RUN_MAX 24 /* plain bytes around the one under test: three words */

enum { TAG_ROOT = 1, TAG_KEEP, TAG_LEAF };

/* Every call, as one line "<kind> <tag> <text or (cut)>" appended to log. */
typedef struct {
    char log[1024];
} calls;

static void note(calls *c, const char *kind, int tag, const char *text, size_t len)
{
    size_t used = strlen(c->log);

    if (text == NULL)
        snprintf(c->log + used, sizeof(c->log) - used, "%s %d (cut)\n", kind, tag);
    else
        snprintf(c->log + used, sizeof(c->log) - used, "%s %d %.*s\n", kind, tag, (int)len, text);
}

/* Members named "keep" are objects to look into, "leaf" values to report. */
static int on_member(int parent, const char *name, size_t len, void *payload)
{
    note(payload, "member", parent, name, len);
    if (name != NULL && len == 4 && memcmp(name, "keep", 4) == 0)
        return TAG_KEEP;
    if (name != NULL && len == 4 && memcmp(name, "leaf", 4) == 0)
        return TAG_LEAF;
    return 0;
}

static void on_string(int tag, const char *text, size_t len, void *payload)
{
    note(payload, "string", tag, text, len);
}

static void on_number(int tag, const char *text, size_t len, void *payload)
{
    note(payload, "number", tag, text, len);
}

static int scan_exact(const char *body, size_t len, int depth_max, const fg_proto_json_visitor *v,
                      void *payload)
{
    char *copy = malloc(len > 0 ? len : 1);
    int rc;

    assert_non_null(copy);
    memcpy(copy, body, len);
    rc = fg_proto_json_scan(copy, len, depth_max, v, payload);
    free(copy);
    return rc;
}

static void test_proto_json__visitor_is_told_only_about_tagged_places(void **state)
{
    static const char body[] =
        "{\"leaf\":\"caf\\u00e9 \\ud83d\\ude00\\n\", \"other\":{\"leaf\":1},"
        "\"keep\":{\"leaf\":-1.5e3,\"x\":true,\"keep\":{\"y\":[{\"leaf\":2}]},\"leaf\":[3]},"
        "\"list\":[{\"leaf\":4}],\"leaf\":\"0123456789abcdefX\",\"n\":7}";
    char buf[16];
    const fg_proto_json_visitor v = {TAG_ROOT, on_member, on_string, on_number, buf, sizeof(buf)};
    calls c = {""};
    (void)state;

    assert_int_equal(scan_exact(body, strlen(body), FG_PROTO_DEPTH_MAX, &v, &c), 0);
    /* Arrays and untagged objects are passed over; "\n" arrives decoded; the last string is 17
     * bytes, one more than the buffer. */
    assert_string_equal(c.log, "member 1 leaf\n"
                               "string 3 caf\xc3\xa9 \xf0\x9f\x98\x80\n\n"
                               "member 1 other\n"
                               "member 1 keep\n"
                               "member 2 leaf\n"
                               "number 3 -1.5e3\n"
                               "member 2 x\n"
                               "member 2 keep\n"
                               "member 2 y\n"
                               "member 2 leaf\n"
                               "member 1 list\n"
                               "member 1 leaf\n"
                               "string 3 (cut)\n"
                               "member 1 n\n");
}

static void test_proto_json__no_visitor_and_callbacks_left_out(void **state)
{
    static const char body[] = "{\"leaf\":\"a\",\"keep\":{\"leaf\":1}}";
    char buf[8];
    const fg_proto_json_visitor no_callbacks = {TAG_ROOT, NULL, NULL, NULL, buf, sizeof(buf)};
    const fg_proto_json_visitor names_only = {TAG_ROOT, on_member, NULL, NULL, buf, sizeof(buf)};
    const fg_proto_json_visitor untagged_root = {0,         on_member, on_string,
                                                 on_number, buf,       sizeof(buf)};
    calls c = {""};
    (void)state;

    assert_int_equal(fg_proto_json_scan(body, strlen(body), 2, NULL, NULL), 0);
    assert_int_equal(fg_proto_json_scan(body, strlen(body), 2, &no_callbacks, &c), 0);
    assert_int_equal(fg_proto_json_scan(body, strlen(body), 2, &untagged_root, &c), 0);
    assert_string_equal(c.log, "");
    assert_int_equal(fg_proto_json_scan(body, strlen(body), 2, &names_only, &c), 0);
    assert_string_equal(c.log, "member 1 leaf\nmember 1 keep\nmember 2 leaf\n");
}

static void test_proto_json__depth_limit_is_the_callers(void **state)
{
    static const char two[] = "{\"a\":[1]}", three[] = "{\"a\":[[1]]}";
    (void)state;

    assert_int_equal(fg_proto_json_scan(two, strlen(two), 2, NULL, NULL), 0);
    assert_int_equal(fg_proto_json_scan(three, strlen(three), 2, NULL, NULL), FG_EINVALID);
    assert_string_equal(fg_error_last(), "not valid JSON: nested deeper than 2 at byte 6");
    assert_int_equal(fg_proto_json_scan(three, strlen(three), 3, NULL, NULL), 0);
    assert_int_equal(fg_proto_json_scan(" [] ", 4, 3, NULL, NULL), FG_EINVALID);
    assert_string_equal(fg_error_last(), "not a JSON object");
    assert_int_equal(fg_proto_json_scan(NULL, 0, 3, NULL, NULL), FG_EINVALID);
    assert_string_equal(fg_error_last(), "not valid JSON: no data");
}

typedef struct {
    const char *raw;     /* the bytes placed in the string */
    const char *decoded; /* NULL: the text must be refused */
} special;

static const special specials[] = {
    {"\\\"", "\""},         {"\\\\", "\\"},           {"\\u00e9", "\xc3\xa9"},
    {"\\n", "\n"},          {"\xc3\xa9", "\xc3\xa9"}, {"\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80"},
    {"\x7f", "\x7f"},       {"\x01", NULL},           {"\t", NULL},
    {"\xff", NULL},         {"\x80", NULL},           {"\xe2\x82", NULL},
    {"\xed\xa0\x80", NULL}, /* an encoded surrogate */
    {"\\ud800", NULL},
};

/* The same string as a checked member and as a reported one: both paths through a word. */
static void test_proto_json__specials_at_every_place_in_a_word(void **state)
{
    char run[2 * RUN_MAX + 16], body[512], buf[64];
    const fg_proto_json_visitor v = {TAG_ROOT, on_member, on_string, NULL, buf, sizeof(buf)};
    (void)state;

    for (size_t k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
        for (size_t pre = 0; pre <= RUN_MAX; pre++) {
            for (size_t post = 0; post <= 9; post++) {
                calls c = {""}, want = {""};
                size_t len;
                int rc;

                snprintf(run, sizeof(run), "%.*s%s%.*s", (int)pre, "aaaaaaaaaaaaaaaaaaaaaaaa",
                         specials[k].raw, (int)post, "bbbbbbbbb");
                len = (size_t)snprintf(body, sizeof(body), "{\"pad\":\"%s\",\"leaf\":\"%s\"}", run,
                                       run);
                rc = scan_exact(body, len, FG_PROTO_DEPTH_MAX, NULL, NULL);
                assert_int_equal(rc, scan_exact(body, len, FG_PROTO_DEPTH_MAX, &v, &c));
                if (specials[k].decoded == NULL) {
                    if (rc != FG_EINVALID)
                        fail_msg("%s after %zu bytes was accepted", specials[k].raw, pre);
                    continue;
                }
                if (rc != 0)
                    fail_msg("%s after %zu bytes refused: %s", specials[k].raw, pre,
                             fg_error_last());
                snprintf(run, sizeof(run), "%.*s%s%.*s", (int)pre, "aaaaaaaaaaaaaaaaaaaaaaaa",
                         specials[k].decoded, (int)post, "bbbbbbbbb");
                snprintf(want.log, sizeof(want.log), "member 1 pad\nmember 1 leaf\nstring 3 %s\n",
                         run);
                assert_string_equal(c.log, want.log);
            }
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto_json__visitor_is_told_only_about_tagged_places),
        cmocka_unit_test(test_proto_json__no_visitor_and_callbacks_left_out),
        cmocka_unit_test(test_proto_json__depth_limit_is_the_callers),
        cmocka_unit_test(test_proto_json__specials_at_every_place_in_a_word),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
