/*
 * The strict JSON reader in front of json-c, and the one scanner behind every strict JSON check
 * (fg_proto_json_scan in fg/proto.h; the webhook's intake uses it with a visitor). json-c 0.16,
 * even with JSON_TOKENER_STRICT, accepts NaN, single-quoted strings and raw tabs, and its UTF-8
 * check lets overlong forms, encoded surrogates and code points past U+10FFFF through; it also
 * turns "\u0000" in a member name into a shorter name. A peer must not be able to exploit the
 * difference between what a Python or JavaScript consumer and we read, so every message is first
 * checked here against RFC 8259 and RFC 3629 (one linear pass, recursion bounded by the caller's
 * depth limit) and only then handed to json-c to build the tree. There is one scanner, not a
 * checker here and a copy in the webhook, so that a body the webhook accepts at its door is
 * exactly one this reader accepts when it travels inside a FORGE_EVENT.
 */
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "internal.h"
#include "fg/text.h"

typedef struct {
    const unsigned char *start;
    const unsigned char *p;
    const unsigned char *end;
    int depth;
    int depth_max;
    const fg_proto_json_visitor *visitor; /* NULL: a plain check */
    void *payload;
} scanner;

/* A name or string being decoded for the visitor into its buffer; overflow once it does not fit
 * (the rest is still checked, no longer copied). */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow;
} decoded;

static int scan_value(scanner *s, int tag);

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

static void put_bytes(decoded *d, const void *bytes, size_t n)
{
    if (d == NULL || d->overflow)
        return;
    if (d->len + n > d->cap) {
        d->overflow = true;
        return;
    }
    memcpy(d->buf + d->len, bytes, n);
    d->len += n;
}

/* An escaped code point, written back as UTF-8. */
static void put_code_point(decoded *d, unsigned cp)
{
    unsigned char u[4];
    size_t n;

    if (d == NULL)
        return;
    if (cp < 0x80) {
        u[0] = (unsigned char)cp;
        n = 1;
    } else if (cp < 0x800) {
        u[0] = (unsigned char)(0xC0 | cp >> 6);
        u[1] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 2;
    } else if (cp < 0x10000) {
        u[0] = (unsigned char)(0xE0 | cp >> 12);
        u[1] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 3;
    } else {
        u[0] = (unsigned char)(0xF0 | cp >> 18);
        u[1] = (unsigned char)(0x80 | (cp >> 12 & 0x3F));
        u[2] = (unsigned char)(0x80 | (cp >> 6 & 0x3F));
        u[3] = (unsigned char)(0x80 | (cp & 0x3F));
        n = 4;
    }
    put_bytes(d, u, n);
}

/* "\uXXXX" with s->p on the 'u'; a high surrogate must be followed by an escaped low one. */
static int scan_unicode_escape(scanner *s, bool is_key, decoded *d)
{
    unsigned unit, low;

    if (fg_hex4(&unit, s->p + 1, s->end) < 0)
        return syntax_error(s, "bad \\u escape");
    s->p += 5;
    if (unit == 0 && is_key)
        return syntax_error(s, "U+0000 in a member name");
    if (unit >= 0xDC00 && unit <= 0xDFFF)
        return syntax_error(s, "lone low surrogate escape");
    if (unit < 0xD800 || unit > 0xDBFF) {
        put_code_point(d, unit);
        return 0;
    }
    if (s->end - s->p < 6 || s->p[0] != '\\' || s->p[1] != 'u' ||
        fg_hex4(&low, s->p + 2, s->end) < 0 || low < 0xDC00 || low > 0xDFFF)
        return syntax_error(s, "lone high surrogate escape");
    s->p += 6;
    put_code_point(d, 0x10000 + ((unit - 0xD800) << 10) + (low - 0xDC00));
    return 0;
}

/* The escape with s->p just past the backslash. */
static int scan_escape(scanner *s, bool is_key, decoded *d)
{
    static const char from[] = "\"\\/bfnrt", to[] = "\"\\/\b\f\n\r\t";
    const char *hit;

    if (*s->p == 'u')
        return scan_unicode_escape(s, is_key, d);
    if (*s->p == '\0' || (hit = strchr(from, *s->p)) == NULL)
        return syntax_error(s, "bad escape");
    put_code_point(d, (unsigned char)to[hit - from]);
    s->p++;
    return 0;
}

/* Whether the 8 bytes at p are all plain string content: 0x20..0x7F, neither '"' nor '\\'. The
 * classic word tricks (a byte below n, a zero byte) are exact about whether such a byte exists,
 * which is all that is asked here. */
static bool plain8(const unsigned char *p)
{
    const uint64_t ones = 0x0101010101010101u, highs = 0x8080808080808080u;
    uint64_t x, quote, backslash;

    memcpy(&x, p, sizeof(x));
    quote = x ^ (ones * '"');
    backslash = x ^ (ones * '\\');
    return ((x & highs) | ((x - ones * 0x20) & ~x & highs) | ((quote - ones) & ~quote & highs) |
            ((backslash - ones) & ~backslash & highs)) == 0;
}

/* A string with s->p on the opening quote; decoded into d when d is not NULL. */
static int scan_string(scanner *s, bool is_key, decoded *d)
{
    s->p++;
    while (s->p < s->end) {
        const unsigned char *run = s->p;
        unsigned char c;
        size_t n;

        /* The common case, printable ASCII, 8 bytes at a time then one by one: most of a forge
         * payload or a message is long plain strings (messages, URLs, shas), and this loop was
         * the scan's cost. */
        while (s->end - s->p >= 8 && plain8(s->p))
            s->p += 8;
        while (s->p < s->end && *s->p >= 0x20 && *s->p < 0x80 && *s->p != '"' && *s->p != '\\')
            s->p++;
        put_bytes(d, run, (size_t)(s->p - run));
        if (s->p == s->end)
            break;
        c = *s->p;
        if (c == '"') {
            s->p++;
            return 0;
        }
        if (c < 0x20)
            return syntax_error(s, "control character in a string");
        if (c == '\\') {
            int rc;
            if (++s->p == s->end)
                break;
            if ((rc = scan_escape(s, is_key, d)) < 0)
                return rc;
            continue;
        }
        if ((n = fg_utf8_sequence(s->p, s->end)) == 0)
            return syntax_error(s, "invalid UTF-8");
        put_bytes(d, s->p, n);
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

/* A string with s->p on its quote: a member name in an object tagged tag (is_key; *child gets the
 * tag of its value) or a string value tagged tag. It is decoded only when the visitor is told
 * about it, so names and strings of no interest cost what a plain check costs. inline: it runs
 * once per string, and as a call of its own it made the webhook's scan 15% slower. */
static inline int scan_text(scanner *s, bool is_key, int tag, int *child)
{
    const fg_proto_json_visitor *v = s->visitor;
    decoded d;
    const char *text;
    int rc;

    if (tag == 0 || v == NULL || (is_key ? v->member == NULL : v->string == NULL))
        return scan_string(s, is_key, NULL);
    d = (decoded){v->buf, v->cap, 0, false};
    if ((rc = scan_string(s, is_key, &d)) < 0)
        return rc;
    text = d.overflow ? NULL : d.buf;
    if (is_key)
        *child = v->member(tag, text, d.len, s->payload);
    else
        v->string(tag, text, d.len, s->payload);
    return 0;
}

/* Members or elements between the brackets; s->p is on the opening one. Only an object's members
 * carry a tag: elements of an array are of no interest to any visitor so far. */
static int scan_container(scanner *s, bool object, int tag)
{
    unsigned char close = object ? '}' : ']';
    int rc;

    if (++s->depth > s->depth_max)
        return fg_error_set(FG_EINVALID, "not valid JSON: nested deeper than %d at byte %zu",
                            s->depth_max, (size_t)(s->p - s->start));
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        int child = 0;

        if (object) {
            if (s->p == s->end || *s->p != '"')
                return syntax_error(s, "member name expected");
            if ((rc = scan_text(s, true, tag, &child)) < 0)
                return rc;
            skip_space(s);
            if (s->p == s->end || *s->p != ':')
                return syntax_error(s, "':' expected");
            s->p++;
        }
        if ((rc = scan_value(s, child)) < 0)
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

static int scan_number_value(scanner *s, int tag)
{
    const fg_proto_json_visitor *v = s->visitor;
    const unsigned char *from = s->p;
    int rc;

    if ((rc = scan_number(s)) < 0)
        return rc;
    if (tag != 0 && v != NULL && v->number != NULL)
        v->number(tag, (const char *)from, (size_t)(s->p - from), s->payload);
    return 0;
}

static int scan_value(scanner *s, int tag)
{
    skip_space(s);
    if (s->p == s->end)
        return syntax_error(s, "unexpected end");
    switch (*s->p) {
    case '{':
        return scan_container(s, true, tag);
    case '[':
        return scan_container(s, false, 0);
    case '"':
        return scan_text(s, false, tag, NULL);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return scan_number_value(s, tag);
        return syntax_error(s, "unexpected character");
    }
}

int fg_proto_json_scan(const char *data, size_t len, int depth_max,
                       const fg_proto_json_visitor *visitor, void *payload)
{
    const unsigned char *text = (const unsigned char *)data;
    scanner s;
    int rc;

    if (data == NULL)
        return fg_error_set(FG_EINVALID, "not valid JSON: no data");
    s = (scanner){text, text, text + len, 0, depth_max, visitor, payload};
    skip_space(&s);
    if (s.p == s.end || *s.p != '{')
        return fg_error_set(FG_EINVALID, "not a JSON object");
    if ((rc = scan_value(&s, visitor != NULL ? visitor->root_tag : 0)) < 0)
        return rc;
    skip_space(&s);
    if (s.p != s.end)
        return syntax_error(&s, "trailing characters");
    return 0;
}

int fg_proto__json_check(const char *data, size_t len)
{
    return fg_proto_json_scan(data, len, FG_PROTO_DEPTH_MAX, NULL, NULL);
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
