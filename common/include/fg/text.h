/*
 * Small text codecs shared by the URL, HTTP, JSON, N-Triples and crypto code: hexadecimal
 * digits, UTF-8 sequences and percent (URL) decoding. Pure functions, any thread.
 */
#ifndef FG_TEXT_H
#define FG_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/error.h"

/* The value of one hex digit (either case), or -1. */
int fg_hex_value(char c);

/* Length of the well-formed UTF-8 sequence at p (RFC 3629; end is one past the last byte
 * available, p < end), or 0 when the bytes there are not one: overlong, a surrogate, past
 * U+10FFFF, or cut short. */
size_t fg_utf8_sequence(const unsigned char *p, const unsigned char *end);

/* The value of the four hex digits at p (either case); -1 when fewer than four bytes remain or
 * one is not a hex digit. */
int fg_hex4(unsigned *out, const unsigned char *p, const unsigned char *end);

/* Percent-decodes src[0..len) into dst, which has room for len + 1 bytes, and NUL-terminates it.
 * '+' becomes a space only when plus_is_space (query strings). FG_EINVALID, with a message, for
 * a malformed escape or an encoded NUL byte, which no caller can represent safely. */
int fg_percent_decode(char *dst, const char *src, size_t len, bool plus_is_space) FG_MUST_CHECK;

#endif
