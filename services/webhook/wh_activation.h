/*
 * Project activation (DESIGN.md flow 1) and its undoing, on the job worker:
 *   POST   /projects                           {"forge","path","url","forgeId"?,"token"?}
 *   DELETE /projects/{id}
 *   POST   /projects/{id}/webhooks/validation
 * Activation looks the forge id up when it is missing, registers the project with event-log
 * (which assigns the id), stores the token in token-repository, records the project here (from
 * then on its deliveries are accepted) together with a COMMIT_SYNC_REQUEST in the outbox (one
 * transaction), and creates or repairs the hook on the forge when FG_PUBLIC_URL is set and a token
 * is known. Each step is idempotent, so repeating a request that failed half-way finishes it.
 * docs/internals/webhook.md lists the answers.
 */
#ifndef WH_ACTIVATION_H
#define WH_ACTIVATION_H

#include "fg/http_server.h"
#include "wh_context.h"

#define WH_ACTIVATION_URL_MAX   2048 /* a clone URL (event-log's limit) */
#define WH_ACTIVATION_TOKEN_MAX 4096 /* a token (token-repository's limit) */

/* Starts the worker (from the routes callback; ctx->svc is set). FG_ENOMEM, FG_ERROR. */
int wh_activation_start(wh_context *ctx) FG_MUST_CHECK;

/* Stops it (loop stopped); requests still waiting are dropped unanswered. */
void wh_activation_stop(wh_context *ctx);

/* Route handlers; payload is the wh_context. */
void wh_activation_add(fg_http_request *req, void *payload);
void wh_activation_remove(fg_http_request *req, void *payload);
void wh_activation_validate(fg_http_request *req, void *payload);

#endif
