/* el_consume against a real PostgreSQL (FG_PG_URL: a scratch database of its own) and RabbitMQ
 * (FG_AMQP_URL). The idempotency tests take their messages from the broker as real fg_amqp
 * deliveries, on a private queue bound to a private routing key (so the stack's own event-log
 * never sees them): the same CREATION delivered twice under one id, again under another id, and
 * redelivered by the broker after its consumer died, gives one event. Then every category's
 * effect, the metrics, and what is parked. The last test drives the stack's running event-log
 * (FG_EVENT_LOG_DB_URL, through the real CREATION routing key): it skips, saying so, when no
 * event-log process stores what it publishes there. */
#include "test_support.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "el_change.h"
#include "el_consume.h"
#include "el_schedule.h"
#include "el_testdb.h"
#include "fg/amqp.h"
#include "fg/metrics.h"

#include <json-c/json.h>

#define WAIT_MS  20000
#define BODY_MAX (1u << 20)

static el_testdb db;
static fg_pg_conn *pg;
static const char *amqp_url;
static el_context ctx;
static char service[64], routing_key[64];

/* ---- helpers ------------------------------------------------------------------------------ */

static void check(int rc, const char *what)
{
    if (rc < 0)
        fail_msg("%s: %d %s", what, rc, fg_error_last());
}

static long long new_project(const char *tag)
{
    char path[64];

    snprintf(path, sizeof(path), "el-consume/%s", tag);
    return el_testdb_project(pg, path);
}

static void shas_of(char shas[][41], const char **ptrs, long long project, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        el_testdb_sha(shas[i], project, (long long)i);
        ptrs[i] = shas[i];
    }
}

static long long project_int(const char *sql, long long project)
{
    char id[24];

    snprintf(id, sizeof(id), "%lld", project);
    return el_testdb_int(pg, sql, 1, (const char *const[]){id});
}

static char *project_text(const char *sql, long long project)
{
    char id[24];

    snprintf(id, sizeof(id), "%lld", project);
    return el_testdb_text(pg, sql, 1, (const char *const[]){id});
}

static void assert_statuses(long long project, const char *want)
{
    char *got = project_text("SELECT coalesce(string_agg(status || ':' || n, ',' ORDER BY "
                             "status), '') FROM (SELECT status, count(*) n FROM event "
                             "WHERE project_id = $1 GROUP BY status) s",
                             project);
    assert_string_equal(got, want);
    free(got);
}

static int consume(const fg_buf *msg)
{
    return el_consume_body(pg, &ctx, msg->ptr, msg->len);
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

/* ---- the broker --------------------------------------------------------------------------- */

static fg_amqp *consumer(void)
{
    fg_amqp_options o;
    fg_amqp *h = NULL;
    const char *cats[1] = {routing_key};

    fg_amqp_options_init(&o);
    o.url = amqp_url;
    o.service = service;
    o.categories = cats;
    o.ncategories = 1;
    check(fg_amqp_new(&h, &o), "amqp new");
    check(fg_amqp_connect(h, WAIT_MS), "amqp connect");
    check(fg_amqp_declare(h), "amqp declare");
    check(fg_amqp_consume(h), "amqp consume");
    return h;
}

static void publish(fg_amqp *h, const char *id, const char *key, const fg_buf *body)
{
    fg_amqp_message m = {id, key, body->ptr, body->len};
    size_t confirmed = 0;

    check(fg_amqp_publish_batch(&confirmed, h, &m, 1, WAIT_MS), "publish");
    assert_int_equal(confirmed, 1);
}

/* The next delivery of the private queue, handled by el_consume_delivery; acked when ack. */
static int handle_next(fg_amqp *h, const char *want_id, bool ack)
{
    fg_amqp_delivery *d = NULL;
    int rc;

    check(fg_amqp_next(&d, h, WAIT_MS), "next delivery");
    assert_string_equal(fg_amqp_delivery_id(d), want_id);
    rc = el_consume_delivery(pg, &ctx, d);
    if (ack)
        check(fg_amqp_ack(h, d), "ack");
    fg_amqp_delivery_free(d);
    return rc;
}

/* ---- idempotency -------------------------------------------------------------------------- */

/* One CREATION published twice with the same message id, then the same commits under a new id:
 * three real deliveries, one event per commit, one CREATION log row each, two message ids. */
static void test_el_consume__same_creation_twice_gives_one_event(void **state)
{
    long long project = new_project("twice");
    char shas[3][41], first_id[40], second_id[40];
    const char *ptrs[3];
    fg_buf first, second;
    fg_amqp *h = consumer();
    double created = fg_metric_value(ctx.m.created);
    (void)state;

    fg_buf_init(&first, BODY_MAX);
    fg_buf_init(&second, BODY_MAX);
    shas_of(shas, ptrs, project, 3);
    el_testdb_creation(&first, first_id, project, ptrs, 3, false);
    el_testdb_creation(&second, second_id, project, ptrs, 3, false);
    assert_string_not_equal(first_id, second_id);
    publish(h, first_id, routing_key, &first);
    publish(h, first_id, routing_key, &first);
    publish(h, second_id, routing_key, &second);
    assert_int_equal(handle_next(h, first_id, true), 0);
    assert_int_equal(handle_next(h, first_id, true), 0);
    assert_int_equal(handle_next(h, second_id, true), 0);

    assert_statuses(project, "NEW:3");
    assert_int_equal(project_int("SELECT count(*) FROM event_body b JOIN event e ON e.id = "
                                 "b.event_id WHERE e.project_id = $1",
                                 project),
                     3);
    assert_int_equal(project_int("SELECT count(*) FROM status_log WHERE project_id = $1 AND "
                                 "cause = 'CREATION' AND from_status IS NULL AND to_status = "
                                 "'NEW'",
                                 project),
                     3);
    assert_int_equal(el_testdb_int(pg,
                                   "SELECT count(*) FROM processed_message WHERE id IN ($1, $2) "
                                   "AND category = 'CREATION'",
                                   2, (const char *const[]){first_id, second_id}),
                     2);
    assert_true(fg_metric_value(ctx.m.created) == created + 3);
    /* the stored body is the commit as sent, and the date its committer time */
    assert_int_equal(project_int("SELECT count(*) FROM event e JOIN event_commit c ON c.event_id = "
                                 "e.id JOIN event_body b ON b.event_id = e.id WHERE e.project_id = "
                                 "$1 AND b.body::jsonb->>'sha' = c.sha "
                                 "AND b.body::jsonb->'author'->>'name' = 'Ada \"Quote\" Lovelace' "
                                 "AND c.event_date = '2024-01-01T00:00:00+01:00'",
                                 project),
                     1);
    assert_int_equal(project_int("SELECT count(*) FROM project WHERE id = $1 AND "
                                 "latest_event_date = '2024-01-01T00:00:02+01:00'",
                                 project),
                     1);
    fg_amqp_free(h);
    fg_buf_dispose(&first);
    fg_buf_dispose(&second);
}

/* The consumer handles a delivery, commits, and dies before acking: the broker delivers it again
 * to the next consumer, which finds its id processed and changes nothing. */
static void test_el_consume__redelivered_message_is_a_no_op(void **state)
{
    long long project = new_project("redelivered");
    char shas[2][41], id[40];
    const char *ptrs[2];
    fg_buf msg;
    fg_amqp *h = consumer();
    (void)state;

    fg_buf_init(&msg, BODY_MAX);
    shas_of(shas, ptrs, project, 2);
    el_testdb_creation(&msg, id, project, ptrs, 2, false);
    publish(h, id, routing_key, &msg);
    assert_int_equal(handle_next(h, id, false), 0);
    fg_amqp_free(h); /* no ack: the message goes back to the queue */
    assert_statuses(project, "NEW:2");
    /* the events go (as a clean-up would): a redelivery that did its work again would bring
     * them back */
    assert_int_equal(project_int("WITH d AS (DELETE FROM event WHERE project_id = $1 RETURNING "
                                 "1) SELECT count(*) FROM d",
                                 project),
                     2);
    h = consumer();
    assert_int_equal(handle_next(h, id, true), 0);
    assert_statuses(project, "");
    assert_int_equal(project_int("SELECT count(*) FROM status_log WHERE project_id = $1", project),
                     2);
    fg_amqp_free(h);
    fg_buf_dispose(&msg);
}

typedef struct {
    const fg_buf *msg;
    int rc;
} racer;

static void *consume_in_thread(void *arg)
{
    racer *r = arg;

    r->rc = consume(r->msg);
    return NULL;
}

typedef struct {
    char pid[24];
} waiting;

static bool is_waiting_for_lock(void *payload)
{
    waiting *w = payload;
    fg_pg_conn *look = NULL;
    long long n;

    check(fg_pg_connect(&look, db.url, WAIT_MS), "connect");
    n = el_testdb_int(look,
                      "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND "
                      "wait_event_type = 'Lock'",
                      1, (const char *const[]){w->pid});
    fg_pg_free(look);
    return n == 1;
}

/* Another event-log process is handling the same message (its processed_message row is written,
 * not committed): this one waits for it, then finds the id taken and does nothing. */
static void test_el_consume__concurrent_duplicate_waits_then_does_nothing(void **state)
{
    long long project = new_project("concurrent");
    char shas[1][41], id[40];
    const char *ptrs[1];
    fg_pg_conn *other = NULL;
    fg_buf msg;
    racer r;
    waiting w;
    pthread_t thread;
    (void)state;

    fg_buf_init(&msg, BODY_MAX);
    shas_of(shas, ptrs, project, 1);
    el_testdb_creation(&msg, id, project, ptrs, 1, false);
    snprintf(w.pid, sizeof(w.pid), "%lld", el_testdb_int(pg, "SELECT pg_backend_pid()", 0, NULL));
    check(fg_pg_connect(&other, db.url, WAIT_MS), "connect");
    check(fg_pg_begin(other), "begin");
    el_testdb_exec(other, "INSERT INTO processed_message (id, category) VALUES ($1, 'CREATION')", 1,
                   (const char *const[]){id});
    r.msg = &msg;
    r.rc = -100;
    assert_int_equal(pthread_create(&thread, NULL, consume_in_thread, &r), 0);
    assert_true(fg_test_wait_until(is_waiting_for_lock, &w, WAIT_MS));
    check(fg_pg_commit(other), "commit");
    assert_int_equal(pthread_join(thread, NULL), 0);
    assert_int_equal(r.rc, 0);
    assert_statuses(project, "");
    fg_pg_free(other);
    fg_buf_dispose(&msg);
}

/* ---- status changes ----------------------------------------------------------------------- */

/* Generation and transformation replies move whole batches; the batch's payload is stored once,
 * decoded, and goes (the tick's sweep) once the batch is stored. */
static void test_el_consume__replies_move_batches_and_keep_the_payload(void **state)
{
    long long project = new_project("replies");
    char shas[4][41];
    const char *ptrs[4];
    size_t swept = 0;
    fg_buf msg;
    (void)state;

    fg_buf_init(&msg, BODY_MAX);
    shas_of(shas, ptrs, project, 4);
    el_testdb_creation(&msg, NULL, project, ptrs, 4, false);
    check(consume(&msg), "creation");
    dispatch(project, EL_STATUS_GENERATING_TRIPLES, ptrs, 4);
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_TRIPLES_GENERATED, ptrs, 4, NULL,
                            -1);
    check(consume(&msg), "ToTriplesGenerated");
    assert_statuses(project, "TRIPLES_GENERATED:4");
    assert_int_equal(project_int("SELECT count(DISTINCT payload_id) FROM event WHERE "
                                 "project_id = $1 AND payload_id IS NOT NULL",
                                 project),
                     1);
    assert_int_equal(project_int("SELECT count(*) FROM payload WHERE project_id = $1 AND "
                                 "substr(data, 1, 2) = '\\x1f8b'::bytea",
                                 project),
                     1);
    dispatch(project, EL_STATUS_TRANSFORMING_TRIPLES, ptrs, 4);
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_TRIPLES_STORE, ptrs, 4, NULL, -1);
    check(consume(&msg), "ToTriplesStore");
    assert_statuses(project, "TRIPLES_STORE:4");
    check(el_schedule_sweep_payloads(&swept, pg), "sweep"); /* the tick's, within a second */
    assert_int_equal(project_int("SELECT count(*) FROM payload WHERE project_id = $1", project), 0);
    /* a late duplicate ToTriplesGenerated under a new id is stale and leaves no payload behind */
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_TRIPLES_GENERATED, ptrs, 4, NULL,
                            -1);
    check(consume(&msg), "late ToTriplesGenerated");
    assert_statuses(project, "TRIPLES_STORE:4");
    assert_int_equal(project_int("SELECT count(*) FROM payload WHERE project_id = $1", project), 0);
    fg_buf_dispose(&msg);
}

/* Stale replies and illegal requests are counted in the metrics and change nothing; legal
 * moves are counted as transitions. */
static void test_el_consume__stale_and_illegal_are_counted_not_applied(void **state)
{
    long long project = new_project("refused");
    char shas[3][41];
    const char *ptrs[3];
    fg_buf msg;
    double stale = fg_metric_value(ctx.m.stale), illegal = fg_metric_value(ctx.m.illegal);
    double moved = fg_metric_value(ctx.m.transitions);
    long long logged;
    (void)state;

    fg_buf_init(&msg, BODY_MAX);
    shas_of(shas, ptrs, project, 3);
    el_testdb_creation(&msg, NULL, project, ptrs, 3, false);
    check(consume(&msg), "creation");
    /* ToTriplesStore for NEW events: a reply about work they are not doing: stale */
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_TRIPLES_STORE, ptrs, 3, NULL, -1);
    check(consume(&msg), "stale ToTriplesStore");
    assert_true(fg_metric_value(ctx.m.stale) == stale + 3);
    assert_statuses(project, "NEW:3");
    /* two commits became unreachable: legal, and then handed to clean-up */
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_AWAITING_DELETION, ptrs, 2, NULL,
                            -1);
    check(consume(&msg), "ToAwaitingDeletion");
    assert_true(fg_metric_value(ctx.m.transitions) == moved + 2);
    dispatch(project, EL_STATUS_DELETING, ptrs, 2);
    /* ToAwaitingDeletion of DELETING events: no path allows it */
    logged = project_int("SELECT count(*) FROM status_log WHERE project_id = $1", project);
    check(consume(&msg), "the same message again"); /* processed before: nothing */
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_AWAITING_DELETION, ptrs, 2, NULL,
                            -1);
    check(consume(&msg), "illegal ToAwaitingDeletion");
    assert_true(fg_metric_value(ctx.m.illegal) == illegal + 2);
    assert_statuses(project, "NEW:1,DELETING:2");
    assert_int_equal(project_int("SELECT count(*) FROM status_log WHERE project_id = $1", project),
                     logged);
    fg_buf_dispose(&msg);
}

static long long delay_s(long long project, const char *sha)
{
    char id[24];

    snprintf(id, sizeof(id), "%lld", project);
    return el_testdb_int(pg,
                         "SELECT round(extract(epoch FROM execution_date - now()))::bigint "
                         "FROM event e JOIN event_commit c ON c.event_id = e.id "
                         "WHERE e.project_id = $1 AND c.sha = $2",
                         2, (const char *const[]){id, sha});
}

/* Recoverable failures come back after base * 2^attempts (1 s, 2 s, 4 s) capped at 4 s, or
 * after the consumer's own delay when longer; a non-recoverable one stays, with its message. */
static void test_el_consume__recoverable_failure_backs_off_exponentially(void **state)
{
    static const long long want[] = {1, 2, 4, 4};
    long long project = new_project("backoff");
    char shas[1][41], *message;
    const char *ptrs[1];
    fg_buf msg;
    (void)state;

    fg_buf_init(&msg, BODY_MAX);
    shas_of(shas, ptrs, project, 1);
    el_testdb_creation(&msg, NULL, project, ptrs, 1, false);
    check(consume(&msg), "creation");
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        dispatch(project, EL_STATUS_GENERATING_TRIPLES, ptrs, 1);
        el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_FAILURE, ptrs, 1,
                                "GENERATION_RECOVERABLE_FAILURE", -1);
        check(consume(&msg), "ToFailure");
        assert_int_equal(delay_s(project, shas[0]), want[i]);
    }
    assert_int_equal(project_int("SELECT attempts FROM event WHERE project_id = $1", project), 4);
    dispatch(project, EL_STATUS_GENERATING_TRIPLES, ptrs, 1);
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_FAILURE, ptrs, 1,
                            "GENERATION_RECOVERABLE_FAILURE", 10000);
    check(consume(&msg), "ToFailure with a delay");
    assert_int_equal(delay_s(project, shas[0]), 10);
    dispatch(project, EL_STATUS_GENERATING_TRIPLES, ptrs, 1);
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_FAILURE, ptrs, 1,
                            "GENERATION_NON_RECOVERABLE_FAILURE", -1);
    check(consume(&msg), "non-recoverable ToFailure");
    assert_statuses(project, "GENERATION_NON_RECOVERABLE_FAILURE:1");
    assert_int_equal(delay_s(project, shas[0]), 0);
    message = project_text("SELECT message FROM event WHERE project_id = $1", project);
    assert_string_equal(message, "failed");
    free(message);
    fg_buf_dispose(&msg);
}

/* Clean-up per commit (request, CLEAN_UP, CleanUpDone deletes, a rollback of the rest), the
 * re-provision request, and the variants that move whole projects. */
static void test_el_consume__clean_up_and_whole_project_changes(void **state)
{
    long long project = new_project("cleanup"), other = new_project("cleanup-other");
    char shas[6][41], other_shas[2][41];
    const char *ptrs[6], *other_ptrs[2];
    fg_buf msg;
    char *request;
    (void)state;

    fg_buf_init(&msg, BODY_MAX);
    shas_of(shas, ptrs, project, 6);
    shas_of(other_shas, other_ptrs, other, 2);
    el_testdb_creation(&msg, NULL, project, ptrs, 6, false);
    check(consume(&msg), "creation");
    el_testdb_creation(&msg, NULL, other, other_ptrs, 2, false);
    check(consume(&msg), "creation other");

    el_testdb_request(&msg, NULL, FG_PROTO_CLEAN_UP_REQUEST, project, ptrs, 3);
    check(consume(&msg), "CLEAN_UP_REQUEST with events");
    assert_statuses(project, "NEW:3,AWAITING_DELETION:3");
    dispatch(project, EL_STATUS_DELETING, ptrs, 3);
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_CLEAN_UP_DONE, ptrs, 2, NULL, -1);
    check(consume(&msg), "CleanUpDone");
    assert_statuses(project, "NEW:3,DELETING:1");
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_ROLLBACK_TO_AWAITING_DELETION, NULL,
                            0, NULL, -1);
    check(consume(&msg), "RollbackToAwaitingDeletion (whole project)");
    assert_statuses(project, "NEW:3,AWAITING_DELETION:1");

    el_testdb_request(&msg, NULL, FG_PROTO_CLEAN_UP_REQUEST, project, NULL, 0);
    check(consume(&msg), "CLEAN_UP_REQUEST (re-provision)");
    check(consume(&msg), "the same, redelivered");
    request = project_text("SELECT kind || ' ' || project_forge || ' ' || project_path FROM "
                           "project_request WHERE project_id = $1",
                           project);
    assert_string_equal(request, "REPROVISION git el-consume/cleanup");
    free(request);

    /* stored events: a re-transformation regenerates them; a re-provision starts over */
    dispatch(project, EL_STATUS_GENERATING_TRIPLES, ptrs + 3, 3);
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_TO_FAILURE, ptrs + 3, 1,
                            "GENERATION_NON_RECOVERABLE_FAILURE", -1);
    check(consume(&msg), "ToFailure");
    el_testdb_status_change(&msg, NULL, project, FG_PROTO_SUB_PROJECT_EVENTS_TO_NEW, NULL, 0, NULL,
                            -1);
    check(consume(&msg), "ProjectEventsToNew");
    /* the deletion stays with clean-up; everything else is NEW again */
    assert_statuses(project, "NEW:3,AWAITING_DELETION:1");
    assert_int_equal(project_int("SELECT count(*) FROM status_log WHERE project_id = $1 AND "
                                 "cause = 'REPROVISION'",
                                 project),
                     3);

    /* the other project goes all the way, then is transformed again: generated again */
    dispatch(other, EL_STATUS_GENERATING_TRIPLES, other_ptrs, 2);
    el_testdb_status_change(&msg, NULL, other, FG_PROTO_SUB_TO_TRIPLES_GENERATED, other_ptrs, 2,
                            NULL, -1);
    check(consume(&msg), "ToTriplesGenerated");
    dispatch(other, EL_STATUS_TRANSFORMING_TRIPLES, other_ptrs, 2);
    el_testdb_status_change(&msg, NULL, other, FG_PROTO_SUB_TO_TRIPLES_STORE, other_ptrs, 2, NULL,
                            -1);
    check(consume(&msg), "ToTriplesStore");
    assert_statuses(other, "TRIPLES_STORE:2");
    el_testdb_status_change(&msg, NULL, other, FG_PROTO_SUB_REDO_PROJECT_TRANSFORMATION, NULL, 0,
                            NULL, -1);
    check(consume(&msg), "RedoProjectTransformation");
    assert_statuses(other, "NEW:2");
    dispatch(other, EL_STATUS_GENERATING_TRIPLES, other_ptrs, 2);
    el_testdb_status_change(&msg, NULL, 0, FG_PROTO_SUB_ALL_EVENTS_TO_NEW, NULL, 0, NULL, -1);
    check(consume(&msg), "AllEventsToNew");
    assert_statuses(other, "NEW:2");
    fg_buf_dispose(&msg);
}

/* The last CREATION of a sync, even without commits, marks the project synced and moves the
 * COMMIT_SYNC row the schedule wrote; a row a request deleted meanwhile stays deleted (the sync
 * asked for is still due); a CREATION for a project event-log does not know is dropped (acked)
 * without a trace. */
static void test_el_consume__sync_complete_marks_the_project_synced(void **state)
{
    long long project = new_project("synced");
    char shas[1][41];
    const char *ptrs[1];
    fg_buf msg;
    char *first;
    (void)state;

    fg_buf_init(&msg, BODY_MAX);
    shas_of(shas, ptrs, project, 1);
    assert_int_equal(project_int("SELECT count(*) FROM project WHERE id = $1 AND "
                                 "first_synced_at IS NULL",
                                 project),
                     1);
    /* what the schedule writes when it sends COMMIT_SYNC */
    assert_int_equal(project_int("WITH i AS (INSERT INTO sync_time (project_id, category, "
                                 "last_synced) VALUES ($1, 'COMMIT_SYNC', now() - interval "
                                 "'1 day') RETURNING 1) SELECT count(*) FROM i",
                                 project),
                     1);
    el_testdb_creation(&msg, NULL, project, ptrs, 0, true);
    check(consume(&msg), "syncComplete without commits");
    first = project_text("SELECT first_synced_at::text FROM project WHERE id = $1", project);
    assert_string_not_equal(first, "<NULL>");
    assert_int_equal(project_int("SELECT count(*) FROM sync_time WHERE project_id = $1 AND "
                                 "category = 'COMMIT_SYNC' AND last_synced > now() - "
                                 "interval '1 minute'",
                                 project),
                     1);
    /* a request while the next sync runs: its completion must not make the row again */
    assert_int_equal(project_int("WITH d AS (DELETE FROM sync_time WHERE project_id = $1 AND "
                                 "category = 'COMMIT_SYNC' RETURNING 1) SELECT count(*) FROM d",
                                 project),
                     1);
    el_testdb_creation(&msg, NULL, project, ptrs, 1, true);
    check(consume(&msg), "syncComplete with a commit");
    assert_statuses(project, "NEW:1");
    assert_int_equal(project_int("SELECT count(*) FROM sync_time WHERE project_id = $1 AND "
                                 "category = 'COMMIT_SYNC'",
                                 project),
                     0);
    free(first);
    first = project_text("SELECT (first_synced_at < now())::text FROM project WHERE id = $1",
                         project); /* kept from the first sync, not moved to this one */
    assert_string_equal(first, "true");
    free(first);

    el_testdb_creation(&msg, NULL, 999999999, ptrs, 1, true);
    assert_int_equal(consume(&msg), 0);
    assert_int_equal(
        el_testdb_int(pg, "SELECT count(*) FROM event WHERE project_id = 999999999", 0, NULL), 0);
    fg_buf_dispose(&msg);
}

static void subscription(fg_buf *out, const char *instance, int generation, int transformation,
                         int in_flight)
{
    fg_proto_msg msg;
    struct json_object *capacity = json_object_new_object(), *flight = json_object_new_object();

    json_object_object_add(capacity, "AWAITING_GENERATION", json_object_new_int(generation));
    if (transformation >= 0)
        json_object_object_add(capacity, "TRIPLES_GENERATED", json_object_new_int(transformation));
    if (in_flight >= 0)
        json_object_object_add(flight, "AWAITING_GENERATION", json_object_new_int(in_flight));
    fg_proto_msg_init(&msg);
    check(fg_proto_msg_start(&msg, FG_PROTO_SUBSCRIPTION, NULL), "start");
    check(fg_proto_msg_set_string(&msg, "service", "triples-generator"), "service");
    check(fg_proto_msg_set_string(&msg, "instance", instance), "instance");
    check(fg_proto_msg_set(&msg, "capacity", capacity), "capacity");
    check(fg_proto_msg_set(&msg, "inFlight", flight), "inFlight");
    fg_buf_clear(out);
    check(fg_proto_msg_serialise(out, &msg), "serialise");
    fg_proto_msg_dispose(&msg);
}

/* COMMIT_SYNC_REQUEST makes the sync due now, GLOBAL_COMMIT_SYNC_REQUEST due after the delay;
 * SUBSCRIPTION makes an instance's consumer rows exactly what it announced. */
static void test_el_consume__requests_and_subscriptions(void **state)
{
    long long project = new_project("requests");
    char instance[64], *rows;
    fg_buf msg;
    (void)state;

    fg_buf_init(&msg, BODY_MAX);
    el_testdb_creation(&msg, NULL, project, NULL, 0, true);
    check(consume(&msg), "syncComplete");
    el_testdb_request(&msg, NULL, FG_PROTO_COMMIT_SYNC_REQUEST, project, NULL, 0);
    check(consume(&msg), "COMMIT_SYNC_REQUEST");
    assert_int_equal(project_int("SELECT count(*) FROM sync_time WHERE project_id = $1 AND "
                                 "category = 'COMMIT_SYNC'",
                                 project),
                     0);
    el_testdb_request(&msg, NULL, FG_PROTO_GLOBAL_COMMIT_SYNC_REQUEST, project, NULL, 0);
    check(consume(&msg), "GLOBAL_COMMIT_SYNC_REQUEST");
    /* due when last_synced + 7 days passes: in 5 minutes */
    assert_int_equal(project_int("SELECT round(extract(epoch FROM last_synced + interval '7 days' "
                                 "- now()) / 60)::bigint FROM sync_time WHERE project_id = $1 AND "
                                 "category = 'GLOBAL_COMMIT_SYNC'",
                                 project),
                     5);

    snprintf(instance, sizeof(instance), "tg-%d", (int)getpid());
    subscription(&msg, instance, 4, 2, 1);
    check(consume(&msg), "SUBSCRIPTION");
    rows = el_testdb_text(pg,
                          "SELECT string_agg(category || ':' || capacity || ':' || in_flight, ',' "
                          "ORDER BY category) FROM consumer WHERE instance = $1 AND "
                          "last_heartbeat > now() - interval '1 minute'",
                          1, (const char *const[]){instance});
    assert_string_equal(rows, "AWAITING_GENERATION:4:1,TRIPLES_GENERATED:2:0");
    free(rows);
    subscription(&msg, instance, 3, -1, -1);
    check(consume(&msg), "SUBSCRIPTION, one category less");
    rows = el_testdb_text(pg,
                          "SELECT string_agg(category || ':' || capacity || ':' || in_flight, ',' "
                          "ORDER BY category) FROM consumer WHERE instance = $1",
                          1, (const char *const[]){instance});
    assert_string_equal(rows, "AWAITING_GENERATION:3:0");
    free(rows);
    fg_buf_dispose(&msg);
}

/* What can never be handled is FG_EINVALID (parked with the reason), and leaves no trace. */
static void test_el_consume__unhandleable_messages_are_parked(void **state)
{
    static const char garbage[] = "{\"id\": \"not json";
    long long project = new_project("parked");
    long long processed = el_testdb_int(pg, "SELECT count(*) FROM processed_message", 0, NULL);
    fg_buf msg;
    (void)state;

    fg_buf_init(&msg, BODY_MAX);
    assert_int_equal(el_consume_body(pg, &ctx, garbage, sizeof(garbage) - 1), FG_EINVALID);
    el_testdb_request(&msg, NULL, FG_PROTO_MEMBER_SYNC, project, NULL, 0);
    assert_int_equal(consume(&msg), FG_EINVALID);
    assert_non_null(strstr(fg_error_last(), "MEMBER_SYNC"));
    assert_int_equal(el_testdb_int(pg, "SELECT count(*) FROM processed_message", 0, NULL),
                     processed);
    fg_buf_dispose(&msg);
}

/* ---- through the running service ---------------------------------------------------------- */

typedef struct {
    fg_pg_conn *pg;
    const char *sha;
} arrival;

static bool has_arrived(void *payload)
{
    arrival *a = payload;

    return el_testdb_int(a->pg, "SELECT count(*) FROM event_commit WHERE sha = $1", 1,
                         (const char *const[]){a->sha}) > 0;
}

/* The stack's fg-event-log gets CREATION through its own queue: the same message id twice, the
 * same commits under another id, then a sentinel commit; once the sentinel is stored (the bus
 * thread handles deliveries in order) there is one event per commit. */
static void test_el_consume__running_service_creates_once(void **state)
{
    const char *url = fg_test_stack_env("FG_EVENT_LOG_DB_URL");
    fg_pg_conn *svc = NULL;
    fg_amqp *h = NULL;
    fg_amqp_options o;
    char shas[3][41], first_id[40], second_id[40], sentinel_id[40], path[64], pid[24];
    const char *ptrs[3];
    long long project;
    fg_buf first, second, sentinel;
    arrival a;
    (void)state;

    check(fg_pg_connect(&svc, url, WAIT_MS), "connect FG_EVENT_LOG_DB_URL");
    snprintf(path, sizeof(path), "el-consume/service-%d", (int)getpid());
    project = el_testdb_project(svc, path);
    snprintf(pid, sizeof(pid), "%lld", project);
    for (int i = 0; i < 3; i++) {
        snprintf(shas[i], sizeof(shas[i]), "%08x%08llx%024d", (unsigned)getpid(),
                 (unsigned long long)project, i);
        ptrs[i] = shas[i];
    }
    fg_buf_init(&first, BODY_MAX);
    fg_buf_init(&second, BODY_MAX);
    fg_buf_init(&sentinel, BODY_MAX);
    el_testdb_creation(&first, first_id, project, ptrs, 2, false);
    el_testdb_creation(&second, second_id, project, ptrs, 2, false);
    el_testdb_creation(&sentinel, sentinel_id, project, ptrs + 2, 1, true);
    fg_amqp_options_init(&o);
    o.url = amqp_url;
    check(fg_amqp_new(&h, &o), "amqp new");
    check(fg_amqp_connect(h, WAIT_MS), "amqp connect");
    publish(h, first_id, "CREATION", &first);
    publish(h, first_id, "CREATION", &first);
    publish(h, second_id, "CREATION", &second);
    publish(h, sentinel_id, "CREATION", &sentinel);
    a.pg = svc;
    a.sha = shas[2];
    if (!fg_test_wait_until(has_arrived, &a, 15000)) {
        el_testdb_exec(svc, "DELETE FROM project WHERE id = $1", 1, (const char *const[]){pid});
        fg_pg_free(svc);
        fg_amqp_free(h);
        fg_buf_dispose(&first);
        fg_buf_dispose(&second);
        fg_buf_dispose(&sentinel);
        printf("SKIP: nothing stored in FG_EVENT_LOG_DB_URL within 15 s: no fg-event-log with "
               "el_consume reads fg.event-log there (stopped, an older build, or another "
               "consumer of that queue on another database)\n");
        skip();
    }
    assert_int_equal(el_testdb_int(svc, "SELECT count(*) FROM event WHERE project_id = $1", 1,
                                   (const char *const[]){pid}),
                     3);
    assert_int_equal(el_testdb_int(svc,
                                   "SELECT count(*) FROM status_log WHERE project_id = $1 AND "
                                   "cause = 'CREATION'",
                                   1, (const char *const[]){pid}),
                     3);
    assert_int_equal(el_testdb_int(svc,
                                   "SELECT count(*) FROM processed_message WHERE id IN "
                                   "($1, $2, $3)",
                                   3, (const char *const[]){first_id, second_id, sentinel_id}),
                     3);
    assert_int_equal(el_testdb_int(svc,
                                   "SELECT count(*) FROM project WHERE id = $1 AND "
                                   "first_synced_at IS NOT NULL",
                                   1, (const char *const[]){pid}),
                     1);
    el_testdb_exec(svc, "DELETE FROM status_log WHERE project_id = $1", 1,
                   (const char *const[]){pid});
    el_testdb_exec(svc, "DELETE FROM project WHERE id = $1", 1, (const char *const[]){pid});
    fg_pg_free(svc);
    fg_amqp_free(h);
    fg_buf_dispose(&first);
    fg_buf_dispose(&second);
    fg_buf_dispose(&sentinel);
}

/* ---- main --------------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    el_testdb_create(&db, &pg);
    snprintf(service, sizeof(service), "el-consume-test-%d", (int)getpid());
    snprintf(routing_key, sizeof(routing_key), "el-consume-test.%d", (int)getpid());
    memset(&ctx, 0, sizeof(ctx));
    check(el_context_metrics_new(&ctx), "metrics");
    ctx.settings.backoff_base_ms = 1000;
    ctx.settings.backoff_max_ms = 4000;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fg_test_delete_queues(amqp_url, service);
    el_context_metrics_free(&ctx);
    fg_pg_free(pg);
    el_testdb_drop(&db);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_el_consume__same_creation_twice_gives_one_event),
        cmocka_unit_test(test_el_consume__redelivered_message_is_a_no_op),
        cmocka_unit_test(test_el_consume__concurrent_duplicate_waits_then_does_nothing),
        cmocka_unit_test(test_el_consume__replies_move_batches_and_keep_the_payload),
        cmocka_unit_test(test_el_consume__stale_and_illegal_are_counted_not_applied),
        cmocka_unit_test(test_el_consume__recoverable_failure_backs_off_exponentially),
        cmocka_unit_test(test_el_consume__clean_up_and_whole_project_changes),
        cmocka_unit_test(test_el_consume__sync_complete_marks_the_project_synced),
        cmocka_unit_test(test_el_consume__requests_and_subscriptions),
        cmocka_unit_test(test_el_consume__unhandleable_messages_are_parked),
        cmocka_unit_test(test_el_consume__running_service_creates_once),
    };

    fg_test_stack_env("FG_PG_URL");
    amqp_url = fg_test_stack_env("FG_AMQP_URL");
    return cmocka_run_group_tests(tests, setup, teardown);
}
