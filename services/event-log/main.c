/*
 * fg-event-log: the event store and its status state machine, dispatch to the consumers, zombie
 * chasing and replay (DESIGN.md "Event statuses"). This file only wires. The store, the state
 * machine and the API come with the event-log issue; until then messages are validated against
 * their schema and parked with a reason (never acked as if handled), and the API answers 501.
 */
#include <stddef.h>

#include "fg/proto.h"
#include "fg/service.h"

typedef struct {
    fg_service_config service; /* first: see fg/service.h */
} event_log_config;

static const fg_config_var event_log_vars[] = {
    FG_SERVICE_VARS(event_log_config, 9005),
    FG_SERVICE_DB_VARS(event_log_config, "EVENT_LOG",
                       "postgresql://fg_event_log@127.0.0.1:55432/fg_event_log"),
    FG_SERVICE_BUS_VARS(event_log_config),
};

static const char *const event_log_categories[] = {
    "CREATION",
    "EVENTS_STATUS_CHANGE",
    "COMMIT_SYNC_REQUEST",
    "GLOBAL_COMMIT_SYNC_REQUEST",
    "CLEAN_UP_REQUEST",
    "SUBSCRIPTION",
    NULL,
};

static const fg_service_route event_log_routes[] = {
    {FG_HTTP_POST, "/projects", fg_service_not_implemented, false},
    {FG_HTTP_GET, "/projects", fg_service_not_implemented, false},
    {FG_HTTP_GET, "/projects/{id}", fg_service_not_implemented, false},
    {FG_HTTP_DELETE, "/projects/{id}", fg_service_not_implemented, false},
    {FG_HTTP_GET, "/projects/{id}/status", fg_service_not_implemented, false},
    {FG_HTTP_GET, "/projects/{id}/events/{sha}", fg_service_not_implemented, false},
    {FG_HTTP_POST, "/projects/{id}/replay", fg_service_not_implemented, false},
    {FG_HTTP_POST, "/projects/{id}/reprovision", fg_service_not_implemented, false},
    {FG_HTTP_POST, "/projects/{id}/sync", fg_service_not_implemented, false},
    {FG_HTTP_GET, "/events", fg_service_not_implemented, false},
    {FG_HTTP_GET, "/events/export", fg_service_not_implemented, false},
    {FG_HTTP_POST, "/events/retry", fg_service_not_implemented, false},
    {FG_HTTP_POST, "/replay/rebuild", fg_service_not_implemented, false},
};

static int add_routes(fg_service *svc, fg_http_server *http, void *payload)
{
    (void)svc;
    return fg_service_add_routes(http, event_log_routes,
                                 sizeof(event_log_routes) / sizeof(event_log_routes[0]), payload);
}

/* A message that fails its schema is parked with the codec's reason; a valid one is parked too,
 * saying that this version does not handle it yet, so nothing is acked that was not done. */
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
        rc = fg_error_set(FG_EINVALID, "event-log does not handle %s in this version yet",
                          fg_proto_category_name(msg.category));
    fg_proto_msg_dispose(&msg);
    return rc;
}

int main(int argc, char **argv)
{
    event_log_config cfg = {0};
    fg_service_options opts = {0};
    const size_t nvars = sizeof(event_log_vars) / sizeof(event_log_vars[0]);
    int status;

    if (!fg_service_configure(&status, &cfg, event_log_vars, nvars, "event-log", argc, argv))
        return status;
    opts.name = "event-log";
    opts.config = &cfg.service;
    opts.migrations_dir = FG_DEFAULT_MIGRATIONS_DIR;
    opts.categories = event_log_categories;
    opts.handler = handle_message;
    opts.routes = add_routes;
    opts.payload = &cfg;
    status = fg_service_run(&opts);
    fg_config_dispose(&cfg, event_log_vars, nvars);
    return status;
}
