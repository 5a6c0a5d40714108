/*
 * fg-bench-webhook-load: a fixed-rate HTTP load generator for bench/webhook.sh (p99_ms). wrk
 * cannot hold a rate, and hey/h2load send the same headers with every request, while each
 * delivery needs its own X-GitHub-Delivery. This one is open-loop: request i is due at
 * start + i/rate whether or not earlier ones have been answered (a free keep-alive connection
 * is taken, or a new one opened), and its latency counts from when it was due, so a stall shows
 * in the percentiles instead of silently lowering the rate (no coordinated omission).
 *
 * Usage: fg-bench-webhook-load HOST PORT PATH RATE SECONDS BODY_FILE SIGNATURE RUN
 * Prints: load sent=N answered=N ok=N other=N failed=N p50_ms=X p99_ms=X max_ms=X
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CONNECTIONS_MAX 1024
#define TICK_US         500

typedef struct conn conn;

typedef struct {
    struct event_base *base;
    const char *host, *path, *signature, *run;
    int port;
    double rate;
    long total;
    char *body;
    size_t body_len;
    conn *conns[CONNECTIONS_MAX];
    int nconns;
    double start;
    long sent, answered, ok, other, failed;
    double *latency_ms;
    struct event *tick;
} load;

struct conn {
    load *l;
    struct evhttp_connection *evcon;
    bool busy;
    double due;
};

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void on_answer(struct evhttp_request *req, void *arg)
{
    conn *c = arg;
    load *l = c->l;
    int code = req != NULL ? evhttp_request_get_response_code(req) : 0;

    l->latency_ms[l->answered++] = (now_s() - c->due) * 1000.0;
    if (code >= 200 && code < 300)
        l->ok++;
    else if (code == 0)
        l->failed++;
    else
        l->other++;
    c->busy = false;
    if (l->answered == l->total)
        event_base_loopbreak(l->base);
}

static conn *free_conn(load *l)
{
    conn *c;

    for (int i = 0; i < l->nconns; i++) {
        if (!l->conns[i]->busy)
            return l->conns[i];
    }
    if (l->nconns == CONNECTIONS_MAX || (c = calloc(1, sizeof(*c))) == NULL)
        return NULL;
    c->l = l;
    c->evcon = evhttp_connection_base_new(l->base, NULL, l->host, (unsigned short)l->port);
    if (c->evcon == NULL) {
        free(c);
        return NULL;
    }
    l->conns[l->nconns++] = c;
    return c;
}

static void send_one(load *l, double due)
{
    conn *c = free_conn(l);
    struct evhttp_request *req;
    struct evkeyvalq *h;
    char delivery[128];

    if (c == NULL || (req = evhttp_request_new(on_answer, c)) == NULL) {
        l->failed++;
        l->latency_ms[l->answered++] = (now_s() - due) * 1000.0;
        return;
    }
    c->busy = true;
    c->due = due;
    snprintf(delivery, sizeof(delivery), "%s-fixed-%ld", l->run, l->sent);
    h = evhttp_request_get_output_headers(req);
    evhttp_add_header(h, "Host", l->host);
    evhttp_add_header(h, "Content-Type", "application/json");
    evhttp_add_header(h, "User-Agent", "GitHub-Hookshot/bench");
    evhttp_add_header(h, "X-GitHub-Event", "push");
    evhttp_add_header(h, "X-GitHub-Delivery", delivery);
    evhttp_add_header(h, "X-Hub-Signature-256", l->signature);
    evbuffer_add(evhttp_request_get_output_buffer(req), l->body, l->body_len);
    if (evhttp_make_request(c->evcon, req, EVHTTP_REQ_POST, l->path) != 0) {
        c->busy = false;
        l->failed++;
        l->latency_ms[l->answered++] = (now_s() - due) * 1000.0;
    }
}

/* Sends every request that is due by now, each stamped with its own due time. */
static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    load *l = arg;
    double elapsed = now_s() - l->start;

    (void)fd;
    (void)what;
    while (l->sent < l->total && (double)l->sent / l->rate <= elapsed) {
        send_one(l, l->start + (double)l->sent / l->rate);
        l->sent++;
    }
    if (l->answered == l->total)
        event_base_loopbreak(l->base);
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static char *read_file(const char *path, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    char *data = NULL;
    long n;

    if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
        fseek(f, 0, SEEK_SET) != 0 || (data = malloc((size_t)n + 1)) == NULL ||
        fread(data, 1, (size_t)n, f) != (size_t)n) {
        free(data);
        data = NULL;
    } else {
        *out_len = (size_t)n;
    }
    if (f != NULL)
        fclose(f);
    return data;
}

static bool parse_number(double *out, const char *s)
{
    char *end = NULL;

    errno = 0;
    *out = strtod(s, &end);
    return end != s && *end == '\0' && errno == 0 && *out > 0;
}

int main(int argc, char **argv)
{
    load l = {0};
    double port, seconds;
    struct timeval every = {0, TICK_US};

    if (argc != 9 || !parse_number(&port, argv[2]) || !parse_number(&l.rate, argv[4]) ||
        !parse_number(&seconds, argv[5])) {
        fprintf(stderr, "usage: %s HOST PORT PATH RATE SECONDS BODY_FILE SIGNATURE RUN\n", argv[0]);
        return 2;
    }
    l.host = argv[1];
    l.port = (int)port;
    l.path = argv[3];
    l.total = (long)(l.rate * seconds);
    l.signature = argv[7];
    l.run = argv[8];
    if ((l.body = read_file(argv[6], &l.body_len)) == NULL) {
        fprintf(stderr, "%s: cannot read %s\n", argv[0], argv[6]);
        return 1;
    }
    l.latency_ms = calloc((size_t)l.total + 1, sizeof(double));
    l.base = event_base_new();
    if (l.latency_ms == NULL || l.base == NULL || l.total < 1)
        return 1;
    l.tick = event_new(l.base, -1, EV_PERSIST, on_tick, &l);
    if (l.tick == NULL || event_add(l.tick, &every) != 0)
        return 1;
    l.start = now_s();
    event_base_dispatch(l.base);
    qsort(l.latency_ms, (size_t)l.answered, sizeof(double), compare_double);
    printf("load sent=%ld answered=%ld ok=%ld other=%ld failed=%ld p50_ms=%.2f p99_ms=%.2f "
           "max_ms=%.2f\n",
           l.sent, l.answered, l.ok, l.other, l.failed,
           l.answered > 0 ? l.latency_ms[(size_t)(l.answered * 0.50)] : 0.0,
           l.answered > 0 ? l.latency_ms[(size_t)(l.answered * 0.99)] : 0.0,
           l.answered > 0 ? l.latency_ms[l.answered - 1] : 0.0);
    for (int i = 0; i < l.nconns; i++) {
        evhttp_connection_free(l.conns[i]->evcon);
        free(l.conns[i]);
    }
    event_free(l.tick);
    event_base_free(l.base);
    free(l.latency_ms);
    free(l.body);
    return l.failed > 0 ? 1 : 0;
}
