/*
 * Hex digits and percent decoding (see fg/text.h).
 */
#include "fg/text.h"

int fg_hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int fg_percent_decode(char *dst, const char *src, size_t len, bool plus_is_space)
{
    size_t o = 0;

    for (size_t i = 0; i < len; i++) {
        char c = src[i];

        if (c == '%') {
            int hi = i + 2 < len ? fg_hex_value(src[i + 1]) : -1;
            int lo = i + 2 < len ? fg_hex_value(src[i + 2]) : -1;

            if (hi < 0 || lo < 0)
                return fg_error_set(FG_EINVALID, "malformed percent-escape");
            c = (char)(hi * 16 + lo);
            if (c == '\0')
                return fg_error_set(FG_EINVALID, "percent-encoded NUL byte");
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        dst[o++] = c;
    }
    dst[o] = '\0';
    return 0;
}

size_t fg_utf8_sequence(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0], lo = 0x80, hi = 0xBF;
    size_t n;

    if (c < 0x80)
        return 1;
    if (c >= 0xC2 && c <= 0xDF)
        n = 2;
    else if (c >= 0xE0 && c <= 0xEF)
        n = 3;
    else if (c >= 0xF0 && c <= 0xF4)
        n = 4;
    else
        return 0;
    if (c == 0xE0)
        lo = 0xA0;
    else if (c == 0xED)
        hi = 0x9F; /* U+D800..U+DFFF are not characters */
    else if (c == 0xF0)
        lo = 0x90;
    else if (c == 0xF4)
        hi = 0x8F; /* nothing past U+10FFFF */
    if ((size_t)(end - p) < n || p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++) {
        if (p[i] < 0x80 || p[i] > 0xBF)
            return 0;
    }
    return n;
}

int fg_hex4(unsigned *out, const unsigned char *p, const unsigned char *end)
{
    unsigned v = 0;

    if (end - p < 4)
        return -1;
    for (int i = 0; i < 4; i++) {
        int d = fg_hex_value((char)p[i]);
        if (d < 0)
            return -1;
        v = v << 4 | (unsigned)d;
    }
    *out = v;
    return 0;
}
