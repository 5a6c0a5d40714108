/*
 * The outbox relay and the archive's retention, run by the runtime's tick on the publishing-only
 * bus thread (its own database connection and AMQP handle). The relay publishes outbox rows in
 * order, in confirmed batches: COMMIT_SYNC_REQUEST for commit_sync rows, FORGE_EVENT (the body
 * as payload) for forge_event rows, each with the message id its outbox row holds, and deletes
 * the rows RabbitMQ confirmed. While RabbitMQ is away nothing is deleted, so nothing is lost;
 * a row published but not yet deleted when the process dies goes out again with the same id.
 */
#ifndef WH_RELAY_H
#define WH_RELAY_H

#include "fg/service.h"

#define WH_RELAY_BYTES_MAX       ((size_t)48 << 20) /* bodies in one publish batch (one always goes) */
#define WH_RELAY_TICK_BUDGET_MS  1000  /* a tick stops starting batches after this long */
#define WH_RELAY_CONFIRM_MS      30000 /* how long a batch waits for its confirms */
#define WH_RELAY_LINGER_MS       50    /* least time between two rounds' starts */
#define WH_RELAY_NICE            10    /* the bus thread's nice value (see wh_relay_tick) */
#define WH_RETENTION_EVERY_MS    60000
#define WH_RETENTION_BATCH       1000 /* rows per DELETE */
#define WH_RETENTION_BATCHES_MAX 20   /* DELETEs per retention round */

/* The runtime tick (payload: the wh_context). Returns 0, or the error that stopped the round
 * (the runtime logs it; the next tick tries again). */
int wh_relay_tick(fg_service_bus *bus, void *payload);

#endif
