/*
 * The periodic categories (renku-graph.md §1.12, configurable through el_settings): COMMIT_SYNC
 * (known: the latest <= 50 shas, lastSynced), GLOBAL_COMMIT_SYNC (count, latest), MEMBER_SYNC and
 * PROJECT_SYNC (forge projects only), per project, when its sync_time row is older than the
 * cadence or missing (a
 * missing row is due now: that is how POST /projects/{id}/sync and COMMIT_SYNC_REQUEST ask for
 * one). Each run of a category is one transaction under an advisory lock: due rows, sync_time
 * upserted, messages published with confirms, commit. Also prunes old processed_message rows and
 * sweeps payloads no event refers to any more. It
 * does not consume (el_consume.h writes sync_time on requests and on syncComplete). Bus thread.
 */
#ifndef EL_SCHEDULE_H
#define EL_SCHEDULE_H

#include <stddef.h>

#include "el_context.h"
#include "fg/amqp.h"
#include "fg/error.h"
#include "fg/pg.h"

#define EL_SCHEDULE_BATCH_MAX    100       /* projects per category per run */
#define EL_SCHEDULE_ACTIVE_MS    604800000 /* "active": an event within 7 days (COMMIT_SYNC) */
#define EL_SCHEDULE_PRUNE_CHUNK  10000     /* processed_message rows deleted per statement */
#define EL_SCHEDULE_PRUNE_ROUNDS 20        /* statements per prune run */
#define EL_SCHEDULE_SWEEP_CHUNK  10000     /* payload rows deleted per sweep */
/* MEMBER_SYNC: every 5 min if the project had an event within the hour, hourly within the day,
 * daily otherwise; PROJECT_SYNC daily (renku's cadences; no FG_* variables yet). */
#define EL_SCHEDULE_MEMBER_HOT_MS  300000
#define EL_SCHEDULE_MEMBER_WARM_MS 3600000
#define EL_SCHEDULE_MEMBER_COLD_MS 86400000
#define EL_SCHEDULE_PROJECT_MS     86400000

typedef enum {
    EL_SCHEDULE_COMMIT_SYNC,
    EL_SCHEDULE_GLOBAL_COMMIT_SYNC,
    EL_SCHEDULE_MEMBER_SYNC,
    EL_SCHEDULE_PROJECT_SYNC,
    EL_SCHEDULE_COUNT
} el_schedule_kind;

/* The category name (and sync_time.category); NULL out of range. */
const char *el_schedule_category(el_schedule_kind kind);

/* Publishes the category's messages for up to EL_SCHEDULE_BATCH_MAX due projects (*out: how
 * many). Nothing due, or another process running the category, is success with *out 0.
 * GLOBAL_COMMIT_SYNC waits for the project's first completed commit sync. On failure nothing is
 * recorded: FG_ENOTFOUND (no queue bound for the category), FG_EUNAVAILABLE / FG_ETIMEOUT from
 * the broker, database errors as fg_pg_exec. */
int el_schedule_run(size_t *out, fg_pg_conn *pg, fg_amqp *amqp, const el_context *ctx,
                    el_schedule_kind kind) FG_MUST_CHECK;

/* Deletes processed_message rows older than processed_ttl_ms, in chunks (*out: rows deleted). */
int el_schedule_prune(size_t *out, fg_pg_conn *pg, const el_context *ctx) FG_MUST_CHECK;

/* Deletes up to EL_SCHEDULE_SWEEP_CHUNK payload rows no event refers to (their batch reached
 * TRIPLES_STORE, went back to NEW, or was deleted); *out receives how many. Safe beside any
 * change: nothing makes an event refer to a payload that already existed before its transaction
 * (ToTriplesGenerated inserts the payload it refers to), and the foreign key refuses it if
 * something did. Not prepared: planned on every run with the table's current size. Database
 * errors as fg_pg_exec. */
int el_schedule_sweep_payloads(size_t *out, fg_pg_conn *pg) FG_MUST_CHECK;

#endif
