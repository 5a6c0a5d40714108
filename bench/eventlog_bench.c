/*
 * fg-bench-eventlog: event-log's figures (DESIGN.md "Performance", `eventlog`) on a database of
 * its own (fg_bench_eventlog, created through the admin URL FG_PG_URL, migrated with
 * services/event-log/migrations, dropped at the end unless FG_BENCH_KEEP=1), holding
 * FG_BENCH_EVENTS events (1,000,000) over 2,000 projects:
 *  - transitions in batches of 500: a project's events go NEW -> GENERATING_TRIPLES ->
 *    TRIPLES_GENERATED -> TRANSFORMING_TRIPLES -> TRIPLES_STORE, 500 at a time, each change one
 *    el_change_apply in its own committed transaction (as the consumer and the dispatcher do);
 *  - one event at a time, the way the service commits such changes: the replies
 *    (ToTriplesGenerated with its payload, ToTriplesStore) are EVENTS_STATUS_CHANGE messages of
 *    one event each, handled by el_consume_group in groups of BENCH_GROUP (what the bus thread
 *    takes when that many have arrived: FG_EL_GROUP_MAX), and the dispatches are one-event
 *    el_change_apply calls committed BENCH_ROUND to a transaction (a dispatch round serves
 *    FG_EL_PROJECTS_PER_ROUND projects); every change still its own el_change_apply;
 *  - the same one event per change and transaction (the detail line "single, one transaction
 *    per change"), and again without waiting for the WAL flush;
 *  - the dispatcher's pick (el_dispatch_sql PICK of generation and transformation) p99.
 * Prints detail lines, then `bench eventlog transitions_per_s=... single_transitions_per_s=...
 * pick_ms_p99=... events=N group=G` as its last line. Exit 1 on any failure (the message says
 * why).
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "el_change.h"
#include "el_consume.h"
#include "el_dispatch.h"
#include "fg/base64.h"
#include "fg/buf.h"
#include "fg/log.h"
#include "fg/metrics.h"
#include "fg/pg.h"
#include "fg/proto.h"

#define BENCH_DB          "fg_bench_eventlog"
#define BENCH_TIMEOUT_MS  30000
#define BENCH_PROJECTS    2000
#define BENCH_BATCH       500
#define BENCH_PICKS       2000
#define BENCH_PICK_LIMIT  16
#define BENCH_URL_MAX     2048
#define BENCH_EVENTS_MAX  100000000LL
#define BENCH_BATCH_SHARE 10 /* 1/10 of the events go through the batch run */
#define BENCH_SINGLE_MAX  5000LL
#define BENCH_GROUP       64 /* FG_EL_GROUP_MAX's default */
#define BENCH_ROUND       16 /* FG_EL_PROJECTS_PER_ROUND's default */
#define BENCH_BODY_MAX    4096u

typedef struct {
    fg_pg_conn *admin;
    fg_pg_conn *pg;
    char url[BENCH_URL_MAX];
    long long events;
    long long batch_project, batch_events;
    long long single_project, single_events;
    long long async_project;   /* the single run again, without waiting for the WAL flush */
    long long grouped_project; /* one event at a time, committed in groups */
} bench;

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int fail(const char *what, int rc)
{
    fprintf(stderr, "bench eventlog: %s: %s\n", what, fg_error_last());
    return rc < 0 ? rc : FG_ERROR;
}

static int exec(fg_pg_conn *pg, const char *sql, size_t n, const char *const *params)
{
    int rc = fg_pg_exec(NULL, pg, sql, n, params);

    return rc < 0 ? fail(sql, rc) : 0;
}

/* ---- database ---------------------------------------------------------------------------- */

static int create_database(bench *b, const char *admin_url)
{
    const char *auth = strstr(admin_url, "://");
    const char *path = auth ? strchr(auth + 3, '/') : NULL;
    const char *query = strchr(admin_url, '?');
    size_t base = path ? (size_t)(path - admin_url) : strcspn(admin_url, "?");
    int rc;

    snprintf(b->url, sizeof(b->url), "%.*s/%s%s", (int)base, admin_url, BENCH_DB,
             query ? query : "");
    if ((rc = fg_pg_connect(&b->admin, admin_url, BENCH_TIMEOUT_MS)) < 0)
        return fail("connect FG_PG_URL", rc);
    if ((rc = exec(b->admin, "DROP DATABASE IF EXISTS " BENCH_DB " WITH (FORCE)", 0, NULL)) < 0 ||
        (rc = exec(b->admin, "CREATE DATABASE " BENCH_DB, 0, NULL)) < 0)
        return rc;
    if ((rc = fg_pg_connect(&b->pg, b->url, BENCH_TIMEOUT_MS)) < 0)
        return fail("connect " BENCH_DB, rc);
    if ((rc = fg_pg_migrate(NULL, b->pg, EL_BENCH_MIGRATIONS_DIR)) < 0)
        return fail("migrate", rc);
    return 0;
}

/* Projects 1 to 4 are the batch and the three single runs' (all NEW); the rest of the events spread
 * over the other projects like a busy installation: mostly done, some waiting, some in flight.
 * Every event gets its CREATION log row. Generated server-side: loading is not what is measured. */
static int load(bench *b)
{
    char n_batch[24], n_single[24], n_rest[24], n_projects[24];
    const char *p1[1] = {n_projects};
    const char *p3[3] = {n_batch, n_single, n_rest};
    double t0 = now_s();
    int rc;

    b->batch_events = b->events / BENCH_BATCH_SHARE;
    b->batch_events -= b->batch_events % BENCH_BATCH;
    b->single_events = b->events / 200 < BENCH_SINGLE_MAX ? b->events / 200 : BENCH_SINGLE_MAX;
    snprintf(n_batch, sizeof(n_batch), "%lld", b->batch_events);
    snprintf(n_single, sizeof(n_single), "%lld", b->single_events);
    snprintf(n_rest, sizeof(n_rest), "%lld", b->events - b->batch_events - 3 * b->single_events);
    snprintf(n_projects, sizeof(n_projects), "%d", BENCH_PROJECTS);
    if ((rc = exec(b->pg,
                   "INSERT INTO project (forge, path, url) SELECT 'git', 'bench/p' || i, "
                   "'file:///bench/p' || i FROM generate_series(1, $1::int) i",
                   1, p1)) < 0)
        return rc;
    rc = exec(b->pg,
              "WITH g AS MATERIALIZED (SELECT nextval('event_id_seq') AS id, n, p, s FROM (SELECT "
              "n, CASE WHEN n <= $1 THEN 1 WHEN n <= $1 + $2 THEN 2 "
              "        WHEN n <= $1 + 2 * $2 THEN 3 WHEN n <= $1 + 3 * $2 THEN 4 "
              "        ELSE 5 + (n % 1996) END AS p, "
              "       CASE WHEN n <= $1 + 3 * $2 THEN 'NEW' "
              "        WHEN n % 100 < 94 THEN 'TRIPLES_STORE' WHEN n % 100 < 97 THEN 'NEW' "
              "        WHEN n % 100 = 97 THEN 'TRIPLES_GENERATED' "
              "        WHEN n % 100 = 98 THEN 'GENERATION_NON_RECOVERABLE_FAILURE' "
              "        ELSE 'TRANSFORMATION_RECOVERABLE_FAILURE' END AS s "
              "      FROM generate_series(1, $1::bigint + 3 * $2::bigint + $3::bigint) n) x), "
              "e AS (INSERT INTO event (id, project_id, status, execution_date) "
              "  SELECT id, p, s::event_status, now() - interval '1 hour' FROM g) "
              "INSERT INTO event_commit (event_id, project_id, sha, event_date) "
              "SELECT id, p, substr(md5(n::text) || md5('s' || n::text), 1, 40), "
              "  timestamptz '2024-01-01' + n * interval '1 second' FROM g",
              3, p3);
    if (rc < 0)
        return rc;
    if ((rc = exec(b->pg,
                   "INSERT INTO status_log (event_id, project_id, from_status, to_status, cause) "
                   "SELECT id, project_id, NULL, 'NEW', 'CREATION' FROM event",
                   0, NULL)) < 0 ||
        (rc = exec(b->pg, "VACUUM ANALYZE", 0, NULL)) < 0)
        return rc;
    b->batch_project = 1;
    b->grouped_project = 2;
    b->single_project = 3;
    b->async_project = 4;
    printf("loaded %lld events (%lld for the batch run, %lld for each single run) over %d "
           "projects in %.1f s\n",
           b->events, b->batch_events, b->single_events, BENCH_PROJECTS, now_s() - t0);
    return 0;
}

/* ---- transitions ------------------------------------------------------------------------- */

/* Where a run's time went: BEGIN, the statement, COMMIT (the WAL flush); and the statement's
 * time by pipeline step. */
static double spent[3];
static double step_spent[4];
static int step;

/* One change in its own transaction; adds what moved to *moved. */
static int apply_committed(size_t *moved, fg_pg_conn *pg, const el_change *c)
{
    el_change_result r;
    double t0 = now_s(), t1, t2;
    int rc;

    if ((rc = fg_pg_begin(pg)) < 0)
        return fail("begin", rc);
    t1 = now_s();
    if ((rc = el_change_apply(&r, pg, c)) < 0) {
        int ignored = fg_pg_rollback(pg);

        (void)ignored;
        return fail("el_change_apply", rc);
    }
    t2 = now_s();
    if ((rc = fg_pg_commit(pg)) < 0)
        return fail("commit", rc);
    spent[0] += t1 - t0;
    spent[1] += t2 - t1;
    step_spent[step] += t2 - t1;
    spent[2] += now_s() - t2;
    *moved += r.applied;
    return 0;
}

typedef struct {
    el_event_id *ids;
    char (*shas)[41];
    const char **sha_ptrs;
    long long *payloads;
    size_t n;
} event_set;

static void event_set_dispose(event_set *s)
{
    free(s->ids);
    free(s->shas);
    free(s->sha_ptrs);
    free(s->payloads);
    memset(s, 0, sizeof(*s));
}

/* The project's events in id order, and a payload row for each group of `group` of them (what
 * ToTriplesGenerated would have stored; made before the clock starts). */
static int event_set_load(event_set *out, fg_pg_conn *pg, long long project, size_t group)
{
    char id[24], groups[24];
    const char *params[2] = {id, groups};
    fg_pg_result *res = NULL, *pay = NULL;
    int rc = FG_ERROR;
    size_t n, ngroups;

    memset(out, 0, sizeof(*out));
    snprintf(id, sizeof(id), "%lld", project);
    if ((rc = fg_pg_exec(
             &res, pg,
             "SELECT event_id, sha FROM event_commit WHERE project_id = $1 ORDER BY event_id", 1,
             params)) < 0) {
        rc = fail("select events", rc);
        goto done;
    }
    n = fg_pg_result_rows(res);
    ngroups = (n + group - 1) / group;
    snprintf(groups, sizeof(groups), "%zu", ngroups);
    if ((rc = fg_pg_exec(&pay, pg,
                         "INSERT INTO payload (project_id, data) SELECT $1, '\\x1f8b' "
                         "FROM generate_series(1, $2::int) RETURNING id",
                         2, params)) < 0) {
        rc = fail("insert payloads", rc);
        goto done;
    }
    out->ids = calloc(n + 1, sizeof(*out->ids));
    out->shas = calloc(n + 1, sizeof(*out->shas));
    out->sha_ptrs = calloc(n + 1, sizeof(*out->sha_ptrs));
    out->payloads = calloc(ngroups + 1, sizeof(*out->payloads));
    if (!out->ids || !out->shas || !out->sha_ptrs || !out->payloads) {
        rc = fg_error_set(FG_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        int64_t v = 0;

        if ((rc = fg_pg_result_int64(&v, res, i, 0)) < 0)
            goto done;
        out->ids[i].value = (long long)v;
        snprintf(out->shas[i], sizeof(out->shas[i]), "%s", fg_pg_result_text(res, i, 1));
        out->sha_ptrs[i] = out->shas[i];
    }
    for (size_t g = 0; g < ngroups; g++) {
        int64_t v = 0;

        if ((rc = fg_pg_result_int64(&v, pay, g, 0)) < 0)
            goto done;
        out->payloads[g] = (long long)v;
    }
    out->n = n;
    rc = 0;
done:
    fg_pg_result_free(res);
    fg_pg_result_free(pay);
    if (rc < 0)
        event_set_dispose(out);
    return rc;
}

/* The four steps of generation and transformation for events [from, from + n), as the
 * dispatcher (by id) and the triples generator's replies (by sha) make them. */
static int pipeline(size_t *moved, fg_pg_conn *pg, long long project, const event_set *s,
                    size_t from, size_t n, long long payload)
{
    el_change c;
    int rc;

    memset(&c, 0, sizeof(c));
    step = 0;
    c.project.value = project;
    c.to = EL_STATUS_GENERATING_TRIPLES;
    c.cause = EL_CAUSE_DISPATCH;
    c.ids = s->ids + from;
    c.nids = n;
    if ((rc = apply_committed(moved, pg, &c)) < 0)
        return rc;
    step = 1;
    c.ids = NULL;
    c.nids = 0;
    c.to = EL_STATUS_TRIPLES_GENERATED;
    c.cause = EL_CAUSE_TO_TRIPLES_GENERATED;
    c.shas = s->sha_ptrs + from;
    c.nshas = n;
    c.payload_id = payload;
    if ((rc = apply_committed(moved, pg, &c)) < 0)
        return rc;
    step = 2;
    c.shas = NULL;
    c.nshas = 0;
    c.payload_id = 0;
    c.to = EL_STATUS_TRANSFORMING_TRIPLES;
    c.cause = EL_CAUSE_DISPATCH;
    c.ids = s->ids + from;
    c.nids = n;
    if ((rc = apply_committed(moved, pg, &c)) < 0)
        return rc;
    step = 3;
    c.ids = NULL;
    c.nids = 0;
    c.to = EL_STATUS_TRIPLES_STORE;
    c.cause = EL_CAUSE_TO_TRIPLES_STORE;
    c.shas = s->sha_ptrs + from;
    c.nshas = n;
    return apply_committed(moved, pg, &c);
}

/* CPU seconds the connection's backend has used (user + system), from /proc (the server runs on
 * this machine); -1 when it cannot be read. Wall time on a shared 2-core machine includes other
 * processes' turns; this does not. *out_sys: the system part (writes and the WAL flush). */
static double backend_cpu_s(fg_pg_conn *pg, double *out_sys)
{
    fg_pg_result *res = NULL;
    char path[64], line[1024];
    unsigned long long utime = 0, stime = 0;
    const char *p;
    FILE *f;
    int64_t pid = 0;

    if (fg_pg_exec(&res, pg, "SELECT pg_backend_pid()", 0, NULL) < 0 ||
        fg_pg_result_int64(&pid, res, 0, 0) < 0) {
        fg_pg_result_free(res);
        return -1;
    }
    fg_pg_result_free(res);
    snprintf(path, sizeof(path), "/proc/%lld/stat", (long long)pid);
    if ((f = fopen(path, "r")) == NULL)
        return -1;
    p = fgets(line, sizeof(line), f);
    fclose(f);
    /* fields 14 and 15, counted after the parenthesised command name */
    if (p == NULL || (p = strrchr(line, ')')) == NULL ||
        sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &utime, &stime) != 2)
        return -1;
    *out_sys = (double)stime / (double)sysconf(_SC_CLK_TCK);
    return (double)(utime + stime) / (double)sysconf(_SC_CLK_TCK);
}

/* How often each of el_change's prepared statements was planned (custom) and how often its cached
 * generic plan ran: planning a custom plan per call would cost more than executing it. */
static void print_plans(fg_pg_conn *pg, const char *label)
{
    fg_pg_result *res = NULL;

    if (fg_pg_exec(&res, pg,
                   "SELECT string_agg(name || ' ' || generic_plans || ' generic/' || "
                   "custom_plans || ' custom', ', ' ORDER BY name) FROM pg_prepared_statements "
                   "WHERE name LIKE 'el_change%'",
                   0, NULL) == 0)
        printf("%s: plans so far: %s\n", label, fg_pg_result_text(res, 0, 0));
    fg_pg_result_free(res);
}

/* Runs the pipeline over the project's events `group` at a time; the rate in transitions/s. */
static int run_transitions(double *out, fg_pg_conn *pg, long long project, size_t group,
                           const char *label)
{
    event_set s;
    size_t moved = 0;
    double t0, dt, cpu0, cpu, sys0 = 0, sys = 0;
    int rc;

    if ((rc = event_set_load(&s, pg, project, group)) < 0)
        return rc;
    memset(spent, 0, sizeof(spent));
    memset(step_spent, 0, sizeof(step_spent));
    cpu0 = backend_cpu_s(pg, &sys0);
    t0 = now_s();
    for (size_t i = 0, g = 0; i < s.n; i += group, g++) {
        size_t n = s.n - i < group ? s.n - i : group;

        if ((rc = pipeline(&moved, pg, project, &s, i, n, s.payloads[g])) < 0)
            break;
    }
    dt = now_s() - t0;
    cpu = backend_cpu_s(pg, &sys);
    cpu = cpu0 >= 0 && cpu >= 0 ? cpu - cpu0 : -1;
    sys -= sys0;
    if (rc == 0 && moved != 4 * s.n)
        rc = fg_error_set(FG_ERROR, "%s: %zu transitions of %zu events, expected %zu", label, moved,
                          s.n, 4 * s.n);
    if (rc == 0) {
        *out = (double)moved / dt;
        printf("%s: %zu transitions (%zu events x 4, %zu per change, one transaction each) in "
               "%.2f s: %.0f/s, %.3f ms per change\n",
               label, moved, s.n, group, dt, *out,
               dt * 1000.0 / (double)(4 * ((s.n + group - 1) / group)));
        printf("%s: time in BEGIN %.2f s, el_change_apply %.2f s, COMMIT %.2f s\n", label, spent[0],
               spent[1], spent[2]);
        if (cpu >= 0)
            printf("%s: the server's backend used %.2f s of CPU (%.2f s system): %.1f us per "
                   "transition, %.0f transitions per CPU second\n",
                   label, cpu, sys, cpu * 1e6 / (double)moved, (double)moved / cpu);
        print_plans(pg, label);
        printf("%s: el_change_apply by step: dispatch %.2f s, ToTriplesGenerated %.2f s, "
               "dispatch %.2f s, ToTriplesStore %.2f s\n",
               label, step_spent[0], step_spent[1], step_spent[2], step_spent[3]);
    }
    event_set_dispose(&s);
    return rc < 0 ? fail(label, rc) : 0;
}

/* ---- one event at a time, committed in groups --------------------------------------------- */

/* The replies of one step, one message per event, built (and validated) before the clock starts,
 * as the triples generator would have sent them. */
typedef struct {
    char *bytes; /* n bodies, each in a slot of BENCH_BODY_MAX */
    el_consume_input *in;
    size_t n;
} bodies;

static void bodies_dispose(bodies *b)
{
    free(b->bytes);
    free(b->in);
    memset(b, 0, sizeof(*b));
}

/* A payload of the size one commit's gzip'd N-Triples has (~750 bytes, 1 KiB in base64). */
static int make_payload(fg_buf *out)
{
    unsigned char raw[768];
    unsigned x = 12345;

    for (size_t i = 0; i < sizeof(raw); i++) {
        x = x * 1103515245u + 12345u;
        raw[i] = (unsigned char)(x >> 16);
    }
    raw[0] = 0x1f; /* gzip magic: nothing reads it here, but it looks the part */
    raw[1] = 0x8b;
    return fg_base64_encode(out, raw, sizeof(raw));
}

static int bodies_build(bodies *out, long long project, const event_set *s,
                        fg_proto_sub_category sub, const char *payload)
{
    fg_proto_project p = {project, FG_PROTO_FORGE_GIT, "bench/grouped"};
    fg_proto_msg msg;
    fg_buf body;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    out->bytes = malloc((s->n > 0 ? s->n : 1) * BENCH_BODY_MAX);
    out->in = calloc(s->n > 0 ? s->n : 1, sizeof(*out->in));
    if (out->bytes == NULL || out->in == NULL) {
        bodies_dispose(out);
        return fg_error_set(FG_ENOMEM, "out of memory");
    }
    fg_buf_init(&body, BENCH_BODY_MAX);
    for (size_t i = 0; rc == 0 && i < s->n; i++) {
        fg_proto_msg_init(&msg);
        fg_buf_clear(&body);
        if ((rc = fg_proto_msg_start(&msg, FG_PROTO_EVENTS_STATUS_CHANGE, &p)) == 0 &&
            (rc = fg_proto_msg_set_sub_category(&msg, sub)) == 0 &&
            (rc = fg_proto_msg_add_event(&msg, s->sha_ptrs[i])) == 0 &&
            (payload == NULL || (rc = fg_proto_msg_set_string(&msg, "payload", payload)) == 0) &&
            (rc = fg_proto_msg_set_int(&msg, "processingTime", 12)) == 0 &&
            (rc = fg_proto_msg_serialise(&body, &msg)) == 0) {
            memcpy(out->bytes + i * BENCH_BODY_MAX, body.ptr, body.len);
            out->in[i].body = out->bytes + i * BENCH_BODY_MAX;
            out->in[i].len = body.len;
        }
        fg_proto_msg_dispose(&msg);
    }
    fg_buf_dispose(&body);
    out->n = s->n;
    if (rc < 0)
        bodies_dispose(out);
    return rc;
}

/* Dispatch steps: one event per el_change_apply, `round` of them committed together. */
static int dispatch_grouped(size_t *moved, fg_pg_conn *pg, long long project, const event_set *s,
                            el_status to, size_t round)
{
    el_change c;
    el_change_result r;
    int rc = 0;

    memset(&c, 0, sizeof(c));
    c.project.value = project;
    c.to = to;
    c.cause = EL_CAUSE_DISPATCH;
    c.nids = 1;
    for (size_t i = 0; rc == 0 && i < s->n; i += round) {
        if ((rc = fg_pg_begin(pg)) < 0)
            break;
        for (size_t j = i; rc == 0 && j < i + round && j < s->n; j++) {
            c.ids = s->ids + j;
            if ((rc = el_change_apply(&r, pg, &c)) == 0)
                *moved += r.applied;
        }
        if (rc == 0) {
            rc = fg_pg_commit(pg);
        } else {
            int ignored = fg_pg_rollback(pg);

            (void)ignored;
        }
    }
    return rc < 0 ? fail("grouped dispatch", rc) : 0;
}

/* Reply steps: the messages through el_consume_group, `group` at a time. */
static int replies_grouped(fg_pg_conn *pg, const el_context *ctx, const bodies *b, size_t group)
{
    fg_service_outcome *out = calloc(group, sizeof(*out));
    int rc = 0;

    if (out == NULL)
        return fail("replies", fg_error_set(FG_ENOMEM, "out of memory"));
    for (size_t i = 0; rc == 0 && i < b->n; i += group) {
        size_t n = b->n - i < group ? b->n - i : group;

        if ((rc = el_consume_group(out, pg, ctx, b->in + i, n)) < 0)
            break;
        for (size_t j = 0; rc == 0 && j < n; j++) {
            if (out[j].rc != 0)
                rc = fg_error_set(FG_ERROR, "reply %zu: %s", i + j, out[j].reason);
        }
    }
    free(out);
    return rc < 0 ? fail("grouped replies", rc) : 0;
}

/* The single figure: every event through the four steps one event per change, committed in the
 * groups the service forms. */
static int run_grouped(double *out, fg_pg_conn *pg, long long project)
{
    static const char *const names[4] = {"dispatch", "ToTriplesGenerated", "dispatch",
                                         "ToTriplesStore"};
    event_set s;
    bodies generated, stored;
    el_context ctx;
    fg_buf payload;
    size_t moved = 0;
    double t[5], dt, cpu0, cpu, sys0 = 0, sys = 0;
    int rc;

    memset(&ctx, 0, sizeof(ctx));
    memset(&generated, 0, sizeof(generated));
    memset(&stored, 0, sizeof(stored));
    fg_buf_init(&payload, 4096);
    if ((rc = event_set_load(&s, pg, project, BENCH_SINGLE_MAX)) < 0)
        goto done_payload;
    if ((rc = make_payload(&payload)) < 0 ||
        (rc = bodies_build(&generated, project, &s, FG_PROTO_SUB_TO_TRIPLES_GENERATED,
                           payload.ptr)) < 0 ||
        (rc = bodies_build(&stored, project, &s, FG_PROTO_SUB_TO_TRIPLES_STORE, NULL)) < 0 ||
        (rc = el_context_metrics_new(&ctx)) < 0) {
        rc = fail("grouped run set-up", rc);
        goto done;
    }
    cpu0 = backend_cpu_s(pg, &sys0);
    t[0] = now_s();
    if ((rc = dispatch_grouped(&moved, pg, project, &s, EL_STATUS_GENERATING_TRIPLES,
                               BENCH_ROUND)) < 0)
        goto done;
    t[1] = now_s();
    if ((rc = replies_grouped(pg, &ctx, &generated, BENCH_GROUP)) < 0)
        goto done;
    t[2] = now_s();
    if ((rc = dispatch_grouped(&moved, pg, project, &s, EL_STATUS_TRANSFORMING_TRIPLES,
                               BENCH_ROUND)) < 0)
        goto done;
    t[3] = now_s();
    if ((rc = replies_grouped(pg, &ctx, &stored, BENCH_GROUP)) < 0)
        goto done;
    t[4] = now_s();
    dt = t[4] - t[0];
    cpu = backend_cpu_s(pg, &sys);
    cpu = cpu0 >= 0 && cpu >= 0 ? cpu - cpu0 : -1;
    moved += (size_t)fg_metric_value(ctx.m.transitions);
    if (moved != 4 * s.n) {
        rc = fail("grouped run", fg_error_set(FG_ERROR,
                                              "%zu transitions of %zu events, expected "
                                              "%zu",
                                              moved, s.n, 4 * s.n));
        goto done;
    }
    *out = (double)moved / dt;
    printf("single, grouped: %zu transitions (%zu events x 4, one event per el_change_apply; "
           "replies as one-event messages through el_consume_group, group=%d; dispatches %d per "
           "transaction) in %.2f s: %.0f/s\n",
           moved, s.n, BENCH_GROUP, BENCH_ROUND, dt, *out);
    printf("single, grouped: by step:");
    for (int i = 0; i < 4; i++)
        printf(" %s %.0f/s%s", names[i], (double)s.n / (t[i + 1] - t[i]), i < 3 ? "," : "\n");
    if (cpu >= 0)
        printf("single, grouped: the server's backend used %.2f s of CPU (%.2f s system): %.1f us "
               "per transition\n",
               cpu, sys - sys0, cpu * 1e6 / (double)moved);
    print_plans(pg, "single, grouped");
    rc = 0;
done:
    bodies_dispose(&generated);
    bodies_dispose(&stored);
    el_context_metrics_free(&ctx);
    event_set_dispose(&s);
done_payload:
    fg_buf_dispose(&payload);
    return rc;
}

/* ---- pick -------------------------------------------------------------------------------- */

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return x < y ? -1 : x > y;
}

static const char *pick_sql(int transformation)
{
    return el_dispatch_sql(transformation ? EL_DISPATCH_TRANSFORMATION : EL_DISPATCH_GENERATION,
                           EL_DISPATCH_SQL_PICK);
}

/* The dispatcher's pick of both kinds, from cursors spread over the projects; p99 in ms. */
static int run_pick(double *out, fg_pg_conn *pg)
{
    static double ms[BENCH_PICKS];
    char after[24], limit[24];
    const char *params[2] = {after, limit};
    unsigned seed = 42;
    int rc;

    snprintf(limit, sizeof(limit), "%d", BENCH_PICK_LIMIT);
    for (int i = 0; i < BENCH_PICKS; i++) {
        int kind = i % 2;
        const char *sql = pick_sql(kind);
        fg_pg_result *res = NULL;
        double t0;

        seed = seed * 1103515245u + 12345u;
        snprintf(after, sizeof(after), "%u", (seed >> 8) % BENCH_PROJECTS);
        t0 = now_s();
        rc = fg_pg_exec_prepared(&res, pg, kind ? "bench_pick_t" : "bench_pick_g", sql, 2, params);
        ms[i] = (now_s() - t0) * 1000.0;
        fg_pg_result_free(res);
        if (rc < 0)
            return fail("pick", rc);
    }
    qsort(ms, BENCH_PICKS, sizeof(ms[0]), compare_double);
    *out = ms[BENCH_PICKS * 99 / 100];
    printf("pick: %d picks of %d projects (generation and transformation alternating): "
           "p50 %.3f ms, p99 %.3f ms, max %.3f ms\n",
           BENCH_PICKS, BENCH_PICK_LIMIT, ms[BENCH_PICKS / 2], *out, ms[BENCH_PICKS - 1]);
    return 0;
}

/* The single run with synchronous_commit off for this session: what a one-event change costs
 * when its COMMIT does not wait for the WAL flush. A detail line, not the headline figure. */
static int run_async(bench *b)
{
    double rate = 0;
    int rc;

    if ((rc = exec(b->pg, "SET synchronous_commit = off", 0, NULL)) < 0)
        return rc;
    rc = run_transitions(&rate, b->pg, b->async_project, 1,
                         "single, one transaction per change, synchronous_commit off");
    if (rc == 0)
        rc = exec(b->pg, "RESET synchronous_commit", 0, NULL);
    return rc;
}

/* ---- main -------------------------------------------------------------------------------- */

static int parse_events(long long *out, const char *text)
{
    char *end = NULL;
    long long v;

    if (text == NULL || text[0] == '\0') {
        *out = 1000000;
        return 0;
    }
    v = strtoll(text, &end, 10);
    if (end == text || *end != '\0' || v < 100000 || v > BENCH_EVENTS_MAX)
        return fg_error_set(FG_EINVALID, "FG_BENCH_EVENTS: 100000..%lld", BENCH_EVENTS_MAX);
    *out = v;
    return 0;
}

int main(void)
{
    bench b;
    const char *admin_url = getenv("FG_PG_URL");
    const char *keep = getenv("FG_BENCH_KEEP");
    double batch = 0, single = 0, alone = 0, pick = 0;
    int rc;

    memset(&b, 0, sizeof(b));
    fg_log_setup("bench-eventlog", FG_LOG_WARN);
    if (admin_url == NULL || admin_url[0] == '\0') {
        fprintf(stderr, "bench eventlog: FG_PG_URL (an admin URL) is not set\n");
        return 2;
    }
    if ((rc = parse_events(&b.events, getenv("FG_BENCH_EVENTS"))) < 0) {
        fprintf(stderr, "bench eventlog: %s\n", fg_error_last());
        return 2;
    }
    if ((rc = create_database(&b, admin_url)) == 0 && (rc = load(&b)) == 0 &&
        (rc = run_pick(&pick, b.pg)) == 0 &&
        (rc = run_transitions(&batch, b.pg, b.batch_project, BENCH_BATCH, "batches")) == 0 &&
        (rc = run_grouped(&single, b.pg, b.grouped_project)) == 0 &&
        (rc = run_transitions(&alone, b.pg, b.single_project, 1,
                              "single, one transaction per change")) == 0 &&
        (rc = run_async(&b)) == 0)
        printf("bench eventlog transitions_per_s=%.0f single_transitions_per_s=%.0f "
               "pick_ms_p99=%.2f events=%lld group=%d\n",
               batch, single, pick, b.events, BENCH_GROUP);
    fg_pg_free(b.pg);
    if (b.admin != NULL && (keep == NULL || strcmp(keep, "1") != 0)) {
        int drop = exec(b.admin, "DROP DATABASE IF EXISTS " BENCH_DB " WITH (FORCE)", 0, NULL);

        rc = rc < 0 ? rc : drop;
    }
    fg_pg_free(b.admin);
    return rc < 0 ? 1 : 0;
}
