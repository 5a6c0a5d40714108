/*
 * The webhook's one pass over a delivery body: checks that it is one strict RFC 8259 JSON object
 * in valid UTF-8 (the rules of proto's reader, so whatever is accepted here can later travel
 * inside a FORGE_EVENT), and picks out on the way the few members intake needs: repository.id,
 * project.id, project_id, action and object_attributes.action. It builds no tree and allocates
 * nothing. Thread affinity: none.
 */
#ifndef WH_JSON_H
#define WH_JSON_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/error.h"
#include "fg/proto.h"

/* A body may nest one level less than a message: FORGE_EVENT carries it as `payload`. */
#define WH_JSON_DEPTH_MAX     (FG_PROTO_DEPTH_MAX - 1)
#define WH_JSON_ID_DIGITS_MAX 18 /* forge ids: below 10^18, so they fit a bigint */
/* action values kept: FG_PROTO_ACTION_MAX characters of at most 4 bytes each */
#define WH_JSON_ACTION_BYTES_MAX (FG_PROTO_ACTION_MAX * 4)

/* What the scan found. An id is present only when the member is a non-negative integer of at
 * most WH_JSON_ID_DIGITS_MAX digits; an action only when it is a string of 1..FG_PROTO_ACTION_MAX
 * characters without control characters. A member named twice counts as its last occurrence,
 * as json-c reads it. */
typedef struct {
    bool has_repository_id;  /* repository.id (GitHub) */
    bool has_project_id;     /* project.id (GitLab) */
    bool has_top_project_id; /* project_id (GitLab) */
    bool has_action;         /* action (GitHub) */
    bool has_oa_action;      /* object_attributes.action (GitLab) */
    char repository_id[WH_JSON_ID_DIGITS_MAX + 1];
    char project_id[WH_JSON_ID_DIGITS_MAX + 1];
    char top_project_id[WH_JSON_ID_DIGITS_MAX + 1];
    char action[WH_JSON_ACTION_BYTES_MAX + 1];
    char oa_action[WH_JSON_ACTION_BYTES_MAX + 1];
} wh_json_facts;

/*
 * Scans len bytes at body. Returns 0 with *out filled when the body is one JSON object as above;
 * FG_EINVALID otherwise, with a reason naming what and where ("not valid JSON: invalid UTF-8 at
 * byte 349", "not a JSON object", "nested deeper than 31"). Never reads past body + len.
 */
int wh_json_scan(wh_json_facts *out, const char *body, size_t len) FG_MUST_CHECK;

#endif
