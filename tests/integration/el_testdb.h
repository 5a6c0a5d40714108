/*
 * Scratch databases for event-log's integration tests: a fresh database per test program on the
 * stack's PostgreSQL (FG_PG_URL, admin), migrated with services/event-log/migrations, dropped at
 * the end; so a test may compare whole tables (rebuild) without other tests' rows. Plus small
 * seeding and query helpers that fail the running cmocka test on any error.
 */
#ifndef EL_TESTDB_H
#define EL_TESTDB_H

#include <stdbool.h>
#include <stddef.h>

#include "el_status.h"
#include "fg/buf.h"
#include "fg/pg.h"
#include "fg/proto.h"

typedef struct {
    char name[64];
    char url[1024];
    fg_pg_conn *admin;
} el_testdb;

/* Creates and migrates the scratch database; *out_pg is a connection to it (fg_pg_free it).
 * Exits 77 (SKIP) without FG_PG_URL. */
void el_testdb_create(el_testdb *db, fg_pg_conn **out_pg);
void el_testdb_drop(el_testdb *db);

/* Runs sql with params (printf-free: values as text); fails the test on error. */
void el_testdb_exec(fg_pg_conn *pg, const char *sql, size_t n, const char *const *params);
/* The first cell of sql as a malloc'd string ("<NULL>" for NULL). */
char *el_testdb_text(fg_pg_conn *pg, const char *sql, size_t n, const char *const *params);
long long el_testdb_int(fg_pg_conn *pg, const char *sql, size_t n, const char *const *params);

/* A new project row (forge git, url unique to the call); its id. */
long long el_testdb_project(fg_pg_conn *pg, const char *path);
/* A 40-hex sha made from (seed, i): distinct for distinct pairs. out has 41 bytes. */
void el_testdb_sha(char out[41], long long seed, long long i);
/* Inserts an event of project in `status` directly (test set-up only: no status_log row);
 * returns its id. */
long long el_testdb_event(fg_pg_conn *pg, long long project, const char *sha, el_status status);

/* ---- messages (built with the codec, so they validate) ---------------------------------- */

/* A CREATION for project (forge git, path "el/test") with a commit per sha (committer time
 * 2024-01-01T00:00:<i>+01:00), and syncComplete when asked; its JSON replaces out's content.
 * out_id (37 bytes, may be NULL) receives the message id. */
void el_testdb_creation(fg_buf *out, char *out_id, long long project, const char *const *shas,
                        size_t n, bool sync_complete);

/* An EVENTS_STATUS_CHANGE `sub` for project naming shas (none: n = 0). Extra fields by variant:
 * ToTriplesGenerated gets a payload and processingTime, ToTriplesStore processingTime,
 * ToFailure newStatus = failure (a status name) and message "failed", with executionDelay when
 * delay_ms >= 0. */
void el_testdb_status_change(fg_buf *out, char *out_id, long long project,
                             fg_proto_sub_category sub, const char *const *shas, size_t n,
                             const char *failure, long long delay_ms);

/* A message of `category` with just the envelope (project given), for the request categories;
 * with shas for CLEAN_UP_REQUEST. */
void el_testdb_request(fg_buf *out, char *out_id, fg_proto_category category, long long project,
                       const char *const *shas, size_t n);

#endif
