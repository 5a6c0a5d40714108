/*
 * The mirrors, commit-sync's store: one bare repository per project under
 * FG_MIRROR_DIR/<project id>.git, cloned on first use and fetched afterwards (every branch and
 * tag, forced, with pruning) over https with the project's token (token-repository; handed to
 * libgit2's credentials callback only, never put in a URL or a message), file:// or a local path.
 * Beside it, <project id>.lock serialises the syncs of one project across processes (flock: the
 * kernel drops it when its holder dies), and inside it a small state file keeps the ref tips of
 * the last complete sync. It does not walk history or talk to the bus (cs_sync does). Thread
 * affinity: none, but a git_repository is used by one thread at a time.
 */
#ifndef CS_MIRROR_H
#define CS_MIRROR_H

#include <git2.h>
#include <stdbool.h>
#include <stddef.h>

#include "fg/buf.h"
#include "fg/error.h"
#include "fg/http_client.h"

#define CS_MIRROR_URL_MAX    4096                             /* bytes of a remote URL or path */
#define CS_MIRROR_TOKEN_MAX  8192                             /* bytes of a forge token */
#define CS_MIRROR_TIPS_MAX   1000000                          /* branches and tags of one mirror */
#define CS_MIRROR_STATE_MAX  (41u * CS_MIRROR_TIPS_MAX + 64u) /* bytes of a state file */
#define CS_MIRROR_OIDS_MAX   100000000 /* commits in one set (2 GB of oids) */
#define CS_MIRROR_STATE_NAME "fg-sync-state"

/* ---- sets of object ids ---- */

/* A growable array of oids; sorted only after cs_oids_sort_unique. Caller-held: init/dispose. */
typedef struct {
    git_oid *v;
    size_t n;
    size_t cap;
} cs_oids;

void cs_oids_init(cs_oids *s);
void cs_oids_dispose(cs_oids *s);
/* Appends a copy of oid. FG_ETOOBIG past CS_MIRROR_OIDS_MAX, FG_ENOMEM. */
int cs_oids_add(cs_oids *s, const git_oid *oid) FG_MUST_CHECK;
/* Sorts and drops duplicates. */
void cs_oids_sort_unique(cs_oids *s);
/* Binary search in a sorted set. */
bool cs_oids_contains(const cs_oids *sorted, const git_oid *oid);
/* Whether two sorted sets are equal. */
bool cs_oids_equal(const cs_oids *a, const cs_oids *b);

/* ---- the per-project lock ---- */

typedef struct cs_mirror_lock cs_mirror_lock;

/* Takes FG_MIRROR_DIR/<project>.lock (creating it), waiting up to timeout_ms while another
 * process holds it (*out_waited says whether it had to). The lock dies with its holder, so a
 * crashed sync never leaves it behind. FG_ETIMEOUT when still held after timeout_ms (the message
 * names the project), FG_ERROR for a file system failure, FG_ENOMEM. */
int cs_mirror_lock_take(cs_mirror_lock **out, bool *out_waited, const char *dir, long long project,
                        int timeout_ms) FG_MUST_CHECK;
/* Releases and frees; NULL is fine. */
void cs_mirror_lock_release(cs_mirror_lock *lock);

/* ---- fetching ---- */

typedef struct {
    const char *url;      /* https://, http://, file:// or a local path; may hold userinfo */
    const char *username; /* sent with the token (x-access-token, oauth2...) */
    const char *token;    /* NULL: no credentials are offered */
} cs_remote;

/* Appends url as it may be shown: without userinfo, query or fragment. FG_ETOOBIG. */
int cs_mirror_url_display(fg_buf *out, const char *url) FG_MUST_CHECK;

/* Asks token-repository (GET base/projects/{id}/tokens with the service key) for the project's
 * token: *out is a malloc'd copy, or NULL when it has none (404). FG_EUNAVAILABLE when
 * token-repository cannot answer (the message names the project, never the token), FG_ENOMEM. */
int cs_mirror_token(char **out, fg_http_client *http, const char *base_url, const char *service_key,
                    long long project) FG_MUST_CHECK;

/* Brings the project's mirror up to date with the remote and opens it: the first time a bare
 * clone (made beside it and renamed into place, so a crash never leaves half a mirror), then a
 * fetch of every branch and tag (forced refspecs on refs/heads and refs/tags) with pruning. From
 * a local source (a path, file:///) the object files the mirror lacks are first hard-linked into
 * it (copied where linking is refused), as git clone --local does, so the fetch only moves refs.
 * The caller holds the project's lock and frees *out with git_repository_free. *out_cloned says
 * whether it was a clone. FG_EUNAVAILABLE when the remote cannot be reached, refuses the
 * credentials or is not a repository: the message names the project and the remote without its
 * credentials. FG_ERROR for a local failure (disk, libgit2). */
int cs_mirror_update(git_repository **out, bool *out_cloned, const char *dir, long long project,
                     const cs_remote *remote) FG_MUST_CHECK;

/* Opens the project's mirror without fetching. FG_ENOTFOUND when there is none. */
int cs_mirror_open(git_repository **out, const char *dir, long long project) FG_MUST_CHECK;

/* The commits the branches and tags point at (annotated tags peeled; a tag of a tree or a blob is
 * skipped), sorted and unique, into out (emptied first). FG_ERROR, FG_ENOMEM, FG_ETOOBIG. */
int cs_mirror_tips(cs_oids *out, git_repository *repo) FG_MUST_CHECK;

/* Deletes the project's mirror (state included) and its lock file. The caller holds the lock,
 * which it still releases afterwards. Nothing to delete is fine. FG_ERROR on a file system
 * failure. */
int cs_mirror_remove(const char *dir, long long project) FG_MUST_CHECK;

/* ---- the state of the last complete sync ---- */

/* Reads the tips recorded by the last complete sync into out (emptied first, sorted).
 * *out_found is false when there is none (never synced, or an unreadable file, which only
 * costs a full comparison). FG_ENOMEM. */
int cs_mirror_state_read(cs_oids *out, bool *out_found, const char *dir,
                         long long project) FG_MUST_CHECK;

/* Records tips (sorted) as those of a complete sync: everything reachable from them has been
 * sent. Written to a temporary file, synced and renamed, so a crash leaves the old state or the
 * new one. FG_ERROR on a file system failure. */
int cs_mirror_state_write(const char *dir, long long project, const cs_oids *tips) FG_MUST_CHECK;

#endif
