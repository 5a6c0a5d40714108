/*
 * fg-triples-generator: turns commit bodies into RDF and keeps each project's named graph in the
 * triple store (DESIGN.md flows 4-6). Its stores: the triple store and the database fg_triples.
 * This file only wires: configuration, the store clients (one per thread that talks to the
 * store), the bus handler and tick (tg_consume.h) and the operators' query route (tg_query.h).
 * docs/internals/triples-generator.md explains the whole.
 */
#include <event2/thread.h>
#include <stddef.h>
#include <stdio.h>

#include "fg/http_client.h"
#include "fg/proto.h"
#include "fg/service.h"
#include "tg_consume.h"
#include "tg_query.h"
#include "tg_rdf.h"

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
    long long generation_capacity;
    long long transformation_capacity;
    long long clean_up_capacity;
    long long clean_up_batch;
    long long upload_chunk_bytes;
    long long store_timeout_ms;
    long long ntriples_max_bytes;
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
     "http://forgegraph.local", 0, 0, 0, "base of every IRI in the graph", tg_rdf_check_base},
    {"FG_STORE_EMAILS", FG_CONFIG_BOOL, offsetof(triples_generator_config, store_emails), "0", 0, 0,
     0, "also store persons' email addresses (schema:email)", NULL},
    {"FG_EVENT_LOG_URL", FG_CONFIG_URL, offsetof(triples_generator_config, event_log_url),
     "http://127.0.0.1:9005", 0, 0, 0, "event-log service URL (projects' clone URLs)", NULL},
    {"FG_TG_GENERATION_CAPACITY", FG_CONFIG_INT,
     offsetof(triples_generator_config, generation_capacity), "2000", 0, 0, FG_PROTO_CAPACITY_MAX,
     "AWAITING_GENERATION events this instance takes at once (SUBSCRIPTION)", NULL},
    {"FG_TG_TRANSFORMATION_CAPACITY", FG_CONFIG_INT,
     offsetof(triples_generator_config, transformation_capacity), "2000", 0, 0,
     FG_PROTO_CAPACITY_MAX, "TRIPLES_GENERATED events this instance takes at once (SUBSCRIPTION)",
     NULL},
    {"FG_TG_CLEAN_UP_CAPACITY", FG_CONFIG_INT,
     offsetof(triples_generator_config, clean_up_capacity), "4", 0, 0, FG_PROTO_CAPACITY_MAX,
     "CLEAN_UP messages (one project each) this instance takes at once (SUBSCRIPTION)", NULL},
    {"FG_TG_CLEAN_UP_BATCH", FG_CONFIG_INT, offsetof(triples_generator_config, clean_up_batch),
     "50", 0, 1, TG_CLEAN_UP_BATCH_MAX, "commits removed per SPARQL update request", NULL},
    {"FG_TG_UPLOAD_CHUNK_BYTES", FG_CONFIG_INT,
     offsetof(triples_generator_config, upload_chunk_bytes), "16777216", 0, 65536, 1073741824,
     "most N-Triples bytes in one Graph Store Protocol POST", NULL},
    {"FG_TG_STORE_TIMEOUT_MS", FG_CONFIG_INT, offsetof(triples_generator_config, store_timeout_ms),
     "60000", 0, 1000, 3600000, "how long one request to the triple store may take", NULL},
    {"FG_TG_NTRIPLES_MAX_BYTES", FG_CONFIG_INT,
     offsetof(triples_generator_config, ntriples_max_bytes), "268435456", 0, 1048576, 4294967295LL,
     "most N-Triples bytes one batch may generate or a payload inflate to", NULL},
};

static const char *const triples_generator_categories[] = {
    "AWAITING_GENERATION", "TRIPLES_GENERATED", "CLEAN_UP",        "MEMBER_SYNC",
    "PROJECT_SYNC",        "FORGE_EVENT",       "PROJECT_REMOVED", NULL,
};

typedef struct {
    const triples_generator_config *cfg;
    fg_http_client *probe; /* main thread only */
    tg_consumer *consumer; /* bus thread only */
    tg_query *query;       /* its own thread; answers on the main loop */
} triples_generator;

/* The triple store is this service's store: ready only when it answers a SPARQL ASK. */
static void check_triplestore(fg_http_readiness *r, void *payload)
{
    triples_generator *tg = payload;
    fg_http_client_request req;
    fg_http_client_response res;
    char url[FG_HTTP_CLIENT_URL_MAX];
    char reason[128];

    snprintf(url, sizeof(url), "%s%s?query=ASK%%7B%%7D", tg->cfg->triplestore_url,
             tg_store_virtuoso.query_path);
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

static int add_routes(fg_service *svc, fg_http_server *http, void *payload)
{
    triples_generator *tg = payload;
    static const fg_service_route routes[] = {
        {FG_HTTP_POST, "/sparql", tg_query_handle, false},
    };
    int rc;

    if ((rc = tg_query_start(tg->query, fg_service_event_base(svc))) < 0)
        return rc;
    return fg_service_add_routes(http, routes, sizeof(routes) / sizeof(routes[0]), tg->query);
}

static void stop_query(fg_service *svc, void *payload)
{
    triples_generator *tg = payload;

    (void)svc;
    tg_query_stop(tg->query);
}

/* The handler and the tick get the consumer; the routes get the whole (query server). */
static int handle(fg_service_bus *bus, const fg_amqp_delivery *delivery, void *payload)
{
    return tg_consumer_handle(bus, delivery, ((triples_generator *)payload)->consumer);
}

static void handle_batch(fg_service_bus *bus, fg_amqp_delivery *const *deliveries,
                         fg_service_outcome *outcomes, size_t n, void *payload)
{
    tg_consumer_handle_batch(bus, deliveries, outcomes, n,
                             ((triples_generator *)payload)->consumer);
}

static int tick(fg_service_bus *bus, void *payload)
{
    return tg_consumer_tick(bus, ((triples_generator *)payload)->consumer);
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

static int new_store(tg_store **out, const triples_generator_config *cfg)
{
    tg_store_options o = {cfg->triplestore_url,           cfg->triplestore_user,
                          cfg->triplestore_password,      &tg_store_virtuoso,
                          (long)cfg->store_timeout_ms,    0,
                          (size_t)cfg->upload_chunk_bytes};

    return tg_store_new(out, &o);
}

/* The bus thread's clients and the consumer around them; the query thread's own store client. */
static int build(triples_generator *tg, fg_metrics *metrics)
{
    const triples_generator_config *cfg = tg->cfg;
    tg_settings s = {cfg->graph_base,
                     cfg->store_emails,
                     (size_t)cfg->ntriples_max_bytes,
                     (size_t)cfg->clean_up_batch,
                     cfg->generation_capacity,
                     cfg->transformation_capacity,
                     cfg->clean_up_capacity};
    tg_store *store = NULL, *query_store = NULL;
    tg_projects *projects = NULL;
    int rc;

    if ((rc = new_store(&store, cfg)) < 0 ||
        (rc = tg_projects_new(&projects, cfg->event_log_url, cfg->service.service_key)) < 0) {
        tg_store_free(store);
        return rc;
    }
    if ((rc = tg_consumer_new(&tg->consumer, &s, store, projects, metrics)) < 0 ||
        (rc = new_store(&query_store, cfg)) < 0)
        return rc;
    return tg_query_new(&tg->query, query_store);
}

int main(int argc, char **argv)
{
    triples_generator_config cfg = {0};
    triples_generator tg = {&cfg, NULL, NULL, NULL};
    fg_service_options opts = {0};
    fg_metrics *metrics = NULL;
    const size_t nvars = sizeof(triples_generator_vars) / sizeof(triples_generator_vars[0]);
    int status;

    if (!fg_service_configure(&status, &cfg, triples_generator_vars, nvars, "triples-generator",
                              argc, argv))
        return status;
    /* the query thread hands answers to the loop with event_active */
    if (evthread_use_pthreads() != 0 || fg_metrics_new(&metrics) < 0 || new_probe(&tg.probe) < 0 ||
        build(&tg, metrics) < 0) {
        fg_log_error("start-up failed: %s", fg_error_last());
        status = 1;
        goto done;
    }
    opts.name = TG_SERVICE_NAME;
    opts.config = &cfg.service;
    opts.migrations_dir = FG_DEFAULT_MIGRATIONS_DIR;
    opts.categories = triples_generator_categories;
    opts.handler = handle;
    opts.batch_handler = handle_batch;
    opts.batch_max = TG_BATCH_MAX;
    opts.tick = tick;
    opts.routes = add_routes;
    opts.stop = stop_query;
    opts.ready = check_triplestore;
    opts.metrics = metrics;
    opts.max_body = TG_QUERY_BODY_MAX;
    opts.payload = &tg;
    status = fg_service_run(&opts);
done:
    tg_query_free(tg.query);
    tg_consumer_free(tg.consumer);
    fg_http_client_free(tg.probe);
    fg_metrics_free(metrics);
    fg_config_dispose(&cfg, triples_generator_vars, nvars);
    return status;
}
