/*
 * fgctl: the operator CLI. It talks only to the services' HTTP APIs (never to their stores), with
 * the internal service key from FG_SERVICE_KEY. main.c holds the command table; each command
 * lives in cmd_<verb>.c. Exit status: 0 success, 1 the operation failed, 2 bad usage or settings.
 */
#ifndef FGCTL_H
#define FGCTL_H

#include <stdbool.h>

#include "fg/http_client.h"

struct json_object;

#define FGCTL_EXIT_OK     0
#define FGCTL_EXIT_FAILED 1
#define FGCTL_EXIT_USAGE  2

typedef struct {
    const char *name;    /* "event-log" */
    const char *url_var; /* "FG_EVENT_LOG_URL" */
    const char *url;     /* from the environment, or the local stack's default */
} fgctl_service;

typedef struct {
    fgctl_service *services;
    size_t nservices;
    const char *service_key; /* NULL when FG_SERVICE_KEY is unset */
    fg_http_client *http;
    bool json; /* --json: machine-readable output */
    bool tty;  /* stdout is a terminal: progress and colour allowed */
} fgctl;

/* GET base+path (with the service key when one is set) into res. Transport errors come back as
 * fg errors, HTTP statuses as res->status. */
int fgctl_get(fg_http_client_response *res, fgctl *ctl, const char *base,
              const char *path) FG_MUST_CHECK;

/* Sends `method` base+path with the service key and, when json_body is not NULL, that body as
 * application/json (a POST is not sent twice once it may have reached the server).
 * Errors as fgctl_get. */
int fgctl_send(fg_http_client_response *res, fgctl *ctl, const char *method, const char *base,
               const char *path, const char *json_body) FG_MUST_CHECK;

/* The base URL of the service called `name` ("event-log"); NULL when fgctl knows no such one. */
const char *fgctl_service_url(const fgctl *ctl, const char *name);

/* Calls a service and takes its JSON answer: on a 2xx, *out (when not NULL) is the parsed body
 * (NULL for an empty one; json_object_put it) and the result is FGCTL_EXIT_OK. Otherwise it
 * prints "fgctl <what>: <why>" on stderr (the service's {"error","message"}, or the transport
 * error) and returns FGCTL_EXIT_FAILED. */
int fgctl_call(struct json_object **out, fgctl *ctl, const char *service, const char *what,
               const char *method, const char *path, const char *json_body);

/* Helpers of the event-log commands (cmd_project.c). */

/* Matches argv[*i] against "--name value" (then *i moves to the value) or "--name=value". True
 * when it is that option; *out is then its value, or NULL (after a message) when it has none. */
bool fgctl_opt_value(const char **out, int argc, char **argv, int *i, const char *name);

/* A positive decimal integer, all of text. */
bool fgctl_parse_id(long long *out, const char *text);

/* Appends "?name=value" (or "&..." once b holds a '?') with value percent-encoded. */
int fgctl_query_put(fg_buf *b, const char *name, const char *value) FG_MUST_CHECK;

/* Prints a JSON value, pretty, on stdout. */
void fgctl_print_json(const struct json_object *value);

/* A member of a JSON object: an integer (0 when absent), a string ("-" when absent or null). */
long long fgctl_json_int(const struct json_object *obj, const char *key);
const char *fgctl_json_str(const struct json_object *obj, const char *key);

int fgctl_cmd_status(fgctl *ctl, int argc, char **argv);
int fgctl_cmd_project(fgctl *ctl, int argc, char **argv);
int fgctl_cmd_events(fgctl *ctl, int argc, char **argv);
int fgctl_cmd_replay(fgctl *ctl, int argc, char **argv);
int fgctl_cmd_reprovision(fgctl *ctl, int argc, char **argv);
int fgctl_cmd_tokens(fgctl *ctl, int argc, char **argv);
int fgctl_cmd_dump(fgctl *ctl, int argc, char **argv);              /* cmd_deliveries.c */
int fgctl_cmd_replay_deliveries(fgctl *ctl, int argc, char **argv); /* cmd_deliveries.c */
int fgctl_cmd_sparql(fgctl *ctl, int argc, char **argv);

#endif
