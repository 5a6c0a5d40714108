/*
 * COMMIT_SYNC, GLOBAL_COMMIT_SYNC and PROJECT_REMOVED (see cs_sync.h). The algorithm and why it
 * is safe are in docs/internals/commit-sync.md; the comments here point at the rules it relies
 * on. Banners: event-log and token-repository calls / walks / publishing / the three messages.
 */
#include "cs_sync.h"

#include <json-c/json.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cs_mirror.h"
#include "fg/http_client.h"
#include "fg/log.h"

#define CS_SYNC_HTTP_BODY_MAX ((size_t)64 << 20) /* one GET /events page or project answer */

typedef struct {
    fg_metric *fetches;
    fg_metric *clones;
    fg_metric *walks;
    fg_metric *lock_waits;
    fg_metric *commits_sent;
    fg_metric *deletions_sent;
    fg_metric *mirrors_removed;
    fg_metric *unchanged;
    fg_metric *changed;
    fg_metric *reconciled;
    fg_metric *in_sync;
    fg_metric *repaired;
    fg_metric *failed;
} cs_sync_metrics;

struct cs_sync {
    cs_sync_settings settings;
    fg_http_client *http;
    cs_sync_metrics m;
};

/* One message being handled. */
typedef struct {
    cs_sync *s;
    const fg_proto_msg *msg;
    long long id; /* the project */
    cs_publish_fn publish;
    void *payload;
    git_repository *repo;
    cs_oids tips; /* sorted commits of the branches and tags after the fetch */
    bool cloned;
    bool registered;     /* false: the event log does not know the project (any more) */
    const char *outcome; /* for the summary line */
    size_t created;
    size_t deleted;
} job;

/* fg_error_set(code, "<fmt...>: <the previous message>"). The previous message is copied first:
 * fg_error_set writes the very buffer fg_error_last() returns. */
static int FG_PRINTF(2, 3) error_wrap(int code, const char *fmt, ...)
{
    char cause[512], prefix[512];
    va_list ap;

    snprintf(cause, sizeof(cause), "%s", fg_error_last());
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof(prefix), fmt, ap);
    va_end(ap);
    return fg_error_set(code, "%s: %s", prefix, cause);
}

/* ---- metrics ------------------------------------------------------------------------------ */

static int outcome_metric(fg_metric **out, fg_metrics *reg, const char *kind, const char *outcome)
{
    return fg_metrics_counter(out, reg, "fg_commit_sync_syncs_total",
                              "messages handled, by kind and outcome",
                              FG_METRIC_LABELS("kind", kind, "outcome", outcome));
}

static int make_metrics(cs_sync_metrics *m, fg_metrics *reg)
{
    int rc;

    if (reg == NULL)
        return 0;
    if ((rc = fg_metrics_counter(&m->fetches, reg, "fg_commit_sync_fetches_total",
                                 "fetches (clones included) of a mirror from its remote", NULL)) <
            0 ||
        (rc = fg_metrics_counter(&m->clones, reg, "fg_commit_sync_clones_total",
                                 "mirrors cloned (first sync of a project)", NULL)) < 0 ||
        (rc = fg_metrics_counter(&m->walks, reg, "fg_commit_sync_walks_total",
                                 "history walks (git_revwalk) over a mirror", NULL)) < 0 ||
        (rc = fg_metrics_counter(&m->lock_waits, reg, "fg_commit_sync_lock_waits_total",
                                 "syncs that waited for another sync of the same project", NULL)) <
            0 ||
        (rc = fg_metrics_counter(&m->commits_sent, reg, "fg_commit_sync_commits_sent_total",
                                 "commits sent in CREATION", NULL)) < 0 ||
        (rc = fg_metrics_counter(&m->deletions_sent, reg, "fg_commit_sync_deletions_sent_total",
                                 "commits sent as ToAwaitingDeletion", NULL)) < 0 ||
        (rc = fg_metrics_counter(&m->mirrors_removed, reg, "fg_commit_sync_mirrors_removed_total",
                                 "mirrors deleted after PROJECT_REMOVED", NULL)) < 0 ||
        (rc = outcome_metric(&m->unchanged, reg, "commit_sync", "unchanged")) < 0 ||
        (rc = outcome_metric(&m->changed, reg, "commit_sync", "changed")) < 0 ||
        (rc = outcome_metric(&m->reconciled, reg, "commit_sync", "reconciled")) < 0 ||
        (rc = outcome_metric(&m->in_sync, reg, "global_commit_sync", "in_sync")) < 0 ||
        (rc = outcome_metric(&m->repaired, reg, "global_commit_sync", "repaired")) < 0 ||
        (rc = outcome_metric(&m->failed, reg, "any", "failed")) < 0)
        return rc;
    return 0;
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

int cs_sync_new(cs_sync **out, const cs_sync_settings *settings, fg_metrics *metrics)
{
    cs_sync *s = calloc(1, sizeof(*s));
    fg_http_client_options o;
    int rc = FG_ERROR;

    *out = NULL;
    if (s == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory for the syncer");
    s->settings = *settings;
    if (s->settings.batch_bytes == 0)
        s->settings.batch_bytes = CS_SYNC_BATCH_BYTES_DEFAULT;
    fg_http_client_options_init(&o);
    if (settings->http_timeout_ms > 0) {
        o.timeout_ms = settings->http_timeout_ms;
        o.max_total_ms = 2L * settings->http_timeout_ms;
    }
    o.max_attempts = 3;
    o.max_response_bytes = CS_SYNC_HTTP_BODY_MAX;
    if ((rc = fg_http_client_new(&s->http, &o)) < 0 || (rc = make_metrics(&s->m, metrics)) < 0)
        goto done;
    *out = s;
    s = NULL;
    rc = 0;
done:
    cs_sync_free(s);
    return rc;
}

void cs_sync_free(cs_sync *s)
{
    if (s == NULL)
        return;
    fg_http_client_free(s->http);
    free(s);
}

/* ---- event-log and token-repository ------------------------------------------------------- */

/* GET url with the service key; any status is an answer. */
static int service_get(fg_http_client_response *res, cs_sync *s, const char *url, const char *what,
                       long long project)
{
    fg_buf auth;
    const char *headers[1];
    fg_http_client_request req;
    int rc;

    fg_buf_init(&auth, 1024);
    if ((rc = fg_buf_printf(&auth, "Authorization: Bearer %s", s->settings.service_key)) < 0)
        goto done;
    fg_http_client_request_init(&req);
    req.url = url;
    headers[0] = auth.ptr;
    req.headers = headers;
    req.nheaders = 1;
    if ((rc = fg_http_client_send(s->http, res, &req)) < 0)
        rc =
            error_wrap(FG_EUNAVAILABLE, "project %lld: event-log did not answer %s", project, what);
done:
    fg_buf_dispose(&auth);
    return rc;
}

/* The clone URL event-log registered for the project (GET /projects/{id} -> "url"). *out is
 * malloc'd, or NULL when event-log does not know the project. */
static int project_url(char **out, job *j)
{
    char url[CS_MIRROR_URL_MAX];
    fg_http_client_response res;
    struct json_object *root = NULL, *v = NULL;
    int rc = FG_ERROR;

    *out = NULL;
    fg_http_client_response_init(&res);
    snprintf(url, sizeof(url), "%s/projects/%lld", j->s->settings.event_log_url, j->id);
    if ((rc = service_get(&res, j->s, url, "GET /projects/{id}", j->id)) < 0)
        goto done;
    if (res.status == 404) {
        rc = 0;
        goto done;
    }
    if (res.status != 200) {
        rc = fg_error_set(FG_EUNAVAILABLE,
                          "project %lld: event-log answered %ld to GET /projects/%lld", j->id,
                          res.status, j->id);
        goto done;
    }
    if ((root = json_tokener_parse(res.body.ptr)) == NULL ||
        !json_object_object_get_ex(root, "url", &v) || !json_object_is_type(v, json_type_string) ||
        json_object_get_string_len(v) == 0 ||
        (size_t)json_object_get_string_len(v) >= CS_MIRROR_URL_MAX) {
        rc = fg_error_set(FG_ERROR, "project %lld: event-log's project has no usable \"url\"",
                          j->id);
        goto done;
    }
    if ((*out = strdup(json_object_get_string(v))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory for a URL");
        goto done;
    }
    rc = 0;
done:
    json_object_put(root);
    fg_http_client_response_dispose(&res);
    return rc;
}

/* Appends s percent-encoded for a query value (an opaque cursor). */
static int put_query_value(fg_buf *out, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc = 0;

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0' && rc == 0; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~')
            rc = fg_buf_putc(out, (char)*p);
        else
            rc = fg_buf_printf(out, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
    }
    return rc;
}

/* Events that are on their way out are not the event log's current view of the project. */
static bool leaving(struct json_object *event)
{
    struct json_object *status;
    const char *name;

    if (!json_object_object_get_ex(event, "status", &status) ||
        !json_object_is_type(status, json_type_string))
        return false;
    name = json_object_get_string(status);
    return strcmp(name, "AWAITING_DELETION") == 0 || strcmp(name, "DELETING") == 0;
}

/* Adds one page's shas to all (and to live unless leaving); copies the next cursor into
 * cursor ("" at the end). */
static int read_events_page(cs_oids *all, cs_oids *live, char *cursor, const char *body,
                            long long project)
{
    struct json_object *root = json_tokener_parse(body), *events, *next;
    size_t n;
    git_oid oid;
    int rc = FG_ERROR;

    if (root == NULL || !json_object_object_get_ex(root, "events", &events) ||
        !json_object_is_type(events, json_type_array)) {
        rc = fg_error_set(FG_ERROR, "project %lld: GET /events answered without an events list",
                          project);
        goto done;
    }
    n = json_object_array_length(events);
    for (size_t i = 0; i < n; i++) {
        struct json_object *e = json_object_array_get_idx(events, i), *sha;

        if (!json_object_object_get_ex(e, "sha", &sha) ||
            json_object_get_string_len(sha) != GIT_OID_HEXSZ ||
            git_oid_fromstrn(&oid, json_object_get_string(sha), GIT_OID_HEXSZ) < 0) {
            rc = fg_error_set(FG_ERROR, "project %lld: GET /events: events[%zu] has no sha",
                              project, i);
            goto done;
        }
        if ((rc = cs_oids_add(all, &oid)) < 0 ||
            (!leaving(e) && (rc = cs_oids_add(live, &oid)) < 0))
            goto done;
    }
    cursor[0] = '\0';
    if (n > 0 && json_object_object_get_ex(root, "next", &next) && next != NULL) {
        const char *text = json_object_get_string(next);

        if (strlen(text) >= CS_SYNC_CURSOR_MAX) {
            rc = fg_error_set(FG_ERROR, "project %lld: GET /events: cursor too long", project);
            goto done;
        }
        snprintf(cursor, CS_SYNC_CURSOR_MAX, "%s", text);
    }
    rc = 0;
done:
    json_object_put(root);
    return rc;
}

/* Every event the event log holds for the project (GET /events, keyset pages), sorted: `all`,
 * and `live` without those already on their way out. */
static int event_log_events(cs_oids *all, cs_oids *live, job *j)
{
    char cursor[CS_SYNC_CURSOR_MAX] = "", previous[CS_SYNC_CURSOR_MAX];
    fg_http_client_response res;
    fg_buf url;
    int rc = FG_ERROR;

    fg_http_client_response_init(&res);
    fg_buf_init(&url, CS_MIRROR_URL_MAX + 3 * CS_SYNC_CURSOR_MAX);
    for (int page = 0;; page++) {
        if (page >= CS_SYNC_PAGES_MAX) {
            rc = fg_error_set(FG_ETOOBIG, "project %lld: more than %d pages of events", j->id,
                              CS_SYNC_PAGES_MAX);
            goto done;
        }
        fg_buf_clear(&url);
        if ((rc = fg_buf_printf(&url, "%s/events?project=%lld&limit=%d",
                                j->s->settings.event_log_url, j->id, CS_SYNC_EVENTS_PAGE)) < 0 ||
            (page > 0 && ((rc = fg_buf_puts(&url, "&after=")) < 0 ||
                          (rc = put_query_value(&url, cursor)) < 0)) ||
            (rc = service_get(&res, j->s, url.ptr, "GET /events", j->id)) < 0)
            goto done;
        if (res.status != 200) {
            rc =
                fg_error_set(FG_EUNAVAILABLE, "project %lld: event-log answered %ld to GET /events",
                             j->id, res.status);
            goto done;
        }
        snprintf(previous, sizeof(previous), "%s", cursor);
        if ((rc = read_events_page(all, live, cursor, res.body.ptr, j->id)) < 0)
            goto done;
        if (cursor[0] == '\0')
            break;
        if (strcmp(cursor, previous) == 0) {
            rc = fg_error_set(FG_ERROR, "project %lld: GET /events returned the same cursor twice",
                              j->id);
            goto done;
        }
    }
    cs_oids_sort_unique(all);
    cs_oids_sort_unique(live);
    rc = 0;
done:
    fg_buf_dispose(&url);
    fg_http_client_response_dispose(&res);
    return rc;
}

/* ---- walks -------------------------------------------------------------------------------- */

static int walk_failed(job *j)
{
    const git_error *e = git_error_last();

    return fg_error_set(FG_ERROR, "project %lld: walking the mirror failed: %s", j->id,
                        e ? e->message : "libgit2 error");
}

static int walk_start(git_revwalk **out, job *j, unsigned sorting)
{
    int rc;

    fg_metric_inc(j->s->m.walks);
    if (git_revwalk_new(out, j->repo) < 0 || git_revwalk_sorting(*out, sorting) < 0)
        return walk_failed(j);
    for (size_t i = 0; i < j->tips.n; i++)
        if ((rc = git_revwalk_push(*out, &j->tips.v[i])) < 0)
            return walk_failed(j);
    return 0;
}

typedef struct {
    git_time_t time;
    size_t tip;
} tip_time;

static int tip_time_compare(const void *a, const void *b)
{
    const tip_time *x = a, *y = b;

    return x->time < y->time ? -1 : x->time > y->time;
}

/* An unsorted (lazy) walk that still comes out newest first. libgit2 sets up any sorted walk
 * (GIT_SORT_TIME included) by walking the whole history first (limit_list), so asking for time
 * order cost a walk of all 100,000 commits (about a second) before the first one came out. An
 * unsorted walk inserts each parent into its list by date, and the tips, prepended as they are
 * pushed, go in oldest first so that the list starts newest first. */
static int walk_start_newest_first(git_revwalk **out, job *j)
{
    tip_time *order = NULL;
    git_commit *commit = NULL;
    int rc = FG_ERROR;

    fg_metric_inc(j->s->m.walks);
    if ((order = calloc(j->tips.n, sizeof(*order))) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory for %zu tips", j->tips.n);
    for (size_t i = 0; i < j->tips.n; i++) {
        if (git_commit_lookup(&commit, j->repo, &j->tips.v[i]) < 0) {
            rc = walk_failed(j);
            goto done;
        }
        order[i] = (tip_time){git_commit_time(commit), i};
        git_commit_free(commit);
    }
    qsort(order, j->tips.n, sizeof(*order), tip_time_compare);
    if (git_revwalk_new(out, j->repo) < 0 || git_revwalk_sorting(*out, GIT_SORT_NONE) < 0) {
        rc = walk_failed(j);
        goto done;
    }
    for (size_t i = 0; i < j->tips.n; i++)
        if (git_revwalk_push(*out, &j->tips.v[order[i].tip]) < 0) {
            rc = walk_failed(j);
            goto done;
        }
    rc = 0;
done:
    free(order);
    return rc;
}

/* Commits reachable from the tips and not from `hide`, parents before children: a prefix of
 * this order is closed under ancestry, which is what lets the next sync hide whatever the event
 * log reports as known even after a sync that stopped half-way. */
static int walk_ordered(cs_oids *out, job *j, const cs_oids *hide)
{
    git_revwalk *walk = NULL;
    git_oid oid;
    int rc = FG_ERROR, grc;

    out->n = 0;
    if (j->tips.n == 0)
        return 0;
    if ((rc = walk_start(&walk, j, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME | GIT_SORT_REVERSE)) < 0)
        goto done;
    for (size_t i = 0; hide != NULL && i < hide->n; i++)
        if (git_revwalk_hide(walk, &hide->v[i]) < 0)
            git_error_clear(); /* not in the mirror: nothing of it to hide */
    while ((grc = git_revwalk_next(&oid, walk)) == 0)
        if ((rc = cs_oids_add(out, &oid)) < 0)
            goto done;
    if (grc != GIT_ITEROVER) {
        rc = walk_failed(j);
        goto done;
    }
    rc = 0;
done:
    git_revwalk_free(walk);
    return rc;
}

/* Walks from the tips newest first, collecting every commit into `visited`, and stops as soon
 * as every candidate (sorted) has been met: reachable candidates are usually recent, so the
 * walk is short unless one is not reachable at all, and then `visited` is the whole reachable
 * set, which the reconciliation needs anyway. candidates NULL: walk everything. */
static int walk_until_met(cs_oids *visited, bool *out_complete, job *j, const cs_oids *candidates)
{
    git_revwalk *walk = NULL;
    git_oid oid;
    size_t met = 0;
    int rc = FG_ERROR, grc = GIT_ITEROVER;

    visited->n = 0;
    *out_complete = true;
    if (j->tips.n == 0)
        return 0;
    if ((rc = walk_start_newest_first(&walk, j)) < 0)
        goto done;
    while ((grc = git_revwalk_next(&oid, walk)) == 0) {
        if ((rc = cs_oids_add(visited, &oid)) < 0)
            goto done;
        if (candidates != NULL && cs_oids_contains(candidates, &oid) && ++met == candidates->n) {
            *out_complete = false;
            break;
        }
    }
    if (grc != 0 && grc != GIT_ITEROVER) {
        rc = walk_failed(j);
        goto done;
    }
    rc = 0;
done:
    git_revwalk_free(walk);
    return rc;
}

/* ---- publishing --------------------------------------------------------------------------- */

/* Publishes one serialised message (id and category as in its envelope) with confirms. */
static int publish_body(job *j, const char *id, const char *category, const fg_buf *body)
{
    fg_amqp_message m = {id, category, body->ptr, body->len};
    int rc;

    if ((rc = j->publish(&m, 1, j->payload)) < 0)
        rc = error_wrap(FG_EUNAVAILABLE, "project %lld: cannot publish %s", j->id, category);
    return rc;
}

static int publish_msg(job *j, fg_proto_msg *msg)
{
    fg_buf body;
    const char *category = fg_proto_category_name(msg->category);
    int rc;

    fg_buf_init(&body, FG_PROTO_MESSAGE_MAX);
    if ((rc = fg_proto_msg_serialise(&body, msg)) < 0) {
        /* our own output is wrong: retrying will not help, but it is not the input's fault */
        rc = error_wrap(FG_ERROR, "project %lld: cannot build %s", j->id, category);
        goto done;
    }
    rc = publish_body(j, msg->id, category, &body);
done:
    fg_buf_dispose(&body);
    return rc;
}

static int publish_deletions(job *j, const cs_oids *gone)
{
    char hex[GIT_OID_HEXSZ + 1];
    fg_proto_msg msg;
    int rc = 0;

    fg_proto_msg_init(&msg);
    for (size_t at = 0; at < gone->n && rc == 0; at += FG_PROTO_BATCH_MAX) {
        size_t end = at + FG_PROTO_BATCH_MAX < gone->n ? at + FG_PROTO_BATCH_MAX : gone->n;

        if ((rc = fg_proto_msg_start(&msg, FG_PROTO_EVENTS_STATUS_CHANGE, &j->msg->project)) < 0 ||
            (rc = fg_proto_msg_set_sub_category(&msg, FG_PROTO_SUB_TO_AWAITING_DELETION)) < 0)
            break;
        for (size_t i = at; i < end && rc == 0; i++)
            rc = fg_proto_msg_add_event(&msg, git_oid_tostr(hex, sizeof(hex), &gone->v[i]));
        if (rc == 0 && (rc = publish_msg(j, &msg)) == 0) {
            fg_metric_add(j->s->m.deletions_sent, (double)(end - at));
            j->deleted += end - at;
        }
    }
    fg_proto_msg_dispose(&msg);
    return rc;
}

/* A CREATION being filled with the extractor's bodies. The bodies go into the message as the
 * extractor wrote them (compact JSON from our own writer, checked by the extraction tests),
 * after an envelope that fg_proto built and validated: parsing each body into json-c, validating
 * a thousand of them and writing them out again cost the bus thread about 3 s of CPU per 100,000
 * commits. Every consumer still validates the whole message when it parses it. */
typedef struct {
    job *j;
    fg_proto_msg head; /* the envelope: id, occurredAt, project */
    fg_buf text;       /* the message so far: the envelope up to "commits":[, then the bodies */
    bool open;
    size_t count;
    size_t bytes;
} creation_batch;

#define CS_SYNC_COMMITS_KEY "\"commits\":[]"

/* Starts a message: the envelope is built with an empty commits list and syncComplete (the
 * schema wants one or the other), serialised, and kept up to the list's '['. In compact JSON a
 * quote inside a string is escaped, so the key's text cannot occur in one; "commits" is set
 * after the project, so its last occurrence is the key. */
static int batch_open(creation_batch *b)
{
    fg_buf envelope;
    const char *key = NULL;
    int rc;

    if (b->open)
        return 0;
    fg_buf_init(&envelope, FG_PROTO_MESSAGE_MAX);
    fg_buf_clear(&b->text);
    if ((rc = fg_proto_msg_start(&b->head, FG_PROTO_CREATION, &b->j->msg->project)) < 0 ||
        (rc = fg_proto_msg_set(&b->head, "commits", json_object_new_array())) < 0 ||
        (rc = fg_proto_msg_set_bool(&b->head, "syncComplete", true)) < 0 ||
        (rc = fg_proto_msg_serialise(&envelope, &b->head)) < 0) {
        rc = error_wrap(FG_ERROR, "project %lld: cannot build CREATION", b->j->id);
        goto done;
    }
    for (const char *p = envelope.ptr; (p = strstr(p, CS_SYNC_COMMITS_KEY)) != NULL; p++)
        key = p;
    if (key == NULL) {
        rc = fg_error_set(FG_ERROR, "project %lld: CREATION envelope without its commits list",
                          b->j->id);
        goto done;
    }
    if ((rc = fg_buf_put(&b->text, envelope.ptr,
                         (size_t)(key - envelope.ptr) + strlen(CS_SYNC_COMMITS_KEY) - 1)) < 0)
        goto done;
    b->open = true;
    rc = 0;
done:
    fg_buf_dispose(&envelope);
    return rc;
}

/* Closes the batch's text: the list, and on the sync's last message syncComplete and the sentAt
 * of the COMMIT_SYNC it ran for (syncSentAt: event-log matches the completion with that send).
 * sentAt passed proto's check as an RFC 3339 UTC timestamp: digits, '-', ':', '.', 'T', 'Z', so
 * it goes into the JSON text as it is. */
static int batch_close(creation_batch *b, bool sync_complete)
{
    const char *sent_at = sync_complete ? fg_proto_msg_get_string(b->j->msg, "sentAt") : NULL;
    int rc;

    if ((rc = fg_buf_puts(&b->text, sync_complete ? "],\"syncComplete\":true" : "]")) < 0)
        return rc;
    if (sent_at != NULL && (rc = fg_buf_printf(&b->text, ",\"syncSentAt\":\"%s\"", sent_at)) < 0)
        return rc;
    return fg_buf_putc(&b->text, '}');
}

/* Sends the batch; an empty one only to say that the sync is complete. */
static int batch_flush(creation_batch *b, bool sync_complete)
{
    int rc;

    if (!b->open && !sync_complete)
        return 0;
    if ((rc = batch_open(b)) < 0 || (rc = batch_close(b, sync_complete)) < 0 ||
        (rc = publish_body(b->j, b->head.id, "CREATION", &b->text)) < 0)
        return rc;
    fg_metric_add(b->j->s->m.commits_sent, (double)b->count);
    b->j->created += b->count;
    b->open = false;
    b->count = 0;
    b->bytes = 0;
    return 0;
}

/* A cheap guard on the one thing a mix-up would get wrong: the body is the commit's. */
static bool body_is_of(const char *body, size_t len, const git_oid *oid)
{
    static const char prefix[] = "{\"sha\":\"";
    const size_t n = sizeof(prefix) - 1;
    char hex[GIT_OID_HEXSZ + 1];

    git_oid_tostr(hex, sizeof(hex), oid);
    return len > n + GIT_OID_HEXSZ && memcmp(body, prefix, n) == 0 &&
           memcmp(body + n, hex, GIT_OID_HEXSZ) == 0 && body[len - 1] == '}';
}

static int on_commit(const char *body, size_t len, const git_oid *oid, void *payload)
{
    creation_batch *b = payload;
    char hex[GIT_OID_HEXSZ + 1];
    int rc;

    if (b->open &&
        (b->count == FG_PROTO_BATCH_MAX || b->bytes + len > b->j->s->settings.batch_bytes) &&
        (rc = batch_flush(b, false)) < 0)
        return rc;
    if (!body_is_of(body, len, oid))
        return fg_error_set(FG_ERROR, "project %lld: the body extracted for %s is not its own",
                            b->j->id, git_oid_tostr(hex, sizeof(hex), oid));
    if ((rc = batch_open(b)) < 0 || (b->count > 0 && (rc = fg_buf_putc(&b->text, ',')) < 0) ||
        (rc = fg_buf_put(&b->text, body, len)) < 0)
        return rc;
    b->count++;
    b->bytes += len;
    return 0;
}

/* Extracts `ordered` and sends it in CREATION batches (<= FG_PROTO_BATCH_MAX commits and about
 * batch_bytes each), in that order; the last one says syncComplete when asked. */
static int publish_creations(job *j, const cs_oids *ordered, bool sync_complete)
{
    creation_batch b = {j, {0}, {0}, false, 0, 0};
    cs_extract_options o;
    int rc;

    fg_proto_msg_init(&b.head);
    /* the bodies and the envelope; batch_bytes is at most 32 MiB */
    fg_buf_init(&b.text, FG_PROTO_MESSAGE_MAX);
    cs_extract_options_init(&o);
    o.threads = j->s->settings.extract_threads;
    if ((ordered->n == 0 ||
         (rc = cs_extract(j->repo, ordered->v, ordered->n, &o, on_commit, &b)) >= 0) &&
        (rc = batch_flush(&b, sync_complete)) >= 0)
        rc = 0;
    fg_proto_msg_dispose(&b.head);
    fg_buf_dispose(&b.text);
    return rc;
}

/* Asks the event log for a global sync (best effort: the periodic one comes anyway). */
static void request_global_sync(job *j)
{
    fg_proto_msg msg;

    fg_proto_msg_init(&msg);
    if (fg_proto_msg_start(&msg, FG_PROTO_GLOBAL_COMMIT_SYNC_REQUEST, &j->msg->project) < 0 ||
        publish_msg(j, &msg) < 0)
        fg_log_emit(FG_LOG_WARN, FG_LOG_FIELDS(FG_LOG_INT("project", j->id)),
                    "could not ask for a global sync: %s", fg_error_last());
    fg_proto_msg_dispose(&msg);
}

/* ---- the messages ------------------------------------------------------------------------- */

static bool is_http(const char *url)
{
    return strncmp(url, "https://", 8) == 0 || strncmp(url, "http://", 7) == 0;
}

static const char *token_user(fg_proto_forge forge)
{
    switch (forge) {
    case FG_PROTO_FORGE_GITHUB:
        return "x-access-token";
    case FG_PROTO_FORGE_GITLAB:
        return "oauth2";
    case FG_PROTO_FORGE_GIT:
        break;
    }
    return "git";
}

/* Common first step: where the project lives, its token, the fetch, the tips. */
static int prepare(job *j)
{
    char *url = NULL, *token = NULL;
    cs_remote remote;
    int rc = FG_ERROR;

    if ((rc = project_url(&url, j)) < 0)
        goto done;
    if (url == NULL) {
        j->registered = false;
        rc = 0;
        goto done;
    }
    if (is_http(url) &&
        (rc = cs_mirror_token(&token, j->s->http, j->s->settings.token_repository_url,
                              j->s->settings.service_key, j->id)) < 0)
        goto done;
    remote.url = url;
    remote.username = token_user(j->msg->project.forge);
    remote.token = token;
    fg_metric_inc(j->s->m.fetches);
    if ((rc = cs_mirror_update(&j->repo, &j->cloned, j->s->settings.mirror_dir, j->id, &remote)) <
        0)
        goto done;
    if (j->cloned)
        fg_metric_inc(j->s->m.clones);
    rc = cs_mirror_tips(&j->tips, j->repo);
done:
    if (token != NULL)
        explicit_bzero(token, strlen(token));
    free(token);
    free(url);
    return rc;
}

/* The `known` shas that are commits of the mirror; *out_missing when some are not. */
static int known_commits(cs_oids *out, bool *out_missing, job *j)
{
    struct json_object *known = fg_proto_msg_get(j->msg, "known");
    size_t n = known != NULL ? json_object_array_length(known) : 0;
    git_commit *commit = NULL;
    git_oid oid;
    int rc;

    *out_missing = false;
    for (size_t i = 0; i < n; i++) {
        const char *sha = json_object_get_string(json_object_array_get_idx(known, i));

        if (git_oid_fromstrn(&oid, sha, GIT_OID_HEXSZ) < 0 ||
            git_commit_lookup(&commit, j->repo, &oid) < 0) {
            git_error_clear();
            *out_missing = true;
            continue;
        }
        git_commit_free(commit);
        if ((rc = cs_oids_add(out, &oid)) < 0)
            return rc;
    }
    cs_oids_sort_unique(out);
    return 0;
}

/* The exact repair: compares the whole reachable set (sorted) with every event the event log
 * has, and sends both differences. `ordered` (parents first) may be NULL: walked here. */
static int reconcile(job *j, const cs_oids *reachable, const cs_oids *ordered, bool sync_complete)
{
    cs_oids all, live, gone, fresh, walked;
    int rc = FG_ERROR;

    cs_oids_init(&all);
    cs_oids_init(&live);
    cs_oids_init(&gone);
    cs_oids_init(&fresh);
    cs_oids_init(&walked);
    if ((rc = event_log_events(&all, &live, j)) < 0)
        goto done;
    for (size_t i = 0; i < live.n; i++)
        if (!cs_oids_contains(reachable, &live.v[i]) && (rc = cs_oids_add(&gone, &live.v[i])) < 0)
            goto done;
    if (ordered == NULL) {
        if ((rc = walk_ordered(&walked, j, NULL)) < 0)
            goto done;
        ordered = &walked;
    }
    for (size_t i = 0; i < ordered->n; i++)
        if (!cs_oids_contains(&all, &ordered->v[i]) &&
            (rc = cs_oids_add(&fresh, &ordered->v[i])) < 0)
            goto done;
    if ((rc = publish_deletions(j, &gone)) < 0 ||
        (rc = publish_creations(j, &fresh, sync_complete)) < 0)
        goto done;
    rc = 0;
done:
    cs_oids_dispose(&all);
    cs_oids_dispose(&live);
    cs_oids_dispose(&gone);
    cs_oids_dispose(&fresh);
    cs_oids_dispose(&walked);
    return rc;
}

/* Candidates whose reachability decides between the incremental and the exact path: the known
 * shas and the previous tips, less the current tips (trivially reachable). */
static int make_candidates(cs_oids *out, job *j, const cs_oids *known, const cs_oids *previous)
{
    int rc;

    for (size_t i = 0; i < known->n; i++)
        if (!cs_oids_contains(&j->tips, &known->v[i]) && (rc = cs_oids_add(out, &known->v[i])) < 0)
            return rc;
    for (size_t i = 0; i < previous->n; i++)
        if (!cs_oids_contains(&j->tips, &previous->v[i]) &&
            (rc = cs_oids_add(out, &previous->v[i])) < 0)
            return rc;
    cs_oids_sort_unique(out);
    return 0;
}

static int commit_sync(job *j)
{
    cs_oids previous, known, candidates, visited, hide, fresh;
    bool have_state = false, missing = false, complete = false;
    int rc = FG_ERROR;

    cs_oids_init(&previous);
    cs_oids_init(&known);
    cs_oids_init(&candidates);
    cs_oids_init(&visited);
    cs_oids_init(&hide);
    cs_oids_init(&fresh);
    if ((rc = prepare(j)) < 0 || !j->registered ||
        (rc = cs_mirror_state_read(&previous, &have_state, j->s->settings.mirror_dir, j->id)) < 0)
        goto done;
    if (have_state && cs_oids_equal(&previous, &j->tips)) {
        /* nothing moved since a complete sync: everything reachable was sent then */
        j->outcome = "unchanged: one fetch, no walk";
        fg_metric_inc(j->s->m.unchanged);
        rc = publish_creations(j, &fresh, true);
        goto done;
    }
    if ((rc = known_commits(&known, &missing, j)) < 0 ||
        (rc = make_candidates(&candidates, j, &known, &previous)) < 0)
        goto done;
    if (missing || candidates.n > 0) {
        if ((rc = walk_until_met(&visited, &complete, j, missing ? NULL : &candidates)) < 0)
            goto done;
    }
    if (complete && (missing || candidates.n > 0)) {
        /* something the event log has, or something we sent, is no longer reachable */
        cs_oids_sort_unique(&visited);
        j->outcome = "reconciled with the event log";
        fg_metric_inc(j->s->m.reconciled);
        if ((rc = reconcile(j, &visited, NULL, true)) < 0)
            goto done;
    } else {
        for (size_t i = 0; i < known.n; i++)
            if ((rc = cs_oids_add(&hide, &known.v[i])) < 0)
                goto done;
        for (size_t i = 0; i < previous.n; i++)
            if ((rc = cs_oids_add(&hide, &previous.v[i])) < 0)
                goto done;
        j->outcome = "synced";
        fg_metric_inc(j->s->m.changed);
        /* without a state, commits that left before this sync and are older than `known` go
         * unnoticed: the global sync finds them (asked first, so that everything this sync
         * sends is out before its syncComplete) */
        if (!have_state && known.n > 0)
            request_global_sync(j);
        if ((rc = walk_ordered(&fresh, j, &hide)) < 0 ||
            (rc = publish_creations(j, &fresh, true)) < 0)
            goto done;
    }
    rc = cs_mirror_state_write(j->s->settings.mirror_dir, j->id, &j->tips);
done:
    cs_oids_dispose(&previous);
    cs_oids_dispose(&known);
    cs_oids_dispose(&candidates);
    cs_oids_dispose(&visited);
    cs_oids_dispose(&hide);
    cs_oids_dispose(&fresh);
    return rc;
}

static int global_commit_sync(job *j)
{
    long long count = fg_proto_msg_get_int(j->msg, "count", 0);
    const char *latest = fg_proto_msg_get_string(j->msg, "latest");
    cs_oids ordered, sorted;
    git_oid oid;
    bool in_sync;
    int rc = FG_ERROR;

    cs_oids_init(&ordered);
    cs_oids_init(&sorted);
    if ((rc = prepare(j)) < 0 || !j->registered || (rc = walk_ordered(&ordered, j, NULL)) < 0)
        goto done;
    for (size_t i = 0; i < ordered.n; i++)
        if ((rc = cs_oids_add(&sorted, &ordered.v[i])) < 0)
            goto done;
    cs_oids_sort_unique(&sorted);
    in_sync =
        (size_t)count == sorted.n &&
        (count == 0 || (latest != NULL && git_oid_fromstrn(&oid, latest, GIT_OID_HEXSZ) == 0 &&
                        cs_oids_contains(&sorted, &oid)));
    if (in_sync) {
        j->outcome = "in sync";
        fg_metric_inc(j->s->m.in_sync);
        rc = 0;
        goto done;
    }
    j->outcome = "repaired";
    fg_metric_inc(j->s->m.repaired);
    if ((rc = reconcile(j, &sorted, &ordered, false)) < 0)
        goto done;
    /* both sides now agree on everything reachable from these tips */
    rc = cs_mirror_state_write(j->s->settings.mirror_dir, j->id, &j->tips);
done:
    cs_oids_dispose(&ordered);
    cs_oids_dispose(&sorted);
    return rc;
}

static int project_removed(job *j)
{
    int rc = cs_mirror_remove(j->s->settings.mirror_dir, j->id);

    if (rc == 0) {
        j->outcome = "mirror removed";
        fg_metric_inc(j->s->m.mirrors_removed);
    }
    return rc;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void log_summary(const job *j, const char *kind, int rc, long long ms)
{
    if (rc < 0) {
        fg_log_emit(FG_LOG_WARN,
                    FG_LOG_FIELDS(FG_LOG_INT("project", j->id), FG_LOG_STR("kind", kind),
                                  FG_LOG_INT("ms", ms)),
                    "%s of project %lld failed: %s", kind, j->id, fg_error_last());
    } else if (!j->registered) {
        fg_log_emit(FG_LOG_INFO,
                    FG_LOG_FIELDS(FG_LOG_INT("project", j->id), FG_LOG_STR("kind", kind)),
                    "%s of project %lld: the event log does not know the project: nothing to do",
                    kind, j->id);
    } else {
        fg_log_emit(FG_LOG_INFO,
                    FG_LOG_FIELDS(FG_LOG_INT("project", j->id), FG_LOG_STR("kind", kind),
                                  FG_LOG_INT("created", j->created),
                                  FG_LOG_INT("deleted", j->deleted), FG_LOG_INT("ms", ms)),
                    "%s of project %lld done: %s (%zu new, %zu gone)", kind, j->id, j->outcome,
                    j->created, j->deleted);
    }
}

int cs_sync_handle(cs_sync *s, const fg_proto_msg *msg, cs_publish_fn publish, void *payload)
{
    job j = {s, msg, 0, publish, payload, NULL, {0}, false, true, "", 0, 0};
    const char *kind = fg_proto_category_name(msg->category);
    cs_mirror_lock *lock = NULL;
    bool waited = false;
    long long t0 = now_ms();
    int rc = FG_ERROR;

    cs_oids_init(&j.tips);
    if ((msg->category != FG_PROTO_COMMIT_SYNC && msg->category != FG_PROTO_GLOBAL_COMMIT_SYNC &&
         msg->category != FG_PROTO_PROJECT_REMOVED) ||
        !msg->has_project)
        return fg_error_set(FG_EINVALID, "commit-sync does not handle %s", kind ? kind : "?");
    j.id = msg->project.id;
    if ((rc = cs_mirror_lock_take(&lock, &waited, s->settings.mirror_dir, j.id,
                                  s->settings.lock_timeout_ms)) < 0) {
        fg_metric_inc(s->m.failed);
        return rc;
    }
    if (waited)
        fg_metric_inc(s->m.lock_waits);
    fg_log_emit(FG_LOG_INFO, FG_LOG_FIELDS(FG_LOG_INT("project", j.id), FG_LOG_STR("kind", kind)),
                "%s of project %lld started", kind, j.id);
    if (msg->category == FG_PROTO_COMMIT_SYNC)
        rc = commit_sync(&j);
    else if (msg->category == FG_PROTO_GLOBAL_COMMIT_SYNC)
        rc = global_commit_sync(&j);
    else
        rc = project_removed(&j);
    if (rc < 0)
        fg_metric_inc(s->m.failed);
    /* logged before the lock goes, so the lines of two syncs of one project never interleave */
    log_summary(&j, kind, rc, now_ms() - t0);
    git_repository_free(j.repo);
    cs_oids_dispose(&j.tips);
    cs_mirror_lock_release(lock);
    return rc;
}
