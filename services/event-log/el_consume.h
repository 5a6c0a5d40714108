/*
 * event-log's bus handler: every consumed category (CREATION, EVENTS_STATUS_CHANGE and its
 * variants, COMMIT_SYNC_REQUEST, GLOBAL_COMMIT_SYNC_REQUEST, CLEAN_UP_REQUEST, SUBSCRIPTION).
 * Each message's effect and its processed_message row commit in ONE transaction, so a redelivered
 * message is a no-op; the messages that arrived together share that transaction (group commit). It
 * does not publish (the tick does, from the rows written here). Bus thread only (the connection is
 * the bus thread's).
 */
#ifndef EL_CONSUME_H
#define EL_CONSUME_H

#include "el_context.h"
#include "fg/amqp.h"
#include "fg/error.h"
#include "fg/pg.h"
#include "fg/service.h"

/* The fg_service_handler for fg-event-log; payload is the el_context. Returns 0 when the effect
 * is committed (or the message id was processed before): ack. FG_EINVALID when the message can
 * never be handled (schema, a payload that is not base64...): park with the reason.
 * FG_ECONFLICT / FG_EUNAVAILABLE (database) and anything else: retry later. */
int el_consume(fg_service_bus *bus, const fg_amqp_delivery *d, void *payload) FG_MUST_CHECK;

/* What el_consume does, on a given connection (tests drive it with a real delivery and a
 * database of their own). ctx may have NULL metrics. The connection must not be inside a
 * transaction. Returns as el_consume. */
int el_consume_delivery(fg_pg_conn *pg, const el_context *ctx,
                        const fg_amqp_delivery *d) FG_MUST_CHECK;

/* The same for a message body (len bytes of JSON). */
int el_consume_body(fg_pg_conn *pg, const el_context *ctx, const char *body,
                    size_t len) FG_MUST_CHECK;

/* One message of a group: len bytes of JSON, borrowed. */
typedef struct {
    const char *body;
    size_t len;
} el_consume_input;

/* Group commit: handles in[0..n) in order with as few commits (WAL flushes) as it can. The
 * messages' effects and processed_message rows go into one transaction (a new one after every
 * EL_CONSUME_GROUP_BYTES of bodies); when one message's effect fails, the transaction is rolled
 * back, that message is set aside and the others are done again together; the set-aside ones are
 * then handled one by one as el_consume_body does (own transaction, own attempts). So out[i]
 * is what el_consume_body would have returned for in[i] alone (rc 0: ack, FG_EINVALID: park,
 * else retry; the reason for rc < 0), and nothing of a message is committed unless its outcome is
 * 0. Returns 0, or FG_EINVALID (NULL arguments) / FG_ENOMEM with out untouched. The connection
 * must not be inside a transaction. */
int el_consume_group(fg_service_outcome *out, fg_pg_conn *pg, const el_context *ctx,
                     const el_consume_input *in, size_t n) FG_MUST_CHECK;

/* The fg_service_batch_handler for fg-event-log: el_consume_group over the deliveries' bodies,
 * on the bus thread's connection; payload is the el_context. */
void el_consume_batch(fg_service_bus *bus, fg_amqp_delivery *const *deliveries,
                      fg_service_outcome *outcomes, size_t n, void *payload);

#endif
