/*
 * A growable byte buffer with a hard cap.
 *
 * Every buffer that grows from outside input gets a maximum at init and fails with FG_ETOOBIG
 * beyond it, so no peer can make a service allocate without bound. The content is always
 * NUL-terminated (ptr[len] == '\0') so text can be used directly. A zeroed fg_buf is not valid:
 * call fg_buf_init first. The caller owns the struct; fg_buf_dispose frees the storage.
 */
#ifndef FG_BUF_H
#define FG_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "fg/error.h"

typedef struct {
    char *ptr;  /* content, NUL-terminated; never NULL after init */
    size_t len; /* bytes of content, excluding the NUL */
    size_t cap; /* bytes allocated */
    size_t max; /* most content bytes allowed */
} fg_buf;

#define FG_BUF_UNLIMITED ((size_t)-2)

void fg_buf_init(fg_buf *b, size_t max);
void fg_buf_dispose(fg_buf *b);

/* Appends; FG_ETOOBIG past the cap, FG_ENOMEM when allocation fails. On error the buffer is
 * unchanged. */
int fg_buf_put(fg_buf *b, const void *data, size_t len) FG_MUST_CHECK;
int fg_buf_puts(fg_buf *b, const char *s) FG_MUST_CHECK;
int fg_buf_putc(fg_buf *b, char c) FG_MUST_CHECK;
int fg_buf_printf(fg_buf *b, const char *fmt, ...) FG_PRINTF(2, 3) FG_MUST_CHECK;
int fg_buf_vprintf(fg_buf *b, const char *fmt, va_list ap) FG_PRINTF(2, 0) FG_MUST_CHECK;

/* Appends s as the inside of a JSON string (no surrounding quotes), escaping as RFC 8259 asks. */
int fg_buf_put_json_string(fg_buf *b, const char *s, size_t len) FG_MUST_CHECK;

/* Makes room for `len` more bytes without changing the content. */
int fg_buf_reserve(fg_buf *b, size_t len) FG_MUST_CHECK;

void fg_buf_clear(fg_buf *b);

/* Hands the storage to the caller (free() it) and leaves the buffer empty but valid. */
char *fg_buf_detach(fg_buf *b, size_t *out_len);

#endif
