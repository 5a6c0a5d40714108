/*
 * Events as the API shows them and as operators move them: keyset-paginated listings, one event
 * with its body and status history, the JSON-lines export in pages, replay (back to NEW or
 * TRIPLES_GENERATED) and retry of failed events. Every status change goes through
 * el_change_apply, each operator action in one transaction of its own. It formats JSON but knows
 * nothing of HTTP (el_api.c does). Any thread, one connection each.
 */
#ifndef EL_EVENTS_H
#define EL_EVENTS_H

#include <stdbool.h>
#include <stddef.h>

#include "el_change.h"
#include "el_status.h"
#include "fg/buf.h"
#include "fg/error.h"
#include "fg/pg.h"

#define EL_EVENTS_LIMIT_DEFAULT     100        /* events in a page when the caller names no limit */
#define EL_EVENTS_LIMIT_MAX         1000       /* events in one page at most */
#define EL_EVENTS_HISTORY_MAX       10000      /* status_log rows shown with one event */
#define EL_EVENTS_EXPORT_ROWS       200        /* events read for one page of the export */
#define EL_EVENTS_EXPORT_PAGE_BYTES (4u << 20) /* a page stops growing past this */
#define EL_EVENTS_RETRY_IDS_MAX     1000       /* event ids in one retry */
#define EL_EVENTS_TIME_TEXT_MAX     64         /* bytes of a `since` time */
#define EL_EVENTS_TX_ATTEMPTS       3 /* a transaction that lost a race is tried this often */

/* Which events a listing shows; zero-initialise, then set what is wanted. */
typedef struct {
    long long project; /* 0: every project */
    bool has_status;   /* only events in `status` */
    el_status status;  /* ignored unless has_status */
    const char *since; /* only events recorded (created) at or after it: an RFC 3339 time
                          ("2026-01-02T03:04:05Z", fractions and offsets allowed) or a date
                          ("2026-01-02", midnight UTC); NULL: any time */
    long long after;   /* continue after this event id (the previous page's cursor); 0 */
    long long limit;   /* 1..EL_EVENTS_LIMIT_MAX */
} el_events_filter;

/* Appends the page's events in id order as JSON objects separated by commas (no brackets):
 * {"id","project":{"id","forge","path"},"sha","status","date","createdAt","executionDate",
 * "attempts","message"}. *out_next is the id to continue after, 0 on the last page.
 * FG_EINVALID for a bad filter (the message names the parameter), FG_ETOOBIG past the buffer's
 * cap, database errors as fg_pg_exec. */
int el_events_list(fg_buf *out, long long *out_next, fg_pg_conn *pg,
                   const el_events_filter *filter) FG_MUST_CHECK;

/* Appends the event `sha` (40 hex) of `project` as one JSON object: the listing's fields plus
 * "payloadId", "body" (the commit body as commit-sync sent it; null when none is stored) and
 * "history" (its status_log rows, oldest first: {"from","to","at","cause","message"}, null for
 * "from" at creation). FG_ENOTFOUND when there is no such event; FG_EINVALID for a bad sha. */
int el_events_show(fg_buf *out, fg_pg_conn *pg, el_project_id project,
                   const char *sha) FG_MUST_CHECK;

/* One page of the export: events with ids above *inout_after, recorded at or after `since`
 * (RFC 3339 or a date; NULL: all), each a line of JSON (the listing's fields plus "body") ending
 * in '\n', up to EL_EVENTS_EXPORT_ROWS events or until the page passes
 * EL_EVENTS_EXPORT_PAGE_BYTES. *inout_after moves to the last id written; *out_done is true when
 * no event follows. Pages are separate statements, so an export is not a snapshot: each event
 * appears at most once, as it was when its page was read. Errors as el_events_list. */
int el_events_export_page(fg_buf *out, long long *inout_after, bool *out_done, fg_pg_conn *pg,
                          const char *since) FG_MUST_CHECK;

/* How many events an operator's action moved, and how many it left alone. */
typedef struct {
    size_t applied; /* moved, and logged in status_log */
    size_t skipped; /* left as they were: their status cannot move that way (processing,
                       already there, a TRIPLES_GENERATED replay without a kept payload) */
    size_t missing; /* named ids that are not events (retry by ids only) */
} el_events_outcome;

/* Moves the project's events back to `to` (EL_STATUS_NEW: from every status the transition
 * table allows for REPLAY; EL_STATUS_TRIPLES_GENERATED: those whose payload is still kept, as
 * only those can be uploaded again), in one transaction. FG_ENOTFOUND: no such project;
 * FG_EINVALID: another target; database errors (FG_ECONFLICT after retries). */
int el_events_replay(el_events_outcome *out, fg_pg_conn *pg, el_project_id project,
                     el_status to) FG_MUST_CHECK;

/* Tries failed events again (cause RETRY): generation failures go back to NEW, transformation
 * failures to TRIPLES_GENERATED; events in any other status are skipped. By ids (1 to
 * EL_EVENTS_RETRY_IDS_MAX of them, any projects), in one transaction. */
int el_events_retry_ids(el_events_outcome *out, fg_pg_conn *pg, const el_event_id *ids,
                        size_t nids) FG_MUST_CHECK;

/* The same for every failed event of `project`, or only those in `status` when has_status (which
 * must be one of the four failure statuses: FG_EINVALID otherwise). FG_ENOTFOUND: no project. */
int el_events_retry_project(el_events_outcome *out, fg_pg_conn *pg, el_project_id project,
                            bool has_status, el_status status) FG_MUST_CHECK;

#endif
