/*
 * Cross-file internals of libfgproto: the strict JSON reader (json.c), the rule tables and the
 * validator (validate.c). Not installed; services use fg/proto.h only.
 */
#ifndef FG_PROTO_INTERNAL_H
#define FG_PROTO_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include <json-c/json.h>

#include "fg/proto.h"

/* Names indexed by the enums, each list ended by NULL (sub-categories start at index 1). */
extern const char *const fg_proto__category_names[FG_PROTO_CATEGORY_COUNT + 1];
extern const char *const fg_proto__sub_category_names[FG_PROTO_SUB_COUNT + 1];
extern const char *const fg_proto__forge_names[4];

/* fg_proto_json_scan without a visitor, at FG_PROTO_DEPTH_MAX: checks that len bytes are one
 * strict RFC 8259 JSON object in valid UTF-8, nested at most FG_PROTO_DEPTH_MAX deep, without
 * NaN/Infinity, lone surrogate escapes or U+0000 in a member name. FG_EINVALID with "not valid
 * JSON: <what> at byte N". */
int fg_proto__json_check(const char *data, size_t len) FG_MUST_CHECK;

/* fg_proto__json_check, then json-c builds the tree into *out (a new reference). FG_ETOOBIG past
 * FG_PROTO_MESSAGE_MAX, FG_EINVALID, FG_ENOMEM. */
int fg_proto__json_parse(struct json_object **out, const char *data, size_t len) FG_MUST_CHECK;

/* True when s (len bytes) is well-formed UTF-8 (no overlong forms, surrogates or > U+10FFFF). */
bool fg_proto__utf8_valid(const char *s, size_t len);

/* Number of characters of valid UTF-8 text s (len bytes). */
size_t fg_proto__utf8_chars(const char *s, size_t len);

/* Validates msg->root against its category (and sub-category) and fills the envelope fields of
 * msg. FG_EINVALID with a reason naming the field. */
int fg_proto__validate_message(fg_proto_msg *msg) FG_MUST_CHECK;

/* Validates a commit body; reasons are prefixed with `where` ("" for a body on its own). */
int fg_proto__validate_commit(struct json_object *body, const char *where) FG_MUST_CHECK;

#endif
