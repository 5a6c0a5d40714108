/*
 * The webhook's internal routes (service key required), all on the main thread:
 *   PUT|GET|DELETE /hooks/{forge}/{forgeId}   which project a forge repository's deliveries
 *                                              belong to ({"projectId":N,"path":"ns/name"});
 *                                              activation registers through the same function
 *   POST /deliveries/replay                    {"id":N|"delivery id"} or {"since","until",
 *                                              "project","after"}: queue archived deliveries again
 *   GET  /deliveries/export?since=&until=&project=&after=&limit=   the archive as JSON lines
 * Replays and exports work in pages (WH_ADMIN_PAGE_MAX rows): the answer says where to go on.
 */
#ifndef WH_ADMIN_H
#define WH_ADMIN_H

#include "fg/http_server.h"

#define WH_ADMIN_PAGE_MAX       10000              /* rows one replay or export call handles */
#define WH_ADMIN_EXPORT_DEFAULT 1000               /* rows of an export page without ?limit */
#define WH_ADMIN_EXPORT_BYTES   ((size_t)64 << 20) /* bytes of one export page (one row always) */
#define WH_ADMIN_BODY_MAX       (64 * 1024)        /* request bodies of these routes */

/* Route handlers; payload is the wh_context. */
void wh_admin_hook_put(fg_http_request *req, void *payload);
void wh_admin_hook_get(fg_http_request *req, void *payload);
void wh_admin_hook_delete(fg_http_request *req, void *payload);
void wh_admin_replay(fg_http_request *req, void *payload);
void wh_admin_export(fg_http_request *req, void *payload);

#endif
