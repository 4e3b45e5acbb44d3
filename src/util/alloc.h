/*
 * util/alloc.h — allocation that cannot fail: out of memory ends the
 * process (the rule for the telex process, as in h2o and Redis; see
 * docs/architecture.md, "Errors and out of memory").
 *
 * telex_xmalloc, telex_xcalloc, telex_xrealloc, telex_xstrdup and
 * telex_xstrndup return what malloc, calloc, realloc, strdup and strndup
 * return, never NULL: when the system has no memory they write one line on
 * stderr and abort(). h2o does the same for every allocation it makes on
 * the same paths (h2o_mem_alloc), and on Linux with overcommit malloc
 * rarely fails at all — the OOM killer comes first — so a NULL branch
 * would be code nobody runs. What input can grow is bounded by a limit
 * before it is allocated; the limit, not malloc, is the error path there.
 *
 * Header-only, so that the fuzz targets that compile src/util/ files on
 * their own need nothing else. libtelex (src/sse/) does not use it: a
 * library returns TELEX_SSE_ENOMEM and lets its caller decide.
 */
#ifndef TELEX_UTIL_ALLOC_H
#define TELEX_UTIL_ALLOC_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

__attribute__((noreturn, cold, unused)) static void telex_out_of_memory(size_t bytes)
{
    /* no allocation here: stderr is unbuffered */
    fprintf(stderr, "{\"level\":\"error\",\"msg\":\"out of memory\",\"bytes\":%zu}\n", bytes);
    abort();
}

static inline void *telex_xmalloc(size_t n)
{
    void *p = malloc(n);
    if (p == NULL && n != 0)
        telex_out_of_memory(n);
    return p;
}

static inline void *telex_xcalloc(size_t count, size_t size)
{
    void *p = calloc(count, size);
    if (p == NULL && count != 0 && size != 0)
        telex_out_of_memory(count * size);
    return p;
}

static inline void *telex_xrealloc(void *old, size_t n)
{
    void *p = realloc(old, n);
    if (p == NULL && n != 0)
        telex_out_of_memory(n);
    return p;
}

static inline char *telex_xstrndup(const char *s, size_t n)
{
    char *p = strndup(s, n);
    if (p == NULL)
        telex_out_of_memory(n + 1);
    return p;
}

static inline char *telex_xstrdup(const char *s)
{
    return telex_xstrndup(s, strlen(s));
}

#endif
