/*
 * mock/answer.c — the text the mock answers with.
 *
 * A generated answer is `count` tokens; token i is a word from a fixed list
 * chosen by splitmix64(seed + i): the first capitalised, the others with a
 * leading space, the last followed by a period. Same seed, same answer; the
 * seed comes from the request (mock.seed, else `seed`, else a hash of the
 * messages), so a request always gets the same answer.
 *
 * A given text is split at word boundaries: each token is a run of
 * whitespace followed by a run of non-whitespace (trailing whitespace joins
 * the last token), so the tokens concatenate to exactly the text and UTF-8
 * sequences are never split.
 */
#include "mock/mock_internal.h"
#include "util/alloc.h"

#include <stdlib.h>
#include <string.h>

static const char *const words[] = {
    "alpha",   "bravo",   "charlie", "delta",   "echo",    "foxtrot", "golf",     "hotel",
    "india",   "juliet",  "kilo",    "lima",    "mike",    "november", "oscar",   "papa",
    "quebec",  "romeo",   "sierra",  "tango",   "uniform", "victor",  "whiskey",  "xray",
    "yankee",  "zulu",    "river",   "stone",   "cloud",   "signal",  "lantern",  "harbor",
    "meadow",  "copper",  "violet",  "orbit",   "canyon",  "ember",   "glacier",  "summit",
    "willow",  "falcon",  "prairie", "comet",   "tundra",  "marble",  "saffron",  "thunder",
    "pepper",  "island",  "forest",  "rocket",  "velvet",  "anchor",  "bramble",  "crystal",
    "dune",    "fable",   "garnet",  "horizon", "ivory",   "jasper",  "kernel",   "lagoon",
};
#define WORD_COUNT (sizeof(words) / sizeof(words[0]))
#define MAX_WORD 10 /* longest word above */

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

uint64_t telex_mock_hash(uint64_t h, const void *data, size_t len)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

void telex_mock_answer_generate(telex_mock_answer_t *a, uint64_t seed, size_t count)
{
    memset(a, 0, sizeof(*a));
    a->count = count;
    a->seed = seed;
    a->max_raw_len = MAX_WORD + 2; /* leading space, trailing period */
}

static int is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

void telex_mock_answer_from_text(telex_mock_answer_t *a, const char *text, size_t len)
{
    memset(a, 0, sizeof(*a));
    size_t n = 0;
    for (size_t i = 0; i < len; i++) /* a token starts where a word starts */
        if (!is_space((unsigned char)text[i]) && (i == 0 || is_space((unsigned char)text[i - 1])))
            n++;
    if (n == 0 && len > 0)
        n = 1; /* whitespace only: one token */
    a->text = telex_xmalloc(len + 1);
    a->offsets = telex_xmalloc((n + 1) * sizeof(size_t));
    memcpy(a->text, text, len);
    a->text[len] = '\0';
    a->count = n;
    size_t k = 0;
    a->offsets[0] = 0;
    /* Token k ends where word k+1's leading whitespace begins. */
    for (size_t i = 1; i < len && k + 1 < n; i++)
        if (is_space((unsigned char)text[i]) && !is_space((unsigned char)text[i - 1])) {
            /* only a boundary if another word follows */
            size_t j = i;
            while (j < len && is_space((unsigned char)text[j]))
                j++;
            if (j < len)
                a->offsets[++k] = i;
        }
    a->offsets[n] = len;
    for (size_t i = 0; i < n; i++)
        if (a->offsets[i + 1] - a->offsets[i] > a->max_raw_len)
            a->max_raw_len = a->offsets[i + 1] - a->offsets[i];
}

void telex_mock_answer_free(telex_mock_answer_t *a)
{
    free(a->text);
    free(a->offsets);
    memset(a, 0, sizeof(*a));
}

const char *telex_mock_answer_token(const telex_mock_answer_t *a, size_t i, char *scratch, size_t *len)
{
    if (a->text != NULL) {
        *len = a->offsets[i + 1] - a->offsets[i];
        return a->text + a->offsets[i];
    }
    const char *w = words[splitmix64(a->seed + i) % WORD_COUNT];
    size_t n = 0;
    if (i > 0)
        scratch[n++] = ' ';
    size_t wl = strlen(w);
    memcpy(scratch + n, w, wl);
    if (i == 0)
        scratch[n] = (char)(scratch[n] - 'a' + 'A');
    n += wl;
    if (i + 1 == a->count)
        scratch[n++] = '.';
    scratch[n] = '\0';
    *len = n;
    return scratch;
}

char *telex_mock_answer_join(const telex_mock_answer_t *a, size_t *len)
{
    if (a->text != NULL) {
        size_t n = a->offsets[a->count];
        char *out = telex_xmalloc(n + 1);
        memcpy(out, a->text, n + 1);
        *len = n;
        return out;
    }
    size_t cap = a->count * (a->max_raw_len) + 1;
    char *out = telex_xmalloc(cap);
    size_t n = 0;
    char scratch[MAX_WORD + 3];
    for (size_t i = 0; i < a->count; i++) {
        size_t tl;
        const char *t = telex_mock_answer_token(a, i, scratch, &tl);
        memcpy(out + n, t, tl);
        n += tl;
    }
    out[n] = '\0';
    *len = n;
    return out;
}
