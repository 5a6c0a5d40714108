/*
 * wh_forge (see wh_forge.h). GitHub: GET /repos/{owner}/{repo}, /repos/{owner}/{repo}/hooks[/{id}]
 * with Accept: application/vnd.github+json and Authorization: Bearer; a hook is {"name":"web",
 * "config":{"url","content_type":"json","secret"},"events":[...]}. GitLab: /api/v4/projects/
 * {url-encoded path} and /api/v4/projects/{id}/hooks[/{id}] with PRIVATE-TOKEN; a hook is {"url",
 * "token", "<kind>_events": true...}. Only the first page of hooks is read (100): a repository
 * with more hooks than that is not one we expect.
 */
#include "wh_forge.h"

#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "fg/buf.h"
#include "fg/crypto.h"

#define URL_MAX    FG_HTTP_CLIENT_URL_MAX
#define HEADER_MAX 4200 /* "Authorization: Bearer " + a token of up to 4096 bytes */
#define BODY_MAX   4096

static const char *const github_events[] = {
    "push",  "pull_request", "pull_request_review", "issues", "issue_comment", "member", "star",
    "watch", "fork",         "repository",          NULL,
};

static const char *const gitlab_events[] = {
    "push_events", "tag_push_events", "merge_requests_events", "issues_events", "note_events", NULL,
};

static bool github(fg_proto_forge forge)
{
    return forge == FG_PROTO_FORGE_GITHUB;
}

/* The answer's status as an fg code; what names the call in the message. */
static int outcome(const fg_http_client_response *res, const char *what)
{
    long s = res->status;

    if (s >= 200 && s < 300)
        return 0;
    if (s == 404)
        return fg_error_set(FG_ENOTFOUND, "%s: the forge answered 404", what);
    if ((s == 403 || s == 429) && res->rate_limit.remaining_present &&
        res->rate_limit.remaining == 0)
        return fg_error_set(FG_EUNAVAILABLE, "%s: the forge's rate limit is exhausted", what);
    if (s == 401 || s == 403)
        return fg_error_set(FG_EAUTH, "%s: the forge refused the token (%ld)", what, s);
    if (s == 0 || s == 429 || s >= 500)
        return fg_error_set(FG_EUNAVAILABLE, "%s: the forge is unavailable (%ld)", what, s);
    return fg_error_set(FG_EINVALID, "%s: the forge answered %ld", what, s);
}

static int call(const wh_forge *f, fg_proto_forge forge, const char *method, const char *url,
                const fg_buf *body, const char *token, fg_http_client_response *res,
                const char *what)
{
    char auth[HEADER_MAX];
    const char *headers[4];
    fg_http_client_request req;
    size_t n = 0;
    int rc;

    fg_http_client_request_init(&req);
    if (github(forge)) {
        headers[n++] = "Accept: application/vnd.github+json";
        headers[n++] = "X-GitHub-Api-Version: 2022-11-28";
        if (token != NULL)
            snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    } else if (token != NULL) {
        snprintf(auth, sizeof(auth), "PRIVATE-TOKEN: %s", token);
    }
    if (token != NULL)
        headers[n++] = auth;
    if (body != NULL) {
        headers[n++] = "Content-Type: application/json";
        req.body = body->ptr;
        req.body_len = body->len;
    }
    req.method = method;
    req.url = url;
    req.headers = headers;
    req.nheaders = n;
    fg_http_client_response_init(res);
    rc = fg_http_client_send(f->http, res, &req);
    fg_crypto_wipe(auth, sizeof(auth));
    if (rc < 0 && res->status == 0)
        return fg_error_set(FG_EUNAVAILABLE, "%s: the forge cannot be reached", what);
    return outcome(res, what);
}

/* GitLab addresses a project by its path with '/' encoded. */
static void project_url(char *out, size_t size, const wh_forge *f, fg_proto_forge forge,
                        const char *path, long long forge_id)
{
    size_t n;

    if (github(forge)) {
        snprintf(out, size, "%s/repos/%s", f->github_api_url, path);
        return;
    }
    if (forge_id >= 0) {
        snprintf(out, size, "%s/api/v4/projects/%lld", f->gitlab_url, forge_id);
        return;
    }
    n = (size_t)snprintf(out, size, "%s/api/v4/projects/", f->gitlab_url);
    for (const char *c = path; *c != '\0' && n + 4 < size; c++) {
        if (*c == '/')
            n += (size_t)snprintf(out + n, size - n, "%%2F");
        else
            out[n++] = *c;
    }
    out[n < size ? n : size - 1] = '\0';
}

static void hooks_url(char *out, const wh_forge *f, fg_proto_forge forge, const char *path,
                      long long forge_id, long long hook_id)
{
    char base[URL_MAX - 64];

    project_url(base, sizeof(base), f, forge, path, forge_id);
    if (hook_id >= 0)
        snprintf(out, URL_MAX, "%s/hooks/%lld", base, hook_id);
    else
        snprintf(out, URL_MAX, "%s/hooks?per_page=100", base);
}

static int id_of(long long *out, json_object *obj)
{
    json_object *v;

    if (!json_object_is_type(obj, json_type_object) || !json_object_object_get_ex(obj, "id", &v) ||
        !json_object_is_type(v, json_type_int) || json_object_get_int64(v) < 0)
        return fg_error_set(FG_EINVALID, "the forge's answer has no id");
    *out = json_object_get_int64(v);
    return 0;
}

int wh_forge_lookup_id(long long *out, const wh_forge *f, fg_proto_forge forge, const char *path,
                       const char *token)
{
    char url[URL_MAX];
    fg_http_client_response res;
    json_object *root = NULL;
    int rc;

    project_url(url, sizeof(url), f, forge, path, -1);
    if ((rc = call(f, forge, "GET", url, NULL, token, &res, "looking the project up")) == 0) {
        root = json_tokener_parse(res.body.ptr);
        rc = id_of(out, root);
    }
    json_object_put(root);
    fg_http_client_response_dispose(&res);
    return rc;
}

static void hook_target(char *out, size_t size, const wh_forge *f, fg_proto_forge forge)
{
    size_t n = strlen(f->public_url);

    /* "https://x.example/" and "https://x.example" mean the same place */
    while (n > 0 && f->public_url[n - 1] == '/')
        n--;
    snprintf(out, size, "%.*s/webhooks/%s", (int)n, f->public_url, fg_proto_forge_name(forge));
}

static int hook_body(fg_buf *b, const wh_forge *f, fg_proto_forge forge, const char *secret,
                     bool create)
{
    char target[URL_MAX];
    int rc;

    hook_target(target, sizeof(target), f, forge);
    if (github(forge)) {
        rc = fg_buf_printf(b, "{%s\"active\":true,\"events\":[", create ? "\"name\":\"web\"," : "");
        for (size_t i = 0; rc == 0 && github_events[i] != NULL; i++)
            rc = fg_buf_printf(b, "%s\"%s\"", i > 0 ? "," : "", github_events[i]);
        if (rc == 0)
            rc = fg_buf_puts(b, "],\"config\":{\"url\":\"");
        if (rc == 0)
            rc = fg_buf_put_json_string(b, target, strlen(target));
        if (rc == 0)
            rc = fg_buf_printf(b,
                               "\",\"content_type\":\"json\",\"insecure_ssl\":\"0\","
                               "\"secret\":\"%s\"}}",
                               secret);
        return rc;
    }
    rc = fg_buf_puts(b, "{\"url\":\"");
    if (rc == 0)
        rc = fg_buf_put_json_string(b, target, strlen(target));
    if (rc == 0)
        rc = fg_buf_printf(b, "\",\"token\":\"%s\",\"enable_ssl_verification\":true", secret);
    for (size_t i = 0; rc == 0 && gitlab_events[i] != NULL; i++)
        rc = fg_buf_printf(b, ",\"%s\":true", gitlab_events[i]);
    return rc == 0 ? fg_buf_putc(b, '}') : rc;
}

/* The id of the hook already pointing at us, or -1. */
static int find_hook(long long *out, const wh_forge *f, fg_proto_forge forge, const char *path,
                     long long forge_id, const char *token)
{
    char url[URL_MAX], target[URL_MAX];
    fg_http_client_response res;
    json_object *root = NULL;
    int rc;

    *out = -1;
    hooks_url(url, f, forge, path, forge_id, -1);
    hook_target(target, sizeof(target), f, forge);
    if ((rc = call(f, forge, "GET", url, NULL, token, &res, "listing the hooks")) == 0) {
        root = json_tokener_parse(res.body.ptr);
        for (size_t i = 0; json_object_is_type(root, json_type_array) &&
                           i < json_object_array_length(root) && *out < 0;
             i++) {
            json_object *hook = json_object_array_get_idx(root, i), *config = hook, *u;
            long long id;
            if (github(forge) && !json_object_object_get_ex(hook, "config", &config))
                continue;
            if (json_object_object_get_ex(config, "url", &u) &&
                json_object_is_type(u, json_type_string) &&
                strcmp(json_object_get_string(u), target) == 0 && id_of(&id, hook) == 0)
                *out = id;
        }
    }
    json_object_put(root);
    fg_http_client_response_dispose(&res);
    return rc;
}

int wh_forge_ensure_hook(long long *out, bool *out_created, const wh_forge *f, fg_proto_forge forge,
                         const char *path, long long forge_id, const char *secret,
                         const char *token)
{
    char url[URL_MAX];
    fg_http_client_response res;
    json_object *root = NULL;
    long long existing = -1;
    fg_buf body;
    int rc;

    fg_buf_init(&body, BODY_MAX);
    fg_http_client_response_init(&res);
    *out_created = false;
    if ((rc = find_hook(&existing, f, forge, path, forge_id, token)) < 0 ||
        (rc = hook_body(&body, f, forge, secret, existing < 0)) < 0)
        goto done;
    fg_http_client_response_dispose(&res);
    hooks_url(url, f, forge, path, forge_id, existing);
    if (existing >= 0) {
        rc = call(f, forge, github(forge) ? "PATCH" : "PUT", url, &body, token, &res,
                  "updating the hook");
        *out = existing;
        goto done;
    }
    hooks_url(url, f, forge, path, forge_id, -1);
    url[strcspn(url, "?")] = '\0';
    if ((rc = call(f, forge, "POST", url, &body, token, &res, "creating the hook")) < 0)
        goto done;
    root = json_tokener_parse(res.body.ptr);
    if ((rc = id_of(out, root)) == 0)
        *out_created = true;
done:
    json_object_put(root);
    fg_crypto_wipe(body.ptr, body.len);
    fg_buf_dispose(&body);
    fg_http_client_response_dispose(&res);
    return rc;
}

int wh_forge_check_hook(const wh_forge *f, fg_proto_forge forge, const char *path,
                        long long forge_id, long long hook_id, const char *token)
{
    char url[URL_MAX];
    fg_http_client_response res;
    int rc;

    hooks_url(url, f, forge, path, forge_id, hook_id);
    rc = call(f, forge, "GET", url, NULL, token, &res, "reading the hook");
    fg_http_client_response_dispose(&res);
    return rc;
}

int wh_forge_delete_hook(const wh_forge *f, fg_proto_forge forge, const char *path,
                         long long forge_id, long long hook_id, const char *token)
{
    char url[URL_MAX];
    fg_http_client_response res;
    int rc;

    hooks_url(url, f, forge, path, forge_id, hook_id);
    rc = call(f, forge, "DELETE", url, NULL, token, &res, "deleting the hook");
    fg_http_client_response_dispose(&res);
    return rc == FG_ENOTFOUND ? 0 : rc;
}
