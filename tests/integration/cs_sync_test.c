/*
 * commit-sync against the stack's RabbitMQ, with this test playing event-log's side: it
 * publishes COMMIT_SYNC, GLOBAL_COMMIT_SYNC and PROJECT_REMOVED to fg.events, consumes what
 * commit-sync sends (CREATION, EVENTS_STATUS_CHANGE) from a queue of its own (fg.cs-sync-test),
 * and answers event-log's and token-repository's HTTP calls (GET /projects/{id}, GET /events,
 * GET /projects/{id}/tokens) from its own record of what it received, through a stand-in served
 * with fg_http_server: event-log's API is not there yet. It runs its own fg-commit-sync processes
 * (built from this tree, pointed at the stand-in) and stops the stack's one meanwhile.
 */
#include "test_support.h"

#include <event2/event.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <ftw.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fg/amqp.h"
#include "fg/base64.h"
#include "fg/http_client.h"
#include "fg/http_server.h"
#include "fg/proto.h"

#define TEST_QUEUE       "cs-sync-test"
#define MAX_PROJECTS     16
#define STANDIN_PAGE_MAX 300 /* smaller than commit-sync's pages: paging is exercised */
#define LOG_MAX          (16u << 20)
#define SYNC_WAIT_MS     120000
#define TOKEN            "tok-8f2e-SECRET-never-logged"
#define URL_PASSWORD     "pa55-in-url-never-logged"
#define FIRST_COMMITS    1000

/* ---- event-log's side: what this test knows about each project ---------------------------- */

typedef struct {
    char sha[41];
    bool leaving; /* AWAITING_DELETION */
} el_event;

typedef struct {
    long long id;
    char url[2048];
    const char *token; /* what token-repository answers; NULL: 404 */
    bool registered;   /* GET /projects/{id} answers 200 */
    el_event *events;  /* the event log's view, in the order received */
    size_t nevents;
    json_object **commits; /* every commit body received in CREATION, duplicates included */
    size_t ncommits;
    size_t sync_completes;
    char (*gone)[41]; /* every sha received in ToAwaitingDeletion */
    size_t ngone;
    size_t global_requests; /* GLOBAL_COMMIT_SYNC_REQUEST received */
} project_model;

static pthread_mutex_t model_lock = PTHREAD_MUTEX_INITIALIZER;
static project_model models[MAX_PROJECTS];
static size_t nmodels;
static long long id_base;
static int standin_unauthorised; /* calls without the service key */
static char git_auth_seen[512];  /* Authorization header the fake git server got */
static char git_path_seen[1024];

static project_model *model_new(const char *url, const char *token)
{
    project_model *m;

    pthread_mutex_lock(&model_lock);
    assert_true(nmodels < MAX_PROJECTS);
    m = &models[nmodels++];
    m->id = id_base + (long long)nmodels;
    snprintf(m->url, sizeof(m->url), "%s", url);
    m->token = token;
    m->registered = true;
    pthread_mutex_unlock(&model_lock);
    return m;
}

static project_model *model_find(long long id)
{
    for (size_t i = 0; i < nmodels; i++)
        if (models[i].id == id)
            return &models[i];
    return NULL;
}

static el_event *model_event_find(project_model *m, const char *sha)
{
    for (size_t i = 0; i < m->nevents; i++)
        if (strcmp(m->events[i].sha, sha) == 0)
            return &m->events[i];
    return NULL;
}

/* under model_lock */
static void model_event_add(project_model *m, const char *sha)
{
    if (model_event_find(m, sha) != NULL)
        return;
    m->events = realloc(m->events, (m->nevents + 1) * sizeof(*m->events));
    assert_non_null(m->events);
    snprintf(m->events[m->nevents].sha, 41, "%s", sha);
    m->events[m->nevents++].leaving = false;
}

/* under model_lock: the event log loses an event (it never had it, as far as anyone can tell) */
static void model_event_drop(project_model *m, const char *sha)
{
    el_event *e = model_event_find(m, sha);

    assert_non_null(e);
    memmove(e, e + 1, (size_t)(m->events + m->nevents - (e + 1)) * sizeof(*e));
    m->nevents--;
}

static size_t live_count(project_model *m)
{
    size_t n = 0;

    for (size_t i = 0; i < m->nevents; i++)
        n += !m->events[i].leaving;
    return n;
}

/* ---- the stand-in for event-log's and token-repository's APIs ----------------------------- */

static struct event_base *standin_base;
static fg_http_server *standin;
static pthread_t standin_thread;
static char standin_url[128];

static bool standin_authorised(fg_http_request *req)
{
    if (fg_http_request_authorized(req, fg_test_stack_env("FG_SERVICE_KEY")))
        return true;
    standin_unauthorised++;
    fg_http_respond_error(req, 401, "unauthorized", "service key required");
    return false;
}

static project_model *request_project(fg_http_request *req, const char *param)
{
    const char *text = fg_http_request_param(req, param);
    char *end = NULL;
    long long id;

    if (text == NULL)
        text = fg_http_request_query(req, param);
    if (text == NULL)
        return NULL;
    id = strtoll(text, &end, 10);
    return end != text && *end == '\0' ? model_find(id) : NULL;
}

/* The stack's event-log schedules COMMIT_SYNC for its own projects, and our processes take them
 * from fg.commit-sync meanwhile. Answering 500 for those makes commit-sync send them back to the
 * retry queue at once, so the stack's commit-sync handles them after this test: nothing is acked
 * as done here, and nothing slows the test down. */
static void not_ours(fg_http_request *req)
{
    fg_http_respond_error(req, 500, "error", "not a project of cs_sync_test: try again later");
}

static void on_project(fg_http_request *req, void *payload)
{
    project_model *m;
    fg_buf body;

    (void)payload;
    if (!standin_authorised(req))
        return;
    pthread_mutex_lock(&model_lock);
    m = request_project(req, "id");
    if (m == NULL) {
        pthread_mutex_unlock(&model_lock);
        not_ours(req);
        return;
    }
    if (!m->registered) {
        pthread_mutex_unlock(&model_lock);
        fg_http_respond_error(req, 404, "not_found", "no such project");
        return;
    }
    fg_buf_init(&body, 1 << 16);
    assert_int_equal(fg_buf_printf(&body, "{\"id\":%lld,\"forge\":\"git\",\"url\":\"", m->id), 0);
    assert_int_equal(fg_buf_put_json_string(&body, m->url, strlen(m->url)), 0);
    assert_int_equal(fg_buf_puts(&body, "\"}"), 0);
    pthread_mutex_unlock(&model_lock);
    fg_http_respond_json_buf(req, 200, &body);
    fg_buf_dispose(&body);
}

static void on_token(fg_http_request *req, void *payload)
{
    project_model *m;
    char body[256];

    (void)payload;
    if (!standin_authorised(req))
        return;
    pthread_mutex_lock(&model_lock);
    m = request_project(req, "id");
    if (m == NULL) {
        pthread_mutex_unlock(&model_lock);
        not_ours(req);
        return;
    }
    if (m->token == NULL) {
        pthread_mutex_unlock(&model_lock);
        fg_http_respond_error(req, 404, "not_found", "no token");
        return;
    }
    snprintf(body, sizeof(body), "{\"token\":\"%s\"}", m->token);
    pthread_mutex_unlock(&model_lock);
    fg_http_respond_json(req, 200, body);
}

/* A decimal count; the whole text must be one. */
static long long count_of(const char *text)
{
    char *end = NULL;
    long long v = strtoll(text, &end, 10);

    if (end == text || *end != '\0' || v < 0)
        fail_msg("'%s' is not a count", text);
    return v;
}

/* GET /events?project=&limit=&after=: keyset pages over the events in the order received. */
static void on_events(fg_http_request *req, void *payload)
{
    const char *limit_text = fg_http_request_query(req, "limit");
    const char *after = fg_http_request_query(req, "after");
    size_t limit = STANDIN_PAGE_MAX, from = 0, to;
    project_model *m;
    fg_buf body;

    (void)payload;
    if (!standin_authorised(req))
        return;
    if (limit_text != NULL && (size_t)count_of(limit_text) < limit)
        limit = (size_t)count_of(limit_text);
    if (after != NULL)
        from = (size_t)count_of(after);
    pthread_mutex_lock(&model_lock);
    m = request_project(req, "project");
    if (m == NULL) {
        pthread_mutex_unlock(&model_lock);
        not_ours(req);
        return;
    }
    fg_buf_init(&body, 16u << 20);
    to = from + limit < m->nevents ? from + limit : m->nevents;
    assert_int_equal(fg_buf_puts(&body, "{\"events\":["), 0);
    for (size_t i = from; i < to; i++)
        assert_int_equal(fg_buf_printf(&body, "%s{\"sha\":\"%s\",\"status\":\"%s\"}",
                                       i > from ? "," : "", m->events[i].sha,
                                       m->events[i].leaving ? "AWAITING_DELETION" : "NEW"),
                         0);
    if (to < m->nevents)
        assert_int_equal(fg_buf_printf(&body, "],\"next\":\"%zu\"}", to), 0);
    else
        assert_int_equal(fg_buf_puts(&body, "],\"next\":null}"), 0);
    pthread_mutex_unlock(&model_lock);
    fg_http_respond_json_buf(req, 200, &body);
    fg_buf_dispose(&body);
}

/* A git smart-HTTP endpoint that refuses every credential, and notes what it was offered. */
static void on_git_refs(fg_http_request *req, void *payload)
{
    const char *auth = fg_http_request_header(req, "Authorization");

    (void)payload;
    pthread_mutex_lock(&model_lock);
    snprintf(git_auth_seen, sizeof(git_auth_seen), "%s", auth ? auth : "");
    snprintf(git_path_seen, sizeof(git_path_seen), "%s", fg_http_request_path(req));
    pthread_mutex_unlock(&model_lock);
    assert_int_equal(fg_http_response_add_header(req, "WWW-Authenticate", "Basic realm=\"git\""),
                     0);
    fg_http_respond_text(req, 401, NULL, "denied\n", 7);
}

static void *standin_loop(void *arg)
{
    (void)arg;
    event_base_dispatch(standin_base);
    return NULL;
}

static void standin_start(void)
{
    fg_http_server_options o;

    assert_non_null(standin_base = event_base_new());
    fg_http_server_options_init(&o);
    o.port = 0;
    assert_int_equal(fg_http_server_new(&standin, standin_base, &o), 0);
    assert_int_equal(fg_http_server_route(standin, FG_HTTP_GET, "/projects/{id}", on_project, NULL),
                     0);
    assert_int_equal(
        fg_http_server_route(standin, FG_HTTP_GET, "/projects/{id}/tokens", on_token, NULL), 0);
    assert_int_equal(fg_http_server_route(standin, FG_HTTP_GET, "/events", on_events, NULL), 0);
    assert_int_equal(
        fg_http_server_route(standin, FG_HTTP_GET, "/git/{name}/info/refs", on_git_refs, NULL), 0);
    snprintf(standin_url, sizeof(standin_url), "http://127.0.0.1:%u",
             (unsigned)fg_http_server_port(standin));
    assert_int_equal(pthread_create(&standin_thread, NULL, standin_loop, NULL), 0);
}

static void standin_stop(void)
{
    assert_int_equal(event_base_loopexit(standin_base, NULL), 0);
    assert_int_equal(pthread_join(standin_thread, NULL), 0);
    fg_http_server_free(standin);
    event_base_free(standin_base);
}

/* ---- the bus: publishing to commit-sync, consuming what it sends -------------------------- */

static fg_amqp *bus;

static void bus_start(void)
{
    static const char *const categories[] = {"CREATION", "EVENTS_STATUS_CHANGE",
                                             "GLOBAL_COMMIT_SYNC_REQUEST"};
    fg_amqp_options o;

    fg_amqp_options_init(&o);
    o.url = fg_test_stack_env("FG_AMQP_URL");
    o.service = TEST_QUEUE;
    o.categories = categories;
    o.ncategories = 3;
    o.prefetch = 1000;
    assert_int_equal(fg_amqp_new(&bus, &o), 0);
    assert_int_equal(fg_amqp_connect(bus, 10000), 0);
    assert_int_equal(fg_amqp_declare(bus), 0);
    assert_int_equal(fg_amqp_consume(bus), 0);
}

static void publish_msg(fg_proto_msg *msg)
{
    fg_buf body;
    fg_amqp_message m;
    size_t confirmed = 0;

    fg_buf_init(&body, FG_PROTO_MESSAGE_MAX);
    assert_int_equal(fg_proto_msg_serialise(&body, msg), 0);
    m.id = msg->id;
    m.category = fg_proto_category_name(msg->category);
    m.body = body.ptr;
    m.body_len = body.len;
    if (fg_amqp_publish_batch(&confirmed, bus, &m, 1, 10000) < 0)
        fail_msg("publish: %s", fg_error_last());
    fg_buf_dispose(&body);
}

static void start_msg(fg_proto_msg *msg, fg_proto_category category, const project_model *m)
{
    fg_proto_project project = {m->id, FG_PROTO_FORGE_GIT, "cs-sync-test/repo"};

    fg_proto_msg_init(msg);
    assert_int_equal(fg_proto_msg_start(msg, category, &project), 0);
}

/* COMMIT_SYNC with the event log's latest <= 50 shas, newest first (last received first). */
static void send_commit_sync(project_model *m)
{
    fg_proto_msg msg;
    json_object *known = json_object_new_array();
    size_t added = 0;

    start_msg(&msg, FG_PROTO_COMMIT_SYNC, m);
    pthread_mutex_lock(&model_lock);
    for (size_t i = m->nevents; i > 0 && added < FG_PROTO_KNOWN_MAX; i--) {
        if (m->events[i - 1].leaving)
            continue;
        json_object_array_add(known, json_object_new_string(m->events[i - 1].sha));
        added++;
    }
    pthread_mutex_unlock(&model_lock);
    assert_int_equal(fg_proto_msg_set(&msg, "known", known), 0);
    publish_msg(&msg);
    fg_proto_msg_dispose(&msg);
}

static void send_global_sync(project_model *m, long long count, const char *latest)
{
    fg_proto_msg msg;

    start_msg(&msg, FG_PROTO_GLOBAL_COMMIT_SYNC, m);
    assert_int_equal(fg_proto_msg_set_int(&msg, "count", count), 0);
    if (count > 0)
        assert_int_equal(fg_proto_msg_set_string(&msg, "latest", latest), 0);
    publish_msg(&msg);
    fg_proto_msg_dispose(&msg);
}

static void send_project_removed(project_model *m)
{
    fg_proto_msg msg;

    start_msg(&msg, FG_PROTO_PROJECT_REMOVED, m);
    publish_msg(&msg);
    fg_proto_msg_dispose(&msg);
}

/* Records one delivery in the model of its project; others' messages are ignored. */
static void record(const fg_amqp_delivery *d)
{
    fg_proto_msg msg;
    project_model *m;

    fg_proto_msg_init(&msg);
    /* everything commit-sync sends must pass the contract */
    if (fg_proto_msg_parse(&msg, fg_amqp_delivery_body(d), fg_amqp_delivery_body_len(d)) < 0)
        fail_msg("commit-sync sent an invalid %s: %s", fg_amqp_delivery_category(d),
                 fg_error_last());
    pthread_mutex_lock(&model_lock);
    m = msg.has_project ? model_find(msg.project.id) : NULL;
    if (m != NULL && msg.category == FG_PROTO_CREATION) {
        size_t n = fg_proto_msg_count(&msg, "commits");

        m->commits = realloc(m->commits, (m->ncommits + n) * sizeof(*m->commits));
        assert_non_null(m->commits);
        for (size_t i = 0; i < n; i++) {
            json_object *body = fg_proto_msg_commit_body(&msg, i), *sha;

            assert_true(json_object_object_get_ex(body, "sha", &sha));
            model_event_add(m, json_object_get_string(sha));
            m->commits[m->ncommits++] = json_object_get(body);
        }
        m->sync_completes += fg_proto_msg_get_bool(&msg, "syncComplete");
    } else if (m != NULL && msg.category == FG_PROTO_GLOBAL_COMMIT_SYNC_REQUEST) {
        m->global_requests++;
    } else if (m != NULL && msg.sub_category == FG_PROTO_SUB_TO_AWAITING_DELETION) {
        size_t n = fg_proto_msg_count(&msg, "events");

        m->gone = realloc(m->gone, (m->ngone + n) * sizeof(*m->gone));
        assert_non_null(m->gone);
        for (size_t i = 0; i < n; i++) {
            el_event *e = model_event_find(m, fg_proto_msg_event_sha(&msg, i));

            snprintf(m->gone[m->ngone++], 41, "%s", fg_proto_msg_event_sha(&msg, i));
            if (e != NULL)
                e->leaving = true;
        }
    }
    pthread_mutex_unlock(&model_lock);
    if (m != NULL && msg.category != FG_PROTO_CREATION &&
        msg.category != FG_PROTO_GLOBAL_COMMIT_SYNC_REQUEST &&
        msg.sub_category != FG_PROTO_SUB_TO_AWAITING_DELETION)
        fail_msg("unexpected %s from commit-sync", fg_proto_category_name(msg.category));
    fg_proto_msg_dispose(&msg);
}

static void pump(int timeout_ms)
{
    fg_amqp_delivery *d = NULL;

    while (fg_amqp_next(&d, bus, timeout_ms) == 0) {
        record(d);
        assert_int_equal(fg_amqp_ack(bus, d), 0);
        fg_amqp_delivery_free(d);
        timeout_ms = 1;
    }
}

typedef struct {
    project_model *m;
    size_t want;
} completes_probe;

static bool sync_completes_reached(void *payload)
{
    completes_probe *p = payload;
    bool done;

    pump(50);
    pthread_mutex_lock(&model_lock);
    done = p->m->sync_completes >= p->want;
    pthread_mutex_unlock(&model_lock);
    return done;
}

/* Waits until the project's COMMIT_SYNC number `n` (counting from 1) said syncComplete. */
static void wait_sync_complete(project_model *m, size_t n)
{
    completes_probe p = {m, n};

    if (!fg_test_wait_until(sync_completes_reached, &p, SYNC_WAIT_MS))
        fail_msg("project %lld: no syncComplete number %zu", m->id, n);
}

/* ---- processes ----------------------------------------------------------------------------- */

typedef struct {
    pid_t pid;
    int port;
    char base[64];
    char log[256];
    int status;
    bool exited;
} service_proc;

static char tmp_root[] = "/tmp/fg-cs-sync-test-XXXXXX";
static char mirror_dir[512];
static service_proc main_proc;
static bool stack_commit_sync_was_running;
static fg_http_client *http;

static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static long http_get(fg_buf *out, const char *base, const char *path)
{
    char url[512];
    fg_http_client_request req;
    fg_http_client_response res;
    long status;

    snprintf(url, sizeof(url), "%s%s", base, path);
    fg_http_client_request_init(&req);
    req.url = url;
    fg_http_client_response_init(&res);
    status = fg_http_client_send(http, &res, &req) < 0 && res.status == 0 ? 0 : res.status;
    if (out != NULL)
        assert_int_equal(fg_buf_put(out, res.body.ptr, res.body.len), 0);
    fg_http_client_response_dispose(&res);
    return status;
}

static bool proc_ready(void *payload)
{
    service_proc *p = payload;

    return http_get(NULL, p->base, "/ready") == 200;
}

static bool proc_exited(void *payload)
{
    service_proc *p = payload;

    if (!p->exited && waitpid(p->pid, &p->status, WNOHANG) == p->pid)
        p->exited = true;
    return p->exited;
}

/* Starts this tree's fg-commit-sync with the stack's environment, pointed at the stand-in. */
static void proc_start(service_proc *p, const char *name)
{
    char path[1024];

    memset(p, 0, sizeof(*p));
    p->port = free_port();
    snprintf(p->base, sizeof(p->base), "http://127.0.0.1:%d", p->port);
    snprintf(p->log, sizeof(p->log), "%s/%s.log", tmp_root, name);
    snprintf(path, sizeof(path), "%s/services/commit-sync/fg-commit-sync", FG_BINARY_DIR);
    p->pid = fork();
    assert_true(p->pid >= 0);
    if (p->pid == 0) {
        char port[16];
        int fd = open(p->log, O_WRONLY | O_CREAT | O_TRUNC, 0600);

        /* a test that dies must not leave a consumer of fg.commit-sync behind */
        prctl(PR_SET_PDEATHSIG, SIGTERM);

        dup2(fd, 1);
        dup2(fd, 2);
        snprintf(port, sizeof(port), "%d", p->port);
        setenv("FG_HTTP_PORT", port, 1);
        setenv("FG_MIRROR_DIR", mirror_dir, 1);
        setenv("FG_EVENT_LOG_URL", standin_url, 1);
        setenv("FG_TOKEN_REPOSITORY_URL", standin_url, 1);
        /* one message at a time: a second process then gets the next one */
        setenv("FG_AMQP_PREFETCH", "1", 1);
        setenv("FG_LOG_LEVEL", "info", 1);
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    if (!fg_test_wait_until(proc_ready, p, 30000))
        fail_msg("%s did not become ready (log: %s)", name, p->log);
}

static void proc_stop(service_proc *p)
{
    if (p->pid <= 0 || p->exited)
        return;
    assert_int_equal(kill(p->pid, SIGTERM), 0);
    assert_true(fg_test_wait_until(proc_exited, p, 30000));
    assert_true(WIFEXITED(p->status));
    assert_int_equal(WEXITSTATUS(p->status), 0);
}

static double metric(const service_proc *p, const char *series)
{
    fg_buf page;
    const char *at;
    double value = -1;
    size_t len = strlen(series);

    fg_buf_init(&page, 4u << 20);
    assert_int_equal(http_get(&page, p->base, "/metrics"), 200);
    for (at = page.ptr; at != NULL && *at != '\0';
         at = strchr(at, '\n') ? strchr(at, '\n') + 1 : NULL)
        if (strncmp(at, series, len) == 0 && at[len] == ' ') {
            char *end = NULL;

            value = strtod(at + len + 1, &end);
            if (end == at + len + 1)
                value = -1;
            break;
        }
    fg_buf_dispose(&page);
    if (value < 0)
        fail_msg("no metric %s", series);
    return value;
}

#define ACKED     "fg_messages_handled_total{outcome=\"ack\"}"
#define RETRIED   "fg_messages_handled_total{outcome=\"retry\"}"
#define FETCHES   "fg_commit_sync_fetches_total"
#define WALKS     "fg_commit_sync_walks_total"
#define SENT      "fg_commit_sync_commits_sent_total"
#define DELETIONS "fg_commit_sync_deletions_sent_total"

typedef struct {
    const service_proc *p;
    const char *series;
    double want;
} metric_probe;

static bool metric_reached(void *payload)
{
    metric_probe *m = payload;

    pump(20);
    return metric(m->p, m->series) >= m->want;
}

static void wait_metric(const service_proc *p, const char *series, double want)
{
    metric_probe m = {p, series, want};

    if (!fg_test_wait_until(metric_reached, &m, SYNC_WAIT_MS))
        fail_msg("%s stayed below %g", series, want);
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = calloc(1, LOG_MAX);
    size_t n;

    assert_non_null(f);
    assert_non_null(text);
    n = fread(text, 1, LOG_MAX - 1, f);
    text[n] = '\0';
    fclose(f);
    return text;
}

typedef struct {
    const char *path;
    const char *needle;
} log_probe;

static bool log_has(void *payload)
{
    log_probe *l = payload;
    char *text = read_text(l->path);
    bool found = strstr(text, l->needle) != NULL;

    free(text);
    pump(20);
    return found;
}

/* ---- git ----------------------------------------------------------------------------------- */

/* Runs argv (stdin from in_path when given), returns stdout in out (when given); asserts exit 0. */
static void run(fg_buf *out, const char *in_path, const char *const *argv)
{
    int pipefd[2];
    pid_t pid;
    int status;
    char chunk[65536];
    ssize_t n;

    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (in_path != NULL) {
            int fd = open(in_path, O_RDONLY);
            dup2(fd, 0);
        }
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    while ((n = read(pipefd[0], chunk, sizeof(chunk))) > 0)
        if (out != NULL)
            assert_int_equal(fg_buf_put(out, chunk, (size_t)n), 0);
    close(pipefd[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s %s failed", argv[0], argv[1]);
}

#define GIT(dir, ...) run(NULL, NULL, (const char *const[]){"git", "-C", dir, __VA_ARGS__, NULL})

static const char *const zones[] = {"+0000", "+0100", "-0700", "+0530", "-0330"};

/* Appends file `path` at version v of commit i: some lines that stay, some that grow or shrink. */
static void put_file(fg_buf *s, const char *path, int i)
{
    fg_buf content;
    int lines = (i * 13) % 23 + 1;

    fg_buf_init(&content, 1 << 20);
    assert_int_equal(fg_buf_puts(&content, "header\n"), 0);
    for (int k = 0; k < lines; k++)
        assert_int_equal(fg_buf_printf(&content, "line %d\n", k), 0);
    assert_int_equal(fg_buf_printf(&content, "version %d\n", i), 0);
    assert_int_equal(
        fg_buf_printf(s, "M 100644 inline %s\ndata %zu\n%s\n", path, content.len, content.ptr), 0);
    fg_buf_dispose(&content);
}

/* The branch of commit mark i in the generated history (see make_history). */
static const char *branch_of(int i)
{
    if (i > 300 && i <= 380)
        return "feature/x";
    if (i > 800 && i <= 820)
        return "topic";
    return "main";
}

/* The parent of mark i: main goes on from 300 after feature/x and from 800 after topic. */
static int parent_of(int i)
{
    if (i == 381)
        return 300;
    if (i == 821)
        return 800;
    return i - 1;
}

/* 1000 commits with fast-import: main (with a merge of feature/x at 600), feature/x, topic
 * (unmerged), a lightweight and an annotated tag, trailers, a binary file, added and deleted
 * files, five time zones, committers that differ from the authors. */
static void make_history(const char *dir)
{
    char stream_path[600];
    fg_buf s;
    FILE *f;

    assert_true((size_t)snprintf(stream_path, sizeof(stream_path), "%s.fi", dir) <
                sizeof(stream_path));
    fg_buf_init(&s, 256u << 20);
    for (int i = 1; i <= FIRST_COMMITS; i++) {
        long long at = 1672531200LL + (long long)i * 3600;
        const char *zone = zones[i % 5];
        fg_buf msg;
        char path[128];

        fg_buf_init(&msg, 1 << 16);
        assert_int_equal(
            fg_buf_printf(&msg, "Change %d of %s\n\nBody of change %d.\n", i, branch_of(i), i), 0);
        if (i % 7 == 0)
            assert_int_equal(fg_buf_printf(&msg,
                                           "\nSigned-off-by: Dev %d <dev%d@example.org>\n"
                                           "Co-authored-by: Other Person <other@example.org>\n",
                                           i % 4, i % 4),
                             0);
        if (i % 11 == 0)
            assert_int_equal(fg_buf_printf(&msg, "%sReviewed-by: Rev Iewer <rev@example.org>\n",
                                           i % 7 == 0 ? "" : "\n"),
                             0);
        assert_int_equal(
            fg_buf_printf(&s,
                          "commit refs/heads/%s\nmark :%d\nauthor Dev %d <dev%d@example.org> "
                          "%lld %s\ncommitter %s %lld %s\ndata %zu\n%s",
                          branch_of(i), i, i % 4, i % 4, at, zone,
                          i % 5 == 0 ? "Linus T <linus@example.org>" : "Dev X <devx@example.org>",
                          at + 60 * (i % 3), zones[(i + 2) % 5], msg.len, msg.ptr),
            0);
        fg_buf_dispose(&msg);
        if (i > 1)
            assert_int_equal(fg_buf_printf(&s, "from :%d\n", parent_of(i)), 0);
        if (i == 600) {
            assert_int_equal(fg_buf_puts(&s, "merge :380\n\n"), 0);
            continue;
        }
        snprintf(path, sizeof(path), "dir%d/file%d.txt", i % 5, (i * 7) % 40);
        put_file(&s, path, i);
        if (i % 3 == 0) {
            snprintf(path, sizeof(path), "docs/notes%d.md", i % 9);
            put_file(&s, path, i + 1);
        }
        if (i % 97 == 96)
            assert_int_equal(fg_buf_printf(&s, "M 100644 inline extra/e%d.txt\ndata 4\nabc\n", i),
                             0);
        if (i % 97 == 0)
            assert_int_equal(fg_buf_printf(&s, "D extra/e%d.txt\n", i - 1), 0);
        if (i % 50 == 0) {
            assert_int_equal(fg_buf_printf(&s, "M 100644 inline bin/blob%d.bin\ndata 6\n", i), 0);
            assert_int_equal(fg_buf_put(&s, "a\0b\0c\n", 6), 0);
        }
        assert_int_equal(fg_buf_putc(&s, '\n'), 0);
    }
    assert_int_equal(fg_buf_puts(&s, "reset refs/tags/v1\nfrom :100\n\n"
                                     "tag v2\nfrom :500\ntagger Rel <rel@example.org> 1672600000 "
                                     "+0000\ndata 8\nrelease\n\n"),
                     0);
    assert_non_null(f = fopen(stream_path, "w"));
    assert_int_equal(fwrite(s.ptr, 1, s.len, f), s.len);
    fclose(f);
    fg_buf_dispose(&s);
    run(NULL, NULL, (const char *const[]){"git", "init", "-q", "-b", "main", dir, NULL});
    run(NULL, stream_path, (const char *const[]){"git", "-C", dir, "fast-import", "--quiet", NULL});
    GIT(dir, "checkout", "-q", "-f", "main");
    unlink(stream_path);
}

/* A commit on the checked-out branch that changes a file; returns its sha in out. */
static void commit_change(char out[41], const char *dir, const char *what)
{
    char path[700];
    fg_buf sha;
    FILE *f;

    snprintf(path, sizeof(path), "%s/pushed.txt", dir);
    assert_non_null(f = fopen(path, "a"));
    fprintf(f, "%s\n", what);
    fclose(f);
    GIT(dir, "add", "-A");
    GIT(dir, "-c", "user.name=Pusher", "-c", "user.email=pusher@example.org", "commit", "-q", "-m",
        what);
    fg_buf_init(&sha, 4096);
    run(&sha, NULL, (const char *const[]){"git", "-C", dir, "rev-parse", "HEAD", NULL});
    assert_true(sha.len >= 40);
    memcpy(out, sha.ptr, 40);
    out[40] = '\0';
    fg_buf_dispose(&sha);
}

/* ---- comparing with git ------------------------------------------------------------------- */

static const char *body_string(json_object *o, const char *k1, const char *k2)
{
    json_object *v;

    assert_true(json_object_object_get_ex(o, k1, &v));
    if (k2 != NULL)
        assert_true(json_object_object_get_ex(v, k2, &v));
    return json_object_get_string(v);
}

static long long body_int(json_object *o, const char *k1, const char *k2)
{
    json_object *v;

    assert_true(json_object_object_get_ex(o, k1, &v));
    assert_true(json_object_object_get_ex(v, k2, &v));
    return json_object_get_int64(v);
}

static json_object *find_commit(project_model *m, const char *sha)
{
    for (size_t i = 0; i < m->ncommits; i++)
        if (strcmp(body_string(m->commits[i], "sha", NULL), sha) == 0)
            return m->commits[i];
    return NULL;
}

/* Checks one git log record (fields split by 0x1f, numstat after the last) against its body. */
static void compare_record(project_model *m, char *record, size_t *out_checked)
{
    char *f[11];
    char *at = record;
    json_object *body, *parents, *trailers, *files, *v;
    fg_buf text;
    long long ins = 0, del = 0, nfiles = 0;

    for (int k = 0; k < 10; k++) {
        char *sep = strchr(at, '\x1f');
        assert_non_null(sep);
        *sep = '\0';
        f[k] = at;
        at = sep + 1;
    }
    f[10] = at;
    body = find_commit(m, f[0]);
    if (body == NULL)
        fail_msg("commit %s was never sent", f[0]);
    /* parents, space-separated */
    assert_true(json_object_object_get_ex(body, "parents", &parents));
    fg_buf_init(&text, 1 << 20);
    for (size_t i = 0; i < json_object_array_length(parents); i++)
        assert_int_equal(
            fg_buf_printf(&text, "%s%s", i ? " " : "",
                          json_object_get_string(json_object_array_get_idx(parents, i))),
            0);
    assert_string_equal(text.ptr, f[1]);
    assert_string_equal(body_string(body, "author", "name"), f[2]);
    assert_string_equal(body_string(body, "author", "email"), f[3]);
    assert_string_equal(body_string(body, "author", "at"), f[4]);
    assert_string_equal(body_string(body, "committer", "name"), f[5]);
    assert_string_equal(body_string(body, "committer", "email"), f[6]);
    assert_string_equal(body_string(body, "committer", "at"), f[7]);
    assert_string_equal(body_string(body, "message", NULL), f[8]);
    /* trailers as git prints them: "Key: value" lines */
    fg_buf_clear(&text);
    assert_true(json_object_object_get_ex(body, "trailers", &trailers));
    for (size_t i = 0; i < json_object_array_length(trailers); i++) {
        json_object *t = json_object_array_get_idx(trailers, i);
        assert_int_equal(fg_buf_printf(&text, "%s: %s\n", body_string(t, "key", NULL),
                                       body_string(t, "value", NULL)),
                         0);
    }
    assert_string_equal(text.ptr, f[9]);
    /* numstat: every line counted, binary as 0 */
    assert_true(json_object_object_get_ex(body, "files", &files));
    for (char *line = strtok_r(f[10], "\n", &at); line != NULL; line = strtok_r(NULL, "\n", &at)) {
        char path[1024];
        char a[32], d[32];
        json_object *file;

        if (sscanf(line, "%31[^\t]\t%31[^\t]\t%1023[^\n]", a, d, path) != 3)
            continue;
        file = json_object_array_get_idx(files, (size_t)nfiles);
        assert_non_null(file);
        assert_string_equal(body_string(file, "path", NULL), path);
        if (strcmp(a, "-") == 0) {
            assert_true(json_object_object_get_ex(file, "binary", &v) &&
                        json_object_get_boolean(v));
        } else {
            assert_int_equal(json_object_get_int64(json_object_object_get(file, "insertions")),
                             count_of(a));
            assert_int_equal(json_object_get_int64(json_object_object_get(file, "deletions")),
                             count_of(d));
            ins += count_of(a);
            del += count_of(d);
        }
        nfiles++;
    }
    assert_int_equal(json_object_array_length(files), (size_t)nfiles);
    assert_int_equal(body_int(body, "stats", "insertions"), ins);
    assert_int_equal(body_int(body, "stats", "deletions"), del);
    assert_int_equal(body_int(body, "stats", "files"), nfiles);
    assert_true(json_object_object_get_ex(body, "isMerge", &v));
    assert_int_equal(json_object_get_boolean(v), json_object_array_length(parents) > 1);
    fg_buf_dispose(&text);
    (*out_checked)++;
}

/* Every commit git lists for the repository equals the body commit-sync sent for it. */
static size_t compare_with_git_log(project_model *m, const char *dir)
{
    fg_buf log;
    size_t checked = 0;
    char *save = NULL;

    fg_buf_init(&log, 256u << 20);
    run(&log, NULL,
        (const char *const[]){"git", "-C", dir, "log", "--branches", "--tags", "--no-renames",
                              "--numstat",
                              "--format=%x1e%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%cn%x1f%ce%x1f%cI"
                              "%x1f%B%x1f%(trailers:only,unfold)%x1f",
                              NULL});
    /* commits are only touched by this thread: no lock (a failed assert must not keep one) */
    for (char *r = strtok_r(log.ptr, "\x1e", &save); r != NULL; r = strtok_r(NULL, "\x1e", &save))
        compare_record(m, r, &checked);
    fg_buf_dispose(&log);
    return checked;
}

/* Parents came before children: a prefix of what was sent is closed under ancestry. */
static void assert_parents_first(project_model *m)
{
    for (size_t i = 0; i < m->ncommits; i++) {
        json_object *parents;

        assert_true(json_object_object_get_ex(m->commits[i], "parents", &parents));
        for (size_t k = 0; k < json_object_array_length(parents); k++) {
            const char *p = json_object_get_string(json_object_array_get_idx(parents, k));
            bool before = false;

            for (size_t j = 0; j < i && !before; j++)
                before = strcmp(body_string(m->commits[j], "sha", NULL), p) == 0;
            if (!before)
                fail_msg("commit %zu was sent before its parent %s", i, p);
        }
    }
}

static size_t unique_commits(project_model *m)
{
    size_t n;

    pthread_mutex_lock(&model_lock);
    n = m->nevents;
    pthread_mutex_unlock(&model_lock);
    return n;
}

/* ---- the projects the tests share --------------------------------------------------------- */

static char repo1[600];
static project_model *p1;
static char small_repo[600];
static project_model *small;
static char pushed[3][41];
static char forced[2][41];

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_cs_sync__unreachable_remote_is_a_recoverable_failure(void **state)
{
    char url[256];
    project_model *m;
    double retried = metric(&main_proc, RETRIED);
    char needle[512];
    log_probe probe = {main_proc.log, needle};
    char *log;
    (void)state;

    /* a port nobody listens on, with credentials in the URL that must never be shown */
    snprintf(url, sizeof(url), "https://someone:%s@127.0.0.1:%d/group/nothing.git", URL_PASSWORD,
             free_port());
    m = model_new(url, NULL);
    send_commit_sync(m);
    wait_metric(&main_proc, RETRIED, retried + 1);
    snprintf(needle, sizeof(needle), "project %lld: cannot fetch https://127.0.0.1:", m->id);
    assert_true(fg_test_wait_until(log_has, &probe, 10000));
    log = read_text(main_proc.log);
    assert_non_null(strstr(log, "will retry"));
    assert_null(strstr(log, URL_PASSWORD));
    assert_null(strstr(log, "someone"));
    free(log);
    /* still serving: a failure, not a crash */
    assert_int_equal(http_get(NULL, main_proc.base, "/health"), 200);
    pthread_mutex_lock(&model_lock);
    m->registered = false; /* its retry, later, finds nothing to do and is acked */
    pthread_mutex_unlock(&model_lock);
}

static void test_cs_sync__refused_token_is_a_recoverable_failure_without_the_token(void **state)
{
    char url[256], expected[256];
    fg_buf decoded;
    project_model *m;
    double retried = metric(&main_proc, RETRIED);
    char needle[512];
    log_probe probe = {main_proc.log, needle};
    char *log;
    (void)state;

    snprintf(url, sizeof(url), "%s/git/private.git", standin_url);
    m = model_new(url, TOKEN);
    send_commit_sync(m);
    wait_metric(&main_proc, RETRIED, retried + 1);
    snprintf(needle, sizeof(needle), "project %lld: cannot fetch %s: the remote refused", m->id,
             url);
    assert_true(fg_test_wait_until(log_has, &probe, 10000));
    log = read_text(main_proc.log);
    assert_null(strstr(log, TOKEN));
    free(log);
    /* the token travelled as the password of basic auth, never in the URL (no other thread
     * writes these once the fetch failed) */
    assert_true(strncmp(git_auth_seen, "Basic ", 6) == 0);
    fg_buf_init(&decoded, 1024);
    assert_int_equal(fg_base64_decode(&decoded, git_auth_seen + 6, strlen(git_auth_seen + 6)), 0);
    snprintf(expected, sizeof(expected), "git:%s", TOKEN);
    assert_string_equal(decoded.ptr, expected);
    fg_buf_dispose(&decoded);
    assert_null(strstr(git_path_seen, TOKEN));
    pthread_mutex_lock(&model_lock);
    m->registered = false;
    pthread_mutex_unlock(&model_lock);
    assert_int_equal(http_get(NULL, main_proc.base, "/health"), 200);
}

static void test_cs_sync__first_sync_sends_every_commit_as_git_shows_it(void **state)
{
    double sent = metric(&main_proc, SENT);
    (void)state;

    snprintf(repo1, sizeof(repo1), "%s/repo1", tmp_root);
    make_history(repo1);
    p1 = model_new(repo1, NULL); /* a plain local path */
    send_commit_sync(p1);
    wait_sync_complete(p1, 1);
    assert_int_equal(p1->ncommits, FIRST_COMMITS); /* no duplicates either */
    assert_int_equal(unique_commits(p1), FIRST_COMMITS);
    assert_int_equal(metric(&main_proc, SENT) - sent, FIRST_COMMITS);
    assert_int_equal(compare_with_git_log(p1, repo1), FIRST_COMMITS);
    assert_parents_first(p1);
}

static void test_cs_sync__a_push_of_three_sends_exactly_three(void **state)
{
    size_t before = p1->ncommits;
    (void)state;

    for (int i = 0; i < 3; i++)
        commit_change(pushed[i], repo1, i == 0 ? "pushed one" : i == 1 ? "pushed two" : "three");
    send_commit_sync(p1);
    wait_sync_complete(p1, 2);
    assert_int_equal(p1->ncommits - before, 3);
    for (int i = 0; i < 3; i++)
        assert_string_equal(body_string(p1->commits[before + (size_t)i], "sha", NULL), pushed[i]);
    assert_int_equal(p1->ngone, 0);
    assert_int_equal(compare_with_git_log(p1, repo1), FIRST_COMMITS + 3);
}

static void test_cs_sync__force_push_sends_five_deletions_and_two_new(void **state)
{
    size_t before = p1->ncommits;
    fg_buf removed;
    char *save = NULL;
    size_t nremoved = 0;
    (void)state;

    fg_buf_init(&removed, 1 << 16);
    run(&removed, NULL,
        (const char *const[]){"git", "-C", repo1, "rev-list", "HEAD~5..HEAD", NULL});
    GIT(repo1, "reset", "-q", "--hard", "HEAD~5");
    commit_change(forced[0], repo1, "rewritten one");
    commit_change(forced[1], repo1, "rewritten two");
    send_commit_sync(p1);
    wait_sync_complete(p1, 3);
    assert_int_equal(p1->ncommits - before, 2);
    assert_string_equal(body_string(p1->commits[before], "sha", NULL), forced[0]);
    assert_string_equal(body_string(p1->commits[before + 1], "sha", NULL), forced[1]);
    assert_int_equal(p1->ngone, 5);
    for (char *sha = strtok_r(removed.ptr, "\n", &save); sha != NULL;
         sha = strtok_r(NULL, "\n", &save)) {
        bool found = false;
        for (size_t i = 0; i < p1->ngone; i++)
            found = found || strcmp(p1->gone[i], sha) == 0;
        assert_true(found);
        nremoved++;
    }
    assert_int_equal(nremoved, 5);
    fg_buf_dispose(&removed);
}

static void test_cs_sync__unchanged_repository_costs_one_fetch_and_no_walk(void **state)
{
    double fetches = metric(&main_proc, FETCHES), walks = metric(&main_proc, WALKS);
    double sent = metric(&main_proc, SENT), deletions = metric(&main_proc, DELETIONS);
    size_t before = p1->ncommits;
    (void)state;

    send_commit_sync(p1);
    wait_sync_complete(p1, 4);
    assert_int_equal(metric(&main_proc, FETCHES) - fetches, 1);
    assert_int_equal(metric(&main_proc, WALKS) - walks, 0);
    assert_int_equal(metric(&main_proc, SENT) - sent, 0);
    assert_int_equal(metric(&main_proc, DELETIONS) - deletions, 0);
    assert_int_equal(p1->ncommits, before);
    assert_true(fg_test_wait_until(
        log_has, &(log_probe){main_proc.log, "unchanged: one fetch, no walk"}, 10000));
}

typedef struct {
    project_model *m;
    const char *sha;
    bool leaving;
} event_probe;

static bool event_state_is(void *payload)
{
    event_probe *p = payload;
    el_event *e;
    bool ok;

    pump(50);
    pthread_mutex_lock(&model_lock);
    e = model_event_find(p->m, p->sha);
    ok = e != NULL && e->leaving == p->leaving;
    pthread_mutex_unlock(&model_lock);
    return ok;
}

static void newest_live(char out[41], project_model *m)
{
    pthread_mutex_lock(&model_lock);
    for (size_t i = m->nevents; i > 0; i--)
        if (!m->events[i - 1].leaving) {
            snprintf(out, 41, "%s", m->events[i - 1].sha);
            break;
        }
    pthread_mutex_unlock(&model_lock);
}

static void test_cs_sync__global_sync_repairs_both_ways_and_only_when_needed(void **state)
{
    const char *extra = "0123456789abcdef0123456789abcdef01234567";
    char lost[41], latest[41];
    double sent, deletions, acked;
    event_probe back = {p1, lost, false}, out = {p1, extra, true};
    (void)state;

    /* the event log lost a commit: global sync sends it again, and nothing else */
    pthread_mutex_lock(&model_lock);
    snprintf(lost, sizeof(lost), "%s", p1->events[10].sha);
    model_event_drop(p1, lost);
    pthread_mutex_unlock(&model_lock);
    newest_live(latest, p1);
    sent = metric(&main_proc, SENT);
    deletions = metric(&main_proc, DELETIONS);
    acked = metric(&main_proc, ACKED);
    send_global_sync(p1, (long long)live_count(p1), latest);
    wait_metric(&main_proc, ACKED, acked + 1);
    assert_true(fg_test_wait_until(event_state_is, &back, 30000));
    assert_int_equal(metric(&main_proc, SENT) - sent, 1);
    assert_int_equal(metric(&main_proc, DELETIONS) - deletions, 0);

    /* the event log has a commit the repository never had: it goes */
    pthread_mutex_lock(&model_lock);
    model_event_add(p1, extra);
    pthread_mutex_unlock(&model_lock);
    sent = metric(&main_proc, SENT);
    deletions = metric(&main_proc, DELETIONS);
    acked = metric(&main_proc, ACKED);
    send_global_sync(p1, (long long)live_count(p1), latest);
    wait_metric(&main_proc, ACKED, acked + 1);
    assert_true(fg_test_wait_until(event_state_is, &out, 30000));
    assert_int_equal(metric(&main_proc, SENT) - sent, 0);
    assert_int_equal(metric(&main_proc, DELETIONS) - deletions, 1);

    /* in sync: count and latest agree, nothing is sent and the event log is not paged */
    sent = metric(&main_proc, SENT);
    deletions = metric(&main_proc, DELETIONS);
    acked = metric(&main_proc, ACKED);
    send_global_sync(p1, (long long)live_count(p1), latest);
    wait_metric(&main_proc, ACKED, acked + 1);
    assert_int_equal(metric(&main_proc,
                            "fg_commit_sync_syncs_total{kind=\"global_commit_sync\",outcome=\"in_"
                            "sync\"}"),
                     1);
    assert_int_equal(metric(&main_proc, SENT) - sent, 0);
    assert_int_equal(metric(&main_proc, DELETIONS) - deletions, 0);
}

/* "ts" of the first log line of path containing needle (the JSON line starts with it). */
static void line_ts(char out[32], const char *path, const char *needle)
{
    char *text = read_text(path);
    char *hit = strstr(text, needle), *line;

    if (hit == NULL)
        fail_msg("%s: no line with '%s'", path, needle);
    for (line = hit; line > text && line[-1] != '\n'; line--)
        ;
    assert_true(strncmp(line, "{\"ts\":\"", 7) == 0);
    snprintf(out, 32, "%.24s", line + 7);
    free(text);
}

static void test_cs_sync__two_processes_sync_one_project_one_after_the_other(void **state)
{
    service_proc second;
    project_model *m;
    char started[64], done[64], ts[4][32];
    char *logs[2];
    fg_proto_msg msg[2];
    (void)state;

    proc_start(&second, "commit-sync-2");
    m = model_new(repo1, NULL);
    for (int i = 0; i < 2; i++) {
        json_object *known = json_object_new_array();
        start_msg(&msg[i], FG_PROTO_COMMIT_SYNC, m);
        assert_int_equal(fg_proto_msg_set(&msg[i], "known", known), 0);
    }
    /* both at once: each process (prefetch 1) takes one */
    publish_msg(&msg[0]);
    publish_msg(&msg[1]);
    wait_sync_complete(m, 2);
    snprintf(started, sizeof(started), "COMMIT_SYNC of project %lld started", m->id);
    snprintf(done, sizeof(done), "COMMIT_SYNC of project %lld done", m->id);
    logs[0] = read_text(main_proc.log);
    logs[1] = read_text(second.log);
    assert_non_null(strstr(logs[0], started));
    assert_non_null(strstr(logs[1], started));
    line_ts(ts[0], main_proc.log, started);
    line_ts(ts[1], main_proc.log, done);
    line_ts(ts[2], second.log, started);
    line_ts(ts[3], second.log, done);
    /* one waited for the other, and their syncs did not overlap */
    assert_true((strstr(logs[0], "is being synced by another process") != NULL) !=
                (strstr(logs[1], "is being synced by another process") != NULL));
    assert_true(strcmp(ts[2], ts[1]) >= 0 || strcmp(ts[0], ts[3]) >= 0);
    /* the second found nothing new: exactly the history, once */
    assert_int_equal(m->ncommits, unique_commits(m));
    assert_true(m->ncommits >= FIRST_COMMITS);
    free(logs[0]);
    free(logs[1]);
    fg_proto_msg_dispose(&msg[0]);
    fg_proto_msg_dispose(&msg[1]);
    proc_stop(&second);
}

static void test_cs_sync__a_crashed_lock_holder_does_not_block(void **state)
{
    char url[700], lock[700], sha[41], needle[256];
    project_model *m;
    pid_t holder;
    int ready[2];
    char byte;
    int status;
    (void)state;

    snprintf(small_repo, sizeof(small_repo), "%s/repo-small", tmp_root);
    run(NULL, NULL, (const char *const[]){"git", "init", "-q", "-b", "main", small_repo, NULL});
    for (int i = 0; i < 4; i++)
        commit_change(sha, small_repo, "small");
    snprintf(url, sizeof(url), "file://%s", small_repo);
    m = small = model_new(url, NULL);
    snprintf(lock, sizeof(lock), "%s/%lld.lock", mirror_dir, m->id);
    assert_int_equal(pipe(ready), 0);
    holder = fork();
    assert_true(holder >= 0);
    if (holder == 0) {
        int fd;

        prctl(PR_SET_PDEATHSIG, SIGKILL);
        fd = open(lock, O_RDWR | O_CREAT, 0600);
        if (fd < 0 || flock(fd, LOCK_EX) != 0)
            _exit(1);
        if (write(ready[1], "x", 1) != 1)
            _exit(1);
        pause();
        _exit(0);
    }
    assert_int_equal(read(ready[0], &byte, 1), 1);
    send_commit_sync(m);
    snprintf(needle, sizeof(needle), "mirror of project %lld is being synced by another process",
             m->id);
    assert_true(fg_test_wait_until(log_has, &(log_probe){main_proc.log, needle}, 30000));
    /* the holder dies without unlocking: the kernel drops its lock, the sync goes on */
    assert_int_equal(kill(holder, SIGKILL), 0);
    assert_int_equal(waitpid(holder, &status, 0), holder);
    wait_sync_complete(m, 1);
    assert_int_equal(m->ncommits, 4);
    assert_string_equal(body_string(m->commits[3], "sha", NULL), sha);
    close(ready[0]);
    close(ready[1]);
}

static bool file_exists(void *payload)
{
    return access(payload, F_OK) == 0;
}

static void test_cs_sync__a_sync_without_state_asks_for_a_global_sync(void **state)
{
    char path[700], sha[41];
    size_t before = small->ncommits;
    (void)state;

    /* the state is lost (as with a mirror re-cloned): commits that left before this sync and are
     * older than `known` could go unnoticed, so commit-sync asks event-log for a global sync */
    snprintf(path, sizeof(path), "%s/%lld.git/fg-sync-state", mirror_dir, small->id);
    /* written once the last message is confirmed, so possibly just after we got it */
    assert_true(fg_test_wait_until(file_exists, path, 10000));
    assert_int_equal(unlink(path), 0);
    commit_change(sha, small_repo, "after the state was lost");
    send_commit_sync(small);
    wait_sync_complete(small, 2);
    assert_int_equal(small->ncommits - before, 1);
    assert_string_equal(body_string(small->commits[before], "sha", NULL), sha);
    assert_int_equal(small->global_requests, 1);
    /* and the state is back: the next sync is the cheap one */
    assert_true(fg_test_wait_until(file_exists, path, 10000));
}

typedef struct {
    char paths[2][700];
} gone_probe;

static bool paths_gone(void *payload)
{
    gone_probe *g = payload;
    struct stat st;

    pump(20);
    return stat(g->paths[0], &st) != 0 && stat(g->paths[1], &st) != 0;
}

static void test_cs_sync__project_removed_reclaims_the_mirror(void **state)
{
    gone_probe g;
    struct stat st;
    (void)state;

    snprintf(g.paths[0], sizeof(g.paths[0]), "%s/%lld.git", mirror_dir, p1->id);
    snprintf(g.paths[1], sizeof(g.paths[1]), "%s/%lld.lock", mirror_dir, p1->id);
    assert_int_equal(stat(g.paths[0], &st), 0);
    send_project_removed(p1);
    assert_true(fg_test_wait_until(paths_gone, &g, 30000));
    assert_int_equal(metric(&main_proc, "fg_commit_sync_mirrors_removed_total"), 1);
}

/* ---- set-up ------------------------------------------------------------------------------- */

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void delete_test_queues(void)
{
    static const char *const suffixes[] = {"", ".retry", ".parked"};

    for (size_t i = 0; i < 3; i++) {
        char url[512];
        fg_http_client_request req;
        fg_http_client_response res;

        snprintf(url, sizeof(url), "%s/api/queues/%%2F/fg.%s%s",
                 fg_test_stack_env("FG_RABBITMQ_MGMT_URL"), TEST_QUEUE, suffixes[i]);
        fg_http_client_request_init(&req);
        req.url = url;
        req.method = "DELETE";
        req.auth = FG_HTTP_AUTH_BASIC;
        req.username = fg_test_stack_env("FG_RABBITMQ_USER");
        req.password = fg_test_stack_env("FG_RABBITMQ_PASSWORD");
        fg_http_client_response_init(&res);
        if (fg_http_client_send(http, &res, &req) < 0 || res.status >= 300)
            printf("note: could not delete queue fg.%s%s\n", TEST_QUEUE, suffixes[i]);
        fg_http_client_response_dispose(&res);
    }
}

static int set_up(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(tmp_root));
    snprintf(mirror_dir, sizeof(mirror_dir), "%s/mirrors", tmp_root);
    assert_int_equal(mkdir(mirror_dir, 0700), 0);
    id_base = (long long)time(NULL) * 100;
    standin_start();
    bus_start();
    /* the stack's commit-sync would take our messages from fg.commit-sync: ours replace it */
    if (http_get(NULL, fg_test_stack_env("FG_COMMIT_SYNC_URL"), "/health") == 200) {
        stack_commit_sync_was_running = true;
        assert_int_equal(fg_test_stack("stop commit-sync"), 0);
    }
    proc_start(&main_proc, "commit-sync");
    return 0;
}

static int tear_down(void **state)
{
    (void)state;
    proc_stop(&main_proc);
    if (stack_commit_sync_was_running && fg_test_stack("start commit-sync") != 0)
        printf("note: could not start the stack's commit-sync again\n");
    fg_amqp_free(bus);
    delete_test_queues();
    standin_stop();
    assert_int_equal(standin_unauthorised, 0); /* commit-sync always sent the service key */
    if (getenv("FG_KEEP_TEST_FILES") == NULL)
        nftw(tmp_root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
    for (size_t i = 0; i < nmodels; i++) {
        for (size_t k = 0; k < models[i].ncommits; k++)
            json_object_put(models[i].commits[k]);
        free(models[i].commits);
        free(models[i].events);
        free(models[i].gone);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        /* the failures first: their retries come back 10 s later and are acked meanwhile */
        cmocka_unit_test(test_cs_sync__unreachable_remote_is_a_recoverable_failure),
        cmocka_unit_test(test_cs_sync__refused_token_is_a_recoverable_failure_without_the_token),
        cmocka_unit_test(test_cs_sync__first_sync_sends_every_commit_as_git_shows_it),
        cmocka_unit_test(test_cs_sync__a_push_of_three_sends_exactly_three),
        cmocka_unit_test(test_cs_sync__force_push_sends_five_deletions_and_two_new),
        cmocka_unit_test(test_cs_sync__unchanged_repository_costs_one_fetch_and_no_walk),
        cmocka_unit_test(test_cs_sync__global_sync_repairs_both_ways_and_only_when_needed),
        cmocka_unit_test(test_cs_sync__two_processes_sync_one_project_one_after_the_other),
        cmocka_unit_test(test_cs_sync__a_crashed_lock_holder_does_not_block),
        cmocka_unit_test(test_cs_sync__a_sync_without_state_asks_for_a_global_sync),
        cmocka_unit_test(test_cs_sync__project_removed_reclaims_the_mirror),
    };
    fg_http_client_options o;
    int rc;

    fg_test_stack_env("FG_COMMIT_SYNC_URL"); /* skip the whole program without a stack */
    fg_test_stack_env("FG_AMQP_URL");
    if (evthread_use_pthreads() != 0)
        return 1;
    fg_http_client_options_init(&o);
    o.max_attempts = 1;
    o.timeout_ms = 30000;
    o.max_response_bytes = 64u << 20;
    if (fg_http_client_new(&http, &o) < 0)
        return 1;
    rc = cmocka_run_group_tests(tests, set_up, tear_down);
    fg_http_client_free(http);
    return rc;
}
