/*
 * commit-sync's mirrors without servers: URLs shown without credentials, oid sets, the state
 * file, the per-project lock, clone and fetch (forced, pruned, tags peeled) from a local
 * repository made with git, a local source's objects hard-linked rather than packed, and removal.
 */
#include "test_support.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cs_git.h"
#include "cs_mirror.h"

static char root[] = "/tmp/fg-cs-mirror-test-XXXXXX";
static char mirrors[512];

#define GIT(dir, ...)                                                                              \
    cs_git_run(NULL, NULL,                                                                         \
               (const char *const[]){"git", "-C", dir, "-c", "user.name=T", "-c",                  \
                                     "user.email=t@example.org", __VA_ARGS__, NULL})

static void rev_parse(git_oid *out, const char *dir, const char *rev)
{
    fg_buf text;

    fg_buf_init(&text, 4096);
    cs_git_run(&text, NULL, (const char *const[]){"git", "-C", dir, "rev-parse", rev, NULL});
    assert_int_equal(git_oid_fromstrn(out, text.ptr, GIT_OID_HEXSZ), 0);
    fg_buf_dispose(&text);
}

static void commit(const char *dir, const char *what)
{
    char sha[CS_GIT_SHA_LEN + 1];

    cs_git_commit_change(sha, dir, what);
}

static void test_cs_mirror__url_display_strips_credentials_and_query(void **state)
{
    static const char *const cases[][2] = {
        {"https://user:secret@example.org/ns/repo.git", "https://example.org/ns/repo.git"},
        {"https://x-access-token:ghp_abc@github.com:443/a/b.git?private_token=zz#frag",
         "https://github.com:443/a/b.git"},
        {"http://token@host/p", "http://host/p"},
        {"file:///srv/git/repo.git", "file:///srv/git/repo.git"},
        {"/srv/git/repo.git", "/srv/git/repo.git"},
        {"https://example.org/with@in/path", "https://example.org/with@in/path"},
    };
    fg_buf out;
    (void)state;

    fg_buf_init(&out, 4096);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fg_buf_clear(&out);
        assert_int_equal(cs_mirror_url_display(&out, cases[i][0]), 0);
        assert_string_equal(out.ptr, cases[i][1]);
    }
    fg_buf_dispose(&out);
}

static void test_cs_mirror__oids_sort_unique_and_search(void **state)
{
    cs_oids s, t;
    git_oid a, b, c;
    (void)state;

    assert_int_equal(git_oid_fromstr(&a, "1111111111111111111111111111111111111111"), 0);
    assert_int_equal(git_oid_fromstr(&b, "2222222222222222222222222222222222222222"), 0);
    assert_int_equal(git_oid_fromstr(&c, "3333333333333333333333333333333333333333"), 0);
    cs_oids_init(&s);
    cs_oids_init(&t);
    for (int i = 0; i < 3000; i++) /* past the first growth */
        assert_int_equal(cs_oids_add(&s, i % 2 ? &c : &a), 0);
    cs_oids_sort_unique(&s);
    assert_int_equal(s.n, 2);
    assert_true(cs_oids_contains(&s, &a));
    assert_true(cs_oids_contains(&s, &c));
    assert_false(cs_oids_contains(&s, &b));
    assert_false(cs_oids_contains(&t, &a));
    assert_int_equal(cs_oids_add(&t, &c), 0);
    assert_int_equal(cs_oids_add(&t, &a), 0);
    assert_false(cs_oids_equal(&s, &t)); /* not sorted yet */
    cs_oids_sort_unique(&t);
    assert_true(cs_oids_equal(&s, &t));
    cs_oids_dispose(&s);
    cs_oids_dispose(&t);
}

static void test_cs_mirror__state_round_trip_and_malformed_is_absent(void **state)
{
    char dir[600], path[700];
    cs_oids tips, read_back;
    git_oid a, b;
    bool found = true;
    FILE *f;
    (void)state;

    snprintf(dir, sizeof(dir), "%s/7.git", mirrors);
    assert_int_equal(mkdir(dir, 0700), 0);
    cs_oids_init(&tips);
    cs_oids_init(&read_back);
    assert_int_equal(cs_mirror_state_read(&read_back, &found, mirrors, 7), 0);
    assert_false(found);
    assert_int_equal(git_oid_fromstr(&a, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"), 0);
    assert_int_equal(git_oid_fromstr(&b, "0000000000000000000000000000000000000001"), 0);
    assert_int_equal(cs_oids_add(&tips, &a), 0);
    assert_int_equal(cs_oids_add(&tips, &b), 0);
    cs_oids_sort_unique(&tips);
    assert_int_equal(cs_mirror_state_write(mirrors, 7, &tips), 0);
    assert_int_equal(cs_mirror_state_read(&read_back, &found, mirrors, 7), 0);
    assert_true(found);
    assert_true(cs_oids_equal(&tips, &read_back));
    /* an empty set is a state too (a repository without branches) */
    tips.n = 0;
    assert_int_equal(cs_mirror_state_write(mirrors, 7, &tips), 0);
    assert_int_equal(cs_mirror_state_read(&read_back, &found, mirrors, 7), 0);
    assert_true(found);
    assert_int_equal(read_back.n, 0);
    /* a torn or foreign file only costs a full comparison */
    snprintf(path, sizeof(path), "%s/" CS_MIRROR_STATE_NAME, dir);
    assert_non_null(f = fopen(path, "w"));
    fputs("forgegraph commit-sync state 1\naaaaaaaaaaaaaaaa", f);
    fclose(f);
    assert_int_equal(cs_mirror_state_read(&read_back, &found, mirrors, 7), 0);
    assert_false(found);
    cs_oids_dispose(&tips);
    cs_oids_dispose(&read_back);
    assert_int_equal(cs_mirror_remove(mirrors, 7), 0);
}

static void test_cs_mirror__lock_excludes_a_second_holder_until_released(void **state)
{
    cs_mirror_lock *first = NULL, *second = NULL, *other = NULL;
    bool waited = true;
    (void)state;

    assert_int_equal(cs_mirror_lock_take(&first, &waited, mirrors, 11, 1000), 0);
    assert_false(waited);
    /* another project is not blocked */
    assert_int_equal(cs_mirror_lock_take(&other, &waited, mirrors, 12, 1000), 0);
    assert_false(waited);
    /* the same project is, until the deadline */
    assert_int_equal(cs_mirror_lock_take(&second, &waited, mirrors, 11, 150), FG_ETIMEOUT);
    assert_true(waited);
    assert_null(second);
    assert_non_null(strstr(fg_error_last(), "project 11"));
    cs_mirror_lock_release(first);
    assert_int_equal(cs_mirror_lock_take(&second, &waited, mirrors, 11, 1000), 0);
    assert_false(waited);
    /* removing the project while holding its lock also removes the lock file; the next taker
     * starts from a fresh one */
    assert_int_equal(cs_mirror_remove(mirrors, 11), 0);
    cs_mirror_lock_release(second);
    assert_int_equal(cs_mirror_lock_take(&first, &waited, mirrors, 11, 1000), 0);
    cs_mirror_lock_release(first);
    cs_mirror_lock_release(other);
    cs_mirror_lock_release(NULL);
}

static void test_cs_mirror__clone_then_fetch_forced_and_pruned(void **state)
{
    char src[600], path[700];
    cs_remote remote = {src, "git", NULL};
    git_repository *repo = NULL;
    cs_oids tips;
    git_oid main_tip, old_tip, feature_tip, v1;
    bool cloned = false;
    struct stat st;
    (void)state;

    snprintf(src, sizeof(src), "%s/src", root);
    cs_git_run(NULL, NULL, (const char *const[]){"git", "init", "-q", "-b", "main", src, NULL});
    commit(src, "one");
    commit(src, "two");
    GIT(src, "tag", "-a", "v1", "-m", "annotated");
    GIT(src, "checkout", "-q", "-b", "feature/nested");
    commit(src, "three");
    rev_parse(&feature_tip, src, "HEAD");
    GIT(src, "checkout", "-q", "main");
    commit(src, "four");
    rev_parse(&old_tip, src, "HEAD");
    rev_parse(&v1, src, "v1^{commit}");
    cs_oids_init(&tips);

    assert_int_equal(cs_mirror_update(&repo, &cloned, mirrors, 21, &remote), 0);
    assert_true(cloned);
    assert_true(git_repository_is_bare(repo));
    assert_int_equal(cs_mirror_tips(&tips, repo), 0);
    assert_int_equal(tips.n, 3); /* main, feature/nested, v1 peeled to its commit */
    assert_true(cs_oids_contains(&tips, &old_tip));
    assert_true(cs_oids_contains(&tips, &feature_tip));
    assert_true(cs_oids_contains(&tips, &v1));
    git_repository_free(repo);
    snprintf(path, sizeof(path), "%s/21.git.partial", mirrors);
    assert_int_not_equal(stat(path, &st), 0);

    /* force push on main, a deleted branch and tag: the fetch follows, and prunes */
    GIT(src, "reset", "-q", "--hard", "HEAD~1");
    commit(src, "four rewritten");
    rev_parse(&main_tip, src, "HEAD");
    GIT(src, "branch", "-q", "-D", "feature/nested");
    GIT(src, "tag", "-d", "v1");
    assert_int_equal(cs_mirror_update(&repo, &cloned, mirrors, 21, &remote), 0);
    assert_false(cloned);
    assert_int_equal(cs_mirror_tips(&tips, repo), 0);
    assert_int_equal(tips.n, 1);
    assert_true(cs_oids_contains(&tips, &main_tip));
    git_repository_free(repo);

    /* file:// works as well as a plain path */
    snprintf(path, sizeof(path), "file://%s", src);
    remote.url = path;
    assert_int_equal(cs_mirror_update(&repo, &cloned, mirrors, 22, &remote), 0);
    assert_true(cloned);
    git_repository_free(repo);
    cs_oids_dispose(&tips);
    assert_int_equal(cs_mirror_remove(mirrors, 21), 0);
    assert_int_equal(cs_mirror_remove(mirrors, 22), 0);
    snprintf(path, sizeof(path), "%s/21.git", mirrors);
    assert_int_not_equal(stat(path, &st), 0);
}

/* The inode of dir/objects/<sha as a loose object path>, or 0 when there is none. */
static ino_t loose_inode(const char *objects, const git_oid *oid)
{
    char hex[GIT_OID_HEXSZ + 1], path[800];
    struct stat st;

    git_oid_tostr(hex, sizeof(hex), oid);
    snprintf(path, sizeof(path), "%s/%.2s/%s", objects, hex, hex + 2);
    return stat(path, &st) == 0 ? st.st_ino : 0;
}

/* Names of the files in dir ending with suffix, sorted, one per line, into out. */
static void list_files(fg_buf *out, const char *dir, const char *suffix)
{
    struct dirent **names = NULL;
    int n = scandir(dir, &names, NULL, alphasort);

    fg_buf_clear(out);
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]->d_name);
        if (len > strlen(suffix) && strcmp(names[i]->d_name + len - strlen(suffix), suffix) == 0)
            assert_int_equal(fg_buf_printf(out, "%s\n", names[i]->d_name), 0);
        free(names[i]);
    }
    free(names);
}

/* A local source is mirrored as git clone --local does it: its packs and loose objects are
 * hard-linked into the mirror (libgit2's local transport would re-pack them, a minute and a half
 * for 100,000 commits), and a later fetch links the new objects rather than making a pack. */
static void test_cs_mirror__a_local_source_s_objects_are_linked_not_packed(void **state)
{
    char src[600], src_objects[700], mirror_objects[700], path[800];
    cs_remote remote = {src, "git", NULL};
    git_repository *repo = NULL;
    git_oid packed, loose, later;
    cs_oids tips;
    bool cloned = false;
    fg_buf src_packs, mirror_packs;
    struct stat a, b;
    (void)state;

    snprintf(src, sizeof(src), "%s/linked", root);
    snprintf(src_objects, sizeof(src_objects), "%s/.git/objects", src);
    snprintf(mirror_objects, sizeof(mirror_objects), "%s/31.git/objects", mirrors);
    fg_buf_init(&src_packs, 4096);
    fg_buf_init(&mirror_packs, 4096);
    cs_oids_init(&tips);
    cs_git_run(NULL, NULL, (const char *const[]){"git", "init", "-q", "-b", "main", src, NULL});
    commit(src, "one");
    commit(src, "two");
    rev_parse(&packed, src, "HEAD");
    GIT(src, "repack", "-adq");
    assert_int_equal(loose_inode(src_objects, &packed), 0); /* only in the pack now */
    commit(src, "three");
    rev_parse(&loose, src, "HEAD");
    assert_int_not_equal(loose_inode(src_objects, &loose), 0);

    assert_int_equal(cs_mirror_update(&repo, &cloned, mirrors, 31, &remote), 0);
    assert_true(cloned);
    assert_int_equal(cs_mirror_tips(&tips, repo), 0);
    assert_true(tips.n == 1 && cs_oids_contains(&tips, &loose));
    git_repository_free(repo);
    /* the same files: the source's pack (and index), and its loose commit */
    snprintf(path, sizeof(path), "%s/pack", src_objects);
    list_files(&src_packs, path, ".pack");
    snprintf(path, sizeof(path), "%s/pack", mirror_objects);
    list_files(&mirror_packs, path, ".pack");
    assert_true(src_packs.len > 0);
    assert_string_equal(mirror_packs.ptr, src_packs.ptr);
    snprintf(path, sizeof(path), "%s/pack/%.*s", src_objects, (int)strcspn(src_packs.ptr, "\n"),
             src_packs.ptr);
    assert_int_equal(stat(path, &a), 0);
    snprintf(path, sizeof(path), "%s/pack/%.*s", mirror_objects, (int)strcspn(src_packs.ptr, "\n"),
             src_packs.ptr);
    assert_int_equal(stat(path, &b), 0);
    assert_true(a.st_ino == b.st_ino && a.st_dev == b.st_dev);
    assert_int_equal(loose_inode(mirror_objects, &loose), loose_inode(src_objects, &loose));

    /* a new commit: linked too, and the fetch made no pack of its own */
    commit(src, "four");
    rev_parse(&later, src, "HEAD");
    assert_int_equal(cs_mirror_update(&repo, &cloned, mirrors, 31, &remote), 0);
    assert_false(cloned);
    assert_int_equal(cs_mirror_tips(&tips, repo), 0);
    assert_true(tips.n == 1 && cs_oids_contains(&tips, &later));
    git_repository_free(repo);
    assert_int_equal(loose_inode(mirror_objects, &later), loose_inode(src_objects, &later));
    snprintf(path, sizeof(path), "%s/pack", mirror_objects);
    list_files(&mirror_packs, path, ".pack");
    assert_string_equal(mirror_packs.ptr, src_packs.ptr);

    cs_oids_dispose(&tips);
    fg_buf_dispose(&src_packs);
    fg_buf_dispose(&mirror_packs);
    assert_int_equal(cs_mirror_remove(mirrors, 31), 0);
}

static void test_cs_mirror__unreachable_remotes_are_unavailable_without_credentials(void **state)
{
    cs_remote missing = {"/nonexistent/forgegraph/repo.git", "git", NULL};
    cs_remote refused = {"http://someone:hunter2-pw@127.0.0.1:1/ns/repo.git", "git",
                         "tok-should-never-show"};
    git_repository *repo = NULL;
    bool cloned = true;
    struct stat st;
    char path[700];
    (void)state;

    assert_int_equal(cs_mirror_update(&repo, &cloned, mirrors, 31, &missing), FG_EUNAVAILABLE);
    assert_null(repo);
    assert_non_null(strstr(fg_error_last(), "project 31: cannot fetch /nonexistent/forgegraph"));
    assert_int_equal(cs_mirror_update(&repo, &cloned, mirrors, 32, &refused), FG_EUNAVAILABLE);
    assert_non_null(
        strstr(fg_error_last(), "project 32: cannot fetch http://127.0.0.1:1/ns/repo.git"));
    assert_null(strstr(fg_error_last(), "hunter2-pw"));
    assert_null(strstr(fg_error_last(), "someone"));
    assert_null(strstr(fg_error_last(), "tok-should-never-show"));
    /* no half mirror is left behind */
    snprintf(path, sizeof(path), "%s/32.git", mirrors);
    assert_int_not_equal(stat(path, &st), 0);
    snprintf(path, sizeof(path), "%s/32.git.partial", mirrors);
    assert_int_not_equal(stat(path, &st), 0);
}

static int set_up(void **state)
{
    (void)state;
    if (mkdtemp(root) == NULL)
        return -1;
    snprintf(mirrors, sizeof(mirrors), "%s/mirrors", root);
    git_libgit2_init();
    return mkdir(mirrors, 0700);
}

static int tear_down(void **state)
{
    (void)state;
    git_libgit2_shutdown();
    return fg_test_remove_tree(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cs_mirror__url_display_strips_credentials_and_query),
        cmocka_unit_test(test_cs_mirror__oids_sort_unique_and_search),
        cmocka_unit_test(test_cs_mirror__state_round_trip_and_malformed_is_absent),
        cmocka_unit_test(test_cs_mirror__lock_excludes_a_second_holder_until_released),
        cmocka_unit_test(test_cs_mirror__clone_then_fetch_forced_and_pruned),
        cmocka_unit_test(test_cs_mirror__a_local_source_s_objects_are_linked_not_packed),
        cmocka_unit_test(test_cs_mirror__unreachable_remotes_are_unavailable_without_credentials),
    };

    return cmocka_run_group_tests(tests, set_up, tear_down);
}
