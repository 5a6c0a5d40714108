/*
 * The rules of proto/schemas/ as data: one table of member rules per object, one shape per
 * category and per EVENTS_STATUS_CHANGE sub-category, and a walker that reports the first
 * violation with the path of the field ("events[3].sha: not a 40-hex sha"). A schema change
 * goes with a change here; tests/unit/proto_test.c and proto_schemas_test.py run both over the
 * same fixtures. The few rules that tie two fields together (if/then, oneOf in the schemas) are
 * the `extra` functions of the shapes.
 */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"

const char *const fg_proto__category_names[FG_PROTO_CATEGORY_COUNT + 1] = {
    "COMMIT_SYNC_REQUEST",
    "COMMIT_SYNC",
    "GLOBAL_COMMIT_SYNC_REQUEST",
    "GLOBAL_COMMIT_SYNC",
    "CREATION",
    "EVENTS_STATUS_CHANGE",
    "AWAITING_GENERATION",
    "TRIPLES_GENERATED",
    "CLEAN_UP",
    "MEMBER_SYNC",
    "PROJECT_SYNC",
    "PROJECT_REMOVED",
    "FORGE_EVENT",
    "SUBSCRIPTION",
    "CLEAN_UP_REQUEST",
    NULL};

/* Index 0 is FG_PROTO_SUB_NONE, which is no name: the list for matching starts at index 1. */
const char *const fg_proto__sub_category_names[FG_PROTO_SUB_COUNT + 1] = {
    "",
    "ToTriplesGenerated",
    "ToTriplesStore",
    "ToFailure",
    "RollbackToNew",
    "RollbackToTriplesGenerated",
    "ToAwaitingDeletion",
    "RollbackToAwaitingDeletion",
    "RedoProjectTransformation",
    "ProjectEventsToNew",
    "AllEventsToNew",
    "CleanUpDone",
    NULL};

const char *const fg_proto__forge_names[4] = {"github", "gitlab", "git", NULL};

static const char *const failure_statuses[] = {
    "GENERATION_RECOVERABLE_FAILURE", "GENERATION_NON_RECOVERABLE_FAILURE",
    "TRANSFORMATION_RECOVERABLE_FAILURE", "TRANSFORMATION_NON_RECOVERABLE_FAILURE", NULL};

static const char *const forge_events[] = {"pull_request", "pull_request_review",
                                           "issues",       "issue_comment",
                                           "member",       "star",
                                           "watch",        "fork",
                                           "repository",   "Merge Request Hook",
                                           "Issue Hook",   "Note Hook",
                                           "Member Hook",  NULL};

/* ---- the walker ---- */

typedef enum {
    K_STRING,     /* min/max characters, choices, check */
    K_INT,        /* min..max; an integral JSON number such as 1.0 counts, as in JSON Schema */
    K_BOOL,       /* true or false */
    K_TRUE,       /* exactly true */
    K_ARRAY,      /* min/max items, each following *item */
    K_OBJECT,     /* exactly the members listed, required ones present */
    K_ANY_OBJECT, /* any JSON object (a forge's payload) */
    K_COUNTS      /* {CATEGORY: 0..FG_PROTO_CAPACITY_MAX}, min/max members */
} kind;

typedef bool (*text_check)(const char *s, size_t len);

typedef struct rule rule;
struct rule {
    const char *name; /* member name; NULL ends a member list */
    kind kind;
    bool required;
    long long min, max;         /* max 0: no upper bound */
    const char *const *choices; /* K_STRING: allowed values, NULL-terminated */
    text_check check;           /* K_STRING: the schema's pattern/format */
    const char *what;           /* what a value failing choices/check is not */
    const rule *item;           /* K_ARRAY */
    const rule *members;        /* K_OBJECT */
};

typedef struct {
    char path[192];
    size_t len;
    const char *label; /* names the whole value when path is empty */
} ctx;

static size_t push(ctx *c, const char *fmt, ...) FG_PRINTF(2, 3);

static size_t push(ctx *c, const char *fmt, ...)
{
    size_t saved = c->len;
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(c->path + c->len, sizeof(c->path) - c->len, fmt, ap);
    va_end(ap);
    if (n > 0)
        c->len += (size_t)n < sizeof(c->path) - c->len ? (size_t)n : sizeof(c->path) - 1 - c->len;
    return saved;
}

static size_t push_member(ctx *c, const char *name)
{
    return push(c, "%s%s", c->len > 0 ? "." : "", name);
}

static void pop(ctx *c, size_t saved)
{
    c->len = saved;
    c->path[saved] = '\0';
}

static int fail(const ctx *c, const char *fmt, ...) FG_PRINTF(2, 3);

static int fail(const ctx *c, const char *fmt, ...)
{
    char what[256];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    return fg_error_set(FG_EINVALID, "%s: %s", c->len > 0 ? c->path : c->label, what);
}

/* A value is echoed in a reason only when it is short and plain, so a reason (which is logged)
 * never carries a peer's long or odd text. */
static bool plain_value(const char *s, size_t len)
{
    if (len == 0 || len > 40)
        return false;
    return strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_ .-") == len;
}

static int find_name(const char *const *names, const char *s)
{
    for (int i = 0; names[i] != NULL; i++) {
        if (strcmp(names[i], s) == 0)
            return i;
    }
    return -1;
}

static int check_value(ctx *c, const rule *r, struct json_object *v);

static int check_string(ctx *c, const rule *r, struct json_object *v)
{
    const char *s;
    size_t len, chars;

    if (!json_object_is_type(v, json_type_string))
        return fail(c, "not a string");
    s = json_object_get_string(v);
    len = (size_t)json_object_get_string_len(v);
    if (!fg_proto__utf8_valid(s, len))
        return fail(c, "not valid UTF-8");
    if (memchr(s, '\0', len) != NULL)
        return fail(c, "contains U+0000");
    chars = fg_proto__utf8_chars(s, len);
    if ((long long)chars < r->min)
        return r->min == 1 ? fail(c, "empty") : fail(c, "shorter than %lld characters", r->min);
    if (r->max > 0 && (long long)chars > r->max)
        return fail(c, "longer than %lld characters", r->max);
    if (r->choices != NULL && find_name(r->choices, s) < 0)
        return plain_value(s, len) ? fail(c, "'%s' is %s", s, r->what) : fail(c, "%s", r->what);
    if (r->check != NULL && !r->check(s, len))
        return fail(c, "%s", r->what);
    return 0;
}

/* The integer value of a JSON number that is one, in out; false for anything else. */
static bool integer_value(long long *out, struct json_object *v, long long min, long long max,
                          bool *out_in_range)
{
    double d;

    if (json_object_is_type(v, json_type_int)) {
        /* json-c clamps what does not fit an int64; the clamped value is out of every range */
        *out = json_object_get_int64(v);
        *out_in_range = *out >= min && *out <= max;
        return true;
    }
    if (!json_object_is_type(v, json_type_double))
        return false;
    d = json_object_get_double(v);
    if (!isfinite(d))
        return false;
    *out_in_range = d >= (double)min && d <= (double)max;
    if (!*out_in_range) { /* reported as out of range, whatever its fraction */
        *out = 0;
        return true;
    }
    *out = (long long)d;
    return (double)*out == d;
}

static int check_int(ctx *c, const rule *r, struct json_object *v)
{
    long long n;
    bool in_range;

    if (!integer_value(&n, v, r->min, r->max, &in_range))
        return fail(c, "not an integer");
    if (!in_range)
        return fail(c, "out of range (%lld-%lld)", r->min, r->max);
    return 0;
}

static int check_array(ctx *c, const rule *r, struct json_object *v)
{
    size_t n;

    if (!json_object_is_type(v, json_type_array))
        return fail(c, "not an array");
    n = json_object_array_length(v);
    if ((long long)n < r->min)
        return r->min == 1 ? fail(c, "empty") : fail(c, "fewer than %lld items", r->min);
    if (r->max > 0 && (long long)n > r->max)
        return fail(c, "more than %lld items", r->max);
    for (size_t i = 0; i < n; i++) {
        size_t saved = push(c, "[%zu]", i);
        int rc = check_value(c, r->item, json_object_array_get_idx(v, i));
        if (rc < 0)
            return rc;
        pop(c, saved);
    }
    return 0;
}

static bool listed(const rule *const *lists, size_t nlists, const char *name)
{
    for (size_t l = 0; l < nlists; l++) {
        for (const rule *r = lists[l]; r != NULL && r->name != NULL; r++) {
            if (strcmp(r->name, name) == 0)
                return true;
        }
    }
    return false;
}

/* An object whose allowed members are the union of several lists (envelope + category + ...). */
static int check_members(ctx *c, const rule *const *lists, size_t nlists, struct json_object *v)
{
    if (!json_object_is_type(v, json_type_object))
        return fail(c, "not an object");
    for (size_t l = 0; l < nlists; l++) {
        for (const rule *r = lists[l]; r != NULL && r->name != NULL; r++) {
            struct json_object *m = NULL;
            size_t saved = push_member(c, r->name);
            int rc = 0;

            if (json_object_object_get_ex(v, r->name, &m))
                rc = check_value(c, r, m);
            else if (r->required)
                rc = fail(c, "missing");
            if (rc < 0)
                return rc;
            pop(c, saved);
        }
    }
    json_object_object_foreach(v, key, value)
    {
        (void)value;
        if (!listed(lists, nlists, key)) {
            push_member(c, key);
            return fail(c, "unexpected field");
        }
    }
    return 0;
}

static int check_counts(ctx *c, const rule *r, struct json_object *v)
{
    static const rule count = {.kind = K_INT, .min = 0, .max = FG_PROTO_CAPACITY_MAX};
    size_t n;

    if (!json_object_is_type(v, json_type_object))
        return fail(c, "not an object");
    n = (size_t)json_object_object_length(v);
    if ((long long)n < r->min)
        return r->min == 1 ? fail(c, "empty") : fail(c, "fewer than %lld members", r->min);
    json_object_object_foreach(v, key, value)
    {
        size_t saved = push_member(c, key);
        int rc = find_name(fg_proto__category_names, key) < 0 ? fail(c, "not a category")
                                                              : check_int(c, &count, value);
        if (rc < 0)
            return rc;
        pop(c, saved);
    }
    return 0;
}

static int check_value(ctx *c, const rule *r, struct json_object *v)
{
    switch (r->kind) {
    case K_STRING:
        return check_string(c, r, v);
    case K_INT:
        return check_int(c, r, v);
    case K_BOOL:
        return json_object_is_type(v, json_type_boolean) ? 0 : fail(c, "not a boolean");
    case K_TRUE:
        return json_object_is_type(v, json_type_boolean) && json_object_get_boolean(v)
                   ? 0
                   : fail(c, "must be true");
    case K_ARRAY:
        return check_array(c, r, v);
    case K_OBJECT:
        return check_members(c, &r->members, 1, v);
    case K_ANY_OBJECT:
        return json_object_is_type(v, json_type_object) ? 0 : fail(c, "not an object");
    case K_COUNTS:
        return check_counts(c, r, v);
    }
    return fail(c, "no rule");
}

/* ---- formats (the schemas' patterns) ---- */

static bool all_of(const char *s, size_t len, const char *set)
{
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\0' || strchr(set, s[i]) == NULL)
            return false;
    }
    return true;
}

static bool is_sha(const char *s, size_t len)
{
    return len == FG_PROTO_SHA_LEN && all_of(s, len, "0123456789abcdef");
}

static bool is_uuid(const char *s, size_t len)
{
    if (len != FG_PROTO_UUID_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        if (dash ? s[i] != '-' : !all_of(s + i, 1, "0123456789abcdef"))
            return false;
    }
    return true;
}

static bool number_at(int *out, const char *s, size_t n)
{
    int v = 0;

    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return true;
}

static int days_in_month(int year, int month)
{
    static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = year % 4 == 0 && (year % 100 != 0 || year % 400 == 0);

    return month == 2 && leap ? 29 : days[month - 1];
}

/* RFC 3339 date-time: YYYY-MM-DDTHH:MM:SS[.1-9 digits](Z|+HH:MM|-HH:MM), a real calendar day,
 * no leap second (git never records one), upper-case T and Z as the schemas' patterns say. */
static bool is_date_time(const char *s, size_t len, bool utc_only)
{
    int year, month, day, hour, minute, second, oh, om;
    size_t i = 19;

    if (len < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':')
        return false;
    if (!number_at(&year, s, 4) || !number_at(&month, s + 5, 2) || !number_at(&day, s + 8, 2) ||
        !number_at(&hour, s + 11, 2) || !number_at(&minute, s + 14, 2) ||
        !number_at(&second, s + 17, 2))
        return false;
    if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
        minute > 59 || second > 59)
        return false;
    if (s[i] == '.') {
        size_t from = ++i;
        while (i < len && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == from || i - from > 9)
            return false;
    }
    if (i + 1 == len && s[i] == 'Z')
        return true;
    if (utc_only || len - i != 6 || (s[i] != '+' && s[i] != '-') || s[i + 3] != ':')
        return false;
    return number_at(&oh, s + i + 1, 2) && number_at(&om, s + i + 4, 2) && oh <= 23 && om <= 59;
}

static bool is_utc_timestamp(const char *s, size_t len)
{
    return is_date_time(s, len, true);
}

static bool is_timestamp(const char *s, size_t len)
{
    return is_date_time(s, len, false);
}

/* ^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)+$ */
static bool is_project_path(const char *s, size_t len)
{
    static const char segment[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-";
    size_t segments = 0, i = 0;

    while (i < len) {
        size_t n = strspn(s + i, segment);
        if (n == 0 || i + n > len)
            return false;
        segments++;
        i += n;
        if (i < len && (s[i] != '/' || ++i == len))
            return false;
    }
    return segments >= 2;
}

/* Standard base64 with padding, not empty. */
static bool is_base64(const char *s, size_t len)
{
    size_t pad = 0;

    if (len == 0 || len % 4 != 0)
        return false;
    while (pad < 2 && s[len - 1 - pad] == '=')
        pad++;
    /* payloads run to megabytes: range checks per character, not a strchr into the alphabet
     * (that was a tenth of triples-generator's CPU) */
    for (size_t i = 0; i < len - pad; i++) {
        unsigned char c = (unsigned char)s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '/'))
            return false;
    }
    return true;
}

/* ^[a-z][a-z0-9-]*$ */
static bool is_service(const char *s, size_t len)
{
    return len > 0 && s[0] >= 'a' && s[0] <= 'z' &&
           all_of(s, len, "abcdefghijklmnopqrstuvwxyz0123456789-");
}

/* ---- the rules ---- */

#define SHA_WHAT "not a 40-hex sha"

static const rule sha_item = {.kind = K_STRING, .check = is_sha, .what = SHA_WHAT};

static const rule event_ref_members[] = {
    {.name = "sha", .kind = K_STRING, .required = true, .check = is_sha, .what = SHA_WHAT},
    {.name = NULL}};
static const rule event_ref = {.kind = K_OBJECT, .members = event_ref_members};

#define EVENTS(req)                                                                                \
    {                                                                                              \
        .name = "events", .kind = K_ARRAY, .required = (req), .min = 1, .max = FG_PROTO_BATCH_MAX, \
        .item = &event_ref                                                                         \
    }
#define COUNT(n, req)                                                                              \
    {                                                                                              \
        .name = (n), .kind = K_INT, .required = (req), .min = 0, .max = FG_PROTO_INT_MAX           \
    }
#define PAYLOAD                                                                                    \
    {                                                                                              \
        .name = "payload", .kind = K_STRING, .required = true, .min = 4,                           \
        .max = FG_PROTO_PAYLOAD_MAX, .check = is_base64, .what = "not base64"                      \
    }

static const rule project_members[] = {
    {.name = "id", .kind = K_INT, .required = true, .min = 1, .max = FG_PROTO_INT_MAX},
    {.name = "forge",
     .kind = K_STRING,
     .required = true,
     .choices = fg_proto__forge_names,
     .what = "not a forge (github, gitlab, git)"},
    {.name = "path",
     .kind = K_STRING,
     .required = true,
     .max = FG_PROTO_PROJECT_PATH_MAX,
     .check = is_project_path,
     .what = "not a project path (ns/name)"},
    {.name = NULL}};

static const rule envelope_members[] = {{.name = "id",
                                         .kind = K_STRING,
                                         .required = true,
                                         .check = is_uuid,
                                         .what = "not a lower-case UUID"},
                                        {.name = "category",
                                         .kind = K_STRING,
                                         .required = true,
                                         .choices = fg_proto__category_names,
                                         .what = "not a category"},
                                        {.name = "occurredAt",
                                         .kind = K_STRING,
                                         .required = true,
                                         .check = is_utc_timestamp,
                                         .what = "not an RFC 3339 UTC timestamp (...Z)"},
                                        {.name = NULL}};

static const rule project_member[] = {
    {.name = "project", .kind = K_OBJECT, .required = true, .members = project_members},
    {.name = NULL}};

/* commit.schema.json */

#define TEXT(n, lo, hi)                                                                            \
    {                                                                                              \
        .name = (n), .kind = K_STRING, .required = true, .min = (lo), .max = (hi)                  \
    }

static const rule person_members[] = {TEXT("name", 0, FG_PROTO_NAME_MAX),
                                      TEXT("email", 0, FG_PROTO_EMAIL_MAX),
                                      {.name = "at",
                                       .kind = K_STRING,
                                       .required = true,
                                       .check = is_timestamp,
                                       .what = "not an RFC 3339 timestamp"},
                                      {.name = NULL}};

static const rule trailer_members[] = {TEXT("key", 1, FG_PROTO_TRAILER_KEY_MAX),
                                       TEXT("value", 0, FG_PROTO_TRAILER_VALUE_MAX),
                                       {.name = NULL}};
static const rule trailer_item = {.kind = K_OBJECT, .members = trailer_members};

static const rule stats_members[] = {
    COUNT("insertions", true), COUNT("deletions", true), COUNT("files", true), {.name = NULL}};

static const rule file_members[] = {TEXT("path", 1, FG_PROTO_FILE_PATH_MAX),
                                    COUNT("insertions", true),
                                    COUNT("deletions", true),
                                    {.name = "binary", .kind = K_BOOL},
                                    {.name = NULL}};
static const rule file_item = {.kind = K_OBJECT, .members = file_members};

static const rule commit_members[] = {
    {.name = "sha", .kind = K_STRING, .required = true, .check = is_sha, .what = SHA_WHAT},
    {.name = "parents",
     .kind = K_ARRAY,
     .required = true,
     .max = FG_PROTO_PARENTS_MAX,
     .item = &sha_item},
    {.name = "isMerge", .kind = K_BOOL, .required = true},
    {.name = "author", .kind = K_OBJECT, .required = true, .members = person_members},
    {.name = "committer", .kind = K_OBJECT, .required = true, .members = person_members},
    TEXT("message", 0, FG_PROTO_COMMIT_MESSAGE_MAX),
    {.name = "trailers",
     .kind = K_ARRAY,
     .required = true,
     .max = FG_PROTO_TRAILERS_MAX,
     .item = &trailer_item},
    {.name = "stats", .kind = K_OBJECT, .required = true, .members = stats_members},
    {.name = "files",
     .kind = K_ARRAY,
     .required = true,
     .max = FG_PROTO_FILES_MAX,
     .item = &file_item},
    {.name = "filesTruncated", .kind = K_BOOL, .required = true},
    {.name = NULL}};
static const rule commit_item = {.kind = K_OBJECT, .members = commit_members};

/* the categories */

static const rule commit_sync_members[] = {{.name = "known",
                                            .kind = K_ARRAY,
                                            .required = true,
                                            .max = FG_PROTO_KNOWN_MAX,
                                            .item = &sha_item},
                                           {.name = "lastSynced",
                                            .kind = K_STRING,
                                            .check = is_utc_timestamp,
                                            .what = "not an RFC 3339 UTC timestamp (...Z)"},
                                           {.name = "sentAt",
                                            .kind = K_STRING,
                                            .check = is_utc_timestamp,
                                            .what = "not an RFC 3339 UTC timestamp (...Z)"},
                                           {.name = NULL}};

static const rule global_commit_sync_members[] = {
    COUNT("count", true),
    {.name = "latest", .kind = K_STRING, .check = is_sha, .what = SHA_WHAT},
    {.name = NULL}};

/* commits may be empty only on the message that closes a sync (creation_extra) */
static const rule creation_members[] = {{.name = "commits",
                                         .kind = K_ARRAY,
                                         .required = true,
                                         .min = 0,
                                         .max = FG_PROTO_BATCH_MAX,
                                         .item = &commit_item},
                                        {.name = "syncComplete", .kind = K_BOOL},
                                        {.name = "syncSentAt",
                                         .kind = K_STRING,
                                         .check = is_utc_timestamp,
                                         .what = "not an RFC 3339 UTC timestamp (...Z)"},
                                        {.name = NULL}};

static const rule awaiting_event_members[] = {
    {.name = "sha", .kind = K_STRING, .required = true, .check = is_sha, .what = SHA_WHAT},
    {.name = "body", .kind = K_OBJECT, .required = true, .members = commit_members},
    {.name = NULL}};
static const rule awaiting_event = {.kind = K_OBJECT, .members = awaiting_event_members};

static const rule awaiting_generation_members[] = {{.name = "events",
                                                    .kind = K_ARRAY,
                                                    .required = true,
                                                    .min = 1,
                                                    .max = FG_PROTO_BATCH_MAX,
                                                    .item = &awaiting_event},
                                                   {.name = NULL}};

static const rule triples_generated_members[] = {EVENTS(true), PAYLOAD, {.name = NULL}};

static const rule clean_up_members[] = {
    EVENTS(false), {.name = "all", .kind = K_TRUE}, {.name = NULL}};

static const rule optional_events_members[] = {EVENTS(false), {.name = NULL}};
static const rule events_members[] = {EVENTS(true), {.name = NULL}};

static const rule forge_event_members[] = {
    {.name = "event",
     .kind = K_STRING,
     .required = true,
     .choices = forge_events,
     .what = "not a forge event forgegraph takes"},
    {.name = "action", .kind = K_STRING, .min = 1, .max = FG_PROTO_ACTION_MAX},
    TEXT("deliveryId", 1, FG_PROTO_DELIVERY_ID_MAX),
    {.name = "payload", .kind = K_ANY_OBJECT, .required = true},
    {.name = NULL}};

static const rule subscription_members[] = {
    {.name = "service",
     .kind = K_STRING,
     .required = true,
     .max = FG_PROTO_SERVICE_MAX,
     .check = is_service,
     .what = "not a service name ([a-z][a-z0-9-]*)"},
    TEXT("instance", 1, FG_PROTO_INSTANCE_MAX),
    {.name = "capacity", .kind = K_COUNTS, .required = true, .min = 1},
    {.name = "inFlight", .kind = K_COUNTS, .required = true},
    {.name = NULL}};

static const rule sub_category_member[] = {{.name = "subCategory",
                                            .kind = K_STRING,
                                            .required = true,
                                            .choices = fg_proto__sub_category_names + 1,
                                            .what = "not a sub-category"},
                                           {.name = NULL}};

/* EVENTS_STATUS_CHANGE variants */

static const rule to_triples_generated_members[] = {
    EVENTS(true), PAYLOAD, COUNT("processingTime", true), {.name = NULL}};
static const rule to_triples_store_members[] = {
    EVENTS(true), COUNT("processingTime", true), {.name = NULL}};
static const rule to_failure_members[] = {
    EVENTS(true),
    {.name = "newStatus",
     .kind = K_STRING,
     .required = true,
     .choices = failure_statuses,
     .what = "not a failure status"},
    TEXT("message", 1, FG_PROTO_TEXT_MAX),
    {.name = "executionDelay", .kind = K_INT, .min = 0, .max = FG_PROTO_DELAY_MAX},
    {.name = NULL}};

/* ---- rules between fields ---- */

static bool has(struct json_object *root, const char *field)
{
    return json_object_object_get_ex(root, field, NULL);
}

static int fail_at(ctx *c, const char *field, const char *what)
{
    push_member(c, field);
    return fail(c, "%s", what);
}

static int global_commit_sync_extra(ctx *c, struct json_object *root)
{
    struct json_object *count = NULL;
    long long n = 0;
    bool in_range;

    if (json_object_object_get_ex(root, "count", &count))
        (void)integer_value(&n, count, 0, FG_PROTO_INT_MAX, &in_range);
    if (n == 0 && has(root, "latest"))
        return fail_at(c, "latest", "not allowed when count is 0");
    if (n > 0 && !has(root, "latest"))
        return fail_at(c, "latest", "missing (count is not 0)");
    return 0;
}

static int clean_up_extra(ctx *c, struct json_object *root)
{
    if (has(root, "events") && has(root, "all"))
        return fail_at(c, "all", "not allowed together with events");
    if (!has(root, "events") && !has(root, "all"))
        return fail_at(c, "events", "missing (give events or all: true)");
    return 0;
}

/* A commit sync ends with syncComplete: true, and that last CREATION may carry no commits, and
 * names the COMMIT_SYNC it ran for (syncSentAt, that message's sentAt). */
static int creation_extra(ctx *c, struct json_object *root)
{
    struct json_object *commits = NULL, *complete = NULL;
    bool sync_complete = json_object_object_get_ex(root, "syncComplete", &complete) &&
                         json_object_get_boolean(complete);

    if (json_object_object_get_ex(root, "commits", &commits) &&
        json_object_array_length(commits) == 0 && !sync_complete)
        return fail_at(c, "commits", "empty (allowed only with syncComplete: true)");
    if (json_object_object_get_ex(root, "syncSentAt", NULL) && !sync_complete)
        return fail_at(c, "syncSentAt", "allowed only with syncComplete: true");
    return 0;
}

static int to_failure_extra(ctx *c, struct json_object *root)
{
    struct json_object *status = NULL;

    if (json_object_object_get_ex(root, "newStatus", &status) &&
        strstr(json_object_get_string(status), "NON_RECOVERABLE") != NULL &&
        has(root, "executionDelay"))
        return fail_at(c, "executionDelay", "not allowed with a non-recoverable newStatus");
    return 0;
}

typedef struct {
    bool project;        /* required when true, not allowed when false */
    const rule *members; /* beyond the envelope */
    int (*extra)(ctx *c, struct json_object *root);
} shape;

static const shape category_shapes[FG_PROTO_CATEGORY_COUNT] = {
    [FG_PROTO_COMMIT_SYNC_REQUEST] = {true, NULL, NULL},
    [FG_PROTO_COMMIT_SYNC] = {true, commit_sync_members, NULL},
    [FG_PROTO_GLOBAL_COMMIT_SYNC_REQUEST] = {true, NULL, NULL},
    [FG_PROTO_GLOBAL_COMMIT_SYNC] = {true, global_commit_sync_members, global_commit_sync_extra},
    [FG_PROTO_CREATION] = {true, creation_members, creation_extra},
    [FG_PROTO_EVENTS_STATUS_CHANGE] = {true, sub_category_member, NULL}, /* + the variant */
    [FG_PROTO_AWAITING_GENERATION] = {true, awaiting_generation_members, NULL},
    [FG_PROTO_TRIPLES_GENERATED] = {true, triples_generated_members, NULL},
    [FG_PROTO_CLEAN_UP] = {true, clean_up_members, clean_up_extra},
    [FG_PROTO_MEMBER_SYNC] = {true, NULL, NULL},
    [FG_PROTO_PROJECT_SYNC] = {true, NULL, NULL},
    [FG_PROTO_PROJECT_REMOVED] = {true, NULL, NULL},
    [FG_PROTO_FORGE_EVENT] = {true, forge_event_members, NULL},
    [FG_PROTO_SUBSCRIPTION] = {false, subscription_members, NULL},
    [FG_PROTO_CLEAN_UP_REQUEST] = {true, optional_events_members, NULL},
};

static const shape sub_category_shapes[FG_PROTO_SUB_COUNT] = {
    [FG_PROTO_SUB_NONE] = {true, NULL, NULL},
    [FG_PROTO_SUB_TO_TRIPLES_GENERATED] = {true, to_triples_generated_members, NULL},
    [FG_PROTO_SUB_TO_TRIPLES_STORE] = {true, to_triples_store_members, NULL},
    [FG_PROTO_SUB_TO_FAILURE] = {true, to_failure_members, to_failure_extra},
    [FG_PROTO_SUB_ROLLBACK_TO_NEW] = {true, events_members, NULL},
    [FG_PROTO_SUB_ROLLBACK_TO_TRIPLES_GENERATED] = {true, events_members, NULL},
    [FG_PROTO_SUB_TO_AWAITING_DELETION] = {true, events_members, NULL},
    [FG_PROTO_SUB_ROLLBACK_TO_AWAITING_DELETION] = {true, optional_events_members, NULL},
    [FG_PROTO_SUB_REDO_PROJECT_TRANSFORMATION] = {true, NULL, NULL},
    [FG_PROTO_SUB_PROJECT_EVENTS_TO_NEW] = {true, NULL, NULL},
    [FG_PROTO_SUB_ALL_EVENTS_TO_NEW] = {false, NULL, NULL},
    [FG_PROTO_SUB_CLEAN_UP_DONE] = {true, events_members, NULL},
};

/* ---- entry points ---- */

/* Reads a discriminating member (category, subCategory) before the rest, since the rules for
 * everything else depend on it. */
static int discriminator(int *out, ctx *c, struct json_object *root, const rule *r)
{
    struct json_object *v = NULL;
    size_t saved = push_member(c, r->name);
    int rc;

    if (!json_object_object_get_ex(root, r->name, &v))
        return fail(c, "missing");
    if ((rc = check_string(c, r, v)) < 0)
        return rc;
    pop(c, saved);
    *out = find_name(r->choices, json_object_get_string(v));
    return 0;
}

static void read_envelope(fg_proto_msg *msg)
{
    struct json_object *root = msg->root, *project = NULL, *v = NULL;

    json_object_object_get_ex(root, "id", &v);
    msg->id = json_object_get_string(v);
    json_object_object_get_ex(root, "occurredAt", &v);
    msg->occurred_at = json_object_get_string(v);
    msg->has_project = json_object_object_get_ex(root, "project", &project);
    if (!msg->has_project)
        return;
    json_object_object_get_ex(project, "id", &v);
    msg->project.id = json_object_get_int64(v);
    json_object_object_get_ex(project, "forge", &v);
    msg->project.forge =
        (fg_proto_forge)find_name(fg_proto__forge_names, json_object_get_string(v));
    json_object_object_get_ex(project, "path", &v);
    msg->project.path = json_object_get_string(v);
}

int fg_proto__validate_message(fg_proto_msg *msg)
{
    ctx c = {.label = "message"};
    const rule *lists[4];
    const shape *category, *variant = NULL;
    int cat, sub = -1, rc;

    if (!json_object_is_type(msg->root, json_type_object))
        return fail(&c, "not a JSON object");
    if ((rc = discriminator(&cat, &c, msg->root, &envelope_members[1])) < 0)
        return rc;
    category = &category_shapes[cat];
    if (cat == FG_PROTO_EVENTS_STATUS_CHANGE) {
        if ((rc = discriminator(&sub, &c, msg->root, &sub_category_member[0])) < 0)
            return rc;
        sub += 1; /* the choices start after FG_PROTO_SUB_NONE */
        variant = &sub_category_shapes[sub];
    }
    lists[0] = envelope_members;
    lists[1] = (variant ? variant->project : category->project) ? project_member : NULL;
    lists[2] = category->members;
    lists[3] = variant ? variant->members : NULL;
    if ((rc = check_members(&c, lists, 4, msg->root)) < 0)
        return rc;
    if (category->extra != NULL && (rc = category->extra(&c, msg->root)) < 0)
        return rc;
    if (variant != NULL && variant->extra != NULL && (rc = variant->extra(&c, msg->root)) < 0)
        return rc;
    msg->category = (fg_proto_category)cat;
    msg->sub_category = variant ? (fg_proto_sub_category)sub : FG_PROTO_SUB_NONE;
    read_envelope(msg);
    return 0;
}

int fg_proto__validate_commit(struct json_object *body, const char *where)
{
    ctx c = {.label = "commit"};

    push(&c, "%s", where);
    return check_value(&c, &commit_item, body);
}
