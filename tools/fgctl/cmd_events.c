/*
 * fgctl events: list (keyset pages, filters, --all to follow every page), show (one event with
 * its commit and status history) and retry (failed events by id, or a project's by status),
 * through event-log's API.
 */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg/buf.h"
#include "fgctl.h"

#define EVENTS_SERVICE   "event-log"
#define EVENTS_QUERY_MAX 4096
#define EVENTS_IDS_MAX   1000 /* as event-log's EL_EVENTS_RETRY_IDS_MAX */
#define EVENTS_SHA_SHOWN 12   /* sha characters in the table */

typedef struct {
    const char *project, *status, *since, *limit, *after;
    bool all;
} list_opts;

static void list_usage(FILE *out)
{
    fprintf(out, "usage: fgctl events list [--project ID] [--status STATUS] [--since TIME]\n"
                 "                         [--limit N] [--after CURSOR] [--all] [--json]\n"
                 "TIME is RFC 3339 (2026-01-02T03:04:05Z) or a date; --all follows every page.\n");
}

static int list_query(fg_buf *q, const list_opts *o, const char *after)
{
    int rc;

    if ((rc = fg_buf_puts(q, "/events")) < 0 ||
        (o->project != NULL && (rc = fgctl_query_put(q, "project", o->project)) < 0) ||
        (o->status != NULL && (rc = fgctl_query_put(q, "status", o->status)) < 0) ||
        (o->since != NULL && (rc = fgctl_query_put(q, "since", o->since)) < 0) ||
        (o->limit != NULL && (rc = fgctl_query_put(q, "limit", o->limit)) < 0) ||
        (after != NULL && (rc = fgctl_query_put(q, "after", after)) < 0))
        return rc;
    return 0;
}

static void print_event_row(const json_object *e)
{
    json_object *project = NULL;
    const char *message = fgctl_json_str(e, "message");

    json_object_object_get_ex(e, "project", &project);
    printf("%-10lld %-8lld %-12.12s %-38s %-24s %3lld %.60s\n", fgctl_json_int(e, "id"),
           fgctl_json_int(project, "id"), fgctl_json_str(e, "sha"), fgctl_json_str(e, "status"),
           fgctl_json_str(e, "date"), fgctl_json_int(e, "attempts"),
           strcmp(message, "-") == 0 ? "" : message);
}

static bool list_parse(list_opts *o, fgctl *ctl, int argc, char **argv)
{
    memset(o, 0, sizeof(*o));
    for (int i = 2; i < argc; i++) {
        const char **slot = NULL;

        if (strcmp(argv[i], "--json") == 0)
            ctl->json = true;
        else if (strcmp(argv[i], "--all") == 0)
            o->all = true;
        else if (fgctl_opt_value(&o->project, argc, argv, &i, "--project"))
            slot = &o->project;
        else if (fgctl_opt_value(&o->status, argc, argv, &i, "--status"))
            slot = &o->status;
        else if (fgctl_opt_value(&o->since, argc, argv, &i, "--since"))
            slot = &o->since;
        else if (fgctl_opt_value(&o->limit, argc, argv, &i, "--limit"))
            slot = &o->limit;
        else if (fgctl_opt_value(&o->after, argc, argv, &i, "--after"))
            slot = &o->after;
        else
            return false;
        if (slot != NULL && *slot == NULL)
            return false;
    }
    return true;
}

static int events_list(fgctl *ctl, int argc, char **argv)
{
    json_object *all = json_object_new_array(), *page = NULL, *items = NULL, *next = NULL;
    char after[32] = "";
    list_opts o;
    fg_buf q;
    int status = FGCTL_EXIT_USAGE;

    fg_buf_init(&q, EVENTS_QUERY_MAX);
    if (!list_parse(&o, ctl, argc, argv)) {
        list_usage(stderr);
        goto done;
    }
    if (o.after != NULL)
        snprintf(after, sizeof(after), "%s", o.after);
    if (!ctl->json)
        printf("%-10s %-8s %-12s %-38s %-24s %3s %s\n", "ID", "PROJECT", "SHA", "STATUS", "DATE",
               "TRY", "MESSAGE");
    do {
        fg_buf_clear(&q);
        json_object_put(page);
        page = NULL;
        status = FGCTL_EXIT_FAILED;
        if (list_query(&q, &o, after[0] != '\0' ? after : NULL) < 0 ||
            fgctl_call(&page, ctl, EVENTS_SERVICE, "events list", "GET", q.ptr, NULL) !=
                FGCTL_EXIT_OK ||
            !json_object_object_get_ex(page, "events", &items))
            goto done;
        for (size_t i = 0; i < json_object_array_length(items); i++) {
            json_object *e = json_object_array_get_idx(items, i);

            if (ctl->json)
                json_object_array_add(all, json_object_get(e));
            else
                print_event_row(e);
        }
        after[0] = '\0';
        if (json_object_object_get_ex(page, "next", &next) && next != NULL)
            snprintf(after, sizeof(after), "%s", json_object_get_string(next));
    } while (o.all && after[0] != '\0');
    if (ctl->json) {
        json_object *out = json_object_new_object();

        json_object_object_add(out, "events", json_object_get(all));
        json_object_object_add(out, "next",
                               after[0] != '\0' ? json_object_new_string(after) : NULL);
        fgctl_print_json(out);
        json_object_put(out);
    } else if (after[0] != '\0') {
        printf("(more: add --after %s, or --all)\n", after);
    }
    status = FGCTL_EXIT_OK;
done:
    json_object_put(page);
    json_object_put(all);
    fg_buf_dispose(&q);
    return status;
}

/* ---- show --------------------------------------------------------------------------------- */

static void print_commit(const json_object *e)
{
    json_object *body = NULL, *author = NULL, *message = NULL;
    const char *text;
    size_t first_line;

    if (!json_object_object_get_ex(e, "body", &body) || body == NULL)
        return;
    if (json_object_object_get_ex(body, "author", &author))
        printf("author   %s <%s> %s\n", fgctl_json_str(author, "name"),
               fgctl_json_str(author, "email"), fgctl_json_str(author, "at"));
    if (json_object_object_get_ex(body, "message", &message) && message != NULL) {
        text = json_object_get_string(message);
        first_line = strcspn(text, "\n");
        printf("commit   %.*s\n", (int)(first_line < 200 ? first_line : 200), text);
    }
}

static void print_event(const json_object *e)
{
    json_object *project = NULL, *history = NULL;
    const char *message = fgctl_json_str(e, "message");

    json_object_object_get_ex(e, "project", &project);
    printf("event    %lld  project %lld (%s)\n", fgctl_json_int(e, "id"),
           fgctl_json_int(project, "id"), fgctl_json_str(project, "path"));
    printf("sha      %s\n", fgctl_json_str(e, "sha"));
    printf("status   %s  attempts %lld  next try %s\n", fgctl_json_str(e, "status"),
           fgctl_json_int(e, "attempts"), fgctl_json_str(e, "executionDate"));
    printf("date     %s  recorded %s\n", fgctl_json_str(e, "date"), fgctl_json_str(e, "createdAt"));
    if (strcmp(message, "-") != 0)
        printf("message  %s\n", message);
    print_commit(e);
    if (!json_object_object_get_ex(e, "history", &history))
        return;
    printf("history\n");
    for (size_t i = 0; i < json_object_array_length(history); i++) {
        json_object *h = json_object_array_get_idx(history, i);
        const char *why = fgctl_json_str(h, "message");

        printf("  %-24s %-38s -> %-38s %-26s %s\n", fgctl_json_str(h, "at"),
               fgctl_json_str(h, "from"), fgctl_json_str(h, "to"), fgctl_json_str(h, "cause"),
               strcmp(why, "-") == 0 ? "" : why);
    }
}

static int events_show(fgctl *ctl, int argc, char **argv)
{
    const char *sha = NULL;
    long long project = 0;
    json_object *e = NULL;
    char path[128];
    int status;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            ctl->json = true;
        else if (project == 0 && fgctl_parse_id(&project, argv[i]))
            continue;
        else if (sha == NULL && project != 0 && strlen(argv[i]) == 40)
            sha = argv[i];
        else
            project = -1;
    }
    if (project <= 0 || sha == NULL || strspn(sha, "0123456789abcdef") != 40) {
        fprintf(stderr, "usage: fgctl events show PROJECT_ID SHA [--json]\n");
        return FGCTL_EXIT_USAGE;
    }
    snprintf(path, sizeof(path), "/projects/%lld/events/%s", project, sha);
    status = fgctl_call(&e, ctl, EVENTS_SERVICE, "events show", "GET", path, NULL);
    if (status == FGCTL_EXIT_OK && e != NULL) {
        if (ctl->json)
            fgctl_print_json(e);
        else
            print_event(e);
    }
    json_object_put(e);
    return status;
}

/* ---- retry -------------------------------------------------------------------------------- */

/* "1,2,3" into a JSON array of ids. */
static json_object *parse_ids(const char *text)
{
    json_object *ids = json_object_new_array();
    const char *p = text;

    while (*p != '\0') {
        char one[32];
        size_t len = strcspn(p, ",");
        long long id;

        if (len == 0 || len >= sizeof(one) || json_object_array_length(ids) >= EVENTS_IDS_MAX)
            goto bad;
        snprintf(one, sizeof(one), "%.*s", (int)len, p);
        if (!fgctl_parse_id(&id, one))
            goto bad;
        json_object_array_add(ids, json_object_new_int64(id));
        p += len;
        if (*p == ',' && *++p == '\0')
            goto bad;
    }
    if (json_object_array_length(ids) > 0)
        return ids;
bad:
    json_object_put(ids);
    return NULL;
}

static int events_retry(fgctl *ctl, int argc, char **argv)
{
    const char *ids_text = NULL, *project_text = NULL, *state = NULL;
    json_object *body = json_object_new_object(), *ids = NULL, *answer = NULL;
    long long project = 0;
    bool bad = false;
    int status = FGCTL_EXIT_USAGE;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--json") == 0)
            ctl->json = true;
        else if (!fgctl_opt_value(&ids_text, argc, argv, &i, "--ids") &&
                 !fgctl_opt_value(&project_text, argc, argv, &i, "--project") &&
                 !fgctl_opt_value(&state, argc, argv, &i, "--status"))
            bad = true;
    }
    if (ids_text != NULL && project_text == NULL && state == NULL &&
        (ids = parse_ids(ids_text)) != NULL)
        json_object_object_add(body, "ids", ids);
    else if (ids_text == NULL && project_text != NULL && fgctl_parse_id(&project, project_text))
        json_object_object_add(body, "project", json_object_new_int64(project));
    else
        bad = true;
    if (state != NULL)
        json_object_object_add(body, "status", json_object_new_string(state));
    if (bad) {
        fprintf(stderr,
                "usage: fgctl events retry --ids ID[,ID...] [--json]\n"
                "       fgctl events retry --project ID [--status FAILURE_STATUS] [--json]\n"
                "Generation failures go back to NEW, transformation failures to "
                "TRIPLES_GENERATED.\n");
        goto done;
    }
    status = fgctl_call(&answer, ctl, EVENTS_SERVICE, "events retry", "POST", "/events/retry",
                        json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
    if (status == FGCTL_EXIT_OK && answer != NULL) {
        if (ctl->json)
            fgctl_print_json(answer);
        else
            printf("retried: %lld events moved, %lld left as they were%s\n",
                   fgctl_json_int(answer, "applied"), fgctl_json_int(answer, "skipped"),
                   fgctl_json_int(answer, "missing") > 0 ? ", some ids are not events" : "");
    }
done:
    json_object_put(body);
    json_object_put(answer);
    return status;
}

/* ---- entry -------------------------------------------------------------------------------- */

int fgctl_cmd_events(fgctl *ctl, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;

    if (sub != NULL && strcmp(sub, "list") == 0)
        return events_list(ctl, argc, argv);
    if (sub != NULL && strcmp(sub, "show") == 0)
        return events_show(ctl, argc, argv);
    if (sub != NULL && strcmp(sub, "retry") == 0)
        return events_retry(ctl, argc, argv);
    if (sub != NULL && (strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0)) {
        list_usage(stdout);
        printf("       fgctl events show PROJECT_ID SHA [--json]\n"
               "       fgctl events retry --ids ID[,ID...] | --project ID [--status S]\n");
        return FGCTL_EXIT_OK;
    }
    fprintf(stderr, "usage: fgctl events list|show|retry ... (fgctl events --help)\n");
    return FGCTL_EXIT_USAGE;
}
