/*
 * fg-bench-extract: extracts every commit reachable from a repository's branches and tags with
 * cs_extract and prints the totals that `git log --branches --tags --no-renames --numstat` gives,
 * so bench/extract.sh can check them, plus time and peak RSS. Bodies are discarded once built
 * (or printed, one per line, with --dump; checked against the schema with --validate).
 *
 * Usage: fg-bench-extract REPO [--threads N] [--files-max N] [--dump] [--validate] [--strict]
 * Prints: commits=N merges=N insertions=N deletions=N files=N trailers=N seconds=S walk_seconds=W
 * peak_rss_mb=M (seconds include the walk). libgit2 is set up as commit-sync should be: strict hash
 * verification off (unless --strict) and no caching of commits the walk reads once
 * (docs/internals/extraction.md).
 */
#include <git2.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cs_extract.h"
#include "fg/proto.h"

typedef struct {
    unsigned long long commits, merges, insertions, deletions, files, trailers;
    bool dump, validate;
} totals;

static double now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The number after `key` in body; a JSON string never holds `,"stats":{` unescaped, so the
 * search cannot land inside the message. */
static unsigned long long number_after(const char *body, const char *key)
{
    const char *p = strstr(body, key);
    char *end = NULL;
    unsigned long long v;

    if (p == NULL)
        return 0;
    v = strtoull(p + strlen(key), &end, 10);
    return end != p + strlen(key) ? v : 0;
}

static int on_commit(const char *body, size_t len, const git_oid *oid, void *payload)
{
    totals *t = payload;
    const char *stats = strstr(body, ",\"stats\":{");
    const char *trailers = strstr(body, ",\"trailers\":[");
    (void)oid;

    t->commits++;
    if (strstr(body, ",\"isMerge\":true,") != NULL)
        t->merges++;
    if (stats != NULL) {
        t->insertions += number_after(stats, "\"insertions\":");
        t->deletions += number_after(stats, "\"deletions\":");
        t->files += number_after(stats, "\"files\":");
    }
    for (const char *p = trailers;
         p != NULL && (p = strstr(p + 1, "{\"key\":")) != NULL && (stats == NULL || p < stats);)
        t->trailers++;
    if (t->validate) {
        struct json_object *parsed = NULL;
        if (fg_proto_commit_parse(&parsed, body, len) < 0) {
            fprintf(stderr, "invalid body: %s\n%.*s\n", fg_error_last(), (int)len, body);
            return FG_EINVALID;
        }
        json_object_put(parsed);
    }
    if (t->dump)
        printf("%.*s\n", (int)len, body);
    return 0;
}

/* A non-negative decimal option; exits 2 on anything else. */
static unsigned long long count_arg(const char *s)
{
    char *end = NULL;
    unsigned long long v = strtoull(s, &end, 10);

    if (end == s || *end != '\0') {
        fprintf(stderr, "not a count: %s\n", s);
        exit(2);
    }
    return v;
}

static int push_refs(git_revwalk *walk)
{
    /* the same set as `git log --branches --tags` (tags peeled; non-commit tags skipped) */
    if (git_revwalk_push_glob(walk, "refs/heads/*") < 0)
        return -1;
    return git_revwalk_push_glob(walk, "refs/tags/*");
}

int main(int argc, char **argv)
{
    cs_extract_options o;
    totals t;
    git_repository *repo = NULL;
    git_revwalk *walk = NULL;
    git_oid *oids = NULL, oid;
    size_t n = 0, cap = 0;
    bool strict = false;
    struct rusage ru;
    double t0, t_walk;
    int rc = 1;

    memset(&t, 0, sizeof(t));
    cs_extract_options_init(&o);
    if (argc < 2) {
        fprintf(stderr,
                "usage: %s REPO [--threads N] [--files-max N] [--dump] [--validate] "
                "[--strict]\n",
                argv[0]);
        return 2;
    }
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--threads") == 0 && i + 1 < argc)
            o.threads = (int)count_arg(argv[++i]);
        else if (strcmp(argv[i], "--files-max") == 0 && i + 1 < argc)
            o.files_max = (size_t)count_arg(argv[++i]);
        else if (strcmp(argv[i], "--dump") == 0)
            t.dump = true;
        else if (strcmp(argv[i], "--validate") == 0)
            t.validate = true;
        else if (strcmp(argv[i], "--strict") == 0)
            strict = true;
    }
    t0 = now();
    git_libgit2_init();
    /* git does not re-hash what it reads; libgit2 does unless told not to (infra.md §6) */
    git_libgit2_opts(GIT_OPT_ENABLE_STRICT_HASH_VERIFICATION, strict ? 1 : 0);
    /* the walk reads each commit once: caching them all in libgit2 costs 60 MB per 100,000
     * commits and time (docs/internals/extraction.md) */
    git_libgit2_opts(GIT_OPT_SET_CACHE_OBJECT_LIMIT, GIT_OBJECT_COMMIT, (size_t)0);
    if (git_repository_open_ext(&repo, argv[1], GIT_REPOSITORY_OPEN_NO_SEARCH, NULL) < 0 ||
        git_revwalk_new(&walk, repo) < 0 || git_revwalk_sorting(walk, GIT_SORT_TIME) < 0 ||
        push_refs(walk) < 0) {
        fprintf(stderr, "%s: %s\n", argv[1], git_error_last() ? git_error_last()->message : "");
        goto done;
    }
    while (git_revwalk_next(&oid, walk) == 0) {
        if (n == cap) {
            git_oid *grown = realloc(oids, (cap = cap ? cap * 2 : 4096) * sizeof(*oids));
            if (grown == NULL)
                goto done;
            oids = grown;
        }
        oids[n++] = oid;
    }
    git_revwalk_free(walk);
    walk = NULL;
    t_walk = now() - t0;
    if (cs_extract(repo, oids, n, &o, on_commit, &t) < 0) {
        fprintf(stderr, "extract: %s\n", fg_error_last());
        goto done;
    }
    getrusage(RUSAGE_SELF, &ru);
    fprintf(t.dump ? stderr : stdout,
            "commits=%llu merges=%llu insertions=%llu deletions=%llu files=%llu trailers=%llu "
            "seconds=%.3f walk_seconds=%.3f peak_rss_mb=%.1f\n",
            t.commits, t.merges, t.insertions, t.deletions, t.files, t.trailers, now() - t0, t_walk,
            (double)ru.ru_maxrss / 1024.0);
    rc = 0;
done:
    free(oids);
    git_revwalk_free(walk);
    git_repository_free(repo);
    git_libgit2_shutdown();
    return rc;
}
