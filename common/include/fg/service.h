/*
 * The runtime every forgegraph service shares: configuration with the settings all services
 * have, logging, its database (connect + migrations), its RabbitMQ queue (a bus thread that takes
 * one delivery at a time and acks only after the handler's effect committed), the HTTP server with
 * /health, /ready, /metrics and /version, and a clean stop on SIGTERM or SIGINT.
 *
 * A service's main.c declares its config table (starting with the FG_SERVICE_* macros below),
 * fills fg_service_options and calls fg_service_run(). It does not do: message parsing, retries
 * of business logic, or anything a service owns. Threads: fg_service_run() runs the event loop on
 * the calling thread (HTTP handlers run there, with fg_service_db()); message handlers run on the
 * bus thread with their own database connection (fg_service_bus_db()).
 */
#ifndef FG_SERVICE_H
#define FG_SERVICE_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/amqp.h"
#include "fg/config.h"
#include "fg/http_server.h"
#include "fg/log.h"
#include "fg/metrics.h"
#include "fg/pg.h"

#define FG_SERVICE_KEY_MIN 16 /* bytes of FG_SERVICE_KEY */

/* The settings every service has; each service's config struct embeds this as its FIRST member,
 * named `service`. The database and bus fields stay NULL in services whose table does not list
 * them. */
typedef struct {
    int http_port;
    char *http_bind;
    fg_log_level log_level;
    char *service_key;
    long long shutdown_timeout_ms;
    long long startup_timeout_ms;
    char *db_url;         /* NULL: the service owns no database */
    char *migrations_dir; /* folder of its NNNN_name.sql files */
    char *amqp_url;       /* NULL: the service uses no broker */
    long long amqp_prefetch;
    long long amqp_max_attempts;
    long long amqp_retry_delay_ms;
} fg_service_config;

int fg_service_check_key(const char *value);

/* Table rows for every service; T is the service's config struct, PORT its default port. */
#define FG_SERVICE_VARS(T, PORT)                                                                   \
    {"FG_HTTP_PORT",                                                                               \
     FG_CONFIG_PORT,                                                                               \
     offsetof(T, service.http_port),                                                               \
     #PORT,                                                                                        \
     0,                                                                                            \
     0,                                                                                            \
     0,                                                                                            \
     "HTTP port of this service",                                                                  \
     NULL},                                                                                        \
        {"FG_HTTP_BIND",                                                                           \
         FG_CONFIG_STRING,                                                                         \
         offsetof(T, service.http_bind),                                                           \
         "127.0.0.1",                                                                              \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         "address the HTTP server listens on",                                                     \
         NULL},                                                                                    \
        {"FG_LOG_LEVEL",                                                                           \
         FG_CONFIG_LOG_LEVEL,                                                                      \
         offsetof(T, service.log_level),                                                           \
         "info",                                                                                   \
         0,                                                                                        \
         0,                                                                                        \
         0,                                                                                        \
         "debug, info, warn or error",                                                             \
         NULL},                                                                                    \
        {"FG_SERVICE_KEY",                                                                         \
         FG_CONFIG_STRING,                                                                         \
         offsetof(T, service.service_key),                                                         \
         NULL,                                                                                     \
         FG_CONFIG_REQUIRED | FG_CONFIG_SECRET,                                                    \
         0,                                                                                        \
         0,                                                                                        \
         "internal service key (Authorization: Bearer) for the service APIs, 16+ bytes",           \
         fg_service_check_key},                                                                    \
        {"FG_SHUTDOWN_TIMEOUT_MS",                                                                 \
         FG_CONFIG_INT,                                                                            \
         offsetof(T, service.shutdown_timeout_ms),                                                 \
         "10000",                                                                                  \
         0,                                                                                        \
         100,                                                                                      \
         600000,                                                                                   \
         "how long a stop waits for in-flight work",                                               \
         NULL},                                                                                    \
    {                                                                                              \
        "FG_STARTUP_TIMEOUT_MS", FG_CONFIG_INT, offsetof(T, service.startup_timeout_ms), "30000",  \
            0, 100, 600000, "how long start-up waits for the database", NULL                       \
    }

/* Rows for a service that owns a database; NAME is its FG_<NAME>_DB_URL. */
#define FG_SERVICE_DB_VARS(T, NAME, DEFAULT_URL)                                                   \
    {"FG_" NAME "_DB_URL",                                                                         \
     FG_CONFIG_URL,                                                                                \
     offsetof(T, service.db_url),                                                                  \
     DEFAULT_URL,                                                                                  \
     0,                                                                                            \
     0,                                                                                            \
     0,                                                                                            \
     "PostgreSQL URL of this service's database",                                                  \
     NULL},                                                                                        \
    {                                                                                              \
        "FG_MIGRATIONS_DIR", FG_CONFIG_STRING, offsetof(T, service.migrations_dir), NULL, 0, 0, 0, \
            "folder of this service's NNNN_name.sql migrations (default: "                         \
            "services/<name>/migrations "                                                          \
            "of the source tree it was built from)",                                               \
            NULL                                                                                   \
    }

/* The row for a service that talks to RabbitMQ (publishing, consuming or both). */
#define FG_SERVICE_AMQP_VAR(T)                                                                     \
    {                                                                                              \
        "FG_AMQP_URL", FG_CONFIG_URL, offsetof(T, service.amqp_url),                               \
            "amqp://guest:guest@127.0.0.1:45672/%2f", 0, 0, 0, "RabbitMQ URL", NULL                \
    }

/* Rows for a service that consumes from its queue (FG_SERVICE_AMQP_VAR included). */
#define FG_SERVICE_BUS_VARS(T)                                                                     \
    FG_SERVICE_AMQP_VAR(T),                                                                        \
        {"FG_AMQP_PREFETCH",                                                                       \
         FG_CONFIG_INT,                                                                            \
         offsetof(T, service.amqp_prefetch),                                                       \
         "100",                                                                                    \
         0,                                                                                        \
         1,                                                                                        \
         10000,                                                                                    \
         "deliveries RabbitMQ may send before they are acked",                                     \
         NULL},                                                                                    \
        {"FG_AMQP_MAX_ATTEMPTS",                                                                   \
         FG_CONFIG_INT,                                                                            \
         offsetof(T, service.amqp_max_attempts),                                                   \
         "5",                                                                                      \
         0,                                                                                        \
         1,                                                                                        \
         100,                                                                                      \
         "failed attempts before a message is parked",                                             \
         NULL},                                                                                    \
    {                                                                                              \
        "FG_AMQP_RETRY_DELAY_MS", FG_CONFIG_INT, offsetof(T, service.amqp_retry_delay_ms),         \
            "10000", 0, 10, 86400000, "how long a failed message waits before it is tried again",  \
            NULL                                                                                   \
    }

typedef struct fg_service fg_service;
typedef struct fg_service_bus fg_service_bus;

/* Handles one delivery on the bus thread. Return 0 when its effect is committed (the delivery is
 * acked); FG_EINVALID when it can never succeed (parked at once, with the error message as the
 * reason); anything else to retry it later (parked after FG_AMQP_MAX_ATTEMPTS). */
typedef int (*fg_service_handler)(fg_service_bus *bus, const fg_amqp_delivery *delivery,
                                  void *payload);

/* What a batch handler decided for one delivery: rc as a fg_service_handler would return it, and
 * for rc < 0 the reason the delivery is parked or retried with. */
typedef struct {
    int rc;
    char reason[FG_AMQP_REASON_MAX];
} fg_service_outcome;

/* Handles deliveries[0..n) together on the bus thread (1 <= n <= batch_max), so that their
 * effects can share one transaction and one commit (group commit), and fills outcomes[i] for
 * each. The runtime then settles every delivery by its outcome, as after fg_service_handler. The
 * deliveries are the first one taken and those that had already arrived behind it: the runtime
 * never waits to fill a batch. */
typedef void (*fg_service_batch_handler)(fg_service_bus *bus, fg_amqp_delivery *const *deliveries,
                                         fg_service_outcome *outcomes, size_t n, void *payload);

/* Runs on the bus thread after every delivery (or batch) and at least every 250 ms when idle: the
 * place for work that publishes (dispatch, schedules, zombie chasing, an outbox relay). A service
 * with a tick but no categories gets a publishing-only bus thread, woken early by fg_service_wake.
 * An error is logged; the next tick tries again. */
typedef int (*fg_service_tick_fn)(fg_service_bus *bus, void *payload);

/* Adds the service's own routes; called once on the main thread before serving. */
typedef int (*fg_service_routes_fn)(fg_service *svc, fg_http_server *http, void *payload);

/* Called once on the main thread when the service stops, after the loop has exited and before the
 * bus thread is joined and the HTTP server and the loop are freed: a service that runs threads of
 * its own which answer requests through the loop (fg_service_event_base; event_active from
 * another thread needs evthread_use_pthreads() before fg_service_run) joins them here. Also called
 * after a failed start, so it must cope with routes never having been added. */
typedef void (*fg_service_stop_fn)(fg_service *svc, void *payload);

typedef struct {
    const char *name;                       /* "event-log": logs, /version, queue fg.<name> */
    const fg_service_config *config;        /* the `service` part of the loaded config */
    const char *const *categories;          /* consumed categories (NULL-terminated); NULL: none */
    fg_service_handler handler;             /* required when categories are given ... */
    fg_service_batch_handler batch_handler; /* ... or this one, used instead when set */
    size_t batch_max;                       /* deliveries per batch_handler call; 0: 1 */
    fg_service_tick_fn tick;                /* optional; runs on the bus thread (see above) */
    fg_service_routes_fn routes;            /* optional */
    fg_service_stop_fn stop;                /* optional */
    fg_metrics *metrics;        /* the service's registry (it keeps ownership); NULL: own one */
    fg_http_ready_fn ready;     /* extra readiness checks (main thread); optional */
    const char *migrations_dir; /* when FG_MIGRATIONS_DIR is unset (FG_DEFAULT_MIGRATIONS_DIR) */
    size_t max_body;            /* request body limit; 0: FG_HTTP_BODY_DEFAULT */
    void *payload;              /* passed to handler and routes */
} fg_service_options;

/* Parses argv and the environment into `config` (a zeroed service config struct). Handles
 * --help and --config-markdown. Returns true when the service should start; otherwise
 * *out_exit is the process's exit status: 0 after --help, 2 after a usage or configuration
 * error, which was printed as one line on stderr. Also sets up logging. */
bool fg_service_configure(int *out_exit, void *config, const fg_config_var *vars, size_t nvars,
                          const char *name, int argc, char **argv);

/* Connects the stores, migrates, starts the bus thread and serves HTTP until SIGTERM or SIGINT,
 * then drains and stops. Returns the process exit status: 0 after a clean stop, 1 when start-up
 * failed (logged). */
int fg_service_run(const fg_service_options *opts);

/* A route table row: services declare their API as data. */
typedef struct {
    fg_http_method method;
    const char *pattern;
    fg_http_handler handler;
    bool public_route; /* no service key: forges call it, and prove themselves otherwise */
} fg_service_route;

/* Adds every row of `routes` with the same payload. */
int fg_service_add_routes(fg_http_server *http, const fg_service_route *routes, size_t nroutes,
                          void *payload) FG_MUST_CHECK;

/* A handler for an endpoint this version declares but does not implement yet: 501 with a
 * message naming it, so a caller gets a clear error rather than a 404 or a fake success. */
void fg_service_not_implemented(fg_http_request *req, void *payload);

/* Any thread: makes the bus thread run its tick now rather than at the next poll (a publishing-
 * only service's HTTP handler calls it after writing its outbox). */
void fg_service_wake(fg_service *svc);

/* Main thread only: the service's database connection (NULL without a database). */
fg_pg_conn *fg_service_db(fg_service *svc);
fg_metrics *fg_service_metrics(fg_service *svc);
const fg_service_config *fg_service_config_of(fg_service *svc);

/* Main thread only: the event loop the HTTP handlers run on, for the service's own timers
 * (event_base_once frees a pending one with the loop, so nothing outlives fg_service_run). */
struct event_base *fg_service_event_base(fg_service *svc);

/* Bus thread only: the handler's own database connection and the AMQP handle (for publishing). */
fg_pg_conn *fg_service_bus_db(fg_service_bus *bus);
fg_amqp *fg_service_bus_amqp(fg_service_bus *bus);
fg_service *fg_service_bus_service(fg_service_bus *bus);

#endif
