/*
 * Payload codec (see tg_payload.h). gzip rather than raw deflate because DESIGN.md says gzip:
 * `base64 -d | gunzip` reads a payload by hand.
 */
#include "tg_payload.h"

#include <limits.h>
#include <stdio.h>
#include <stdbool.h>
#include <stdint.h>
#include <zlib.h>

#include "fg/base64.h"

#define GZIP_WINDOW (15 + 16) /* windowBits + 16: gzip header and trailer */
#define CHUNK       ((size_t)256 * 1024)

static void restore(fg_buf *b, size_t mark)
{
    b->len = mark;
    b->ptr[mark] = '\0';
}

/* Makes room for the next piece of output: up to CHUNK bytes, never past out's cap. */
static int next_room(size_t *out_room, fg_buf *out, bool inflating)
{
    size_t room = out->max > out->len ? out->max - out->len : 0;

    if (room == 0)
        return fg_error_set(FG_ETOOBIG, "payload: more than %zu bytes %s", out->max,
                            inflating ? "inflated" : "compressed");
    *out_room = room < CHUNK ? room : CHUNK;
    return fg_buf_reserve(out, *out_room);
}

/* What a zlib return code means here: 0 to go on, or an error. */
static int judge(const z_stream *z, int zrc, bool inflating)
{
    if (zrc == Z_OK || zrc == Z_STREAM_END)
        return 0;
    if (zrc == Z_BUF_ERROR && inflating && z->avail_in == 0)
        return fg_error_set(FG_EINVALID, "payload: gzip stream is truncated");
    if (zrc == Z_BUF_ERROR)
        return 0; /* no progress this round; the next one has fresh room */
    if (inflating)
        return fg_error_set(FG_EINVALID, "payload: not gzip: %s", z->msg ? z->msg : "zlib error");
    return fg_error_set(FG_ERROR, "payload: deflate failed: %s", z->msg ? z->msg : "zlib error");
}

/* Deflates or inflates everything of `in` into out, CHUNK by CHUNK (zlib counts in uInt). */
static int pump(z_stream *z, fg_buf *out, bool inflating)
{
    int zrc = Z_OK, rc;

    while (zrc != Z_STREAM_END) {
        size_t room = 0;
        if ((rc = next_room(&room, out, inflating)) < 0)
            return rc;
        z->next_out = (Bytef *)out->ptr + out->len;
        z->avail_out = (uInt)room;
        zrc = inflating ? inflate(z, Z_NO_FLUSH) : deflate(z, Z_FINISH);
        out->len += room - z->avail_out;
        out->ptr[out->len] = '\0';
        if ((rc = judge(z, zrc, inflating)) < 0)
            return rc;
    }
    if (inflating && z->avail_in != 0)
        return fg_error_set(FG_EINVALID, "payload: bytes after the gzip stream");
    return 0;
}

int tg_payload_encode(fg_buf *out, const char *nt, size_t len)
{
    z_stream z = {0};
    fg_buf gz;
    size_t mark = out->len;
    int rc = FG_ERROR;

    fg_buf_init(&gz, out->max == FG_BUF_UNLIMITED ? FG_BUF_UNLIMITED : out->max / 4 * 3 + 3);
    if (len > UINT_MAX)
        return fg_error_set(FG_ETOOBIG, "payload: %zu bytes of N-Triples in one batch", len);
    if (deflateInit2(&z, TG_PAYLOAD_LEVEL, Z_DEFLATED, GZIP_WINDOW, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return fg_error_set(FG_ENOMEM, "payload: deflateInit2 failed");
    z.next_in = (Bytef *)(uintptr_t)nt;
    z.avail_in = (uInt)len;
    if ((rc = pump(&z, &gz, false)) < 0 || (rc = fg_base64_encode(out, gz.ptr, gz.len)) < 0)
        goto done;
    rc = 0;
done:
    if (rc < 0)
        restore(out, mark);
    deflateEnd(&z);
    fg_buf_dispose(&gz);
    return rc;
}

int tg_payload_decode(fg_buf *out, const char *b64, size_t len)
{
    z_stream z = {0};
    fg_buf gz;
    size_t mark = out->len;
    bool started = false;
    int rc = FG_ERROR;

    fg_buf_init(&gz, len / 4 * 3 + 3);
    if (fg_base64_decode(&gz, b64, len) < 0) {
        char cause[256];
        snprintf(cause, sizeof(cause), "%s", fg_error_last()); /* fg_error_set writes there */
        rc = fg_error_set(FG_EINVALID, "payload: not base64: %s", cause);
        goto done;
    }
    if (gz.len > UINT_MAX) {
        rc = fg_error_set(FG_ETOOBIG, "payload: %zu bytes of gzip", gz.len);
        goto done;
    }
    if (inflateInit2(&z, GZIP_WINDOW) != Z_OK) {
        rc = fg_error_set(FG_ENOMEM, "payload: inflateInit2 failed");
        goto done;
    }
    started = true;
    z.next_in = (Bytef *)gz.ptr;
    z.avail_in = (uInt)gz.len;
    if ((rc = pump(&z, out, true)) < 0)
        goto done;
    rc = 0;
done:
    if (rc < 0)
        restore(out, mark);
    if (started)
        inflateEnd(&z);
    fg_buf_dispose(&gz);
    return rc;
}
