/*
 * A test consumer playing triples-generator's side of event-log's protocol, for the event-log
 * tests (never in the product): it announces capacity with SUBSCRIPTION (at start and every
 * heartbeat), consumes fg.triples-generator as service "triples-generator", answers
 * AWAITING_GENERATION with ToTriplesGenerated (a gzip'd N-Triples payload, base64),
 * TRIPLES_GENERATED with ToTriplesStore, CLEAN_UP with CleanUpDone / ProjectEventsToNew, and acks
 * the rest. It can hold work (ack, never answer), die after acking N batches without answering
 * (connection closed, no more heartbeats), or stop. Everything it received is counted per category
 * and per sha. One thread per harness; the counters may be read from any thread.
 */
#ifndef EL_HARNESS_H
#define EL_HARNESS_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/proto.h"

typedef enum {
    EL_HARNESS_ANSWER, /* reply to every batch */
    EL_HARNESS_HOLD,   /* ack AWAITING_GENERATION / TRIPLES_GENERATED, never reply */
    EL_HARNESS_DIE,    /* ack die_after AWAITING_GENERATION batches without replying, then die */
} el_harness_mode;

typedef struct {
    const char *amqp_url;
    const char *instance;        /* SUBSCRIPTION instance (unique per harness) */
    int capacity_generation;     /* announced for AWAITING_GENERATION */
    int capacity_transformation; /* ... TRIPLES_GENERATED */
    int capacity_clean_up;       /* ... CLEAN_UP */
    int heartbeat_ms;            /* SUBSCRIPTION period (triples-generator: 30000) */
    el_harness_mode mode;
    int die_after; /* EL_HARNESS_DIE: batches acked before dying (>= 1) */
    /* Only messages about projects project_min..project_max (0, 0: all) are counted and held,
     * held back or died on; others (another test's, on a shared stack) are simply answered. */
    long long project_min, project_max;
} el_harness_options;

typedef struct el_harness el_harness;

/* Connects, declares and starts consuming, sends the first SUBSCRIPTION, then starts the
 * thread. Fails the running cmocka test on error. */
el_harness *el_harness_start(const el_harness_options *o);

/* Stops the thread (if still running), says goodbye (a SUBSCRIPTION with capacity 0, as a
 * consumer that shuts down cleanly should) unless it died, closes the connection and frees;
 * NULL is fine. */
void el_harness_stop(el_harness *h);

/* True once an EL_HARNESS_DIE harness has died. */
bool el_harness_dead(el_harness *h);

/* How many times `sha` came in a message of `category` (FG_PROTO_AWAITING_GENERATION,
 * FG_PROTO_TRIPLES_GENERATED or FG_PROTO_CLEAN_UP; MEMBER_SYNC, PROJECT_SYNC and
 * PROJECT_REMOVED are counted as messages). */
int el_harness_deliveries(el_harness *h, fg_proto_category category, const char *sha);

/* Messages and events received in `category`; the largest batch; messages for one project. */
size_t el_harness_messages(el_harness *h, fg_proto_category category);
size_t el_harness_events(el_harness *h, fg_proto_category category);
size_t el_harness_max_batch(el_harness *h, fg_proto_category category);
size_t el_harness_project_messages(el_harness *h, fg_proto_category category, long long project);

/* The shas of the first `n` messages of `category` (all when fewer), into a malloc'd array of
 * malloc'd strings; *count receives how many. */
char **el_harness_received_shas(el_harness *h, fg_proto_category category, size_t n, size_t *count);
void el_harness_free_shas(char **shas, size_t count);

#endif
