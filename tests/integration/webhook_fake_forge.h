/*
 * A stand-in for GitHub's and GitLab's REST APIs and for event-log's POST/DELETE /projects, for
 * webhook_test.c's activation tests: an evhttp server on its own thread that answers as the
 * documentation shows (status codes, JSON bodies) and remembers what it was asked. Under /github
 * it serves GET /repos/{o}/{r} and /repos/{o}/{r}/hooks[/{id}] (GET, POST, PATCH, DELETE); under
 * /gitlab, /api/v4/projects/{id or url-encoded path} and .../hooks[/{id}] (GET, POST, PUT,
 * DELETE); under /event-log, POST /projects and DELETE /projects/{id} (ids from first_project).
 * The caller must have called evthread_use_pthreads().
 */
#ifndef WEBHOOK_FAKE_FORGE_H
#define WEBHOOK_FAKE_FORGE_H

#include <stdbool.h>
#include <stddef.h>

#define FF_HOOKS_MAX 64

typedef struct {
    long long id;
    char forge[8];     /* "github" / "gitlab" */
    long long project; /* forge project id */
    char url[512];     /* where it points */
    char secret[80];   /* GitHub config.secret / GitLab token */
    bool push_events;  /* GitHub "push" in events / GitLab push_events */
    bool alive;
} ff_hook;

/* Starts the server; *out_base is "http://127.0.0.1:<port>". Repositories the forges know:
 * path -> id (GitHub and GitLab alike); projects event-log registers get first_project, +1... */
void ff_start(char out_base[64], long long first_project);
void ff_stop(void);

/* Makes `path` known to both forges with forge id `id`; token, when not NULL, is the one a
 * request must carry (Authorization: Bearer on GitHub, PRIVATE-TOKEN on GitLab), else 404. */
void ff_add_repository(const char *path, long long id, const char *token);

/* A copy of the hooks (at most FF_HOOKS_MAX); returns how many. */
size_t ff_hooks(ff_hook *out);

/* Deletes hook id on the forge (someone removed it by hand). */
void ff_drop_hook(long long id);

/* Requests seen: how many matched "METHOD /path-prefix". */
size_t ff_requests(const char *method, const char *prefix);

/* The last body event-log's stand-in got on POST /projects ("" when none). */
void ff_last_registration(char *out, size_t size);

/* Whether a request carried the token the way the forge wants it: "Authorization: Bearer
 * <token>" (GitHub) or "PRIVATE-TOKEN: <token>" (GitLab). */
bool ff_saw_token(const char *token);

#endif
