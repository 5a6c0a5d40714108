/*
 * End to end against a running stack (deploy/local/stack.sh): a local git repository is activated
 * through webhook as a GitHub project, synced by commit-sync, turned into triples and stored; then
 * GitHub push deliveries (a plain push, then a force push) signed with the project's derived
 * secret bring the graph along. Every count the graph gives is compared with git's own answer
 * for the same repository. The tests run in order and share one project.
 */
#include "test_support.h"

#include <ctype.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fg/base64.h"
#include "fg/buf.h"
#include "fg/crypto.h"
#include "fg/http_client.h"

#define WAIT_MS         120000
#define OUTPUT_MAX      ((size_t)16 * 1024 * 1024)
#define CMD_MAX         4096
#define SHA_LEN         40
#define FG_NS           "https://w3id.org/forgegraph/ns#"
#define PROV_NS         "http://www.w3.org/ns/prov#"
#define PREFIXES        "PREFIX fg: <" FG_NS "> PREFIX prov: <" PROV_NS "> "
#define INITIAL_COMMITS 6

/* The trailer keys whose activities are checked, with their activity types. */
static const struct {
    const char *key, *type;
} kinds[] = {
    {"Signed-off-by", "signed-off-commit"},
    {"Reviewed-by", "reviewed-commit"},
    {"Tested-by", "tested-commit"},
    {"Co-authored-by", "co-authored-commit"},
    {"Reported-by", "reported-commit"},
    {"Acked-by", "approved-commit"},
    {"Cc", "informed-commit"},
};
#define NKINDS (sizeof(kinds) / sizeof(kinds[0]))

static struct {
    char dir[256];
    long long forge_id, project;
    char secret[FG_CRYPTO_SHA256_HEX_LEN + 1];
    char graph[512];
    int commits_made, deliveries;
    bool registered;
    fg_http_client *http;
} e2e;

/* ---- processes ---- */

/* Runs cmd with sh, its stdout into out (NULL: discarded); returns the exit status. */
static int run(fg_buf *out, const char *cmd)
{
    char chunk[8192];
    size_t n;
    FILE *p = popen(cmd, "r");

    if (p == NULL)
        return -1;
    while ((n = fread(chunk, 1, sizeof(chunk), p)) > 0)
        if (out != NULL)
            assert_int_equal(fg_buf_put(out, chunk, n), 0);
    int st = pclose(p);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void git(fg_buf *out, const char *args)
{
    char cmd[CMD_MAX];

    snprintf(cmd, sizeof(cmd), "git -C '%s' -c commit.gpgsign=false %s", e2e.dir, args);
    if (run(out, cmd) != 0)
        fail_msg("failed: %s", cmd);
}

static void head_sha(char out[SHA_LEN + 1])
{
    fg_buf b;

    fg_buf_init(&b, 1024);
    git(&b, "rev-parse HEAD");
    assert_true(b.len >= SHA_LEN);
    memcpy(out, b.ptr, SHA_LEN);
    out[SHA_LEN] = '\0';
    fg_buf_dispose(&b);
}

static void write_file(const char *name, const char *text)
{
    char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", e2e.dir, name);
    assert_non_null(f = fopen(path, "w"));
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* One commit whose author, trailers and line changes depend on its number: two authors (one
 * written with capitals), a committer who is neither, every trailer kind, a trailer repeated
 * for the same email in another case, and trailers that must give no activity. */
static void commit(void)
{
    int i = e2e.commits_made++;
    const char *author = i % 2 ? "Bob Builder" : "Alice Author";
    const char *email = i % 2 ? "Bob@Example.ORG" : "alice@example.org";
    fg_buf msg, content;

    fg_buf_init(&msg, 65536);
    fg_buf_init(&content, 65536);
    assert_int_equal(
        fg_buf_printf(&msg, "change %d of the e2e repository\n\nWhy it matters.\n\n", i), 0);
    assert_int_equal(fg_buf_printf(&msg, "Signed-off-by: %s <%s>\n", author, email), 0);
    if (i % 3 == 0)
        assert_int_equal(fg_buf_puts(&msg, "Signed-off-by: Carol <carol@example.org>\n"
                                           "Signed-off-by: Carol C <CAROL@example.org>\n"),
                         0);
    if (i % 2 == 0)
        assert_int_equal(fg_buf_puts(&msg, "Reviewed-by: Dan Reviewer <dan@example.org>\n"), 0);
    if (i % 3 != 2)
        assert_int_equal(fg_buf_puts(&msg, "Co-authored-by: Eve <eve@example.org>\n"), 0);
    if (i % 4 == 1)
        assert_int_equal(fg_buf_puts(&msg, "Tested-by: Frank <frank@example.org>\n"
                                           "Tested-by: Dan Reviewer <dan@example.org>\n"),
                         0);
    if (i % 2 == 1)
        assert_int_equal(fg_buf_puts(&msg, "Reported-by: Grace <grace@example.org>\n"), 0);
    if (i % 3 == 1)
        assert_int_equal(fg_buf_puts(&msg, "Acked-by: Heidi <heidi@example.org>\n"), 0);
    /* no email: no activity; a list with an empty name: informed-commit */
    assert_int_equal(fg_buf_puts(&msg, "Signed-off-by: No Email\nCc: <list@example.org>\n"), 0);
    write_file("msg.txt", msg.ptr);
    /* a growing file (insertions) and a rewritten one (insertions and deletions) */
    for (int k = 0; k <= i; k++)
        assert_int_equal(fg_buf_printf(&content, "line %d\n", k), 0);
    write_file("grow.txt", content.ptr);
    fg_buf_clear(&content);
    for (int k = 0; k < 3 + i % 4; k++)
        assert_int_equal(fg_buf_printf(&content, "rev %d row %d\n", i, k), 0);
    write_file("churn.txt", content.ptr);
    assert_int_equal(setenv("GIT_AUTHOR_NAME", author, 1), 0);
    assert_int_equal(setenv("GIT_AUTHOR_EMAIL", email, 1), 0);
    git(NULL, "add grow.txt churn.txt");
    git(NULL, "commit -q -F msg.txt");
    fg_buf_dispose(&msg);
    fg_buf_dispose(&content);
}

/* ---- what git says ---- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Distinct strings among n (sorted in place). */
static long long distinct(char **v, size_t n)
{
    long long d = 0;

    if (n == 0)
        return 0;
    qsort(v, n, sizeof(*v), cmp_str);
    for (size_t i = 0; i < n; i++)
        if (i == 0 || strcmp(v[i], v[i - 1]) != 0)
            d++;
    return d;
}

static void lower(char *s)
{
    for (; *s; s++)
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
}

/* The email of a trailer value "Name <email>", lower-cased, into out; false when it has none. */
static bool trailer_email(char *out, size_t cap, const char *v, size_t len)
{
    const char *open = NULL;

    while (len > 0 && isspace((unsigned char)v[len - 1]))
        len--;
    if (len == 0 || v[len - 1] != '>')
        return false;
    for (size_t i = 0; i + 1 < len; i++)
        if (v[i] == '<')
            open = v + i;
    if (open == NULL || (size_t)(v + len - 1 - open - 1) == 0)
        return false;
    size_t n = (size_t)(v + len - 1 - open - 1);
    if (n >= cap || memchr(open + 1, ' ', n) != NULL)
        return false;
    memcpy(out, open + 1, n);
    out[n] = '\0';
    lower(out);
    return true;
}

/* Distinct (commit, email) pairs of `key` trailers over `git log <range>`. */
static long long git_trailer_pairs(const char *range, const char *key)
{
    char args[512], email[400], *line;
    fg_buf out;
    char **pairs = NULL;
    size_t n = 0;
    long long d;

    fg_buf_init(&out, OUTPUT_MAX);
    snprintf(args, sizeof(args),
             "log --format='%%H%%x1e%%(trailers:key=%s,valueonly,separator=%%x1f)%%x1d' %s", key,
             range);
    git(&out, args);
    for (char *rec = out.ptr; (line = strchr(rec, '\x1d')) != NULL; rec = line + 1) {
        char *sha = rec, *sep = strchr(rec, '\x1e');
        *line = '\0';
        while (*sha == '\n')
            sha++;
        assert_non_null(sep);
        *sep = '\0';
        for (char *v = sep + 1; *v;) {
            char *end = strchr(v, '\x1f');
            size_t len = end ? (size_t)(end - v) : strlen(v);
            if (trailer_email(email, sizeof(email), v, len)) {
                assert_non_null(pairs = realloc(pairs, (n + 1) * sizeof(*pairs)));
                assert_non_null(pairs[n] = malloc(strlen(sha) + strlen(email) + 2));
                snprintf(pairs[n], strlen(sha) + strlen(email) + 2, "%s %s", sha, email);
                n++;
            }
            v = end ? end + 1 : v + len;
        }
    }
    d = distinct(pairs, n);
    for (size_t i = 0; i < n; i++)
        free(pairs[i]);
    free(pairs);
    fg_buf_dispose(&out);
    return d;
}

/* Lines of `git log <args>` output (one per commit for a one-line format). */
static long long git_lines(const char *args, bool distinct_lower)
{
    fg_buf out;
    char **v = NULL;
    size_t n = 0;
    long long d;

    fg_buf_init(&out, OUTPUT_MAX);
    git(&out, args);
    for (char *p = out.ptr; *p;) {
        char *nl = strchr(p, '\n');
        if (nl != NULL)
            *nl = '\0';
        lower(p);
        assert_non_null(v = realloc(v, (n + 1) * sizeof(*v)));
        v[n++] = p;
        p = nl ? nl + 1 : p + strlen(p);
    }
    d = distinct_lower ? distinct(v, n) : (long long)n;
    free(v);
    fg_buf_dispose(&out);
    return d;
}

/* Sums of insertions and deletions of --numstat --no-renames, merges excluded. */
static void git_lines_changed(long long *ins, long long *del)
{
    fg_buf out;

    *ins = *del = 0;
    fg_buf_init(&out, OUTPUT_MAX);
    git(&out, "log --numstat --no-renames --no-merges --format=");
    for (char *l = out.ptr, *nl; *l; l = nl ? nl + 1 : l + strlen(l)) {
        char *end;
        if ((nl = strchr(l, '\n')) != NULL)
            *nl = '\0';
        long long a = strtoll(l, &end, 10);
        if (end == l || *end != '\t')
            continue; /* binary: "-\t-" */
        long long b = strtoll(end + 1, &end, 10);
        if (*end != '\t')
            continue;
        *ins += a;
        *del += b;
    }
    fg_buf_dispose(&out);
}

/* Activities git implies for one commit: authored, committed (committer differs), trailers. */
static long long git_activities_of(const char *sha)
{
    char range[64], args[128];
    long long n = 1;
    fg_buf out;

    snprintf(range, sizeof(range), "-1 %s", sha);
    for (size_t k = 0; k < NKINDS; k++)
        n += git_trailer_pairs(range, kinds[k].key);
    fg_buf_init(&out, 4096);
    snprintf(args, sizeof(args), "log -1 --format=%%ae%%n%%ce %s", sha);
    git(&out, args);
    lower(out.ptr);
    char *nl = strchr(out.ptr, '\n');
    assert_non_null(nl);
    *nl = '\0';
    if (strncmp(out.ptr, nl + 1, strcspn(nl + 1, "\n")) != 0 ||
        strlen(out.ptr) != strcspn(nl + 1, "\n"))
        n++;
    fg_buf_dispose(&out);
    return n;
}

/* ---- HTTP ---- */

static long http(fg_buf *out, const char *method, const char *base, const char *path,
                 const char *const *extra, size_t nextra, const char *body)
{
    char url[1024], auth[512];
    const char *headers[8] = {auth, "Content-Type: application/json"};
    fg_http_client_request req;
    fg_http_client_response res;
    long status;

    assert_true(nextra <= 6);
    snprintf(url, sizeof(url), "%s%s", base, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", fg_test_stack_env("FG_SERVICE_KEY"));
    for (size_t i = 0; i < nextra; i++)
        headers[2 + i] = extra[i];
    fg_http_client_request_init(&req);
    req.method = method;
    req.url = url;
    req.headers = headers;
    req.nheaders = 2 + nextra;
    req.body = body;
    req.body_len = body ? strlen(body) : 0;
    fg_http_client_response_init(&res);
    if (fg_http_client_send(e2e.http, &res, &req) < 0)
        fail_msg("%s %s: %s", method, url, fg_error_last());
    status = res.status;
    if (out != NULL) {
        fg_buf_clear(out);
        assert_int_equal(fg_buf_put(out, res.body.ptr, res.body.len), 0);
    }
    fg_http_client_response_dispose(&res);
    return status;
}

/* The first binding of the first variable of a SELECT, as a number; or an ASK's boolean. */
static long long sparql_number(const char *query)
{
    fg_buf body, out;
    json_object *root, *v, *first;
    long long n = -1;

    fg_buf_init(&body, OUTPUT_MAX);
    fg_buf_init(&out, OUTPUT_MAX);
    assert_int_equal(fg_buf_puts(&body, "{\"query\":\""), 0);
    assert_int_equal(fg_buf_put_json_string(&body, query, strlen(query)), 0);
    assert_int_equal(fg_buf_puts(&body, "\"}"), 0);
    long status = http(&out, "POST", fg_test_stack_env("FG_TRIPLES_GENERATOR_URL"), "/sparql", NULL,
                       0, body.ptr);
    if (status != 200)
        fail_msg("POST /sparql: %ld %s (query: %s)", status, out.ptr, query);
    assert_non_null(root = json_tokener_parse(out.ptr));
    if (json_object_object_get_ex(root, "boolean", &v)) {
        n = json_object_get_boolean(v) ? 1 : 0;
    } else {
        assert_true(json_object_object_get_ex(root, "results", &v));
        assert_true(json_object_object_get_ex(v, "bindings", &v));
        if (json_object_array_length(v) == 0) {
            n = 0;
        } else {
            first = json_object_array_get_idx(v, 0);
            json_object_object_foreach(first, key, val)
            {
                (void)key;
                json_object *value;
                if (json_object_object_get_ex(val, "value", &value))
                    n = strtoll(json_object_get_string(value), NULL, 10);
                break;
            }
        }
    }
    json_object_put(root);
    fg_buf_dispose(&body);
    fg_buf_dispose(&out);
    return n;
}

static long long graph_count(const char *select, const char *where)
{
    char q[4096];

    snprintf(q, sizeof(q), PREFIXES "SELECT (%s AS ?n) WHERE { GRAPH <%s> { %s } }", select,
             e2e.graph, where);
    return sparql_number(q);
}

static long long activities_of_type(const char *type)
{
    char where[256];

    snprintf(where, sizeof(where), "?a a fg:Activity ; fg:type \"%s\"", type);
    return graph_count("COUNT(DISTINCT ?a)", where);
}

static long long activities_of_commit(const char *sha)
{
    char where[512];

    snprintf(where, sizeof(where), "?a fg:commit <%s/commits/%s>",
             fg_test_stack_env("FG_GRAPH_BASE"), sha);
    return graph_count("COUNT(DISTINCT ?a)", where);
}

static long long commit_nodes(const char *sha)
{
    char where[512];

    snprintf(where, sizeof(where), "<%s/commits/%s> a fg:Commit",
             fg_test_stack_env("FG_GRAPH_BASE"), sha);
    return graph_count("COUNT(*)", where);
}

/* Fails naming each type's count in the graph when the commit's activities differ from git's. */
static void assert_commit_activities(const char *sha)
{
    static const char *const types[] = {"authored-commit", "committed-commit", "signed-off-commit",
                                        "reviewed-commit", "tested-commit",    "co-authored-commit",
                                        "reported-commit", "approved-commit",  "informed-commit"};
    long long got = activities_of_commit(sha), want = git_activities_of(sha);
    char where[512], detail[1024];
    size_t used = 0;

    if (got == want)
        return;
    detail[0] = '\0';
    for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
        snprintf(where, sizeof(where), "?a fg:commit <%s/commits/%s> ; fg:type \"%s\"",
                 fg_test_stack_env("FG_GRAPH_BASE"), sha, types[t]);
        used += (size_t)snprintf(detail + used, sizeof(detail) - used, " %s=%lld", types[t],
                                 graph_count("COUNT(DISTINCT ?a)", where));
    }
    fail_msg("commit %s: graph has %lld activities, git implies %lld;%s", sha, got, want, detail);
}

/* ---- event-log ---- */

typedef struct {
    long long total;
    bool done;
    long long failed;
} status;

static status project_status(void)
{
    char path[128];
    fg_buf out;
    json_object *root, *v;
    status s = {-1, false, -1};

    fg_buf_init(&out, 1024 * 1024);
    snprintf(path, sizeof(path), "/projects/%lld/status", e2e.project);
    if (http(&out, "GET", fg_test_stack_env("FG_EVENT_LOG_URL"), path, NULL, 0, NULL) == 200 &&
        (root = json_tokener_parse(out.ptr)) != NULL) {
        if (json_object_object_get_ex(root, "total", &v))
            s.total = json_object_get_int64(v);
        if (json_object_object_get_ex(root, "done", &v))
            s.done = json_object_get_boolean(v);
        if (json_object_object_get_ex(root, "failed", &v))
            s.failed = json_object_get_int64(v);
        json_object_put(root);
    }
    fg_buf_dispose(&out);
    return s;
}

static bool done_with_total(void *payload)
{
    status s = project_status();
    return s.done && s.total == *(long long *)payload;
}

/* ---- the checks every step ends with ---- */

static void assert_activities_match_git(void)
{
    long long commits = git_lines("log --format=%H", false);

    assert_int_equal(graph_count("COUNT(DISTINCT ?c)", "?c a fg:Commit"), commits);
    assert_int_equal(activities_of_type("authored-commit"), commits);
    for (size_t k = 0; k < NKINDS; k++) {
        long long want = git_trailer_pairs("HEAD", kinds[k].key);
        long long got = activities_of_type(kinds[k].type);
        if (got != want)
            fail_msg("%s: graph %lld, git %lld", kinds[k].type, got, want);
        assert_true(want > 0); /* the repository exercises every kind */
    }
}

static void push_delivery(const char *before, const char *after, bool forced)
{
    char body[2048], sig[FG_CRYPTO_SHA256_HEX_LEN + 1], h_sig[128], h_id[128], out_msg[64];
    const char *headers[3] = {"X-GitHub-Event: push", h_id, h_sig};
    fg_buf out;

    snprintf(body, sizeof(body),
             "{\"ref\":\"refs/heads/main\",\"before\":\"%s\",\"after\":\"%s\",\"created\":false,"
             "\"deleted\":false,\"forced\":%s,\"repository\":{\"id\":%lld,\"name\":\"repo\","
             "\"full_name\":\"e2e/repo\"},\"commits\":[{\"id\":\"%s\",\"distinct\":true}],"
             "\"head_commit\":{\"id\":\"%s\"}}",
             before, after, forced ? "true" : "false", e2e.forge_id, after, after);
    assert_int_equal(
        fg_crypto_hmac_sha256_hex(sig, e2e.secret, strlen(e2e.secret), body, strlen(body)), 0);
    snprintf(h_sig, sizeof(h_sig), "X-Hub-Signature-256: sha256=%s", sig);
    snprintf(h_id, sizeof(h_id), "X-GitHub-Delivery: e2e-%ld-%d", (long)getpid(), e2e.deliveries++);
    fg_buf_init(&out, 65536);
    long st = http(&out, "POST", fg_test_stack_env("FG_WEBHOOK_URL"), "/webhooks/github", headers,
                   3, body);
    snprintf(out_msg, sizeof(out_msg), "%.60s", out.ptr);
    if (st != 202)
        fail_msg("push delivery: %ld %s", st, out_msg);
    fg_buf_dispose(&out);
}

/* ---- tests ---- */

static void test_e2e__github_project_reaches_the_graph(void **state)
{
    char body[1024];
    fg_buf out;
    json_object *root, *v;
    long long commits;

    (void)state;
    fg_buf_init(&out, 65536);
    snprintf(body, sizeof(body),
             "{\"forge\":\"github\",\"path\":\"e2e/repo-%lld\",\"url\":\"%s\",\"forgeId\":%lld}",
             e2e.forge_id, e2e.dir, e2e.forge_id);
    long st = http(&out, "POST", fg_test_stack_env("FG_WEBHOOK_URL"), "/projects", NULL, 0, body);
    if (st != 201 && st != 200)
        fail_msg("activation: %ld %s", st, out.ptr);
    assert_non_null(root = json_tokener_parse(out.ptr));
    assert_true(json_object_object_get_ex(root, "id", &v));
    e2e.project = json_object_get_int64(v);
    assert_true(e2e.project > 0);
    /* no FG_PUBLIC_URL in the test stack: no hook is made, and the answer says so */
    assert_true(json_object_object_get_ex(root, "hook", &v));
    assert_true(json_object_object_get_ex(v, "status", &v));
    assert_string_equal(json_object_get_string(v), "skipped");
    json_object_put(root);
    snprintf(e2e.graph, sizeof(e2e.graph), "%s/projects/%lld", fg_test_stack_env("FG_GRAPH_BASE"),
             e2e.project);

    commits = git_lines("log --format=%H", false);
    assert_int_equal(commits, INITIAL_COMMITS);
    if (!fg_test_wait_until(done_with_total, &commits, WAIT_MS)) {
        status s = project_status();
        fail_msg("project %lld not done: total %lld done %d", e2e.project, s.total, s.done);
    }
    assert_int_equal(project_status().failed, 0);
    e2e.registered = true;
    assert_activities_match_git();
    /* the committer differs from every author */
    assert_int_equal(activities_of_type("committed-commit"), commits);
    fg_buf_dispose(&out);
}

static void test_e2e__pushed_commits_become_queryable(void **state)
{
    char before[SHA_LEN + 1], mid[SHA_LEN + 1], after[SHA_LEN + 1];
    long long total;

    (void)state;
    if (!e2e.registered)
        skip();
    head_sha(before);
    total = project_status().total;
    commit();
    head_sha(mid);
    commit();
    head_sha(after);
    assert_int_equal(activities_of_commit(after), 0);
    push_delivery(before, after, false);
    total += 2;
    if (!fg_test_wait_until(done_with_total, &total, WAIT_MS)) {
        status s = project_status();
        fail_msg("after the push: total %lld (want %lld) done %d", s.total, total, s.done);
    }
    assert_commit_activities(mid);
    assert_commit_activities(after);
    assert_activities_match_git();
}

typedef struct {
    const char *dropped, *added;
} force_state;

static bool force_push_applied(void *payload)
{
    force_state *f = payload;
    return project_status().done && commit_nodes(f->dropped) == 0 && commit_nodes(f->added) > 0;
}

static void test_e2e__force_push_removes_exactly_the_dropped_commit(void **state)
{
    char before[SHA_LEN + 1], dropped[SHA_LEN + 1], after[SHA_LEN + 1];
    long long dropped_activities, others;
    force_state f = {dropped, after};

    (void)state;
    if (!e2e.registered)
        skip();
    head_sha(before);
    memcpy(dropped, before, sizeof(dropped));
    dropped_activities = activities_of_commit(dropped);
    assert_commit_activities(dropped);
    others = graph_count("COUNT(DISTINCT ?a)", "?a a fg:Activity") - dropped_activities;
    git(NULL, "reset -q --hard HEAD~1");
    commit();
    head_sha(after);
    push_delivery(before, after, true);
    if (!fg_test_wait_until(force_push_applied, &f, WAIT_MS))
        fail_msg("after the force push: dropped %s still has %lld commit triples, new %s %lld",
                 dropped, commit_nodes(dropped), after, commit_nodes(after));
    assert_int_equal(activities_of_commit(dropped), 0);
    assert_commit_activities(after);
    assert_int_equal(graph_count("COUNT(DISTINCT ?a)", "?a a fg:Activity"),
                     others + git_activities_of(after));
    assert_int_equal(project_status().total, git_lines("log --format=%H", false));
    assert_activities_match_git();
}

static void test_e2e__graph_counts_equal_git(void **state)
{
    long long ins, del;

    (void)state;
    if (!e2e.registered)
        skip();
    assert_activities_match_git();
    assert_int_equal(graph_count("COUNT(DISTINCT ?p)",
                                 "?a fg:type \"authored-commit\" ; prov:wasAssociatedWith ?p"),
                     git_lines("log --format=%ae", true));
    git_lines_changed(&ins, &del);
    assert_true(ins > 0 && del > 0);
    assert_int_equal(graph_count("SUM(?i)", "?c a fg:Commit ; fg:insertions ?i"), ins);
    assert_int_equal(graph_count("SUM(?d)", "?c a fg:Commit ; fg:deletions ?d"), del);
}

static int setup(void **state)
{
    char tmpl[] = "/tmp/fg-e2e-XXXXXX", cmd[CMD_MAX];
    const char *key_text = fg_test_stack_env("FG_HOOK_SECRET_KEY");
    char forge_id[32];
    fg_buf key;

    (void)state;
    fg_test_stack_env("FG_WEBHOOK_URL");
    fg_test_stack_env("FG_EVENT_LOG_URL");
    fg_test_stack_env("FG_TRIPLES_GENERATOR_URL");
    fg_test_stack_env("FG_GRAPH_BASE");
    fg_test_stack_env("FG_SERVICE_KEY");
    if (mkdtemp(tmpl) == NULL)
        return -1;
    snprintf(e2e.dir, sizeof(e2e.dir), "%s", tmpl);
    e2e.forge_id = 900000000LL + (long long)getpid();
    snprintf(forge_id, sizeof(forge_id), "%lld", e2e.forge_id);
    fg_buf_init(&key, 1024);
    if (fg_base64_decode(&key, key_text, strlen(key_text)) < 0 ||
        fg_crypto_hook_secret(e2e.secret, key.ptr, key.len, "github", forge_id) < 0)
        return -1;
    fg_crypto_wipe(key.ptr, key.len);
    fg_buf_dispose(&key);
    if (fg_http_client_new(&e2e.http, NULL) < 0)
        return -1;
    if (setenv("GIT_COMMITTER_NAME", "Carol Committer", 1) < 0 ||
        setenv("GIT_COMMITTER_EMAIL", "committer@example.org", 1) < 0 ||
        setenv("GIT_CONFIG_NOSYSTEM", "1", 1) < 0 ||
        setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1) < 0)
        return -1;
    snprintf(cmd, sizeof(cmd), "git init -q -b main '%s'", e2e.dir);
    if (run(NULL, cmd) != 0)
        return -1;
    for (int i = 0; i < INITIAL_COMMITS; i++)
        commit();
    return 0;
}

static int teardown(void **state)
{
    char cmd[CMD_MAX], path[128];

    (void)state;
    if (e2e.project > 0) {
        snprintf(path, sizeof(path), "/projects/%lld", e2e.project);
        if (http(NULL, "DELETE", fg_test_stack_env("FG_WEBHOOK_URL"), path, NULL, 0, NULL) != 200)
            fprintf(stderr, "e2e: removing project %lld failed\n", e2e.project);
    }
    fg_http_client_free(e2e.http);
    fg_crypto_wipe(e2e.secret, sizeof(e2e.secret));
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", e2e.dir);
    return run(NULL, cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_e2e__github_project_reaches_the_graph),
        cmocka_unit_test(test_e2e__pushed_commits_become_queryable),
        cmocka_unit_test(test_e2e__force_push_removes_exactly_the_dropped_commit),
        cmocka_unit_test(test_e2e__graph_counts_equal_git),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
