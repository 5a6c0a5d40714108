/* el_rebuild against a real PostgreSQL (FG_PG_URL), in a scratch database: after a history made
 * by the real writers (CREATION and status-change messages through el_consume_body, dispatch
 * through el_change_apply), the statuses rebuilt from the status log equal the live table, row for
 * row; damage done behind el_change_apply's back is reported kind by kind and, when applying,
 * repaired from the log (what the log cannot restore is reported and left alone). */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "el_change.h"
#include "el_consume.h"
#include "el_rebuild.h"
#include "el_testdb.h"

#define SHAS 40

static el_testdb db;
static fg_pg_conn *pg;

static void check(int rc, const char *what)
{
    if (rc < 0)
        fail_msg("%s: %d %s", what, rc, fg_error_last());
}

static void consume(const fg_buf *msg)
{
    check(el_consume_body(pg, NULL, msg->ptr, msg->len), "el_consume_body");
}

static void dispatch(long long project, el_status to, const char *const *shas, size_t n)
{
    el_change c;
    el_change_result r;

    memset(&c, 0, sizeof(c));
    c.project.value = project;
    c.to = to;
    c.cause = EL_CAUSE_DISPATCH;
    c.shas = shas;
    c.nshas = n;
    check(el_change_apply(&r, pg, &c), "dispatch");
    assert_int_equal(r.applied, n);
}

/* Events whose live status differs from the last status_log row, counted by the test's own
 * query (both directions of the comparison). */
static long long independent_differences(void)
{
    return el_testdb_int(
        pg,
        "WITH logged AS (SELECT DISTINCT ON (event_id) event_id, to_status FROM status_log "
        " ORDER BY event_id, id DESC), "
        "from_log AS (SELECT event_id AS id, to_status AS status FROM logged "
        " WHERE to_status IS NOT NULL), "
        "live AS (SELECT id, status FROM event) "
        "SELECT (SELECT count(*) FROM (SELECT * FROM live EXCEPT SELECT * FROM from_log) a) + "
        "(SELECT count(*) FROM (SELECT * FROM from_log EXCEPT SELECT * FROM live) b)",
        0, NULL);
}

/* A project's history: 40 commits created (the same batch delivered twice), generated,
 * some stored, some failed, some retried, some cleaned up and deleted. */
static long long make_history(char shas[SHAS][41], const char **ptrs)
{
    long long project = el_testdb_project(pg, "el-rebuild/history");
    fg_buf msg;

    fg_buf_init(&msg, 1 << 20);
    for (int i = 0; i < SHAS; i++) {
        el_testdb_sha(shas[i], project, i);
        ptrs[i] = shas[i];
    }
    el_testdb_creation(&msg, NULL, project, ptrs, SHAS, false);
    consume(&msg);
    consume(&msg);
    dispatch(project, EL_STATUS_GENERATING_TRIPLES, ptrs, 30);
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_TRIPLES_GENERATED, ptrs, 20, NULL,
                            -1);
    consume(&msg);
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_FAILURE, ptrs + 20, 5,
                            "GENERATION_RECOVERABLE_FAILURE", 1000);
    consume(&msg);
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_ROLLBACK_TO_NEW, ptrs + 25, 5, NULL,
                            -1);
    consume(&msg);
    dispatch(project, EL_STATUS_TRANSFORMING_TRIPLES, ptrs, 20);
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_TRIPLES_STORE, ptrs, 15, NULL, -1);
    consume(&msg);
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_AWAITING_DELETION, ptrs, 5, NULL,
                            -1);
    consume(&msg);
    dispatch(project, EL_STATUS_DELETING, ptrs, 5);
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_CLEAN_UP_DONE, ptrs, 3, NULL, -1);
    consume(&msg);
    fg_buf_dispose(&msg);
    return project;
}

static void test_el_rebuild__log_rebuilds_the_live_table(void **state)
{
    char shas[SHAS][41];
    const char *ptrs[SHAS];
    long long project = make_history(shas, ptrs);
    el_rebuild_report r;
    char pid[24], *by_status;
    (void)state;

    snprintf(pid, sizeof(pid), "%lld", project);
    /* the history is what it should be: 3 deleted, 37 rows in five statuses */
    assert_int_equal(el_testdb_int(pg, "SELECT count(*) FROM event WHERE project_id = $1", 1,
                                   (const char *const[]){pid}),
                     37);
    by_status = el_testdb_text(pg,
                               "SELECT string_agg(status || ':' || n, ',' ORDER BY status) FROM "
                               "(SELECT status, count(*) n FROM event WHERE project_id = $1 "
                               "GROUP BY status) s",
                               1, (const char *const[]){pid});
    assert_string_equal(by_status, "NEW:15,GENERATION_RECOVERABLE_FAILURE:5,"
                                   "TRANSFORMING_TRIPLES:5,TRIPLES_STORE:10,DELETING:2");
    free(by_status);
    check(el_rebuild(&r, pg, false), "el_rebuild");
    assert_int_equal(r.differences, 0);
    assert_int_equal(r.ndiffs, 0);
    assert_int_equal(r.events, 37);
    assert_int_equal(r.logged, 40);
    assert_int_equal(independent_differences(), 0);
}

/* Damage of every kind: statuses changed behind the log's back, a row the log says is deleted,
 * a row without history, a row gone without its deletion logged. */
static void test_el_rebuild__reports_and_repairs_what_the_log_knows(void **state)
{
    long long project = el_testdb_project(pg, "el-rebuild/damage");
    char shas[6][41], pid[24], gone[24], ghost[24], first[24], last[24], *live;
    const char *ptrs[6];
    long long ids[6];
    el_rebuild_report r;
    fg_buf msg;
    (void)state;

    fg_buf_init(&msg, 1 << 20);
    snprintf(pid, sizeof(pid), "%lld", project);
    for (int i = 0; i < 6; i++) {
        el_testdb_sha(shas[i], project, i);
        ptrs[i] = shas[i];
    }
    el_testdb_creation(&msg, NULL, project, ptrs, 5, false);
    consume(&msg);
    for (int i = 0; i < 5; i++)
        ids[i] = el_testdb_int(pg, "SELECT event_id FROM event_commit WHERE sha = $1", 1,
                               (const char *const[]){shas[i]});
    dispatch(project, EL_STATUS_GENERATING_TRIPLES, ptrs, 2);
    /* damage: ids[0] back to NEW (logged GENERATING_TRIPLES), ids[4] on to TRIPLES_STORE
     * (logged NEW), ids[3] logged as deleted but kept, ids[2] deleted without a log row, and
     * an event that never had one */
    snprintf(gone, sizeof(gone), "%lld", ids[3]);
    snprintf(ghost, sizeof(ghost), "%lld", ids[2]);
    snprintf(first, sizeof(first), "%lld", ids[0]);
    snprintf(last, sizeof(last), "%lld", ids[4]);
    el_testdb_exec(pg, "UPDATE event SET status = 'NEW' WHERE id = $1", 1,
                   (const char *const[]){first});
    el_testdb_exec(pg, "UPDATE event SET status = 'TRIPLES_STORE' WHERE id IN ($1, $2)", 2,
                   (const char *const[]){gone, last});
    el_testdb_exec(pg,
                   "INSERT INTO status_log (event_id, project_id, from_status, to_status, cause) "
                   "SELECT id, project_id, status, NULL, 'CleanUpDone' FROM event WHERE id = $1",
                   1, (const char *const[]){gone});
    el_testdb_exec(pg, "DELETE FROM event WHERE id = $1", 1, (const char *const[]){ghost});
    ids[5] = el_testdb_event(pg, project, shas[5], EL_STATUS_NEW);

    check(el_rebuild(&r, pg, false), "el_rebuild");
    /* ids[0] NEW but logged GENERATING_TRIPLES; ids[4] TRIPLES_STORE but logged NEW; ids[3]
     * logged deleted; ids[5] unlogged; ids[2] vanished */
    assert_int_equal(r.mismatched, 2);
    assert_int_equal(r.not_deleted, 1);
    assert_int_equal(r.unlogged, 1);
    assert_int_equal(r.vanished, 1);
    assert_int_equal(r.differences, 5);
    assert_int_equal(r.fixed, 0);
    assert_int_equal(r.ndiffs, 5);
    assert_int_equal(r.diffs[0].event.value, ids[0]);
    assert_int_equal(r.diffs[0].live, EL_STATUS_NEW);
    assert_int_equal(r.diffs[0].logged, EL_STATUS_GENERATING_TRIPLES);
    assert_int_equal(r.diffs[1].event.value, ids[2]);
    assert_int_equal(r.diffs[1].live, EL_STATUS_NONE);
    assert_int_equal(r.diffs[1].logged, EL_STATUS_NEW);
    assert_int_equal(r.diffs[2].logged, EL_STATUS_DELETED);
    assert_int_equal(r.diffs[4].event.value, ids[5]);
    assert_int_equal(r.diffs[4].logged, EL_STATUS_NONE);
    live = el_testdb_text(pg, "SELECT status FROM event WHERE id = $1", 1,
                          (const char *const[]){last});
    assert_string_equal(live, "TRIPLES_STORE"); /* reporting changed nothing */
    free(live);

    check(el_rebuild(&r, pg, true), "el_rebuild apply");
    assert_int_equal(r.fixed, 3);
    live = el_testdb_text(pg, "SELECT status FROM event WHERE id = $1", 1,
                          (const char *const[]){last});
    assert_string_equal(live, "NEW");
    free(live);
    live = el_testdb_text(pg, "SELECT status FROM event WHERE id = $1", 1,
                          (const char *const[]){first});
    assert_string_equal(live, "GENERATING_TRIPLES");
    free(live);
    assert_int_equal(el_testdb_int(pg, "SELECT count(*) FROM event WHERE id = $1", 1,
                                   (const char *const[]){gone}),
                     0);
    check(el_rebuild(&r, pg, false), "el_rebuild again");
    assert_int_equal(r.mismatched + r.not_deleted, 0);
    assert_int_equal(r.unlogged, 1);
    assert_int_equal(r.vanished, 1);
    /* what is left is exactly what the log cannot restore */
    assert_int_equal(independent_differences(), 2);
    /* tidy up for the other tests' whole-table comparisons */
    el_testdb_exec(pg, "DELETE FROM event WHERE project_id = $1", 1, (const char *const[]){pid});
    el_testdb_exec(pg, "DELETE FROM status_log WHERE project_id = $1", 1,
                   (const char *const[]){pid});
    fg_buf_dispose(&msg);
}

static void test_el_rebuild__refuses_to_run_inside_a_transaction(void **state)
{
    el_rebuild_report r;
    (void)state;

    check(fg_pg_begin(pg), "begin");
    assert_int_equal(el_rebuild(&r, pg, true), FG_EINVALID);
    check(fg_pg_rollback(pg), "rollback");
}

static int setup(void **state)
{
    (void)state;
    el_testdb_create(&db, &pg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fg_pg_free(pg);
    el_testdb_drop(&db);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_el_rebuild__log_rebuilds_the_live_table),
        cmocka_unit_test(test_el_rebuild__reports_and_repairs_what_the_log_knows),
        cmocka_unit_test(test_el_rebuild__refuses_to_run_inside_a_transaction),
    };

    fg_test_stack_env("FG_PG_URL");
    return cmocka_run_group_tests(tests, setup, teardown);
}
