/*
 * Standard base64 (RFC 4648 §4, with padding) for keys in configuration and payloads in messages.
 */
#ifndef FG_BASE64_H
#define FG_BASE64_H

#include <stddef.h>

#include "fg/buf.h"

/* Appends the encoding of data to out. */
int fg_base64_encode(fg_buf *out, const void *data, size_t len) FG_MUST_CHECK;

/* Appends the decoding of text to out; FG_EINVALID on a character outside the alphabet or a bad
 * length. Whitespace is not accepted. */
int fg_base64_decode(fg_buf *out, const char *text, size_t len) FG_MUST_CHECK;

#endif
