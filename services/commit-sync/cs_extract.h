/*
 * Commit extraction: turns commits of a repository into the commit bodies of DESIGN.md (sha,
 * parents, author and committer with their offsets, message as UTF-8, trailers of the trailer
 * block as git defines it, numstat totals and per-file counts equal to
 * `git log --no-renames --numstat`, none for merges). The hot path of commit-sync: it uses every
 * core it is given. It does not walk history or decide which commits to extract (cs_sync does),
 * and does no I/O but reading the repository.
 */
#ifndef CS_EXTRACT_H
#define CS_EXTRACT_H

#include <git2.h>
#include <stddef.h>

#include "fg/error.h"

typedef struct {
    int threads; /* extraction threads; 0: one per online core */
    size_t
        files_max; /* changed paths listed per commit (totals stay exact); 0: FG_PROTO_FILES_MAX */
} cs_extract_options;

void cs_extract_options_init(cs_extract_options *o);

/* Receives each commit's body as compact JSON (valid UTF-8, schema-valid for CREATION), in the
 * order of the oids given, on the calling thread. body[len] is '\0'; body is valid only during
 * the call. Return < 0 to stop the extraction (that value is returned by cs_extract). */
typedef int (*cs_commit_fn)(const char *body, size_t len, const git_oid *oid, void *payload);

/* Extracts n commits of repo (opened by the caller; strict hash verification is the caller's
 * choice, see docs) and hands each body to fn. FG_ENOTFOUND for an oid that is not a commit,
 * FG_ERROR for a libgit2 failure or a corrupt pack (message names the commit), FG_EINVALID for
 * a malformed tree, FG_ETOOBIG for a path or body past the size limits, FG_ENOMEM.
 * docs/internals/extraction.md has the rules and the threading. */
int cs_extract(git_repository *repo, const git_oid *oids, size_t n, const cs_extract_options *o,
               cs_commit_fn fn, void *payload) FG_MUST_CHECK;

#endif
