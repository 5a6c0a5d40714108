/*
 * triples-generator against the real stack: RabbitMQ, Virtuoso, its database, and the running
 * fg-triples-generator (the stack's, built from this tree). Replies are read from a queue of this
 * test's own bound to EVENTS_STATUS_CHANGE (deleted after). Each test works on a project id of
 * its own (pid-based, far above real ones), so its graph is its own; every graph is dropped after.
 *   generation -> ToTriplesGenerated with a payload (and ToFailure for a body that is not RDF);
 *   TRIPLES_GENERATED -> ToTriplesStore, and SPARQL sees commits, persons, activities by type;
 *   a second upload changes no count; CLEAN_UP removes exactly those commits' activities (also
 *   over several update requests);
 *   CLEAN_UP all and PROJECT_REMOVED drop the graph; a store that is down gives
 *   TRANSFORMATION_RECOVERABLE_FAILURE (an in-process consumer pointed at a closed port);
 *   deliveries handled together upload one project's payloads in one request, in order with a
 *   clean-up between them, a payload that does not decode failing alone;
 *   FORGE_EVENT is recorded in fg_triples and acked; POST /sparql answers SPARQL 1.1 JSON;
 *   and the upload speed of the Graph Store path, printed.
 */
#include "test_support.h"

#include <json-c/json.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fg/amqp.h"
#include "fg/http_client.h"
#include "fg/metrics.h"
#include "fg/pg.h"
#include "fg/proto.h"
#include "tg_consume.h"
#include "tg_payload.h"
#include "tg_rdf.h"
#include "tg_store.h"

#define WAIT_MS     30000
#define REPLIES_MAX 64

static const char *amqp_url, *graph_base;
static char service[64];
static fg_amqp *inbox;     /* fg.<service>, bound to EVENTS_STATUS_CHANGE */
static fg_amqp *publisher; /* publish-only */
static tg_store *store;    /* the test's own view of the triple store */
static long long first_project, next_project;

/* ---- fixtures ---------------------------------------------------------------------------- */

static const char *sha_of(int i)
{
    static char shas[8][41];

    snprintf(shas[i], sizeof(shas[i]), "%08x%032x", (unsigned)getpid(), (unsigned)i + 1);
    return shas[i];
}

static fg_proto_project project_new(void)
{
    static char path[64];

    snprintf(path, sizeof(path), "it/tg-%d", (int)getpid());
    return (fg_proto_project){next_project++, FG_PROTO_FORGE_GIT, path};
}

/* Commit i: authored by a<i>@x.org (commit 0 and 1 share a.shared@x.org as committer), with
 * trailers that give every kind of activity the test counts. */
static struct json_object *body_of(int i)
{
    static char authors[8][64], messages[8][512];
    static const char *parents[1];
    static fg_proto_trailer trailers[] = {
        {"Signed-off-by", "Shared Person <shared@x.org>"},
        {"reviewed-by", "Rev Iewer <REV@x.org>"},
        {"Tested-by", "not a person"},
        {"Cc", "<list@x.org>"},
    };
    fg_proto_commit c;
    struct json_object *obj = NULL;

    memset(&c, 0, sizeof(c));
    snprintf(authors[i], sizeof(authors[i]), "a%d@x.org", i);
    snprintf(messages[i], sizeof(messages[i]),
             "commit %d: \"quoted\" \\ back\tslash \x01 caf\xc3\xa9\n\nSigned-off-by: Shared "
             "Person <shared@x.org>\n",
             i);
    c.sha = sha_of(i);
    parents[0] = sha_of(7);
    c.parents = parents;
    c.parent_count = i == 0 ? 0 : 1;
    c.author = (fg_proto_person){"Author", authors[i], "2023-02-07T17:13:12+01:00"};
    c.committer = (fg_proto_person){"Committer", i < 2 ? "shared@x.org" : authors[i],
                                    "2023-03-31T16:10:04-07:00"};
    c.message = messages[i];
    c.trailers = trailers;
    c.trailer_count = 4;
    c.insertions = 10 + i;
    c.deletions = i;
    c.files_changed = 1;
    assert_int_equal(fg_proto_commit_build(&obj, &c), 0);
    return obj;
}

static void publish(fg_proto_msg *msg)
{
    fg_buf body;
    size_t confirmed = 0;
    fg_amqp_message m;

    fg_buf_init(&body, FG_PROTO_MESSAGE_MAX);
    assert_int_equal(fg_proto_msg_serialise(&body, msg), 0);
    m = (fg_amqp_message){msg->id, fg_proto_category_name(msg->category), body.ptr, body.len};
    assert_int_equal(fg_amqp_publish_batch(&confirmed, publisher, &m, 1, WAIT_MS), 0);
    fg_buf_dispose(&body);
}

/* AWAITING_GENERATION of commits [0, n) of project p, the event of commit `wrong` (if >= 0)
 * carrying another commit's body. */
static void publish_generation(const fg_proto_project *p, int n, int wrong)
{
    fg_proto_msg msg;

    fg_proto_msg_init(&msg);
    assert_int_equal(fg_proto_msg_start(&msg, FG_PROTO_AWAITING_GENERATION, p), 0);
    for (int i = 0; i < n; i++) {
        struct json_object *event = json_object_new_object();
        json_object_object_add(event, "sha", json_object_new_string(sha_of(i)));
        json_object_object_add(event, "body", body_of(i == wrong ? 6 : i));
        assert_int_equal(fg_proto_msg_append(&msg, "events", event), 0);
    }
    publish(&msg);
    fg_proto_msg_dispose(&msg);
}

static void publish_simple(const fg_proto_project *p, fg_proto_category category,
                           const char *payload, int nevents, bool all)
{
    fg_proto_msg msg;

    fg_proto_msg_init(&msg);
    assert_int_equal(fg_proto_msg_start(&msg, category, p), 0);
    for (int i = 0; i < nevents; i++)
        assert_int_equal(fg_proto_msg_add_event(&msg, sha_of(i)), 0);
    if (payload != NULL)
        assert_int_equal(fg_proto_msg_set_string(&msg, "payload", payload), 0);
    if (all)
        assert_int_equal(fg_proto_msg_set_bool(&msg, "all", true), 0);
    publish(&msg);
    fg_proto_msg_dispose(&msg);
}

/* ---- replies ----------------------------------------------------------------------------- */

/* Replies of this test's projects that arrived before anyone waited for them. */
static fg_proto_msg stash[REPLIES_MAX];
static size_t nstash;

static bool take_stashed(fg_proto_msg *out, const fg_proto_project *p, fg_proto_sub_category sub)
{
    for (size_t i = 0; i < nstash; i++) {
        if (stash[i].project.id == p->id && stash[i].sub_category == sub) {
            *out = stash[i];
            stash[i] = stash[--nstash];
            return true;
        }
    }
    return false;
}

/* The EVENTS_STATUS_CHANGE of project p with subCategory sub, in whatever order replies come
 * (those of other projects, like the stack's real work, are ignored). Fails after WAIT_MS. */
static void wait_reply(fg_proto_msg *out, const fg_proto_project *p, fg_proto_sub_category sub)
{
    long long deadline = fg_test_now_ms() + WAIT_MS;

    fg_proto_msg_init(out);
    while (!take_stashed(out, p, sub) && fg_test_now_ms() < deadline) {
        fg_amqp_delivery *d = NULL;
        fg_proto_msg m;
        int rc = fg_amqp_next(&d, inbox, 500);
        if (rc == FG_ETIMEOUT)
            continue;
        assert_int_equal(rc, 0);
        fg_proto_msg_init(&m);
        rc = fg_proto_msg_parse(&m, fg_amqp_delivery_body(d), fg_amqp_delivery_body_len(d));
        assert_int_equal(fg_amqp_ack(inbox, d), 0);
        fg_amqp_delivery_free(d);
        if (rc == 0 && m.has_project && m.project.id >= first_project &&
            m.project.id < next_project && nstash < REPLIES_MAX)
            stash[nstash++] = m;
        else
            fg_proto_msg_dispose(&m);
    }
    if (out->root == NULL || out->project.id != p->id || out->sub_category != sub)
        fail_msg("no %s for project %lld within %d ms", fg_proto_sub_category_name(sub), p->id,
                 WAIT_MS);
}

static bool has_event(const fg_proto_msg *m, const char *sha)
{
    for (size_t i = 0; i < fg_proto_msg_count(m, "events"); i++)
        if (strcmp(fg_proto_msg_event_sha(m, i), sha) == 0)
            return true;
    return false;
}

/* Generation of commits [0, n) through the running service: the payload it answers. */
static char *generate(const fg_proto_project *p, int n)
{
    fg_proto_msg reply;
    char *payload;

    publish_generation(p, n, -1);
    wait_reply(&reply, p, FG_PROTO_SUB_TO_TRIPLES_GENERATED);
    assert_int_equal(fg_proto_msg_count(&reply, "events"), n);
    payload = strdup(fg_proto_msg_get_string(&reply, "payload"));
    fg_proto_msg_dispose(&reply);
    return payload;
}

static void upload(const fg_proto_project *p, const char *payload, int n)
{
    fg_proto_msg reply;

    publish_simple(p, FG_PROTO_TRIPLES_GENERATED, payload, n, false);
    wait_reply(&reply, p, FG_PROTO_SUB_TO_TRIPLES_STORE);
    assert_int_equal(fg_proto_msg_count(&reply, "events"), n);
    assert_true(fg_proto_msg_get_int(&reply, "processingTime", -1) >= 0);
    fg_proto_msg_dispose(&reply);
}

/* ---- SPARQL ------------------------------------------------------------------------------ */

/* COUNT of `where` inside project p's graph. */
static long long count(const fg_proto_project *p, const char *select, const char *where)
{
    char graph[TG_RDF_IRI_MAX], q[4096];
    long long n = -1;

    assert_int_equal(tg_rdf_project_iri(graph, graph_base, p->id), 0);
    snprintf(q, sizeof(q),
             "PREFIX fg: <" TG_RDF_NS_FG "> PREFIX schema: <" TG_RDF_NS_SCHEMA
             "> PREFIX prov: <" TG_RDF_NS_PROV "> SELECT (COUNT(%s) AS ?n) FROM <%s> WHERE { %s }",
             select, graph, where);
    if (tg_store_query_count(store, &n, q, "n") < 0)
        fail_msg("%s", fg_error_last());
    return n;
}

static long long activities(const fg_proto_project *p, const char *type)
{
    char where[256];

    snprintf(where, sizeof(where), "?a a fg:Activity ; fg:type \"%s\"", type);
    return count(p, "*", where);
}

static void drop(const fg_proto_project *p)
{
    char graph[TG_RDF_IRI_MAX];

    assert_int_equal(tg_rdf_project_iri(graph, graph_base, p->id), 0);
    assert_int_equal(tg_store_drop_graph(store, graph), 0);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_tg__generation_answers_with_a_gzip_payload(void **state)
{
    fg_proto_project p = project_new();
    fg_proto_msg generated, failed;
    fg_buf nt;

    (void)state;
    fg_buf_init(&nt, 1 << 24);
    publish_generation(&p, 3, 2); /* event 2 carries commit 6's body: it cannot be event 2 */
    wait_reply(&generated, &p, FG_PROTO_SUB_TO_TRIPLES_GENERATED);
    assert_int_equal(fg_proto_msg_count(&generated, "events"), 2);
    assert_true(has_event(&generated, sha_of(0)) && has_event(&generated, sha_of(1)));
    assert_true(fg_proto_msg_get_int(&generated, "processingTime", -1) >= 0);
    assert_int_equal(tg_payload_decode(&nt, fg_proto_msg_get_string(&generated, "payload"),
                                       strlen(fg_proto_msg_get_string(&generated, "payload"))),
                     0);
    /* N-Triples with the message escaped on one line */
    assert_non_null(strstr(nt.ptr, "\"commit 1: \\\"quoted\\\" \\\\ back\\tslash \\u0001 "
                                   "caf\xc3\xa9\\n\\nSigned-off-by: Shared Person "
                                   "<shared@x.org>\\n\" .\n"));
    assert_non_null(strstr(nt.ptr, "<http://schema.org/SoftwareSourceCode>"));
    assert_null(strstr(nt.ptr, sha_of(6)));
    wait_reply(&failed, &p, FG_PROTO_SUB_TO_FAILURE);
    assert_string_equal(fg_proto_msg_get_string(&failed, "newStatus"),
                        "GENERATION_NON_RECOVERABLE_FAILURE");
    assert_int_equal(fg_proto_msg_count(&failed, "events"), 1);
    assert_true(has_event(&failed, sha_of(2)));
    assert_non_null(strstr(fg_proto_msg_get_string(&failed, "message"), "sha"));
    fg_proto_msg_dispose(&generated);
    fg_proto_msg_dispose(&failed);
    fg_buf_dispose(&nt);
}

static void test_tg__uploaded_commits_are_queryable(void **state)
{
    fg_proto_project p = project_new();
    char *payload = generate(&p, 3);

    (void)state;
    upload(&p, payload, 3);
    assert_int_equal(count(&p, "*", "?c a fg:Commit"), 3);
    assert_int_equal(count(&p, "*",
                           "?c a fg:Commit ; schema:isPartOf ?p . ?p a "
                           "schema:SoftwareSourceCode ; fg:path ?path"),
                     3);
    /* a0, a1, a2, shared (committer of 0 and 1, signs all), rev; not "not a person" */
    assert_int_equal(count(&p, "DISTINCT ?person", "?person a schema:Person"), 6);
    assert_int_equal(activities(&p, "authored-commit"), 3);
    assert_int_equal(activities(&p, "committed-commit"), 2);
    assert_int_equal(activities(&p, "signed-off-commit"), 3);
    assert_int_equal(activities(&p, "reviewed-commit"), 3);
    assert_int_equal(activities(&p, "informed-commit"), 3);
    assert_int_equal(activities(&p, "tested-commit"), 0); /* its value is not Name <email> */
    assert_int_equal(count(&p, "*",
                           "?c fg:insertions ?i ; fg:isMerge false ; fg:authoredAt ?t . "
                           "FILTER(?t = \"2023-02-07T17:13:12+01:00\"^^<http://www.w3.org/2001/"
                           "XMLSchema#dateTime>)"),
                     3);
    assert_int_equal(count(&p, "*",
                           "?a fg:type \"committed-commit\" ; prov:startedAtTime ?t ; "
                           "prov:wasAssociatedWith ?who . ?who fg:emailSha1 ?h"),
                     2);
    free(payload);
    drop(&p);
}

static void test_tg__uploading_twice_changes_nothing(void **state)
{
    fg_proto_project p = project_new();
    char *payload = generate(&p, 3);
    long long once;

    (void)state;
    upload(&p, payload, 3);
    once = count(&p, "*", "?s ?p ?o");
    assert_true(once > 50);
    upload(&p, payload, 3);
    assert_int_equal(count(&p, "*", "?s ?p ?o"), once);
    free(payload);
    drop(&p);
}

static void test_tg__clean_up_removes_exactly_those_commits(void **state)
{
    fg_proto_project p = project_new();
    char *payload = generate(&p, 3);
    fg_proto_msg done;
    char where[256];

    (void)state;
    upload(&p, payload, 3);
    publish_simple(&p, FG_PROTO_CLEAN_UP, NULL, 1, false); /* commit 0 */
    wait_reply(&done, &p, FG_PROTO_SUB_CLEAN_UP_DONE);
    assert_int_equal(fg_proto_msg_count(&done, "events"), 1);
    assert_true(has_event(&done, sha_of(0)));
    snprintf(where, sizeof(where), "<%s/commits/%s> ?p ?o", graph_base, sha_of(0));
    assert_int_equal(count(&p, "*", where), 0);
    snprintf(where, sizeof(where), "?a fg:commit <%s/commits/%s>", graph_base, sha_of(0));
    assert_int_equal(count(&p, "*", where), 0);
    assert_int_equal(count(&p, "*", "?c a fg:Commit"), 2);
    assert_int_equal(activities(&p, "authored-commit"), 2);
    assert_int_equal(activities(&p, "committed-commit"), 1);
    assert_int_equal(activities(&p, "signed-off-commit"), 2);
    /* a0 contributed nothing else: gone; shared and rev remain */
    assert_int_equal(count(&p, "DISTINCT ?person", "?person a schema:Person"), 5);
    assert_int_equal(count(&p, "*",
                           "?x prov:wasAssociatedWith ?who FILTER NOT EXISTS "
                           "{ ?who a schema:Person }"),
                     0);
    fg_proto_msg_dispose(&done);
    free(payload);
    drop(&p);
}

static void test_tg__clean_up_all_drops_the_graph(void **state)
{
    fg_proto_project p = project_new();
    char *payload = generate(&p, 2);
    fg_proto_msg reply;

    (void)state;
    upload(&p, payload, 2);
    assert_true(count(&p, "*", "?s ?p ?o") > 0);
    publish_simple(&p, FG_PROTO_CLEAN_UP, NULL, 0, true);
    wait_reply(&reply, &p, FG_PROTO_SUB_PROJECT_EVENTS_TO_NEW);
    assert_int_equal(fg_proto_msg_count(&reply, "events"), 0);
    assert_int_equal(count(&p, "*", "?s ?p ?o"), 0);
    fg_proto_msg_dispose(&reply);
    free(payload);
}

static bool graph_empty(void *payload)
{
    return count(payload, "*", "?s ?p ?o") == 0;
}

static void test_tg__project_removed_drops_the_graph(void **state)
{
    fg_proto_project p = project_new();
    char *payload = generate(&p, 2);

    (void)state;
    upload(&p, payload, 2);
    publish_simple(&p, FG_PROTO_PROJECT_REMOVED, NULL, 0, false);
    assert_true(fg_test_wait_until(graph_empty, &p, WAIT_MS));
    free(payload);
}

static int closed_port(void)
{
    struct sockaddr_in a = {0};
    socklen_t len = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd); /* nothing listens there now */
    return ntohs(a.sin_port);
}

static void test_tg__a_store_that_is_down_gives_a_recoverable_failure(void **state)
{
    fg_proto_project p = project_new();
    char *payload = generate(&p, 2);
    char url[64];
    tg_settings s = {graph_base, false, 1 << 24, 10, 1, 1, 1};
    tg_store_options so = {url, "u", "pw", &tg_store_virtuoso, 2000, 1, 0};
    tg_store *down = NULL;
    tg_projects *projects = NULL;
    tg_consumer *c = NULL;
    fg_metrics *metrics = NULL;
    fg_proto_msg msg, reply;

    (void)state;
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", closed_port());
    assert_int_equal(fg_metrics_new(&metrics), 0);
    assert_int_equal(tg_store_new(&down, &so), 0);
    assert_int_equal(tg_projects_new(&projects, url, "k"), 0);
    assert_int_equal(tg_consumer_new(&c, &s, down, projects, metrics), 0);
    fg_proto_msg_init(&msg);
    assert_int_equal(fg_proto_msg_start(&msg, FG_PROTO_TRIPLES_GENERATED, &p), 0);
    assert_int_equal(fg_proto_msg_add_event(&msg, sha_of(0)), 0);
    assert_int_equal(fg_proto_msg_add_event(&msg, sha_of(1)), 0);
    assert_int_equal(fg_proto_msg_set_string(&msg, "payload", payload), 0);
    assert_int_equal(fg_proto_msg_validate(&msg), 0);
    assert_int_equal(tg_consumer_handle_msg(c, publisher, NULL, &msg), 0); /* answered: ack */
    wait_reply(&reply, &p, FG_PROTO_SUB_TO_FAILURE);
    assert_string_equal(fg_proto_msg_get_string(&reply, "newStatus"),
                        "TRANSFORMATION_RECOVERABLE_FAILURE");
    assert_int_equal(fg_proto_msg_count(&reply, "events"), 2);
    assert_non_null(strstr(fg_proto_msg_get_string(&reply, "message"), "upload"));
    fg_proto_msg_dispose(&reply);
    /* a clean-up cannot be answered at all: the delivery is retried later */
    assert_int_equal(fg_proto_msg_start(&msg, FG_PROTO_CLEAN_UP, &p), 0);
    assert_int_equal(fg_proto_msg_add_event(&msg, sha_of(0)), 0);
    assert_int_equal(fg_proto_msg_validate(&msg), 0);
    assert_int_equal(tg_consumer_handle_msg(c, publisher, NULL, &msg), FG_EUNAVAILABLE);
    fg_proto_msg_dispose(&msg);
    tg_consumer_free(c);
    fg_metrics_free(metrics);
    free(payload);
}

/* The test stack's Virtuoso, as triples-generator reaches it. */
static tg_store_options stack_store_options(void)
{
    tg_store_options so = {fg_test_stack_env("FG_TRIPLESTORE_URL"),
                           fg_test_stack_env("FG_TRIPLESTORE_USER"),
                           fg_test_stack_env("FG_TRIPLESTORE_PASSWORD"),
                           &tg_store_virtuoso,
                           60000,
                           3,
                           0};

    return so;
}

/* A clean-up longer than one update request (batch of 2 for 5 commits: 3 requests), run by an
 * in-process consumer on the real store. */
static void test_tg__clean_up_spans_several_update_requests(void **state)
{
    fg_proto_project p = project_new();
    char *payload = generate(&p, 5);
    tg_settings s = {graph_base, false, 1 << 24, 2, 1, 1, 1};
    tg_store_options so = stack_store_options();
    tg_store *real = NULL;
    tg_projects *projects = NULL;
    tg_consumer *c = NULL;
    fg_metrics *metrics = NULL;
    fg_proto_msg msg, done;

    (void)state;
    upload(&p, payload, 5);
    assert_int_equal(fg_metrics_new(&metrics), 0);
    assert_int_equal(tg_store_new(&real, &so), 0);
    assert_int_equal(tg_projects_new(&projects, "http://127.0.0.1:9", "k"), 0);
    assert_int_equal(tg_consumer_new(&c, &s, real, projects, metrics), 0);
    fg_proto_msg_init(&msg);
    assert_int_equal(fg_proto_msg_start(&msg, FG_PROTO_CLEAN_UP, &p), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(fg_proto_msg_add_event(&msg, sha_of(i)), 0);
    assert_int_equal(fg_proto_msg_validate(&msg), 0);
    assert_int_equal(tg_consumer_handle_msg(c, publisher, NULL, &msg), 0);
    wait_reply(&done, &p, FG_PROTO_SUB_CLEAN_UP_DONE);
    assert_int_equal(fg_proto_msg_count(&done, "events"), 5);
    assert_int_equal(count(&p, "*", "?c a fg:Commit"), 0);
    assert_int_equal(count(&p, "*", "?a a fg:Activity"), 0);
    assert_int_equal(count(&p, "*", "?who a schema:Person"), 0);
    /* the project node stays: the project still exists, only these commits left */
    assert_int_equal(count(&p, "*", "?x a schema:SoftwareSourceCode"), 1);
    fg_proto_msg_dispose(&done);
    fg_proto_msg_dispose(&msg);
    tg_consumer_free(c);
    fg_metrics_free(metrics);
    free(payload);
    drop(&p);
}

/* A consumer in this process on the real store (the projects' API is a closed port: no clone
 * URLs), for calling the consumer's functions directly. */
typedef struct {
    tg_settings settings; /* the consumer keeps a pointer to it */
    tg_consumer *c;
    fg_metrics *metrics;
} in_process;

static void in_process_start(in_process *ip)
{
    tg_store_options so = stack_store_options();
    tg_settings s = {graph_base, false, 1 << 24, 10, 1, 1, 1};
    tg_store *real = NULL;
    tg_projects *projects = NULL;

    memset(ip, 0, sizeof(*ip));
    ip->settings = s;
    assert_int_equal(fg_metrics_new(&ip->metrics), 0);
    assert_int_equal(tg_store_new(&real, &so), 0);
    assert_int_equal(tg_projects_new(&projects, "http://127.0.0.1:9", "k"), 0);
    assert_int_equal(tg_consumer_new(&ip->c, &ip->settings, real, projects, ip->metrics), 0);
}

static void in_process_stop(in_process *ip)
{
    tg_consumer_free(ip->c);
    fg_metrics_free(ip->metrics);
}

/* Deliveries that arrived together: the payloads of one project go up in one request, a payload
 * that does not decode fails alone, another project's payload is another request, and a clean-up
 * between two uploads keeps its place. In-process consumer on the real store. */
static void test_tg__a_batch_uploads_a_project_s_payloads_in_one_request(void **state)
{
    fg_proto_project p = project_new(), q = project_new();
    char *payload = generate(&p, 3), *payload_q = generate(&q, 2);
    in_process ip;
    fg_proto_msg msgs[6], reply;
    fg_service_outcome outcomes[6];
    fg_buf text;

    (void)state;
    in_process_start(&ip);
    /* p: events 0-1, a payload that does not decode, event 2; q: its two; p's clean-up of
     * commit 1, then a last upload of it (which must land after the clean-up, not before) */
    for (int i = 0; i < 6; i++) {
        const fg_proto_project *who = i == 3 ? &q : &p;
        fg_proto_msg_init(&msgs[i]);
        assert_int_equal(fg_proto_msg_start(&msgs[i],
                                            i == 4 ? FG_PROTO_CLEAN_UP : FG_PROTO_TRIPLES_GENERATED,
                                            who),
                         0);
        outcomes[i].rc = -1;
    }
    assert_int_equal(fg_proto_msg_add_event(&msgs[0], sha_of(0)), 0);
    assert_int_equal(fg_proto_msg_add_event(&msgs[0], sha_of(1)), 0);
    assert_int_equal(fg_proto_msg_set_string(&msgs[0], "payload", payload), 0);
    assert_int_equal(fg_proto_msg_add_event(&msgs[1], sha_of(5)), 0);
    assert_int_equal(fg_proto_msg_set_string(&msgs[1], "payload", "AAAA"), 0); /* not gzip */
    assert_int_equal(fg_proto_msg_add_event(&msgs[2], sha_of(2)), 0);
    assert_int_equal(fg_proto_msg_set_string(&msgs[2], "payload", payload), 0);
    assert_int_equal(fg_proto_msg_add_event(&msgs[3], sha_of(0)), 0);
    assert_int_equal(fg_proto_msg_add_event(&msgs[3], sha_of(1)), 0);
    assert_int_equal(fg_proto_msg_set_string(&msgs[3], "payload", payload_q), 0);
    assert_int_equal(fg_proto_msg_add_event(&msgs[4], sha_of(1)), 0);
    assert_int_equal(fg_proto_msg_add_event(&msgs[5], sha_of(1)), 0);
    assert_int_equal(fg_proto_msg_set_string(&msgs[5], "payload", payload), 0);
    for (int i = 0; i < 6; i++)
        assert_int_equal(fg_proto_msg_validate(&msgs[i]), 0);

    tg_consumer_handle_msgs(ip.c, publisher, NULL, msgs, 6, outcomes);
    for (int i = 0; i < 6; i++)
        assert_int_equal(outcomes[i].rc, 0);
    /* p's first two payloads in one request, q's in another, p's last after the clean-up */
    fg_buf_init(&text, 1 << 20);
    assert_int_equal(fg_metrics_render(ip.metrics, &text), 0);
    assert_non_null(strstr(text.ptr, "fg_triples_generator_upload_seconds_count 3\n"));
    fg_buf_dispose(&text);
    for (int i = 0; i < 3; i++) {
        wait_reply(&reply, &p, FG_PROTO_SUB_TO_TRIPLES_STORE);
        fg_proto_msg_dispose(&reply);
    }
    wait_reply(&reply, &p, FG_PROTO_SUB_TO_FAILURE);
    assert_string_equal(fg_proto_msg_get_string(&reply, "newStatus"),
                        "TRANSFORMATION_NON_RECOVERABLE_FAILURE");
    assert_true(fg_proto_msg_count(&reply, "events") == 1 && has_event(&reply, sha_of(5)));
    fg_proto_msg_dispose(&reply);
    wait_reply(&reply, &p, FG_PROTO_SUB_CLEAN_UP_DONE);
    fg_proto_msg_dispose(&reply);
    wait_reply(&reply, &q, FG_PROTO_SUB_TO_TRIPLES_STORE);
    fg_proto_msg_dispose(&reply);
    /* the clean-up of commit 1 ran between the two uploads of p: the last one brought it back */
    assert_int_equal(count(&p, "*", "?c a fg:Commit"), 3);
    assert_int_equal(count(&q, "*", "?c a fg:Commit"), 2);
    for (int i = 0; i < 6; i++)
        fg_proto_msg_dispose(&msgs[i]);
    in_process_stop(&ip);
    free(payload);
    free(payload_q);
    drop(&p);
    drop(&q);
}

/* A delivery with nothing to answer (PROJECT_REMOVED) in the same batch as one that answers:
 * the replies are gathered around it (found by UBSan in the stack: a copy from a NULL list). */
static void test_tg__a_batch_with_a_silent_delivery_answers_the_others(void **state)
{
    fg_proto_project p = project_new(), gone = project_new();
    char *payload = generate(&p, 1);
    in_process ip;
    fg_proto_msg msgs[2], reply;
    fg_service_outcome outcomes[2];

    (void)state;
    memset(outcomes, 0, sizeof(outcomes));
    outcomes[0].rc = outcomes[1].rc = -1;
    in_process_start(&ip);
    fg_proto_msg_init(&msgs[0]);
    fg_proto_msg_init(&msgs[1]);
    assert_int_equal(fg_proto_msg_start(&msgs[0], FG_PROTO_PROJECT_REMOVED, &gone), 0);
    assert_int_equal(fg_proto_msg_start(&msgs[1], FG_PROTO_TRIPLES_GENERATED, &p), 0);
    assert_int_equal(fg_proto_msg_add_event(&msgs[1], sha_of(0)), 0);
    assert_int_equal(fg_proto_msg_set_string(&msgs[1], "payload", payload), 0);
    for (int i = 0; i < 2; i++)
        assert_int_equal(fg_proto_msg_validate(&msgs[i]), 0);

    tg_consumer_handle_msgs(ip.c, publisher, NULL, msgs, 2, outcomes);
    assert_int_equal(outcomes[0].rc, 0);
    assert_int_equal(outcomes[1].rc, 0);
    wait_reply(&reply, &p, FG_PROTO_SUB_TO_TRIPLES_STORE);
    fg_proto_msg_dispose(&reply);
    assert_int_equal(count(&p, "*", "?c a fg:Commit"), 1);
    for (int i = 0; i < 2; i++)
        fg_proto_msg_dispose(&msgs[i]);
    in_process_stop(&ip);
    free(payload);
    drop(&p);
}

typedef struct {
    fg_pg_conn *db;
    const char *id;
} recorded;

static bool row_exists(void *payload)
{
    recorded *r = payload;
    const char *params[1] = {r->id};
    fg_pg_result *res = NULL;
    bool found;

    assert_int_equal(fg_pg_exec(&res, r->db,
                                "SELECT 1 FROM received_message WHERE message_id = $1::uuid"
                                " AND category = 'FORGE_EVENT' AND event = 'star'",
                                1, params),
                     0);
    found = fg_pg_result_rows(res) == 1;
    fg_pg_result_free(res);
    return found;
}

static void test_tg__forge_events_are_recorded_and_acknowledged(void **state)
{
    fg_proto_project p = project_new();
    fg_proto_msg msg;
    recorded r = {NULL, NULL};

    (void)state;
    assert_int_equal(
        fg_pg_connect(&r.db, fg_test_stack_env("FG_TRIPLES_GENERATOR_DB_URL"), WAIT_MS), 0);
    fg_proto_msg_init(&msg);
    assert_int_equal(fg_proto_msg_start(&msg, FG_PROTO_FORGE_EVENT, &p), 0);
    assert_int_equal(fg_proto_msg_set_string(&msg, "event", "star"), 0);
    assert_int_equal(fg_proto_msg_set_string(&msg, "action", "created"), 0);
    assert_int_equal(fg_proto_msg_set_string(&msg, "deliveryId", "tg-it-delivery"), 0);
    assert_int_equal(fg_proto_msg_set(&msg, "payload", json_tokener_parse("{\"action\":1}")), 0);
    publish(&msg);
    r.id = msg.id;
    assert_true(fg_test_wait_until(row_exists, &r, WAIT_MS));
    assert_int_equal(fg_pg_exec(NULL, r.db,
                                "DELETE FROM received_message WHERE message_id = "
                                "$1::uuid",
                                1, &r.id),
                     0);
    fg_proto_msg_dispose(&msg);
    fg_pg_free(r.db);
}

static void test_tg__sparql_route_answers_standard_json(void **state)
{
    fg_proto_project p = project_new();
    char *payload = generate(&p, 1);
    char auth[256], body[1024], url[512];
    const char *headers[2] = {auth, "Content-Type: application/json"};
    fg_http_client *http = NULL;
    fg_http_client_request req;
    fg_http_client_response res;
    json_object *root, *b, *row, *v, *type;

    (void)state;
    upload(&p, payload, 1);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", fg_test_stack_env("FG_SERVICE_KEY"));
    snprintf(url, sizeof(url), "%s/sparql", fg_test_stack_env("FG_TRIPLES_GENERATOR_URL"));
    snprintf(body, sizeof(body),
             "{\"query\":\"SELECT ?m ?n WHERE { GRAPH <%s/projects/%lld> { ?c <" TG_RDF_NS_FG
             "isMerge> ?m ; <" TG_RDF_NS_FG "insertions> ?n } }\"}",
             graph_base, p.id);
    assert_int_equal(fg_http_client_new(&http, NULL), 0);
    fg_http_client_request_init(&req);
    req.method = "POST";
    req.url = url;
    req.headers = headers;
    req.nheaders = 2;
    req.body = body;
    req.body_len = strlen(body);
    fg_http_client_response_init(&res);
    assert_int_equal(fg_http_client_send(http, &res, &req), 0);
    assert_int_equal(res.status, 200);
    assert_non_null(root = json_tokener_parse(res.body.ptr));
    assert_true(json_object_object_get_ex(root, "results", &b));
    assert_true(json_object_object_get_ex(b, "bindings", &b));
    assert_int_equal(json_object_array_length(b), 1);
    row = json_object_array_get_idx(b, 0);
    assert_true(json_object_object_get_ex(row, "m", &v));
    assert_true(json_object_object_get_ex(v, "type", &type));
    assert_string_equal(json_object_get_string(type), "literal"); /* not typed-literal */
    assert_true(json_object_object_get_ex(v, "value", &v));
    assert_string_equal(json_object_get_string(v), "false"); /* not Virtuoso's "0" */
    json_object_put(root);
    /* no key, no answer; a bad query is a 400 */
    req.nheaders = 0;
    assert_int_equal(fg_http_client_send(http, &res, &req), 0);
    assert_int_equal(res.status, 401);
    req.nheaders = 2;
    req.body = "{\"query\":\"SELECT ?x WHERE {\"}";
    req.body_len = strlen(req.body);
    assert_int_equal(fg_http_client_send(http, &res, &req), 0);
    assert_int_equal(res.status, 400);
    fg_http_client_response_dispose(&res);
    fg_http_client_free(http);
    free(payload);
    drop(&p);
}

/* The Graph Store path alone, on a realistic batch: prints the rate (not asserted: the machine
 * is shared) and checks that every triple arrived. */
static void test_tg__upload_speed(void **state)
{
    enum { COMMITS = 20000 };
    fg_proto_project p = project_new();
    char graph[TG_RDF_IRI_MAX], sha[41], email[32], msg[128];
    tg_rdf_doc doc;
    fg_buf nt;
    size_t lines = 0, requests = 0;
    long long t0, ms, generate_ms, gzip_ms;
    fg_buf b64;

    (void)state;
    fg_buf_init(&nt, (size_t)1 << 30);
    fg_buf_init(&b64, (size_t)1 << 30);
    assert_int_equal(tg_rdf_project_iri(graph, graph_base, p.id), 0);
    assert_int_equal(tg_rdf_doc_init(&doc, graph_base, false, p.id), 0);
    t0 = fg_test_now_ms();
    for (int i = 0; i < COMMITS; i++) {
        fg_proto_trailer t[] = {{"Signed-off-by", "Maintainer <m@x.org>"},
                                {"Reviewed-by", "Reviewer <r@x.org>"}};
        fg_proto_commit c;
        memset(&c, 0, sizeof(c));
        snprintf(sha, sizeof(sha), "%040x", i + 1);
        snprintf(email, sizeof(email), "dev%d@x.org", i % 500);
        snprintf(msg, sizeof(msg), "subsystem: change number %d\n\nSigned-off-by: ...\n", i);
        c.sha = sha;
        c.author = (fg_proto_person){"Dev", email, "2023-02-07T17:13:12+01:00"};
        c.committer = (fg_proto_person){"Maintainer", "m@x.org", "2023-02-08T10:00:00Z"};
        c.message = msg;
        c.trailers = t;
        c.trailer_count = 2;
        c.insertions = i % 100;
        c.files_changed = 1;
        assert_int_equal(tg_rdf_put_commit(&nt, &doc, &c), 0);
    }
    generate_ms = fg_test_now_ms() - t0;
    t0 = fg_test_now_ms();
    assert_int_equal(tg_payload_encode(&b64, nt.ptr, nt.len), 0);
    gzip_ms = fg_test_now_ms() - t0;
    for (size_t i = 0; i < nt.len; i++)
        lines += nt.ptr[i] == '\n';
    printf("generation: %d commits in %lld ms, payload %.1f MB (gzip+base64 %lld ms)\n", COMMITS,
           generate_ms, (double)b64.len / 1e6, gzip_ms);
    t0 = fg_test_now_ms();
    assert_int_equal(tg_store_upload(store, &requests, graph, nt.ptr, nt.len), 0);
    ms = fg_test_now_ms() - t0;
    printf("upload: %d commits, %zu triples, %.1f MB in %zu request(s): %lld ms, %.0f triples/s, "
           "%.1f MB/s\n",
           COMMITS, lines, (double)nt.len / 1e6, requests, ms,
           (double)lines * 1000.0 / (double)(ms ? ms : 1),
           (double)nt.len / 1e3 / (double)(ms ? ms : 1));
    assert_int_equal(count(&p, "*", "?s ?p ?o"), (long long)lines);
    tg_rdf_doc_dispose(&doc);
    fg_buf_dispose(&nt);
    fg_buf_dispose(&b64);
    drop(&p);
}

/* ---- setup ------------------------------------------------------------------------------- */

static int setup(void **state)
{
    static const char *const categories[] = {"EVENTS_STATUS_CHANGE"};
    fg_amqp_options o;
    tg_store_options so = {fg_test_stack_env("FG_TRIPLESTORE_URL"),
                           fg_test_stack_env("FG_TRIPLESTORE_USER"),
                           fg_test_stack_env("FG_TRIPLESTORE_PASSWORD"),
                           &tg_store_virtuoso,
                           120000,
                           3,
                           0};

    (void)state;
    amqp_url = fg_test_stack_env("FG_AMQP_URL");
    graph_base = fg_test_stack_env("FG_GRAPH_BASE");
    fg_test_stack_env("FG_TRIPLES_GENERATOR_URL");
    first_project = next_project = 900000000000LL + (long long)getpid() * 100;
    snprintf(service, sizeof(service), "tg-it-%d", (int)getpid());
    fg_amqp_options_init(&o);
    o.url = amqp_url;
    o.service = service;
    o.categories = categories;
    o.ncategories = 1;
    if (fg_amqp_new(&inbox, &o) < 0 || fg_amqp_connect(inbox, WAIT_MS) < 0 ||
        fg_amqp_declare(inbox) < 0 || fg_amqp_consume(inbox) < 0)
        return -1;
    o.service = NULL;
    o.categories = NULL;
    o.ncategories = 0;
    if (fg_amqp_new(&publisher, &o) < 0 || fg_amqp_connect(publisher, WAIT_MS) < 0 ||
        fg_amqp_declare(publisher) < 0)
        return -1;
    return tg_store_new(&store, &so) < 0 ? -1 : 0;
}

static int teardown(void **state)
{
    (void)state;
    while (nstash > 0)
        fg_proto_msg_dispose(&stash[--nstash]);
    fg_amqp_free(inbox);
    fg_amqp_free(publisher);
    tg_store_free(store);
    fg_test_delete_queues(amqp_url, service);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tg__generation_answers_with_a_gzip_payload),
        cmocka_unit_test(test_tg__uploaded_commits_are_queryable),
        cmocka_unit_test(test_tg__uploading_twice_changes_nothing),
        cmocka_unit_test(test_tg__clean_up_removes_exactly_those_commits),
        cmocka_unit_test(test_tg__clean_up_spans_several_update_requests),
        cmocka_unit_test(test_tg__a_batch_uploads_a_project_s_payloads_in_one_request),
        cmocka_unit_test(test_tg__a_batch_with_a_silent_delivery_answers_the_others),
        cmocka_unit_test(test_tg__clean_up_all_drops_the_graph),
        cmocka_unit_test(test_tg__project_removed_drops_the_graph),
        cmocka_unit_test(test_tg__a_store_that_is_down_gives_a_recoverable_failure),
        cmocka_unit_test(test_tg__forge_events_are_recorded_and_acknowledged),
        cmocka_unit_test(test_tg__sparql_route_answers_standard_json),
        cmocka_unit_test(test_tg__upload_speed),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
