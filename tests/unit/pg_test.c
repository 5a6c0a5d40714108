/* fg_pg without a server: COPY escaping, the SQLSTATE mapping, parsers, and connection failures
 * (libpq's PQconnectStartParams is wrapped at link time, see pg_test.cmake). */
#include "test_support.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fg/pg.h"

/* ---- the PQconnectStartParams wrap ------------------------------------------------------ */

enum { CONNECT_REAL, CONNECT_OOM };

PGconn *__real_PQconnectStartParams(const char *const *keywords, const char *const *values,
                                    int expand_dbname);
PGconn *__wrap_PQconnectStartParams(const char *const *keywords, const char *const *values,
                                    int expand_dbname);

static char seen_params[1024]; /* "key=value;" for each parameter of the last call */

PGconn *__wrap_PQconnectStartParams(const char *const *keywords, const char *const *values,
                                    int expand_dbname)
{
    size_t len = 0;

    seen_params[0] = '\0';
    for (size_t i = 0; keywords[i] != NULL && len < sizeof(seen_params); i++)
        len += (size_t)snprintf(seen_params + len, sizeof(seen_params) - len, "%s=%s;", keywords[i],
                                values[i]);
    if (mock_type(int) == CONNECT_OOM)
        return NULL;
    return __real_PQconnectStartParams(keywords, values, expand_dbname);
}

/* ---- COPY text format ------------------------------------------------------------------- */

static void assert_row(const char *const *values, size_t n, const char *expected)
{
    fg_buf b;

    fg_buf_init(&b, 4096);
    assert_int_equal(fg_pg_copy_encode_row(&b, values, n), 0);
    assert_string_equal(b.ptr, expected);
    fg_buf_dispose(&b);
}

static void test_pg__copy_escapes_backslash_tab_newline_and_cr(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"plain", "plain\n"},
        {"", "\n"},
        {"a\tb", "a\\tb\n"},
        {"line\nbreak", "line\\nbreak\n"},
        {"cr\r\n", "cr\\r\\n\n"},
        {"back\\slash", "back\\\\slash\n"},
        {"\\N", "\\\\N\n"}, /* the text \N is not NULL */
        {"\\.", "\\\\.\n"}, /* nor the end-of-data marker */
        {"\b\f\v", "\\b\\f\\v\n"},
        {"Grüße 🚀 'q' \"dq\"", "Grüße 🚀 'q' \"dq\"\n"},
        {"trailing\\", "trailing\\\\\n"},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *values[1] = {cases[i].in};

        assert_row(values, 1, cases[i].out);
    }
}

static void test_pg__copy_row_separates_with_tabs_and_writes_null_as_backslash_n(void **state)
{
    const char *values[4] = {"1", NULL, "", "x\ty"};
    (void)state;
    assert_row(values, 4, "1\t\\N\t\tx\\ty\n");
}

static void test_pg__copy_row_past_the_cap_leaves_the_buffer_unchanged(void **state)
{
    const char *first[1] = {"ok"};
    const char *big[2] = {"0123456789", "\t\t\t\t"};
    fg_buf b;
    (void)state;

    fg_buf_init(&b, 16);
    assert_int_equal(fg_pg_copy_encode_row(&b, first, 1), 0);
    assert_int_equal(fg_pg_copy_encode_row(&b, big, 2), FG_ETOOBIG);
    assert_string_equal(b.ptr, "ok\n");
    assert_int_equal(b.len, 3);
    assert_int_equal(fg_pg_copy_encode_row(&b, big, 0), FG_EINVALID);
    fg_buf_dispose(&b);
}

/* ---- SQLSTATE mapping ------------------------------------------------------------------- */

static void test_pg__sqlstates_fold_into_fg_codes(void **state)
{
    static const struct {
        const char *sqlstate;
        int code;
        bool retryable;
    } cases[] = {
        {"23505", FG_ECONFLICT, false},   /* unique_violation */
        {"40001", FG_ECONFLICT, true},    /* serialization_failure */
        {"40P01", FG_ECONFLICT, true},    /* deadlock_detected */
        {"22P02", FG_EINVALID, false},    /* invalid_text_representation */
        {"22001", FG_EINVALID, false},    /* string_data_right_truncation */
        {"22003", FG_EINVALID, false},    /* numeric_value_out_of_range */
        {"08006", FG_EUNAVAILABLE, true}, /* connection_failure */
        {"08001", FG_EUNAVAILABLE, true}, /* cannot connect */
        {"57P01", FG_EUNAVAILABLE, true}, /* admin_shutdown */
        {"57P03", FG_EUNAVAILABLE, true}, /* cannot_connect_now (starting up) */
        {"53300", FG_EUNAVAILABLE, true}, /* too_many_connections */
        {"28P01", FG_EAUTH, false},       /* invalid_password */
        {"42501", FG_EAUTH, false},       /* insufficient_privilege */
        {"57014", FG_ETIMEOUT, false},    /* query_canceled */
        {"23503", FG_ERROR, false},       /* foreign_key_violation */
        {"42P01", FG_ERROR, false},       /* undefined_table */
        {"42601", FG_ERROR, false},       /* syntax_error */
        {"", FG_ERROR, false},
        {"2350", FG_ERROR, false},
        {NULL, FG_ERROR, false},
    };
    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *s = cases[i].sqlstate;

        if (fg_pg_error_code(s) != cases[i].code ||
            fg_pg_sqlstate_retryable(s) != cases[i].retryable)
            fail_msg("SQLSTATE %s: code %d retryable %d", s ? s : "(null)", fg_pg_error_code(s),
                     fg_pg_sqlstate_retryable(s));
    }
}

/* ---- parsers and NULL handles ----------------------------------------------------------- */

static void test_pg__parsers_refuse_bad_text_and_keep_out_untouched(void **state)
{
    int64_t v = 42;
    bool b = true;
    (void)state;

    assert_int_equal(fg_pg_parse_int64(&v, "9223372036854775807"), 0);
    assert_true(v == INT64_MAX);
    assert_int_equal(fg_pg_parse_int64(&v, "-9223372036854775808"), 0);
    assert_true(v == INT64_MIN);
    v = 42;
    assert_int_equal(fg_pg_parse_int64(&v, "9223372036854775808"), FG_EINVALID);
    assert_int_equal(fg_pg_parse_int64(&v, "12abc"), FG_EINVALID);
    assert_int_equal(fg_pg_parse_int64(&v, " 12"), FG_EINVALID);
    assert_int_equal(fg_pg_parse_int64(&v, "+12"), FG_EINVALID);
    assert_int_equal(fg_pg_parse_int64(&v, ""), FG_EINVALID);
    assert_int_equal(fg_pg_parse_int64(&v, "1.5"), FG_EINVALID);
    assert_int_equal(fg_pg_parse_int64(&v, NULL), FG_EINVALID);
    assert_true(v == 42);
    assert_int_equal(fg_pg_parse_bool(&b, "f"), 0);
    assert_false(b);
    assert_int_equal(fg_pg_parse_bool(&b, "t"), 0);
    assert_true(b);
    assert_int_equal(fg_pg_parse_bool(&b, "true"), FG_EINVALID);
    assert_int_equal(fg_pg_parse_bool(&b, "F"), FG_EINVALID);
    assert_int_equal(fg_pg_parse_bool(&b, NULL), FG_EINVALID);
    assert_true(b);
}

static void test_pg__null_handles_are_refused_not_crashed_on(void **state)
{
    fg_pg_result *res = (fg_pg_result *)&res;
    const char *params[1] = {"x"};
    uint64_t rows = 7;
    size_t col = 3;
    int64_t v = 0;
    (void)state;

    assert_int_equal(fg_pg_exec(&res, NULL, "SELECT 1", 0, NULL), FG_EINVALID);
    assert_null(res);
    assert_int_equal(fg_pg_exec_prepared(NULL, NULL, "n", "SELECT $1", 1, params), FG_EINVALID);
    assert_int_equal(fg_pg_ping(NULL), FG_EINVALID);
    assert_int_equal(fg_pg_begin(NULL), FG_EINVALID);
    assert_int_equal(fg_pg_commit(NULL), FG_EINVALID);
    assert_int_equal(fg_pg_rollback(NULL), FG_EINVALID);
    assert_int_equal(fg_pg_copy_begin(NULL, "COPY t FROM STDIN"), FG_EINVALID);
    assert_int_equal(fg_pg_copy_put_row(NULL, params, 1), FG_EINVALID);
    assert_int_equal(fg_pg_copy_end(&rows, NULL), FG_EINVALID);
    assert_int_equal(rows, 0);
    assert_int_equal(fg_pg_migrate(NULL, NULL, "/nonexistent"), FG_EINVALID);
    assert_string_equal(fg_pg_sqlstate(NULL), "");
    assert_int_equal(fg_pg_result_rows(NULL), 0);
    assert_int_equal(fg_pg_result_cols(NULL), 0);
    assert_null(fg_pg_result_text(NULL, 0, 0));
    assert_true(fg_pg_result_is_null(NULL, 0, 0));
    assert_int_equal(fg_pg_result_int64(&v, NULL, 0, 0), FG_EINVALID);
    assert_int_equal(fg_pg_result_column(&col, NULL, "id"), FG_ENOTFOUND);
    assert_int_equal(col, 3);
    fg_pg_copy_abort(NULL);
    fg_pg_result_free(NULL);
    fg_pg_free(NULL);
}

/* ---- connecting ------------------------------------------------------------------------- */

static void test_pg__connect_refuses_what_is_not_a_postgres_url(void **state)
{
    fg_pg_conn *pg = (fg_pg_conn *)&pg;
    (void)state;

    assert_int_equal(fg_pg_connect(&pg, "amqp://fg:hunter2@127.0.0.1/", 1000), FG_EINVALID);
    assert_null(pg);
    assert_null(strstr(fg_error_last(), "hunter2"));
    assert_int_equal(fg_pg_connect(&pg, "postgresql://127.0.0.1:1/db", 0), FG_EINVALID);
    assert_int_equal(fg_pg_connect(&pg, NULL, 1000), FG_EINVALID);
}

static void test_pg__connect_reports_libpq_out_of_memory(void **state)
{
    fg_pg_conn *pg = NULL;
    (void)state;

    will_return(__wrap_PQconnectStartParams, CONNECT_OOM);
    assert_int_equal(fg_pg_connect(&pg, "postgresql://fg@127.0.0.1:1/db", 1000), FG_ENOMEM);
    assert_null(pg);
}

static void test_pg__connect_forces_utf8_after_the_url_and_keeps_defaults_before(void **state)
{
    const char *url = "postgresql://fg@127.0.0.1:1/db";
    fg_pg_conn *pg = NULL;
    const char *dbname, *encoding, *keepalive;
    (void)state;

    will_return(__wrap_PQconnectStartParams, CONNECT_OOM);
    assert_int_equal(fg_pg_connect(&pg, url, 1000), FG_ENOMEM);
    /* libpq lets the last occurrence win: the URL overrides what comes before it only. */
    dbname = strstr(seen_params, "dbname=postgresql://fg@127.0.0.1:1/db;");
    encoding = strstr(seen_params, "client_encoding=UTF8;");
    keepalive = strstr(seen_params, "keepalives_idle=");
    assert_non_null(dbname);
    assert_non_null(encoding);
    assert_non_null(keepalive);
    assert_true(keepalive < dbname && dbname < encoding);
}

/* URLs libpq cannot parse (its messages quote them, password included), and one it can. */
static void test_pg__connect_errors_never_show_the_password(void **state)
{
    static const struct {
        const char *url;
        int code;
    } cases[] = {
        {"postgresql://fg:hunter2@[::1:5432/db", FG_EINVALID},
        {"postgresql://fg:hun%zzter2@127.0.0.1:1/db", FG_EINVALID},
        {"postgresql://fg@127.0.0.1:1/db?password=hunter2&sslmode=x=y", FG_EINVALID},
        {"postgresql://fg:hunter2@127.0.0.1:1/db", FG_EUNAVAILABLE}, /* nothing on port 1 */
    };
    fg_pg_conn *pg = NULL;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        if (cases[i].code == FG_EUNAVAILABLE)
            will_return(__wrap_PQconnectStartParams, CONNECT_REAL);
        assert_int_equal(fg_pg_connect(&pg, cases[i].url, 2000), cases[i].code);
        assert_null(pg);
        if (strstr(fg_error_last(), "hunter2") != NULL || strstr(fg_error_last(), "hun%zz"))
            fail_msg("password shown for %zu: %s", i, fg_error_last());
        assert_non_null(strstr(fg_error_last(), "postgresql://fg"));
    }
    assert_non_null(strstr(fg_error_last(), "postgresql://fg:***@127.0.0.1:1/db"));
    assert_non_null(strstr(fg_error_last(), "SQLSTATE 08001, retryable"));
}

/* A socket that completes the TCP handshake but never answers the startup packet. */
static void test_pg__connect_gives_up_at_the_deadline(void **state)
{
    struct sockaddr_in addr = {0};
    socklen_t len = sizeof(addr);
    fg_pg_conn *pg = NULL;
    char url[128];
    long long start, took;
    int fd;
    (void)state;

    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
    assert_int_equal(listen(fd, 4), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&addr, &len), 0);
    snprintf(url, sizeof(url), "postgresql://fg@127.0.0.1:%d/db?sslmode=disable",
             ntohs(addr.sin_port));
    will_return(__wrap_PQconnectStartParams, CONNECT_REAL);
    start = fg_test_now_ms();
    assert_int_equal(fg_pg_connect(&pg, url, 300), FG_EUNAVAILABLE);
    took = fg_test_now_ms() - start;
    assert_null(pg);
    assert_non_null(strstr(fg_error_last(), "timed out after 300 ms"));
    assert_true(took >= 290 && took < 3000);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg__copy_escapes_backslash_tab_newline_and_cr),
        cmocka_unit_test(test_pg__copy_row_separates_with_tabs_and_writes_null_as_backslash_n),
        cmocka_unit_test(test_pg__copy_row_past_the_cap_leaves_the_buffer_unchanged),
        cmocka_unit_test(test_pg__sqlstates_fold_into_fg_codes),
        cmocka_unit_test(test_pg__parsers_refuse_bad_text_and_keep_out_untouched),
        cmocka_unit_test(test_pg__null_handles_are_refused_not_crashed_on),
        cmocka_unit_test(test_pg__connect_refuses_what_is_not_a_postgres_url),
        cmocka_unit_test(test_pg__connect_reports_libpq_out_of_memory),
        cmocka_unit_test(test_pg__connect_forces_utf8_after_the_url_and_keeps_defaults_before),
        cmocka_unit_test(test_pg__connect_errors_never_show_the_password),
        cmocka_unit_test(test_pg__connect_gives_up_at_the_deadline),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
