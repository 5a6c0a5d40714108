/* When a requested commit sync counts as done (migration 0003), against a real PostgreSQL
 * (FG_PG_URL: a scratch database of its own) and RabbitMQ (FG_AMQP_URL, where the schedule
 * publishes COMMIT_SYNC): after POST /projects/{id}/sync (el_project_request_sync) or a
 * COMMIT_SYNC_REQUEST, the project is neither synced nor done until a COMMIT_SYNC sent at or after
 * the request has completed; the completion of a sync that was already in flight when the request
 * came does not count. The project id is far above any real one: the stack's commit-sync, which
 * receives these COMMIT_SYNCs, finds no such project and drops them. */
#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "el_consume.h"
#include "el_project.h"
#include "el_schedule.h"
#include "el_testdb.h"
#include "fg/amqp.h"

#define WAIT_MS  20000
#define BODY_MAX (1u << 20)

static el_testdb db;
static fg_pg_conn *pg;
static fg_amqp *amqp;
static el_context ctx;

static void check(int rc, const char *what)
{
    if (rc < 0)
        fail_msg("%s: %d %s", what, rc, fg_error_last());
}

static el_project_status status_of(long long project)
{
    el_project_status st;

    check(el_project_status_get(&st, pg, (el_project_id){project}), "status");
    return st;
}

static void assert_synced_done(long long project, bool synced, bool done)
{
    el_project_status st = status_of(project);

    assert_int_equal(st.synced, synced);
    assert_int_equal(st.done, done);
}

/* The schedule's COMMIT_SYNC run; how many it sent. */
static size_t schedule(void)
{
    size_t n = 0;

    check(el_schedule_run(&n, pg, amqp, &ctx, EL_SCHEDULE_COMMIT_SYNC), "schedule");
    return n;
}

/* commit-sync's last CREATION of a sync, with one new commit (i) or none (i < 0); sent_at: the
 * COMMIT_SYNC it ran for (syncSentAt), NULL as a commit-sync from before that field sends it */
static void sync_completes_for(long long project, int i, const char *sent_at)
{
    char sha[41];
    const char *shas[1] = {sha};
    fg_proto_msg parsed;
    fg_buf msg;

    fg_buf_init(&msg, BODY_MAX);
    el_testdb_sha(sha, project, i);
    el_testdb_creation(&msg, NULL, project, shas, i < 0 ? 0 : 1, true);
    if (sent_at != NULL) {
        fg_proto_msg_init(&parsed);
        check(fg_proto_msg_parse(&parsed, msg.ptr, msg.len), "parse CREATION");
        check(fg_proto_msg_set_string(&parsed, "syncSentAt", sent_at), "syncSentAt");
        fg_buf_clear(&msg);
        check(fg_proto_msg_serialise(&msg, &parsed), "serialise CREATION");
        fg_proto_msg_dispose(&parsed);
    }
    check(el_consume_body(pg, &ctx, msg.ptr, msg.len), "CREATION with syncComplete");
    fg_buf_dispose(&msg);
}

static void sync_completes(long long project, int i)
{
    sync_completes_for(project, i, NULL);
}

/* The latest COMMIT_SYNC's send time as its sentAt says it (malloc'd). */
static char *latest_send(const char *id)
{
    return el_testdb_text(pg,
                          "SELECT to_char(sync_dispatched_at AT TIME ZONE 'UTC',"
                          " 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') FROM project WHERE id = $1",
                          1, (const char *const[]){id});
}

static void all_stored(long long project)
{
    char id[24];

    snprintf(id, sizeof(id), "%lld", project);
    el_testdb_exec(pg, "UPDATE event SET status = 'TRIPLES_STORE' WHERE project_id = $1", 1,
                   (const char *const[]){id});
}

static void test_el_sync__requested_sync_is_done_only_once_a_later_one_completed(void **state)
{
    long long project = 900000000000LL + (long long)getpid() * 100;
    char id[24];
    fg_buf msg;
    (void)state;

    fg_buf_init(&msg, BODY_MAX);
    snprintf(id, sizeof(id), "%lld", project);
    el_testdb_exec(
        pg,
        "INSERT INTO project (id, forge, path, url) VALUES ($1::bigint, 'git', 'el-sync/p',"
        " 'file:///el-sync/' || $1::text)",
        1, (const char *const[]){id});

    /* the first sync: sent, completed with one commit, generated: synced and done */
    assert_int_equal(schedule(), 1);
    assert_synced_done(project, false, false);
    sync_completes(project, 0);
    all_stored(project);
    assert_synced_done(project, true, true);
    assert_int_equal(schedule(), 0); /* not due again for an hour */

    /* a sync is sent (say the cadence came), then POST /projects/{id}/sync: neither synced nor
     * done, and the completion of the sync sent before the request does not change that */
    el_testdb_exec(pg, "DELETE FROM sync_time WHERE project_id = $1", 1, (const char *const[]){id});
    assert_int_equal(schedule(), 1);
    check(el_project_request_sync(pg, (el_project_id){project}), "POST /projects/{id}/sync");
    assert_synced_done(project, false, false);
    sync_completes(project, -1);
    assert_synced_done(project, false, false);

    /* the request makes the next run send one, whose completion (with the pushed commit) makes
     * the project synced; done once that commit is processed too */
    assert_int_equal(schedule(), 1);
    assert_synced_done(project, false, false);
    sync_completes(project, 1);
    assert_synced_done(project, true, false);
    all_stored(project);
    assert_synced_done(project, true, true);
    assert_int_equal(status_of(project).total, 2);
    assert_int_equal(schedule(), 0);

    /* COMMIT_SYNC_REQUEST (a push) works the same way */
    el_testdb_request(&msg, NULL, FG_PROTO_COMMIT_SYNC_REQUEST, project, NULL, 0);
    check(el_consume_body(pg, &ctx, msg.ptr, msg.len), "COMMIT_SYNC_REQUEST");
    assert_synced_done(project, false, false);
    assert_int_equal(schedule(), 1);
    sync_completes(project, -1);
    assert_synced_done(project, true, true);

    el_testdb_exec(pg, "DELETE FROM project WHERE id = $1", 1, (const char *const[]){id});
    fg_buf_dispose(&msg);
}

/* A completion that names its COMMIT_SYNC answers that send and no other: a sync that ran for
 * over an hour (its send dropped from the in-flight list as lost), completing after a request and
 * a newer send, must not be taken for the newer one (which the oldest-in-flight rule, for
 * completions that do not say, would do). */
static void test_el_sync__a_completion_answers_its_own_send(void **state)
{
    long long project = 900000000000LL + (long long)getpid() * 100 + 1;
    char id[24], *old_send, *new_send;
    (void)state;

    snprintf(id, sizeof(id), "%lld", project);
    el_testdb_exec(
        pg,
        "INSERT INTO project (id, forge, path, url) VALUES ($1::bigint, 'git', 'el-sync/q',"
        " 'file:///el-sync/' || $1::text)",
        1, (const char *const[]){id});
    assert_int_equal(schedule(), 1);
    old_send = latest_send(id);
    sync_completes_for(project, 0, old_send);
    all_stored(project);
    assert_synced_done(project, true, true);
    free(old_send);

    /* the first sync answered three hours ago; a COMMIT_SYNC sent two hours ago, still running;
     * a request an hour ago: the schedule sends a new one (the request is newer than the latest
     * send) */
    el_testdb_exec(pg,
                   "UPDATE project SET sync_answered_at = now() - interval '3 hours',"
                   " sync_dispatched_at = now() - interval '2 hours',"
                   " sync_in_flight = ARRAY[now() - interval '2 hours'],"
                   " sync_requested_at = now() - interval '1 hour' WHERE id = $1::bigint",
                   1, (const char *const[]){id});
    old_send = latest_send(id);
    assert_synced_done(project, false, false);
    assert_int_equal(schedule(), 1);
    new_send = latest_send(id);
    assert_string_not_equal(old_send, new_send);

    /* the old sync completes: it started before the request, so the project is not synced */
    sync_completes_for(project, -1, old_send);
    assert_synced_done(project, false, false);
    /* the new one completes: synced and done */
    sync_completes_for(project, -1, new_send);
    assert_synced_done(project, true, true);
    assert_int_equal(el_testdb_int(pg,
                                   "SELECT cardinality(sync_in_flight) FROM project WHERE id = $1",
                                   1, (const char *const[]){id}),
                     0);

    el_testdb_exec(pg, "DELETE FROM project WHERE id = $1", 1, (const char *const[]){id});
    free(old_send);
    free(new_send);
}

static int setup(void **state)
{
    fg_amqp_options o;

    (void)state;
    el_testdb_create(&db, &pg);
    memset(&ctx, 0, sizeof(ctx));
    fg_amqp_options_init(&o);
    o.url = fg_test_stack_env("FG_AMQP_URL");
    check(fg_amqp_new(&amqp, &o), "amqp new");
    check(fg_amqp_connect(amqp, WAIT_MS), "amqp connect");
    check(fg_amqp_declare(amqp), "amqp declare");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fg_amqp_free(amqp);
    fg_pg_free(pg);
    el_testdb_drop(&db);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_el_sync__requested_sync_is_done_only_once_a_later_one_completed),
        cmocka_unit_test(test_el_sync__a_completion_answers_its_own_send),
    };

    fg_test_stack_env("FG_PG_URL");
    fg_test_stack_env("FG_AMQP_URL");
    return cmocka_run_group_tests(tests, setup, teardown);
}
