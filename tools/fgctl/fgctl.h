/*
 * fgctl: the operator CLI. It talks only to the services' HTTP APIs (never to their stores), with
 * the internal service key from FG_SERVICE_KEY. main.c holds the command table; each command
 * lives in cmd_<verb>.c. Exit status: 0 success, 1 the operation failed, 2 bad usage or settings.
 */
#ifndef FGCTL_H
#define FGCTL_H

#include <stdbool.h>

#include "fg/http_client.h"

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

int fgctl_cmd_status(fgctl *ctl, int argc, char **argv);

#endif
