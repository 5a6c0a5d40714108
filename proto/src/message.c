/*
 * Messages (see fg/proto.h): parse = strict JSON reader + json-c + the rules of validate.c;
 * build = a json-c object with the envelope filled in, then setters, then serialise, which
 * validates and refuses to emit anything a consumer would park.
 */
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "fg/crypto.h"

#include "internal.h"

/* ---- names ---- */

const char *fg_proto_category_name(fg_proto_category category)
{
    if ((int)category < 0 || category >= FG_PROTO_CATEGORY_COUNT)
        return NULL;
    return fg_proto__category_names[category];
}

int fg_proto_category_parse(fg_proto_category *out, const char *name)
{
    for (int i = 0; name != NULL && i < FG_PROTO_CATEGORY_COUNT; i++) {
        if (strcmp(fg_proto__category_names[i], name) == 0) {
            *out = (fg_proto_category)i;
            return 0;
        }
    }
    return fg_error_set(FG_EINVALID, "not a message category");
}

const char *fg_proto_sub_category_name(fg_proto_sub_category sub)
{
    if (sub <= FG_PROTO_SUB_NONE || sub >= FG_PROTO_SUB_COUNT)
        return NULL;
    return fg_proto__sub_category_names[sub];
}

const char *fg_proto_forge_name(fg_proto_forge forge)
{
    if ((int)forge < 0 || forge > FG_PROTO_FORGE_GIT)
        return NULL;
    return fg_proto__forge_names[forge];
}

int fg_proto_forge_parse(fg_proto_forge *out, const char *name)
{
    for (int i = 0; name != NULL && fg_proto__forge_names[i] != NULL; i++) {
        if (strcmp(fg_proto__forge_names[i], name) == 0) {
            *out = (fg_proto_forge)i;
            return 0;
        }
    }
    return fg_error_set(FG_EINVALID, "not a forge (github, gitlab, git)");
}

/* ---- lifecycle ---- */

void fg_proto_msg_init(fg_proto_msg *msg)
{
    memset(msg, 0, sizeof(*msg));
}

void fg_proto_msg_dispose(fg_proto_msg *msg)
{
    if (msg == NULL)
        return;
    json_object_put(msg->root);
    fg_proto_msg_init(msg);
}

int fg_proto_msg_parse(fg_proto_msg *msg, const char *data, size_t len)
{
    int rc;

    fg_proto_msg_dispose(msg);
    if ((rc = fg_proto__json_parse(&msg->root, data, len)) < 0)
        return rc;
    if ((rc = fg_proto__validate_message(msg)) < 0)
        fg_proto_msg_dispose(msg);
    return rc;
}

/* ---- building ---- */

static int new_uuid(char out[FG_PROTO_UUID_LEN + 1])
{
    unsigned char b[16];
    int rc;

    if ((rc = fg_crypto_random(b, sizeof(b))) < 0)
        return rc;
    b[6] = (unsigned char)((b[6] & 0x0F) | 0x40); /* version 4 */
    b[8] = (unsigned char)((b[8] & 0x3F) | 0x80); /* RFC 4122 variant */
    snprintf(out, FG_PROTO_UUID_LEN + 1,
             "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
             b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
             b[15]);
    return 0;
}

static int utc_now(char *out, size_t size)
{
    struct timespec ts;
    struct tm tm;

    if (clock_gettime(CLOCK_REALTIME, &ts) != 0 || gmtime_r(&ts.tv_sec, &tm) == NULL)
        return fg_error_set(FG_ERROR, "cannot read the clock");
    snprintf(out, size, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, ts.tv_nsec / 1000000);
    return 0;
}

static int add(struct json_object *obj, const char *field, struct json_object *value)
{
    if (value == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory building a message");
    if (json_object_object_add(obj, field, value) != 0) {
        json_object_put(value);
        return fg_error_set(FG_ENOMEM, "out of memory building a message");
    }
    return 0;
}

static int new_project(struct json_object **out, const fg_proto_project *project)
{
    struct json_object *obj = NULL;
    int rc = FG_ERROR;

    if (fg_proto_forge_name(project->forge) == NULL || project->path == NULL)
        return fg_error_set(FG_EINVALID, "project: no forge or no path");
    if ((obj = json_object_new_object()) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory building a message");
    if ((rc = add(obj, "id", json_object_new_int64(project->id))) < 0 ||
        (rc = add(obj, "forge", json_object_new_string(fg_proto_forge_name(project->forge)))) < 0 ||
        (rc = add(obj, "path", json_object_new_string(project->path))) < 0)
        goto done;
    *out = obj;
    obj = NULL;
    rc = 0;
done:
    json_object_put(obj);
    return rc;
}

int fg_proto_msg_start(fg_proto_msg *msg, fg_proto_category category,
                       const fg_proto_project *project)
{
    char id[FG_PROTO_UUID_LEN + 1], now[64];
    struct json_object *proj = NULL;
    int rc = FG_ERROR;

    fg_proto_msg_dispose(msg);
    if (fg_proto_category_name(category) == NULL)
        return fg_error_set(FG_EINVALID, "category: not a category");
    if ((rc = new_uuid(id)) < 0 || (rc = utc_now(now, sizeof(now))) < 0)
        goto done;
    if (project != NULL && (rc = new_project(&proj, project)) < 0)
        goto done;
    if ((msg->root = json_object_new_object()) == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory building a message");
        goto done;
    }
    if ((rc = add(msg->root, "id", json_object_new_string(id))) < 0 ||
        (rc = add(msg->root, "category",
                  json_object_new_string(fg_proto_category_name(category)))) < 0 ||
        (rc = add(msg->root, "occurredAt", json_object_new_string(now))) < 0)
        goto done;
    if (proj != NULL) {
        rc = add(msg->root, "project", proj); /* add() releases proj on failure */
        proj = NULL;
        if (rc < 0)
            goto done;
    }
    msg->category = category;
    rc = 0;
done:
    json_object_put(proj);
    if (rc < 0)
        fg_proto_msg_dispose(msg);
    return rc;
}

int fg_proto_msg_set(fg_proto_msg *msg, const char *field, struct json_object *value)
{
    if (msg->root == NULL) {
        json_object_put(value);
        return fg_error_set(FG_EINVALID, "%s: the message was not started", field);
    }
    return add(msg->root, field, value);
}

int fg_proto_msg_set_string(fg_proto_msg *msg, const char *field, const char *value)
{
    if (value == NULL)
        return fg_error_set(FG_EINVALID, "%s: no value", field);
    return fg_proto_msg_set(msg, field, json_object_new_string(value));
}

int fg_proto_msg_set_int(fg_proto_msg *msg, const char *field, long long value)
{
    return fg_proto_msg_set(msg, field, json_object_new_int64(value));
}

int fg_proto_msg_set_bool(fg_proto_msg *msg, const char *field, bool value)
{
    return fg_proto_msg_set(msg, field, json_object_new_boolean(value));
}

int fg_proto_msg_set_sub_category(fg_proto_msg *msg, fg_proto_sub_category sub)
{
    if (fg_proto_sub_category_name(sub) == NULL)
        return fg_error_set(FG_EINVALID, "subCategory: not a sub-category");
    return fg_proto_msg_set_string(msg, "subCategory", fg_proto_sub_category_name(sub));
}

int fg_proto_msg_append(fg_proto_msg *msg, const char *field, struct json_object *value)
{
    struct json_object *array = NULL;
    int rc;

    if (value == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory building a message");
    if (msg->root == NULL) {
        json_object_put(value);
        return fg_error_set(FG_EINVALID, "%s: the message was not started", field);
    }
    if (!json_object_object_get_ex(msg->root, field, &array)) {
        if ((rc = add(msg->root, field, json_object_new_array())) < 0) {
            json_object_put(value);
            return rc;
        }
        json_object_object_get_ex(msg->root, field, &array);
    }
    if (!json_object_is_type(array, json_type_array)) {
        json_object_put(value);
        return fg_error_set(FG_EINVALID, "%s: not an array", field);
    }
    if (json_object_array_add(array, value) != 0) {
        json_object_put(value);
        return fg_error_set(FG_ENOMEM, "out of memory building a message");
    }
    return 0;
}

int fg_proto_msg_add_event(fg_proto_msg *msg, const char *sha)
{
    struct json_object *event = json_object_new_object();
    int rc;

    if (event == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory building a message");
    if (sha == NULL) {
        json_object_put(event);
        return fg_error_set(FG_EINVALID, "events: no sha");
    }
    if ((rc = add(event, "sha", json_object_new_string(sha))) < 0) {
        json_object_put(event);
        return rc;
    }
    return fg_proto_msg_append(msg, "events", event);
}

int fg_proto_msg_validate(fg_proto_msg *msg)
{
    if (msg->root == NULL)
        return fg_error_set(FG_EINVALID, "message: empty");
    return fg_proto__validate_message(msg);
}

int fg_proto_msg_serialise(fg_buf *out, fg_proto_msg *msg)
{
    const char *text;
    size_t len = 0;
    int rc;

    if ((rc = fg_proto_msg_validate(msg)) < 0)
        return rc;
    text = json_object_to_json_string_length(
        msg->root, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);
    if (text == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory serialising a message");
    if (len > FG_PROTO_MESSAGE_MAX)
        return fg_error_set(FG_ETOOBIG, "%s message of %zu bytes exceeds %d: split the batch",
                            fg_proto_category_name(msg->category), len, FG_PROTO_MESSAGE_MAX);
    /* The rules do not look inside opaque members (a forge's payload); the reader does, so what
     * we send is what every consumer accepts. */
    if ((rc = fg_proto__json_check(text, len)) < 0)
        return rc;
    return fg_buf_put(out, text, len);
}

/* ---- getters ---- */

struct json_object *fg_proto_msg_get(const fg_proto_msg *msg, const char *field)
{
    struct json_object *v = NULL;

    if (msg->root == NULL || !json_object_object_get_ex(msg->root, field, &v))
        return NULL;
    return v;
}

const char *fg_proto_msg_get_string(const fg_proto_msg *msg, const char *field)
{
    struct json_object *v = fg_proto_msg_get(msg, field);

    return json_object_is_type(v, json_type_string) ? json_object_get_string(v) : NULL;
}

long long fg_proto_msg_get_int(const fg_proto_msg *msg, const char *field, long long fallback)
{
    struct json_object *v = fg_proto_msg_get(msg, field);

    if (json_object_is_type(v, json_type_int))
        return json_object_get_int64(v);
    if (json_object_is_type(v, json_type_double)) /* validated: integral and in range */
        return (long long)json_object_get_double(v);
    return fallback;
}

bool fg_proto_msg_get_bool(const fg_proto_msg *msg, const char *field)
{
    struct json_object *v = fg_proto_msg_get(msg, field);

    return json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v);
}

size_t fg_proto_msg_count(const fg_proto_msg *msg, const char *field)
{
    struct json_object *v = fg_proto_msg_get(msg, field);

    return json_object_is_type(v, json_type_array) ? json_object_array_length(v) : 0;
}

static struct json_object *member_at(const fg_proto_msg *msg, const char *array, size_t i,
                                     const char *member)
{
    struct json_object *v = fg_proto_msg_get(msg, array), *item, *m = NULL;

    if (!json_object_is_type(v, json_type_array) || i >= json_object_array_length(v))
        return NULL;
    item = json_object_array_get_idx(v, i);
    if (member == NULL)
        return item;
    return json_object_object_get_ex(item, member, &m) ? m : NULL;
}

const char *fg_proto_msg_event_sha(const fg_proto_msg *msg, size_t i)
{
    struct json_object *sha = member_at(msg, "events", i, "sha");

    return json_object_is_type(sha, json_type_string) ? json_object_get_string(sha) : NULL;
}

struct json_object *fg_proto_msg_commit_body(const fg_proto_msg *msg, size_t i)
{
    if (msg->category == FG_PROTO_CREATION)
        return member_at(msg, "commits", i, NULL);
    if (msg->category == FG_PROTO_AWAITING_GENERATION)
        return member_at(msg, "events", i, "body");
    return NULL;
}
