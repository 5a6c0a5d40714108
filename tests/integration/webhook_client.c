/*
 * Helpers for webhook_test.c (see webhook_client.h).
 */
#include "webhook_client.h"

#include "test_support.h"

#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fg/amqp.h"
#include "fg/base64.h"
#include "fg/buf.h"
#include "fg/crypto.h"
#include "fg/proto.h"

static fg_http_client *http;
static fg_buf hook_key;
static unsigned long long unique_counter;
static char run_tag[32];

static fg_amqp *bus;
static long long bus_min_project;
static wt_message *seen;
static size_t nseen, seen_cap;

void wt_init(void)
{
    fg_http_client_options o;
    const char *key = fg_test_stack_env("FG_HOOK_SECRET_KEY");

    fg_http_client_options_init(&o);
    o.max_attempts = 1;
    o.timeout_ms = 120000;
    o.max_response_bytes = (size_t)64 << 20;
    assert_int_equal(fg_http_client_new(&http, &o), 0);
    fg_buf_init(&hook_key, 4096);
    assert_int_equal(fg_base64_decode(&hook_key, key, strlen(key)), 0);
    snprintf(run_tag, sizeof(run_tag), "%lx%x", (unsigned long)time(NULL), (unsigned)getpid());
}

void wt_cleanup(void)
{
    fg_http_client_free(http);
    http = NULL;
    fg_crypto_wipe(hook_key.ptr, hook_key.len);
    fg_buf_dispose(&hook_key);
}

const char *wt_unique(char out[64])
{
    snprintf(out, 64, "wt-%s-%llu", run_tag, ++unique_counter);
    return out;
}

void wt_hook_secret(char out[65], const char *forge, long long id)
{
    char text[32];

    snprintf(text, sizeof(text), "%lld", id);
    assert_int_equal(fg_crypto_hook_secret(out, hook_key.ptr, hook_key.len, forge, text), 0);
}

void wt_github_signature(char out[80], const char *secret, const void *body, size_t len)
{
    char hex[FG_CRYPTO_SHA256_HEX_LEN + 1];

    assert_int_equal(fg_crypto_hmac_sha256_hex(hex, secret, strlen(secret), body, len), 0);
    snprintf(out, 80, "sha256=%s", hex);
}

/* Sends and returns the status (0 when no answer came); *out_body gets the body when asked. */
static long send(const char *method, const char *url, const char *const *headers, size_t nheaders,
                 const void *body, size_t len, char **out_body)
{
    fg_http_client_request req;
    fg_http_client_response res;
    long status;

    fg_http_client_request_init(&req);
    fg_http_client_response_init(&res);
    req.method = method;
    req.url = url;
    req.headers = headers;
    req.nheaders = nheaders;
    req.body = body;
    req.body_len = len;
    /* an answer with a 5xx status comes back as an error with the status kept */
    if (fg_http_client_send(http, &res, &req) < 0 && res.status == 0)
        printf("# %s %s: %s\n", method, url, fg_error_last());
    status = res.status;
    if (out_body != NULL)
        *out_body = strdup(res.body.ptr);
    fg_http_client_response_dispose(&res);
    return status;
}

static long long archive_id(const char *body)
{
    json_object *root = json_tokener_parse(body), *v;
    long long id = 0;

    if (root != NULL && json_object_object_get_ex(root, "id", &v))
        id = json_object_get_int64(v);
    json_object_put(root);
    return id;
}

typedef struct {
    char lines[5][256];
    const char *headers[5];
    size_t n;
} header_set;

static void add_header(header_set *h, const char *name, const char *value)
{
    snprintf(h->lines[h->n], sizeof(h->lines[h->n]), "%s: %s", name, value);
    h->headers[h->n] = h->lines[h->n];
    h->n++;
}

static long post(const wt_delivery *d, const char *forge, long long *out_id)
{
    bool github = strcmp(forge, "github") == 0;
    header_set h = {.n = 0};
    char url[512];
    char *body = NULL;
    long status;

    snprintf(url, sizeof(url), "%s/webhooks/%s", d->base, forge);
    add_header(&h, "Content-Type", "application/json");
    if (d->event != NULL)
        add_header(&h, github ? "X-GitHub-Event" : "X-Gitlab-Event", d->event);
    if (d->delivery != NULL)
        add_header(&h, github ? "X-GitHub-Delivery" : "Idempotency-Key", d->delivery);
    if (d->uuid != NULL)
        add_header(&h, "X-Gitlab-Event-UUID", d->uuid);
    if (d->signature != NULL)
        add_header(&h, github ? "X-Hub-Signature-256" : "X-Gitlab-Token", d->signature);
    status = send("POST", url, h.headers, h.n, d->body, d->body_len, &body);
    if (out_id != NULL)
        *out_id = status == 202 ? archive_id(body) : 0;
    free(body);
    return status;
}

long wt_post_github(const wt_delivery *d, long long *out_id)
{
    return post(d, "github", out_id);
}

long wt_post_gitlab(const wt_delivery *d, long long *out_id)
{
    return post(d, "gitlab", out_id);
}

long wt_call(const char *base, const char *method, const char *path, const char *body,
             char **out_body)
{
    char url[1024], auth[512];
    const char *headers[2] = {auth, "Content-Type: application/json"};

    snprintf(url, sizeof(url), "%s%s", base, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", fg_test_stack_env("FG_SERVICE_KEY"));
    return send(method, url, headers, 2, body, body != NULL ? strlen(body) : 0, out_body);
}

void wt_register(const char *base, const char *forge, long long forge_id, long long project_id,
                 const char *path)
{
    char target[128], body[700];

    snprintf(target, sizeof(target), "/hooks/%s/%lld", forge, forge_id);
    snprintf(body, sizeof(body), "{\"projectId\":%lld,\"path\":\"%s\"}", project_id, path);
    assert_int_equal(wt_call(base, "PUT", target, body, NULL), 200);
}

/* ---- the bus ---- */

static void bus_connect(void)
{
    assert_int_equal(fg_amqp_connect(bus, 120000), 0);
    assert_int_equal(fg_amqp_declare(bus), 0);
    assert_int_equal(fg_amqp_consume(bus), 0);
}

void wt_bus_open(long long min_project)
{
    static const char *const categories[] = {"COMMIT_SYNC_REQUEST", "FORGE_EVENT"};
    fg_amqp_options o;

    fg_amqp_options_init(&o);
    o.url = fg_test_stack_env("FG_AMQP_URL");
    o.service = "webhook-test";
    o.categories = categories;
    o.ncategories = 2;
    o.prefetch = 2000;
    assert_int_equal(fg_amqp_new(&bus, &o), 0);
    bus_connect();
    bus_min_project = min_project;
}

void wt_bus_close(void)
{
    for (size_t i = 0; i < nseen; i++)
        free(seen[i].payload);
    free(seen);
    seen = NULL;
    nseen = seen_cap = 0;
    fg_amqp_free(bus);
    bus = NULL;
}

static void copy_string(char *out, size_t size, const char *s)
{
    snprintf(out, size, "%s", s != NULL ? s : "");
}

static void record(const fg_proto_msg *msg)
{
    wt_message *m;

    if (!msg->has_project || msg->project.id < bus_min_project)
        return;
    if (nseen == seen_cap) {
        seen_cap = seen_cap ? seen_cap * 2 : 256;
        seen = realloc(seen, seen_cap * sizeof(*seen));
        assert_non_null(seen);
    }
    m = &seen[nseen++];
    memset(m, 0, sizeof(*m));
    copy_string(m->id, sizeof(m->id), msg->id);
    copy_string(m->category, sizeof(m->category), fg_proto_category_name(msg->category));
    m->project = msg->project.id;
    if (msg->category == FG_PROTO_FORGE_EVENT) {
        copy_string(m->delivery_id, sizeof(m->delivery_id),
                    fg_proto_msg_get_string(msg, "deliveryId"));
        copy_string(m->event, sizeof(m->event), fg_proto_msg_get_string(msg, "event"));
        copy_string(m->action, sizeof(m->action), fg_proto_msg_get_string(msg, "action"));
        m->payload = strdup(json_object_to_json_string_ext(fg_proto_msg_get(msg, "payload"),
                                                           JSON_C_TO_STRING_PLAIN));
    }
}

void wt_bus_pump(int ms)
{
    long long until = fg_test_now_ms() + ms;

    do {
        fg_amqp_delivery *d = NULL;
        fg_proto_msg msg;
        int rc = fg_amqp_next(&d, bus, 50);

        if (rc == FG_ETIMEOUT)
            continue;
        if (rc == FG_EUNAVAILABLE) {
            bus_connect(); /* after a broker restart: the queue is durable */
            continue;
        }
        assert_int_equal(rc, 0);
        fg_proto_msg_init(&msg);
        if (fg_proto_msg_parse(&msg, fg_amqp_delivery_body(d), fg_amqp_delivery_body_len(d)) == 0)
            record(&msg);
        fg_proto_msg_dispose(&msg);
        if (fg_amqp_ack(bus, d) < 0)
            printf("# ack: %s\n", fg_error_last());
        fg_amqp_delivery_free(d);
    } while (fg_test_now_ms() < until);
}

static bool delivery_seen(void *payload)
{
    wt_bus_pump(50);
    return wt_bus_count_delivery(payload) > 0;
}

bool wt_bus_wait_delivery(const char *delivery_id, int timeout_ms)
{
    return fg_test_wait_until(delivery_seen, (void *)delivery_id, timeout_ms);
}

size_t wt_bus_count(const char *category, long long project)
{
    size_t n = 0;

    for (size_t i = 0; i < nseen; i++)
        n += seen[i].project == project &&
             (category == NULL || strcmp(seen[i].category, category) == 0);
    return n;
}

size_t wt_bus_count_delivery(const char *delivery_id)
{
    size_t n = 0;

    for (size_t i = 0; i < nseen; i++)
        n += strcmp(seen[i].delivery_id, delivery_id) == 0;
    return n;
}

const wt_message *wt_bus_message(size_t i)
{
    return i < nseen ? &seen[i] : NULL;
}

size_t wt_bus_seen(void)
{
    return nseen;
}
