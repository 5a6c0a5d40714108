/*
 * The shared service runtime (see fg/service.h).
 *
 * Two threads at most. The main thread runs the libevent loop: HTTP, signals, and a database
 * connection of its own for /ready and the service's API. The bus thread owns the AMQP handle and
 * a second database connection, and handles one delivery at a time (with a batch handler: the
 * deliveries already arrived, together): librabbitmq and libpq block, so they stay out of the
 * event loop. The threads share only atomics and the (locked) metrics registry. Stopping: the
 * signal handler marks the service as stopping and wakes the bus thread, the HTTP server drains
 * its in-flight requests, the loop exits, and the bus thread is joined after it finished (and
 * acked, or not) the deliveries in hand. Prefetched deliveries it never touched go back to the
 * queue when its connection closes.
 */
#include "fg/service.h"

#include <errno.h>
#include <event2/event.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define FG_SERVICE_BACKOFF_MIN_MS 100
#define FG_SERVICE_BACKOFF_MAX_MS 5000
#define FG_SERVICE_POLL_MS        250  /* longest a stop waits for the bus thread to notice */
#define FG_SERVICE_CONNECT_MS     5000 /* one connection attempt to a store */
#define FG_SERVICE_CATEGORIES_MAX FG_AMQP_CATEGORIES_MAX
#define FG_SERVICE_BATCH_MAX      FG_AMQP_PREFETCH_MAX /* never more can be in hand at once */
#define FG_SERVICE_TRIM_IDLE_MS   1000      /* quiet bus time after work before memory goes back */
#define FG_SERVICE_MMAP_THRESHOLD (1 << 20) /* malloc: blocks from this size are mapped apart */
#define FG_SERVICE_TRIM_THRESHOLD (4 << 20) /* malloc: free heap top kept before it is returned */

struct fg_service {
    const fg_service_options *opts;
    const fg_service_config *cfg;
    struct event_base *base;
    fg_http_server *http;
    fg_metrics *metrics;
    fg_pg_conn *db;
    struct event *on_sigterm;
    struct event *on_sigint;
    pthread_t bus_thread;
    bool bus_started;
    atomic_bool stopping;
    atomic_bool bus_connected;
    bool wake_requested; /* under wake_lock: fg_service_wake was called */
    pthread_mutex_t wake_lock;
    pthread_cond_t wake;
    fg_metric *handled_ok;
    fg_metric *handled_retry;
    fg_metric *handled_park;
};

struct fg_service_bus {
    fg_service *svc;
    fg_amqp *amqp;
    fg_pg_conn *db;
    fg_amqp_delivery **batch;     /* batch_max slots, with a batch handler */
    fg_service_outcome *outcomes; /* one per slot */
    long long worked_ms;          /* when a delivery was last handled; 0: memory given back */
};

/* ---- configuration ---------------------------------------------------------------------- */

int fg_service_check_key(const char *value)
{
    if (strlen(value) < FG_SERVICE_KEY_MIN)
        return fg_error_set(FG_EINVALID, "must be at least %d bytes", FG_SERVICE_KEY_MIN);
    return 0;
}

static void print_usage(FILE *out, const char *program)
{
    fprintf(out, "usage: %s [--help | --config-markdown | --version]\n", program);
}

bool fg_service_configure(int *out_exit, void *config, const fg_config_var *vars, size_t nvars,
                          const char *name, int argc, char **argv)
{
    char program[96];
    fg_service_config *common;

    snprintf(program, sizeof(program), "fg-%s", name);
    *out_exit = 0;
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        fg_config_print_help(stdout, program, vars, nvars);
        return false;
    }
    if (argc > 1 && strcmp(argv[1], "--config-markdown") == 0) {
        fg_config_print_markdown(stdout, vars, nvars);
        return false;
    }
    if (argc > 1 && strcmp(argv[1], "--version") == 0) {
        printf("%s %s (%s)\n", program, FG_VERSION, FG_REVISION);
        return false;
    }
    if (argc > 1) {
        fprintf(stderr, "%s: unknown argument '%s'\n", program, argv[1]);
        print_usage(stderr, program);
        *out_exit = 2;
        return false;
    }
    if (fg_config_load(config, vars, nvars, NULL, NULL) < 0) {
        fprintf(stderr, "%s: configuration: %s\n", program, fg_error_last());
        *out_exit = 2;
        return false;
    }
    /* Every service's config struct starts with its fg_service_config (`service`). */
    common = config;
    fg_log_setup(name, common->log_level);
    return true;
}

/* ---- helpers for both threads ----------------------------------------------------------- */

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to ms, returning early when the service starts stopping: a backoff, not a sync. */
static void wait_or_stop(fg_service *svc, long ms)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&svc->wake_lock);
    while (!atomic_load(&svc->stopping) && !svc->wake_requested) {
        if (pthread_cond_timedwait(&svc->wake, &svc->wake_lock, &until) == ETIMEDOUT)
            break;
    }
    pthread_mutex_unlock(&svc->wake_lock);
}

static long next_backoff(long current)
{
    long next = current * 2;

    return next > FG_SERVICE_BACKOFF_MAX_MS ? FG_SERVICE_BACKOFF_MAX_MS : next;
}

/* ---- the database ----------------------------------------------------------------------- */

static const char *migrations_dir(const fg_service *svc)
{
    return svc->cfg->migrations_dir != NULL ? svc->cfg->migrations_dir : svc->opts->migrations_dir;
}

/* Start-up: the database may still be starting (a stack coming up), so retry until the
 * configured deadline before giving up. */
static int connect_db_at_start(fg_service *svc)
{
    long long deadline = now_ms() + svc->cfg->startup_timeout_ms;
    long backoff = FG_SERVICE_BACKOFF_MIN_MS;
    size_t applied = 0;
    int rc;

    while ((rc = fg_pg_connect(&svc->db, svc->cfg->db_url, FG_SERVICE_CONNECT_MS)) < 0) {
        if (rc != FG_EUNAVAILABLE || now_ms() + backoff > deadline || atomic_load(&svc->stopping))
            return rc;
        fg_log_warn("database not reachable yet, retrying: %s", fg_error_last());
        wait_or_stop(svc, backoff);
        backoff = next_backoff(backoff);
    }
    if ((rc = fg_pg_migrate(&applied, svc->db, migrations_dir(svc))) < 0)
        return rc;
    fg_log_emit(FG_LOG_INFO, FG_LOG_FIELDS(FG_LOG_INT("applied", applied)), "database migrated");
    return 0;
}

/* ---- the bus thread --------------------------------------------------------------------- */

static size_t count_categories(const char *const *categories)
{
    size_t n = 0;

    while (categories != NULL && categories[n] != NULL)
        n++;
    return n;
}

static bool consuming(const fg_service *svc)
{
    return svc->opts->categories != NULL;
}

static int bus_open(fg_service_bus *bus)
{
    const fg_service_config *cfg = bus->svc->cfg;
    fg_amqp_options o;

    fg_amqp_options_init(&o);
    o.url = cfg->amqp_url;
    o.service = consuming(bus->svc) ? bus->svc->opts->name : NULL; /* NULL: publish only */
    o.categories = bus->svc->opts->categories;
    o.ncategories = count_categories(bus->svc->opts->categories);
    /* a publishing-only service lists FG_SERVICE_AMQP_VAR alone: these stay 0, keep defaults */
    if (cfg->amqp_prefetch > 0)
        o.prefetch = (int)cfg->amqp_prefetch;
    if (cfg->amqp_max_attempts > 0)
        o.max_attempts = (int)cfg->amqp_max_attempts;
    if (cfg->amqp_retry_delay_ms > 0)
        o.retry_ttl_ms = (int)cfg->amqp_retry_delay_ms;
    if (bus->svc->opts->batch_handler != NULL) {
        size_t max = bus->svc->opts->batch_max > 0 ? bus->svc->opts->batch_max : 1;

        bus->batch = calloc(max, sizeof(*bus->batch));
        bus->outcomes = calloc(max, sizeof(*bus->outcomes));
        if (bus->batch == NULL || bus->outcomes == NULL)
            return fg_error_set(FG_ENOMEM, "out of memory for a batch of %zu deliveries", max);
    }
    return fg_amqp_new(&bus->amqp, &o);
}

static void bus_close(fg_service_bus *bus)
{
    fg_amqp_free(bus->amqp);
    fg_pg_free(bus->db);
    free(bus->batch);
    free(bus->outcomes);
}

/* Brings the bus thread's stores up: its database connection first, because consuming before
 * the handler can commit would only burn attempts of the messages taken. */
static int bus_connect(fg_service_bus *bus)
{
    int rc;

    if (bus->svc->cfg->db_url != NULL && bus->db == NULL &&
        (rc = fg_pg_connect(&bus->db, bus->svc->cfg->db_url, FG_SERVICE_CONNECT_MS)) < 0)
        return rc;
    if (fg_amqp_is_connected(bus->amqp))
        return 0;
    if ((rc = fg_amqp_connect(bus->amqp, FG_SERVICE_CONNECT_MS)) < 0 ||
        (rc = fg_amqp_declare(bus->amqp)) < 0)
        return rc;
    if (consuming(bus->svc) && (rc = fg_amqp_consume(bus->amqp)) < 0)
        return rc;
    atomic_store(&bus->svc->bus_connected, true);
    if (consuming(bus->svc))
        fg_log_info("consuming from fg.%s", bus->svc->opts->name);
    else
        fg_log_info("connected to rabbitmq (publishing only)");
    return 0;
}

static void bus_lost(fg_service_bus *bus, const char *what)
{
    if (atomic_exchange(&bus->svc->bus_connected, false))
        fg_log_warn("rabbitmq: %s: %s; reconnecting", what, fg_error_last());
}

/* Settles a handled delivery: ack after success, park for input that can never succeed, retry
 * otherwise. */
static void bus_settle(fg_service_bus *bus, fg_amqp_delivery *d, int rc, const char *reason)
{
    fg_service *svc = bus->svc;
    const fg_log_field fields[] = {FG_LOG_STR("message", fg_amqp_delivery_id(d)),
                                   FG_LOG_STR("category", fg_amqp_delivery_category(d))};

    if (rc == 0) {
        fg_metric_inc(svc->handled_ok);
        rc = fg_amqp_ack(bus->amqp, d);
    } else if (rc == FG_EINVALID) {
        fg_log_emit(FG_LOG_WARN, fields, 2, "parked: %s", reason);
        fg_metric_inc(svc->handled_park);
        rc = fg_amqp_park(bus->amqp, d, reason);
    } else {
        fg_log_emit(FG_LOG_WARN, fields, 2, "will retry: %s", reason);
        fg_metric_inc(svc->handled_retry);
        rc = fg_amqp_retry(bus->amqp, d, reason);
    }
    if (rc < 0) /* not settled: the broker redelivers it once the connection is back */
        bus_lost(bus, "settling a delivery");
}

static void bus_handle(fg_service_bus *bus, fg_amqp_delivery *d)
{
    fg_service *svc = bus->svc;
    int rc = svc->opts->handler(bus, d, svc->opts->payload);
    char reason[FG_AMQP_REASON_MAX];

    snprintf(reason, sizeof(reason), "%s", rc < 0 ? fg_error_last() : "");
    bus_settle(bus, d, rc, reason);
}

/* The batch handler gets d and whatever arrived behind it, up to batch_max; every delivery is
 * settled after the handler returned (its effects committed). */
static void bus_handle_batch(fg_service_bus *bus, fg_amqp_delivery *d)
{
    fg_service *svc = bus->svc;
    size_t n = 1, max = svc->opts->batch_max > 0 ? svc->opts->batch_max : 1;
    int rc = 0;

    bus->batch[0] = d;
    while (n < max && (rc = fg_amqp_next(&bus->batch[n], bus->amqp, 0)) == 0)
        n++;
    if (rc < 0 && rc != FG_ETIMEOUT) /* handled all the same: the acks fail, the broker resends */
        bus_lost(bus, "receiving");
    for (size_t i = 0; i < n; i++) {
        bus->outcomes[i].rc = FG_ERROR;
        snprintf(bus->outcomes[i].reason, sizeof(bus->outcomes[i].reason), "not handled");
    }
    svc->opts->batch_handler(bus, bus->batch, bus->outcomes, n, svc->opts->payload);
    for (size_t i = 0; i < n; i++) {
        bus_settle(bus, bus->batch[i], bus->outcomes[i].rc, bus->outcomes[i].reason);
        if (i > 0) /* the caller frees the first */
            fg_amqp_delivery_free(bus->batch[i]);
    }
}

/* A burst of messages (a first sync's megabytes of commit bodies, batches of payloads) is freed
 * by its handlers, but glibc keeps the pages: event-log sat at 34-67 MB, triples-generator at
 * 21-29 MB after the 100,000-commit bench, commit-sync at 760 MB. Once the bus has been quiet for
 * FG_SERVICE_TRIM_IDLE_MS they are returned to the kernel; with the fixed thresholds of
 * fg_service_run, event-log measured 16.7 MB after it. */
static void bus_give_back(fg_service_bus *bus)
{
    if (bus->worked_ms != 0 && now_ms() - bus->worked_ms >= FG_SERVICE_TRIM_IDLE_MS) {
        malloc_trim(0);
        bus->worked_ms = 0;
    }
}

static void bus_take_one(fg_service_bus *bus)
{
    fg_amqp_delivery *d = NULL;
    int rc = fg_amqp_next(&d, bus->amqp, FG_SERVICE_POLL_MS);

    if (rc == FG_ETIMEOUT) {
        bus_give_back(bus);
        return;
    }
    if (rc < 0) {
        bus_lost(bus, "receiving");
        return;
    }
    if (bus->svc->opts->batch_handler != NULL)
        bus_handle_batch(bus, d);
    else
        bus_handle(bus, d);
    fg_amqp_delivery_free(d);
    bus->worked_ms = now_ms();
}

/* A publishing-only bus thread sleeps here until fg_service_wake or the poll interval. */
static void wait_for_wake(fg_service *svc, long ms)
{
    pthread_mutex_lock(&svc->wake_lock);
    if (!svc->wake_requested) {
        pthread_mutex_unlock(&svc->wake_lock);
        wait_or_stop(svc, ms);
        pthread_mutex_lock(&svc->wake_lock);
    }
    svc->wake_requested = false;
    pthread_mutex_unlock(&svc->wake_lock);
}

void fg_service_wake(fg_service *svc)
{
    pthread_mutex_lock(&svc->wake_lock);
    svc->wake_requested = true;
    pthread_cond_broadcast(&svc->wake);
    pthread_mutex_unlock(&svc->wake_lock);
}

static void bus_tick(fg_service_bus *bus)
{
    fg_service *svc = bus->svc;

    if (svc->opts->tick == NULL || !fg_amqp_is_connected(bus->amqp))
        return;
    if (svc->opts->tick(bus, svc->opts->payload) < 0)
        fg_log_warn("tick: %s", fg_error_last());
}

static void *bus_main(void *arg)
{
    fg_service_bus bus = {arg, NULL, NULL, NULL, NULL, 0};
    long backoff = FG_SERVICE_BACKOFF_MIN_MS;

    if (bus_open(&bus) < 0) {
        fg_log_error("rabbitmq: %s", fg_error_last());
        bus_close(&bus);
        return NULL;
    }
    while (!atomic_load(&bus.svc->stopping)) {
        if (bus_connect(&bus) < 0) {
            bus_lost(&bus, "connecting");
            fg_log_debug("bus not connected: %s", fg_error_last());
            wait_or_stop(bus.svc, backoff);
            backoff = next_backoff(backoff);
            continue;
        }
        backoff = FG_SERVICE_BACKOFF_MIN_MS;
        if (consuming(bus.svc))
            bus_take_one(&bus);
        else
            wait_for_wake(bus.svc, FG_SERVICE_POLL_MS);
        bus_tick(&bus);
    }
    atomic_store(&bus.svc->bus_connected, false);
    bus_close(&bus);
    return NULL;
}

fg_pg_conn *fg_service_bus_db(fg_service_bus *bus)
{
    return bus->db;
}

fg_amqp *fg_service_bus_amqp(fg_service_bus *bus)
{
    return bus->amqp;
}

fg_service *fg_service_bus_service(fg_service_bus *bus)
{
    return bus->svc;
}

/* ---- the main thread -------------------------------------------------------------------- */

static void report_readiness(fg_http_readiness *r, void *payload)
{
    fg_service *svc = payload;

    if (svc->db != NULL && fg_pg_ping(svc->db) < 0)
        fg_http_readiness_report(r, "database", fg_error_last());
    if (svc->opts->categories != NULL && !atomic_load(&svc->bus_connected))
        fg_http_readiness_report(r, "rabbitmq", "not connected");
    if (svc->opts->ready != NULL)
        svc->opts->ready(r, svc->opts->payload);
    if (atomic_load(&svc->stopping))
        fg_http_readiness_report(r, "service", "stopping");
}

static void on_http_drained(void *payload)
{
    fg_service *svc = payload;

    event_base_loopexit(svc->base, NULL);
}

static void on_signal(evutil_socket_t signum, short what, void *payload)
{
    fg_service *svc = payload;

    (void)what;
    if (atomic_exchange(&svc->stopping, true))
        return;
    fg_log_info("stopping on signal %d", (int)signum);
    pthread_mutex_lock(&svc->wake_lock);
    pthread_cond_broadcast(&svc->wake);
    pthread_mutex_unlock(&svc->wake_lock);
    if (fg_http_server_shutdown(svc->http, (int)svc->cfg->shutdown_timeout_ms, on_http_drained,
                                svc) < 0)
        event_base_loopexit(svc->base, NULL);
}

static int add_metrics(fg_service *svc)
{
    int rc;

    if (svc->opts->metrics != NULL)
        svc->metrics = svc->opts->metrics;
    else if ((rc = fg_metrics_new(&svc->metrics)) < 0)
        return rc;
    if ((rc = fg_metrics_counter(&svc->handled_ok, svc->metrics, "fg_messages_handled_total",
                                 "messages taken from the service's queue, by outcome",
                                 FG_METRIC_LABELS("outcome", "ack"))) < 0 ||
        (rc = fg_metrics_counter(&svc->handled_retry, svc->metrics, "fg_messages_handled_total",
                                 "messages taken from the service's queue, by outcome",
                                 FG_METRIC_LABELS("outcome", "retry"))) < 0)
        return rc;
    return fg_metrics_counter(&svc->handled_park, svc->metrics, "fg_messages_handled_total",
                              "messages taken from the service's queue, by outcome",
                              FG_METRIC_LABELS("outcome", "park"));
}

static int start_http(fg_service *svc)
{
    fg_http_server_options o;
    fg_http_standard std = {svc->opts->name, report_readiness, svc};
    int rc;

    fg_http_server_options_init(&o);
    o.address = svc->cfg->http_bind;
    o.port = (uint16_t)svc->cfg->http_port;
    o.metrics = svc->metrics;
    o.service_key = svc->cfg->service_key;
    if (svc->opts->max_body > 0)
        o.max_body = svc->opts->max_body;
    if ((rc = fg_http_server_new(&svc->http, svc->base, &o)) < 0 ||
        (rc = fg_http_server_add_standard(svc->http, &std)) < 0)
        return rc;
    if (svc->opts->routes != NULL &&
        (rc = svc->opts->routes(svc, svc->http, svc->opts->payload)) < 0)
        return rc;
    fg_log_emit(FG_LOG_INFO,
                FG_LOG_FIELDS(FG_LOG_STR("address", svc->cfg->http_bind),
                              FG_LOG_INT("port", fg_http_server_port(svc->http))),
                "listening");
    return 0;
}

static int start_signals(fg_service *svc)
{
    signal(SIGPIPE, SIG_IGN); /* a peer closing a socket must not kill the process */
    svc->on_sigterm = evsignal_new(svc->base, SIGTERM, on_signal, svc);
    svc->on_sigint = evsignal_new(svc->base, SIGINT, on_signal, svc);
    if (svc->on_sigterm == NULL || svc->on_sigint == NULL ||
        evsignal_add(svc->on_sigterm, NULL) < 0 || evsignal_add(svc->on_sigint, NULL) < 0)
        return fg_error_set(FG_ERROR, "cannot install signal handlers");
    return 0;
}

static int start_bus(fg_service *svc)
{
    if (svc->opts->categories == NULL && svc->opts->tick == NULL)
        return 0;
    if (svc->cfg->amqp_url == NULL)
        return fg_error_set(FG_EINVALID, "a bus thread needs FG_AMQP_URL");
    if (consuming(svc) && svc->opts->handler == NULL && svc->opts->batch_handler == NULL)
        return fg_error_set(FG_EINVALID, "a consuming service needs a handler");
    if (svc->opts->batch_max > FG_SERVICE_BATCH_MAX)
        return fg_error_set(FG_EINVALID, "batch_max above %d", FG_SERVICE_BATCH_MAX);
    if (count_categories(svc->opts->categories) > FG_SERVICE_CATEGORIES_MAX)
        return fg_error_set(FG_EINVALID, "too many categories");
    if (pthread_create(&svc->bus_thread, NULL, bus_main, svc) != 0)
        return fg_error_set(FG_ERROR, "cannot start the bus thread");
    svc->bus_started = true;
    return 0;
}

/* The loop with libevent's epoll changelist: evhttp turns reading and writing off and on several
 * times per request, and the changelist folds those into one epoll_ctl per descriptor and loop
 * turn instead of 4 per request (a fifth of the webhook's loop time at 10,000 deliveries/s). Its
 * known trap, descriptors shared through dup(), does not occur in a service: the loop owns its
 * sockets alone. */
static struct event_base *new_loop(void)
{
    struct event_config *cfg = event_config_new();
    struct event_base *base = NULL;

    if (cfg == NULL)
        return NULL;
    if (event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) == 0)
        base = event_base_new_with_config(cfg);
    event_config_free(cfg); /* not NULL-safe in libevent 2.1 */
    return base;
}

static int start(fg_service *svc)
{
    int rc;

    if ((rc = add_metrics(svc)) < 0)
        return rc;
    if ((svc->base = new_loop()) == NULL)
        return fg_error_set(FG_ENOMEM, "cannot create the event loop");
    if ((rc = start_signals(svc)) < 0)
        return rc;
    if (svc->cfg->db_url != NULL && (rc = connect_db_at_start(svc)) < 0)
        return rc;
    if ((rc = start_http(svc)) < 0)
        return rc;
    return start_bus(svc);
}

static void stop(fg_service *svc)
{
    atomic_store(&svc->stopping, true);
    if (svc->opts->stop != NULL)
        svc->opts->stop(svc, svc->opts->payload);
    pthread_mutex_lock(&svc->wake_lock);
    pthread_cond_broadcast(&svc->wake);
    pthread_mutex_unlock(&svc->wake_lock);
    if (svc->bus_started)
        pthread_join(svc->bus_thread, NULL);
    fg_http_server_free(svc->http);
    if (svc->on_sigterm != NULL)
        event_free(svc->on_sigterm);
    if (svc->on_sigint != NULL)
        event_free(svc->on_sigint);
    if (svc->base != NULL)
        event_base_free(svc->base);
    fg_pg_free(svc->db);
    if (svc->metrics != svc->opts->metrics)
        fg_metrics_free(svc->metrics);
}

int fg_service_run(const fg_service_options *opts)
{
    fg_service svc;
    int status = 1;

    memset(&svc, 0, sizeof(svc));
    svc.opts = opts;
    svc.cfg = opts->config;
    /* Fixed thresholds: glibc otherwise raises both after the first large free (up to 32 and
     * 64 MB) and then keeps later large buffers in the heaps, where a trim cannot reach the
     * free top of a thread's arena (triples-generator: 28.6 MB idle, 15 MB with these). */
    mallopt(M_MMAP_THRESHOLD, FG_SERVICE_MMAP_THRESHOLD);
    mallopt(M_TRIM_THRESHOLD, FG_SERVICE_TRIM_THRESHOLD);
    pthread_mutex_init(&svc.wake_lock, NULL);
    pthread_cond_init(&svc.wake, NULL);
    fg_log_emit(
        FG_LOG_INFO,
        FG_LOG_FIELDS(FG_LOG_STR("version", FG_VERSION), FG_LOG_STR("revision", FG_REVISION)),
        "starting");
    if (start(&svc) < 0) {
        fg_log_error("start-up failed: %s", fg_error_last());
        goto done;
    }
    event_base_dispatch(svc.base);
    status = 0;
done:
    stop(&svc);
    pthread_cond_destroy(&svc.wake);
    pthread_mutex_destroy(&svc.wake_lock);
    if (status == 0)
        fg_log_info("stopped");
    return status;
}

int fg_service_add_routes(fg_http_server *http, const fg_service_route *routes, size_t nroutes,
                          void *payload)
{
    int rc = 0;

    for (size_t i = 0; i < nroutes && rc == 0; i++) {
        const fg_service_route *r = &routes[i];
        rc = r->public_route
                 ? fg_http_server_route_public(http, r->method, r->pattern, r->handler, payload)
                 : fg_http_server_route(http, r->method, r->pattern, r->handler, payload);
    }
    return rc;
}

void fg_service_not_implemented(fg_http_request *req, void *payload)
{
    (void)payload;
    fg_http_respond_error(req, 501, "not_implemented", "%s %s is not implemented in this version",
                          fg_http_method_name(fg_http_request_method(req)),
                          fg_http_request_path(req));
}

fg_pg_conn *fg_service_db(fg_service *svc)
{
    return svc->db;
}

fg_metrics *fg_service_metrics(fg_service *svc)
{
    return svc->metrics;
}

const fg_service_config *fg_service_config_of(fg_service *svc)
{
    return svc->cfg;
}

struct event_base *fg_service_event_base(fg_service *svc)
{
    return svc->base;
}
