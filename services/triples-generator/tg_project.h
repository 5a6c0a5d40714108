/*
 * Clone URLs of projects, for the project node's schema:codeRepository: messages carry a
 * project's id, forge and path but not its URL, which event-log's GET /projects/{id} gives.
 * Answers are cached per project (a URL never changes); a failed look-up is remembered for
 * TG_PROJECT_RETRY_MS so a down event-log costs one short request per project per minute, and
 * the project node goes out without the URL meanwhile. Not thread-safe: the bus thread's.
 */
#ifndef TG_PROJECT_H
#define TG_PROJECT_H

#include "fg/error.h"

#define TG_PROJECT_CACHE_MAX  4096  /* projects remembered; a full cache starts over */
#define TG_PROJECT_RETRY_MS   60000 /* a failed look-up is not repeated sooner */
#define TG_PROJECT_TIMEOUT_MS 2000  /* one look-up: generation must not wait on event-log */
#define TG_PROJECT_URL_MAX    2048  /* bytes of a clone URL (event-log's limit) */

typedef struct tg_projects tg_projects;

/* event_log_url and service_key are copied. FG_ENOMEM; FG_ERROR when libcurl cannot start. */
int tg_projects_new(tg_projects **out, const char *event_log_url,
                    const char *service_key) FG_MUST_CHECK;
void tg_projects_free(tg_projects *p);

/* The clone URL of project id into *out (owned by the cache, valid until the next call), or NULL
 * when event-log does not know it or cannot say now (logged at warn, once per retry window). */
void tg_projects_clone_url(const char **out, tg_projects *p, long long id);

/* Forgets what the cache knows of project id (after its removal). */
void tg_projects_forget(tg_projects *p, long long id);

#endif
