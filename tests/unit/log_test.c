/* fg_log: one JSON object per line, typed fields, secrets redacted, level filter. */
#include "test_support.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "fg/log.h"

static char captured[8192];

/* Runs emit() with the log pointed at a pipe and returns what was written. */
static const char *capture(void (*emit)(void))
{
    int fds[2];
    ssize_t n;

    assert_int_equal(pipe(fds), 0);
    fg_log_set_fd(fds[1]);
    emit();
    fg_log_set_fd(2);
    close(fds[1]);
    n = read(fds[0], captured, sizeof(captured) - 1);
    close(fds[0]);
    captured[n > 0 ? n : 0] = '\0';
    return captured;
}

static void emit_with_fields(void)
{
    fg_log_emit(FG_LOG_WARN,
                FG_LOG_FIELDS(FG_LOG_STR("delivery", "d\"1"), FG_LOG_INT("project", 42),
                              FG_LOG_SECRET("token")),
                "accepted %d", 7);
}

static void emit_debug(void)
{
    fg_log_debug("hidden");
}

static void test_log__writes_one_json_line_with_fields(void **state)
{
    const char *line;
    json_object *obj, *v;
    (void)state;
    fg_log_setup("webhook", FG_LOG_INFO);
    line = capture(emit_with_fields);
    assert_non_null(strchr(line, '\n'));
    assert_null(strchr(line, '\n') + 1 == NULL ? NULL : strchr(strchr(line, '\n') + 1, '\n'));
    obj = json_tokener_parse(line);
    assert_non_null(obj);
    assert_true(json_object_object_get_ex(obj, "level", &v));
    assert_string_equal(json_object_get_string(v), "warn");
    assert_true(json_object_object_get_ex(obj, "service", &v));
    assert_string_equal(json_object_get_string(v), "webhook");
    assert_true(json_object_object_get_ex(obj, "msg", &v));
    assert_string_equal(json_object_get_string(v), "accepted 7");
    assert_true(json_object_object_get_ex(obj, "delivery", &v));
    assert_string_equal(json_object_get_string(v), "d\"1");
    assert_true(json_object_object_get_ex(obj, "project", &v));
    assert_int_equal(json_object_get_int(v), 42);
    assert_true(json_object_object_get_ex(obj, "token", &v));
    assert_string_equal(json_object_get_string(v), "[redacted]");
    json_object_put(obj);
}

static void test_log__filters_below_level(void **state)
{
    (void)state;
    fg_log_setup("webhook", FG_LOG_INFO);
    assert_string_equal(capture(emit_debug), "");
    fg_log_setup("webhook", FG_LOG_DEBUG);
    assert_non_null(strstr(capture(emit_debug), "\"msg\":\"hidden\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_log__writes_one_json_line_with_fields),
        cmocka_unit_test(test_log__filters_below_level),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
