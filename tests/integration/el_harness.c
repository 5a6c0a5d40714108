/*
 * The triples-generator stand-in of event-log's tests (see el_harness.h).
 */
#include "el_harness.h"

#include "test_support.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <zlib.h>

#include "fg/amqp.h"
#include "fg/base64.h"
#include "fg/buf.h"

#define HARNESS_CONFIRM_MS 10000
#define HARNESS_POLL_MS    50
#define CATS               6 /* the categories counted: see cat_index */

static const char *const tg_categories[] = {
    "AWAITING_GENERATION", "TRIPLES_GENERATED", "CLEAN_UP",        "MEMBER_SYNC",
    "PROJECT_SYNC",        "FORGE_EVENT",       "PROJECT_REMOVED",
};

typedef struct {
    char sha[41];
    int count[CATS];
} sha_slot;

typedef struct {
    int cat;
    long long project;
    size_t n;
    char (*shas)[41];
} message_record;

struct el_harness {
    el_harness_options o;
    char instance[128];
    fg_amqp *amqp;
    pthread_t thread;
    bool running;
    atomic_bool stop;
    atomic_bool dead;
    int batches_taken; /* DIE: AWAITING_GENERATION acked so far (thread only) */
    long long next_heartbeat_ms;

    pthread_mutex_t lock; /* guards everything below */
    sha_slot *slots;
    size_t nslots, used;
    message_record *log;
    size_t nlog, caplog;
};

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int cat_index(fg_proto_category c)
{
    switch (c) {
    case FG_PROTO_AWAITING_GENERATION:
        return 0;
    case FG_PROTO_TRIPLES_GENERATED:
        return 1;
    case FG_PROTO_CLEAN_UP:
        return 2;
    case FG_PROTO_MEMBER_SYNC:
        return 3;
    case FG_PROTO_PROJECT_SYNC:
        return 4;
    case FG_PROTO_PROJECT_REMOVED:
        return 5;
    default:
        return -1;
    }
}

/* ---- records (under lock) ---------------------------------------------------------------- */

static size_t sha_hash(const char *sha, size_t nslots)
{
    size_t h = 1469598103934665603u;

    for (const char *p = sha; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211u;
    return h & (nslots - 1);
}

static sha_slot *slot_of(el_harness *h, const char *sha, bool create)
{
    if (create && (h->used + 1) * 2 > h->nslots) {
        size_t n = h->nslots ? h->nslots * 2 : 1024;
        sha_slot *slots = calloc(n, sizeof(*slots));

        if (slots == NULL)
            abort();
        for (size_t i = 0; i < h->nslots; i++) {
            if (h->slots[i].sha[0] != '\0') {
                size_t j = sha_hash(h->slots[i].sha, n);
                while (slots[j].sha[0] != '\0')
                    j = (j + 1) & (n - 1);
                slots[j] = h->slots[i];
            }
        }
        free(h->slots);
        h->slots = slots;
        h->nslots = n;
    }
    if (h->nslots == 0)
        return NULL;
    for (size_t j = sha_hash(sha, h->nslots);; j = (j + 1) & (h->nslots - 1)) {
        if (strcmp(h->slots[j].sha, sha) == 0)
            return &h->slots[j];
        if (h->slots[j].sha[0] == '\0') {
            if (!create)
                return NULL;
            snprintf(h->slots[j].sha, sizeof(h->slots[j].sha), "%s", sha);
            h->used++;
            return &h->slots[j];
        }
    }
}

static void record(el_harness *h, const fg_proto_msg *msg)
{
    int cat = cat_index(msg->category);
    size_t n = fg_proto_msg_count(msg, "events");
    message_record *r;

    if (cat < 0)
        return;
    pthread_mutex_lock(&h->lock);
    if (h->nlog == h->caplog) {
        h->caplog = h->caplog ? h->caplog * 2 : 256;
        h->log = realloc(h->log, h->caplog * sizeof(*h->log));
        if (h->log == NULL)
            abort();
    }
    r = &h->log[h->nlog++];
    r->cat = cat;
    r->project = msg->has_project ? msg->project.id : 0;
    r->n = n;
    r->shas = n ? calloc(n, sizeof(*r->shas)) : NULL;
    for (size_t i = 0; i < n; i++) {
        const char *sha = fg_proto_msg_event_sha(msg, i);

        snprintf(r->shas[i], sizeof(r->shas[i]), "%s", sha);
        slot_of(h, sha, true)->count[cat]++;
    }
    pthread_mutex_unlock(&h->lock);
}

/* ---- messages ---------------------------------------------------------------------------- */

static int publish(el_harness *h, fg_proto_msg *msg)
{
    fg_buf body;
    fg_amqp_message m;
    size_t confirmed = 0;
    int rc;

    fg_buf_init(&body, FG_PROTO_MESSAGE_MAX);
    if ((rc = fg_proto_msg_serialise(&body, msg)) == 0) {
        m.id = msg->id;
        m.category = fg_proto_category_name(msg->category);
        m.body = body.ptr;
        m.body_len = body.len;
        rc = fg_amqp_publish_batch(&confirmed, h->amqp, &m, 1, HARNESS_CONFIRM_MS);
    }
    fg_buf_dispose(&body);
    return rc;
}

static int subscribe(el_harness *h)
{
    fg_proto_msg msg;
    json_object *capacity = json_object_new_object();
    int rc;

    json_object_object_add(capacity, "AWAITING_GENERATION",
                           json_object_new_int(h->o.capacity_generation));
    json_object_object_add(capacity, "TRIPLES_GENERATED",
                           json_object_new_int(h->o.capacity_transformation));
    json_object_object_add(capacity, "CLEAN_UP", json_object_new_int(h->o.capacity_clean_up));
    fg_proto_msg_init(&msg);
    if ((rc = fg_proto_msg_start(&msg, FG_PROTO_SUBSCRIPTION, NULL)) < 0 ||
        (rc = fg_proto_msg_set_string(&msg, "service", "triples-generator")) < 0 ||
        (rc = fg_proto_msg_set_string(&msg, "instance", h->instance)) < 0) {
        json_object_put(capacity);
        goto done;
    }
    /* the setters take ownership of the objects, even when they fail */
    if ((rc = fg_proto_msg_set(&msg, "capacity", capacity)) == 0 &&
        (rc = fg_proto_msg_set(&msg, "inFlight", json_object_new_object())) == 0)
        rc = publish(h, &msg);
done:
    fg_proto_msg_dispose(&msg);
    h->next_heartbeat_ms = now_ms() + h->o.heartbeat_ms;
    return rc;
}

/* gzip'd N-Triples naming each commit, base64: what triples-generator would hand back. */
static int payload(fg_buf *out, const fg_proto_msg *msg)
{
    fg_buf nt, gz;
    z_stream zs;
    int rc = FG_ERROR;

    fg_buf_init(&nt, FG_BUF_UNLIMITED);
    fg_buf_init(&gz, FG_BUF_UNLIMITED);
    memset(&zs, 0, sizeof(zs));
    for (size_t i = 0; i < fg_proto_msg_count(msg, "events"); i++) {
        const char *sha = fg_proto_msg_event_sha(msg, i);

        if ((rc = fg_buf_printf(&nt,
                                "<http://forgegraph.local/commits/%s> "
                                "<https://w3id.org/forgegraph/ns#sha> \"%s\" .\n",
                                sha, sha)) < 0)
            goto done;
    }
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) !=
            Z_OK ||
        (rc = fg_buf_reserve(&gz, deflateBound(&zs, nt.len) + 64)) < 0)
        goto done;
    zs.next_in = (unsigned char *)nt.ptr;
    zs.avail_in = (unsigned)nt.len;
    zs.next_out = (unsigned char *)gz.ptr;
    zs.avail_out = (unsigned)(gz.cap - 1);
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        rc = FG_ERROR;
        goto done;
    }
    rc = fg_base64_encode(out, gz.ptr, zs.total_out);
done:
    deflateEnd(&zs);
    fg_buf_dispose(&nt);
    fg_buf_dispose(&gz);
    return rc;
}

static int reply(el_harness *h, const fg_proto_msg *in)
{
    fg_proto_msg out;
    fg_buf b64;
    fg_proto_sub_category sub;
    size_t n = fg_proto_msg_count(in, "events");
    bool all = in->category == FG_PROTO_CLEAN_UP && fg_proto_msg_get_bool(in, "all");
    int rc;

    switch (in->category) {
    case FG_PROTO_AWAITING_GENERATION:
        sub = FG_PROTO_SUB_TO_TRIPLES_GENERATED;
        break;
    case FG_PROTO_TRIPLES_GENERATED:
        sub = FG_PROTO_SUB_TO_TRIPLES_STORE;
        break;
    case FG_PROTO_CLEAN_UP:
        sub = all ? FG_PROTO_SUB_PROJECT_EVENTS_TO_NEW : FG_PROTO_SUB_CLEAN_UP_DONE;
        break;
    default:
        return 0;
    }
    fg_proto_msg_init(&out);
    fg_buf_init(&b64, FG_PROTO_PAYLOAD_MAX);
    if ((rc = fg_proto_msg_start(&out, FG_PROTO_EVENTS_STATUS_CHANGE, &in->project)) < 0 ||
        (rc = fg_proto_msg_set_sub_category(&out, sub)) < 0)
        goto done;
    for (size_t i = 0; !all && i < n; i++) {
        if ((rc = fg_proto_msg_add_event(&out, fg_proto_msg_event_sha(in, i))) < 0)
            goto done;
    }
    if (sub == FG_PROTO_SUB_TO_TRIPLES_GENERATED &&
        ((rc = payload(&b64, in)) < 0 ||
         (rc = fg_proto_msg_set_string(&out, "payload", b64.ptr)) < 0))
        goto done;
    if ((sub == FG_PROTO_SUB_TO_TRIPLES_GENERATED || sub == FG_PROTO_SUB_TO_TRIPLES_STORE) &&
        (rc = fg_proto_msg_set_int(&out, "processingTime", 1)) < 0)
        goto done;
    rc = publish(h, &out);
done:
    fg_proto_msg_dispose(&out);
    fg_buf_dispose(&b64);
    return rc;
}

/* ---- the thread -------------------------------------------------------------------------- */

static bool is_work(fg_proto_category c)
{
    return c == FG_PROTO_AWAITING_GENERATION || c == FG_PROTO_TRIPLES_GENERATED;
}

static bool ours(const el_harness *h, const fg_proto_msg *msg)
{
    if (h->o.project_min == 0 && h->o.project_max == 0)
        return true;
    return msg->has_project && msg->project.id >= h->o.project_min &&
           msg->project.id <= h->o.project_max;
}

/* Returns false when the harness must die now. */
static bool handle(el_harness *h, fg_amqp_delivery *d)
{
    fg_proto_msg msg;
    bool answer = true, alive = true;
    int rc;

    fg_proto_msg_init(&msg);
    if (fg_proto_msg_parse(&msg, fg_amqp_delivery_body(d), fg_amqp_delivery_body_len(d)) < 0) {
        fprintf(stderr, "harness: unparsable %s: %s\n", fg_amqp_delivery_category(d),
                fg_error_last());
        rc = fg_amqp_ack(h->amqp, d);
        goto done;
    }
    if (!ours(h, &msg))
        goto settle;
    record(h, &msg);
    if (h->o.mode != EL_HARNESS_ANSWER && is_work(msg.category))
        answer = false;
    if (h->o.mode == EL_HARNESS_DIE && msg.category == FG_PROTO_AWAITING_GENERATION &&
        ++h->batches_taken >= h->o.die_after)
        alive = false;
settle:
    if (answer && (rc = reply(h, &msg)) < 0) {
        fprintf(stderr, "harness: reply to %s failed: %s\n", fg_amqp_delivery_category(d),
                fg_error_last());
        rc = fg_amqp_retry(h->amqp, d, "harness reply failed");
        goto done;
    }
    rc = fg_amqp_ack(h->amqp, d);
done:
    if (rc < 0)
        fprintf(stderr, "harness: settling failed: %s\n", fg_error_last());
    fg_proto_msg_dispose(&msg);
    return alive;
}

static void *run(void *arg)
{
    el_harness *h = arg;

    while (!atomic_load(&h->stop)) {
        fg_amqp_delivery *d = NULL;
        int rc;

        if (now_ms() >= h->next_heartbeat_ms && subscribe(h) < 0)
            fprintf(stderr, "harness: SUBSCRIPTION failed: %s\n", fg_error_last());
        rc = fg_amqp_next(&d, h->amqp, HARNESS_POLL_MS);
        if (rc == FG_ETIMEOUT)
            continue;
        if (rc < 0) {
            if (fg_amqp_connect(h->amqp, 5000) < 0)
                fprintf(stderr, "harness: reconnect failed: %s\n", fg_error_last());
            continue;
        }
        if (!handle(h, d)) {
            fg_amqp_delivery_free(d);
            /* a consumer killed after acking: its connection goes, its heartbeats stop */
            fg_amqp_free(h->amqp);
            h->amqp = NULL;
            atomic_store(&h->dead, true);
            break;
        }
        fg_amqp_delivery_free(d);
    }
    return NULL;
}

/* ---- public ------------------------------------------------------------------------------ */

el_harness *el_harness_start(const el_harness_options *o)
{
    el_harness *h = calloc(1, sizeof(*h));
    fg_amqp_options ao;

    assert_non_null(h);
    h->o = *o;
    snprintf(h->instance, sizeof(h->instance), "%s", o->instance);
    h->o.instance = h->instance;
    if (h->o.heartbeat_ms <= 0)
        h->o.heartbeat_ms = 30000;
    pthread_mutex_init(&h->lock, NULL);
    fg_amqp_options_init(&ao);
    ao.url = o->amqp_url;
    ao.service = "triples-generator";
    ao.categories = tg_categories;
    ao.ncategories = sizeof(tg_categories) / sizeof(tg_categories[0]);
    ao.prefetch = 10;
    if (fg_amqp_new(&h->amqp, &ao) < 0 || fg_amqp_connect(h->amqp, 10000) < 0 ||
        fg_amqp_declare(h->amqp) < 0 || fg_amqp_consume(h->amqp) < 0 || subscribe(h) < 0)
        fail_msg("harness start: %s", fg_error_last());
    assert_int_equal(pthread_create(&h->thread, NULL, run, h), 0);
    h->running = true;
    return h;
}

void el_harness_stop(el_harness *h)
{
    if (h == NULL)
        return;
    atomic_store(&h->stop, true);
    if (h->running)
        pthread_join(h->thread, NULL);
    /* a consumer that leaves says so: its capacity is no longer there (a dead one cannot) */
    if (h->amqp != NULL) {
        h->o.capacity_generation = h->o.capacity_transformation = h->o.capacity_clean_up = 0;
        if (subscribe(h) < 0)
            fprintf(stderr, "harness: goodbye SUBSCRIPTION failed: %s\n", fg_error_last());
    }
    fg_amqp_free(h->amqp);
    for (size_t i = 0; i < h->nlog; i++)
        free(h->log[i].shas);
    free(h->log);
    free(h->slots);
    pthread_mutex_destroy(&h->lock);
    free(h);
}

bool el_harness_dead(el_harness *h)
{
    return atomic_load(&h->dead);
}

int el_harness_deliveries(el_harness *h, fg_proto_category category, const char *sha)
{
    int cat = cat_index(category), n = 0;
    sha_slot *s;

    if (cat < 0)
        return 0;
    pthread_mutex_lock(&h->lock);
    s = slot_of(h, sha, false);
    n = s ? s->count[cat] : 0;
    pthread_mutex_unlock(&h->lock);
    return n;
}

typedef enum { COUNT_MESSAGES, COUNT_EVENTS, COUNT_MAX } count_kind;

static size_t count(el_harness *h, fg_proto_category category, count_kind kind, bool by_project,
                    long long project)
{
    int cat = cat_index(category);
    size_t n = 0;

    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->nlog; i++) {
        const message_record *r = &h->log[i];

        if (r->cat != cat || (by_project && r->project != project))
            continue;
        if (kind == COUNT_MESSAGES)
            n++;
        else if (kind == COUNT_EVENTS)
            n += r->n;
        else if (r->n > n)
            n = r->n;
    }
    pthread_mutex_unlock(&h->lock);
    return n;
}

size_t el_harness_messages(el_harness *h, fg_proto_category category)
{
    return count(h, category, COUNT_MESSAGES, false, 0);
}

size_t el_harness_events(el_harness *h, fg_proto_category category)
{
    return count(h, category, COUNT_EVENTS, false, 0);
}

size_t el_harness_max_batch(el_harness *h, fg_proto_category category)
{
    return count(h, category, COUNT_MAX, false, 0);
}

size_t el_harness_project_messages(el_harness *h, fg_proto_category category, long long project)
{
    return count(h, category, COUNT_MESSAGES, true, project);
}

char **el_harness_received_shas(el_harness *h, fg_proto_category category, size_t n,
                                size_t *out_count)
{
    int cat = cat_index(category);
    char **shas = NULL;
    size_t total = 0, seen = 0;

    pthread_mutex_lock(&h->lock);
    for (size_t i = 0; i < h->nlog; i++) {
        if (h->log[i].cat == cat && seen++ < n)
            total += h->log[i].n;
    }
    shas = calloc(total ? total : 1, sizeof(*shas));
    assert_non_null(shas);
    total = 0;
    seen = 0;
    for (size_t i = 0; i < h->nlog; i++) {
        if (h->log[i].cat != cat || seen++ >= n)
            continue;
        for (size_t j = 0; j < h->log[i].n; j++)
            shas[total++] = strdup(h->log[i].shas[j]);
    }
    pthread_mutex_unlock(&h->lock);
    *out_count = total;
    return shas;
}

void el_harness_free_shas(char **shas, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(shas[i]);
    free(shas);
}
