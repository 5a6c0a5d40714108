/*
 * wh_json_scan (see wh_json.h). The rules are proto's reader's (proto/src/json.c: RFC 8259 and
 * RFC 3629, no lone surrogate escapes, no U+0000 in a member name, one object with only
 * whitespace around it), because a body accepted here is handed to that reader when it travels
 * as a FORGE_EVENT payload: a body it would refuse must be refused at the door, with a 400, rather
 * than sit in the outbox forever. Unlike proto's reader this one decodes the few member names and
 * values intake needs, in the same pass, so a delivery costs one linear scan and no tree.
 */
#include "wh_json.h"
#include "fg/text.h"

#include <stdint.h>
#include <string.h>

#define STR_(x) #x
#define STR(x)  STR_(x)

#define NAME_MAX_BYTES 24 /* longest member name we look for is "object_attributes" */

/* What a value at the current place is to intake. */
typedef enum {
    ROLE_NONE,
    ROLE_ROOT,
    ROLE_REPOSITORY, /* root.repository */
    ROLE_PROJECT,    /* root.project */
    ROLE_OA,         /* root.object_attributes */
    ROLE_REPOSITORY_ID,
    ROLE_PROJECT_ID,
    ROLE_TOP_PROJECT_ID,
    ROLE_ACTION,
    ROLE_OA_ACTION
} role;

typedef struct {
    const unsigned char *start;
    const unsigned char *p;
    const unsigned char *end;
    int depth;
    wh_json_facts *facts;
} scanner;

/* A decoded string, cut at cap bytes (overflow says so). */
typedef struct {
    char *buf;
    size_t cap;
    size_t len;
    bool overflow;
    bool control; /* it holds a character below U+0020 or U+007F */
} decoded;

static int scan_value(scanner *s, role r);

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

static void put_code_point(decoded *d, unsigned cp)
{
    unsigned char u[4];
    size_t n;

    if (d == NULL)
        return;
    if (cp < 0x20 || cp == 0x7F)
        d->control = true;
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
         * payload is long plain strings (messages, URLs), and this loop was the scan's cost. */
        while (s->end - s->p >= 8 && plain8(s->p))
            s->p += 8;
        while (s->p < s->end && *s->p >= 0x20 && *s->p < 0x80 && *s->p != '"' && *s->p != '\\')
            s->p++;
        put_bytes(d, run, (size_t)(s->p - run));
        if (d != NULL) {
            for (const unsigned char *q = run; q < s->p; q++)
                d->control |= *q == 0x7F;
        }
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

static int scan_number(scanner *s, char *id_out, bool *has_id)
{
    const unsigned char *from = s->p;
    bool plain = true;

    if (*s->p == '-') {
        s->p++;
        plain = false;
    }
    if (s->p < s->end && *s->p == '0')
        s->p++;
    else if (digits(s) == 0)
        return syntax_error(s, "bad number");
    if (s->p < s->end && *s->p == '.') {
        s->p++;
        plain = false;
        if (digits(s) == 0)
            return syntax_error(s, "bad number");
    }
    if (s->p < s->end && (*s->p == 'e' || *s->p == 'E')) {
        s->p++;
        plain = false;
        if (s->p < s->end && (*s->p == '+' || *s->p == '-'))
            s->p++;
        if (digits(s) == 0)
            return syntax_error(s, "bad number");
    }
    if (id_out != NULL && plain && (size_t)(s->p - from) <= WH_JSON_ID_DIGITS_MAX) {
        memcpy(id_out, from, (size_t)(s->p - from));
        id_out[s->p - from] = '\0';
        *has_id = true;
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

/* The role of member `name` inside a value of role `parent`; clears what that member held, since
 * the last occurrence of a name is the one that counts. */
static role member_role(scanner *s, role parent, const decoded *name)
{
    static const struct {
        role parent;
        const char *name;
        role child;
    } table[] = {
        {ROLE_ROOT, "repository", ROLE_REPOSITORY}, {ROLE_ROOT, "project", ROLE_PROJECT},
        {ROLE_ROOT, "object_attributes", ROLE_OA},  {ROLE_ROOT, "project_id", ROLE_TOP_PROJECT_ID},
        {ROLE_ROOT, "action", ROLE_ACTION},         {ROLE_REPOSITORY, "id", ROLE_REPOSITORY_ID},
        {ROLE_PROJECT, "id", ROLE_PROJECT_ID},      {ROLE_OA, "action", ROLE_OA_ACTION},
    };
    wh_json_facts *f = s->facts;

    if (name->overflow)
        return ROLE_NONE;
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (table[i].parent != parent || strlen(table[i].name) != name->len ||
            memcmp(table[i].name, name->buf, name->len) != 0)
            continue;
        switch (table[i].child) {
        case ROLE_REPOSITORY:
        case ROLE_REPOSITORY_ID:
            f->has_repository_id = false;
            break;
        case ROLE_PROJECT:
        case ROLE_PROJECT_ID:
            f->has_project_id = false;
            break;
        case ROLE_OA:
        case ROLE_OA_ACTION:
            f->has_oa_action = false;
            break;
        case ROLE_TOP_PROJECT_ID:
            f->has_top_project_id = false;
            break;
        case ROLE_ACTION:
            f->has_action = false;
            break;
        default:
            break;
        }
        return table[i].child;
    }
    return ROLE_NONE;
}

static bool has_children_of_interest(role r)
{
    return r == ROLE_ROOT || r == ROLE_REPOSITORY || r == ROLE_PROJECT || r == ROLE_OA;
}

/* Members or elements between the brackets; s->p is on the opening one. */
static int scan_container(scanner *s, bool object, role r)
{
    unsigned char close = object ? '}' : ']';
    char name_buf[NAME_MAX_BYTES];
    int rc;

    if (++s->depth > WH_JSON_DEPTH_MAX)
        return syntax_error(s, "nested deeper than " STR(WH_JSON_DEPTH_MAX));
    s->p++;
    skip_space(s);
    if (s->p < s->end && *s->p == close) {
        s->p++;
        s->depth--;
        return 0;
    }
    for (;;) {
        role child = ROLE_NONE;

        if (object) {
            decoded name = {name_buf, sizeof(name_buf), 0, false, false};
            bool wanted = has_children_of_interest(r);

            if (s->p == s->end || *s->p != '"')
                return syntax_error(s, "member name expected");
            if ((rc = scan_string(s, true, wanted ? &name : NULL)) < 0)
                return rc;
            if (wanted)
                child = member_role(s, r, &name);
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

/* An action is kept when it is 1..FG_PROTO_ACTION_MAX characters of plain text. */
static int scan_action(scanner *s, char *out, bool *has)
{
    decoded d = {out, WH_JSON_ACTION_BYTES_MAX, 0, false, false};
    int rc = scan_string(s, false, &d);
    size_t chars = 0;

    if (rc < 0)
        return rc;
    for (size_t i = 0; i < d.len; i++)
        chars += ((unsigned char)out[i] & 0xC0) != 0x80;
    out[d.overflow ? 0 : d.len] = '\0';
    *has = !d.overflow && !d.control && chars >= 1 && chars <= FG_PROTO_ACTION_MAX;
    return 0;
}

static int scan_string_value(scanner *s, role r)
{
    if (r == ROLE_ACTION)
        return scan_action(s, s->facts->action, &s->facts->has_action);
    if (r == ROLE_OA_ACTION)
        return scan_action(s, s->facts->oa_action, &s->facts->has_oa_action);
    return scan_string(s, false, NULL);
}

static int scan_number_value(scanner *s, role r)
{
    wh_json_facts *f = s->facts;

    if (r == ROLE_REPOSITORY_ID)
        return scan_number(s, f->repository_id, &f->has_repository_id);
    if (r == ROLE_PROJECT_ID)
        return scan_number(s, f->project_id, &f->has_project_id);
    if (r == ROLE_TOP_PROJECT_ID)
        return scan_number(s, f->top_project_id, &f->has_top_project_id);
    return scan_number(s, NULL, NULL);
}

static int scan_value(scanner *s, role r)
{
    skip_space(s);
    if (s->p == s->end)
        return syntax_error(s, "unexpected end");
    switch (*s->p) {
    case '{':
        /* only objects carry the members we look for */
        return scan_container(s, true, has_children_of_interest(r) ? r : ROLE_NONE);
    case '[':
        return scan_container(s, false, ROLE_NONE);
    case '"':
        return scan_string_value(s, r);
    case 't':
        return scan_literal(s, "true");
    case 'f':
        return scan_literal(s, "false");
    case 'n':
        return scan_literal(s, "null");
    default:
        if (*s->p == '-' || (*s->p >= '0' && *s->p <= '9'))
            return scan_number_value(s, r);
        return syntax_error(s, "unexpected character");
    }
}

int wh_json_scan(wh_json_facts *out, const char *body, size_t len)
{
    scanner s = {(const unsigned char *)body, (const unsigned char *)body,
                 (const unsigned char *)body + len, 0, out};
    int rc;

    memset(out, 0, sizeof(*out));
    if (body == NULL)
        return fg_error_set(FG_EINVALID, "not valid JSON: no data");
    skip_space(&s);
    if (s.p == s.end || *s.p != '{')
        return fg_error_set(FG_EINVALID, "not a JSON object");
    if ((rc = scan_value(&s, ROLE_ROOT)) < 0) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    skip_space(&s);
    if (s.p != s.end) {
        memset(out, 0, sizeof(*out));
        return syntax_error(&s, "trailing characters");
    }
    return 0;
}
