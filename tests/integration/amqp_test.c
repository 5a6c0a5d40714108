/* fg_amqp against a real RabbitMQ (FG_AMQP_URL): topology, confirms, mandatory returns, retry and
 * park counting, deliveries during confirm waits, and a broker restart in the middle of a run.
 * Every test uses its own service and categories (pid-suffixed) and deletes its queues after. */
#include "test_support.h"

#include <amqp.h>
#include <amqp_tcp_socket.h>

#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fg/amqp.h"

extern char **environ;

#define WAIT_MS 20000

static const char *amqp_url;

/* ---- names ------------------------------------------------------------------------------- */

typedef struct {
    char service[64];
    char category[64];
    char main_queue[96], retry_queue[96], parked_queue[96];
} names;

static void names_init(names *n, const char *tag)
{
    snprintf(n->service, sizeof(n->service), "amqp-it-%d-%s", (int)getpid(), tag);
    snprintf(n->category, sizeof(n->category), "FGTEST_%d_%s", (int)getpid(), tag);
    snprintf(n->main_queue, sizeof(n->main_queue), "fg.%s", n->service);
    snprintf(n->retry_queue, sizeof(n->retry_queue), "fg.%s.retry", n->service);
    snprintf(n->parked_queue, sizeof(n->parked_queue), "fg.%s.parked", n->service);
}

/* ---- a raw librabbitmq connection to look at the queues from outside -------------------- */

static amqp_connection_state_t raw_open(void)
{
    fg_amqp_url u;
    amqp_connection_state_t c = amqp_new_connection();
    amqp_socket_t *s = amqp_tcp_socket_new(c);
    amqp_rpc_reply_t r;

    assert_int_equal(fg_amqp_url_parse(&u, amqp_url), 0);
    assert_int_equal(amqp_socket_open(s, u.host, u.port), AMQP_STATUS_OK);
    r = amqp_login(c, u.vhost, 0, 131072, 0, AMQP_SASL_METHOD_PLAIN, u.user, u.password);
    assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
    amqp_channel_open(c, 1);
    assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
    fg_amqp_url_dispose(&u);
    return c;
}

static void raw_close(amqp_connection_state_t c)
{
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
}

/* Ready messages in a queue (passive declare); -1 when it does not exist. */
static long raw_count(const char *queue)
{
    amqp_connection_state_t c = raw_open();
    amqp_queue_declare_ok_t *ok =
        amqp_queue_declare(c, 1, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
    long n = ok ? (long)ok->message_count : -1;

    if (ok != NULL)
        raw_close(c);
    else
        amqp_destroy_connection(c);
    return n;
}

static void raw_delete(const names *n)
{
    amqp_connection_state_t c = raw_open();
    const char *queues[] = {n->main_queue, n->retry_queue, n->parked_queue};

    for (int i = 0; i < 3; i++) {
        amqp_queue_delete(c, 1, amqp_cstring_bytes(queues[i]), 0, 0);
        assert_int_equal(amqp_get_rpc_reply(c).reply_type, AMQP_RESPONSE_NORMAL);
    }
    raw_close(c);
}

static const amqp_field_value_t *find_header(const amqp_table_t *t, const char *key)
{
    for (int i = 0; i < t->num_entries; i++) {
        if (t->entries[i].key.len == strlen(key) &&
            memcmp(t->entries[i].key.bytes, key, strlen(key)) == 0)
            return &t->entries[i].value;
    }
    return NULL;
}

typedef struct {
    char id[128];
    char reason[600];
    long long attempts;
    char body[256];
} parked_msg;

/* Takes (and acks) the next message of a queue; false when there is none. */
static bool raw_get(parked_msg *out, const char *queue)
{
    amqp_connection_state_t c = raw_open();
    amqp_rpc_reply_t r = amqp_basic_get(c, 1, amqp_cstring_bytes(queue), 1);
    amqp_message_t m;
    const amqp_field_value_t *v;
    bool got = false;

    memset(out, 0, sizeof(*out));
    assert_int_equal(r.reply_type, AMQP_RESPONSE_NORMAL);
    if (r.reply.id == AMQP_BASIC_GET_OK_METHOD) {
        assert_int_equal(amqp_read_message(c, 1, &m, 0).reply_type, AMQP_RESPONSE_NORMAL);
        snprintf(out->id, sizeof(out->id), "%.*s", (int)m.properties.message_id.len,
                 (char *)m.properties.message_id.bytes);
        snprintf(out->body, sizeof(out->body), "%.*s", (int)m.body.len, (char *)m.body.bytes);
        assert_true(m.properties._flags & AMQP_BASIC_HEADERS_FLAG);
        if ((v = find_header(&m.properties.headers, FG_AMQP_HEADER_PARK_REASON)) != NULL)
            snprintf(out->reason, sizeof(out->reason), "%.*s", (int)v->value.bytes.len,
                     (char *)v->value.bytes.bytes);
        if ((v = find_header(&m.properties.headers, FG_AMQP_HEADER_ATTEMPTS)) != NULL)
            out->attempts = v->value.i64;
        amqp_destroy_message(&m);
        got = true;
    }
    raw_close(c);
    return got;
}

typedef struct {
    const char *queue;
    long want;
} count_cond;

static bool count_is(void *payload)
{
    const count_cond *c = payload;

    return raw_count(c->queue) == c->want;
}

/* ---- handles ------------------------------------------------------------------------------ */

static fg_amqp *consumer(const names *n, int prefetch, int max_attempts, bool start)
{
    fg_amqp_options o;
    fg_amqp *h = NULL;
    const char *cats[] = {n->category};

    fg_amqp_options_init(&o);
    o.url = amqp_url;
    o.service = n->service;
    o.categories = cats;
    o.ncategories = 1;
    o.retry_ttl_ms = 50;
    o.max_attempts = max_attempts;
    o.prefetch = prefetch;
    assert_int_equal(fg_amqp_new(&h, &o), 0);
    assert_int_equal(fg_amqp_connect(h, WAIT_MS), 0);
    assert_int_equal(fg_amqp_declare(h), 0);
    if (start)
        assert_int_equal(fg_amqp_consume(h), 0);
    return h;
}

static fg_amqp *publisher(void)
{
    fg_amqp_options o;
    fg_amqp *h = NULL;

    fg_amqp_options_init(&o);
    o.url = amqp_url;
    assert_int_equal(fg_amqp_new(&h, &o), 0);
    assert_int_equal(fg_amqp_connect(h, WAIT_MS), 0);
    assert_int_equal(fg_amqp_declare(h), 0);
    return h;
}

typedef struct {
    fg_amqp_message *msgs;
    char (*ids)[32];
    char (*bodies)[64];
    size_t n;
} batch;

static void batch_init(batch *b, size_t n, const char *prefix, const char *category)
{
    b->n = n;
    b->msgs = calloc(n, sizeof(*b->msgs));
    b->ids = calloc(n, sizeof(*b->ids));
    b->bodies = calloc(n, sizeof(*b->bodies));
    assert_non_null(b->msgs);
    for (size_t i = 0; i < n; i++) {
        snprintf(b->ids[i], sizeof(b->ids[i]), "%s-%05zu", prefix, i);
        snprintf(b->bodies[i], sizeof(b->bodies[i]), "{\"n\":%zu}", i);
        b->msgs[i] = (fg_amqp_message){b->ids[i], category, b->bodies[i], strlen(b->bodies[i])};
    }
}

static void batch_dispose(batch *b)
{
    free(b->msgs);
    free(b->ids);
    free(b->bodies);
}

/* Index of a "<prefix>-NNNNN" id in a batch of n, or -1. */
static long id_index(const char *id, const char *prefix, size_t n)
{
    size_t plen = strlen(prefix);
    char *end = NULL;
    long v;

    if (strncmp(id, prefix, plen) != 0 || id[plen] != '-')
        return -1;
    v = strtol(id + plen + 1, &end, 10);
    if (end == id + plen + 1 || *end != '\0' || v < 0 || (size_t)v >= n)
        return -1;
    return v;
}

/* ---- (d) topology ------------------------------------------------------------------------ */

static void test_amqp__declare_twice_is_a_noop(void **state)
{
    names n;
    fg_amqp *a, *b, *other = NULL;
    fg_amqp_options o;
    const char *cats[1];
    (void)state;

    names_init(&n, "decl");
    a = consumer(&n, 10, 5, false);
    assert_int_equal(fg_amqp_declare(a), 0);
    b = consumer(&n, 10, 5, true); /* a second instance declares the same topology */
    assert_int_equal(raw_count(n.main_queue), 0);
    assert_int_equal(raw_count(n.retry_queue), 0);
    assert_int_equal(raw_count(n.parked_queue), 0);

    /* Same names, another retry TTL: the broker refuses, and says which queue. */
    fg_amqp_options_init(&o);
    cats[0] = n.category;
    o.url = amqp_url;
    o.service = n.service;
    o.categories = cats;
    o.ncategories = 1;
    o.retry_ttl_ms = 51;
    assert_int_equal(fg_amqp_new(&other, &o), 0);
    assert_int_equal(fg_amqp_connect(other, WAIT_MS), 0);
    assert_int_equal(fg_amqp_declare(other), FG_ECONFLICT);
    assert_non_null(strstr(fg_error_last(), n.retry_queue));
    assert_false(fg_amqp_is_connected(other));

    fg_amqp_free(other);
    fg_amqp_free(b);
    fg_amqp_free(a);
    raw_delete(&n);
}

/* ---- (d) mandatory ----------------------------------------------------------------------- */

static void test_amqp__unroutable_publish_is_an_error_naming_the_message(void **state)
{
    names n;
    fg_amqp *c, *p;
    fg_amqp_delivery *d = NULL;
    char nowhere[64];
    size_t confirmed = 99;
    (void)state;

    names_init(&n, "mand");
    snprintf(nowhere, sizeof(nowhere), "FGTEST_%d_NOBODY", (int)getpid());
    c = consumer(&n, 10, 5, true);
    p = publisher();
    {
        fg_amqp_message msgs[] = {
            {"routed-1", n.category, "{}", 2},
            {"lost-in-space", nowhere, "{}", 2},
            {"routed-2", n.category, "{}", 2},
        };

        assert_int_equal(fg_amqp_publish_batch(&confirmed, p, msgs, 3, WAIT_MS), FG_ENOTFOUND);
        assert_int_equal(confirmed, 1);
        assert_non_null(strstr(fg_error_last(), "lost-in-space"));
        assert_true(fg_amqp_is_connected(p));
        assert_int_equal(fg_amqp_publish_batch(&confirmed, p, &msgs[2], 1, WAIT_MS), 0);
        assert_int_equal(confirmed, 1);
    }
    /* The routable ones arrived; the unroutable one went nowhere. */
    for (int i = 0; i < 3; i++) {
        assert_int_equal(fg_amqp_next(&d, c, WAIT_MS), 0);
        assert_true(strncmp(fg_amqp_delivery_id(d), "routed-", 7) == 0);
        assert_int_equal(fg_amqp_ack(c, d), 0);
        fg_amqp_delivery_free(d);
    }
    assert_int_equal(fg_amqp_next(&d, c, 300), FG_ETIMEOUT);
    fg_amqp_free(p);
    fg_amqp_free(c);
    raw_delete(&n);
}

static void url_encode_vhost(char *out, size_t cap, const char *vhost)
{
    size_t j = 0;

    for (const char *p = vhost; *p && j + 4 < cap; p++) {
        if (*p == '/' || *p == '%')
            j += (size_t)snprintf(out + j, cap - j, "%%%02x", (unsigned char)*p);
        else
            out[j++] = *p;
    }
    out[j] = '\0';
}

static void test_amqp__refused_login_is_eauth_and_hides_the_password(void **state)
{
    fg_amqp_url u;
    fg_amqp_options o;
    fg_amqp *h = NULL;
    char url[512], vhost[128];
    (void)state;

    assert_int_equal(fg_amqp_url_parse(&u, amqp_url), 0);
    url_encode_vhost(vhost, sizeof(vhost), u.vhost);
    snprintf(url, sizeof(url), "amqp://%s:Wr0ng-s3cret@%s:%d/%s", u.user, u.host, u.port, vhost);
    fg_amqp_url_dispose(&u);
    fg_amqp_options_init(&o);
    o.url = url;
    assert_int_equal(fg_amqp_new(&h, &o), 0);
    assert_int_equal(fg_amqp_connect(h, 300), FG_EAUTH);
    assert_null(strstr(fg_error_last(), "Wr0ng-s3cret"));
    assert_false(fg_amqp_is_connected(h));
    fg_amqp_free(h);
}

/* ---- (b) retry and park ------------------------------------------------------------------ */

static void test_amqp__fails_five_times_then_parked_with_reason(void **state)
{
    names n;
    fg_amqp *c, *p;
    fg_amqp_delivery *d = NULL;
    parked_msg pm;
    char reason[64], id[64];
    size_t confirmed = 0;
    count_cond parked_one, main_empty, retry_empty;
    (void)state;

    names_init(&n, "park");
    snprintf(id, sizeof(id), "poison-%d", (int)getpid());
    c = consumer(&n, 10, 5, true);
    p = publisher();
    {
        fg_amqp_message m = {id, n.category, "{\"poison\":true}", 15};

        assert_int_equal(fg_amqp_publish_batch(&confirmed, p, &m, 1, WAIT_MS), 0);
    }
    for (unsigned attempt = 1; attempt <= 5; attempt++) {
        assert_int_equal(fg_amqp_next(&d, c, WAIT_MS), 0);
        assert_string_equal(fg_amqp_delivery_id(d), id);
        assert_string_equal(fg_amqp_delivery_category(d), n.category);
        assert_int_equal(fg_amqp_delivery_attempts(d), attempt);
        assert_memory_equal(fg_amqp_delivery_body(d), "{\"poison\":true}", 15);
        snprintf(reason, sizeof(reason), "boom %u", attempt);
        assert_int_equal(fg_amqp_retry(c, d, reason), 0);
        assert_int_equal(fg_amqp_retry(c, d, reason), FG_EINVALID); /* settled already */
        fg_amqp_delivery_free(d);
    }
    /* Attempt 5 was the last: nothing comes back, the main and retry queues are empty. */
    assert_int_equal(fg_amqp_next(&d, c, 500), FG_ETIMEOUT);
    parked_one = (count_cond){n.parked_queue, 1};
    main_empty = (count_cond){n.main_queue, 0};
    retry_empty = (count_cond){n.retry_queue, 0};
    assert_true(fg_test_wait_until(count_is, &parked_one, WAIT_MS));
    assert_true(fg_test_wait_until(count_is, &main_empty, WAIT_MS));
    assert_true(fg_test_wait_until(count_is, &retry_empty, WAIT_MS));
    assert_true(raw_get(&pm, n.parked_queue));
    assert_string_equal(pm.id, id);
    assert_string_equal(pm.body, "{\"poison\":true}");
    assert_int_equal(pm.attempts, 5);
    assert_non_null(strstr(pm.reason, "gave up after 5 attempts"));
    assert_non_null(strstr(pm.reason, "boom 5"));

    /* The explicit park, for a message that fails its schema, on its first attempt. */
    {
        fg_amqp_message m = {"bad-schema", n.category, "{\"id\":1}", 8};

        assert_int_equal(fg_amqp_publish_batch(&confirmed, p, &m, 1, WAIT_MS), 0);
    }
    assert_int_equal(fg_amqp_next(&d, c, WAIT_MS), 0);
    assert_int_equal(fg_amqp_park(c, d, "schema: /id must be a string"), 0);
    fg_amqp_delivery_free(d);
    assert_true(fg_test_wait_until(count_is, &parked_one, WAIT_MS));
    assert_true(raw_get(&pm, n.parked_queue));
    assert_string_equal(pm.id, "bad-schema");
    assert_string_equal(pm.reason, "schema: /id must be a string");
    assert_int_equal(pm.attempts, 1);
    assert_int_equal(fg_amqp_next(&d, c, 300), FG_ETIMEOUT);

    fg_amqp_free(p);
    fg_amqp_free(c);
    raw_delete(&n);
}

/* A consumer that dies holding a message (no ack, no retry) used up an attempt: x-delivery-count
 * says so, and past max_attempts the message is parked instead of killing the next one. */
static void test_amqp__consumer_deaths_count_as_attempts(void **state)
{
    names n;
    fg_amqp *c, *p;
    fg_amqp_delivery *d = NULL;
    parked_msg pm;
    size_t confirmed = 0;
    count_cond parked_one;
    fg_amqp_message m = {"crasher", NULL, "{}", 2};
    (void)state;

    names_init(&n, "death");
    m.category = n.category;
    p = publisher();
    c = consumer(&n, 10, 2, true);
    assert_int_equal(fg_amqp_publish_batch(&confirmed, p, &m, 1, WAIT_MS), 0);
    for (unsigned attempt = 1; attempt <= 2; attempt++) {
        assert_int_equal(fg_amqp_next(&d, c, WAIT_MS), 0);
        assert_string_equal(fg_amqp_delivery_id(d), "crasher");
        assert_int_equal(fg_amqp_delivery_attempts(d), attempt);
        fg_amqp_delivery_free(d);
        fg_amqp_free(c); /* dies without settling */
        c = consumer(&n, 10, 2, true);
    }
    assert_int_equal(fg_amqp_next(&d, c, 1000), FG_ETIMEOUT); /* third delivery: parked */
    parked_one = (count_cond){n.parked_queue, 1};
    assert_true(fg_test_wait_until(count_is, &parked_one, WAIT_MS));
    assert_true(raw_get(&pm, n.parked_queue));
    assert_string_equal(pm.id, "crasher");
    assert_int_equal(pm.attempts, 3);
    assert_non_null(strstr(pm.reason, "delivered 3 times"));
    assert_int_equal(raw_count(n.main_queue), 0);
    fg_amqp_free(p);
    fg_amqp_free(c);
    raw_delete(&n);
}

/* ---- (c) deliveries while waiting for confirms ------------------------------------------- */

static void test_amqp__deliveries_during_confirm_wait_are_kept(void **state)
{
    names n;
    fg_amqp *c, *p;
    fg_amqp_delivery *d = NULL;
    batch before, during;
    size_t confirmed = 0, distinct = 0;
    int seen_before[300] = {0}, seen_during[200] = {0};
    long long deadline;
    (void)state;

    names_init(&n, "mixed");
    c = consumer(&n, 50, 5, false);
    p = publisher();
    batch_init(&before, 300, "before", n.category);
    batch_init(&during, 200, "during", n.category);
    assert_int_equal(fg_amqp_publish_batch(&confirmed, p, before.msgs, before.n, WAIT_MS), 0);
    assert_int_equal(fg_amqp_consume(c), 0);
    /* Deliveries start right after consume-ok, so they arrive while this waits for confirms. */
    assert_int_equal(fg_amqp_publish_batch(&confirmed, c, during.msgs, during.n, WAIT_MS), 0);
    assert_int_equal(confirmed, during.n);
    assert_true(fg_amqp_buffered(c) > 0);

    deadline = fg_test_now_ms() + WAIT_MS;
    while (distinct < before.n + during.n && fg_test_now_ms() < deadline) {
        long i;

        assert_int_equal(fg_amqp_next(&d, c, WAIT_MS), 0);
        if ((i = id_index(fg_amqp_delivery_id(d), "before", before.n)) >= 0)
            distinct += seen_before[i]++ == 0;
        else if ((i = id_index(fg_amqp_delivery_id(d), "during", during.n)) >= 0)
            distinct += seen_during[i]++ == 0;
        else
            fail_msg("unexpected message %s", fg_amqp_delivery_id(d));
        assert_int_equal(fg_amqp_ack(c, d), 0);
        fg_amqp_delivery_free(d);
    }
    assert_int_equal(distinct, before.n + during.n);
    assert_int_equal(fg_amqp_next(&d, c, 300), FG_ETIMEOUT);
    batch_dispose(&before);
    batch_dispose(&during);
    fg_amqp_free(p);
    fg_amqp_free(c);
    raw_delete(&n);
}

/* ---- (a) a broker restart in the middle ---------------------------------------------------- */

/* The real stack restarts through stack.sh; a private broker through FG_TEST_RMQ_RESTART_CMD. */
static int restart_broker(void)
{
    const char *cmd = getenv("FG_TEST_RMQ_RESTART_CMD");
    char *argv[] = {(char *)"/bin/sh", (char *)"-c", NULL, NULL};
    pid_t pid;
    int status;

    if (getenv("FG_STACK_DIR") != NULL)
        return fg_test_stack("restart rabbitmq");
    argv[2] = (char *)cmd;
    fflush(stdout);
    if (posix_spawn(&pid, "/bin/sh", NULL, NULL, argv, environ) != 0)
        return -1;
    if (waitpid(pid, &status, 0) != pid)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

typedef struct {
    fg_amqp *c;
    batch *b;
    int *seen;
    size_t distinct;
    int reconnects;
} consume_run;

/* Takes one delivery, acks it, counts it; reconnects when the connection is gone. */
static void consume_one(consume_run *r, fg_amqp_delivery **held)
{
    fg_amqp_delivery *d = NULL;
    long i;
    int rc = fg_amqp_next(&d, r->c, 1000);

    if (rc == FG_ETIMEOUT)
        return;
    if (rc == FG_EUNAVAILABLE) {
        r->reconnects++;
        assert_int_equal(fg_amqp_connect(r->c, 120000), 0);
        return;
    }
    assert_int_equal(rc, 0);
    i = id_index(fg_amqp_delivery_id(d), "restart", r->b->n);
    assert_true(i >= 0);
    r->distinct += r->seen[i]++ == 0;
    if (held != NULL) {
        *held = d;
        return;
    }
    rc = fg_amqp_ack(r->c, d);
    /* A delivery from before the loss cannot be acked: the broker redelivers it. */
    assert_true(rc == 0 || rc == FG_EUNAVAILABLE);
    fg_amqp_delivery_free(d);
}

static bool redelivered(const int *seen, const long *idx, int n)
{
    for (int i = 0; i < n; i++) {
        if (seen[idx[i]] < 2)
            return false;
    }
    return true;
}

static void test_amqp__broker_restart_loses_nothing(void **state)
{
    enum { N = 2000, FIRST = 1000, HELD = 5 };
    names n;
    fg_amqp *c, *p;
    batch b;
    fg_amqp_delivery *held[HELD] = {0}, *last = NULL;
    long held_idx[HELD];
    int *seen = calloc(N, sizeof(int));
    consume_run run;
    size_t confirmed = 0, done = FIRST;
    int interrupted = 0, rc;
    long long deadline;
    (void)state;

    if (getenv("FG_STACK_DIR") == NULL && getenv("FG_TEST_RMQ_RESTART_CMD") == NULL) {
        printf("SKIP: neither FG_STACK_DIR nor FG_TEST_RMQ_RESTART_CMD: cannot restart the "
               "broker\n");
        skip();
    }
    names_init(&n, "restart");
    c = consumer(&n, 200, 5, true);
    p = publisher();
    batch_init(&b, N, "restart", n.category);
    run = (consume_run){c, &b, seen, 0, 0};

    assert_int_equal(fg_amqp_publish_batch(&confirmed, p, b.msgs, FIRST, WAIT_MS), 0);
    assert_int_equal(confirmed, FIRST);
    deadline = fg_test_now_ms() + WAIT_MS;
    while (run.distinct < 400 && fg_test_now_ms() < deadline)
        consume_one(&run, NULL);
    assert_true(run.distinct >= 400);
    for (int i = 0; i < HELD; i++) { /* in the consumer's hands when the broker goes */
        while (held[i] == NULL)
            consume_one(&run, &held[i]);
        held_idx[i] = id_index(fg_amqp_delivery_id(held[i]), "restart", N);
    }

    assert_int_equal(restart_broker(), 0);

    /* The old connection is dead: the batch fails, says how far it got, and we go on. */
    while (done < N) {
        rc = fg_amqp_publish_batch(&confirmed, p, b.msgs + done, N - done, WAIT_MS);
        done += confirmed;
        if (rc == 0)
            break;
        assert_int_equal(rc, FG_EUNAVAILABLE);
        assert_true(++interrupted < 10);
        if (!fg_amqp_is_connected(p))
            assert_int_equal(fg_amqp_connect(p, 120000), 0);
    }
    assert_int_equal(done, N);
    assert_true(interrupted >= 1);

    deadline = fg_test_now_ms() + 120000;
    while ((run.distinct < N || !redelivered(seen, held_idx, HELD)) &&
           fg_test_now_ms() < deadline) {
        consume_one(&run, NULL);
        /* Once the consumer has reconnected, what it held belongs to a dead connection. */
        for (int i = 0; i < HELD && run.reconnects > 0 && held[i] != NULL; i++) {
            assert_int_equal(fg_amqp_ack(c, held[i]), FG_EUNAVAILABLE);
            fg_amqp_delivery_free(held[i]);
            held[i] = NULL;
        }
    }
    assert_true(run.reconnects >= 1);
    assert_int_equal(run.distinct, N);
    assert_true(redelivered(seen, held_idx, HELD));
    for (int i = 0; i < N; i++)
        assert_true(seen[i] >= 1);
    assert_int_equal(fg_amqp_next(&last, c, 500), FG_ETIMEOUT);
    assert_int_equal(raw_count(n.main_queue), 0);
    printf("restart: %d publish interruptions, %d consumer reconnects\n", interrupted,
           run.reconnects);
    batch_dispose(&b);
    free(seen);
    fg_amqp_free(p);
    fg_amqp_free(c);
    raw_delete(&n);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_amqp__declare_twice_is_a_noop),
        cmocka_unit_test(test_amqp__unroutable_publish_is_an_error_naming_the_message),
        cmocka_unit_test(test_amqp__refused_login_is_eauth_and_hides_the_password),
        cmocka_unit_test(test_amqp__fails_five_times_then_parked_with_reason),
        cmocka_unit_test(test_amqp__consumer_deaths_count_as_attempts),
        cmocka_unit_test(test_amqp__deliveries_during_confirm_wait_are_kept),
        cmocka_unit_test(test_amqp__broker_restart_loses_nothing),
    };

    amqp_url = fg_test_stack_env("FG_AMQP_URL");
    return cmocka_run_group_tests(tests, NULL, NULL);
}
