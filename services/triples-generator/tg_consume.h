/*
 * What triples-generator does with each message (DESIGN.md flows 4-6, docs/messages.md):
 * AWAITING_GENERATION -> N-Triples, gzip, base64 -> ToTriplesGenerated (or ToFailure);
 * TRIPLES_GENERATED -> Graph Store upload -> ToTriplesStore (or ToFailure); CLEAN_UP ->
 * CleanUpDone / ProjectEventsToNew; PROJECT_REMOVED drops the graph; MEMBER_SYNC, PROJECT_SYNC and
 * FORGE_EVENT are recorded and acknowledged (forge collection fills them in later). Every reply is
 * published with confirms before the handler returns, so the runtime acks a delivery only once its
 * answer is safe. The tick announces SUBSCRIPTION capacity. It owns no thread: the handler and the
 * tick run on the service's bus thread, which alone uses the store and project clients.
 */
#ifndef TG_CONSUME_H
#define TG_CONSUME_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/amqp.h"
#include "fg/error.h"
#include "fg/metrics.h"
#include "fg/pg.h"
#include "fg/proto.h"
#include "fg/service.h"
#include "tg_project.h"
#include "tg_store.h"

#define TG_SERVICE_NAME       "triples-generator"
#define TG_PUBLISH_TIMEOUT_MS 30000 /* publisher confirms of one message's replies */
#define TG_SUBSCRIPTION_MS    30000 /* SUBSCRIPTION period (DESIGN.md) */
#define TG_FAILURE_TEXT_MAX   2000  /* bytes of a reason in ToFailure's message */
#define TG_CLEAN_UP_BATCH_MAX 250   /* commits in one update: Virtuoso refuses 500 (SQ156) */
#define TG_INSTANCE_MAX       128   /* "hostname:pid" */
#define TG_BATCH_MAX          32    /* deliveries handled together (fg_service batch handler) */
#define TG_RUN_BYTES          ((size_t)32 << 20) /* N-Triples gathered for one upload */

/* What the handler needs from the configuration (main.c fills it from its table). */
typedef struct {
    const char *graph_base;            /* FG_GRAPH_BASE */
    bool store_emails;                 /* FG_STORE_EMAILS */
    size_t ntriples_max;               /* bytes of N-Triples one batch may make or inflate to */
    size_t clean_up_batch;             /* commits per SPARQL update, 1..TG_CLEAN_UP_BATCH_MAX */
    long long capacity_generation;     /* SUBSCRIPTION capacity, events */
    long long capacity_transformation; /* events */
    long long capacity_clean_up;       /* CLEAN_UP messages (event-log counts projects) */
} tg_settings;

typedef struct tg_consumer tg_consumer;

/* A consumer over the given store and project clients, which it takes over (freed by
 * tg_consumer_free, also when this fails). Counters go into `metrics` (borrowed; it must outlive
 * the consumer). FG_EINVALID for a bad setting; FG_ENOMEM; errors of fg_metrics_*. */
int tg_consumer_new(tg_consumer **out, const tg_settings *settings, tg_store *store,
                    tg_projects *projects, fg_metrics *metrics) FG_MUST_CHECK;
void tg_consumer_free(tg_consumer *c);

/* The fg_service_handler (payload: the consumer). Returns 0 once the delivery's effect and its
 * replies are done (ack); FG_EINVALID for a message that fails its schema or is not for this
 * service (parked with the reason); another error to have it retried: the triple store was
 * unreachable during a clean-up or a drop, or a reply was not confirmed. */
int tg_consumer_handle(fg_service_bus *bus, const fg_amqp_delivery *delivery, void *payload);

/* The fg_service_batch_handler (payload: the consumer): deliveries[0..n), n <= TG_BATCH_MAX,
 * handled as tg_consumer_handle would handle each, except that the TRIPLES_GENERATED of one
 * project among them are uploaded together (in order with the other messages that change the
 * store), and that every reply is published before it returns. outcomes[i] as
 * tg_consumer_handle's return for deliveries[i]. */
void tg_consumer_handle_batch(fg_service_bus *bus, fg_amqp_delivery *const *deliveries,
                              fg_service_outcome *outcomes, size_t n, void *payload);

/* The batch handler after parsing: msgs[0..n) (borrowed; one whose root is NULL did not parse
 * and is skipped, its outcome left as the caller set it), replies published on amqp, forge
 * messages recorded on db (may be NULL). */
void tg_consumer_handle_msgs(tg_consumer *c, fg_amqp *amqp, fg_pg_conn *db,
                             const fg_proto_msg *msgs, size_t n, fg_service_outcome *outcomes);

/* Handles one parsed message, publishing replies on amqp and recording on db (may be NULL).
 * The same contract as tg_consumer_handle; the handler is this plus parsing. */
int tg_consumer_handle_msg(tg_consumer *c, fg_amqp *amqp, fg_pg_conn *db,
                           const fg_proto_msg *msg) FG_MUST_CHECK;

/* The fg_service_tick_fn: publishes SUBSCRIPTION at the first call and every
 * TG_SUBSCRIPTION_MS after; a failed publish is tried again on the next tick. */
int tg_consumer_tick(fg_service_bus *bus, void *payload);

/* Builds this instance's SUBSCRIPTION message into out (started by this call; the caller
 * disposes it). Errors of fg_proto_msg_*. */
int tg_consumer_subscription(fg_proto_msg *out, const tg_consumer *c) FG_MUST_CHECK;

#endif
