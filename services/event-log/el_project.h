/*
 * event-log's projects: the validation of a registration, idempotent registration (on forge +
 * forgeId, or on the clone URL for plain git), look-up, listing, status counts, removal and the
 * requests the API leaves for the tick (re-provision, PROJECT_REMOVED, a commit sync due now).
 * It does not talk to forges (webhook looks forge ids up) and never publishes: the bus thread's
 * tick publishes the project_request rows written here. Any thread, one connection each; each
 * function that writes opens and commits its own transaction.
 */
#ifndef EL_PROJECT_H
#define EL_PROJECT_H

#include <stdbool.h>
#include <stddef.h>

#include "el_change.h"
#include "el_status.h"
#include "fg/buf.h"
#include "fg/error.h"
#include "fg/pg.h"

struct json_object;

#define EL_PROJECT_PATH_MAX         255  /* bytes of "ns/name" (GitLab's nested groups too) */
#define EL_PROJECT_PATH_SEGMENT_MAX 100  /* bytes of one path segment */
#define EL_PROJECT_URL_MAX          2048 /* bytes of a clone URL or local path */
#define EL_PROJECT_TIME_MAX         40   /* "2026-01-02T03:04:05.678Z" and then some */
#define EL_PROJECT_LIST_MAX         1000 /* projects in one page of a listing */

typedef enum { EL_FORGE_GITHUB, EL_FORGE_GITLAB, EL_FORGE_GIT } el_forge;

/* "github", "gitlab", "git". */
const char *el_forge_name(el_forge forge);

/* What POST /projects asks for, validated. */
typedef struct {
    el_forge forge;
    long long forge_id; /* > 0 for github and gitlab; 0 for plain git */
    char path[EL_PROJECT_PATH_MAX + 1];
    char url[EL_PROJECT_URL_MAX + 1];
} el_project_registration;

/* A stored project; times are RFC 3339 UTC, "" when not set. */
typedef struct {
    el_project_id id;
    el_forge forge;
    long long forge_id; /* 0 for plain git */
    char path[EL_PROJECT_PATH_MAX + 1];
    char url[EL_PROJECT_URL_MAX + 1];
    char created_at[EL_PROJECT_TIME_MAX];
    char latest_event_date[EL_PROJECT_TIME_MAX];
    char first_synced_at[EL_PROJECT_TIME_MAX];
} el_project;

/* Validates a parsed registration body (obj, borrowed): an object with "forge"
 * (github|gitlab|git), "forgeId" (a positive integer; required for github and gitlab, absent or
 * null for git), "path" ("ns/name": segments of letters, digits, '.', '_' and '-', exactly two on
 * github, two or more elsewhere) and "url" (http(s)://, ssh://, git://, file://, user@host:path,
 * or an absolute local path; never a password), and nothing else. FG_EINVALID with a message
 * that starts with the field's name ("path: ..."). */
int el_project_registration_from_json(el_project_registration *out,
                                      const struct json_object *obj) FG_MUST_CHECK;

/* Registers reg, or finds the project registered before under the same identity (forge +
 * forge_id; url for plain git) and leaves it as it is (a repeat with another path or url gets
 * the stored project). *out_created says which. Autocommit statements, outside a transaction.
 * FG_ECONFLICT when it keeps racing with a removal; database errors as fg_pg_exec. */
int el_project_register(el_project *out, bool *out_created, fg_pg_conn *pg,
                        const el_project_registration *reg) FG_MUST_CHECK;

/* The project `id`. FG_ENOTFOUND when there is none; database errors as fg_pg_exec. */
int el_project_get(el_project *out, fg_pg_conn *pg, el_project_id id) FG_MUST_CHECK;

/* Appends the project as a JSON object: {"id","forge","forgeId" (null for git),"path","url",
 * "createdAt","latestEventDate","firstSyncedAt"} (unset times are null). FG_ETOOBIG past the
 * buffer's cap. */
int el_project_put_json(fg_buf *out, const el_project *p) FG_MUST_CHECK;

/* Appends up to `limit` (1..EL_PROJECT_LIST_MAX) projects with ids above `after`, in id order,
 * as JSON objects separated by commas (no brackets), optionally only those whose path is `path`
 * (NULL: all). *out_next is the id to continue after, 0 when this was the last page.
 * FG_EINVALID for a bad limit; FG_ETOOBIG; database errors as fg_pg_exec. */
int el_project_list(fg_buf *out, long long *out_next, fg_pg_conn *pg, long long after,
                    long long limit, const char *path) FG_MUST_CHECK;

/* Where a project's events are (GET /projects/{id}/status). */
typedef struct {
    el_project_id id;
    long long by_status[EL_STATUS_COUNT]; /* indexed by el_status; NONE and DELETED stay 0 */
    long long total;
    long long final;  /* in a final status (el_status_is_final) */
    long long failed; /* in a non-recoverable failure status */
    bool synced;      /* a commit sync has completed, and so has one sent after the latest
                         request (POST .../sync, COMMIT_SYNC_REQUEST) */
    bool done;        /* synced, and no event waits or is being processed */
    int progress;     /* 0..100: final events per total; 100 only when done */
} el_project_status;

/* Counts the project's events by status in one statement. FG_ENOTFOUND: no such project. */
int el_project_status_get(el_project_status *out, fg_pg_conn *pg, el_project_id id) FG_MUST_CHECK;

/* Every project's events per status into out (indexed by el_status; NONE and DELETED stay 0):
 * what the fg_el_events gauge shows. */
int el_project_count_events(long long out[EL_STATUS_COUNT], fg_pg_conn *pg) FG_MUST_CHECK;

/* {"id","total","byStatus":{every status: count},"done","progress","synced","failed"} */
int el_project_status_put_json(fg_buf *out, const el_project_status *st) FG_MUST_CHECK;

/* Deletes the project (its events, bodies, payloads and sync times go with it; the status_log
 * stays, it is history, and gets a row per event saying it was deleted, cause PROJECT_REMOVED)
 * and records a PROJECT_REMOVED request carrying its forge and path, in one transaction; a
 * pending re-provision of it is dropped. *out (may be NULL) receives the project
 * as it was. FG_ENOTFOUND: no such project. Outside a transaction (FG_EINVALID otherwise). */
int el_project_remove(el_project *out, fg_pg_conn *pg, el_project_id id) FG_MUST_CHECK;

/* Records a re-provision request (CLEAN_UP with `all`, then every event back to NEW) for the
 * tick to publish; asking again while one is pending is not an error. FG_ENOTFOUND. */
int el_project_request_reprovision(fg_pg_conn *pg, el_project_id id) FG_MUST_CHECK;

/* Makes the project's COMMIT_SYNC due now (its sync_time row goes, sync_requested_at is now):
 * the project is not synced (nor done) until a COMMIT_SYNC sent from now on completed.
 * FG_ENOTFOUND. */
int el_project_request_sync(fg_pg_conn *pg, el_project_id id) FG_MUST_CHECK;

#endif
