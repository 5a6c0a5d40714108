/*
 * A worker thread for the webhook's slow requests (activation, removal, hook validation: calls
 * to the forges, event-log and token-repository that may take seconds), so that they never
 * block the loop that answers deliveries. A job runs on the worker thread, then its `done`
 * callback runs on the loop thread, where it answers the request. Jobs run one at a time, in
 * submission order. The worker's own resources (a database connection, an HTTP client) belong to
 * whoever submits: the run callback gets the jobs' payload.
 */
#ifndef WH_JOBS_H
#define WH_JOBS_H

#include <stddef.h>

#include "fg/error.h"

struct event_base;

#define WH_JOBS_QUEUE_MAX 64 /* jobs waiting before submit refuses (an operator API) */

typedef struct wh_job wh_job;

/* Runs on the worker thread; payload is the one given to wh_jobs_new. */
typedef void (*wh_job_run_fn)(wh_job *job, void *payload);
/* Runs on the loop thread once run returned; it owns the job from then on (answers, frees). */
typedef void (*wh_job_done_fn)(wh_job *job, void *payload);

/* Embed this first in a job's own struct. */
struct wh_job {
    wh_job *next;
    wh_job_run_fn run;
    wh_job_done_fn done;
};

typedef struct wh_jobs wh_jobs;

/* Starts the worker. base is the service's loop (evthread_use_pthreads() was called). FG_ENOMEM,
 * FG_ERROR when the thread or the loop event cannot be created. */
int wh_jobs_new(wh_jobs **out, struct event_base *base, void *payload) FG_MUST_CHECK;

/* Stops the worker after the job in hand (loop thread, loop stopped); jobs never finished are
 * freed with `release` (it must not answer: the loop is gone). Accepts NULL. */
void wh_jobs_free(wh_jobs *jobs, void (*release)(wh_job *job));

/* Queues a job (loop thread). FG_EUNAVAILABLE when WH_JOBS_QUEUE_MAX are waiting or the worker
 * is stopping: the job stays the caller's. */
int wh_jobs_submit(wh_jobs *jobs, wh_job *job) FG_MUST_CHECK;

#endif
