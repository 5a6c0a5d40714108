/*
 * The projects the webhook accepts deliveries for: table `project` of fg_webhook (forge, forge
 * id, event-log's project id, path), with an in-memory map in front so that intake answers from
 * memory. A miss reads the table (so rows written by another instance or by hand are found), and
 * an entry is read again after WH_PROJECTS_CACHE_TTL_MS (so a removal by another instance takes
 * effect here within that time); what this process registers or removes updates both. Main
 * thread only (it uses the runtime's main-thread connection).
 */
#ifndef WH_PROJECTS_H
#define WH_PROJECTS_H

#include <stdbool.h>

#include "fg/error.h"
#include "fg/pg.h"
#include "fg/proto.h"

#define WH_PROJECTS_CACHE_MAX    100000 /* entries kept in memory; the map starts over past it */
#define WH_PROJECTS_CACHE_TTL_MS 30000  /* an entry is read from the table again after this */

typedef struct wh_projects wh_projects;

typedef struct {
    long long id; /* event-log's project id */
    char path[FG_PROTO_PROJECT_PATH_MAX + 1];
} wh_project;

/* An empty map. FG_ENOMEM. */
int wh_projects_new(wh_projects **out) FG_MUST_CHECK;
void wh_projects_free(wh_projects *p);

/* True when path is "ns/name" as messages require (segments of [A-Za-z0-9_.-], at least two,
 * at most FG_PROTO_PROJECT_PATH_MAX bytes). */
bool wh_projects_path_valid(const char *path);

/* The project registered for (forge, forge_id) (decimal text). FG_ENOTFOUND when none;
 * FG_EUNAVAILABLE (or another fg_pg_exec error) when the table cannot be read. */
int wh_projects_find(wh_project *out, wh_projects *p, fg_pg_conn *db, fg_proto_forge forge,
                     const char *forge_id) FG_MUST_CHECK;

/* Registers (or re-points) (forge, forge_id) to project id/path. FG_EINVALID for a bad id or
 * path; FG_ECONFLICT when the project id is registered for another repository; fg_pg_exec's
 * errors otherwise. */
int wh_projects_register(wh_projects *p, fg_pg_conn *db, fg_proto_forge forge, const char *forge_id,
                         long long id, const char *path) FG_MUST_CHECK;

/* Forgets what the map holds (the table changed behind it); the next lookups read the table. */
void wh_projects_clear(wh_projects *p);

/* Removes (forge, forge_id). FG_ENOTFOUND when it was not registered. */
int wh_projects_unregister(wh_projects *p, fg_pg_conn *db, fg_proto_forge forge,
                           const char *forge_id) FG_MUST_CHECK;

#endif
