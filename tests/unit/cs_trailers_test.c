/* cs_trailers: git's trailer rules, table-driven, each case checked against the git binary
 * (`git log --format=%(trailers:only,unfold)` over commits made with fast-import, so the message
 * bytes are exactly the case's), plus random messages compared with git, plus where libgit2's
 * git_message_trailers disagrees (the reason cs_trailers exists). */
#include "test_support.h"

#include <fcntl.h>
#include <git2.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cs_trailers.h"
#include "fg/buf.h"

typedef struct {
    const char *name;
    const char *message;
    const char *expected; /* "key: value\n" per trailer, as git prints them */
    bool libgit2_agrees;
} trailer_case;

static const trailer_case cases[] = {
    {"plain", "t\n\nSigned-off-by: A <a@x>\n", "Signed-off-by: A <a@x>\n", true},
    {"title only", "Fix: something\n", "", true},
    {"no blank line after title", "t\nSigned-off-by: A\n", "", true},
    {"last paragraph", "t\n\nbody\n\nReviewed-by: B <b>\nTested-by: C <c>\n",
     "Reviewed-by: B <b>\nTested-by: C <c>\n", true},
    {"not the last paragraph", "t\n\nReviewed-by: B\n\nsome text\n", "", true},
    {"mixed, no git line", "t\n\nReviewed-by: B\nnot a trailer\n", "", true},
    {"mixed, 25% with sign-off", "t\n\nSigned-off-by: A\nfoo\nbar\nbaz\n", "Signed-off-by: A\n",
     true},
    {"mixed, under 25%", "t\n\nSigned-off-by: A\nfoo\nbar\nbaz\nqux\n", "", true},
    {"sign-off without space", "t\n\nSigned-off-by:A\nfoo\n", "", true},
    {"cherry-pick line", "t\n\n(cherry picked from commit abc)\nfoo\nReviewed-by: X\n",
     "Reviewed-by: X\n", true},
    {"cherry-pick only", "t\n\n(cherry picked from commit abc)\n", "", true},
    {"continuation", "t\n\nReviewed-by: A\n  and B\nTested-by: C\n",
     "Reviewed-by: A and B\nTested-by: C\n", false},
    {"continuation, tabs", "t\n\nKey: a\n b\n\tc\n", "Key: a b c\n", false},
    {"continuation of sign-off", "t\n\nSigned-off-by: A\n  B\n", "Signed-off-by: A B\n", false},
    {"leading continuation", "t\n\n  indented\nReviewed-by: A\n", "", true},
    {"continuation after text", "t\n\nSigned-off-by: A\nfoo\n  cont\n", "Signed-off-by: A\n", true},
    {"key with space", "t\n\nKey with space: v\n", "", true},
    {"blank before colon", "t\n\nKey : v\n", "Key: v\n", true},
    {"tab before colon", "t\n\nKey\t: v\n", "Key: v\n", true},
    {"equals is no separator", "t\n\nKey=v\n", "", true},
    {"hash is no separator", "t\n\nBug #42\n", "", true},
    {"url", "t\n\nhttps://example.com/x\n", "https: //example.com/x\n", true},
    {"trailing comment", "t\n\nReviewed-by: A\n# comment\n", "Reviewed-by: A\n", true},
    {"comment inside", "t\n\nReviewed-by: A\n# comment\nAcked-by: B\n",
     "Reviewed-by: A\nAcked-by: B\n", true},
    {"scissors",
     "t\n\nReviewed-by: A\n# ------------------------ >8 ------------------------\n"
     "Acked-by: B\n",
     "Reviewed-by: A\n", false},
    {"divider inside the block", "t\n\nReviewed-by: A\n---\nAcked-by: B\n", "", false},
    {"divider before the block", "t\n\nbody\n---\n\nReviewed-by: A\n", "Reviewed-by: A\n", false},
    {"conflicts block", "t\n\nReviewed-by: A\n\nConflicts:\n\tfile.c\n", "Reviewed-by: A\n", true},
    {"crlf", "t\r\n\r\nReviewed-by: A\r\n", "Reviewed-by: A\n", false},
    {"trailing blanks", "t\n\nReviewed-by: A\n   \n", "Reviewed-by: A\n", false},
    {"leading blank lines", "\n\nt\n\nReviewed-by: A\n", "Reviewed-by: A\n", true},
    {"trailer as title after blank lines", "\n\nReviewed-by: A\n", "", false},
    {"empty value", "t\n\nReviewed-by:\n", "Reviewed-by: \n", false},
    {"lower-case key", "t\n\nsigned-off-by: A\n", "signed-off-by: A\n", true},
    {"non-ASCII key", "t\n\nR\xc3\xa9viewed-by: A\n", "", true},
    {"non-ASCII value", "t\n\nReviewed-by: Jos\xc3\xa9 <j@x>\n", "Reviewed-by: Jos\xc3\xa9 <j@x>\n",
     true},
    {"colon first", "t\n\n: foo\nReviewed-by: A\n", "", true},
    {"dash key", "t\n\n-: x\n", "-: x\n", true},
    {"no final newline", "t\n\nA: b", "A: b\n", true},
    {"trailing empty lines", "t\n\nA: b\n\n\n", "A: b\n", true},
    {"tab value", "t\n\nKey:\tv\n", "Key: v\n", true},
    {"vertical tab is not a blank", "t\n\nA: b\n\vcont\n", "", false},
    {"git line is case-sensitive", "t\n\nsigned-off-by: A\nfoo\n", "", true},
    {"comment title", "# comment\nt\n\nA: b\n", "A: b\n", true},
    {"scissors first", "# ------------------------ >8 ------------------------\nt\n\nA: b\n", "",
     false},
    {"empty", "", "", true},
    {"value with colons", "t\n\nLink: https://x/y:z\n", "Link: https://x/y:z\n", true},
    {"whitespace-only continuation", "t\n\nA: b\n \n", "A: b\n", false},
    {"fixes with quotes", "t\n\nFixes: 0123456789ab (\"t: x\")\nSigned-off-by: A <a>\n",
     "Fixes: 0123456789ab (\"t: x\")\nSigned-off-by: A <a>\n", true},
};

/* ---- running git ---- */

/* Runs argv with in (len bytes) on stdin; returns the exit status and stdout in out. */
static int run(const char *const argv[], const char *in, size_t len, fg_buf *out)
{
    int to[2], from[2], status = -1;
    pid_t pid;

    if (pipe(to) != 0 || pipe(from) != 0)
        return -1;
    if ((pid = fork()) == 0) {
        dup2(to[0], 0);
        dup2(from[1], 1);
        close(to[1]);
        close(from[0]);
        execvp(argv[0], (char *const *)argv); /* execvp does not write them */
        _exit(127);
    }
    close(to[0]);
    close(from[1]);
    /* write in a child so a large input cannot deadlock against a large output */
    if (fork() == 0) {
        close(from[0]);
        for (size_t off = 0; off < len;) {
            ssize_t n = write(to[1], in + off, len - off);
            if (n <= 0)
                _exit(1);
            off += (size_t)n;
        }
        _exit(0);
    }
    close(to[1]);
    for (char chunk[65536];;) {
        ssize_t n = read(from[0], chunk, sizeof(chunk));
        if (n <= 0)
            break;
        if (fg_buf_put(out, chunk, (size_t)n) < 0)
            break;
    }
    close(from[0]);
    waitpid(pid, &status, 0);
    while (wait(NULL) > 0)
        ;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static char repo_dir[] = "/tmp/fg-cs-trailers-XXXXXX";
static bool have_git;

static int setup(void **state)
{
    const char *const init[] = {"git", "init", "-q", "--bare", repo_dir, NULL};
    fg_buf out;
    (void)state;

    if (mkdtemp(repo_dir) == NULL)
        return -1;
    /* git must not read this machine's configuration (trailer.* and core.commentChar matter) */
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    setenv("GIT_CONFIG_GLOBAL", "/dev/null", 1);
    setenv("HOME", repo_dir, 1);
    fg_buf_init(&out, 1 << 20);
    have_git = run(init, "", 0, &out) == 0;
    fg_buf_dispose(&out);
    if (!have_git)
        printf("NOTE: no git binary: cases are checked against the table only\n");
    return 0;
}

static int teardown(void **state)
{
    const char *const rm[] = {"rm", "-rf", repo_dir, NULL};
    fg_buf out;
    (void)state;

    fg_buf_init(&out, 1 << 20);
    (void)run(rm, "", 0, &out);
    fg_buf_dispose(&out);
    return 0;
}

/* What git prints for each message: one commit per message through fast-import, then one git
 * log over all of them. out receives n NUL-terminated strings, one per message. */
static void git_trailers(const char *const *messages, size_t n, fg_buf *out)
{
    char marks[sizeof(repo_dir) + 16];
    char marks_arg[sizeof(marks) + 16];
    static unsigned call;
    fg_buf stream, ignored, shas;
    const char **argv = calloc(n + 8, sizeof(char *));
    size_t argc = 0;

    snprintf(marks, sizeof(marks), "%s/marks", repo_dir);
    snprintf(marks_arg, sizeof(marks_arg), "--export-marks=%s", marks);
    fg_buf_init(&stream, FG_BUF_UNLIMITED);
    fg_buf_init(&ignored, FG_BUF_UNLIMITED);
    fg_buf_init(&shas, FG_BUF_UNLIMITED);
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(messages[i]);
        assert_int_equal(fg_buf_printf(&stream,
                                       "commit refs/heads/c%u-%zu\nmark :%zu\n"
                                       "author A <a@x> 1 +0000\ncommitter A <a@x> 1 +0000\n"
                                       "data %zu\n",
                                       call, i, i + 1, len),
                         0);
        assert_int_equal(fg_buf_put(&stream, messages[i], len), 0);
        assert_int_equal(fg_buf_puts(&stream, "\n\n"), 0);
    }
    {
        const char *const import[] = {"git",     "-C",      repo_dir, "fast-import",
                                      "--quiet", marks_arg, NULL};
        assert_int_equal(run(import, stream.ptr, stream.len, &ignored), 0);
    }
    {
        const char *const cat[] = {"cat", marks, NULL};
        assert_int_equal(run(cat, "", 0, &shas), 0);
    }
    argv[argc++] = "git";
    argv[argc++] = "-C";
    argv[argc++] = repo_dir;
    argv[argc++] = "log";
    argv[argc++] = "--no-walk=unsorted";
    argv[argc++] = "--format=%(trailers:only,unfold)%x00";
    /* marks lines are ":<n> <sha>" in mark order */
    for (char *line = shas.ptr; *line == ':';) {
        char *sp = strchr(line, ' '), *nl = strchr(line, '\n');
        assert_non_null(sp);
        assert_non_null(nl);
        *nl = '\0';
        argv[argc++] = sp + 1;
        line = nl + 1;
    }
    assert_int_equal(argc, n + 6);
    argv[argc] = NULL;
    assert_int_equal(run(argv, "", 0, out), 0);
    /* each record is the trailers then "\0\n": turn into n strings */
    {
        size_t w = 0;
        for (size_t r = 0; r < out->len; r++) {
            if (out->ptr[r] == '\0' && r + 1 < out->len && out->ptr[r + 1] == '\n') {
                out->ptr[w++] = '\0';
                r++;
            } else {
                out->ptr[w++] = out->ptr[r];
            }
        }
        out->len = w;
    }
    call++;
    free((void *)argv);
    fg_buf_dispose(&stream);
    fg_buf_dispose(&ignored);
    fg_buf_dispose(&shas);
}

static void ours(const char *message, fg_buf *out)
{
    cs_trailers t;

    cs_trailers_init(&t);
    assert_int_equal(cs_trailers_parse(&t, message, strlen(message)), 0);
    fg_buf_clear(out);
    for (size_t i = 0; i < t.count; i++) {
        assert_int_equal(strlen(t.items[i].key), t.items[i].key_len);
        assert_int_equal(strlen(t.items[i].value), t.items[i].value_len);
        assert_int_equal(fg_buf_printf(out, "%s: %s\n", t.items[i].key, t.items[i].value), 0);
    }
    cs_trailers_dispose(&t);
}

/* ---- tests ---- */

static void test_cs_trailers__table_matches_expectations(void **state)
{
    fg_buf got;
    (void)state;

    fg_buf_init(&got, FG_BUF_UNLIMITED);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        ours(cases[i].message, &got);
        if (strcmp(got.ptr, cases[i].expected) != 0)
            fail_msg("case '%s': got [%s] expected [%s]", cases[i].name, got.ptr,
                     cases[i].expected);
    }
    fg_buf_dispose(&got);
}

static void test_cs_trailers__table_matches_git(void **state)
{
    size_t n = sizeof(cases) / sizeof(cases[0]);
    const char **messages = calloc(n, sizeof(char *));
    fg_buf git;
    const char *p;
    (void)state;

    if (!have_git)
        skip();
    fg_buf_init(&git, FG_BUF_UNLIMITED);
    for (size_t i = 0; i < n; i++)
        messages[i] = cases[i].message;
    git_trailers(messages, n, &git);
    p = git.ptr;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(p, cases[i].expected) != 0)
            fail_msg("case '%s': git prints [%s], the table says [%s]", cases[i].name, p,
                     cases[i].expected);
        p += strlen(p) + 1;
    }
    free(messages);
    fg_buf_dispose(&git);
}

/* xorshift: reproducible messages without libc's rand state */
static unsigned long long rng = 0x9E3779B97F4A7C15ULL;

static unsigned pick(unsigned n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

static void random_message(fg_buf *m)
{
    static const char *const lines[] = {"Signed-off-by: A <a@x>",
                                        "Reviewed-by: B <b@x>",
                                        "Co-authored-by: C <c@x>",
                                        "Tested-by: D",
                                        "Cc: e@x",
                                        "Fixes: abc (\"x: y\")",
                                        "(cherry picked from commit 123)",
                                        "plain text line",
                                        "more text: with colon later",
                                        "  continued value",
                                        "\tcontinued tab",
                                        "# a comment",
                                        "---",
                                        "# ------------------------ >8 ------------------------",
                                        "Conflicts:",
                                        "\tsrc/file.c",
                                        "Key with space: v",
                                        "Key : spaced",
                                        "https://x.org/a",
                                        ": colon first",
                                        "   ",
                                        "",
                                        "",
                                        "",
                                        "Acked-by:",
                                        "signed-off-by: lower",
                                        "-: dash",
                                        "Helped-by: H <h@x>\r",
                                        "Bug #12",
                                        "Key=value",
                                        "\vvtab: x"};
    size_t n = 1 + pick(12);
    const char *nl = pick(8) == 0 ? "\r\n" : "\n";

    fg_buf_clear(m);
    for (unsigned i = pick(3); i-- > 0;)
        assert_int_equal(fg_buf_puts(m, nl), 0);
    assert_int_equal(fg_buf_printf(m, "title %u%s", pick(100), nl), 0);
    if (pick(4) != 0)
        assert_int_equal(fg_buf_puts(m, nl), 0);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(fg_buf_puts(m, lines[pick(sizeof(lines) / sizeof(lines[0]))]), 0);
        if (i + 1 < n || pick(3) != 0)
            assert_int_equal(fg_buf_puts(m, nl), 0);
    }
}

static void test_cs_trailers__random_messages_match_git(void **state)
{
    enum { COUNT = 600 };
    char **messages = calloc(COUNT, sizeof(char *));
    fg_buf m, git, got;
    const char *p;
    size_t with_trailers = 0;
    (void)state;

    if (!have_git)
        skip();
    fg_buf_init(&m, FG_BUF_UNLIMITED);
    fg_buf_init(&git, FG_BUF_UNLIMITED);
    fg_buf_init(&got, FG_BUF_UNLIMITED);
    for (size_t i = 0; i < COUNT; i++) {
        random_message(&m);
        messages[i] = strdup(m.ptr);
    }
    git_trailers((const char *const *)messages, COUNT, &git);
    p = git.ptr;
    for (size_t i = 0; i < COUNT; i++) {
        ours(messages[i], &got);
        if (strcmp(p, got.ptr) != 0)
            fail_msg("message %zu [%s]: git [%s] ours [%s]", i, messages[i], p, got.ptr);
        with_trailers += *p != '\0';
        p += strlen(p) + 1;
        free(messages[i]);
    }
    /* the generator must exercise both outcomes */
    assert_true(with_trailers > COUNT / 10);
    assert_true(with_trailers < COUNT * 9 / 10);
    free(messages);
    fg_buf_dispose(&m);
    fg_buf_dispose(&git);
    fg_buf_dispose(&got);
}

/* libgit2 1.5's git_message_trailers follows an older trailer.c and none of pretty.c: a "---"
 * line ends the message (git log's %(trailers) reads through it), scissors lines and leading
 * blank lines are not handled, values are neither unfolded nor trimmed of CR and trailing
 * blanks, and \v counts as a blank. The table marks those cases; this test keeps the list
 * honest. */
static void test_cs_trailers__libgit2_differs_where_marked(void **state)
{
    fg_buf got, wrong;
    (void)state;

    git_libgit2_init();
    fg_buf_init(&got, FG_BUF_UNLIMITED);
    fg_buf_init(&wrong, FG_BUF_UNLIMITED);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        git_message_trailer_array arr;
        memset(&arr, 0, sizeof(arr));
        fg_buf_clear(&got);
        if (git_message_trailers(&arr, cases[i].message) == 0) {
            for (size_t k = 0; k < arr.count; k++)
                assert_int_equal(
                    fg_buf_printf(&got, "%s: %s\n", arr.trailers[k].key, arr.trailers[k].value), 0);
            git_message_trailer_array_free(&arr);
        }
        if ((strcmp(got.ptr, cases[i].expected) == 0) != cases[i].libgit2_agrees)
            assert_int_equal(fg_buf_printf(&wrong,
                                           "case '%s': libgit2 gives [%s], git [%s], table says "
                                           "libgit2 %s\n",
                                           cases[i].name, got.ptr, cases[i].expected,
                                           cases[i].libgit2_agrees ? "agrees" : "differs"),
                             0);
    }
    if (wrong.len > 0)
        fail_msg("libgit2 is not where the table says:\n%s", (printf("%s", wrong.ptr), ""));
    fg_buf_dispose(&wrong);
    fg_buf_dispose(&got);
    git_libgit2_shutdown();
}

static void test_cs_trailers__keeps_at_most_the_limit(void **state)
{
    cs_trailers t;
    fg_buf m;
    (void)state;

    fg_buf_init(&m, FG_BUF_UNLIMITED);
    assert_int_equal(fg_buf_puts(&m, "t\n\n"), 0);
    for (int i = 0; i < CS_TRAILERS_MAX + 10; i++)
        assert_int_equal(fg_buf_printf(&m, "Cc: person%d <p%d@x>\n", i, i), 0);
    cs_trailers_init(&t);
    assert_int_equal(cs_trailers_parse(&t, m.ptr, m.len), 0);
    assert_int_equal(t.count, CS_TRAILERS_MAX);
    assert_int_equal(t.dropped, 10);
    assert_string_equal(t.items[CS_TRAILERS_MAX - 1].value, "person255 <p255@x>");
    /* a NUL ends the message, as in git */
    assert_int_equal(cs_trailers_parse(&t, "t\n\nA: b\n\0B: c\n", 15), 0);
    assert_int_equal(t.count, 1);
    assert_string_equal(t.items[0].key, "A");
    cs_trailers_dispose(&t);
    fg_buf_dispose(&m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cs_trailers__table_matches_expectations),
        cmocka_unit_test(test_cs_trailers__table_matches_git),
        cmocka_unit_test(test_cs_trailers__random_messages_match_git),
        cmocka_unit_test(test_cs_trailers__libgit2_differs_where_marked),
        cmocka_unit_test(test_cs_trailers__keeps_at_most_the_limit),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
