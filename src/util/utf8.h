/*
 * util/utf8.h — one strict UTF-8 sequence check, shared by the JSON scanner
 * (util/json_scan.c) and the JSON writer (util/json_dump.c).
 *
 * The rules are RFC 3629's, which are also jansson's: no overlong forms, no
 * surrogates (U+D800..U+DFFF), nothing above U+10FFFF, continuation bytes
 * 0x80..0xBF only.
 */
#ifndef TELEX_UTIL_UTF8_H
#define TELEX_UTIL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* The length of the UTF-8 sequence starting at p (whose first byte is
 * >= 0x80), or 0 when it is not a valid one. Never reads at or past end. */
static inline size_t telex_utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
    unsigned char b = p[0];
    size_t n;
    uint32_t min, cp;
    if (b >= 0xC2 && b <= 0xDF) {
        n = 2, min = 0x80, cp = b & 0x1F;
    } else if (b >= 0xE0 && b <= 0xEF) {
        n = 3, min = 0x800, cp = b & 0x0F;
    } else if (b >= 0xF0 && b <= 0xF4) {
        n = 4, min = 0x10000, cp = b & 0x07;
    } else {
        return 0;
    }
    if ((size_t)(end - p) < n)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = (cp << 6) | (p[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return n;
}

#endif
