/*
 * Internals of the commit extraction shared by cs_extract.c (threads, order) and
 * cs_extract_commit.c (one commit to one body). A worker belongs to one thread and holds its own
 * repository handle, caches and scratch memory.
 */
#ifndef CS_EXTRACT_INT_H
#define CS_EXTRACT_INT_H

#include <git2.h>
#include <stddef.h>

#include "fg/buf.h"
#include "fg/error.h"

/* A body is at most: the message, names and trailers at their schema limits, and files_max paths
 * of FG_PROTO_FILE_PATH_MAX characters, all escaped. */
#define CS_EXTRACT_BODY_MAX 33554432
/* Directory nesting followed in a tree (git's core.maxTreeDepth is 4096; paths past the schema's
 * limit are cut anyway). */
#define CS_EXTRACT_TREE_DEPTH_MAX 2048

/* Objects kept per worker for reuse (delta bases, trees and blobs the next commits read again).
 * git's delta-base cache is 96 MiB; measured on real-code histories, 48 MiB per thread inflates
 * delta chains again and costs a third more time. */
#define CS_EXTRACT_CACHE_MAX 100663296

/* ---- object reader (cs_extract_odb.c): packs read directly, libgit2 for the rest ---- */

typedef struct cs_extract__packs cs_extract__packs;
typedef struct cs_extract__odb cs_extract__odb;
typedef struct cs_extract__object cs_extract__object;

/* Maps repo's packs (and their v2 indexes) read-only, once for every thread of an extraction;
 * packs it cannot use are left to libgit2. FG_ENOMEM. */
int cs_extract__packs_open(cs_extract__packs **out, git_repository *repo) FG_MUST_CHECK;
/* After every reader using them is freed. Accepts NULL. */
void cs_extract__packs_close(cs_extract__packs *packs);
/* Drops the pack pages from the process's resident set (any thread, any time: readers fault
 * them back from the page cache), so a long extraction does not hold a whole pack resident. */
void cs_extract__packs_trim(cs_extract__packs *packs);

/* A reader over repo's object database (packs from the shared list, which must outlive it),
 * caching up to cache_max bytes of objects. One thread. FG_ENOMEM, FG_ERROR when libgit2 cannot
 * open the database. */
int cs_extract__odb_new(cs_extract__odb **out, git_repository *repo, const cs_extract__packs *packs,
                        size_t cache_max) FG_MUST_CHECK;
/* Every object read must have been released. */
void cs_extract__odb_free(cs_extract__odb *odb);

/* Reads object id into *out, a reference to release with cs_extract__object_release. The data
 * is NUL-terminated. FG_ENOTFOUND when the repository does not have it; FG_ETOOBIG when it is
 * larger than max bytes; FG_ERROR for a corrupt pack or a libgit2 failure; FG_ENOMEM. */
int cs_extract__odb_read(cs_extract__object **out, cs_extract__odb *odb, const git_oid *id,
                         size_t max) FG_MUST_CHECK;
const char *cs_extract__object_data(const cs_extract__object *o);
size_t cs_extract__object_size(const cs_extract__object *o);
git_object_t cs_extract__object_type(const cs_extract__object *o);
/* Accepts NULL. */
void cs_extract__object_release(cs_extract__odb *odb, cs_extract__object *o);

/* ---- one commit to one body (cs_extract_commit.c) ---- */

typedef struct cs_extract__worker cs_extract__worker;

/* repo and packs are borrowed and must outlive the worker. FG_ENOMEM, FG_ERROR. */
int cs_extract__worker_new(cs_extract__worker **out, git_repository *repo,
                           const cs_extract__packs *packs, size_t files_max) FG_MUST_CHECK;
void cs_extract__worker_free(cs_extract__worker *w);

/* Appends the body of commit oid to out. FG_ENOTFOUND when oid is not a commit, FG_ERROR for a
 * libgit2 failure, FG_ETOOBIG, FG_ENOMEM; the message names the commit. */
int cs_extract__commit(cs_extract__worker *w, fg_buf *out, const git_oid *oid) FG_MUST_CHECK;

#endif
