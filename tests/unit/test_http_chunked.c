/*
 * tests/unit/test_http_chunked.c — http/chunked.c's framing is byte for byte
 * what h2o 2.2's chunked filter writes (lib/handler/chunked.c: a size line
 * made with sprintf("%zx\r\n"), the CRLF after the data, the last chunk on a
 * final write, the broken chunk on an error), checked against sprintf for
 * sizes across every hex length.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/chunked.h"

/* The framed bytes of bufs as one string (malloc'd). */
static char *framed(telex_chunked_t *c, const h2o_iovec_t *bufs, size_t n, h2o_send_state_t state, size_t *body)
{
    h2o_iovec_t out[TELEX_CHUNKED_MAX_BUFS + 2];
    size_t cnt = telex_chunked_frame(c, bufs, n, state, out, body), len = 0;
    for (size_t i = 0; i < cnt; i++)
        len += out[i].len;
    char *s = malloc(len + 1), *o = s;
    for (size_t i = 0; i < cnt; i++)
        memcpy(o, out[i].base, out[i].len), o += out[i].len;
    *o = '\0';
    return s;
}

static void test_size_line_is_sprintf_hex(void **state)
{
    (void)state;
    static char data[70000];
    memset(data, 'x', sizeof(data));
    telex_chunked_t c = {.on = 1};
    size_t sizes[] = {1, 9, 10, 15, 16, 17, 255, 256, 4095, 4096, 65535, 65536, 69999};
    for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
        /* the data in two pieces: the size is their sum */
        h2o_iovec_t bufs[2] = {h2o_iovec_init(data, sizes[k] / 2), h2o_iovec_init(data, sizes[k] - sizes[k] / 2)};
        size_t body;
        char *got = framed(&c, bufs, 2, H2O_SEND_STATE_IN_PROGRESS, &body);
        char want[32];
        int hl = sprintf(want, "%zx\r\n", sizes[k]);
        assert_int_equal(body, sizes[k]);
        assert_int_equal(strlen(got), (size_t)hl + sizes[k] + 2);
        assert_memory_equal(got, want, (size_t)hl);
        assert_memory_equal(got + hl, data, sizes[k]);
        assert_memory_equal(got + hl + sizes[k], "\r\n", 2);
        free(got);
    }
    /* the largest sizes: all 16 hex digits */
    char line[20], want[32];
    size_t big[] = {(size_t)0x7fffffffffffffffULL, SIZE_MAX, (size_t)0x1000000000000000ULL};
    for (size_t k = 0; k < 3; k++) {
        h2o_iovec_t one = {data, big[k]}; /* framed, never read */
        h2o_iovec_t out[3];
        size_t body;
        telex_chunked_t cb = {.on = 1};
        telex_chunked_frame(&cb, &one, 1, H2O_SEND_STATE_IN_PROGRESS, out, &body);
        int hl = sprintf(want, "%zx\r\n", big[k]);
        assert_int_equal(out[0].len, (size_t)hl);
        memcpy(line, out[0].base, out[0].len);
        assert_memory_equal(line, want, (size_t)hl);
    }
}

static void test_final_error_and_empty_writes(void **state)
{
    (void)state;
    telex_chunked_t c = {.on = 1};
    h2o_iovec_t ev[2] = {h2o_iovec_init(H2O_STRLIT("id: a.1\n")), h2o_iovec_init(H2O_STRLIT("data: {\"x\":1}\n\n"))};
    size_t body;
    char *s;

    s = framed(&c, ev, 2, H2O_SEND_STATE_IN_PROGRESS, &body);
    assert_string_equal(s, "17\r\nid: a.1\ndata: {\"x\":1}\n\n\r\n");
    free(s);
    s = framed(&c, ev + 1, 1, H2O_SEND_STATE_FINAL, &body);
    assert_string_equal(s, "f\r\ndata: {\"x\":1}\n\n\r\n0\r\n\r\n");
    free(s);
    s = framed(&c, NULL, 0, H2O_SEND_STATE_FINAL, &body);
    assert_string_equal(s, "0\r\n\r\n");
    assert_int_equal(body, 0);
    free(s);
    /* an error: the data without its CRLF, then a broken chunk */
    s = framed(&c, ev + 1, 1, H2O_SEND_STATE_ERROR, &body);
    assert_string_equal(s, "f\r\ndata: {\"x\":1}\n\n\r\n1\r\n");
    free(s);
    s = framed(&c, NULL, 0, H2O_SEND_STATE_ERROR, &body);
    assert_string_equal(s, "\r\n1\r\n");
    free(s);
    /* an empty write (the head pushed out alone) adds nothing */
    h2o_iovec_t out[2];
    assert_int_equal(telex_chunked_frame(&c, NULL, 0, H2O_SEND_STATE_IN_PROGRESS, out, &body), 0);
    h2o_iovec_t empty = h2o_iovec_init("", 0);
    assert_int_equal(telex_chunked_frame(&c, &empty, 1, H2O_SEND_STATE_IN_PROGRESS, out, &body), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size_line_is_sprintf_hex),
        cmocka_unit_test(test_final_error_and_empty_writes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
