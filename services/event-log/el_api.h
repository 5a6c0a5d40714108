/*
 * event-log's REST API (docs/api/event-log.md): projects (register, list, show, status, remove,
 * re-provision, sync now), events (list, show with history, export as JSON lines, retry), replay
 * and the rebuild from the status log. Every route needs the service key, which the runtime
 * checks; errors are {"error","message"}, 4xx for bad input with the field named. It never
 * publishes: it writes the rows (project_request, sync_time) the bus thread's tick publishes.
 * Main thread only: handlers use fg_service_db(svc). One service per process (the routes keep
 * the service and context in one file-scope slot, set by el_api_add_routes).
 */
#ifndef EL_API_H
#define EL_API_H

#include "fg/error.h"
#include "fg/http_server.h"
#include "fg/service.h"

#define EL_API_JSON_DEPTH_MAX 8     /* nesting of a request body */
#define EL_API_BODY_MAX       65536 /* bytes of a request body (ids of a retry included) */

/* The fg_service_routes_fn of fg-event-log: adds every route; payload is the el_context (kept,
 * so it must outlive the service). FG_ECONFLICT when a route exists already, FG_ENOMEM. */
int el_api_add_routes(fg_service *svc, fg_http_server *http, void *payload) FG_MUST_CHECK;

#endif
