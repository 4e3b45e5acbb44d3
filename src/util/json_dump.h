/*
 * util/json_dump.h — json_dumps's text at a fraction of its cost, for the
 * compact JSON telex writes on every request and answer (the body it sends
 * the provider, annotated usage chunks, translated events); and the one JSON
 * string escaper (telex_json_escape), which the mock and `telex sse decode`
 * use too.
 *
 * telex_json_dumps(json, flags) returns exactly the bytes json_dumps(json,
 * flags) returns (a malloc'd NUL-terminated string, or NULL where jansson
 * fails, e.g. on a string that is not valid UTF-8) when flags is
 * JSON_COMPACT, optionally with JSON_PRESERVE_ORDER and
 * JSON_REAL_PRECISION(n), and json is an object or an array. jansson writes
 * through a callback per piece and checks every string code point by code
 * point; here runs of plain bytes are copied at once into one growing
 * buffer. Reals are the exception: each is formatted by jansson itself
 * (json_dumps of the one value), so the digits are jansson's. Other flags,
 * other top levels, keys that are not UTF-8 (jansson writes a broken key
 * and goes on) and trees nested deeper than 512 levels (jansson also
 * detects cycles there) go to json_dumps.
 *
 * tests/unit/test_json_load.c and tests/fuzz/fuzz_json_load.c compare the
 * two writers.
 */
#ifndef TELEX_UTIL_JSON_DUMP_H
#define TELEX_UTIL_JSON_DUMP_H

#include <stddef.h>

#include <jansson.h>

char *telex_json_dumps(const json_t *json, size_t flags);

/* telex_json_escape writes the inside of a JSON string (no quotes) for the
 * bytes s[*pos..n), jansson's way: '"', '\\', \b \f \n \r \t escaped as
 * such, the other bytes below 0x20 as \u00XX (upper-case hex), everything
 * else (0x7F and valid UTF-8 included) as it is. It stops once *pos has
 * reached `stop` (a step may go up to 7 bytes past it, never past n) and
 * advances *pos. Returns the bytes written to dst.
 *
 * Bytes that are not valid UTF-8 (util/utf8.h): with
 * TELEX_JSON_ESCAPE_REPLACE each maximal invalid subpart becomes one U+FFFD,
 * as a browser's decoder reads it; without it the escape stops there and
 * returns TELEX_JSON_ESCAPE_BAD_UTF8 (*pos is that byte's offset; what was
 * written is lost).
 *
 * dst must hold TELEX_JSON_ESCAPE_BOUND(stop - *pos) bytes; escaping a
 * whole string at once (stop == n) needs only 6 * (n - *pos). */
#define TELEX_JSON_ESCAPE_REPLACE 1
#define TELEX_JSON_ESCAPE_BAD_UTF8 ((size_t)-1)
#define TELEX_JSON_ESCAPE_BOUND(k) (6 * ((size_t)(k) + 8))
size_t telex_json_escape(char *dst, const char *s, size_t n, size_t *pos, size_t stop, int flags);

#endif
