/*
 * The strict JSON reader in front of json-c. json-c 0.16, even with JSON_TOKENER_STRICT, accepts
 * NaN, single-quoted strings and raw tabs, and its UTF-8 check lets overlong forms, encoded
 * surrogates and code points past U+10FFFF through; it also turns "\u0000" in a member name
 * into a shorter name. A peer must not be able to exploit the difference between what a
 * Python or JavaScript consumer and we read, so every message is first checked here against RFC
 * 8259 and RFC 3629 (one linear pass, recursion bounded by FG_PROTO_DEPTH_MAX) and only then
 * handed to json-c to build the tree.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "fg/text.h"

#define STR_(x) #x
#define STR(x)  STR_(x)

typedef struct {
    const unsigned char *start;
    const unsigned char *p;
    const unsigned char *end;
    int depth;
} scanner;

static int scan_value(scanner *s);

static int syntax_error(const scanner *s, const char *what)
{
    return fg_error_set(FG_EINVALID, "not valid JSON: %s at byte %zu", what,
                        (size_t)(s->p - s->start));
}

static void skip_space(scanner *s)
{
    while (s->p < s->end && (*s->p == ' ' || *s->p == '\t' || *s->p == '\n' || *s->p == '\r'))
        s->p++;
}

/* "\uXXXX" with s->p on the 'u'; a high surrogate must be followed by an escaped low one. */
static int scan_unicode_escape(scanner *s, bool is_key)
{
    unsigned unit, low;

    if (fg_hex4(&unit, s->p + 1, s->end) < 0)
        return syntax_error(s, "bad \\u escape");
    s->p += 5;
    if (unit == 0 && is_key)
        return syntax_error(s, "U+0000 in a member name");
    if (unit >= 0xDC00 && unit <= 0xDFFF)
        return syntax_error(s, "lone low surrogate escape");
    if (unit < 0xD800 || unit > 0xDBFF)
        return 0;
    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
        fg_hex4(&low, s->p + 2, s->end) < 0 || low < 0xDC00 || low > 0xDFFF)
        return syntax_error(s, "lone high surrogate escape");
    s->p += 6;
    return 0;
}

static int scan_string(scanner *s, bool is_key)
{
    s->p++; /* the opening quote */
    while (s->p < s->end) {
        unsigned char c = *s->p;
        size_t n;

        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return syntax_error(s, "control character in a string");
        if (c == '\\') {
            if (++s->p == s->end)
                break;
            if (*s->p == 'u') {
                int rc = scan_unicode_escape(s, is_key);
                if (rc < 0)
                    return rc;
                continue;
            }
            if (strchr("\"\\/bfnrt", *s->p) == NULL || *s->p == '\0')
                return syntax_error(s, "bad escape");
            s->p++;
            continue;
        }
        if ((n = fg_utf8_sequence(s->p, s->end)) == 0)
            return syntax_error(s, "invalid UTF-8");
        s->p += n;
    }
    return syntax_error(s, "unterminated string");
}

static size_t digits(scanner *s)
{
    const unsigned char *from = s->p;

    while (s->p < s->end && *s->p >= '0' && *s->p <= '9')
        s->p++;
    return (size_t)(s->p - from);
}

static int scan_number(scanner *s)
{
    if (*s->p == '-')
        s->p++;
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (digits(s) == 0)
        return syntax_error(s, "bad number");
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        if (digits(s) == 0)
            return syntax_error(s, "bad number");
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (digits(s) == 0)
            return syntax_error(s, "bad number");
    }
    return 0;
}

static int scan_literal(scanner *s, const char *word)
{
    size_t n = strlen(word);

    if ((size_t)(s->end - s->p) < n || memcmp(s->p, word, n) != 0)
        return syntax_error(s, "unexpected character");
    s->p += n;
    return 0;
}

/* Members or elements between the brackets; s->p is on the opening one. */
static int scan_container(scanner *s, bool object)
{
    unsigned char close = object ? '}' : ']';
    int rc;

    if (++s->depth > FG_PROTO_DEPTH_MAX)
        return syntax_error(s, "nested deeper than " STR(FG_PROTO_DEPTH_MAX));
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        if (object) {
            if (s->p == s->end || *s->p != '"')
                return syntax_error(s, "member name expected");
            if ((rc = scan_string(s, true)) < 0)
                return rc;
            skip_space(s);
            if (s->p == s->end || *s->p != ':')
                return syntax_error(s, "':' expected");
            s->p++;
        }
        if ((rc = scan_value(s)) < 0)
            return rc;
        skip_space(s);
        if (s->p < s->end && *s->p == ',') {
            s->p++;
            skip_space(s);
            continue;
        }
        if (s->p < s->end && *s->p == close)
            break;
        return syntax_error(s, object ? "',' or '}' expected" : "',' or ']' expected");
    }
    s->p++;
    s->depth--;
    return 0;
}

static int scan_value(scanner *s)
{
    skip_space(s);
    if (s->p == s->end)
        return syntax_error(s, "unexpected end");
    switch (*s->p) {
    case '{':
        return scan_container(s, true);
    case '[':
        return scan_container(s, false);
    case '"':
        return scan_string(s, false);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return scan_number(s);
        return syntax_error(s, "unexpected character");
    }
}

int fg_proto__json_check(const char *data, size_t len)
{
    scanner s = {(const unsigned char *)data, (const unsigned char *)data,
                 (const unsigned char *)data + len, 0};
    int rc;

    if (data == NULL)
        return fg_error_set(FG_EINVALID, "not valid JSON: no data");
    skip_space(&s);
    if (s.p == s.end || *s.p != '{')
        return fg_error_set(FG_EINVALID, "not a JSON object");
    if ((rc = scan_value(&s)) < 0)
        return rc;
    skip_space(&s);
    if (s.p != s.end)
        return syntax_error(&s, "trailing characters");
    return 0;
}

int fg_proto__json_parse(struct json_object **out, const char *data, size_t len)
{
    struct json_tokener *tok = NULL;
    struct json_object *root = NULL;
    int rc = FG_ERROR;

    *out = NULL;
    if (len > FG_PROTO_MESSAGE_MAX)
        return fg_error_set(FG_ETOOBIG, "message of %zu bytes exceeds %d", len,
                            FG_PROTO_MESSAGE_MAX);
    if ((rc = fg_proto__json_check(data, len)) < 0)
        return rc;
    /* json-c counts depth slightly differently; the scanner has already enforced ours. */
    if ((tok = json_tokener_new_ex(FG_PROTO_DEPTH_MAX + 2)) == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory");
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT);
    root = json_tokener_parse_ex(tok, data, (int)len);
    /* After the scanner accepted the text, json-c fails only for want of memory (it then
     * returns NULL without an error code) or on a disagreement we report rather than trust. */
    if (json_tokener_get_error(tok) != json_tokener_success) {
        rc = fg_error_set(FG_EINVALID, "not valid JSON: %s",
                          json_tokener_error_desc(json_tokener_get_error(tok)));
        goto done;
    }
    if (root == NULL) {
        rc = fg_error_set(FG_ENOMEM, "out of memory parsing JSON");
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

bool fg_proto__utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s, *end = p + len;

    while (p < end) {
        size_t n = fg_utf8_sequence(p, end);
        if (n == 0)
            return false;
        p += n;
    }
    return true;
}

size_t fg_proto__utf8_chars(const char *s, size_t len)
{
    size_t chars = 0;

    for (size_t i = 0; i < len; i++)
        chars += ((unsigned char)s[i] & 0xC0) != 0x80;
    return chars;
}

size_t fg_proto_utf8_prefix(const char *s, size_t max_chars)
{
    size_t i = 0, chars = 0;

    for (; s[i] != '\0'; i++) {
        if (((unsigned char)s[i] & 0xC0) != 0x80 && chars++ == max_chars)
            break;
    }
    return i;
}

int fg_proto_utf8_sanitise(fg_buf *out, const char *s, size_t len)
{
    static const char replacement[] = "\xEF\xBF\xBD";
    const unsigned char *p = (const unsigned char *)s, *end = p + len, *run = p;
    size_t mark = out->len;
    int rc = 0;

    while (p < end && rc == 0) {
        size_t n = *p == 0 ? 0 : fg_utf8_sequence(p, end);
        if (n > 0) {
            p += n;
            continue;
        }
        if ((rc = fg_buf_put(out, run, (size_t)(p - run))) == 0)
            rc = fg_buf_put(out, replacement, 3);
        run = ++p;
    }
    if (rc == 0)
        rc = fg_buf_put(out, run, (size_t)(p - run));
    if (rc < 0) {
        out->len = mark;
        out->ptr[mark] = '\0';
    }
    return rc;
}

int fg_proto_json_write(fg_buf *out, struct json_object *value)
{
    size_t len = 0;
    const char *text = json_object_to_json_string_length(
        value, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, &len);

    if (text == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory serialising JSON");
    return fg_buf_put(out, text, len);
}
