/*
 * The five services against the real stack (tests/run.sh starts it): the standard endpoints, the
 * service key, the webhook's body limit, messages parked with a reason, a clean stop on SIGTERM,
 * exit 2 on bad configuration, an honest start-up failure, and recovery after a RabbitMQ restart.
 */
#include "test_support.h"

#include <fcntl.h>
#include <json-c/json.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fg/amqp.h"
#include "fg/http_client.h"
#include "fg/proto.h"

#define WEBHOOK_BODY_MAX (25u * 1024 * 1024)

typedef struct {
    const char *name;
    const char *url_var;
} service_ref;

static const service_ref services[] = {
    {"webhook", "FG_WEBHOOK_URL"},
    {"triples-generator", "FG_TRIPLES_GENERATOR_URL"},
    {"token-repository", "FG_TOKEN_REPOSITORY_URL"},
    {"event-log", "FG_EVENT_LOG_URL"},
    {"commit-sync", "FG_COMMIT_SYNC_URL"},
};
#define NSERVICES (sizeof(services) / sizeof(services[0]))

static fg_http_client *http;

/* ---- helpers ------------------------------------------------------------------------------ */

typedef struct {
    const char *method;
    const char *auth; /* "Authorization: ..." or NULL */
    const void *body;
    size_t body_len;
    const char *username; /* basic auth */
    const char *password;
} call_opts;

static long call(fg_http_client_response *res, const char *base, const char *path,
                 const call_opts *o)
{
    char url[2048];
    const char *headers[2];
    fg_http_client_request req;

    snprintf(url, sizeof(url), "%s%s", base, path);
    fg_http_client_request_init(&req);
    req.url = url;
    req.method = o ? o->method : NULL;
    if (o != NULL && o->auth != NULL) {
        headers[0] = o->auth;
        req.headers = headers;
        req.nheaders = 1;
    }
    if (o != NULL && o->body != NULL) {
        headers[req.nheaders++] = "Content-Type: application/json";
        req.headers = headers;
        req.body = o->body;
        req.body_len = o->body_len;
    }
    if (o != NULL && o->username != NULL) {
        req.auth = FG_HTTP_AUTH_BASIC;
        req.username = o->username;
        req.password = o->password;
    }
    fg_http_client_response_dispose(res);
    fg_http_client_response_init(res);
    /* a final 503 comes back as FG_EUNAVAILABLE with the status kept: that is an answer too */
    if (fg_http_client_send(http, res, &req) < 0 && res->status == 0)
        return 0;
    return res->status;
}

static long get_status(const char *base, const char *path)
{
    fg_http_client_response res;
    long status;

    fg_http_client_response_init(&res);
    status = call(&res, base, path, NULL);
    fg_http_client_response_dispose(&res);
    return status;
}

static const char *bearer(void)
{
    static char header[512];

    snprintf(header, sizeof(header), "Authorization: Bearer %s",
             fg_test_stack_env("FG_SERVICE_KEY"));
    return header;
}

/* Starts build/services/<name>/fg-<name> with the stack's environment plus overrides
 * ("NAME=value"; an empty value unsets), its stdout and stderr going to log_path. */
static pid_t spawn_service(const char *name, const char *const *overrides, const char *log_path)
{
    char path[1024];
    pid_t pid;

    snprintf(path, sizeof(path), "%s/services/%s/fg-%s", FG_BINARY_DIR, name, name);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        dup2(fd, 1);
        dup2(fd, 2);
        for (size_t i = 0; overrides != NULL && overrides[i] != NULL; i++) {
            char *pair = strdup(overrides[i]);
            char *eq = strchr(pair, '=');
            *eq = '\0';
            if (eq[1] == '\0')
                unsetenv(pair);
            else
                setenv(pair, eq + 1, 1);
        }
        execl(path, path, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static char *read_file(const char *path)
{
    FILE *f = fopen(path, "r");
    char *text = calloc(1, 1 << 20);

    assert_non_null(f);
    assert_non_null(text);
    if (fread(text, 1, (1 << 20) - 1, f) == 0)
        text[0] = '\0';
    fclose(f);
    return text;
}

typedef struct {
    const char *base;
    long want;
} ready_probe;

static bool ready_is(void *payload)
{
    ready_probe *p = payload;

    return get_status(p->base, "/ready") == p->want;
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_services__standard_endpoints_of_every_service(void **state)
{
    fg_http_client_response res;
    (void)state;

    fg_http_client_response_init(&res);
    for (size_t i = 0; i < NSERVICES; i++) {
        const char *base = fg_test_stack_env(services[i].url_var);
        json_object *v, *root;

        assert_int_equal(call(&res, base, "/health", NULL), 200);
        assert_int_equal(call(&res, base, "/ready", NULL), 200);
        assert_int_equal(call(&res, base, "/version", NULL), 200);
        root = json_tokener_parse(res.body.ptr);
        assert_non_null(root);
        assert_true(json_object_object_get_ex(root, "service", &v));
        assert_string_equal(json_object_get_string(v), services[i].name);
        json_object_put(root);
        assert_int_equal(call(&res, base, "/metrics", NULL), 200);
        assert_non_null(strstr(res.body.ptr, "fg_http_requests_total"));
        assert_int_equal(call(&res, base, "/no/such/thing", NULL), 404);
    }
    fg_http_client_response_dispose(&res);
}

static void test_services__api_requires_the_service_key(void **state)
{
    const char *event_log = fg_test_stack_env("FG_EVENT_LOG_URL");
    const char *webhook = fg_test_stack_env("FG_WEBHOOK_URL");
    call_opts wrong = {.auth = "Authorization: Bearer not-the-key-at-all"};
    call_opts right = {.auth = bearer()};
    call_opts post = {.method = "POST", .body = "{}", .body_len = 2};
    fg_http_client_response res;
    (void)state;

    fg_http_client_response_init(&res);
    assert_int_equal(call(&res, event_log, "/projects", NULL), 401);
    assert_int_equal(call(&res, event_log, "/projects", &wrong), 401);
    assert_null(strstr(res.body.ptr, fg_test_stack_env("FG_SERVICE_KEY")));
    /* with the key, the route answers */
    assert_int_equal(call(&res, event_log, "/projects", &right), 200);
    assert_non_null(strstr(res.body.ptr, "\"projects\""));
    /* forges hold no service key: the webhook endpoints are public, so an unsigned body that is
     * no delivery gets the webhook's own 400, not the runtime's 401 */
    assert_int_equal(call(&res, webhook, "/webhooks/github", &post), 400);
    fg_http_client_response_dispose(&res);
}

static void test_services__webhook_refuses_bodies_over_25_mib(void **state)
{
    const char *webhook = fg_test_stack_env("FG_WEBHOOK_URL");
    char *body = malloc(WEBHOOK_BODY_MAX + 1);
    call_opts over = {.method = "POST", .body = body, .body_len = WEBHOOK_BODY_MAX + 1};
    call_opts limit = {.method = "POST", .body = body, .body_len = WEBHOOK_BODY_MAX};
    fg_http_client_response res;
    (void)state;

    assert_non_null(body);
    memset(body, ' ', WEBHOOK_BODY_MAX + 1);
    fg_http_client_response_init(&res);
    assert_int_equal(call(&res, webhook, "/webhooks/github", &over), 413);
    /* exactly the limit is read and judged: blanks are no JSON delivery */
    assert_int_equal(call(&res, webhook, "/webhooks/github", &limit), 400);
    fg_http_client_response_dispose(&res);
    free(body);
}

/* Publishes one message with the given id, category and body to fg.events. */
static void publish(const char *id, const char *category, const char *body)
{
    fg_amqp_options o;
    fg_amqp *h = NULL;
    fg_amqp_message m = {id, category, body, strlen(body)};
    size_t confirmed = 0;

    fg_amqp_options_init(&o);
    o.url = fg_test_stack_env("FG_AMQP_URL");
    assert_int_equal(fg_amqp_new(&h, &o), 0);
    assert_int_equal(fg_amqp_connect(h, 10000), 0);
    if (fg_amqp_publish_batch(&confirmed, h, &m, 1, 10000) < 0)
        fail_msg("publish: %s", fg_error_last());
    assert_int_equal(confirmed, 1);
    fg_amqp_free(h);
}

typedef struct {
    const char *ids[2];
    char reasons[2][512];
    bool found[2];
} parked_search;

/* Takes what is in fg.event-log.parked through the management API and notes our messages. */
static bool parked_found(void *payload)
{
    parked_search *s = payload;
    const char *body = "{\"count\":50,\"ackmode\":\"ack_requeue_false\",\"encoding\":\"auto\"}";
    call_opts o = {.method = "POST",
                   .body = body,
                   .body_len = strlen(body),
                   .username = fg_test_stack_env("FG_RABBITMQ_USER"),
                   .password = fg_test_stack_env("FG_RABBITMQ_PASSWORD")};
    fg_http_client_response res;
    json_object *list;

    fg_http_client_response_init(&res);
    if (call(&res, fg_test_stack_env("FG_RABBITMQ_MGMT_URL"),
             "/api/queues/%2F/fg.event-log.parked/get", &o) == 200 &&
        (list = json_tokener_parse(res.body.ptr)) != NULL) {
        for (size_t i = 0; i < json_object_array_length(list); i++) {
            json_object *m = json_object_array_get_idx(list, i), *props, *id, *headers, *reason;
            if (!json_object_object_get_ex(m, "properties", &props) ||
                !json_object_object_get_ex(props, "message_id", &id))
                continue;
            for (int k = 0; k < 2; k++) {
                if (strcmp(json_object_get_string(id), s->ids[k]) != 0)
                    continue;
                s->found[k] = true;
                if (json_object_object_get_ex(props, "headers", &headers) &&
                    json_object_object_get_ex(headers, "x-fg-park-reason", &reason))
                    snprintf(s->reasons[k], sizeof(s->reasons[k]), "%s",
                             json_object_get_string(reason));
            }
        }
        json_object_put(list);
    }
    fg_http_client_response_dispose(&res);
    return s->found[0] && s->found[1];
}

static void test_services__invalid_messages_are_parked_with_a_reason(void **state)
{
    /* valid JSON and envelope, but a sha that is no sha: the schema says where */
    static const char bad_sha[] =
        "{\"id\":\"f0e1d2c3-0000-4000-8000-00000000bad1\",\"category\":\"EVENTS_STATUS_CHANGE\","
        "\"occurredAt\":\"2026-11-22T10:00:00Z\",\"project\":{\"id\":42,\"forge\":\"git\","
        "\"path\":\"group/demo\"},\"subCategory\":\"ToTriplesStore\",\"events\":[{\"sha\":"
        "\"not-a-sha\"}],\"processingTime\":5}";
    parked_search search = {
        {"f0e1d2c3-0000-4000-8000-00000000bad0", "f0e1d2c3-0000-4000-8000-00000000bad1"},
        {"", ""},
        {0, 0}};
    (void)state;

    publish(search.ids[0], "CREATION", "{\"id\": \"not even close\"");
    publish(search.ids[1], "EVENTS_STATUS_CHANGE", bad_sha);
    assert_true(fg_test_wait_until(parked_found, &search, 30000));
    /* parked, never acked as done, each with the codec's reason */
    assert_true(strlen(search.reasons[0]) > 0);
    assert_non_null(strstr(search.reasons[1], "events[0].sha"));
}

static void test_services__sigterm_stops_cleanly(void **state)
{
    char log_path[] = "/tmp/fg-services-test-XXXXXX";
    char port[32], base[64];
    const char *overrides[] = {port, NULL};
    ready_probe up = {base, 200};
    fg_test_process c = {0};
    char *log;
    (void)state;

    close(mkstemp(log_path));
    snprintf(port, sizeof(port), "FG_HTTP_PORT=%d", fg_test_free_port());
    snprintf(base, sizeof(base), "http://127.0.0.1:%s", port + strlen("FG_HTTP_PORT="));
    c.pid = spawn_service("event-log", overrides, log_path);
    assert_true(fg_test_wait_until(ready_is, &up, 30000));
    assert_int_equal(kill(c.pid, SIGTERM), 0);
    assert_true(fg_test_wait_until(fg_test_process_exited, &c, 20000));
    assert_true(WIFEXITED(c.status));
    assert_int_equal(WEXITSTATUS(c.status), 0);
    log = read_file(log_path);
    assert_non_null(strstr(log, "\"msg\":\"stopping on signal 15\""));
    assert_non_null(strstr(log, "\"msg\":\"stopped\""));
    assert_null(strstr(log, fg_test_stack_env("FG_SERVICE_KEY")));
    free(log);
    unlink(log_path);
}

static void test_services__bad_configuration_exits_2_with_one_line(void **state)
{
    char log_path[] = "/tmp/fg-services-test-XXXXXX";
    const char *overrides[] = {"FG_HTTP_PORT=90x1", NULL};
    fg_test_process c = {0};
    char *log;
    (void)state;

    close(mkstemp(log_path));
    c.pid = spawn_service("commit-sync", overrides, log_path);
    assert_true(fg_test_wait_until(fg_test_process_exited, &c, 10000));
    assert_int_equal(WEXITSTATUS(c.status), 2);
    log = read_file(log_path);
    assert_string_equal(log, "fg-commit-sync: configuration: FG_HTTP_PORT: '90x1' is not a port "
                             "(1-65535)\n");
    free(log);
    unlink(log_path);
}

static void test_services__unreachable_database_fails_start_up_without_the_password(void **state)
{
    char log_path[] = "/tmp/fg-services-test-XXXXXX";
    char port[32];
    const char *overrides[] = {
        port, "FG_EVENT_LOG_DB_URL=postgresql://fg:sekr1t-pw@127.0.0.1:1/fg_event_log",
        "FG_STARTUP_TIMEOUT_MS=300", NULL};
    fg_test_process c = {0};
    char *log;
    (void)state;

    close(mkstemp(log_path));
    snprintf(port, sizeof(port), "FG_HTTP_PORT=%d", fg_test_free_port());
    c.pid = spawn_service("event-log", overrides, log_path);
    assert_true(fg_test_wait_until(fg_test_process_exited, &c, 20000));
    assert_int_equal(WEXITSTATUS(c.status), 1);
    log = read_file(log_path);
    assert_non_null(strstr(log, "start-up failed"));
    assert_null(strstr(log, "sekr1t-pw"));
    free(log);
    unlink(log_path);
}

/* Last: it takes RabbitMQ away for a while. */
static void test_services__consumers_recover_after_a_rabbitmq_restart(void **state)
{
    ready_probe down = {fg_test_stack_env("FG_EVENT_LOG_URL"), 503};
    ready_probe up = {fg_test_stack_env("FG_EVENT_LOG_URL"), 200};
    ready_probe tg_up = {fg_test_stack_env("FG_TRIPLES_GENERATOR_URL"), 200};
    (void)state;

    assert_int_equal(fg_test_stack("stop rabbitmq"), 0);
    assert_true(fg_test_wait_until(ready_is, &down, 30000));
    /* the webhook buffers in its outbox, so it stays ready while the broker is away */
    assert_int_equal(get_status(fg_test_stack_env("FG_WEBHOOK_URL"), "/ready"), 200);
    assert_int_equal(fg_test_stack("start rabbitmq"), 0);
    assert_true(fg_test_wait_until(ready_is, &up, 60000));
    assert_true(fg_test_wait_until(ready_is, &tg_up, 60000));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_services__standard_endpoints_of_every_service),
        cmocka_unit_test(test_services__api_requires_the_service_key),
        cmocka_unit_test(test_services__webhook_refuses_bodies_over_25_mib),
        cmocka_unit_test(test_services__invalid_messages_are_parked_with_a_reason),
        cmocka_unit_test(test_services__sigterm_stops_cleanly),
        cmocka_unit_test(test_services__bad_configuration_exits_2_with_one_line),
        cmocka_unit_test(test_services__unreachable_database_fails_start_up_without_the_password),
        cmocka_unit_test(test_services__consumers_recover_after_a_rabbitmq_restart),
    };
    fg_http_client_options o;
    int rc;

    fg_test_stack_env("FG_WEBHOOK_URL"); /* skip the whole program without a stack */
    fg_http_client_options_init(&o);
    o.max_attempts = 1;
    o.timeout_ms = 60000;
    o.max_response_bytes = 64u << 20;
    if (fg_http_client_new(&http, &o) < 0)
        return 1;
    rc = cmocka_run_group_tests(tests, NULL, NULL);
    fg_http_client_free(http);
    return rc;
}
