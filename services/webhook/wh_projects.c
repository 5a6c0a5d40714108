/*
 * wh_projects (see wh_projects.h): an open-addressing map keyed by (forge, forge id) in front of
 * the `project` table. Entries are only ever added or replaced one at a time and the map is
 * cleared as a whole when full, so no tombstones are needed except for unregister, which clears
 * the map too (removals are rare; a cleared map refills from the table on the next misses).
 */
#include "wh_projects.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAP_INITIAL 64

typedef struct {
    bool used;
    fg_proto_forge forge;
    long long forge_id;
    long long id;
    char *path;
    long long loaded_ms; /* monotonic: an entry older than WH_PROJECTS_CACHE_TTL_MS is re-read */
} entry;

struct wh_projects {
    entry *slots;
    size_t cap; /* a power of two */
    size_t count;
};

static const char sql_find[] = "SELECT id, path FROM project WHERE forge = $1 AND forge_id = $2";

static const char sql_register[] =
    "INSERT INTO project (id, forge, forge_id, path) VALUES ($1::bigint, $2, $3::bigint, $4)"
    " ON CONFLICT (forge, forge_id) WHERE forge_id IS NOT NULL"
    " DO UPDATE SET id = EXCLUDED.id, path = EXCLUDED.path";

static const char sql_unregister[] = "DELETE FROM project WHERE forge = $1 AND forge_id = $2";

int wh_projects_new(wh_projects **out)
{
    wh_projects *p = calloc(1, sizeof(*p));

    *out = NULL;
    if (p == NULL || (p->slots = calloc(MAP_INITIAL, sizeof(entry))) == NULL) {
        free(p);
        return fg_error_set(FG_ENOMEM, "out of memory for the project map");
    }
    p->cap = MAP_INITIAL;
    *out = p;
    return 0;
}

static void map_clear(wh_projects *p)
{
    for (size_t i = 0; i < p->cap; i++) {
        free(p->slots[i].path);
        p->slots[i] = (entry){0};
    }
    p->count = 0;
}

void wh_projects_free(wh_projects *p)
{
    if (p == NULL)
        return;
    map_clear(p);
    free(p->slots);
    free(p);
}

void wh_projects_clear(wh_projects *p)
{
    map_clear(p);
}

bool wh_projects_path_valid(const char *path)
{
    size_t len = strlen(path), segment = 0, segments = 1;

    if (len == 0 || len > FG_PROTO_PROJECT_PATH_MAX)
        return false;
    for (const char *c = path; *c != '\0'; c++) {
        if (*c == '/') {
            if (segment == 0)
                return false;
            segments++;
            segment = 0;
            continue;
        }
        if (!((*c >= 'A' && *c <= 'Z') || (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') ||
              *c == '_' || *c == '.' || *c == '-'))
            return false;
        segment++;
    }
    return segment > 0 && segments >= 2;
}

static int parse_forge_id(long long *out, const char *text)
{
    char *end = NULL;
    long long v;

    errno = 0;
    v = strtoll(text, &end, 10);
    if (text[0] < '0' || text[0] > '9' || end == text || *end != '\0' || errno != 0 || v < 0)
        return fg_error_set(FG_EINVALID, "forge id is not a non-negative decimal integer");
    *out = v;
    return 0;
}

static long long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static size_t slot_of(const wh_projects *p, fg_proto_forge forge, long long forge_id)
{
    uint64_t h = (uint64_t)forge_id * 0x9E3779B97F4A7C15ull ^ (uint64_t)forge;

    h ^= h >> 29;
    return (size_t)h & (p->cap - 1);
}

static entry *map_find(wh_projects *p, fg_proto_forge forge, long long forge_id)
{
    for (size_t i = slot_of(p, forge, forge_id);; i = (i + 1) & (p->cap - 1)) {
        entry *e = &p->slots[i];
        if (!e->used)
            return NULL;
        if (e->forge == forge && e->forge_id == forge_id)
            return e;
    }
}

static int map_grow(wh_projects *p)
{
    entry *old = p->slots;
    size_t old_cap = p->cap;
    entry *slots = calloc(old_cap * 2, sizeof(entry));

    if (slots == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory growing the project map");
    p->slots = slots;
    p->cap = old_cap * 2;
    for (size_t i = 0; i < old_cap; i++) {
        size_t j;
        if (!old[i].used)
            continue;
        for (j = slot_of(p, old[i].forge, old[i].forge_id); p->slots[j].used;
             j = (j + 1) & (p->cap - 1))
            ;
        p->slots[j] = old[i];
    }
    free(old);
    return 0;
}

/* Remembers an entry (a failure only costs a later table read, so it is not reported). */
static void map_put(wh_projects *p, fg_proto_forge forge, long long forge_id, long long id,
                    const char *path)
{
    entry *e = map_find(p, forge, forge_id);
    char *copy = strdup(path);
    size_t i;

    if (copy == NULL)
        return;
    if (e != NULL) {
        free(e->path);
        e->id = id;
        e->path = copy;
        e->loaded_ms = now_ms();
        return;
    }
    if (p->count >= WH_PROJECTS_CACHE_MAX)
        map_clear(p);
    if ((p->count + 1) * 2 > p->cap && map_grow(p) < 0) {
        free(copy);
        return;
    }
    for (i = slot_of(p, forge, forge_id); p->slots[i].used; i = (i + 1) & (p->cap - 1))
        ;
    p->slots[i] = (entry){true, forge, forge_id, id, copy, now_ms()};
    p->count++;
}

int wh_projects_find(wh_project *out, wh_projects *p, fg_pg_conn *db, fg_proto_forge forge,
                     const char *forge_id)
{
    const char *params[2] = {fg_proto_forge_name(forge), forge_id};
    fg_pg_result *res = NULL;
    long long key = 0;
    int64_t id;
    entry *e;
    int rc;

    if ((rc = parse_forge_id(&key, forge_id)) < 0)
        return rc;
    /* another instance may have removed the project: an old entry is read again */
    if ((e = map_find(p, forge, key)) != NULL &&
        now_ms() - e->loaded_ms < WH_PROJECTS_CACHE_TTL_MS) {
        out->id = e->id;
        snprintf(out->path, sizeof(out->path), "%s", e->path);
        return 0;
    }
    if ((rc = fg_pg_exec_prepared(&res, db, "wh_project_find", sql_find, 2, params)) < 0)
        goto done;
    if (fg_pg_result_rows(res) == 0) {
        rc = fg_error_set(FG_ENOTFOUND, "%s project %s is not registered",
                          fg_proto_forge_name(forge), forge_id);
        goto done;
    }
    if ((rc = fg_pg_result_int64(&id, res, 0, 0)) < 0)
        goto done;
    out->id = (long long)id;
    snprintf(out->path, sizeof(out->path), "%s", fg_pg_result_text(res, 0, 1));
    map_put(p, forge, key, out->id, out->path);
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}

int wh_projects_register(wh_projects *p, fg_pg_conn *db, fg_proto_forge forge, const char *forge_id,
                         long long id, const char *path)
{
    char id_text[24];
    const char *params[4] = {id_text, fg_proto_forge_name(forge), forge_id, path};
    long long key = 0;
    int rc;

    if ((rc = parse_forge_id(&key, forge_id)) < 0)
        return rc;
    if (id < 1 || id > FG_PROTO_INT_MAX)
        return fg_error_set(FG_EINVALID, "project id must be 1..%lld", (long long)FG_PROTO_INT_MAX);
    if (!wh_projects_path_valid(path))
        return fg_error_set(FG_EINVALID, "path must be ns/name (segments of [A-Za-z0-9_.-])");
    snprintf(id_text, sizeof(id_text), "%lld", id);
    if ((rc = fg_pg_exec(NULL, db, sql_register, 4, params)) < 0) {
        if (rc == FG_ECONFLICT)
            return fg_error_set(FG_ECONFLICT, "project %lld is registered for another repository",
                                id);
        return rc;
    }
    /* the project id may have moved away from another (forge, forge id): start over */
    map_clear(p);
    map_put(p, forge, key, id, path);
    return 0;
}

int wh_projects_unregister(wh_projects *p, fg_pg_conn *db, fg_proto_forge forge,
                           const char *forge_id)
{
    const char *params[2] = {fg_proto_forge_name(forge), forge_id};
    fg_pg_result *res = NULL;
    long long key = 0;
    int rc;

    if ((rc = parse_forge_id(&key, forge_id)) < 0)
        return rc;
    if ((rc = fg_pg_exec(&res, db, sql_unregister, 2, params)) < 0)
        goto done;
    map_clear(p);
    if (fg_pg_result_affected(res) == 0) {
        rc = fg_error_set(FG_ENOTFOUND, "%s project %s is not registered",
                          fg_proto_forge_name(forge), forge_id);
        goto done;
    }
    rc = 0;
done:
    fg_pg_result_free(res);
    return rc;
}
