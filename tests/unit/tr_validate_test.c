/* token-repository's input checks: project ids, tokens, RFC 3339 expiry times, PUT bodies. */
#include "test_support.h"

#include <string.h>

#include "tr_validate.h"

static void test_tr_validate__project_ids(void **state)
{
    static const char *const bad[] = {"",
                                      "0",
                                      "-1",
                                      "+1",
                                      "01",
                                      "1x",
                                      " 1",
                                      "1 ",
                                      "1.0",
                                      "0x1",
                                      "9223372036854775808",
                                      "99999999999999999999"};
    int64_t id = 0;
    (void)state;

    assert_int_equal(tr_parse_project_id(&id, "1"), 0);
    assert_int_equal(id, 1);
    assert_int_equal(tr_parse_project_id(&id, "9223372036854775807"), 0);
    assert_int_equal(id, INT64_MAX);
    assert_int_equal(tr_parse_project_id(&id, NULL), FG_EINVALID);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tr_parse_project_id(&id, bad[i]) != FG_EINVALID)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(strncmp(fg_error_last(), "id ", 3), 0);
    }
}

static void test_tr_validate__tokens(void **state)
{
    char big[TR_TOKEN_MAX + 2];
    (void)state;

    memset(big, 'a', sizeof(big));
    assert_int_equal(tr_check_token("ghp_16C7e42F292c6912E7710c838347Ae178B4a", 40), 0);
    assert_int_equal(tr_check_token("glpat-xxxxxxxxxxxxxxxxxxxx", 26), 0);
    assert_int_equal(tr_check_token(big, TR_TOKEN_MAX), 0);
    assert_int_equal(tr_check_token(big, TR_TOKEN_MAX + 1), FG_EINVALID);
    assert_int_equal(tr_check_token("", 0), FG_EINVALID);
    assert_int_equal(tr_check_token("a b", 3), FG_EINVALID);
    assert_int_equal(tr_check_token("ab\n", 3), FG_EINVALID);
    assert_int_equal(tr_check_token("a\0b", 3), FG_EINVALID);
    assert_int_equal(tr_check_token("\xc3\xa9", 2), FG_EINVALID);
    assert_int_equal(tr_check_token("a\x7f", 2), FG_EINVALID);
    /* the reason names the field and a position, never the value */
    assert_int_equal(tr_check_token("secretvalue\x01", 12), FG_EINVALID);
    assert_int_equal(strncmp(fg_error_last(), "token ", 6), 0);
    assert_null(strstr(fg_error_last(), "secretvalue"));
}

static void test_tr_validate__rfc3339(void **state)
{
    static const struct {
        const char *in, *out;
    } good[] = {
        {"2030-01-31T23:59:59Z", "2030-01-31T23:59:59Z"},
        {"2030-01-31t23:59:59z", "2030-01-31T23:59:59Z"},
        {"2030-01-31T23:59:59.1+01:00", "2030-01-31T23:59:59.1+01:00"},
        {"2030-01-31T23:59:59.123456789-23:59", "2030-01-31T23:59:59.123456789-23:59"},
        {"2024-02-29T00:00:00Z", "2024-02-29T00:00:00Z"},
        {"2000-02-29T00:00:00Z", "2000-02-29T00:00:00Z"},
        {"2016-12-31T23:59:60Z", "2016-12-31T23:59:60Z"},
        {"1970-01-01T00:00:00Z", "1970-01-01T00:00:00Z"},
        {"9999-12-31T23:59:59Z", "9999-12-31T23:59:59Z"},
    };
    static const char *const bad[] = {"",
                                      "2030-01-31",
                                      "2030-01-31T23:59Z",
                                      "2030-01-31T23:59:59",
                                      "2030-01-31 23:59:59Z",
                                      "2030-1-31T23:59:59Z",
                                      "2030-13-01T00:00:00Z",
                                      "2030-00-01T00:00:00Z",
                                      "2030-04-31T00:00:00Z",
                                      "2023-02-29T00:00:00Z",
                                      "1900-02-29T00:00:00Z",
                                      "2030-01-31T24:00:00Z",
                                      "2030-01-31T23:60:00Z",
                                      "2030-01-31T23:59:61Z",
                                      "2030-01-31T23:59:59.Z",
                                      "2030-01-31T23:59:59.1234567890Z",
                                      "2030-01-31T23:59:59+0100",
                                      "2030-01-31T23:59:59+24:00",
                                      "2030-01-31T23:59:59+01:60",
                                      "2030-01-31T23:59:59ZZ",
                                      "2030-01-31T23:59:59Z ",
                                      "1969-12-31T23:59:59Z",
                                      "0000-01-01T00:00:00Z",
                                      "+2030-01-31T23:59:59Z",
                                      "2030-01-31T23:59:59UTC",
                                      "tomorrow"};
    char out[TR_TIME_TEXT_MAX];
    (void)state;

    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        if (tr_parse_rfc3339(out, good[i].in, strlen(good[i].in)) != 0)
            fail_msg("refused \"%s\": %s", good[i].in, fg_error_last());
        assert_string_equal(out, good[i].out);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tr_parse_rfc3339(out, bad[i], strlen(bad[i])) != FG_EINVALID)
            fail_msg("accepted \"%s\"", bad[i]);
        assert_int_equal(strncmp(fg_error_last(), "expiresAt ", 10), 0);
    }
    /* a string with a NUL inside is not cut short at it */
    assert_int_equal(tr_parse_rfc3339(out, "2030-01-31T23:59:59Z\0x", 22), FG_EINVALID);
}

static void test_tr_validate__put_bodies(void **state)
{
    static const struct {
        const char *body, *starts;
    } bad[] = {
        {"", "body"},
        {"null", "body"},
        {"[]", "body"},
        {"{\"token\":\"a\"", "body"},
        {"{\"token\":\"a\"}{}", "body"},
        {"{'token':'a'}", "body"},
        {"{\"token\":\"\xff\"}", "body"},
        {"{\"a\":{\"b\":{\"c\":{\"d\":{}}}}}", "body"},
        {"{}", "token is required"},
        {"{\"token\":null}", "token must be a string"},
        {"{\"token\":[\"a\"]}", "token must be a string"},
        {"{\"token\":\"a\\u0000b\"}", "token must be printable"},
        {"{\"token\":\"a\",\"expiresAt\":true}", "expiresAt"},
        {"{\"token\":\"a\",\"expiresAt\":\"2030-01-01\"}", "expiresAt"},
        {"{\"token\":\"a\",\"extra\":1}", "unknown field \"extra\""},
    };
    tr_put_request r;
    const char *ok = "{\"expiresAt\":\"2030-01-01T00:00:00z\",\"token\":\"ghp_x\"}";
    (void)state;

    assert_int_equal(tr_put_request_parse(&r, ok, strlen(ok)), 0);
    assert_int_equal(r.token_len, 5);
    assert_memory_equal(r.token, "ghp_x", 5);
    assert_true(r.has_expiry);
    assert_string_equal(r.expires_at, "2030-01-01T00:00:00Z");
    tr_put_request_dispose(&r);
    assert_null(r.token);

    ok = "{\"token\":\"ghp_y\",\"expiresAt\":null}";
    assert_int_equal(tr_put_request_parse(&r, ok, strlen(ok)), 0);
    assert_false(r.has_expiry);
    tr_put_request_dispose(&r);

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (tr_put_request_parse(&r, bad[i].body, strlen(bad[i].body)) != FG_EINVALID)
            fail_msg("accepted %s", bad[i].body);
        if (strncmp(fg_error_last(), bad[i].starts, strlen(bad[i].starts)) != 0)
            fail_msg("%s: \"%s\" does not start with \"%s\"", bad[i].body, fg_error_last(),
                     bad[i].starts);
        tr_put_request_dispose(&r);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tr_validate__project_ids),
        cmocka_unit_test(test_tr_validate__tokens),
        cmocka_unit_test(test_tr_validate__rfc3339),
        cmocka_unit_test(test_tr_validate__put_bodies),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
