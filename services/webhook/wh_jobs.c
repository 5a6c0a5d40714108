/*
 * wh_jobs (see wh_jobs.h): a mutex-protected queue in, a finished list out, and one libevent event
 * activated from the worker (event_active is thread-safe once evthread_use_pthreads() was called
 * before the loop was created) to hand finished jobs back to the loop thread.
 */
#include "wh_jobs.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>

struct wh_jobs {
    void *payload;
    pthread_t thread;
    bool started;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    wh_job *in_head, *in_tail; /* under lock */
    size_t in_count;
    wh_job *done_head, *done_tail; /* under lock */
    bool stopping;                 /* under lock */
    struct event *done_ev;
};

static void append(wh_job **head, wh_job **tail, wh_job *job)
{
    job->next = NULL;
    if (*tail != NULL)
        (*tail)->next = job;
    else
        *head = job;
    *tail = job;
}

static void *worker_main(void *arg)
{
    wh_jobs *jobs = arg;

    for (;;) {
        wh_job *job;

        pthread_mutex_lock(&jobs->lock);
        while (!jobs->stopping && jobs->in_head == NULL)
            pthread_cond_wait(&jobs->cond, &jobs->lock);
        if (jobs->stopping) {
            pthread_mutex_unlock(&jobs->lock);
            return NULL;
        }
        job = jobs->in_head;
        jobs->in_head = job->next;
        if (jobs->in_head == NULL)
            jobs->in_tail = NULL;
        jobs->in_count--;
        pthread_mutex_unlock(&jobs->lock);

        job->run(job, jobs->payload);

        pthread_mutex_lock(&jobs->lock);
        append(&jobs->done_head, &jobs->done_tail, job);
        pthread_mutex_unlock(&jobs->lock);
        event_active(jobs->done_ev, EV_READ, 0);
    }
}

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    wh_jobs *jobs = arg;
    wh_job *job;

    (void)fd;
    (void)what;
    pthread_mutex_lock(&jobs->lock);
    job = jobs->done_head;
    jobs->done_head = jobs->done_tail = NULL;
    pthread_mutex_unlock(&jobs->lock);
    while (job != NULL) {
        wh_job *next = job->next;
        job->done(job, jobs->payload);
        job = next;
    }
}

int wh_jobs_new(wh_jobs **out, struct event_base *base, void *payload)
{
    wh_jobs *jobs = calloc(1, sizeof(*jobs));

    *out = NULL;
    if (jobs == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory for the job worker");
    jobs->payload = payload;
    pthread_mutex_init(&jobs->lock, NULL);
    pthread_cond_init(&jobs->cond, NULL);
    if ((jobs->done_ev = event_new(base, -1, 0, on_done, jobs)) == NULL ||
        pthread_create(&jobs->thread, NULL, worker_main, jobs) != 0) {
        wh_jobs_free(jobs, NULL);
        return fg_error_set(FG_ERROR, "cannot start the job worker");
    }
    jobs->started = true;
    *out = jobs;
    return 0;
}

static void release_list(wh_job *job, void (*release)(wh_job *job))
{
    while (job != NULL) {
        wh_job *next = job->next;
        if (release != NULL)
            release(job);
        job = next;
    }
}

void wh_jobs_free(wh_jobs *jobs, void (*release)(wh_job *job))
{
    if (jobs == NULL)
        return;
    pthread_mutex_lock(&jobs->lock);
    jobs->stopping = true;
    pthread_cond_broadcast(&jobs->cond);
    pthread_mutex_unlock(&jobs->lock);
    if (jobs->started)
        pthread_join(jobs->thread, NULL);
    if (jobs->done_ev != NULL)
        event_free(jobs->done_ev);
    release_list(jobs->in_head, release);
    release_list(jobs->done_head, release);
    pthread_cond_destroy(&jobs->cond);
    pthread_mutex_destroy(&jobs->lock);
    free(jobs);
}

int wh_jobs_submit(wh_jobs *jobs, wh_job *job)
{
    int rc = 0;

    pthread_mutex_lock(&jobs->lock);
    if (jobs->stopping || jobs->in_count >= WH_JOBS_QUEUE_MAX) {
        rc = fg_error_set(FG_EUNAVAILABLE, "%zu requests of this kind are waiting already",
                          jobs->in_count);
    } else {
        append(&jobs->in_head, &jobs->in_tail, job);
        jobs->in_count++;
        pthread_cond_signal(&jobs->cond);
    }
    pthread_mutex_unlock(&jobs->lock);
    return rc;
}
