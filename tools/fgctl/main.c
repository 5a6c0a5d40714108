/*
 * fgctl entry point: global options, the command table, and the shared HTTP helper. Commands that
 * belong to later milestones are listed with the issue that brings them, and refuse with a clear
 * message instead of pretending.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "fg/log.h"
#include "fgctl.h"

typedef struct {
    const char *name;
    int (*run)(fgctl *ctl, int argc, char **argv);
    const char *summary;
} fgctl_command;

static const fgctl_command commands[] = {
    {"status", fgctl_cmd_status, "readiness and version of every service"},
    {"project", fgctl_cmd_project, "list|status|add|sync|remove projects (event-log, webhook)"},
    {"events", fgctl_cmd_events, "list|show|retry events (event-log)"},
    {"replay", fgctl_cmd_replay, "replay events|rebuild (event-log), deliveries (webhook)"},
    {"reprovision", fgctl_cmd_reprovision, "re-provision a project (event-log)"},
    {"tokens", fgctl_cmd_tokens, "list tokens (expiring ones marked) | rotate them"},
    {"dump", fgctl_cmd_dump, "gzip'd JSON-lines export of deliveries and events since a time"},
    {"sparql", fgctl_cmd_sparql, "run a read-only SPARQL query, print TSV (triples-generator)"},
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static fgctl_service services[] = {
    {"webhook", "FG_WEBHOOK_URL", "http://127.0.0.1:9001"},
    {"triples-generator", "FG_TRIPLES_GENERATOR_URL", "http://127.0.0.1:9002"},
    {"token-repository", "FG_TOKEN_REPOSITORY_URL", "http://127.0.0.1:9003"},
    {"event-log", "FG_EVENT_LOG_URL", "http://127.0.0.1:9005"},
    {"commit-sync", "FG_COMMIT_SYNC_URL", "http://127.0.0.1:9006"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: fgctl [--json] <command> [args]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++)
        fprintf(out, "  %-12s %s%s\n", commands[i].name, commands[i].summary,
                commands[i].run ? "" : " [not in this version]");
    fprintf(out, "\nsettings: FG_SERVICE_KEY and FG_<SERVICE>_URL (eval \"$(deploy/local/stack.sh "
                 "env)\")\n");
}

int fgctl_get(fg_http_client_response *res, fgctl *ctl, const char *base, const char *path)
{
    char url[FG_HTTP_CLIENT_URL_MAX];
    char auth[512];
    const char *headers[1];
    fg_http_client_request req;

    if ((size_t)snprintf(url, sizeof(url), "%s%s", base, path) >= sizeof(url))
        return fg_error_set(FG_EINVALID, "URL too long");
    fg_http_client_request_init(&req);
    req.url = url;
    if (ctl->service_key != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ctl->service_key);
        headers[0] = auth;
        req.headers = headers;
        req.nheaders = 1;
    }
    return fg_http_client_send(ctl->http, res, &req);
}

int fgctl_send(fg_http_client_response *res, fgctl *ctl, const char *method, const char *base,
               const char *path, const char *json_body)
{
    char url[FG_HTTP_CLIENT_URL_MAX];
    char auth[512];
    const char *headers[2];
    fg_http_client_request req;

    if ((size_t)snprintf(url, sizeof(url), "%s%s", base, path) >= sizeof(url))
        return fg_error_set(FG_EINVALID, "URL too long");
    fg_http_client_request_init(&req);
    req.url = url;
    req.method = method;
    req.headers = headers;
    if (ctl->service_key != NULL) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", ctl->service_key);
        headers[req.nheaders++] = auth;
    }
    if (json_body != NULL) {
        headers[req.nheaders++] = "Content-Type: application/json";
        req.body = json_body;
        req.body_len = strlen(json_body);
    }
    return fg_http_client_send(ctl->http, res, &req);
}

const char *fgctl_service_url(const fgctl *ctl, const char *name)
{
    for (size_t i = 0; i < ctl->nservices; i++)
        if (strcmp(ctl->services[i].name, name) == 0)
            return ctl->services[i].url;
    return NULL;
}

/* "status error: message" from a service's {"error","message"} answer, or the raw status. */
static void print_answer_error(const char *what, const fg_http_client_response *res)
{
    json_object *root = res->body.len > 0 ? json_tokener_parse(res->body.ptr) : NULL;
    json_object *code = NULL, *message = NULL;

    if (root != NULL && json_object_object_get_ex(root, "error", &code) &&
        json_object_object_get_ex(root, "message", &message))
        fprintf(stderr, "fgctl %s: %ld %s: %s\n", what, res->status, json_object_get_string(code),
                json_object_get_string(message));
    else
        fprintf(stderr, "fgctl %s: HTTP %ld\n", what, res->status);
    json_object_put(root);
}

int fgctl_call(json_object **out, fgctl *ctl, const char *service, const char *what,
               const char *method, const char *path, const char *json_body)
{
    const char *base = fgctl_service_url(ctl, service);
    fg_http_client_response res;
    int status = FGCTL_EXIT_FAILED;

    if (out != NULL)
        *out = NULL;
    fg_http_client_response_init(&res);
    if (base == NULL) {
        fprintf(stderr, "fgctl %s: no service %s\n", what, service);
        goto done;
    }
    /* an error status (a 503, say) still comes back with its body: that is an answer */
    if (fgctl_send(&res, ctl, method, base, path, json_body) < 0 && res.status == 0) {
        fprintf(stderr, "fgctl %s: %s unreachable: %s\n", what, service, fg_error_last());
        goto done;
    }
    if (res.status < 200 || res.status > 299) {
        print_answer_error(what, &res);
        goto done;
    }
    if (out != NULL && res.body.len > 0 && (*out = json_tokener_parse(res.body.ptr)) == NULL) {
        fprintf(stderr, "fgctl %s: %s answered something that is not JSON\n", what, service);
        goto done;
    }
    status = FGCTL_EXIT_OK;
done:
    fg_http_client_response_dispose(&res);
    return status;
}

static void load_settings(fgctl *ctl)
{
    for (size_t i = 0; i < ctl->nservices; i++) {
        const char *url = getenv(ctl->services[i].url_var);
        if (url != NULL && url[0] != '\0')
            ctl->services[i].url = url;
    }
    ctl->service_key = getenv("FG_SERVICE_KEY");
    if (ctl->service_key != NULL && ctl->service_key[0] == '\0')
        ctl->service_key = NULL;
    ctl->tty = isatty(STDOUT_FILENO);
}

static int new_http(fgctl *ctl)
{
    fg_http_client_options o;

    fg_http_client_options_init(&o);
    o.max_attempts = 2;
    o.connect_timeout_ms = 2000;
    o.timeout_ms = 30000;
    o.user_agent = "fgctl";
    return fg_http_client_new(&ctl->http, &o);
}

static const fgctl_command *find_command(const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (strcmp(commands[i].name, name) == 0)
            return &commands[i];
    return NULL;
}

int main(int argc, char **argv)
{
    fgctl ctl = {services, sizeof(services) / sizeof(services[0]), NULL, NULL, false, false};
    const fgctl_command *cmd;
    int arg = 1, status;

    fg_log_setup("fgctl", FG_LOG_WARN);
    if (arg < argc && strcmp(argv[arg], "--json") == 0) {
        ctl.json = true;
        arg++;
    }
    if (arg >= argc || strcmp(argv[arg], "--help") == 0 || strcmp(argv[arg], "help") == 0) {
        usage(arg >= argc ? stderr : stdout);
        return arg >= argc ? FGCTL_EXIT_USAGE : FGCTL_EXIT_OK;
    }
    if ((cmd = find_command(argv[arg])) == NULL) {
        fprintf(stderr, "fgctl: unknown command '%s' (fgctl --help lists them)\n", argv[arg]);
        return FGCTL_EXIT_USAGE;
    }
    if (cmd->run == NULL) {
        fprintf(stderr, "fgctl %s: not available in this version yet\n", cmd->name);
        return FGCTL_EXIT_FAILED;
    }
    load_settings(&ctl);
    if (new_http(&ctl) < 0) {
        fprintf(stderr, "fgctl: %s\n", fg_error_last());
        return FGCTL_EXIT_FAILED;
    }
    status = cmd->run(&ctl, argc - arg, argv + arg);
    fg_http_client_free(ctl.http);
    return status;
}
