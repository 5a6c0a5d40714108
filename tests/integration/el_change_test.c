/* el_change_apply against a real PostgreSQL (FG_PG_URL), in a scratch database migrated with
 * event-log's migrations: every legal transition of the table is applied and logged, every other
 * request is refused (stale or illegal) and changes nothing, batches count what they did,
 * failures, payloads and deletions have their side effects, whole-project changes move only the
 * legal sources, and two changes racing on one event serialise on its row lock. */
#include "test_support.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "el_change.h"
#include "el_schedule.h"
#include "el_testdb.h"
#include "fg/log.h"

static el_testdb db;
static fg_pg_conn *pg;
static long long seed = 1000;

/* ---- helpers ---------------------------------------------------------------------------- */

static void check(int rc, const char *what)
{
    if (rc < 0)
        fail_msg("%s: %d %s", what, rc, fg_error_last());
}

static el_change change_of(long long project, el_status to, el_cause cause)
{
    el_change c;

    memset(&c, 0, sizeof(c));
    c.project.value = project;
    c.to = to;
    c.cause = cause;
    return c;
}

static el_change_result apply(const el_change *c)
{
    el_change_result r;

    check(el_change_apply(&r, pg, c), "el_change_apply");
    return r;
}

static el_change_result apply_one(long long project, const char *sha, el_status to, el_cause cause,
                                  const char *message)
{
    el_change c = change_of(project, to, cause);
    const char *shas[1] = {sha};

    c.shas = shas;
    c.nshas = 1;
    c.message = message;
    return apply(&c);
}

static char *event_text(const char *sql, long long id)
{
    char param[24];
    const char *params[1] = {param};

    snprintf(param, sizeof(param), "%lld", id);
    return el_testdb_text(pg, sql, 1, params);
}

static long long event_int(const char *sql, long long id)
{
    char param[24];
    const char *params[1] = {param};

    snprintf(param, sizeof(param), "%lld", id);
    return el_testdb_int(pg, sql, 1, params);
}

static void assert_status(long long id, const char *want)
{
    char *got = event_text("SELECT coalesce((SELECT status::text FROM event WHERE id = $1), "
                           "'<gone>')",
                           id);
    assert_string_equal(got, want);
    free(got);
}

/* The event's last status_log row as "from>to:cause:message". */
static char *last_log(long long id)
{
    return event_text("SELECT coalesce(from_status::text, '-') || '>' || coalesce(to_status::text,"
                      " '-') || ':' || cause || ':' || coalesce(message, '') FROM status_log "
                      "WHERE event_id = $1 ORDER BY id DESC LIMIT 1",
                      id);
}

static long long log_rows(long long id)
{
    return event_int("SELECT count(*) FROM status_log WHERE event_id = $1", id);
}

/* Everything el_change_apply may write, in one string. */
static char *whole_state(void)
{
    return el_testdb_text(pg,
                          "SELECT coalesce((SELECT string_agg(id || ':' || status || ':' || "
                          "execution_date || ':' || attempts || ':' || coalesce(message, '') || "
                          "':' || coalesce(payload_id::text, ''), ',' ORDER BY id) FROM event), "
                          "'') || '|' || (SELECT count(*) FROM status_log) || '|' || "
                          "(SELECT count(*) FROM payload) || '|' || (SELECT count(*) FROM "
                          "event_body)",
                          0, NULL);
}

static long long new_project(const char *tag)
{
    char path[64];

    snprintf(path, sizeof(path), "el-change/%s", tag);
    return el_testdb_project(pg, path);
}

static long long new_event(long long project, char sha[41], el_status status)
{
    el_testdb_sha(sha, project, ++seed);
    return el_testdb_event(pg, project, sha, status);
}

/* ---- every legal transition ------------------------------------------------------------- */

/* For each row of the table (bar creation, which el_creation does): an event in `from`, the
 * change by sha, and then its status, its status_log row (from, to, cause, message) and for
 * CleanUpDone the deletion of the event and its body. */
static void test_el_change__every_legal_transition_is_applied_and_logged(void **state)
{
    long long project = new_project("legal");
    size_t applied = 0;
    (void)state;

    for (int f = EL_STATUS_NEW; f < EL_STATUS_DELETED; f++) {
        for (int t = EL_STATUS_NEW; t < EL_STATUS_COUNT; t++) {
            for (int c = 0; c < EL_CAUSE_COUNT; c++) {
                char sha[41], message[64], want[256], *got;
                long long id;
                el_change_result r;

                if (el_transition_check((el_status)f, (el_status)t, (el_cause)c) != EL_APPLY)
                    continue;
                id = new_event(project, sha, (el_status)f);
                el_testdb_exec(pg,
                               "INSERT INTO event_body (event_id, body) "
                               "SELECT event_id, '{}' FROM event_commit WHERE sha = $1",
                               1, (const char *const[]){sha});
                snprintf(message, sizeof(message), "why %d-%d-%d", f, t, c);
                r = apply_one(project, sha, (el_status)t, (el_cause)c, message);
                if (r.applied != 1 || r.stale || r.illegal || r.missing)
                    fail_msg("%s -> %s by %s: applied %zu stale %zu illegal %zu missing %zu",
                             el_status_name((el_status)f), el_status_name((el_status)t),
                             el_cause_name((el_cause)c), r.applied, r.stale, r.illegal, r.missing);
                assert_status(id, t == EL_STATUS_DELETED ? "<gone>" : el_status_name(t));
                snprintf(want, sizeof(want), "%s>%s:%s:%s", el_status_name((el_status)f),
                         t == EL_STATUS_DELETED ? "-" : el_status_name((el_status)t),
                         el_cause_name((el_cause)c), message);
                got = last_log(id);
                assert_string_equal(got, want);
                free(got);
                assert_int_equal(log_rows(id), 1);
                if (t == EL_STATUS_DELETED)
                    assert_int_equal(
                        event_int("SELECT count(*) FROM event_body WHERE event_id = $1", id), 0);
                applied++;
            }
        }
    }
    /* the table's rows minus NONE -> NEW (CREATION) */
    assert_int_equal(applied, 50);
}

/* ---- every refused request -------------------------------------------------------------- */

static bool log_mentions(const char *path, const char *a, const char *b)
{
    char line[4096];
    bool found = false;
    FILE *f = fopen(path, "r");

    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof(line), f) != NULL)
        found = strstr(line, a) != NULL && strstr(line, b) != NULL;
    fclose(f);
    return found;
}

/* One event per stored status, and every (to, cause) the table does not allow from it: applied
 * 0, the verdict counted (replies stale, the rest illegal), nothing written anywhere. An illegal
 * one is logged with the sha and both statuses. */
static void test_el_change__every_refused_request_changes_nothing(void **state)
{
    long long project = new_project("refused");
    char shas[EL_STATUS_COUNT][41];
    char logpath[] = "/tmp/el_change_log_XXXXXX";
    char *before, *after;
    size_t stale = 0, illegal = 0;
    int logfd = mkstemp(logpath);
    (void)state;

    assert_true(logfd >= 0);
    for (int f = EL_STATUS_NEW; f < EL_STATUS_DELETED; f++)
        (void)new_event(project, shas[f], (el_status)f);
    before = whole_state();
    fg_log_set_fd(logfd);
    for (int f = EL_STATUS_NEW; f < EL_STATUS_DELETED; f++) {
        for (int t = EL_STATUS_NEW; t < EL_STATUS_COUNT; t++) {
            for (int c = 0; c < EL_CAUSE_COUNT; c++) {
                el_verdict v = el_transition_check((el_status)f, (el_status)t, (el_cause)c);
                el_change_result r;

                if (v == EL_APPLY)
                    continue;
                r = apply_one(project, shas[f], (el_status)t, (el_cause)c, "nope");
                if (r.applied != 0 || r.missing != 0 || r.stale != (v == EL_STALE) ||
                    r.illegal != (v == EL_ILLEGAL))
                    fail_msg("%s -> %s by %s: applied %zu stale %zu illegal %zu",
                             el_status_name((el_status)f), el_status_name((el_status)t),
                             el_cause_name((el_cause)c), r.applied, r.stale, r.illegal);
                stale += r.stale;
                illegal += r.illegal;
            }
        }
    }
    fg_log_set_fd(2);
    close(logfd);
    after = whole_state();
    assert_string_equal(before, after);
    /* 12 stored x 13 targets x 14 causes, minus the 50 legal ones */
    assert_int_equal(stale + illegal, 12 * 13 * 14 - 50);
    assert_true(stale > 0 && illegal > 0);
    /* e.g. TRIPLES_STORE -> GENERATING_TRIPLES by DISPATCH was refused and logged */
    assert_true(log_mentions(logpath, shas[EL_STATUS_TRIPLES_STORE], "\"from\":\"TRIPLES_STORE\""));
    assert_true(log_mentions(logpath, shas[EL_STATUS_NEW], "illegal transition refused"));
    unlink(logpath);
    free(before);
    free(after);
}

/* ---- batches ---------------------------------------------------------------------------- */

/* A reply naming events in several states: the legal ones move, the ones that moved on are
 * stale, unknown shas (and a duplicate) are counted once as missing; an operator request with
 * illegal members refuses those members only. */
static void test_el_change__batch_counts_applied_stale_illegal_missing(void **state)
{
    long long project = new_project("batch");
    char s[8][41];
    long long ids[8];
    const char *shas[9];
    el_change c;
    el_change_result r;
    (void)state;

    ids[0] = new_event(project, s[0], EL_STATUS_TRANSFORMING_TRIPLES);
    ids[1] = new_event(project, s[1], EL_STATUS_TRANSFORMING_TRIPLES);
    ids[2] = new_event(project, s[2], EL_STATUS_TRANSFORMING_TRIPLES);
    ids[3] = new_event(project, s[3], EL_STATUS_TRIPLES_STORE);
    ids[4] = new_event(project, s[4], EL_STATUS_NEW);
    el_testdb_sha(s[5], project, 900001); /* never created */
    el_testdb_sha(s[6], project, 900002);
    for (int i = 0; i < 7; i++)
        shas[i] = s[i];
    shas[7] = s[0]; /* named twice */
    c = change_of(project, EL_STATUS_TRIPLES_STORE, EL_CAUSE_TO_TRIPLES_STORE);
    c.shas = shas;
    c.nshas = 8;
    r = apply(&c);
    assert_int_equal(r.applied, 3);
    assert_int_equal(r.stale, 2);
    assert_int_equal(r.illegal, 0);
    assert_int_equal(r.missing, 2);
    for (int i = 0; i < 3; i++) {
        assert_status(ids[i], "TRIPLES_STORE");
        assert_int_equal(log_rows(ids[i]), 1);
    }
    assert_status(ids[4], "NEW");
    assert_int_equal(log_rows(ids[3]) + log_rows(ids[4]), 0);

    /* operator retry: only the failed one is legal */
    ids[5] = new_event(project, s[7], EL_STATUS_GENERATION_NON_RECOVERABLE_FAILURE);
    shas[0] = s[7];
    shas[1] = s[3];
    shas[2] = s[4];
    c = change_of(project, EL_STATUS_NEW, EL_CAUSE_RETRY);
    c.shas = shas;
    c.nshas = 3;
    r = apply(&c);
    assert_int_equal(r.applied, 1);
    assert_int_equal(r.illegal, 2);
    assert_int_equal(r.stale + r.missing, 0);
    assert_status(ids[5], "NEW");
    assert_status(ids[3], "TRIPLES_STORE");
}

/* Events named by id: ids of another project are missing, not moved. */
static void test_el_change__ids_of_another_project_are_missing(void **state)
{
    long long mine = new_project("ids-mine"), other = new_project("ids-other");
    char sha[41];
    el_event_id ids[3];
    el_change c = change_of(mine, EL_STATUS_GENERATING_TRIPLES, EL_CAUSE_DISPATCH);
    el_change_result r;
    (void)state;

    ids[0].value = new_event(mine, sha, EL_STATUS_NEW);
    ids[1].value = new_event(mine, sha, EL_STATUS_GENERATION_RECOVERABLE_FAILURE);
    ids[2].value = new_event(other, sha, EL_STATUS_NEW);
    c.ids = ids;
    c.nids = 3;
    r = apply(&c);
    assert_int_equal(r.applied, 2);
    assert_int_equal(r.missing, 1);
    assert_status(ids[0].value, "GENERATING_TRIPLES");
    assert_status(ids[1].value, "GENERATING_TRIPLES");
    assert_status(ids[2].value, "NEW");
}

/* ---- side effects ----------------------------------------------------------------------- */

/* A recoverable failure waits out its delay, counts an attempt and keeps its message; dispatch
 * clears the message and keeps the count; an operator retry forgets it. */
static void test_el_change__failure_sets_delay_attempts_message(void **state)
{
    long long project = new_project("failure");
    char sha[41];
    long long id = new_event(project, sha, EL_STATUS_GENERATING_TRIPLES);
    el_change c = change_of(project, EL_STATUS_GENERATION_RECOVERABLE_FAILURE, EL_CAUSE_TO_FAILURE);
    const char *shas[1] = {sha};
    char *message;
    (void)state;

    c.shas = shas;
    c.nshas = 1;
    c.message = "clone failed";
    c.delay_ms = 60000;
    assert_int_equal(apply(&c).applied, 1);
    assert_int_equal(event_int("SELECT attempts FROM event WHERE id = $1", id), 1);
    assert_int_equal(event_int("SELECT extract(epoch FROM execution_date - now())::int "
                               "FROM event WHERE id = $1",
                               id) /
                         10,
                     6);
    message = event_text("SELECT message FROM event WHERE id = $1", id);
    assert_string_equal(message, "clone failed");
    free(message);

    assert_int_equal(
        apply_one(project, sha, EL_STATUS_GENERATING_TRIPLES, EL_CAUSE_DISPATCH, NULL).applied, 1);
    assert_int_equal(event_int("SELECT (message IS NULL AND attempts = 1 AND "
                               "execution_date <= now())::int FROM event WHERE id = $1",
                               id),
                     1);
    assert_int_equal(apply(&c).applied, 1);
    assert_int_equal(event_int("SELECT attempts FROM event WHERE id = $1", id), 2);
    assert_int_equal(apply_one(project, sha, EL_STATUS_NEW, EL_CAUSE_RETRY, NULL).applied, 1);
    assert_int_equal(event_int("SELECT attempts FROM event WHERE id = $1", id), 0);
    assert_int_equal(log_rows(id), 4);
}

/* The batch's payload follows its events through transformation and is deleted (by the tick's
 * sweep) once the last of them reached TRIPLES_STORE, not before. */
static void test_el_change__payload_lives_until_the_batch_is_stored(void **state)
{
    long long project = new_project("payload");
    char s[4][41], pid[24];
    const char *shas[4] = {s[0], s[1], s[2], s[3]};
    long long payload;
    size_t swept = 0;
    el_change c;
    (void)state;

    for (int i = 0; i < 4; i++)
        (void)new_event(project, s[i], EL_STATUS_GENERATING_TRIPLES);
    snprintf(pid, sizeof(pid), "%lld", project);
    payload = el_testdb_int(pg,
                            "INSERT INTO payload (project_id, data) VALUES ($1, '\\x1f8b') "
                            "RETURNING id",
                            1, (const char *const[]){pid});
    c = change_of(project, EL_STATUS_TRIPLES_GENERATED, EL_CAUSE_TO_TRIPLES_GENERATED);
    c.shas = shas;
    c.nshas = 4;
    c.payload_id = payload;
    assert_int_equal(apply(&c).applied, 4);
    c = change_of(project, EL_STATUS_TRANSFORMING_TRIPLES, EL_CAUSE_DISPATCH);
    c.shas = shas;
    c.nshas = 4;
    assert_int_equal(apply(&c).applied, 4);
    assert_int_equal(event_int("SELECT count(*) FROM event WHERE payload_id = $1", payload), 4);

    c = change_of(project, EL_STATUS_TRIPLES_STORE, EL_CAUSE_TO_TRIPLES_STORE);
    c.shas = shas;
    c.nshas = 2;
    assert_int_equal(apply(&c).applied, 2);
    assert_int_equal(event_int("SELECT count(*) FROM event WHERE payload_id = $1", payload), 2);
    check(el_schedule_sweep_payloads(&swept, pg), "sweep"); /* two still refer to it */
    assert_int_equal(event_int("SELECT count(*) FROM payload WHERE id = $1", payload), 1);
    c.shas = shas + 2;
    assert_int_equal(apply(&c).applied, 2);
    assert_int_equal(event_int("SELECT count(*) FROM payload WHERE id = $1", payload), 1);
    check(el_schedule_sweep_payloads(&swept, pg), "sweep"); /* the tick's, within a second */
    assert_true(swept >= 1);
    assert_int_equal(event_int("SELECT count(*) FROM payload WHERE id = $1", payload), 0);
}

/* ToTriplesGenerated stores its payload in the change itself (el_change.payload_base64): one row
 * for the events that move, none when nothing moves, and a payload that is not base64 refuses the
 * whole change (a data error: the consumer parks the message). Both statement forms: several
 * events, and one. */
static void test_el_change__a_reply_stores_its_payload_when_events_move(void **state)
{
    static const char gzip_base64[] = "H4sIAAAAAAAAAwMAAAAAAAAAAAA=";
    long long project = new_project("store-payload"), lone;
    char s[4][41], pid[24];
    const char *shas[3] = {s[0], s[1], s[2]}, *one[1] = {s[3]};
    el_change c = change_of(project, EL_STATUS_TRIPLES_GENERATED, EL_CAUSE_TO_TRIPLES_GENERATED);
    el_change_result r;
    (void)state;

    (void)new_event(project, s[0], EL_STATUS_GENERATING_TRIPLES);
    (void)new_event(project, s[1], EL_STATUS_GENERATING_TRIPLES);
    (void)new_event(project, s[2], EL_STATUS_TRIPLES_STORE);
    lone = new_event(project, s[3], EL_STATUS_GENERATING_TRIPLES);
    snprintf(pid, sizeof(pid), "%lld", project);
    c.shas = shas;
    c.nshas = 3;
    c.payload_base64 = gzip_base64;
    r = apply(&c);
    assert_int_equal(r.applied, 2);
    assert_int_equal(el_testdb_int(pg,
                                   "SELECT count(*) FROM payload p WHERE p.project_id = $1 AND"
                                   " substr(p.data, 1, 2) = '\\x1f8b'::bytea AND (SELECT count(*)"
                                   " FROM event e WHERE e.payload_id = p.id) = 2",
                                   1, (const char *const[]){pid}),
                     1);
    r = apply(&c); /* nothing can move now: no second payload */
    assert_int_equal(r.applied, 0);
    assert_int_equal(el_testdb_int(pg, "SELECT count(*) FROM payload WHERE project_id = $1", 1,
                                   (const char *const[]){pid}),
                     1);

    c.shas = one;
    c.nshas = 1;
    c.payload_base64 = "not base64!";
    assert_int_equal(el_change_apply(&r, pg, &c), FG_EINVALID);
    assert_status(lone, "GENERATING_TRIPLES");
    c.payload_base64 = gzip_base64;
    c.payload_id = 1; /* a payload to store, and one to take: which? */
    assert_int_equal(el_change_apply(&r, pg, &c), FG_EINVALID);
    c.payload_id = 0;
    assert_int_equal(apply(&c).applied, 1);
    assert_int_equal(el_testdb_int(pg, "SELECT count(*) FROM payload WHERE project_id = $1", 1,
                                   (const char *const[]){pid}),
                     2);
    assert_status(lone, "TRIPLES_GENERATED");
}

/* CleanUpDone deletes the DELETING events and their bodies, logging to_status NULL; an event of
 * the batch that is not DELETING is a stale reply and stays. */
static void test_el_change__clean_up_done_deletes_events_and_bodies(void **state)
{
    long long project = new_project("cleanup");
    char s[3][41];
    const char *shas[3] = {s[0], s[1], s[2]};
    long long ids[3];
    el_change c = change_of(project, EL_STATUS_DELETED, EL_CAUSE_CLEAN_UP_DONE);
    el_change_result r;
    char *log;
    (void)state;

    ids[0] = new_event(project, s[0], EL_STATUS_DELETING);
    ids[1] = new_event(project, s[1], EL_STATUS_DELETING);
    ids[2] = new_event(project, s[2], EL_STATUS_NEW);
    for (int i = 0; i < 3; i++) {
        char id[24];

        snprintf(id, sizeof(id), "%lld", ids[i]);
        el_testdb_exec(pg, "INSERT INTO event_body (event_id, body) VALUES ($1, '{}')", 1,
                       (const char *const[]){id});
    }
    c.shas = shas;
    c.nshas = 3;
    r = apply(&c);
    assert_int_equal(r.applied, 2);
    assert_int_equal(r.stale, 1);
    assert_status(ids[0], "<gone>");
    assert_status(ids[1], "<gone>");
    assert_status(ids[2], "NEW");
    assert_int_equal(event_int("SELECT count(*) FROM event_body WHERE event_id IN "
                               "(SELECT id FROM event WHERE project_id = $1)",
                               project),
                     1);
    assert_int_equal(el_testdb_int(pg,
                                   "SELECT count(*) FROM event_body b WHERE NOT EXISTS "
                                   "(SELECT 1 FROM event e WHERE e.id = b.event_id)",
                                   0, NULL),
                     0);
    log = last_log(ids[1]);
    assert_string_equal(log, "DELETING>-:CleanUpDone:");
    free(log);
}

/* ---- whole project ---------------------------------------------------------------------- */

/* Re-provisioning a project moves every event whose status the table allows (all but NEW and the
 * deletion statuses) and nothing of another project; only_from narrows a whole-project change. */
static void test_el_change__whole_project_moves_only_legal_sources(void **state)
{
    long long project = new_project("whole"), other = new_project("whole-other");
    long long ids[EL_STATUS_COUNT], other_id;
    char sha[41], *after;
    el_change c = change_of(project, EL_STATUS_NEW, EL_CAUSE_REPROVISION);
    const el_status only[1] = {EL_STATUS_DELETING};
    (void)state;

    for (int f = EL_STATUS_NEW; f < EL_STATUS_DELETED; f++)
        ids[f] = new_event(project, sha, (el_status)f);
    other_id = new_event(other, sha, EL_STATUS_TRIPLES_STORE);
    c.whole_project = true;
    assert_int_equal(apply(&c).applied, 9);
    for (int f = EL_STATUS_NEW; f < EL_STATUS_DELETED; f++) {
        bool stays = f == EL_STATUS_AWAITING_DELETION || f == EL_STATUS_DELETING;

        assert_status(ids[f], stays ? el_status_name((el_status)f) : "NEW");
        assert_int_equal(log_rows(ids[f]), f == EL_STATUS_NEW || stays ? 0 : 1);
    }
    assert_status(other_id, "TRIPLES_STORE");
    after = last_log(ids[EL_STATUS_TRIPLES_STORE]);
    assert_string_equal(after, "TRIPLES_STORE>NEW:REPROVISION:");
    free(after);

    /* only_from excludes the legal source the caller did not ask for */
    c = change_of(project, EL_STATUS_DELETING, EL_CAUSE_DISPATCH);
    c.whole_project = true;
    c.only_from = only;
    c.nonly_from = 1;
    assert_int_equal(apply(&c).applied, 0);
    assert_status(ids[EL_STATUS_AWAITING_DELETION], "AWAITING_DELETION");
    c = change_of(project, EL_STATUS_AWAITING_DELETION, EL_CAUSE_ROLLBACK_TO_AWAITING_DELETION);
    c.whole_project = true;
    assert_int_equal(apply(&c).applied, 1);
    assert_status(ids[EL_STATUS_DELETING], "AWAITING_DELETION");
}

/* ---- malformed -------------------------------------------------------------------------- */

static void test_el_change__malformed_changes_are_refused(void **state)
{
    long long project = new_project("malformed");
    char sha[41], *before, *after;
    const char *bad[2] = {NULL, "ABCDEF0123456789ABCDEF0123456789ABCDEF01"};
    const char **many = calloc(EL_CHANGE_BATCH_MAX + 1, sizeof(*many));
    el_event_id id = {1};
    el_change c = change_of(project, EL_STATUS_GENERATING_TRIPLES, EL_CAUSE_DISPATCH);
    el_change_result r;
    (void)state;

    (void)new_event(project, sha, EL_STATUS_NEW);
    before = whole_state();
    bad[0] = sha;
    assert_int_equal(el_change_apply(&r, pg, &c), FG_EINVALID); /* nothing named */
    c.shas = bad;
    c.nshas = 2; /* upper-case sha */
    assert_int_equal(el_change_apply(&r, pg, &c), FG_EINVALID);
    c.nshas = 1;
    c.ids = &id;
    c.nids = 1; /* two ways at once */
    assert_int_equal(el_change_apply(&r, pg, &c), FG_EINVALID);
    c.nids = 0;
    c.to = EL_STATUS_NONE;
    assert_int_equal(el_change_apply(&r, pg, &c), FG_EINVALID);
    c.to = EL_STATUS_NEW;
    c.project.value = 0;
    assert_int_equal(el_change_apply(&r, pg, &c), FG_EINVALID);
    c.project.value = project;
    for (size_t i = 0; i <= EL_CHANGE_BATCH_MAX; i++)
        many[i] = sha;
    c.shas = many;
    c.nshas = EL_CHANGE_BATCH_MAX + 1;
    assert_int_equal(el_change_apply(&r, pg, &c), FG_EINVALID);
    assert_int_equal(r.applied + r.stale + r.illegal + r.missing, 0);
    after = whole_state();
    assert_string_equal(before, after);
    free(many);
    free(before);
    free(after);
}

/* ---- concurrency ------------------------------------------------------------------------ */

typedef struct {
    fg_pg_conn *pg;
    long long project;
    const char *sha;
    el_change_result result;
    int rc;
} racer;

static void *race_rollback(void *arg)
{
    racer *r = arg;
    el_change c = change_of(r->project, EL_STATUS_NEW, EL_CAUSE_ROLLBACK_TO_NEW);
    const char *shas[1] = {r->sha};

    c.shas = shas;
    c.nshas = 1;
    r->rc = el_change_apply(&r->result, r->pg, &c);
    return NULL;
}

typedef struct {
    long long pid;
} waiting;

static bool is_waiting_for_lock(void *payload)
{
    waiting *w = payload;
    char pid[24];

    snprintf(pid, sizeof(pid), "%lld", w->pid);
    return el_testdb_int(pg,
                         "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 "
                         "AND wait_event_type = 'Lock'",
                         1, (const char *const[]){pid}) == 1;
}

/* A reply and a rollback race on one event: the second waits on the first's row lock, then finds
 * the event moved on and counts a stale change; one transition, one log row. */
static void test_el_change__racing_changes_serialise_on_the_row(void **state)
{
    long long project = new_project("race");
    char sha[41];
    long long id = new_event(project, sha, EL_STATUS_GENERATING_TRIPLES);
    fg_pg_conn *other = NULL;
    racer r = {0};
    waiting w;
    pthread_t thread;
    (void)state;

    check(fg_pg_connect(&other, db.url, 10000), "second connection");
    w.pid = el_testdb_int(other, "SELECT pg_backend_pid()", 0, NULL);
    check(fg_pg_begin(pg), "begin");
    assert_int_equal(
        apply_one(project, sha, EL_STATUS_TRIPLES_GENERATED, EL_CAUSE_TO_TRIPLES_GENERATED, NULL)
            .applied,
        1);
    r.pg = other;
    r.project = project;
    r.sha = sha;
    assert_int_equal(pthread_create(&thread, NULL, race_rollback, &r), 0);
    assert_true(fg_test_wait_until(is_waiting_for_lock, &w, 10000));
    check(fg_pg_commit(pg), "commit");
    assert_int_equal(pthread_join(thread, NULL), 0);
    check(r.rc, "racing rollback");
    assert_int_equal(r.result.applied, 0);
    assert_int_equal(r.result.stale, 1);
    assert_status(id, "TRIPLES_GENERATED");
    assert_int_equal(log_rows(id), 1);
    fg_pg_free(other);
}

/* ---- main ------------------------------------------------------------------------------- */

static int setup(void **state)
{
    (void)state;
    el_testdb_create(&db, &pg);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    fg_pg_free(pg);
    el_testdb_drop(&db);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_el_change__every_legal_transition_is_applied_and_logged),
        cmocka_unit_test(test_el_change__every_refused_request_changes_nothing),
        cmocka_unit_test(test_el_change__batch_counts_applied_stale_illegal_missing),
        cmocka_unit_test(test_el_change__ids_of_another_project_are_missing),
        cmocka_unit_test(test_el_change__failure_sets_delay_attempts_message),
        cmocka_unit_test(test_el_change__payload_lives_until_the_batch_is_stored),
        cmocka_unit_test(test_el_change__a_reply_stores_its_payload_when_events_move),
        cmocka_unit_test(test_el_change__clean_up_done_deletes_events_and_bodies),
        cmocka_unit_test(test_el_change__whole_project_moves_only_legal_sources),
        cmocka_unit_test(test_el_change__malformed_changes_are_refused),
        cmocka_unit_test(test_el_change__racing_changes_serialise_on_the_row),
    };

    fg_test_stack_env("FG_PG_URL");
    return cmocka_run_group_tests(tests, setup, teardown);
}
