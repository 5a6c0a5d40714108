/*
 * token-repository against the real stack (FG_TOKEN_REPOSITORY_URL and its database) and against
 * instances this test starts on scratch databases (rotation, expiry counts, concurrent runs):
 * the API's answers, the service key, encryption at rest bound to the row, key rotation, the
 * expiry reports (listing, metrics, fgctl), and finally that no test token appears in any log
 * line of those processes or any response of the whole run but the authorised GETs.
 */
#include "test_support.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fg/base64.h"
#include "fg/buf.h"
#include "fg/crypto.h"
#include "fg/http_client.h"
#include "fg/pg.h"

#define SECRETS_MAX        2048
#define TRANSCRIPT_MAX     ((size_t)256 << 20)
#define LOGS_MAX           16
#define ROTATION_TOKENS    150 /* more than one rotation batch (TR_ROTATE_BATCH is 100) */
#define CONCURRENT_TOKENS  600
#define BODY_MAX_SERVICE   (64 * 1024) /* TR_BODY_MAX */
#define PG_TIMEOUT_MS      10000
#define START_TIMEOUT_MS   30000
#define WRONG_KEY_HEADER   "Authorization: Bearer not-the-service-key-0123456789"
#define TOKENS_PATH_FORMAT "/projects/%lld/tokens"
#define TOKEN_TOO_LONG     4097 /* TR_TOKEN_MAX + 1 */

static fg_http_client *http;
static fg_http_client_response res; /* the last answer of api() */
static fg_buf transcript;           /* every response body and fgctl output but the below */
static fg_buf authorised;           /* bodies of authorised GET /projects/{id}/tokens 200 */
static char *secrets[SECRETS_MAX];  /* every token this test sent, valid or not */
static size_t nsecrets;
static char *logs[LOGS_MAX]; /* log files of the instances this test started */
static size_t nlogs;
static long long id_base; /* this run's project ids: id_base + 0..999 */
static int db_counter;
/* what a failing test leaves behind (cmocka jumps out of it): stopped and dropped by main */
static pid_t live_pids[LOGS_MAX];
static char live_dbs[LOGS_MAX][64];

/* ---- small helpers ----------------------------------------------------------------------- */

static void check(int rc, const char *what)
{
    if (rc < 0)
        fail_msg("%s: %d %s", what, rc, fg_error_last());
}

static void random_hex(char *out, size_t nbytes)
{
    unsigned char b[32];

    assert_true(nbytes <= sizeof(b));
    check(fg_crypto_random(b, nbytes), "random");
    for (size_t i = 0; i < nbytes; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* A fresh token-looking secret, remembered for the secrecy test. */
static const char *new_secret(const char *prefix)
{
    char hex[41];
    char *s = malloc(strlen(prefix) + sizeof(hex));

    assert_non_null(s);
    assert_true(nsecrets < SECRETS_MAX);
    random_hex(hex, 20);
    snprintf(s, strlen(prefix) + sizeof(hex), "%s%s", prefix, hex);
    secrets[nsecrets++] = s;
    return s;
}

static long long project(int n)
{
    return id_base + n;
}

/* "/projects/<id>/tokens" in one of four rotating buffers. */
static const char *tpath(long long id)
{
    static char paths[4][64];
    static int next;
    char *p = paths[next++ % 4];

    snprintf(p, 64, TOKENS_PATH_FORMAT, id);
    return p;
}

/* {"token":"...","expiresAt":"..."} (expires NULL: no field). */
static const char *put_body(const char *token, const char *expires)
{
    static char body[8192];

    if (expires != NULL)
        snprintf(body, sizeof(body), "{\"token\":\"%s\",\"expiresAt\":\"%s\"}", token, expires);
    else
        snprintf(body, sizeof(body), "{\"token\":\"%s\"}", token);
    return body;
}

/* RFC 3339 UTC for now + seconds. */
static void time_from_now(char out[32], long long seconds)
{
    time_t t = time(NULL) + (time_t)seconds;
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static bool is_token_path(const char *path)
{
    size_t len = strlen(path);

    return strncmp(path, "/projects/", 10) == 0 && len > 7 &&
           strcmp(path + len - 7, "/tokens") == 0;
}

static void record(fg_buf *into, const char *text, size_t len)
{
    check(fg_buf_put(into, text, len), "record");
    check(fg_buf_putc(into, '\n'), "record");
}

typedef enum { KEY_NONE, KEY_WRONG, KEY_RIGHT } key_mode;

/* Sends one request with its own client; records the answer's body. Returns the status. */
static long send_with(fg_http_client *client, fg_http_client_response *out, const char *base,
                      const char *method, const char *path, const char *body, key_mode key)
{
    static char bearer[512];
    char url[2048];
    const char *headers[2];
    fg_http_client_request req;

    snprintf(bearer, sizeof(bearer), "Authorization: Bearer %s",
             fg_test_stack_env("FG_SERVICE_KEY"));
    snprintf(url, sizeof(url), "%s%s", base, path);
    fg_http_client_request_init(&req);
    req.url = url;
    req.method = method;
    req.headers = headers;
    if (key != KEY_NONE)
        headers[req.nheaders++] = key == KEY_RIGHT ? bearer : WRONG_KEY_HEADER;
    if (body != NULL) {
        headers[req.nheaders++] = "Content-Type: application/json";
        req.body = body;
        req.body_len = strlen(body);
    }
    fg_http_client_response_dispose(out);
    fg_http_client_response_init(out);
    if (fg_http_client_send(client, out, &req) < 0 && out->status == 0)
        fail_msg("%s %s: %s", method, url, fg_error_last());
    return out->status;
}

/* The one kind of answer allowed to carry a token: an authorised GET of a project's token. */
static bool carries_token(const char *method, const char *path, key_mode key, long status)
{
    return key == KEY_RIGHT && strcmp(method, "GET") == 0 && is_token_path(path) && status == 200;
}

static long api(const char *base, const char *method, const char *path, const char *body,
                key_mode key)
{
    long status = send_with(http, &res, base, method, path, body, key);

    record(carries_token(method, path, key, status) ? &authorised : &transcript, res.body.ptr,
           res.body.len);
    return status;
}

static const char *stack_url(void)
{
    return fg_test_stack_env("FG_TOKEN_REPOSITORY_URL");
}

static json_object *body_json(void)
{
    json_object *root = json_tokener_parse(res.body.ptr);

    if (root == NULL)
        fail_msg("not JSON: %s", res.body.ptr);
    return root;
}

static json_object *member(json_object *o, const char *name)
{
    json_object *v = NULL;

    if (!json_object_object_get_ex(o, name, &v))
        fail_msg("no \"%s\" in %s", name, json_object_to_json_string(o));
    return v;
}

static const char *text_of(json_object *o, const char *name)
{
    json_object *v = member(o, name);

    return json_object_is_type(v, json_type_null) ? NULL : json_object_get_string(v);
}

static long long int_of(json_object *o, const char *name)
{
    return json_object_get_int64(member(o, name));
}

static bool bool_of(json_object *o, const char *name)
{
    return json_object_get_boolean(member(o, name));
}

/* PUT a token; asserts the status. */
static void put_token(const char *base, long long id, const char *token, const char *expires,
                      long want)
{
    long status = api(base, "PUT", tpath(id), put_body(token, expires), KEY_RIGHT);

    if (status != want)
        fail_msg("PUT %lld: %ld, wanted %ld: %s", id, status, want, res.body.ptr);
}

/* GETs a token and asserts it equals `want`. */
static void assert_token(const char *base, long long id, const char *want)
{
    json_object *root;

    if (api(base, "GET", tpath(id), NULL, KEY_RIGHT) != 200)
        fail_msg("GET %lld: %ld %s", id, res.status, res.body.ptr);
    root = body_json();
    assert_string_equal(text_of(root, "token"), want);
    assert_int_equal(int_of(root, "project"), id);
    json_object_put(root);
}

/* The value of an unlabelled series in base's /metrics. */
static double metric(const char *base, const char *name)
{
    const char *line;
    size_t len = strlen(name);
    char *end;
    double v;

    assert_int_equal(api(base, "GET", "/metrics", NULL, KEY_NONE), 200);
    for (line = res.body.ptr; line != NULL; line = strchr(line, '\n')) {
        line += line[0] == '\n' ? 1 : 0;
        if (strncmp(line, name, len) == 0 && line[len] == ' ') {
            v = strtod(line + len + 1, &end);
            assert_true(end != line + len + 1);
            return v;
        }
    }
    fail_msg("no %s in /metrics", name);
    return 0;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    fg_buf b;
    char chunk[65536];
    size_t n;

    if (f == NULL)
        fail_msg("cannot read %s", path);
    fg_buf_init(&b, TRANSCRIPT_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        check(fg_buf_put(&b, chunk, n), path);
    fclose(f);
    return fg_buf_detach(&b, NULL);
}

static char *stack_log_path(void)
{
    static char path[1024];

    snprintf(path, sizeof(path), "%s/logs/token-repository.log", fg_test_stack_env("FG_STACK_DIR"));
    return path;
}

/* Whether one line of `text` contains both needles. */
static bool has_line_with(const char *text, const char *a, const char *b)
{
    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *nl = strchr(line, '\n');
        size_t len = nl ? (size_t)(nl - line) : strlen(line);
        if (memmem(line, len, a, strlen(a)) != NULL && memmem(line, len, b, strlen(b)) != NULL)
            return true;
        line = nl ? nl + 1 : NULL;
    }
    return false;
}

/* ---- scratch databases and instances ----------------------------------------------------- */

typedef struct {
    char name[64];
    char url[1024]; /* as fg_token_repository */
    fg_pg_conn *admin;
} scratch_db;

/* A new empty database owned by the token-repository's role; the instances migrate it. */
static void scratch_create(scratch_db *db)
{
    const char *role_url = fg_test_stack_env("FG_TOKEN_REPOSITORY_DB_URL");
    const char *path = strchr(strstr(role_url, "://") + 3, '/');
    const char *query = strchr(role_url, '?');
    char sql[256];

    assert_non_null(path);
    memset(db, 0, sizeof(*db));
    snprintf(db->name, sizeof(db->name), "fg_tokens_test_%ld_%d", (long)getpid(), ++db_counter);
    snprintf(db->url, sizeof(db->url), "%.*s/%s%s", (int)(path - role_url), role_url, db->name,
             query ? query : "");
    check(fg_pg_connect(&db->admin, fg_test_stack_env("FG_PG_URL"), PG_TIMEOUT_MS), "FG_PG_URL");
    /* an identifier cannot be a parameter; the name is ours, [a-z0-9_] */
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    check(fg_pg_exec(NULL, db->admin, sql, 0, NULL), sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER fg_token_repository", db->name);
    check(fg_pg_exec(NULL, db->admin, sql, 0, NULL), sql);
    for (size_t i = 0; i < LOGS_MAX; i++)
        if (live_dbs[i][0] == '\0') {
            snprintf(live_dbs[i], sizeof(live_dbs[i]), "%s", db->name);
            break;
        }
}

static void scratch_drop(scratch_db *db)
{
    char sql[256];

    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    check(fg_pg_exec(NULL, db->admin, sql, 0, NULL), sql);
    fg_pg_free(db->admin);
    db->admin = NULL;
    for (size_t i = 0; i < LOGS_MAX; i++)
        if (strcmp(live_dbs[i], db->name) == 0)
            live_dbs[i][0] = '\0';
}

typedef struct {
    fg_test_process proc;
    char base[64];
    const char *log;
} instance;

static bool instance_ready(void *payload)
{
    instance *in = payload;
    fg_http_client_request req;
    fg_http_client_response r;
    char url[128];
    bool ready;

    snprintf(url, sizeof(url), "%s/ready", in->base);
    fg_http_client_request_init(&req);
    req.url = url;
    fg_http_client_response_init(&r);
    /* refused connections are expected until it listens */
    ready = fg_http_client_send(http, &r, &req) == 0 && r.status == 200;
    fg_http_client_response_dispose(&r);
    return ready;
}

/* Starts fg-token-repository on a free port against db_url with FG_TOKEN_KEYS=keys (and
 * extra "NAME=value" when not NULL), logging at debug level to a file kept for the secrecy test. */
static void instance_start(instance *in, const char *db_url, const char *keys, const char *extra)
{
    char path[1024], tmpl[] = "/tmp/fg-tokens-test-XXXXXX";
    int port = fg_test_free_port();

    memset(in, 0, sizeof(*in));
    close(mkstemp(tmpl));
    assert_true(nlogs < LOGS_MAX);
    logs[nlogs++] = strdup(tmpl);
    in->log = logs[nlogs - 1];
    snprintf(in->base, sizeof(in->base), "http://127.0.0.1:%d", port);
    snprintf(path, sizeof(path), "%s/services/token-repository/fg-token-repository", FG_BINARY_DIR);
    in->proc.pid = fork();
    assert_true(in->proc.pid >= 0);
    if (in->proc.pid == 0) {
        char port_text[16];
        int fd = open(in->log, O_WRONLY | O_TRUNC);
        dup2(fd, 1);
        dup2(fd, 2);
        snprintf(port_text, sizeof(port_text), "%d", port);
        setenv("FG_HTTP_PORT", port_text, 1);
        setenv("FG_TOKEN_REPOSITORY_DB_URL", db_url, 1);
        setenv("FG_TOKEN_KEYS", keys, 1);
        setenv("FG_LOG_LEVEL", "debug", 1);
        if (extra != NULL) {
            char *pair = strdup(extra), *eq = strchr(pair, '=');
            *eq = '\0';
            setenv(pair, eq + 1, 1);
        }
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    live_pids[nlogs - 1] = in->proc.pid;
    if (!fg_test_wait_until(instance_ready, in, START_TIMEOUT_MS)) {
        char *log = read_file(in->log);
        fail_msg("instance on %s not ready; log:\n%s", in->base, log);
    }
}

/* SIGTERM; the instance must stop cleanly (exit 0: no sanitizer report either). */
static void instance_stop(instance *in)
{
    assert_int_equal(kill(in->proc.pid, SIGTERM), 0);
    assert_true(fg_test_wait_until(fg_test_process_exited, &in->proc, 20000));
    for (size_t i = 0; i < LOGS_MAX; i++)
        if (live_pids[i] == in->proc.pid)
            live_pids[i] = 0;
    if (!WIFEXITED(in->proc.status) || WEXITSTATUS(in->proc.status) != 0) {
        char *log = read_file(in->log);
        fail_msg("instance %s did not stop cleanly (status %d); log:\n%s", in->base,
                 in->proc.status, log);
    }
}

/* A FG_TOKEN_KEYS entry "<id>:<base64 of 32 random bytes>" with a fresh id. */
static void new_key(char *out, size_t size, char id[16])
{
    unsigned char key[FG_CRYPTO_KEY_LEN];
    char hex[9];
    fg_buf b64;

    random_hex(hex, 4);
    snprintf(id, 16, "k2-%s", hex);
    check(fg_crypto_random(key, sizeof(key)), "random key");
    fg_buf_init(&b64, 128);
    check(fg_base64_encode(&b64, key, sizeof(key)), "base64");
    snprintf(out, size, "%s:%s", id, b64.ptr);
    fg_buf_dispose(&b64);
}

/* Runs fgctl with FG_TOKEN_REPOSITORY_URL=url and args; *out gets stdout and stderr (recorded in
 * the transcript). Returns the exit status. */
static int run_fgctl(char **out, const char *url, const char *const *args)
{
    char path[1024];
    char *argv[8];
    int fds[2], status = 0;
    size_t n = 0;
    pid_t pid;
    fg_buf b;
    char chunk[4096];
    ssize_t got;

    snprintf(path, sizeof(path), "%s/tools/fgctl/fgctl", FG_BINARY_DIR);
    argv[n++] = path;
    for (size_t i = 0; args[i] != NULL && n < 7; i++)
        argv[n++] = (char *)(uintptr_t)args[i];
    argv[n] = NULL;
    assert_int_equal(pipe(fds), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        dup2(fds[1], 1);
        dup2(fds[1], 2);
        close(fds[0]);
        setenv("FG_TOKEN_REPOSITORY_URL", url, 1);
        execv(path, argv);
        _exit(127);
    }
    close(fds[1]);
    fg_buf_init(&b, TRANSCRIPT_MAX);
    while ((got = read(fds[0], chunk, sizeof(chunk))) > 0)
        check(fg_buf_put(&b, chunk, (size_t)got), "fgctl output");
    close(fds[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    record(&transcript, b.ptr, b.len);
    *out = fg_buf_detach(&b, NULL);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The line of fgctl's table about project id. */
static char *table_line(const char *text, long long id)
{
    char prefix[32];
    size_t len = (size_t)snprintf(prefix, sizeof(prefix), "%lld ", id);

    for (const char *line = text; line != NULL && *line != '\0';) {
        const char *nl = strchr(line, '\n');
        if (strncmp(line, prefix, len) == 0)
            return strndup(line, nl ? (size_t)(nl - line) : strlen(line));
        line = nl ? nl + 1 : NULL;
    }
    fail_msg("no line for %lld in:\n%s", id, text);
    return NULL;
}

/* ---- tests: the API ---------------------------------------------------------------------- */

static void test_tokens__round_trip(void **state)
{
    const char *token = new_secret("ghp_");
    json_object *root;
    (void)state;

    put_token(stack_url(), project(1), token, "2031-05-06T07:08:09.25+02:00", 201);
    root = body_json();
    assert_int_equal(int_of(root, "project"), project(1));
    assert_string_equal(text_of(root, "expiresAt"), "2031-05-06T05:08:09.25Z");
    assert_false(bool_of(root, "expiringSoon"));
    assert_non_null(text_of(root, "keyId"));
    json_object_put(root);
    assert_null(strstr(res.body.ptr, token)); /* the PUT's answer has no value */

    assert_token(stack_url(), project(1), token);
    root = body_json();
    assert_string_equal(text_of(root, "expiresAt"), "2031-05-06T05:08:09.25Z");
    json_object_put(root);
}

static void test_tokens__rfc3339_variants_are_accepted_and_normalised(void **state)
{
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"2030-01-01t00:00:00.123z", "2030-01-01T00:00:00.123Z"},
        {"2030-01-01T05:30:00+05:30", "2030-01-01T00:00:00Z"},
        {"2030-06-30T23:59:60Z", "2030-07-01T00:00:00Z"}, /* a leap second */
        {"2032-02-29T12:00:00-00:00", "2032-02-29T12:00:00Z"},
    };
    (void)state;

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        json_object *root;
        put_token(stack_url(), project(2), new_secret("ghp_"), cases[i].in, i == 0 ? 201 : 200);
        root = body_json();
        assert_string_equal(text_of(root, "expiresAt"), cases[i].out);
        json_object_put(root);
    }
}

static void test_tokens__replace(void **state)
{
    const char *first = new_secret("glpat-"), *second = new_secret("glpat-");
    char *created;
    json_object *root;
    (void)state;

    put_token(stack_url(), project(3), first, "2031-01-01T00:00:00Z", 201);
    root = body_json();
    created = strdup(text_of(root, "createdAt"));
    json_object_put(root);
    /* replaced: 200, the new value, no expiry any more, the creation time kept */
    put_token(stack_url(), project(3), second, NULL, 200);
    root = body_json();
    assert_null(text_of(root, "expiresAt"));
    assert_string_equal(text_of(root, "createdAt"), created);
    assert_string_not_equal(text_of(root, "updatedAt"), created);
    json_object_put(root);
    assert_token(stack_url(), project(3), second);
    free(created);
}

static void test_tokens__delete(void **state)
{
    (void)state;

    put_token(stack_url(), project(4), new_secret("ghp_"), NULL, 201);
    assert_int_equal(api(stack_url(), "DELETE", tpath(project(4)), NULL, KEY_RIGHT), 204);
    assert_int_equal(res.body.len, 0);
    assert_int_equal(api(stack_url(), "GET", tpath(project(4)), NULL, KEY_RIGHT), 404);
    assert_int_equal(api(stack_url(), "DELETE", tpath(project(4)), NULL, KEY_RIGHT), 404);
}

static void test_tokens__unknown_projects_are_404(void **state)
{
    (void)state;

    assert_int_equal(api(stack_url(), "GET", tpath(project(5)), NULL, KEY_RIGHT), 404);
    assert_non_null(strstr(res.body.ptr, "\"error\":\"not_found\""));
    assert_int_equal(api(stack_url(), "DELETE", tpath(project(5)), NULL, KEY_RIGHT), 404);
    assert_non_null(strstr(res.body.ptr, "\"error\":\"not_found\""));
}

static void test_tokens__invalid_requests_get_400_naming_the_field(void **state)
{
    static char long_body[4300], spaced_body[160], newline_body[160], valid[160], p6[64];
    char long_token[TOKEN_TOO_LONG + 1];
    (void)state;

    /* every rejected token is a fresh secret too: none may come back in an error */
    memset(long_token, 'a', TOKEN_TOO_LONG);
    long_token[TOKEN_TOO_LONG] = '\0';
    memcpy(long_token, new_secret("ghp_"), 44);
    snprintf(long_body, sizeof(long_body), "{\"token\":\"%s\"}", long_token);
    snprintf(spaced_body, sizeof(spaced_body), "{\"token\":\"%s tail\"}", new_secret("ghp_"));
    snprintf(newline_body, sizeof(newline_body), "{\"token\":\"%s\\nx\"}", new_secret("ghp_"));
    assert_true((size_t)snprintf(valid, sizeof(valid), "%s", put_body(new_secret("ghp_"), NULL)) <
                sizeof(valid));
    snprintf(p6, sizeof(p6), TOKENS_PATH_FORMAT, project(6));
    {
        const struct {
            const char *method, *path, *body, *named;
        } cases[] = {
            {"PUT", "/projects/abc/tokens", valid, "id "},
            {"PUT", "/projects/0/tokens", valid, "id "},
            {"PUT", "/projects/-5/tokens", valid, "id "},
            {"PUT", "/projects/007/tokens", valid, "id "},
            {"PUT", "/projects/99999999999999999999/tokens", valid, "id "},
            {"GET", "/projects/1x/tokens", NULL, "id "},
            {"DELETE", "/projects/%20/tokens", NULL, "id "},
            {"PUT", p6, "", "body"},
            {"PUT", p6, "not json", "body"},
            {"PUT", p6, "[\"ghp_x\"]", "body"},
            {"PUT", p6, "{\"token\":\"ghp_abc\"} trailing", "body"},
            {"PUT", p6, "{}", "token is required"},
            {"PUT", p6, "{\"token\":42}", "token must be a string"},
            {"PUT", p6, "{\"token\":\"\"}", "token must not be empty"},
            {"PUT", p6, long_body, "token is longer than 4096"},
            {"PUT", p6, spaced_body, "token must be printable"},
            {"PUT", p6, newline_body, "token must be printable"},
            {"PUT", p6, "{\"token\":\"ghp_\\u00e9t\\u00e9\"}", "token must be printable"},
            {"PUT", p6, "{\"token\":\"ghp_abc\",\"expiresAt\":\"tomorrow\"}", "expiresAt"},
            {"PUT", p6, "{\"token\":\"ghp_abc\",\"expiresAt\":\"2030-02-30T00:00:00Z\"}",
             "expiresAt"},
            {"PUT", p6, "{\"token\":\"ghp_abc\",\"expiresAt\":\"2030-01-01T00:00:00\"}",
             "expiresAt"},
            {"PUT", p6, "{\"token\":\"ghp_abc\",\"expiresAt\":\"2030-01-01 00:00:00Z\"}",
             "expiresAt"},
            {"PUT", p6, "{\"token\":\"ghp_abc\",\"expiresAt\":\"2030-01-01T24:00:00Z\"}",
             "expiresAt"},
            {"PUT", p6, "{\"token\":\"ghp_abc\",\"expiresAt\":\"1969-12-31T23:59:59Z\"}",
             "expiresAt"},
            {"PUT", p6, "{\"token\":\"ghp_abc\",\"expiresAt\":1893456000}", "expiresAt"},
            {"PUT", p6, "{\"token\":\"ghp_abc\",\"expires_at\":\"2030-01-01T00:00:00Z\"}",
             "unknown field \\\"expires_at\\\""},
            {"GET", "/tokens?limit=0", NULL, "limit"},
            {"GET", "/tokens?limit=1001", NULL, "limit"},
            {"GET", "/tokens?after=-1", NULL, "after"},
            {"GET", "/tokens?after=x", NULL, "after"},
        };
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            if (api(stack_url(), cases[i].method, cases[i].path, cases[i].body, KEY_RIGHT) != 400)
                fail_msg("case %zu (%s %s): %ld %s", i, cases[i].method, cases[i].path, res.status,
                         res.body.ptr);
            assert_non_null(strstr(res.body.ptr, "\"error\":\"invalid\""));
            if (strstr(res.body.ptr, cases[i].named) == NULL)
                fail_msg("case %zu: \"%s\" not named in %s", i, cases[i].named, res.body.ptr);
        }
    }
    /* nothing was stored by any of them */
    assert_int_equal(api(stack_url(), "GET", p6, NULL, KEY_RIGHT), 404);
}

static void test_tokens__bodies_over_64_kib_are_refused(void **state)
{
    char *body = malloc(BODY_MAX_SERVICE + 64);
    (void)state;

    assert_non_null(body);
    memset(body, ' ', BODY_MAX_SERVICE + 63);
    memcpy(body, "{\"token\":\"ghp_x\"}", 17);
    body[BODY_MAX_SERVICE + 63] = '\0';
    assert_int_equal(api(stack_url(), "PUT", tpath(project(7)), body, KEY_RIGHT), 413);
    free(body);
}

static void test_tokens__every_route_needs_the_service_key(void **state)
{
    const char *token = new_secret("ghp_");
    const char *routes[][2] = {
        {"PUT", tpath(project(8))}, {"GET", tpath(project(8))}, {"DELETE", tpath(project(8))},
        {"GET", "/tokens"},         {"POST", "/tokens/rotate"},
    };
    char body[256];
    (void)state;

    put_token(stack_url(), project(8), token, NULL, 201);
    assert_true((size_t)snprintf(body, sizeof(body), "%s", put_body(new_secret("ghp_"), NULL)) <
                sizeof(body));
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        const char *b = strcmp(routes[i][0], "PUT") == 0 ? body : NULL;
        assert_int_equal(api(stack_url(), routes[i][0], routes[i][1], b, KEY_NONE), 401);
        assert_non_null(strstr(res.body.ptr, "\"error\":\"unauthorized\""));
        assert_int_equal(api(stack_url(), routes[i][0], routes[i][1], b, KEY_WRONG), 401);
        assert_non_null(strstr(res.body.ptr, "\"error\":\"unauthorized\""));
    }
    /* refused before any effect: the stored token is still the first one, and still there */
    assert_token(stack_url(), project(8), token);
}

/* ---- tests: at rest ---------------------------------------------------------------------- */

static fg_pg_conn *stack_pg; /* the stack's fg_tokens, as the service's role */

static fg_pg_conn *stack_db(void)
{
    if (stack_pg == NULL)
        check(fg_pg_connect(&stack_pg, fg_test_stack_env("FG_TOKEN_REPOSITORY_DB_URL"),
                            PG_TIMEOUT_MS),
              "FG_TOKEN_REPOSITORY_DB_URL");
    return stack_pg;
}

static char *db_text(fg_pg_conn *pg, const char *sql, size_t n, const char *const *params)
{
    fg_pg_result *r = NULL;
    char *text;

    check(fg_pg_exec(&r, pg, sql, n, params), sql);
    assert_int_equal(fg_pg_result_rows(r), 1);
    text = strdup(fg_pg_result_text(r, 0, 0) ? fg_pg_result_text(r, 0, 0) : "");
    fg_pg_result_free(r);
    return text;
}

static void test_tokens__the_database_holds_no_plaintext(void **state)
{
    const char *token = new_secret("ghp_");
    char id[24], *sealed, *row;
    const char *params[1] = {id};
    fg_buf b64;
    (void)state;

    put_token(stack_url(), project(9), token, NULL, 201);
    snprintf(id, sizeof(id), "%lld", project(9));
    sealed =
        db_text(stack_db(), "SELECT sealed FROM tokens WHERE project_id = $1::bigint", 1, params);
    row = db_text(stack_db(), "SELECT t::text FROM tokens t WHERE project_id = $1::bigint", 1,
                  params);
    fg_buf_init(&b64, 256);
    check(fg_base64_encode(&b64, token, strlen(token)), "base64");
    assert_int_equal(strncmp(sealed, "v1:", 3), 0);
    assert_null(strstr(sealed, token));
    assert_null(strstr(row, token));
    assert_null(strstr(row, b64.ptr));
    /* sealing is randomised: storing the same token again gives another value */
    put_token(stack_url(), project(9), token, NULL, 200);
    free(row);
    row = db_text(stack_db(), "SELECT sealed FROM tokens WHERE project_id = $1::bigint", 1, params);
    assert_string_not_equal(row, sealed);
    fg_buf_dispose(&b64);
    free(sealed);
    free(row);
}

static void test_tokens__a_value_moved_to_another_project_does_not_open(void **state)
{
    const char *a = new_secret("ghp_"), *b = new_secret("ghp_");
    char ida[24], idb[24], want[64], *log;
    const char *params[2] = {ida, idb};
    double failures;
    (void)state;

    put_token(stack_url(), project(10), a, NULL, 201);
    put_token(stack_url(), project(11), b, NULL, 201);
    snprintf(ida, sizeof(ida), "%lld", project(10));
    snprintf(idb, sizeof(idb), "%lld", project(11));
    check(fg_pg_exec(NULL, stack_db(),
                     "UPDATE tokens SET sealed = (SELECT sealed FROM tokens WHERE project_id = "
                     "$1::bigint) WHERE project_id = $2::bigint",
                     2, params),
          "move the sealed value");
    assert_int_equal(api(stack_url(), "GET", tpath(project(11)), NULL, KEY_RIGHT), 409);
    assert_non_null(strstr(res.body.ptr, "\"error\":\"token_undecryptable\""));
    snprintf(want, sizeof(want), "project %lld does not authenticate", project(11));
    assert_non_null(strstr(res.body.ptr, want));
    assert_null(strstr(res.body.ptr, a));
    assert_null(strstr(res.body.ptr, b));
    failures = metric(stack_url(), "fg_token_open_failures_total{reason=\"authentication\"}");
    assert_true(failures >= 1);
    /* the row it came from still opens */
    assert_token(stack_url(), project(10), a);
    /* logged, with the project, without any value */
    log = read_file(stack_log_path());
    snprintf(want, sizeof(want), "\"project\":%lld", project(11));
    assert_true(has_line_with(log, "does not authenticate", want));
    free(log);
}

/* ---- tests: rotation --------------------------------------------------------------------- */

static void test_tokens__rotation_re_encrypts_every_token_under_the_first_key(void **state)
{
    const char *old_keys = fg_test_stack_env("FG_TOKEN_KEYS");
    const char *tokens[ROTATION_TOKENS];
    const char *const again[] = {"tokens", "rotate", NULL};
    char entry[128], new_id[16], new_keys[4096], *out;
    const char *params[1] = {new_id};
    instance old, rotator;
    scratch_db db;
    json_object *root;
    fg_pg_conn *pg = NULL;
    (void)state;

    new_key(entry, sizeof(entry), new_id);
    snprintf(new_keys, sizeof(new_keys), "%s,%s", entry, old_keys);
    scratch_create(&db);
    instance_start(&old, db.url, old_keys, NULL);
    for (int i = 0; i < ROTATION_TOKENS; i++) {
        tokens[i] = new_secret("ghs_");
        put_token(old.base, project(100 + i), tokens[i], NULL, 201);
    }
    instance_start(&rotator, db.url, new_keys, NULL);
    /* every key decrypts: the new instance reads the old tokens before any rotation */
    assert_token(rotator.base, project(100), tokens[0]);
    assert_int_equal((long long)metric(rotator.base, "fg_tokens_stale_key"), ROTATION_TOKENS);

    assert_int_equal(api(rotator.base, "POST", "/tokens/rotate", NULL, KEY_RIGHT), 200);
    root = body_json();
    assert_int_equal(int_of(root, "rotated"), ROTATION_TOKENS);
    assert_int_equal(int_of(root, "failed"), 0);
    assert_int_equal(int_of(root, "remaining"), 0);
    assert_int_equal(int_of(root, "total"), ROTATION_TOKENS);
    assert_string_equal(text_of(root, "keyId"), new_id);
    json_object_put(root);

    check(fg_pg_connect(&pg, db.url, PG_TIMEOUT_MS), "scratch db");
    out = db_text(pg, "SELECT count(*) FILTER (WHERE key_id <> $1) || '/' || count(*) FROM tokens",
                  1, params);
    assert_int_equal(strcmp(out, "0/150"), 0);
    free(out);
    for (int i = 0; i < ROTATION_TOKENS; i++)
        assert_token(rotator.base, project(100 + i), tokens[i]);
    assert_int_equal((long long)metric(rotator.base, "fg_tokens_stale_key"), 0);

    /* the instance that holds only the old keys now refuses, saying why */
    assert_int_equal(api(old.base, "GET", tpath(project(100)), NULL, KEY_RIGHT), 409);
    assert_non_null(strstr(res.body.ptr, "\"error\":\"token_undecryptable\""));
    assert_non_null(strstr(res.body.ptr, new_id));
    assert_non_null(strstr(res.body.ptr, "does not hold"));
    assert_null(strstr(res.body.ptr, tokens[0]));

    /* a second run (through fgctl) finds nothing to do */
    assert_int_equal(run_fgctl(&out, rotator.base, again), 0);
    assert_non_null(strstr(out, "re-encrypted 0 tokens"));
    free(out);

    fg_pg_free(pg);
    instance_stop(&old);
    instance_stop(&rotator);
    scratch_drop(&db);
}

typedef struct {
    const char *base;
    long status;
    char *body;
} rotation_call;

static void *rotate_thread(void *arg)
{
    rotation_call *c = arg;
    fg_http_client *client = NULL;
    fg_http_client_response r;
    fg_http_client_options o;

    fg_http_client_options_init(&o);
    o.max_attempts = 1;
    o.timeout_ms = 120000;
    if (fg_http_client_new(&client, &o) < 0)
        return NULL;
    fg_http_client_response_init(&r);
    c->status = send_with(client, &r, c->base, "POST", "/tokens/rotate", NULL, KEY_RIGHT);
    c->body = strdup(r.body.ptr);
    fg_http_client_response_dispose(&r);
    fg_http_client_free(client);
    return NULL;
}

static void test_tokens__concurrent_rotations_share_the_work(void **state)
{
    const char *old_keys = fg_test_stack_env("FG_TOKEN_KEYS");
    const char **tokens = calloc(CONCURRENT_TOKENS, sizeof(*tokens));
    char entry[128], new_id[16], new_keys[4096], *out;
    const char *params[1] = {new_id};
    rotation_call calls[2];
    pthread_t threads[2];
    instance old, rotators[2];
    scratch_db db;
    fg_pg_conn *pg = NULL;
    long long rotated = 0;
    (void)state;

    assert_non_null(tokens);
    new_key(entry, sizeof(entry), new_id);
    snprintf(new_keys, sizeof(new_keys), "%s,%s", entry, old_keys);
    scratch_create(&db);
    instance_start(&old, db.url, old_keys, NULL);
    for (int i = 0; i < CONCURRENT_TOKENS; i++) {
        tokens[i] = new_secret("ghs_");
        put_token(old.base, project(300 + i), tokens[i], NULL, 201);
    }
    for (int k = 0; k < 2; k++) {
        instance_start(&rotators[k], db.url, new_keys, NULL);
        calls[k] = (rotation_call){rotators[k].base, 0, NULL};
    }
    for (int k = 0; k < 2; k++)
        assert_int_equal(pthread_create(&threads[k], NULL, rotate_thread, &calls[k]), 0);
    for (int k = 0; k < 2; k++) {
        json_object *root;
        assert_int_equal(pthread_join(threads[k], NULL), 0);
        assert_int_equal(calls[k].status, 200);
        record(&transcript, calls[k].body, strlen(calls[k].body));
        root = json_tokener_parse(calls[k].body);
        assert_non_null(root);
        assert_int_equal(int_of(root, "failed"), 0);
        rotated += int_of(root, "rotated");
        json_object_put(root);
        free(calls[k].body);
    }
    /* each token was re-encrypted exactly once, by one of them */
    assert_int_equal(rotated, CONCURRENT_TOKENS);
    check(fg_pg_connect(&pg, db.url, PG_TIMEOUT_MS), "scratch db");
    out = db_text(pg, "SELECT count(*) FILTER (WHERE key_id <> $1) FROM tokens", 1, params);
    assert_string_equal(out, "0");
    free(out);
    for (int i = 0; i < CONCURRENT_TOKENS; i += 7)
        assert_token(rotators[i % 2].base, project(300 + i), tokens[i]);

    fg_pg_free(pg);
    instance_stop(&old);
    instance_stop(&rotators[0]);
    instance_stop(&rotators[1]);
    scratch_drop(&db);
    free(tokens);
}

/* ---- tests: expiry reports --------------------------------------------------------------- */

static void test_tokens__expiring_soon_shows_in_the_listing_the_metrics_and_fgctl(void **state)
{
    const char *const list_args[] = {"tokens", "list", NULL};
    const char *const json_args[] = {"tokens", "list", "--json", NULL};
    char soon[32], later[32], past[32], *out, *line;
    instance in;
    scratch_db db;
    json_object *root, *tokens;
    (void)state;

    time_from_now(soon, 2 * 86400);
    time_from_now(later, 30 * 86400);
    time_from_now(past, -86400);
    scratch_create(&db);
    instance_start(&in, db.url, fg_test_stack_env("FG_TOKEN_KEYS"),
                   "FG_TOKEN_EXPIRY_WARNING_DAYS=7");
    put_token(in.base, project(20), new_secret("ghp_"), soon, 201);
    put_token(in.base, project(21), new_secret("ghp_"), later, 201);
    put_token(in.base, project(22), new_secret("ghp_"), NULL, 201);
    put_token(in.base, project(23), new_secret("ghp_"), past, 201);

    assert_int_equal(api(in.base, "GET", "/tokens", NULL, KEY_RIGHT), 200);
    root = body_json();
    tokens = member(root, "tokens");
    assert_int_equal(json_object_array_length(tokens), 4);
    assert_int_equal(int_of(root, "expiryWarningDays"), 7);
    for (size_t i = 0; i < 4; i++) {
        json_object *t = json_object_array_get_idx(tokens, i);
        assert_int_equal(int_of(t, "project"), project(20 + (int)i));
        assert_int_equal(bool_of(t, "expiringSoon"), i == 0 || i == 3);
        assert_int_equal(bool_of(t, "expired"), i == 3);
        assert_false(json_object_object_get_ex(t, "token", NULL));
    }
    json_object_put(root);
    /* paging: one at a time, with a cursor */
    assert_int_equal(api(in.base, "GET", "/tokens?limit=3", NULL, KEY_RIGHT), 200);
    root = body_json();
    assert_int_equal(int_of(root, "next"), project(22));
    json_object_put(root);

    assert_int_equal((long long)metric(in.base, "fg_tokens_total"), 4);
    assert_int_equal((long long)metric(in.base, "fg_tokens_expiring_soon"), 2);
    assert_int_equal((long long)metric(in.base, "fg_tokens_expired"), 1);

    assert_int_equal(run_fgctl(&out, in.base, list_args), 0);
    line = table_line(out, project(20));
    assert_non_null(strstr(line, "EXPIRING SOON"));
    free(line);
    line = table_line(out, project(23));
    assert_non_null(strstr(line, "EXPIRED"));
    free(line);
    line = table_line(out, project(21));
    assert_null(strstr(line, "EXPIR"));
    free(line);
    assert_non_null(strstr(out, "4 tokens; 2 expiring within 7 days (1 expired)"));
    free(out);
    assert_int_equal(run_fgctl(&out, in.base, json_args), 0);
    root = json_tokener_parse(out);
    assert_non_null(root);
    assert_int_equal(json_object_array_length(root), 4);
    assert_true(bool_of(json_object_array_get_idx(root, 0), "expiringSoon"));
    assert_false(bool_of(json_object_array_get_idx(root, 1), "expiringSoon"));
    json_object_put(root);
    free(out);

    /* and the stack's own instance reports it too */
    put_token(stack_url(), project(24), new_secret("ghp_"), soon, 201);
    assert_true(metric(stack_url(), "fg_tokens_expiring_soon") >= 1);
    {
        char path[96];
        snprintf(path, sizeof(path), "/tokens?after=%lld&limit=1", project(23));
        assert_int_equal(api(stack_url(), "GET", path, NULL, KEY_RIGHT), 200);
        root = body_json();
        assert_true(bool_of(json_object_array_get_idx(member(root, "tokens"), 0), "expiringSoon"));
        json_object_put(root);
    }

    instance_stop(&in);
    scratch_drop(&db);
}

/* ---- the secrecy test (last: it reads what every test before it produced) ---------------- */

static void assert_nowhere(const char *where, const char *text)
{
    for (size_t i = 0; i < nsecrets; i++)
        if (strstr(text, secrets[i]) != NULL)
            fail_msg("test token %zu (%.8s...) found in %s", i, secrets[i], where);
}

static void test_tokens__no_token_anywhere_but_the_authorised_gets(void **state)
{
    char *stack_log = read_file(stack_log_path()), *table;
    (void)state;

    assert_true(nsecrets > ROTATION_TOKENS);
    /* the check can see a token where one is: the authorised answers hold them */
    assert_non_null(strstr(authorised.ptr, secrets[0]));
    assert_nowhere("a response body or fgctl output", transcript.ptr);
    assert_nowhere(stack_log_path(), stack_log);
    for (size_t i = 0; i < nlogs; i++) {
        char *log = read_file(logs[i]);
        assert_non_null(strstr(log, "\"msg\":\"listening\""));
        assert_nowhere(logs[i], log);
        free(log);
    }
    table = db_text(stack_db(), "SELECT coalesce(string_agg(t::text, E'\\n'), '') FROM tokens t", 0,
                    NULL);
    assert_nowhere("the token table", table);
    free(table);
    free(stack_log);
}

/* ---- setup ------------------------------------------------------------------------------- */

/* Stops the instances and drops the databases a failed test left behind. */
static void cleanup_leftovers(void)
{
    fg_pg_conn *admin = NULL;
    char sql[128];

    for (size_t i = 0; i < LOGS_MAX; i++)
        if (live_pids[i] > 0 && kill(live_pids[i], SIGTERM) == 0)
            waitpid(live_pids[i], NULL, 0);
    for (size_t i = 0; i < LOGS_MAX; i++) {
        if (live_dbs[i][0] == '\0')
            continue;
        if (admin == NULL && fg_pg_connect(&admin, getenv("FG_PG_URL"), PG_TIMEOUT_MS) < 0)
            break;
        if ((size_t)snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)",
                             live_dbs[i]) >= sizeof(sql))
            continue;
        if (fg_pg_exec(NULL, admin, sql, 0, NULL) < 0)
            printf("cleanup: %s\n", fg_error_last());
    }
    fg_pg_free(admin);
}

static void cleanup_stack_rows(void)
{
    char from[24], to[24];
    const char *params[2] = {from, to};

    snprintf(from, sizeof(from), "%lld", id_base);
    snprintf(to, sizeof(to), "%lld", id_base + 999);
    if (fg_pg_exec(NULL, stack_db(), "DELETE FROM tokens WHERE project_id BETWEEN $1 AND $2", 2,
                   params) < 0)
        printf("cleanup: %s\n", fg_error_last());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tokens__round_trip),
        cmocka_unit_test(test_tokens__rfc3339_variants_are_accepted_and_normalised),
        cmocka_unit_test(test_tokens__replace),
        cmocka_unit_test(test_tokens__delete),
        cmocka_unit_test(test_tokens__unknown_projects_are_404),
        cmocka_unit_test(test_tokens__invalid_requests_get_400_naming_the_field),
        cmocka_unit_test(test_tokens__bodies_over_64_kib_are_refused),
        cmocka_unit_test(test_tokens__every_route_needs_the_service_key),
        cmocka_unit_test(test_tokens__the_database_holds_no_plaintext),
        cmocka_unit_test(test_tokens__a_value_moved_to_another_project_does_not_open),
        cmocka_unit_test(test_tokens__rotation_re_encrypts_every_token_under_the_first_key),
        cmocka_unit_test(test_tokens__concurrent_rotations_share_the_work),
        cmocka_unit_test(test_tokens__expiring_soon_shows_in_the_listing_the_metrics_and_fgctl),
        cmocka_unit_test(test_tokens__no_token_anywhere_but_the_authorised_gets),
    };
    fg_http_client_options o;
    unsigned char r[8];
    unsigned long long v = 0;
    int rc;

    fg_test_stack_env("FG_TOKEN_REPOSITORY_URL"); /* skip the whole program without a stack */
    fg_test_stack_env("FG_TOKEN_REPOSITORY_DB_URL");
    fg_test_stack_env("FG_PG_URL");
    fg_test_stack_env("FG_SERVICE_KEY");
    fg_test_stack_env("FG_TOKEN_KEYS");
    fg_test_stack_env("FG_STACK_DIR");
    if (fg_crypto_random(r, sizeof(r)) < 0)
        return 1;
    for (size_t i = 0; i < sizeof(r); i++)
        v = v << 8 | r[i];
    /* ids nobody else uses: 7e18 + a random multiple of 1000 */
    id_base = 7000000000000000000LL + (long long)(v % 1000000000000000ULL) * 1000;
    fg_buf_init(&transcript, TRANSCRIPT_MAX);
    fg_buf_init(&authorised, TRANSCRIPT_MAX);
    fg_http_client_options_init(&o);
    o.max_attempts = 1;
    o.timeout_ms = 120000;
    if (fg_http_client_new(&http, &o) < 0)
        return 1;
    fg_http_client_response_init(&res);
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    cleanup_leftovers();
    cleanup_stack_rows();
    fg_pg_free(stack_pg);
    for (size_t i = 0; i < nlogs; i++) {
        unlink(logs[i]);
        free(logs[i]);
    }
    for (size_t i = 0; i < nsecrets; i++)
        free(secrets[i]);
    fg_http_client_response_dispose(&res);
    fg_http_client_free(http);
    fg_buf_dispose(&transcript);
    fg_buf_dispose(&authorised);
    return rc;
}
