/*
 * Input checks of token-repository (see tr_validate.h).
 */
#include "tr_validate.h"

#include <json-c/json.h>
#include <stdint.h>
#include <string.h>

#include "fg/crypto.h"

#define PROJECT_ID_DIGITS_MAX 19 /* INT64_MAX has 19 digits */

/* ---- project ids and tokens -------------------------------------------------------------- */

int tr_parse_project_id(int64_t *out, const char *text)
{
    size_t len = text ? strlen(text) : 0;
    uint64_t value = 0;

    if (len == 0 || len > PROJECT_ID_DIGITS_MAX || text[0] == '0')
        goto invalid;
    for (size_t i = 0; i < len; i++) {
        if (text[i] < '0' || text[i] > '9')
            goto invalid;
        value = value * 10 + (uint64_t)(text[i] - '0'); /* 19 digits fit in uint64 */
    }
    if (value > (uint64_t)INT64_MAX)
        goto invalid;
    *out = (int64_t)value;
    return 0;
invalid:
    return fg_error_set(FG_EINVALID,
                        "id must be a positive integer (1 to %lld, no sign, no "
                        "leading zero)",
                        (long long)INT64_MAX);
}

int tr_check_token(const char *token, size_t len)
{
    if (len == 0)
        return fg_error_set(FG_EINVALID, "token must not be empty");
    if (len > TR_TOKEN_MAX)
        return fg_error_set(FG_EINVALID, "token is longer than %d bytes", TR_TOKEN_MAX);
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)token[i];
        if (c < 0x21 || c > 0x7e)
            return fg_error_set(FG_EINVALID,
                                "token must be printable ASCII without spaces; byte %zu is not",
                                i + 1);
    }
    return 0;
}

/* ---- RFC 3339 ---------------------------------------------------------------------------- */

/* Reads exactly n decimal digits at *p; -1 when they are not all digits. */
static int digits(const char **p, const char *end, int n)
{
    int value = 0;

    if (end - *p < n)
        return -1;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        value = value * 10 + (**p - '0');
    }
    return value;
}

static bool expect(const char **p, const char *end, char c)
{
    if (*p >= end || **p != c)
        return false;
    (*p)++;
    return true;
}

static int days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

    return month == 2 && leap ? 29 : days[month - 1];
}

/* date-fullyear "-" date-month "-" date-mday, with a real day of that month. */
static bool parse_date(const char **p, const char *end)
{
    int year = digits(p, end, 4), month, day;

    if (year < TR_YEAR_MIN || year > TR_YEAR_MAX || !expect(p, end, '-'))
        return false;
    month = digits(p, end, 2);
    if (month < 1 || month > 12 || !expect(p, end, '-'))
        return false;
    day = digits(p, end, 2);
    return day >= 1 && day <= days_in_month(year, month);
}

/* partial-time: hh:mm:ss with an optional fraction; second 60 is a leap second. */
static bool parse_time(const char **p, const char *end)
{
    int hour = digits(p, end, 2), minute, second, fraction = 0;

    if (hour < 0 || hour > 23 || !expect(p, end, ':'))
        return false;
    minute = digits(p, end, 2);
    if (minute < 0 || minute > 59 || !expect(p, end, ':'))
        return false;
    second = digits(p, end, 2);
    if (second < 0 || second > 60)
        return false;
    if (!expect(p, end, '.'))
        return true;
    while (*p < end && **p >= '0' && **p <= '9' && fraction <= TR_TIME_FRACTION_MAX) {
        (*p)++;
        fraction++;
    }
    return fraction >= 1 && fraction <= TR_TIME_FRACTION_MAX;
}

/* time-offset: "Z" or +hh:mm / -hh:mm. */
static bool parse_offset(const char **p, const char *end)
{
    int hour, minute;

    if (*p < end && (**p == 'Z' || **p == 'z')) {
        (*p)++;
        return true;
    }
    if (*p >= end || (**p != '+' && **p != '-'))
        return false;
    (*p)++;
    hour = digits(p, end, 2);
    if (hour < 0 || hour > 23 || !expect(p, end, ':'))
        return false;
    minute = digits(p, end, 2);
    return minute >= 0 && minute <= 59;
}

int tr_parse_rfc3339(char out[TR_TIME_TEXT_MAX], const char *text, size_t len)
{
    const char *p = text, *end = text + len;

    if (len >= TR_TIME_TEXT_MAX || !parse_date(&p, end) || p >= end || (*p != 'T' && *p != 't'))
        goto invalid;
    p++;
    if (!parse_time(&p, end) || !parse_offset(&p, end) || p != end)
        goto invalid;
    for (size_t i = 0; i < len; i++)
        out[i] = text[i] == 't' ? 'T' : text[i] == 'z' ? 'Z' : text[i];
    out[len] = '\0';
    return 0;
invalid:
    return fg_error_set(FG_EINVALID,
                        "expiresAt must be an RFC 3339 date-time with seconds and an offset, "
                        "year %d to %d (e.g. 2030-01-31T23:59:59Z), or null",
                        TR_YEAR_MIN, TR_YEAR_MAX);
}

/* ---- the PUT body ------------------------------------------------------------------------ */

static int parse_json(json_object **out, const char *body, size_t len)
{
    json_tokener *tok = json_tokener_new_ex(TR_JSON_DEPTH_MAX);
    json_object *root = NULL;
    int rc = FG_ERROR;

    if (tok == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory parsing the body");
        goto done;
    }
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    root = json_tokener_parse_ex(tok, body, (int)len);
    if (root == NULL || json_tokener_get_error(tok) != json_tokener_success ||
        json_tokener_get_parse_end(tok) != len) {
        rc = fg_error_set(FG_EINVALID, "body must be one JSON object (%s)",
                          root == NULL ? json_tokener_error_desc(json_tokener_get_error(tok))
                                       : "trailing data after it");
        goto done;
    }
    if (!json_object_is_type(root, json_type_object)) {
        rc = fg_error_set(FG_EINVALID, "body must be a JSON object with \"token\"");
        goto done;
    }
    *out = root;
    root = NULL;
    rc = 0;
done:
    json_object_put(root);
    json_tokener_free(tok);
    return rc;
}

static int read_expiry(tr_put_request *out, json_object *value)
{
    if (value == NULL || json_object_is_type(value, json_type_null))
        return 0;
    if (!json_object_is_type(value, json_type_string))
        return fg_error_set(FG_EINVALID, "expiresAt must be a string (RFC 3339) or null");
    out->has_expiry = true;
    return tr_parse_rfc3339(out->expires_at, json_object_get_string(value),
                            (size_t)json_object_get_string_len(value));
}

int tr_put_request_parse(tr_put_request *out, const char *body, size_t len)
{
    json_object *root = NULL, *token = NULL, *expiry = NULL;
    bool has_token = false; /* json-c gives a JSON null as a NULL value */
    int rc;

    memset(out, 0, sizeof(*out));
    if (len > TR_BODY_MAX)
        return fg_error_set(FG_ETOOBIG, "body is larger than %d bytes", TR_BODY_MAX);
    if ((rc = parse_json(&root, body, len)) < 0)
        return rc;
    out->root = root;
    json_object_object_foreach(root, key, value)
    {
        if (strcmp(key, "token") == 0) {
            token = value;
            has_token = true;
        } else if (strcmp(key, "expiresAt") == 0)
            expiry = value;
        else
            return fg_error_set(FG_EINVALID,
                                "unknown field \"%.64s\" (token and expiresAt are "
                                "the fields)",
                                key);
    }
    if (!has_token)
        return fg_error_set(FG_EINVALID, "token is required");
    if (token == NULL || !json_object_is_type(token, json_type_string))
        return fg_error_set(FG_EINVALID, "token must be a string");
    out->token = json_object_get_string(token);
    out->token_len = (size_t)json_object_get_string_len(token);
    if ((rc = tr_check_token(out->token, out->token_len)) < 0)
        return rc;
    return read_expiry(out, expiry);
}

void tr_put_request_dispose(tr_put_request *r)
{
    /* json-c frees without clearing; the token's bytes are ours to scrub before they go back to
     * the allocator (the object is freed right after, so writing through it is safe) */
    if (r->token != NULL)
        fg_crypto_wipe((void *)(uintptr_t)r->token, r->token_len);
    json_object_put(r->root);
    memset(r, 0, sizeof(*r));
}
