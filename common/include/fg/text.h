/*
 * Small text codecs shared by the URL, HTTP and crypto code: hexadecimal digits and percent
 * (URL) decoding. Pure functions, any thread.
 */
#ifndef FG_TEXT_H
#define FG_TEXT_H

#include <stdbool.h>
#include <stddef.h>

#include "fg/error.h"

/* The value of one hex digit (either case), or -1. */
int fg_hex_value(char c);

/* Percent-decodes src[0..len) into dst, which has room for len + 1 bytes, and NUL-terminates it.
 * '+' becomes a space only when plus_is_space (query strings). FG_EINVALID, with a message, for
 * a malformed escape or an encoded NUL byte, which no caller can represent safely. */
int fg_percent_decode(char *dst, const char *src, size_t len, bool plus_is_space) FG_MUST_CHECK;

#endif
