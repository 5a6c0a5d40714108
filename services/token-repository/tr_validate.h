/*
 * What token-repository accepts from a caller: a project id in the path, and the PUT body
 * {"token":"...","expiresAt":"<RFC 3339>"|null}. Every refusal is FG_EINVALID with a message that
 * starts with the field it is about and never repeats the value (a token pasted into the wrong
 * field must not come back in an error or a log line). Pure functions, any thread.
 */
#ifndef TR_VALIDATE_H
#define TR_VALIDATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "fg/error.h"

#define TR_TOKEN_MAX         4096        /* bytes of a token */
#define TR_TIME_TEXT_MAX     40          /* an RFC 3339 text as we keep or print it, with NUL */
#define TR_TIME_FRACTION_MAX 9           /* digits of a fraction of a second */
#define TR_BODY_MAX          (64 * 1024) /* PUT body: a 4 KiB token fits even fully \u-escaped */
#define TR_JSON_DEPTH_MAX    4           /* nesting json-c may enter in a PUT body */
#define TR_YEAR_MIN          1970
#define TR_YEAR_MAX          9999

/* Parses a project id: decimal digits, no sign, no leading zero, 1..INT64_MAX. FG_EINVALID
 * otherwise (also for NULL). */
int tr_parse_project_id(int64_t *out, const char *text) FG_MUST_CHECK;

/* Checks a token: 1..TR_TOKEN_MAX bytes, each printable ASCII without space (0x21-0x7e), which
 * every GitHub and GitLab token format is. FG_EINVALID otherwise. */
int tr_check_token(const char *token, size_t len) FG_MUST_CHECK;

/* Checks an RFC 3339 date-time (section 5.6: date "T" time, seconds required, optional fraction
 * of at most TR_TIME_FRACTION_MAX digits, "Z" or a +hh:mm/-hh:mm offset; 't' and 'z' accepted)
 * with real calendar days, a leap second allowed, and a year in TR_YEAR_MIN..TR_YEAR_MAX. On
 * success out holds it with 'T' and 'Z' upper-cased, as PostgreSQL reads it. FG_EINVALID
 * otherwise. */
int tr_parse_rfc3339(char out[TR_TIME_TEXT_MAX], const char *text, size_t len) FG_MUST_CHECK;

/* A parsed PUT body. token points into json-c's copy, which tr_put_request_dispose wipes. */
typedef struct {
    const char *token;
    size_t token_len;
    bool has_expiry;
    char expires_at[TR_TIME_TEXT_MAX]; /* normalised RFC 3339 when has_expiry */
    void *root;                        /* json_object of the body; owned */
} tr_put_request;

/* Parses and checks a PUT body (len bytes; JSON, an object with "token" and optionally
 * "expiresAt", nothing else). FG_EINVALID with the reason naming the field; FG_ENOMEM. Call
 * tr_put_request_dispose afterwards in every case. */
int tr_put_request_parse(tr_put_request *out, const char *body, size_t len) FG_MUST_CHECK;

/* Wipes the token's bytes and frees the parsed body; safe on a zeroed or failed request. */
void tr_put_request_dispose(tr_put_request *r);

#endif
