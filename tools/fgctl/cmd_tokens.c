/*
 * fgctl tokens list [--json] | rotate: the token-repository's listing (project, key id, expiry,
 * marked when expiring within FG_TOKEN_EXPIRY_WARNING_DAYS, expired, or under an old key) and
 * its re-encryption under the current key. Never shows a token: the listing has no values.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "fgctl.h"

#define TOKENS_PAGE         1000   /* GET /tokens page size (the service's maximum) */
#define TOKENS_PAGES_MAX    100000 /* a bound on paging, whatever the service answers */
#define TOKENS_PATH_MAX     128
#define TOKENS_ROTATE_MS    600000 /* a rotation re-encrypts every token in one request */
#define TOKENS_AUTH_MAX     512
#define TOKENS_USAGE        "usage: fgctl [--json] tokens list [--json] | rotate [--json]\n"
#define TOKENS_SERVICE_NAME "token-repository"

static const char *service_url(const fgctl *ctl)
{
    for (size_t i = 0; i < ctl->nservices; i++)
        if (strcmp(ctl->services[i].name, TOKENS_SERVICE_NAME) == 0)
            return ctl->services[i].url;
    return "http://127.0.0.1:9003";
}

/* Sends method path to the token-repository with the service key. 0 with res->status set when
 * it answered; an fg error (printed by the caller) when it could not be reached. */
static int call(fg_http_client_response *res, fgctl *ctl, const char *method, const char *path,
                long timeout_ms)
{
    char url[FG_HTTP_CLIENT_URL_MAX], auth[TOKENS_AUTH_MAX];
    const char *headers[1];
    fg_http_client_request req;
    int rc;

    if ((size_t)snprintf(url, sizeof(url), "%s%s", service_url(ctl), path) >= sizeof(url))
        return fg_error_set(FG_EINVALID, "FG_TOKEN_REPOSITORY_URL is too long");
    fg_http_client_request_init(&req);
    req.method = method;
    req.url = url;
    req.idempotent = true; /* a rotation run twice does the work once */
    req.timeout_ms = timeout_ms;
    if (ctl->service_key != NULL) {
        if ((size_t)snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ctl->service_key) >=
            sizeof(auth))
            return fg_error_set(FG_EINVALID, "FG_SERVICE_KEY is too long");
        headers[0] = auth;
        req.headers = headers;
        req.nheaders = 1;
    }
    rc = fg_http_client_send(ctl->http, res, &req);
    /* a 503 after the retries is an answer too: show what the service said */
    return rc < 0 && res->status == 0 ? rc : 0;
}

/* Prints why the service refused: its {"error","message"} body, or the status alone. */
static int report_answer(const fg_http_client_response *res)
{
    json_object *root = json_tokener_parse(res->body.ptr), *message;

    if (root != NULL && json_object_object_get_ex(root, "message", &message))
        fprintf(stderr, "fgctl tokens: %s answered %ld: %s\n", TOKENS_SERVICE_NAME, res->status,
                json_object_get_string(message));
    else
        fprintf(stderr, "fgctl tokens: %s answered %ld\n", TOKENS_SERVICE_NAME, res->status);
    if (res->status == 401)
        fprintf(stderr,
                "fgctl tokens: set FG_SERVICE_KEY (eval \"$(deploy/local/stack.sh env)\")\n");
    json_object_put(root);
    return FGCTL_EXIT_FAILED;
}

/* ---- list -------------------------------------------------------------------------------- */

static const char *field(json_object *o, const char *name)
{
    json_object *v;

    if (!json_object_object_get_ex(o, name, &v) || json_object_is_type(v, json_type_null))
        return "-";
    return json_object_get_string(v);
}

static bool flag(json_object *o, const char *name)
{
    json_object *v;

    return json_object_object_get_ex(o, name, &v) && json_object_get_boolean(v);
}

/* Appends every token of one page to all; *next is the cursor for the next page, 0 at the end.
 * warning_days and current get the service's settings. */
static int read_page(json_object *all, long long *next, long long *warning_days, char *current,
                     size_t current_size, const char *body)
{
    json_object *root = json_tokener_parse(body), *tokens, *v;
    int rc = FG_ERROR;

    *next = 0;
    if (root == NULL || !json_object_object_get_ex(root, "tokens", &tokens) ||
        !json_object_is_type(tokens, json_type_array)) {
        rc = fg_error_set(FG_EINVALID, "the listing is not the JSON the API describes");
        goto done;
    }
    for (size_t i = 0; i < json_object_array_length(tokens); i++)
        json_object_array_add(all, json_object_get(json_object_array_get_idx(tokens, i)));
    if (json_object_object_get_ex(root, "next", &v) && !json_object_is_type(v, json_type_null))
        *next = json_object_get_int64(v);
    if (json_object_object_get_ex(root, "expiryWarningDays", &v))
        *warning_days = json_object_get_int64(v);
    snprintf(current, current_size, "%s", field(root, "currentKeyId"));
    rc = 0;
done:
    json_object_put(root);
    return rc;
}

static void print_table(json_object *all, long long warning_days, const char *current)
{
    size_t n = json_object_array_length(all), soon = 0, expired = 0, stale = 0;

    printf("%-20s %-16s %-30s %-30s %s\n", "PROJECT", "KEY", "EXPIRES", "UPDATED", "STATUS");
    for (size_t i = 0; i < n; i++) {
        json_object *t = json_object_array_get_idx(all, i);
        bool old_key = strcmp(field(t, "keyId"), current) != 0;
        const char *status = flag(t, "expired")        ? "EXPIRED"
                             : flag(t, "expiringSoon") ? "EXPIRING SOON"
                                                       : "";

        printf("%-20s %-16s %-30s %-30s %s%s%s\n", field(t, "project"), field(t, "keyId"),
               field(t, "expiresAt"), field(t, "updatedAt"), status,
               old_key && status[0] != '\0' ? ", " : "", old_key ? "OLD KEY" : "");
        soon += flag(t, "expiringSoon") ? 1 : 0;
        expired += flag(t, "expired") ? 1 : 0;
        stale += old_key ? 1 : 0;
    }
    printf("%zu tokens; %zu expiring within %lld days (%zu expired); %zu under an old key "
           "(current: %s)\n",
           n, soon, warning_days, expired, stale, current);
}

static int list(fgctl *ctl, bool json)
{
    json_object *all = json_object_new_array();
    fg_http_client_response res;
    char path[TOKENS_PATH_MAX], current[64] = "-";
    long long after = 0, warning_days = 0;
    int status = FGCTL_EXIT_FAILED;

    fg_http_client_response_init(&res);
    for (int page = 0; page < TOKENS_PAGES_MAX; page++) {
        snprintf(path, sizeof(path), "/tokens?limit=%d&after=%lld", TOKENS_PAGE, after);
        if (call(&res, ctl, "GET", path, 0) < 0) {
            fprintf(stderr, "fgctl tokens: %s unreachable: %s\n", TOKENS_SERVICE_NAME,
                    fg_error_last());
            goto done;
        }
        if (res.status != 200) {
            status = report_answer(&res);
            goto done;
        }
        if (read_page(all, &after, &warning_days, current, sizeof(current), res.body.ptr) < 0) {
            fprintf(stderr, "fgctl tokens: %s\n", fg_error_last());
            goto done;
        }
        if (after == 0)
            break;
    }
    if (json)
        printf("%s\n", json_object_to_json_string_ext(all, JSON_C_TO_STRING_PRETTY));
    else
        print_table(all, warning_days, current);
    status = FGCTL_EXIT_OK;
done:
    fg_http_client_response_dispose(&res);
    json_object_put(all);
    return status;
}

/* ---- rotate ------------------------------------------------------------------------------ */

static long long number(json_object *o, const char *name)
{
    json_object *v;

    return json_object_object_get_ex(o, name, &v) ? json_object_get_int64(v) : 0;
}

static int print_rotation(const char *body, bool json)
{
    json_object *root = json_tokener_parse(body), *failed;
    int status;

    if (root == NULL) {
        fprintf(stderr, "fgctl tokens: the rotation's answer is not JSON\n");
        return FGCTL_EXIT_FAILED;
    }
    if (json)
        printf("%s\n", json_object_to_json_string_ext(root, JSON_C_TO_STRING_PRETTY));
    else
        printf("re-encrypted %lld tokens under key %s; %lld tokens in all, %lld still under an "
               "old key\n",
               number(root, "rotated"), field(root, "keyId"), number(root, "total"),
               number(root, "remaining"));
    if (number(root, "failed") > 0 && json_object_object_get_ex(root, "failedProjects", &failed))
        fprintf(stderr,
                "fgctl tokens: %lld tokens do not open with this instance's keys (projects %s): "
                "see the token-repository log, then store them again\n",
                number(root, "failed"),
                json_object_to_json_string_ext(failed, JSON_C_TO_STRING_PLAIN));
    else if (number(root, "remaining") > 0)
        fprintf(stderr,
                "fgctl tokens: %lld tokens were busy (another writer or rotation): run "
                "it again\n",
                number(root, "remaining"));
    status = number(root, "remaining") > 0 ? FGCTL_EXIT_FAILED : FGCTL_EXIT_OK;
    json_object_put(root);
    return status;
}

static int rotate(fgctl *ctl, bool json)
{
    fg_http_client_response res;
    int status;

    fg_http_client_response_init(&res);
    if (call(&res, ctl, "POST", "/tokens/rotate", TOKENS_ROTATE_MS) < 0) {
        fprintf(stderr, "fgctl tokens: %s unreachable: %s\n", TOKENS_SERVICE_NAME, fg_error_last());
        status = FGCTL_EXIT_FAILED;
    } else if (res.status != 200) {
        status = report_answer(&res);
    } else {
        status = print_rotation(res.body.ptr, json);
    }
    fg_http_client_response_dispose(&res);
    return status;
}

int fgctl_cmd_tokens(fgctl *ctl, int argc, char **argv)
{
    bool json = ctl->json;

    if (argc == 3 && strcmp(argv[2], "--json") == 0)
        json = true;
    else if (argc != 2)
        goto usage;
    if (strcmp(argv[1], "list") == 0)
        return list(ctl, json);
    if (strcmp(argv[1], "rotate") == 0)
        return rotate(ctl, json);
usage:
    fprintf(stderr, TOKENS_USAGE);
    return FGCTL_EXIT_USAGE;
}
