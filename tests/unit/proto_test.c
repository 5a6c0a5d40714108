/* fg/proto: the golden fixtures of tests/fixtures/messages (the same ones proto_schemas_test.py
 * runs through the JSON Schemas), builders for every category, the commit body, and garbage. */
#include "test_support.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg/proto.h"

#define FIXTURES FG_SOURCE_DIR "/tests/fixtures/messages"

/* ---- helpers ---- */

static void read_file(fg_buf *out, const char *path)
{
    char chunk[65536];
    size_t n;
    FILE *f = fopen(path, "rb");

    if (f == NULL)
        fail_msg("cannot open %s", path);
    fg_buf_init(out, FG_PROTO_MESSAGE_MAX);
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        assert_int_equal(fg_buf_put(out, chunk, n), 0);
    fclose(f);
}

typedef void (*fixture_fn)(const char *name, const fg_buf *data);

static size_t each_fixture(const char *kind, fixture_fn fn)
{
    char path[1024];
    struct dirent *e;
    size_t count = 0;
    DIR *dir;

    snprintf(path, sizeof(path), "%s/%s", FIXTURES, kind);
    dir = opendir(path);
    if (dir == NULL)
        fail_msg("cannot list %s", path);
    while ((e = readdir(dir)) != NULL) {
        fg_buf data;
        size_t len = strlen(e->d_name);
        if (len < 6 || strcmp(e->d_name + len - 5, ".json") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s/%s", FIXTURES, kind, e->d_name);
        read_file(&data, path);
        fn(e->d_name, &data);
        fg_buf_dispose(&data);
        count++;
    }
    closedir(dir);
    return count;
}

/* "events-status-change-to-failure.json" starts with the dashed lower-case category name. */
static bool named_for(const char *file, fg_proto_category category)
{
    char dashed[64];
    size_t i = 0;

    for (const char *p = fg_proto_category_name(category); *p && i + 2 < sizeof(dashed); p++)
        dashed[i++] = *p == '_' ? '-' : (char)(*p - 'A' + 'a');
    dashed[i++] = '-';
    dashed[i] = '\0';
    return strncmp(file, dashed, i) == 0;
}

static int parse_text(fg_proto_msg *msg, const char *text)
{
    return fg_proto_msg_parse(msg, text, strlen(text));
}

/* Serialises msg, parses the text back into out, and checks both say the same. */
static void round_trip(fg_proto_msg *out, fg_proto_msg *msg)
{
    fg_buf text;

    fg_buf_init(&text, FG_PROTO_MESSAGE_MAX);
    if (fg_proto_msg_serialise(&text, msg) < 0)
        fail_msg("serialise: %s", fg_error_last());
    fg_proto_msg_init(out);
    if (fg_proto_msg_parse(out, text.ptr, text.len) < 0)
        fail_msg("re-parse: %s\n%s", fg_error_last(), text.ptr);
    assert_true(json_object_equal(msg->root, out->root));
    assert_string_equal(out->id, msg->id);
    assert_int_equal(out->category, msg->category);
    assert_int_equal(out->sub_category, msg->sub_category);
    assert_int_equal(out->has_project, msg->has_project);
    fg_buf_dispose(&text);
}

/* ---- fixtures ---- */

static void good_fixture(const char *name, const fg_buf *data)
{
    fg_proto_msg msg, again;

    fg_proto_msg_init(&msg);
    if (fg_proto_msg_parse(&msg, data->ptr, data->len) < 0)
        fail_msg("good/%s refused: %s", name, fg_error_last());
    if (!named_for(name, msg.category))
        fail_msg("good/%s holds a %s", name, fg_proto_category_name(msg.category));
    assert_non_null(msg.id);
    assert_non_null(msg.occurred_at);
    round_trip(&again, &msg);
    fg_proto_msg_dispose(&again);
    fg_proto_msg_dispose(&msg);
}

static void test_proto__good_fixtures_parse_and_round_trip(void **state)
{
    (void)state;
    assert_true(each_fixture("good", good_fixture) >= FG_PROTO_CATEGORY_COUNT);
}

/* Every bad fixture and the part of the reason that names what is wrong with it. */
static const struct {
    const char *file;
    const char *reason;
} bad_reasons[] = {
    {"awaiting-generation-body-extra-field", "events[0].body.project: unexpected field"},
    {"awaiting-generation-missing-body", "events[1].body: missing"},
    {"clean-up-all-false", "all: must be true"},
    {"clean-up-events-and-all", "all: not allowed together with events"},
    {"clean-up-neither", "events: missing"},
    {"clean-up-request-events-not-array", "events: not an array"},
    {"clean-up-request-project-id-too-big", "project.id: out of range"},
    {"commit-sync-known-bad-sha", "known[1]: not a 40-hex sha"},
    {"commit-sync-missing-known", "known: missing"},
    {"commit-sync-request-extra-field", "known: unexpected field"},
    {"commit-sync-request-missing-project", "project: missing"},
    {"commit-sync-sent-at-offset", "sentAt: not an RFC 3339 UTC timestamp"},
    {"commit-sync-too-many-known", "known: more than 50 items"},
    {"creation-author-time-without-offset", "commits[0].author.at: not an RFC 3339 timestamp"},
    {"creation-commit-extra-field", "commits[0].tree: unexpected field"},
    {"creation-empty-commits", "commits: empty"},
    {"creation-empty-without-sync-complete", "commits: empty (allowed only with syncComplete"},
    {"creation-empty-trailer-key", "commits[0].trailers[1].key: empty"},
    {"creation-is-merge-string", "commits[0].isMerge: not a boolean"},
    {"creation-message-too-long", "commits[0].message: longer than 65536 characters"},
    {"creation-missing-author-email", "commits[0].author.email: missing"},
    {"creation-negative-insertions", "commits[3].files[0].insertions: out of range"},
    {"creation-nul-in-message", "commits[0].message: contains U+0000"},
    {"creation-sha-trailing-newline", "commits[0].sha: not a 40-hex sha"},
    {"creation-sync-sent-at-without-sync-complete",
     "syncSentAt: allowed only with syncComplete: true"},
    {"creation-uppercase-parent-sha", "commits[1].parents[1]: not a 40-hex sha"},
    {"envelope-category-not-string", "category: not a string"},
    {"envelope-empty", "not a JSON object"},
    {"envelope-extra-property", "priority: unexpected field"},
    {"envelope-invalid-utf8", "invalid UTF-8"},
    {"envelope-lone-surrogate", "lone high surrogate"},
    {"envelope-missing-id", "id: missing"},
    {"envelope-nan", "not valid JSON: unexpected character"},
    {"envelope-not-an-object", "not a JSON object"},
    {"envelope-occurred-at-february-30", "occurredAt: not an RFC 3339 UTC timestamp"},
    {"envelope-occurred-at-lower-case-z", "occurredAt: not an RFC 3339 UTC timestamp"},
    {"envelope-occurred-at-offset", "occurredAt: not an RFC 3339 UTC timestamp"},
    {"envelope-overlong-utf8", "invalid UTF-8"},
    {"envelope-single-quotes", "member name expected"},
    {"envelope-trailing-garbage", "trailing characters"},
    {"envelope-truncated", "not valid JSON"},
    {"envelope-unknown-category", "category: 'MEMBERS_SYNC' is not a category"},
    {"envelope-uppercase-uuid", "id: not a lower-case UUID"},
    {"events-status-change-all-events-to-new-with-project", "project: unexpected field"},
    {"events-status-change-bad-sub-category", "subCategory: 'RollbackToNEW' is not a sub-category"},
    {"events-status-change-event-extra-field", "events[0].status: unexpected field"},
    {"events-status-change-events-not-objects", "events[0]: not an object"},
    {"events-status-change-fourth-sha-bad", "events[3].sha: not a 40-hex sha"},
    {"events-status-change-missing-sub-category", "subCategory: missing"},
    {"events-status-change-payload-on-rollback", "payload: unexpected field"},
    {"events-status-change-processing-time-beyond-int64", "processingTime: out of range"},
    {"events-status-change-processing-time-fraction", "processingTime: not an integer"},
    {"events-status-change-processing-time-huge", "processingTime: not an integer"},
    {"events-status-change-processing-time-string", "processingTime: not an integer"},
    {"events-status-change-project-events-to-new-without-project", "project: missing"},
    {"events-status-change-to-failure-bad-status",
     "newStatus: 'TRIPLES_STORE' is not a failure status"},
    {"events-status-change-to-failure-delay-non-recoverable",
     "executionDelay: not allowed with a non-recoverable newStatus"},
    {"events-status-change-to-failure-empty-message", "message: empty"},
    {"events-status-change-to-triples-generated-missing-payload", "payload: missing"},
    {"forge-event-deep-payload", "nested deeper than 32"},
    {"forge-event-missing-delivery-id", "deliveryId: missing"},
    {"forge-event-payload-not-object", "payload: not an object"},
    {"forge-event-unknown-event", "event: 'push' is not a forge event"},
    {"global-commit-sync-latest-with-zero-count", "latest: not allowed when count is 0"},
    {"global-commit-sync-missing-latest", "latest: missing"},
    {"global-commit-sync-negative-count", "count: out of range"},
    {"global-commit-sync-request-project-path-no-namespace", "project.path: not a project path"},
    {"member-sync-project-id-zero", "project.id: out of range"},
    {"member-sync-project-missing-forge", "project.forge: missing"},
    {"project-removed-project-extra-field", "project.url: unexpected field"},
    {"project-removed-project-id-string", "project.id: not an integer"},
    {"project-sync-unknown-forge", "project.forge: 'bitbucket' is not a forge"},
    {"subscription-bad-service", "service: not a service name"},
    {"subscription-empty-capacity", "capacity: empty"},
    {"subscription-negative-in-flight", "inFlight.AWAITING_GENERATION: out of range"},
    {"subscription-unknown-capacity-category", "capacity.GENERATION: not a category"},
    {"subscription-with-project", "project: unexpected field"},
    {"triples-generated-bad-base64", "payload: not base64"},
    {"triples-generated-empty-events", "events: empty"},
};

static void bad_fixture(const char *name, const fg_buf *data)
{
    const size_t n = sizeof(bad_reasons) / sizeof(bad_reasons[0]);
    const char *expected = NULL;
    fg_proto_msg msg;
    int rc;

    for (size_t i = 0; i < n; i++) {
        if (strncmp(name, bad_reasons[i].file, strlen(bad_reasons[i].file)) == 0 &&
            strcmp(name + strlen(bad_reasons[i].file), ".json") == 0)
            expected = bad_reasons[i].reason;
    }
    if (expected == NULL)
        fail_msg("bad/%s has no expected reason in proto_test.c", name);
    fg_proto_msg_init(&msg);
    rc = fg_proto_msg_parse(&msg, data->ptr, data->len);
    if (rc != FG_EINVALID)
        fail_msg("bad/%s: parse returned %d, not FG_EINVALID", name, rc);
    assert_null(msg.root);
    if (strstr(fg_error_last(), expected) == NULL)
        fail_msg("bad/%s: reason \"%s\" does not say \"%s\"", name, fg_error_last(), expected);
}

static void test_proto__bad_fixtures_are_refused_naming_the_field(void **state)
{
    (void)state;
    /* every listed fixture exists, and every fixture is listed (bad_fixture fails otherwise) */
    assert_int_equal(each_fixture("bad", bad_fixture),
                     sizeof(bad_reasons) / sizeof(bad_reasons[0]));
}

/* ---- building ---- */

static const fg_proto_project project = {42, FG_PROTO_FORGE_GITHUB, "torvalds/linux"};
static const char sha_a[] = "7b50567bdcad8925ca1e075feb7171c12015afd1";
static const char sha_b[] = "0123456789abcdef0123456789abcdef01234567";
static const char payload[] = "H4sIAAAAAAAAA8vPTgEAJxpdNAQAAAA=";

static fg_proto_commit sample_commit(void)
{
    static const char *parents[] = {"0123456789abcdef0123456789abcdef01234567"};
    static fg_proto_trailer trailers[] = {
        {"Signed-off-by", "Arnd Bergmann <arnd@arndb.de>"},
        {"Co-authored-by", "Zoë Ångström <zoe@example.se>"},
    };
    static fg_proto_file files[] = {{"lib/x.c", 10, 3, false}, {"logo.png", 0, 0, true}};
    fg_proto_commit c = {
        .sha = sha_a,
        .parents = parents,
        .parent_count = 1,
        .author = {"Arnd Bergmann", "arnd@arndb.de", "2023-02-07T17:13:12+01:00"},
        .committer = {"Linus Torvalds", "torvalds@linux-foundation.org",
                      "2023-03-31T16:10:04-07:00"},
        .message = "lib: fix x\n\nSigned-off-by: Arnd Bergmann <arnd@arndb.de>\n",
        .trailers = trailers,
        .trailer_count = 2,
        .insertions = 10,
        .deletions = 3,
        .files_changed = 2,
        .files = files,
        .file_count = 2,
    };
    return c;
}

static void must(int rc)
{
    if (rc < 0)
        fail_msg("%s", fg_error_last());
}

static void build_fields(fg_proto_msg *msg, fg_proto_category category, fg_proto_sub_category sub)
{
    fg_proto_commit commit = sample_commit();
    struct json_object *obj = NULL;

    switch (category) {
    case FG_PROTO_COMMIT_SYNC:
        must(fg_proto_msg_append(msg, "known", json_object_new_string(sha_a)));
        must(fg_proto_msg_set_string(msg, "lastSynced", "2024-03-05T09:00:00Z"));
        break;
    case FG_PROTO_GLOBAL_COMMIT_SYNC:
        must(fg_proto_msg_set_int(msg, "count", 3));
        must(fg_proto_msg_set_string(msg, "latest", sha_a));
        break;
    case FG_PROTO_CREATION:
        must(fg_proto_commit_build(&obj, &commit));
        must(fg_proto_msg_append(msg, "commits", obj));
        break;
    case FG_PROTO_AWAITING_GENERATION:
        must(fg_proto_commit_build(&obj, &commit));
        {
            struct json_object *event = json_object_new_object();
            json_object_object_add(event, "sha", json_object_new_string(sha_a));
            json_object_object_add(event, "body", obj);
            must(fg_proto_msg_append(msg, "events", event));
        }
        break;
    case FG_PROTO_TRIPLES_GENERATED:
        must(fg_proto_msg_add_event(msg, sha_a));
        must(fg_proto_msg_set_string(msg, "payload", payload));
        break;
    case FG_PROTO_CLEAN_UP:
        must(fg_proto_msg_set_bool(msg, "all", true));
        break;
    case FG_PROTO_CLEAN_UP_REQUEST:
        must(fg_proto_msg_add_event(msg, sha_b));
        break;
    case FG_PROTO_FORGE_EVENT:
        must(fg_proto_msg_set_string(msg, "event", "issues"));
        must(fg_proto_msg_set_string(msg, "action", "opened"));
        must(fg_proto_msg_set_string(msg, "deliveryId", "72d3162e-cc78-11e3-81ab-4c9367dc0958"));
        must(fg_proto_msg_set(msg, "payload", json_tokener_parse("{\"issue\":{\"number\":1}}")));
        break;
    case FG_PROTO_SUBSCRIPTION:
        must(fg_proto_msg_set_string(msg, "service", "triples-generator"));
        must(fg_proto_msg_set_string(msg, "instance", "tg-1"));
        must(fg_proto_msg_set(msg, "capacity", json_tokener_parse("{\"AWAITING_GENERATION\":2}")));
        must(fg_proto_msg_set(msg, "inFlight", json_object_new_object()));
        break;
    case FG_PROTO_EVENTS_STATUS_CHANGE:
        must(fg_proto_msg_set_sub_category(msg, sub));
        if (sub != FG_PROTO_SUB_REDO_PROJECT_TRANSFORMATION &&
            sub != FG_PROTO_SUB_PROJECT_EVENTS_TO_NEW && sub != FG_PROTO_SUB_ALL_EVENTS_TO_NEW) {
            must(fg_proto_msg_add_event(msg, sha_a));
            must(fg_proto_msg_add_event(msg, sha_b));
        }
        if (sub == FG_PROTO_SUB_TO_TRIPLES_GENERATED)
            must(fg_proto_msg_set_string(msg, "payload", payload));
        if (sub == FG_PROTO_SUB_TO_TRIPLES_GENERATED || sub == FG_PROTO_SUB_TO_TRIPLES_STORE)
            must(fg_proto_msg_set_int(msg, "processingTime", 1234));
        if (sub == FG_PROTO_SUB_TO_FAILURE) {
            must(fg_proto_msg_set_string(msg, "newStatus", "GENERATION_RECOVERABLE_FAILURE"));
            must(fg_proto_msg_set_string(msg, "message", "forge API answered 502"));
            must(fg_proto_msg_set_int(msg, "executionDelay", 900000));
        }
        break;
    default:
        break;
    }
}

static void build_and_check(fg_proto_category category, fg_proto_sub_category sub)
{
    bool with_project = category != FG_PROTO_SUBSCRIPTION && sub != FG_PROTO_SUB_ALL_EVENTS_TO_NEW;
    fg_proto_msg msg, back;

    fg_proto_msg_init(&msg);
    must(fg_proto_msg_start(&msg, category, with_project ? &project : NULL));
    build_fields(&msg, category, sub);
    round_trip(&back, &msg);
    assert_int_equal(back.category, category);
    assert_int_equal(back.sub_category, sub);
    /* a random (version 4, RFC 4122 variant) UUID and a UTC time of now */
    assert_int_equal(strlen(back.id), FG_PROTO_UUID_LEN);
    assert_int_equal(back.id[14], '4');
    assert_non_null(strchr("89ab", back.id[19]));
    assert_int_equal(back.occurred_at[strlen(back.occurred_at) - 1], 'Z');
    assert_true(strncmp(back.occurred_at, "20", 2) == 0);
    if (with_project) {
        assert_true(back.has_project);
        assert_int_equal(back.project.id, 42);
        assert_int_equal(back.project.forge, FG_PROTO_FORGE_GITHUB);
        assert_string_equal(back.project.path, "torvalds/linux");
    }
    fg_proto_msg_dispose(&back);
    fg_proto_msg_dispose(&msg);
}

static void test_proto__every_category_builds_a_valid_message(void **state)
{
    (void)state;
    for (int c = 0; c < FG_PROTO_CATEGORY_COUNT; c++) {
        if (c != FG_PROTO_EVENTS_STATUS_CHANGE)
            build_and_check((fg_proto_category)c, FG_PROTO_SUB_NONE);
    }
    for (int s = FG_PROTO_SUB_NONE + 1; s < FG_PROTO_SUB_COUNT; s++)
        build_and_check(FG_PROTO_EVENTS_STATUS_CHANGE, (fg_proto_sub_category)s);
}

static void test_proto__two_messages_get_different_ids(void **state)
{
    fg_proto_msg a, b;
    (void)state;
    fg_proto_msg_init(&a);
    fg_proto_msg_init(&b);
    must(fg_proto_msg_start(&a, FG_PROTO_MEMBER_SYNC, &project));
    must(fg_proto_msg_start(&b, FG_PROTO_MEMBER_SYNC, &project));
    must(fg_proto_msg_validate(&a));
    must(fg_proto_msg_validate(&b));
    assert_string_not_equal(a.id, b.id);
    fg_proto_msg_dispose(&a);
    fg_proto_msg_dispose(&b);
}

static void test_proto__serialise_refuses_an_invalid_message(void **state)
{
    fg_proto_msg msg;
    fg_buf out;
    (void)state;
    fg_buf_init(&out, 1 << 20);
    assert_int_equal(fg_buf_puts(&out, "kept"), 0);
    fg_proto_msg_init(&msg);
    must(fg_proto_msg_start(&msg, FG_PROTO_EVENTS_STATUS_CHANGE, &project));
    must(fg_proto_msg_set_sub_category(&msg, FG_PROTO_SUB_TO_FAILURE));
    must(fg_proto_msg_add_event(&msg, sha_a));
    must(fg_proto_msg_set_string(&msg, "newStatus", "GENERATION_NON_RECOVERABLE_FAILURE"));
    assert_int_equal(fg_proto_msg_serialise(&out, &msg), FG_EINVALID);
    assert_string_equal(fg_error_last(), "message: missing");
    must(fg_proto_msg_set_string(&msg, "message", "boom"));
    must(fg_proto_msg_set_int(&msg, "executionDelay", 1000));
    assert_int_equal(fg_proto_msg_serialise(&out, &msg), FG_EINVALID);
    assert_non_null(strstr(fg_error_last(), "executionDelay"));
    /* a bad sha added by a producer is named with its index */
    json_object_object_del(msg.root, "executionDelay");
    must(fg_proto_msg_add_event(&msg, "7B50567BDCAD8925CA1E075FEB7171C12015AFD1"));
    assert_int_equal(fg_proto_msg_serialise(&out, &msg), FG_EINVALID);
    assert_string_equal(fg_error_last(), "events[1].sha: not a 40-hex sha");
    /* invalid UTF-8 inside an opaque payload would be parked by every consumer: refused here */
    fg_proto_msg_dispose(&msg);
    must(fg_proto_msg_start(&msg, FG_PROTO_FORGE_EVENT, &project));
    must(fg_proto_msg_set_string(&msg, "event", "star"));
    must(fg_proto_msg_set_string(&msg, "deliveryId", "d1"));
    {
        struct json_object *p = json_object_new_object();
        json_object_object_add(p, "login", json_object_new_string("bad\xff"));
        must(fg_proto_msg_set(&msg, "payload", p));
    }
    assert_int_equal(fg_proto_msg_serialise(&out, &msg), FG_EINVALID);
    assert_non_null(strstr(fg_error_last(), "invalid UTF-8"));
    assert_string_equal(out.ptr, "kept");
    fg_proto_msg_dispose(&msg);
    fg_buf_dispose(&out);
}

static void test_proto__setters_need_a_started_message(void **state)
{
    fg_proto_msg msg;
    (void)state;
    fg_proto_msg_init(&msg);
    assert_int_equal(fg_proto_msg_set_int(&msg, "count", 1), FG_EINVALID);
    assert_int_equal(fg_proto_msg_add_event(&msg, sha_a), FG_EINVALID);
    assert_int_equal(fg_proto_msg_validate(&msg), FG_EINVALID);
    assert_int_equal(fg_proto_msg_start(&msg, FG_PROTO_CATEGORY_COUNT, NULL), FG_EINVALID);
    assert_null(msg.root);
    fg_proto_msg_dispose(&msg);
    fg_proto_msg_dispose(NULL);
}

/* ---- getters ---- */

static void parse_fixture(fg_proto_msg *msg, const char *name)
{
    char path[1024];
    fg_buf data;

    snprintf(path, sizeof(path), "%s/good/%s", FIXTURES, name);
    read_file(&data, path);
    fg_proto_msg_init(msg);
    if (fg_proto_msg_parse(msg, data.ptr, data.len) < 0)
        fail_msg("%s: %s", name, fg_error_last());
    fg_buf_dispose(&data);
}

static void test_proto__getters_read_the_category_fields(void **state)
{
    fg_proto_msg msg;
    fg_proto_commit commit;
    (void)state;
    parse_fixture(&msg, "events-status-change-to-failure-recoverable.json");
    assert_int_equal(msg.category, FG_PROTO_EVENTS_STATUS_CHANGE);
    assert_int_equal(msg.sub_category, FG_PROTO_SUB_TO_FAILURE);
    assert_string_equal(fg_proto_msg_get_string(&msg, "newStatus"),
                        "GENERATION_RECOVERABLE_FAILURE");
    assert_int_equal(fg_proto_msg_get_int(&msg, "executionDelay", -1), 900000);
    assert_int_equal(fg_proto_msg_get_int(&msg, "processingTime", -1), -1);
    assert_int_equal(fg_proto_msg_count(&msg, "events"), 1);
    assert_non_null(fg_proto_msg_event_sha(&msg, 0));
    assert_null(fg_proto_msg_event_sha(&msg, 1));
    assert_null(fg_proto_msg_get(&msg, "payload"));
    assert_null(fg_proto_msg_commit_body(&msg, 0));
    assert_int_equal(msg.project.forge, FG_PROTO_FORGE_GITHUB);
    fg_proto_msg_dispose(&msg);

    parse_fixture(&msg, "creation-batch.json");
    assert_int_equal(fg_proto_msg_count(&msg, "commits"), 5);
    assert_int_equal(msg.project.forge, FG_PROTO_FORGE_GITLAB);
    assert_string_equal(msg.project.path, "group/subgroup/tool");
    must(fg_proto_commit_read(&commit, fg_proto_msg_commit_body(&msg, 2)));
    assert_int_equal(commit.parent_count, 3);
    assert_true(commit.is_merge);
    fg_proto_commit_dispose(&commit);
    must(fg_proto_commit_read(&commit, fg_proto_msg_commit_body(&msg, 3)));
    assert_string_equal(commit.author.name, "Zoë Ångström");
    assert_string_equal(commit.author.at, "2021-12-31T23:59:59.999999999+05:30");
    assert_string_equal(commit.committer.email, "");
    assert_int_equal(commit.file_count, 2);
    assert_true(commit.files[1].binary);
    assert_false(commit.files[0].binary);
    assert_int_equal(commit.trailer_count, 1);
    assert_string_equal(commit.trailers[0].key, "Co-authored-by");
    fg_proto_commit_dispose(&commit);
    must(fg_proto_commit_read(&commit, fg_proto_msg_commit_body(&msg, 4)));
    assert_true(commit.files_truncated);
    assert_int_equal(commit.files_changed, 5000);
    fg_proto_commit_dispose(&commit);
    assert_null(fg_proto_msg_commit_body(&msg, 5));
    fg_proto_msg_dispose(&msg);

    parse_fixture(&msg, "awaiting-generation-batch.json");
    must(fg_proto_commit_read(&commit, fg_proto_msg_commit_body(&msg, 0)));
    assert_string_equal(commit.sha, fg_proto_msg_event_sha(&msg, 0));
    fg_proto_commit_dispose(&commit);
    fg_proto_msg_dispose(&msg);

    parse_fixture(&msg, "subscription-commit-sync.json");
    assert_false(msg.has_project);
    assert_int_equal(json_object_object_length(fg_proto_msg_get(&msg, "capacity")), 3);
    fg_proto_msg_dispose(&msg);
}

static void test_proto__integral_numbers_are_integers(void **state)
{
    static const char base[] =
        "{\"id\":\"0b6a3f52-9c1e-4d7a-8f21-3e5b7c9d1a40\",\"category\":\"GLOBAL_COMMIT_SYNC\","
        "\"occurredAt\":\"2024-03-05T10:15:30Z\",\"project\":{\"id\":%s,\"forge\":\"git\","
        "\"path\":\"a/b\"},\"count\":%s,\"latest\":\"7b50567bdcad8925ca1e075feb7171c12015afd1\"}";
    char text[512];
    fg_proto_msg msg;
    (void)state;
    fg_proto_msg_init(&msg);
    /* JSON Schema counts 1.0 and 1E2 as integers; so does the codec */
    snprintf(text, sizeof(text), base, "1.0", "1E2");
    must(parse_text(&msg, text));
    assert_int_equal(msg.project.id, 1);
    assert_int_equal(fg_proto_msg_get_int(&msg, "count", -1), 100);
    snprintf(text, sizeof(text), base, "1", "9007199254740991");
    must(parse_text(&msg, text));
    snprintf(text, sizeof(text), base, "1", "9007199254740992");
    assert_int_equal(parse_text(&msg, text), FG_EINVALID);
    assert_string_equal(fg_error_last(), "count: out of range (0-9007199254740991)");
    snprintf(text, sizeof(text), base, "1", "-0.5");
    assert_int_equal(parse_text(&msg, text), FG_EINVALID);
    snprintf(text, sizeof(text), base, "1", "2.5");
    assert_int_equal(parse_text(&msg, text), FG_EINVALID);
    assert_string_equal(fg_error_last(), "count: not an integer");
    snprintf(text, sizeof(text), base, "1", "true");
    assert_int_equal(parse_text(&msg, text), FG_EINVALID);
    snprintf(text, sizeof(text), base, "-18446744073709551616", "1");
    assert_int_equal(parse_text(&msg, text), FG_EINVALID);
    assert_non_null(strstr(fg_error_last(), "project.id: out of range"));
    fg_proto_msg_dispose(&msg);
}

/* ---- the commit body ---- */

static void test_proto__commit_body_builds_and_reads_back(void **state)
{
    fg_proto_commit commit = sample_commit(), back;
    struct json_object *obj = NULL, *again = NULL;
    fg_buf text;
    (void)state;
    fg_buf_init(&text, 1 << 20);
    must(fg_proto_commit_build(&obj, &commit));
    must(fg_proto_json_write(&text, obj));
    /* event-log stores the text and reads it back later */
    must(fg_proto_commit_parse(&again, text.ptr, text.len));
    assert_true(json_object_equal(obj, again));
    must(fg_proto_commit_read(&back, again));
    assert_string_equal(back.sha, commit.sha);
    assert_int_equal(back.parent_count, 1);
    assert_string_equal(back.parents[0], commit.parents[0]);
    assert_false(back.is_merge);
    assert_string_equal(back.author.email, "arnd@arndb.de");
    assert_string_equal(back.committer.at, "2023-03-31T16:10:04-07:00");
    assert_string_equal(back.message, commit.message);
    assert_int_equal(back.trailer_count, 2);
    assert_string_equal(back.trailers[1].value, "Zoë Ångström <zoe@example.se>");
    assert_int_equal(back.insertions, 10);
    assert_int_equal(back.deletions, 3);
    assert_int_equal(back.files_changed, 2);
    assert_int_equal(back.file_count, 2);
    assert_string_equal(back.files[0].path, "lib/x.c");
    assert_int_equal(back.files[0].insertions, 10);
    assert_true(back.files[1].binary);
    assert_false(back.files_truncated);
    fg_proto_commit_dispose(&back);
    fg_proto_commit_dispose(NULL);
    json_object_put(obj);
    json_object_put(again);
    fg_buf_dispose(&text);
}

static void expect_commit_refused(fg_proto_commit *c, const char *reason)
{
    struct json_object *obj = (struct json_object *)1;
    assert_int_equal(fg_proto_commit_build(&obj, c), FG_EINVALID);
    assert_null(obj);
    if (strcmp(fg_error_last(), reason) != 0)
        fail_msg("reason \"%s\", expected \"%s\"", fg_error_last(), reason);
}

static void test_proto__commit_body_build_names_the_bad_field(void **state)
{
    const char *parents[] = {sha_b, "abc"};
    fg_proto_commit c = sample_commit();
    fg_buf fixed;
    char *long_message;
    (void)state;
    c.parents = parents;
    c.parent_count = 2;
    expect_commit_refused(&c, "parents[1]: not a 40-hex sha");
    c = sample_commit();
    c.sha = NULL;
    expect_commit_refused(&c, "sha: missing");
    c = sample_commit();
    c.author.at = "2023-02-07 17:13:12";
    expect_commit_refused(&c, "author.at: not an RFC 3339 timestamp");
    c = sample_commit();
    c.files[0].deletions = -1;
    expect_commit_refused(&c, "files[0].deletions: out of range (0-9007199254740991)");
    c.files[0].deletions = 3;
    /* a message in a broken encoding is refused until sanitised (DESIGN.md: U+FFFD) */
    c = sample_commit();
    c.message = "caf\xe9 au lait";
    expect_commit_refused(&c, "message: not valid UTF-8");
    fg_buf_init(&fixed, 1024);
    must(fg_proto_utf8_sanitise(&fixed, c.message, strlen(c.message)));
    assert_string_equal(fixed.ptr, "caf\xEF\xBF\xBD au lait");
    c.message = fixed.ptr;
    {
        struct json_object *obj = NULL;
        must(fg_proto_commit_build(&obj, &c));
        json_object_put(obj);
    }
    fg_buf_dispose(&fixed);
    /* a message over the limit, cut at a character boundary by the producer, passes */
    long_message = malloc(2 * FG_PROTO_COMMIT_MESSAGE_MAX + 3);
    assert_non_null(long_message);
    for (size_t i = 0; i < FG_PROTO_COMMIT_MESSAGE_MAX + 1; i++)
        memcpy(long_message + 2 * i, "\xC3\xA9", 2);
    long_message[2 * FG_PROTO_COMMIT_MESSAGE_MAX + 2] = '\0';
    c.message = long_message;
    expect_commit_refused(&c, "message: longer than 65536 characters");
    long_message[fg_proto_utf8_prefix(long_message, FG_PROTO_COMMIT_MESSAGE_MAX)] = '\0';
    {
        struct json_object *obj = NULL;
        must(fg_proto_commit_build(&obj, &c));
        json_object_put(obj);
    }
    free(long_message);
}

static void test_proto__utf8_helpers(void **state)
{
    fg_buf b;
    static const char broken[] = "a\xC0\xAF"
                                 "b\xED\xA0\x80"
                                 "c\xF4\x90\x80\x80"
                                 "d\xE2\x82";
    (void)state;
    fg_buf_init(&b, 1024);
    must(fg_proto_utf8_sanitise(&b, "ok \xE2\x82\xAC \xF0\x9F\x98\x80", 11));
    assert_string_equal(b.ptr, "ok \xE2\x82\xAC \xF0\x9F\x98\x80");
    fg_buf_clear(&b);
    must(fg_proto_utf8_sanitise(&b, broken, sizeof(broken) - 1));
    /* each byte that starts no well-formed sequence becomes one U+FFFD */
    assert_string_equal(b.ptr, "a\xEF\xBF\xBD\xEF\xBF\xBD"
                               "b\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                               "c\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"
                               "d\xEF\xBF\xBD\xEF\xBF\xBD");
    fg_buf_clear(&b);
    must(fg_proto_utf8_sanitise(&b, "a\0b", 3));
    assert_string_equal(b.ptr, "a\xEF\xBF\xBD"
                               "b");
    assert_int_equal(fg_proto_utf8_prefix("h\xC3\xA9llo", 2), 3);
    assert_int_equal(fg_proto_utf8_prefix("h\xC3\xA9llo", 0), 0);
    assert_int_equal(fg_proto_utf8_prefix("h\xC3\xA9llo", 99), 6);
    fg_buf_dispose(&b);
}

/* ---- garbage ---- */

static void expect_refused(const char *data, size_t len)
{
    fg_proto_msg msg;
    int rc;

    fg_proto_msg_init(&msg);
    rc = fg_proto_msg_parse(&msg, data, len);
    assert_true(rc == FG_EINVALID || rc == FG_ETOOBIG);
    assert_true(fg_error_last()[0] != '\0');
    assert_null(msg.root);
}

static void test_proto__garbage_is_refused_without_a_crash(void **state)
{
    static const char *const texts[] = {
        "",
        " ",
        "null",
        "true",
        "1",
        "\"MEMBER_SYNC\"",
        "[]",
        "[{}]",
        "{",
        "{}",
        "}",
        "{\"category\":\"MEMBER_SYNC\"}",
        "{\"category\":null}",
        "{\"category\":[]}",
        "{\"a\":1,}",
        "{\"a\" 1}",
        "{\"a\":01}",
        "{\"a\":1.}",
        "{\"a\":.5}",
        "{\"a\":-}",
        "{\"a\":1e}",
        "{\"a\":Infinity}",
        "{\"a\":-Infinity}",
        "{\"a\":nul}",
        "{\"a\":\"\\x\"}",
        "{\"a\":\"\\u12\"}",
        "{\"a\":\"\\udc00\"}",
        "{\"a\":\"\\ud800\\u0041\"}",
        "{\"a\\u0000b\":1}",
        "{\"a\":\"tab\there\"}",
        "{\"a\":1} {\"b\":2}",
        "{/*c*/}",
        "\xEF\xBB\xBF{}",
        "{\"a\":\"\xF8\x88\x80\x80\x80\"}",
        "{\"a\":\"\xE0\x80\xAF\"}",
        "{\"a\":\"\xC3\"}",
        "{\"category\":\"MEMBER_SYNC\",\"project\":{\"id\":1e999}}",
    };
    char *big;
    (void)state;
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
        expect_refused(texts[i], strlen(texts[i]));
    expect_refused("{\"a\":1}\0", 8); /* a NUL byte after the object */
    expect_refused(NULL, 0);

    /* deep nesting, as arrays and as objects, far past the limit and just past it */
    big = malloc(5 * 100000 + 16);
    assert_non_null(big);
    memset(big, '[', 100000);
    expect_refused(big, 100000);
    for (size_t i = 0; i < 100000; i++)
        memcpy(big + 5 * i, "{\"a\":", 5);
    expect_refused(big, 5 * 100000);
    {
        size_t n = 0;
        for (int d = 0; d < FG_PROTO_DEPTH_MAX + 1; d++)
            n += (size_t)snprintf(big + n, 16, "{\"a\":");
        n += (size_t)snprintf(big + n, 16, "1");
        for (int d = 0; d < FG_PROTO_DEPTH_MAX + 1; d++)
            big[n++] = '}';
        expect_refused(big, n);
        assert_non_null(strstr(fg_error_last(), "nested deeper"));
    }
    free(big);

    /* larger than a message may be: refused before it is read */
    big = malloc((size_t)FG_PROTO_MESSAGE_MAX + 1);
    assert_non_null(big);
    memset(big, ' ', (size_t)FG_PROTO_MESSAGE_MAX + 1);
    big[0] = '{';
    {
        fg_proto_msg msg;
        fg_proto_msg_init(&msg);
        assert_int_equal(fg_proto_msg_parse(&msg, big, (size_t)FG_PROTO_MESSAGE_MAX + 1),
                         FG_ETOOBIG);
    }
    free(big);
}

/* Every prefix of a good fixture is refused (a message is one complete object). */
static void truncations(const char *name, const fg_buf *data)
{
    size_t end = data->len;

    (void)name;
    while (end > 0 && strchr(" \n\r\t", data->ptr[end - 1]) != NULL)
        end--;
    for (size_t n = 0; n < end; n += (end > 4096 ? 61 : 1))
        expect_refused(data->ptr, n);
}

static unsigned long long rng_state = 0x9E3779B97F4A7C15ull;

static unsigned long long next_random(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random byte-level mutations of a good fixture: parse must fail cleanly, or accept something it
 * can serialise again. */
static void mutations(const char *name, const fg_buf *data)
{
    static const char interesting[] = "{}[]\",:\\0-eE.\x80\xC3\xFF \x01u";
    char *copy = malloc(data->len + 1);

    (void)name;
    assert_non_null(copy);
    for (int round = 0; round < 300; round++) {
        fg_proto_msg msg, back;
        memcpy(copy, data->ptr, data->len);
        for (int k = 0; k < 1 + (int)(next_random() % 3); k++)
            copy[next_random() % data->len] =
                interesting[next_random() % (sizeof(interesting) - 1)];
        fg_proto_msg_init(&msg);
        if (fg_proto_msg_parse(&msg, copy, data->len) == 0) {
            round_trip(&back, &msg);
            fg_proto_msg_dispose(&back);
        }
        fg_proto_msg_dispose(&msg);
    }
    free(copy);
}

static void test_proto__truncated_and_mutated_fixtures_never_crash(void **state)
{
    (void)state;
    each_fixture("good", truncations);
    each_fixture("good", mutations);
}

/* ---- names ---- */

static void test_proto__names_round_trip(void **state)
{
    fg_proto_category c;
    fg_proto_forge f;
    (void)state;
    for (int i = 0; i < FG_PROTO_CATEGORY_COUNT; i++) {
        must(fg_proto_category_parse(&c, fg_proto_category_name((fg_proto_category)i)));
        assert_int_equal(c, i);
    }
    assert_int_equal(fg_proto_category_parse(&c, "creation"), FG_EINVALID);
    assert_int_equal(fg_proto_category_parse(&c, NULL), FG_EINVALID);
    assert_null(fg_proto_category_name(FG_PROTO_CATEGORY_COUNT));
    assert_string_equal(fg_proto_sub_category_name(FG_PROTO_SUB_CLEAN_UP_DONE), "CleanUpDone");
    assert_null(fg_proto_sub_category_name(FG_PROTO_SUB_NONE));
    must(fg_proto_forge_parse(&f, "gitlab"));
    assert_int_equal(f, FG_PROTO_FORGE_GITLAB);
    assert_string_equal(fg_proto_forge_name(FG_PROTO_FORGE_GIT), "git");
    assert_int_equal(fg_proto_forge_parse(&f, "GitHub"), FG_EINVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proto__good_fixtures_parse_and_round_trip),
        cmocka_unit_test(test_proto__bad_fixtures_are_refused_naming_the_field),
        cmocka_unit_test(test_proto__every_category_builds_a_valid_message),
        cmocka_unit_test(test_proto__two_messages_get_different_ids),
        cmocka_unit_test(test_proto__serialise_refuses_an_invalid_message),
        cmocka_unit_test(test_proto__setters_need_a_started_message),
        cmocka_unit_test(test_proto__getters_read_the_category_fields),
        cmocka_unit_test(test_proto__integral_numbers_are_integers),
        cmocka_unit_test(test_proto__commit_body_builds_and_reads_back),
        cmocka_unit_test(test_proto__commit_body_build_names_the_bad_field),
        cmocka_unit_test(test_proto__utf8_helpers),
        cmocka_unit_test(test_proto__garbage_is_refused_without_a_crash),
        cmocka_unit_test(test_proto__truncated_and_mutated_fixtures_never_crash),
        cmocka_unit_test(test_proto__names_round_trip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
