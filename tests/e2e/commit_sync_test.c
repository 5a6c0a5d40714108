/*
 * Commit sync on the whole running stack (deploy/local/stack.sh: PostgreSQL, RabbitMQ, Virtuoso
 * and the five services), proven on what the real event-log holds (issue 5's Done-when). Plain
 * git repositories made here with git are registered through event-log's POST /projects; syncs
 * are asked for through POST /projects/{id}/sync, and event-log's own schedules send COMMIT_SYNC
 * and GLOBAL_COMMIT_SYNC; the assertions read GET /projects/{id}/status, GET /events (keyset
 * pages), GET /projects/{id}/events/{sha} (body and status history) and, where the API cannot
 * say (a deleted event's history, making a global sync due now, losing an event), event-log's
 * database. The triples generator runs, so events move on from NEW at once: "created as NEW" is
 * read from each event's history. The tests run in order and share the 1,000-commit project.
 *
 * The only stand-in is a git smart-HTTP endpoint that refuses every credential (it plays a
 * forge). The stack's commit-sync log ($FG_STACK_DIR/logs/commit-sync.log, read from the start
 * of this run) shows what each sync did and when.
 */
#include "test_support.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cs_git.h"
#include "cs_stack.h"
#include "fg/base64.h"
#include "fg/http_server.h"
#include "fg/pg.h"

#define WAIT_MS     180000
#define EVENTS_PAGE 250 /* fewer than a project's events: the keyset pagination is exercised */
#define TOKEN       "tok-5d1c-SECRET-never-logged"
#define SMALL       4 /* commits of the repository that appears late */
#define STATUS_MAX  48

/* ---- what event-log holds ------------------------------------------------------------------ */

typedef struct {
    long long id;
    char sha[CS_GIT_SHA_LEN + 1];
    char status[STATUS_MAX];
} el_event;

typedef struct {
    el_event *v;
    size_t n;
} el_events;

static void events_dispose(el_events *e)
{
    free(e->v);
    e->v = NULL;
    e->n = 0;
}

static void events_add(el_events *e, json_object *item)
{
    json_object *v;

    e->v = realloc(e->v, (e->n + 1) * sizeof(*e->v));
    assert_non_null(e->v);
    assert_true(json_object_object_get_ex(item, "id", &v));
    e->v[e->n].id = json_object_get_int64(v);
    snprintf(e->v[e->n].sha, sizeof(e->v[e->n].sha), "%s", cs_git_body_string(item, "sha", NULL));
    snprintf(e->v[e->n].status, sizeof(e->v[e->n].status), "%s",
             cs_git_body_string(item, "status", NULL));
    e->n++;
}

/* Every event of the project, through GET /events' keyset pages; ids must ascend. */
static void events_list(el_events *out, long long project)
{
    char path[512], cursor[64] = "";
    fg_buf page;
    size_t pages = 0;

    fg_buf_init(&page, 64u << 20);
    do {
        json_object *root, *items, *next;
        long status;

        snprintf(path, sizeof(path), "/events?project=%lld&limit=%d%s%s", project, EVENTS_PAGE,
                 cursor[0] ? "&after=" : "", cursor);
        status = cs_stack_call(&page, "GET", fg_test_stack_env("FG_EVENT_LOG_URL"), path, NULL);
        if (status != 200)
            fail_msg("GET %s: %ld %s", path, status, page.ptr);
        assert_non_null(root = json_tokener_parse(page.ptr));
        assert_true(json_object_object_get_ex(root, "events", &items));
        assert_true(json_object_array_length(items) <= EVENTS_PAGE);
        for (size_t i = 0; i < json_object_array_length(items); i++) {
            events_add(out, json_object_array_get_idx(items, i));
            if (out->n > 1)
                assert_true(out->v[out->n - 1].id > out->v[out->n - 2].id);
        }
        assert_true(json_object_object_get_ex(root, "next", &next));
        snprintf(cursor, sizeof(cursor), "%s", next != NULL ? json_object_get_string(next) : "");
        json_object_put(root);
        assert_true(++pages < 10000);
    } while (cursor[0] != '\0');
    fg_buf_dispose(&page);
}

static const el_event *events_find(const el_events *e, const char *sha)
{
    for (size_t i = 0; i < e->n; i++)
        if (strcmp(e->v[i].sha, sha) == 0)
            return &e->v[i];
    return NULL;
}

/* GET /projects/{id}/events/{sha}: the event with body and history, or NULL after a 404. */
static json_object *event_get(long long project, const char *sha)
{
    char path[256];
    fg_buf out;
    json_object *root = NULL;
    long status;

    fg_buf_init(&out, 16u << 20);
    snprintf(path, sizeof(path), "/projects/%lld/events/%s", project, sha);
    status = cs_stack_call(&out, "GET", fg_test_stack_env("FG_EVENT_LOG_URL"), path, NULL);
    if (status == 200)
        assert_non_null(root = json_tokener_parse(out.ptr));
    else if (status != 404)
        fail_msg("GET %s: %ld %s", path, status, out.ptr);
    fg_buf_dispose(&out);
    return root;
}

static bool is_null_or(json_object *o, const char *key, const char *want)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v))
        return false;
    if (want == NULL)
        return v == NULL;
    return v != NULL && strcmp(json_object_get_string(v), want) == 0;
}

/* The event was created as NEW by a CREATION, once: the first history row says so and no other
 * row is a creation. */
static void assert_created_as_new(json_object *event, const char *sha)
{
    json_object *history;
    size_t creations = 0;

    assert_true(json_object_object_get_ex(event, "history", &history));
    if (json_object_array_length(history) == 0)
        fail_msg("event %s has no history", sha);
    for (size_t i = 0; i < json_object_array_length(history); i++) {
        json_object *row = json_object_array_get_idx(history, i);

        if (i == 0 && (!is_null_or(row, "from", NULL) || !is_null_or(row, "to", "NEW") ||
                       !is_null_or(row, "cause", "CREATION")))
            fail_msg("event %s: the first history row is not (null -> NEW, CREATION): %s", sha,
                     json_object_to_json_string(row));
        creations += is_null_or(row, "cause", "CREATION");
    }
    assert_int_equal(creations, 1);
}

typedef struct {
    long long total;
    bool synced, done;
    long long failed;
} el_status;

static el_status status_of(long long project)
{
    char path[128];
    fg_buf out;
    json_object *root, *v;
    el_status s = {-1, false, false, -1};

    fg_buf_init(&out, 1 << 20);
    snprintf(path, sizeof(path), "/projects/%lld/status", project);
    if (cs_stack_call(&out, "GET", fg_test_stack_env("FG_EVENT_LOG_URL"), path, NULL) == 200 &&
        (root = json_tokener_parse(out.ptr)) != NULL) {
        if (json_object_object_get_ex(root, "total", &v))
            s.total = json_object_get_int64(v);
        if (json_object_object_get_ex(root, "synced", &v))
            s.synced = json_object_get_boolean(v);
        if (json_object_object_get_ex(root, "done", &v))
            s.done = json_object_get_boolean(v);
        if (json_object_object_get_ex(root, "failed", &v))
            s.failed = json_object_get_int64(v);
        json_object_put(root);
    }
    fg_buf_dispose(&out);
    return s;
}

typedef struct {
    long long project, total;
    bool done;
} status_probe;

static bool status_reached(void *payload)
{
    status_probe *p = payload;
    el_status s = status_of(p->project);

    return s.synced && s.total == p->total && (!p->done || s.done);
}

/* Waits until event-log counts `total` events (and, with done, all of them final). */
static void wait_status(long long project, long long total, bool done)
{
    status_probe p = {project, total, done};

    if (!fg_test_wait_until(status_reached, &p, WAIT_MS)) {
        el_status s = status_of(project);
        fail_msg("project %lld: total %lld synced %d done %d; waited for total %lld%s", project,
                 s.total, s.synced, s.done, total, done ? " and done" : "");
    }
}

/* ---- the shared project -------------------------------------------------------------------- */

typedef struct {
    char sha[CS_GIT_SHA_LEN + 1];
    json_object *body; /* as event-log answered it (owned) */
} body_entry;

static struct {
    long long id;
    char dir[600];
    bool ok; /* the tests that build on it may run */
    body_entry *bodies;
    size_t nbodies;
    size_t syncs, globals; /* COMMIT_SYNC / GLOBAL_COMMIT_SYNC lines "done" seen */
} p1;

static char tmp_root[] = "/tmp/fg-commit-sync-e2e-XXXXXX";
static fg_pg_conn *db;
static cs_log cs_lines;       /* the stack's commit-sync, since set-up */
static cs_log other_lines[3]; /* event-log, token-repository, webhook */

static json_object *cached_body(const char *sha, void *payload)
{
    (void)payload;
    for (size_t i = 0; i < p1.nbodies; i++)
        if (strcmp(p1.bodies[i].sha, sha) == 0)
            return p1.bodies[i].body;
    return NULL;
}

/* Reads the event (body and history) of each sha event-log has and git does not know from the
 * cache yet, checks it was created as NEW, and keeps its body. */
static void fetch_new_bodies(const el_events *events)
{
    for (size_t i = 0; i < events->n; i++) {
        json_object *event, *body;

        if (cached_body(events->v[i].sha, NULL) != NULL)
            continue;
        event = event_get(p1.id, events->v[i].sha);
        if (event == NULL)
            fail_msg("GET event %s: 404 although GET /events listed it", events->v[i].sha);
        assert_created_as_new(event, events->v[i].sha);
        assert_true(json_object_object_get_ex(event, "body", &body));
        assert_non_null(body);
        p1.bodies = realloc(p1.bodies, (p1.nbodies + 1) * sizeof(*p1.bodies));
        assert_non_null(p1.bodies);
        snprintf(p1.bodies[p1.nbodies].sha, sizeof(p1.bodies[p1.nbodies].sha), "%s",
                 events->v[i].sha);
        p1.bodies[p1.nbodies++].body = json_object_get(body);
        json_object_put(event);
    }
}

/* Event-log holds exactly the commits git lists for the repository, each once. */
static void assert_events_equal_git(const el_events *events, const char *dir)
{
    cs_shas git = {0}, seen = {0};

    cs_git_rev_list(&git, dir, NULL);
    if (events->n != git.n)
        fail_msg("event-log has %zu events, git lists %zu commits", events->n, git.n);
    for (size_t i = 0; i < events->n; i++) {
        if (!cs_shas_has(&git, events->v[i].sha))
            fail_msg("event %s is not a commit git lists", events->v[i].sha);
        assert_false(cs_shas_has(&seen, events->v[i].sha));
        cs_shas_add(&seen, events->v[i].sha);
    }
    cs_shas_dispose(&git);
    cs_shas_dispose(&seen);
}

static void needle_of(char *out, size_t cap, const char *kind, long long project)
{
    /* the quote keeps COMMIT_SYNC from matching GLOBAL_COMMIT_SYNC */
    snprintf(out, cap, "\"msg\":\"%s of project %lld done", kind, project);
}

/* Waits for the nth "done" line of a sync of the project in the stack's commit-sync log, and
 * returns it in line. */
static void wait_done_line_within(char *line, size_t cap, const char *kind, long long project,
                                  size_t n, int timeout_ms)
{
    char needle[128];

    needle_of(needle, sizeof(needle), kind, project);
    if (!cs_log_wait(&cs_lines, needle, n, timeout_ms))
        fail_msg("no line %zu with '%s' in %s", n, needle, cs_lines.path);
    cs_log_line(line, cap, &cs_lines, needle, n);
}

static void wait_done_line(char *line, size_t cap, const char *kind, long long project, size_t n)
{
    wait_done_line_within(line, cap, kind, project, n, WAIT_MS);
}

static void assert_contains(const char *text, const char *needle)
{
    if (strstr(text, needle) == NULL)
        fail_msg("'%s' not in: %s", needle, text);
}

/* ---- event-log's database (where its API cannot say) --------------------------------------- */

static void db_exec(fg_pg_result **out, const char *sql, size_t n, const char *const *params)
{
    if (fg_pg_exec(out, db, sql, n, params) < 0)
        fail_msg("%s: %s", sql, fg_error_last());
}

/* The status log of an event id, "from>to:cause" per row ("-" for null), oldest first. */
static void status_log_of(fg_buf *out, long long event_id)
{
    char id[32];
    const char *params[1] = {id};
    fg_pg_result *res = NULL;

    snprintf(id, sizeof(id), "%lld", event_id);
    db_exec(&res,
            "SELECT coalesce(from_status::text, '-'), coalesce(to_status::text, '-'), cause"
            " FROM status_log WHERE event_id = $1::bigint ORDER BY id",
            1, params);
    fg_buf_clear(out);
    for (size_t r = 0; r < fg_pg_result_rows(res); r++)
        assert_int_equal(fg_buf_printf(out, "%s>%s:%s ", fg_pg_result_text(res, r, 0),
                                       fg_pg_result_text(res, r, 1), fg_pg_result_text(res, r, 2)),
                         0);
    fg_pg_result_free(res);
}

/* ---- a git smart-HTTP endpoint that refuses every credential (it plays a forge) ------------ */

static struct event_base *git_base;
static fg_http_server *git_server;
static pthread_t git_thread;
static char git_url[128];
static pthread_mutex_t git_lock = PTHREAD_MUTEX_INITIALIZER;
static char git_auth_seen[512];
static char git_path_seen[1024];

static void on_git_refs(fg_http_request *req, void *payload)
{
    const char *auth = fg_http_request_header(req, "Authorization");

    (void)payload;
    pthread_mutex_lock(&git_lock);
    if (auth != NULL)
        snprintf(git_auth_seen, sizeof(git_auth_seen), "%s", auth);
    snprintf(git_path_seen, sizeof(git_path_seen), "%s", fg_http_request_path(req));
    pthread_mutex_unlock(&git_lock);
    if (fg_http_response_add_header(req, "WWW-Authenticate", "Basic realm=\"git\"") < 0)
        fg_http_respond_text(req, 500, NULL, "header\n", 7);
    else
        fg_http_respond_text(req, 401, NULL, "denied\n", 7);
}

static void *git_loop(void *arg)
{
    (void)arg;
    event_base_dispatch(git_base);
    return NULL;
}

static void git_server_start(void)
{
    fg_http_server_options o;

    assert_non_null(git_base = event_base_new());
    fg_http_server_options_init(&o);
    o.port = 0;
    assert_int_equal(fg_http_server_new(&git_server, git_base, &o), 0);
    assert_int_equal(
        fg_http_server_route(git_server, FG_HTTP_GET, "/git/{name}/info/refs", on_git_refs, NULL),
        0);
    snprintf(git_url, sizeof(git_url), "http://127.0.0.1:%u",
             (unsigned)fg_http_server_port(git_server));
    assert_int_equal(pthread_create(&git_thread, NULL, git_loop, NULL), 0);
}

static void git_server_stop(void)
{
    if (git_base == NULL)
        return;
    assert_int_equal(event_base_loopexit(git_base, NULL), 0);
    assert_int_equal(pthread_join(git_thread, NULL), 0);
    fg_http_server_free(git_server);
    event_base_free(git_base);
    git_base = NULL;
}

static bool git_auth_arrived(void *payload)
{
    bool seen;

    (void)payload;
    pthread_mutex_lock(&git_lock);
    seen = git_auth_seen[0] != '\0';
    pthread_mutex_unlock(&git_lock);
    return seen;
}

/* ---- a second commit-sync process, from this tree's build --------------------------------- */

typedef struct {
    fg_test_process proc;
    char base[64];
    char log[700];
} service_proc;

static service_proc second;
static bool stack_prefetch_changed;

/* fg-commit-sync with the stack's environment (mirror folder, event-log, token-repository,
 * broker), its own HTTP port and log, taking one message at a time. */
static void proc_start(service_proc *p)
{
    char path[1024];
    int port = fg_test_free_port();

    memset(p, 0, sizeof(*p));
    snprintf(p->base, sizeof(p->base), "http://127.0.0.1:%d", port);
    snprintf(p->log, sizeof(p->log), "%s/commit-sync-2.log", tmp_root);
    snprintf(path, sizeof(path), "%s/services/commit-sync/fg-commit-sync", FG_BINARY_DIR);
    p->proc.pid = fork();
    assert_true(p->proc.pid >= 0);
    if (p->proc.pid == 0) {
        char port_text[16];
        int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        /* a test that dies must not leave a consumer of fg.commit-sync behind */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        dup2(fd, 1);
        dup2(fd, 2);
        snprintf(port_text, sizeof(port_text), "%d", port);
        setenv("FG_HTTP_PORT", port_text, 1);
        setenv("FG_AMQP_PREFETCH", "1", 1);
        setenv("FG_LOG_LEVEL", "info", 1);
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    if (!cs_stack_wait_ready(p->base, 30000))
        fail_msg("the second commit-sync did not become ready (log: %s)", p->log);
}

static void proc_stop(service_proc *p)
{
    if (p->proc.pid <= 0 || p->proc.exited)
        return;
    assert_int_equal(kill(p->proc.pid, SIGTERM), 0);
    assert_true(fg_test_wait_until(fg_test_process_exited, &p->proc, 30000));
    assert_true(WIFEXITED(p->proc.status));
    assert_int_equal(WEXITSTATUS(p->proc.status), 0);
}

/* Restarts the stack's commit-sync with (prefetch_one) or without FG_AMQP_PREFETCH=1. */
static int restart_stack_commit_sync(bool prefetch_one)
{
    /* stack.sh starts the services of FG_BUILD_DIR (default <repo>/build): keep this build's
     * unless the caller named the stack's */
    if (setenv("FG_BUILD_DIR", FG_BINARY_DIR, 0) < 0)
        return -1;
    if ((prefetch_one ? setenv("FG_AMQP_PREFETCH", "1", 1) : unsetenv("FG_AMQP_PREFETCH")) < 0)
        return -1;
    stack_prefetch_changed = prefetch_one;
    return fg_test_stack("restart commit-sync");
}

/* ---- tests --------------------------------------------------------------------------------- */

static struct {
    long long unreachable, missing, refused;
    char missing_dir[600];
} failing;

static void assert_not_synced(long long project)
{
    el_status s = status_of(project);

    assert_int_equal(s.total, 0);
    assert_false(s.synced);
    assert_false(s.done);
}

/* The failure's two lines: commit-sync's summary and the runtime's retry (not a park). */
static void wait_failure(long long project, const char *shown_url, const char *detail)
{
    char failed[700], retry[700];

    snprintf(failed, sizeof(failed),
             "\"msg\":\"COMMIT_SYNC of project %lld failed: project %lld: cannot fetch %s: %s",
             project, project, shown_url, detail);
    snprintf(retry, sizeof(retry), "\"msg\":\"will retry: project %lld: cannot fetch %s: %s",
             project, shown_url, detail);
    if (!cs_log_wait(&cs_lines, failed, 1, 60000))
        fail_msg("no line with '%s' in %s", failed, cs_lines.path);
    assert_true(cs_log_wait(&cs_lines, retry, 1, 10000));
}

static void test_commit_sync__unreachable_remote_is_a_recoverable_failure(void **state)
{
    char url[256], path[64], parked[128];
    (void)state;

    /* a port nobody listens on */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/group/nothing.git", fg_test_free_port());
    snprintf(path, sizeof(path), "cs-e2e/unreachable-%d", (int)getpid());
    failing.unreachable = cs_stack_register(path, url);
    /* a local path that does not exist yet: it appears after the first failure */
    snprintf(failing.missing_dir, sizeof(failing.missing_dir), "%s/appears-later", tmp_root);
    snprintf(path, sizeof(path), "cs-e2e/appears-later-%d", (int)getpid());
    failing.missing = cs_stack_register(path, failing.missing_dir);

    wait_failure(failing.unreachable, url, "");
    wait_failure(failing.missing, failing.missing_dir, "No such file or directory");
    /* retried later, not parked; event-log holds nothing and does not call it synced */
    snprintf(parked, sizeof(parked), "\"msg\":\"parked: project %lld:", failing.unreachable);
    assert_int_equal(cs_log_count(&cs_lines, parked), 0);
    assert_not_synced(failing.unreachable);
    assert_not_synced(failing.missing);
    /* a failure, not a crash */
    assert_int_equal(
        cs_stack_call(NULL, "GET", fg_test_stack_env("FG_COMMIT_SYNC_URL"), "/ready", NULL), 200);
    /* the remote appears: the retry (FG_AMQP_RETRY_DELAY_MS later) syncs it; checked last */
    cs_git_make_small(failing.missing_dir, SMALL);
    /* the unreachable one is given up: its retries find no project and end */
    cs_stack_remove(failing.unreachable);
}

static void test_commit_sync__refused_token_is_a_recoverable_failure_without_the_token(void **state)
{
    char url[256], path[128], detail[128], expected[256];
    fg_buf decoded;
    long status;
    (void)state;

    snprintf(url, sizeof(url), "%s/git/private.git", git_url);
    snprintf(path, sizeof(path), "cs-e2e/private-%d", (int)getpid());
    failing.refused = cs_stack_register(path, url);
    /* the token goes to the real token-repository */
    snprintf(path, sizeof(path), "/projects/%lld/tokens", failing.refused);
    status = cs_stack_call(NULL, "PUT", fg_test_stack_env("FG_TOKEN_REPOSITORY_URL"), path,
                           "{\"token\":\"" TOKEN "\"}");
    assert_true(status == 201 || status == 200);

    /* event-log's first COMMIT_SYNC may come before the PUT (the remote then asks for a token
     * commit-sync does not have); the retry brings the token, which the remote refuses */
    assert_true(fg_test_wait_until(git_auth_arrived, NULL, 60000));
    snprintf(detail, sizeof(detail), "the remote refused the project's token");
    wait_failure(failing.refused, url, detail);
    /* the token travelled as the password of basic auth, never in the URL */
    pthread_mutex_lock(&git_lock);
    assert_true(strncmp(git_auth_seen, "Basic ", 6) == 0);
    fg_buf_init(&decoded, 1024);
    assert_int_equal(fg_base64_decode(&decoded, git_auth_seen + 6, strlen(git_auth_seen + 6)), 0);
    snprintf(expected, sizeof(expected), "git:%s", TOKEN);
    assert_string_equal(decoded.ptr, expected);
    fg_buf_dispose(&decoded);
    assert_null(strstr(git_path_seen, TOKEN));
    pthread_mutex_unlock(&git_lock);
    assert_not_synced(failing.refused);
    assert_int_equal(
        cs_stack_call(NULL, "GET", fg_test_stack_env("FG_COMMIT_SYNC_URL"), "/ready", NULL), 200);
    /* no log line of the stack holds the token (token-repository hands it out, unlogged) */
    {
        char *text = cs_log_text(&cs_lines);
        assert_null(strstr(text, TOKEN));
        free(text);
        for (size_t i = 0; i < 3; i++) {
            text = cs_log_text(&other_lines[i]);
            assert_null(strstr(text, TOKEN));
            free(text);
        }
    }
    cs_stack_remove(failing.refused);
}

static void test_commit_sync__new_repository_of_1000_commits_gives_1000_new_events(void **state)
{
    char path[64], line[1024];
    long long t0 = fg_test_now_ms(), t_events, t_done;
    el_events events = {0};
    (void)state;

    snprintf(p1.dir, sizeof(p1.dir), "%s/history", tmp_root);
    cs_git_make_history(p1.dir);
    snprintf(path, sizeof(path), "cs-e2e/history-%d", (int)getpid());
    t0 = fg_test_now_ms();
    p1.id = cs_stack_register(path, p1.dir); /* event-log's schedule sends COMMIT_SYNC */
    wait_status(p1.id, CS_GIT_HISTORY_COMMITS, false);
    t_events = fg_test_now_ms() - t0;
    wait_done_line(line, sizeof(line), "COMMIT_SYNC", p1.id, ++p1.syncs);
    assert_contains(line, "synced (1000 new, 0 gone)");
    /* event-log's first GLOBAL_COMMIT_SYNC follows the first sync: count and latest agree */
    wait_done_line(line, sizeof(line), "GLOBAL_COMMIT_SYNC", p1.id, ++p1.globals);
    assert_contains(line, "in sync (0 new, 0 gone)");

    events_list(&events, p1.id);
    assert_int_equal(events.n, CS_GIT_HISTORY_COMMITS);
    assert_events_equal_git(&events, p1.dir);
    fetch_new_bodies(&events); /* each one created as NEW, once */
    assert_int_equal(p1.nbodies, CS_GIT_HISTORY_COMMITS);
    assert_int_equal(cs_git_compare_log(p1.dir, cached_body, NULL), CS_GIT_HISTORY_COMMITS);
    wait_status(p1.id, CS_GIT_HISTORY_COMMITS, true);
    t_done = fg_test_now_ms() - t0;
    assert_int_equal(status_of(p1.id).failed, 0);
    printf("commit_sync_test: %d commits: %d events in event-log %lld ms after POST /projects, "
           "all final after %lld ms\n",
           CS_GIT_HISTORY_COMMITS, CS_GIT_HISTORY_COMMITS, t_events, t_done);
    events_dispose(&events);
    p1.ok = true;
}

/* Every sha of `before` is still there with the same event id; returns how many are. */
static size_t assert_kept(const el_events *before, const el_events *after, cs_shas *gone)
{
    size_t kept = 0;

    for (size_t i = 0; i < before->n; i++) {
        const el_event *e = events_find(after, before->v[i].sha);

        if (gone != NULL && cs_shas_has(gone, before->v[i].sha)) {
            if (e != NULL)
                fail_msg("event %s should be gone", before->v[i].sha);
            continue;
        }
        if (e == NULL)
            fail_msg("event %s (id %lld) disappeared", before->v[i].sha, before->v[i].id);
        assert_int_equal(e->id, before->v[i].id);
        kept++;
    }
    return kept;
}

/* The events of `after` that `before` did not have are exactly `fresh`. */
static void assert_new_are(const el_events *before, const el_events *after,
                           char (*fresh)[CS_GIT_SHA_LEN + 1], size_t nfresh)
{
    size_t added = 0;

    for (size_t i = 0; i < after->n; i++) {
        bool expected = false;

        if (events_find(before, after->v[i].sha) != NULL)
            continue;
        for (size_t k = 0; k < nfresh; k++)
            expected = expected || strcmp(fresh[k], after->v[i].sha) == 0;
        if (!expected)
            fail_msg("unexpected new event %s", after->v[i].sha);
        added++;
    }
    assert_int_equal(added, nfresh);
}

static void test_commit_sync__a_push_of_three_gives_exactly_three_more(void **state)
{
    char pushed[3][CS_GIT_SHA_LEN + 1], line[1024];
    el_events before = {0}, after = {0};
    (void)state;

    if (!p1.ok)
        skip();
    events_list(&before, p1.id);
    for (int i = 0; i < 3; i++)
        cs_git_commit_change(pushed[i], p1.dir, i == 0 ? "pushed one" : i == 1 ? "two" : "three");
    cs_stack_request_sync(p1.id);
    wait_done_line(line, sizeof(line), "COMMIT_SYNC", p1.id, ++p1.syncs);
    assert_contains(line, "synced (3 new, 0 gone)");
    wait_status(p1.id, CS_GIT_HISTORY_COMMITS + 3, true);
    events_list(&after, p1.id);
    assert_int_equal(after.n, CS_GIT_HISTORY_COMMITS + 3);
    assert_int_equal(assert_kept(&before, &after, NULL), CS_GIT_HISTORY_COMMITS);
    assert_new_are(&before, &after, pushed, 3);
    assert_events_equal_git(&after, p1.dir);
    fetch_new_bodies(&after);
    assert_int_equal(cs_git_compare_log(p1.dir, cached_body, NULL), CS_GIT_HISTORY_COMMITS + 3);
    assert_int_equal(status_of(p1.id).failed, 0);
    events_dispose(&before);
    events_dispose(&after);
}

typedef struct {
    const cs_shas *gone;
    long long total;
} cleanup_probe;

/* The dropped events are deleted (clean-up done) and the project is done. */
static bool cleaned_up(void *payload)
{
    cleanup_probe *c = payload;
    el_status s = status_of(p1.id);

    if (!s.done || s.total != c->total)
        return false;
    for (size_t i = 0; i < c->gone->n; i++) {
        json_object *e = event_get(p1.id, c->gone->v[i]);

        json_object_put(e);
        if (e != NULL)
            return false;
    }
    return true;
}

static void test_commit_sync__force_push_moves_five_to_awaiting_deletion_and_adds_two(void **state)
{
    char forced[2][CS_GIT_SHA_LEN + 1], line[1024];
    el_events before = {0}, after = {0};
    cs_shas gone = {0};
    long long gone_ids[5];
    cleanup_probe probe = {&gone, CS_GIT_HISTORY_COMMITS};
    fg_buf history;
    (void)state;

    if (!p1.ok)
        skip();
    events_list(&before, p1.id);
    cs_git_rev_list(&gone, p1.dir, "HEAD~5..HEAD");
    assert_int_equal(gone.n, 5);
    for (size_t i = 0; i < 5; i++) {
        const el_event *e = events_find(&before, gone.v[i]);
        assert_non_null(e);
        gone_ids[i] = e->id;
    }
    CS_GIT(p1.dir, "reset", "-q", "--hard", "HEAD~5");
    cs_git_commit_change(forced[0], p1.dir, "rewritten one");
    cs_git_commit_change(forced[1], p1.dir, "rewritten two");
    cs_stack_request_sync(p1.id);
    wait_done_line(line, sizeof(line), "COMMIT_SYNC", p1.id, ++p1.syncs);
    assert_contains(line, "reconciled with the event log (2 new, 5 gone)");

    /* clean-up exists: the five go through AWAITING_DELETION and are deleted */
    if (!fg_test_wait_until(cleaned_up, &probe, WAIT_MS))
        fail_msg("the five dropped events were not cleaned up (total %lld)",
                 status_of(p1.id).total);
    fg_buf_init(&history, 1 << 16);
    for (size_t i = 0; i < 5; i++) {
        status_log_of(&history, gone_ids[i]);
        if (strstr(history.ptr, ">AWAITING_DELETION:ToAwaitingDeletion ") == NULL ||
            strstr(history.ptr, "DELETING>-:CleanUpDone ") == NULL)
            fail_msg("event %lld (%s): status log %s", gone_ids[i], gone.v[i], history.ptr);
    }
    fg_buf_dispose(&history);

    events_list(&after, p1.id);
    assert_int_equal(after.n, CS_GIT_HISTORY_COMMITS);
    assert_int_equal(assert_kept(&before, &after, &gone), CS_GIT_HISTORY_COMMITS + 3 - 5);
    assert_new_are(&before, &after, forced, 2);
    assert_events_equal_git(&after, p1.dir);
    fetch_new_bodies(&after);
    assert_int_equal(cs_git_compare_log(p1.dir, cached_body, NULL), CS_GIT_HISTORY_COMMITS);
    assert_int_equal(status_of(p1.id).failed, 0);
    cs_shas_dispose(&gone);
    events_dispose(&before);
    events_dispose(&after);
}

static void test_commit_sync__global_sync_repairs_a_commit_the_event_log_lost(void **state)
{
    char id_text[32], project_text[32], line[1024], fresh[1][CS_GIT_SHA_LEN + 1];
    const char *params[2] = {id_text, project_text};
    cs_shas main_line = {0};
    el_events before = {0}, after = {0};
    fg_pg_result *res = NULL;
    const el_event *lost, *back;
    long long lost_id;
    json_object *event, *body;
    (void)state;

    if (!p1.ok)
        skip();
    wait_status(p1.id, CS_GIT_HISTORY_COMMITS, true); /* nothing in flight */
    events_list(&before, p1.id);
    /* an old commit in the middle of main, no tip */
    cs_git_rev_list(&main_line, p1.dir, "main~100");
    snprintf(fresh[0], sizeof(fresh[0]), "%s", main_line.v[0]);
    assert_non_null(lost = events_find(&before, fresh[0]));
    lost_id = lost->id;
    events_dispose(&before);

    /* event-log loses it: its row, body and status log go (the log has no foreign key; the body
     * cascades), as if it had never been there */
    snprintf(id_text, sizeof(id_text), "%lld", lost_id);
    snprintf(project_text, sizeof(project_text), "%lld", p1.id);
    assert_int_equal(fg_pg_begin(db), 0);
    db_exec(NULL, "DELETE FROM status_log WHERE event_id = $1::bigint", 1, params);
    db_exec(&res, "DELETE FROM event WHERE id = $1::bigint AND project_id = $2::bigint", 2, params);
    assert_int_equal(fg_pg_result_affected(res), 1);
    fg_pg_result_free(res);
    assert_int_equal(fg_pg_commit(db), 0);
    assert_null(event_get(p1.id, fresh[0]));
    events_list(&before, p1.id);
    assert_int_equal(before.n, CS_GIT_HISTORY_COMMITS - 1);

    /* the periodic global sync, made due now (a missing sync_time row means never run) */
    db_exec(NULL,
            "DELETE FROM sync_time WHERE project_id = $1::bigint"
            " AND category = 'GLOBAL_COMMIT_SYNC'",
            1, params + 1);
    wait_done_line(line, sizeof(line), "GLOBAL_COMMIT_SYNC", p1.id, ++p1.globals);
    assert_contains(line, "repaired (1 new, 0 gone)");
    wait_status(p1.id, CS_GIT_HISTORY_COMMITS, true);

    /* it is back, as a new event, and nothing else was created or touched */
    events_list(&after, p1.id);
    assert_int_equal(after.n, CS_GIT_HISTORY_COMMITS);
    assert_int_equal(assert_kept(&before, &after, NULL), CS_GIT_HISTORY_COMMITS - 1);
    assert_new_are(&before, &after, fresh, 1);
    assert_non_null(back = events_find(&after, fresh[0]));
    assert_true(back->id > lost_id);
    assert_non_null(event = event_get(p1.id, fresh[0]));
    assert_created_as_new(event, fresh[0]);
    assert_true(json_object_object_get_ex(event, "body", &body));
    assert_string_equal(json_object_to_json_string(body),
                        json_object_to_json_string(cached_body(fresh[0], NULL)));
    json_object_put(event);
    assert_events_equal_git(&after, p1.dir);
    cs_shas_dispose(&main_line);
    events_dispose(&before);
    events_dispose(&after);
}

/* Another session waits for a lock on processed_message (the test holds it; pg_locks shows the
 * lock manager as it is now, even from inside the transaction that holds the lock). */
static bool consumer_waits(void *payload)
{
    fg_pg_result *res = NULL;
    int64_t n = 0;

    (void)payload;
    db_exec(&res,
            "SELECT count(*) FROM pg_locks WHERE relation = 'processed_message'::regclass"
            " AND NOT granted",
            0, NULL);
    assert_int_equal(fg_pg_result_int64(&n, res, 0, 0), 0);
    fg_pg_result_free(res);
    return n > 0;
}

/* Takes the project's mirror lock as another commit-sync would (flock on <mirror dir>/<id>.lock),
 * so that a sync of it waits; *waiting is the line commit-sync then logs. Returns the lock's fd. */
static int hold_mirror_lock(char *waiting, size_t cap, long long project)
{
    char path[1024];
    int fd;

    snprintf(path, sizeof(path), "%s/%lld.lock", fg_test_stack_env("FG_MIRROR_DIR"), project);
    assert_true((fd = open(path, O_RDWR | O_CREAT, 0600)) >= 0);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    snprintf(waiting, cap, "mirror of project %lld is being synced by another process: waiting",
             project);
    return fd;
}

static void release_mirror_lock(int fd)
{
    assert_int_equal(flock(fd, LOCK_UN), 0);
    close(fd);
}

/* A request that arrives while a sync is finishing (after event-log sent it, before it recorded
 * its completion) must still bring a sync. The test holds the mirror's lock so that the sync
 * waits, then holds event-log's consumer back (a SHARE lock on processed_message, which every
 * consumed message first writes to, while reads and the API go on) so that the completion waits,
 * and asks for a sync in between. */
static void test_commit_sync__a_sync_asked_for_while_one_completes_is_not_lost(void **state)
{
    char waiting[256], needle[128], line[1024], path[64];
    bool completed, held;
    long status = 0;
    int fd;
    (void)state;

    if (!p1.ok)
        skip();
    wait_status(p1.id, CS_GIT_HISTORY_COMMITS, true);
    fd = hold_mirror_lock(waiting, sizeof(waiting), p1.id);
    cs_stack_request_sync(p1.id);
    /* event-log sent COMMIT_SYNC (and wrote its sync_time row); commit-sync waits */
    if (!cs_log_wait(&cs_lines, waiting, 1, WAIT_MS))
        fail_msg("no '%s'", waiting);
    assert_int_equal(fg_pg_begin(db), 0);
    db_exec(NULL, "LOCK TABLE processed_message IN SHARE MODE", 0, NULL);
    release_mirror_lock(fd);
    /* the sync runs; its completion reaches event-log, which waits for the lock: ask now */
    needle_of(needle, sizeof(needle), "COMMIT_SYNC", p1.id);
    completed = cs_log_wait(&cs_lines, needle, ++p1.syncs, WAIT_MS);
    /* ... and is held: event-log's consumer waits for the lock (pg_locks shows it) */
    held = completed && fg_test_wait_until(consumer_waits, NULL, 30000);
    snprintf(path, sizeof(path), "/projects/%lld/sync", p1.id);
    if (held)
        status = cs_stack_call(NULL, "POST", fg_test_stack_env("FG_EVENT_LOG_URL"), path, NULL);
    assert_int_equal(fg_pg_commit(db), 0); /* whatever happened: event-log must go on */
    assert_true(completed);
    assert_true(held);
    assert_int_equal(status, 202);
    cs_log_line(line, sizeof(line), &cs_lines, needle, p1.syncs);
    assert_contains(line, "unchanged: one fetch, no walk (0 new, 0 gone)");
    /* the request is not swallowed by the completion: event-log sends another COMMIT_SYNC (its
     * schedule looks every second) */
    wait_done_line_within(line, sizeof(line), "COMMIT_SYNC", p1.id, ++p1.syncs, 30000);
    assert_contains(line, "unchanged: one fetch, no walk (0 new, 0 gone)");
}

typedef struct {
    const cs_log *logs[2];
    const char *needle;
    size_t want;
} two_logs_probe;

static bool two_logs_reached(void *payload)
{
    two_logs_probe *p = payload;

    return cs_log_count(p->logs[0], p->needle) + cs_log_count(p->logs[1], p->needle) >= p->want;
}

static void wait_two_logs(const cs_log *a, const cs_log *b, const char *needle, size_t want)
{
    two_logs_probe p = {{a, b}, needle, want};

    if (!fg_test_wait_until(two_logs_reached, &p, 60000))
        fail_msg("'%s' appeared %zu times in the two commit-sync logs, not %zu", needle,
                 cs_log_count(a, needle) + cs_log_count(b, needle), want);
}

static void test_commit_sync__two_syncs_of_one_project_run_one_after_the_other(void **state)
{
    char waiting[256], started[128], done[128], ts[4][CS_STACK_TS_LEN + 1];
    char pushed[2][CS_GIT_SHA_LEN + 1], lines[2][1024];
    cs_log logs[2];
    el_events before = {0}, after = {0};
    int fd;
    (void)state;

    if (!p1.ok)
        skip();
    events_list(&before, p1.id);
    /* two processes on one mirror folder, each taking one message at a time: the stack's
     * commit-sync (restarted so) and one from this tree's build */
    assert_int_equal(restart_stack_commit_sync(true), 0);
    cs_log_mark(&logs[0], "commit-sync");
    proc_start(&second);
    cs_log_mark_path(&logs[1], second.log);
    cs_git_commit_change(pushed[0], p1.dir, "both at once one");
    cs_git_commit_change(pushed[1], p1.dir, "both at once two");

    /* the test holds the project's lock, so both syncs are under way at the same time */
    fd = hold_mirror_lock(waiting, sizeof(waiting), p1.id);
    cs_stack_request_sync(p1.id);
    wait_two_logs(&logs[0], &logs[1], waiting, 1);
    /* the first COMMIT_SYNC is out: asking again makes event-log send a second one */
    cs_stack_request_sync(p1.id);
    wait_two_logs(&logs[0], &logs[1], waiting, 2);
    /* one each: the busy one could take no second message */
    assert_int_equal(cs_log_count(&logs[0], waiting), 1);
    assert_int_equal(cs_log_count(&logs[1], waiting), 1);
    release_mirror_lock(fd);

    snprintf(started, sizeof(started), "\"msg\":\"COMMIT_SYNC of project %lld started", p1.id);
    needle_of(done, sizeof(done), "COMMIT_SYNC", p1.id);
    for (int i = 0; i < 2; i++) {
        if (!cs_log_wait(&logs[i], done, 1, WAIT_MS))
            fail_msg("no '%s' in %s", done, logs[i].path);
        cs_log_line_ts(ts[2 * i], &logs[i], started, 1);
        cs_log_line_ts(ts[2 * i + 1], &logs[i], done, 1);
        cs_log_line(lines[i], sizeof(lines[i]), &logs[i], done, 1);
    }
    printf("commit_sync_test: process 1 %s .. %s, process 2 %s .. %s\n", ts[0], ts[1], ts[2],
           ts[3]);
    /* they did not overlap: one started after the other was done */
    assert_true(strcmp(ts[2], ts[1]) >= 0 || strcmp(ts[0], ts[3]) >= 0);
    /* the first sent the two commits; the second found the state it wrote: nothing to do */
    {
        int first = strcmp(ts[0], ts[2]) <= 0 ? 0 : 1;
        assert_contains(lines[first], "synced (2 new, 0 gone)");
        assert_contains(lines[1 - first], "unchanged: one fetch, no walk (0 new, 0 gone)");
    }
    p1.syncs++; /* the stack's one */
    wait_status(p1.id, CS_GIT_HISTORY_COMMITS + 2, true);
    events_list(&after, p1.id);
    assert_int_equal(after.n, CS_GIT_HISTORY_COMMITS + 2);
    assert_int_equal(assert_kept(&before, &after, NULL), CS_GIT_HISTORY_COMMITS);
    assert_new_are(&before, &after, pushed, 2);
    fetch_new_bodies(&after); /* created once each */
    assert_int_equal(cs_git_compare_log(p1.dir, cached_body, NULL), CS_GIT_HISTORY_COMMITS + 2);

    proc_stop(&second);
    assert_int_equal(restart_stack_commit_sync(false), 0);
    events_dispose(&before);
    events_dispose(&after);
}

/* The retry comes FG_AMQP_RETRY_TTL later to whichever commit-sync takes it: the stack's, or the
 * second process of the two-at-once test while that one ran. The project's status was waited
 * for already, so its "done" line is in one of the two logs. */
static void done_line_of_either(char *line, size_t cap, long long project)
{
    char needle[128];
    cs_log whole = {.offset = 0};

    needle_of(needle, sizeof(needle), "COMMIT_SYNC", project);
    if (cs_log_wait(&cs_lines, needle, 1, 1000) || second.log[0] == '\0') {
        wait_done_line(line, cap, "COMMIT_SYNC", project, 1);
        return;
    }
    snprintf(whole.path, sizeof(whole.path), "%s", second.log);
    cs_log_line(line, cap, &whole, needle, 1);
}

static void test_commit_sync__a_failed_sync_recovers_once_the_remote_is_there(void **state)
{
    el_events events = {0};
    char line[1024];
    (void)state;

    if (failing.missing == 0)
        skip();
    /* the retry of the failed COMMIT_SYNC found the repository */
    wait_status(failing.missing, SMALL, false);
    done_line_of_either(line, sizeof(line), failing.missing);
    assert_contains(line, "synced (4 new, 0 gone)");
    events_list(&events, failing.missing);
    assert_int_equal(events.n, SMALL);
    assert_events_equal_git(&events, failing.missing_dir);
    for (size_t i = 0; i < events.n; i++) {
        json_object *event = event_get(failing.missing, events.v[i].sha);

        assert_non_null(event);
        assert_created_as_new(event, events.v[i].sha);
        json_object_put(event);
    }
    events_dispose(&events);
}

/* ---- set-up -------------------------------------------------------------------------------- */

static int set_up(void **state)
{
    (void)state;
    fg_test_stack_env("FG_COMMIT_SYNC_URL");
    fg_test_stack_env("FG_TOKEN_REPOSITORY_URL");
    fg_test_stack_env("FG_MIRROR_DIR");
    cs_stack_open();
    cs_git_isolate();
    if (mkdtemp(tmp_root) == NULL)
        return -1;
    if (fg_pg_connect(&db, fg_test_stack_env("FG_EVENT_LOG_DB_URL"), 10000) < 0) {
        printf("event-log's database: %s\n", fg_error_last());
        return -1;
    }
    /* an earlier test may have restarted the broker: the services reconnect */
    if (!cs_stack_wait_ready(fg_test_stack_env("FG_COMMIT_SYNC_URL"), 60000) ||
        !cs_stack_wait_ready(fg_test_stack_env("FG_EVENT_LOG_URL"), 60000)) {
        printf("the stack's commit-sync or event-log is not ready\n");
        return -1;
    }
    cs_log_mark(&cs_lines, "commit-sync");
    cs_log_mark(&other_lines[0], "event-log");
    cs_log_mark(&other_lines[1], "token-repository");
    cs_log_mark(&other_lines[2], "webhook");
    git_server_start();
    return 0;
}

static int tear_down(void **state)
{
    int rc = 0;
    (void)state;

    proc_stop(&second);
    /* first: a failed removal below ends the tear-down */
    if (getenv("FG_KEEP_TEST_FILES") == NULL)
        fg_test_remove_tree(tmp_root);
    if (stack_prefetch_changed && restart_stack_commit_sync(false) != 0) {
        printf("note: could not restart the stack's commit-sync\n");
        rc = -1;
    }
    if (p1.id > 0)
        cs_stack_remove(p1.id);
    if (failing.unreachable > 0)
        cs_stack_remove(failing.unreachable);
    if (failing.missing > 0)
        cs_stack_remove(failing.missing);
    if (failing.refused > 0)
        cs_stack_remove(failing.refused);
    git_server_stop();
    fg_pg_free(db);
    cs_stack_close();
    for (size_t i = 0; i < p1.nbodies; i++)
        json_object_put(p1.bodies[i].body);
    free(p1.bodies);
    return rc;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* the failures first: their retries come back while the others run */
        cmocka_unit_test(test_commit_sync__unreachable_remote_is_a_recoverable_failure),
        cmocka_unit_test(
            test_commit_sync__refused_token_is_a_recoverable_failure_without_the_token),
        cmocka_unit_test(test_commit_sync__new_repository_of_1000_commits_gives_1000_new_events),
        cmocka_unit_test(test_commit_sync__a_push_of_three_gives_exactly_three_more),
        cmocka_unit_test(test_commit_sync__force_push_moves_five_to_awaiting_deletion_and_adds_two),
        cmocka_unit_test(test_commit_sync__global_sync_repairs_a_commit_the_event_log_lost),
        cmocka_unit_test(test_commit_sync__a_sync_asked_for_while_one_completes_is_not_lost),
        cmocka_unit_test(test_commit_sync__two_syncs_of_one_project_run_one_after_the_other),
        cmocka_unit_test(test_commit_sync__a_failed_sync_recovers_once_the_remote_is_there),
    };

    fg_test_stack_env("FG_EVENT_LOG_URL"); /* skip the whole program without a stack */
    fg_test_stack_env("FG_EVENT_LOG_DB_URL");
    if (evthread_use_pthreads() != 0)
        return 1;
    return cmocka_run_group_tests(tests, set_up, tear_down);
}
