/*
 * The triple store, through standard SPARQL 1.1 only: the Graph Store HTTP Protocol (POST of
 * N-Triples into a named graph), the Protocol's query and update operations. What differs
 * between stores (endpoint paths, the graph parameter's name, the auth scheme, quirks of the
 * JSON results) is a tg_store_dialect; tg_store_virtuoso.c is the one for Virtuoso 7. It does
 * not know the vocabulary. A tg_store is one connection (libcurl): one thread at a time.
 */
#ifndef TG_STORE_H
#define TG_STORE_H

#include <stddef.h>

#include "fg/buf.h"
#include "fg/error.h"
#include "fg/http_client.h"

struct json_object;

#define TG_STORE_CHUNK_DEFAULT  ((size_t)16 << 20)  /* bytes of N-Triples per GSP POST */
#define TG_STORE_RESULTS_MAX    ((size_t)256 << 20) /* bytes of a query's JSON results */
#define TG_STORE_QUERY_MAX      ((size_t)1 << 20)   /* bytes of one query or update */
#define TG_STORE_ERROR_TEXT_MAX 300 /* bytes of the store's answer quoted in an error */

/* Where a store keeps the three services, relative to FG_TRIPLESTORE_URL, and its quirks. */
typedef struct {
    const char *name;        /* "virtuoso" */
    const char *query_path;  /* SPARQL Protocol query operation */
    const char *update_path; /* update operation (authenticated) */
    const char *gsp_path;    /* Graph Store Protocol, indirect graph identification */
    const char *gsp_graph;   /* the graph's query parameter ("graph" in the standard) */
    fg_http_auth auth;       /* how the user and password are sent */
    /* Rewrites a store's JSON results (application/sparql-results+json) in place into the form
     * SPARQL 1.1 specifies; NULL when the store already answers that way. FG_EINVALID for
     * results of an unexpected shape. */
    int (*normalise)(struct json_object *results);
} tg_store_dialect;

/* Virtuoso 7 (tg_store_virtuoso.c). */
extern const tg_store_dialect tg_store_virtuoso;

typedef struct {
    const char *url;      /* FG_TRIPLESTORE_URL: base URL of the server */
    const char *user;     /* NULL: no authentication (reads only) */
    const char *password; /* never logged */
    const tg_store_dialect *dialect;
    long timeout_ms;    /* one request; 0: 60 s */
    int max_attempts;   /* per request, transient failures retried; 0: 3 */
    size_t chunk_bytes; /* 0: TG_STORE_CHUNK_DEFAULT */
} tg_store_options;

typedef struct tg_store tg_store;

/* A store client (copies the options). FG_EINVALID for a missing url or dialect; FG_ENOMEM;
 * FG_ERROR when libcurl cannot start. */
int tg_store_new(tg_store **out, const tg_store_options *o) FG_MUST_CHECK;
void tg_store_free(tg_store *s);

/*
 * Errors of every call below, from the store's answer (the message quotes up to
 * TG_STORE_ERROR_TEXT_MAX bytes of its body):
 *   FG_EUNAVAILABLE  no connection, or a 5xx answer (Virtuoso also answers 500 for a request it
 *                    cannot parse, which this service never sends): try again later;
 *   FG_ETIMEOUT      no answer in time;
 *   FG_EAUTH         401 or 403: wrong user or password, or no update right;
 *   FG_EINVALID      another 4xx: the store refuses this request for good;
 *   FG_ETOOBIG, FG_ENOMEM, FG_ERROR.
 */

/* Adds nt[0..len) (N-Triples, one triple per line) to the named graph with Graph Store Protocol
 * POSTs of at most chunk_bytes each, cut at line ends; the store keeps each triple once, so a
 * repeat changes nothing. *out_requests (may be NULL) counts the POSTs sent. A failure leaves the
 * chunks before it in the graph (a retry of the whole is harmless). */
int tg_store_upload(tg_store *s, size_t *out_requests, const char *graph, const char *nt,
                    size_t len) FG_MUST_CHECK;

/* Runs a SPARQL 1.1 Update request (one or more operations separated by ';'). */
int tg_store_update(tg_store *s, const char *update, size_t len) FG_MUST_CHECK;

/* DROP SILENT GRAPH <graph>: succeeds whether or not the graph existed. */
int tg_store_drop_graph(tg_store *s, const char *graph) FG_MUST_CHECK;

/* Runs a query (SELECT or ASK) and appends its results to out as SPARQL 1.1 JSON
 * (application/sparql-results+json, after the dialect's normalise). FG_ETOOBIG past
 * TG_STORE_RESULTS_MAX or out's cap. The store may cut long results short (Virtuoso:
 * ResultSetMaxRows): page with LIMIT and OFFSET. */
int tg_store_query(tg_store *s, fg_buf *out, const char *query, size_t len) FG_MUST_CHECK;

/* Runs a query whose first result row holds an integer in variable `var` (a COUNT). */
int tg_store_query_count(tg_store *s, long long *out, const char *query,
                         const char *var) FG_MUST_CHECK;

#endif
