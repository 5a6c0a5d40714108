/* Activities from commits: authored always, committed only when the emails differ (ASCII case
 * ignored), one per trailer through the alias table (any case), `Name <email>` values only
 * (malformed ones skipped and counted), one per (type, email), in message order. */
#include "test_support.h"

#include <stdio.h>
#include <string.h>

#include "tg_activity.h"

typedef struct {
    tg_activity acts[TG_ACTIVITY_MAX];
    size_t n, skipped;
} derived;

static fg_proto_commit commit_with(fg_proto_trailer *trailers, size_t n, const char *author_email,
                                   const char *committer_email)
{
    fg_proto_commit c;

    memset(&c, 0, sizeof(c));
    c.sha = "7b50567bdcad8925ca1e075feb7171c12015afd1";
    c.author = (fg_proto_person){"Arnd Bergmann", author_email, "2023-02-07T17:13:12+01:00"};
    c.committer = (fg_proto_person){"Linus Torvalds", committer_email, "2023-03-31T16:10:04-07:00"};
    c.message = "x";
    c.trailers = trailers;
    c.trailer_count = n;
    return c;
}

static void derive(derived *d, const fg_proto_commit *c)
{
    tg_activity_derive(d->acts, &d->n, &d->skipped, c);
}

/* "type email" of activity i, email as written. */
static const char *describe(const derived *d, size_t i)
{
    static char text[512];

    snprintf(text, sizeof(text), "%s %.*s", tg_activity_type_name(d->acts[i].type),
             (int)d->acts[i].email_len, d->acts[i].email);
    return text;
}

static void test_tg_activity__authored_always_committed_when_emails_differ(void **state)
{
    fg_proto_commit same = commit_with(NULL, 0, "Arnd@ArndB.de", "arnd@arndb.DE");
    fg_proto_commit other = commit_with(NULL, 0, "arnd@arndb.de", "torvalds@linux-foundation.org");
    derived d;

    (void)state;
    derive(&d, &same);
    assert_int_equal(d.n, 1);
    assert_string_equal(describe(&d, 0), "authored-commit Arnd@ArndB.de");
    assert_string_equal(d.acts[0].started_at, "2023-02-07T17:13:12+01:00");

    derive(&d, &other);
    assert_int_equal(d.n, 2);
    assert_string_equal(describe(&d, 1), "committed-commit torvalds@linux-foundation.org");
    assert_string_equal(d.acts[1].started_at, "2023-03-31T16:10:04-07:00"); /* committer time */
    assert_int_equal(d.acts[1].name_len, strlen("Linus Torvalds"));
}

static void test_tg_activity__every_alias_maps_to_its_type_in_any_case(void **state)
{
    static const struct {
        const char *key;
        const char *type;
    } cases[] = {
        {"Signed-off-by", "signed-off-commit"},
        {"SIGNED-OFF-BY", "signed-off-commit"},
        {"signed-off-by", "signed-off-commit"},
        {"Reviewed-by", "reviewed-commit"},
        {"Tested-by", "tested-commit"},
        {"Co-authored-by", "co-authored-commit"},
        {"co-Authored-BY", "co-authored-commit"},
        {"Reported-by", "reported-commit"},
        {"Acked-by", "approved-commit"},
        {"Approved-by", "approved-commit"},
        {"Helped-by", "influenced-commit"},
        {"Suggested-by", "influenced-commit"},
        {"Mentored-by", "influenced-commit"},
        {"Inspired-by", "influenced-commit"},
        {"Cc", "informed-commit"},
        {"CC", "informed-commit"},
        {"Informed-by", "informed-commit"},
        {"Resolved-by", "resolved-commit"},
        {" Tested-by ", "tested-commit"},
    };
    tg_activity_type t;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(tg_activity_type_of_trailer(&t, cases[i].key), 0);
        assert_string_equal(tg_activity_type_name(t), cases[i].type);
    }
    assert_int_equal(tg_activity_type_of_trailer(&t, "Fixes"), FG_ENOTFOUND);
    assert_int_equal(tg_activity_type_of_trailer(&t, "Link"), FG_ENOTFOUND);
    assert_int_equal(tg_activity_type_of_trailer(&t, "Signed-off"), FG_ENOTFOUND);
    assert_int_equal(tg_activity_type_of_trailer(&t, "Co-developed-by"), FG_ENOTFOUND);
}

static void test_tg_activity__values_must_read_name_and_email(void **state)
{
    static const struct {
        const char *value;
        const char *name; /* NULL: refused */
        const char *email;
    } cases[] = {
        {"Arnd Bergmann <arnd@arndb.de>", "Arnd Bergmann", "arnd@arndb.de"},
        {"  Arnd Bergmann   <arnd@arndb.de>  ", "Arnd Bergmann", "arnd@arndb.de"},
        {"<stable@vger.kernel.org>", "", "stable@vger.kernel.org"},
        {"J. \"Jo\" O'Neil <j@x.org>", "J. \"Jo\" O'Neil", "j@x.org"},
        {"A <b> <c@d>", "A <b>", "c@d"},
        {"Jos\xc3\xa9 <jose@x.es>", "Jos\xc3\xa9", "jose@x.es"},
        {"Arnd Bergmann", NULL, NULL},
        {"arnd@arndb.de", NULL, NULL},
        {"Arnd <>", NULL, NULL},
        {"Arnd <arnd at arndb.de>", NULL, NULL},
        {"Arnd <arnd@arndb.de> # v5.10", NULL, NULL},
        {"Arnd arnd@arndb.de>", NULL, NULL},
        {"Arnd <a\tb@c>", NULL, NULL},
        {"", NULL, NULL},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *name = NULL, *email = NULL;
        size_t name_len = 0, email_len = 0;
        int rc = tg_activity_parse_person(&name, &name_len, &email, &email_len, cases[i].value);
        if (cases[i].name == NULL) {
            assert_int_equal(rc, FG_EINVALID);
            continue;
        }
        assert_int_equal(rc, 0);
        assert_int_equal(name_len, strlen(cases[i].name));
        assert_memory_equal(name, cases[i].name, name_len);
        assert_int_equal(email_len, strlen(cases[i].email));
        assert_memory_equal(email, cases[i].email, email_len);
    }
}

static void test_tg_activity__trailers_give_activities_in_message_order(void **state)
{
    fg_proto_trailer t[] = {
        {"Signed-off-by", "Arnd Bergmann <arnd@arndb.de>"},
        {"Fixes", "0123456789ab (\"lib: x\")"},
        {"Reviewed-by", "Kees Cook <keescook@chromium.org>"},
        {"Link", "https://lore.kernel.org/r/1"},
        {"acked-by", "Jane <jane@x.org>"},
        {"Cc", "<stable@vger.kernel.org>"},
    };
    fg_proto_commit c = commit_with(t, 6, "arnd@arndb.de", "arnd@arndb.de");
    derived d;

    (void)state;
    derive(&d, &c);
    assert_int_equal(d.n, 5);
    assert_int_equal(d.skipped, 0);
    assert_string_equal(describe(&d, 0), "authored-commit arnd@arndb.de");
    assert_string_equal(describe(&d, 1), "signed-off-commit arnd@arndb.de");
    assert_string_equal(describe(&d, 2), "reviewed-commit keescook@chromium.org");
    assert_string_equal(describe(&d, 3), "approved-commit jane@x.org");
    assert_string_equal(describe(&d, 4), "informed-commit stable@vger.kernel.org");
    for (size_t i = 1; i < d.n; i++) /* trailer activities start at the author time */
        assert_string_equal(d.acts[i].started_at, "2023-02-07T17:13:12+01:00");
}

static void test_tg_activity__one_activity_per_type_and_email(void **state)
{
    fg_proto_trailer t[] = {
        {"Signed-off-by", "Arnd Bergmann <arnd@arndb.de>"},
        {"Signed-off-by", "Arnd B. <ARND@arndb.de>"}, /* same email, other case and name */
        {"signed-off-by", "Linus <torvalds@linux-foundation.org>"},
        {"Acked-by", "Arnd <arnd@arndb.de>"},       /* same email, other type */
        {"Approved-by", "Arnd <Arnd@ArndB.de>"},    /* alias of the same type */
        {"Co-authored-by", "Arnd <arnd@arndb.de>"}, /* the author too: still counted */
    };
    fg_proto_commit c = commit_with(t, 6, "arnd@arndb.de", "arnd@arndb.de");
    derived d;

    (void)state;
    derive(&d, &c);
    assert_int_equal(d.n, 5);
    assert_string_equal(describe(&d, 0), "authored-commit arnd@arndb.de");
    assert_string_equal(describe(&d, 1), "signed-off-commit arnd@arndb.de");
    assert_int_equal(d.acts[1].name_len, strlen("Arnd Bergmann")); /* the first one wins */
    assert_string_equal(describe(&d, 2), "signed-off-commit torvalds@linux-foundation.org");
    assert_string_equal(describe(&d, 3), "approved-commit arnd@arndb.de");
    assert_string_equal(describe(&d, 4), "co-authored-commit arnd@arndb.de");
}

static void test_tg_activity__malformed_values_are_skipped_and_counted(void **state)
{
    fg_proto_trailer t[] = {
        {"Signed-off-by", "Arnd Bergmann"},
        {"Reviewed-by", "someone@example.com"},
        {"Tested-by", "Kees Cook <kees@x.org>"},
        {"Fixes", "not a person, not counted"},
    };
    fg_proto_commit c = commit_with(t, 4, "", "");
    derived d;

    (void)state;
    derive(&d, &c);
    assert_int_equal(d.skipped, 2);
    assert_int_equal(d.n, 2);
    assert_string_equal(describe(&d, 0), "authored-commit "); /* an empty email is an email */
    assert_string_equal(describe(&d, 1), "tested-commit kees@x.org");
}

static void test_tg_activity__emails_compare_in_ascii_case_only(void **state)
{
    (void)state;
    assert_true(tg_activity_email_equal("A@B.C", 5, "a@b.c", 5));
    assert_false(tg_activity_email_equal("a@b.c", 5, "a@b.cd", 6));
    /* non-ASCII letters are not folded (DESIGN.md: lower-cased in ASCII) */
    assert_false(tg_activity_email_equal("\xc3\x89@x", 4, "\xc3\xa9@x", 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tg_activity__authored_always_committed_when_emails_differ),
        cmocka_unit_test(test_tg_activity__every_alias_maps_to_its_type_in_any_case),
        cmocka_unit_test(test_tg_activity__values_must_read_name_and_email),
        cmocka_unit_test(test_tg_activity__trailers_give_activities_in_message_order),
        cmocka_unit_test(test_tg_activity__one_activity_per_type_and_email),
        cmocka_unit_test(test_tg_activity__malformed_values_are_skipped_and_counted),
        cmocka_unit_test(test_tg_activity__emails_compare_in_ascii_case_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
