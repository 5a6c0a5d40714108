/*
 * The operators' query endpoint (see tg_query.h). A job moves QUEUED -> RUNNING -> DONE under
 * the mutex; only the loop thread frees a job (in its completion callback, or at stop once the
 * worker is joined), so the worker never touches a job after signalling it.
 */
#include "tg_query.h"

#include <event2/event.h>
#include <json-c/json.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    JOB_QUEUED,  /* in the list, waiting for the worker */
    JOB_RUNNING, /* the worker holds it; only the worker writes its result */
    JOB_DONE     /* result written, completion event activated: the loop answers and frees it */
} job_state;

typedef struct job {
    struct job *next;
    job_state state;
    tg_query *owner;
    fg_http_request *req;
    struct event *done;
    char *query;
    fg_buf results;
    int rc;
    char error[512];
} job;

struct tg_query {
    tg_store *store; /* the worker's */
    struct event_base *base;
    pthread_t thread;
    bool started, stopping;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    job *jobs; /* every job not yet freed, newest first */
    size_t pending;
};

int tg_query_new(tg_query **out, tg_store *store)
{
    tg_query *q = calloc(1, sizeof(*q));

    *out = NULL;
    if (q == NULL) {
        tg_store_free(store);
        return fg_error_set(FG_ENOMEM, "out of memory");
    }
    q->store = store;
    pthread_mutex_init(&q->lock, NULL);
    pthread_cond_init(&q->wake, NULL);
    *out = q;
    return 0;
}

static void job_free(job *j)
{
    if (j->done != NULL)
        event_free(j->done);
    free(j->query);
    fg_buf_dispose(&j->results);
    free(j);
}

/* Unlinks j from the list; the lock is held. */
static void unlink_job(tg_query *q, job *j)
{
    for (job **p = &q->jobs; *p != NULL; p = &(*p)->next) {
        if (*p == j) {
            *p = j->next;
            break;
        }
    }
    q->pending--;
}

/* ---- the worker -------------------------------------------------------------------------- */

static job *next_queued(tg_query *q)
{
    job *found = NULL;

    for (job *j = q->jobs; j != NULL; j = j->next)
        if (j->state == JOB_QUEUED)
            found = j; /* the oldest: the list is newest first */
    return found;
}

static void *worker(void *arg)
{
    tg_query *q = arg;

    pthread_mutex_lock(&q->lock);
    while (!q->stopping) {
        job *j = next_queued(q);
        if (j == NULL) {
            pthread_cond_wait(&q->wake, &q->lock);
            continue;
        }
        j->state = JOB_RUNNING;
        pthread_mutex_unlock(&q->lock);
        j->rc = tg_store_query(q->store, &j->results, j->query, strlen(j->query));
        if (j->rc < 0)
            snprintf(j->error, sizeof(j->error), "%s", fg_error_last());
        pthread_mutex_lock(&q->lock);
        j->state = JOB_DONE;
        event_active(j->done, EV_TIMEOUT, 0);
    }
    pthread_mutex_unlock(&q->lock);
    return NULL;
}

int tg_query_start(tg_query *q, struct event_base *base)
{
    q->base = base;
    if (pthread_create(&q->thread, NULL, worker, q) != 0)
        return fg_error_set(FG_ERROR, "cannot start the query thread");
    q->started = true;
    return 0;
}

void tg_query_stop(tg_query *q)
{
    if (q == NULL || !q->started)
        return;
    pthread_mutex_lock(&q->lock);
    q->stopping = true;
    pthread_cond_broadcast(&q->wake);
    pthread_mutex_unlock(&q->lock);
    pthread_join(q->thread, NULL);
    q->started = false;
    while (q->jobs != NULL) {
        job *j = q->jobs;
        unlink_job(q, j);
        job_free(j);
    }
}

void tg_query_free(tg_query *q)
{
    if (q == NULL)
        return;
    tg_query_stop(q);
    while (q->jobs != NULL) { /* never started: jobs could not have been queued, but be sure */
        job *j = q->jobs;
        unlink_job(q, j);
        job_free(j);
    }
    pthread_cond_destroy(&q->wake);
    pthread_mutex_destroy(&q->lock);
    tg_store_free(q->store);
    free(q);
}

/* ---- the loop side ----------------------------------------------------------------------- */

static void answer(job *j)
{
    if (j->rc == 0) {
        fg_http_respond_text(j->req, 200, "application/sparql-results+json", j->results.ptr,
                             j->results.len);
        return;
    }
    if (j->rc == FG_EINVALID)
        fg_http_respond_error(j->req, 400, "invalid", "%s", j->error);
    else if (j->rc == FG_ETIMEOUT)
        fg_http_respond_error(j->req, 504, "timeout", "%s", j->error);
    else if (j->rc == FG_ETOOBIG)
        fg_http_respond_error(j->req, 413, "too_big", "%s (narrow it, or page with LIMIT)",
                              j->error);
    else
        fg_http_respond_error(j->req, 503, "unavailable", "%s", j->error);
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    job *j = arg;
    tg_query *q = j->owner;

    (void)fd;
    (void)what;
    answer(j);
    pthread_mutex_lock(&q->lock);
    unlink_job(q, j);
    pthread_mutex_unlock(&q->lock);
    job_free(j);
}

/* The query text of a {"query": "..."} body, copied. */
static int read_query(char **out, fg_http_request *req)
{
    size_t len = 0;
    const char *body = fg_http_request_body(req, &len);
    json_object *root = NULL, *v;
    int rc = FG_EINVALID;

    if (body == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory");
    if (len > TG_QUERY_BODY_MAX)
        return fg_error_set(FG_ETOOBIG, "a query body holds at most %zu bytes",
                            (size_t)TG_QUERY_BODY_MAX);
    if ((root = json_tokener_parse(body)) == NULL ||
        !json_object_object_get_ex(root, "query", &v) ||
        !json_object_is_type(v, json_type_string) || json_object_get_string_len(v) == 0) {
        rc = fg_error_set(FG_EINVALID, "the body must be {\"query\": \"<SPARQL>\"}");
    } else if ((*out = strdup(json_object_get_string(v))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory");
    } else {
        rc = 0;
    }
    json_object_put(root);
    return rc;
}

void tg_query_handle(fg_http_request *req, void *payload)
{
    tg_query *q = payload;
    job *j = NULL;
    int rc;

    if ((j = calloc(1, sizeof(*j))) == NULL) {
        fg_http_respond_error(req, 503, "unavailable", "out of memory");
        return;
    }
    fg_buf_init(&j->results, TG_STORE_RESULTS_MAX);
    j->owner = q;
    j->req = req;
    if ((rc = read_query(&j->query, req)) < 0) {
        fg_http_respond_fg_error(req, rc);
        job_free(j);
        return;
    }
    if (!q->started || (j->done = event_new(q->base, -1, 0, on_done, j)) == NULL) {
        fg_http_respond_error(req, 503, "unavailable", "the query worker is not running");
        job_free(j);
        return;
    }
    pthread_mutex_lock(&q->lock);
    if (q->pending >= TG_QUERY_PENDING_MAX) {
        pthread_mutex_unlock(&q->lock);
        fg_http_respond_error(req, 503, "busy", "%d queries are running or waiting: try again",
                              TG_QUERY_PENDING_MAX);
        job_free(j);
        return;
    }
    j->next = q->jobs;
    q->jobs = j;
    q->pending++;
    pthread_cond_signal(&q->wake);
    pthread_mutex_unlock(&q->lock);
}
