/*
 * The event status state machine: the twelve statuses, the causes that move events, and the one
 * data-driven transition table (el_status.c) that every status change in event-log goes through.
 *
 * A request is (current status, requested status, cause). It is APPLIED when the table lists it.
 * Otherwise a REPLY (a consumer answering about work it was handed: ToTriplesGenerated,
 * ToTriplesStore, ToFailure, the rollbacks, CleanUpDone) is STALE: the event moved on since
 * (zombie chasing, re-provisioning, a redelivered message); stale changes are ignored and
 * counted, harmlessly. Anything else is ILLEGAL: refused, logged and counted, never applied.
 * Deleting an event is the transition to EL_STATUS_DELETED (no row remains; the status log
 * records to_status NULL). Pure functions, no I/O, any thread.
 */
#ifndef EL_STATUS_H
#define EL_STATUS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum {
    EL_STATUS_NONE = 0, /* before creation: the "from" of CREATION */
    EL_STATUS_NEW,
    EL_STATUS_SKIPPED,
    EL_STATUS_GENERATING_TRIPLES,
    EL_STATUS_GENERATION_RECOVERABLE_FAILURE,
    EL_STATUS_GENERATION_NON_RECOVERABLE_FAILURE,
    EL_STATUS_TRIPLES_GENERATED,
    EL_STATUS_TRANSFORMING_TRIPLES,
    EL_STATUS_TRANSFORMATION_RECOVERABLE_FAILURE,
    EL_STATUS_TRANSFORMATION_NON_RECOVERABLE_FAILURE,
    EL_STATUS_TRIPLES_STORE,
    EL_STATUS_AWAITING_DELETION,
    EL_STATUS_DELETING,
    EL_STATUS_DELETED, /* after clean-up: the "to" of CleanUpDone */
    EL_STATUS_COUNT
} el_status;

typedef enum {
    EL_CAUSE_CREATION,                      /* CREATION from commit-sync */
    EL_CAUSE_DISPATCH,                      /* event-log handing work to a consumer */
    EL_CAUSE_TO_TRIPLES_GENERATED,          /* reply */
    EL_CAUSE_TO_TRIPLES_STORE,              /* reply */
    EL_CAUSE_TO_FAILURE,                    /* reply */
    EL_CAUSE_ROLLBACK_TO_NEW,               /* reply */
    EL_CAUSE_ROLLBACK_TO_TRIPLES_GENERATED, /* reply */
    EL_CAUSE_ROLLBACK_TO_AWAITING_DELETION, /* reply */
    EL_CAUSE_CLEAN_UP_DONE,                 /* reply: the commits' triples left the graph */
    EL_CAUSE_TO_AWAITING_DELETION,          /* commit-sync: the commit is no longer reachable */
    EL_CAUSE_ZOMBIE,                        /* processing too long, or its consumer went silent */
    EL_CAUSE_REPROVISION,                   /* CLEAN_UP all / ProjectEventsToNew: back to NEW */
    EL_CAUSE_REPLAY,                        /* operator: back to NEW or TRIPLES_GENERATED */
    EL_CAUSE_RETRY,                         /* operator: failed events tried again */
    EL_CAUSE_COUNT
} el_cause;

typedef enum { EL_APPLY, EL_STALE, EL_ILLEGAL } el_verdict;

/* Names as stored in PostgreSQL (event_status) and shown by the API; "DELETED" and "NONE" are
 * never stored. */
const char *el_status_name(el_status status);
bool el_status_parse(el_status *out, const char *name);

/* Cause names as written to status_log.cause: "CREATION", "DISPATCH", "ToTriplesGenerated"... */
const char *el_cause_name(el_cause cause);

/* Replies answer work event-log handed out; see the top of this file. */
bool el_cause_is_reply(el_cause cause);

/* The verdict for moving an event in status `from` to `to` because of `cause`. */
el_verdict el_transition_check(el_status from, el_status to, el_cause cause);

/* The statuses from which `cause` may move an event to `to` (those the table lists), for the
 * set-based SQL updates: out receives up to EL_STATUS_COUNT statuses; returns how many. */
size_t el_transition_sources(el_status out[EL_STATUS_COUNT], el_status to, el_cause cause);

/* Processing statuses are watched by zombie chasing and count against consumer capacity. */
bool el_status_is_processing(el_status status);

/* Final: nothing will move the event without an operator or a new sync. */
bool el_status_is_final(el_status status);

/* Where zombie chasing returns a processing status (NEW, TRIPLES_GENERATED, AWAITING_DELETION);
 * EL_STATUS_NONE for a status that is not processing. */
el_status el_status_before_processing(el_status processing);

#endif
