/*
 * Trailer parsing to git 2.39's rules. The oracle is `git log --format=%(trailers:only,unfold)`:
 * pretty.c hands trailer.c the message from its first non-blank line with "no divider" set (a
 * "---" line does not end the message), trailer.c finds the block (find_trailer_start over the
 * end that ignore_non_trailer leaves) and prints each line that has a separator. Every step below
 * names the git behaviour it reproduces; tests/unit/cs_trailers_test.c checks them against the
 * git binary.
 */
#include "cs_trailers.h"

#include <stdbool.h>
#include <string.h>

#define COMMENT_CHAR '#'

/* git's own ctype (sane_ctype): ASCII only, and \v \f are not spaces. */
static bool git_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static bool git_alnum(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool starts_with(const char *s, const char *end, const char *prefix)
{
    size_t n = strlen(prefix);

    return (size_t)(end - s) >= n && memcmp(s, prefix, n) == 0;
}

/* Start of the line after the one at s (or end). */
static const char *next_line(const char *s, const char *end)
{
    const char *nl = memchr(s, '\n', (size_t)(end - s));

    return nl != NULL ? nl + 1 : end;
}

/* trailer.c is_blank_line: only spaces up to the newline (or the end). */
static bool blank_line(const char *s, const char *end)
{
    while (s < end && *s != '\n' && git_space((unsigned char)*s))
        s++;
    return s == end || *s == '\n';
}

/* trailer.c last_line: start of the last line of buf[0, len), the final newline belonging to it;
 * -1 for an empty buffer. */
static long last_line(const char *buf, size_t len)
{
    if (len == 0)
        return -1;
    for (long i = (long)len - 2; i >= 0; i--) {
        if (buf[i] == '\n')
            return i + 1;
    }
    return 0;
}

/* trailer.c find_separator with ":" only: "<token><optional blanks>:" where the token is
 * alphanumerics and '-'; the position of ':' or -1. A line starting with ':' gives 0. */
static long find_separator(const char *line, const char *end)
{
    bool blanks = false;

    for (const char *c = line; c < end; c++) {
        unsigned char ch = (unsigned char)*c;
        if (ch == ':')
            return c - line;
        if (!blanks && (git_alnum(ch) || ch == '-'))
            continue;
        if (c != line && (ch == ' ' || ch == '\t')) {
            blanks = true;
            continue;
        }
        break;
    }
    return -1;
}

/* wt_status_locate_end: a "# ---- >8 ----" scissors line cuts the message there. */
static size_t scissors_cut(const char *buf, size_t len)
{
    static const char pattern[] = "\n# ------------------------ >8 ------------------------\n";
    const char *p;

    if (starts_with(buf, buf + len, pattern + 1))
        return 0;
    p = memmem(buf, len, pattern, sizeof(pattern) - 1);
    return p != NULL ? (size_t)(p - buf) + 1 : len;
}

/* commit.c ignore_non_trailer: where the message really ends, before trailing comment lines,
 * blank lines and an old "Conflicts:" block. A run starting at offset 0 does not count: git keeps
 * "no run yet" as boc == 0 too. */
static size_t message_end(const char *buf, size_t len)
{
    size_t boc = 0, bol = 0, cutoff = scissors_cut(buf, len);
    bool conflicts = false;

    while (bol < cutoff) {
        size_t next = (size_t)(next_line(buf + bol, buf + len) - buf);
        if (buf[bol] == COMMENT_CHAR || buf[bol] == '\n') {
            if (boc == 0)
                boc = bol;
        } else if (starts_with(buf + bol, buf + len, "Conflicts:\n")) {
            conflicts = true;
            if (boc == 0)
                boc = bol;
        } else if (conflicts && buf[bol] == '\t') {
            /* a path of the conflicts block */
        } else if (boc != 0) {
            boc = 0;
            conflicts = false;
        }
        bol = next;
    }
    return boc != 0 ? boc : cutoff;
}

/* trailer.c find_trailer_start: walking up from the end, the block is the lines after the first
 * blank line met when they are all trailers, or hold a git-generated line and are at least 25%
 * trailers. The title paragraph never counts. Returns len when there is no block. */
static size_t block_start(const char *buf, size_t len)
{
    static const char *const generated[] = {"Signed-off-by: ", "(cherry picked from commit "};
    const char *end = buf + len, *s = buf;
    int trailers = 0, others = 0, continuations = 0;
    bool only_blank = true, recognised = false;
    long end_of_title, l;

    for (; s < end; s = next_line(s, end)) {
        if (*s == COMMENT_CHAR)
            continue;
        if (blank_line(s, end))
            break;
    }
    end_of_title = s - buf;
    for (l = last_line(buf, len); l >= end_of_title; l = last_line(buf, (size_t)l)) {
        const char *bol = buf + l;
        long sep;
        bool is_generated = false;

        if (*bol == COMMENT_CHAR) {
            others += continuations;
            continuations = 0;
            continue;
        }
        if (blank_line(bol, end)) {
            if (only_blank)
                continue;
            others += continuations;
            if ((recognised && trailers * 3 >= others) || (trailers > 0 && others == 0))
                return (size_t)(next_line(bol, end) - buf);
            return len;
        }
        only_blank = false;
        for (size_t i = 0; i < sizeof(generated) / sizeof(generated[0]); i++)
            is_generated = is_generated || starts_with(bol, end, generated[i]);
        sep = find_separator(bol, end);
        if (is_generated) {
            trailers++;
            continuations = 0;
            recognised = true;
        } else if (sep >= 1 && !git_space((unsigned char)*bol)) {
            trailers++;
            continuations = 0;
        } else if (git_space((unsigned char)*bol)) {
            continuations++;
        } else {
            others += 1 + continuations;
            continuations = 0;
        }
    }
    return len;
}

/* strbuf_trim on [*s, *e). */
static void trim(const char **s, const char **e)
{
    while (*s < *e && git_space((unsigned char)**s))
        (*s)++;
    while (*e > *s && git_space((unsigned char)(*e)[-1]))
        (*e)--;
}

/* Appends the value [s, e) as unfold_value prints it: each newline and the blanks after it
 * become one space, then the result is trimmed. */
static int put_unfolded(fg_buf *out, const char *s, const char *e, size_t *out_len)
{
    size_t start = out->len;
    int rc = 0;

    trim(&s, &e);
    while (s < e && rc == 0) {
        const char *nl = memchr(s, '\n', (size_t)(e - s));
        const char *stop = nl != NULL ? nl : e;
        rc = fg_buf_put(out, s, (size_t)(stop - s));
        if (rc == 0 && nl != NULL) {
            rc = fg_buf_putc(out, ' ');
            for (s = nl + 1; s < e && git_space((unsigned char)*s); s++)
                ;
        } else {
            s = stop;
        }
    }
    /* the folding can leave a space at the end (a continuation of blanks) */
    while (rc == 0 && out->len > start && git_space((unsigned char)out->ptr[out->len - 1]))
        out->len--;
    if (rc == 0)
        rc = fg_buf_putc(out, '\0');
    *out_len = out->len - start - 1;
    return rc;
}

/* One entry of the block (a line plus its continuation lines): a trailer when it has a
 * separator past its first character. */
static int add_entry(cs_trailers *t, size_t offsets[][2], const char *s, const char *e)
{
    long sep = find_separator(s, e);
    const char *ks = s, *ke;
    size_t key_len = 0, value_len = 0, key_off;
    int rc;

    if (sep < 1)
        return 0;
    if (t->count == CS_TRAILERS_MAX) {
        t->dropped++;
        return 0;
    }
    ke = s + sep;
    trim(&ks, &ke);
    key_off = t->text.len;
    key_len = (size_t)(ke - ks);
    if ((rc = fg_buf_put(&t->text, ks, key_len)) < 0 || (rc = fg_buf_putc(&t->text, '\0')) < 0)
        return rc;
    offsets[t->count][0] = key_off;
    offsets[t->count][1] = t->text.len;
    if ((rc = put_unfolded(&t->text, s + sep + 1, e, &value_len)) < 0)
        return rc;
    t->items[t->count].key_len = key_len;
    t->items[t->count].value_len = value_len;
    t->count++;
    return 0;
}

/* ---- public ---- */

void cs_trailers_init(cs_trailers *t)
{
    memset(t, 0, sizeof(*t));
    fg_buf_init(&t->text, FG_BUF_UNLIMITED);
}

void cs_trailers_dispose(cs_trailers *t)
{
    if (t == NULL)
        return;
    fg_buf_dispose(&t->text);
    t->count = 0;
}

int cs_trailers_parse(cs_trailers *t, const char *msg, size_t len)
{
    size_t offsets[CS_TRAILERS_MAX][2];
    const char *nul = memchr(msg, '\0', len), *end, *s, *entry = NULL;
    int rc = 0;

    t->count = 0;
    t->dropped = 0;
    fg_buf_clear(&t->text);
    if (nul != NULL)
        len = (size_t)(nul - msg);
    /* pretty.c starts %(trailers) at the subject: leading blank lines are not the message */
    end = msg + len;
    while (msg < end && blank_line(msg, end))
        msg = next_line(msg, end);
    len = (size_t)(end - msg);
    end = msg + message_end(msg, len);
    s = msg + block_start(msg, (size_t)(end - msg));
    /* A line starting with a blank continues the previous entry only when that entry is a
     * trailer (trailer_info_get); anything else starts a new entry. */
    for (bool entry_is_trailer = false; s < end && rc == 0; s = next_line(s, end)) {
        if (entry != NULL && entry_is_trailer && git_space((unsigned char)*s))
            continue;
        if (entry != NULL)
            rc = add_entry(t, offsets, entry, s);
        entry = s;
        entry_is_trailer = find_separator(s, end) >= 1;
    }
    if (rc == 0 && entry != NULL)
        rc = add_entry(t, offsets, entry, end);
    if (rc < 0) {
        t->count = 0;
        return rc;
    }
    for (size_t i = 0; i < t->count; i++) {
        t->items[i].key = t->text.ptr + offsets[i][0];
        t->items[i].value = t->text.ptr + offsets[i][1];
    }
    return 0;
}
