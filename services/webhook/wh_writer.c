/*
 * wh_writer (see wh_writer.h). Why a thread and one statement per batch: PostgreSQL keeps fsync
 * and synchronous_commit on, so each COMMIT waits for the WAL flush; one transaction per request
 * caps intake at the flush rate and blocks the loop meanwhile. Here the loop only queues, and the
 * writer commits whatever queued up while the previous commit was in flight: under light load a
 * batch is one delivery (latency = one round trip + one flush), under heavy load batches grow by
 * themselves and the flushes are shared. The statement is one autocommit INSERT ... ON CONFLICT
 * DO NOTHING with a data-modifying CTE that writes the outbox rows of the deliveries it inserted,
 * so archive, dedupe key and outbox entry commit together, and the rows it did not insert are
 * the duplicates. Re-running it after a lost connection is safe for the same reason.
 */
#include "wh_writer.h"

#include <event2/event.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fg/log.h"
#include "fg/pg.h"
#include "fg/service.h"

#define COLUMNS            11
#define BATCH_BYTES_MAX    ((size_t)64 << 20) /* bodies in one statement (one always goes) */
#define CONNECT_MS         2000
#define BACKOFF_MIN_MS     20
#define BACKOFF_MAX_MS     500
#define SQL_ROW_TEXT_MAX   200 /* one "($1::text,...)" group */
#define SQL_FIXED_TEXT_MAX 1024
#define PREPARED_EXACT     64 /* statement sizes: each one up to here, */
#define PREPARED_STEP      32 /* then multiples of this */

static const char sql_head[] =
    "WITH ins AS (INSERT INTO delivery (forge, dedupe_key, event, action, forge_id, project_id,"
    " project_path, route, headers, body_bytes, body) VALUES ";
static const char sql_tail[] =
    " ON CONFLICT (forge, dedupe_key) DO NOTHING RETURNING id, forge, dedupe_key, route),"
    " queued AS (INSERT INTO outbox (delivery_id)"
    " SELECT id FROM ins WHERE route <> 'ignored' ORDER BY id)"
    " SELECT id, forge, dedupe_key FROM ins";

/* One writer thread and what only it touches. */
typedef struct {
    wh_writer *w;
    pthread_t thread;
    bool started;
    fg_pg_conn *db;
    fg_buf sql;
    const char **params;
    wh_delivery **batch;
    wh_delivery **sorted;
} worker;

struct wh_writer {
    wh_writer_options o;
    char *db_url;
    worker *workers;
    size_t nworkers;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    /* under lock */
    wh_delivery *in_head, *in_tail;
    size_t in_count, in_bytes;
    wh_delivery *done_head, *done_tail;
    bool stopping;
    /* loop thread */
    struct event *done_ev;
    atomic_bool connected;
    /* read-only once built */
    fg_buf values;   /* "(...),(...)..." for batch_max rows */
    size_t *row_end; /* values.len after row i */
};

const char *wh_route_name(wh_route route)
{
    switch (route) {
    case WH_ROUTE_COMMIT_SYNC:
        return "commit_sync";
    case WH_ROUTE_FORGE_EVENT:
        return "forge_event";
    default:
        return "ignored";
    }
}

wh_delivery *wh_delivery_new(const char *body, size_t body_len, const char *headers,
                             size_t headers_len)
{
    /* one allocation: the struct, the body, then the headers */
    wh_delivery *d = malloc(sizeof(*d) + body_len + 1 + headers_len + 1);

    if (d == NULL)
        return NULL;
    memset(d, 0, sizeof(*d));
    memcpy(d->body, body, body_len);
    d->body[body_len] = '\0';
    d->body_len = body_len;
    d->headers = d->body + body_len + 1;
    memcpy(d->headers, headers, headers_len);
    d->headers[headers_len] = '\0';
    snprintf(d->body_bytes, sizeof(d->body_bytes), "%zu", body_len);
    return d;
}

void wh_delivery_free(wh_delivery *d)
{
    free(d);
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static double now_seconds(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- the statement ---------------------------------------------------------------------- */

/* The VALUES text for batch_max rows, built once: the statement for n rows is its first
 * row_end[n-1] bytes between the head and the tail. */
static int build_values(wh_writer *w)
{
    static const char *const types[COLUMNS] = {"text",   "text",    "text", "text",
                                               "bigint", "bigint",  "text", "text",
                                               "text",   "integer", "text"};
    int rc;

    fg_buf_init(&w->values, w->o.batch_max * SQL_ROW_TEXT_MAX);
    if ((w->row_end = calloc(w->o.batch_max, sizeof(size_t))) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory for the writer's statement");
    for (size_t row = 0; row < w->o.batch_max; row++) {
        if (row > 0 && (rc = fg_buf_putc(&w->values, ',')) < 0)
            return rc;
        for (size_t col = 0; col < COLUMNS; col++) {
            if ((rc = fg_buf_printf(&w->values, "%s$%zu::%s", col == 0 ? "(" : ",",
                                    row * COLUMNS + col + 1, types[col])) < 0)
                return rc;
        }
        if ((rc = fg_buf_putc(&w->values, ')')) < 0)
            return rc;
        w->row_end[row] = w->values.len;
    }
    return 0;
}

static const char *null_if_empty(const char *s)
{
    return s[0] != '\0' ? s : NULL;
}

/* Statements are prepared once per size, so that PostgreSQL parses and plans each shape once:
 * every size up to PREPARED_EXACT, then multiples of PREPARED_STEP (up to batch_max). The rows
 * that pad a batch up to its statement's size repeat the first row: same dedupe key, so ON
 * CONFLICT DO NOTHING skips them (and RETURNING does not list them). */
static size_t statement_rows(const wh_writer *w, size_t n)
{
    size_t s = n <= PREPARED_EXACT ? n : (n + PREPARED_STEP - 1) / PREPARED_STEP * PREPARED_STEP;

    return s > w->o.batch_max ? w->o.batch_max : s;
}

static void bind_row(const char **p, const wh_delivery *d)
{
    p[0] = fg_proto_forge_name(d->forge);
    p[1] = d->dedupe_key;
    p[2] = d->event;
    p[3] = null_if_empty(d->action);
    p[4] = null_if_empty(d->forge_id);
    p[5] = null_if_empty(d->project_id);
    p[6] = null_if_empty(d->project_path);
    p[7] = wh_route_name(d->route);
    p[8] = d->headers;
    p[9] = d->body_bytes;
    p[10] = d->body;
}

/* The statement for n rows (padded to *out_rows) in t->sql, its name in name, rows bound. */
static int compose(worker *t, char name[32], size_t *out_rows, wh_delivery *const *rows, size_t n)
{
    wh_writer *w = t->w;
    size_t s = statement_rows(w, n);
    int rc;

    fg_buf_clear(&t->sql);
    if ((rc = fg_buf_puts(&t->sql, sql_head)) < 0 ||
        (rc = fg_buf_put(&t->sql, w->values.ptr, w->row_end[s - 1])) < 0 ||
        (rc = fg_buf_puts(&t->sql, sql_tail)) < 0)
        return rc;
    for (size_t i = 0; i < s; i++)
        bind_row(&t->params[i * COLUMNS], rows[i < n ? i : 0]);
    snprintf(name, 32, "wh_archive_%zu", s);
    *out_rows = s;
    return 0;
}

static int compare_keys(const wh_delivery *a, const wh_delivery *b)
{
    if (a->forge != b->forge)
        return a->forge < b->forge ? -1 : 1;
    return strcmp(a->dedupe_key, b->dedupe_key);
}

static int compare_sorted(const void *x, const void *y, void *arg)
{
    wh_delivery *const *a = x, *const *b = y;
    int c = compare_keys(*a, *b);

    (void)arg;
    if (c != 0)
        return c;
    /* Arrival order among equal keys: the first one is the one archived. */
    return (*a)->position < (*b)->position ? -1 : (*a)->position > (*b)->position;
}

/* The rows that go into the statement: one per dedupe key, the earliest arrival. */
static size_t pick_primaries(worker *t, wh_delivery **batch, size_t n)
{
    size_t m = 0;

    for (size_t i = 0; i < n; i++) {
        batch[i]->position = i;
        t->sorted[i] = batch[i];
    }
    qsort_r(t->sorted, n, sizeof(t->sorted[0]), compare_sorted, NULL);
    for (size_t i = 0; i < n; i++) {
        if (m > 0 && compare_keys(t->sorted[m - 1], t->sorted[i]) == 0) {
            t->sorted[i]->duplicate_in_batch = true;
            continue;
        }
        t->sorted[m++] = t->sorted[i];
    }
    return m;
}

static wh_delivery *find_primary(worker *t, size_t m, const char *forge, const char *key)
{
    size_t lo = 0, hi = m;
    fg_proto_forge f;

    if (fg_proto_forge_parse(&f, forge) < 0)
        return NULL;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        wh_delivery *d = t->sorted[mid];
        int c = d->forge != f ? (d->forge < f ? -1 : 1) : strcmp(d->dedupe_key, key);
        if (c == 0)
            return d;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

/* Marks the primaries the statement inserted 202 (with their archive id); the others were
 * there already: 200. */
static void settle(worker *t, size_t m, const fg_pg_result *res)
{
    for (size_t i = 0; i < m; i++)
        t->sorted[i]->status = 200;
    for (size_t row = 0; row < fg_pg_result_rows(res); row++) {
        int64_t id = 0;
        wh_delivery *d =
            find_primary(t, m, fg_pg_result_text(res, row, 1), fg_pg_result_text(res, row, 2));
        if (d != NULL && fg_pg_result_int64(&id, res, row, 0) == 0) {
            d->status = 202;
            d->archive_id = (long long)id;
        }
    }
}

static int exec_rows(worker *t, fg_pg_result **res, wh_delivery *const *rows, size_t n)
{
    char name[32];
    size_t s = 0;
    int rc;

    if ((rc = compose(t, name, &s, rows, n)) < 0)
        return rc;
    return fg_pg_exec_prepared(res, t->db, name, t->sql.ptr, s * COLUMNS, t->params);
}

static void backoff_wait(wh_writer *w, long ms)
{
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&w->lock);
    if (!w->stopping)
        pthread_cond_timedwait(&w->cond, &w->lock, &until);
    pthread_mutex_unlock(&w->lock);
}

static bool stopping(wh_writer *w)
{
    bool s;

    pthread_mutex_lock(&w->lock);
    s = w->stopping;
    pthread_mutex_unlock(&w->lock);
    return s;
}

/* Runs the statement for rows[0..n), retrying a lost connection until deadline. */
static int exec_until(worker *t, fg_pg_result **res, wh_delivery *const *rows, size_t n,
                      long long deadline)
{
    wh_writer *w = t->w;
    long backoff = BACKOFF_MIN_MS;
    int rc;

    for (;;) {
        if (t->db == NULL)
            rc = fg_pg_connect(&t->db, t->w->db_url, CONNECT_MS);
        else
            rc = 0;
        if (rc == 0 && (rc = exec_rows(t, res, rows, n)) == 0) {
            atomic_store(&w->connected, true);
            return 0;
        }
        if (rc != FG_EUNAVAILABLE && rc != FG_ETIMEOUT)
            return rc;
        if (atomic_exchange(&w->connected, false))
            fg_log_warn("archive: %s; retrying", fg_error_last());
        if (now_ms() + backoff > deadline || stopping(w))
            return rc;
        backoff_wait(w, backoff);
        backoff = backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : backoff * 2;
    }
}

static int status_of(int rc)
{
    return rc == FG_EINVALID ? 400 : 503;
}

/* A statement that failed for its data: each row alone, so one bad delivery (which intake should
 * have refused) does not take the others down with it. */
static void isolate(worker *t, size_t m, long long deadline)
{
    for (size_t i = 0; i < m; i++) {
        wh_delivery *d = t->sorted[i];
        fg_pg_result *res = NULL;
        int rc = exec_until(t, &res, &d, 1, deadline);

        if (rc == 0) {
            int64_t id = 0;
            d->status = fg_pg_result_rows(res) == 1 ? 202 : 200;
            if (d->status == 202 && fg_pg_result_int64(&id, res, 0, 0) == 0)
                d->archive_id = (long long)id;
        } else {
            fg_log_emit(FG_LOG_ERROR, FG_LOG_FIELDS(FG_LOG_STR("delivery", d->dedupe_key)),
                        "archive refused a delivery: %s", fg_error_last());
            d->status = status_of(rc);
        }
        fg_pg_result_free(res);
    }
}

static void archive(worker *t, wh_delivery **batch, size_t n)
{
    wh_writer *w = t->w;
    size_t m = pick_primaries(t, batch, n);
    /* the batch is in arrival order: its first delivery has waited longest */
    long long deadline = batch[0]->queued_ms + w->o.commit_timeout_ms;
    fg_pg_result *res = NULL;
    double started = now_seconds();
    int rc = exec_until(t, &res, t->sorted, m, deadline);

    if (rc == 0) {
        settle(t, m, res);
    } else if (rc != FG_EUNAVAILABLE && rc != FG_ETIMEOUT && m > 1) {
        fg_log_warn("archive: a batch of %zu failed (%s); writing its deliveries one by one", m,
                    fg_error_last());
        isolate(t, m, deadline);
    } else {
        for (size_t i = 0; i < m; i++)
            t->sorted[i]->status = status_of(rc);
    }
    fg_pg_result_free(res);
    for (size_t i = 0; i < n; i++) {
        wh_delivery *d = batch[i];
        if (d->duplicate_in_batch) {
            wh_delivery *first = find_primary(t, m, fg_proto_forge_name(d->forge), d->dedupe_key);
            d->status = first != NULL && first->status != 202 ? first->status : 200;
        }
    }
    if (w->o.commit_rows != NULL)
        fg_metric_observe(w->o.commit_rows, (double)n);
    if (w->o.commit_seconds != NULL)
        fg_metric_observe(w->o.commit_seconds, now_seconds() - started);
}

/* ---- the thread ------------------------------------------------------------------------- */

/* Takes what queued up (at most batch_max deliveries and BATCH_BYTES_MAX of bodies, but always
 * one). Returns 0 when stopping. */
static size_t take_batch(worker *t)
{
    wh_writer *w = t->w;
    size_t n = 0, bytes = 0;

    pthread_mutex_lock(&w->lock);
    while (!w->stopping && w->in_head == NULL)
        pthread_cond_wait(&w->cond, &w->lock);
    while (!w->stopping && w->in_head != NULL && n < w->o.batch_max &&
           (n == 0 || bytes + w->in_head->body_len <= BATCH_BYTES_MAX)) {
        wh_delivery *d = w->in_head;
        w->in_head = d->next;
        if (w->in_head == NULL)
            w->in_tail = NULL;
        d->next = NULL;
        w->in_count--;
        w->in_bytes -= d->body_len;
        bytes += d->body_len;
        t->batch[n++] = d;
    }
    pthread_mutex_unlock(&w->lock);
    return n;
}

/* Hands the batch back to the loop, in order, and wakes the relay when it queued messages. */
static void finish(worker *t, size_t n)
{
    wh_writer *w = t->w;
    bool queued = false;

    pthread_mutex_lock(&w->lock);
    for (size_t i = 0; i < n; i++) {
        wh_delivery *d = t->batch[i];
        queued |= d->status == 202 && d->route != WH_ROUTE_IGNORED;
        if (w->done_tail != NULL)
            w->done_tail->next = d;
        else
            w->done_head = d;
        w->done_tail = d;
    }
    pthread_mutex_unlock(&w->lock);
    event_active(w->done_ev, EV_READ, 0);
    if (queued && w->o.svc != NULL)
        fg_service_wake(w->o.svc);
}

static void *writer_main(void *arg)
{
    worker *t = arg;
    size_t n;

    if (fg_pg_connect(&t->db, t->w->db_url, CONNECT_MS) < 0)
        fg_log_warn("archive: %s; will retry with the first delivery", fg_error_last());
    else
        atomic_store(&t->w->connected, true);
    while ((n = take_batch(t)) > 0) {
        archive(t, t->batch, n);
        finish(t, n);
    }
    return NULL;
}

/* ---- the loop side ---------------------------------------------------------------------- */

static void on_done(evutil_socket_t fd, short what, void *arg)
{
    wh_writer *w = arg;
    wh_delivery *d;

    (void)fd;
    (void)what;
    pthread_mutex_lock(&w->lock);
    d = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->lock);
    while (d != NULL) {
        wh_delivery *next = d->next;
        d->next = NULL;
        w->o.answer(d, w->o.payload);
        d = next;
    }
}

static int worker_init(worker *t, wh_writer *w)
{
    t->w = w;
    fg_buf_init(&t->sql, w->values.len + SQL_FIXED_TEXT_MAX);
    if ((t->params = calloc(w->o.batch_max * COLUMNS, sizeof(char *))) == NULL ||
        (t->batch = calloc(w->o.batch_max, sizeof(wh_delivery *))) == NULL ||
        (t->sorted = calloc(w->o.batch_max, sizeof(wh_delivery *))) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory for the writer");
    if (pthread_create(&t->thread, NULL, writer_main, t) != 0)
        return fg_error_set(FG_ERROR, "cannot start a writer thread");
    t->started = true;
    return 0;
}

static void worker_dispose(worker *t)
{
    if (t->started)
        pthread_join(t->thread, NULL);
    fg_pg_free(t->db);
    fg_buf_dispose(&t->sql);
    free(t->params);
    free(t->batch);
    free(t->sorted);
}

int wh_writer_new(wh_writer **out, const wh_writer_options *opts)
{
    wh_writer *w = NULL;
    int rc = FG_ERROR;

    *out = NULL;
    if (opts->db_url == NULL || opts->base == NULL || opts->answer == NULL || opts->batch_max < 1 ||
        opts->batch_max > WH_WRITER_BATCH_MAX || opts->queue_max < 1 || opts->writers < 1 ||
        opts->writers > WH_WRITER_THREADS_MAX)
        return fg_error_set(FG_EINVALID, "bad writer options");
    if ((w = calloc(1, sizeof(*w))) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory for the writer");
    w->o = *opts;
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    if ((w->db_url = strdup(opts->db_url)) == NULL ||
        (w->workers = calloc(opts->writers, sizeof(worker))) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory for the writer");
        goto done;
    }
    if ((rc = build_values(w)) < 0)
        goto done;
    if ((w->done_ev = event_new(opts->base, -1, 0, on_done, w)) == NULL) {
        rc = fg_error_set(FG_ERROR, "cannot create the writer's loop event");
        goto done;
    }
    for (w->nworkers = 0; w->nworkers < opts->writers; w->nworkers++) {
        if ((rc = worker_init(&w->workers[w->nworkers], w)) < 0) {
            w->nworkers++; /* disposed with the others */
            goto done;
        }
    }
    *out = w;
    w = NULL;
    rc = 0;
done:
    wh_writer_free(w);
    return rc;
}

static void free_list(wh_delivery *d)
{
    while (d != NULL) {
        wh_delivery *next = d->next;
        wh_delivery_free(d);
        d = next;
    }
}

void wh_writer_free(wh_writer *w)
{
    if (w == NULL)
        return;
    pthread_mutex_lock(&w->lock);
    w->stopping = true;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
    for (size_t i = 0; i < w->nworkers; i++)
        worker_dispose(&w->workers[i]);
    free(w->workers);
    if (w->done_ev != NULL)
        event_free(w->done_ev);
    free_list(w->in_head);
    free_list(w->done_head);
    fg_buf_dispose(&w->values);
    free(w->row_end);
    free(w->db_url);
    pthread_cond_destroy(&w->cond);
    pthread_mutex_destroy(&w->lock);
    free(w);
}

int wh_writer_submit(wh_writer *w, wh_delivery *d)
{
    int rc = 0;

    d->next = NULL;
    d->queued_ms = now_ms();
    pthread_mutex_lock(&w->lock);
    if (w->stopping)
        rc = fg_error_set(FG_EUNAVAILABLE, "the archive writer is stopping");
    else if (w->in_count >= w->o.queue_max ||
             (w->in_count > 0 && w->in_bytes + d->body_len > w->o.queue_bytes_max))
        rc = fg_error_set(FG_EUNAVAILABLE, "%zu deliveries are waiting for the archive already",
                          w->in_count);
    if (rc == 0) {
        if (w->in_tail != NULL)
            w->in_tail->next = d;
        else
            w->in_head = d;
        w->in_tail = d;
        w->in_count++;
        w->in_bytes += d->body_len;
        pthread_cond_signal(&w->cond);
    }
    pthread_mutex_unlock(&w->lock);
    return rc;
}

bool wh_writer_connected(const wh_writer *w)
{
    return atomic_load(&w->connected);
}
