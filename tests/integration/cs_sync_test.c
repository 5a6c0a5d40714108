/*
 * commit-sync's messages, seen on the bus, on the whole running stack. Projects are registered
 * in the real event-log and synced by the stack's commit-sync (event-log's schedules and
 * POST /projects/{id}/sync ask for the syncs; nothing stands in for a service); this test reads a
 * copy of everything commit-sync publishes (CREATION, EVENTS_STATUS_CHANGE,
 * GLOBAL_COMMIT_SYNC_REQUEST) from a queue of its own bound to fg.events (fg.cs-sync-test),
 * beside event-log's. It checks what only the bus, commit-sync's metrics and its log show: the
 * exact messages and their order, what a sync that finds nothing costs, a crashed lock holder,
 * the global sync asked for after a lost state, the mirror reclaimed on removal.
 * tests/e2e/commit_sync_test.c proves the effects on event-log (issue 5's Done-when).
 */
#include "test_support.h"

#include <fcntl.h>
#include <json-c/json.h>
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
#include "fg/amqp.h"
#include "fg/http_client.h"
#include "fg/proto.h"

#define TEST_QUEUE "cs-sync-test"
#define WAIT_MS    120000

#define FETCHES   "fg_commit_sync_fetches_total"
#define WALKS     "fg_commit_sync_walks_total"
#define SENT      "fg_commit_sync_commits_sent_total"
#define DELETIONS "fg_commit_sync_deletions_sent_total"
#define WAITS     "fg_commit_sync_lock_waits_total"
#define REMOVED   "fg_commit_sync_mirrors_removed_total"
#define IN_SYNC   "fg_commit_sync_syncs_total{kind=\"global_commit_sync\",outcome=\"in_sync\"}"

/* ---- what commit-sync sent for the project -------------------------------------------------- */

/* One project's messages, in the order they arrived. The trace has one token per message:
 * "C<n>" a CREATION of n commits ("C<n>!" with syncComplete), "D<n>" a ToAwaitingDeletion of n
 * shas, "G" a GLOBAL_COMMIT_SYNC_REQUEST; each followed by a space. */
typedef struct {
    long long id;
    char dir[600];
    json_object **commits; /* every body received in CREATION, in order, duplicates included */
    size_t ncommits;
    cs_shas gone; /* every sha received in ToAwaitingDeletion */
    size_t completes;
    fg_buf trace;
    size_t seen; /* trace bytes a test already looked at */
} project_model;

static project_model p1;    /* the generated history */
static project_model small; /* a few commits in a line */
static fg_amqp *bus;
static char tmp_root[] = "/tmp/fg-cs-sync-test-XXXXXX";
static cs_log cs_lines; /* the stack's commit-sync log since set-up */
static const char *cs_url;
static fg_http_client *mgmt;

static void trace_add(project_model *m, char kind, size_t n, bool complete)
{
    assert_int_equal(fg_buf_printf(&m->trace, "%c%zu%s ", kind, n, complete ? "!" : ""), 0);
}

/* Records one delivery in the model of its project; others' messages are ignored. */
static void record(const fg_amqp_delivery *d)
{
    fg_proto_msg msg;
    project_model *m;

    fg_proto_msg_init(&msg);
    /* everything on the bus must pass the contract */
    if (fg_proto_msg_parse(&msg, fg_amqp_delivery_body(d), fg_amqp_delivery_body_len(d)) < 0)
        fail_msg("an invalid %s on the bus: %s", fg_amqp_delivery_category(d), fg_error_last());
    m = !msg.has_project                             ? NULL
        : p1.id > 0 && msg.project.id == p1.id       ? &p1
        : small.id > 0 && msg.project.id == small.id ? &small
                                                     : NULL;
    if (m != NULL && msg.category == FG_PROTO_CREATION) {
        size_t n = fg_proto_msg_count(&msg, "commits");
        bool complete = fg_proto_msg_get_bool(&msg, "syncComplete");

        m->commits = realloc(m->commits, (m->ncommits + n + 1) * sizeof(*m->commits));
        assert_non_null(m->commits);
        for (size_t i = 0; i < n; i++)
            m->commits[m->ncommits++] = json_object_get(fg_proto_msg_commit_body(&msg, i));
        /* every sync here is event-log's COMMIT_SYNC, which says when it was sent: the
         * completion must name it back, or event-log matches it with the wrong send */
        if (complete && fg_proto_msg_get_string(&msg, "syncSentAt") == NULL)
            fail_msg("project %lld: a CREATION with syncComplete without syncSentAt", m->id);
        trace_add(m, 'C', n, complete);
        m->completes += complete;
    } else if (m != NULL && msg.category == FG_PROTO_GLOBAL_COMMIT_SYNC_REQUEST) {
        assert_int_equal(fg_buf_puts(&m->trace, "G "), 0);
    } else if (m != NULL && msg.sub_category == FG_PROTO_SUB_TO_AWAITING_DELETION) {
        size_t n = fg_proto_msg_count(&msg, "events");

        for (size_t i = 0; i < n; i++)
            cs_shas_add(&m->gone, fg_proto_msg_event_sha(&msg, i));
        trace_add(m, 'D', n, false);
    }
    /* other status changes (the triples generator's) are not commit-sync's */
    fg_proto_msg_dispose(&msg);
}

static void pump(void)
{
    fg_amqp_delivery *d = NULL;
    int timeout_ms = 20;

    while (fg_amqp_next(&d, bus, timeout_ms) == 0) {
        record(d);
        assert_int_equal(fg_amqp_ack(bus, d), 0);
        fg_amqp_delivery_free(d);
        timeout_ms = 1;
    }
}

typedef struct {
    const project_model *m;
    size_t n;
} completes_probe;

static bool completes_reached(void *payload)
{
    completes_probe *p = payload;

    pump();
    return p->m->completes >= p->n;
}

/* Waits for the project's syncComplete number n (from 1); returns its trace since the last
 * call (malloc'd). */
static char *wait_complete(project_model *m, size_t n)
{
    completes_probe p = {m, n};
    char *text;

    if (!fg_test_wait_until(completes_reached, &p, WAIT_MS))
        fail_msg("project %lld: no syncComplete number %zu (trace: %s)", m->id, n, m->trace.ptr);
    assert_non_null(text = strdup(m->trace.ptr + m->seen));
    m->seen = m->trace.len;
    return text;
}

static const char *sha_of(json_object *body)
{
    return cs_git_body_string(body, "sha", NULL);
}

static json_object *sent_body(const char *sha, void *payload)
{
    const project_model *m = payload;

    for (size_t i = 0; i < m->ncommits; i++)
        if (strcmp(sha_of(m->commits[i]), sha) == 0)
            return m->commits[i];
    return NULL;
}

static double metric(const char *series)
{
    return cs_stack_metric(cs_url, series);
}

static void wait_line(const char *needle, size_t n)
{
    if (!cs_log_wait(&cs_lines, needle, n, WAIT_MS))
        fail_msg("no line %zu with '%s' in %s", n, needle, cs_lines.path);
}

/* The log since the mark shows n syncs started, all of the project. */
static void assert_only_syncs_of(const cs_log *window, long long project, size_t n)
{
    char ours[128];

    snprintf(ours, sizeof(ours), " of project %lld started\"", project);
    if (cs_log_count(window, " started\",\"project\":") != n || cs_log_count(window, ours) != n) {
        char *text = cs_log_text(window);
        fail_msg("another sync ran meanwhile, the metrics are not this test's alone:\n%s", text);
    }
}

/* ---- tests ---------------------------------------------------------------------------------- */

static void test_cs_sync__first_sync_sends_every_commit_once_parents_first(void **state)
{
    char path[64], *trace, *save = NULL;
    cs_shas seen = {0};
    size_t messages = 0;
    (void)state;

    snprintf(p1.dir, sizeof(p1.dir), "%s/history", tmp_root);
    cs_git_make_history(p1.dir);
    snprintf(path, sizeof(path), "cs-sync-test/history-%d", (int)getpid());
    p1.id = cs_stack_register(path, p1.dir); /* event-log's schedule sends COMMIT_SYNC */
    trace = wait_complete(&p1, 1);
    /* CREATION batches of at most 1000 commits; only the last says syncComplete */
    for (char *tok = strtok_r(trace, " ", &save); tok != NULL; tok = strtok_r(NULL, " ", &save)) {
        char *end = NULL;
        long n = strtol(tok + 1, &end, 10);

        if (tok[0] != 'C' || end == tok + 1 || n < 0 || n > FG_PROTO_BATCH_MAX)
            fail_msg("unexpected message %s in the first sync", tok);
        assert_int_equal(*end == '!', save == NULL || *save == '\0');
        messages++;
    }
    assert_true(messages >= 1);
    free(trace);
    /* every commit once */
    assert_int_equal(p1.ncommits, CS_GIT_HISTORY_COMMITS);
    for (size_t i = 0; i < p1.ncommits; i++) {
        assert_false(cs_shas_has(&seen, sha_of(p1.commits[i])));
        cs_shas_add(&seen, sha_of(p1.commits[i]));
    }
    /* parents before children: a prefix of what was sent is closed under ancestry */
    cs_shas_dispose(&seen);
    for (size_t i = 0; i < p1.ncommits; i++) {
        json_object *parents;

        assert_true(json_object_object_get_ex(p1.commits[i], "parents", &parents));
        for (size_t k = 0; k < json_object_array_length(parents); k++) {
            const char *p = json_object_get_string(json_object_array_get_idx(parents, k));
            if (!cs_shas_has(&seen, p))
                fail_msg("commit %zu was sent before its parent %s", i, p);
        }
        cs_shas_add(&seen, sha_of(p1.commits[i]));
    }
    /* as git shows them */
    assert_int_equal(cs_git_compare_log(p1.dir, sent_body, &p1), CS_GIT_HISTORY_COMMITS);
    cs_shas_dispose(&seen);
}

static void test_cs_sync__a_global_sync_in_sync_sends_nothing(void **state)
{
    char needle[128], line[1024];
    (void)state;

    if (p1.completes == 0)
        skip();
    /* event-log's first GLOBAL_COMMIT_SYNC follows the first complete sync */
    snprintf(needle, sizeof(needle), "\"msg\":\"GLOBAL_COMMIT_SYNC of project %lld done", p1.id);
    wait_line(needle, 1);
    cs_log_line(line, sizeof(line), &cs_lines, needle, 1);
    if (strstr(line, "in sync (0 new, 0 gone)") == NULL)
        fail_msg("not in sync: %s", line);
    pump();
    assert_string_equal(p1.trace.ptr + p1.seen, "");
    assert_true(metric(IN_SYNC) >= 1);
}

static void test_cs_sync__unchanged_repository_costs_one_fetch_and_no_walk(void **state)
{
    double fetches = metric(FETCHES), walks = metric(WALKS);
    double sent = metric(SENT), deletions = metric(DELETIONS);
    size_t before = p1.ncommits;
    char needle[128], line[1024], *trace;
    cs_log window;
    (void)state;

    if (p1.completes == 0)
        skip();
    cs_log_mark(&window, "commit-sync");
    cs_stack_request_sync(p1.id);
    trace = wait_complete(&p1, 2);
    assert_string_equal(trace, "C0! "); /* only to say the sync is complete */
    free(trace);
    /* the metrics are the stack's commit-sync's: no other sync may have run meanwhile */
    snprintf(needle, sizeof(needle), "\"msg\":\"COMMIT_SYNC of project %lld done", p1.id);
    wait_line(needle, 2);
    assert_only_syncs_of(&window, p1.id, 1);
    assert_int_equal(metric(FETCHES) - fetches, 1);
    assert_int_equal(metric(WALKS) - walks, 0);
    assert_int_equal(metric(SENT) - sent, 0);
    assert_int_equal(metric(DELETIONS) - deletions, 0);
    assert_int_equal(p1.ncommits, before);
    cs_log_line(line, sizeof(line), &cs_lines, needle, 2);
    assert_non_null(strstr(line, "unchanged: one fetch, no walk (0 new, 0 gone)"));
}

static void test_cs_sync__force_push_sends_the_deletions_then_the_new_commits(void **state)
{
    char fresh[CS_GIT_SHA_LEN + 1], *trace;
    cs_shas dropped = {0};
    size_t before = p1.ncommits;
    (void)state;

    if (p1.completes == 0)
        skip();
    cs_git_rev_list(&dropped, p1.dir, "HEAD~2..HEAD");
    assert_int_equal(dropped.n, 2);
    CS_GIT(p1.dir, "reset", "-q", "--hard", "HEAD~2");
    cs_git_commit_change(fresh, p1.dir, "rewritten");
    cs_stack_request_sync(p1.id);
    trace = wait_complete(&p1, 3);
    /* one ToAwaitingDeletion with exactly the dropped commits, then the new one */
    assert_string_equal(trace, "D2 C1! ");
    free(trace);
    assert_int_equal(p1.gone.n, 2);
    for (size_t i = 0; i < dropped.n; i++)
        assert_true(cs_shas_has(&p1.gone, dropped.v[i]));
    assert_int_equal(p1.ncommits, before + 1);
    assert_string_equal(sha_of(p1.commits[before]), fresh);
    cs_shas_dispose(&dropped);
}

static void test_cs_sync__a_crashed_lock_holder_does_not_block(void **state)
{
    char lock[1024], sha[CS_GIT_SHA_LEN + 1], needle[256], path[64], *trace;
    double waits = metric(WAITS);
    pid_t holder;
    int ready[2], status;
    char byte;
    (void)state;

    snprintf(small.dir, sizeof(small.dir), "%s/small", tmp_root);
    cs_git_make_small(small.dir, 3);
    snprintf(path, sizeof(path), "cs-sync-test/small-%d", (int)getpid());
    small.id = cs_stack_register(path, small.dir);
    free(wait_complete(&small, 1));
    assert_int_equal(small.ncommits, 3);
    /* event-log's first global sync follows; it must not be the one that meets the lock */
    snprintf(needle, sizeof(needle), "\"msg\":\"GLOBAL_COMMIT_SYNC of project %lld done", small.id);
    wait_line(needle, 1);

    snprintf(lock, sizeof(lock), "%s/%lld.lock", fg_test_stack_env("FG_MIRROR_DIR"), small.id);
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
    cs_git_commit_change(sha, small.dir, "while the lock is held");
    cs_stack_request_sync(small.id);
    snprintf(needle, sizeof(needle), "mirror of project %lld is being synced by another process",
             small.id);
    wait_line(needle, 1);
    /* the holder dies without unlocking: the kernel drops its lock, the sync goes on */
    assert_int_equal(kill(holder, SIGKILL), 0);
    assert_int_equal(waitpid(holder, &status, 0), holder);
    trace = wait_complete(&small, 2);
    assert_string_equal(trace, "C1! ");
    free(trace);
    assert_string_equal(sha_of(small.commits[3]), sha);
    assert_int_equal(metric(WAITS) - waits, 1);
    close(ready[0]);
    close(ready[1]);
}

typedef struct {
    const char *path;
    const char *tip;
} state_probe;

/* The state file names the tip: the sync that sent it wrote its state. */
static bool state_has(void *payload)
{
    state_probe *p = payload;
    char text[4096];
    FILE *f = fopen(p->path, "r");
    size_t n;

    if (f == NULL)
        return false;
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    return strstr(text, p->tip) != NULL;
}

static void test_cs_sync__a_sync_without_state_asks_for_a_global_sync(void **state)
{
    char path[1024], sha[CS_GIT_SHA_LEN + 1], *trace;
    size_t before = small.ncommits;
    state_probe probe;
    (void)state;

    if (small.completes < 2)
        skip();
    /* the state is lost (as with a mirror re-cloned): commits that left before this sync and are
     * older than `known` could go unnoticed, so commit-sync asks event-log for a global sync */
    snprintf(path, sizeof(path), "%s/%lld.git/fg-sync-state", fg_test_stack_env("FG_MIRROR_DIR"),
             small.id);
    /* written once the last message is confirmed, so possibly just after we got it */
    probe.path = path;
    probe.tip = sha_of(small.commits[before - 1]);
    assert_true(fg_test_wait_until(state_has, &probe, 10000));
    assert_int_equal(unlink(path), 0);
    cs_git_commit_change(sha, small.dir, "after the state was lost");
    cs_stack_request_sync(small.id);
    trace = wait_complete(&small, 3);
    /* asked first, so that everything this sync sends is out before its syncComplete; `known`
     * is the whole line of commits, so only the new one is sent */
    assert_string_equal(trace, "G C1! ");
    free(trace);
    assert_string_equal(sha_of(small.commits[before]), sha);
    /* and the state is back: the next sync is the cheap one */
    probe.tip = sha;
    assert_true(fg_test_wait_until(state_has, &probe, 10000));
}

typedef struct {
    char paths[2][1024];
} gone_probe;

static bool paths_gone(void *payload)
{
    gone_probe *g = payload;
    struct stat st;

    return stat(g->paths[0], &st) != 0 && stat(g->paths[1], &st) != 0;
}

static void test_cs_sync__project_removed_reclaims_the_mirror(void **state)
{
    gone_probe g;
    struct stat st;
    double removed = metric(REMOVED);
    char needle[128], line[1024];
    long long id = p1.id;
    cs_log window;
    (void)state;

    if (p1.completes == 0)
        skip();
    cs_log_mark(&window, "commit-sync");
    snprintf(g.paths[0], sizeof(g.paths[0]), "%s/%lld.git", fg_test_stack_env("FG_MIRROR_DIR"), id);
    snprintf(g.paths[1], sizeof(g.paths[1]), "%s/%lld.lock", fg_test_stack_env("FG_MIRROR_DIR"),
             id);
    assert_int_equal(stat(g.paths[0], &st), 0);
    /* event-log's DELETE sends PROJECT_REMOVED */
    cs_stack_remove(id);
    p1.id = -id; /* removed: tear-down leaves it alone */
    assert_true(fg_test_wait_until(paths_gone, &g, 30000));
    snprintf(needle, sizeof(needle), "\"msg\":\"PROJECT_REMOVED of project %lld done", id);
    wait_line(needle, 1);
    cs_log_line(line, sizeof(line), &cs_lines, needle, 1);
    assert_non_null(strstr(line, "mirror removed"));
    assert_only_syncs_of(&window, id, 1);
    assert_int_equal(metric(REMOVED) - removed, 1);
}

/* ---- set-up --------------------------------------------------------------------------------- */

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

/* The queues are this test's alone: they go, so that nothing collects copies afterwards. */
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
        if (fg_http_client_send(mgmt, &res, &req) < 0 || res.status >= 300)
            printf("note: could not delete queue fg.%s%s\n", TEST_QUEUE, suffixes[i]);
        fg_http_client_response_dispose(&res);
    }
}

static int set_up(void **state)
{
    (void)state;
    cs_url = fg_test_stack_env("FG_COMMIT_SYNC_URL");
    fg_test_stack_env("FG_MIRROR_DIR");
    cs_stack_open();
    cs_git_isolate();
    if (mkdtemp(tmp_root) == NULL || fg_http_client_new(&mgmt, NULL) < 0)
        return -1;
    fg_buf_init(&p1.trace, 1 << 20);
    fg_buf_init(&small.trace, 1 << 20);
    /* the stack's commit-sync and event-log do the work (an earlier test may have restarted
     * the broker: they reconnect) */
    if (!cs_stack_wait_ready(cs_url, 60000) ||
        !cs_stack_wait_ready(fg_test_stack_env("FG_EVENT_LOG_URL"), 60000)) {
        printf("the stack's commit-sync or event-log is not ready\n");
        return -1;
    }
    cs_log_mark(&cs_lines, "commit-sync");
    bus_start();
    cs_stack_set_idle(pump);
    return 0;
}

static int tear_down(void **state)
{
    (void)state;
    /* first: a failed removal below ends the tear-down */
    if (getenv("FG_KEEP_TEST_FILES") == NULL)
        fg_test_remove_tree(tmp_root);
    if (p1.id > 0)
        cs_stack_remove(p1.id);
    if (small.id > 0)
        cs_stack_remove(small.id);
    cs_stack_set_idle(NULL);
    fg_amqp_free(bus);
    delete_test_queues();
    fg_http_client_free(mgmt);
    cs_stack_close();
    for (project_model *m = &p1; m != NULL; m = m == &p1 ? &small : NULL) {
        for (size_t k = 0; k < m->ncommits; k++)
            json_object_put(m->commits[k]);
        free(m->commits);
        cs_shas_dispose(&m->gone);
        fg_buf_dispose(&m->trace);
    }
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cs_sync__first_sync_sends_every_commit_once_parents_first),
        cmocka_unit_test(test_cs_sync__a_global_sync_in_sync_sends_nothing),
        cmocka_unit_test(test_cs_sync__unchanged_repository_costs_one_fetch_and_no_walk),
        cmocka_unit_test(test_cs_sync__force_push_sends_the_deletions_then_the_new_commits),
        cmocka_unit_test(test_cs_sync__a_crashed_lock_holder_does_not_block),
        cmocka_unit_test(test_cs_sync__a_sync_without_state_asks_for_a_global_sync),
        cmocka_unit_test(test_cs_sync__project_removed_reclaims_the_mirror),
    };

    fg_test_stack_env("FG_EVENT_LOG_URL"); /* skip the whole program without a stack */
    fg_test_stack_env("FG_AMQP_URL");
    return cmocka_run_group_tests(tests, set_up, tear_down);
}
