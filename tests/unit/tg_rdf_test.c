/* The vocabulary of DESIGN.md "The graph" as exact N-Triples lines: IRIs are the sha1s the
 * design specifies (checked against values computed outside this code), a commit with its
 * activities and persons, persons once per doc, schema:email only on request, the project node
 * with every form of clone URL, and determinism (the same input, the same bytes). */
#include "test_support.h"

#include <string.h>

#include "tg_rdf.h"

#define B       "http://forgegraph.local"
#define SHA     "7b50567bdcad8925ca1e075feb7171c12015afd1"
#define PARENT  "0123456789abcdef0123456789abcdef01234567"
#define C       "<" B "/commits/" SHA ">"
#define P       "<" B "/projects/42>"
#define RDFTYPE "<http://www.w3.org/1999/02/22-rdf-syntax-ns#type>"
#define FG(t)   "<https://w3id.org/forgegraph/ns#" t ">"
#define SC(t)   "<http://schema.org/" t ">"
#define PROV(t) "<http://www.w3.org/ns/prov#" t ">"
#define XSD(t)  "^^<http://www.w3.org/2001/XMLSchema#" t ">"
/* sha1("arnd@arndb.de"), sha1("torvalds@linux-foundation.org"): computed with Python hashlib */
#define ARND_SHA1  "52e71a616debcf88b2ccaf96aa221be74aba1001"
#define LINUS_SHA1 "e7ac07f8bf5594a442ec94ed94d6e7febe5ec784"
#define ARND       "<" B "/persons/" ARND_SHA1 ">"
#define LINUS      "<" B "/persons/" LINUS_SHA1 ">"
/* sha1(SHA + type + email) */
#define ACT_AUTHORED_IRI B "/activities/7452aefb814922d288d5fd44385b6876b57d3cdb"
#define ACT_AUTHORED     "<" ACT_AUTHORED_IRI ">"
#define ACT_COMMITTED    "<" B "/activities/da0bc9565ec61bcc4be1e4bd04a2aac658e2c94f>"
#define ACT_SIGNED       "<" B "/activities/757069818575c9b39a239b5045639aa4a8e8ad8f>"
#define AUTHOR_AT        "\"2023-02-07T17:13:12+01:00\"" XSD("dateTime")
#define COMMITTER_AT     "\"2023-03-31T16:10:04-07:00\"" XSD("dateTime")

#define ACTIVITY(iri, type, person, at)                                                            \
    iri " " RDFTYPE                                                                                \
        " " FG("Activity") " .\n" iri " " RDFTYPE " " PROV("Activity") " .\n" iri " " FG(          \
            "type") " \"" type "\" .\n" iri                                                        \
                    " " FG("commit") " " C " .\n" iri                                              \
                                     " " PROV("wasAssociatedWith") " " person " .\n" iri " " PROV( \
                                         "startedAtTime") " " at " .\n" iri                        \
                                                          " " SC("isPartOf") " " P " .\n"

static fg_proto_trailer trailers[] = {{"Signed-off-by", "Arnd Bergmann <arnd@arndb.de>"}};
static const char *parents[] = {PARENT};

static fg_proto_commit sample(void)
{
    fg_proto_commit c;

    memset(&c, 0, sizeof(c));
    c.sha = SHA;
    c.parents = parents;
    c.parent_count = 1;
    c.author = (fg_proto_person){"Arnd Bergmann", "arnd@arndb.de", "2023-02-07T17:13:12+01:00"};
    c.committer = (fg_proto_person){"Linus Torvalds", "torvalds@linux-foundation.org",
                                    "2023-03-31T16:10:04-07:00"};
    c.message = "lib: fix \"x\"\n\nSigned-off-by: Arnd Bergmann <arnd@arndb.de>\n";
    c.trailers = trailers;
    c.trailer_count = 1;
    c.insertions = 12;
    c.deletions = 3;
    c.files_changed = 2;
    return c;
}

static void test_tg_rdf__iris_are_the_specified_sha1s(void **state)
{
    char iri[TG_RDF_IRI_MAX], hash[41];

    (void)state;
    assert_int_equal(tg_rdf_person_iri(iri, hash, B, "Arnd@ArndB.DE", 13), 0);
    assert_string_equal(iri, B "/persons/" ARND_SHA1); /* lower-cased before hashing */
    assert_string_equal(hash, ARND_SHA1);
    assert_int_equal(tg_rdf_person_iri(iri, NULL, B, "", 0), 0);
    assert_string_equal(iri, B "/persons/da39a3ee5e6b4b0d3255bfef95601890afd80709");
    assert_int_equal(tg_rdf_activity_iri(iri, B, SHA, "authored-commit", "ARND@arndb.de", 13), 0);
    assert_string_equal(iri, ACT_AUTHORED_IRI);
    assert_int_equal(tg_rdf_commit_iri(iri, B "/", SHA), 0); /* a trailing '/' is ignored */
    assert_string_equal(iri, B "/commits/" SHA);
    assert_int_equal(tg_rdf_project_iri(iri, B, 42), 0);
    assert_string_equal(iri, B "/projects/42");
}

static void test_tg_rdf__bad_bases_shas_and_ids_are_refused(void **state)
{
    char iri[TG_RDF_IRI_MAX];

    (void)state;
    assert_int_equal(tg_rdf_check_base("https://graph.example.org/fg"), 0);
    assert_int_equal(tg_rdf_check_base("ftp://x"), FG_EINVALID);
    assert_int_equal(tg_rdf_check_base("http://x/a b"), FG_EINVALID);
    assert_int_equal(tg_rdf_check_base("http://x/a#"), FG_EINVALID);
    assert_int_equal(tg_rdf_commit_iri(iri, B, "7B50567BDCAD8925CA1E075FEB7171C12015AFD1"),
                     FG_EINVALID);
    assert_int_equal(tg_rdf_commit_iri(iri, B, "7b50"), FG_EINVALID);
    assert_int_equal(tg_rdf_project_iri(iri, B, 0), FG_EINVALID);
}

static void test_tg_rdf__a_commit_is_these_exact_lines(void **state)
{
    static const char expected[] = C " " RDFTYPE " " FG("Commit") " .\n" C " " FG(
        "sha") " \"" SHA "\" .\n" C
               " " FG("parent") " <" B "/commits/" PARENT "> .\n" C " " FG(
                   "authoredAt") " " AUTHOR_AT " .\n" C
                                 " " FG("committedAt") " " COMMITTER_AT " .\n" C " " FG(
                                     "message") " \"lib: fix \\\"x\\\"\\n\\nSigned-off-by: Arnd "
                                                "Bergmann "
                                                "<arnd@arndb.de>\\n\" .\n" C
                                                " " FG("insertions") " \"12\"" XSD(
                                                    "integer") " .\n" C
                                                               " " FG("deletions") " \"3\"" XSD(
                                                                   "integer") " .\n" C
                                                                              " " FG("filesChanged") " \"2\"" XSD(
                                                                                  "integer") " ."
                                                                                             "\n" C
                                                                                             " " FG("isMerge") " \"false\"" XSD(
                                                                                                 "b"
                                                                                                 "o"
                                                                                                 "o"
                                                                                                 "l"
                                                                                                 "e"
                                                                                                 "a"
                                                                                                 "n") " .\n" C
                                                                                                      " " SC(
                                                                                                          "isPartOf") " " P
                                                                                                                      " .\n"
        /* authored-commit: the person first, then the activity */
        ARND " " RDFTYPE " " SC("Person") " .\n" ARND " " FG(
            "emailSha1") " \"" ARND_SHA1 "\" .\n" ARND
                         " " SC("name") " \"Arnd Bergmann\" .\n" ACTIVITY(
                             ACT_AUTHORED, "authored-commit", ARND, AUTHOR_AT)
        /* committed-commit at the committer's time */
        LINUS " " RDFTYPE " " SC("Person") " .\n" LINUS " " FG(
            "emailSha1") " \"" LINUS_SHA1 "\" .\n" LINUS
                         " " SC("name") " \"Linus Torvalds\" .\n" ACTIVITY(
                             ACT_COMMITTED, "committed-commit", LINUS, COMMITTER_AT)
        /* signed-off-commit: Arnd's person triples are in the doc already */
        ACTIVITY(ACT_SIGNED, "signed-off-commit", ARND, AUTHOR_AT);
    fg_proto_commit c = sample();
    tg_rdf_doc doc;
    fg_buf out;

    (void)state;
    fg_buf_init(&out, 1 << 20);
    assert_int_equal(tg_rdf_doc_init(&doc, B, false, 42), 0);
    assert_int_equal(tg_rdf_put_commit(&out, &doc, &c), 0);
    assert_string_equal(out.ptr, expected);
    assert_int_equal(doc.counts.commits, 1);
    assert_int_equal(doc.counts.activities, 3);
    tg_rdf_doc_dispose(&doc);
    fg_buf_dispose(&out);
}

static void test_tg_rdf__merge_and_root_commits(void **state)
{
    static const char *two[] = {PARENT, "89abcdef0123456789abcdef0123456789abcdef"};
    fg_proto_commit c = sample();
    tg_rdf_doc doc;
    fg_buf out;

    (void)state;
    fg_buf_init(&out, 1 << 20);
    assert_int_equal(tg_rdf_doc_init(&doc, B, false, 42), 0);
    c.parents = two;
    c.parent_count = 2;
    c.is_merge = true;
    assert_int_equal(tg_rdf_put_commit(&out, &doc, &c), 0);
    assert_non_null(strstr(
        out.ptr, C " " FG("parent") " <" B "/commits/" PARENT "> .\n" C " " FG(
                     "parent") " <" B "/commits/89abcdef0123456789abcdef0123456789abcdef> .\n"));
    assert_non_null(strstr(out.ptr, C " " FG("isMerge") " \"true\"" XSD("boolean") " .\n"));
    fg_buf_clear(&out);
    c.parent_count = 0;
    assert_int_equal(tg_rdf_put_commit(&out, &doc, &c), 0);
    assert_null(strstr(out.ptr, FG("parent")));
    tg_rdf_doc_dispose(&doc);
    fg_buf_dispose(&out);
}

static void test_tg_rdf__persons_are_written_once_per_doc_and_names_added(void **state)
{
    fg_proto_commit c = sample();
    tg_rdf_doc doc;
    fg_buf out;

    (void)state;
    fg_buf_init(&out, 1 << 20);
    assert_int_equal(tg_rdf_doc_init(&doc, B, false, 42), 0);
    assert_int_equal(tg_rdf_put_commit(&out, &doc, &c), 0);
    fg_buf_clear(&out);
    c.sha = PARENT;
    c.parent_count = 0;
    c.author.name = "A. Bergmann"; /* the same email under another name */
    assert_int_equal(tg_rdf_put_commit(&out, &doc, &c), 0);
    assert_null(strstr(out.ptr, ARND " " RDFTYPE));
    assert_null(strstr(out.ptr, LINUS " " RDFTYPE));
    assert_non_null(strstr(out.ptr, ARND " " SC("name") " \"A. Bergmann\" .\n"));
    assert_null(strstr(out.ptr, "\"Arnd Bergmann\" ."));
    tg_rdf_doc_dispose(&doc);
    fg_buf_dispose(&out);
}

static void test_tg_rdf__emails_only_on_request(void **state)
{
    fg_proto_commit c = sample();
    tg_rdf_doc doc;
    fg_buf out;

    (void)state;
    fg_buf_init(&out, 1 << 20);
    assert_int_equal(tg_rdf_doc_init(&doc, B, false, 42), 0);
    assert_int_equal(tg_rdf_put_commit(&out, &doc, &c), 0);
    assert_null(strstr(out.ptr, SC("email")));
    assert_null(strstr(out.ptr, "@linux-foundation.org\""));
    tg_rdf_doc_dispose(&doc);
    fg_buf_clear(&out);
    c.author.email = "Arnd@ArndB.de";
    assert_int_equal(tg_rdf_doc_init(&doc, B, true, 42), 0);
    assert_int_equal(tg_rdf_put_commit(&out, &doc, &c), 0);
    assert_non_null(strstr(out.ptr, ARND " " SC("email") " \"Arnd@ArndB.de\" .\n"));
    assert_non_null(
        strstr(out.ptr, LINUS " " SC("email") " \"torvalds@linux-foundation.org\" .\n"));
    tg_rdf_doc_dispose(&doc);
    fg_buf_dispose(&out);
}

static void test_tg_rdf__the_same_commit_gives_the_same_bytes(void **state)
{
    fg_proto_commit c = sample();
    tg_rdf_doc a, b;
    fg_buf out_a, out_b;

    (void)state;
    fg_buf_init(&out_a, 1 << 20);
    fg_buf_init(&out_b, 1 << 20);
    assert_int_equal(tg_rdf_doc_init(&a, B, false, 42), 0);
    assert_int_equal(tg_rdf_doc_init(&b, B, false, 42), 0);
    assert_int_equal(tg_rdf_put_commit(&out_a, &a, &c), 0);
    assert_int_equal(tg_rdf_put_commit(&out_b, &b, &c), 0);
    assert_string_equal(out_a.ptr, out_b.ptr);
    tg_rdf_doc_dispose(&a);
    tg_rdf_doc_dispose(&b);
    fg_buf_dispose(&out_a);
    fg_buf_dispose(&out_b);
}

static void test_tg_rdf__messages_with_controls_and_invalid_utf8_stay_one_line(void **state)
{
    fg_proto_commit c = sample();
    tg_rdf_doc doc;
    fg_buf out;
    const char *line;

    (void)state;
    fg_buf_init(&out, 1 << 20);
    c.message = "tab\there\rCR \x01\x1b[31m red \x80\xff back\\slash \"q\"";
    c.trailer_count = 0;
    assert_int_equal(tg_rdf_doc_init(&doc, B, false, 42), 0);
    assert_int_equal(tg_rdf_put_commit(&out, &doc, &c), 0);
    line = strstr(out.ptr, C " " FG("message"));
    assert_non_null(line);
    assert_memory_equal(line,
                        C " " FG("message") " \"tab\\there\\rCR \\u0001\\u001B[31m red "
                                            "\xef\xbf\xbd\xef\xbf\xbd back\\\\slash "
                                            "\\\"q\\\"\" .\n",
                        strlen(C " " FG("message") " \"tab\\there\\rCR \\u0001\\u001B[31m red "
                                                   "\xef\xbf\xbd\xef\xbf\xbd back\\\\slash "
                                                   "\\\"q\\\"\" .\n"));
    tg_rdf_doc_dispose(&doc);
    fg_buf_dispose(&out);
}

static void test_tg_rdf__the_project_node(void **state)
{
    tg_rdf_project p = {42, FG_PROTO_FORGE_GITHUB, "torvalds/linux",
                        "https://github.com/torvalds/linux.git"};
    tg_rdf_doc doc;
    fg_buf out;

    (void)state;
    fg_buf_init(&out, 1 << 20);
    assert_int_equal(tg_rdf_doc_init(&doc, B, false, 42), 0);
    assert_int_equal(tg_rdf_put_project(&out, &doc, &p), 0);
    assert_string_equal(
        out.ptr, P
        " " RDFTYPE " " SC("SoftwareSourceCode") " .\n" P " " SC("name") " \"linux\" .\n" P " " FG(
            "forge") " \"github\" .\n" P
                     " " FG("path") " \"torvalds/linux\" .\n" P
                                    " " SC("codeRepository") " <https://github.com/torvalds/"
                                                             "linux.git> .\n");
    fg_buf_clear(&out);
    p.clone_url = NULL; /* event-log could not say: no codeRepository */
    p.forge = FG_PROTO_FORGE_GITLAB;
    p.path = "group/sub/name";
    assert_int_equal(tg_rdf_put_project(&out, &doc, &p), 0);
    assert_null(strstr(out.ptr, SC("codeRepository")));
    assert_non_null(strstr(out.ptr, P " " SC("name") " \"name\" .\n"));
    assert_non_null(strstr(out.ptr, P " " FG("forge") " \"gitlab\" .\n"));
    fg_buf_clear(&out);
    p.clone_url = "relative/path"; /* not a URL: left out, the rest stays */
    assert_int_equal(tg_rdf_put_project(&out, &doc, &p), 0);
    assert_null(strstr(out.ptr, SC("codeRepository")));
    assert_non_null(strstr(out.ptr, FG("path")));
    tg_rdf_doc_dispose(&doc);
    fg_buf_dispose(&out);
}

static void test_tg_rdf__clone_urls_become_iris(void **state)
{
    static const struct {
        const char *url;
        const char *iri; /* NULL: refused */
    } cases[] = {
        {"/srv/git/linux.git", "file:///srv/git/linux.git"},
        {"/home/me/my repo/%x?#{}", "file:///home/me/my%20repo/%25x%3F%23%7B%7D"},
        {"/tmp/caf\xc3\xa9", "file:///tmp/caf%C3%A9"},
        {"file:///srv/git/x", "file:///srv/git/x"},
        {"https://github.com/torvalds/linux.git", "https://github.com/torvalds/linux.git"},
        {"https://h/a b", "https://h/a%20b"},
        {"ssh://git@h:2222/x.git", "ssh://git@h:2222/x.git"},
        {"git@github.com:torvalds/linux.git", "ssh://git@github.com/torvalds/linux.git"},
        {"host:/abs/path.git", "ssh://host/abs/path.git"},
        {"relative/path", NULL},
        {"", NULL},
        {"host:", NULL},
    };
    fg_buf out;

    (void)state;
    fg_buf_init(&out, 4096);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        fg_buf_clear(&out);
        if (cases[i].iri == NULL) {
            assert_int_equal(tg_rdf_code_repository(&out, cases[i].url), FG_EINVALID);
            assert_int_equal(out.len, 0);
            continue;
        }
        assert_int_equal(tg_rdf_code_repository(&out, cases[i].url), 0);
        assert_string_equal(out.ptr, cases[i].iri);
    }
    fg_buf_dispose(&out);
}

static void test_tg_rdf__a_failed_commit_does_not_lose_persons(void **state)
{
    fg_proto_commit c = sample();
    tg_rdf_doc doc;
    fg_buf small, out;

    (void)state;
    fg_buf_init(&small, 3000); /* room for the commit node, not for all activities */
    fg_buf_init(&out, 1 << 20);
    assert_int_equal(tg_rdf_doc_init(&doc, B, false, 42), 0);
    assert_int_equal(tg_rdf_put_commit(&small, &doc, &c), FG_ETOOBIG);
    /* the caller drops the partial output; the next commit states the persons again */
    assert_int_equal(tg_rdf_put_commit(&out, &doc, &c), 0);
    assert_non_null(strstr(out.ptr, ARND " " RDFTYPE " " SC("Person")));
    assert_non_null(strstr(out.ptr, LINUS " " RDFTYPE " " SC("Person")));
    tg_rdf_doc_dispose(&doc);
    fg_buf_dispose(&small);
    fg_buf_dispose(&out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tg_rdf__iris_are_the_specified_sha1s),
        cmocka_unit_test(test_tg_rdf__bad_bases_shas_and_ids_are_refused),
        cmocka_unit_test(test_tg_rdf__a_commit_is_these_exact_lines),
        cmocka_unit_test(test_tg_rdf__merge_and_root_commits),
        cmocka_unit_test(test_tg_rdf__persons_are_written_once_per_doc_and_names_added),
        cmocka_unit_test(test_tg_rdf__emails_only_on_request),
        cmocka_unit_test(test_tg_rdf__the_same_commit_gives_the_same_bytes),
        cmocka_unit_test(test_tg_rdf__messages_with_controls_and_invalid_utf8_stay_one_line),
        cmocka_unit_test(test_tg_rdf__the_project_node),
        cmocka_unit_test(test_tg_rdf__clone_urls_become_iris),
        cmocka_unit_test(test_tg_rdf__a_failed_commit_does_not_lose_persons),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
