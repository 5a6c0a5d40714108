/*
 * Rebuilds event statuses from the append-only status_log (DESIGN.md flow 7): the last log row of
 * each event says what its status is; every event whose live row disagrees is reported and, when
 * asked, corrected. It never invents history: an event with no log row, or one the log says exists
 * but whose row is gone (the log has no sha to recreate it from), is only reported. Any thread,
 * one connection each; it opens and commits its own transaction.
 */
#ifndef EL_REBUILD_H
#define EL_REBUILD_H

#include <stdbool.h>
#include <stddef.h>

#include "el_change.h"
#include "el_status.h"
#include "fg/error.h"
#include "fg/pg.h"

#define EL_REBUILD_DIFFS_MAX 100 /* differences listed one by one in a report (all are counted) */

typedef struct {
    el_event_id event;
    el_project_id project;
    el_status live;   /* EL_STATUS_NONE: no row in event */
    el_status logged; /* the last log row's to_status; EL_STATUS_DELETED: the log says deleted;
                         EL_STATUS_NONE: the event has no log row */
} el_rebuild_diff;

typedef struct {
    size_t events;      /* rows in event */
    size_t logged;      /* events (live or gone) the log knows */
    size_t differences; /* all of the below */
    size_t mismatched;  /* live status differs from the log's (fixed when applying) */
    size_t not_deleted; /* the log says deleted, the row is still there (deleted when applying) */
    size_t unlogged;    /* live rows without any log row: reported only */
    size_t vanished;    /* the log says it exists, the row is gone: reported only */
    size_t fixed;       /* rows changed by apply */
    size_t ndiffs;      /* entries in diffs (at most EL_REBUILD_DIFFS_MAX, lowest ids first) */
    el_rebuild_diff diffs[EL_REBUILD_DIFFS_MAX];
} el_rebuild_report;

/* Compares every event's live status with the status_log's last row for it and fills *out. With
 * apply, in the same transaction (REPEATABLE READ, so the comparison and the fix see one state),
 * sets each mismatched status to the logged one and deletes the rows the log says are deleted;
 * nothing is appended to the log (it already says so). Must be called outside a transaction
 * (FG_EINVALID otherwise). FG_ECONFLICT / FG_EUNAVAILABLE from the database (retry); FG_ERROR
 * otherwise. On error *out is zeroed. */
int el_rebuild(el_rebuild_report *out, fg_pg_conn *pg, bool apply) FG_MUST_CHECK;

#endif
