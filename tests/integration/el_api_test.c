/*
 * event-log's REST API against a running fg-event-log (FG_EVENT_LOG_URL; under tests/run.sh the
 * stack's own) and its database (FG_EVENT_LOG_DB_URL, for fixtures and to check what the API
 * wrote): idempotent registration and validation, the service key, project status, keyset
 * pagination, an event's history, replay and retry through the status log, re-provision, sync
 * and removal requests, the streamed export, and fgctl's project and events commands.
 *
 * Fixtures insert events directly (as CREATION would: event, body, a CREATION log row) and move
 * them with el_change_apply, so every event keeps a status log that agrees with it. Assertions
 * about moved events read the status log, not the live status: the stack's dispatcher may pick
 * events up as soon as they are NEW again.
 */
#include "test_support.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "el_change.h"
#include "el_project.h"
#include "fg/amqp.h"
#include "fg/http_client.h"
#include "fg/pg.h"
#include "fg/proto.h"

#define FIXTURE_EVENTS_MAX 2000

static fg_http_client *http;
static fg_pg_conn *db;
static fg_amqp *bus; /* sees CLEAN_UP and PROJECT_REMOVED when a tick publishes the requests */
static const char *base_url;
static char run_tag[64]; /* makes paths, urls and forge ids unique to this run */
static long long forge_id_base;

/* ---- HTTP --------------------------------------------------------------------------------- */

typedef struct {
    long status;
    json_object *json; /* the parsed body, NULL when empty or not JSON */
    char content_type[128];
    fg_buf body;
} answer;

static void answer_dispose(answer *a)
{
    json_object_put(a->json);
    fg_buf_dispose(&a->body);
    memset(a, 0, sizeof(*a));
}

/* One call to event-log; auth: 1 = the service key, 0 = none, -1 = a wrong key. */
static long call_auth(answer *a, const char *method, const char *path, const char *body, int auth)
{
    char url[2048], header[512];
    const char *headers[2];
    fg_http_client_request req;
    fg_http_client_response res;

    memset(a, 0, sizeof(*a));
    snprintf(url, sizeof(url), "%s%s", base_url, path);
    fg_http_client_request_init(&req);
    req.url = url;
    req.method = method;
    req.headers = headers;
    if (auth != 0) {
        snprintf(header, sizeof(header), "Authorization: Bearer %s",
                 auth > 0 ? fg_test_stack_env("FG_SERVICE_KEY") : "not-the-key-0123456789");
        headers[req.nheaders++] = header;
    }
    if (body != NULL) {
        headers[req.nheaders++] = "Content-Type: application/json";
        req.body = body;
        req.body_len = strlen(body);
    }
    fg_http_client_response_init(&res);
    if (fg_http_client_send(http, &res, &req) < 0 && res.status == 0)
        fail_msg("%s %s: %s", method, path, fg_error_last());
    a->status = res.status;
    snprintf(a->content_type, sizeof(a->content_type), "%s",
             res.content_type != NULL ? res.content_type : "");
    fg_buf_init(&a->body, 64u << 20);
    assert_int_equal(fg_buf_put(&a->body, res.body.ptr, res.body.len), 0);
    if (res.body.len > 0)
        a->json = json_tokener_parse(res.body.ptr);
    fg_http_client_response_dispose(&res);
    return a->status;
}

static long call(answer *a, const char *method, const char *path, const char *body)
{
    return call_auth(a, method, path, body, 1);
}

static long long jint(const json_object *o, const char *key)
{
    json_object *v = NULL;

    assert_true(json_object_object_get_ex(o, key, &v));
    return (long long)json_object_get_int64(v);
}

static const char *jstr(const json_object *o, const char *key)
{
    json_object *v = NULL;

    assert_true(json_object_object_get_ex(o, key, &v));
    return v != NULL ? json_object_get_string(v) : NULL;
}

static bool jbool(const json_object *o, const char *key)
{
    json_object *v = NULL;

    assert_true(json_object_object_get_ex(o, key, &v));
    assert_true(json_object_is_type(v, json_type_boolean));
    return json_object_get_boolean(v);
}

/* The error answer names the field first: {"error":"invalid","message":"<field>: ..."}. */
static void assert_bad_field(const answer *a, const char *field)
{
    const char *message;

    assert_int_equal(a->status, 400);
    assert_non_null(a->json);
    assert_string_equal(jstr(a->json, "error"), "invalid");
    message = jstr(a->json, "message");
    if (strncmp(message, field, strlen(field)) != 0 || message[strlen(field)] != ':')
        fail_msg("expected an error about %s, got: %s", field, message);
}

/* ---- fixtures ----------------------------------------------------------------------------- */

/* Registers a plain git project unique to this run; returns its id. */
static long long new_project(const char *name)
{
    char body[512];
    answer a;
    long long id;

    snprintf(body, sizeof(body),
             "{\"forge\":\"git\",\"path\":\"%s/%s\",\"url\":\"/tmp/%s/%s.git\"}", run_tag, name,
             run_tag, name);
    assert_int_equal(call(&a, "POST", "/projects", body), 201);
    id = jint(a.json, "id");
    answer_dispose(&a);
    return id;
}

static long long sql_int(const char *sql, const char *p1, const char *p2)
{
    const char *params[2] = {p1, p2};
    fg_pg_result *res = NULL;
    int64_t v = 0;

    if (fg_pg_exec(&res, db, sql, p2 != NULL ? 2 : p1 != NULL ? 1 : 0, params) < 0)
        fail_msg("%s: %s", sql, fg_error_last());
    assert_int_equal(fg_pg_result_int64(&v, res, 0, 0), 0);
    fg_pg_result_free(res);
    return v;
}

static void id_text(char out[24], long long id)
{
    snprintf(out, 24, "%lld", id);
}

/* The k-th (from 0) event of the project in id order. Fixtures name events by position:
 * another process inserting events meanwhile could interleave ids, never positions. */
static long long nth(long long project, long long k)
{
    char p[24], kt[24];

    id_text(p, project);
    id_text(kt, k);
    return sql_int("SELECT id FROM event WHERE project_id = $1::bigint ORDER BY id"
                   " OFFSET $2::bigint LIMIT 1",
                   p, kt);
}

/* n NEW events for the project, as CREATION stores them, except that they are not ready
 * before tomorrow (a stack's dispatcher leaves them to the test); returns the position of the
 * first new one (see nth). */
static long long add_events(long long project, int n)
{
    char p[24], count[24];
    long long before;

    id_text(p, project);
    before = sql_int("SELECT count(*) FROM event WHERE project_id = $1::bigint", p, NULL);
    snprintf(count, sizeof(count), "%d", n);
    assert_int_equal(
        sql_int(
            "WITH n AS (SELECT nextval('event_id_seq') id, $1::bigint project_id,"
            " md5($1 || ':' || g) || substr(md5('x' || $1 || ':' || g), 1, 8) sha,"
            " now() - g * interval '1 minute' event_date"
            " FROM generate_series(1, $2::int) g),"
            " ins AS (INSERT INTO event (id, project_id, status, execution_date)"
            " SELECT id, project_id, 'NEW', now() + interval '1 day' FROM n"
            " RETURNING id, project_id),"
            " c AS (INSERT INTO event_commit (event_id, project_id, sha, event_date)"
            " SELECT id, project_id, sha, event_date FROM n),"
            " b AS (INSERT INTO event_body (event_id, body) SELECT id, json_build_object("
            "'sha', sha, 'message', 'commit ' || sha || E'\\n\\nbody',"
            " 'author', json_build_object('name', 'E3 Test', 'email', 'e3@example.org',"
            " 'at', '2026-01-01T00:00:00Z'))::text FROM n),"
            " l AS (INSERT INTO status_log (event_id, project_id, from_status, to_status, cause)"
            " SELECT id, project_id, NULL, 'NEW', 'CREATION' FROM ins)"
            " SELECT count(*) FROM ins",
            p, count),
        n);
    return before;
}

/* Moves the events at positions [first, first + n) of the project one step, through the state
 * machine, inside the caller's transaction: a chain of steps commits at once, so no other event-log
 * process (a stack's zombie chasing, its dispatcher) ever sees the fixture half-way. */
static void step(long long project, long long first, int n, el_status to, el_cause cause,
                 const char *message)
{
    el_event_id ids[FIXTURE_EVENTS_MAX];
    el_change c;
    el_change_result r;

    assert_true(n <= FIXTURE_EVENTS_MAX);
    for (int i = 0; i < n; i++)
        ids[i].value = nth(project, first + i);
    memset(&c, 0, sizeof(c));
    c.project.value = project;
    c.cause = cause;
    c.to = to;
    c.ids = ids;
    c.nids = (size_t)n;
    c.message = message;
    if (el_change_apply(&r, db, &c) < 0)
        fail_msg("el_change_apply: %s", fg_error_last());
    assert_int_equal(r.applied, (size_t)n);
}

/* NEW -> ... -> TRIPLES_STORE, every step logged, in one transaction. */
static void to_triples_store(long long project, long long first, int n)
{
    assert_int_equal(fg_pg_begin(db), 0);
    step(project, first, n, EL_STATUS_GENERATING_TRIPLES, EL_CAUSE_DISPATCH, NULL);
    step(project, first, n, EL_STATUS_TRIPLES_GENERATED, EL_CAUSE_TO_TRIPLES_GENERATED, NULL);
    step(project, first, n, EL_STATUS_TRANSFORMING_TRIPLES, EL_CAUSE_DISPATCH, NULL);
    step(project, first, n, EL_STATUS_TRIPLES_STORE, EL_CAUSE_TO_TRIPLES_STORE, NULL);
    assert_int_equal(fg_pg_commit(db), 0);
}

/* NEW -> GENERATING_TRIPLES -> GENERATION_NON_RECOVERABLE_FAILURE, in one transaction. */
static void fail_generation(long long project, long long first, int n)
{
    assert_int_equal(fg_pg_begin(db), 0);
    step(project, first, n, EL_STATUS_GENERATING_TRIPLES, EL_CAUSE_DISPATCH, NULL);
    step(project, first, n, EL_STATUS_GENERATION_NON_RECOVERABLE_FAILURE, EL_CAUSE_TO_FAILURE,
         "cannot parse");
    assert_int_equal(fg_pg_commit(db), 0);
}

/* ... -> TRANSFORMATION_NON_RECOVERABLE_FAILURE, in one transaction. */
static void fail_transformation(long long project, long long first, int n)
{
    assert_int_equal(fg_pg_begin(db), 0);
    step(project, first, n, EL_STATUS_GENERATING_TRIPLES, EL_CAUSE_DISPATCH, NULL);
    step(project, first, n, EL_STATUS_TRIPLES_GENERATED, EL_CAUSE_TO_TRIPLES_GENERATED, NULL);
    step(project, first, n, EL_STATUS_TRANSFORMING_TRIPLES, EL_CAUSE_DISPATCH, NULL);
    step(project, first, n, EL_STATUS_TRANSFORMATION_NON_RECOVERABLE_FAILURE, EL_CAUSE_TO_FAILURE,
         "upload refused");
    assert_int_equal(fg_pg_commit(db), 0);
}

static long long log_rows(long long project, const char *cause)
{
    char p[24];

    id_text(p, project);
    return sql_int("SELECT count(*) FROM status_log WHERE project_id = $1::bigint AND cause = $2",
                   p, cause);
}

/* ---- the bus (a tick may publish the API's requests before the test looks) ------------------ */

static int bus_open(void)
{
    static const char *const categories[] = {"CLEAN_UP", "PROJECT_REMOVED"};
    fg_amqp_options o;
    int rc;

    fg_amqp_options_init(&o);
    o.url = fg_test_stack_env("FG_AMQP_URL");
    o.service = "el-api-test";
    o.categories = categories;
    o.ncategories = 2;
    if ((rc = fg_amqp_new(&bus, &o)) < 0 || (rc = fg_amqp_connect(bus, 10000)) < 0 ||
        (rc = fg_amqp_declare(bus)) < 0)
        return rc;
    return fg_amqp_consume(bus);
}

/* True when a `category` message about `project` arrived (others are acked and dropped). */
static bool bus_saw(const char *category, long long project)
{
    fg_amqp_delivery *d = NULL;
    bool seen = false;

    while (!seen && fg_amqp_next(&d, bus, 50) == 0) {
        fg_proto_msg msg;

        fg_proto_msg_init(&msg);
        if (strcmp(fg_amqp_delivery_category(d), category) == 0 &&
            fg_proto_msg_parse(&msg, fg_amqp_delivery_body(d), fg_amqp_delivery_body_len(d)) == 0 &&
            msg.has_project && msg.project.id == project)
            seen = true;
        fg_proto_msg_dispose(&msg);
        assert_int_equal(fg_amqp_ack(bus, d), 0);
        fg_amqp_delivery_free(d);
    }
    return seen;
}

typedef struct {
    long long project;
    const char *kind;     /* project_request kind */
    const char *category; /* the message a tick publishes for it */
    bool seen;
} request_probe;

/* The API recorded the request: its row is there, or a tick already published it. */
static bool request_recorded(void *payload)
{
    request_probe *p = payload;
    char id[24];

    id_text(id, p->project);
    p->seen = p->seen || bus_saw(p->category, p->project);
    return p->seen || sql_int("SELECT count(*) FROM project_request WHERE project_id = $1::bigint"
                              " AND kind = $2",
                              id, p->kind) == 1;
}

/* ---- fgctl -------------------------------------------------------------------------------- */

/* Runs build/tools/fgctl/fgctl with args (the environment holds FG_EVENT_LOG_URL and the key);
 * its stdout goes to *out; returns its exit status. */
static int fgctl(fg_buf *out, const char *const *args)
{
    char path[1024];
    const char *argv[16];
    int fds[2], status = -1;
    char chunk[4096];
    ssize_t n;
    pid_t pid;
    size_t i = 0;

    snprintf(path, sizeof(path), "%s/tools/fgctl/fgctl", FG_BINARY_DIR);
    argv[i++] = path;
    for (; args[i - 1] != NULL && i < 15; i++)
        argv[i] = args[i - 1];
    argv[i] = NULL;
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(fds[1]);
    while ((n = read(fds[0], chunk, sizeof(chunk))) > 0)
        assert_int_equal(fg_buf_put(out, chunk, (size_t)n), 0);
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- tests: projects ---------------------------------------------------------------------- */

static void test_el_api__register_is_idempotent(void **state)
{
    char body[512], moved[512];
    long long id;
    answer a;
    (void)state;

    /* plain git: the url is the identity */
    snprintf(body, sizeof(body),
             "{\"forge\":\"git\",\"path\":\"%s/idem\",\"url\":\"https://git.example.org/%s/"
             "idem.git\"}",
             run_tag, run_tag);
    assert_int_equal(call(&a, "POST", "/projects", body), 201);
    id = jint(a.json, "id");
    assert_string_equal(jstr(a.json, "forge"), "git");
    assert_null(jstr(a.json, "forgeId"));
    assert_null(jstr(a.json, "firstSyncedAt"));
    answer_dispose(&a);
    assert_int_equal(call(&a, "POST", "/projects", body), 200);
    assert_int_equal(jint(a.json, "id"), id);
    answer_dispose(&a);

    /* github and gitlab: forge + forgeId, whatever the path says on a repeat */
    for (int f = 0; f < 2; f++) {
        const char *forge = f == 0 ? "github" : "gitlab";
        long long forge_id = forge_id_base + f;

        snprintf(body, sizeof(body),
                 "{\"forge\":\"%s\",\"forgeId\":%lld,\"path\":\"%s/idem\","
                 "\"url\":\"https://%s.com/%s/idem.git\"}",
                 forge, forge_id, run_tag, forge, run_tag);
        snprintf(moved, sizeof(moved),
                 "{\"forge\":\"%s\",\"forgeId\":%lld,\"path\":\"%s/renamed\","
                 "\"url\":\"https://%s.com/%s/renamed.git\"}",
                 forge, forge_id, run_tag, forge, run_tag);
        assert_int_equal(call(&a, "POST", "/projects", body), 201);
        id = jint(a.json, "id");
        assert_int_equal(jint(a.json, "forgeId"), forge_id);
        answer_dispose(&a);
        assert_int_equal(call(&a, "POST", "/projects", body), 200);
        assert_int_equal(jint(a.json, "id"), id);
        answer_dispose(&a);
        assert_int_equal(call(&a, "POST", "/projects", moved), 200);
        assert_int_equal(jint(a.json, "id"), id);
        assert_true(strstr(jstr(a.json, "path"), "/idem") != NULL); /* left as registered */
        answer_dispose(&a);
        assert_int_equal(call(&a, "GET", "/projects", NULL), 200);
        answer_dispose(&a);
    }
}

static void test_el_api__register_names_the_bad_field(void **state)
{
    static const struct {
        const char *body;
        const char *field;
    } cases[] = {
        {"{\"path\":\"a/b\",\"url\":\"/r\"}", "forge"},
        {"{\"forge\":\"svn\",\"path\":\"a/b\",\"url\":\"/r\"}", "forge"},
        {"{\"forge\":7,\"path\":\"a/b\",\"url\":\"/r\"}", "forge"},
        {"{\"forge\":\"github\",\"path\":\"a/b\",\"url\":\"https://github.com/a/b\"}", "forgeId"},
        {"{\"forge\":\"gitlab\",\"forgeId\":\"12\",\"path\":\"a/b\",\"url\":\"/r\"}", "forgeId"},
        {"{\"forge\":\"gitlab\",\"forgeId\":-3,\"path\":\"a/b\",\"url\":\"/r\"}", "forgeId"},
        {"{\"forge\":\"gitlab\",\"forgeId\":1.5,\"path\":\"a/b\",\"url\":\"/r\"}", "forgeId"},
        {"{\"forge\":\"git\",\"forgeId\":12,\"path\":\"a/b\",\"url\":\"/r\"}", "forgeId"},
        {"{\"forge\":\"git\",\"url\":\"/r\"}", "path"},
        {"{\"forge\":\"git\",\"path\":\"nons\",\"url\":\"/r\"}", "path"},
        {"{\"forge\":\"git\",\"path\":\"a//b\",\"url\":\"/r\"}", "path"},
        {"{\"forge\":\"git\",\"path\":\"a/../b\",\"url\":\"/r\"}", "path"},
        {"{\"forge\":\"git\",\"path\":\"a/b c\",\"url\":\"/r\"}", "path"},
        {"{\"forge\":\"github\",\"forgeId\":5,\"path\":\"a/b/c\",\"url\":\"/r\"}", "path"},
        {"{\"forge\":\"git\",\"path\":\"a/b\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"relative/dir\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"ftp://h/a/b\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"https://u:secret@h/a/b\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"https://h/a b\"}", "url"},
        {"{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"/r\",\"token\":\"x\"}", "token"},
        {"[1,2]", "body"},
        {"{\"forge\":", "body"},
        {"", "body"},
    };
    answer a;
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        call(&a, "POST", "/projects", cases[i].body);
        assert_bad_field(&a, cases[i].field);
        answer_dispose(&a);
    }
}

static void test_el_api__requires_the_service_key(void **state)
{
    answer a;
    (void)state;

    assert_int_equal(call_auth(&a, "GET", "/projects", NULL, 0), 401);
    answer_dispose(&a);
    assert_int_equal(call_auth(&a, "GET", "/events", NULL, -1), 401);
    answer_dispose(&a);
    assert_int_equal(call_auth(&a, "POST", "/projects",
                               "{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"/tmp/nokey\"}", 0),
                     401);
    assert_string_equal(jstr(a.json, "error"), "unauthorized");
    answer_dispose(&a);
    assert_int_equal(call_auth(&a, "GET", "/events/export", NULL, 0), 401);
    answer_dispose(&a);
    assert_int_equal(call_auth(&a, "GET", "/health", NULL, 0), 200);
    answer_dispose(&a);
}

static void test_el_api__fresh_project_is_not_done(void **state)
{
    long long id = new_project("fresh");
    json_object *by = NULL;
    char path[64];
    answer a;
    (void)state;

    snprintf(path, sizeof(path), "/projects/%lld/status", id);
    assert_int_equal(call(&a, "GET", path, NULL), 200);
    assert_int_equal(jint(a.json, "id"), id);
    assert_int_equal(jint(a.json, "total"), 0);
    assert_int_equal(jint(a.json, "progress"), 0);
    assert_false(jbool(a.json, "done"));
    assert_false(jbool(a.json, "synced"));
    assert_true(json_object_object_get_ex(a.json, "byStatus", &by));
    assert_int_equal(json_object_object_length(by), 12);
    assert_int_equal(jint(by, "NEW"), 0);
    assert_int_equal(jint(by, "DELETING"), 0);
    answer_dispose(&a);

    snprintf(path, sizeof(path), "/projects/%lld", id);
    assert_int_equal(call(&a, "GET", path, NULL), 200);
    assert_int_equal(jint(a.json, "id"), id);
    answer_dispose(&a);
    assert_int_equal(call(&a, "GET", "/projects/999999999999/status", NULL), 404);
    assert_string_equal(jstr(a.json, "error"), "not_found");
    answer_dispose(&a);
    call(&a, "GET", "/projects/abc", NULL);
    assert_bad_field(&a, "id");
    answer_dispose(&a);
}

static void test_el_api__status_counts_and_done(void **state)
{
    long long id = new_project("counts"), first;
    char path[64], p[24];
    answer a;
    (void)state;

    first = add_events(id, 10);
    to_triples_store(id, first, 7);
    fail_generation(id, first + 7, 1);
    snprintf(path, sizeof(path), "/projects/%lld/status", id);
    assert_int_equal(call(&a, "GET", path, NULL), 200);
    assert_int_equal(jint(a.json, "total"), 10);
    assert_false(jbool(a.json, "done")); /* never synced, and two events still wait */
    assert_int_equal(jint(a.json, "failed"), 1);
    answer_dispose(&a);

    /* a completed sync, but two events wait: not done yet */
    id_text(p, id);
    sql_int("WITH u AS (UPDATE project SET first_synced_at = now() WHERE id = $1::bigint"
            " RETURNING 1) SELECT count(*) FROM u",
            p, NULL);
    assert_int_equal(call(&a, "GET", path, NULL), 200);
    assert_true(jbool(a.json, "synced"));
    assert_false(jbool(a.json, "done"));
    assert_true(jint(a.json, "progress") < 100);
    answer_dispose(&a);
    to_triples_store(id, first + 8, 2);
    assert_int_equal(call(&a, "GET", path, NULL), 200);
    assert_true(jbool(a.json, "done"));
    assert_int_equal(jint(a.json, "progress"), 100);
    assert_int_equal(jint(json_object_object_get(a.json, "byStatus"), "TRIPLES_STORE"), 9);
    assert_int_equal(jint(a.json, "failed"), 1);
    answer_dispose(&a);
}

/* The counts come from the partial indexes, TRIPLES_STORE as what is left of the project's
 * events (el_project.c): an event in each status, set directly as a fixture (not ready before
 * tomorrow, so no dispatcher or zombie chaser of the stack touches them), must be counted where
 * a plain GROUP BY over the table counts it. */
static void test_el_api__status_counts_every_status(void **state)
{
    long long id = new_project("every-status"), first;
    char path[64], p[24], f[24];
    json_object *by = NULL;
    answer a;
    (void)state;

    first = add_events(id, EL_STATUS_DELETED - EL_STATUS_NEW + 3); /* TRIPLES_STORE 4 times */
    id_text(p, id);
    id_text(f, first);
    sql_int("WITH e AS (SELECT id, row_number() OVER (ORDER BY id) - 1 - $2::bigint k FROM event"
            " WHERE project_id = $1::bigint),"
            " u AS (UPDATE event v SET status = CASE WHEN e.k < 12"
            " THEN (enum_range(NULL::event_status))[e.k + 1] ELSE 'TRIPLES_STORE' END"
            " FROM e WHERE v.id = e.id AND e.k >= 0 RETURNING 1) SELECT count(*) FROM u",
            p, f);
    snprintf(path, sizeof(path), "/projects/%lld/status", id);
    assert_int_equal(call(&a, "GET", path, NULL), 200);
    assert_int_equal(jint(a.json, "total"), 15);
    assert_true(json_object_object_get_ex(a.json, "byStatus", &by));
    for (int s = EL_STATUS_NEW; s < EL_STATUS_DELETED; s++) {
        const char *status = el_status_name((el_status)s);

        assert_int_equal(jint(by, status), s == EL_STATUS_TRIPLES_STORE ? 4 : 1);
        assert_int_equal(jint(by, status), sql_int("SELECT count(*) FROM event WHERE project_id ="
                                                   " $1::bigint AND status = $2::event_status",
                                                   p, status));
    }
    answer_dispose(&a);
}

/* fg_el_events{status} as /metrics shows it, -1 when the line is not there. */
static double gauge(const char *status)
{
    answer a;
    char line[128];
    const char *at;
    double v = -1;

    assert_int_equal(call(&a, "GET", "/metrics", NULL), 200);
    snprintf(line, sizeof(line), "\nfg_el_events{status=\"%s\"} ", status);
    if ((at = strstr(a.body.ptr, line)) != NULL)
        v = strtod(at + strlen(line), NULL);
    answer_dispose(&a);
    return v;
}

/* The gauge shows what the table holds now (refreshed every 10 s, so polled). */
static bool gauge_is_current(void *payload)
{
    const char *status = payload;

    return gauge(status) ==
           (double)sql_int("SELECT count(*) FROM event WHERE status = $1::event_status", status,
                           NULL);
}

/* The gauge's count (el_project_count_events, the partial indexes and the rest as TRIPLES_STORE)
 * equals a plain count per status over the whole table, both read in one snapshot; the running
 * service publishes it (refreshed every 10 s). */
static void test_el_api__events_per_status_gauge(void **state)
{
    long long id = new_project("gauge"), counts[EL_STATUS_COUNT];
    (void)state;

    (void)add_events(id, 3); /* NEW, not ready before tomorrow */
    assert_int_equal(fg_pg_exec(NULL, db, "BEGIN ISOLATION LEVEL REPEATABLE READ", 0, NULL), 0);
    assert_int_equal(el_project_count_events(counts, db), 0);
    for (int s = EL_STATUS_NEW; s < EL_STATUS_DELETED; s++)
        assert_int_equal(counts[s], sql_int("SELECT count(*) FROM event WHERE status ="
                                            " $1::event_status",
                                            el_status_name((el_status)s), NULL));
    assert_int_equal(fg_pg_commit(db), 0);
    assert_true(counts[EL_STATUS_NEW] >= 3);
    assert_true(fg_test_wait_until(gauge_is_current, (void *)"NEW", 15000));
    assert_true(gauge("NEW") >= 3);
}

/* ---- tests: events ------------------------------------------------------------------------ */

static void test_el_api__events_pages_with_a_cursor(void **state)
{
    long long id = new_project("pages"), first, last = 0, seen = 0;
    char path[256], after[32] = "";
    int pages = 0;
    answer a;
    (void)state;

    first = add_events(id, 250);
    to_triples_store(id, first + 10, 7);
    do {
        json_object *events = NULL, *next = NULL;

        snprintf(path, sizeof(path), "/events?project=%lld&limit=100%s%s", id,
                 after[0] != '\0' ? "&after=" : "", after);
        assert_int_equal(call(&a, "GET", path, NULL), 200);
        assert_true(json_object_object_get_ex(a.json, "events", &events));
        for (size_t i = 0; i < json_object_array_length(events); i++) {
            json_object *e = json_object_array_get_idx(events, i);

            assert_true(jint(e, "id") > last); /* ascending, no repeats */
            last = jint(e, "id");
            assert_int_equal(jint(json_object_object_get(e, "project"), "id"), id);
            assert_int_equal(strlen(jstr(e, "sha")), 40);
            seen++;
        }
        assert_true(json_object_object_get_ex(a.json, "next", &next));
        after[0] = '\0';
        if (next != NULL)
            snprintf(after, sizeof(after), "%s", json_object_get_string(next));
        pages++;
        assert_int_equal(json_object_array_length(events), pages < 3 ? 100 : 50);
        answer_dispose(&a);
    } while (after[0] != '\0');
    assert_int_equal(pages, 3);
    assert_int_equal(seen, 250);

    snprintf(path, sizeof(path), "/events?project=%lld&status=TRIPLES_STORE", id);
    assert_int_equal(call(&a, "GET", path, NULL), 200);
    assert_int_equal(json_object_array_length(json_object_object_get(a.json, "events")), 7);
    assert_null(json_object_object_get(a.json, "next"));
    answer_dispose(&a);
    snprintf(path, sizeof(path), "/events?project=%lld&since=2999-01-01T00:00:00%%2B01:00", id);
    assert_int_equal(call(&a, "GET", path, NULL), 200);
    assert_int_equal(json_object_array_length(json_object_object_get(a.json, "events")), 0);
    answer_dispose(&a);
    snprintf(path, sizeof(path), "/events?project=%lld&since=2000-01-01&limit=1000", id);
    assert_int_equal(call(&a, "GET", path, NULL), 200);
    assert_int_equal(json_object_array_length(json_object_object_get(a.json, "events")), 250);
    answer_dispose(&a);

    call(&a, "GET", "/events?limit=1001", NULL);
    assert_bad_field(&a, "limit");
    answer_dispose(&a);
    call(&a, "GET", "/events?after=-1", NULL);
    assert_bad_field(&a, "after");
    answer_dispose(&a);
    call(&a, "GET", "/events?status=DONE", NULL);
    assert_bad_field(&a, "status");
    answer_dispose(&a);
    call(&a, "GET", "/events?since=last%20week", NULL);
    assert_bad_field(&a, "since");
    answer_dispose(&a);
    call(&a, "GET", "/events?since=2026-02-30", NULL); /* the right shape, no such day */
    assert_bad_field(&a, "since");
    answer_dispose(&a);
    call(&a, "GET", "/events?project=x", NULL);
    assert_bad_field(&a, "project");
    answer_dispose(&a);
}

static void test_el_api__event_shows_body_and_history(void **state)
{
    long long id = new_project("history"), first;
    json_object *history = NULL, *body = NULL;
    char path[256], sha[48], e[24];
    answer a;
    (void)state;

    first = add_events(id, 1);
    to_triples_store(id, first, 1);
    id_text(e, nth(id, first));
    {
        const char *params[1] = {e};
        fg_pg_result *res = NULL;

        assert_int_equal(fg_pg_exec(&res, db,
                                    "SELECT sha FROM event_commit WHERE event_id = $1::bigint", 1,
                                    params),
                         0);
        snprintf(sha, sizeof(sha), "%s", fg_pg_result_text(res, 0, 0));
        fg_pg_result_free(res);
    }
    snprintf(path, sizeof(path), "/projects/%lld/events/%s", id, sha);
    assert_int_equal(call(&a, "GET", path, NULL), 200);
    assert_int_equal(jint(a.json, "id"), nth(id, first));
    assert_string_equal(jstr(a.json, "sha"), sha);
    assert_string_equal(jstr(a.json, "status"), "TRIPLES_STORE");
    assert_true(json_object_object_get_ex(a.json, "body", &body));
    assert_string_equal(jstr(body, "sha"), sha);
    assert_true(json_object_object_get_ex(a.json, "history", &history));
    assert_int_equal(json_object_array_length(history), 5);
    assert_null(jstr(json_object_array_get_idx(history, 0), "from"));
    assert_string_equal(jstr(json_object_array_get_idx(history, 0), "to"), "NEW");
    assert_string_equal(jstr(json_object_array_get_idx(history, 0), "cause"), "CREATION");
    assert_string_equal(jstr(json_object_array_get_idx(history, 4), "from"),
                        "TRANSFORMING_TRIPLES");
    assert_string_equal(jstr(json_object_array_get_idx(history, 4), "to"), "TRIPLES_STORE");
    assert_string_equal(jstr(json_object_array_get_idx(history, 4), "cause"), "ToTriplesStore");
    answer_dispose(&a);

    snprintf(path, sizeof(path), "/projects/%lld/events/%040d", id, 0);
    assert_int_equal(call(&a, "GET", path, NULL), 404);
    answer_dispose(&a);
    snprintf(path, sizeof(path), "/projects/%lld/events/%s", id + 1000000, sha);
    assert_int_equal(call(&a, "GET", path, NULL), 404);
    answer_dispose(&a);
    snprintf(path, sizeof(path), "/projects/%lld/events/XYZ", id);
    call(&a, "GET", path, NULL);
    assert_bad_field(&a, "sha");
    answer_dispose(&a);
}

static void test_el_api__replay_moves_events_and_logs_them(void **state)
{
    long long id = new_project("replay"), first, payload;
    char path[64], p[24], ids[64];
    answer a;
    (void)state;

    first = add_events(id, 12);
    to_triples_store(id, first, 10); /* two stay NEW */
    id_text(p, id);
    /* two stored events whose payload is still kept (as if their batch were not all stored) */
    payload = sql_int("INSERT INTO payload (project_id, data) VALUES ($1::bigint, '\\x00')"
                      " RETURNING id",
                      p, NULL);
    snprintf(ids, sizeof(ids), "{%lld,%lld}", nth(id, first), nth(id, first + 1));
    id_text(path, payload);
    sql_int("WITH u AS (UPDATE event SET payload_id = $1::bigint WHERE id = ANY($2::bigint[])"
            " RETURNING 1) SELECT count(*) FROM u",
            path, ids);

    snprintf(path, sizeof(path), "/projects/%lld/replay", id);
    assert_int_equal(call(&a, "POST", path, "{\"to\":\"TRIPLES_GENERATED\"}"), 200);
    assert_int_equal(jint(a.json, "applied"), 2); /* only those with a payload to upload */
    assert_int_equal(jint(a.json, "skipped"), 10);
    assert_string_equal(jstr(a.json, "to"), "TRIPLES_GENERATED");
    answer_dispose(&a);
    assert_int_equal(log_rows(id, "REPLAY"), 2);

    assert_int_equal(call(&a, "POST", path, "{\"to\":\"NEW\"}"), 200);
    /* the 8 stored and the 2 back in TRIPLES_GENERATED; the 2 NEW ones are there already (a
     * dispatcher may take the replayed ones from here on: only the log is checked) */
    assert_int_equal(jint(a.json, "applied"), 10);
    assert_int_equal(jint(a.json, "skipped"), 2);
    assert_int_equal(log_rows(id, "REPLAY"), 12);
    answer_dispose(&a);

    call(&a, "POST", path, "{\"to\":\"TRIPLES_STORE\"}");
    assert_bad_field(&a, "to");
    answer_dispose(&a);
    call(&a, "POST", path, "{}");
    assert_bad_field(&a, "to");
    answer_dispose(&a);
    call(&a, "POST", path, "{\"to\":\"NEW\",\"from\":\"NEW\"}");
    assert_bad_field(&a, "from");
    answer_dispose(&a);
    assert_int_equal(call(&a, "POST", "/projects/999999999999/replay", "{\"to\":\"NEW\"}"), 404);
    answer_dispose(&a);
}

static void test_el_api__retry_by_ids_and_by_project(void **state)
{
    long long id = new_project("retry"), first;
    char body[256];
    answer a;
    (void)state;

    first = add_events(id, 8);
    fail_generation(id, first, 4);      /* first .. first+3 */
    to_triples_store(id, first + 4, 2); /* stored: not retried */
    fail_transformation(id, first + 6, 2);

    /* two generation failures, one transformation failure, one stored event, one unknown id */
    snprintf(body, sizeof(body), "{\"ids\":[%lld,%lld,%lld,%lld,%lld,%lld]}", nth(id, first),
             nth(id, first + 1), nth(id, first + 6), nth(id, first + 4), nth(id, first + 1),
             999999999999LL);
    assert_int_equal(call(&a, "POST", "/events/retry", body), 200);
    assert_int_equal(jint(a.json, "applied"), 3);
    assert_int_equal(jint(a.json, "skipped"), 1);
    assert_int_equal(jint(a.json, "missing"), 1);
    answer_dispose(&a);
    assert_int_equal(log_rows(id, "RETRY"), 3);

    snprintf(body, sizeof(body),
             "{\"project\":%lld,\"status\":\"GENERATION_NON_RECOVERABLE_FAILURE\"}", id);
    assert_int_equal(call(&a, "POST", "/events/retry", body), 200);
    assert_int_equal(jint(a.json, "applied"), 2); /* first+2, first+3 */
    answer_dispose(&a);
    snprintf(body, sizeof(body), "{\"project\":%lld}", id);
    assert_int_equal(call(&a, "POST", "/events/retry", body), 200);
    assert_int_equal(jint(a.json, "applied"), 1); /* first+7, the last failure */
    answer_dispose(&a);
    assert_int_equal(log_rows(id, "RETRY"), 6);

    snprintf(body, sizeof(body), "{\"ids\":[%lld],\"project\":%lld}", first, id);
    call(&a, "POST", "/events/retry", body);
    assert_bad_field(&a, "ids");
    answer_dispose(&a);
    snprintf(body, sizeof(body), "{\"project\":%lld,\"status\":\"NEW\"}", id);
    call(&a, "POST", "/events/retry", body);
    assert_bad_field(&a, "status");
    answer_dispose(&a);
    call(&a, "POST", "/events/retry", "{\"ids\":[]}");
    assert_bad_field(&a, "ids");
    answer_dispose(&a);
    call(&a, "POST", "/events/retry", "{\"ids\":[\"7\"]}");
    assert_bad_field(&a, "ids");
    answer_dispose(&a);
    assert_int_equal(call(&a, "POST", "/events/retry", "{\"project\":999999999999}"), 404);
    answer_dispose(&a);
}

/* ---- tests: requests for the tick --------------------------------------------------------- */

typedef struct {
    long long project;
    long long before_ms; /* last_synced before the request, ms since the epoch */
} sync_probe;

/* The COMMIT_SYNC time is gone (due now), or a schedule already ran the sync and wrote a newer
 * one. */
static bool sync_requested(void *payload)
{
    sync_probe *s = payload;
    char id[24], before[24];

    id_text(id, s->project);
    id_text(before, s->before_ms);
    return sql_int("SELECT count(*) FROM sync_time WHERE project_id = $1::bigint"
                   " AND category = 'COMMIT_SYNC' AND"
                   " (extract(epoch FROM last_synced) * 1000)::bigint <= $2::bigint",
                   id, before) == 0;
}

static void test_el_api__reprovision_and_sync_are_recorded(void **state)
{
    long long id = new_project("requests");
    request_probe probe = {id, "REPROVISION", "CLEAN_UP", false};
    char path[64], p[24];
    sync_probe s = {id, 0};
    answer a;
    (void)state;

    snprintf(path, sizeof(path), "/projects/%lld/reprovision", id);
    assert_int_equal(call(&a, "POST", path, NULL), 202);
    assert_int_equal(jint(a.json, "project"), id);
    assert_string_equal(jstr(a.json, "requested"), "REPROVISION");
    answer_dispose(&a);
    assert_true(fg_test_wait_until(request_recorded, &probe, 10000));
    assert_int_equal(call(&a, "POST", "/projects/999999999999/reprovision", NULL), 404);
    answer_dispose(&a);

    /* a sync a minute ago: not due by any schedule, so only the request can make it due */
    id_text(p, id);
    sql_int("WITH i AS (INSERT INTO sync_time (project_id, category, last_synced)"
            " VALUES ($1::bigint, 'COMMIT_SYNC', now() - interval '1 minute')"
            " ON CONFLICT (project_id, category) DO UPDATE SET last_synced = EXCLUDED.last_synced"
            " RETURNING 1) SELECT count(*) FROM i",
            p, NULL);
    s.before_ms = sql_int("SELECT (extract(epoch FROM last_synced) * 1000)::bigint FROM sync_time"
                          " WHERE project_id = $1::bigint AND category = 'COMMIT_SYNC'",
                          p, NULL);
    snprintf(path, sizeof(path), "/projects/%lld/sync", id);
    assert_int_equal(call(&a, "POST", path, NULL), 202);
    assert_string_equal(jstr(a.json, "requested"), "COMMIT_SYNC");
    answer_dispose(&a);
    assert_true(fg_test_wait_until(sync_requested, &s, 10000));
    assert_int_equal(call(&a, "POST", "/projects/999999999999/sync", NULL), 404);
    answer_dispose(&a);
}

static void test_el_api__delete_removes_and_records_project_removed(void **state)
{
    long long id = new_project("removed"), first;
    request_probe probe = {id, "PROJECT_REMOVED", "PROJECT_REMOVED", false};
    char path[64], p[24];
    answer a;
    (void)state;

    first = add_events(id, 5);
    to_triples_store(id, first, 5);
    snprintf(path, sizeof(path), "/projects/%lld", id);
    assert_int_equal(call(&a, "DELETE", path, NULL), 204);
    answer_dispose(&a);
    assert_int_equal(call(&a, "GET", path, NULL), 404);
    answer_dispose(&a);
    assert_int_equal(call(&a, "DELETE", path, NULL), 404);
    answer_dispose(&a);
    id_text(p, id);
    assert_int_equal(sql_int("SELECT count(*) FROM event WHERE project_id = $1::bigint", p, NULL),
                     0);
    /* the history stays, and says the events are gone */
    assert_int_equal(log_rows(id, "PROJECT_REMOVED"), 5);
    assert_int_equal(log_rows(id, "CREATION"), 5);
    assert_true(fg_test_wait_until(request_recorded, &probe, 10000));
}

/* ---- tests: export ------------------------------------------------------------------------ */

static void test_el_api__export_streams_json_lines(void **state)
{
    long long id = new_project("export"), first, lines = 0, ours = 0, last = 0;
    char since[64], path[128];
    fg_pg_result *res = NULL;
    const char *p, *nl;
    answer a;
    (void)state;

    assert_int_equal(fg_pg_exec(&res, db,
                                "SELECT to_char(now() AT TIME ZONE 'UTC' - interval '1 second',"
                                " 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
                                0, NULL),
                     0);
    snprintf(since, sizeof(since), "%s", fg_pg_result_text(res, 0, 0));
    fg_pg_result_free(res);
    first = add_events(id, 450); /* more than two pages of the export */
    snprintf(path, sizeof(path), "/events/export?since=%s", since);
    assert_int_equal(call(&a, "GET", path, NULL), 200);
    assert_string_equal(a.content_type, "application/x-ndjson");
    for (p = a.body.ptr; *p != '\0'; p = nl + 1) {
        json_object *e, *body = NULL;

        nl = strchr(p, '\n');
        assert_non_null(nl); /* every line ends */
        e = json_tokener_parse(p);
        assert_non_null(e);
        lines++;
        if (jint(json_object_object_get(e, "project"), "id") == id) {
            assert_true(jint(e, "id") > last);
            last = jint(e, "id");
            assert_true(json_object_object_get_ex(e, "body", &body));
            assert_string_equal(jstr(body, "sha"), jstr(e, "sha"));
            ours++;
        }
        json_object_put(e);
    }
    assert_int_equal(ours, 450);
    assert_int_equal(last, nth(id, first + 449));
    answer_dispose(&a);

    call(&a, "GET", "/events/export?since=tomorrow", NULL);
    assert_bad_field(&a, "since");
    answer_dispose(&a);
    assert_int_equal(call(&a, "GET", "/events/export?since=2999-01-01", NULL), 200);
    assert_int_equal(a.body.len, 0);
    answer_dispose(&a);
    (void)lines;
}

/* ---- tests: rebuild ----------------------------------------------------------------------- */

static void test_el_api__rebuild_reports(void **state)
{
    answer a;
    (void)state;

    assert_int_equal(call(&a, "POST", "/replay/rebuild", "{\"apply\":false}"), 200);
    assert_false(jbool(a.json, "applied"));
    assert_true(jint(a.json, "events") > 0);
    assert_true(json_object_is_type(json_object_object_get(a.json, "diffs"), json_type_array));
    answer_dispose(&a);
    call(&a, "POST", "/replay/rebuild", "{\"apply\":\"yes\"}");
    assert_bad_field(&a, "apply");
    answer_dispose(&a);
}

/* ---- tests: fgctl ------------------------------------------------------------------------- */

static json_object *parse_output(const fg_buf *out)
{
    json_object *o = json_tokener_parse(out->ptr);

    if (o == NULL)
        fail_msg("fgctl printed no JSON: %s", out->ptr);
    return o;
}

static void test_el_api__fgctl_project_commands(void **state)
{
    long long id, first;
    char id_arg[24], url[256], p[24];
    json_object *o;
    bool found = false;
    fg_buf out;
    (void)state;

    fg_buf_init(&out, 64u << 20);
    snprintf(url, sizeof(url), "/tmp/%s/fgctl-repo.git", run_tag);
    {
        const char *args[] = {"project", "add", "--forge", "git", "--url", url, "--json", NULL};
        assert_int_equal(fgctl(&out, args), 0);
        o = parse_output(&out);
        id = jint(o, "id");
        assert_true(strcmp(jstr(o, "path"), run_tag) > 0); /* "<tag>/fgctl-repo" */
        json_object_put(o);
        fg_buf_clear(&out);
        assert_int_equal(fgctl(&out, args), 0); /* again: the same project */
        o = parse_output(&out);
        assert_int_equal(jint(o, "id"), id);
        json_object_put(o);
        fg_buf_clear(&out);
    }
    {
        const char *args[] = {"--json", "project", "list", NULL};
        assert_int_equal(fgctl(&out, args), 0);
        o = parse_output(&out);
        assert_true(json_object_is_type(o, json_type_array));
        for (size_t i = 0; i < json_object_array_length(o); i++)
            found = found || jint(json_object_array_get_idx(o, i), "id") == id;
        assert_true(found);
        json_object_put(o);
        fg_buf_clear(&out);
    }
    id_text(id_arg, id);
    {
        const char *args[] = {"project", "status", id_arg, "--json", NULL};
        assert_int_equal(fgctl(&out, args), 0);
        o = parse_output(&out);
        assert_int_equal(jint(o, "id"), id);
        assert_false(jbool(o, "done"));
        json_object_put(o);
        fg_buf_clear(&out);
    }
    {
        const char *args[] = {"project", "status", id_arg, "--wait", "--timeout", "1", NULL};
        assert_int_not_equal(fgctl(&out, args), 0); /* not done: the timeout is a failure */
        fg_buf_clear(&out);
    }
    first = add_events(id, 3);
    to_triples_store(id, first, 3);
    id_text(p, id);
    /* as a completed commit sync leaves it (the one fgctl's add asked for included) */
    sql_int("WITH u AS (UPDATE project SET first_synced_at = now(), sync_answered_at = now()"
            " WHERE id = $1::bigint RETURNING 1) SELECT count(*) FROM u",
            p, NULL);
    {
        const char *args[] = {"project",   "status", id_arg,   "--wait",
                              "--timeout", "30",     "--json", NULL};
        assert_int_equal(fgctl(&out, args), 0);
        o = parse_output(&out);
        assert_true(jbool(o, "done"));
        assert_int_equal(jint(o, "progress"), 100);
        json_object_put(o);
        fg_buf_clear(&out);
    }
    {
        const char *args[] = {"project", "status", id_arg, "--wait", NULL}; /* no terminal */
        assert_int_equal(fgctl(&out, args), 0);
        assert_non_null(strstr(out.ptr, "done"));
        fg_buf_clear(&out);
    }
    {
        const char *args[] = {"events", "list", "--project", id_arg, "--all", "--json", NULL};
        assert_int_equal(fgctl(&out, args), 0);
        o = parse_output(&out);
        assert_int_equal(json_object_array_length(json_object_object_get(o, "events")), 3);
        json_object_put(o);
        fg_buf_clear(&out);
    }
    {
        const char *args[] = {"replay", "events", "--project", id_arg,
                              "--to",   "NEW",    "--json",    NULL};
        assert_int_equal(fgctl(&out, args), 0);
        o = parse_output(&out);
        assert_int_equal(jint(o, "applied"), 3);
        json_object_put(o);
        fg_buf_clear(&out);
    }
    {
        const char *args[] = {"reprovision", id_arg, NULL};
        assert_int_equal(fgctl(&out, args), 0);
        fg_buf_clear(&out);
    }
    {
        const char *args[] = {"project", "status", "999999999999", NULL};
        assert_int_equal(fgctl(&out, args), 1);
        fg_buf_clear(&out);
    }
    {
        const char *args[] = {"events", "retry", NULL};
        assert_int_equal(fgctl(&out, args), 2);
    }
    fg_buf_dispose(&out);
}

/* fgctl project add and remove go through the webhook's activation: the token given in a file
 * reaches token-repository, the project event-log, and removal takes both away again. */
static void test_el_api__fgctl_add_and_remove_go_through_the_webhook(void **state)
{
    const char *event_log = base_url;
    char url[256], token_file[256], token[96], id_arg[24], path[64];
    json_object *o;
    answer a;
    FILE *f;
    fg_buf out;
    long long id;
    (void)state;

    fg_test_stack_env("FG_WEBHOOK_URL");
    fg_buf_init(&out, 1u << 20);
    snprintf(url, sizeof(url), "/tmp/%s/activated.git", run_tag);
    snprintf(token_file, sizeof(token_file), "/tmp/%s-token", run_tag);
    snprintf(token, sizeof(token), "tok-%s-fgctl", run_tag);
    {
        const char *args[] = {"project", "add", "--forge",      "git",
                              "--url",   url,   "--token-file", "/nonexistent/token",
                              NULL};
        assert_int_equal(fgctl(&out, args), 2); /* an unreadable token file changes nothing */
        fg_buf_clear(&out);
    }
    assert_non_null(f = fopen(token_file, "w"));
    fprintf(f, "%s\n", token);
    assert_int_equal(fclose(f), 0);
    {
        const char *args[] = {"project", "add",          "--forge",  "git",    "--url",
                              url,       "--token-file", token_file, "--json", NULL};
        assert_int_equal(fgctl(&out, args), 0);
        o = parse_output(&out);
        id = jint(o, "id");
        assert_null(strstr(out.ptr, token)); /* the answer never carries the token */
        json_object_put(o);
        fg_buf_clear(&out);
    }
    assert_int_equal(unlink(token_file), 0);
    snprintf(path, sizeof(path), "/projects/%lld", id);
    assert_int_equal(call(&a, "GET", path, NULL), 200); /* event-log knows it */
    answer_dispose(&a);
    snprintf(path, sizeof(path), "/projects/%lld/tokens", id);
    base_url = fg_test_stack_env("FG_TOKEN_REPOSITORY_URL");
    assert_int_equal(call(&a, "GET", path, NULL), 200);
    assert_string_equal(jstr(a.json, "token"), token);
    answer_dispose(&a);
    base_url = event_log;
    id_text(id_arg, id);
    {
        const char *args[] = {"project", "remove", id_arg, "--yes", NULL};
        assert_int_equal(fgctl(&out, args), 0);
        fg_buf_clear(&out);
    }
    base_url = fg_test_stack_env("FG_TOKEN_REPOSITORY_URL");
    assert_int_equal(call(&a, "GET", path, NULL), 404); /* the token went with it */
    answer_dispose(&a);
    base_url = event_log;
    snprintf(path, sizeof(path), "/projects/%lld", id);
    assert_int_equal(call(&a, "GET", path, NULL), 404);
    answer_dispose(&a);
    fg_buf_dispose(&out);
}

/* ---- main --------------------------------------------------------------------------------- */

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_el_api__register_is_idempotent),
        cmocka_unit_test(test_el_api__register_names_the_bad_field),
        cmocka_unit_test(test_el_api__requires_the_service_key),
        cmocka_unit_test(test_el_api__fresh_project_is_not_done),
        cmocka_unit_test(test_el_api__status_counts_and_done),
        cmocka_unit_test(test_el_api__status_counts_every_status),
        cmocka_unit_test(test_el_api__events_per_status_gauge),
        cmocka_unit_test(test_el_api__events_pages_with_a_cursor),
        cmocka_unit_test(test_el_api__event_shows_body_and_history),
        cmocka_unit_test(test_el_api__replay_moves_events_and_logs_them),
        cmocka_unit_test(test_el_api__retry_by_ids_and_by_project),
        cmocka_unit_test(test_el_api__reprovision_and_sync_are_recorded),
        cmocka_unit_test(test_el_api__delete_removes_and_records_project_removed),
        cmocka_unit_test(test_el_api__export_streams_json_lines),
        cmocka_unit_test(test_el_api__rebuild_reports),
        cmocka_unit_test(test_el_api__fgctl_project_commands),
        cmocka_unit_test(test_el_api__fgctl_add_and_remove_go_through_the_webhook),
    };
    fg_http_client_options o;
    int rc;

    base_url = fg_test_stack_env("FG_EVENT_LOG_URL");
    fg_test_stack_env("FG_SERVICE_KEY");
    snprintf(run_tag, sizeof(run_tag), "e3t%dx%lld", (int)getpid(), fg_test_now_ms());
    forge_id_base = (long long)time(NULL) * 1000 + getpid() % 1000;
    fg_http_client_options_init(&o);
    o.max_attempts = 1;
    o.max_response_bytes = 64u << 20;
    if (fg_http_client_new(&http, &o) < 0 ||
        fg_pg_connect(&db, fg_test_stack_env("FG_EVENT_LOG_DB_URL"), 10000) < 0 || bus_open() < 0) {
        fprintf(stderr, "setup: %s\n", fg_error_last());
        return 1;
    }
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    fg_amqp_free(bus);
    fg_pg_free(db);
    fg_http_client_free(http);
    return rc;
}
