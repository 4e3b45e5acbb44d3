/*
 * util/buf.h — a growable byte buffer with a hard limit.
 *
 * telex_buf_append fails (returns -1) instead of growing past `limit`, so
 * every buffer that input can grow is bounded by construction. The bytes
 * are always followed by a NUL (not counted in len) for convenience. Out of
 * memory ends the process (util/alloc.h): -1 always means the limit.
 */
#ifndef TELEX_UTIL_BUF_H
#define TELEX_UTIL_BUF_H

#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"

typedef struct telex_buf {
    char *data;
    size_t len;
    size_t cap;
    size_t limit; /* 0 = no limit */
} telex_buf_t;

static inline int telex_buf_reserve(telex_buf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (b->limit != 0 && b->len + extra > b->limit)
        return -1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    b->data = telex_xrealloc(b->data, cap);
    b->cap = cap;
    return 0;
}

static inline int telex_buf_append(telex_buf_t *b, const void *bytes, size_t len)
{
    if (telex_buf_reserve(b, len) != 0)
        return -1;
    memcpy(b->data + b->len, bytes, len);
    b->len += len;
    b->data[b->len] = '\0';
    return 0;
}

static inline void telex_buf_free(telex_buf_t *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

#endif
