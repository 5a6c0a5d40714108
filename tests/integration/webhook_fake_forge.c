/*
 * The forge and event-log stand-in of webhook_test.c (see webhook_fake_forge.h). Answers follow
 * the public documentation: GitHub's "Create a repository webhook" (201 with the hook),
 * "Update" (200), "Delete" (204), 404 {"message":"Not Found"} for what does not exist or may not
 * be seen; GitLab's project hooks API (201/200/204, 404 {"message":"404 Not found"}).
 */
#include "webhook_fake_forge.h"

#include "test_support.h"

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <json-c/json.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define REPOS_MAX    32
#define PROJECTS_MAX 64
#define SEEN_MAX     4096

typedef struct {
    char path[256];
    long long id;
    char token[128];
} repo;

typedef struct {
    long long id;
    char key[600]; /* forge:forgeId or git:url */
    bool alive;
} registered;

static struct {
    pthread_mutex_t lock;
    pthread_t thread;
    struct event_base *base;
    struct evhttp *http;
    repo repos[REPOS_MAX];
    size_t nrepos;
    ff_hook hooks[FF_HOOKS_MAX];
    size_t nhooks;
    long long next_hook;
    registered projects[PROJECTS_MAX];
    size_t nprojects;
    long long next_project;
    char seen[SEEN_MAX][160];
    size_t nseen;
    char tokens_seen[256][200];
    size_t ntokens_seen;
    char last_registration[2048];
} ff;

/* ---- answers ---- */

static void reply(struct evhttp_request *req, int status, const char *json)
{
    struct evbuffer *out = evhttp_request_get_output_buffer(req);

    if (json != NULL) {
        evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                          "application/json; charset=utf-8");
        evbuffer_add(out, json, strlen(json));
    }
    evhttp_send_reply(req, status, NULL, NULL);
}

static void not_found(struct evhttp_request *req, bool github)
{
    reply(req, 404, github ? "{\"message\":\"Not Found\"}" : "{\"message\":\"404 Not found\"}");
}

static char *body_of(struct evhttp_request *req)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    size_t len = evbuffer_get_length(in);
    char *s = malloc(len + 1);

    evbuffer_copyout(in, s, len);
    s[len] = '\0';
    return s;
}

static const char *header(struct evhttp_request *req, const char *name)
{
    return evhttp_find_header(evhttp_request_get_input_headers(req), name);
}

/* The token a request carries, "" when none. */
static const char *token_of(struct evhttp_request *req, bool github)
{
    const char *h = header(req, github ? "Authorization" : "PRIVATE-TOKEN");

    if (h == NULL)
        return "";
    if (github)
        return strncmp(h, "Bearer ", 7) == 0 ? h + 7 : "";
    return h;
}

static repo *find_repo(const char *path, long long id)
{
    for (size_t i = 0; i < ff.nrepos; i++) {
        if ((path != NULL && strcmp(ff.repos[i].path, path) == 0) ||
            (path == NULL && ff.repos[i].id == id))
            return &ff.repos[i];
    }
    return NULL;
}

static bool allowed(const repo *r, struct evhttp_request *req, bool github)
{
    return r != NULL && (r->token[0] == '\0' || strcmp(r->token, token_of(req, github)) == 0);
}

/* ---- hooks ---- */

static void hook_json(char *out, size_t size, const ff_hook *h)
{
    if (strcmp(h->forge, "github") == 0)
        snprintf(out, size,
                 "{\"type\":\"Repository\",\"id\":%lld,\"name\":\"web\",\"active\":true,"
                 "\"events\":[\"push\"],\"config\":{\"content_type\":\"json\",\"insecure_ssl\":"
                 "\"0\",\"url\":\"%s\"}}",
                 h->id, h->url);
    else
        snprintf(out, size,
                 "{\"id\":%lld,\"url\":\"%s\",\"project_id\":%lld,\"push_events\":%s,"
                 "\"enable_ssl_verification\":true}",
                 h->id, h->url, h->project, h->push_events ? "true" : "false");
}

/* Reads url, secret and events from a hook request body into h. */
static bool read_hook(ff_hook *h, const char *body, bool github)
{
    json_object *root = json_tokener_parse(body), *config = root, *v;
    bool ok = root != NULL;

    if (ok && github && !json_object_object_get_ex(root, "config", &config))
        ok = false;
    if (ok && json_object_object_get_ex(config, "url", &v))
        snprintf(h->url, sizeof(h->url), "%s", json_object_get_string(v));
    if (ok && json_object_object_get_ex(config, github ? "secret" : "token", &v))
        snprintf(h->secret, sizeof(h->secret), "%s", json_object_get_string(v));
    if (ok && github && json_object_object_get_ex(root, "events", &v)) {
        for (size_t i = 0; i < json_object_array_length(v); i++)
            h->push_events |=
                strcmp(json_object_get_string(json_object_array_get_idx(v, i)), "push") == 0;
    }
    if (ok && !github && json_object_object_get_ex(root, "push_events", &v))
        h->push_events = json_object_get_boolean(v);
    json_object_put(root);
    return ok && h->url[0] != '\0';
}

/* The decimal number at s (0 when there is none). */
static long long number_at(const char *s)
{
    char *end = NULL;
    long long v = strtoll(s, &end, 10);

    return end != s ? v : 0;
}

static void hooks(struct evhttp_request *req, repo *r, bool github, const char *rest)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *forge = github ? "github" : "gitlab";
    char json[2048];
    char *body = body_of(req);
    long long id = rest[0] == '/' ? number_at(rest + 1) : 0;
    ff_hook *h = NULL;

    for (size_t i = 0; i < ff.nhooks; i++) {
        if (ff.hooks[i].alive && ff.hooks[i].project == r->id && ff.hooks[i].id == id &&
            strcmp(ff.hooks[i].forge, forge) == 0)
            h = &ff.hooks[i];
    }
    if (id == 0 && cmd == EVHTTP_REQ_GET) {
        size_t n = (size_t)snprintf(json, sizeof(json), "[");
        for (size_t i = 0; i < ff.nhooks; i++) {
            if (!ff.hooks[i].alive || ff.hooks[i].project != r->id ||
                strcmp(ff.hooks[i].forge, forge) != 0)
                continue;
            if (n > 1)
                json[n++] = ',';
            hook_json(json + n, sizeof(json) - n, &ff.hooks[i]);
            n += strlen(json + n);
        }
        snprintf(json + n, sizeof(json) - n, "]");
        reply(req, 200, json);
    } else if (id == 0 && cmd == EVHTTP_REQ_POST && ff.nhooks < FF_HOOKS_MAX) {
        h = &ff.hooks[ff.nhooks];
        memset(h, 0, sizeof(*h));
        if (!read_hook(h, body, github)) {
            reply(req, 422, "{\"message\":\"Validation Failed\"}");
        } else {
            h->id = ++ff.next_hook;
            snprintf(h->forge, sizeof(h->forge), "%s", forge);
            h->project = r->id;
            h->alive = true;
            ff.nhooks++;
            hook_json(json, sizeof(json), h);
            reply(req, 201, json);
        }
    } else if (h == NULL) {
        not_found(req, github);
    } else if (cmd == EVHTTP_REQ_GET) {
        hook_json(json, sizeof(json), h);
        reply(req, 200, json);
    } else if (cmd == EVHTTP_REQ_PATCH || cmd == EVHTTP_REQ_PUT) {
        read_hook(h, body, github);
        hook_json(json, sizeof(json), h);
        reply(req, 200, json);
    } else if (cmd == EVHTTP_REQ_DELETE) {
        h->alive = false;
        reply(req, 204, NULL);
    } else {
        reply(req, 405, NULL);
    }
    free(body);
}

/* ---- the three APIs ---- */

static void github_api(struct evhttp_request *req, const char *path)
{
    char full[256];
    const char *rest;
    const char *second;
    repo *r;

    if (strncmp(path, "/repos/", 7) != 0 || (second = strchr(path + 7, '/')) == NULL) {
        not_found(req, true);
        return;
    }
    rest = strchr(second + 1, '/');
    snprintf(full, sizeof(full), "%.*s",
             (int)((rest != NULL ? rest : second + strlen(second)) - (path + 7)), path + 7);
    r = find_repo(full, 0);
    if (!allowed(r, req, true)) {
        not_found(req, true);
    } else if (rest == NULL) {
        char json[512];
        snprintf(json, sizeof(json), "{\"id\":%lld,\"full_name\":\"%s\",\"private\":false}", r->id,
                 r->path);
        reply(req, 200, json);
    } else if (strncmp(rest, "/hooks", 6) == 0) {
        hooks(req, r, true, rest + 6);
    } else {
        not_found(req, true);
    }
}

static void gitlab_api(struct evhttp_request *req, const char *path)
{
    char name[256], *end = NULL;
    const char *rest;
    long long id;
    repo *r;
    size_t n = 0;

    if (strncmp(path, "/api/v4/projects/", 17) != 0) {
        not_found(req, false);
        return;
    }
    path += 17;
    id = strtoll(path, &end, 10);
    if (end != path && (*end == '\0' || *end == '/' || *end == '?')) {
        r = find_repo(NULL, id);
        rest = end;
    } else {
        /* a url-encoded path: ns%2Fname */
        for (; *path != '\0' && *path != '/' && *path != '?' && n + 1 < sizeof(name); path++) {
            if (strncmp(path, "%2F", 3) == 0 || strncmp(path, "%2f", 3) == 0) {
                name[n++] = '/';
                path += 2;
            } else {
                name[n++] = *path;
            }
        }
        name[n] = '\0';
        r = find_repo(name, 0);
        rest = path;
    }
    if (!allowed(r, req, false)) {
        not_found(req, false);
    } else if (*rest == '\0' || *rest == '?') {
        char json[512];
        snprintf(json, sizeof(json), "{\"id\":%lld,\"path_with_namespace\":\"%s\"}", r->id,
                 r->path);
        reply(req, 200, json);
    } else if (strncmp(rest, "/hooks", 6) == 0) {
        hooks(req, r, false, rest + 6);
    } else {
        not_found(req, false);
    }
}

static void event_log_api(struct evhttp_request *req, const char *path)
{
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

    if (cmd == EVHTTP_REQ_POST && strcmp(path, "/projects") == 0) {
        char *body = body_of(req), key[600], json[1024];
        json_object *root = json_tokener_parse(body), *forge, *fid, *url;
        registered *p = NULL;
        bool created = false;

        snprintf(ff.last_registration, sizeof(ff.last_registration), "%s", body);
        free(body);
        if (root == NULL || !json_object_object_get_ex(root, "forge", &forge) ||
            !json_object_object_get_ex(root, "url", &url)) {
            json_object_put(root);
            reply(req, 400, "{\"error\":\"invalid\",\"message\":\"body: not valid\"}");
            return;
        }
        if (json_object_object_get_ex(root, "forgeId", &fid))
            snprintf(key, sizeof(key), "%s:%lld", json_object_get_string(forge),
                     (long long)json_object_get_int64(fid));
        else
            snprintf(key, sizeof(key), "git:%s", json_object_get_string(url));
        json_object_put(root);
        for (size_t i = 0; i < ff.nprojects; i++) {
            if (ff.projects[i].alive && strcmp(ff.projects[i].key, key) == 0)
                p = &ff.projects[i];
        }
        if (p == NULL && ff.nprojects < PROJECTS_MAX) {
            p = &ff.projects[ff.nprojects++];
            p->id = ff.next_project++;
            snprintf(p->key, sizeof(p->key), "%s", key);
            p->alive = true;
            created = true;
        }
        snprintf(json, sizeof(json), "{\"id\":%lld}", p != NULL ? p->id : 0);
        reply(req, created ? 201 : 200, json);
        return;
    }
    if (cmd == EVHTTP_REQ_DELETE && strncmp(path, "/projects/", 10) == 0) {
        long long id = number_at(path + 10);
        for (size_t i = 0; i < ff.nprojects; i++) {
            if (ff.projects[i].alive && ff.projects[i].id == id) {
                ff.projects[i].alive = false;
                reply(req, 204, NULL);
                return;
            }
        }
        reply(req, 404, "{\"error\":\"not_found\",\"message\":\"no such project\"}");
        return;
    }
    reply(req, 404, "{\"error\":\"not_found\",\"message\":\"no route\"}");
}

static void on_request(struct evhttp_request *req, void *arg)
{
    const char *uri = evhttp_request_get_uri(req);
    const char *methods[] = {"GET",     "POST",  "HEAD",    "PUT",  "DELETE",
                             "OPTIONS", "TRACE", "CONNECT", "PATCH"};
    enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
    const char *method = "?";
    const char *auth;

    (void)arg;
    for (int i = 0; i < 9; i++) {
        if (cmd == (enum evhttp_cmd_type)(1 << i))
            method = methods[i];
    }
    pthread_mutex_lock(&ff.lock);
    if (ff.nseen < SEEN_MAX)
        snprintf(ff.seen[ff.nseen++], sizeof(ff.seen[0]), "%s %s", method, uri);
    auth = header(req, "Authorization");
    if (auth == NULL)
        auth = header(req, "PRIVATE-TOKEN");
    for (size_t i = 0; auth != NULL && i < ff.ntokens_seen; i++) {
        if (strcmp(ff.tokens_seen[i], auth) == 0)
            auth = NULL;
    }
    if (auth != NULL && ff.ntokens_seen < 256)
        snprintf(ff.tokens_seen[ff.ntokens_seen++], sizeof(ff.tokens_seen[0]), "%s", auth);
    if (strncmp(uri, "/github/", 8) == 0)
        github_api(req, uri + 7);
    else if (strncmp(uri, "/gitlab/", 8) == 0)
        gitlab_api(req, uri + 7);
    else if (strncmp(uri, "/event-log/", 11) == 0)
        event_log_api(req, uri + 10);
    else
        reply(req, 404, NULL);
    pthread_mutex_unlock(&ff.lock);
}

static void *serve(void *arg)
{
    (void)arg;
    event_base_dispatch(ff.base);
    return NULL;
}

void ff_start(char out_base[64], long long first_project)
{
    struct evhttp_bound_socket *sock;
    evutil_socket_t fd;
    struct sockaddr_storage ss;
    ev_socklen_t len = sizeof(ss);

    memset(&ff, 0, sizeof(ff));
    pthread_mutex_init(&ff.lock, NULL);
    ff.next_project = first_project;
    ff.next_hook = 1000;
    ff.base = event_base_new();
    assert_non_null(ff.base);
    ff.http = evhttp_new(ff.base);
    evhttp_set_allowed_methods(ff.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST | EVHTTP_REQ_PUT |
                                            EVHTTP_REQ_PATCH | EVHTTP_REQ_DELETE);
    evhttp_set_gencb(ff.http, on_request, NULL);
    sock = evhttp_bind_socket_with_handle(ff.http, "127.0.0.1", 0);
    assert_non_null(sock);
    fd = evhttp_bound_socket_get_fd(sock);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    snprintf(out_base, 64, "http://127.0.0.1:%d", ntohs(((struct sockaddr_in *)&ss)->sin_port));
    assert_int_equal(pthread_create(&ff.thread, NULL, serve, NULL), 0);
}

void ff_stop(void)
{
    event_base_loopbreak(ff.base);
    pthread_join(ff.thread, NULL);
    evhttp_free(ff.http);
    event_base_free(ff.base);
    pthread_mutex_destroy(&ff.lock);
}

void ff_add_repository(const char *path, long long id, const char *token)
{
    pthread_mutex_lock(&ff.lock);
    assert_true(ff.nrepos < REPOS_MAX);
    snprintf(ff.repos[ff.nrepos].path, sizeof(ff.repos[0].path), "%s", path);
    ff.repos[ff.nrepos].id = id;
    snprintf(ff.repos[ff.nrepos].token, sizeof(ff.repos[0].token), "%s", token ? token : "");
    ff.nrepos++;
    pthread_mutex_unlock(&ff.lock);
}

size_t ff_hooks(ff_hook *out)
{
    size_t n;

    pthread_mutex_lock(&ff.lock);
    n = ff.nhooks;
    memcpy(out, ff.hooks, n * sizeof(ff_hook));
    pthread_mutex_unlock(&ff.lock);
    return n;
}

void ff_drop_hook(long long id)
{
    pthread_mutex_lock(&ff.lock);
    for (size_t i = 0; i < ff.nhooks; i++) {
        if (ff.hooks[i].id == id)
            ff.hooks[i].alive = false;
    }
    pthread_mutex_unlock(&ff.lock);
}

size_t ff_requests(const char *method, const char *prefix)
{
    char want[200];
    size_t n = 0;

    snprintf(want, sizeof(want), "%s %s", method, prefix);
    pthread_mutex_lock(&ff.lock);
    for (size_t i = 0; i < ff.nseen; i++)
        n += strncmp(ff.seen[i], want, strlen(want)) == 0;
    pthread_mutex_unlock(&ff.lock);
    return n;
}

void ff_last_registration(char *out, size_t size)
{
    pthread_mutex_lock(&ff.lock);
    snprintf(out, size, "%s", ff.last_registration);
    pthread_mutex_unlock(&ff.lock);
}

bool ff_saw_token(const char *token)
{
    char bearer[200];
    bool seen = false;

    snprintf(bearer, sizeof(bearer), "Bearer %s", token);
    pthread_mutex_lock(&ff.lock);
    for (size_t i = 0; i < ff.ntokens_seen; i++)
        seen =
            seen || strcmp(ff.tokens_seen[i], bearer) == 0 || strcmp(ff.tokens_seen[i], token) == 0;
    pthread_mutex_unlock(&ff.lock);
    return seen;
}
