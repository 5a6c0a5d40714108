/*
 * fg-triples-generator: turns commit bodies into RDF and keeps each project's named graph in the
 * triple store (DESIGN.md flows 4-6). Its stores: the triple store and the database fg_triples
 * (forge API cache). This file only wires. Generation and upload come with the triples issue;
 * until then messages are validated and parked with a reason.
 */
#include <stddef.h>
#include <stdio.h>

#include "fg/http_client.h"
#include "fg/proto.h"
#include "fg/service.h"

#define TRIPLESTORE_PROBE_TIMEOUT_MS                                                               \
    1000 /* /ready must answer quickly even when the store hangs                                   \
          */

typedef struct {
    fg_service_config service; /* first: see fg/service.h */
    char *triplestore_url;
    char *triplestore_user;
    char *triplestore_password;
    char *graph_base;
    bool store_emails;
    char *event_log_url;
} triples_generator_config;

static const fg_config_var triples_generator_vars[] = {
    FG_SERVICE_VARS(triples_generator_config, 9002),
    FG_SERVICE_DB_VARS(triples_generator_config, "TRIPLES_GENERATOR",
                       "postgresql://fg_triples_generator@127.0.0.1:55432/fg_triples"),
    FG_SERVICE_BUS_VARS(triples_generator_config),
    {"FG_TRIPLESTORE_URL", FG_CONFIG_URL, offsetof(triples_generator_config, triplestore_url),
     "http://127.0.0.1:58890", 0, 0, 0, "base URL of the SPARQL 1.1 triple store", NULL},
    {"FG_TRIPLESTORE_USER", FG_CONFIG_STRING, offsetof(triples_generator_config, triplestore_user),
     "forgegraph", 0, 0, 0, "triple store user allowed to update", NULL},
    {"FG_TRIPLESTORE_PASSWORD", FG_CONFIG_STRING,
     offsetof(triples_generator_config, triplestore_password), NULL,
     FG_CONFIG_REQUIRED | FG_CONFIG_SECRET, 0, 0, "password of FG_TRIPLESTORE_USER", NULL},
    {"FG_GRAPH_BASE", FG_CONFIG_URL, offsetof(triples_generator_config, graph_base),
     "http://forgegraph.local", 0, 0, 0, "base of every IRI in the graph", NULL},
    {"FG_STORE_EMAILS", FG_CONFIG_BOOL, offsetof(triples_generator_config, store_emails), "0", 0, 0,
     0, "also store persons' email addresses (schema:email)", NULL},
    {"FG_EVENT_LOG_URL", FG_CONFIG_URL, offsetof(triples_generator_config, event_log_url),
     "http://127.0.0.1:9005", 0, 0, 0, "event-log service URL", NULL},
};

static const char *const triples_generator_categories[] = {
    "AWAITING_GENERATION", "TRIPLES_GENERATED", "CLEAN_UP",        "MEMBER_SYNC",
    "PROJECT_SYNC",        "FORGE_EVENT",       "PROJECT_REMOVED", NULL,
};

typedef struct {
    const triples_generator_config *cfg;
    fg_http_client *probe; /* main thread only */
} triples_generator;

/* The triple store is this service's store: ready only when it answers a SPARQL ASK. */
static void check_triplestore(fg_http_readiness *r, void *payload)
{
    triples_generator *tg = payload;
    fg_http_client_request req;
    fg_http_client_response res;
    char url[FG_HTTP_CLIENT_URL_MAX];
    char reason[128];

    snprintf(url, sizeof(url), "%s/sparql?query=ASK%%7B%%7D", tg->cfg->triplestore_url);
    fg_http_client_request_init(&req);
    req.url = url;
    req.timeout_ms = TRIPLESTORE_PROBE_TIMEOUT_MS;
    fg_http_client_response_init(&res);
    if (fg_http_client_send(tg->probe, &res, &req) < 0) {
        fg_http_readiness_report(r, "triplestore", fg_error_last());
    } else if (res.status != 200) {
        snprintf(reason, sizeof(reason), "SPARQL endpoint answered %ld", res.status);
        fg_http_readiness_report(r, "triplestore", reason);
    }
    fg_http_client_response_dispose(&res);
}

static int handle_message(fg_service_bus *bus, const fg_amqp_delivery *delivery, void *payload)
{
    fg_proto_msg msg;
    int rc;

    (void)bus;
    (void)payload;
    fg_proto_msg_init(&msg);
    rc = fg_proto_msg_parse(&msg, fg_amqp_delivery_body(delivery),
                            fg_amqp_delivery_body_len(delivery));
    if (rc == 0)
        rc = fg_error_set(FG_EINVALID, "triples-generator does not handle %s in this version yet",
                          fg_proto_category_name(msg.category));
    fg_proto_msg_dispose(&msg);
    return rc;
}

static int new_probe(fg_http_client **out)
{
    fg_http_client_options o;

    fg_http_client_options_init(&o);
    o.max_attempts = 1; /* readiness reports the state now; the caller polls */
    o.connect_timeout_ms = TRIPLESTORE_PROBE_TIMEOUT_MS;
    o.timeout_ms = TRIPLESTORE_PROBE_TIMEOUT_MS;
    return fg_http_client_new(out, &o);
}

int main(int argc, char **argv)
{
    triples_generator_config cfg = {0};
    triples_generator tg = {&cfg, NULL};
    fg_service_options opts = {0};
    const size_t nvars = sizeof(triples_generator_vars) / sizeof(triples_generator_vars[0]);
    int status;

    if (!fg_service_configure(&status, &cfg, triples_generator_vars, nvars, "triples-generator",
                              argc, argv))
        return status;
    if (new_probe(&tg.probe) < 0) {
        fg_log_error("start-up failed: %s", fg_error_last());
        status = 1;
        goto done;
    }
    opts.name = "triples-generator";
    opts.config = &cfg.service;
    opts.migrations_dir = FG_DEFAULT_MIGRATIONS_DIR;
    opts.categories = triples_generator_categories;
    opts.handler = handle_message;
    opts.ready = check_triplestore;
    opts.payload = &tg;
    status = fg_service_run(&opts);
done:
    fg_http_client_free(tg.probe);
    fg_config_dispose(&cfg, triples_generator_vars, nvars);
    return status;
}
