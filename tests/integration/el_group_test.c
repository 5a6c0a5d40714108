/* Group commit in event-log's consumer (el_consume_group) against a real PostgreSQL (FG_PG_URL: a
 * scratch database of its own) and RabbitMQ (FG_AMQP_URL): messages taken from a private queue as
 * real deliveries are committed in one transaction; a message that fails inside the group is set
 * aside and parked alone while the others are applied; a consumer that dies right before the
 * group's COMMIT loses nothing (the broker redelivers, the next consumer applies every message
 * exactly once). The last test drives the stack's running fg-event-log (FG_EVENT_LOG_DB_URL,
 * FG_EVENT_LOG_URL) through its real queue: a bad message among good ones is parked by the
 * runtime and the others are applied. */
#include "test_support.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "el_consume.h"
#include "el_testdb.h"
#include "fg/amqp.h"
#include "fg/http_client.h"
#include "fg/metrics.h"

#define WAIT_MS    20000
#define BODY_MAX   (1u << 20)
#define MSGS_MAX   16
#define CRASH_EXIT 3

static el_testdb db;
static fg_pg_conn *pg;
static const char *amqp_url;
static el_context ctx;
static char service[64], routing_key[64];

/* ---- a consumer that dies at COMMIT ------------------------------------------------------- */

int __real_fg_pg_commit(fg_pg_conn *conn);
int __wrap_fg_pg_commit(fg_pg_conn *conn);

static volatile int crash_at_commit; /* set in the forked consumer only */

int __wrap_fg_pg_commit(fg_pg_conn *conn)
{
    if (crash_at_commit)
        _exit(CRASH_EXIT); /* no COMMIT, no ack: the connections just close */
    return __real_fg_pg_commit(conn);
}

/* ---- helpers ------------------------------------------------------------------------------ */

static void check(int rc, const char *what)
{
    if (rc < 0)
        fail_msg("%s: %d %s", what, rc, fg_error_last());
}

typedef struct {
    fg_buf body[MSGS_MAX];
    char id[MSGS_MAX][40];
    size_t n;
} batch;

static void batch_init(batch *b)
{
    memset(b, 0, sizeof(*b));
    for (size_t i = 0; i < MSGS_MAX; i++)
        fg_buf_init(&b->body[i], BODY_MAX);
}

static void batch_dispose(batch *b)
{
    for (size_t i = 0; i < MSGS_MAX; i++)
        fg_buf_dispose(&b->body[i]);
}

static fg_buf *batch_next(batch *b)
{
    assert_true(b->n < MSGS_MAX);
    return &b->body[b->n++];
}

/* ToTriplesStore for one event, as the triples generator sends it. */
static void add_stored(batch *b, long long project, const char *sha)
{
    size_t i = b->n;

    el_testdb_status_change(batch_next(b), b->id[i], project, FG_PROTO_SUB_TO_TRIPLES_STORE,
                            (const char *const[]){sha}, 1, NULL, -1);
}

/* A SUBSCRIPTION the codec accepts (occurredAt is a well-formed RFC 3339 time) but PostgreSQL
 * refuses (there is no year 0): it fails inside the transaction, with SQLSTATE 22008. */
static void add_year_zero_subscription(batch *b, const char *instance)
{
    size_t i = b->n;
    fg_buf *out = batch_next(b);
    fg_proto_msg msg;
    char *at;

    fg_proto_msg_init(&msg);
    check(fg_proto_msg_start(&msg, FG_PROTO_SUBSCRIPTION, NULL), "start");
    check(fg_proto_msg_set_string(&msg, "service", "triples-generator"), "service");
    check(fg_proto_msg_set_string(&msg, "instance", instance), "instance");
    check(fg_proto_msg_set(&msg, "capacity", json_tokener_parse("{\"AWAITING_GENERATION\":4}")),
          "capacity");
    check(fg_proto_msg_set(&msg, "inFlight", json_tokener_parse("{}")), "inFlight");
    check(fg_proto_msg_serialise(out, &msg), "serialise");
    snprintf(b->id[i], sizeof(b->id[i]), "%s", msg.id);
    fg_proto_msg_dispose(&msg);
    at = strstr(out->ptr, "\"occurredAt\":\"");
    assert_non_null(at);
    memcpy(at + strlen("\"occurredAt\":\""), "0000-01-01T00:00:00", 19);
    fg_proto_msg_init(&msg);
    check(fg_proto_msg_parse(&msg, out->ptr, out->len), "the year-0 SUBSCRIPTION parses");
    fg_proto_msg_dispose(&msg);
}

static void add_garbage(batch *b)
{
    size_t i = b->n;

    check(fg_buf_puts(batch_next(b), "{\"id\": \"not json"), "garbage");
    snprintf(b->id[i], sizeof(b->id[i]), "00000000-0000-4000-8000-000000000000");
}

static long long count_ids(const batch *b, const char *sql)
{
    fg_buf ids;
    long long n;

    fg_buf_init(&ids, BODY_MAX);
    for (size_t i = 0; i < b->n; i++)
        check(fg_buf_printf(&ids, "%s%s", i == 0 ? "{" : ",", b->id[i]), "ids");
    check(fg_buf_putc(&ids, '}'), "ids");
    n = el_testdb_int(pg, sql, 1, (const char *const[]){ids.ptr});
    fg_buf_dispose(&ids);
    return n;
}

static long long project_int(const char *sql, long long project)
{
    char id[24];

    snprintf(id, sizeof(id), "%lld", project);
    return el_testdb_int(pg, sql, 1, (const char *const[]){id});
}

/* n events of a new project in TRANSFORMING_TRIPLES (a dispatched upload) */
static long long transforming_project(const char *tag, char shas[][41], size_t n)
{
    char path[64];
    long long project;

    snprintf(path, sizeof(path), "el-group/%s", tag);
    project = el_testdb_project(pg, path);
    for (size_t i = 0; i < n; i++) {
        el_testdb_sha(shas[i], project, (long long)i);
        el_testdb_event(pg, project, shas[i], EL_STATUS_TRANSFORMING_TRIPLES);
    }
    return project;
}

/* ---- the broker --------------------------------------------------------------------------- */

static fg_amqp *open_amqp(bool consuming)
{
    fg_amqp_options o;
    fg_amqp *h = NULL;
    const char *cats[1] = {routing_key};

    fg_amqp_options_init(&o);
    o.url = amqp_url;
    if (consuming) {
        o.service = service;
        o.categories = cats;
        o.ncategories = 1;
    }
    check(fg_amqp_new(&h, &o), "amqp new");
    check(fg_amqp_connect(h, WAIT_MS), "amqp connect");
    check(fg_amqp_declare(h), "amqp declare");
    if (consuming)
        check(fg_amqp_consume(h), "amqp consume");
    return h;
}

/* Publishes the batch to the private queue in one confirmed batch. */
static void publish(const batch *b, const char *key)
{
    fg_amqp_message m[MSGS_MAX];
    fg_amqp *h = open_amqp(false);
    size_t confirmed = 0;

    for (size_t i = 0; i < b->n; i++) {
        m[i].id = b->id[i];
        m[i].category = key;
        m[i].body = b->body[i].ptr;
        m[i].body_len = b->body[i].len;
    }
    check(fg_amqp_publish_batch(&confirmed, h, m, b->n, WAIT_MS), "publish");
    assert_int_equal(confirmed, b->n);
    fg_amqp_free(h);
}

/* Takes n deliveries (in publication order) and hands their bodies to el_consume_group. */
static void take_and_group(fg_amqp *h, fg_amqp_delivery **d, fg_service_outcome *out, size_t n)
{
    el_consume_input in[MSGS_MAX];

    for (size_t i = 0; i < n; i++) {
        check(fg_amqp_next(&d[i], h, WAIT_MS), "next delivery");
        in[i].body = fg_amqp_delivery_body(d[i]);
        in[i].len = fg_amqp_delivery_body_len(d[i]);
    }
    check(el_consume_group(out, pg, &ctx, in, n), "el_consume_group");
}

/* What the service runtime does after a batch: ack, or park with the reason. */
static void settle(fg_amqp *h, fg_amqp_delivery **d, const fg_service_outcome *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (out[i].rc == 0)
            check(fg_amqp_ack(h, d[i]), "ack");
        else
            check(fg_amqp_park(h, d[i], out[i].reason), "park");
        fg_amqp_delivery_free(d[i]);
    }
}

/* ---- one transaction, and a bad message set aside ----------------------------------------- */

/* Seven deliveries: five one-event ToTriplesStore replies, a SUBSCRIPTION that fails inside the
 * transaction (in the middle) and a body that is not JSON (at the end). The five commit in ONE
 * transaction (their processed_message rows share a transaction id); the two others are FG_EINVALID
 * (parked, with their reasons) and leave no trace. */
static void test_el_group__bad_message_is_parked_alone_the_others_commit_together(void **state)
{
    char shas[5][41], instance[64];
    long long project = transforming_project("bad-one", shas, 5);
    double moved = fg_metric_value(ctx.m.transitions);
    fg_amqp_delivery *d[MSGS_MAX];
    fg_service_outcome out[MSGS_MAX];
    fg_amqp *h;
    batch b, good;
    (void)state;

    batch_init(&b);
    batch_init(&good);
    snprintf(instance, sizeof(instance), "el-group-%d", (int)getpid());
    add_stored(&b, project, shas[0]);
    add_stored(&b, project, shas[1]);
    add_year_zero_subscription(&b, instance);
    for (int i = 2; i < 5; i++)
        add_stored(&b, project, shas[i]);
    add_garbage(&b);
    for (size_t i = 0; i < b.n; i++)
        if (i != 2 && i != 6)
            snprintf(good.id[good.n++], sizeof(good.id[0]), "%s", b.id[i]);
    h = open_amqp(true);
    publish(&b, routing_key);
    take_and_group(h, d, out, b.n);
    for (size_t i = 0; i < b.n; i++) {
        if (i == 2 || i == 6) {
            assert_int_equal(out[i].rc, FG_EINVALID);
            assert_true(strlen(out[i].reason) > 0);
        } else {
            assert_int_equal(out[i].rc, 0);
        }
    }
    assert_non_null(strstr(out[2].reason, "22008")); /* the database's refusal, named */
    settle(h, d, out, b.n);

    assert_int_equal(project_int("SELECT count(*) FROM event WHERE project_id = $1 AND "
                                 "status = 'TRIPLES_STORE'",
                                 project),
                     5);
    assert_true(fg_metric_value(ctx.m.transitions) == moved + 5);
    /* the five good ids, committed by one transaction; nothing of the two bad ones */
    assert_int_equal(count_ids(&good, "SELECT count(*) FROM processed_message WHERE id = "
                                      "ANY($1::uuid[])"),
                     5);
    assert_int_equal(count_ids(&good, "SELECT count(DISTINCT xmin::text) FROM processed_message "
                                      "WHERE id = ANY($1::uuid[])"),
                     1);
    assert_int_equal(count_ids(&b, "SELECT count(*) FROM processed_message WHERE id = "
                                   "ANY($1::uuid[])"),
                     5);
    assert_int_equal(el_testdb_int(pg, "SELECT count(*) FROM consumer WHERE instance = $1", 1,
                                   (const char *const[]){instance}),
                     0);
    fg_amqp_free(h);
    batch_dispose(&b);
    batch_dispose(&good);
}

/* A message processed before (its id committed) that comes again inside a group is a no-op there,
 * and so is the same message twice in one group. */
static void test_el_group__duplicates_in_a_group_do_nothing(void **state)
{
    char shas[2][41];
    long long project = transforming_project("dup", shas, 2);
    el_consume_input in[4];
    fg_service_outcome out[4];
    batch b;
    (void)state;

    batch_init(&b);
    add_stored(&b, project, shas[0]);
    add_stored(&b, project, shas[1]);
    check(el_consume_body(pg, &ctx, b.body[0].ptr, b.body[0].len), "first alone");
    /* [first again, second, second again, first again] */
    in[0].body = in[3].body = b.body[0].ptr;
    in[0].len = in[3].len = b.body[0].len;
    in[1].body = in[2].body = b.body[1].ptr;
    in[1].len = in[2].len = b.body[1].len;
    check(el_consume_group(out, pg, &ctx, in, 4), "group");
    for (int i = 0; i < 4; i++)
        assert_int_equal(out[i].rc, 0);
    assert_int_equal(project_int("SELECT count(*) FROM status_log WHERE project_id = $1 AND "
                                 "cause = 'ToTriplesStore'",
                                 project),
                     2);
    assert_int_equal(project_int("SELECT count(*) FROM event WHERE project_id = $1 AND "
                                 "status = 'TRIPLES_STORE'",
                                 project),
                     2);
    batch_dispose(&b);
}

/* ---- a crash before COMMIT ---------------------------------------------------------------- */

/* The forked consumer: its own connections, the group, and death at COMMIT. No cmocka in here
 * (a failed assertion would go on running the suite in the child): any failure is another exit
 * status, which the parent checks. */
static void crashing_consumer(size_t n)
{
    fg_amqp_delivery *d[MSGS_MAX];
    fg_service_outcome out[MSGS_MAX];
    el_consume_input in[MSGS_MAX];
    fg_amqp_options o;
    fg_amqp *h = NULL;
    const char *cats[1] = {routing_key};

    pg = NULL; /* the parent's session is the parent's */
    fg_amqp_options_init(&o);
    o.url = amqp_url;
    o.service = service;
    o.categories = cats;
    o.ncategories = 1;
    if (fg_pg_connect(&pg, db.url, WAIT_MS) < 0 || fg_amqp_new(&h, &o) < 0 ||
        fg_amqp_connect(h, WAIT_MS) < 0 || fg_amqp_declare(h) < 0 || fg_amqp_consume(h) < 0)
        _exit(10);
    for (size_t i = 0; i < n; i++) {
        if (fg_amqp_next(&d[i], h, WAIT_MS) < 0)
            _exit(11);
        in[i].body = fg_amqp_delivery_body(d[i]);
        in[i].len = fg_amqp_delivery_body_len(d[i]);
    }
    crash_at_commit = 1;
    if (el_consume_group(out, pg, &ctx, in, n) < 0)
        _exit(12);
    _exit(13); /* not reached: the group commits */
}

/* A consumer takes four deliveries and dies right before the group's COMMIT: nothing of them is
 * in the database, the broker gives all four to the next consumer, whose group applies each once
 * (one status_log row per event). */
static void test_el_group__crash_before_commit_loses_nothing(void **state)
{
    char shas[4][41];
    long long project = transforming_project("crash", shas, 4);
    fg_amqp_delivery *d[MSGS_MAX];
    fg_service_outcome out[MSGS_MAX];
    fg_amqp *h;
    batch b;
    pid_t pid;
    int status = 0;
    (void)state;

    batch_init(&b);
    for (int i = 0; i < 4; i++)
        add_stored(&b, project, shas[i]);
    fg_amqp_free(open_amqp(true)); /* the queue exists before anything is published */
    publish(&b, routing_key);
    fflush(NULL);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        crashing_consumer(b.n);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), CRASH_EXIT);

    assert_int_equal(project_int("SELECT count(*) FROM event WHERE project_id = $1 AND "
                                 "status = 'TRANSFORMING_TRIPLES'",
                                 project),
                     4);
    assert_int_equal(count_ids(&b, "SELECT count(*) FROM processed_message WHERE id = "
                                   "ANY($1::uuid[])"),
                     0);
    h = open_amqp(true);
    take_and_group(h, d, out, b.n);
    for (size_t i = 0; i < b.n; i++) {
        assert_int_equal(out[i].rc, 0);
        assert_true(fg_amqp_delivery_attempts(d[i]) >= 2); /* redelivered */
    }
    settle(h, d, out, b.n);
    assert_int_equal(project_int("SELECT count(*) FROM event WHERE project_id = $1 AND "
                                 "status = 'TRIPLES_STORE'",
                                 project),
                     4);
    assert_int_equal(project_int("SELECT count(*) FROM status_log WHERE project_id = $1 AND "
                                 "cause = 'ToTriplesStore'",
                                 project),
                     4);
    assert_int_equal(count_ids(&b, "SELECT count(*) FROM processed_message WHERE id = "
                                   "ANY($1::uuid[])"),
                     4);
    fg_amqp_free(h);
    batch_dispose(&b);
}

/* ---- through the running service ---------------------------------------------------------- */

typedef struct {
    fg_pg_conn *svc;
    const char *project;
    size_t want;
} arrival;

static bool all_created(void *payload)
{
    arrival *a = payload;

    return (size_t)el_testdb_int(a->svc, "SELECT count(*) FROM event WHERE project_id = $1", 1,
                                 (const char *const[]){a->project}) >= a->want;
}

typedef struct {
    fg_http_client *http;
    double before;
} parked_probe;

/* fg_messages_handled_total{outcome="park"} of the stack's fg-event-log */
static double parked_count(fg_http_client *http)
{
    static const char name[] = "fg_messages_handled_total{outcome=\"park\"} ";
    fg_http_client_request req;
    fg_http_client_response res;
    char url[256];
    const char *at;
    double v = -1;

    snprintf(url, sizeof(url), "%s/metrics", fg_test_stack_env("FG_EVENT_LOG_URL"));
    fg_http_client_request_init(&req);
    req.url = url;
    fg_http_client_response_init(&res);
    if (fg_http_client_send(http, &res, &req) == 0 && res.status == 200 &&
        (at = strstr(res.body.ptr, name)) != NULL)
        v = strtod(at + strlen(name), NULL);
    else if (res.status == 200)
        v = 0; /* nothing parked yet: the series is absent */
    fg_http_client_response_dispose(&res);
    return v;
}

static bool parked_once_more(void *payload)
{
    parked_probe *p = payload;

    return parked_count(p->http) >= p->before + 1;
}

/* Five CREATIONs and a SUBSCRIPTION PostgreSQL refuses, published in one confirmed batch to the
 * stack's own fg.event-log (the bus thread takes what arrived together as a group): the five are
 * applied, the SUBSCRIPTION is parked by the runtime (counted) and committed nothing. */
static void test_el_group__running_service_parks_the_bad_one_applies_the_rest(void **state)
{
    const char *url = fg_test_stack_env("FG_EVENT_LOG_DB_URL");
    fg_http_client_options o;
    fg_http_client *http = NULL;
    fg_pg_conn *svc = NULL;
    fg_amqp_message m[MSGS_MAX];
    fg_amqp *h;
    char shas[5][41], path[64], pid[24], instance[64];
    long long project;
    size_t confirmed = 0;
    parked_probe probe;
    arrival a;
    batch b;
    (void)state;

    fg_http_client_options_init(&o);
    o.max_attempts = 1;
    o.timeout_ms = 5000;
    check(fg_http_client_new(&http, &o), "http client");
    check(fg_pg_connect(&svc, url, WAIT_MS), "connect FG_EVENT_LOG_DB_URL");
    snprintf(path, sizeof(path), "el-group/service-%d", (int)getpid());
    project = el_testdb_project(svc, path);
    snprintf(pid, sizeof(pid), "%lld", project);
    snprintf(instance, sizeof(instance), "el-group-service-%d", (int)getpid());
    batch_init(&b);
    for (int i = 0; i < 5; i++) {
        size_t k = b.n;

        snprintf(shas[i], sizeof(shas[i]), "%08x%08llx%024d", (unsigned)getpid(),
                 (unsigned long long)project, i);
        el_testdb_creation(batch_next(&b), b.id[k], project, (const char *const[]){shas[i]}, 1,
                           false);
        m[k].category = "CREATION";
        if (i == 2) {
            add_year_zero_subscription(&b, instance);
            m[k + 1].category = "SUBSCRIPTION";
        }
    }
    for (size_t i = 0; i < b.n; i++) {
        m[i].id = b.id[i];
        m[i].body = b.body[i].ptr;
        m[i].body_len = b.body[i].len;
    }
    probe.http = http;
    probe.before = parked_count(http);
    if (probe.before < 0) {
        printf("SKIP: FG_EVENT_LOG_URL/metrics does not answer: no fg-event-log running\n");
        skip();
    }
    h = open_amqp(false);
    check(fg_amqp_publish_batch(&confirmed, h, m, b.n, WAIT_MS), "publish");
    assert_int_equal(confirmed, b.n);
    a.svc = svc;
    a.project = pid;
    a.want = 5;
    assert_true(fg_test_wait_until(all_created, &a, WAIT_MS));
    assert_true(fg_test_wait_until(parked_once_more, &probe, WAIT_MS));
    assert_int_equal(el_testdb_int(svc, "SELECT count(*) FROM event WHERE project_id = $1", 1,
                                   (const char *const[]){pid}),
                     5);
    assert_int_equal(el_testdb_int(svc, "SELECT count(*) FROM processed_message WHERE id = $1", 1,
                                   (const char *const[]){b.id[3]}),
                     0);
    assert_int_equal(el_testdb_int(svc, "SELECT count(*) FROM consumer WHERE instance = $1", 1,
                                   (const char *const[]){instance}),
                     0);
    el_testdb_exec(svc, "DELETE FROM status_log WHERE project_id = $1", 1,
                   (const char *const[]){pid});
    el_testdb_exec(svc, "DELETE FROM project WHERE id = $1", 1, (const char *const[]){pid});
    fg_amqp_free(h);
    fg_pg_free(svc);
    fg_http_client_free(http);
    batch_dispose(&b);
}

/* ---- main --------------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    el_testdb_create(&db, &pg);
    snprintf(service, sizeof(service), "el-group-test-%d", (int)getpid());
    snprintf(routing_key, sizeof(routing_key), "el-group-test.%d", (int)getpid());
    memset(&ctx, 0, sizeof(ctx));
    check(el_context_metrics_new(&ctx), "metrics");
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
        cmocka_unit_test(test_el_group__bad_message_is_parked_alone_the_others_commit_together),
        cmocka_unit_test(test_el_group__duplicates_in_a_group_do_nothing),
        cmocka_unit_test(test_el_group__crash_before_commit_loses_nothing),
        cmocka_unit_test(test_el_group__running_service_parks_the_bad_one_applies_the_rest),
    };

    fg_test_stack_env("FG_PG_URL");
    amqp_url = fg_test_stack_env("FG_AMQP_URL");
    return cmocka_run_group_tests(tests, setup, teardown);
}
