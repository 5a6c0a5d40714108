/*
 * CREATION: a batch of one project's commits becomes NEW events, each with its body and its
 * status_log row (cause CREATION), idempotent on (project, sha), in one statement; the project's
 * latest_event_date follows. The `syncComplete` extension marks a commit sync as finished
 * (project.first_synced_at, sync_time COMMIT_SYNC). It does not own the transaction (the caller
 * records the message id in the same one) and does not publish. Any thread, one connection each.
 */
#ifndef EL_CREATION_H
#define EL_CREATION_H

#include <stdbool.h>
#include <stddef.h>

#include "el_change.h"
#include "fg/error.h"
#include "fg/pg.h"
#include "fg/proto.h"

/* The array literals of one call: every body escaped (at most doubled) plus the shas and dates;
 * bounded by the message itself (FG_PROTO_MESSAGE_MAX). */
#define EL_CREATION_ARRAY_MAX ((size_t)2 * FG_PROTO_MESSAGE_MAX + ((size_t)1 << 20))

typedef struct {
    size_t created;       /* new events */
    size_t existing;      /* commits the project already had: nothing done for them */
    bool project_missing; /* no such project (removed meanwhile): nothing was stored */
} el_creation_result;

/* Stores the commits of a parsed and validated CREATION message (msg, borrowed) inside the
 * caller's open transaction: new (project, sha) pairs become NEW events with their body and a
 * status_log row; known ones are left alone. With `syncComplete` true, also sets the project's
 * first_synced_at (when null) and its COMMIT_SYNC sync_time to now. An unknown project is not an
 * error: *out says so and nothing is written. FG_EINVALID: msg is not a validated CREATION;
 * FG_ETOOBIG past EL_CREATION_ARRAY_MAX; FG_ECONFLICT/FG_EUNAVAILABLE from the database (retry
 * the transaction); FG_ENOMEM; FG_ERROR otherwise. */
int el_creation_apply(el_creation_result *out, fg_pg_conn *pg,
                      const fg_proto_msg *msg) FG_MUST_CHECK;

#endif
