/*
 * The triples payload that travels in ToTriplesGenerated and TRIPLES_GENERATED: base64 (standard,
 * padded) of gzip'd N-Triples (docs/messages.md). Encoding and decoding with zlib, bounded both
 * ways so a hostile payload cannot inflate without limit. Pure functions; any thread.
 */
#ifndef TG_PAYLOAD_H
#define TG_PAYLOAD_H

#include <stddef.h>

#include "fg/buf.h"
#include "fg/error.h"

#define TG_PAYLOAD_LEVEL                                                                           \
    3 /* zlib level: 100k commits gzip in 1.5 s at 3, 5.2 s at 6, for 16% more */

/* Appends base64(gzip(nt[0..len))) to out. FG_ETOOBIG when the result would pass out's cap
 * (the caller splits the batch; out is then unchanged); FG_ENOMEM; FG_ERROR from zlib. */
int tg_payload_encode(fg_buf *out, const char *nt, size_t len) FG_MUST_CHECK;

/* Appends the N-Triples a payload carries to out, whose cap bounds the inflated size.
 * FG_EINVALID when the text is not base64 or not one complete gzip stream (the reason says
 * which); FG_ETOOBIG past out's cap; FG_ENOMEM. On error out is unchanged. */
int tg_payload_decode(fg_buf *out, const char *b64, size_t len) FG_MUST_CHECK;

#endif
