/*
 * Capped growable buffer (see fg/buf.h). Growth doubles, but never past the cap + 1.
 */
#include "fg/buf.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char empty_content[1];

void fg_buf_init(fg_buf *b, size_t max)
{
    b->ptr = empty_content;
    b->len = 0;
    b->cap = 0;
    b->max = max;
}

void fg_buf_dispose(fg_buf *b)
{
    if (b == NULL)
        return;
    if (b->cap > 0)
        free(b->ptr);
    fg_buf_init(b, b->max);
}

int fg_buf_reserve(fg_buf *b, size_t len)
{
    size_t need, cap;
    char *p;

    if (len > b->max || b->len > b->max - len)
        return fg_error_set(FG_ETOOBIG, "buffer limit of %zu bytes exceeded", b->max);
    need = b->len + len + 1;
    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > ((size_t)-1) / 2 ? need : cap * 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    p = b->cap > 0 ? realloc(b->ptr, cap) : malloc(cap);
    if (p == NULL)
        return fg_error_set(FG_ENOMEM, "out of memory growing a buffer to %zu bytes", cap);
    if (b->cap == 0)
        p[0] = '\0';
    b->ptr = p;
    b->cap = cap;
    return 0;
}

int fg_buf_put(fg_buf *b, const void *data, size_t len)
{
    int rc;

    if (len == 0)
        return 0;
    if ((rc = fg_buf_reserve(b, len)) < 0)
        return rc;
    memcpy(b->ptr + b->len, data, len);
    b->len += len;
    b->ptr[b->len] = '\0';
    return 0;
}

int fg_buf_puts(fg_buf *b, const char *s)
{
    return fg_buf_put(b, s, strlen(s));
}

int fg_buf_putc(fg_buf *b, char c)
{
    return fg_buf_put(b, &c, 1);
}

int fg_buf_vprintf(fg_buf *b, const char *fmt, va_list ap)
{
    va_list copy;
    int n, rc;

    va_copy(copy, ap);
    n = vsnprintf(NULL, 0, fmt, copy);
    va_end(copy);
    if (n < 0)
        return fg_error_set(FG_EINVALID, "bad format string");
    if ((rc = fg_buf_reserve(b, (size_t)n)) < 0)
        return rc;
    vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
    b->len += (size_t)n;
    return 0;
}

int fg_buf_printf(fg_buf *b, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = fg_buf_vprintf(b, fmt, ap);
    va_end(ap);
    return rc;
}

int fg_buf_put_json_string(fg_buf *b, const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    size_t i, start = 0;
    int rc = 0;

    for (i = 0; i < len && rc == 0; i++) {
        unsigned char c = (unsigned char)s[i];
        char esc[7] = {'\\', 0, 0, 0, 0, 0, 0};
        size_t esc_len = 2;

        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        switch (c) {
        case '"':
            esc[1] = '"';
            break;
        case '\\':
            esc[1] = '\\';
            break;
        case '\n':
            esc[1] = 'n';
            break;
        case '\r':
            esc[1] = 'r';
            break;
        case '\t':
            esc[1] = 't';
            break;
        case '\b':
            esc[1] = 'b';
            break;
        case '\f':
            esc[1] = 'f';
            break;
        default:
            memcpy(esc + 1, "u00", 3);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 0xf];
            esc_len = 6;
        }
        if ((rc = fg_buf_put(b, s + start, i - start)) == 0)
            rc = fg_buf_put(b, esc, esc_len);
        start = i + 1;
    }
    if (rc == 0)
        rc = fg_buf_put(b, s + start, len - start);
    return rc;
}

void fg_buf_clear(fg_buf *b)
{
    b->len = 0;
    if (b->cap > 0)
        b->ptr[0] = '\0';
}

char *fg_buf_detach(fg_buf *b, size_t *out_len)
{
    char *p = b->cap > 0 ? b->ptr : calloc(1, 1);

    if (out_len != NULL)
        *out_len = b->cap > 0 ? b->len : 0;
    fg_buf_init(b, b->max);
    return p;
}
