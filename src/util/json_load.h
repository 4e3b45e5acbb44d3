/*
 * util/json_load.h — json_loadb's answer at a fraction of its cost, for the
 * JSON objects telex parses on every request and every answer.
 *
 * telex_json_loadb(s, n, flags, err) returns what json_loadb(s, n, flags,
 * err) returns: the same tree (same keys in the same order, same values of
 * the same types) or NULL with jansson's own error. jansson reads a byte at
 * a time through a stream layer (a callback and a bookkeeping step per
 * byte); here util/json_scan.c validates the text in tight loops over the
 * bytes and the tree is then built from the bytes it vouched for with
 * jansson's own constructors (the measured costs: bench/findings.md,
 * "Numbers that were in code comments").
 *
 * Everything else goes to json_loadb, which then decides and words the
 * error: text the scanner refuses (any syntax error), a top level that is
 * not an object, nesting deeper than the scanner's limit, and the few
 * things valid JSON can hold that jansson refuses — \u0000, an unpaired
 * surrogate escape, an integer outside 64 bits, a real beyond a double's
 * range, a repeated key under JSON_REJECT_DUPLICATES. flags other than 0
 * and JSON_REJECT_DUPLICATES always go to json_loadb.
 *
 * Reals are converted with strtod, which reads the C locale's decimal
 * point; telex never calls setlocale. tests/unit/test_json_load.c and
 * tests/fuzz/fuzz_json_load.c compare the two loaders.
 */
#ifndef TELEX_UTIL_JSON_LOAD_H
#define TELEX_UTIL_JSON_LOAD_H

#include <stddef.h>

#include <jansson.h>

json_t *telex_json_loadb(const char *s, size_t n, size_t flags, json_error_t *err);

/* The contents of one string of text util/json_scan.c validated: s is right
 * after its opening quote, end the text's end. Decodes them into out, which
 * needs room for as many bytes as the string's text (a decoded string is
 * never longer), stores the position after its closing quote in *after and
 * returns the decoded length; SIZE_MAX for what jansson refuses (\u0000, an
 * unpaired surrogate). The loader's own decoding. */
size_t telex_json_unescape(const char *s, const char *end, char *out, const char **after);

/* The first '"' or '\\' in [p, end), or end: how the loader finds a string's
 * end (16 bytes at a time where SSE2 is there). */
const char *telex_json_quote_or_backslash(const char *p, const char *end);

#endif
