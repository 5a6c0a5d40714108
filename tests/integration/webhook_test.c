/*
 * fg-webhook's delivery intake against the real stack (tests/run.sh starts it): verification,
 * order of checks and status codes as DESIGN.md "Trust and secrets" gives them, dedupe, the
 * archive and outbox, routing to COMMIT_SYNC_REQUEST / FORGE_EVENT / ignored, every example
 * payload under ../shared/testdata, replay and export, and a RabbitMQ outage that loses nothing.
 * What reaches the bus is watched through a durable test queue (webhook_client.c); "nothing
 * else was published" is proved with a fence: a last delivery whose message, once seen, comes
 * after everything accepted before it (the relay publishes in outbox order).
 *
 * The body scanner's cases run first and need no stack. FG_WEBHOOK_TEST_SKIP is a cmocka skip
 * pattern: "*rabbitmq*" leaves out the outage test when the stack is shared with other people.
 */
#include "test_support.h"

#include <dirent.h>
#include <event2/thread.h>
#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "webhook_client.h"
#include "webhook_fake_forge.h"
#include "wh_json.h"

#define WEBHOOK_BODY_MAX (25u * 1024 * 1024)
#define BUS_WAIT_MS      60000
#define OUTAGE_PUSHES    500
#define OUTAGE_EVENTS    500
#define EXAMPLES_MAX     512

static const char *webhook;
static long long project_base, projects_used, forge_base, forge_ids_used;

/* ---- fixtures ----------------------------------------------------------------------------- */

static long long new_project(void)
{
    return project_base + projects_used++;
}

static long long new_forge_id(void)
{
    return forge_base + forge_ids_used++;
}

typedef struct {
    const char *forge;
    long long forge_id;
    long long project;
} proj;

static proj make_project(const char *forge)
{
    proj p = {forge, new_forge_id(), new_project()};
    char path[64];

    snprintf(path, sizeof(path), "fgtest/%s-%lld", forge, p.project);
    wt_register(webhook, forge, p.forge_id, p.project, path);
    return p;
}

static size_t github_push(char *out, size_t size, long long repo, const char *nonce)
{
    return (size_t)snprintf(out, size,
                            "{\"ref\":\"refs/heads/main\",\"before\":\"%040d\",\"after\":"
                            "\"%040d\",\"created\":false,\"deleted\":false,\"forced\":true,"
                            "\"commits\":[],\"repository\":{\"id\":%lld,\"full_name\":\"a/b\"},"
                            "\"nonce\":\"%s\"}",
                            0, 1, repo, nonce);
}

static size_t github_issue(char *out, size_t size, long long repo, const char *nonce)
{
    return (size_t)snprintf(out, size,
                            "{\"action\":\"opened\",\"issue\":{\"number\":1,\"title\":\"t\"},"
                            "\"repository\":{\"id\":%lld},\"nonce\":\"%s\"}",
                            repo, nonce);
}

static size_t gitlab_push(char *out, size_t size, long long project, const char *nonce)
{
    return (size_t)snprintf(out, size,
                            "{\"object_kind\":\"push\",\"ref\":\"refs/heads/main\",\"project_id\":"
                            "%lld,\"project\":{\"id\":%lld,\"path_with_namespace\":\"a/b\"},"
                            "\"commits\":[],\"total_commits_count\":0,\"nonce\":\"%s\"}",
                            project, project, nonce);
}

static size_t gitlab_issue(char *out, size_t size, long long project, const char *nonce)
{
    return (size_t)snprintf(out, size,
                            "{\"object_kind\":\"issue\",\"project\":{\"id\":%lld},"
                            "\"object_attributes\":{\"action\":\"open\"},\"nonce\":\"%s\"}",
                            project, nonce);
}

/* Posts a correctly signed delivery for p; returns the status. */
static long send_signed(const proj *p, const char *event, const char *key, const char *body,
                        size_t len)
{
    char secret[65], sig[80];
    wt_delivery d = {webhook, event, key, NULL, NULL, body, len};

    wt_hook_secret(secret, p->forge, p->forge_id);
    if (strcmp(p->forge, "github") == 0) {
        wt_github_signature(sig, secret, body, len);
        d.signature = sig;
        return wt_post_github(&d, NULL);
    }
    d.signature = secret;
    return wt_post_gitlab(&d, NULL);
}

/* Sends a FORGE_EVENT delivery for p and waits for its message: everything accepted before it
 * has been published by then. */
static void fence(const proj *p)
{
    char key[64], body[512];
    bool github = strcmp(p->forge, "github") == 0;
    size_t len = github ? github_issue(body, sizeof(body), p->forge_id, wt_unique(key))
                        : gitlab_issue(body, sizeof(body), p->forge_id, wt_unique(key));

    assert_int_equal(send_signed(p, github ? "issues" : "Issue Hook", key, body, len), 202);
    assert_true(wt_bus_wait_delivery(key, BUS_WAIT_MS));
}

static char *read_whole(const char *path, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    char *data;
    long n;

    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    data[n] = '\0';
    fclose(f);
    *out_len = (size_t)n;
    return data;
}

/* ---- the body scanner (no stack) ---------------------------------------------------------- */

typedef struct {
    const char *body;
    int rc;
    const char *repository_id, *project_id, *top_project_id, *action, *oa_action;
} scan_case;

static void test_webhook__body_scan_follows_rfc_8259_and_finds_the_ids(void **state)
{
    /* the body is nested one level below the message: 31 levels (object + 30 arrays) */
    static const char deep_ok[] =
        "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}";
    static const char deep_bad[] =
        "{\"a\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}";
    static const scan_case cases[] = {
        {"{}", 0, NULL, NULL, NULL, NULL, NULL},
        {" {\"repository\":{\"id\":186853002,\"name\":\"x\"},\"action\":\"opened\"}\n", 0,
         "186853002", NULL, NULL, "opened", NULL},
        {"{\"x\":{\"repository\":{\"id\":1}},\"repository\":[{\"id\":2}]}", 0, NULL, NULL, NULL,
         NULL, NULL},
        {"{\"repository\":{\"id\":1},\"repository\":{\"name\":\"later\"}}", 0, NULL, NULL, NULL,
         NULL, NULL},
        {"{\"repository\":{\"id\":1,\"id\":\"2\"}}", 0, NULL, NULL, NULL, NULL, NULL},
        {"{\"repo\\u0073itory\":{\"\\u0069d\":7}}", 0, "7", NULL, NULL, NULL, NULL},
        {"{\"repository\":{\"id\":-1}}", 0, NULL, NULL, NULL, NULL, NULL},
        {"{\"repository\":{\"id\":1.5}}", 0, NULL, NULL, NULL, NULL, NULL},
        {"{\"repository\":{\"id\":1e3}}", 0, NULL, NULL, NULL, NULL, NULL},
        {"{\"repository\":{\"id\":1234567890123456789}}", 0, NULL, NULL, NULL, NULL, NULL},
        {"{\"repository\":{\"id\":123456789012345678}}", 0, "123456789012345678", NULL, NULL, NULL,
         NULL},
        {"{\"project_id\":5,\"project\":{\"id\":6},\"object_attributes\":{\"action\":\"open\"}}", 0,
         NULL, "6", "5", NULL, "open"},
        {"{\"action\":\"a\\u0000b\"}", 0, NULL, NULL, NULL, NULL, NULL},
        {"{\"action\":\"\"}", 0, NULL, NULL, NULL, NULL, NULL},
        {"{\"action\":\"0123456789012345678901234567890123456789012345678901234567890123\"}", 0,
         NULL, NULL, NULL, "0123456789012345678901234567890123456789012345678901234567890123",
         NULL},
        {"{\"action\":\"01234567890123456789012345678901234567890123456789012345678901234\"}", 0,
         NULL, NULL, NULL, NULL, NULL},
        {"{\"action\":\"\\u00e9t\\u00e9 \\ud83d\\ude00\"}", 0, NULL, NULL, NULL,
         "\xc3\xa9t\xc3\xa9 \xf0\x9f\x98\x80", NULL},
        {deep_ok, 0, NULL, NULL, NULL, NULL, NULL},
        {deep_bad, FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"[]", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"{\"a\":1,}", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"{\"a\":NaN}", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"{'a':1}", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"{\"a\":\"\t\"}", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"{\"a\":\"\xc0\x80\"}", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"{\"a\":\"\xed\xa0\x80\"}", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"{\"a\":\"\\ud800\"}", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"{\"a\\u0000\":1}", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"{\"a\":01}", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"{} x", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"{\"a\":tru}", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
        {"{\"a\":\"unterminated}", FG_EINVALID, NULL, NULL, NULL, NULL, NULL},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const scan_case *c = &cases[i];
        wh_json_facts f;
        int rc = wh_json_scan(&f, c->body, strlen(c->body));

        printf("# case %zu: %s\n", i, rc == 0 ? "ok" : fg_error_last());
        assert_int_equal(rc, c->rc);
        assert_int_equal(f.has_repository_id, c->repository_id != NULL);
        if (c->repository_id != NULL)
            assert_string_equal(f.repository_id, c->repository_id);
        assert_int_equal(f.has_project_id, c->project_id != NULL);
        if (c->project_id != NULL)
            assert_string_equal(f.project_id, c->project_id);
        assert_int_equal(f.has_top_project_id, c->top_project_id != NULL);
        if (c->top_project_id != NULL)
            assert_string_equal(f.top_project_id, c->top_project_id);
        assert_int_equal(f.has_action, c->action != NULL);
        if (c->action != NULL)
            assert_string_equal(f.action, c->action);
        assert_int_equal(f.has_oa_action, c->oa_action != NULL);
        if (c->oa_action != NULL)
            assert_string_equal(f.oa_action, c->oa_action);
    }
}

/* ---- accepted, once ----------------------------------------------------------------------- */

static void accepted_once(const char *forge)
{
    proj p = make_project(forge);
    bool github = strcmp(forge, "github") == 0;
    const char *event = github ? "push" : "Push Hook";
    char key[64], body[512];
    const char *nonce = wt_unique(key);
    size_t len = github ? github_push(body, sizeof(body), p.forge_id, nonce)
                        : gitlab_push(body, sizeof(body), p.forge_id, nonce);

    assert_int_equal(send_signed(&p, event, key, body, len), 202);
    /* the forge tries again (same delivery id): already seen */
    assert_int_equal(send_signed(&p, event, key, body, len), 200);
    fence(&p);
    assert_int_equal(wt_bus_count("COMMIT_SYNC_REQUEST", p.project), 1);
    assert_int_equal(wt_bus_count(NULL, p.project), 2); /* the push and the fence */
    for (size_t i = 0; i < wt_bus_seen(); i++) {
        const wt_message *m = wt_bus_message(i);
        if (m->project == p.project && strcmp(m->category, "COMMIT_SYNC_REQUEST") == 0)
            assert_int_equal(strlen(m->id), 36);
    }
}

static void test_webhook__github_signed_push_gets_202_and_one_message(void **state)
{
    (void)state;
    accepted_once("github");
}

static void test_webhook__gitlab_signed_push_gets_202_and_one_message(void **state)
{
    (void)state;
    accepted_once("gitlab");
}

static void test_webhook__gitlab_dedupes_by_event_uuid_then_by_body_hash(void **state)
{
    proj p = make_project("gitlab");
    char secret[65], uuid[64], nonce[64], body[512];
    size_t len = gitlab_push(body, sizeof(body), p.forge_id, wt_unique(nonce));
    wt_delivery by_uuid = {webhook, "Push Hook", NULL, wt_unique(uuid), secret, body, len};
    wt_delivery by_body = {webhook, "Push Hook", NULL, NULL, secret, body, len};
    (void)state;

    wt_hook_secret(secret, "gitlab", p.forge_id);
    assert_int_equal(wt_post_gitlab(&by_uuid, NULL), 202);
    assert_int_equal(wt_post_gitlab(&by_uuid, NULL), 200);
    /* no Idempotency-Key, no UUID: the body's SHA-256 is the key (a different key than above) */
    assert_int_equal(wt_post_gitlab(&by_body, NULL), 202);
    assert_int_equal(wt_post_gitlab(&by_body, NULL), 200);
    fence(&p);
    assert_int_equal(wt_bus_count("COMMIT_SYNC_REQUEST", p.project), 2);
}

/* ---- refusals ----------------------------------------------------------------------------- */

static void test_webhook__wrong_signature_or_token_is_401(void **state)
{
    proj gh = make_project("github"), other = make_project("github"), gl = make_project("gitlab");
    char key[64], body[512], secret[65], sig[80];
    size_t len = github_push(body, sizeof(body), gh.forge_id, wt_unique(key));
    wt_delivery d = {webhook, "push", key, NULL, NULL, body, len};
    (void)state;

    assert_int_equal(wt_post_github(&d, NULL), 401); /* no signature */
    d.signature = "sha256=0000000000000000000000000000000000000000000000000000000000000000";
    assert_int_equal(wt_post_github(&d, NULL), 401);
    d.signature = "md5=x";
    assert_int_equal(wt_post_github(&d, NULL), 401);
    /* the secret of another repository */
    wt_hook_secret(secret, "github", other.forge_id);
    wt_github_signature(sig, secret, body, len);
    d.signature = sig;
    assert_int_equal(wt_post_github(&d, NULL), 401);
    /* the right secret over another body */
    wt_hook_secret(secret, "github", gh.forge_id);
    wt_github_signature(sig, secret, body, len - 1);
    assert_int_equal(wt_post_github(&d, NULL), 401);

    len = gitlab_push(body, sizeof(body), gl.forge_id, wt_unique(key));
    d = (wt_delivery){webhook, "Push Hook", key, NULL, NULL, body, len};
    assert_int_equal(wt_post_gitlab(&d, NULL), 401); /* no token */
    wt_hook_secret(secret, "gitlab", gl.forge_id + 1);
    d.signature = secret;
    assert_int_equal(wt_post_gitlab(&d, NULL), 401);
    wt_hook_secret(secret, "github", gl.forge_id); /* the other forge's derivation */
    assert_int_equal(wt_post_gitlab(&d, NULL), 401);
    /* nothing was accepted: a valid delivery afterwards is the only message */
    fence(&gh);
    fence(&gl);
    assert_int_equal(wt_bus_count(NULL, gh.project), 1);
    assert_int_equal(wt_bus_count(NULL, gl.project), 1);
}

static void test_webhook__bodies_over_25_mib_are_413(void **state)
{
    char *body = malloc(WEBHOOK_BODY_MAX + 1);
    char key[64];
    wt_delivery d = {webhook,     "push", wt_unique(key),      NULL,
                     "sha256=00", body,   WEBHOOK_BODY_MAX + 1};
    (void)state;

    assert_non_null(body);
    memset(body, ' ', WEBHOOK_BODY_MAX + 1);
    body[0] = '{';
    body[WEBHOOK_BODY_MAX] = '}';
    assert_int_equal(wt_post_github(&d, NULL), 413);
    d.event = "Push Hook";
    assert_int_equal(wt_post_gitlab(&d, NULL), 413);
    free(body);
}

static void test_webhook__malformed_json_and_missing_ids_are_400(void **state)
{
    proj gh = make_project("github"), gl = make_project("gitlab");
    static const char *const bad[] = {"{\"repository\":", "not json", "[1,2]", "{\"a\":1}x",
                                      "{\"a\":\"\xff\"}"};
    char key[64], secret[65], sig[80], body[512];
    size_t len;
    wt_delivery d;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        /* correctly signed, still not JSON: the 400 comes before the signature check */
        wt_hook_secret(secret, "github", gh.forge_id);
        wt_github_signature(sig, secret, bad[i], strlen(bad[i]));
        d = (wt_delivery){webhook, "push", wt_unique(key), NULL, sig, bad[i], strlen(bad[i])};
        assert_int_equal(wt_post_github(&d, NULL), 400);
        wt_hook_secret(secret, "gitlab", gl.forge_id);
        d = (wt_delivery){webhook, "Push Hook", key, NULL, secret, bad[i], strlen(bad[i])};
        assert_int_equal(wt_post_gitlab(&d, NULL), 400);
    }
    len = github_push(body, sizeof(body), gh.forge_id, wt_unique(key));
    wt_hook_secret(secret, "github", gh.forge_id);
    wt_github_signature(sig, secret, body, len);
    d = (wt_delivery){webhook, NULL, key, NULL, sig, body, len}; /* no X-GitHub-Event */
    assert_int_equal(wt_post_github(&d, NULL), 400);
    d = (wt_delivery){webhook, "push", NULL, NULL, sig, body, len}; /* no X-GitHub-Delivery */
    assert_int_equal(wt_post_github(&d, NULL), 400);
    /* GitLab: a body naming no project cannot be verified at all */
    wt_hook_secret(secret, "gitlab", gl.forge_id);
    d = (wt_delivery){
        webhook, "Push Hook", wt_unique(key), NULL, secret, "{\"object_kind\":\"push\"}", 22};
    assert_int_equal(wt_post_gitlab(&d, NULL), 400);
    fence(&gh);
    fence(&gl);
    assert_int_equal(wt_bus_count(NULL, gh.project), 1);
    assert_int_equal(wt_bus_count(NULL, gl.project), 1);
}

static void test_webhook__unknown_project_is_404(void **state)
{
    proj gh = {"github", new_forge_id(), 0}, gl = {"gitlab", new_forge_id(), 0};
    char key[64], body[512];
    size_t len;
    (void)state;

    len = github_push(body, sizeof(body), gh.forge_id, wt_unique(key));
    assert_int_equal(send_signed(&gh, "push", key, body, len), 404);
    len = gitlab_push(body, sizeof(body), gl.forge_id, wt_unique(key));
    assert_int_equal(send_signed(&gl, "Push Hook", key, body, len), 404);
    /* a GitHub ping for an unregistered repository is 404 too: the order puts 404 first */
    len =
        (size_t)snprintf(body, sizeof(body),
                         "{\"zen\":\"z\",\"hook_id\":1,\"repository\":{\"id\":%lld}}", gh.forge_id);
    assert_int_equal(send_signed(&gh, "ping", wt_unique(key), body, len), 404);
}

static void test_webhook__github_ping_is_200_and_publishes_nothing(void **state)
{
    proj p = make_project("github");
    char key[64], body[512];
    size_t len = (size_t)snprintf(body, sizeof(body),
                                  "{\"zen\":\"Keep it logically awesome.\",\"hook_id\":1,"
                                  "\"repository\":{\"id\":%lld}}",
                                  p.forge_id);
    (void)state;

    assert_int_equal(send_signed(&p, "ping", wt_unique(key), body, len), 200);
    fence(&p);
    assert_int_equal(wt_bus_count(NULL, p.project), 1);
}

/* ---- messages ----------------------------------------------------------------------------- */

static void test_webhook__forge_events_carry_event_action_delivery_and_payload(void **state)
{
    proj gh = make_project("github"), gl = make_project("gitlab");
    char key[64], gl_key[64], body[512], gl_body[512];
    size_t len = github_issue(body, sizeof(body), gh.forge_id, wt_unique(key));
    size_t gl_len = gitlab_issue(gl_body, sizeof(gl_body), gl.forge_id, wt_unique(gl_key));
    json_object *sent, *got;
    (void)state;

    assert_int_equal(send_signed(&gh, "issues", key, body, len), 202);
    assert_int_equal(send_signed(&gl, "Issue Hook", gl_key, gl_body, gl_len), 202);
    assert_true(wt_bus_wait_delivery(key, BUS_WAIT_MS));
    assert_true(wt_bus_wait_delivery(gl_key, BUS_WAIT_MS));
    for (size_t i = 0; i < wt_bus_seen(); i++) {
        const wt_message *m = wt_bus_message(i);
        bool mine = strcmp(m->delivery_id, key) == 0, gl_mine = strcmp(m->delivery_id, gl_key) == 0;
        if (!mine && !gl_mine)
            continue;
        assert_string_equal(m->category, "FORGE_EVENT");
        assert_int_equal(m->project, mine ? gh.project : gl.project);
        assert_string_equal(m->event, mine ? "issues" : "Issue Hook");
        assert_string_equal(m->action, mine ? "opened" : "open");
        sent = json_tokener_parse(mine ? body : gl_body);
        got = json_tokener_parse(m->payload);
        assert_true(json_object_equal(sent, got));
        json_object_put(sent);
        json_object_put(got);
    }
}

static long long json_int(const char *text, const char *name)
{
    json_object *root = json_tokener_parse(text), *v;
    long long n = -1;

    if (root != NULL && json_object_object_get_ex(root, name, &v))
        n = json_object_get_int64(v);
    json_object_put(root);
    return n;
}

/* Checks an export page line by line; returns the number of lines, and asserts that the one
 * for delivery `key` carries `body` byte for byte. */
static size_t export_lines(const char *page, const char *key, const char *body)
{
    size_t lines = 0;
    bool found = false;

    for (const char *line = page; *line != '\0';) {
        const char *end = strchr(line, '\n');
        char *copy;
        json_object *root, *v;
        assert_non_null(end); /* every line ends with a newline */
        copy = strndup(line, (size_t)(end - line));
        root = json_tokener_parse(copy);
        assert_non_null(root);
        assert_true(json_object_object_get_ex(root, "deliveryId", &v));
        if (strcmp(json_object_get_string(v), key) == 0) {
            assert_true(json_object_object_get_ex(root, "body", &v));
            assert_string_equal(json_object_get_string(v), body);
            assert_true(json_object_object_get_ex(root, "route", &v));
            assert_string_equal(json_object_get_string(v), "forge_event");
            found = true;
        }
        json_object_put(root);
        free(copy);
        lines++;
        line = end + 1;
    }
    assert_true(found);
    return lines;
}

static void test_webhook__replay_publishes_again_with_a_new_message_id(void **state)
{
    proj p = make_project("github");
    char key[64], body[512], secret[65], sig[80], path[256], replay[128], since[64];
    size_t len = github_issue(body, sizeof(body), p.forge_id, wt_unique(key));
    wt_delivery d = {webhook, "issues", key, NULL, sig, body, len};
    long long id = 0;
    char *answer = NULL;
    char first_id[64];
    time_t now = time(NULL) - 60;
    (void)state;

    wt_hook_secret(secret, "github", p.forge_id);
    wt_github_signature(sig, secret, body, len);
    assert_int_equal(wt_post_github(&d, &id), 202);
    assert_true(id > 0);
    assert_true(wt_bus_wait_delivery(key, BUS_WAIT_MS));
    for (size_t i = 0; i < wt_bus_seen(); i++) {
        if (strcmp(wt_bus_message(i)->delivery_id, key) == 0)
            snprintf(first_id, sizeof(first_id), "%s", wt_bus_message(i)->id);
    }
    /* by archive id */
    snprintf(replay, sizeof(replay), "{\"id\":%lld}", id);
    assert_int_equal(wt_call(webhook, "POST", "/deliveries/replay", replay, &answer), 200);
    assert_int_equal(json_int(answer, "replayed"), 1);
    free(answer);
    fence(&p);
    assert_int_equal(wt_bus_count_delivery(key), 2);
    for (size_t i = 0; i < wt_bus_seen(); i++) {
        const wt_message *m = wt_bus_message(i);
        if (strcmp(m->delivery_id, key) == 0 && strcmp(m->id, first_id) != 0)
            first_id[0] = '\0'; /* the replay carried another message id */
    }
    assert_string_equal(first_id, "");
    /* by the forge's delivery id, and by time range and project */
    snprintf(replay, sizeof(replay), "{\"id\":\"%s\"}", key);
    assert_int_equal(wt_call(webhook, "POST", "/deliveries/replay", replay, NULL), 200);
    strftime(since, sizeof(since), "%Y-%m-%dT%H:%M:%SZ", gmtime(&now));
    snprintf(replay, sizeof(replay), "{\"since\":\"%s\",\"project\":%lld}", since, p.project);
    assert_int_equal(wt_call(webhook, "POST", "/deliveries/replay", replay, &answer), 200);
    /* the delivery and the fence; one of them may still be queued from the replay above */
    assert_true(json_int(answer, "matched") == 2);
    free(answer);
    fence(&p);
    assert_true(wt_bus_count_delivery(key) >= 3);
    /* unknown ids and bad requests */
    assert_int_equal(wt_call(webhook, "POST", "/deliveries/replay", "{\"id\":0}", NULL), 404);
    assert_int_equal(
        wt_call(webhook, "POST", "/deliveries/replay", "{\"since\":\"yesterday\"}", NULL), 400);
    assert_int_equal(wt_call(webhook, "POST", "/deliveries/replay", "{}", NULL), 400);
    /* the export: one JSON object per line, the delivery with its raw body, no secret */
    snprintf(path, sizeof(path), "/deliveries/export?since=%s&project=%lld", since, p.project);
    assert_int_equal(wt_call(webhook, "GET", path, NULL, &answer), 200);
    assert_null(strstr(answer, secret));
    assert_int_equal(export_lines(answer, key, body), 3); /* the delivery and two fences */
    free(answer);
}

/* ---- the example payloads of ../shared/testdata ------------------------------------------- */

typedef struct {
    long long forge_id;
    long long project;
    size_t pushes, forge_events; /* messages expected */
} example_project;

typedef struct {
    example_project p[EXAMPLES_MAX];
    size_t n;
} example_projects;

static example_project *example_project_for(example_projects *ps, const char *forge,
                                            long long forge_id)
{
    char path[64];

    for (size_t i = 0; i < ps->n; i++) {
        if (ps->p[i].forge_id == forge_id)
            return &ps->p[i];
    }
    assert_true(ps->n < EXAMPLES_MAX);
    ps->p[ps->n] = (example_project){forge_id, new_project(), 0, 0};
    snprintf(path, sizeof(path), "fgtest/%s-%lld", forge, ps->p[ps->n].project);
    wt_register(webhook, forge, forge_id, ps->p[ps->n].project, path);
    return &ps->p[ps->n++];
}

/* The id a delivery is verified with: repository.id, or project.id, else project_id. */
static bool example_id(long long *out, json_object *root, const char *forge)
{
    json_object *o, *v;

    if (strcmp(forge, "github") == 0) {
        if (json_object_object_get_ex(root, "repository", &o) &&
            json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "id", &v) &&
            json_object_is_type(v, json_type_int)) {
            *out = json_object_get_int64(v);
            return true;
        }
        return false;
    }
    if (json_object_object_get_ex(root, "project", &o) &&
        json_object_is_type(o, json_type_object) && json_object_object_get_ex(o, "id", &v) &&
        json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);
        return true;
    }
    if (json_object_object_get_ex(root, "project_id", &v) &&
        json_object_is_type(v, json_type_int)) {
        *out = json_object_get_int64(v);
        return true;
    }
    return false;
}

/* DESIGN.md flow 2, written out independently of the service's table. */
static const char *expected_route(const char *forge, const char *event)
{
    static const char *const gh[] = {
        "pull_request", "pull_request_review", "issues", "issue_comment", "member", "star", "watch",
        "fork",         "repository"};
    static const char *const gl[] = {"Merge Request Hook", "Issue Hook", "Note Hook",
                                     "Member Hook"};
    bool github = strcmp(forge, "github") == 0;

    if (strcmp(event, github ? "push" : "Push Hook") == 0 ||
        (!github && strcmp(event, "Tag Push Hook") == 0))
        return "commit_sync";
    for (size_t i = 0; i < (github ? 9u : 4u); i++) {
        if (strcmp(event, github ? gh[i] : gl[i]) == 0)
            return "forge_event";
    }
    return "ignored";
}

typedef struct {
    char key[64];
    char event[64];
    long long project;
    json_object *body;
} sent_event;

typedef struct {
    example_projects projects;
    sent_event events[EXAMPLES_MAX];
    size_t nevents;
    size_t sent, refused;
} examples;

/* Sends one example, signed with its project's secret; checks the status and notes what it
 * should publish. */
static void send_example(examples *ex, const char *forge, const char *event, const char *file)
{
    size_t len = 0;
    char *body = read_whole(file, &len);
    json_object *root = json_tokener_parse(body);
    const char *route = expected_route(forge, event);
    long long forge_id = 0;
    example_project *p;
    proj target;
    char key[64];
    long status, want;

    assert_non_null(root);
    if (!example_id(&forge_id, root, forge)) {
        json_object_put(root);
        free(body);
        ex->refused++;
        return; /* checked where those belong: App-wide secret (GitHub), 400 (GitLab) */
    }
    p = example_project_for(&ex->projects, forge, forge_id);
    target = (proj){forge, forge_id, p->project};
    status = send_signed(&target, event, wt_unique(key), body, len);
    want = strcmp(event, "ping") == 0 ? 200 : 202;
    if (status != want)
        printf("# %s (%s): %ld, want %ld\n", file, event, status, want);
    assert_int_equal(status, want);
    ex->sent++;
    if (strcmp(route, "commit_sync") == 0 && want == 202)
        p->pushes++;
    if (strcmp(route, "forge_event") == 0) {
        sent_event *e = &ex->events[ex->nevents++];
        assert_true(ex->nevents < EXAMPLES_MAX);
        snprintf(e->key, sizeof(e->key), "%s", key);
        snprintf(e->event, sizeof(e->event), "%s", event);
        e->project = p->project;
        e->body = root;
        root = NULL;
        p->forge_events++;
    }
    json_object_put(root);
    free(body);
}

/* After a fence: every project got exactly what its examples should publish. */
static void check_examples(examples *ex, const char *forge)
{
    proj last = {forge, ex->projects.p[0].forge_id, ex->projects.p[0].project};

    fence(&last);
    ex->projects.p[0].forge_events++; /* the fence */
    for (size_t i = 0; i < ex->projects.n; i++) {
        const example_project *p = &ex->projects.p[i];
        assert_int_equal(wt_bus_count("COMMIT_SYNC_REQUEST", p->project), p->pushes);
        assert_int_equal(wt_bus_count("FORGE_EVENT", p->project), p->forge_events);
    }
    for (size_t i = 0; i < ex->nevents; i++) {
        sent_event *e = &ex->events[i];
        assert_int_equal(wt_bus_count_delivery(e->key), 1);
        for (size_t j = 0; j < wt_bus_seen(); j++) {
            const wt_message *m = wt_bus_message(j);
            json_object *got;
            if (strcmp(m->delivery_id, e->key) != 0)
                continue;
            assert_string_equal(m->event, e->event);
            assert_int_equal(m->project, e->project);
            got = json_tokener_parse(m->payload);
            assert_true(json_object_equal(got, e->body));
            json_object_put(got);
        }
        json_object_put(e->body);
    }
}

static bool is_json_file(const char *name)
{
    size_t n = strlen(name);

    return n > 5 && strcmp(name + n - 5, ".json") == 0;
}

static void test_webhook__github_examples_are_accepted_and_routed(void **state)
{
    const char *root = fg_test_shared_testdata("github/payload-examples");
    examples *ex = calloc(1, sizeof(*ex));
    DIR *events;
    struct dirent *e;
    (void)state;

    if (root == NULL) {
        free(ex);
        skip();
    }
    assert_non_null(ex);
    events = opendir(root);
    assert_non_null(events);
    while ((e = readdir(events)) != NULL) {
        char dir[1024];
        DIR *files;
        struct dirent *f;
        if (e->d_name[0] == '.')
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", root, e->d_name);
        if ((files = opendir(dir)) == NULL)
            continue;
        while ((f = readdir(files)) != NULL) {
            char file[2048];
            if (!is_json_file(f->d_name))
                continue;
            snprintf(file, sizeof(file), "%s/%s", dir, f->d_name);
            send_example(ex, "github", e->d_name, file);
        }
        closedir(files);
    }
    closedir(events);
    printf("# %zu GitHub examples sent, %zu name no repository\n", ex->sent, ex->refused);
    assert_true(ex->sent > 200);
    check_examples(ex, "github");
    free(ex);
}

/* X-Gitlab-Event for an example: from the name of the per-event copies ("note_hook.issue.json"
 * is "Note Hook"), from object_kind for the library fixtures ("system-*" are system hooks). */
static void gitlab_event_of(char *out, size_t size, const char *name, json_object *root,
                            bool per_event)
{
    static const char *const kinds[][2] = {
        {"push", "Push Hook"},
        {"tag_push", "Tag Push Hook"},
        {"issue", "Issue Hook"},
        {"note", "Note Hook"},
        {"merge_request", "Merge Request Hook"},
        {"wiki_page", "Wiki Page Hook"},
        {"pipeline", "Pipeline Hook"},
        {"build", "Job Hook"},
        {"deployment", "Deployment Hook"},
        {"release", "Release Hook"},
        {"feature_flag", "Feature Flag Hook"},
        {"access_token", "Resource Access Token Hook"},
    };
    json_object *v;
    const char *kind;
    size_t n = 0;

    if (per_event) {
        for (const char *c = name; *c != '\0' && *c != '.' && n + 1 < size; c++, n++)
            out[n] = *c == '_' ? ' ' : *c;
        out[n] = '\0';
        for (size_t i = 0; i < n; i++) {
            if (i == 0 || out[i - 1] == ' ')
                out[i] = (char)(out[i] - 'a' + 'A');
        }
        return;
    }
    snprintf(out, size, "System Hook");
    if (strncmp(name, "system-", 7) == 0)
        return;
    kind = json_object_object_get_ex(root, "object_kind", &v) ? json_object_get_string(v) : "";
    if (strstr(name, "confidential-issue") != NULL) {
        snprintf(out, size, "Confidential Issue Hook");
        return;
    }
    if (strstr(name, "confidential-comment") != NULL) {
        snprintf(out, size, "Confidential Note Hook");
        return;
    }
    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
        if (strcmp(kind, kinds[i][0]) == 0) {
            snprintf(out, size, "%s", kinds[i][1]);
            return;
        }
    }
    snprintf(out, size, "%s", strncmp(kind, "subgroup", 8) == 0 ? "Subgroup Hook" : "Member Hook");
}

static void send_gitlab_dir(examples *ex, const char *dir, bool per_event)
{
    DIR *d = opendir(dir);
    struct dirent *f;

    assert_non_null(d);
    while ((f = readdir(d)) != NULL) {
        char file[2048], event[64], key[64], secret[65];
        size_t len = 0;
        char *body;
        json_object *root;
        long long id;

        if (!is_json_file(f->d_name))
            continue;
        snprintf(file, sizeof(file), "%s/%s", dir, f->d_name);
        body = read_whole(file, &len);
        root = json_tokener_parse(body);
        assert_non_null(root);
        gitlab_event_of(event, sizeof(event), f->d_name, root, per_event);
        if (example_id(&id, root, "gitlab")) {
            json_object_put(root);
            free(body);
            send_example(ex, "gitlab", event, file);
            continue;
        }
        /* no project: GitLab has no App-wide secret, so nothing can be verified: 400 */
        wt_hook_secret(secret, "gitlab", 1);
        {
            wt_delivery unverifiable = {webhook, event, wt_unique(key), NULL, secret, body, len};
            assert_int_equal(wt_post_gitlab(&unverifiable, NULL), 400);
        }
        ex->refused++;
        json_object_put(root);
        free(body);
    }
    closedir(d);
}

static void test_webhook__gitlab_examples_are_accepted_and_routed(void **state)
{
    const char *root = fg_test_shared_testdata("gitlab");
    examples *ex = calloc(1, sizeof(*ex));
    char dir[1024];
    (void)state;

    if (root == NULL) {
        free(ex);
        skip();
    }
    assert_non_null(ex);
    send_gitlab_dir(ex, root, true);
    snprintf(dir, sizeof(dir), "%s/go-gitlab", root);
    send_gitlab_dir(ex, dir, false);
    snprintf(dir, sizeof(dir), "%s/go-playground", root);
    send_gitlab_dir(ex, dir, false);
    printf("# %zu GitLab examples accepted, %zu refused (no project)\n", ex->sent, ex->refused);
    assert_true(ex->sent > 50);
    check_examples(ex, "gitlab");
    free(ex);
}

/* ---- the App-wide secret (a second instance configured with one) -------------------------- */

static bool answers_ready(void *payload)
{
    return wt_call(payload, "GET", "/ready", NULL, NULL) == 200;
}

/* Starts build/services/webhook/fg-webhook on port with the stack's environment plus
 * overrides ("NAME=value"), its output going to log_path (NULL: inherited). */
static pid_t spawn_webhook(int port, const char *const *overrides, const char *log_path)
{
    char path[1024], port_text[32];
    pid_t pid;

    snprintf(path, sizeof(path), "%s/services/webhook/fg-webhook", FG_BINARY_DIR);
    snprintf(port_text, sizeof(port_text), "%d", port);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (log_path != NULL) {
            int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            dup2(fd, 1);
            dup2(fd, 2);
        }
        setenv("FG_HTTP_PORT", port_text, 1);
        setenv("FG_LOG_LEVEL", "warn", 1);
        for (size_t i = 0; overrides != NULL && overrides[i] != NULL; i++) {
            char *pair = strdup(overrides[i]);
            char *eq = strchr(pair, '=');
            *eq = '\0';
            setenv(pair, eq + 1, 1);
        }
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop_webhook(pid_t pid)
{
    int status = 0;

    kill(pid, SIGTERM);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_webhook__app_wide_secret_admits_deliveries_naming_no_repository(void **state)
{
    const char *root = fg_test_shared_testdata("github/payload-examples");
    char app_secret[64], base[64], sig[80], key[64], body[512];
    int port = fg_test_free_port();
    proj p = make_project("github");
    pid_t pid;
    size_t sent = 0;
    DIR *events;
    struct dirent *e;
    (void)state;

    snprintf(app_secret, sizeof(app_secret), "FG_GITHUB_WEBHOOK_SECRET=app-secret-%s",
             wt_unique(key));
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", port);
    pid = spawn_webhook(port, (const char *const[]){app_secret, NULL}, NULL);
    memmove(app_secret, strchr(app_secret, '=') + 1, strlen(strchr(app_secret, '=')));
    assert_true(fg_test_wait_until(answers_ready, base, 30000));
    {
        /* a registered repository signed with the App-wide secret: accepted and published */
        size_t len = github_issue(body, sizeof(body), p.forge_id, wt_unique(key));
        wt_delivery d = {base, "issues", key, NULL, sig, body, len};
        wt_github_signature(sig, app_secret, body, len);
        assert_int_equal(wt_post_github(&d, NULL), 202);
        /* the stack's instance has no App-wide secret: the same delivery is not verified there */
        d.base = webhook;
        d.delivery = wt_unique(key);
        assert_int_equal(wt_post_github(&d, NULL), 401);
    }
    events = root != NULL ? opendir(root) : NULL;
    while (events != NULL && (e = readdir(events)) != NULL) {
        char dir[1024];
        DIR *files;
        struct dirent *f;
        if (e->d_name[0] == '.')
            continue;
        snprintf(dir, sizeof(dir), "%s/%s", root, e->d_name);
        if ((files = opendir(dir)) == NULL)
            continue;
        while ((f = readdir(files)) != NULL) {
            char file[2048];
            size_t len = 0;
            char *data;
            json_object *obj;
            long long id;
            if (!is_json_file(f->d_name))
                continue;
            snprintf(file, sizeof(file), "%s/%s", dir, f->d_name);
            data = read_whole(file, &len);
            obj = json_tokener_parse(data);
            if (!example_id(&id, obj, "github")) {
                wt_delivery d = {base, e->d_name, wt_unique(key), NULL, sig, data, len};
                wt_github_signature(sig, app_secret, data, len);
                assert_int_equal(wt_post_github(&d, NULL),
                                 strcmp(e->d_name, "ping") == 0 ? 200 : 202);
                /* without a valid signature the same body is refused */
                d.signature = "sha256=00";
                d.delivery = wt_unique(key);
                assert_int_equal(wt_post_github(&d, NULL), 401);
                sent++;
            }
            json_object_put(obj);
            free(data);
        }
        closedir(files);
    }
    if (events != NULL)
        closedir(events);
    printf("# %zu GitHub examples naming no repository accepted with the App-wide secret\n", sent);
    /* they name no project, so they were archived as ignored: only the two for p publish */
    fence(&p);
    assert_int_equal(wt_bus_count(NULL, p.project), 2);
    stop_webhook(pid);
    if (root == NULL)
        skip();
    assert_true(sent > 30);
}

/* ---- activation (a second instance pointed at the forge and event-log stand-ins) ---------- */

static struct {
    bool started;
    pid_t pid;
    char base[64];     /* the instance */
    char fake[64];     /* the stand-ins */
    char log_path[64]; /* the instance's log */
} act;

static void activation_env(void)
{
    char github[128], gitlab[128], event_log[128];
    int port;

    if (act.started)
        return;
    ff_start(act.fake, project_base + 5000);
    snprintf(github, sizeof(github), "FG_GITHUB_API_URL=%s/github", act.fake);
    snprintf(gitlab, sizeof(gitlab), "FG_GITLAB_URL=%s/gitlab", act.fake);
    snprintf(event_log, sizeof(event_log), "FG_EVENT_LOG_URL=%s/event-log", act.fake);
    snprintf(act.log_path, sizeof(act.log_path), "/tmp/fg-webhook-test-XXXXXX");
    close(mkstemp(act.log_path));
    port = fg_test_free_port();
    snprintf(act.base, sizeof(act.base), "http://127.0.0.1:%d", port);
    act.pid = spawn_webhook(port,
                            (const char *const[]){github, gitlab, event_log,
                                                  "FG_PUBLIC_URL=https://hooks.example/",
                                                  "FG_LOG_LEVEL=debug", NULL},
                            act.log_path);
    assert_true(fg_test_wait_until(answers_ready, act.base, 30000));
    act.started = true;
}

static void activation_cleanup(void)
{
    if (!act.started)
        return;
    stop_webhook(act.pid);
    ff_stop();
    unlink(act.log_path);
    act.started = false;
}

static json_object *member(json_object *root, const char *path)
{
    char name[64];
    const char *dot;
    json_object *v = root;

    while (v != NULL && path != NULL) {
        dot = strchr(path, '.');
        snprintf(name, sizeof(name), "%.*s", dot ? (int)(dot - path) : (int)strlen(path), path);
        if (!json_object_object_get_ex(v, name, &v))
            return NULL;
        path = dot ? dot + 1 : NULL;
    }
    return v;
}

/* POST /projects on the activation instance; returns the status, *out the parsed answer. */
static long activate(const char *body, json_object **out)
{
    char *answer = NULL;
    long status = wt_call(act.base, "POST", "/projects", body, &answer);

    if (status >= 500)
        printf("# POST /projects: %ld %s\n", status, answer != NULL ? answer : "");
    *out = json_tokener_parse(answer != NULL ? answer : "");
    free(answer);
    return status;
}

static ff_hook *hook_of(ff_hook *hooks, size_t n, const char *forge, long long project)
{
    ff_hook *found = NULL;

    for (size_t i = 0; i < n; i++) {
        if (hooks[i].alive && hooks[i].project == project && strcmp(hooks[i].forge, forge) == 0) {
            assert_null(found); /* one hook per project */
            found = &hooks[i];
        }
    }
    return found;
}

static char *read_text(const char *path)
{
    size_t len = 0;

    return read_whole(path, &len);
}

static void test_webhook__activation_looks_up_registers_stores_hooks_and_syncs(void **state)
{
    char token[80], body[512], path[64], secret[65], nonce[64], tokens_path[64];
    long long forge_id = new_forge_id(), project, hook;
    ff_hook hooks[FF_HOOKS_MAX], *h;
    json_object *answer;
    char *text = NULL;
    proj p;
    (void)state;

    activation_env();
    snprintf(token, sizeof(token), "ghp_%s", wt_unique(nonce));
    snprintf(path, sizeof(path), "octo/hello-%lld", forge_id % 100000);
    ff_add_repository(path, forge_id, token);
    snprintf(
        body, sizeof(body),
        "{\"forge\":\"github\",\"path\":\"%s\",\"url\":\"/srv/git/hello.git\",\"token\":\"%s\"}",
        path, token);
    assert_int_equal(activate(body, &answer), 201);
    project = json_object_get_int64(member(answer, "id"));
    assert_true(project >= project_base + 5000);
    assert_int_equal(json_object_get_int64(member(answer, "forgeId")), forge_id);
    assert_string_equal(json_object_get_string(member(answer, "hook.status")), "created");
    hook = json_object_get_int64(member(answer, "hook.id"));
    assert_null(strstr(json_object_to_json_string(answer), token));
    json_object_put(answer);
    /* the forge was asked with the token, event-log got the project with its forge id */
    assert_true(ff_saw_token(token));
    ff_last_registration(body, sizeof(body));
    assert_non_null(strstr(body, "\"forge\":\"github\""));
    snprintf(nonce, sizeof(nonce), "\"forgeId\":%lld", forge_id);
    assert_non_null(strstr(body, nonce));
    /* the hook points at the public URL and carries the derived secret */
    h = hook_of(hooks, ff_hooks(hooks), "github", forge_id);
    if (h == NULL) /* fail_msg does not return; gcc -O2 cannot know */
        fail_msg("no hook for github:%lld", forge_id);
    assert_int_equal(h->id, hook);
    assert_string_equal(h->url, "https://hooks.example/webhooks/github");
    assert_true(h->push_events);
    wt_hook_secret(secret, "github", forge_id);
    assert_string_equal(h->secret, secret);
    /* token-repository holds the token */
    snprintf(tokens_path, sizeof(tokens_path), "/projects/%lld/tokens", project);
    assert_int_equal(
        wt_call(fg_test_stack_env("FG_TOKEN_REPOSITORY_URL"), "GET", tokens_path, NULL, &text),
        200);
    assert_non_null(strstr(text, token));
    free(text);
    /* deliveries for it are accepted at every instance, and a COMMIT_SYNC_REQUEST went out */
    p = (proj){"github", forge_id, project};
    fence(&p);
    assert_int_equal(wt_bus_count("COMMIT_SYNC_REQUEST", project), 1);
    /* again: nothing new is made, the hook is found by its URL and updated */
    snprintf(
        body, sizeof(body),
        "{\"forge\":\"github\",\"path\":\"%s\",\"url\":\"/srv/git/hello.git\",\"forgeId\":%lld,"
        "\"token\":\"%s\"}",
        path, forge_id, token);
    assert_int_equal(activate(body, &answer), 200);
    assert_string_equal(json_object_get_string(member(answer, "hook.status")), "updated");
    assert_int_equal(json_object_get_int64(member(answer, "hook.id")), hook);
    json_object_put(answer);
    assert_non_null(hook_of(hooks, ff_hooks(hooks), "github", forge_id));
    /* the token is in no line the instance logged */
    text = read_text(act.log_path);
    assert_null(strstr(text, token));
    free(text);
}

static void test_webhook__validation_creates_and_repairs_the_gitlab_hook(void **state)
{
    char body[512], path[64], token[80], nonce[128], target[96];
    long long forge_id = new_forge_id(), project, first;
    ff_hook hooks[FF_HOOKS_MAX], *h;
    json_object *answer;
    char *text;
    proj p;
    (void)state;

    activation_env();
    snprintf(path, sizeof(path), "group/sub/proj-%lld", forge_id % 100000);
    snprintf(token, sizeof(token), "glpat-%s", wt_unique(target));
    ff_add_repository(path, forge_id, token);
    /* with its id and without a token: registered, but no hook can be made yet */
    snprintf(body, sizeof(body),
             "{\"forge\":\"gitlab\",\"path\":\"%s\",\"url\":\"https://gitlab.example/%s.git\","
             "\"forgeId\":%lld}",
             path, path, forge_id);
    assert_int_equal(activate(body, &answer), 201);
    project = json_object_get_int64(member(answer, "id"));
    assert_string_equal(json_object_get_string(member(answer, "hook.status")), "skipped");
    json_object_put(answer);
    assert_int_equal(ff_requests("GET", "/gitlab/api/v4/projects/group%2Fsub"), 0); /* no lookup */
    snprintf(target, sizeof(target), "/projects/%lld/webhooks/validation", project);
    assert_int_equal(wt_call(act.base, "POST", target, NULL, NULL), 409); /* no token yet */
    /* the token arrives; validation makes the hook */
    snprintf(body, sizeof(body), "/projects/%lld/tokens", project);
    snprintf(nonce, sizeof(nonce), "{\"token\":\"%s\"}", token);
    assert_int_equal(
        wt_call(fg_test_stack_env("FG_TOKEN_REPOSITORY_URL"), "PUT", body, nonce, NULL), 201);
    assert_int_equal(wt_call(act.base, "POST", target, NULL, &text), 200);
    answer = json_tokener_parse(text);
    free(text);
    assert_string_equal(json_object_get_string(member(answer, "hook.status")), "created");
    first = json_object_get_int64(member(answer, "hook.id"));
    json_object_put(answer);
    h = hook_of(hooks, ff_hooks(hooks), "gitlab", forge_id);
    assert_non_null(h);
    assert_string_equal(h->url, "https://hooks.example/webhooks/gitlab");
    wt_hook_secret(nonce, "gitlab", forge_id);
    assert_string_equal(h->secret, nonce);
    assert_true(ff_saw_token(token));
    /* fine as it is */
    assert_int_equal(wt_call(act.base, "POST", target, NULL, &text), 200);
    assert_non_null(strstr(text, "\"ok\""));
    free(text);
    /* someone deletes it on GitLab: validation makes it again */
    ff_drop_hook(first);
    assert_int_equal(wt_call(act.base, "POST", target, NULL, &text), 200);
    answer = json_tokener_parse(text);
    free(text);
    assert_string_equal(json_object_get_string(member(answer, "hook.status")), "created");
    assert_true(json_object_get_int64(member(answer, "hook.id")) != first);
    json_object_put(answer);
    assert_non_null(hook_of(hooks, ff_hooks(hooks), "gitlab", forge_id));
    /* its deliveries are accepted (the GitLab token is the derived secret) */
    p = (proj){"gitlab", forge_id, project};
    fence(&p);
    assert_int_equal(wt_bus_count("COMMIT_SYNC_REQUEST", project), 1);
    assert_int_equal(
        wt_call(act.base, "POST", "/projects/999999999999/webhooks/validation", NULL, NULL), 404);
}

static void test_webhook__removal_deletes_hook_token_and_project(void **state)
{
    char body[512], path[64], token[80], nonce[64], target[64];
    long long forge_id = new_forge_id(), project;
    ff_hook hooks[FF_HOOKS_MAX];
    json_object *answer;
    char *text = NULL;
    (void)state;

    activation_env();
    snprintf(path, sizeof(path), "octo/gone-%lld", forge_id % 100000);
    snprintf(token, sizeof(token), "ghp_%s", wt_unique(nonce));
    ff_add_repository(path, forge_id, NULL);
    snprintf(
        body, sizeof(body),
        "{\"forge\":\"github\",\"path\":\"%s\",\"url\":\"/srv/git/gone.git\",\"token\":\"%s\"}",
        path, token);
    assert_int_equal(activate(body, &answer), 201);
    project = json_object_get_int64(member(answer, "id"));
    json_object_put(answer);
    assert_non_null(hook_of(hooks, ff_hooks(hooks), "github", forge_id));
    snprintf(target, sizeof(target), "/projects/%lld", project);
    assert_int_equal(wt_call(act.base, "DELETE", target, NULL, &text), 200);
    assert_non_null(strstr(text, "\"hook\":\"deleted\""));
    free(text);
    assert_null(hook_of(hooks, ff_hooks(hooks), "github", forge_id));
    snprintf(nonce, sizeof(nonce), "/event-log/projects/%lld", project);
    assert_int_equal(ff_requests("DELETE", nonce), 1);
    snprintf(nonce, sizeof(nonce), "/projects/%lld/tokens", project);
    assert_int_equal(
        wt_call(fg_test_stack_env("FG_TOKEN_REPOSITORY_URL"), "GET", nonce, NULL, NULL), 404);
    /* its deliveries are refused where the removal happened (other instances follow within
     * WH_PROJECTS_CACHE_TTL_MS); a second removal is 404 */
    {
        char key[64], push[512];
        size_t len = github_push(push, sizeof(push), forge_id, wt_unique(key));
        char secret[65], sig[80];
        wt_delivery d = {act.base, "push", key, NULL, sig, push, len};
        wt_hook_secret(secret, "github", forge_id);
        wt_github_signature(sig, secret, push, len);
        assert_int_equal(wt_post_github(&d, NULL), 404);
    }
    assert_int_equal(wt_call(act.base, "DELETE", target, NULL, NULL), 404);
}

static void test_webhook__activation_refuses_bad_requests(void **state)
{
    static const char *const bad[] = {
        "not json",
        "{\"forge\":\"svn\",\"path\":\"a/b\",\"url\":\"/x\"}",
        "{\"forge\":\"git\",\"path\":\"a/b\",\"url\":\"/x\",\"forgeId\":5}",
        "{\"forge\":\"github\",\"path\":\"no-slash\",\"url\":\"/x\"}",
        "{\"forge\":\"github\",\"path\":\"a/b\"}",
        "{\"forge\":\"github\",\"path\":\"a/b\",\"url\":\"/x\",\"forgeId\":-3}",
        "{\"forge\":\"github\",\"path\":\"a/b\",\"url\":\"/x\",\"colour\":\"red\"}",
    };
    json_object *answer;
    char body[256], url[128];
    const char *headers[1] = {"Content-Type: application/json"};
    (void)state;

    activation_env();
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(activate(bad[i], &answer), 400);
        json_object_put(answer);
    }
    /* a repository the forge does not know (or hides): 404, nothing registered */
    assert_int_equal(
        activate("{\"forge\":\"github\",\"path\":\"nobody/nothing\",\"url\":\"/x\"}", &answer),
        404);
    json_object_put(answer);
    /* plain git: registered, no hook, a COMMIT_SYNC_REQUEST */
    snprintf(body, sizeof(body),
             "{\"forge\":\"git\",\"path\":\"plain/repo\",\"url\":\"/srv/git/%s.git\"}",
             wt_unique(url));
    assert_int_equal(activate(body, &answer), 201);
    assert_string_equal(json_object_get_string(member(answer, "hook.status")), "skipped");
    {
        long long project = json_object_get_int64(member(answer, "id"));
        proj fence_project = make_project("github");
        json_object_put(answer);
        fence(&fence_project);
        assert_int_equal(wt_bus_count("COMMIT_SYNC_REQUEST", project), 1);
    }
    /* the service key is required */
    snprintf(url, sizeof(url), "%s/projects", act.base);
    {
        fg_http_client *c = NULL;
        fg_http_client_options o;
        fg_http_client_request req;
        fg_http_client_response res;
        fg_http_client_options_init(&o);
        o.max_attempts = 1;
        assert_int_equal(fg_http_client_new(&c, &o), 0);
        fg_http_client_request_init(&req);
        fg_http_client_response_init(&res);
        req.method = "POST";
        req.url = url;
        req.headers = headers;
        req.nheaders = 1;
        req.body = body;
        req.body_len = strlen(body);
        if (fg_http_client_send(c, &res, &req) < 0)
            printf("# %s\n", fg_error_last());
        assert_int_equal(res.status, 401);
        fg_http_client_response_dispose(&res);
        fg_http_client_free(c);
    }
}

/* ---- RabbitMQ away (last) ----------------------------------------------------------------- */

static void test_webhook__rabbitmq_outage_delays_but_loses_nothing(void **state)
{
    proj p = make_project("github");
    char(*keys)[64] = calloc(OUTAGE_EVENTS, sizeof(*keys));
    char key[64], body[512];
    long long started;
    (void)state;

    assert_non_null(keys);
    wt_bus_pump(200); /* nothing of ours left unacked in the client */
    assert_int_equal(fg_test_stack("stop rabbitmq"), 0);
    assert_int_equal(wt_call(webhook, "GET", "/ready", NULL, NULL), 200);
    started = fg_test_now_ms();
    for (int i = 0; i < OUTAGE_PUSHES + OUTAGE_EVENTS; i++) {
        size_t len;
        if (i % 2 == 0) {
            len = github_push(body, sizeof(body), p.forge_id, wt_unique(key));
            assert_int_equal(send_signed(&p, "push", key, body, len), 202);
        } else {
            len = github_issue(body, sizeof(body), p.forge_id, wt_unique(keys[i / 2]));
            assert_int_equal(send_signed(&p, "issues", keys[i / 2], body, len), 202);
        }
    }
    printf("# %d deliveries accepted in %lld ms with RabbitMQ stopped\n",
           OUTAGE_PUSHES + OUTAGE_EVENTS, fg_test_now_ms() - started);
    assert_int_equal(wt_call(webhook, "GET", "/ready", NULL, NULL), 200);
    assert_int_equal(fg_test_stack("start rabbitmq"), 0);
    fence(&p);
    assert_int_equal(wt_bus_count("COMMIT_SYNC_REQUEST", p.project), OUTAGE_PUSHES);
    assert_int_equal(wt_bus_count("FORGE_EVENT", p.project), OUTAGE_EVENTS + 1);
    for (int i = 0; i < OUTAGE_EVENTS; i++)
        assert_int_equal(wt_bus_count_delivery(keys[i]), 1);
    free(keys);
}

/* ---- main --------------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    webhook = fg_test_stack_env("FG_WEBHOOK_URL");
    fg_test_stack_env("FG_WEBHOOK_DB_URL");
    fg_test_stack_env("FG_AMQP_URL");
    fg_test_stack_env("FG_SERVICE_KEY");
    wt_init();
    /* ids of this run: above every earlier run's (time), below 2^53 */
    project_base = 1000000000000LL + ((long long)time(NULL) % 100000000LL) * 10000LL;
    forge_base = 900000000000000000LL + ((long long)time(NULL) % 1000000000LL) * 10000LL +
                 (long long)(getpid() % 100) * 100000000000LL;
    wt_bus_open(project_base);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    activation_cleanup();
    wt_bus_close();
    wt_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest offline[] = {
        cmocka_unit_test(test_webhook__body_scan_follows_rfc_8259_and_finds_the_ids),
    };
    const struct CMUnitTest stack[] = {
        cmocka_unit_test(test_webhook__github_signed_push_gets_202_and_one_message),
        cmocka_unit_test(test_webhook__gitlab_signed_push_gets_202_and_one_message),
        cmocka_unit_test(test_webhook__gitlab_dedupes_by_event_uuid_then_by_body_hash),
        cmocka_unit_test(test_webhook__wrong_signature_or_token_is_401),
        cmocka_unit_test(test_webhook__bodies_over_25_mib_are_413),
        cmocka_unit_test(test_webhook__malformed_json_and_missing_ids_are_400),
        cmocka_unit_test(test_webhook__unknown_project_is_404),
        cmocka_unit_test(test_webhook__github_ping_is_200_and_publishes_nothing),
        cmocka_unit_test(test_webhook__forge_events_carry_event_action_delivery_and_payload),
        cmocka_unit_test(test_webhook__replay_publishes_again_with_a_new_message_id),
        cmocka_unit_test(test_webhook__github_examples_are_accepted_and_routed),
        cmocka_unit_test(test_webhook__gitlab_examples_are_accepted_and_routed),
        cmocka_unit_test(test_webhook__app_wide_secret_admits_deliveries_naming_no_repository),
        cmocka_unit_test(test_webhook__activation_looks_up_registers_stores_hooks_and_syncs),
        cmocka_unit_test(test_webhook__validation_creates_and_repairs_the_gitlab_hook),
        cmocka_unit_test(test_webhook__removal_deletes_hook_token_and_project),
        cmocka_unit_test(test_webhook__activation_refuses_bad_requests),
        cmocka_unit_test(test_webhook__rabbitmq_outage_delays_but_loses_nothing),
    };
    const char *skip_pattern = getenv("FG_WEBHOOK_TEST_SKIP");
    int failed = cmocka_run_group_tests_name("webhook body scan", offline, NULL, NULL);

    /* the forge stand-in runs its own loop on a thread */
    if (evthread_use_pthreads() != 0)
        return 1;

    if (failed != 0)
        return failed;
    fg_test_stack_env("FG_WEBHOOK_URL"); /* skip the rest without a stack */
    if (skip_pattern != NULL && skip_pattern[0] != '\0')
        cmocka_set_skip_filter(skip_pattern);
    return cmocka_run_group_tests_name("webhook", stack, setup, teardown);
}
