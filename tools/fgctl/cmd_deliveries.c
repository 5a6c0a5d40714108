/*
 * fgctl replay deliveries (re-publish archived deliveries, webhook's POST /deliveries/replay) and
 * fgctl dump (gzip'd JSON-lines exports of the webhook's deliveries and event-log's events since a
 * time or since the last dump of the same directory). Both page through the services' answers;
 * nothing is kept in memory beyond one page, except event-log's export, which comes as one
 * streamed answer (held whole by the HTTP client, up to DUMP_EVENTS_MAX).
 */
#include <errno.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <zlib.h>

#include "fg/buf.h"
#include "fgctl.h"

#define DUMP_PAGE       1000
#define DUMP_EVENTS_MAX ((size_t)1 << 30) /* bytes of event-log's export fgctl will hold */
#define DUMP_STATE      ".fgctl-dump-last"
#define DUMP_PATH_MAX   4096
#define DUMP_TIME_MAX   64

/* ---- replay deliveries ---------------------------------------------------------------------- */

static int replay_usage(void)
{
    fprintf(stderr, "usage: fgctl replay deliveries --id ID [--json]\n"
                    "       fgctl replay deliveries --since TIME [--until TIME] [--project ID] "
                    "[--json]\n"
                    "ID is an archive id or a forge's delivery id; TIME is RFC 3339. The "
                    "deliveries are published again, with new message ids.\n");
    return FGCTL_EXIT_USAGE;
}

static int replay_one(fgctl *ctl, const char *id)
{
    json_object *body = json_object_new_object(), *answer = NULL;
    long long numeric = 0;
    int status;

    json_object_object_add(body, "id",
                           fgctl_parse_id(&numeric, id) ? json_object_new_int64(numeric)
                                                        : json_object_new_string(id));
    status = fgctl_call(&answer, ctl, "webhook", "replay deliveries", "POST", "/deliveries/replay",
                        json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
    if (status == FGCTL_EXIT_OK && ctl->json)
        fgctl_print_json(answer);
    else if (status == FGCTL_EXIT_OK)
        printf("delivery %s: %s\n", id,
               fgctl_json_int(answer, "replayed") > 0 ? "queued for publication again"
                                                      : "already waiting to be published");
    json_object_put(body);
    json_object_put(answer);
    return status;
}

static int replay_range(fgctl *ctl, const char *since, const char *until, const char *project)
{
    long long replayed = 0, matched = 0, after = 0, project_id = 0;
    int status = FGCTL_EXIT_OK;

    if (project != NULL && !fgctl_parse_id(&project_id, project))
        return replay_usage();
    for (;;) {
        json_object *body = json_object_new_object(), *answer = NULL, *next = NULL;

        json_object_object_add(body, "since", json_object_new_string(since));
        if (until != NULL)
            json_object_object_add(body, "until", json_object_new_string(until));
        if (project != NULL)
            json_object_object_add(body, "project", json_object_new_int64(project_id));
        json_object_object_add(body, "after", json_object_new_int64(after));
        status =
            fgctl_call(&answer, ctl, "webhook", "replay deliveries", "POST", "/deliveries/replay",
                       json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
        json_object_put(body);
        if (status == FGCTL_EXIT_OK) {
            replayed += fgctl_json_int(answer, "replayed");
            matched += fgctl_json_int(answer, "matched");
            if (json_object_object_get_ex(answer, "next", &next) &&
                json_object_is_type(next, json_type_int))
                after = json_object_get_int64(next);
            else
                next = NULL;
        }
        json_object_put(answer);
        if (status != FGCTL_EXIT_OK || next == NULL)
            break;
        if (ctl->tty)
            fprintf(stderr, "\r%lld deliveries queued...", replayed);
    }
    if (ctl->tty && replayed > 0)
        fprintf(stderr, "\r");
    if (status == FGCTL_EXIT_OK && ctl->json)
        printf("{\"replayed\":%lld,\"matched\":%lld}\n", replayed, matched);
    else if (status == FGCTL_EXIT_OK)
        printf("%lld deliveries queued for publication again (%lld archived in the range; ignored "
               "ones and those still waiting are not queued twice)\n",
               replayed, matched);
    return status;
}

int fgctl_cmd_replay_deliveries(fgctl *ctl, int argc, char **argv)
{
    const char *id = NULL, *since = NULL, *until = NULL, *project = NULL;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            ctl->json = true;
        else if (!fgctl_opt_value(&id, argc, argv, &i, "--id") &&
                 !fgctl_opt_value(&since, argc, argv, &i, "--since") &&
                 !fgctl_opt_value(&until, argc, argv, &i, "--until") &&
                 !fgctl_opt_value(&project, argc, argv, &i, "--project"))
            return replay_usage();
    }
    if ((id == NULL) == (since == NULL) || (id != NULL && (until != NULL || project != NULL)))
        return replay_usage();
    return id != NULL ? replay_one(ctl, id) : replay_range(ctl, since, until, project);
}

/* ---- dump ------------------------------------------------------------------------------------ */

typedef struct {
    const char *dir;
    char since[DUMP_TIME_MAX];
    char now[DUMP_TIME_MAX];   /* RFC 3339, the end of this dump's range */
    char stamp[DUMP_TIME_MAX]; /* the same, for file names */
} dump_run;

static int dump_usage(void)
{
    fprintf(stderr,
            "usage: fgctl dump --since TIME|--since-last --out DIR [--json]\n"
            "Writes DIR/deliveries-<time>.jsonl.gz (webhook) and DIR/events-<time>.jsonl.gz "
            "(event-log) and remembers the run in DIR/%s for --since-last.\n",
            DUMP_STATE);
    return FGCTL_EXIT_USAGE;
}

static int read_state(char *out, size_t size, const char *dir)
{
    char path[DUMP_PATH_MAX];
    FILE *f;
    size_t n;

    snprintf(path, sizeof(path), "%s/%s", dir, DUMP_STATE);
    if ((f = fopen(path, "r")) == NULL) {
        fprintf(stderr, "fgctl dump: no earlier dump in %s (%s): use --since\n", dir,
                strerror(errno));
        return FGCTL_EXIT_FAILED;
    }
    n = fread(out, 1, size - 1, f);
    fclose(f);
    while (n > 0 && (out[n - 1] == '\n' || out[n - 1] == ' '))
        n--;
    out[n] = '\0';
    return n > 0 ? FGCTL_EXIT_OK : FGCTL_EXIT_FAILED;
}

static int write_state(const dump_run *run)
{
    char path[DUMP_PATH_MAX - 8], tmp[DUMP_PATH_MAX];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", run->dir, DUMP_STATE);
    snprintf(tmp, sizeof(tmp), "%s.tmp", path);
    /* written aside and renamed, so an interrupted run keeps the previous state */
    if ((f = fopen(tmp, "w")) == NULL || fprintf(f, "%s\n", run->now) < 0 || fclose(f) != 0 ||
        rename(tmp, path) != 0) {
        fprintf(stderr, "fgctl dump: cannot record the run in %s: %s\n", path, strerror(errno));
        return FGCTL_EXIT_FAILED;
    }
    return FGCTL_EXIT_OK;
}

/* The archive id on the last line of a page (0 when there is none). */
static long long last_id(const fg_buf *page)
{
    const char *end = page->ptr + page->len, *line;
    json_object *root, *v;
    long long id = 0;

    while (end > page->ptr && end[-1] == '\n')
        end--;
    for (line = end; line > page->ptr && line[-1] != '\n'; line--)
        ;
    if (line == end)
        return 0;
    root = json_tokener_parse(line);
    if (root != NULL && json_object_object_get_ex(root, "id", &v))
        id = json_object_get_int64(v);
    json_object_put(root);
    return id;
}

static int write_all(gzFile gz, const char *data, size_t len)
{
    while (len > 0) {
        unsigned chunk = len > (1u << 30) ? (1u << 30) : (unsigned)len;
        int n = gzwrite(gz, data, chunk);
        if (n <= 0)
            return FGCTL_EXIT_FAILED;
        data += n;
        len -= (size_t)n;
    }
    return FGCTL_EXIT_OK;
}

static gzFile open_out(char path[DUMP_PATH_MAX], const dump_run *run, const char *what)
{
    gzFile gz;

    snprintf(path, DUMP_PATH_MAX, "%s/%s-%s.jsonl.gz", run->dir, what, run->stamp);
    if ((gz = gzopen(path, "wb")) == NULL)
        fprintf(stderr, "fgctl dump: cannot write %s: %s\n", path, strerror(errno));
    return gz;
}

/* One GET; on a non-2xx prints why. */
static int fetch(fg_http_client_response *res, fgctl *ctl, const char *service, const char *path)
{
    const char *base = fgctl_service_url(ctl, service);

    fg_http_client_response_dispose(res);
    fg_http_client_response_init(res);
    if (fgctl_get(res, ctl, base, path) < 0 && res->status == 0) {
        fprintf(stderr, "fgctl dump: %s: %s\n", service, fg_error_last());
        return FGCTL_EXIT_FAILED;
    }
    if (res->status < 200 || res->status > 299) {
        fprintf(stderr, "fgctl dump: %s answered %ld: %s\n", service, res->status, res->body.ptr);
        return FGCTL_EXIT_FAILED;
    }
    return FGCTL_EXIT_OK;
}

static int dump_deliveries(fgctl *ctl, const dump_run *run, long long *out_count)
{
    char path[DUMP_PATH_MAX];
    fg_http_client_response res;
    long long after = 0;
    gzFile gz = open_out(path, run, "deliveries");
    int status = gz != NULL ? FGCTL_EXIT_OK : FGCTL_EXIT_FAILED;
    fg_buf query;

    *out_count = 0;
    fg_http_client_response_init(&res);
    fg_buf_init(&query, 1024);
    /* pages until one comes back empty; each line is one delivery */
    while (status == FGCTL_EXIT_OK) {
        char after_text[32];
        snprintf(after_text, sizeof(after_text), "%lld", after);
        fg_buf_clear(&query);
        if (fg_buf_puts(&query, "/deliveries/export") < 0 ||
            fgctl_query_put(&query, "since", run->since) < 0 ||
            fgctl_query_put(&query, "until", run->now) < 0 ||
            fgctl_query_put(&query, "after", after_text) < 0 ||
            fgctl_query_put(&query, "limit", "1000") < 0)
            status = FGCTL_EXIT_FAILED;
        if (status != FGCTL_EXIT_OK || (status = fetch(&res, ctl, "webhook", query.ptr)) != 0 ||
            res.body.len == 0)
            break;
        for (size_t i = 0; i < res.body.len; i++)
            *out_count += res.body.ptr[i] == '\n';
        status = write_all(gz, res.body.ptr, res.body.len);
        if ((after = last_id(&res.body)) == 0)
            break;
        if (ctl->tty)
            fprintf(stderr, "\rdeliveries: %lld", *out_count);
    }
    if (gz != NULL && gzclose(gz) != Z_OK)
        status = FGCTL_EXIT_FAILED;
    if (ctl->tty)
        fprintf(stderr, "\r");
    fg_http_client_response_dispose(&res);
    fg_buf_dispose(&query);
    return status;
}

static int dump_events(fgctl *ctl, const dump_run *run, long long *out_count)
{
    char path[DUMP_PATH_MAX];
    fg_http_client_response res;
    fg_http_client_request req;
    fg_http_client_options o;
    fg_http_client *big = NULL;
    fg_http_client *usual = ctl->http;
    gzFile gz = NULL;
    fg_buf query;
    int status = FGCTL_EXIT_FAILED;

    *out_count = 0;
    fg_http_client_response_init(&res);
    fg_http_client_request_init(&req);
    fg_buf_init(&query, 1024);
    fg_http_client_options_init(&o);
    o.max_attempts = 2;
    o.timeout_ms = 3600000;
    o.max_total_ms = 7200000;
    o.max_response_bytes = DUMP_EVENTS_MAX;
    o.user_agent = "fgctl";
    if (fg_http_client_new(&big, &o) < 0 || fg_buf_puts(&query, "/events/export") < 0 ||
        fgctl_query_put(&query, "since", run->since) < 0) {
        fprintf(stderr, "fgctl dump: %s\n", fg_error_last());
        goto done;
    }
    ctl->http = big;
    status = fetch(&res, ctl, "event-log", query.ptr);
    ctl->http = usual;
    if (status != FGCTL_EXIT_OK || (gz = open_out(path, run, "events")) == NULL) {
        status = FGCTL_EXIT_FAILED;
        goto done;
    }
    for (size_t i = 0; i < res.body.len; i++)
        *out_count += res.body.ptr[i] == '\n';
    status = write_all(gz, res.body.ptr, res.body.len);
    if (gzclose(gz) != Z_OK)
        status = FGCTL_EXIT_FAILED;
done:
    fg_http_client_free(big);
    fg_http_client_response_dispose(&res);
    fg_buf_dispose(&query);
    return status;
}

int fgctl_cmd_dump(fgctl *ctl, int argc, char **argv)
{
    const char *since = NULL;
    bool since_last = false;
    dump_run run = {0};
    long long deliveries = 0, events = 0;
    time_t now = time(NULL);
    struct tm tm;
    int status;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            ctl->json = true;
        else if (strcmp(argv[i], "--since-last") == 0)
            since_last = true;
        else if (!fgctl_opt_value(&since, argc, argv, &i, "--since") &&
                 !fgctl_opt_value(&run.dir, argc, argv, &i, "--out"))
            return dump_usage();
    }
    if (run.dir == NULL || (since == NULL) == !since_last)
        return dump_usage();
    if (mkdir(run.dir, 0700) != 0 && errno != EEXIST) {
        fprintf(stderr, "fgctl dump: cannot create %s: %s\n", run.dir, strerror(errno));
        return FGCTL_EXIT_FAILED;
    }
    if (since_last && read_state(run.since, sizeof(run.since), run.dir) != FGCTL_EXIT_OK)
        return FGCTL_EXIT_FAILED;
    if (since != NULL)
        snprintf(run.since, sizeof(run.since), "%s", since);
    gmtime_r(&now, &tm);
    strftime(run.now, sizeof(run.now), "%Y-%m-%dT%H:%M:%SZ", &tm);
    strftime(run.stamp, sizeof(run.stamp), "%Y%m%dT%H%M%SZ", &tm);
    if ((status = dump_deliveries(ctl, &run, &deliveries)) != FGCTL_EXIT_OK ||
        (status = dump_events(ctl, &run, &events)) != FGCTL_EXIT_OK ||
        (status = write_state(&run)) != FGCTL_EXIT_OK)
        return status;
    if (ctl->json)
        printf("{\"since\":\"%s\",\"until\":\"%s\",\"deliveries\":%lld,\"events\":%lld}\n",
               run.since, run.now, deliveries, events);
    else
        printf("dump %s .. %s: %lld deliveries, %lld events in %s\n", run.since, run.now,
               deliveries, events, run.dir);
    return FGCTL_EXIT_OK;
}
