/*
 * Clone URLs from event-log (see tg_project.h).
 */
#include "tg_project.h"

#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fg/http_client.h"
#include "fg/log.h"

typedef struct {
    long long id;
    char *url;            /* NULL: the look-up failed or the project has none */
    long long checked_ms; /* monotonic time of the look-up */
} entry;

struct tg_projects {
    char *base;
    char *auth; /* "Authorization: Bearer <key>": never logged */
    fg_http_client *http;
    entry *entries;
    size_t n;
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int tg_projects_new(tg_projects **out, const char *event_log_url, const char *service_key)
{
    tg_projects *p = NULL;
    fg_http_client_options o;
    size_t auth_len = strlen(service_key) + 32;
    int rc = FG_ERROR;

    *out = NULL;
    if ((p = calloc(1, sizeof(*p))) == NULL || (p->base = strdup(event_log_url)) == NULL ||
        (p->auth = malloc(auth_len)) == NULL ||
        (p->entries = calloc(TG_PROJECT_CACHE_MAX, sizeof(*p->entries))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory");
        goto done;
    }
    snprintf(p->auth, auth_len, "Authorization: Bearer %s", service_key);
    fg_http_client_options_init(&o);
    o.max_attempts = 1;
    o.connect_timeout_ms = TG_PROJECT_TIMEOUT_MS;
    o.timeout_ms = TG_PROJECT_TIMEOUT_MS;
    o.max_total_ms = TG_PROJECT_TIMEOUT_MS;
    o.max_response_bytes = 64 * 1024;
    if ((rc = fg_http_client_new(&p->http, &o)) < 0)
        goto done;
    *out = p;
    p = NULL;
    rc = 0;
done:
    tg_projects_free(p);
    return rc;
}

static void clear(tg_projects *p)
{
    for (size_t i = 0; i < p->n; i++)
        free(p->entries[i].url);
    p->n = 0;
}

void tg_projects_free(tg_projects *p)
{
    if (p == NULL)
        return;
    if (p->entries != NULL)
        clear(p);
    free(p->entries);
    fg_http_client_free(p->http);
    free(p->base);
    if (p->auth != NULL) {
        memset(p->auth, 0, strlen(p->auth));
        free(p->auth);
    }
    free(p);
}

/* GET /projects/{id} → its "url". FG_ENOTFOUND for 404; other failures as they come. */
static int fetch(char **out, tg_projects *p, long long id)
{
    char url[FG_HTTP_CLIENT_URL_MAX];
    const char *headers[1] = {p->auth};
    fg_http_client_request req;
    fg_http_client_response res;
    json_object *root = NULL, *v;
    int rc = FG_ERROR;

    snprintf(url, sizeof(url), "%s/projects/%lld", p->base, id);
    fg_http_client_request_init(&req);
    req.url = url;
    req.headers = headers;
    req.nheaders = 1;
    fg_http_client_response_init(&res);
    if ((rc = fg_http_client_send(p->http, &res, &req)) < 0)
        goto done;
    if (res.status != 200) {
        rc = fg_error_set(res.status == 404 ? FG_ENOTFOUND : FG_EUNAVAILABLE,
                          "event-log answered %ld", res.status);
        goto done;
    }
    if ((root = json_tokener_parse(res.body.ptr)) == NULL ||
        !json_object_object_get_ex(root, "url", &v) || !json_object_is_type(v, json_type_string) ||
        json_object_get_string_len(v) == 0 || json_object_get_string_len(v) > TG_PROJECT_URL_MAX) {
        rc = fg_error_set(FG_EINVALID, "event-log's project has no usable \"url\"");
        goto done;
    }
    if ((*out = strdup(json_object_get_string(v))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory");
        goto done;
    }
    rc = 0;
done:
    json_object_put(root);
    fg_http_client_response_dispose(&res);
    return rc;
}

static entry *find(tg_projects *p, long long id)
{
    for (size_t i = 0; i < p->n; i++)
        if (p->entries[i].id == id)
            return &p->entries[i];
    return NULL;
}

void tg_projects_clone_url(const char **out, tg_projects *p, long long id)
{
    entry *e = find(p, id);
    long long now = now_ms();
    char *url = NULL;

    *out = NULL;
    if (e != NULL && (e->url != NULL || now - e->checked_ms < TG_PROJECT_RETRY_MS)) {
        *out = e->url;
        return;
    }
    if (fetch(&url, p, id) < 0)
        fg_log_emit(FG_LOG_WARN, FG_LOG_FIELDS(FG_LOG_INT("project", id)),
                    "no clone URL from event-log (%s): the project node goes without "
                    "schema:codeRepository until a later batch",
                    fg_error_last());
    if (e == NULL) {
        if (p->n == TG_PROJECT_CACHE_MAX)
            clear(p);
        e = &p->entries[p->n++];
        e->id = id;
        e->url = NULL;
    }
    free(e->url);
    e->url = url;
    e->checked_ms = now;
    *out = url;
}

void tg_projects_forget(tg_projects *p, long long id)
{
    entry *e = find(p, id);

    if (e == NULL)
        return;
    free(e->url);
    *e = p->entries[--p->n];
}
