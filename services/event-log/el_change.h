/*
 * Status changes of events, applied set-based: one change moves many events of one project, and
 * each moved event gets its status_log row in the same statement. Every status change in
 * event-log goes through el_change_apply, which asks el_status.h which sources are legal; nothing
 * else writes event.status. The caller owns the transaction (fg_pg_begin ... fg_pg_commit), so a
 * consumer can record the message id in processed_message in the same one.
 */
#ifndef EL_CHANGE_H
#define EL_CHANGE_H

#include <stdbool.h>
#include <stddef.h>

#include "el_status.h"
#include "fg/error.h"
#include "fg/pg.h"

/* Ids get their own types, so a project id cannot be passed where an event id is expected. */
typedef struct {
    long long value;
} el_project_id;

typedef struct {
    long long value;
} el_event_id;

#define EL_CHANGE_BATCH_MAX 10000 /* events named in one change */

/* Which events, what they become, and why. Name the events by sha (replies, commit-sync) or by
 * id (the dispatcher's claims), or take the whole project (re-provision, replay, retry): then
 * every event of the project whose status the table allows for (to, cause) moves, optionally
 * only those in `only_from`. */
typedef struct {
    el_project_id project;
    el_cause cause;
    el_status to;
    const char *const *shas;
    size_t nshas;
    const el_event_id *ids;
    size_t nids;
    bool whole_project;
    const el_status *only_from;
    size_t nonly_from;
    const char *message;  /* kept on the event (failures); NULL clears it */
    long long delay_ms;   /* execution_date = now + delay (recoverable failures, backoff) */
    long long payload_id; /* the payload row the events take (replay); 0: none */
    /* ToTriplesGenerated: the batch's gzip'd N-Triples in base64, stored as a payload row by the
     * change itself when an event moves (none when nothing moves), and taken by the events that
     * move. Not with payload_id, nor for a whole project. Not base64: the database refuses the
     * change when an event would move (a data error, SQLSTATE class 22: FG_EINVALID). */
    const char *payload_base64;
} el_change;

typedef struct {
    size_t applied; /* moved, and logged */
    size_t stale;   /* replies about events that moved on: ignored */
    size_t illegal; /* refused: no transition allows it (logged by el_change_apply) */
    size_t missing; /* named events that do not exist (deleted, or never created) */
} el_change_result;

/* Applies `change` inside the caller's open transaction. FG_EINVALID for a malformed change
 * (no events named, too many, a sha that is not 40 hex), FG_EUNAVAILABLE/FG_ECONFLICT from the
 * database (retry the whole transaction), FG_ERROR otherwise. Stale and illegal requests are not
 * errors: they are counted in *out. */
int el_change_apply(el_change_result *out, fg_pg_conn *pg, const el_change *change) FG_MUST_CHECK;

#endif
