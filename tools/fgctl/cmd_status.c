/*
 * fgctl status: asks every service for /ready and /version and prints one line each (or a JSON
 * array with --json). Exit 0 only when every service is ready: scripts use it as a health gate.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <string.h>

#include "fgctl.h"

typedef struct {
    const fgctl_service *service;
    long ready_status; /* HTTP status of /ready, 0 when unreachable */
    char version[64];
    char detail[256]; /* why not ready */
} service_state;

static void read_version(service_state *st, fgctl *ctl)
{
    fg_http_client_response res;
    json_object *root, *v;

    snprintf(st->version, sizeof(st->version), "-");
    fg_http_client_response_init(&res);
    if (fgctl_get(&res, ctl, st->service->url, "/version") == 0 && res.status == 200 &&
        (root = json_tokener_parse(res.body.ptr)) != NULL) {
        if (json_object_object_get_ex(root, "revision", &v))
            snprintf(st->version, sizeof(st->version), "%s", json_object_get_string(v));
        json_object_put(root);
    }
    fg_http_client_response_dispose(&res);
}

/* The reasons a 503 /ready gives, joined for one line. */
static void read_reasons(service_state *st, const char *body)
{
    json_object *root = json_tokener_parse(body), *reasons;

    snprintf(st->detail, sizeof(st->detail), "not ready");
    if (root == NULL)
        return;
    if (json_object_object_get_ex(root, "reasons", &reasons))
        snprintf(st->detail, sizeof(st->detail), "%s",
                 json_object_to_json_string_ext(reasons, JSON_C_TO_STRING_PLAIN));
    json_object_put(root);
}

static void probe(service_state *st, fgctl *ctl)
{
    fg_http_client_response res;

    fg_http_client_response_init(&res);
    /* a 503 /ready comes back as FG_EUNAVAILABLE with the status kept: that is an answer */
    if (fgctl_get(&res, ctl, st->service->url, "/ready") < 0 && res.status == 0) {
        snprintf(st->detail, sizeof(st->detail), "unreachable: %s", fg_error_last());
    } else {
        st->ready_status = res.status;
        if (res.status != 200)
            read_reasons(st, res.body.ptr);
    }
    fg_http_client_response_dispose(&res);
    if (st->ready_status != 0)
        read_version(st, ctl);
}

static void print_json(const service_state *states, size_t n)
{
    json_object *all = json_object_new_array();

    for (size_t i = 0; i < n; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, "service", json_object_new_string(states[i].service->name));
        json_object_object_add(o, "url", json_object_new_string(states[i].service->url));
        json_object_object_add(o, "ready", json_object_new_boolean(states[i].ready_status == 200));
        json_object_object_add(o, "version", json_object_new_string(states[i].version));
        if (states[i].ready_status != 200)
            json_object_object_add(o, "detail", json_object_new_string(states[i].detail));
        json_object_array_add(all, o);
    }
    printf("%s\n", json_object_to_json_string_ext(all, JSON_C_TO_STRING_PRETTY));
    json_object_put(all);
}

static void print_table(const service_state *states, size_t n)
{
    printf("%-18s %-7s %-24s %-16s %s\n", "SERVICE", "READY", "URL", "REVISION", "DETAIL");
    for (size_t i = 0; i < n; i++)
        printf("%-18s %-7s %-24s %-16s %s\n", states[i].service->name,
               states[i].ready_status == 200 ? "yes" : "no", states[i].service->url,
               states[i].version, states[i].ready_status == 200 ? "" : states[i].detail);
}

int fgctl_cmd_status(fgctl *ctl, int argc, char **argv)
{
    service_state states[8];
    size_t n = ctl->nservices < 8 ? ctl->nservices : 8;
    bool all_ready = true;

    (void)argv;
    if (argc > 1) {
        fprintf(stderr, "usage: fgctl [--json] status\n");
        return FGCTL_EXIT_USAGE;
    }
    memset(states, 0, sizeof(states));
    for (size_t i = 0; i < n; i++) {
        states[i].service = &ctl->services[i];
        probe(&states[i], ctl);
        all_ready = all_ready && states[i].ready_status == 200;
    }
    if (ctl->json)
        print_json(states, n);
    else
        print_table(states, n);
    return all_ready ? FGCTL_EXIT_OK : FGCTL_EXIT_FAILED;
}
