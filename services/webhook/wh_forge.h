/*
 * The few GitHub and GitLab REST calls activation needs: a repository's numeric id from its
 * path, and the project hook (find ours by URL and update it, or create it; check it; delete
 * it). Hooks point at <FG_PUBLIC_URL>/webhooks/<forge> with the project's derived secret and the
 * events DESIGN.md routes. Blocking (libcurl): the job worker thread only. Neither a token nor a
 * secret ever appears in an error message.
 */
#ifndef WH_FORGE_H
#define WH_FORGE_H

#include <stdbool.h>

#include "fg/error.h"
#include "fg/http_client.h"
#include "fg/proto.h"

typedef struct {
    fg_http_client *http;
    const char *github_api_url; /* https://api.github.com */
    const char *gitlab_url;     /* https://gitlab.com (the API is under /api/v4) */
    const char *public_url;     /* where the forges reach the webhook */
} wh_forge;

/* The forge's id of the repository at path ("ns/name"); token may be NULL (public projects).
 * FG_ENOTFOUND when the forge has no such project (or hides it), FG_EAUTH when it refuses the
 * token, FG_EUNAVAILABLE when it cannot be reached or fails (5xx, rate limit), FG_EINVALID when
 * its answer has no id. */
int wh_forge_lookup_id(long long *out, const wh_forge *f, fg_proto_forge forge, const char *path,
                       const char *token) FG_MUST_CHECK;

/* Makes the project's hook right: ours (found by its URL) is updated, else one is created.
 * *out is its id, *out_created whether it is new. Errors as wh_forge_lookup_id (FG_ENOTFOUND also
 * when the token may not manage hooks: GitHub answers 404 then). */
int wh_forge_ensure_hook(long long *out, bool *out_created, const wh_forge *f, fg_proto_forge forge,
                         const char *path, long long forge_id, const char *secret,
                         const char *token) FG_MUST_CHECK;

/* 0 when hook hook_id exists, FG_ENOTFOUND when it does not; other errors as above. */
int wh_forge_check_hook(const wh_forge *f, fg_proto_forge forge, const char *path,
                        long long forge_id, long long hook_id, const char *token) FG_MUST_CHECK;

/* Deletes hook hook_id; one that is gone already counts as deleted. Errors as above. */
int wh_forge_delete_hook(const wh_forge *f, fg_proto_forge forge, const char *path,
                         long long forge_id, long long hook_id, const char *token) FG_MUST_CHECK;

#endif
