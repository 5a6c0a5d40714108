/*
 * The message handlers of triples-generator (see tg_consume.h).
 *
 * Failure policy, by where the fault lies:
 *  - the message itself (schema): FG_EINVALID, parked by the runtime;
 *  - one commit body that cannot become RDF: that event gets ToFailure
 *    GENERATION_NON_RECOVERABLE_FAILURE, the rest of the batch goes on;
 *  - a payload that does not decode, or that the store refuses for good (4xx):
 *    TRANSFORMATION_NON_RECOVERABLE_FAILURE;
 *  - the store down, slow or refusing our credentials during an upload:
 *    TRANSFORMATION_RECOVERABLE_FAILURE, event-log brings the work back later;
 *  - the store down during CLEAN_UP or a drop, or the broker not confirming a reply: an error,
 *    so the runtime retries the delivery (every effect here is idempotent).
 */
#include "tg_consume.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fg/log.h"
#include "tg_payload.h"
#include "tg_rdf.h"

typedef struct {
    fg_metric *commits_generated;
    fg_metric *commits_failed;
    fg_metric *skipped_trailers;
    fg_metric *generation_seconds;
    fg_metric *triples_uploaded;
    fg_metric *bytes_uploaded;
    fg_metric *upload_seconds;
    fg_metric *transformation_failed[2]; /* recoverable, non-recoverable */
    fg_metric *commits_cleaned;
    fg_metric *graphs_dropped;
    fg_metric *forge_messages[3]; /* MEMBER_SYNC, PROJECT_SYNC, FORGE_EVENT */
} tg_metrics;

struct tg_consumer {
    tg_settings settings;
    char graph_base[TG_RDF_BASE_MAX + 1];
    tg_store *store;
    tg_projects *projects;
    tg_metrics m;
    char instance[TG_INSTANCE_MAX];
    long long last_subscription_ms; /* 0: never sent */
};

/* The replies one delivery produces, published together. */
typedef struct {
    fg_proto_msg *msgs;
    size_t n, cap;
} replies;

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- set-up ------------------------------------------------------------------------------ */

static int metrics_init(tg_metrics *m, fg_metrics *reg)
{
    static const char commits[] = "fg_triples_generator_commits_total";
    static const char commits_help[] = "commit bodies turned into triples, or refused";
    static const char tfail[] = "fg_triples_generator_transformation_failures_total";
    static const char tfail_help[] = "uploads answered with ToFailure, by new status";
    static const char forge[] = "fg_triples_generator_forge_messages_total";
    static const char forge_help[] = "MEMBER_SYNC, PROJECT_SYNC and FORGE_EVENT recorded (no-ops)";
    static const double seconds[] = {.01, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60};
    const size_t nseconds = sizeof(seconds) / sizeof(seconds[0]);
    int rc;

    if ((rc = fg_metrics_counter(&m->commits_generated, reg, commits, commits_help,
                                 FG_METRIC_LABELS("outcome", "generated"))) < 0 ||
        (rc = fg_metrics_counter(&m->commits_failed, reg, commits, commits_help,
                                 FG_METRIC_LABELS("outcome", "failed"))) < 0 ||
        (rc = fg_metrics_counter(
             &m->skipped_trailers, reg, "fg_triples_generator_skipped_trailers_total",
             "trailers of a known key whose value is not 'Name <email>'", NULL)) < 0 ||
        (rc = fg_metrics_histogram(&m->generation_seconds, reg,
                                   "fg_triples_generator_generation_seconds",
                                   "time to turn one AWAITING_GENERATION batch into a payload",
                                   NULL, seconds, nseconds)) < 0 ||
        (rc = fg_metrics_counter(&m->triples_uploaded, reg,
                                 "fg_triples_generator_triples_uploaded_total",
                                 "N-Triples lines sent to the triple store", NULL)) < 0 ||
        (rc = fg_metrics_counter(&m->bytes_uploaded, reg,
                                 "fg_triples_generator_uploaded_bytes_total",
                                 "bytes of N-Triples sent to the triple store", NULL)) < 0 ||
        (rc = fg_metrics_histogram(&m->upload_seconds, reg, "fg_triples_generator_upload_seconds",
                                   "time of one upload: the TRIPLES_GENERATED payloads of a "
                                   "project that arrived together",
                                   NULL, seconds, nseconds)) < 0 ||
        (rc = fg_metrics_counter(
             &m->transformation_failed[0], reg, tfail, tfail_help,
             FG_METRIC_LABELS("status", "TRANSFORMATION_RECOVERABLE_FAILURE"))) < 0 ||
        (rc = fg_metrics_counter(
             &m->transformation_failed[1], reg, tfail, tfail_help,
             FG_METRIC_LABELS("status", "TRANSFORMATION_NON_RECOVERABLE_FAILURE"))) < 0 ||
        (rc = fg_metrics_counter(
             &m->commits_cleaned, reg, "fg_triples_generator_commits_cleaned_total",
             "commits whose triples CLEAN_UP removed from a graph", NULL)) < 0 ||
        (rc = fg_metrics_counter(
             &m->graphs_dropped, reg, "fg_triples_generator_graphs_dropped_total",
             "project graphs dropped (CLEAN_UP all, PROJECT_REMOVED)", NULL)) < 0 ||
        (rc = fg_metrics_counter(&m->forge_messages[0], reg, forge, forge_help,
                                 FG_METRIC_LABELS("category", "MEMBER_SYNC"))) < 0 ||
        (rc = fg_metrics_counter(&m->forge_messages[1], reg, forge, forge_help,
                                 FG_METRIC_LABELS("category", "PROJECT_SYNC"))) < 0)
        return rc;
    return fg_metrics_counter(&m->forge_messages[2], reg, forge, forge_help,
                              FG_METRIC_LABELS("category", "FORGE_EVENT"));
}

/* fg_error_last() copied out, since fg_error_set writes over it */
static const char *last_error(char *buf, size_t size)
{
    snprintf(buf, size, "%s", fg_error_last());
    return buf;
}

static int check_settings(const tg_settings *s)
{
    char cause[256];

    if (s->graph_base == NULL)
        return fg_error_set(FG_EINVALID, "FG_GRAPH_BASE: missing");
    if (tg_rdf_check_base(s->graph_base) < 0)
        return fg_error_set(FG_EINVALID, "FG_GRAPH_BASE: %s", last_error(cause, sizeof(cause)));
    if (s->ntriples_max < 1024 || s->clean_up_batch < 1 ||
        s->clean_up_batch > TG_CLEAN_UP_BATCH_MAX)
        return fg_error_set(FG_EINVALID, "triples-generator settings out of range");
    return 0;
}

int tg_consumer_new(tg_consumer **out, const tg_settings *settings, tg_store *store,
                    tg_projects *projects, fg_metrics *metrics)
{
    tg_consumer *c = NULL;
    char host[64];
    int rc = FG_ERROR;

    *out = NULL;
    if ((rc = check_settings(settings)) < 0)
        goto done;
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory");
        goto done;
    }
    c->store = store;
    c->projects = projects;
    store = NULL;
    projects = NULL;
    c->settings = *settings;
    snprintf(c->graph_base, sizeof(c->graph_base), "%s", settings->graph_base);
    c->settings.graph_base = c->graph_base;
    if (gethostname(host, sizeof(host)) != 0)
        snprintf(host, sizeof(host), "unknown");
    host[sizeof(host) - 1] = '\0';
    snprintf(c->instance, sizeof(c->instance), "%s:%ld", host, (long)getpid());
    if ((rc = metrics_init(&c->m, metrics)) < 0)
        goto done;
    *out = c;
    c = NULL;
    rc = 0;
done:
    tg_store_free(store);
    tg_projects_free(projects);
    tg_consumer_free(c);
    return rc;
}

void tg_consumer_free(tg_consumer *c)
{
    if (c == NULL)
        return;
    tg_store_free(c->store);
    tg_projects_free(c->projects);
    free(c);
}

/* ---- replies ----------------------------------------------------------------------------- */

static void replies_dispose(replies *r)
{
    for (size_t i = 0; i < r->n; i++)
        fg_proto_msg_dispose(&r->msgs[i]);
    free(r->msgs);
    r->msgs = NULL;
    r->n = r->cap = 0;
}

/* A new EVENTS_STATUS_CHANGE for the message's project, owned by r. */
static int replies_start(fg_proto_msg **out, replies *r, const fg_proto_msg *msg,
                         fg_proto_sub_category sub)
{
    fg_proto_msg *m;
    int rc;

    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 4;
        fg_proto_msg *grown = realloc(r->msgs, cap * sizeof(*grown));
        if (grown == NULL)
            return fg_error_set(FG_ENOMEM, "out of memory");
        r->msgs = grown;
        r->cap = cap;
    }
    m = &r->msgs[r->n++];
    fg_proto_msg_init(m);
    *out = m;
    if ((rc = fg_proto_msg_start(m, FG_PROTO_EVENTS_STATUS_CHANGE, &msg->project)) < 0)
        return rc;
    return fg_proto_msg_set_sub_category(m, sub);
}

/* Cuts a reason to TG_FAILURE_TEXT_MAX bytes at a character boundary (messages.md: 1..16384
 * characters) and never leaves it empty. */
static int set_reason(fg_proto_msg *m, const char *reason)
{
    char text[TG_FAILURE_TEXT_MAX + 1];
    size_t len = fg_proto_utf8_prefix(reason, TG_FAILURE_TEXT_MAX / 4);

    snprintf(text, sizeof(text), "%.*s", (int)len, reason);
    return fg_proto_msg_set_string(m, "message", text[0] ? text : "failed");
}

static int add_failure(replies *r, const fg_proto_msg *msg, const char *const *shas, size_t n,
                       const char *status, const char *reason)
{
    fg_proto_msg *m;
    int rc;

    if ((rc = replies_start(&m, r, msg, FG_PROTO_SUB_TO_FAILURE)) < 0 ||
        (rc = fg_proto_msg_set_string(m, "newStatus", status)) < 0 ||
        (rc = set_reason(m, reason)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++)
        if ((rc = fg_proto_msg_add_event(m, shas[i])) < 0)
            return rc;
    return 0;
}

/* Every event of msg, for a reply about the whole batch. */
static int add_all_events(fg_proto_msg *m, const fg_proto_msg *msg)
{
    int rc;

    for (size_t i = 0; i < fg_proto_msg_count(msg, "events"); i++)
        if ((rc = fg_proto_msg_add_event(m, fg_proto_msg_event_sha(msg, i))) < 0)
            return rc;
    return 0;
}

static int add_batch_failure(replies *r, const fg_proto_msg *msg, const char *status,
                             const char *reason)
{
    fg_proto_msg *m;
    int rc;

    if ((rc = replies_start(&m, r, msg, FG_PROTO_SUB_TO_FAILURE)) < 0 ||
        (rc = fg_proto_msg_set_string(m, "newStatus", status)) < 0 ||
        (rc = set_reason(m, reason)) < 0)
        return rc;
    return add_all_events(m, msg);
}

/* Serialises and publishes every reply, waiting for the broker's confirms. */
static int replies_publish(replies *r, fg_amqp *amqp)
{
    fg_buf *bodies = NULL;
    fg_amqp_message *out = NULL;
    size_t confirmed = 0, n = r->n;
    int rc = FG_ERROR;

    if (n == 0)
        return 0;
    if ((bodies = calloc(n, sizeof(*bodies))) == NULL || (out = calloc(n, sizeof(*out))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        fg_buf_init(&bodies[i], FG_PROTO_MESSAGE_MAX);
    for (size_t i = 0; i < n; i++) {
        if ((rc = fg_proto_msg_serialise(&bodies[i], &r->msgs[i])) < 0)
            goto done;
        out[i] = (fg_amqp_message){r->msgs[i].id, fg_proto_category_name(r->msgs[i].category),
                                   bodies[i].ptr, bodies[i].len};
    }
    if ((rc = fg_amqp_publish_batch(&confirmed, amqp, out, n, TG_PUBLISH_TIMEOUT_MS)) < 0)
        goto done;
    rc = 0;
done:
    for (size_t i = 0; bodies != NULL && i < n; i++)
        fg_buf_dispose(&bodies[i]);
    free(bodies);
    free(out);
    return rc;
}

/* ---- AWAITING_GENERATION ----------------------------------------------------------------- */

/* One batch being generated: the commits read from the message, and which are still good. */
typedef struct {
    const fg_proto_msg *msg;
    fg_proto_commit *commits;
    bool *good;
    const char *clone_url;
    long long started_ms;
} generation;

static int fail_commit(tg_consumer *c, replies *r, generation *g, size_t i, const char *reason)
{
    const char *sha = fg_proto_msg_event_sha(g->msg, i);

    g->good[i] = false;
    fg_metric_inc(c->m.commits_failed);
    fg_log_emit(FG_LOG_WARN,
                FG_LOG_FIELDS(FG_LOG_INT("project", g->msg->project.id), FG_LOG_STR("sha", sha)),
                "commit cannot be turned into RDF: %s", reason);
    return add_failure(r, g->msg, &sha, 1, "GENERATION_NON_RECOVERABLE_FAILURE", reason);
}

static int add_generated(replies *r, generation *g, const size_t *idx, size_t n,
                         const fg_buf *payload)
{
    fg_proto_msg *m;
    long long elapsed = now_ms() - g->started_ms;
    int rc;

    if ((rc = replies_start(&m, r, g->msg, FG_PROTO_SUB_TO_TRIPLES_GENERATED)) < 0 ||
        (rc = fg_proto_msg_set_string(m, "payload", payload->ptr)) < 0 ||
        (rc = fg_proto_msg_set_int(m, "processingTime", elapsed > 0 ? elapsed : 0)) < 0)
        return rc;
    for (size_t k = 0; k < n; k++)
        if (g->good[idx[k]] &&
            (rc = fg_proto_msg_add_event(m, fg_proto_msg_event_sha(g->msg, idx[k]))) < 0)
            return rc;
    return 0;
}

static int generate_range(tg_consumer *c, replies *r, generation *g, const size_t *idx, size_t n);

/* The batch's triples did not fit one payload: each half gets its own ToTriplesGenerated. */
static int split(tg_consumer *c, replies *r, generation *g, const size_t *idx, size_t n)
{
    int rc;

    if (n == 1)
        return fail_commit(c, r, g, idx[0], "its triples alone exceed the payload limit");
    if ((rc = generate_range(c, r, g, idx, n / 2)) < 0)
        return rc;
    return generate_range(c, r, g, idx + n / 2, n - n / 2);
}

/* Writes the project node and the commits idx[0..n) that are still good into one payload. */
static int write_range(tg_consumer *c, replies *r, generation *g, const size_t *idx, size_t n,
                       fg_buf *nt, size_t *out_good)
{
    tg_rdf_doc doc;
    tg_rdf_project project = {g->msg->project.id, g->msg->project.forge, g->msg->project.path,
                              g->clone_url};
    size_t good = 0;
    int rc;

    if ((rc = tg_rdf_doc_init(&doc, c->graph_base, c->settings.store_emails, g->msg->project.id)) <
            0 ||
        (rc = tg_rdf_put_project(nt, &doc, &project)) < 0)
        goto done;
    for (size_t k = 0; k < n; k++) {
        size_t mark = nt->len;
        char reason[512];

        if (!g->good[idx[k]])
            continue;
        if ((rc = tg_rdf_put_commit(nt, &doc, &g->commits[idx[k]])) == FG_EINVALID) {
            nt->len = mark; /* the commit's partial lines go; the batch goes on */
            nt->ptr[mark] = '\0';
            if ((rc = fail_commit(c, r, g, idx[k], last_error(reason, sizeof(reason)))) < 0)
                goto done;
            continue;
        }
        if (rc < 0)
            goto done;
        good++;
    }
    fg_metric_add(c->m.skipped_trailers, (double)doc.counts.skipped_trailers);
    *out_good = good;
    rc = 0;
done:
    tg_rdf_doc_dispose(&doc);
    return rc;
}

static int generate_range(tg_consumer *c, replies *r, generation *g, const size_t *idx, size_t n)
{
    fg_buf nt, payload;
    size_t good = 0;
    int rc;

    fg_buf_init(&nt, c->settings.ntriples_max);
    fg_buf_init(&payload, FG_PROTO_PAYLOAD_MAX);
    if ((rc = write_range(c, r, g, idx, n, &nt, &good)) == 0 && good > 0)
        rc = tg_payload_encode(&payload, nt.ptr, nt.len);
    fg_buf_dispose(&nt);
    if (rc == FG_ETOOBIG) {
        fg_error_clear();
        rc = split(c, r, g, idx, n);
    } else if (rc == 0 && good > 0) {
        rc = add_generated(r, g, idx, n, &payload);
        fg_metric_add(c->m.commits_generated, (double)good);
    }
    fg_buf_dispose(&payload);
    return rc;
}

/* Reads every body; a body whose sha is not its event's, or that does not read, fails alone. */
static int read_commits(tg_consumer *c, replies *r, generation *g, size_t n)
{
    int rc;

    for (size_t i = 0; i < n; i++) {
        char reason[256];
        const char *sha = fg_proto_msg_event_sha(g->msg, i);

        if (fg_proto_commit_read(&g->commits[i], fg_proto_msg_commit_body(g->msg, i)) < 0) {
            snprintf(reason, sizeof(reason), "body: %s", fg_error_last());
        } else if (strcmp(g->commits[i].sha, sha) != 0) {
            snprintf(reason, sizeof(reason), "body: its sha is not the event's");
        } else {
            g->good[i] = true;
            continue;
        }
        if ((rc = fail_commit(c, r, g, i, reason)) < 0)
            return rc;
    }
    return 0;
}

static int generate(tg_consumer *c, replies *r, const fg_proto_msg *msg)
{
    size_t n = fg_proto_msg_count(msg, "events");
    generation g = {msg, NULL, NULL, NULL, now_ms()};
    size_t *idx = NULL;
    int rc = FG_ERROR;

    if ((g.commits = calloc(n, sizeof(*g.commits))) == NULL ||
        (g.good = calloc(n, sizeof(*g.good))) == NULL || (idx = calloc(n, sizeof(*idx))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++)
        idx[i] = i;
    if ((rc = read_commits(c, r, &g, n)) < 0)
        goto done;
    tg_projects_clone_url(&g.clone_url, c->projects, msg->project.id);
    if ((rc = generate_range(c, r, &g, idx, n)) < 0)
        goto done;
    fg_metric_observe(c->m.generation_seconds, (double)(now_ms() - g.started_ms) / 1000.0);
    rc = 0;
done:
    for (size_t i = 0; g.commits != NULL && i < n; i++)
        fg_proto_commit_dispose(&g.commits[i]);
    free(g.commits);
    free(g.good);
    free(idx);
    return rc;
}

/* ---- TRIPLES_GENERATED ------------------------------------------------------------------- */

static size_t count_lines(const char *s, size_t len)
{
    size_t n = 0;

    for (const char *p = s; (p = memchr(p, '\n', len - (size_t)(p - s))) != NULL; p++)
        n++;
    return n;
}

/* Appends the N-Triples of msg's payload to nt. A payload that cannot be read is the message's
 * own fault: it gets TRANSFORMATION_NON_RECOVERABLE_FAILURE in r, *out_failed is set, and nt is
 * unchanged. */
static int decode_payload(tg_consumer *c, replies *r, const fg_proto_msg *msg, fg_buf *nt,
                          bool *out_failed)
{
    const char *payload = fg_proto_msg_get_string(msg, "payload");
    char reason[TG_FAILURE_TEXT_MAX];
    int rc;

    *out_failed = false;
    if ((rc = tg_payload_decode(nt, payload, strlen(payload))) == FG_EINVALID || rc == FG_ETOOBIG) {
        *out_failed = true;
        fg_metric_inc(c->m.transformation_failed[1]);
        return add_batch_failure(r, msg, "TRANSFORMATION_NON_RECOVERABLE_FAILURE",
                                 last_error(reason, sizeof(reason)));
    }
    return rc;
}

/* Uploads nt, which holds the payloads of msgs[0..n) (all of one project), into the project's
 * graph, and gives each message its reply in rs[k]: ToTriplesStore, or the failure the store's
 * answer calls for. When the store refuses several payloads for good, no reply is made and
 * *out_refused says so: the caller sends them again one by one to find the one at fault. */
static int upload(tg_consumer *c, bool *out_refused, replies *const *rs,
                  const fg_proto_msg *const *msgs, size_t n, const fg_buf *nt, long long started)
{
    char graph[TG_RDF_IRI_MAX], reason[TG_FAILURE_TEXT_MAX];
    size_t requests = 0;
    fg_proto_msg *m;
    bool for_good;
    int rc;

    *out_refused = false;
    if ((rc = tg_rdf_project_iri(graph, c->graph_base, msgs[0]->project.id)) < 0)
        return rc;
    if ((rc = tg_store_upload(c->store, &requests, graph, nt->ptr, nt->len)) < 0) {
        for_good = rc == FG_EINVALID || rc == FG_ETOOBIG;
        last_error(reason, sizeof(reason));
        fg_log_emit(
            FG_LOG_WARN,
            FG_LOG_FIELDS(FG_LOG_INT("project", msgs[0]->project.id), FG_LOG_INT("messages", n)),
            "upload failed: %s", reason);
        if (for_good && n > 1) {
            *out_refused = true;
            return 0;
        }
        for (size_t k = 0; k < n; k++) {
            fg_metric_inc(c->m.transformation_failed[for_good]);
            if ((rc = add_batch_failure(rs[k], msgs[k],
                                        for_good ? "TRANSFORMATION_NON_RECOVERABLE_FAILURE"
                                                 : "TRANSFORMATION_RECOVERABLE_FAILURE",
                                        reason)) < 0)
                return rc;
        }
        return 0;
    }
    fg_metric_add(c->m.triples_uploaded, (double)count_lines(nt->ptr, nt->len));
    fg_metric_add(c->m.bytes_uploaded, (double)nt->len);
    fg_metric_observe(c->m.upload_seconds, (double)(now_ms() - started) / 1000.0);
    for (size_t k = 0; k < n; k++)
        if ((rc = replies_start(&m, rs[k], msgs[k], FG_PROTO_SUB_TO_TRIPLES_STORE)) < 0 ||
            (rc = fg_proto_msg_set_int(m, "processingTime", now_ms() - started)) < 0 ||
            (rc = add_all_events(m, msgs[k])) < 0)
            return rc;
    return 0;
}

static int transform(tg_consumer *c, replies *r, const fg_proto_msg *msg)
{
    long long started = now_ms();
    fg_buf nt;
    bool failed = false, refused = false;
    int rc;

    fg_buf_init(&nt, c->settings.ntriples_max);
    if ((rc = decode_payload(c, r, msg, &nt, &failed)) == 0 && !failed)
        rc = upload(c, &refused, &r, &msg, 1, &nt, started);
    fg_buf_dispose(&nt);
    return rc;
}

/* ---- CLEAN_UP, PROJECT_REMOVED ----------------------------------------------------------- */

#define FG_NS     "<" TG_RDF_NS_FG
#define PROV_NS   "<" TG_RDF_NS_PROV
#define SCHEMA_NS "<" TG_RDF_NS_SCHEMA

/* One commit's triples leave the graph: its activities, then the commit node (which holds the
 * schema:isPartOf link to the project). Another project's graph keeps its own copy. */
static int put_commit_delete(fg_buf *u, const char *graph, const char *commit)
{
    return fg_buf_printf(u,
                         "DELETE WHERE { GRAPH <%s> { ?a " FG_NS "commit> <%s> . ?a ?p ?o } } ;\n"
                         "DELETE WHERE { GRAPH <%s> { <%s> ?p ?o } } ;\n",
                         graph, commit, graph, commit);
}

/* Persons whom no activity in the graph names any more (their last commits just left) go too,
 * so the graph's contributors are those of its commits. */
static int put_orphans_delete(fg_buf *u, const char *graph)
{
    return fg_buf_printf(u,
                         "DELETE { GRAPH <%s> { ?person ?p ?o } } WHERE { GRAPH <%s> {"
                         " ?person a " SCHEMA_NS "Person> ; ?p ?o ."
                         " FILTER NOT EXISTS { ?act " PROV_NS "wasAssociatedWith> ?person } } }",
                         graph, graph);
}

/* One update request: commits [start, end) of msg, and with `last` the orphaned persons. */
static int put_clean_up(fg_buf *u, const tg_consumer *c, const fg_proto_msg *msg, const char *graph,
                        size_t start, size_t end, bool last)
{
    int rc = 0;

    fg_buf_clear(u);
    for (size_t i = start; i < end && rc == 0; i++) {
        char commit[TG_RDF_IRI_MAX];
        if ((rc = tg_rdf_commit_iri(commit, c->graph_base, fg_proto_msg_event_sha(msg, i))) == 0)
            rc = put_commit_delete(u, graph, commit);
    }
    if (rc < 0)
        return rc;
    if (last)
        return put_orphans_delete(u, graph);
    u->len -= 3; /* the trailing " ;\n": an update must not end with an empty operation */
    u->ptr[u->len] = '\0';
    return 0;
}

static int clean_up_commits(tg_consumer *c, const fg_proto_msg *msg, const char *graph)
{
    size_t n = fg_proto_msg_count(msg, "events"), batch = c->settings.clean_up_batch;
    fg_buf u;
    int rc = 0;

    fg_buf_init(&u, TG_STORE_QUERY_MAX);
    for (size_t start = 0; start < n && rc == 0; start += batch) {
        size_t end = n - start > batch ? start + batch : n;
        if ((rc = put_clean_up(&u, c, msg, graph, start, end, end == n)) == 0)
            rc = tg_store_update(c->store, u.ptr, u.len);
    }
    fg_buf_dispose(&u);
    if (rc == 0)
        fg_metric_add(c->m.commits_cleaned, (double)n);
    return rc;
}

static int drop_graph(tg_consumer *c, const fg_proto_msg *msg)
{
    char graph[TG_RDF_IRI_MAX];
    int rc;

    if ((rc = tg_rdf_project_iri(graph, c->graph_base, msg->project.id)) < 0 ||
        (rc = tg_store_drop_graph(c->store, graph)) < 0)
        return rc;
    tg_projects_forget(c->projects, msg->project.id);
    fg_metric_inc(c->m.graphs_dropped);
    return 0;
}

static int clean_up(tg_consumer *c, replies *r, const fg_proto_msg *msg)
{
    char graph[TG_RDF_IRI_MAX];
    fg_proto_msg *m;
    int rc;

    if (fg_proto_msg_get_bool(msg, "all")) {
        if ((rc = drop_graph(c, msg)) < 0)
            return rc;
        return replies_start(&m, r, msg, FG_PROTO_SUB_PROJECT_EVENTS_TO_NEW);
    }
    if ((rc = tg_rdf_project_iri(graph, c->graph_base, msg->project.id)) < 0 ||
        (rc = clean_up_commits(c, msg, graph)) < 0 ||
        (rc = replies_start(&m, r, msg, FG_PROTO_SUB_CLEAN_UP_DONE)) < 0)
        return rc;
    return add_all_events(m, msg);
}

/* ---- the forge messages, answered as no-ops for now -------------------------------------- */

static int record(tg_consumer *c, fg_pg_conn *db, const fg_proto_msg *msg, int which)
{
    char project[24];
    const char *params[6];

    fg_metric_inc(c->m.forge_messages[which]);
    if (db == NULL)
        return 0;
    snprintf(project, sizeof(project), "%lld", msg->project.id);
    params[0] = msg->id;
    params[1] = fg_proto_category_name(msg->category);
    params[2] = project;
    params[3] = fg_proto_msg_get_string(msg, "event");
    params[4] = fg_proto_msg_get_string(msg, "action");
    params[5] = fg_proto_msg_get_string(msg, "deliveryId");
    /* A log of what forge collection will handle; losing a row must not hold the queue up. */
    if (fg_pg_exec_prepared(NULL, db, "tg_record",
                            "INSERT INTO received_message (message_id, category, project_id,"
                            " event, action, delivery_id) VALUES ($1::uuid, $2, $3::bigint, $4,"
                            " $5, $6) ON CONFLICT (message_id) DO NOTHING",
                            6, params) < 0)
        fg_log_warn("%s %s not recorded: %s", params[1], msg->id, fg_error_last());
    return 0;
}

/* ---- dispatch ---------------------------------------------------------------------------- */

/* The effect of one message; its replies go to r (published by the caller). */
static int handle_one(tg_consumer *c, replies *r, fg_pg_conn *db, const fg_proto_msg *msg)
{
    switch (msg->category) {
    case FG_PROTO_AWAITING_GENERATION:
        return generate(c, r, msg);
    case FG_PROTO_TRIPLES_GENERATED:
        return transform(c, r, msg);
    case FG_PROTO_CLEAN_UP:
        return clean_up(c, r, msg);
    case FG_PROTO_PROJECT_REMOVED:
        return drop_graph(c, msg);
    case FG_PROTO_MEMBER_SYNC:
        return record(c, db, msg, 0);
    case FG_PROTO_PROJECT_SYNC:
        return record(c, db, msg, 1);
    case FG_PROTO_FORGE_EVENT:
        return record(c, db, msg, 2);
    default:
        return fg_error_set(FG_EINVALID, "triples-generator does not consume %s",
                            fg_proto_category_name(msg->category));
    }
}

int tg_consumer_handle_msg(tg_consumer *c, fg_amqp *amqp, fg_pg_conn *db, const fg_proto_msg *msg)
{
    replies r = {NULL, 0, 0};
    int rc;

    if ((rc = handle_one(c, &r, db, msg)) == 0)
        rc = replies_publish(&r, amqp);
    replies_dispose(&r);
    return rc;
}

/* Parses a delivery; a message too big never gets smaller, so it is parked like an invalid one. */
static int parse_delivery(fg_proto_msg *msg, const fg_amqp_delivery *delivery)
{
    char cause[512];
    int rc = fg_proto_msg_parse(msg, fg_amqp_delivery_body(delivery),
                                fg_amqp_delivery_body_len(delivery));

    if (rc == FG_ETOOBIG)
        rc = fg_error_set(FG_EINVALID, "%s", last_error(cause, sizeof(cause)));
    return rc;
}

int tg_consumer_handle(fg_service_bus *bus, const fg_amqp_delivery *delivery, void *payload)
{
    tg_consumer *c = payload;
    fg_proto_msg msg;
    int rc;

    fg_proto_msg_init(&msg);
    if ((rc = parse_delivery(&msg, delivery)) == 0)
        rc = tg_consumer_handle_msg(c, fg_service_bus_amqp(bus), fg_service_bus_db(bus), &msg);
    fg_proto_msg_dispose(&msg);
    return rc;
}

/* ---- batches of deliveries --------------------------------------------------------------- */

/*
 * The deliveries that had already arrived are handled together for one reason: the TRIPLES_
 * GENERATED of one project among them go to the store in one upload. Virtuoso's cost per POST is
 * large beside its cost per triple: 45 us of its CPU per triple in POSTs of 300 triples, 17 us at
 * 3,000 (one dispatched batch of 100 commits), 13.5 us at 12,000, 11.5 us at 26,000. Uploads keep
 * their order relative to the messages that also change the store (CLEAN_UP, PROJECT_REMOVED,
 * another project's upload), which flush the pending run first; generation and the forge
 * messages do not touch the store, so they are handled where they come. Each delivery gets its
 * own replies, all published (with confirms) before the runtime settles any delivery.
 */
typedef struct {
    tg_consumer *c;
    fg_amqp *amqp;
    const fg_proto_msg *msgs; /* one per delivery */
    replies *rs;              /* one per delivery */
    fg_service_outcome *out;  /* one per delivery */
    size_t run[TG_BATCH_MAX];
    size_t nrun;
    fg_buf nt; /* the run's N-Triples, payload after payload */
    long long run_started;
} batch;

static void set_outcome(fg_service_outcome *o, int rc)
{
    o->rc = rc;
    snprintf(o->reason, sizeof(o->reason), "%s", rc < 0 ? fg_error_last() : "");
}

static void flush_run(batch *b)
{
    const fg_proto_msg *msgs[TG_BATCH_MAX];
    replies *rs[TG_BATCH_MAX];
    bool refused = false;
    int rc;

    if (b->nrun == 0)
        return;
    for (size_t k = 0; k < b->nrun; k++) {
        msgs[k] = &b->msgs[b->run[k]];
        rs[k] = &b->rs[b->run[k]];
    }
    rc = upload(b->c, &refused, rs, msgs, b->nrun, &b->nt, b->run_started);
    for (size_t k = 0; k < b->nrun; k++)
        /* refused for good as a whole: each payload again on its own, to fail only the culprit */
        set_outcome(&b->out[b->run[k]], refused ? transform(b->c, rs[k], msgs[k]) : rc);
    b->nrun = 0;
    fg_buf_clear(&b->nt);
}

/* Adds a parsed TRIPLES_GENERATED to the run of its project (flushing first another project's
 * run, or one at its limits). */
static void add_to_run(batch *b, size_t i)
{
    const fg_proto_msg *msg = &b->msgs[i];
    bool failed = false;
    size_t mark;
    int rc;

    if (b->nrun > 0 && (b->msgs[b->run[0]].project.id != msg->project.id ||
                        b->nrun == TG_BATCH_MAX || b->nt.len >= TG_RUN_BYTES))
        flush_run(b);
    if (b->nrun == 0)
        b->run_started = now_ms();
    /* a run stops short of TG_RUN_BYTES and nt's cap is ntriples_max beyond: a payload that
     * fits alone fits here, and one that does not fails alone, as it would alone */
    mark = b->nt.len;
    rc = decode_payload(b->c, &b->rs[i], msg, &b->nt, &failed);
    if (rc < 0 || failed) {
        set_outcome(&b->out[i], rc);
        return;
    }
    /* payloads end with a newline; a run must not glue two lines together */
    if (b->nt.len > mark && b->nt.ptr[b->nt.len - 1] != '\n' &&
        (rc = fg_buf_putc(&b->nt, '\n')) < 0) {
        set_outcome(&b->out[i], rc);
        return;
    }
    b->run[b->nrun++] = i;
}

/* Publishes the replies of every delivery that succeeded, together; when the broker does not
 * confirm them, those deliveries fail (retried: every effect here repeats harmlessly). */
static void publish_all(batch *b, size_t n)
{
    replies all = {NULL, 0, 0};
    size_t total = 0;
    int rc = 0;

    for (size_t i = 0; i < n; i++)
        if (b->out[i].rc == 0)
            total += b->rs[i].n;
    if (total == 0)
        return;
    if ((all.msgs = calloc(total, sizeof(*all.msgs))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory");
    } else {
        for (size_t i = 0; i < n; i++) {
            if (b->out[i].rc != 0 || b->rs[i].n == 0)
                continue; /* failed, or nothing to say (msgs may be NULL) */
            memcpy(all.msgs + all.n, b->rs[i].msgs, b->rs[i].n * sizeof(*all.msgs));
            all.n += b->rs[i].n;
            b->rs[i].n = 0; /* moved: disposed with `all` */
        }
        all.cap = total;
        rc = replies_publish(&all, b->amqp);
    }
    for (size_t i = 0; rc < 0 && i < n; i++)
        if (b->out[i].rc == 0)
            set_outcome(&b->out[i], rc);
    replies_dispose(&all);
}

void tg_consumer_handle_msgs(tg_consumer *c, fg_amqp *amqp, fg_pg_conn *db,
                             const fg_proto_msg *msgs, size_t n, fg_service_outcome *outcomes)
{
    batch b = {c, amqp, msgs, NULL, outcomes, {0}, 0, {0}, 0};
    int rc;

    fg_buf_init(&b.nt, TG_RUN_BYTES + c->settings.ntriples_max);
    if (n > TG_BATCH_MAX || (b.rs = calloc(n, sizeof(*b.rs))) == NULL) {
        rc = fg_error_set(n > TG_BATCH_MAX ? FG_EINVALID : FG_ENOMEM,
                          "cannot take a batch of %zu messages", n);
        for (size_t i = 0; i < n; i++)
            if (msgs[i].root != NULL)
                set_outcome(&outcomes[i], rc);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        if (msgs[i].root == NULL) /* did not parse: its outcome is the caller's */
            continue;
        set_outcome(&outcomes[i], 0);
        switch (msgs[i].category) {
        case FG_PROTO_TRIPLES_GENERATED:
            add_to_run(&b, i);
            continue;
        case FG_PROTO_CLEAN_UP:
        case FG_PROTO_PROJECT_REMOVED:
            flush_run(&b);
            break;
        default:
            break;
        }
        set_outcome(&outcomes[i], handle_one(c, &b.rs[i], db, &msgs[i]));
    }
    flush_run(&b);
    publish_all(&b, n);
    for (size_t i = 0; i < n; i++)
        replies_dispose(&b.rs[i]);
    free(b.rs);
    fg_buf_dispose(&b.nt);
}

void tg_consumer_handle_batch(fg_service_bus *bus, fg_amqp_delivery *const *deliveries,
                              fg_service_outcome *outcomes, size_t n, void *payload)
{
    tg_consumer *c = payload;
    fg_proto_msg *msgs = calloc(n, sizeof(*msgs));
    int rc;

    if (msgs == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory for %zu messages", n);
        for (size_t i = 0; i < n; i++)
            set_outcome(&outcomes[i], rc);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        fg_proto_msg_init(&msgs[i]);
        if ((rc = parse_delivery(&msgs[i], deliveries[i])) < 0) {
            set_outcome(&outcomes[i], rc);
            fg_proto_msg_dispose(&msgs[i]); /* root NULL: skipped below */
        }
    }
    tg_consumer_handle_msgs(c, fg_service_bus_amqp(bus), fg_service_bus_db(bus), msgs, n, outcomes);
    for (size_t i = 0; i < n; i++)
        fg_proto_msg_dispose(&msgs[i]);
    free(msgs);
}

/* ---- SUBSCRIPTION ------------------------------------------------------------------------ */

static int capacity_object(struct json_object **out, const tg_consumer *c)
{
    struct json_object *o = json_object_new_object();

    if (o == NULL ||
        json_object_object_add(o, "AWAITING_GENERATION",
                               json_object_new_int64(c->settings.capacity_generation)) != 0 ||
        json_object_object_add(o, "TRIPLES_GENERATED",
                               json_object_new_int64(c->settings.capacity_transformation)) != 0 ||
        json_object_object_add(o, "CLEAN_UP",
                               json_object_new_int64(c->settings.capacity_clean_up)) != 0) {
        json_object_put(o);
        return fg_error_set(FG_ENOMEM, "out of memory");
    }
    *out = o;
    return 0;
}

int tg_consumer_subscription(fg_proto_msg *out, const tg_consumer *c)
{
    struct json_object *capacity = NULL, *in_flight = json_object_new_object();
    int rc;

    if (in_flight == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory");
    /* inFlight is empty: the handler and this tick share the bus thread, so when the tick runs
     * no event is in hand (event-log counts what it dispatched itself). */
    if ((rc = fg_proto_msg_start(out, FG_PROTO_SUBSCRIPTION, NULL)) < 0 ||
        (rc = fg_proto_msg_set_string(out, "service", TG_SERVICE_NAME)) < 0 ||
        (rc = fg_proto_msg_set_string(out, "instance", c->instance)) < 0 ||
        (rc = capacity_object(&capacity, c)) < 0 ||
        (rc = fg_proto_msg_set(out, "capacity", capacity)) < 0) {
        json_object_put(in_flight);
        return rc;
    }
    return fg_proto_msg_set(out, "inFlight", in_flight);
}

int tg_consumer_tick(fg_service_bus *bus, void *payload)
{
    tg_consumer *c = payload;
    long long now = now_ms();
    replies r = {NULL, 0, 0};
    int rc;

    if (c->last_subscription_ms != 0 && now - c->last_subscription_ms < TG_SUBSCRIPTION_MS)
        return 0;
    if ((r.msgs = calloc(1, sizeof(*r.msgs))) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory");
    r.cap = r.n = 1;
    fg_proto_msg_init(&r.msgs[0]);
    if ((rc = tg_consumer_subscription(&r.msgs[0], c)) == 0 &&
        (rc = replies_publish(&r, fg_service_bus_amqp(bus))) == 0)
        c->last_subscription_ms = now;
    replies_dispose(&r);
    return rc;
}
