/*
 * Base64 by hand: OpenSSL's EVP_DecodeBlock pads its output with zero bytes instead of reporting
 * the real length, which is wrong for keys.
 */
#include "fg/base64.h"

#include <stdbool.h>

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

int fg_base64_encode(fg_buf *out, const void *data, size_t len)
{
    const unsigned char *p = data;
    size_t i;
    int rc;

    if ((rc = fg_buf_reserve(out, (len + 2) / 3 * 4)) < 0)
        return rc;
    for (i = 0; i + 2 < len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        char q[4] = {alphabet[v >> 18], alphabet[(v >> 12) & 63], alphabet[(v >> 6) & 63],
                     alphabet[v & 63]};
        if ((rc = fg_buf_put(out, q, 4)) < 0)
            return rc;
    }
    if (i < len) {
        unsigned v = (unsigned)p[i] << 16 | (i + 1 < len ? (unsigned)p[i + 1] << 8 : 0);
        char q[4] = {alphabet[v >> 18], alphabet[(v >> 12) & 63],
                     i + 1 < len ? alphabet[(v >> 6) & 63] : '=', '='};
        rc = fg_buf_put(out, q, 4);
    }
    return rc;
}

static int sextet(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '+')
        return 62;
    if (c == '/')
        return 63;
    return -1;
}

int fg_base64_decode(fg_buf *out, const char *text, size_t len)
{
    size_t pad = 0;
    int rc;

    if (len % 4 != 0)
        return fg_error_set(FG_EINVALID, "base64 length %zu is not a multiple of 4", len);
    while (pad < 2 && len > pad && text[len - 1 - pad] == '=')
        pad++;
    if ((rc = fg_buf_reserve(out, len / 4 * 3)) < 0)
        return rc;
    for (size_t i = 0; i < len; i += 4) {
        int s[4];
        unsigned char bytes[3];
        size_t keep = 3;

        for (int k = 0; k < 4; k++) {
            bool is_pad = i + (size_t)k >= len - pad;
            s[k] = is_pad ? 0 : sextet(text[i + (size_t)k]);
            if (s[k] < 0)
                return fg_error_set(FG_EINVALID, "invalid base64 character at offset %zu",
                                    i + (size_t)k);
        }
        bytes[0] = (unsigned char)(s[0] << 2 | s[1] >> 4);
        bytes[1] = (unsigned char)((s[1] & 15) << 4 | s[2] >> 2);
        bytes[2] = (unsigned char)((s[2] & 3) << 6 | s[3]);
        if (i + 4 == len)
            keep -= pad;
        if ((rc = fg_buf_put(out, bytes, keep)) < 0)
            return rc;
    }
    return 0;
}
