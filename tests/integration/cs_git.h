/*
 * The git side of the commit-sync tests (tests/integration/cs_sync_test.c,
 * tests/e2e/commit_sync_test.c): repositories made with git itself, and git's own output as the
 * oracle for the commit bodies commit-sync produces, wherever the test found them (on the bus or
 * in event-log). Test code: every function asserts (cmocka) instead of returning an error.
 */
#ifndef FG_TEST_CS_GIT_H
#define FG_TEST_CS_GIT_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "fg/buf.h"

#define CS_GIT_HISTORY_COMMITS 1000 /* what cs_git_make_history makes */
#define CS_GIT_SHA_LEN         40

/* Runs argv (stdin from in_path when given), stdout appended to out (when given); fails the test
 * unless it exits 0. */
void cs_git_run(fg_buf *out, const char *in_path, const char *const *argv);

#define CS_GIT(dir, ...)                                                                           \
    cs_git_run(NULL, NULL, (const char *const[]){"git", "-C", dir, __VA_ARGS__, NULL})

/* Makes git ignore the user's and the system's configuration (its output is the oracle). */
void cs_git_isolate(void);

/* A new repository at dir with CS_GIT_HISTORY_COMMITS commits made with fast-import: main (with
 * a merge of feature/x), feature/x, topic (unmerged), a lightweight and an annotated tag,
 * trailers, a binary file, added and deleted files, five time zones, committers that differ from
 * the authors. Branch main is checked out. */
void cs_git_make_history(const char *dir);

/* A new repository at dir with n commits on main (each from cs_git_commit_change). */
void cs_git_make_small(const char *dir, int n);

/* A commit on the checked-out branch that changes a file; its sha in out. */
void cs_git_commit_change(char out[CS_GIT_SHA_LEN + 1], const char *dir, const char *what);

/* A set of shas. */
typedef struct {
    char (*v)[CS_GIT_SHA_LEN + 1];
    size_t n;
    bool sorted;
} cs_shas;

void cs_shas_add(cs_shas *s, const char *sha);
bool cs_shas_has(cs_shas *s, const char *sha); /* sorts first */
void cs_shas_dispose(cs_shas *s);

/* git rev-list of range in dir into out (appended); range NULL: --branches --tags, the commits of
 * a project. */
void cs_git_rev_list(cs_shas *out, const char *dir, const char *range);

/* The body stored or sent for sha, or NULL when there is none (borrowed). */
typedef json_object *(*cs_git_body_fn)(const char *sha, void *payload);

/* Every commit `git log --branches --tags --no-renames --numstat` lists for dir equals the body
 * lookup() gives for it: parents, author and committer (name, email, time with its offset),
 * message, trailers as git prints them, per-file numstat (binary files as binary), totals,
 * isMerge. Returns the number of commits compared. */
size_t cs_git_compare_log(const char *dir, cs_git_body_fn lookup, void *payload);

/* A string member of a body (k2 NULL: top level); fails the test when absent. */
const char *cs_git_body_string(json_object *body, const char *k1, const char *k2);

#endif
