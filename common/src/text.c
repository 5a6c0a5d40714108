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
