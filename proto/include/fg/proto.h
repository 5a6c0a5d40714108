/*
 * The message contracts (DESIGN.md "Messages"): parse, validate, build and serialise the JSON
 * messages of every category, and the commit body they carry. The rules are those of
 * the JSON Schemas in proto/schemas (tests check both against the same fixtures); docs/messages.md
 * describes each category. It does not talk to the broker. A fg_proto_msg owns its json-c tree;
 * every string it hands out is borrowed from it and lives until fg_proto_msg_dispose. Thread
 * affinity: none (a message is used by one thread at a time).
 */
#ifndef FG_PROTO_H
#define FG_PROTO_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "fg/buf.h"
#include "fg/error.h"

/* Limits. The schemas carry the same numbers, each naming its #define in "$comment"
 * (tests/unit/proto_schemas_test.py compares them), so keep these plain decimals. String lengths
 * count Unicode characters, as JSON Schema does. */
#define FG_PROTO_MESSAGE_MAX        67108864 /* bytes of one serialised message */
#define FG_PROTO_DEPTH_MAX          32       /* nesting of objects and arrays, the message is 1 */
#define FG_PROTO_BATCH_MAX          1000     /* commits or events in one message */
#define FG_PROTO_KNOWN_MAX          50       /* COMMIT_SYNC known shas */
#define FG_PROTO_INT_MAX            9007199254740991 /* every count and id: exact in any JSON */
#define FG_PROTO_PROJECT_PATH_MAX   512
#define FG_PROTO_PARENTS_MAX        128
#define FG_PROTO_NAME_MAX           256
#define FG_PROTO_EMAIL_MAX          320
#define FG_PROTO_COMMIT_MESSAGE_MAX 65536
#define FG_PROTO_TRAILERS_MAX       256
#define FG_PROTO_TRAILER_KEY_MAX    128
#define FG_PROTO_TRAILER_VALUE_MAX  1024
#define FG_PROTO_FILES_MAX          1000
#define FG_PROTO_FILE_PATH_MAX      4096
#define FG_PROTO_TEXT_MAX           16384      /* ToFailure message */
#define FG_PROTO_PAYLOAD_MAX        50331648   /* base64 characters of a triples payload */
#define FG_PROTO_DELAY_MAX          2592000000 /* ToFailure executionDelay, ms (30 days) */
#define FG_PROTO_ACTION_MAX         64
#define FG_PROTO_DELIVERY_ID_MAX    128
#define FG_PROTO_SERVICE_MAX        32
#define FG_PROTO_INSTANCE_MAX       128
#define FG_PROTO_CAPACITY_MAX       100000 /* SUBSCRIPTION capacity / inFlight per category */

#define FG_PROTO_SHA_LEN  40
#define FG_PROTO_UUID_LEN 36

typedef enum {
    FG_PROTO_COMMIT_SYNC_REQUEST,
    FG_PROTO_COMMIT_SYNC,
    FG_PROTO_GLOBAL_COMMIT_SYNC_REQUEST,
    FG_PROTO_GLOBAL_COMMIT_SYNC,
    FG_PROTO_CREATION,
    FG_PROTO_EVENTS_STATUS_CHANGE,
    FG_PROTO_AWAITING_GENERATION,
    FG_PROTO_TRIPLES_GENERATED,
    FG_PROTO_CLEAN_UP,
    FG_PROTO_MEMBER_SYNC,
    FG_PROTO_PROJECT_SYNC,
    FG_PROTO_PROJECT_REMOVED,
    FG_PROTO_FORGE_EVENT,
    FG_PROTO_SUBSCRIPTION,
    FG_PROTO_CLEAN_UP_REQUEST,
    FG_PROTO_CATEGORY_COUNT
} fg_proto_category;

/* EVENTS_STATUS_CHANGE variants (docs/messages.md lists each one's fields). */
typedef enum {
    FG_PROTO_SUB_NONE = 0, /* any other category */
    FG_PROTO_SUB_TO_TRIPLES_GENERATED,
    FG_PROTO_SUB_TO_TRIPLES_STORE,
    FG_PROTO_SUB_TO_FAILURE,
    FG_PROTO_SUB_ROLLBACK_TO_NEW,
    FG_PROTO_SUB_ROLLBACK_TO_TRIPLES_GENERATED,
    FG_PROTO_SUB_TO_AWAITING_DELETION,
    FG_PROTO_SUB_ROLLBACK_TO_AWAITING_DELETION,
    FG_PROTO_SUB_REDO_PROJECT_TRANSFORMATION,
    FG_PROTO_SUB_PROJECT_EVENTS_TO_NEW,
    FG_PROTO_SUB_ALL_EVENTS_TO_NEW,
    FG_PROTO_SUB_CLEAN_UP_DONE,
    FG_PROTO_SUB_COUNT
} fg_proto_sub_category;

typedef enum { FG_PROTO_FORGE_GITHUB, FG_PROTO_FORGE_GITLAB, FG_PROTO_FORGE_GIT } fg_proto_forge;

typedef struct {
    long long id; /* event-log's project id, 1..FG_PROTO_INT_MAX */
    fg_proto_forge forge;
    const char *path; /* "ns/name"; borrowed */
} fg_proto_project;

/* A message. Caller-held: fg_proto_msg_init, then fg_proto_msg_parse or fg_proto_msg_start, and
 * fg_proto_msg_dispose. The envelope fields are filled in by parse and by serialise/validate;
 * category fields are read with the getters below (or through `root` with json-c). */
typedef struct {
    struct json_object *root; /* owned; NULL when empty */
    const char *id;           /* UUID, borrowed from root */
    fg_proto_category category;
    fg_proto_sub_category sub_category; /* FG_PROTO_SUB_NONE outside EVENTS_STATUS_CHANGE */
    const char *occurred_at;            /* RFC 3339 UTC, borrowed */
    bool has_project;
    fg_proto_project project; /* valid when has_project */
} fg_proto_msg;

/* ---- names ---- */

/* "CREATION", ...; NULL for a value out of range. */
const char *fg_proto_category_name(fg_proto_category category);
/* FG_EINVALID for a name that is not a category. */
int fg_proto_category_parse(fg_proto_category *out, const char *name) FG_MUST_CHECK;
/* "ToTriplesGenerated", ...; NULL for FG_PROTO_SUB_NONE or out of range. */
const char *fg_proto_sub_category_name(fg_proto_sub_category sub);
/* "github", "gitlab", "git"; NULL out of range. */
const char *fg_proto_forge_name(fg_proto_forge forge);
/* FG_EINVALID for an unknown forge. */
int fg_proto_forge_parse(fg_proto_forge *out, const char *name) FG_MUST_CHECK;

/* ---- messages ---- */

void fg_proto_msg_init(fg_proto_msg *msg);
/* Frees the tree and leaves msg empty (reusable). Accepts NULL. */
void fg_proto_msg_dispose(fg_proto_msg *msg);

/* Parses and validates len bytes (not NUL-terminated necessarily) into msg, replacing what it
 * held. The bytes must be one strict RFC 8259 JSON object in valid UTF-8, nested at most
 * FG_PROTO_DEPTH_MAX deep, that follows its category's schema. FG_ETOOBIG past
 * FG_PROTO_MESSAGE_MAX; FG_EINVALID otherwise, with a reason naming the field, e.g.
 * "events[3].sha: not a 40-hex sha"; FG_ENOMEM. On error msg is left empty. Never crashes on any
 * input. */
int fg_proto_msg_parse(fg_proto_msg *msg, const char *data, size_t len) FG_MUST_CHECK;

/* Starts a new message in msg (replacing what it held): a fresh id (random UUID v4), category,
 * occurredAt = now, and project (copied) unless NULL. Add the category's fields with the setters,
 * then serialise. FG_EINVALID for a bad category or project; FG_ERROR when no random bytes. */
int fg_proto_msg_start(fg_proto_msg *msg, fg_proto_category category,
                       const fg_proto_project *project) FG_MUST_CHECK;

/* Setters for a started message; each replaces the field. value is copied, except for
 * fg_proto_msg_set and fg_proto_msg_append, which take ownership of `value` even on failure.
 * Nothing is checked until serialise. FG_ENOMEM; FG_EINVALID when msg was not started (or the
 * field to append to is not an array). */
int fg_proto_msg_set(fg_proto_msg *msg, const char *field, struct json_object *value) FG_MUST_CHECK;
int fg_proto_msg_set_string(fg_proto_msg *msg, const char *field, const char *value) FG_MUST_CHECK;
int fg_proto_msg_set_int(fg_proto_msg *msg, const char *field, long long value) FG_MUST_CHECK;
int fg_proto_msg_set_bool(fg_proto_msg *msg, const char *field, bool value) FG_MUST_CHECK;
/* Sets subCategory (EVENTS_STATUS_CHANGE). */
int fg_proto_msg_set_sub_category(fg_proto_msg *msg, fg_proto_sub_category sub) FG_MUST_CHECK;
/* Appends value to the array `field`, creating it. */
int fg_proto_msg_append(fg_proto_msg *msg, const char *field,
                        struct json_object *value) FG_MUST_CHECK;
/* Appends {"sha": sha} to events. */
int fg_proto_msg_add_event(fg_proto_msg *msg, const char *sha) FG_MUST_CHECK;

/* Validates msg against its category's rules and refreshes the envelope fields. FG_EINVALID with
 * the reason, as for parse. */
int fg_proto_msg_validate(fg_proto_msg *msg) FG_MUST_CHECK;

/* Validates msg, then appends its compact JSON to out (the AMQP body). FG_EINVALID as validate;
 * FG_ETOOBIG past FG_PROTO_MESSAGE_MAX (split the batch) or out's cap; on error out is
 * unchanged. */
int fg_proto_msg_serialise(fg_buf *out, fg_proto_msg *msg) FG_MUST_CHECK;

/* ---- getters (for a message that parsed or validated; absent fields give the fallback) ---- */

/* The field as json-c sees it, borrowed; NULL when absent. */
struct json_object *fg_proto_msg_get(const fg_proto_msg *msg, const char *field);
const char *fg_proto_msg_get_string(const fg_proto_msg *msg, const char *field);
long long fg_proto_msg_get_int(const fg_proto_msg *msg, const char *field, long long fallback);
bool fg_proto_msg_get_bool(const fg_proto_msg *msg, const char *field);
/* Number of items of the array `field` (0 when absent), and the sha of events[i] (NULL when i is
 * out of range). */
size_t fg_proto_msg_count(const fg_proto_msg *msg, const char *field);
const char *fg_proto_msg_event_sha(const fg_proto_msg *msg, size_t i);
/* The commit body a message carries at index i: commits[i] of CREATION, events[i].body of
 * AWAITING_GENERATION; NULL otherwise. Borrowed. */
struct json_object *fg_proto_msg_commit_body(const fg_proto_msg *msg, size_t i);

/* ---- the commit body ---- */

typedef struct {
    const char *name;
    const char *email; /* as recorded, possibly empty */
    const char *at;    /* RFC 3339 with the commit's own offset */
} fg_proto_person;

typedef struct {
    const char *key;
    const char *value;
} fg_proto_trailer;

typedef struct {
    const char *path;
    long long insertions;
    long long deletions;
    bool binary; /* numstat "-": counts are 0 */
} fg_proto_file;

/* Typed view of a commit body. Strings are borrowed (from the json tree for one that was read,
 * from the caller for one being built). Arrays are owned by the struct after fg_proto_commit_read
 * and freed by fg_proto_commit_dispose; a caller filling one to build keeps its own arrays and
 * does not call dispose. */
typedef struct {
    const char *sha;
    const char **parents;
    size_t parent_count;
    bool is_merge;
    fg_proto_person author;
    fg_proto_person committer;
    const char *message;
    fg_proto_trailer *trailers;
    size_t trailer_count;
    long long insertions; /* stats */
    long long deletions;
    long long files_changed;
    fg_proto_file *files;
    size_t file_count;
    bool files_truncated;
} fg_proto_commit;

/* Fills out from a commit body that already validated (one of fg_proto_msg_commit_body, or
 * fg_proto_commit_parse). FG_EINVALID when body does not follow commit.schema.json; FG_ENOMEM.
 * On error out holds nothing to dispose. */
int fg_proto_commit_read(fg_proto_commit *out, struct json_object *body) FG_MUST_CHECK;
void fg_proto_commit_dispose(fg_proto_commit *commit);

/* Builds the JSON of a commit body into *out (a new reference) and validates it. FG_EINVALID
 * naming the field a caller got wrong (a bad sha, a message over the limit, invalid UTF-8...);
 * FG_ENOMEM. On error *out is NULL. */
int fg_proto_commit_build(struct json_object **out, const fg_proto_commit *commit) FG_MUST_CHECK;

/* Parses and validates the text of one commit body (as event-log stores it) into *out (a new
 * reference). Errors as fg_proto_msg_parse. */
int fg_proto_commit_parse(struct json_object **out, const char *data, size_t len) FG_MUST_CHECK;

/* Appends the compact JSON of any json-c value (a commit body for storage, say). FG_ETOOBIG at
 * out's cap; FG_ENOMEM. */
int fg_proto_json_write(fg_buf *out, struct json_object *value) FG_MUST_CHECK;

/* ---- the strict JSON scanner ---- */

/* What fg_proto_json_scan tells a caller that wants a few members of a text without building a
 * tree (the webhook reads the ids and actions of a delivery this way). Each value has a tag, an
 * int the visitor chooses: the top-level object has root_tag; a member of an object tagged
 * parent != 0 has the tag member() returns for its name; every other value (an array's element,
 * a member of an object tagged 0) has 0. Tag 0 means "of no interest": nothing in it is decoded
 * or reported, so those parts cost what a plain check costs. Names and strings are decoded
 * (escapes resolved, UTF-8) into buf; text is NULL when the decoded form is longer than cap bytes.
 * Callbacks may be NULL; they run before the scan has seen the rest of the text, so a caller
 * keeps what they report only when the scan returns 0. */
typedef struct {
    int root_tag;
    /* A member name of an object tagged parent; returns its value's tag. */
    int (*member)(int parent, const char *name, size_t len, void *payload);
    /* A string value tagged tag. */
    void (*string)(int tag, const char *text, size_t len, void *payload);
    /* A number value tagged tag, as written (RFC 8259 syntax, already checked). */
    void (*number)(int tag, const char *text, size_t len, void *payload);
    char *buf; /* cap bytes, for the decoded names and strings */
    size_t cap;
} fg_proto_json_visitor;

/* Checks in one pass that len bytes at data are one strict RFC 8259 JSON object in valid UTF-8
 * (RFC 3629), whitespace around it allowed, nested at most depth_max deep (the object is 1),
 * without NaN/Infinity, lone surrogate escapes or U+0000 in a member name: the rules of
 * fg_proto_msg_parse, which uses it with FG_PROTO_DEPTH_MAX. Reports to visitor (may be NULL) as
 * it goes, with payload. Allocates nothing and never reads past data + len. FG_EINVALID with a
 * reason: "not valid JSON: <what> at byte N", "not a JSON object", "not valid JSON: nested deeper
 * than <depth_max> at byte N". */
int fg_proto_json_scan(const char *data, size_t len, int depth_max,
                       const fg_proto_json_visitor *visitor, void *payload) FG_MUST_CHECK;

/* Appends s (len bytes) to out as valid UTF-8 without NUL: every byte that does not start a
 * well-formed sequence (and every NUL) becomes U+FFFD, as DESIGN.md asks for commit text in
 * broken encodings. FG_ETOOBIG at out's cap. */
int fg_proto_utf8_sanitise(fg_buf *out, const char *s, size_t len) FG_MUST_CHECK;

/* Cuts the string s (NUL-terminated, valid UTF-8) to at most max_chars characters by returning
 * the byte length of the longest prefix that fits and ends on a character boundary. */
size_t fg_proto_utf8_prefix(const char *s, size_t max_chars);

#endif
