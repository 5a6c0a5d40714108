/*
 * The real stack as the commit-sync tests see it (see cs_stack.h).
 */
#include "cs_stack.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "fg/http_client.h"
#include "test_support.h"

#define LOG_READ_MAX (64u << 20) /* what one read of a log since its mark may hold */

static fg_http_client *http;
static void (*idle_fn)(void);

void cs_stack_open(void)
{
    fg_http_client_options o;

    fg_test_stack_env("FG_EVENT_LOG_URL");
    fg_test_stack_env("FG_SERVICE_KEY");
    fg_test_stack_env("FG_STACK_DIR");
    fg_http_client_options_init(&o);
    o.max_attempts = 1;
    o.timeout_ms = 30000;
    o.max_response_bytes = 64u << 20;
    assert_int_equal(fg_http_client_new(&http, &o), 0);
}

void cs_stack_close(void)
{
    fg_http_client_free(http);
    http = NULL;
}

void cs_stack_set_idle(void (*idle)(void))
{
    idle_fn = idle;
}

long cs_stack_call(fg_buf *out, const char *method, const char *base, const char *path,
                   const char *body)
{
    char url[2048], auth[512];
    const char *headers[2] = {auth, "Content-Type: application/json"};
    fg_http_client_request req;
    fg_http_client_response res;
    long status;

    snprintf(url, sizeof(url), "%s%s", base, path);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", fg_test_stack_env("FG_SERVICE_KEY"));
    fg_http_client_request_init(&req);
    req.method = method;
    req.url = url;
    req.headers = headers;
    req.nheaders = body != NULL ? 2 : 1;
    req.body = body;
    req.body_len = body != NULL ? strlen(body) : 0;
    fg_http_client_response_init(&res);
    status = fg_http_client_send(http, &res, &req) < 0 && res.status == 0 ? 0 : res.status;
    if (out != NULL) {
        fg_buf_clear(out);
        assert_int_equal(fg_buf_put(out, res.body.ptr, res.body.len), 0);
    }
    fg_http_client_response_dispose(&res);
    return status;
}

long long cs_stack_register(const char *path, const char *url)
{
    fg_buf body, out;
    json_object *root, *id;
    long status;
    long long project;

    fg_buf_init(&body, 8192);
    fg_buf_init(&out, 65536);
    assert_int_equal(fg_buf_printf(&body, "{\"forge\":\"git\",\"path\":\"%s\",\"url\":\"", path),
                     0);
    assert_int_equal(fg_buf_put_json_string(&body, url, strlen(url)), 0);
    assert_int_equal(fg_buf_puts(&body, "\"}"), 0);
    status =
        cs_stack_call(&out, "POST", fg_test_stack_env("FG_EVENT_LOG_URL"), "/projects", body.ptr);
    if (status != 201)
        fail_msg("POST /projects %s: %ld %s", body.ptr, status, out.ptr);
    assert_non_null(root = json_tokener_parse(out.ptr));
    assert_true(json_object_object_get_ex(root, "id", &id));
    project = json_object_get_int64(id);
    assert_true(project > 0);
    json_object_put(root);
    fg_buf_dispose(&body);
    fg_buf_dispose(&out);
    return project;
}

void cs_stack_request_sync(long long project)
{
    char path[64];
    long status;

    snprintf(path, sizeof(path), "/projects/%lld/sync", project);
    status = cs_stack_call(NULL, "POST", fg_test_stack_env("FG_EVENT_LOG_URL"), path, NULL);
    if (status != 202)
        fail_msg("POST %s: %ld", path, status);
}

void cs_stack_remove(long long project)
{
    char path[64];
    long status;

    snprintf(path, sizeof(path), "/projects/%lld", project);
    status = cs_stack_call(NULL, "DELETE", fg_test_stack_env("FG_EVENT_LOG_URL"), path, NULL);
    if (status != 204 && status != 404)
        fail_msg("DELETE %s: %ld", path, status);
}

static bool ready(void *payload)
{
    return cs_stack_call(NULL, "GET", payload, "/ready", NULL) == 200;
}

bool cs_stack_wait_ready(const char *base, int timeout_ms)
{
    return fg_test_wait_until(ready, (void *)base, timeout_ms);
}

double cs_stack_metric(const char *base, const char *series)
{
    fg_buf page;
    const char *at;
    double value = -1;
    size_t len = strlen(series);

    fg_buf_init(&page, 4u << 20);
    assert_int_equal(cs_stack_call(&page, "GET", base, "/metrics", NULL), 200);
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
        fail_msg("no metric %s on %s", series, base);
    return value;
}

/* ---- logs --------------------------------------------------------------------------------- */

void cs_log_mark_path(cs_log *log, const char *path)
{
    struct stat st;

    snprintf(log->path, sizeof(log->path), "%s", path);
    log->offset = stat(path, &st) == 0 ? (long)st.st_size : 0;
}

void cs_log_mark(cs_log *log, const char *service)
{
    char path[1024];

    snprintf(path, sizeof(path), "%s/logs/%s.log", fg_test_stack_env("FG_STACK_DIR"), service);
    cs_log_mark_path(log, path);
}

char *cs_log_text(const cs_log *log)
{
    FILE *f = fopen(log->path, "r");
    struct stat st;
    size_t cap = 1, n = 0;
    char *text;

    if (f != NULL && fstat(fileno(f), &st) == 0 && st.st_size > log->offset)
        cap += (size_t)(st.st_size - log->offset);
    if (cap > LOG_READ_MAX)
        fail_msg("%s: more than %u bytes since the mark", log->path, LOG_READ_MAX);
    assert_non_null(text = malloc(cap));
    if (f != NULL) {
        if (fseek(f, log->offset, SEEK_SET) == 0)
            n = fread(text, 1, cap - 1, f);
        fclose(f);
    }
    text[n] = '\0';
    return text;
}

/* The start of the nth line of text containing needle, or NULL. */
static const char *nth_line(const char *text, const char *needle, size_t nth)
{
    size_t seen = 0;

    for (const char *hit = strstr(text, needle); hit != NULL; hit = strstr(hit, needle)) {
        const char *line = hit, *eol;

        while (line > text && line[-1] != '\n')
            line--;
        if (++seen == nth)
            return line;
        eol = strchr(hit, '\n');
        if (eol == NULL)
            break;
        hit = eol + 1;
    }
    return NULL;
}

size_t cs_log_count(const cs_log *log, const char *needle)
{
    char *text = cs_log_text(log);
    size_t n = 0;

    while (nth_line(text, needle, n + 1) != NULL)
        n++;
    free(text);
    return n;
}

typedef struct {
    const cs_log *log;
    const char *needle;
    size_t n;
} log_probe;

static bool log_reached(void *payload)
{
    log_probe *p = payload;

    if (idle_fn != NULL)
        idle_fn();
    return cs_log_count(p->log, p->needle) >= p->n;
}

bool cs_log_wait(const cs_log *log, const char *needle, size_t n, int timeout_ms)
{
    log_probe p = {log, needle, n};

    return fg_test_wait_until(log_reached, &p, timeout_ms);
}

void cs_log_line(char *out, size_t cap, const cs_log *log, const char *needle, size_t nth)
{
    char *text = cs_log_text(log);
    const char *line = nth_line(text, needle, nth);

    if (line == NULL)
        fail_msg("%s: no line %zu with '%s'", log->path, nth, needle);
    snprintf(out, cap, "%.*s", (int)strcspn(line, "\n"), line);
    free(text);
}

void cs_log_line_ts(char out[CS_STACK_TS_LEN + 1], const cs_log *log, const char *needle,
                    size_t nth)
{
    char line[256];

    cs_log_line(line, sizeof(line), log, needle, nth);
    if (strncmp(line, "{\"ts\":\"", 7) != 0)
        fail_msg("%s: a log line without ts: %s", log->path, line);
    snprintf(out, CS_STACK_TS_LEN + 1, "%.*s", CS_STACK_TS_LEN, line + 7);
}
