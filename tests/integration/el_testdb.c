/*
 * Scratch databases for event-log's tests (see el_testdb.h).
 */
#include "el_testdb.h"

#include "test_support.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#define EL_TESTDB_TIMEOUT_MS 10000
#define EL_TESTDB_MIGRATIONS FG_SOURCE_DIR "/services/event-log/migrations"

static int counter;

static void check(int rc, const char *what)
{
    if (rc < 0)
        fail_msg("%s: %d %s", what, rc, fg_error_last());
}

void el_testdb_create(el_testdb *db, fg_pg_conn **out_pg)
{
    const char *admin_url = fg_test_stack_env("FG_PG_URL");
    const char *auth = strstr(admin_url, "://");
    const char *path = auth ? strchr(auth + 3, '/') : NULL;
    const char *query = strchr(admin_url, '?');
    size_t base = path ? (size_t)(path - admin_url) : strcspn(admin_url, "?");
    char sql[160];

    memset(db, 0, sizeof(*db));
    snprintf(db->name, sizeof(db->name), "fg_el_test_%ld_%d", (long)getpid(), ++counter);
    snprintf(db->url, sizeof(db->url), "%.*s/%s%s", (int)base, admin_url, db->name,
             query ? query : "");
    check(fg_pg_connect(&db->admin, admin_url, EL_TESTDB_TIMEOUT_MS), "connect FG_PG_URL");
    /* an identifier cannot be a parameter; the name is ours, [a-z0-9_] */
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    check(fg_pg_exec(NULL, db->admin, sql, 0, NULL), sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db->name);
    check(fg_pg_exec(NULL, db->admin, sql, 0, NULL), sql);
    check(fg_pg_connect(out_pg, db->url, EL_TESTDB_TIMEOUT_MS), "connect scratch");
    check(fg_pg_migrate(NULL, *out_pg, EL_TESTDB_MIGRATIONS), "migrate");
}

void el_testdb_drop(el_testdb *db)
{
    char sql[160];

    if (db->admin == NULL)
        return;
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    check(fg_pg_exec(NULL, db->admin, sql, 0, NULL), sql);
    fg_pg_free(db->admin);
    db->admin = NULL;
}

void el_testdb_exec(fg_pg_conn *pg, const char *sql, size_t n, const char *const *params)
{
    check(fg_pg_exec(NULL, pg, sql, n, params), sql);
}

char *el_testdb_text(fg_pg_conn *pg, const char *sql, size_t n, const char *const *params)
{
    fg_pg_result *res = NULL;
    const char *text;
    char *copy;

    check(fg_pg_exec(&res, pg, sql, n, params), sql);
    if (fg_pg_result_rows(res) < 1)
        fail_msg("no row from %s", sql);
    text = fg_pg_result_text(res, 0, 0);
    copy = strdup(text ? text : "<NULL>");
    fg_pg_result_free(res);
    return copy;
}

long long el_testdb_int(fg_pg_conn *pg, const char *sql, size_t n, const char *const *params)
{
    char *text = el_testdb_text(pg, sql, n, params);
    int64_t v = 0;

    check(fg_pg_parse_int64(&v, text), sql);
    free(text);
    return (long long)v;
}

long long el_testdb_project(fg_pg_conn *pg, const char *path)
{
    char url[256];
    const char *params[2] = {path, url};

    snprintf(url, sizeof(url), "file:///test/%s/%ld/%d", path, (long)getpid(), ++counter);
    return el_testdb_int(pg,
                         "INSERT INTO project (forge, path, url) VALUES ('git', $1, $2) "
                         "RETURNING id",
                         2, params);
}

void el_testdb_sha(char out[41], long long seed, long long i)
{
    snprintf(out, 41, "%020llx%020llx", (unsigned long long)seed, (unsigned long long)i);
}

long long el_testdb_event(fg_pg_conn *pg, long long project, const char *sha, el_status status)
{
    char id[24];
    const char *params[3] = {id, sha, el_status_name(status)};

    snprintf(id, sizeof(id), "%lld", project);
    return el_testdb_int(pg,
                         "WITH ins AS (INSERT INTO event (project_id, status) "
                         "VALUES ($1, $3::event_status) RETURNING id, project_id) "
                         "INSERT INTO event_commit (event_id, project_id, sha, event_date) "
                         "SELECT id, project_id, $2, now() FROM ins RETURNING event_id",
                         3, params);
}

/* ---- messages ----------------------------------------------------------------------------- */

static void check_msg(int rc, const char *what)
{
    if (rc < 0)
        fail_msg("%s: %d %s", what, rc, fg_error_last());
}

static void finish(fg_buf *out, char *out_id, fg_proto_msg *msg)
{
    fg_buf_clear(out);
    check_msg(fg_proto_msg_serialise(out, msg), "serialise");
    if (out_id != NULL)
        snprintf(out_id, FG_PROTO_UUID_LEN + 1, "%s", msg->id);
    fg_proto_msg_dispose(msg);
}

static void start(fg_proto_msg *msg, fg_proto_category category, long long project)
{
    fg_proto_project p = {project, FG_PROTO_FORGE_GIT, "el/test"};

    fg_proto_msg_init(msg);
    check_msg(fg_proto_msg_start(msg, category, project > 0 ? &p : NULL), "start");
}

static void add_events(fg_proto_msg *msg, const char *const *shas, size_t n)
{
    for (size_t i = 0; i < n; i++)
        check_msg(fg_proto_msg_add_event(msg, shas[i]), "add event");
}

void el_testdb_creation(fg_buf *out, char *out_id, long long project, const char *const *shas,
                        size_t n, bool sync_complete)
{
    fg_proto_msg msg;

    start(&msg, FG_PROTO_CREATION, project);
    check_msg(fg_proto_msg_set(&msg, "commits", json_object_new_array()), "commits");
    for (size_t i = 0; i < n; i++) {
        fg_proto_commit c;
        struct json_object *body = NULL;
        char at[40];

        memset(&c, 0, sizeof(c));
        snprintf(at, sizeof(at), "2024-01-01T00:%02zu:%02zu+01:00", (i / 60) % 60, i % 60);
        c.sha = shas[i];
        c.author.name = "Ada \"Quote\" Lovelace";
        c.author.email = "ada@example.org";
        c.author.at = at;
        c.committer = c.author;
        c.message = "subject\n\nbody with a backslash \\ and a tab\t";
        check_msg(fg_proto_commit_build(&body, &c), "commit body");
        check_msg(fg_proto_msg_append(&msg, "commits", body), "append commit");
    }
    if (sync_complete)
        check_msg(fg_proto_msg_set_bool(&msg, "syncComplete", true), "syncComplete");
    finish(out, out_id, &msg);
}

void el_testdb_status_change(fg_buf *out, char *out_id, long long project,
                             fg_proto_sub_category sub, const char *const *shas, size_t n,
                             const char *failure, long long delay_ms)
{
    fg_proto_msg msg;

    start(&msg, FG_PROTO_EVENTS_STATUS_CHANGE, sub == FG_PROTO_SUB_ALL_EVENTS_TO_NEW ? 0 : project);
    check_msg(fg_proto_msg_set_sub_category(&msg, sub), "sub-category");
    add_events(&msg, shas, n);
    if (sub == FG_PROTO_SUB_TO_TRIPLES_GENERATED)
        check_msg(fg_proto_msg_set_string(&msg, "payload", "H4sIAAAAAAAAAwMAAAAAAAAAAAA="),
                  "payload");
    if (sub == FG_PROTO_SUB_TO_TRIPLES_GENERATED || sub == FG_PROTO_SUB_TO_TRIPLES_STORE)
        check_msg(fg_proto_msg_set_int(&msg, "processingTime", 12), "processingTime");
    if (sub == FG_PROTO_SUB_TO_FAILURE) {
        check_msg(fg_proto_msg_set_string(&msg, "newStatus", failure), "newStatus");
        check_msg(fg_proto_msg_set_string(&msg, "message", "failed"), "message");
        if (delay_ms >= 0)
            check_msg(fg_proto_msg_set_int(&msg, "executionDelay", delay_ms), "delay");
    }
    finish(out, out_id, &msg);
}

void el_testdb_request(fg_buf *out, char *out_id, fg_proto_category category, long long project,
                       const char *const *shas, size_t n)
{
    fg_proto_msg msg;

    start(&msg, category, project);
    add_events(&msg, shas, n);
    finish(out, out_id, &msg);
}
