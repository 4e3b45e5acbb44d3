/*
 * util/json_dump.h — json_dumps's text at a fraction of its cost, for the
 * compact JSON telex writes on every request and answer (the body it sends
 * the provider, annotated usage chunks, translated events).
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

#endif
