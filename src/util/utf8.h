/*
 * util/utf8.h — the one strict UTF-8 check, shared by the JSON scanner
 * (util/json_scan.c), the JSON writer and escaper (util/json_dump.c), HTTP
 * error text (http/respond.c, gateway/apierror.c) and `telex sse decode`
 * (cli/sse_cmd.c).
 *
 * The rules are RFC 3629's (Unicode's table 3-7 of well-formed sequences),
 * which are also jansson's and the WHATWG Encoding standard's: no overlong
 * forms, no surrogates (U+D800..U+DFFF), nothing above U+10FFFF,
 * continuation bytes 0x80..0xBF only.
 */
#ifndef TELEX_UTIL_UTF8_H
#define TELEX_UTIL_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Checks the sequence starting at p (whose first byte is >= 0x80), reading
 * never at or past end. Returns its length (2..4) when it is valid;
 * otherwise minus the length (1..3) of its "maximal subpart", the bytes a
 * WHATWG decoder (a browser's TextDecoder) turns into one U+FFFD. */
static inline ptrdiff_t telex_utf8_check(const unsigned char *p, const unsigned char *end)
{
    unsigned char c = p[0], lower = 0x80, upper = 0xBF;
    size_t needed;
    if (c >= 0xC2 && c <= 0xDF) {
        needed = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        needed = 2;
        if (c == 0xE0)
            lower = 0xA0; /* overlong */
        else if (c == 0xED)
            upper = 0x9F; /* surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        needed = 3;
        if (c == 0xF0)
            lower = 0x90; /* overlong */
        else if (c == 0xF4)
            upper = 0x8F; /* above U+10FFFF */
    } else {
        return -1;
    }
    size_t n = (size_t)(end - p);
    for (size_t k = 1; k <= needed; k++) {
        if (k >= n || p[k] < lower || p[k] > upper)
            return -(ptrdiff_t)k;
        lower = 0x80;
        upper = 0xBF;
    }
    return (ptrdiff_t)needed + 1;
}

/* The length of the valid UTF-8 sequence starting at p (whose first byte is
 * >= 0x80), or 0 when it is not a valid one. Never reads at or past end. */
static inline size_t telex_utf8_seq_len(const unsigned char *p, const unsigned char *end)
{
    ptrdiff_t n = telex_utf8_check(p, end);
    return n > 0 ? (size_t)n : 0;
}

#endif
