/*
 * util/decimal.h — an unsigned integer written in decimal, without printf
 * (for hot paths: the Redis commands of cluster/rconn.c and the entry ids of
 * cluster/publish.c, one per relayed event).
 *
 * Contract: telex_put_u64 writes v's digits (no sign, no terminator, at most
 * TELEX_U64_DIGITS bytes) at p and returns the end of what it wrote.
 */
#ifndef TELEX_UTIL_DECIMAL_H
#define TELEX_UTIL_DECIMAL_H

#include <stdint.h>

#define TELEX_U64_DIGITS 20

static inline char *telex_put_u64(char *p, uint64_t v)
{
    char tmp[TELEX_U64_DIGITS];
    int n = 0;
    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

#endif
