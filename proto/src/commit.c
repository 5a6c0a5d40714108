/*
 * The commit body (see fg/proto.h and proto/schemas/commit.schema.json): commit-sync builds it
 * from what libgit2 extracted, event-log stores it as text, triples-generator reads it back as a
 * typed struct. Building validates, so a bad sha or an oversized message is caught at the
 * producer with the field named, not at every consumer.
 */
#include <stdlib.h>
#include <string.h>

#include "internal.h"

/* ---- building ---- */

/* Adds value to obj under key unless an earlier step failed (*rc < 0); value is consumed in
 * every case. A NULL value after a successful step means allocation failed. */
static void put(struct json_object *obj, const char *key, struct json_object *value, int *rc)
{
    if (*rc == 0) {
        if (value != NULL && json_object_object_add(obj, key, value) == 0)
            return;
        *rc = fg_error_set(FG_ENOMEM, "out of memory building a commit body");
    }
    json_object_put(value);
}

/* A missing string stays missing, so validation names the field. */
static void put_string(struct json_object *obj, const char *key, const char *value, int *rc)
{
    if (value != NULL)
        put(obj, key, json_object_new_string(value), rc);
}

static void push_item(struct json_object *array, struct json_object *value, int *rc)
{
    if (*rc == 0) {
        if (value != NULL && json_object_array_add(array, value) == 0)
            return;
        *rc = fg_error_set(FG_ENOMEM, "out of memory building a commit body");
    }
    json_object_put(value);
}

static struct json_object *new_person(const fg_proto_person *p, int *rc)
{
    struct json_object *obj = json_object_new_object();

    if (obj == NULL)
        return NULL;
    put_string(obj, "name", p->name, rc);
    put_string(obj, "email", p->email, rc);
    put_string(obj, "at", p->at, rc);
    return obj;
}

static struct json_object *new_trailers(const fg_proto_commit *c, int *rc)
{
    struct json_object *array = json_object_new_array();

    for (size_t i = 0; array != NULL && i < c->trailer_count && *rc == 0; i++) {
        struct json_object *t = json_object_new_object();
        if (t != NULL) {
            put_string(t, "key", c->trailers[i].key, rc);
            put_string(t, "value", c->trailers[i].value, rc);
        }
        push_item(array, t, rc);
    }
    return array;
}

static struct json_object *new_files(const fg_proto_commit *c, int *rc)
{
    struct json_object *array = json_object_new_array();

    for (size_t i = 0; array != NULL && i < c->file_count && *rc == 0; i++) {
        const fg_proto_file *f = &c->files[i];
        struct json_object *obj = json_object_new_object();
        if (obj != NULL) {
            put_string(obj, "path", f->path, rc);
            put(obj, "insertions", json_object_new_int64(f->insertions), rc);
            put(obj, "deletions", json_object_new_int64(f->deletions), rc);
            if (f->binary)
                put(obj, "binary", json_object_new_boolean(true), rc);
        }
        push_item(array, obj, rc);
    }
    return array;
}

static struct json_object *new_stats(const fg_proto_commit *c, int *rc)
{
    struct json_object *obj = json_object_new_object();

    if (obj != NULL) {
        put(obj, "insertions", json_object_new_int64(c->insertions), rc);
        put(obj, "deletions", json_object_new_int64(c->deletions), rc);
        put(obj, "files", json_object_new_int64(c->files_changed), rc);
    }
    return obj;
}

int fg_proto_commit_build(struct json_object **out, const fg_proto_commit *commit)
{
    struct json_object *obj = NULL, *parents = NULL;
    int rc = 0;

    *out = NULL;
    if ((obj = json_object_new_object()) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory building a commit body");
    put_string(obj, "sha", commit->sha, &rc);
    if ((parents = json_object_new_array()) != NULL) {
        for (size_t i = 0; i < commit->parent_count && rc == 0; i++) {
            const char *p = commit->parents[i];
            push_item(parents, p ? json_object_new_string(p) : json_object_new_null(), &rc);
        }
    }
    put(obj, "parents", parents, &rc);
    put(obj, "isMerge", json_object_new_boolean(commit->is_merge), &rc);
    put(obj, "author", new_person(&commit->author, &rc), &rc);
    put(obj, "committer", new_person(&commit->committer, &rc), &rc);
    put_string(obj, "message", commit->message, &rc);
    put(obj, "trailers", new_trailers(commit, &rc), &rc);
    put(obj, "stats", new_stats(commit, &rc), &rc);
    put(obj, "files", new_files(commit, &rc), &rc);
    put(obj, "filesTruncated", json_object_new_boolean(commit->files_truncated), &rc);
    if (rc < 0 || (rc = fg_proto__validate_commit(obj, "")) < 0)
        goto done;
    *out = obj;
    obj = NULL;
    rc = 0;
done:
    json_object_put(obj);
    return rc;
}

/* ---- reading ---- */

static struct json_object *member(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;

    json_object_object_get_ex(obj, key, &v);
    return v;
}

static const char *text(struct json_object *obj, const char *key)
{
    return json_object_get_string(member(obj, key));
}

/* Validated integers may arrive as integral doubles (1.0 is an integer in JSON Schema). */
static long long number(struct json_object *obj, const char *key)
{
    struct json_object *v = member(obj, key);

    if (json_object_is_type(v, json_type_double))
        return (long long)json_object_get_double(v);
    return json_object_get_int64(v);
}

static void read_person(fg_proto_person *out, struct json_object *person)
{
    out->name = text(person, "name");
    out->email = text(person, "email");
    out->at = text(person, "at");
}

/* calloc that never asks for 0 bytes, so an empty array still reads as allocated */
static void *array_of(size_t n, size_t size)
{
    return calloc(n > 0 ? n : 1, size);
}

int fg_proto_commit_read(fg_proto_commit *out, struct json_object *body)
{
    struct json_object *parents, *trailers, *files, *stats;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = fg_proto__validate_commit(body, "")) < 0)
        return rc;
    parents = member(body, "parents");
    trailers = member(body, "trailers");
    files = member(body, "files");
    stats = member(body, "stats");
    out->parent_count = json_object_array_length(parents);
    out->trailer_count = json_object_array_length(trailers);
    out->file_count = json_object_array_length(files);
    out->parents = array_of(out->parent_count, sizeof(*out->parents));
    out->trailers = array_of(out->trailer_count, sizeof(*out->trailers));
    out->files = array_of(out->file_count, sizeof(*out->files));
    if (out->parents == NULL || out->trailers == NULL || out->files == NULL) {
        fg_proto_commit_dispose(out);
        return fg_error_set(FG_ENOMEM, "out of memory reading a commit body");
    }
    out->sha = text(body, "sha");
    for (size_t i = 0; i < out->parent_count; i++)
        out->parents[i] = json_object_get_string(json_object_array_get_idx(parents, i));
    out->is_merge = json_object_get_boolean(member(body, "isMerge"));
    read_person(&out->author, member(body, "author"));
    read_person(&out->committer, member(body, "committer"));
    out->message = text(body, "message");
    for (size_t i = 0; i < out->trailer_count; i++) {
        struct json_object *t = json_object_array_get_idx(trailers, i);
        out->trailers[i].key = text(t, "key");
        out->trailers[i].value = text(t, "value");
    }
    out->insertions = number(stats, "insertions");
    out->deletions = number(stats, "deletions");
    out->files_changed = number(stats, "files");
    for (size_t i = 0; i < out->file_count; i++) {
        struct json_object *f = json_object_array_get_idx(files, i);
        out->files[i].path = text(f, "path");
        out->files[i].insertions = number(f, "insertions");
        out->files[i].deletions = number(f, "deletions");
        out->files[i].binary = json_object_get_boolean(member(f, "binary"));
    }
    out->files_truncated = json_object_get_boolean(member(body, "filesTruncated"));
    return 0;
}

void fg_proto_commit_dispose(fg_proto_commit *commit)
{
    if (commit == NULL)
        return;
    free(commit->parents);
    free(commit->trailers);
    free(commit->files);
    memset(commit, 0, sizeof(*commit));
}

int fg_proto_commit_parse(struct json_object **out, const char *data, size_t len)
{
    struct json_object *body = NULL;
    int rc;

    *out = NULL;
    if ((rc = fg_proto__json_parse(&body, data, len)) < 0)
        return rc;
    if ((rc = fg_proto__validate_commit(body, "")) < 0) {
        json_object_put(body);
        return rc;
    }
    *out = body;
    return 0;
}
