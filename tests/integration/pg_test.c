/* fg_pg against a real PostgreSQL (FG_PG_URL, an admin URL). Every test works in scratch
 * databases of its own (fg_pg_test_<pid>_<n>), created and dropped here, never in a service's.
 * The restart test drives the server: deploy/local/stack.sh when the stack runs
 * (FG_STACK_DIR), else reference/scripts/pg_local.sh when PGROOT and PGPORT name a private
 * server, else it is skipped with a note. */
#include "test_support.h"

#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fg/pg.h"

#define TIMEOUT_MS 10000
#define FIXTURES   FG_SOURCE_DIR "/tests/fixtures/migrations/"

extern char **environ;

static const char *admin_url;
static fg_pg_conn *admin;
static int scratch_counter;

typedef struct {
    char name[64];
    char url[1024];
} scratch;

/* ---- helpers ---------------------------------------------------------------------------- */

static void check(int rc, const char *what)
{
    if (rc < 0)
        fail_msg("%s: %d %s", what, rc, fg_error_last());
}

static fg_pg_conn *connect_to(const char *url)
{
    fg_pg_conn *pg = NULL;

    check(fg_pg_connect(&pg, url, TIMEOUT_MS), "connect");
    return pg;
}

/* The first cell of a one-parameter-or-none query, as a malloc'd string ("<NULL>" for NULL). */
static char *query(fg_pg_conn *pg, const char *sql, const char *param)
{
    const char *params[1] = {param};
    fg_pg_result *res = NULL;
    const char *text;
    char *copy;

    check(fg_pg_exec(&res, pg, sql, param ? 1 : 0, param ? params : NULL), sql);
    assert_int_equal(fg_pg_result_rows(res), 1);
    text = fg_pg_result_text(res, 0, 0);
    copy = strdup(text ? text : "<NULL>");
    fg_pg_result_free(res);
    return copy;
}

static long long query_int(fg_pg_conn *pg, const char *sql, const char *param)
{
    char *text = query(pg, sql, param);
    int64_t v = -1;

    check(fg_pg_parse_int64(&v, text), sql);
    free(text);
    return (long long)v;
}

/* A fresh database; its URL is the admin URL with another database path. */
static void scratch_create(scratch *s)
{
    const char *auth = strstr(admin_url, "://");
    const char *path = auth ? strchr(auth + 3, '/') : NULL;
    const char *query_part = strchr(admin_url, '?');
    size_t base = path ? (size_t)(path - admin_url) : strcspn(admin_url, "?");
    char sql[128];

    snprintf(s->name, sizeof(s->name), "fg_pg_test_%ld_%d", (long)getpid(), ++scratch_counter);
    snprintf(s->url, sizeof(s->url), "%.*s/%s%s", (int)base, admin_url, s->name,
             query_part ? query_part : "");
    /* An identifier cannot be a parameter; the name is ours, made of [a-z0-9_]. */
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", s->name);
    check(fg_pg_exec(NULL, admin, sql, 0, NULL), sql);
}

static void scratch_drop(scratch *s)
{
    char sql[128];

    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", s->name);
    check(fg_pg_exec(NULL, admin, sql, 0, NULL), sql);
}

/* Tables, the version rows and the seeded data: what a second migration run must not change. */
static char *schema_snapshot(fg_pg_conn *pg)
{
    return query(pg,
                 "SELECT (SELECT string_agg(table_name, ',' ORDER BY table_name)"
                 "          FROM information_schema.tables WHERE table_schema = 'public')"
                 "    || ' | ' || (SELECT string_agg(version || ':' || checksum || ':' ||"
                 "                        applied_at::text, ',' ORDER BY version)"
                 "                   FROM fg_schema_migrations)"
                 "    || ' | ' || (SELECT string_agg(id::text || payload, ',' ORDER BY id)"
                 "                   FROM event)",
                 NULL);
}

/* ---- (a) idempotent migrations ---------------------------------------------------------- */

static void test_pg__migrating_twice_applies_nothing_the_second_time(void **state)
{
    scratch s;
    fg_pg_conn *pg;
    size_t applied = 99;
    char *before, *after, *versions;
    (void)state;

    scratch_create(&s);
    pg = connect_to(s.url);
    check(fg_pg_migrate(&applied, pg, FIXTURES "good"), "first migrate");
    assert_int_equal(applied, 3);
    versions = query(pg,
                     "SELECT string_agg(version, ',' ORDER BY version) FROM "
                     "fg_schema_migrations WHERE checksum ~ '^[0-9a-f]{64}$'",
                     NULL);
    assert_string_equal(versions, "0001_init,0002_event,0003_seed");
    before = schema_snapshot(pg);
    check(fg_pg_migrate(&applied, pg, FIXTURES "good"), "second migrate");
    assert_int_equal(applied, 0);
    after = schema_snapshot(pg);
    assert_string_equal(before, after);
    assert_int_equal(query_int(pg, "SELECT count(*) FROM event", NULL), 2);
    free(versions);
    free(before);
    free(after);
    fg_pg_free(pg);
    scratch_drop(&s);
}

/* ---- (b) two instances at once ---------------------------------------------------------- */

typedef struct {
    const char *url;
    pthread_barrier_t *start;
    int rc;
    size_t applied;
    char error[512];
} racer;

static void *race(void *arg)
{
    racer *r = arg;
    fg_pg_conn *pg = NULL;

    r->rc = fg_pg_connect(&pg, r->url, TIMEOUT_MS);
    pthread_barrier_wait(r->start);
    if (r->rc == 0)
        r->rc = fg_pg_migrate(&r->applied, pg, FIXTURES "good");
    snprintf(r->error, sizeof(r->error), "%s", fg_error_last());
    fg_pg_free(pg);
    return NULL;
}

static void test_pg__concurrent_migrations_apply_each_file_exactly_once(void **state)
{
    (void)state;
    /* A few rounds: each starts both instances together on a fresh database. */
    for (int round = 0; round < 4; round++) {
        pthread_barrier_t start;
        racer racers[2];
        pthread_t threads[2];
        scratch s;
        fg_pg_conn *pg;

        scratch_create(&s);
        pthread_barrier_init(&start, NULL, 2);
        for (int i = 0; i < 2; i++) {
            racers[i] = (racer){s.url, &start, FG_ERROR, 0, ""};
            assert_int_equal(pthread_create(&threads[i], NULL, race, &racers[i]), 0);
        }
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_join(threads[i], NULL), 0);
        pthread_barrier_destroy(&start);
        for (int i = 0; i < 2; i++)
            if (racers[i].rc != 0)
                fail_msg("round %d, instance %d: %d %s", round, i, racers[i].rc, racers[i].error);
        assert_int_equal(racers[0].applied + racers[1].applied, 3);
        pg = connect_to(s.url);
        assert_int_equal(query_int(pg, "SELECT count(*) FROM fg_schema_migrations", NULL), 3);
        assert_int_equal(query_int(pg, "SELECT count(*) FROM event", NULL), 2);
        fg_pg_free(pg);
        scratch_drop(&s);
    }
}

/* ---- (c) failures ----------------------------------------------------------------------- */

static void test_pg__broken_migration_rolls_back_completely_and_names_the_file(void **state)
{
    scratch s;
    fg_pg_conn *pg;
    size_t applied = 99;
    char *versions, *half;
    int rc;
    (void)state;

    scratch_create(&s);
    pg = connect_to(s.url);
    rc = fg_pg_migrate(&applied, pg, FIXTURES "broken");
    assert_int_equal(rc, FG_ERROR);
    assert_int_equal(applied, 1);
    assert_non_null(strstr(fg_error_last(), "0002_broken.sql, line 3"));
    assert_non_null(strstr(fg_error_last(), "no_such_table"));
    assert_non_null(strstr(fg_error_last(), "42P01"));
    assert_string_equal(fg_pg_sqlstate(pg), "42P01");
    /* Its first two statements ran, and are gone with the rest. */
    half = query(pg, "SELECT to_regclass('half_done')::text", NULL);
    assert_string_equal(half, "<NULL>");
    versions = query(pg, "SELECT string_agg(version, ',') FROM fg_schema_migrations", NULL);
    assert_string_equal(versions, "0001_init");
    check(fg_pg_ping(pg), "ping after the failure");
    free(half);
    free(versions);
    fg_pg_free(pg);
    scratch_drop(&s);
}

static void test_pg__changed_migration_is_refused_naming_it(void **state)
{
    scratch s;
    fg_pg_conn *pg;
    size_t applied = 99;
    char *column;
    (void)state;

    scratch_create(&s);
    pg = connect_to(s.url);
    check(fg_pg_migrate(&applied, pg, FIXTURES "good"), "migrate");
    assert_int_equal(fg_pg_migrate(&applied, pg, FIXTURES "changed"), FG_ECONFLICT);
    assert_int_equal(applied, 0);
    assert_non_null(strstr(fg_error_last(), "0001_init.sql was changed"));
    column = query(pg,
                   "SELECT count(*)::text FROM information_schema.columns"
                   " WHERE table_name = 'project' AND column_name = 'name'",
                   NULL);
    assert_string_equal(column, "0");
    free(column);
    fg_pg_free(pg);
    scratch_drop(&s);
}

static void test_pg__migration_that_commits_itself_or_is_missing_is_refused(void **state)
{
    scratch s;
    fg_pg_conn *pg;
    size_t applied = 99;
    (void)state;

    scratch_create(&s);
    pg = connect_to(s.url);
    assert_int_equal(fg_pg_migrate(&applied, pg, FIXTURES "ends_tx"), FG_EINVALID);
    assert_non_null(strstr(fg_error_last(), "0001_commits.sql"));
    assert_int_equal(query_int(pg, "SELECT count(*) FROM fg_schema_migrations", NULL), 0);
    assert_int_equal(fg_pg_migrate(&applied, pg, FIXTURES "no_such_dir"), FG_ENOTFOUND);
    check(fg_pg_begin(pg), "begin");
    assert_int_equal(fg_pg_migrate(&applied, pg, FIXTURES "good"), FG_EINVALID);
    check(fg_pg_rollback(pg), "rollback");
    fg_pg_free(pg);
    scratch_drop(&s);
}

/* ---- (d) statements, errors, transactions ----------------------------------------------- */

static const char *const awkward[] = {
    "O'Brien said \"hi\"; DROP TABLE t; --",
    "back\\slash \\\\ and \\N and \\.",
    "Grüße, 🚀, ∀x∈ℝ, 日本語",
    "tab\there\nnew line\r\n",
    "",
    NULL,
};
#define NAWKWARD (sizeof(awkward) / sizeof(awkward[0]))

static void assert_round_trip(fg_pg_conn *pg, bool prepared)
{
    for (size_t i = 0; i < NAWKWARD; i++) {
        const char *params[1] = {awkward[i]};
        fg_pg_result *res = NULL;
        int rc;

        if (prepared)
            rc = fg_pg_exec_prepared(&res, pg, "echo", "SELECT $1::text AS v, $1 IS NULL AS n", 1,
                                     params);
        else
            rc = fg_pg_exec(&res, pg, "SELECT $1::text AS v, $1 IS NULL AS n", 1, params);
        check(rc, "echo");
        assert_int_equal(fg_pg_result_rows(res), 1);
        assert_int_equal(fg_pg_result_cols(res), 2);
        if (awkward[i] == NULL) {
            assert_true(fg_pg_result_is_null(res, 0, 0));
            assert_null(fg_pg_result_text(res, 0, 0));
        } else {
            assert_false(fg_pg_result_is_null(res, 0, 0));
            assert_string_equal(fg_pg_result_text(res, 0, 0), awkward[i]);
        }
        fg_pg_result_free(res);
    }
}

static void test_pg__parameters_round_trip_quotes_backslashes_unicode_and_null(void **state)
{
    fg_pg_conn *pg = connect_to(admin_url);
    scratch s;
    fg_pg_result *res = NULL;
    const char *params[3];
    char id_text[32];
    (void)state;

    assert_round_trip(pg, false);
    assert_round_trip(pg, true);
    assert_round_trip(pg, true); /* the second time it reuses the prepared statement */
    fg_pg_free(pg);

    /* Stored and read back through a table, with the typed getters. */
    scratch_create(&s);
    pg = connect_to(s.url);
    check(fg_pg_exec(NULL, pg, "CREATE TABLE t (id bigserial PRIMARY KEY, s text, n int8, b bool)",
                     0, NULL),
          "create");
    for (size_t i = 0; i < NAWKWARD; i++) {
        int64_t id = 0, n = 0;
        bool b = false;
        size_t col = 0;

        params[0] = awkward[i];
        params[1] = i % 2 ? "-9223372036854775808" : "9223372036854775807";
        params[2] = i % 2 ? "false" : "true";
        check(fg_pg_exec(&res, pg, "INSERT INTO t (s, n, b) VALUES ($1, $2, $3) RETURNING id", 3,
                         params),
              "insert");
        assert_int_equal(fg_pg_result_affected(res), 1);
        check(fg_pg_result_int64(&id, res, 0, 0), "id");
        fg_pg_result_free(res);
        snprintf(id_text, sizeof(id_text), "%lld", (long long)id);
        params[0] = id_text;
        check(fg_pg_exec(&res, pg, "SELECT n, b, s FROM t WHERE id = $1", 1, params), "select");
        check(fg_pg_result_column(&col, res, "s"), "column s");
        assert_int_equal(col, 2);
        check(fg_pg_result_int64(&n, res, 0, 0), "n");
        check(fg_pg_result_bool(&b, res, 0, 1), "b");
        assert_true(n == (i % 2 ? INT64_MIN : INT64_MAX));
        assert_true(b == !(i % 2));
        if (awkward[i] == NULL)
            assert_true(fg_pg_result_is_null(res, 0, col));
        else
            assert_string_equal(fg_pg_result_text(res, 0, col), awkward[i]);
        fg_pg_result_free(res);
        res = NULL;
    }
    assert_int_equal(query_int(pg, "SELECT count(*) FROM t", NULL), (long long)NAWKWARD);
    fg_pg_free(pg);
    scratch_drop(&s);
}

static void test_pg__getters_fail_cleanly_on_bad_data(void **state)
{
    fg_pg_conn *pg = connect_to(admin_url);
    fg_pg_result *res = NULL;
    int64_t v = 7;
    bool b = true;
    size_t col = 9;
    (void)state;

    check(fg_pg_exec(&res, pg, "SELECT 'abc' AS word, NULL::int8 AS nothing, 1.5 AS frac", 0, NULL),
          "select");
    assert_int_equal(fg_pg_result_int64(&v, res, 0, 0), FG_EINVALID);
    assert_int_equal(fg_pg_result_int64(&v, res, 0, 1), FG_EINVALID);
    assert_non_null(strstr(fg_error_last(), "NULL"));
    assert_int_equal(fg_pg_result_int64(&v, res, 0, 2), FG_EINVALID);
    assert_int_equal(fg_pg_result_int64(&v, res, 1, 0), FG_EINVALID);
    assert_int_equal(fg_pg_result_int64(&v, res, 0, 3), FG_EINVALID);
    assert_int_equal(fg_pg_result_bool(&b, res, 0, 0), FG_EINVALID);
    assert_int_equal(fg_pg_result_column(&col, res, "missing"), FG_ENOTFOUND);
    assert_true(v == 7 && b && col == 9);
    assert_null(fg_pg_result_text(res, 5, 0));
    assert_true(fg_pg_result_is_null(res, 0, 9));
    assert_int_equal(fg_pg_result_affected(res), 1); /* SELECT 1 */
    fg_pg_result_free(res);
    check(fg_pg_exec(&res, pg, "SET search_path = public", 0, NULL), "set");
    assert_int_equal(fg_pg_result_affected(res), 0);
    fg_pg_result_free(res);
    fg_pg_free(pg);
}

static void test_pg__server_errors_fold_into_fg_codes_with_their_sqlstate(void **state)
{
    fg_pg_conn *pg = connect_to(admin_url);
    const char *params[1] = {"taken"};
    const char *bad[1] = {"abc"};
    fg_pg_result *res = (fg_pg_result *)&res;
    (void)state;

    check(fg_pg_exec(NULL, pg, "CREATE TEMP TABLE u (name text UNIQUE)", 0, NULL), "create");
    check(fg_pg_exec(NULL, pg, "INSERT INTO u VALUES ($1)", 1, params), "insert");
    assert_int_equal(fg_pg_exec(&res, pg, "INSERT INTO u VALUES ($1)", 1, params), FG_ECONFLICT);
    assert_null(res);
    assert_string_equal(fg_pg_sqlstate(pg), "23505");
    assert_false(fg_pg_sqlstate_retryable(fg_pg_sqlstate(pg)));
    assert_non_null(strstr(fg_error_last(), "u_name_key"));
    assert_int_equal(fg_pg_exec_prepared(NULL, pg, "ins", "INSERT INTO u VALUES ($1)", 1, params),
                     FG_ECONFLICT);
    assert_int_equal(fg_pg_exec(NULL, pg, "SELECT $1::int", 1, bad), FG_EINVALID);
    assert_string_equal(fg_pg_sqlstate(pg), "22P02");
    assert_int_equal(fg_pg_exec(NULL, pg, "SELEC 1", 0, NULL), FG_ERROR);
    assert_string_equal(fg_pg_sqlstate(pg), "42601");
    /* One statement per call: no way to smuggle a second one in. */
    assert_int_equal(fg_pg_exec(NULL, pg, "SELECT 1; SELECT 2", 0, NULL), FG_ERROR);
    assert_int_equal(fg_pg_exec(NULL, pg, "SELECT 1", 1, NULL), FG_EINVALID);
    assert_int_equal(fg_pg_exec_prepared(NULL, pg, "ins", "SELECT 1", 0, NULL), FG_EINVALID);
    assert_int_equal(fg_pg_exec(NULL, pg, "COPY u TO STDOUT", 0, NULL), FG_EINVALID);
    check(fg_pg_exec(NULL, pg, "SELECT 1", 0, NULL), "still usable");
    assert_string_equal(fg_pg_sqlstate(pg), "");
    fg_pg_free(pg);
}

static void test_pg__serialization_failure_is_a_retryable_conflict(void **state)
{
    scratch s;
    fg_pg_conn *a, *b;
    const char *one[1] = {"1"};
    int rc;
    (void)state;

    scratch_create(&s);
    a = connect_to(s.url);
    b = connect_to(s.url);
    check(fg_pg_exec(NULL, a, "CREATE TABLE duty (who int)", 0, NULL), "create");
    /* Write skew: each reads the table, then inserts what the other's read missed. */
    check(fg_pg_begin(a), "begin a");
    check(fg_pg_exec(NULL, a, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", 0, NULL), "iso a");
    check(fg_pg_begin(b), "begin b");
    check(fg_pg_exec(NULL, b, "SET TRANSACTION ISOLATION LEVEL SERIALIZABLE", 0, NULL), "iso b");
    check(fg_pg_exec(NULL, a, "SELECT count(*) FROM duty WHERE who = 2", 0, NULL), "read a");
    check(fg_pg_exec(NULL, b, "SELECT count(*) FROM duty WHERE who = 1", 0, NULL), "read b");
    check(fg_pg_exec(NULL, a, "INSERT INTO duty VALUES ($1)", 1, one), "write a");
    one[0] = "2";
    check(fg_pg_exec(NULL, b, "INSERT INTO duty VALUES ($1)", 1, one), "write b");
    check(fg_pg_commit(a), "commit a");
    rc = fg_pg_commit(b);
    assert_int_equal(rc, FG_ECONFLICT);
    assert_string_equal(fg_pg_sqlstate(b), "40001");
    assert_true(fg_pg_sqlstate_retryable(fg_pg_sqlstate(b)));
    assert_non_null(strstr(fg_error_last(), "retryable"));
    check(fg_pg_rollback(b), "rollback after a failed commit is harmless");
    assert_int_equal(query_int(b, "SELECT count(*) FROM duty", NULL), 1);
    fg_pg_free(a);
    fg_pg_free(b);
    scratch_drop(&s);
}

static void test_pg__transactions_commit_roll_back_and_refuse_a_failed_commit(void **state)
{
    fg_pg_conn *pg = connect_to(admin_url);
    const char *params[1] = {"kept"};
    (void)state;

    check(fg_pg_exec(NULL, pg, "CREATE TEMP TABLE tx (v text)", 0, NULL), "create");
    check(fg_pg_begin(pg), "begin");
    assert_int_equal(fg_pg_begin(pg), FG_EINVALID);
    check(fg_pg_exec(NULL, pg, "INSERT INTO tx VALUES ($1)", 1, params), "insert");
    check(fg_pg_commit(pg), "commit");
    params[0] = "dropped";
    check(fg_pg_begin(pg), "begin");
    check(fg_pg_exec(NULL, pg, "INSERT INTO tx VALUES ($1)", 1, params), "insert");
    check(fg_pg_rollback(pg), "rollback");
    /* A transaction with a failed statement cannot commit what came before the failure. */
    params[0] = "lost";
    check(fg_pg_begin(pg), "begin");
    check(fg_pg_exec(NULL, pg, "INSERT INTO tx VALUES ($1)", 1, params), "insert");
    assert_int_equal(fg_pg_exec(NULL, pg, "SELECT 1/0", 0, NULL), FG_EINVALID);
    assert_int_equal(fg_pg_commit(pg), FG_ERROR);
    assert_non_null(strstr(fg_error_last(), "rolled back"));
    assert_string_equal(fg_pg_sqlstate(pg), "25P02");
    assert_int_equal(fg_pg_commit(pg), FG_EINVALID);
    check(fg_pg_rollback(pg), "rollback without a transaction");
    assert_int_equal(query_int(pg, "SELECT count(*) FROM tx", NULL), 1);
    fg_pg_free(pg);
}

/* ---- (e) COPY --------------------------------------------------------------------------- */

static const char *const copy_values[] = {
    "plain", "tab\there",      "new\nline",  "cr\rlf\r\n", "back\\slash", "\\N",    "\\.",
    "",      "quote ' and \"", "Grüße 🚀 ∀x", "\\",         "trailing\\",  "\b\f\v", "a\tb\tc\\t",
};
#define NCOPY_VALUES (sizeof(copy_values) / sizeof(copy_values[0]))
#define COPY_ROWS    10000

static const char *copy_b(char *buf, size_t size, int i)
{
    if (i % 7 == 0)
        return NULL;
    snprintf(buf, size, "%d:%s", i, copy_values[(size_t)i * 3 % NCOPY_VALUES]);
    return buf;
}

static void test_pg__copy_round_trips_ten_thousand_awkward_rows(void **state)
{
    scratch s;
    fg_pg_conn *pg;
    fg_pg_result *res = NULL;
    uint64_t stored = 0;
    char id[32], b[128];
    (void)state;

    scratch_create(&s);
    pg = connect_to(s.url);
    check(fg_pg_exec(NULL, pg, "CREATE TABLE c (id int8 PRIMARY KEY, a text, b text)", 0, NULL),
          "create");
    check(fg_pg_copy_begin(pg, "COPY c (id, a, b) FROM STDIN"), "copy begin");
    assert_int_equal(fg_pg_exec(NULL, pg, "SELECT 1", 0, NULL), FG_EINVALID);
    for (int i = 0; i < COPY_ROWS; i++) {
        const char *row[3] = {id, copy_values[(size_t)i % NCOPY_VALUES], copy_b(b, sizeof(b), i)};

        snprintf(id, sizeof(id), "%d", i);
        check(fg_pg_copy_put_row(pg, row, 3), "put row");
    }
    check(fg_pg_copy_end(&stored, pg), "copy end");
    assert_int_equal(stored, COPY_ROWS);
    check(fg_pg_exec(&res, pg, "SELECT id, a, b FROM c ORDER BY id", 0, NULL), "select");
    assert_int_equal(fg_pg_result_rows(res), COPY_ROWS);
    for (int i = 0; i < COPY_ROWS; i++) {
        const char *want_b = copy_b(b, sizeof(b), i);
        const char *got_b = fg_pg_result_text(res, (size_t)i, 2);
        int64_t got_id = -1;

        check(fg_pg_result_int64(&got_id, res, (size_t)i, 0), "id");
        assert_true(got_id == i);
        assert_string_equal(fg_pg_result_text(res, (size_t)i, 1),
                            copy_values[(size_t)i % NCOPY_VALUES]);
        if (want_b == NULL)
            assert_null(got_b);
        else
            assert_string_equal(got_b, want_b);
    }
    fg_pg_result_free(res);
    fg_pg_free(pg);
    scratch_drop(&s);
}

static void test_pg__copy_errors_store_nothing_and_leave_the_connection_usable(void **state)
{
    fg_pg_conn *pg = connect_to(admin_url);
    const char *good[2] = {"1", "\\."};
    const char *bad[2] = {"not a number", "x"};
    uint64_t stored = 9;
    (void)state;

    check(fg_pg_exec(NULL, pg, "CREATE TEMP TABLE cc (id int8, v text)", 0, NULL), "create");
    /* A value the server refuses: reported at the end, nothing stored. */
    check(fg_pg_copy_begin(pg, "COPY cc FROM STDIN"), "copy begin");
    check(fg_pg_copy_put_row(pg, good, 2), "good row");
    check(fg_pg_copy_put_row(pg, bad, 2), "bad row (checked by the server later)");
    assert_int_equal(fg_pg_copy_end(&stored, pg), FG_EINVALID);
    assert_int_equal(stored, 0);
    assert_string_equal(fg_pg_sqlstate(pg), "22P02");
    /* A row of the wrong width aborts the COPY on the client side. */
    check(fg_pg_copy_begin(pg, "COPY cc FROM STDIN"), "copy begin");
    check(fg_pg_copy_put_row(pg, good, 2), "good row");
    assert_int_equal(fg_pg_copy_put_row(pg, good, 1), FG_EINVALID);
    assert_non_null(strstr(fg_error_last(), "1 values, the COPY takes 2"));
    assert_int_equal(fg_pg_copy_end(&stored, pg), FG_EINVALID);
    /* An abort by the caller. */
    check(fg_pg_copy_begin(pg, "COPY cc FROM STDIN"), "copy begin");
    check(fg_pg_copy_put_row(pg, good, 2), "good row");
    fg_pg_copy_abort(pg);
    assert_int_equal(query_int(pg, "SELECT count(*) FROM cc", NULL), 0);
    /* Not a COPY FROM STDIN. */
    assert_int_equal(fg_pg_copy_begin(pg, "SELECT 1"), FG_EINVALID);
    /* And one that works, inside a transaction, with \. as a whole line's value. */
    check(fg_pg_begin(pg), "begin");
    check(fg_pg_copy_begin(pg, "COPY cc FROM STDIN"), "copy begin");
    check(fg_pg_copy_put_row(pg, good, 2), "good row");
    check(fg_pg_copy_end(&stored, pg), "copy end");
    check(fg_pg_commit(pg), "commit");
    assert_int_equal(stored, 1);
    assert_int_equal(query_int(pg, "SELECT count(*) FROM cc WHERE v = '\\.'", NULL), 1);
    fg_pg_free(pg);
}

/* ---- (f) the server goes away ----------------------------------------------------------- */

typedef struct {
    char *pid;
} backend;

static bool backend_gone(void *payload)
{
    backend *b = payload;

    return query_int(admin, "SELECT count(*) FROM pg_stat_activity WHERE pid = $1::int", b->pid) ==
           0;
}

/* Ends the session of backend `pid` from the server side, as a restart or an operator would. */
static void kill_backend(const char *pid)
{
    backend b = {(char *)pid};
    char *done = query(admin, "SELECT pg_terminate_backend($1::int)::text", pid);

    assert_string_equal(done, "true");
    assert_true(fg_test_wait_until(backend_gone, &b, 10000));
    free(done);
}

/* Ends pg's session; returns its old backend pid (free it). */
static char *terminate(fg_pg_conn *pg)
{
    char *pid = query(pg, "SELECT pg_backend_pid()::text", NULL);

    kill_backend(pid);
    return pid;
}

static void test_pg__reconnects_after_its_session_is_terminated(void **state)
{
    fg_pg_conn *pg = connect_to(admin_url);
    const char *params[1] = {"x"};
    char *before, *after;
    (void)state;

    check(fg_pg_exec_prepared(NULL, pg, "probe", "SELECT $1::text", 1, params), "prepared");
    before = terminate(pg);
    check(fg_pg_ping(pg), "ping after the session ended");
    after = query(pg, "SELECT pg_backend_pid()::text", NULL);
    assert_string_not_equal(before, after);
    /* The prepared statement died with the old session and is prepared again. */
    check(fg_pg_exec_prepared(NULL, pg, "probe", "SELECT $1::text", 1, params), "prepared again");
    free(before);
    free(after);
    before = terminate(pg);
    check(fg_pg_exec(NULL, pg, "SELECT 1", 0, NULL), "exec after the session ended");
    free(before);
    fg_pg_free(pg);
}

static void test_pg__connection_lost_inside_a_transaction_needs_a_rollback(void **state)
{
    fg_pg_conn *pg = connect_to(admin_url);
    char *pid;
    (void)state;

    check(fg_pg_exec(NULL, pg, "CREATE TEMP TABLE lost (v int)", 0, NULL), "create");
    check(fg_pg_begin(pg), "begin");
    check(fg_pg_exec(NULL, pg, "INSERT INTO lost VALUES (1)", 0, NULL), "insert");
    pid = terminate(pg);
    /* Never silently carried on in autocommit on a new session. */
    assert_int_equal(fg_pg_exec(NULL, pg, "INSERT INTO lost VALUES (2)", 0, NULL), FG_EUNAVAILABLE);
    assert_non_null(strstr(fg_error_last(), "inside a transaction"));
    assert_string_equal(fg_pg_sqlstate(pg), "08006");
    assert_true(fg_pg_sqlstate_retryable(fg_pg_sqlstate(pg)));
    assert_int_equal(fg_pg_commit(pg), FG_EUNAVAILABLE);
    check(fg_pg_rollback(pg), "rollback");
    check(fg_pg_ping(pg), "ping");
    /* The temp table died with the session. */
    assert_int_equal(fg_pg_exec(NULL, pg, "SELECT * FROM lost", 0, NULL), FG_ERROR);
    assert_string_equal(fg_pg_sqlstate(pg), "42P01");
    free(pid);
    fg_pg_free(pg);
}

static void test_pg__connection_lost_mid_copy_is_unavailable_then_recovers(void **state)
{
    fg_pg_conn *pg = connect_to(admin_url);
    char *pid = query(pg, "SELECT pg_backend_pid()::text", NULL);
    char value[64];
    const char *row[1] = {value};
    uint64_t stored = 9;
    int rc = 0;
    (void)state;

    check(fg_pg_exec(NULL, pg, "CREATE TEMP TABLE midcopy (v text)", 0, NULL), "create");
    check(fg_pg_copy_begin(pg, "COPY midcopy FROM STDIN"), "copy begin");
    snprintf(value, sizeof(value), "before");
    check(fg_pg_copy_put_row(pg, row, 1), "row before");
    kill_backend(pid);
    /* libpq buffers rows: the loss shows on a later row or at the end, never as success. */
    for (int i = 0; i < 100000 && rc == 0; i++) {
        snprintf(value, sizeof(value), "after %d", i);
        rc = fg_pg_copy_put_row(pg, row, 1);
    }
    if (rc == 0)
        rc = fg_pg_copy_end(&stored, pg);
    assert_int_equal(rc, FG_EUNAVAILABLE);
    assert_true(fg_pg_sqlstate_retryable(fg_pg_sqlstate(pg)));
    assert_int_equal(fg_pg_copy_end(&stored, pg), FG_EINVALID); /* the COPY is over */
    check(fg_pg_ping(pg), "ping after the loss");
    free(pid);
    fg_pg_free(pg);
}

/* Runs a program and waits for it; the test's only way to drive a private server. */
static int run(char *const argv[])
{
    pid_t pid;
    int status;

    fflush(stdout);
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0 ||
        waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* "stop" or "start" the server behind FG_PG_URL; -1 when this run has no way to. */
static int server(const char *verb)
{
    char stack[1024], script[1024], args[64];
    struct stat st;

    snprintf(stack, sizeof(stack), "%s/deploy/local/stack.sh", FG_SOURCE_DIR);
    snprintf(script, sizeof(script), "%s/../shared/reference/scripts/pg_local.sh", FG_SOURCE_DIR);
    if (getenv("FG_STACK_DIR") != NULL && stat(stack, &st) == 0) {
        snprintf(args, sizeof(args), "%s postgres", verb);
        return fg_test_stack(args);
    }
    if (getenv("PGROOT") != NULL && getenv("PGPORT") != NULL && stat(script, &st) == 0) {
        char *argv[] = {script, (char *)verb, NULL};

        return run(argv);
    }
    return -1;
}

static void test_pg__reconnects_after_the_server_restarts(void **state)
{
    fg_pg_conn *pg;
    char *before, *after;
    (void)state;

    if (getenv("FG_STACK_DIR") == NULL && (getenv("PGROOT") == NULL || getenv("PGPORT") == NULL)) {
        printf("SKIP restart: neither FG_STACK_DIR (stack.sh) nor PGROOT+PGPORT (pg_local.sh) "
               "says how to restart the server\n");
        skip();
    }
    pg = connect_to(admin_url);
    before = query(pg, "SELECT pg_backend_pid()::text", NULL);
    assert_int_equal(server("stop"), 0);
    /* What GET /ready sees while the server is down: a prompt refusal, no hang. */
    assert_int_equal(fg_pg_ping(pg), FG_EUNAVAILABLE);
    assert_true(fg_pg_sqlstate_retryable(fg_pg_sqlstate(pg)));
    assert_int_equal(server("start"), 0);
    check(fg_pg_ping(pg), "ping after the restart");
    after = query(pg, "SELECT pg_backend_pid()::text", NULL);
    assert_string_not_equal(before, after);
    /* The admin handle of this test run was cut too, and comes back on its own. */
    check(fg_pg_ping(admin), "admin ping after the restart");
    free(before);
    free(after);
    fg_pg_free(pg);
}

/* ---- setup ------------------------------------------------------------------------------ */

static int setup(void **state)
{
    (void)state;
    admin_url = fg_test_stack_env("FG_PG_URL");
    if (fg_pg_connect(&admin, admin_url, TIMEOUT_MS) < 0) {
        printf("cannot connect to FG_PG_URL: %s\n", fg_error_last());
        return -1;
    }
    return 0;
}

/* Drops whatever scratch database a failed test left behind. */
static int teardown(void **state)
{
    fg_pg_result *res = NULL;
    char pattern[64];
    const char *params[1] = {pattern};
    int rc;
    (void)state;

    snprintf(pattern, sizeof(pattern), "fg\\_pg\\_test\\_%ld\\_%%", (long)getpid());
    rc =
        fg_pg_exec(&res, admin, "SELECT datname FROM pg_database WHERE datname LIKE $1", 1, params);
    for (size_t i = 0; rc == 0 && i < fg_pg_result_rows(res); i++) {
        scratch s;

        snprintf(s.name, sizeof(s.name), "%s", fg_pg_result_text(res, i, 0));
        scratch_drop(&s);
    }
    fg_pg_result_free(res);
    fg_pg_free(admin);
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pg__migrating_twice_applies_nothing_the_second_time),
        cmocka_unit_test(test_pg__concurrent_migrations_apply_each_file_exactly_once),
        cmocka_unit_test(test_pg__broken_migration_rolls_back_completely_and_names_the_file),
        cmocka_unit_test(test_pg__changed_migration_is_refused_naming_it),
        cmocka_unit_test(test_pg__migration_that_commits_itself_or_is_missing_is_refused),
        cmocka_unit_test(test_pg__parameters_round_trip_quotes_backslashes_unicode_and_null),
        cmocka_unit_test(test_pg__getters_fail_cleanly_on_bad_data),
        cmocka_unit_test(test_pg__server_errors_fold_into_fg_codes_with_their_sqlstate),
        cmocka_unit_test(test_pg__serialization_failure_is_a_retryable_conflict),
        cmocka_unit_test(test_pg__transactions_commit_roll_back_and_refuse_a_failed_commit),
        cmocka_unit_test(test_pg__copy_round_trips_ten_thousand_awkward_rows),
        cmocka_unit_test(test_pg__copy_errors_store_nothing_and_leave_the_connection_usable),
        cmocka_unit_test(test_pg__reconnects_after_its_session_is_terminated),
        cmocka_unit_test(test_pg__connection_lost_inside_a_transaction_needs_a_rollback),
        cmocka_unit_test(test_pg__connection_lost_mid_copy_is_unavailable_then_recovers),
        cmocka_unit_test(test_pg__reconnects_after_the_server_restarts),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
