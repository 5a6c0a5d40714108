/*
 * fg-bench-webhook-bare: the reference of bench/webhook.sh (bare_rps). A bare libevent evhttp
 * server on 127.0.0.1 that answers every request with 200 and a small JSON body after looking at
 * the body once, as the webhook does before anything else: the HTTP floor on this machine,
 * measured in the same run with the same load and the same loop setting (the epoll changelist).
 * No parsing, no signature, no database.
 *
 * Usage: fg-bench-webhook-bare PORT      (stops on SIGTERM or SIGINT)
 */
#include <errno.h>
#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

static void on_request(struct evhttp_request *req, void *arg)
{
    struct evbuffer *in = evhttp_request_get_input_buffer(req);
    struct evbuffer *out = evhttp_request_get_output_buffer(req);
    size_t len = evbuffer_get_length(in);
    const unsigned char *body = len > 0 ? evbuffer_pullup(in, -1) : NULL;
    unsigned sum = 0;

    (void)arg;
    for (size_t i = 0; i < len; i++)
        sum += body[i];
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type", "application/json");
    evbuffer_add_printf(out, "{\"status\":\"accepted\",\"sum\":%u}", sum);
    evhttp_send_reply(req, 200, "OK", NULL);
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)sig;
    (void)what;
    event_base_loopbreak(arg);
}

int main(int argc, char **argv)
{
    struct event_config *cfg;
    struct event_base *base;
    struct evhttp *http;
    struct event *term, *intr;
    char *end = NULL;
    long port;

    errno = 0;
    port = argc == 2 ? strtol(argv[1], &end, 10) : 0;
    if (argc != 2 || end == argv[1] || *end != '\0' || errno != 0 || port < 1 || port > 65535) {
        fprintf(stderr, "usage: %s PORT\n", argv[0]);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    /* the loop setting every service runs with (common/src/service.c new_loop) */
    if ((cfg = event_config_new()) == NULL ||
        event_config_set_flag(cfg, EVENT_BASE_FLAG_EPOLL_USE_CHANGELIST) != 0)
        return 1;
    base = event_base_new_with_config(cfg);
    event_config_free(cfg);
    http = base != NULL ? evhttp_new(base) : NULL;
    if (http == NULL || evhttp_bind_socket(http, "127.0.0.1", (ev_uint16_t)port) != 0) {
        fprintf(stderr, "%s: cannot listen on 127.0.0.1:%ld\n", argv[0], port);
        return 1;
    }
    evhttp_set_max_body_size(http, 25 * 1024 * 1024);
    evhttp_set_allowed_methods(http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
    evhttp_set_gencb(http, on_request, NULL);
    term = evsignal_new(base, SIGTERM, on_signal, base);
    intr = evsignal_new(base, SIGINT, on_signal, base);
    if (term == NULL || intr == NULL || event_add(term, NULL) != 0 || event_add(intr, NULL) != 0)
        return 1;
    event_base_dispatch(base);
    event_free(term);
    event_free(intr);
    evhttp_free(http);
    event_base_free(base);
    return 0;
}
