/*
 * fgctl project: list, status (with --wait: a progress bar on a terminal, a line per change at
 * most every few seconds otherwise) and sync through event-log's API; add and remove through the
 * webhook's activation (DESIGN.md flow 1: it registers with event-log, stores the token, manages
 * the forge hook and asks for the first commit sync at once). Also the small helpers the
 * event-log commands share (options, ids, query strings, JSON output).
 *
 * A token is never taken from the command line (every user of the machine can read it in ps):
 * --token-file FILE, or the FGCTL_TOKEN environment variable.
 */
#include <json-c/json.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fg/buf.h"
#include "fg/crypto.h"
#include "fgctl.h"

#define PROJECT_PAGE       1000 /* projects asked for per page of a listing */
#define PROJECT_PATH_MAX   255  /* as event-log's EL_PROJECT_PATH_MAX */
#define WAIT_INTERVAL_MS   500  /* status polls while waiting */
#define WAIT_LINE_EVERY_MS 5000 /* without a terminal: at most one line this often */
#define WAIT_ERRORS_MAX    20   /* polls in a row that may fail before --wait gives up */
#define WAIT_BAR_WIDTH     30   /* characters of the progress bar */
#define PROJECT_BODY_MAX   8192 /* a registration body */
#define PROJECT_SERVICE    "event-log"
#define ACTIVATION_SERVICE "webhook"
#define TOKEN_MAX          4096 /* as token-repository's limit on a token */

/* ---- shared helpers (fgctl.h) ----------------------------------------------------------- */

bool fgctl_opt_value(const char **out, int argc, char **argv, int *i, const char *name)
{
    size_t len = strlen(name);

    if (strcmp(argv[*i], name) == 0) {
        if (*i + 1 >= argc) {
            fprintf(stderr, "fgctl: %s needs a value\n", name);
            *out = NULL;
            return true;
        }
        *out = argv[++*i];
        return true;
    }
    if (strncmp(argv[*i], name, len) == 0 && argv[*i][len] == '=') {
        *out = argv[*i] + len + 1;
        return true;
    }
    return false;
}

bool fgctl_parse_id(long long *out, const char *text)
{
    char *end = NULL;
    long long v;

    if (text == NULL || text[0] < '0' || text[0] > '9')
        return false;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || v <= 0)
        return false;
    *out = v;
    return true;
}

int fgctl_query_put(fg_buf *b, const char *name, const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    int rc;

    if ((rc = fg_buf_printf(b, "%c%s=", strchr(b->ptr, '?') != NULL ? '&' : '?', name)) < 0)
        return rc;
    for (const unsigned char *p = (const unsigned char *)value; *p != '\0'; p++) {
        bool plain = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '.' || *p == '_' || *p == '~';

        rc = plain ? fg_buf_putc(b, (char)*p)
                   : fg_buf_printf(b, "%%%c%c", hex[*p >> 4], hex[*p & 15]);
        if (rc < 0)
            return rc;
    }
    return 0;
}

void fgctl_print_json(const json_object *value)
{
    printf("%s\n",
           json_object_to_json_string_ext(
               (json_object *)value, JSON_C_TO_STRING_PRETTY | JSON_C_TO_STRING_NOSLASHESCAPE));
}

long long fgctl_json_int(const json_object *obj, const char *key)
{
    json_object *v = NULL;

    return json_object_object_get_ex(obj, key, &v) ? (long long)json_object_get_int64(v) : 0;
}

const char *fgctl_json_str(const json_object *obj, const char *key)
{
    json_object *v = NULL;

    if (!json_object_object_get_ex(obj, key, &v) || v == NULL)
        return "-";
    return json_object_get_string(v);
}

/* ---- list --------------------------------------------------------------------------------- */

static void print_project_row(const json_object *p)
{
    printf("%-8lld %-7s %-40s %s\n", fgctl_json_int(p, "id"), fgctl_json_str(p, "forge"),
           fgctl_json_str(p, "path"), fgctl_json_str(p, "url"));
}

static int project_list(fgctl *ctl, const char *path)
{
    json_object *all = json_object_new_array(), *page = NULL, *items = NULL, *next = NULL;
    char after[32] = "";
    fg_buf q;
    int status = FGCTL_EXIT_FAILED;

    fg_buf_init(&q, 4096);
    if (!ctl->json)
        printf("%-8s %-7s %-40s %s\n", "ID", "FORGE", "PATH", "URL");
    do {
        fg_buf_clear(&q);
        if (fg_buf_printf(&q, "/projects?limit=%d", PROJECT_PAGE) < 0 ||
            (after[0] != '\0' && fgctl_query_put(&q, "after", after) < 0) ||
            (path != NULL && fgctl_query_put(&q, "path", path) < 0))
            goto done;
        json_object_put(page);
        if ((status = fgctl_call(&page, ctl, PROJECT_SERVICE, "project list", "GET", q.ptr,
                                 NULL)) != FGCTL_EXIT_OK)
            goto done;
        status = FGCTL_EXIT_FAILED;
        if (!json_object_object_get_ex(page, "projects", &items) ||
            !json_object_is_type(items, json_type_array))
            goto done;
        for (size_t i = 0; i < json_object_array_length(items); i++) {
            json_object *p = json_object_array_get_idx(items, i);

            if (ctl->json)
                json_object_array_add(all, json_object_get(p));
            else
                print_project_row(p);
        }
        after[0] = '\0';
        if (json_object_object_get_ex(page, "next", &next) && next != NULL)
            snprintf(after, sizeof(after), "%s", json_object_get_string(next));
    } while (after[0] != '\0');
    if (ctl->json)
        fgctl_print_json(all);
    status = FGCTL_EXIT_OK;
done:
    json_object_put(page);
    json_object_put(all);
    fg_buf_dispose(&q);
    return status;
}

/* ---- status ------------------------------------------------------------------------------- */

typedef struct {
    long long total, progress, failed;
    bool done, synced;
} status_view;

static void status_read(status_view *v, const json_object *st)
{
    json_object *b = NULL;

    v->total = fgctl_json_int(st, "total");
    v->progress = fgctl_json_int(st, "progress");
    v->failed = fgctl_json_int(st, "failed");
    v->done = json_object_object_get_ex(st, "done", &b) && json_object_get_boolean(b);
    v->synced = json_object_object_get_ex(st, "synced", &b) && json_object_get_boolean(b);
}

/* The non-zero counts, "NEW 12  TRIPLES_STORE 988". */
static void counts_text(char *out, size_t size, const json_object *st)
{
    json_object *by = NULL;
    size_t used = 0;

    out[0] = '\0';
    if (!json_object_object_get_ex(st, "byStatus", &by))
        return;
    json_object_object_foreach(by, name, count)
    {
        long long n = (long long)json_object_get_int64(count);
        int w;

        if (n == 0)
            continue;
        w = snprintf(out + used, size - used, "%s%s %lld", used > 0 ? "  " : "", name, n);
        if (w < 0 || (size_t)w >= size - used)
            return;
        used += (size_t)w;
    }
}

static const char *state_text(const status_view *v)
{
    if (v->done)
        return v->failed > 0 ? "done, with failures" : "done";
    return v->synced ? "in progress" : "waiting for the first commit sync";
}

static void print_status(long long id, const json_object *st)
{
    status_view v;
    char counts[1024];

    status_read(&v, st);
    counts_text(counts, sizeof(counts), st);
    printf("project %lld: %s, %lld%% of %lld events final\n", id, state_text(&v), v.progress,
           v.total);
    if (counts[0] != '\0')
        printf("  %s\n", counts);
}

static void draw_bar(const status_view *v, const char *counts)
{
    char bar[WAIT_BAR_WIDTH + 1];
    long long filled = v->progress * WAIT_BAR_WIDTH / 100;

    for (int i = 0; i < WAIT_BAR_WIDTH; i++)
        bar[i] = i < filled ? '#' : '.';
    bar[WAIT_BAR_WIDTH] = '\0';
    /* \033[K clears what a longer previous line left behind */
    printf("\r[%s] %3lld%% %lld events  %.120s\033[K", bar, v->progress, v->total,
           v->synced ? counts : "waiting for the first commit sync");
    fflush(stdout);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long long ms)
{
    struct timespec ts = {(time_t)(ms / 1000), (long)(ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

typedef struct {
    long long id;
    long long timeout_ms; /* 0: no limit */
    long long interval_ms;
} wait_opts;

/* One poll's worth of output: a redrawn bar on a terminal, else a line when something changed
 * and the last line is a few seconds old. */
static void show_progress(fgctl *ctl, long long id, const json_object *st, char *last,
                          size_t last_size, long long *last_line_ms)
{
    status_view v;
    char counts[1024], line[1200];

    if (ctl->json)
        return;
    status_read(&v, st);
    counts_text(counts, sizeof(counts), st);
    if (ctl->tty) {
        draw_bar(&v, counts);
        return;
    }
    snprintf(line, sizeof(line), "%lld%% %lld events %s", v.progress, v.total,
             v.synced ? counts : "waiting for the first commit sync");
    if (strcmp(line, last) != 0 && now_ms() - *last_line_ms >= WAIT_LINE_EVERY_MS) {
        printf("project %lld: %s\n", id, line);
        fflush(stdout);
        snprintf(last, last_size, "%s", line);
        *last_line_ms = now_ms();
    }
}

static int project_wait(fgctl *ctl, const wait_opts *w)
{
    char path[64], last[1200] = "";
    long long start = now_ms(), last_line_ms = -WAIT_LINE_EVERY_MS;
    json_object *st = NULL;
    int errors = 0, status = FGCTL_EXIT_FAILED;

    snprintf(path, sizeof(path), "/projects/%lld/status", w->id);
    for (;;) {
        status_view v;

        json_object_put(st);
        st = NULL;
        if (fgctl_call(&st, ctl, PROJECT_SERVICE, "project status", "GET", path, NULL) !=
                FGCTL_EXIT_OK ||
            st == NULL) {
            /* a project that does not exist will not appear by waiting; a restart may pass */
            if (++errors >= WAIT_ERRORS_MAX)
                goto done;
        } else {
            errors = 0;
            status_read(&v, st);
            if (v.done)
                break;
            show_progress(ctl, w->id, st, last, sizeof(last), &last_line_ms);
        }
        if (w->timeout_ms > 0 && now_ms() - start >= w->timeout_ms) {
            if (ctl->tty && !ctl->json)
                printf("\n");
            fprintf(stderr, "fgctl project status: project %lld not done after %lld s\n", w->id,
                    w->timeout_ms / 1000);
            goto done;
        }
        sleep_ms(w->interval_ms);
    }
    if (ctl->tty && !ctl->json)
        printf("\r\033[K");
    if (ctl->json)
        fgctl_print_json(st);
    else
        print_status(w->id, st);
    status = fgctl_json_int(st, "failed") > 0 ? FGCTL_EXIT_FAILED : FGCTL_EXIT_OK;
    if (status != FGCTL_EXIT_OK)
        fprintf(stderr, "fgctl project status: project %lld is done with %lld failed events\n",
                w->id, fgctl_json_int(st, "failed"));
done:
    json_object_put(st);
    return status;
}

static int project_status(fgctl *ctl, int argc, char **argv)
{
    wait_opts w = {0, 0, WAIT_INTERVAL_MS};
    bool wait = false;
    const char *v;
    char path[64];
    json_object *st = NULL;
    int status;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--wait") == 0)
            wait = true;
        else if (strcmp(argv[i], "--json") == 0)
            ctl->json = true;
        else if (fgctl_opt_value(&v, argc, argv, &i, "--timeout")) {
            if (!fgctl_parse_id(&w.timeout_ms, v))
                return FGCTL_EXIT_USAGE;
            w.timeout_ms *= 1000;
        } else if (fgctl_opt_value(&v, argc, argv, &i, "--interval")) {
            if (!fgctl_parse_id(&w.interval_ms, v))
                return FGCTL_EXIT_USAGE;
        } else if (w.id == 0 && fgctl_parse_id(&w.id, argv[i])) {
            continue;
        } else {
            fprintf(stderr, "fgctl project status: unexpected '%s'\n", argv[i]);
            return FGCTL_EXIT_USAGE;
        }
    }
    if (w.id == 0) {
        fprintf(stderr, "usage: fgctl project status ID [--wait [--timeout SECONDS] "
                        "[--interval MS]] [--json]\n");
        return FGCTL_EXIT_USAGE;
    }
    if (wait)
        return project_wait(ctl, &w);
    snprintf(path, sizeof(path), "/projects/%lld/status", w.id);
    if ((status = fgctl_call(&st, ctl, PROJECT_SERVICE, "project status", "GET", path, NULL)) ==
        FGCTL_EXIT_OK) {
        if (ctl->json)
            fgctl_print_json(st);
        else
            print_status(w.id, st);
    }
    json_object_put(st);
    return status;
}

/* ---- add ---------------------------------------------------------------------------------- */

static bool path_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

/* "ns/name" from the last two segments of a clone URL or path, without ".git". */
static bool path_from_url(char *out, size_t size, const char *url)
{
    const char *tail = url, *sep = strstr(url, "://"), *colon = strchr(url, ':');
    const char *end, *name, *ns;

    if (sep != NULL)
        tail = strchr(sep + 3, '/'); /* after the host */
    else if (url[0] != '/' && colon != NULL)
        tail = colon + 1; /* user@host:ns/name.git */
    if (tail == NULL)
        return false;
    end = tail + strlen(tail);
    while (end > tail && end[-1] == '/')
        end--;
    if (end - tail > 4 && strncmp(end - 4, ".git", 4) == 0)
        end -= 4;
    for (name = end; name > tail && name[-1] != '/'; name--)
        ;
    if (name == end || name - 1 <= tail)
        return false; /* no name, or no namespace before it */
    for (ns = name - 1; ns > tail && ns[-1] != '/'; ns--)
        ;
    if (ns == name - 1 || (size_t)(end - ns) >= size)
        return false;
    for (const char *p = ns; p < end; p++)
        if (p != name - 1 && !path_char_ok(*p))
            return false;
    snprintf(out, size, "%.*s", (int)(end - ns), ns);
    return true;
}

static void add_usage(FILE *out)
{
    fprintf(out,
            "usage: fgctl project add --forge git|github|gitlab --url URL [--path NS/NAME]\n"
            "                         [--forge-id N] [--token-file FILE] [--json]\n"
            "Activates the project through the webhook: registers it with event-log (its id comes\n"
            "back; adding it again answers the same project), stores the token, creates the forge\n"
            "hook when a public URL is configured, and asks for its first commit sync at once.\n"
            "--path defaults to the last two segments of the URL, without .git. --forge-id is\n"
            "looked up on the forge when absent (GitHub, GitLab). The token is read from FILE\n"
            "('-': standard input) or from FGCTL_TOKEN, never from the command line.\n");
}

/* The token from --token-file (first line, '-' for stdin) or FGCTL_TOKEN into out; empty when
 * neither is given. false (with a message) when the file cannot be read or the token is empty
 * or too long. */
static bool read_token(char *out, size_t cap, const char *file)
{
    const char *env = getenv("FGCTL_TOKEN");
    FILE *f = NULL;
    size_t len;

    out[0] = '\0';
    if (file == NULL) {
        if (env != NULL && snprintf(out, cap, "%s", env) >= (int)cap) {
            fprintf(stderr, "fgctl project add: FGCTL_TOKEN is too long\n");
            return false;
        }
        return true;
    }
    f = strcmp(file, "-") == 0 ? stdin : fopen(file, "r");
    if (f == NULL) {
        fprintf(stderr, "fgctl project add: cannot read %s: %s\n", file, strerror(errno));
        return false;
    }
    if (fgets(out, (int)cap, f) == NULL)
        out[0] = '\0';
    if (f != stdin)
        fclose(f);
    len = strcspn(out, "\r\n");
    if (len == 0 || len + 1 >= cap) {
        fprintf(stderr, "fgctl project add: %s holds %s\n", file,
                len == 0 ? "no token" : "a token too long");
        fg_crypto_wipe(out, cap);
        return false;
    }
    out[len] = '\0';
    return true;
}

static json_object *add_body(const char *forge, const char *path, const char *url,
                             const char *forge_id, long long id, const char *token)
{
    json_object *body = json_object_new_object();

    json_object_object_add(body, "forge", json_object_new_string(forge));
    if (forge_id != NULL)
        json_object_object_add(body, "forgeId", json_object_new_int64(id));
    json_object_object_add(body, "path", json_object_new_string(path));
    json_object_object_add(body, "url", json_object_new_string(url));
    if (token[0] != '\0')
        json_object_object_add(body, "token", json_object_new_string(token));
    return body;
}

static void print_added(const json_object *answer)
{
    json_object *hook;

    printf("project %lld: %s (%s)", fgctl_json_int(answer, "id"), fgctl_json_str(answer, "path"),
           fgctl_json_str(answer, "url"));
    if (json_object_object_get_ex(answer, "hook", &hook) && fgctl_json_str(hook, "status")[0])
        printf(", hook %s", fgctl_json_str(hook, "status"));
    printf("; first commit sync requested\n");
}

static int project_add(fgctl *ctl, int argc, char **argv)
{
    const char *forge = NULL, *url = NULL, *path = NULL, *forge_id = NULL, *token_file = NULL, *v;
    char derived[PROJECT_PATH_MAX + 1], token[TOKEN_MAX + 2];
    json_object *body = NULL, *answer = NULL;
    long long id = 0;
    bool bad = false;
    int status;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0) {
            add_usage(stdout);
            return FGCTL_EXIT_OK;
        }
        if (strcmp(argv[i], "--json") == 0)
            ctl->json = true;
        else if (fgctl_opt_value(&v, argc, argv, &i, "--forge"))
            forge = v;
        else if (fgctl_opt_value(&v, argc, argv, &i, "--url"))
            url = v;
        else if (fgctl_opt_value(&v, argc, argv, &i, "--path"))
            path = v;
        else if (fgctl_opt_value(&v, argc, argv, &i, "--forge-id"))
            forge_id = v;
        else if (fgctl_opt_value(&v, argc, argv, &i, "--token-file"))
            token_file = v;
        else
            bad = true;
    }
    if (bad || forge == NULL || url == NULL ||
        (forge_id != NULL && !fgctl_parse_id(&id, forge_id))) {
        add_usage(stderr);
        return FGCTL_EXIT_USAGE;
    }
    if (path == NULL) {
        if (!path_from_url(derived, sizeof(derived), url)) {
            fprintf(stderr, "fgctl project add: cannot tell ns/name from %s; give --path\n", url);
            return FGCTL_EXIT_USAGE;
        }
        path = derived;
    }
    if (!read_token(token, sizeof(token), token_file))
        return FGCTL_EXIT_USAGE;
    body = add_body(forge, path, url, forge_id, id, token);
    fg_crypto_wipe(token, sizeof(token));
    status = fgctl_call(&answer, ctl, ACTIVATION_SERVICE, "project add", "POST", "/projects",
                        json_object_to_json_string_ext(body, JSON_C_TO_STRING_PLAIN));
    if (status == FGCTL_EXIT_OK && answer != NULL) {
        if (ctl->json)
            fgctl_print_json(answer);
        else
            print_added(answer);
    }
    json_object_put(body);
    json_object_put(answer);
    return status;
}

/* ---- sync and remove ---------------------------------------------------------------------- */

static int project_simple(fgctl *ctl, int argc, char **argv, const char *method, const char *suffix)
{
    bool yes = false;
    long long id = 0;
    char path[96], what[32];
    json_object *answer = NULL;
    int status;

    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--yes") == 0)
            yes = true;
        else if (strcmp(argv[i], "--json") == 0)
            ctl->json = true;
        else if (id != 0 || !fgctl_parse_id(&id, argv[i]))
            id = -1;
    }
    snprintf(what, sizeof(what), "project %s", argv[1]);
    if (id <= 0 || (strcmp(method, "DELETE") == 0 && !yes)) {
        fprintf(stderr, "usage: fgctl project %s ID%s\n", argv[1],
                strcmp(method, "DELETE") == 0
                    ? " --yes\n(removes the project's forge hook, token, and its events from "
                      "event-log, which asks commit-sync and triples-generator to drop its mirror "
                      "and graph)"
                    : "\n(makes its commit sync due now)");
        return FGCTL_EXIT_USAGE;
    }
    snprintf(path, sizeof(path), "/projects/%lld%s", id, suffix);
    /* removal goes through the webhook: it deletes the forge hook and the token too */
    status = fgctl_call(&answer, ctl,
                        strcmp(method, "DELETE") == 0 ? ACTIVATION_SERVICE : PROJECT_SERVICE, what,
                        method, path, NULL);
    if (status == FGCTL_EXIT_OK && !ctl->json)
        printf("project %lld: %s\n", id,
               strcmp(method, "DELETE") == 0 ? "removed" : "commit sync requested");
    else if (status == FGCTL_EXIT_OK && answer != NULL)
        fgctl_print_json(answer);
    json_object_put(answer);
    return status;
}

/* ---- entry -------------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fprintf(out,
            "usage: fgctl project list [--path NS/NAME] [--json]\n"
            "       fgctl project status ID [--wait [--timeout SECONDS] [--interval MS]] [--json]\n"
            "       fgctl project add --forge git|github|gitlab --url URL [--path NS/NAME]\n"
            "                         [--forge-id N] [--token-file FILE] [--json]\n"
            "       fgctl project sync ID\n"
            "       fgctl project remove ID --yes\n"
            "status --wait returns 0 once the project is done (a commit sync completed and every\n"
            "event is final), 1 when it is done with failed events or the timeout passed.\n"
            "add and remove go through the webhook (hook, token, first sync): fgctl project add "
            "--help.\n");
}

int fgctl_cmd_project(fgctl *ctl, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    const char *path = NULL;

    if (sub == NULL || strcmp(sub, "--help") == 0 || strcmp(sub, "help") == 0) {
        usage(sub == NULL ? stderr : stdout);
        return sub == NULL ? FGCTL_EXIT_USAGE : FGCTL_EXIT_OK;
    }
    if (strcmp(sub, "list") == 0) {
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--json") == 0) {
                ctl->json = true;
            } else if (!fgctl_opt_value(&path, argc, argv, &i, "--path") || path == NULL) {
                usage(stderr);
                return FGCTL_EXIT_USAGE;
            }
        }
        return project_list(ctl, path);
    }
    if (strcmp(sub, "status") == 0)
        return project_status(ctl, argc, argv);
    if (strcmp(sub, "add") == 0)
        return project_add(ctl, argc, argv);
    if (strcmp(sub, "sync") == 0)
        return project_simple(ctl, argc, argv, "POST", "/sync");
    if (strcmp(sub, "remove") == 0)
        return project_simple(ctl, argc, argv, "DELETE", "");
    fprintf(stderr, "fgctl project: unknown subcommand '%s'\n", sub);
    usage(stderr);
    return FGCTL_EXIT_USAGE;
}
