/*
 * The routes of event-log's API (see el_api.h and docs/api/event-log.md). Handlers parse and
 * check the request, call el_project / el_events / el_rebuild on the main thread's connection and
 * shape the answer; the export streams its pages so a million events never sit in memory.
 */
#include "el_api.h"

#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "el_context.h"
#include "el_dispatch.h"
#include "el_events.h"
#include "el_project.h"
#include "el_rebuild.h"
#include "fg/log.h"

#define EL_API_ANSWER_MAX       (8u << 20) /* a JSON answer (an event with its body and history) */
#define EL_API_EXPORT_PIECE_MAX (EL_EVENTS_EXPORT_PAGE_BYTES + (4u << 20)) /* a page + one line */
#define EL_API_ID_MAX           9007199254740991LL /* ids stay exact in every JSON reader */

/* The routes' one slot (see el_api.h): the service whose connection handlers use, and the
 * context whose metrics they count in. evhttp route payloads cannot be freed by anyone, so
 * nothing is allocated for them. */
static struct {
    fg_service *svc;
    el_context *ctx;
} api;

/* ---- request helpers -------------------------------------------------------------------- */

/* A decimal integer in [min, max], all of text. */
static bool parse_ll(long long *out, const char *text, long long min, long long max)
{
    char *end = NULL;
    long long v;

    if (text == NULL || text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || v < min || v > max)
        return false;
    *out = v;
    return true;
}

static int path_project(el_project_id *out, fg_http_request *req)
{
    long long v;

    if (!parse_ll(&v, fg_http_request_param(req, "id"), 1, EL_API_ID_MAX))
        return fg_error_set(FG_EINVALID, "id: a project id is a positive integer");
    out->value = v;
    return 0;
}

/* An optional numeric query parameter: *out keeps its default when absent. */
static int query_ll(long long *out, fg_http_request *req, const char *name, long long min,
                    long long max)
{
    const char *text = fg_http_request_query(req, name);

    if (text == NULL)
        return 0;
    if (!parse_ll(out, text, min, max))
        return fg_error_set(FG_EINVALID, "%s: must be an integer from %lld to %lld", name, min,
                            max);
    return 0;
}

/* The request body as a JSON object (*out NULL for an empty body when optional). */
static int parse_body(struct json_object **out, fg_http_request *req, bool optional)
{
    struct json_tokener *tok = NULL;
    struct json_object *root = NULL;
    const char *body;
    size_t len = 0;
    int rc = FG_ERROR;

    *out = NULL;
    if ((body = fg_http_request_body(req, &len)) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory reading the request body");
    if (len == 0 && optional)
        return 0;
    if (len > EL_API_BODY_MAX)
        return fg_error_set(FG_ETOOBIG, "body: over %d bytes", EL_API_BODY_MAX);
    if ((tok = json_tokener_new_ex(EL_API_JSON_DEPTH_MAX)) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory parsing the request body");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    root = json_tokener_parse_ex(tok, body, (int)len);
    if (json_tokener_get_error(tok) != json_tokener_success || root == NULL ||
        json_tokener_get_parse_end(tok) != len) {
        enum json_tokener_error err = json_tokener_get_error(tok);

        rc = fg_error_set(FG_EINVALID, "body: not valid JSON (%s)",
                          err == json_tokener_continue  ? "it ends too early"
                          : err == json_tokener_success ? "trailing characters"
                                                        : json_tokener_error_desc(err));
        goto done;
    }
    if (!json_object_is_type(root, json_type_object)) {
        rc = fg_error_set(FG_EINVALID, "body: must be a JSON object");
        goto done;
    }
    *out = root;
    root = NULL;
    rc = 0;
done:
    json_object_put(root);
    json_tokener_free(tok);
    return rc;
}

/* Refuses fields a body may not have, naming the first. */
static int check_fields(const struct json_object *obj, const char *const *allowed, size_t n,
                        const char *list)
{
    json_object_object_foreach((struct json_object *)obj, key, value)
    {
        bool known = false;

        (void)value;
        for (size_t i = 0; i < n; i++)
            known = known || strcmp(key, allowed[i]) == 0;
        if (!known)
            return fg_error_set(FG_EINVALID, "%.64s: unknown field (this body takes %s)", key,
                                list);
    }
    return 0;
}

static int status_field(el_status *out, const struct json_object *obj, const char *name)
{
    struct json_object *v = NULL;

    if (!json_object_object_get_ex(obj, name, &v) || v == NULL)
        return fg_error_set(FG_EINVALID, "%s: required", name);
    if (!json_object_is_type(v, json_type_string) ||
        !el_status_parse(out, json_object_get_string(v)))
        return fg_error_set(FG_EINVALID, "%s: must be an event status name (NEW, ...)", name);
    return 0;
}

/* ---- answers ---------------------------------------------------------------------------- */

static void respond_error(fg_http_request *req, int rc)
{
    if (rc != FG_EINVALID && rc != FG_ENOTFOUND)
        fg_log_warn("event-log API %s %s failed: %s",
                    fg_http_method_name(fg_http_request_method(req)), fg_http_request_path(req),
                    fg_error_last());
    fg_http_respond_fg_error(req, rc);
}

static void respond_buf(fg_http_request *req, int status, int rc, const fg_buf *b)
{
    if (rc < 0)
        respond_error(req, rc);
    else
        fg_http_respond_json_buf(req, status, b);
}

static int put_cursor(fg_buf *b, long long next)
{
    return next > 0 ? fg_buf_printf(b, "],\"next\":\"%lld\"}", next)
                    : fg_buf_puts(b, "],\"next\":null}");
}

static void count_transitions(size_t applied)
{
    if (api.ctx != NULL)
        fg_metric_add(api.ctx->m.transitions, (double)applied);
}

/* ---- projects --------------------------------------------------------------------------- */

static void on_register(fg_http_request *req, void *payload)
{
    struct json_object *body = NULL;
    el_project_registration reg;
    el_project p;
    bool created = false;
    char location[64];
    fg_buf b;
    int rc;

    (void)payload;
    fg_buf_init(&b, EL_API_ANSWER_MAX);
    if ((rc = parse_body(&body, req, false)) < 0 ||
        (rc = el_project_registration_from_json(&reg, body)) < 0 ||
        (rc = el_project_register(&p, &created, fg_service_db(api.svc), &reg)) < 0 ||
        (rc = el_project_put_json(&b, &p)) < 0)
        goto done;
    snprintf(location, sizeof(location), "/projects/%lld", p.id.value);
    if ((rc = fg_http_response_add_header(req, "Location", location)) < 0)
        goto done;
    if (created)
        fg_log_emit(FG_LOG_INFO,
                    FG_LOG_FIELDS(FG_LOG_INT("project", p.id.value), FG_LOG_STR("path", p.path),
                                  FG_LOG_STR("forge", el_forge_name(p.forge))),
                    "project registered");
done:
    respond_buf(req, created ? 201 : 200, rc, &b);
    fg_buf_dispose(&b);
    json_object_put(body);
}

static void on_projects(fg_http_request *req, void *payload)
{
    long long after = 0, limit = EL_EVENTS_LIMIT_DEFAULT, next = 0;
    fg_buf b;
    int rc;

    (void)payload;
    fg_buf_init(&b, EL_API_ANSWER_MAX);
    if ((rc = query_ll(&after, req, "after", 0, EL_API_ID_MAX)) < 0 ||
        (rc = query_ll(&limit, req, "limit", 1, EL_PROJECT_LIST_MAX)) < 0 ||
        (rc = fg_buf_puts(&b, "{\"projects\":[")) < 0 ||
        (rc = el_project_list(&b, &next, fg_service_db(api.svc), after, limit,
                              fg_http_request_query(req, "path"))) < 0)
        goto done;
    rc = put_cursor(&b, next);
done:
    respond_buf(req, 200, rc, &b);
    fg_buf_dispose(&b);
}

static void on_project(fg_http_request *req, void *payload)
{
    el_project_id id;
    el_project p;
    fg_buf b;
    int rc;

    (void)payload;
    fg_buf_init(&b, EL_API_ANSWER_MAX);
    if ((rc = path_project(&id, req)) < 0 ||
        (rc = el_project_get(&p, fg_service_db(api.svc), id)) < 0)
        goto done;
    rc = el_project_put_json(&b, &p);
done:
    respond_buf(req, 200, rc, &b);
    fg_buf_dispose(&b);
}

static void on_status(fg_http_request *req, void *payload)
{
    el_project_status st;
    el_project_id id;
    fg_buf b;
    int rc;

    (void)payload;
    fg_buf_init(&b, EL_API_ANSWER_MAX);
    if ((rc = path_project(&id, req)) < 0 ||
        (rc = el_project_status_get(&st, fg_service_db(api.svc), id)) < 0)
        goto done;
    rc = el_project_status_put_json(&b, &st);
done:
    respond_buf(req, 200, rc, &b);
    fg_buf_dispose(&b);
}

static void on_remove(fg_http_request *req, void *payload)
{
    el_project_id id;
    el_project p;
    int rc;

    (void)payload;
    if ((rc = path_project(&id, req)) < 0 ||
        (rc = el_project_remove(&p, fg_service_db(api.svc), id)) < 0) {
        respond_error(req, rc);
        return;
    }
    fg_log_emit(FG_LOG_INFO,
                FG_LOG_FIELDS(FG_LOG_INT("project", p.id.value), FG_LOG_STR("path", p.path)),
                "project removed; PROJECT_REMOVED requested");
    fg_service_wake(api.svc);
    fg_http_respond_text(req, 204, "application/json", "", 0);
}

/* POST /projects/{id}/reprovision and /sync: a row for the tick, answered 202. make_due (or NULL)
 * makes the tick's part due at once; it runs after the row is written, or a tick in between would
 * find nothing, and before the bus thread is woken. */
static void respond_requested(fg_http_request *req, int (*request)(fg_pg_conn *, el_project_id),
                              void (*make_due)(void), const char *what)
{
    el_project_id id;
    fg_buf b;
    int rc;

    fg_buf_init(&b, 256);
    if ((rc = path_project(&id, req)) < 0 || (rc = request(fg_service_db(api.svc), id)) < 0 ||
        (rc = fg_buf_printf(&b, "{\"project\":%lld,\"requested\":\"%s\"}", id.value, what)) < 0)
        goto done;
    fg_log_emit(FG_LOG_INFO, FG_LOG_FIELDS(FG_LOG_INT("project", id.value)), "%s requested", what);
    if (make_due != NULL)
        make_due();
    fg_service_wake(api.svc);
done:
    respond_buf(req, 202, rc, &b);
    fg_buf_dispose(&b);
}

static void on_reprovision(fg_http_request *req, void *payload)
{
    (void)payload;
    respond_requested(req, el_project_request_reprovision, NULL, "REPROVISION");
}

static void on_sync(fg_http_request *req, void *payload)
{
    (void)payload;
    respond_requested(req, el_project_request_sync, el_dispatch_commit_sync_due, "COMMIT_SYNC");
}

/* ---- events ----------------------------------------------------------------------------- */

static int events_filter(el_events_filter *f, fg_http_request *req)
{
    const char *status = fg_http_request_query(req, "status");
    int rc;

    memset(f, 0, sizeof(*f));
    f->limit = EL_EVENTS_LIMIT_DEFAULT;
    f->since = fg_http_request_query(req, "since");
    if ((rc = query_ll(&f->project, req, "project", 1, EL_API_ID_MAX)) < 0 ||
        (rc = query_ll(&f->limit, req, "limit", 1, EL_EVENTS_LIMIT_MAX)) < 0 ||
        (rc = query_ll(&f->after, req, "after", 0, EL_API_ID_MAX)) < 0)
        return rc;
    if (status != NULL) {
        if (!el_status_parse(&f->status, status))
            return fg_error_set(FG_EINVALID, "status: %.64s is not an event status (NEW, ...)",
                                status);
        f->has_status = true;
    }
    return 0;
}

static void on_events(fg_http_request *req, void *payload)
{
    el_events_filter f;
    long long next = 0;
    fg_buf b;
    int rc;

    (void)payload;
    fg_buf_init(&b, EL_API_ANSWER_MAX);
    if ((rc = events_filter(&f, req)) < 0 || (rc = fg_buf_puts(&b, "{\"events\":[")) < 0 ||
        (rc = el_events_list(&b, &next, fg_service_db(api.svc), &f)) < 0)
        goto done;
    rc = put_cursor(&b, next);
done:
    respond_buf(req, 200, rc, &b);
    fg_buf_dispose(&b);
}

static void on_event(fg_http_request *req, void *payload)
{
    el_project_id id;
    fg_buf b;
    int rc;

    (void)payload;
    fg_buf_init(&b, EL_API_ANSWER_MAX);
    if ((rc = path_project(&id, req)) < 0)
        goto done;
    rc = el_events_show(&b, fg_service_db(api.svc), id, fg_http_request_param(req, "sha"));
done:
    respond_buf(req, 200, rc, &b);
    fg_buf_dispose(&b);
}

/* ---- export (streamed) ------------------------------------------------------------------ */

typedef struct {
    long long after; /* the last event id sent */
    char *since;     /* NULL: every event */
    bool done;       /* the page in `page` is the last */
    fg_buf page;     /* the next piece to send */
} export_stream;

static void export_free(export_stream *x)
{
    if (x == NULL)
        return;
    fg_buf_dispose(&x->page);
    free(x->since);
    free(x);
}

static int export_fill(export_stream *x)
{
    fg_buf_clear(&x->page);
    return el_events_export_page(&x->page, &x->after, &x->done, fg_service_db(api.svc), x->since);
}

/* Sends the page read before, then reads the next one while that one travels; a database error
 * half-way cuts the answer short, so the client cannot take it for a complete export. */
static void export_next(fg_http_request *req, bool aborted, void *payload)
{
    export_stream *x = payload;
    int rc;

    if (aborted) {
        export_free(x);
        return;
    }
    if (x->page.len > 0 && (rc = fg_http_stream_write(req, x->page.ptr, x->page.len)) < 0)
        goto failed;
    if (x->done) {
        fg_http_stream_end(req, false);
        export_free(x);
        return;
    }
    if ((rc = export_fill(x)) < 0)
        goto failed;
    return;
failed:
    fg_log_warn("event-log export stopped after event %lld: %s", x->after, fg_error_last());
    fg_http_stream_end(req, true);
    export_free(x);
}

static void on_export(fg_http_request *req, void *payload)
{
    const char *since = fg_http_request_query(req, "since");
    export_stream *x = NULL;
    int rc;

    (void)payload;
    if ((x = calloc(1, sizeof(*x))) == NULL) {
        respond_error(req, fg_error_set(FG_ENOMEM, "out of memory starting the export"));
        return;
    }
    fg_buf_init(&x->page, EL_API_EXPORT_PIECE_MAX);
    if (since != NULL && (x->since = strdup(since)) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory starting the export");
        goto failed;
    }
    /* The first page is read before the head goes out, so a bad `since` or a database that is
     * down still gets a proper error status. */
    if ((rc = export_fill(x)) < 0 ||
        (rc = fg_http_stream_start(req, 200, "application/x-ndjson", export_next, x)) < 0)
        goto failed;
    return;
failed:
    export_free(x);
    respond_error(req, rc);
}

/* ---- replay, retry, rebuild ------------------------------------------------------------- */

static int put_outcome(fg_buf *b, const el_events_outcome *o, bool with_missing)
{
    int rc = fg_buf_printf(b, "\"applied\":%zu,\"skipped\":%zu", o->applied, o->skipped);

    if (rc == 0 && with_missing)
        rc = fg_buf_printf(b, ",\"missing\":%zu", o->missing);
    if (rc == 0)
        rc = fg_buf_putc(b, '}');
    return rc;
}

static void on_replay(fg_http_request *req, void *payload)
{
    static const char *const fields[] = {"to"};
    struct json_object *body = NULL;
    el_events_outcome o;
    el_project_id id;
    el_status to;
    fg_buf b;
    int rc;

    (void)payload;
    fg_buf_init(&b, 1024);
    if ((rc = path_project(&id, req)) < 0 || (rc = parse_body(&body, req, false)) < 0 ||
        (rc = check_fields(body, fields, 1, "to")) < 0 || (rc = status_field(&to, body, "to")) < 0)
        goto done;
    if (to != EL_STATUS_NEW && to != EL_STATUS_TRIPLES_GENERATED) {
        rc = fg_error_set(FG_EINVALID, "to: must be NEW or TRIPLES_GENERATED");
        goto done;
    }
    if ((rc = el_events_replay(&o, fg_service_db(api.svc), id, to)) < 0)
        goto done;
    count_transitions(o.applied);
    fg_log_emit(FG_LOG_INFO,
                FG_LOG_FIELDS(FG_LOG_INT("project", id.value), FG_LOG_STR("to", el_status_name(to)),
                              FG_LOG_INT("applied", (long long)o.applied)),
                "events replayed");
    if ((rc = fg_buf_printf(&b, "{\"project\":%lld,\"to\":\"%s\",", id.value,
                            el_status_name(to))) == 0)
        rc = put_outcome(&b, &o, false);
done:
    respond_buf(req, 200, rc, &b);
    fg_buf_dispose(&b);
    json_object_put(body);
}

static int retry_ids(el_events_outcome *o, struct json_object *list)
{
    el_event_id ids[EL_EVENTS_RETRY_IDS_MAX];
    size_t n;

    if (!json_object_is_type(list, json_type_array) || (n = json_object_array_length(list)) == 0 ||
        n > EL_EVENTS_RETRY_IDS_MAX)
        return fg_error_set(FG_EINVALID, "ids: an array of 1 to %d event ids",
                            EL_EVENTS_RETRY_IDS_MAX);
    for (size_t i = 0; i < n; i++) {
        struct json_object *v = json_object_array_get_idx(list, i);
        int64_t id = json_object_is_type(v, json_type_int) ? json_object_get_int64(v) : 0;

        if (id <= 0 || id > EL_API_ID_MAX)
            return fg_error_set(FG_EINVALID, "ids: element %zu is not an event id", i);
        ids[i].value = id;
    }
    return el_events_retry_ids(o, fg_service_db(api.svc), ids, n);
}

static int retry_project(el_events_outcome *o, const struct json_object *body)
{
    struct json_object *project = NULL, *status = NULL;
    el_status s = EL_STATUS_NONE;
    el_project_id id;
    int64_t v;
    int rc;

    json_object_object_get_ex(body, "project", &project);
    v = json_object_is_type(project, json_type_int) ? json_object_get_int64(project) : 0;
    if (v <= 0 || v > EL_API_ID_MAX)
        return fg_error_set(FG_EINVALID, "project: a project id is a positive integer");
    id.value = v;
    if (json_object_object_get_ex(body, "status", &status) && status != NULL &&
        (rc = status_field(&s, body, "status")) < 0)
        return rc;
    return el_events_retry_project(o, fg_service_db(api.svc), id, s != EL_STATUS_NONE, s);
}

static void on_retry(fg_http_request *req, void *payload)
{
    static const char *const fields[] = {"ids", "project", "status"};
    struct json_object *body = NULL, *ids = NULL;
    el_events_outcome o;
    bool by_ids;
    fg_buf b;
    int rc;

    (void)payload;
    fg_buf_init(&b, 1024);
    if ((rc = parse_body(&body, req, false)) < 0 ||
        (rc = check_fields(body, fields, 3, "ids, or project and status")) < 0)
        goto done;
    by_ids = json_object_object_get_ex(body, "ids", &ids);
    if (by_ids == json_object_object_get_ex(body, "project", NULL)) {
        rc = fg_error_set(FG_EINVALID, "ids: give either ids, or project (and status)");
        goto done;
    }
    if (by_ids && json_object_object_get_ex(body, "status", NULL)) {
        rc = fg_error_set(FG_EINVALID, "status: goes with project, not with ids");
        goto done;
    }
    if ((rc = by_ids ? retry_ids(&o, ids) : retry_project(&o, body)) < 0)
        goto done;
    count_transitions(o.applied);
    fg_log_emit(FG_LOG_INFO, FG_LOG_FIELDS(FG_LOG_INT("applied", (long long)o.applied)),
                "events retried");
    if ((rc = fg_buf_putc(&b, '{')) == 0)
        rc = put_outcome(&b, &o, by_ids);
done:
    respond_buf(req, 200, rc, &b);
    fg_buf_dispose(&b);
    json_object_put(body);
}

static const char *status_or_null(el_status s, char *buf, size_t size)
{
    if (s == EL_STATUS_NONE)
        return "null";
    snprintf(buf, size, "\"%s\"", el_status_name(s));
    return buf;
}

static int put_rebuild(fg_buf *b, const el_rebuild_report *r, bool apply)
{
    int rc;

    if ((rc = fg_buf_printf(b,
                            "{\"applied\":%s,\"events\":%zu,\"logged\":%zu,\"differences\":%zu,"
                            "\"mismatched\":%zu,\"notDeleted\":%zu,\"unlogged\":%zu,"
                            "\"vanished\":%zu,\"fixed\":%zu,\"diffs\":[",
                            apply ? "true" : "false", r->events, r->logged, r->differences,
                            r->mismatched, r->not_deleted, r->unlogged, r->vanished, r->fixed)) < 0)
        return rc;
    for (size_t i = 0; i < r->ndiffs && i < EL_REBUILD_DIFFS_MAX; i++) {
        const el_rebuild_diff *d = &r->diffs[i];
        char live[64], logged[64];

        if ((rc = fg_buf_printf(b, "%s{\"event\":%lld,\"project\":%lld,\"live\":%s,\"logged\":%s}",
                                i > 0 ? "," : "", d->event.value, d->project.value,
                                status_or_null(d->live, live, sizeof(live)),
                                status_or_null(d->logged, logged, sizeof(logged)))) < 0)
            return rc;
    }
    return fg_buf_puts(b, "]}");
}

static void on_rebuild(fg_http_request *req, void *payload)
{
    static const char *const fields[] = {"apply"};
    struct json_object *body = NULL, *apply_v = NULL;
    el_rebuild_report *report = NULL;
    bool apply = true;
    fg_buf b;
    int rc;

    (void)payload;
    fg_buf_init(&b, EL_API_ANSWER_MAX);
    if ((rc = parse_body(&body, req, true)) < 0 ||
        (body != NULL && (rc = check_fields(body, fields, 1, "apply")) < 0))
        goto done;
    if (body != NULL && json_object_object_get_ex(body, "apply", &apply_v)) {
        if (!json_object_is_type(apply_v, json_type_boolean)) {
            rc = fg_error_set(FG_EINVALID, "apply: must be true or false");
            goto done;
        }
        apply = json_object_get_boolean(apply_v);
    }
    if ((report = calloc(1, sizeof(*report))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory for the rebuild report");
        goto done;
    }
    if ((rc = el_rebuild(report, fg_service_db(api.svc), apply)) < 0)
        goto done;
    fg_log_emit(FG_LOG_INFO,
                FG_LOG_FIELDS(FG_LOG_INT("differences", (long long)report->differences),
                              FG_LOG_INT("fixed", (long long)report->fixed)),
                "status rebuild from the status log%s", apply ? "" : " (report only)");
    rc = put_rebuild(&b, report, apply);
done:
    respond_buf(req, 200, rc, &b);
    fg_buf_dispose(&b);
    free(report);
    json_object_put(body);
}

/* ---- routes ----------------------------------------------------------------------------- */

static const fg_service_route routes[] = {
    {FG_HTTP_POST, "/projects", on_register, false},
    {FG_HTTP_GET, "/projects", on_projects, false},
    {FG_HTTP_GET, "/projects/{id}", on_project, false},
    {FG_HTTP_DELETE, "/projects/{id}", on_remove, false},
    {FG_HTTP_GET, "/projects/{id}/status", on_status, false},
    {FG_HTTP_GET, "/projects/{id}/events/{sha}", on_event, false},
    {FG_HTTP_POST, "/projects/{id}/replay", on_replay, false},
    {FG_HTTP_POST, "/projects/{id}/reprovision", on_reprovision, false},
    {FG_HTTP_POST, "/projects/{id}/sync", on_sync, false},
    {FG_HTTP_GET, "/events", on_events, false},
    {FG_HTTP_GET, "/events/export", on_export, false},
    {FG_HTTP_POST, "/events/retry", on_retry, false},
    {FG_HTTP_POST, "/replay/rebuild", on_rebuild, false},
};

int el_api_add_routes(fg_service *svc, fg_http_server *http, void *payload)
{
    api.svc = svc;
    api.ctx = payload;
    return fg_service_add_routes(http, routes, sizeof(routes) / sizeof(routes[0]), NULL);
}
