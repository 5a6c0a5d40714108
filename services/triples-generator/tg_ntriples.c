/*
 * N-Triples output (see tg_ntriples.h). Runs of plain bytes are copied in one fg_buf_put: commit
 * messages are mostly ASCII and this loop is the generator's hot path.
 */
#include "tg_ntriples.h"
#include "fg/text.h"

#include <stdbool.h>
#include <string.h>

static const char hex_upper[] = "0123456789ABCDEF";
static const char replacement[] = "\xEF\xBF\xBD"; /* U+FFFD */

/* The canonical escape of an ASCII byte that needs one, written to esc; 0 when c is plain. */
static size_t ascii_escape(char esc[6], unsigned char c)
{
    static const char echar[] = {['\b'] = 'b', ['\t'] = 't', ['\n'] = 'n', ['\f'] = 'f',
                                 ['\r'] = 'r', ['"'] = '"',  ['\\'] = '\\'};

    if (c < sizeof(echar) && echar[c] != 0) {
        esc[0] = '\\';
        esc[1] = echar[c];
        return 2;
    }
    if (c < 0x20 || c == 0x7F) {
        memcpy(esc, "\\u00", 4);
        esc[4] = hex_upper[c >> 4];
        esc[5] = hex_upper[c & 15];
        return 6;
    }
    return 0;
}

int tg_nt_put_string(fg_buf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0, i = 0;
    int rc;

    while (i < len) {
        char esc[6];
        size_t esc_len = 0, seq = 1;
        const char *special = NULL;

        if (p[i] < 0x80)
            esc_len = ascii_escape(esc, p[i]);
        else if ((seq = fg_utf8_sequence(p + i, p + len)) == 0) {
            special = replacement; /* this byte only: the next one may start a good sequence */
            seq = 1;
        }
        if (esc_len == 0 && special == NULL) {
            i += seq;
            continue;
        }
        if ((rc = fg_buf_put(out, s + run, i - run)) < 0 ||
            (rc = special ? fg_buf_put(out, special, 3) : fg_buf_put(out, esc, esc_len)) < 0)
            return rc;
        i += seq;
        run = i;
    }
    return fg_buf_put(out, s + run, len - run);
}

static bool iri_plain(unsigned char c)
{
    return c > 0x20 && c < 0x7F && strchr("<>\"{}|^`\\", c) == NULL;
}

int tg_nt_put_iri(fg_buf *out, const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t run = 0;
    int rc;

    for (size_t i = 0; i < len; i++) {
        char pct[3] = {'%', hex_upper[p[i] >> 4], hex_upper[p[i] & 15]};

        if (iri_plain(p[i]))
            continue;
        if ((rc = fg_buf_put(out, s + run, i - run)) < 0 || (rc = fg_buf_put(out, pct, 3)) < 0)
            return rc;
        run = i + 1;
    }
    return fg_buf_put(out, s + run, len - run);
}

int tg_nt_triple_iri(fg_buf *out, const char *s, const char *p, const char *o)
{
    int rc;

    if ((rc = fg_buf_putc(out, '<')) < 0 || (rc = fg_buf_puts(out, s)) < 0 ||
        (rc = fg_buf_put(out, "> <", 3)) < 0 || (rc = fg_buf_puts(out, p)) < 0 ||
        (rc = fg_buf_put(out, "> <", 3)) < 0 || (rc = fg_buf_puts(out, o)) < 0)
        return rc;
    return fg_buf_put(out, "> .\n", 4);
}

int tg_nt_triple_literal(fg_buf *out, const char *s, const char *p, const char *lit, size_t len,
                         const char *datatype)
{
    int rc;

    if ((rc = fg_buf_putc(out, '<')) < 0 || (rc = fg_buf_puts(out, s)) < 0 ||
        (rc = fg_buf_put(out, "> <", 3)) < 0 || (rc = fg_buf_puts(out, p)) < 0 ||
        (rc = fg_buf_put(out, "> \"", 3)) < 0 || (rc = tg_nt_put_string(out, lit, len)) < 0 ||
        (rc = fg_buf_putc(out, '"')) < 0)
        return rc;
    if (datatype != NULL &&
        ((rc = fg_buf_put(out, "^^<", 3)) < 0 || (rc = fg_buf_puts(out, datatype)) < 0 ||
         (rc = fg_buf_putc(out, '>')) < 0))
        return rc;
    return fg_buf_put(out, " .\n", 3);
}
