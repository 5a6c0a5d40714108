/*
 * The HTTP API of fg-token-repository (docs/api/token-repository.md): PUT, GET and DELETE
 * /projects/{id}/tokens, GET /tokens and POST /tokens/rotate, every one behind the service key
 * (the runtime answers 401 before a handler runs), and the token gauges of /metrics, refreshed
 * after every change and every TR_API_REFRESH_MS by a timer on the loop. Only the GET of one
 * project's token ever answers with a token. Main thread only (handlers, timer and the
 * runtime's database connection all live there).
 */
#ifndef TR_API_H
#define TR_API_H

#include <stdbool.h>

#include "fg/crypto.h"
#include "fg/http_server.h"
#include "fg/metrics.h"
#include "fg/service.h"

#define TR_API_REFRESH_MS 30000 /* how stale the token gauges may get between changes */
#define TR_API_LIST_LIMIT 500   /* GET /tokens page size when ?limit is absent */

typedef struct {
    fg_service *svc;                  /* set by tr_api_start */
    const fg_crypto_keyring *keyring; /* borrowed; outlives the service */
    long long warning_days;           /* FG_TOKEN_EXPIRY_WARNING_DAYS */
    fg_metric *total;
    fg_metric *expiring_soon;
    fg_metric *expired;
    fg_metric *stale_key;
    fg_metric *undecryptable[3]; /* by reason: unknown key, authentication, malformed */
    bool refresh_failing;        /* the last refresh failed (log once per outage) */
} tr_api;

/* Fills api for tr_api_start; keyring is borrowed. */
void tr_api_init(tr_api *api, const fg_crypto_keyring *keyring, long long warning_days);

/* The service's routes callback (fg_service_routes_fn, payload = the tr_api): registers the
 * metrics and the routes, computes the gauges once and arms the refresh timer. FG_ENOMEM,
 * FG_ECONFLICT or FG_EINVALID from the registry or the server; a failed first count is only
 * logged (the database may come back). */
int tr_api_start(fg_service *svc, fg_http_server *http, void *payload) FG_MUST_CHECK;

#endif
