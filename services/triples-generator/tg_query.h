/*
 * POST /sparql: read-only SPARQL queries for operators (`fgctl sparql`), answered with SPARQL 1.1
 * JSON results, so callers need neither the store's address nor its quirks (the dialect
 * normalises them). Queries run on one worker thread of this module with its own store client,
 * never on the event loop: a slow query must not hold /health, /ready or /metrics up. Answers go
 * back to the loop through a libevent event (the process calls evthread_use_pthreads() first).
 * At most TG_QUERY_PENDING_MAX queries wait; more get 503.
 */
#ifndef TG_QUERY_H
#define TG_QUERY_H

#include "fg/error.h"
#include "fg/http_server.h"
#include "tg_store.h"

struct event_base;

#define TG_QUERY_PENDING_MAX 8                           /* queries queued or running */
#define TG_QUERY_BODY_MAX    (TG_STORE_QUERY_MAX + 1024) /* request body: {"query": "..."} */

typedef struct tg_query tg_query;

/* A query server over `store`, which it takes over (freed with it, also when this fails).
 * FG_ENOMEM. */
int tg_query_new(tg_query **out, tg_store *store) FG_MUST_CHECK;

/* Starts the worker; answers are delivered on `base` (the loop of the HTTP server). Main thread.
 * FG_ERROR when the thread cannot start. */
int tg_query_start(tg_query *q, struct event_base *base) FG_MUST_CHECK;

/* Stops and joins the worker (the query in hand finishes first) and drops unanswered jobs,
 * whose requests the HTTP server frees. Main thread, with the loop no longer running. */
void tg_query_stop(tg_query *q);

/* Frees q (stopping it first if needed); accepts NULL. */
void tg_query_free(tg_query *q);

/* The route handler (payload: the tg_query). Body: {"query": "<SPARQL>"}. Answers 200 with the
 * results (application/sparql-results+json); 400 for a missing or refused query; 503 when busy
 * or the store is unreachable; 504 when it timed out. */
void tg_query_handle(fg_http_request *req, void *payload);

#endif
