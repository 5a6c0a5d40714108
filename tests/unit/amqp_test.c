/* fg_amqp without a broker: URL parsing (and that errors never show the password), and the
 * protocol logic against a scripted fake of librabbitmq linked in with -Wl,--wrap
 * (amqp_test.cmake): connect backoff, confirms (multiple, out of order, nack, basic.return,
 * connection lost mid-batch), deliveries that arrive during a confirm wait, attempt counting
 * from headers, retry/park republishing and the reconnect that redoes the topology. */
#include "test_support.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fg/amqp.h"

#define PASSWORD "s3cr3t-Pw"
#define URL      "amqp://fg:" PASSWORD "@broker.test:5679/%2f"

/* ------------------------------------------------------------------------------------------ */
/* URL parsing                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void test_amqp__url_parses_every_part(void **state)
{
    fg_amqp_url u;
    (void)state;

    assert_int_equal(fg_amqp_url_parse(&u, "amqp://fg:pw@127.0.0.1:45672/%2f"), 0);
    assert_string_equal(u.host, "127.0.0.1");
    assert_int_equal(u.port, 45672);
    assert_string_equal(u.user, "fg");
    assert_string_equal(u.password, "pw");
    assert_string_equal(u.vhost, "/");
    fg_amqp_url_dispose(&u);

    assert_int_equal(fg_amqp_url_parse(&u, "AMQP://u%40x:p%3Aw%2F@[::1]:1/my%20vhost"), 0);
    assert_string_equal(u.host, "::1");
    assert_int_equal(u.port, 1);
    assert_string_equal(u.user, "u@x");
    assert_string_equal(u.password, "p:w/");
    assert_string_equal(u.vhost, "my vhost");
    fg_amqp_url_dispose(&u);

    /* An unescaped '@' in the password: the last '@' ends the userinfo. */
    assert_int_equal(fg_amqp_url_parse(&u, "amqp://u:p@ss@rabbit-1.local/prod"), 0);
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.host, "rabbit-1.local");
    assert_string_equal(u.vhost, "prod");
    fg_amqp_url_dispose(&u);
}

static void test_amqp__url_defaults(void **state)
{
    fg_amqp_url u;
    (void)state;

    assert_int_equal(fg_amqp_url_parse(&u, "amqp://rabbit"), 0);
    assert_string_equal(u.host, "rabbit");
    assert_int_equal(u.port, 5672);
    assert_string_equal(u.user, "guest");
    assert_string_equal(u.password, "guest");
    assert_string_equal(u.vhost, "/");
    fg_amqp_url_dispose(&u);

    assert_int_equal(fg_amqp_url_parse(&u, "amqp://rabbit/"), 0); /* the spec's empty vhost */
    assert_string_equal(u.vhost, "");
    fg_amqp_url_dispose(&u);
    fg_amqp_url_dispose(NULL);
}

static void test_amqp__url_rejects_bad_urls(void **state)
{
    static const char *bad[] = {
        "",
        "http://rabbit/",
        "amqps://u:p@rabbit/",
        "amqp://",
        "amqp://u:p@/vhost",
        "amqp://rabbit:0/",
        "amqp://rabbit:65536/",
        "amqp://rabbit:12x/",
        "amqp://rabbit:/",
        "amqp://rab bit/",
        "amqp://[::1/",
        "amqp://[::1]x/",
        "amqp://rabbit/a/b",
        "amqp://rabbit/%zz",
        "amqp://rabbit/%2",
        "amqp://rabbit/%00",
        "amqp://rabbit/?heartbeat=5",
        "amqp://u%g0:p@rabbit/",
    };
    fg_amqp_url u;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (fg_amqp_url_parse(&u, bad[i]) != FG_EINVALID)
            fail_msg("accepted bad URL '%s'", bad[i]);
        assert_null(u.host);
        assert_true(fg_error_last()[0] != '\0');
    }
    assert_int_equal(fg_amqp_url_parse(&u, NULL), FG_EINVALID);
}

static void test_amqp__url_rejects_overlong(void **state)
{
    char *url = malloc(FG_AMQP_URL_MAX + 32);
    fg_amqp_url u;
    (void)state;

    assert_non_null(url);
    memcpy(url, "amqp://h/", 9);
    memset(url + 9, 'v', FG_AMQP_URL_MAX);
    url[FG_AMQP_URL_MAX + 9] = '\0';
    assert_int_equal(fg_amqp_url_parse(&u, url), FG_ETOOBIG);
    free(url);
}

/* Wherever the password lands in a malformed URL, the error does not repeat it. */
static void test_amqp__url_errors_hide_the_password(void **state)
{
    static const char *bad[] = {
        "amqp://user:" PASSWORD,                /* no '@': the password reads as the port */
        "amqp://user:" PASSWORD "@/vhost",      /* no host */
        "amqp://user:" PASSWORD "@host:99999/", /* bad port */
        "amqp://user:" PASSWORD "%zz@host/",    /* bad escape in the password */
        "amqp://user:" PASSWORD "@host/a/b",    /* bad vhost */
        "amqp://user:" PASSWORD "@host/?x=1",   /* query */
        "amqps://user:" PASSWORD "@host/",      /* TLS */
        "amqp://user:pa/" PASSWORD "@host/",    /* a '/' in the password */
        "amqp://user:" PASSWORD "@ho st/",      /* bad host */
    };
    fg_amqp_url u;
    fg_amqp_options o;
    fg_amqp *h = NULL;
    (void)state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = fg_amqp_url_parse(&u, bad[i]);

        if (rc == 0)
            fail_msg("accepted bad URL #%zu", i);
        if (strstr(fg_error_last(), PASSWORD) != NULL || strstr(fg_error_last(), "s3cr3t"))
            fail_msg("error for URL #%zu shows the password: %s", i, fg_error_last());
        fg_amqp_options_init(&o);
        o.url = bad[i];
        assert_int_equal(fg_amqp_new(&h, &o), rc);
        assert_null(h);
        assert_null(strstr(fg_error_last(), "s3cr3t"));
    }
}

/* ------------------------------------------------------------------------------------------ */
/* A scripted librabbitmq                                                                     */
/* ------------------------------------------------------------------------------------------ */

#define SCRIPT_MAX 512
#define RECORD_MAX 64

typedef struct {
    int after; /* served once this many messages were published */
    amqp_frame_t frame;
    union {
        amqp_basic_ack_t ack;
        amqp_basic_nack_t nack;
        amqp_basic_deliver_t deliver;
        amqp_basic_return_t ret;
        amqp_connection_close_t close;
    } m;
    amqp_basic_properties_t props;
    amqp_table_entry_t headers[3];
} scripted;

typedef struct {
    char exchange[64], routing_key[128], id[128], type[128], content_type[64];
    char reason_key[64], reason[FG_AMQP_REASON_MAX + 8], body[256];
    int mandatory, delivery_mode;
    long long attempts; /* x-fg-attempts, -1 when absent */
    int nheaders;
    bool has_broker_headers;
} published;

static struct {
    scripted script[SCRIPT_MAX];
    size_t nscript, head;
    bool lost_when_done; /* after the script: connection lost rather than a timeout */
    int publishes, publish_fail_at;
    published pub[RECORD_MAX];
    int opens, open_failures, logins;
    amqp_rpc_reply_t login_reply, reply;
    char fail_declare_of[64];
    int declares, binds, consumes, exchanges, qos_prefetch;
    uint64_t acks[RECORD_MAX], nacks[RECORD_MAX];
    int nacks_n, acks_n, close_oks;
    char events[RECORD_MAX * 2]; /* 'p' publish, 'a' ack, 'n' nack, in order */
    int nevents;
    char login_password[64];
} fake;

static char fake_conn_storage[64], fake_socket_storage[64];
static amqp_connection_close_t server_close;
static amqp_channel_close_t channel_close;

static void fake_reset(void)
{
    memset(&fake, 0, sizeof(fake));
    fake.login_reply.reply_type = AMQP_RESPONSE_NORMAL;
    fake.reply.reply_type = AMQP_RESPONSE_NORMAL;
}

static void event(char e)
{
    if (fake.nevents < (int)sizeof(fake.events) - 1)
        fake.events[fake.nevents++] = e;
}

static scripted *script_add(int after)
{
    scripted *s;

    assert_true(fake.nscript < SCRIPT_MAX);
    s = &fake.script[fake.nscript++];
    memset(s, 0, sizeof(*s));
    s->after = after;
    s->frame.channel = 1;
    return s;
}

static void script_method(scripted *s, amqp_method_number_t id, void *decoded)
{
    s->frame.frame_type = AMQP_FRAME_METHOD;
    s->frame.payload.method.id = id;
    s->frame.payload.method.decoded = decoded;
}

static void script_ack(int after, uint64_t tag, bool multiple)
{
    scripted *s = script_add(after);

    s->m.ack.delivery_tag = tag;
    s->m.ack.multiple = multiple;
    script_method(s, AMQP_BASIC_ACK_METHOD, &s->m.ack);
}

static void script_nack(int after, uint64_t tag)
{
    scripted *s = script_add(after);

    s->m.nack.delivery_tag = tag;
    script_method(s, AMQP_BASIC_NACK_METHOD, &s->m.nack);
}

static void script_close(int after, uint16_t code, const char *text)
{
    scripted *s = script_add(after);

    s->frame.channel = 0;
    s->m.close.reply_code = code;
    s->m.close.reply_text = amqp_cstring_bytes(text);
    script_method(s, AMQP_CONNECTION_CLOSE_METHOD, &s->m.close);
}

typedef struct {
    bool has_own;
    long long own; /* x-fg-attempts */
    bool has_count;
    long long count; /* x-delivery-count */
    char kind;       /* field kind of both */
} hdrs;

static void set_int_field(amqp_field_value_t *v, char kind, long long n)
{
    v->kind = (uint8_t)kind;
    switch (kind) {
    case AMQP_FIELD_KIND_I8:
        v->value.i8 = (int8_t)n;
        break;
    case AMQP_FIELD_KIND_I32:
        v->value.i32 = (int32_t)n;
        break;
    case AMQP_FIELD_KIND_U64:
        v->value.u64 = (uint64_t)n;
        break;
    default:
        v->value.i64 = n;
        break;
    }
}

/* Header and body frames of a message; the body is split into `parts` frames. */
static void script_content(int after, const char *id, const char *type, const char *body, hdrs h,
                           int parts)
{
    scripted *s = script_add(after);
    size_t len = strlen(body), step = parts > 1 ? (len + (size_t)parts - 1) / (size_t)parts : len;
    int n = 0;

    s->frame.frame_type = AMQP_FRAME_HEADER;
    s->frame.payload.properties.class_id = AMQP_BASIC_CLASS;
    s->frame.payload.properties.body_size = len;
    s->frame.payload.properties.decoded = &s->props;
    s->props._flags = AMQP_BASIC_MESSAGE_ID_FLAG | AMQP_BASIC_CONTENT_TYPE_FLAG;
    s->props.message_id = amqp_cstring_bytes(id);
    s->props.content_type = amqp_cstring_bytes("application/json");
    if (type != NULL) {
        s->props._flags |= AMQP_BASIC_TYPE_FLAG;
        s->props.type = amqp_cstring_bytes(type);
    }
    if (h.has_own) {
        s->headers[n].key = amqp_cstring_bytes(FG_AMQP_HEADER_ATTEMPTS);
        set_int_field(&s->headers[n++].value, h.kind, h.own);
    }
    if (h.has_count) {
        s->headers[n].key = amqp_cstring_bytes("x-delivery-count");
        set_int_field(&s->headers[n++].value, h.kind, h.count);
    }
    s->headers[n].key = amqp_cstring_bytes("x-death");
    s->headers[n].value.kind = AMQP_FIELD_KIND_UTF8;
    s->headers[n++].value.value.bytes = amqp_cstring_bytes("(stands for the broker's array)");
    s->props._flags |= AMQP_BASIC_HEADERS_FLAG;
    s->props.headers.num_entries = n;
    s->props.headers.entries = s->headers;
    for (size_t off = 0; off < len; off += step) {
        scripted *b = script_add(after);

        b->frame.frame_type = AMQP_FRAME_BODY;
        b->frame.payload.body_fragment.bytes = (char *)(uintptr_t)body + off;
        b->frame.payload.body_fragment.len = len - off < step ? len - off : step;
    }
}

static const hdrs NO_HEADERS = {false, 0, false, 0, AMQP_FIELD_KIND_I64};

static void script_deliver(int after, uint64_t tag, const char *id, const char *type,
                           const char *body, hdrs h)
{
    scripted *s = script_add(after);

    s->m.deliver.delivery_tag = tag;
    s->m.deliver.routing_key = amqp_cstring_bytes("fg.svc");
    s->m.deliver.redelivered = h.has_count && h.count > 0;
    script_method(s, AMQP_BASIC_DELIVER_METHOD, &s->m.deliver);
    script_content(after, id, type, body, h, 3);
}

static void script_return(int after, const char *id)
{
    scripted *s = script_add(after);

    s->m.ret.reply_code = 312;
    s->m.ret.reply_text = amqp_cstring_bytes("NO_ROUTE");
    script_method(s, AMQP_BASIC_RETURN_METHOD, &s->m.ret);
    script_content(after, id, "CAT", "{\"returned\":true}", NO_HEADERS, 1);
}

/* ---- the wraps ---------------------------------------------------------------------------- */

amqp_connection_state_t __wrap_amqp_new_connection(void);
amqp_socket_t *__wrap_amqp_tcp_socket_new(amqp_connection_state_t state);
int __wrap_amqp_socket_open_noblock(amqp_socket_t *self, const char *host, int port,
                                    const struct timeval *timeout);
int __wrap_amqp_set_handshake_timeout(amqp_connection_state_t state, const struct timeval *tv);
int __wrap_amqp_set_rpc_timeout(amqp_connection_state_t state, const struct timeval *tv);
amqp_rpc_reply_t __wrap_amqp_login(amqp_connection_state_t state, char const *vhost,
                                   int channel_max, int frame_max, int heartbeat,
                                   amqp_sasl_method_enum sasl_method, ...);
amqp_channel_open_ok_t *__wrap_amqp_channel_open(amqp_connection_state_t state,
                                                 amqp_channel_t channel);
amqp_confirm_select_ok_t *__wrap_amqp_confirm_select(amqp_connection_state_t state,
                                                     amqp_channel_t channel);
amqp_rpc_reply_t __wrap_amqp_get_rpc_reply(amqp_connection_state_t state);
amqp_exchange_declare_ok_t *
__wrap_amqp_exchange_declare(amqp_connection_state_t state, amqp_channel_t channel,
                             amqp_bytes_t exchange, amqp_bytes_t type, amqp_boolean_t passive,
                             amqp_boolean_t durable, amqp_boolean_t auto_delete,
                             amqp_boolean_t internal, amqp_table_t arguments);
amqp_queue_declare_ok_t *
__wrap_amqp_queue_declare(amqp_connection_state_t state, amqp_channel_t channel, amqp_bytes_t queue,
                          amqp_boolean_t passive, amqp_boolean_t durable, amqp_boolean_t exclusive,
                          amqp_boolean_t auto_delete, amqp_table_t arguments);
amqp_queue_bind_ok_t *__wrap_amqp_queue_bind(amqp_connection_state_t state, amqp_channel_t channel,
                                             amqp_bytes_t queue, amqp_bytes_t exchange,
                                             amqp_bytes_t routing_key, amqp_table_t arguments);
amqp_basic_qos_ok_t *__wrap_amqp_basic_qos(amqp_connection_state_t state, amqp_channel_t channel,
                                           uint32_t prefetch_size, uint16_t prefetch_count,
                                           amqp_boolean_t global);
amqp_basic_consume_ok_t *
__wrap_amqp_basic_consume(amqp_connection_state_t state, amqp_channel_t channel, amqp_bytes_t queue,
                          amqp_bytes_t consumer_tag, amqp_boolean_t no_local, amqp_boolean_t no_ack,
                          amqp_boolean_t exclusive, amqp_table_t arguments);
int __wrap_amqp_basic_publish(amqp_connection_state_t state, amqp_channel_t channel,
                              amqp_bytes_t exchange, amqp_bytes_t routing_key,
                              amqp_boolean_t mandatory, amqp_boolean_t immediate,
                              struct amqp_basic_properties_t_ const *properties, amqp_bytes_t body);
int __wrap_amqp_basic_ack(amqp_connection_state_t state, amqp_channel_t channel,
                          uint64_t delivery_tag, amqp_boolean_t multiple);
int __wrap_amqp_basic_nack(amqp_connection_state_t state, amqp_channel_t channel,
                           uint64_t delivery_tag, amqp_boolean_t multiple, amqp_boolean_t requeue);
int __wrap_amqp_simple_wait_frame_noblock(amqp_connection_state_t state,
                                          amqp_frame_t *decoded_frame, const struct timeval *tv);
void __wrap_amqp_maybe_release_buffers(amqp_connection_state_t state);
int __wrap_amqp_send_method(amqp_connection_state_t state, amqp_channel_t channel,
                            amqp_method_number_t id, void *decoded);
amqp_rpc_reply_t __wrap_amqp_connection_close(amqp_connection_state_t state, int code);
int __wrap_amqp_destroy_connection(amqp_connection_state_t state);

static void *ok_pointer(void)
{
    static char ok[64];

    return ok;
}

amqp_connection_state_t __wrap_amqp_new_connection(void)
{
    return (amqp_connection_state_t)(void *)fake_conn_storage;
}

amqp_socket_t *__wrap_amqp_tcp_socket_new(amqp_connection_state_t state)
{
    (void)state;
    return (amqp_socket_t *)(void *)fake_socket_storage;
}

int __wrap_amqp_socket_open_noblock(amqp_socket_t *self, const char *host, int port,
                                    const struct timeval *timeout)
{
    (void)self;
    (void)host;
    (void)port;
    (void)timeout;
    return ++fake.opens <= fake.open_failures ? AMQP_STATUS_SOCKET_ERROR : AMQP_STATUS_OK;
}

int __wrap_amqp_set_handshake_timeout(amqp_connection_state_t state, const struct timeval *tv)
{
    (void)state;
    (void)tv;
    return AMQP_STATUS_OK;
}

int __wrap_amqp_set_rpc_timeout(amqp_connection_state_t state, const struct timeval *tv)
{
    (void)state;
    (void)tv;
    return AMQP_STATUS_OK;
}

amqp_rpc_reply_t __wrap_amqp_login(amqp_connection_state_t state, char const *vhost,
                                   int channel_max, int frame_max, int heartbeat,
                                   amqp_sasl_method_enum sasl_method, ...)
{
    va_list ap;
    (void)state;
    (void)vhost;
    (void)channel_max;
    (void)frame_max;
    (void)heartbeat;
    (void)sasl_method;
    va_start(ap, sasl_method);
    (void)va_arg(ap, const char *);
    snprintf(fake.login_password, sizeof(fake.login_password), "%s", va_arg(ap, const char *));
    va_end(ap);
    fake.logins++;
    return fake.login_reply;
}

static void *rpc_ok(void)
{
    fake.reply.reply_type = AMQP_RESPONSE_NORMAL;
    return ok_pointer();
}

amqp_channel_open_ok_t *__wrap_amqp_channel_open(amqp_connection_state_t state,
                                                 amqp_channel_t channel)
{
    (void)state;
    (void)channel;
    return rpc_ok();
}

amqp_confirm_select_ok_t *__wrap_amqp_confirm_select(amqp_connection_state_t state,
                                                     amqp_channel_t channel)
{
    (void)state;
    (void)channel;
    return rpc_ok();
}

amqp_rpc_reply_t __wrap_amqp_get_rpc_reply(amqp_connection_state_t state)
{
    (void)state;
    return fake.reply;
}

amqp_exchange_declare_ok_t *
__wrap_amqp_exchange_declare(amqp_connection_state_t state, amqp_channel_t channel,
                             amqp_bytes_t exchange, amqp_bytes_t type, amqp_boolean_t passive,
                             amqp_boolean_t durable, amqp_boolean_t auto_delete,
                             amqp_boolean_t internal, amqp_table_t arguments)
{
    (void)state;
    (void)channel;
    (void)arguments;
    assert_memory_equal(exchange.bytes, "fg.events", 9);
    assert_memory_equal(type.bytes, "topic", 5);
    assert_true(!passive && durable && !auto_delete && !internal);
    fake.exchanges++;
    return rpc_ok();
}

amqp_queue_declare_ok_t *
__wrap_amqp_queue_declare(amqp_connection_state_t state, amqp_channel_t channel, amqp_bytes_t queue,
                          amqp_boolean_t passive, amqp_boolean_t durable, amqp_boolean_t exclusive,
                          amqp_boolean_t auto_delete, amqp_table_t arguments)
{
    (void)state;
    (void)channel;
    (void)arguments;
    assert_true(!passive && durable && !exclusive && !auto_delete);
    fake.declares++;
    if (queue.len == strlen(fake.fail_declare_of) &&
        memcmp(queue.bytes, fake.fail_declare_of, queue.len) == 0) {
        channel_close.reply_code = AMQP_PRECONDITION_FAILED;
        channel_close.reply_text = amqp_cstring_bytes("PRECONDITION_FAILED - inequivalent arg");
        fake.reply.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
        fake.reply.reply.id = AMQP_CHANNEL_CLOSE_METHOD;
        fake.reply.reply.decoded = &channel_close;
        return NULL;
    }
    return rpc_ok();
}

amqp_queue_bind_ok_t *__wrap_amqp_queue_bind(amqp_connection_state_t state, amqp_channel_t channel,
                                             amqp_bytes_t queue, amqp_bytes_t exchange,
                                             amqp_bytes_t routing_key, amqp_table_t arguments)
{
    (void)state;
    (void)channel;
    (void)queue;
    (void)exchange;
    (void)routing_key;
    (void)arguments;
    fake.binds++;
    return rpc_ok();
}

amqp_basic_qos_ok_t *__wrap_amqp_basic_qos(amqp_connection_state_t state, amqp_channel_t channel,
                                           uint32_t prefetch_size, uint16_t prefetch_count,
                                           amqp_boolean_t global)
{
    (void)state;
    (void)channel;
    (void)prefetch_size;
    (void)global;
    fake.qos_prefetch = prefetch_count;
    return rpc_ok();
}

amqp_basic_consume_ok_t *__wrap_amqp_basic_consume(amqp_connection_state_t state,
                                                   amqp_channel_t channel, amqp_bytes_t queue,
                                                   amqp_bytes_t consumer_tag,
                                                   amqp_boolean_t no_local, amqp_boolean_t no_ack,
                                                   amqp_boolean_t exclusive, amqp_table_t arguments)
{
    (void)state;
    (void)channel;
    (void)consumer_tag;
    (void)no_local;
    (void)exclusive;
    (void)arguments;
    assert_false(no_ack);
    assert_memory_equal(queue.bytes, "fg.svc", 6);
    fake.consumes++;
    return rpc_ok();
}

static void copy_bytes(char *dst, size_t cap, amqp_bytes_t b)
{
    snprintf(dst, cap, "%.*s", (int)b.len, b.bytes ? (const char *)b.bytes : "");
}

static void record_headers(published *p, const amqp_table_t *t)
{
    p->attempts = -1;
    p->nheaders = t->num_entries;
    for (int i = 0; i < t->num_entries; i++) {
        const amqp_table_entry_t *e = &t->entries[i];
        char key[64];

        copy_bytes(key, sizeof(key), e->key);
        if (strcmp(key, FG_AMQP_HEADER_ATTEMPTS) == 0) {
            assert_int_equal(e->value.kind, AMQP_FIELD_KIND_I64);
            p->attempts = e->value.value.i64;
        } else if (strcmp(key, FG_AMQP_HEADER_PARK_REASON) == 0 ||
                   strcmp(key, FG_AMQP_HEADER_LAST_ERROR) == 0) {
            snprintf(p->reason_key, sizeof(p->reason_key), "%s", key);
            copy_bytes(p->reason, sizeof(p->reason), e->value.value.bytes);
        } else if (strcmp(key, "x-delivery-count") == 0 || strcmp(key, "x-death") == 0) {
            p->has_broker_headers = true;
        }
    }
}

int __wrap_amqp_basic_publish(amqp_connection_state_t state, amqp_channel_t channel,
                              amqp_bytes_t exchange, amqp_bytes_t routing_key,
                              amqp_boolean_t mandatory, amqp_boolean_t immediate,
                              struct amqp_basic_properties_t_ const *properties, amqp_bytes_t body)
{
    published *p;
    (void)state;
    (void)channel;
    (void)immediate;
    if (fake.publish_fail_at > 0 && fake.publishes + 1 == fake.publish_fail_at)
        return AMQP_STATUS_SOCKET_ERROR;
    if (fake.publishes < RECORD_MAX) {
        p = &fake.pub[fake.publishes];
        memset(p, 0, sizeof(*p));
        copy_bytes(p->exchange, sizeof(p->exchange), exchange);
        copy_bytes(p->routing_key, sizeof(p->routing_key), routing_key);
        copy_bytes(p->id, sizeof(p->id), properties->message_id);
        copy_bytes(p->type, sizeof(p->type), properties->type);
        copy_bytes(p->content_type, sizeof(p->content_type), properties->content_type);
        copy_bytes(p->body, sizeof(p->body), body);
        p->mandatory = mandatory;
        p->delivery_mode = properties->delivery_mode;
        p->attempts = -1;
        if (properties->_flags & AMQP_BASIC_HEADERS_FLAG)
            record_headers(p, &properties->headers);
    }
    fake.publishes++;
    event('p');
    return AMQP_STATUS_OK;
}

int __wrap_amqp_basic_ack(amqp_connection_state_t state, amqp_channel_t channel,
                          uint64_t delivery_tag, amqp_boolean_t multiple)
{
    (void)state;
    (void)channel;
    assert_false(multiple);
    if (fake.acks_n < RECORD_MAX)
        fake.acks[fake.acks_n++] = delivery_tag;
    event('a');
    return AMQP_STATUS_OK;
}

int __wrap_amqp_basic_nack(amqp_connection_state_t state, amqp_channel_t channel,
                           uint64_t delivery_tag, amqp_boolean_t multiple, amqp_boolean_t requeue)
{
    (void)state;
    (void)channel;
    assert_false(multiple);
    assert_true(requeue);
    if (fake.nacks_n < RECORD_MAX)
        fake.nacks[fake.nacks_n++] = delivery_tag;
    event('n');
    return AMQP_STATUS_OK;
}

int __wrap_amqp_simple_wait_frame_noblock(amqp_connection_state_t state,
                                          amqp_frame_t *decoded_frame, const struct timeval *tv)
{
    (void)state;
    (void)tv;
    if (fake.head < fake.nscript && fake.script[fake.head].after <= fake.publishes) {
        *decoded_frame = fake.script[fake.head++].frame;
        return AMQP_STATUS_OK;
    }
    if (fake.head == fake.nscript && fake.lost_when_done)
        return AMQP_STATUS_CONNECTION_CLOSED;
    return AMQP_STATUS_TIMEOUT;
}

void __wrap_amqp_maybe_release_buffers(amqp_connection_state_t state)
{
    (void)state;
}

int __wrap_amqp_send_method(amqp_connection_state_t state, amqp_channel_t channel,
                            amqp_method_number_t id, void *decoded)
{
    (void)state;
    (void)channel;
    (void)decoded;
    if (id == AMQP_CONNECTION_CLOSE_OK_METHOD || id == AMQP_CHANNEL_CLOSE_OK_METHOD)
        fake.close_oks++;
    return AMQP_STATUS_OK;
}

amqp_rpc_reply_t __wrap_amqp_connection_close(amqp_connection_state_t state, int code)
{
    amqp_rpc_reply_t r;
    (void)state;
    (void)code;
    memset(&r, 0, sizeof(r));
    r.reply_type = AMQP_RESPONSE_NORMAL;
    return r;
}

int __wrap_amqp_destroy_connection(amqp_connection_state_t state)
{
    (void)state;
    return AMQP_STATUS_OK;
}

/* ---- fixtures ---------------------------------------------------------------------------- */

static const char *const CATEGORIES[] = {"CAT", "OTHER"};

static fg_amqp *open_handle(const char *service, int prefetch, bool consume)
{
    fg_amqp_options o;
    fg_amqp *h = NULL;

    fg_amqp_options_init(&o);
    o.url = URL;
    o.service = service;
    o.categories = service ? CATEGORIES : NULL;
    o.ncategories = service ? 2 : 0;
    o.prefetch = prefetch;
    o.io_timeout_ms = 200;
    assert_int_equal(fg_amqp_new(&h, &o), 0);
    assert_int_equal(fg_amqp_connect(h, 0), 0);
    assert_int_equal(fg_amqp_declare(h), 0);
    if (consume)
        assert_int_equal(fg_amqp_consume(h), 0);
    return h;
}

static int setup(void **state)
{
    (void)state;
    fake_reset();
    return 0;
}

static void make_batch(fg_amqp_message *msgs, char (*ids)[24], size_t n)
{
    for (size_t i = 0; i < n; i++) {
        snprintf(ids[i], sizeof(ids[i]), "m%zu", i + 1);
        msgs[i] = (fg_amqp_message){ids[i], "CAT", "{\"k\":1}", 7};
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Options and connecting                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void test_amqp__new_rejects_bad_options(void **state)
{
    const char *bad_cat[] = {"CAT", "has space"};
    fg_amqp_options o;
    fg_amqp *h = NULL;
    (void)state;

    fg_amqp_options_init(&o);
    o.url = URL;
    o.service = "bad/name";
    assert_int_equal(fg_amqp_new(&h, &o), FG_EINVALID);
    o.service = "svc";
    o.categories = bad_cat;
    o.ncategories = 2;
    assert_int_equal(fg_amqp_new(&h, &o), FG_EINVALID);
    o.ncategories = 1;
    o.prefetch = 0;
    assert_int_equal(fg_amqp_new(&h, &o), FG_EINVALID);
    o.prefetch = FG_AMQP_PREFETCH_MAX + 1;
    assert_int_equal(fg_amqp_new(&h, &o), FG_EINVALID);
    o.prefetch = 10;
    o.service = NULL; /* categories without a queue to bind */
    assert_int_equal(fg_amqp_new(&h, &o), FG_EINVALID);
    assert_null(h);
    fg_amqp_free(NULL);
}

static void test_amqp__connect_retries_with_backoff(void **state)
{
    fg_amqp_options o;
    fg_amqp *h = NULL;
    long long t0;
    (void)state;

    fg_amqp_options_init(&o);
    o.url = URL;
    assert_int_equal(fg_amqp_new(&h, &o), 0);
    fake.open_failures = 2;
    t0 = fg_test_now_ms();
    assert_int_equal(fg_amqp_connect(h, 10000), 0);
    assert_int_equal(fake.opens, 3);
    assert_true(fg_test_now_ms() - t0 >= 50 + 100); /* at least half of each delay, 100 + 200 */
    assert_true(fg_amqp_is_connected(h));
    assert_string_equal(fake.login_password, PASSWORD);
    assert_int_equal(fg_amqp_connect(h, 0), 0); /* already connected: nothing happens */
    assert_int_equal(fake.opens, 3);
    fg_amqp_free(h);
}

static void test_amqp__connect_gives_up_at_the_deadline_without_the_password(void **state)
{
    fg_amqp_options o;
    fg_amqp *h = NULL;
    long long t0;
    (void)state;

    fg_amqp_options_init(&o);
    o.url = URL;
    assert_int_equal(fg_amqp_new(&h, &o), 0);
    fake.open_failures = 1000;
    t0 = fg_test_now_ms();
    assert_int_equal(fg_amqp_connect(h, 400), FG_EUNAVAILABLE);
    assert_true(fg_test_now_ms() - t0 >= 400);
    assert_true(fg_test_now_ms() - t0 < 2000);
    assert_true(fake.opens >= 2);
    assert_non_null(strstr(fg_error_last(), "broker.test:5679"));
    assert_non_null(strstr(fg_error_last(), "gave up after"));
    assert_null(strstr(fg_error_last(), PASSWORD));
    assert_false(fg_amqp_is_connected(h));
    fg_amqp_free(h);
}

static void test_amqp__refused_login_is_eauth(void **state)
{
    fg_amqp_options o;
    fg_amqp *h = NULL;
    (void)state;

    fg_amqp_options_init(&o);
    o.url = URL;
    assert_int_equal(fg_amqp_new(&h, &o), 0);
    server_close.reply_code = AMQP_ACCESS_REFUSED;
    server_close.reply_text = amqp_cstring_bytes("ACCESS_REFUSED - Login was refused");
    fake.login_reply.reply_type = AMQP_RESPONSE_SERVER_EXCEPTION;
    fake.login_reply.reply.id = AMQP_CONNECTION_CLOSE_METHOD;
    fake.login_reply.reply.decoded = &server_close;
    assert_int_equal(fg_amqp_connect(h, 0), FG_EAUTH);
    assert_non_null(strstr(fg_error_last(), "ACCESS_REFUSED"));
    assert_non_null(strstr(fg_error_last(), "fg@broker.test"));
    assert_null(strstr(fg_error_last(), PASSWORD));
    assert_int_equal(fake.close_oks, 1);
    fg_amqp_free(h);
}

static void test_amqp__declare_builds_the_topology_and_reports_conflicts(void **state)
{
    fg_amqp *h = open_handle("svc", 10, false);
    (void)state;

    assert_int_equal(fake.exchanges, 1);
    assert_int_equal(fake.declares, 3); /* main, parked, retry */
    assert_int_equal(fake.binds, 2);    /* one per category */
    snprintf(fake.fail_declare_of, sizeof(fake.fail_declare_of), "fg.svc.retry");
    assert_int_equal(fg_amqp_declare(h), FG_ECONFLICT);
    assert_non_null(strstr(fg_error_last(), "fg.svc.retry"));
    assert_non_null(strstr(fg_error_last(), "inequivalent"));
    assert_false(fg_amqp_is_connected(h));
    fg_amqp_free(h);
}

/* ------------------------------------------------------------------------------------------ */
/* Publishing                                                                                 */
/* ------------------------------------------------------------------------------------------ */

static void test_amqp__publish_waits_for_multiple_acks(void **state)
{
    fg_amqp *h = open_handle(NULL, 10, false);
    fg_amqp_message msgs[5];
    char ids[5][24];
    size_t confirmed = 0;
    (void)state;

    make_batch(msgs, ids, 5);
    script_ack(5, 2, true);
    script_ack(5, 4, false);
    script_ack(5, 3, false);
    script_ack(5, 5, true);
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, msgs, 5, 1000), 0);
    assert_int_equal(confirmed, 5);
    assert_int_equal(fake.publishes, 5);
    assert_string_equal(fake.pub[0].exchange, "fg.events");
    assert_string_equal(fake.pub[0].routing_key, "CAT");
    assert_string_equal(fake.pub[0].type, "CAT");
    assert_string_equal(fake.pub[0].id, "m1");
    assert_string_equal(fake.pub[4].id, "m5");
    assert_string_equal(fake.pub[0].content_type, "application/json");
    assert_int_equal(fake.pub[0].delivery_mode, AMQP_DELIVERY_PERSISTENT);
    assert_int_equal(fake.pub[0].mandatory, 1);
    assert_string_equal(fake.pub[0].body, "{\"k\":1}");

    /* The next batch continues the channel's tag sequence at 6. */
    script_ack(6, 6, false);
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, msgs, 1, 1000), 0);
    fg_amqp_free(h);
}

static void test_amqp__publish_return_names_the_unroutable_message(void **state)
{
    fg_amqp *h = open_handle(NULL, 10, false);
    fg_amqp_message msgs[3];
    char ids[3][24];
    size_t confirmed = 0;
    (void)state;

    make_batch(msgs, ids, 3);
    script_ack(3, 1, false);
    script_return(3, "m2"); /* RabbitMQ: basic.return, then basic.ack for the same message */
    script_ack(3, 3, true);
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, msgs, 3, 1000), FG_ENOTFOUND);
    assert_int_equal(confirmed, 1);
    assert_non_null(strstr(fg_error_last(), "m2"));
    assert_non_null(strstr(fg_error_last(), "NO_ROUTE"));
    assert_true(fg_amqp_is_connected(h));
    fg_amqp_free(h);
}

static void test_amqp__publish_nack_names_the_message(void **state)
{
    fg_amqp *h = open_handle(NULL, 10, false);
    fg_amqp_message msgs[3];
    char ids[3][24];
    size_t confirmed = 0;
    (void)state;

    make_batch(msgs, ids, 3);
    script_ack(3, 2, true);
    script_nack(3, 3);
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, msgs, 3, 1000), FG_EUNAVAILABLE);
    assert_int_equal(confirmed, 2);
    assert_non_null(strstr(fg_error_last(), "nacked message m3"));
    assert_true(fg_amqp_is_connected(h));
    fg_amqp_free(h);
}

static void test_amqp__publish_lost_connection_reports_how_many_were_confirmed(void **state)
{
    fg_amqp *h = open_handle(NULL, 10, false);
    fg_amqp_message msgs[10];
    char ids[10][24];
    size_t confirmed = 0;
    (void)state;

    make_batch(msgs, ids, 10);
    script_ack(10, 4, true);
    script_ack(10, 6, false); /* not a prefix: 5 is still open */
    fake.lost_when_done = true;
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, msgs, 10, 1000), FG_EUNAVAILABLE);
    assert_int_equal(confirmed, 4);
    assert_non_null(strstr(fg_error_last(), "4 of 10"));
    assert_false(fg_amqp_is_connected(h));
    /* The caller reconnects and republishes msgs[4..10). */
    fake_reset();
    assert_int_equal(fg_amqp_connect(h, 0), 0);
    assert_int_equal(fake.exchanges, 1); /* declared again */
    script_ack(6, 6, true);
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, msgs + 4, 6, 1000), 0);
    assert_string_equal(fake.pub[0].id, "m5");
    fg_amqp_free(h);
}

static void test_amqp__publish_write_failure_is_unavailable(void **state)
{
    fg_amqp *h = open_handle(NULL, 10, false);
    fg_amqp_message msgs[3];
    char ids[3][24];
    size_t confirmed = 99;
    (void)state;

    make_batch(msgs, ids, 3);
    fake.publish_fail_at = 2;
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, msgs, 3, 1000), FG_EUNAVAILABLE);
    assert_int_equal(confirmed, 0);
    assert_false(fg_amqp_is_connected(h));
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, msgs, 3, 1000), FG_EUNAVAILABLE);
    fg_amqp_free(h);
}

static void test_amqp__publish_timeout_keeps_the_connection(void **state)
{
    fg_amqp *h = open_handle(NULL, 10, false);
    fg_amqp_message msgs[2];
    char ids[2][24];
    size_t confirmed = 99;
    (void)state;

    make_batch(msgs, ids, 2);
    script_ack(2, 1, false);
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, msgs, 2, 100), FG_ETIMEOUT);
    assert_int_equal(confirmed, 1);
    assert_true(fg_amqp_is_connected(h));
    /* A late ack for the old batch (tag 2) does not confirm the new one (tags 3, 4). */
    script_ack(2, 2, false);
    script_ack(4, 4, false);
    script_ack(4, 3, false);
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, msgs, 2, 1000), 0);
    assert_int_equal(confirmed, 2);
    fg_amqp_free(h);
}

static void test_amqp__publish_validates_before_sending(void **state)
{
    fg_amqp *h = open_handle(NULL, 10, false);
    fg_amqp_message m = {"id 1", "CAT", "{}", 2};
    size_t confirmed = 99;
    (void)state;

    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, &m, 1, 100), FG_EINVALID);
    m.id = "id-1";
    m.category = "C#T";
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, &m, 1, 100), FG_EINVALID);
    m.category = "CAT";
    m.body_len = (size_t)FG_AMQP_BODY_MAX + 1;
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, &m, 1, 100), FG_ETOOBIG);
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, &m, FG_AMQP_BATCH_MAX + 1, 100),
                     FG_ETOOBIG);
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, NULL, 0, 100), 0);
    assert_int_equal(confirmed, 0);
    assert_int_equal(fake.publishes, 0);
    fg_amqp_free(h);
}

/* ------------------------------------------------------------------------------------------ */
/* Consuming                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void test_amqp__deliveries_during_a_confirm_wait_are_kept_in_order(void **state)
{
    fg_amqp *h = open_handle("svc", 10, true);
    fg_amqp_message msgs[2];
    char ids[2][24];
    fg_amqp_delivery *d = NULL;
    size_t confirmed = 0;
    (void)state;

    assert_int_equal(fake.qos_prefetch, 10);
    assert_int_equal(fake.consumes, 1);
    make_batch(msgs, ids, 2);
    script_deliver(0, 1, "d1", "CAT", "{\"first\":1}", NO_HEADERS);
    script_ack(2, 1, false);
    script_deliver(2, 2, "d2", "OTHER", "{\"second\":2}", NO_HEADERS);
    script_return(2, "m2");
    script_deliver(2, 3, "d3", NULL, "{\"third\":3}", NO_HEADERS);
    script_ack(2, 2, false);
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, msgs, 2, 1000), FG_ENOTFOUND);
    assert_int_equal(confirmed, 1);
    assert_int_equal(fg_amqp_buffered(h), 3);

    assert_int_equal(fg_amqp_next(&d, h, 0), 0);
    assert_string_equal(fg_amqp_delivery_id(d), "d1");
    assert_string_equal(fg_amqp_delivery_body(d), "{\"first\":1}");
    assert_int_equal(fg_amqp_delivery_body_len(d), 11);
    fg_amqp_delivery_free(d);
    assert_int_equal(fg_amqp_next(&d, h, 0), 0);
    assert_string_equal(fg_amqp_delivery_id(d), "d2");
    assert_string_equal(fg_amqp_delivery_category(d), "OTHER");
    assert_string_equal(fg_amqp_delivery_body(d), "{\"second\":2}");
    fg_amqp_delivery_free(d);
    assert_int_equal(fg_amqp_next(&d, h, 0), 0);
    assert_string_equal(fg_amqp_delivery_id(d), "d3");
    assert_string_equal(fg_amqp_delivery_category(d), "fg.svc"); /* no type: the routing key */
    assert_int_equal(fg_amqp_ack(h, d), 0);
    assert_int_equal(fg_amqp_ack(h, d), FG_EINVALID);
    assert_int_equal(fake.acks[0], 3);
    fg_amqp_delivery_free(d);
    assert_int_equal(fg_amqp_next(&d, h, 50), FG_ETIMEOUT);
    assert_null(d);
    fg_amqp_free(h);
}

static void test_amqp__more_deliveries_than_prefetch_drop_the_connection(void **state)
{
    fg_amqp *h = open_handle("svc", 2, true);
    fg_amqp_message msgs[1];
    char ids[1][24];
    size_t confirmed = 0;
    (void)state;

    make_batch(msgs, ids, 1);
    for (uint64_t t = 1; t <= 3; t++)
        script_deliver(1, t, "dx", "CAT", "{}", NO_HEADERS);
    script_ack(1, 1, false);
    assert_int_equal(fg_amqp_publish_batch(&confirmed, h, msgs, 1, 1000), FG_EUNAVAILABLE);
    assert_false(fg_amqp_is_connected(h));
    assert_int_equal(fg_amqp_buffered(h), 0); /* unacked: the broker hands them out again */
    fg_amqp_free(h);
}

static void test_amqp__attempts_count_own_header_and_redeliveries(void **state)
{
    static const struct {
        hdrs h;
        unsigned want;
    } cases[] = {
        {{false, 0, false, 0, AMQP_FIELD_KIND_I64}, 1},
        {{true, 2, false, 0, AMQP_FIELD_KIND_I64}, 3},
        {{false, 0, true, 1, AMQP_FIELD_KIND_I64}, 2},
        {{true, 2, true, 1, AMQP_FIELD_KIND_I64}, 4},
        {{true, 1, true, 2, AMQP_FIELD_KIND_I8}, 4},
        {{true, 3, true, 0, AMQP_FIELD_KIND_I32}, 4},
        {{true, 0, true, 4, AMQP_FIELD_KIND_U64}, 5},
        {{true, -7, false, 0, AMQP_FIELD_KIND_I32}, 1}, /* nonsense: ignored */
    };
    fg_amqp_options o;
    fg_amqp *h = NULL;
    fg_amqp_delivery *d = NULL;
    (void)state;

    fg_amqp_options_init(&o);
    o.url = URL;
    o.service = "svc";
    o.max_attempts = 100;
    assert_int_equal(fg_amqp_new(&h, &o), 0);
    assert_int_equal(fg_amqp_connect(h, 0), 0);
    assert_int_equal(fg_amqp_consume(h), 0);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        script_deliver(0, i + 1, "a", "CAT", "{}", cases[i].h);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        assert_int_equal(fg_amqp_next(&d, h, 0), 0);
        if (fg_amqp_delivery_attempts(d) != cases[i].want)
            fail_msg("case %zu: attempts %u, want %u", i, fg_amqp_delivery_attempts(d),
                     cases[i].want);
        fg_amqp_delivery_free(d);
    }
    fg_amqp_free(h);
}

static void test_amqp__retry_republishes_then_acks(void **state)
{
    fg_amqp *h = open_handle("svc", 10, true);
    fg_amqp_delivery *d = NULL;
    hdrs two_retries = {true, 2, false, 0, AMQP_FIELD_KIND_I64};
    (void)state;

    script_deliver(0, 7, "r1", "CAT", "{\"x\":1}", two_retries);
    script_ack(1, 1, false);
    assert_int_equal(fg_amqp_next(&d, h, 0), 0);
    assert_int_equal(fg_amqp_delivery_attempts(d), 3);
    assert_int_equal(fg_amqp_retry(h, d, "store unavailable"), 0);
    assert_string_equal(fake.events, "pa"); /* the copy is confirmed before the original goes */
    assert_string_equal(fake.pub[0].exchange, "");
    assert_string_equal(fake.pub[0].routing_key, "fg.svc.retry");
    assert_string_equal(fake.pub[0].id, "r1");
    assert_string_equal(fake.pub[0].type, "CAT");
    assert_string_equal(fake.pub[0].content_type, "application/json");
    assert_string_equal(fake.pub[0].body, "{\"x\":1}");
    assert_int_equal(fake.pub[0].delivery_mode, AMQP_DELIVERY_PERSISTENT);
    assert_int_equal(fake.pub[0].attempts, 3);
    assert_string_equal(fake.pub[0].reason_key, FG_AMQP_HEADER_LAST_ERROR);
    assert_string_equal(fake.pub[0].reason, "store unavailable");
    assert_false(fake.pub[0].has_broker_headers);
    assert_int_equal(fake.acks[0], 7);
    fg_amqp_delivery_free(d);
    fg_amqp_free(h);
}

static void test_amqp__retry_of_the_last_attempt_parks(void **state)
{
    fg_amqp *h = open_handle("svc", 10, true); /* max_attempts 5 */
    fg_amqp_delivery *d = NULL;
    hdrs three_and_one = {true, 3, true, 1, AMQP_FIELD_KIND_I64};
    (void)state;

    script_deliver(0, 9, "p1", "CAT", "{}", three_and_one);
    script_ack(1, 1, false);
    assert_int_equal(fg_amqp_next(&d, h, 0), 0);
    assert_int_equal(fg_amqp_delivery_attempts(d), 5);
    assert_int_equal(fg_amqp_retry(h, d, "still broken"), 0);
    assert_string_equal(fake.pub[0].routing_key, "fg.svc.parked");
    assert_string_equal(fake.pub[0].reason_key, FG_AMQP_HEADER_PARK_REASON);
    assert_string_equal(fake.pub[0].reason, "gave up after 5 attempts: still broken");
    assert_int_equal(fake.pub[0].attempts, 5);
    assert_string_equal(fake.events, "pa");
    fg_amqp_delivery_free(d);
    fg_amqp_free(h);
}

static void test_amqp__park_keeps_a_long_reason_short(void **state)
{
    fg_amqp *h = open_handle("svc", 10, true);
    fg_amqp_delivery *d = NULL;
    char reason[FG_AMQP_REASON_MAX + 100];
    (void)state;

    memset(reason, 'x', sizeof(reason) - 3);
    memcpy(reason + FG_AMQP_REASON_MAX - 1, "\xc3\xa9", 2); /* é across the cut */
    reason[sizeof(reason) - 1] = '\0';
    script_deliver(0, 1, "s1", "CAT", "{}", NO_HEADERS);
    script_ack(1, 1, false);
    assert_int_equal(fg_amqp_next(&d, h, 0), 0);
    assert_int_equal(fg_amqp_park(h, d, reason), 0);
    assert_int_equal(strlen(fake.pub[0].reason), FG_AMQP_REASON_MAX - 1);
    assert_int_equal(fake.pub[0].attempts, 1);
    fg_amqp_delivery_free(d);
    fg_amqp_free(h);
}

static void test_amqp__unconfirmed_retry_requeues_instead_of_acking(void **state)
{
    fg_amqp *h = open_handle("svc", 10, true);
    fg_amqp_delivery *d = NULL;
    (void)state;

    script_deliver(0, 4, "n1", "CAT", "{}", NO_HEADERS);
    script_nack(1, 1);
    assert_int_equal(fg_amqp_next(&d, h, 0), 0);
    assert_int_equal(fg_amqp_retry(h, d, "x"), FG_EUNAVAILABLE);
    assert_string_equal(fake.events, "pn");
    assert_int_equal(fake.nacks[0], 4);
    assert_int_equal(fake.acks_n, 0);
    assert_int_equal(fg_amqp_ack(h, d), FG_EINVALID); /* settled by the requeue */
    fg_amqp_delivery_free(d);
    fg_amqp_free(h);
}

static void test_amqp__next_parks_a_crash_looping_message(void **state)
{
    fg_amqp *h = open_handle("svc", 10, true); /* max_attempts 5 */
    fg_amqp_delivery *d = NULL;
    hdrs died_five_times = {false, 0, true, 5, AMQP_FIELD_KIND_I64};
    (void)state;

    script_deliver(0, 1, "crash", "CAT", "{}", died_five_times);
    script_ack(1, 1, false);
    script_deliver(1, 2, "fine", "CAT", "{}", NO_HEADERS);
    assert_int_equal(fg_amqp_next(&d, h, 500), 0);
    assert_string_equal(fg_amqp_delivery_id(d), "fine");
    assert_string_equal(fake.pub[0].routing_key, "fg.svc.parked");
    assert_non_null(strstr(fake.pub[0].reason, "delivered 6 times"));
    assert_int_equal(fake.acks[0], 1);
    fg_amqp_delivery_free(d);
    fg_amqp_free(h);
}

static void test_amqp__broker_close_then_one_call_reconnects(void **state)
{
    fg_amqp *h = open_handle("svc", 10, true);
    fg_amqp_delivery *d = NULL, *old = NULL;
    (void)state;

    script_deliver(0, 1, "before", "CAT", "{}", NO_HEADERS);
    script_close(0, AMQP_CONNECTION_FORCED, "CONNECTION_FORCED - broker shutdown");
    assert_int_equal(fg_amqp_next(&old, h, 0), 0);
    assert_int_equal(fg_amqp_next(&d, h, 100), FG_EUNAVAILABLE);
    assert_non_null(strstr(fg_error_last(), "CONNECTION_FORCED"));
    assert_int_equal(fake.close_oks, 1);
    assert_false(fg_amqp_is_connected(h));
    assert_int_equal(fg_amqp_next(&d, h, 100), FG_EUNAVAILABLE);

    fake_reset();
    assert_int_equal(fg_amqp_connect(h, 0), 0);
    assert_true(fg_amqp_is_connected(h));
    assert_int_equal(fake.exchanges, 1); /* redeclared */
    assert_int_equal(fake.declares, 3);
    assert_int_equal(fake.binds, 2);
    assert_int_equal(fake.consumes, 1);                     /* and consuming again */
    assert_int_equal(fg_amqp_ack(h, old), FG_EUNAVAILABLE); /* a tag of the dead channel */
    assert_int_equal(fake.acks_n, 0);
    fg_amqp_delivery_free(old);
    fg_amqp_free(h);
}

static void test_amqp__misuse_is_invalid(void **state)
{
    fg_amqp *pub = open_handle(NULL, 10, false);
    fg_amqp *svc = open_handle("svc", 10, false);
    fg_amqp_delivery *d = NULL;
    (void)state;

    assert_int_equal(fg_amqp_consume(pub), FG_EINVALID);
    assert_int_equal(fg_amqp_next(&d, svc, 0), FG_EINVALID); /* before fg_amqp_consume */
    assert_int_equal(fg_amqp_ack(svc, NULL), FG_EINVALID);
    fg_amqp_free(svc);
    fg_amqp_free(pub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amqp__url_parses_every_part),
        cmocka_unit_test(test_amqp__url_defaults),
        cmocka_unit_test(test_amqp__url_rejects_bad_urls),
        cmocka_unit_test(test_amqp__url_rejects_overlong),
        cmocka_unit_test(test_amqp__url_errors_hide_the_password),
        cmocka_unit_test_setup(test_amqp__new_rejects_bad_options, setup),
        cmocka_unit_test_setup(test_amqp__connect_retries_with_backoff, setup),
        cmocka_unit_test_setup(test_amqp__connect_gives_up_at_the_deadline_without_the_password,
                               setup),
        cmocka_unit_test_setup(test_amqp__refused_login_is_eauth, setup),
        cmocka_unit_test_setup(test_amqp__declare_builds_the_topology_and_reports_conflicts, setup),
        cmocka_unit_test_setup(test_amqp__publish_waits_for_multiple_acks, setup),
        cmocka_unit_test_setup(test_amqp__publish_return_names_the_unroutable_message, setup),
        cmocka_unit_test_setup(test_amqp__publish_nack_names_the_message, setup),
        cmocka_unit_test_setup(test_amqp__publish_lost_connection_reports_how_many_were_confirmed,
                               setup),
        cmocka_unit_test_setup(test_amqp__publish_write_failure_is_unavailable, setup),
        cmocka_unit_test_setup(test_amqp__publish_timeout_keeps_the_connection, setup),
        cmocka_unit_test_setup(test_amqp__publish_validates_before_sending, setup),
        cmocka_unit_test_setup(test_amqp__deliveries_during_a_confirm_wait_are_kept_in_order,
                               setup),
        cmocka_unit_test_setup(test_amqp__more_deliveries_than_prefetch_drop_the_connection, setup),
        cmocka_unit_test_setup(test_amqp__attempts_count_own_header_and_redeliveries, setup),
        cmocka_unit_test_setup(test_amqp__retry_republishes_then_acks, setup),
        cmocka_unit_test_setup(test_amqp__retry_of_the_last_attempt_parks, setup),
        cmocka_unit_test_setup(test_amqp__park_keeps_a_long_reason_short, setup),
        cmocka_unit_test_setup(test_amqp__unconfirmed_retry_requeues_instead_of_acking, setup),
        cmocka_unit_test_setup(test_amqp__next_parks_a_crash_looping_message, setup),
        cmocka_unit_test_setup(test_amqp__broker_close_then_one_call_reconnects, setup),
        cmocka_unit_test_setup(test_amqp__misuse_is_invalid, setup),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
