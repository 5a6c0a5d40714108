/*
 * git as the commit-sync tests' oracle (see cs_git.h).
 */
#include "cs_git.h"

#include <fcntl.h>
#include <stdarg.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#define LOG_MAX (256u << 20)

void cs_git_run(fg_buf *out, const char *in_path, const char *const *argv)
{
    int pipefd[2];
    pid_t pid;
    int status;
    char chunk[65536];
    ssize_t n;

    assert_int_equal(pipe(pipefd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        if (in_path != NULL) {
            int fd = open(in_path, O_RDONLY);
            dup2(fd, 0);
        }
        dup2(pipefd[1], 1);
        close(pipefd[0]);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    while ((n = read(pipefd[0], chunk, sizeof(chunk))) > 0)
        if (out != NULL)
            assert_int_equal(fg_buf_put(out, chunk, (size_t)n), 0);
    close(pipefd[0]);
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("%s %s %s failed", argv[0], argv[1], argv[2] ? argv[2] : "");
}

void cs_git_isolate(void)
{
    assert_int_equal(setenv("GIT_CONFIG_NOSYSTEM", "1", 1), 0);
    assert_int_equal(setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1), 0);
}

/* ---- making repositories ------------------------------------------------------------------ */

static const char *const zones[] = {"+0000", "+0100", "-0700", "+0530", "-0330"};

/* Appends file `path` at version v of commit i: some lines that stay, some that grow or shrink. */
static void put_file(fg_buf *s, const char *path, int i)
{
    fg_buf content;
    int lines = (i * 13) % 23 + 1;

    fg_buf_init(&content, 1 << 20);
    assert_int_equal(fg_buf_puts(&content, "header\n"), 0);
    for (int k = 0; k < lines; k++)
        assert_int_equal(fg_buf_printf(&content, "line %d\n", k), 0);
    assert_int_equal(fg_buf_printf(&content, "version %d\n", i), 0);
    assert_int_equal(
        fg_buf_printf(s, "M 100644 inline %s\ndata %zu\n%s\n", path, content.len, content.ptr), 0);
    fg_buf_dispose(&content);
}

/* The branch of commit mark i in the generated history. */
static const char *branch_of(int i)
{
    if (i > 300 && i <= 380)
        return "feature/x";
    if (i > 800 && i <= 820)
        return "topic";
    return "main";
}

/* The parent of mark i: main goes on from 300 after feature/x and from 800 after topic. */
static int parent_of(int i)
{
    if (i == 381)
        return 300;
    if (i == 821)
        return 800;
    return i - 1;
}

static void put_message(fg_buf *msg, int i)
{
    assert_int_equal(
        fg_buf_printf(msg, "Change %d of %s\n\nBody of change %d.\n", i, branch_of(i), i), 0);
    if (i % 7 == 0)
        assert_int_equal(fg_buf_printf(msg,
                                       "\nSigned-off-by: Dev %d <dev%d@example.org>\n"
                                       "Co-authored-by: Other Person <other@example.org>\n",
                                       i % 4, i % 4),
                         0);
    if (i % 11 == 0)
        assert_int_equal(fg_buf_printf(msg, "%sReviewed-by: Rev Iewer <rev@example.org>\n",
                                       i % 7 == 0 ? "" : "\n"),
                         0);
}

static void put_changes(fg_buf *s, int i)
{
    char path[128];

    snprintf(path, sizeof(path), "dir%d/file%d.txt", i % 5, (i * 7) % 40);
    put_file(s, path, i);
    if (i % 3 == 0) {
        snprintf(path, sizeof(path), "docs/notes%d.md", i % 9);
        put_file(s, path, i + 1);
    }
    if (i % 97 == 96)
        assert_int_equal(fg_buf_printf(s, "M 100644 inline extra/e%d.txt\ndata 4\nabc\n", i), 0);
    if (i % 97 == 0)
        assert_int_equal(fg_buf_printf(s, "D extra/e%d.txt\n", i - 1), 0);
    if (i % 50 == 0) {
        assert_int_equal(fg_buf_printf(s, "M 100644 inline bin/blob%d.bin\ndata 6\n", i), 0);
        assert_int_equal(fg_buf_put(s, "a\0b\0c\n", 6), 0);
    }
}

void cs_git_make_history(const char *dir)
{
    char stream_path[600];
    fg_buf s;
    FILE *f;

    assert_true((size_t)snprintf(stream_path, sizeof(stream_path), "%s.fi", dir) <
                sizeof(stream_path));
    fg_buf_init(&s, 256u << 20);
    for (int i = 1; i <= CS_GIT_HISTORY_COMMITS; i++) {
        long long at = 1672531200LL + (long long)i * 3600;
        fg_buf msg;

        fg_buf_init(&msg, 1 << 16);
        put_message(&msg, i);
        assert_int_equal(
            fg_buf_printf(&s,
                          "commit refs/heads/%s\nmark :%d\nauthor Dev %d <dev%d@example.org> "
                          "%lld %s\ncommitter %s %lld %s\ndata %zu\n%s",
                          branch_of(i), i, i % 4, i % 4, at, zones[i % 5],
                          i % 5 == 0 ? "Linus T <linus@example.org>" : "Dev X <devx@example.org>",
                          at + 60 * (i % 3), zones[(i + 2) % 5], msg.len, msg.ptr),
            0);
        fg_buf_dispose(&msg);
        if (i > 1)
            assert_int_equal(fg_buf_printf(&s, "from :%d\n", parent_of(i)), 0);
        if (i == 600) {
            assert_int_equal(fg_buf_puts(&s, "merge :380\n\n"), 0);
            continue;
        }
        put_changes(&s, i);
        assert_int_equal(fg_buf_putc(&s, '\n'), 0);
    }
    assert_int_equal(fg_buf_puts(&s, "reset refs/tags/v1\nfrom :100\n\n"
                                     "tag v2\nfrom :500\ntagger Rel <rel@example.org> 1672600000 "
                                     "+0000\ndata 8\nrelease\n\n"),
                     0);
    assert_non_null(f = fopen(stream_path, "w"));
    assert_int_equal(fwrite(s.ptr, 1, s.len, f), s.len);
    fclose(f);
    fg_buf_dispose(&s);
    cs_git_run(NULL, NULL, (const char *const[]){"git", "init", "-q", "-b", "main", dir, NULL});
    cs_git_run(NULL, stream_path,
               (const char *const[]){"git", "-C", dir, "fast-import", "--quiet", NULL});
    CS_GIT(dir, "checkout", "-q", "-f", "main");
    unlink(stream_path);
}

void cs_git_make_small(const char *dir, int n)
{
    char sha[CS_GIT_SHA_LEN + 1], what[64];

    cs_git_run(NULL, NULL, (const char *const[]){"git", "init", "-q", "-b", "main", dir, NULL});
    for (int i = 0; i < n; i++) {
        snprintf(what, sizeof(what), "small change %d", i);
        cs_git_commit_change(sha, dir, what);
    }
}

void cs_git_commit_change(char out[CS_GIT_SHA_LEN + 1], const char *dir, const char *what)
{
    char path[700];
    fg_buf sha;
    FILE *f;

    snprintf(path, sizeof(path), "%s/pushed.txt", dir);
    assert_non_null(f = fopen(path, "a"));
    fprintf(f, "%s\n", what);
    fclose(f);
    CS_GIT(dir, "add", "-A");
    CS_GIT(dir, "-c", "user.name=Pusher", "-c", "user.email=pusher@example.org", "-c",
           "commit.gpgsign=false", "commit", "-q", "-m", what);
    fg_buf_init(&sha, 4096);
    cs_git_run(&sha, NULL, (const char *const[]){"git", "-C", dir, "rev-parse", "HEAD", NULL});
    assert_true(sha.len >= CS_GIT_SHA_LEN);
    memcpy(out, sha.ptr, CS_GIT_SHA_LEN);
    out[CS_GIT_SHA_LEN] = '\0';
    fg_buf_dispose(&sha);
}

/* ---- sets of shas ------------------------------------------------------------------------- */

void cs_shas_add(cs_shas *s, const char *sha)
{
    assert_int_equal(strlen(sha), CS_GIT_SHA_LEN);
    s->v = realloc(s->v, (s->n + 1) * sizeof(*s->v));
    assert_non_null(s->v);
    memcpy(s->v[s->n++], sha, CS_GIT_SHA_LEN + 1);
    s->sorted = false;
}

static int cmp_sha(const void *a, const void *b)
{
    return strcmp(a, b);
}

bool cs_shas_has(cs_shas *s, const char *sha)
{
    if (!s->sorted && s->n > 0)
        qsort(s->v, s->n, sizeof(*s->v), cmp_sha);
    s->sorted = true;
    return s->n > 0 && bsearch(sha, s->v, s->n, sizeof(*s->v), cmp_sha) != NULL;
}

void cs_shas_dispose(cs_shas *s)
{
    free(s->v);
    s->v = NULL;
    s->n = 0;
}

void cs_git_rev_list(cs_shas *out, const char *dir, const char *range)
{
    fg_buf list;
    char *save = NULL;

    fg_buf_init(&list, 64u << 20);
    if (range == NULL)
        cs_git_run(
            &list, NULL,
            (const char *const[]){"git", "-C", dir, "rev-list", "--branches", "--tags", NULL});
    else
        cs_git_run(&list, NULL, (const char *const[]){"git", "-C", dir, "rev-list", range, NULL});
    for (char *sha = strtok_r(list.ptr, "\n", &save); sha != NULL;
         sha = strtok_r(NULL, "\n", &save))
        cs_shas_add(out, sha);
    fg_buf_dispose(&list);
}

/* ---- comparing with git ------------------------------------------------------------------- */

const char *cs_git_body_string(json_object *body, const char *k1, const char *k2)
{
    json_object *v;

    if (!json_object_object_get_ex(body, k1, &v))
        fail_msg("a body has no \"%s\"", k1);
    if (k2 != NULL && !json_object_object_get_ex(v, k2, &v))
        fail_msg("a body has no \"%s\".\"%s\"", k1, k2);
    return json_object_get_string(v);
}

static long long body_int(json_object *o, const char *k1, const char *k2)
{
    json_object *v;

    assert_true(json_object_object_get_ex(o, k1, &v));
    assert_true(json_object_object_get_ex(v, k2, &v));
    return json_object_get_int64(v);
}

/* A decimal count; the whole text must be one. */
static long long count_of(const char *text)
{
    char *end = NULL;
    long long v = strtoll(text, &end, 10);

    if (end == text || *end != '\0' || v < 0)
        fail_msg("'%s' is not a count", text);
    return v;
}

static void compare_parents(json_object *body, const char *git_parents)
{
    json_object *parents, *v;
    fg_buf text;

    assert_true(json_object_object_get_ex(body, "parents", &parents));
    fg_buf_init(&text, 1 << 20);
    for (size_t i = 0; i < json_object_array_length(parents); i++)
        assert_int_equal(
            fg_buf_printf(&text, "%s%s", i ? " " : "",
                          json_object_get_string(json_object_array_get_idx(parents, i))),
            0);
    assert_string_equal(text.ptr, git_parents);
    assert_true(json_object_object_get_ex(body, "isMerge", &v));
    assert_int_equal(json_object_get_boolean(v), json_object_array_length(parents) > 1);
    fg_buf_dispose(&text);
}

/* trailers as git prints them: "Key: value" lines */
static void compare_trailers(json_object *body, const char *git_trailers)
{
    json_object *trailers;
    fg_buf text;

    fg_buf_init(&text, 1 << 20);
    assert_true(json_object_object_get_ex(body, "trailers", &trailers));
    for (size_t i = 0; i < json_object_array_length(trailers); i++) {
        json_object *t = json_object_array_get_idx(trailers, i);
        assert_int_equal(fg_buf_printf(&text, "%s: %s\n", cs_git_body_string(t, "key", NULL),
                                       cs_git_body_string(t, "value", NULL)),
                         0);
    }
    assert_string_equal(text.ptr, git_trailers);
    fg_buf_dispose(&text);
}

/* numstat: every line counted, binary as binary (no line counts) */
static void compare_numstat(json_object *body, char *numstat)
{
    json_object *files, *v;
    long long ins = 0, del = 0, nfiles = 0;
    char *save = NULL;

    assert_true(json_object_object_get_ex(body, "files", &files));
    for (char *line = strtok_r(numstat, "\n", &save); line != NULL;
         line = strtok_r(NULL, "\n", &save)) {
        char path[1024];
        char a[32], d[32];
        json_object *file;

        if (sscanf(line, "%31[^\t]\t%31[^\t]\t%1023[^\n]", a, d, path) != 3)
            continue;
        file = json_object_array_get_idx(files, (size_t)nfiles);
        assert_non_null(file);
        assert_string_equal(cs_git_body_string(file, "path", NULL), path);
        if (strcmp(a, "-") == 0) {
            assert_true(json_object_object_get_ex(file, "binary", &v) &&
                        json_object_get_boolean(v));
        } else {
            assert_int_equal(json_object_get_int64(json_object_object_get(file, "insertions")),
                             count_of(a));
            assert_int_equal(json_object_get_int64(json_object_object_get(file, "deletions")),
                             count_of(d));
            ins += count_of(a);
            del += count_of(d);
        }
        nfiles++;
    }
    assert_int_equal(json_object_array_length(files), (size_t)nfiles);
    assert_int_equal(body_int(body, "stats", "insertions"), ins);
    assert_int_equal(body_int(body, "stats", "deletions"), del);
    assert_int_equal(body_int(body, "stats", "files"), nfiles);
}

/* Checks one git log record (fields split by 0x1f, numstat after the last) against its body. */
static void compare_record(char *record, cs_git_body_fn lookup, void *payload)
{
    char *f[11];
    char *at = record;
    json_object *body;

    for (int k = 0; k < 10; k++) {
        char *sep = strchr(at, '\x1f');
        assert_non_null(sep);
        *sep = '\0';
        f[k] = at;
        at = sep + 1;
    }
    f[10] = at;
    body = lookup(f[0], payload);
    if (body == NULL)
        fail_msg("commit %s: no body", f[0]);
    assert_string_equal(cs_git_body_string(body, "sha", NULL), f[0]);
    compare_parents(body, f[1]);
    assert_string_equal(cs_git_body_string(body, "author", "name"), f[2]);
    assert_string_equal(cs_git_body_string(body, "author", "email"), f[3]);
    assert_string_equal(cs_git_body_string(body, "author", "at"), f[4]);
    assert_string_equal(cs_git_body_string(body, "committer", "name"), f[5]);
    assert_string_equal(cs_git_body_string(body, "committer", "email"), f[6]);
    assert_string_equal(cs_git_body_string(body, "committer", "at"), f[7]);
    assert_string_equal(cs_git_body_string(body, "message", NULL), f[8]);
    compare_trailers(body, f[9]);
    compare_numstat(body, f[10]);
}

size_t cs_git_compare_log(const char *dir, cs_git_body_fn lookup, void *payload)
{
    fg_buf log;
    size_t checked = 0;
    char *save = NULL;

    fg_buf_init(&log, LOG_MAX);
    cs_git_run(&log, NULL,
               (const char *const[]){
                   "git", "-C", dir, "log", "--branches", "--tags", "--no-renames", "--numstat",
                   "--format=%x1e%H%x1f%P%x1f%an%x1f%ae%x1f%aI%x1f%cn%x1f%ce%x1f%cI"
                   "%x1f%B%x1f%(trailers:only,unfold)%x1f",
                   NULL});
    for (char *r = strtok_r(log.ptr, "\x1e", &save); r != NULL; r = strtok_r(NULL, "\x1e", &save)) {
        compare_record(r, lookup, payload);
        checked++;
    }
    fg_buf_dispose(&log);
    return checked;
}
