/*
 * util/hex.h — one hexadecimal digit's value, for the chunk sizes of HTTP/1
 * bodies (upstream/http1_response.c), %XX in query strings
 * (gateway/usage.c), \uXXXX in JSON strings (util/json_scan.c checks them,
 * util/json_load.c decodes them) and key hashes read back from PostgreSQL
 * (store/postgres.c).
 */
#ifndef TELEX_UTIL_HEX_H
#define TELEX_UTIL_HEX_H

/* 0..15 for '0'..'9', 'a'..'f', 'A'..'F'; -1 for any other byte. */
static inline int telex_hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c |= 0x20; /* 'A'..'F' -> 'a'..'f'; no other byte lands there */
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

#endif
