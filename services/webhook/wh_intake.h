/*
 * POST /webhooks/github and /webhooks/gitlab (DESIGN.md flow 2, "Trust and secrets"): checks in
 * the order DESIGN.md gives (body size is the HTTP server's: 413; then 400 for a body that is not
 * a JSON object or a missing id or header, 401 for a wrong signature or token, 404 for a project
 * that is not registered, 200 for a GitHub ping), decides the route, and hands the delivery to
 * the group-commit writer, whose answer (202 archived, 200 already seen, 503) comes back through
 * wh_intake_answer. Main thread only.
 */
#ifndef WH_INTAKE_H
#define WH_INTAKE_H

#include <stdbool.h>

#include "fg/http_server.h"
#include "fg/proto.h"
#include "wh_context.h"
#include "wh_writer.h"

/* What a delivery was answered, for fg_webhook_deliveries_total{forge,outcome}. */
typedef enum {
    WH_OUTCOME_ACCEPTED,     /* 202 */
    WH_OUTCOME_DUPLICATE,    /* 200: delivery already seen */
    WH_OUTCOME_PING,         /* 200: GitHub ping */
    WH_OUTCOME_INVALID,      /* 400 */
    WH_OUTCOME_UNAUTHORIZED, /* 401 */
    WH_OUTCOME_NOT_FOUND,    /* 404 */
    WH_OUTCOME_UNAVAILABLE,  /* 503: archive unreachable or its queue full */
    WH_OUTCOME_COUNT
} wh_outcome;

/* "accepted", "duplicate", ... (the metric's label values). */
const char *wh_outcome_name(wh_outcome outcome);

/* The route of a verified delivery (DESIGN.md flow 2): pushes (GitHub push; GitLab Push Hook,
 * Tag Push Hook) to COMMIT_SYNC_REQUEST, the listed events to FORGE_EVENT, anything else, and
 * anything that names no registered project, ignored. */
wh_route wh_intake_route(fg_proto_forge forge, const char *event, bool names_project);

/* Route handlers; payload is the wh_context. */
void wh_intake_github(fg_http_request *req, void *payload);
void wh_intake_gitlab(fg_http_request *req, void *payload);

/* The writer's answer callback (payload: the wh_context): answers d->req and frees d. */
void wh_intake_answer(wh_delivery *d, void *payload);

#endif
