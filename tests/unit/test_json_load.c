/*
 * test_json_load.c — telex_json_loadb gives json_loadb's answer (the same
 * tree in the same key order, or NULL with the same error) and
 * telex_json_dumps gives json_dumps's bytes, on tables of the corner cases
 * and on random documents and corruptions of them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "util/json_dump.h"
#include "util/json_load.h"

static const size_t dump_flags[] = {
    JSON_COMPACT,
    JSON_COMPACT | JSON_PRESERVE_ORDER,
    JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(10),
    JSON_COMPACT | JSON_REAL_PRECISION(15),
    0,                          /* not compact: json_dumps itself */
    JSON_COMPACT | JSON_SORT_KEYS, /* ditto */
};

/* Both writers, every flag set: the same bytes or both NULL. */
static void same_dump(const json_t *j)
{
    for (size_t i = 0; i < sizeof(dump_flags) / sizeof(dump_flags[0]); i++) {
        char *want = json_dumps(j, dump_flags[i]);
        char *got = telex_json_dumps(j, dump_flags[i]);
        if (want == NULL || got == NULL) {
            if (want != got)
                fail_msg("dump flags %zx: jansson %s, telex %s", dump_flags[i], want ? want : "NULL",
                         got ? got : "NULL");
        } else if (strcmp(want, got) != 0) {
            fail_msg("dump flags %zx:\n jansson %s\n telex   %s", dump_flags[i], want, got);
        }
        free(want);
        free(got);
    }
}

/* Both loaders on s[0..n): the same tree in the same order, or the same
 * error. Returns 1 when the text loaded. */
static int same_load_n(const char *s, size_t n, size_t flags)
{
    json_error_t ea, eb;
    json_t *a = json_loadb(s, n, flags, &ea);
    json_t *b = telex_json_loadb(s, n, flags, &eb);
    if (a == NULL) {
        if (b != NULL)
            fail_msg("jansson refused (%s) what telex loaded: %.*s", ea.text, (int)n, s);
        assert_string_equal(ea.text, eb.text);
        assert_int_equal(ea.position, eb.position);
        assert_int_equal(ea.line, eb.line);
        assert_int_equal(ea.column, eb.column);
        return 0;
    }
    if (b == NULL)
        fail_msg("telex refused (%s) what jansson loaded: %.*s", eb.text, (int)n, s);
    assert_true(json_equal(a, b)); /* types too: an integer never equals a real */
    char *da = json_dumps(a, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    char *db = json_dumps(b, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    assert_non_null(da);
    assert_non_null(db);
    assert_string_equal(da, db); /* key order */
    free(da);
    free(db);
    same_dump(a);
    json_decref(a);
    json_decref(b);
    return 1;
}

static int same_load(const char *s, size_t flags)
{
    return same_load_n(s, strlen(s), flags);
}

static void test_corner_cases(void **state)
{
    (void)state;
    static const char *const loads[] = {
        "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1795321738,\"choices\":[],"
        "\"usage\":{\"prompt_tokens\":1,\"completion_tokens\":2,\"total_tokens\":3}}",
        "{\"model\":\"m\",\"stream\":true,\"temperature\":0.7,\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}",
        " \t\r\n{ \"a\" : [ 1 , 2.5 , true , false , null , { } , [ ] , \"x\" ] } \n",
        "{}",
        "{\"\":\"\"}",
        /* escapes */
        "{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\"}",
        "{\"s\":\"\\u00e9\\u20AC\\uD83D\\uDE00 end\"}",
        "{\"s\":\"\\u0001\\u001f\\u007F\"}",
        "{\"k\\n\\u00e9y\":\"v\",\"k\\n\\u00e9y2\":{\"\\t\":\"\\\\\"}}",
        "{\"s\":\"caf\xC3\xA9 \xF0\x9F\x98\x80\"}",
        /* what jansson refuses that the grammar allows */
        "{\"s\":\"a\\u0000b\"}",
        "{\"a\\u0000\":1}",
        "{\"s\":\"\\uD800\"}",
        "{\"s\":\"\\uD800x\"}",
        "{\"s\":\"\\uD800\\n\"}",
        "{\"s\":\"\\uD800\\u0041\"}",
        "{\"s\":\"\\uDC00\"}",
        "{\"s\":\"\\uDBFF\\uDFFF\"}",
        /* integers and reals */
        "{\"n\":[0,-0,1,-1,9223372036854775807,-9223372036854775808]}",
        "{\"n\":9223372036854775808}",
        "{\"n\":-9223372036854775809}",
        "{\"n\":99999999999999999999999}",
        "{\"n\":18446744073709551615}",
        "{\"n\":18446744073709551616}",
        "{\"n\":[1.5,-0.0,0.1,1e2,1E+2,1e-2,2.5e-300,1e308,123456789.123456789]}",
        "{\"n\":1e309}",
        "{\"n\":-1e309}",
        "{\"n\":1e-400}",
        "{\"n\":1.00000000000000000000000000000000000000000000000000000000000000000001}",
        /* syntax errors: jansson words them */
        "",
        "   ",
        "{",
        "{\"a\":}",
        "{\"a\":1,}",
        "{\"a\":01}",
        "{\"a\":1} x",
        "{\"a\":\"\x01\"}",
        "{\"a\":\"\xC0\x80\"}",
        "{\"a\":\"\xED\xA0\x80\"}",
        "{\"a\":tru}",
        "[1,2]",
        "\"s\"",
        "3",
        "{\"a\":\"\\x\"}",
    };
    for (size_t i = 0; i < sizeof(loads) / sizeof(loads[0]); i++) {
        same_load(loads[i], 0);
        same_load(loads[i], JSON_REJECT_DUPLICATES);
    }
    /* repeated keys: the later value wins in place, unless refused */
    static const char *const dups[] = {
        "{\"a\":1,\"b\":2,\"a\":3}",
        "{\"x\":{\"a\":1,\"a\":{\"c\":[1]}},\"y\":0}",
        "{\"\\u0061\":1,\"a\":2}",
    };
    for (size_t i = 0; i < sizeof(dups) / sizeof(dups[0]); i++) {
        assert_int_equal(same_load(dups[i], 0), 1);
        assert_int_equal(same_load(dups[i], JSON_REJECT_DUPLICATES), 0);
    }
    /* other flags go to jansson */
    same_load("{\"s\":\"a\\u0000b\"}", JSON_ALLOW_NUL);
    same_load("[1]", JSON_DECODE_ANY);
    same_load("{\"n\":1}", JSON_DECODE_INT_AS_REAL);
    /* bytes after an embedded NUL are not part of a C string, but are of a buffer */
    same_load_n("{\"a\":1}\0{", 9, 0);
}

/* Nesting around the scanner's limit (64): beyond it jansson decides. */
static void test_depth(void **state)
{
    (void)state;
    for (int depth = 60; depth <= 70; depth++) {
        char s[512];
        size_t n = 0;
        for (int i = 1; i < depth; i++) {
            memcpy(s + n, "{\"k\":", 5);
            n += 5;
        }
        memcpy(s + n, "[1]", 3);
        n += 3;
        for (int i = 1; i < depth; i++)
            s[n++] = '}';
        assert_int_equal(same_load_n(s, n, 0), 1);
    }
}

/* ---------------------------------------------------------- random documents */

static uint32_t rng = 12345;
static uint32_t next_random(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

typedef struct {
    char *p;
    size_t len;
    size_t cap;
} text_t;

static void put_bytes(text_t *t, const char *s, size_t n)
{
    if (t->len + n + 1 > t->cap) {
        t->cap = (t->len + n + 1) * 2;
        t->p = realloc(t->p, t->cap);
        assert_non_null(t->p);
    }
    memcpy(t->p + t->len, s, n);
    t->len += n;
    t->p[t->len] = '\0';
}

static void put_text(text_t *t, const char *s)
{
    put_bytes(t, s, strlen(s));
}

static void random_ws(text_t *t)
{
    static const char *const ws[] = {"", "", "", " ", "\n", "\t ", "\r\n"};
    put_text(t, ws[next_random() % 7]);
}

static void random_string(text_t *t, int key)
{
    static const char *const pieces[] = {
        "a", "b", "hello", " ", "\\n", "\\\"", "\\\\", "\\/", "\\t", "\\b", "\\f", "\\r", "\\u0041", "\\u00e9",
        "\\u20ac", "\\uD83D\\uDE00", "\\u001F", "\xC3\xA9", "\xE2\x82\xAC", "\xF0\x9F\x98\x80", "\x7F", "\\u0000",
        "\\uD800", "\\uDC00", "content", "role",
    };
    put_text(t, "\"");
    int n = (int)(next_random() % (key ? 3 : 6));
    for (int i = 0; i < n; i++) {
        size_t k = next_random() % (sizeof(pieces) / sizeof(pieces[0]));
        if ((k == 21 || k == 22 || k == 23) && next_random() % 8 != 0)
            k = 0; /* the pieces jansson refuses: now and then */
        put_text(t, pieces[k]);
    }
    put_text(t, "\"");
}

static void random_number(text_t *t)
{
    static const char *const numbers[] = {
        "0", "-0", "7", "-12", "1234567890123", "9223372036854775807", "-9223372036854775808",
        "9223372036854775808", "0.5", "-3.25", "1e10", "2E-3", "6.02e+23", "1e400", "0.1", "100",
    };
    size_t k = next_random() % (sizeof(numbers) / sizeof(numbers[0]));
    if ((k == 7 || k == 13) && next_random() % 8 != 0)
        k = 2;
    put_text(t, numbers[k]);
}

static void random_value(text_t *t, int depth)
{
    unsigned r = next_random() % (depth > 5 ? 6 : 8);
    random_ws(t);
    switch (r) {
    case 0: random_string(t, 0); break;
    case 1: random_number(t); break;
    case 2: put_text(t, "true"); break;
    case 3: put_text(t, "false"); break;
    case 4: put_text(t, "null"); break;
    case 5: random_string(t, 0); break;
    case 6: {
        put_text(t, "[");
        int n = (int)(next_random() % 4);
        for (int i = 0; i < n; i++) {
            if (i > 0)
                put_text(t, ",");
            random_value(t, depth + 1);
        }
        random_ws(t);
        put_text(t, "]");
        break;
    }
    default: {
        put_text(t, "{");
        int n = (int)(next_random() % 5);
        for (int i = 0; i < n; i++) {
            if (i > 0)
                put_text(t, ",");
            random_ws(t);
            random_string(t, 1);
            random_ws(t);
            put_text(t, ":");
            random_value(t, depth + 1);
        }
        random_ws(t);
        put_text(t, "}");
    }
    }
    random_ws(t);
}

static void random_object(text_t *t)
{
    t->len = 0;
    put_text(t, "{");
    int n = 1 + (int)(next_random() % 5);
    for (int i = 0; i < n; i++) {
        if (i > 0)
            put_text(t, ",");
        random_string(t, 1);
        put_text(t, ":");
        random_value(t, 1);
    }
    put_text(t, "}");
}

static void test_random_documents(void **state)
{
    (void)state;
    text_t t = {0};
    int loaded = 0;
    for (int i = 0; i < 20000; i++) {
        random_object(&t);
        loaded += same_load_n(t.p, t.len, i % 2 ? JSON_REJECT_DUPLICATES : 0);
    }
    assert_true(loaded > 10000); /* most are valid: the fast path was taken */
    free(t.p);
}

static void test_random_corruptions(void **state)
{
    (void)state;
    static const char alphabet[] = "{}[]\":,\\ u0e.-+Ex\x01\x80\xC3\xFF";
    text_t t = {0};
    for (int i = 0; i < 20000; i++) {
        random_object(&t);
        int edits = 1 + (int)(next_random() % 3);
        for (int e = 0; e < edits && t.len > 0; e++) {
            size_t at = next_random() % t.len;
            switch (next_random() % 3) {
            case 0: t.p[at] = alphabet[next_random() % (sizeof(alphabet) - 1)]; break;
            case 1: memmove(t.p + at, t.p + at + 1, t.len - at - 1), t.len--; break;
            default: t.len = at; /* cut */
            }
        }
        same_load_n(t.p, t.len, 0);
    }
    free(t.p);
}

/* ---------------------------------------------------------- the writer alone */

static void test_dump_strings(void **state)
{
    (void)state;
    json_t *o = json_object();
    char s[2];
    for (int c = 0; c < 0x80; c++) {
        s[0] = (char)c;
        char key[8];
        snprintf(key, sizeof(key), "k%d", c);
        json_object_set_new(o, key, json_stringn(s, 1));
    }
    json_object_set_new(o, "nul", json_stringn("a\0b", 3));
    json_object_set_new(o, "utf8", json_string("caf\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80 \xEF\xBF\xBF"));
    same_dump(o);
    /* not UTF-8 (only _nocheck can make these): both writers fail */
    static const char *const bad[] = {"\xC3", "\xC0\x80", "\xED\xA0\x80", "\xF4\x90\x80\x80", "a\x80", "\xFF"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        json_t *b = json_object();
        json_object_set_new(b, "s", json_stringn_nocheck(bad[i], strlen(bad[i])));
        same_dump(b);
        json_t *k = json_object();
        json_object_setn_new_nocheck(k, bad[i], strlen(bad[i]), json_true());
        same_dump(k);
        json_decref(b);
        json_decref(k);
    }
    json_decref(o);
}

static void test_dump_values_and_order(void **state)
{
    (void)state;
    json_t *o = json_object();
    json_object_set_new(o, "z", json_integer(INT64_MIN));
    json_object_set_new(o, "a", json_integer(INT64_MAX));
    json_object_set_new(o, "m", json_pack("[iiif]", 0, -1, 10, 0.1));
    json_object_set_new(o, "reals", json_pack("[ffffff]", 1.0, -0.0, 1e300, 1.0 / 3, 123456789.0, 5e-324));
    json_object_set_new(o, "b", json_false());
    json_object_del(o, "a");
    json_object_set_new(o, "a", json_null()); /* deleted and added again: now last */
    json_object_set_new(o, "z", json_string("replaced in place"));
    json_object_set_new(o, "e", json_pack("{s:{},s:[]}", "o", "a"));
    same_dump(o);
    json_t *arr = json_pack("[o,s,{s:[{}]}]", json_incref(o), "x", "k");
    same_dump(arr);
    /* not an object or array: jansson decides (NULL without JSON_ENCODE_ANY) */
    json_t *str = json_string("x");
    same_dump(str);
    char *any = telex_json_dumps(str, JSON_COMPACT | JSON_ENCODE_ANY);
    assert_string_equal(any, "\"x\"");
    free(any);
    json_decref(str);
    json_decref(arr);
    json_decref(o);
}

/* Deeper than the writer's 512 levels: jansson's own text. */
static void test_dump_deep(void **state)
{
    (void)state;
    json_t *root = json_array(), *at = root;
    for (int i = 0; i < 600; i++) {
        json_t *next = i % 2 ? json_array() : json_object();
        if (json_is_array(at))
            json_array_append_new(at, next);
        else
            json_object_set_new(at, "k", next);
        at = next;
    }
    same_dump(root);
    json_decref(root);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_corner_cases),
        cmocka_unit_test(test_depth),
        cmocka_unit_test(test_random_documents),
        cmocka_unit_test(test_random_corruptions),
        cmocka_unit_test(test_dump_strings),
        cmocka_unit_test(test_dump_values_and_order),
        cmocka_unit_test(test_dump_deep),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
