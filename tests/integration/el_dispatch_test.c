/*
 * event-log's dispatch against real PostgreSQL and RabbitMQ (issue 3, "Done when"): two
 * event-log processes on one database never dispatch an event twice; the credit consumers
 * announce is never exceeded and every project with work gets some of it; a consumer killed
 * mid-batch has its events re-dispatched after the timeout and they reach TRIPLES_STORE once;
 * a small project registered while a 50,000-event project is processed is done first.
 *
 * Each test has its own scratch database (el_testdb.h) and its own fg-event-log processes from
 * this build tree; el_harness.h plays triples-generator. The stack's own event-log and
 * triples-generator would take the same queues, so they are stopped for the run and started
 * again at the end. Every wait is on a condition.
 */
#include "test_support.h"

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "el_harness.h"
#include "el_testdb.h"
#include "fg/amqp.h"
#include "fg/http_client.h"
#include "fg/proto.h"

#define WAIT_START_MS   30000
#define WAIT_WORK_MS    180000
#define PROCESSES_MAX   2
#define HARNESSES_MAX   3
#define IDS_PER_FIXTURE 1000 /* project ids (and sha seeds) of one fixture */

/* A commit body that passes commit.schema.json, for the events seeded in SQL. */
#define SQL_BODY                                                                                   \
    "format('{\"sha\":\"%s\",\"parents\":[],\"isMerge\":false,"                                    \
    "\"author\":{\"name\":\"T\",\"email\":\"t@example.org\",\"at\":\"2024-01-01T00:00:00+00:00\"}" \
    ","                                                                                            \
    "\"committer\":{\"name\":\"T\",\"email\":\"t@example.org\","                                   \
    "\"at\":\"2024-01-01T00:00:00+00:00\"},\"message\":\"m\\n\",\"trailers\":[],"                  \
    "\"stats\":{\"insertions\":0,\"deletions\":0,\"files\":0},\"files\":[],"                       \
    "\"filesTruncated\":false}', sha)"

/* n NEW events of project $1 with bodies and their CREATION rows in status_log, shas made as
 * el_testdb_sha($2, 1..n). */
#define SQL_SEED                                                                                   \
    "WITH n AS (SELECT nextval('event_id_seq') id, $1::bigint project_id,"                         \
    " lpad(to_hex($2::bigint), 20, '0') || lpad(to_hex(g), 20, '0') sha,"                          \
    " now() - g * interval '1 second' event_date FROM generate_series(1, $3::bigint) g),"          \
    " ins AS (INSERT INTO event (id, project_id, status) SELECT id, project_id, 'NEW' FROM n"      \
    " RETURNING id, project_id),"                                                                  \
    " c AS (INSERT INTO event_commit (event_id, project_id, sha, event_date)"                      \
    " SELECT id, project_id, sha, event_date FROM n),"                                             \
    " bodies AS (INSERT INTO event_body (event_id, body) SELECT id, " SQL_BODY " FROM n)"          \
    " INSERT INTO status_log (event_id, project_id, from_status, to_status, cause)"                \
    " SELECT id, project_id, NULL, 'NEW', 'CREATION' FROM ins"

static fg_http_client *http;
static long long run_seed;
static int fixtures_made;

typedef struct {
    el_testdb db;
    fg_pg_conn *pg;
    pid_t pid[PROCESSES_MAX];
    int port[PROCESSES_MAX];
    char log[PROCESSES_MAX][512];
    int n;
    long long seed;
    int projects;
    el_harness *harness[HARNESSES_MAX];
    int nharness;
    int dead; /* consumer rows of harnesses that died */
} fixture;

/* ---- processes --------------------------------------------------------------------------- */

static long http_get(fg_http_client_response *res, int port, const char *path)
{
    char url[256];
    fg_http_client_request req;

    snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", port, path);
    fg_http_client_request_init(&req);
    req.url = url;
    fg_http_client_response_dispose(res);
    fg_http_client_response_init(res);
    if (fg_http_client_send(http, res, &req) < 0 && res->status == 0)
        return 0;
    return res->status;
}

typedef struct {
    int port;
} ready_probe;

static bool is_ready(void *payload)
{
    ready_probe *p = payload;
    fg_http_client_response res;
    long status;

    fg_http_client_response_init(&res);
    status = http_get(&res, p->port, "/ready");
    fg_http_client_response_dispose(&res);
    return status == 200;
}

/* The environment of a child: ours, with `settings` ("NAME=value") replacing or adding
 * variables. Built before fork: the harness threads may hold the allocator's lock at that moment,
 * so the child only calls async-signal-safe functions. The array and strings are malloc'd. */
static char **child_environment(const char *const *settings, size_t nsettings)
{
    extern char **environ;
    size_t n = 0, k = 0;
    char **env;

    while (environ[n] != NULL)
        n++;
    env = calloc(n + nsettings + 1, sizeof(*env));
    assert_non_null(env);
    for (size_t i = 0; i < n; i++) {
        bool replaced = false;

        for (size_t j = 0; j < nsettings && !replaced; j++) {
            size_t name = (size_t)(strchr(settings[j], '=') - settings[j]) + 1;
            replaced = strncmp(environ[i], settings[j], name) == 0;
        }
        if (!replaced)
            env[k++] = strdup(environ[i]);
    }
    for (size_t j = 0; j < nsettings; j++)
        env[k++] = strdup(settings[j]);
    return env;
}

static void free_environment(char **env)
{
    for (size_t i = 0; env[i] != NULL; i++)
        free(env[i]);
    free(env);
}

/* Starts one more fg-event-log of this build on the fixture's database; extra is a
 * NULL-terminated list of "NAME=value" settings. Returns when it is ready. */
static void start_event_log(fixture *fx, const char *const *extra)
{
    char path[1024], db[1100], port[32];
    const char *settings[16] = {db, port, "FG_LOG_LEVEL=debug"};
    size_t nsettings = 3;
    char *const argv[] = {path, NULL};
    char **env;
    ready_probe probe;
    char log[sizeof(fx->log[0])];
    int i = fx->n++;
    pid_t pid;

    assert_true(i < PROCESSES_MAX);
    fx->port[i] = fg_test_free_port();
    snprintf(path, sizeof(path), "%s/services/event-log/fg-event-log", FG_BINARY_DIR);
    /* via a local copy: gcc -O2 cannot tell fx->db.name from fx->log (-Wrestrict) */
    snprintf(log, sizeof(log), "%s/Testing/el_dispatch_%ld_%s_%d.log", FG_BINARY_DIR,
             (long)getpid(), fx->db.name, i);
    memcpy(fx->log[i], log, sizeof(fx->log[i]) < sizeof(log) ? sizeof(fx->log[i]) : sizeof(log));
    fx->log[i][sizeof(fx->log[i]) - 1] = '\0';
    snprintf(db, sizeof(db), "FG_EVENT_LOG_DB_URL=%s", fx->db.url);
    snprintf(port, sizeof(port), "FG_HTTP_PORT=%d", fx->port[i]);
    for (size_t j = 0; extra != NULL && extra[j] != NULL; j++) {
        assert_true(nsettings < sizeof(settings) / sizeof(settings[0]));
        settings[nsettings++] = extra[j];
    }
    env = child_environment(settings, nsettings);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(fx->log[i], O_WRONLY | O_CREAT | O_TRUNC, 0600);

        /* a test that crashes must not leave a consumer of the shared queues behind */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fd, 1);
        dup2(fd, 2);
        execve(path, argv, env);
        _exit(127);
    }
    free_environment(env);
    fx->pid[i] = pid;
    probe.port = fx->port[i];
    if (!fg_test_wait_until(is_ready, &probe, WAIT_START_MS))
        fail_msg("fg-event-log on port %d not ready; see %s", fx->port[i], fx->log[i]);
}

/* SIGTERM; returns the index of a process that did not end cleanly (a sanitizer report makes
 * the status non-zero), or -1. */
static int stop_event_logs(fixture *fx)
{
    int bad = -1;

    for (int i = 0; i < fx->n; i++) {
        fg_test_process c = {fx->pid[i], 0, false};

        kill(fx->pid[i], SIGTERM);
        if (!fg_test_wait_until(fg_test_process_exited, &c, 20000)) {
            kill(fx->pid[i], SIGKILL);
            waitpid(fx->pid[i], NULL, 0);
            bad = i;
        } else if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) != 0) {
            bad = i;
        }
    }
    fx->n = 0;
    return bad;
}

/* The count of a histogram or counter in a process's /metrics (0 when absent). */
static double metric(fixture *fx, int i, const char *name)
{
    fg_http_client_response res;
    double v = 0;
    const char *at;

    fg_http_client_response_init(&res);
    assert_int_equal(http_get(&res, fx->port[i], "/metrics"), 200);
    for (at = res.body.ptr; (at = strstr(at, name)) != NULL; at += strlen(name)) {
        if ((at == res.body.ptr || at[-1] == '\n') && at[strlen(name)] == ' ') {
            v = strtod(at + strlen(name) + 1, NULL);
            break;
        }
    }
    fg_http_client_response_dispose(&res);
    return v;
}

/* ---- data ----------------------------------------------------------------------------- */

/* Project ids start at the fixture's own range, so that the harness can tell this test's
 * messages from those of another test (or helper) sharing the broker. */
static int fixture_setup(void **state)
{
    fixture *fx = calloc(1, sizeof(*fx));
    char start[24];
    const char *params[1] = {start};

    if (fx == NULL)
        return -1;
    el_testdb_create(&fx->db, &fx->pg);
    fx->seed = run_seed * 100 + ++fixtures_made;
    snprintf(start, sizeof(start), "%lld", fx->seed * IDS_PER_FIXTURE);
    el_testdb_exec(fx->pg, "SELECT setval('project_id_seq', $1::bigint)", 1, params);
    *state = fx;
    return 0;
}

static int fixture_teardown(void **state)
{
    fixture *fx = *state;

    for (int i = 0; i < fx->nharness; i++)
        el_harness_stop(fx->harness[i]);
    stop_event_logs(fx);
    fg_pg_free(fx->pg);
    el_testdb_drop(&fx->db);
    free(fx);
    return 0;
}

static bool goodbyes_read(void *payload)
{
    fixture *fx = payload;

    return el_testdb_int(fx->pg,
                         "SELECT count(*) FROM consumer WHERE capacity > 0"
                         " AND instance LIKE 'e2-%'",
                         0, NULL) == fx->dead;
}

/* The end of a test that passed so far: the consumers leave (their last SUBSCRIPTION, capacity
 * 0, is read by this test's processes, not by the next test's), then the processes must stop
 * cleanly. */
static void finish(fixture *fx)
{
    int bad;

    for (int i = 0; i < fx->nharness; i++) {
        if (el_harness_dead(fx->harness[i]))
            fx->dead += 3; /* its rows (three categories) stay: it died without a word */
        el_harness_stop(fx->harness[i]);
    }
    fx->nharness = 0;
    if (!fg_test_wait_until(goodbyes_read, fx, WAIT_START_MS))
        fail_msg("the consumers' last SUBSCRIPTION was not read; see %s", fx->log[0]);
    if ((bad = stop_event_logs(fx)) >= 0)
        fail_msg("fg-event-log %d did not stop cleanly; see %s", bad, fx->log[bad]);
}

/* A project with n NEW events; its id. */
static long long seed_project(fixture *fx, const char *name, long long n)
{
    char path[128], pid_text[24], seed_text[24], n_text[24];
    const char *params[3] = {pid_text, seed_text, n_text};
    long long project;

    snprintf(path, sizeof(path), "e2-dispatch/%s-%lld", name, fx->seed);
    project = el_testdb_project(fx->pg, path);
    snprintf(pid_text, sizeof(pid_text), "%lld", project);
    snprintf(seed_text, sizeof(seed_text), "%lld", fx->seed * 1000 + ++fx->projects);
    snprintf(n_text, sizeof(n_text), "%lld", n);
    if (n > 0)
        el_testdb_exec(fx->pg, SQL_SEED, 3, params);
    return project;
}

static long long count_where(fixture *fx, const char *sql, long long project)
{
    char text[24];
    const char *params[1] = {text};

    snprintf(text, sizeof(text), "%lld", project);
    return el_testdb_int(fx->pg, sql, project > 0 ? 1 : 0, project > 0 ? params : NULL);
}

static long long stored(fixture *fx, long long project)
{
    return count_where(fx,
                       "SELECT count(*) FROM event WHERE project_id = $1 AND status = "
                       "'TRIPLES_STORE'",
                       project);
}

/* "STATUS:n ..." of the fixture's events, for a failure message (static storage). */
static const char *statuses(fixture *fx)
{
    static char text[4096];
    char *t = el_testdb_text(fx->pg,
                             "SELECT string_agg(status || ':' || n, ' ') FROM (SELECT status::text,"
                             " count(*) n FROM event GROUP BY 1 ORDER BY 1) s",
                             0, NULL);

    snprintf(text, sizeof(text), "%s", t);
    free(t);
    t = el_testdb_text(
        fx->pg,
        "SELECT c.sha || ': ' || string_agg(coalesce(l.from_status::text, '-') || '>'"
        " || coalesce(l.to_status::text, '-') || ' ' || l.cause || ' @'"
        " || to_char(l.at, 'SS.US'), ', ' ORDER BY l.id) FROM event e"
        " JOIN event_commit c ON c.event_id = e.id"
        " JOIN status_log l ON l.event_id = e.id WHERE e.id = (SELECT min(id)"
        " FROM event WHERE status <> 'TRIPLES_STORE') GROUP BY c.sha",
        0, NULL);
    snprintf(text + strlen(text), sizeof(text) - strlen(text), "; first unfinished: %s", t);
    free(t);
    return text;
}

/* The shas of every event of the fixture's database. */
static fg_pg_result *all_shas(fixture *fx)
{
    fg_pg_result *res = NULL;

    if (fg_pg_exec(&res, fx->pg, "SELECT sha FROM event_commit ORDER BY event_id", 0, NULL) < 0)
        fail_msg("shas: %s", fg_error_last());
    return res;
}

static el_harness *harness(fixture *fx, const char *name, el_harness_mode mode, int gen, int trans,
                           int die_after)
{
    char instance[128];
    el_harness_options o = {0};

    assert_true(fx->nharness < HARNESSES_MAX);
    snprintf(instance, sizeof(instance), "e2-%s-%lld", name, fx->seed);
    o.amqp_url = fg_test_stack_env("FG_AMQP_URL");
    o.instance = instance;
    o.capacity_generation = gen;
    o.capacity_transformation = trans;
    o.capacity_clean_up = 1;
    o.heartbeat_ms = 1000;
    o.mode = mode;
    o.die_after = die_after;
    o.project_min = fx->seed * IDS_PER_FIXTURE;
    o.project_max = o.project_min + IDS_PER_FIXTURE - 1;
    fx->harness[fx->nharness] = el_harness_start(&o);
    return fx->harness[fx->nharness++];
}

/* Waiting for every event to be stored, watching what is processing meanwhile. */
typedef struct {
    fixture *fx;
    long long total;
    long long max_generating, max_transforming;
} progress;

static bool all_stored(void *payload)
{
    progress *p = payload;
    fg_pg_result *res = NULL;
    int64_t gen = 0, trans = 0, done = 0;

    if (fg_pg_exec(&res, p->fx->pg,
                   "SELECT count(*) FILTER (WHERE status = 'GENERATING_TRIPLES'),"
                   " count(*) FILTER (WHERE status = 'TRANSFORMING_TRIPLES'),"
                   " count(*) FILTER (WHERE status = 'TRIPLES_STORE') FROM event",
                   0, NULL) < 0 ||
        fg_pg_result_int64(&gen, res, 0, 0) < 0 || fg_pg_result_int64(&trans, res, 0, 1) < 0 ||
        fg_pg_result_int64(&done, res, 0, 2) < 0)
        fail_msg("progress: %s", fg_error_last());
    fg_pg_result_free(res);
    if (gen > p->max_generating)
        p->max_generating = gen;
    if (trans > p->max_transforming)
        p->max_transforming = trans;
    return done == p->total;
}

/* ---- setup ------------------------------------------------------------------------------- */

static int group_setup(void **state)
{
    fg_http_client_options o;

    (void)state;
    fg_test_stack_env("FG_PG_URL");
    fg_test_stack_env("FG_AMQP_URL");
    fg_test_stack_env("FG_SERVICE_KEY");
    fg_test_stack_env("FG_STACK_DIR");
    /* < 2^32, so that project ids (seed * 100 * IDS_PER_FIXTURE) stay below 2^53 */
    run_seed = (((long long)time(NULL) & 0xfffff) << 12) | ((long long)getpid() & 0xfff);
    fg_http_client_options_init(&o);
    o.max_attempts = 1;
    o.timeout_ms = 5000;
    if (fg_http_client_new(&http, &o) < 0)
        return -1;
    /* they would consume fg.event-log, fg.triples-generator and fg.commit-sync beside ours */
    if (fg_test_stack("stop event-log") != 0 || fg_test_stack("stop triples-generator") != 0 ||
        fg_test_stack("stop commit-sync") != 0)
        return -1;
    return 0;
}

static int group_teardown(void **state)
{
    int rc = 0;

    (void)state;
    fg_http_client_free(http);
    if (fg_test_stack("start event-log") != 0 || fg_test_stack("start triples-generator") != 0 ||
        fg_test_stack("start commit-sync") != 0)
        rc = -1;
    return rc;
}

/* ---- tests ------------------------------------------------------------------------------- */

/* Per event: DISPATCH rows into generation and upload, and ZOMBIE rows out of them. */
#define SQL_DISPATCH_HISTORY                                                                       \
    "SELECT c.sha,"                                                                                \
    " count(*) FILTER (WHERE l.cause = 'DISPATCH' AND l.to_status = 'GENERATING_TRIPLES'),"        \
    " count(*) FILTER (WHERE l.cause = 'ZOMBIE' AND l.from_status = 'GENERATING_TRIPLES'),"        \
    " count(*) FILTER (WHERE l.cause = 'DISPATCH' AND l.to_status = 'TRANSFORMING_TRIPLES'),"      \
    " count(*) FILTER (WHERE l.cause = 'ZOMBIE' AND l.from_status = 'TRANSFORMING_TRIPLES')"       \
    " FROM event e JOIN event_commit c ON c.event_id = e.id"                                       \
    " JOIN status_log l ON l.event_id = e.id GROUP BY c.sha"

static void test_el_dispatch__two_processes_never_dispatch_an_event_twice(void **state)
{
    /* a lost reply comes back after 5 s instead of 10 min, so the run always ends */
    const char *const settings[] = {"FG_EL_GENERATION_TIMEOUT_MS=5000",
                                    "FG_EL_TRANSFORMATION_TIMEOUT_MS=5000", NULL};
    const int projects = 40, per_project = 50, capacity = 30;
    fixture *fx = *state;
    progress p = {0};
    el_harness *tg;
    fg_pg_result *history = NULL;
    long long zombies = 0;

    for (int i = 0; i < projects; i++)
        seed_project(fx, "twice", per_project);
    tg = harness(fx, "twice", EL_HARNESS_ANSWER, capacity, capacity, 0);
    start_event_log(fx, settings);
    start_event_log(fx, settings);
    p.fx = fx;
    p.total = projects * per_project;
    if (!fg_test_wait_until(all_stored, &p, WAIT_WORK_MS))
        fail_msg("not every event reached TRIPLES_STORE (%s); see %s and %s", statuses(fx),
                 fx->log[0], fx->log[1]);

    /* every message the consumer got is one DISPATCH of one process, and an event is only
     * handed out again after it came back (ZOMBIE): never two claims of one event */
    if (fg_pg_exec(&history, fx->pg, SQL_DISPATCH_HISTORY, 0, NULL) < 0)
        fail_msg("history: %s", fg_error_last());
    assert_int_equal(fg_pg_result_rows(history), p.total);
    for (size_t i = 0; i < fg_pg_result_rows(history); i++) {
        const char *sha = fg_pg_result_text(history, i, 0);
        int64_t n[4];

        for (size_t c = 0; c < 4; c++)
            assert_int_equal(fg_pg_result_int64(&n[c], history, i, c + 1), 0);
        if (el_harness_deliveries(tg, FG_PROTO_AWAITING_GENERATION, sha) != n[0] ||
            el_harness_deliveries(tg, FG_PROTO_TRIPLES_GENERATED, sha) != n[2] ||
            n[0] != n[1] + 1 || n[2] != n[3] + 1)
            fail_msg("%s: delivered %d + %d times, dispatched %lld + %lld, zombie %lld + %lld", sha,
                     el_harness_deliveries(tg, FG_PROTO_AWAITING_GENERATION, sha),
                     el_harness_deliveries(tg, FG_PROTO_TRIPLES_GENERATED, sha), (long long)n[0],
                     (long long)n[2], (long long)n[1], (long long)n[3]);
        zombies += n[1] + n[3];
    }
    fg_pg_result_free(history);
    if (zombies > 0) /* a reply judged stale: see el_change_apply and docs/internals/event-log.md */
        print_message("%lld dispatches came back as zombies (their reply was lost)\n", zombies);
    /* ... and never more at once than the consumer announced */
    assert_true(p.max_generating <= capacity);
    assert_true(p.max_transforming <= capacity);
    assert_true(el_harness_max_batch(tg, FG_PROTO_AWAITING_GENERATION) <= (size_t)capacity);
    /* both processes took part, or the test would prove nothing */
    assert_true(metric(fx, 0, "fg_el_dispatch_duration_seconds_count") > 0);
    assert_true(metric(fx, 1, "fg_el_dispatch_duration_seconds_count") > 0);
    finish(fx);
}

typedef struct {
    el_harness *a, *b;
    size_t want;
} received_probe;

static bool received_at_least(void *payload)
{
    received_probe *r = payload;
    size_t n = el_harness_events(r->a, FG_PROTO_AWAITING_GENERATION);

    if (r->b != NULL)
        n += el_harness_events(r->b, FG_PROTO_AWAITING_GENERATION);
    return n >= r->want;
}

static void test_el_dispatch__credit_is_never_exceeded_and_shared_by_projects(void **state)
{
    const int projects = 5, per_project = 40, capacity = 25, more = 10;
    long long ids[5];
    fixture *fx = *state;
    received_probe r = {0};

    for (int i = 0; i < projects; i++)
        ids[i] = seed_project(fx, "credit", per_project);
    r.a = harness(fx, "credit-a", EL_HARNESS_HOLD, capacity, capacity, 0);
    start_event_log(fx, NULL);
    start_event_log(fx, NULL);
    r.want = capacity;
    if (!fg_test_wait_until(received_at_least, &r, WAIT_START_MS))
        fail_msg("the held consumer got %zu events, not %d",
                 el_harness_events(r.a, FG_PROTO_AWAITING_GENERATION), capacity);
    /* the consumer holds its credit: nothing more comes, whatever the two processes do */
    r.want = capacity + 1;
    assert_false(fg_test_wait_until(received_at_least, &r, 2000));
    assert_int_equal(
        count_where(fx, "SELECT count(*) FROM event WHERE status = 'GENERATING_TRIPLES'", 0),
        capacity);
    /* the credit was shared: every project with work got some of it in the first round */
    for (int i = 0; i < projects; i++)
        assert_true(el_harness_project_messages(r.a, FG_PROTO_AWAITING_GENERATION, ids[i]) >= 1);
    /* a second consumer announcing more capacity gets exactly that much more */
    r.b = harness(fx, "credit-b", EL_HARNESS_HOLD, more, more, 0);
    r.want = capacity + more;
    assert_true(fg_test_wait_until(received_at_least, &r, WAIT_START_MS));
    r.want = capacity + more + 1;
    assert_false(fg_test_wait_until(received_at_least, &r, 2000));
    assert_int_equal(
        count_where(fx, "SELECT count(*) FROM event WHERE status = 'GENERATING_TRIPLES'", 0),
        capacity + more);
    finish(fx);
}

static bool harness_dead(void *payload)
{
    return el_harness_dead(payload);
}

static void test_el_dispatch__killed_consumer_work_is_redispatched_after_the_timeout(void **state)
{
    const char *const settings[] = {"FG_EL_GENERATION_TIMEOUT_MS=3000", NULL};
    const int projects = 3, per_project = 20, capacity = 20;
    fixture *fx = *state;
    progress p = {0};
    el_harness *killed, *tg;
    char **lost;
    size_t nlost = 0;
    fg_pg_result *shas;

    for (int i = 0; i < projects; i++)
        seed_project(fx, "killed", per_project);
    killed = harness(fx, "killed", EL_HARNESS_DIE, capacity, capacity, 1);
    start_event_log(fx, settings);
    if (!fg_test_wait_until(harness_dead, killed, WAIT_START_MS))
        fail_msg("the consumer was never handed a batch; see %s", fx->log[0]);
    lost = el_harness_received_shas(killed, FG_PROTO_AWAITING_GENERATION, 1, &nlost);
    assert_true(nlost > 0);
    tg = harness(fx, "after-kill", EL_HARNESS_ANSWER, capacity, capacity, 0);
    p.fx = fx;
    p.total = projects * per_project;
    if (!fg_test_wait_until(all_stored, &p, WAIT_WORK_MS))
        fail_msg("not every event reached TRIPLES_STORE; see %s", fx->log[0]);

    /* the batch the dead consumer took came back once, after the timeout, and was done once */
    for (size_t i = 0; i < nlost; i++) {
        const char *params[1] = {lost[i]};

        assert_int_equal(el_harness_deliveries(tg, FG_PROTO_AWAITING_GENERATION, lost[i]), 1);
        assert_int_equal(el_testdb_int(fx->pg,
                                       "SELECT count(*) FROM status_log l JOIN event e"
                                       " ON e.id = l.event_id JOIN event_commit c"
                                       " ON c.event_id = e.id WHERE c.sha = $1"
                                       " AND l.cause = 'ZOMBIE'",
                                       1, params),
                         1);
        assert_true(el_testdb_int(fx->pg,
                                  "SELECT (extract(epoch FROM (SELECT min(l.at) FROM status_log l"
                                  " WHERE l.event_id = e.id AND l.cause = 'ZOMBIE') - (SELECT"
                                  " min(l.at) FROM status_log l WHERE l.event_id = e.id AND"
                                  " l.cause = 'DISPATCH')) * 1000)::bigint FROM event e"
                                  " JOIN event_commit c ON c.event_id = e.id WHERE c.sha = $1",
                                  1, params) >= 3000);
    }
    /* every event went through the live consumer once, and none reached TRIPLES_STORE twice */
    shas = all_shas(fx);
    for (size_t i = 0; i < fg_pg_result_rows(shas); i++) {
        const char *sha = fg_pg_result_text(shas, i, 0);

        assert_true(el_harness_deliveries(killed, FG_PROTO_AWAITING_GENERATION, sha) <= 1);
        assert_int_equal(el_harness_deliveries(tg, FG_PROTO_AWAITING_GENERATION, sha), 1);
        assert_int_equal(el_harness_deliveries(tg, FG_PROTO_TRIPLES_GENERATED, sha), 1);
    }
    fg_pg_result_free(shas);
    assert_int_equal(count_where(fx,
                                 "SELECT count(*) FROM (SELECT event_id FROM status_log"
                                 " WHERE to_status = 'TRIPLES_STORE' GROUP BY event_id"
                                 " HAVING count(*) = 1) once",
                                 0),
                     p.total);
    assert_int_equal(count_where(fx, "SELECT count(*) FROM status_log WHERE cause = 'ZOMBIE'", 0),
                     (long long)nlost);
    el_harness_free_shas(lost, nlost);
    finish(fx);
}

/* CREATION of n commits for project (as commit-sync sends it). */
static void publish_creation(long long project, const char *path, long long seed, int n)
{
    fg_amqp *amqp = NULL;
    fg_amqp_options o;
    fg_proto_project pr = {project, FG_PROTO_FORGE_GIT, path};
    fg_proto_msg msg;
    fg_buf body;
    fg_amqp_message m;
    size_t confirmed = 0;

    fg_amqp_options_init(&o);
    o.url = fg_test_stack_env("FG_AMQP_URL");
    fg_proto_msg_init(&msg);
    fg_buf_init(&body, FG_PROTO_MESSAGE_MAX);
    assert_int_equal(fg_proto_msg_start(&msg, FG_PROTO_CREATION, &pr), 0);
    for (int i = 1; i <= n; i++) {
        char sha[41];
        fg_proto_commit c = {0};
        json_object *built = NULL;

        el_testdb_sha(sha, seed, i);
        c.sha = sha;
        c.author.name = c.committer.name = "Small";
        c.author.email = c.committer.email = "small@example.org";
        c.author.at = c.committer.at = "2024-03-05T10:15:30+01:00";
        c.message = "small change\n";
        assert_int_equal(fg_proto_commit_build(&built, &c), 0);
        assert_int_equal(fg_proto_msg_append(&msg, "commits", built), 0);
    }
    assert_int_equal(fg_proto_msg_serialise(&body, &msg), 0);
    m.id = msg.id;
    m.category = "CREATION";
    m.body = body.ptr;
    m.body_len = body.len;
    if (fg_amqp_new(&amqp, &o) < 0 || fg_amqp_connect(amqp, 10000) < 0 ||
        fg_amqp_declare(amqp) < 0 || fg_amqp_publish_batch(&confirmed, amqp, &m, 1, 10000) < 0)
        fail_msg("CREATION: %s", fg_error_last());
    fg_amqp_free(amqp);
    fg_buf_dispose(&body);
    fg_proto_msg_dispose(&msg);
}

typedef struct {
    fixture *fx;
    long long project;
    long long want;
} stored_probe;

static bool project_stored(void *payload)
{
    stored_probe *s = payload;

    return stored(s->fx, s->project) >= s->want;
}

static void test_el_dispatch__small_project_is_done_before_the_big_one(void **state)
{
    const long long big_n = 50000;
    const int small_n = 3, capacity = 100;
    char path[128];
    fixture *fx = *state;
    stored_probe big = {0}, small = {0};
    long long small_project, t0, big_done;

    big.fx = small.fx = fx;
    big.project = seed_project(fx, "big", big_n);
    harness(fx, "big", EL_HARNESS_ANSWER, capacity, capacity, 0);
    start_event_log(fx, NULL);
    /* the big project is well under way... */
    big.want = 1000;
    if (!fg_test_wait_until(project_stored, &big, WAIT_WORK_MS))
        fail_msg("the big project does not progress; see %s", fx->log[0]);
    /* ... when a small one registers and commit-sync sends its commits */
    snprintf(path, sizeof(path), "e2-dispatch/small-%lld", fx->seed);
    small_project = el_testdb_project(fx->pg, path);
    t0 = fg_test_now_ms();
    publish_creation(small_project, path, fx->seed * 1000 + 999, small_n);
    small.project = small_project;
    small.want = small_n;
    if (!fg_test_wait_until(project_stored, &small, WAIT_WORK_MS))
        fail_msg("the small project was not done; see %s", fx->log[0]);
    big_done = stored(fx, big.project);
    print_message("small project done %lld ms after its CREATION; the big one had %lld of %lld "
                  "events stored\n",
                  fg_test_now_ms() - t0, big_done, big_n);
    assert_true(big_done < big_n);
    finish(fx);
}

/* The shas of a project, as a malloc'd text "{a,b,...}" in id order (for a later query). */
static char *project_shas(fixture *fx, long long project, const char *order)
{
    char id[24], sql[256];
    const char *params[1] = {id};

    snprintf(id, sizeof(id), "%lld", project);
    snprintf(sql, sizeof(sql),
             "SELECT coalesce(array_agg(sha ORDER BY %s)::text, '{}') FROM event e"
             " JOIN event_commit c ON c.event_id = e.id WHERE e.project_id = $1",
             order);
    return el_testdb_text(fx->pg, sql, 1, params);
}

typedef struct {
    fixture *fx;
    long long gone, again;
} cleanup_probe;

static bool cleaned_and_stored(void *payload)
{
    cleanup_probe *c = payload;

    return count_where(c->fx, "SELECT count(*) FROM event WHERE project_id = $1", c->gone) == 0 &&
           stored(c->fx, c->again) == 4;
}

static bool reprovisioned(void *payload)
{
    cleanup_probe *c = payload;

    return count_where(c->fx, "SELECT count(*) FROM project_request", 0) == 0 &&
           count_where(c->fx,
                       "SELECT count(*) FROM status_log WHERE project_id = $1"
                       " AND to_status = 'TRIPLES_STORE'",
                       c->again) == 8;
}

static void test_el_dispatch__clean_up_and_project_requests_are_published(void **state)
{
    fixture *fx = *state;
    cleanup_probe c = {fx, 0, 0};
    char *gone_shas, id[24], removed_id[24], path[128];
    const char *params[1] = {id};
    el_harness *tg;

    c.gone = seed_project(fx, "gone", 5);
    snprintf(id, sizeof(id), "%lld", c.gone);
    /* set-up: commit-sync found these commits gone */
    el_testdb_exec(fx->pg, "UPDATE event SET status = 'AWAITING_DELETION' WHERE project_id = $1", 1,
                   params);
    gone_shas = project_shas(fx, c.gone, "id");
    c.again = seed_project(fx, "again", 4);
    tg = harness(fx, "cleanup", EL_HARNESS_ANSWER, 10, 10, 0);
    start_event_log(fx, NULL);
    if (!fg_test_wait_until(cleaned_and_stored, &c, WAIT_WORK_MS))
        fail_msg("clean-up or processing did not finish; see %s", fx->log[0]);
    /* the clean-up went out once per commit, and CleanUpDone deleted exactly those events */
    for (int i = 1; i <= 5; i++) {
        char sha[41];

        el_testdb_sha(sha, fx->seed * 1000 + 1, i);
        assert_non_null(strstr(gone_shas, sha));
        assert_int_equal(el_harness_deliveries(tg, FG_PROTO_CLEAN_UP, sha), 1);
    }
    assert_int_equal(count_where(fx,
                                 "SELECT count(*) FROM status_log WHERE project_id = $1"
                                 " AND from_status = 'DELETING' AND to_status IS NULL",
                                 c.gone),
                     5);

    /* the API asks for a re-provision and a removal through project_request */
    snprintf(id, sizeof(id), "%lld", c.again);
    snprintf(removed_id, sizeof(removed_id), "%lld", fx->seed * IDS_PER_FIXTURE + 900);
    snprintf(path, sizeof(path), "e2-dispatch/removed-%lld", fx->seed);
    {
        const char *p2[2] = {removed_id, path};

        el_testdb_exec(fx->pg,
                       "INSERT INTO project_request (project_id, kind, project_forge, project_path)"
                       " SELECT id, 'REPROVISION', forge, path FROM project WHERE id = $1",
                       1, params);
        el_testdb_exec(fx->pg,
                       "INSERT INTO project_request (project_id, kind, project_forge, project_path)"
                       " VALUES ($1, 'PROJECT_REMOVED', 'git', $2)",
                       2, p2);
    }
    if (!fg_test_wait_until(reprovisioned, &c, WAIT_WORK_MS))
        fail_msg("the re-provision did not go round; see %s", fx->log[0]);
    /* CLEAN_UP {"all": true} (no events), answered by ProjectEventsToNew: every event again */
    assert_int_equal(el_harness_project_messages(tg, FG_PROTO_CLEAN_UP, c.again), 1);
    assert_int_equal(count_where(fx,
                                 "SELECT count(*) FROM status_log WHERE project_id = $1"
                                 " AND cause = 'REPROVISION'",
                                 c.again),
                     4);
    assert_int_equal(
        el_harness_project_messages(tg, FG_PROTO_PROJECT_REMOVED, fx->seed * IDS_PER_FIXTURE + 900),
        1);
    free(gone_shas);
    finish(fx);
}

/* commit-sync's side: what event-log sent to fg.commit-sync, per project. */
typedef struct {
    fg_amqp *amqp;
    long long min, max;
    json_object *log; /* array of the messages received about our projects */
} commit_sync_side;

static void commit_sync_open(commit_sync_side *cs, fixture *fx)
{
    static const char *const categories[] = {"COMMIT_SYNC", "GLOBAL_COMMIT_SYNC",
                                             "PROJECT_REMOVED"};
    fg_amqp_options o;

    fg_amqp_options_init(&o);
    o.url = fg_test_stack_env("FG_AMQP_URL");
    o.service = "commit-sync";
    o.categories = categories;
    o.ncategories = 3;
    cs->min = fx->seed * IDS_PER_FIXTURE;
    cs->max = cs->min + IDS_PER_FIXTURE - 1;
    cs->log = json_object_new_array();
    if (fg_amqp_new(&cs->amqp, &o) < 0 || fg_amqp_connect(cs->amqp, 10000) < 0 ||
        fg_amqp_declare(cs->amqp) < 0 || fg_amqp_consume(cs->amqp) < 0)
        fail_msg("commit-sync side: %s", fg_error_last());
}

static void commit_sync_close(commit_sync_side *cs)
{
    fg_amqp_free(cs->amqp);
    json_object_put(cs->log);
}

/* Takes what arrived; keeps our projects' messages. */
static void commit_sync_pump(commit_sync_side *cs)
{
    fg_amqp_delivery *d = NULL;

    while (fg_amqp_next(&d, cs->amqp, 10) == 0) {
        json_object *msg = json_tokener_parse(fg_amqp_delivery_body(d));
        json_object *project, *id;

        if (msg != NULL && json_object_object_get_ex(msg, "project", &project) &&
            json_object_object_get_ex(project, "id", &id) && json_object_get_int64(id) >= cs->min &&
            json_object_get_int64(id) <= cs->max)
            json_object_array_add(cs->log, json_object_get(msg));
        json_object_put(msg);
        if (fg_amqp_ack(cs->amqp, d) < 0)
            fail_msg("commit-sync side ack: %s", fg_error_last());
        fg_amqp_delivery_free(d);
    }
}

/* The n-th (from 0) message of category about project, or NULL. */
static json_object *sent(commit_sync_side *cs, const char *category, long long project, int nth)
{
    for (size_t i = 0; i < json_object_array_length(cs->log); i++) {
        json_object *m = json_object_array_get_idx(cs->log, i), *c, *p, *id;

        if (json_object_object_get_ex(m, "category", &c) &&
            strcmp(json_object_get_string(c), category) == 0 &&
            json_object_object_get_ex(m, "project", &p) &&
            json_object_object_get_ex(p, "id", &id) && json_object_get_int64(id) == project &&
            nth-- == 0)
            return m;
    }
    return NULL;
}

typedef struct {
    commit_sync_side *cs;
    el_harness *tg;
    long long a, b, git;
    int commit_syncs_of_a;
} schedule_probe;

static bool all_sent(void *payload)
{
    schedule_probe *s = payload;

    commit_sync_pump(s->cs);
    return sent(s->cs, "COMMIT_SYNC", s->a, 0) && sent(s->cs, "COMMIT_SYNC", s->b, 0) &&
           sent(s->cs, "COMMIT_SYNC", s->git, 0) && sent(s->cs, "GLOBAL_COMMIT_SYNC", s->b, 0) &&
           el_harness_project_messages(s->tg, FG_PROTO_MEMBER_SYNC, s->a) == 1 &&
           el_harness_project_messages(s->tg, FG_PROTO_MEMBER_SYNC, s->b) == 1 &&
           el_harness_project_messages(s->tg, FG_PROTO_PROJECT_SYNC, s->a) == 1 &&
           el_harness_project_messages(s->tg, FG_PROTO_PROJECT_SYNC, s->b) == 1;
}

static bool another_commit_sync_of_a(void *payload)
{
    schedule_probe *s = payload;

    commit_sync_pump(s->cs);
    return sent(s->cs, "COMMIT_SYNC", s->a, s->commit_syncs_of_a) != NULL;
}

static const char *field(json_object *m, const char *name)
{
    json_object *v;

    return json_object_object_get_ex(m, name, &v) ? json_object_to_json_string(v) : NULL;
}

static void test_el_dispatch__schedules_send_syncs_when_due(void **state)
{
    const char *const settings[] = {"FG_EL_PROCESSED_TTL_MS=60000", NULL};
    fixture *fx = *state;
    commit_sync_side cs;
    schedule_probe s = {&cs, NULL, 0, 0, 0, 0};
    char id[24], want[200], *shas;
    const char *params[1] = {id};
    json_object *m;
    long long git;

    s.a = seed_project(fx, "sync-a", 3);
    s.b = seed_project(fx, "sync-b", 2);
    git = s.git = seed_project(fx, "sync-git", 0);
    /* a and b are GitHub projects (members and metadata to sync); git is a plain repository */
    for (int i = 0; i < 2; i++) {
        snprintf(id, sizeof(id), "%lld", i == 0 ? s.a : s.b);
        el_testdb_exec(fx->pg, "UPDATE project SET forge = 'github', forge_id = id WHERE id = $1",
                       1, params);
    }
    snprintf(id, sizeof(id), "%lld", s.b);
    /* b had a commit sync complete an hour ago; a never did */
    el_testdb_exec(fx->pg,
                   "UPDATE project SET first_synced_at = '2024-03-05T09:00:00Z' WHERE id = $1", 1,
                   params);
    el_testdb_exec(fx->pg,
                   "INSERT INTO processed_message (id, category, processed_at) VALUES"
                   " (gen_random_uuid(), 'CREATION', now() - interval '10 minutes'),"
                   " (gen_random_uuid(), 'CREATION', now())",
                   0, NULL);
    commit_sync_open(&cs, fx);
    s.tg = harness(fx, "sync", EL_HARNESS_ANSWER, 0, 0, 0);
    start_event_log(fx, settings);
    if (!fg_test_wait_until(all_sent, &s, WAIT_START_MS))
        fail_msg("not every sync was sent; see %s", fx->log[0]);

    /* COMMIT_SYNC names what event-log knows, newest first; lastSynced only after a sync */
    shas = project_shas(fx, s.a, "event_date DESC");
    m = sent(&cs, "COMMIT_SYNC", s.a, 0);
    snprintf(want, sizeof(want), "[ \"%.40s\", \"%.40s\", \"%.40s\" ]", shas + 1, shas + 42,
             shas + 83);
    assert_string_equal(field(m, "known"), want);
    assert_null(field(m, "lastSynced"));
    free(shas);
    assert_string_equal(field(sent(&cs, "COMMIT_SYNC", s.b, 0), "lastSynced"),
                        "\"2024-03-05T09:00:00.000Z\"");
    /* GLOBAL_COMMIT_SYNC: counts for b; none for a, whose first sync never completed */
    shas = project_shas(fx, s.b, "event_date DESC");
    m = sent(&cs, "GLOBAL_COMMIT_SYNC", s.b, 0);
    assert_string_equal(field(m, "count"), "2");
    snprintf(want, sizeof(want), "\"%.40s\"", shas + 1);
    assert_string_equal(field(m, "latest"), want);
    free(shas);
    assert_null(sent(&cs, "GLOBAL_COMMIT_SYNC", s.a, 0));
    /* the plain git repository gets its commit syncs, but no member or metadata syncs */
    assert_non_null(sent(&cs, "COMMIT_SYNC", git, 0));
    assert_int_equal(el_harness_project_messages(s.tg, FG_PROTO_MEMBER_SYNC, git), 0);
    assert_int_equal(el_harness_project_messages(s.tg, FG_PROTO_PROJECT_SYNC, git), 0);
    /* not due again for an hour... */
    s.commit_syncs_of_a = 1;
    assert_false(fg_test_wait_until(another_commit_sync_of_a, &s, 1500));
    /* ... unless asked: a deleted sync_time row is due now */
    snprintf(id, sizeof(id), "%lld", s.a);
    el_testdb_exec(fx->pg,
                   "DELETE FROM sync_time WHERE project_id = $1 AND category = 'COMMIT_SYNC'", 1,
                   params);
    assert_true(fg_test_wait_until(another_commit_sync_of_a, &s, WAIT_START_MS));
    /* the processed message ids past their ttl are gone, the others stay */
    assert_int_equal(count_where(fx,
                                 "SELECT count(*) FROM processed_message"
                                 " WHERE processed_at < now() - interval '5 minutes'",
                                 0),
                     0);
    assert_true(count_where(fx, "SELECT count(*) FROM processed_message", 0) >= 1);
    commit_sync_close(&cs);
    finish(fx);
}

typedef struct {
    fixture *fx;
    long long bodiless, orphan;
} broken_probe;

static bool broken_settled(void *payload)
{
    broken_probe *b = payload;

    return count_where(b->fx,
                       "SELECT count(*) FROM event WHERE project_id = $1"
                       " AND status = 'GENERATION_NON_RECOVERABLE_FAILURE'",
                       b->bodiless) == 2 &&
           stored(b->fx, b->orphan) == 2;
}

static void test_el_dispatch__events_that_cannot_be_sent_fail_visibly_or_start_again(void **state)
{
    fixture *fx = *state;
    broken_probe b = {fx, 0, 0};
    char id[24];
    const char *params[1] = {id};
    el_harness *tg;
    char *text;

    b.bodiless = seed_project(fx, "bodiless", 2);
    snprintf(id, sizeof(id), "%lld", b.bodiless);
    el_testdb_exec(fx->pg,
                   "DELETE FROM event_body WHERE event_id IN"
                   " (SELECT id FROM event WHERE project_id = $1)",
                   1, params);
    /* generated, but the payload row is gone (set-up only: no path leads here) */
    b.orphan = seed_project(fx, "orphan", 2);
    snprintf(id, sizeof(id), "%lld", b.orphan);
    el_testdb_exec(fx->pg, "UPDATE event SET status = 'TRIPLES_GENERATED' WHERE project_id = $1", 1,
                   params);
    tg = harness(fx, "broken", EL_HARNESS_ANSWER, 10, 10, 0);
    start_event_log(fx, NULL);
    if (!fg_test_wait_until(broken_settled, &b, WAIT_WORK_MS))
        fail_msg("the broken events did not settle; see %s", fx->log[0]);
    /* a commit body that cannot be sent: a visible failure, never handed to the consumer */
    snprintf(id, sizeof(id), "%lld", b.bodiless);
    text =
        el_testdb_text(fx->pg, "SELECT min(message) FROM event WHERE project_id = $1", 1, params);
    assert_string_equal(text, "stored commit body is missing or not valid");
    free(text);
    assert_int_equal(el_harness_project_messages(tg, FG_PROTO_AWAITING_GENERATION, b.bodiless), 0);
    /* no payload to upload: generated again, then stored */
    assert_int_equal(count_where(fx,
                                 "SELECT count(*) FROM status_log WHERE project_id = $1"
                                 " AND cause = 'REPLAY' AND to_status = 'NEW'",
                                 b.orphan),
                     2);
    assert_int_equal(el_harness_project_messages(tg, FG_PROTO_AWAITING_GENERATION, b.orphan), 1);
    finish(fx);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(
            test_el_dispatch__two_processes_never_dispatch_an_event_twice, fixture_setup,
            fixture_teardown),
        cmocka_unit_test_setup_teardown(
            test_el_dispatch__credit_is_never_exceeded_and_shared_by_projects, fixture_setup,
            fixture_teardown),
        cmocka_unit_test_setup_teardown(
            test_el_dispatch__killed_consumer_work_is_redispatched_after_the_timeout, fixture_setup,
            fixture_teardown),
        cmocka_unit_test_setup_teardown(test_el_dispatch__small_project_is_done_before_the_big_one,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(
            test_el_dispatch__clean_up_and_project_requests_are_published, fixture_setup,
            fixture_teardown),
        cmocka_unit_test_setup_teardown(test_el_dispatch__schedules_send_syncs_when_due,
                                        fixture_setup, fixture_teardown),
        cmocka_unit_test_setup_teardown(
            test_el_dispatch__events_that_cannot_be_sent_fail_visibly_or_start_again, fixture_setup,
            fixture_teardown),
    };

    if (getenv("FG_TEST_FILTER") != NULL) /* e.g. "*killed*": one test while debugging */
        cmocka_set_test_filter(getenv("FG_TEST_FILTER"));
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
