/*
 * Zombie chasing: an event in a processing status (GENERATING_TRIPLES, TRANSFORMING_TRIPLES,
 * DELETING) longer than its category's timeout, or whose category has no live consumer at all
 * (no SUBSCRIPTION heard within the consumer ttl), goes back to the status before it through
 * el_change_apply with cause ZOMBIE, its message saying why; counted in el_metrics.zombies. A late
 * reply about it is then stale. It does not publish: the dispatcher sends the events again.
 * Bus thread (any connection that is not inside a transaction).
 */
#ifndef EL_ZOMBIE_H
#define EL_ZOMBIE_H

#include <stdbool.h>
#include <stddef.h>

#include "el_context.h"
#include "el_dispatch.h"
#include "fg/error.h"
#include "fg/pg.h"

#define EL_ZOMBIE_BATCH_MAX 1000 /* events returned per kind in one call (one transaction) */

typedef struct {
    size_t chased[EL_DISPATCH_KIND_COUNT]; /* events moved back, per dispatch kind */
} el_zombie_result;

/* Chases the zombies of every kind, one transaction per kind, rows locked FOR UPDATE SKIP
 * LOCKED (two event-log processes chase side by side). consumer_rule applies the no-live-consumer
 * rule; a caller leaves it off during its first consumer ttl, while it may still be reading the
 * SUBSCRIPTIONs that queued up while it was down. Database errors as fg_pg_exec. */
int el_zombie_chase(el_zombie_result *out, fg_pg_conn *pg, const el_context *ctx,
                    bool consumer_rule) FG_MUST_CHECK;

#endif
