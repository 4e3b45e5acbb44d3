/*
 * test_http1_response.c — the upstream client's HTTP/1.1 response parser
 * (upstream/http1_response.c).
 *
 * A table of responses, valid and not, each fed the way the client feeds it
 * (a socket buffer: what the parser did not consume stays at the front of
 * the next feed, after it the bytes that arrived since): whole, cut in two at
 * every byte position, one byte at a time, and with callbacks that stop the
 * parser every time; every way must give the same head, body, result, error
 * and unconsumed rest. Then: stopping in the middle and going on, bytes
 * after the end of a response left alone, results that stay, the 64 KiB head
 * limit, and linear time for a head that arrives a byte at a time.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "upstream/http1_response.h"

/* ------------------------------------------------------------ recording */

typedef struct {
    int heads;
    int status;
    int keep_alive;
    char content_type[128];
    char retry_after[32];
    char *body;
    size_t body_len, body_cap;
    int stop_on_head, stop_on_body; /* 1: every time; 2: once */
    int callbacks;                  /* in the current parse call */
} rec_t;

static int stop_now(int *how)
{
    if (*how == 2) {
        *how = 0;
        return 1;
    }
    return *how;
}

static int on_head(void *user, const telex_http1_response_t *r)
{
    rec_t *rec = user;
    assert_true(r->status >= 200 && r->status != 101);
    assert_int_equal(r->phase, TELEX_HTTP1_BODY);
    rec->heads++;
    rec->callbacks++;
    rec->status = r->status;
    rec->keep_alive = r->keep_alive;
    snprintf(rec->content_type, sizeof(rec->content_type), "%s", r->content_type);
    snprintf(rec->retry_after, sizeof(rec->retry_after), "%s", r->retry_after);
    return stop_now(&rec->stop_on_head);
}

static int on_body(void *user, const char *data, size_t len)
{
    rec_t *rec = user;
    assert_true(len > 0);
    assert_true(rec->heads >= 1);
    rec->callbacks++;
    if (rec->body_len + len > rec->body_cap) {
        rec->body_cap = (rec->body_len + len) * 2;
        rec->body = realloc(rec->body, rec->body_cap);
        assert_non_null(rec->body);
    }
    memcpy(rec->body + rec->body_len, data, len);
    rec->body_len += len;
    return stop_now(&rec->stop_on_body);
}

static const telex_http1_response_callbacks_t callbacks = {on_head, on_body};

/* ------------------------------------------------------------ feeding */

/* One parse call on an exact-size copy of buf (so a read past n is caught by
 * the sanitizers). */
static telex_http1_result_t parse_copy(telex_http1_response_t *r, const char *buf, size_t n, size_t *used, rec_t *rec)
{
    char *copy = malloc(n > 0 ? n : 1);
    assert_non_null(copy);
    memcpy(copy, buf, n);
    *used = (size_t)-1;
    rec->callbacks = 0;
    telex_http1_result_t res = telex_http1_response_parse(r, copy, n, used, &callbacks, rec);
    free(copy);
    assert_true(*used <= n);
    if (res == TELEX_HTTP1_PAUSED)
        assert_true(rec->callbacks > 0); /* only a callback stops it */
    return res;
}

/* The bytes of in arrive so that in[0..arrivals[k]) is there after the kth
 * read; after each read the parser gets what it has not consumed yet, again
 * right after PAUSED. Returns the last result; *consumed is how much of in
 * was consumed. */
static telex_http1_result_t drive(telex_http1_response_t *r, const char *in, const size_t *arrivals, size_t n_arrivals,
                                  rec_t *rec, size_t *consumed)
{
    telex_http1_result_t res = TELEX_HTTP1_MORE;
    *consumed = 0;
    for (size_t a = 0; a < n_arrivals; a++) {
        size_t avail = arrivals[a];
        for (size_t guard = 0;; guard++) {
            assert_true(guard <= avail + 1);
            size_t used;
            res = parse_copy(r, in + *consumed, avail - *consumed, &used, rec);
            *consumed += used;
            if (res == TELEX_HTTP1_DONE || res == TELEX_HTTP1_ERROR)
                return res;
            if (res == TELEX_HTTP1_MORE)
                break;
        }
    }
    return res;
}

/* ------------------------------------------------------------ the table */

typedef struct {
    const char *name;
    const char *in;
    telex_http1_result_t result; /* fed completely */
    int status;                  /* of the final head; 0: on_head never runs */
    int keep_alive;
    const char *content_type;
    const char *retry_after;
    const char *body; /* delivered, also before an error */
    size_t left;      /* bytes at the end not consumed */
    const char *error;
} case_t;

#define SSE "Content-Type: text/event-stream\r\n"
#define TE "Transfer-Encoding: chunked\r\n"
#define Y16 "yyyyyyyyyyyyyyyy"
#define Y256 Y16 Y16 Y16 Y16 Y16 Y16 Y16 Y16 Y16 Y16 Y16 Y16 Y16 Y16 Y16 Y16

static const case_t cases[] = {
    /* ---- chunked */
    {"chunked", "HTTP/1.1 200 OK\r\n" SSE TE "\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", TELEX_HTTP1_DONE, 200, 1,
     "text/event-stream", "", "hello world", 0, NULL},
    {"chunked, LF-only lines, extensions, trailers, upper-case hex",
     "HTTP/1.1 200 OK\nTransfer-Encoding: chunked\n\nA;name=\"v;al\"\nabcdefghij\nb ; x\r\n0123456789A\r\n0;last\n"
     "X-Trailer: 1\nY: 2\r\n\n",
     TELEX_HTTP1_DONE, 200, 1, "", "", "abcdefghij0123456789A", 0, NULL},
    {"chunk size then a tab or a space", "HTTP/1.1 200 OK\r\n" TE "\r\n3\t\r\nabc\r\n2 ;q\r\nde\r\n0 \r\n\r\n",
     TELEX_HTTP1_DONE, 200, 1, "", "", "abcde", 0, NULL},
    {"trailer line starting with CR", "HTTP/1.1 200 OK\r\n" TE "\r\n1\r\nz\r\n0\r\n\rX: y\r\n\r\n", TELEX_HTTP1_DONE,
     200, 1, "", "", "z", 0, NULL},
    {"chunked ends at LF alone after the last chunk", "HTTP/1.1 200 OK\r\n" TE "\r\n1\r\nz\r\n0\r\n\n",
     TELEX_HTTP1_DONE, 200, 1, "", "", "z", 0, NULL},
    {"15 hex digits of size are fine", "HTTP/1.1 200 OK\r\n" TE "\r\n000000000000003\r\nabc\r\n0\r\n\r\n",
     TELEX_HTTP1_DONE, 200, 1, "", "", "abc", 0, NULL},
    /* after a chunk, "\r\n<size>\r\n" whole in one read takes a shortcut: sizes of 1 to 3 digits,
     * 15 digits (fine) and 16 (too large) after a first chunk; the table's splits compare it with
     * the byte-by-byte way */
    {"chunked, sizes of one to three digits after a chunk",
     "HTTP/1.1 200 OK\r\n" TE "\r\n5\r\nhello\r\n10\r\n0123456789abcdef\r\n1F\r\n"
     "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\r\n100\r\n" Y256 "\r\n0\r\n\r\n",
     TELEX_HTTP1_DONE, 200, 1, "", "", "hello0123456789abcdefxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" Y256, 0, NULL},
    {"chunked, 15 digits of size after a chunk", "HTTP/1.1 200 OK\r\n" TE "\r\n1\r\na\r\n000000000000002\r\nbc\r\n0\r\n\r\n",
     TELEX_HTTP1_DONE, 200, 1, "", "", "abc", 0, NULL},
    {"chunked, 16 digits of size after a chunk",
     "HTTP/1.1 200 OK\r\n" TE "\r\n1\r\na\r\n0000000000000002\r\nbc\r\n0\r\n\r\n", TELEX_HTTP1_ERROR, 200, 1, "", "",
     "a", 0, "the provider sent a chunk size that is too large"},
    {"chunked, an extension after a size after a chunk",
     "HTTP/1.1 200 OK\r\n" TE "\r\n1\r\na\r\n2;x=1\r\nbc\r\n0\r\n\r\n", TELEX_HTTP1_DONE, 200, 1, "", "", "abc", 0, NULL},
    {"chunked, the end not yet in", "HTTP/1.1 200 OK\r\n" TE "\r\n5\r\nhello\r\n6\r\n wo", TELEX_HTTP1_MORE, 200, 1, "",
     "", "hello wo", 0, NULL},
    {"chunked, in the trailers", "HTTP/1.1 200 OK\r\n" TE "\r\n0\r\nX: 1\r\n", TELEX_HTTP1_MORE, 200, 1, "", "", "", 0,
     NULL},
    {"bytes after the last chunk stay", "HTTP/1.1 200 OK\r\n" TE "\r\n2\r\nhi\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n",
     TELEX_HTTP1_DONE, 200, 1, "", "", "hi", 17, NULL},
    {"Transfer-Encoding gzip, chunked",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n1\r\nq\r\n0\r\n\r\n", TELEX_HTTP1_DONE, 200, 1, "", "",
     "q", 0, NULL},
    {"Transfer-Encoding wins over Content-Length",
     "HTTP/1.1 200 OK\r\nContent-Length: 100\r\n" TE "\r\n1\r\nq\r\n0\r\n\r\n", TELEX_HTTP1_DONE, 200, 1, "", "", "q",
     0, NULL},
    {"the last Transfer-Encoding header counts",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nTransfer-Encoding: CHUNKED \r\n\r\n1\r\nq\r\n0\r\n\r\n",
     TELEX_HTTP1_DONE, 200, 1, "", "", "q", 0, NULL},

    /* ---- chunked, malformed */
    {"chunk size missing", "HTTP/1.1 200 OK\r\n" TE "\r\n\r\nhello", TELEX_HTTP1_ERROR, 200, 1, "", "", "", 0,
     "the provider sent a malformed chunked body"},
    {"chunk size with a bad character", "HTTP/1.1 200 OK\r\n" TE "\r\n5x\r\nhello\r\n0\r\n\r\n", TELEX_HTTP1_ERROR, 200,
     1, "", "", "", 0, "the provider sent a malformed chunked body"},
    {"16 hex digits of chunk size", "HTTP/1.1 200 OK\r\n" TE "\r\n0000000000000001\r\nx\r\n0\r\n\r\n",
     TELEX_HTTP1_ERROR, 200, 1, "", "", "", 0, "the provider sent a chunk size that is too large"},
    {"CR without LF after the size", "HTTP/1.1 200 OK\r\n" TE "\r\n5\rhello\r\n0\r\n\r\n", TELEX_HTTP1_ERROR, 200, 1,
     "", "", "", 0, "the provider sent a malformed chunked body"},
    {"chunk data longer than its size", "HTTP/1.1 200 OK\r\n" TE "\r\n5\r\nhello!\r\n0\r\n\r\n", TELEX_HTTP1_ERROR, 200,
     1, "", "", "hello", 0, "the provider sent a malformed chunked body"},
    {"CR then not LF after chunk data", "HTTP/1.1 200 OK\r\n" TE "\r\n2\r\nhi\r\r\n0\r\n\r\n", TELEX_HTTP1_ERROR, 200,
     1, "", "", "hi", 0, "the provider sent a malformed chunked body"},

    /* ---- Content-Length */
    {"Content-Length, a 429 with Retry-After",
     "HTTP/1.1 429 Too Many Requests\r\ncontent-type: application/json\r\nRETRY-AFTER:  7 \r\nContent-Length: "
     "11\r\n\r\n"
     "{\"error\":1}",
     TELEX_HTTP1_DONE, 429, 1, "application/json", "7", "{\"error\":1}", 0, NULL},
    {"Content-Length, bytes after the body stay", "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiEXTRA",
     TELEX_HTTP1_DONE, 200, 1, "", "", "hi", 5, NULL},
    {"Content-Length, body not all in", "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nhello", TELEX_HTTP1_MORE, 200, 1,
     "", "", "hello", 0, NULL},
    {"Content-Length 0", "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nX", TELEX_HTTP1_DONE, 200, 1, "", "", "", 1,
     NULL},
    {"Content-Length repeated with the same value",
     "HTTP/1.1 200 OK\r\nContent-Length: 3\r\ncontent-length: 003\r\n\r\nabc", TELEX_HTTP1_DONE, 200, 1, "", "", "abc",
     0, NULL},
    {"Content-Length of 18 digits", "HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\nabc",
     TELEX_HTTP1_MORE, 200, 1, "", "", "abc", 0, NULL},
    {"conflicting Content-Length", "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
     TELEX_HTTP1_ERROR, 0, 0, "", "", "", 0, "the provider sent conflicting Content-Length headers"},
    {"Content-Length not a number", "HTTP/1.1 200 OK\r\nContent-Length: 3a\r\n\r\nabc", TELEX_HTTP1_ERROR, 0, 0, "", "",
     "", 0, "the provider sent an invalid Content-Length"},
    {"Content-Length empty", "HTTP/1.1 200 OK\r\nContent-Length: \r\n\r\nabc", TELEX_HTTP1_ERROR, 0, 0, "", "", "", 0,
     "the provider sent an invalid Content-Length"},
    {"Content-Length negative", "HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n", TELEX_HTTP1_ERROR, 0, 0, "", "", "", 0,
     "the provider sent an invalid Content-Length"},
    {"Content-Length of 19 digits", "HTTP/1.1 200 OK\r\nContent-Length: 1000000000000000000\r\n\r\n", TELEX_HTTP1_ERROR,
     0, 0, "", "", "", 0, "the provider sent an invalid Content-Length"},

    /* ---- read until close */
    {"no framing: until close", "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nsome\r\n0\r\n\r\nbytes",
     TELEX_HTTP1_MORE, 200, 0, "text/plain", "", "some\r\n0\r\n\r\nbytes", 0, NULL},
    {"Transfer-Encoding not ending in chunked: until close",
     "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked, gzip\r\nContent-Length: 2\r\n\r\nabc", TELEX_HTTP1_MORE, 200, 0,
     "", "", "abc", 0, NULL},
    {"Transfer-Encoding xchunked: until close", "HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n1\r\nq\r\n",
     TELEX_HTTP1_MORE, 200, 0, "", "", "1\r\nq\r\n", 0, NULL},
    {"until close with keep-alive asked for", "HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n\r\nab", TELEX_HTTP1_MORE,
     200, 0, "", "", "ab", 0, NULL},

    /* ---- keep-alive */
    {"HTTP/1.0 is not keep-alive", "HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\nx", TELEX_HTTP1_DONE, 200, 0, "", "",
     "x", 0, NULL},
    {"HTTP/1.0 with keep-alive", "HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\nContent-Length: 1\r\n\r\nx",
     TELEX_HTTP1_DONE, 200, 1, "", "", "x", 0, NULL},
    {"Connection: close", "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 1\r\n\r\nx", TELEX_HTTP1_DONE, 200,
     0, "", "", "x", 0, NULL},
    {"close wins over keep-alive", "HTTP/1.1 200 OK\r\nConnection: keep-alive ,\t CLOSE \r\nContent-Length: 1\r\n\r\nx",
     TELEX_HTTP1_DONE, 200, 0, "", "", "x", 0, NULL},
    {"Connection tokens, not substrings",
     "HTTP/1.1 200 OK\r\nConnection: closed, x-close\r\nContent-Length: 1\r\n\r\nx", TELEX_HTTP1_DONE, 200, 1, "", "",
     "x", 0, NULL},

    /* ---- no body */
    {"204 has no body", "HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\nHTTP/", TELEX_HTTP1_DONE, 204, 1, "", "",
     "", 5, NULL},
    {"304 has no body", "HTTP/1.1 304 Not Modified\r\n" TE "\r\n0\r\n\r\n", TELEX_HTTP1_DONE, 304, 1, "", "", "", 5,
     NULL},

    /* ---- heads */
    {"1xx heads skipped",
     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\nContent-Type: x/early\r\n\r\n"
     "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
     TELEX_HTTP1_DONE, 200, 1, "", "", "ok", 0, NULL},
    {"a 1xx head, the final one not all in", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nContent-Le",
     TELEX_HTTP1_MORE, 0, 0, "", "", "", 27, NULL},
    {"101 is an error", "HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\n\r\n", TELEX_HTTP1_ERROR, 0, 0, "", "", "",
     0, "the provider switched protocols"},
    {"LF-only head, no reason phrase", "HTTP/1.1 503\nRetry-After: 120\n\n", TELEX_HTTP1_MORE, 503, 0, "", "120", "", 0,
     NULL},
    {"no reason phrase, CRLF", "HTTP/1.1 200\r\nContent-Length: 1\r\n\r\n!", TELEX_HTTP1_DONE, 200, 1, "", "", "!", 0,
     NULL},
    {"head not all in", "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n\r", TELEX_HTTP1_MORE, 0, 0, "", "", "",
     51, NULL},
    {"values trimmed, long ones cut",
     "HTTP/1.1 200 OK\r\nContent-Type: \t "
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
     "a"
     "aaaaaaaaaaaaaZZZ \t\r\nRetry-After: 0123456789012345678901234567890123456789\r\nX-Empty:\r\nContent-Length: "
     "0\r\n\r\n",
     TELEX_HTTP1_DONE, 200, 1,
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* cut to 63 bytes */
     "0123456789012345678901234567890", "", 0, NULL},
    {"not HTTP/1.x", "HTTP/2 200 OK\r\n\r\n", TELEX_HTTP1_ERROR, 0, 0, "", "", "", 0,
     "the provider did not answer with an HTTP/1.x status line"},
    {"status below 100", "HTTP/1.1 099 Odd\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", TELEX_HTTP1_ERROR, 0,
     0, "", "", "", 0, "the provider did not answer with an HTTP/1.x status line"},
    {"status 000", "HTTP/1.1 000\r\n\r\n", TELEX_HTTP1_ERROR, 0, 0, "", "", "", 0,
     "the provider did not answer with an HTTP/1.x status line"},
    {"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", TELEX_HTTP1_ERROR, 0, 0, "", "", "", 0,
     "the provider did not answer with an HTTP/1.x status line"},
    {"status glued to the reason", "HTTP/1.1 200OK\r\n\r\n", TELEX_HTTP1_ERROR, 0, 0, "", "", "", 0,
     "the provider did not answer with an HTTP/1.x status line"},
    {"not HTTP at all", "SSH-2.0-OpenSSH_9.2\r\n\r\n", TELEX_HTTP1_ERROR, 0, 0, "", "", "", 0,
     "the provider did not answer with an HTTP/1.x status line"},
    {"a blank line first", "\r\nHTTP/1.1 200 OK\r\n\r\n", TELEX_HTTP1_ERROR, 0, 0, "", "", "", 0,
     "the provider did not answer with an HTTP/1.x status line"},
    {"header line without a colon", "HTTP/1.1 200 OK\r\nContent-Length 1\r\n\r\nx", TELEX_HTTP1_ERROR, 0, 0, "", "", "",
     0, "the provider sent a malformed response header"},
    {"header line with an empty name", "HTTP/1.1 200 OK\r\n: x\r\n\r\n", TELEX_HTTP1_ERROR, 0, 0, "", "", "", 0,
     "the provider sent a malformed response header"},
    {"an error in the final head after a 1xx", "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\nbad\r\n\r\n",
     TELEX_HTTP1_ERROR, 0, 0, "", "", "", 0, "the provider sent a malformed response header"},
};

/* The rest not consumed at the end, for an error: where the parser stopped
 * is not part of the contract, so only DONE and MORE are held to `left`. */
static void check(const case_t *c, const char *how, size_t split, const rec_t *rec, telex_http1_result_t res,
                  size_t consumed, const telex_http1_response_t *r)
{
    size_t len = strlen(c->in);
    char where[160];
    snprintf(where, sizeof(where), "case \"%s\", %s %zu", c->name, how, split);
    if (res != c->result)
        fail_msg("%s: result %d, want %d (error %s)", where, res, c->result, r->error ? r->error : "-");
    if (c->result != TELEX_HTTP1_ERROR && len - consumed != c->left)
        fail_msg("%s: %zu bytes left, want %zu", where, len - consumed, c->left);
    if (c->result == TELEX_HTTP1_ERROR) {
        if (r->error == NULL || strcmp(r->error, c->error) != 0)
            fail_msg("%s: error \"%s\", want \"%s\"", where, r->error ? r->error : "(none)", c->error);
        if (r->phase != TELEX_HTTP1_FAILED)
            fail_msg("%s: phase %d after an error", where, r->phase);
    } else if (r->error != NULL) {
        fail_msg("%s: error \"%s\" without ERROR", where, r->error);
    }
    if (c->status == 0) {
        if (rec->heads != 0)
            fail_msg("%s: on_head ran", where);
    } else {
        if (rec->heads != 1)
            fail_msg("%s: on_head ran %d times", where, rec->heads);
        if (rec->status != c->status || rec->keep_alive != c->keep_alive)
            fail_msg("%s: status %d keep-alive %d, want %d %d", where, rec->status, rec->keep_alive, c->status,
                     c->keep_alive);
        if (strcmp(rec->content_type, c->content_type) != 0 || strcmp(rec->retry_after, c->retry_after) != 0)
            fail_msg("%s: content-type \"%s\" retry-after \"%s\"", where, rec->content_type, rec->retry_after);
    }
    if (rec->body_len != strlen(c->body) || (rec->body_len > 0 && memcmp(rec->body, c->body, rec->body_len) != 0))
        fail_msg("%s: body \"%.*s\", want \"%s\"", where, (int)rec->body_len, rec->body ? rec->body : "", c->body);
    if (res == TELEX_HTTP1_DONE && r->phase != TELEX_HTTP1_END)
        fail_msg("%s: phase %d after DONE", where, r->phase);
}

static void run_case(const case_t *c, const char *how, size_t split, const size_t *arrivals, size_t n_arrivals,
                     int stop)
{
    rec_t rec = {0};
    rec.stop_on_head = rec.stop_on_body = stop;
    telex_http1_response_t r;
    telex_http1_response_init(&r);
    size_t consumed;
    telex_http1_result_t res = drive(&r, c->in, arrivals, n_arrivals, &rec, &consumed);
    check(c, how, split, &rec, res, consumed, &r);
    free(rec.body);
}

static void test_table_whole(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t len = strlen(cases[k].in);
        run_case(&cases[k], "whole", 0, &len, 1, 0);
        /* a zeroed struct is a fresh parser too */
        rec_t rec = {0};
        telex_http1_response_t r;
        memset(&r, 0, sizeof(r));
        size_t consumed;
        telex_http1_result_t res = drive(&r, cases[k].in, &len, 1, &rec, &consumed);
        check(&cases[k], "zeroed", 0, &rec, res, consumed, &r);
        free(rec.body);
    }
}

static void test_table_split_in_two_everywhere(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t len = strlen(cases[k].in);
        for (size_t cut = 0; cut <= len; cut++) {
            size_t arrivals[2] = {cut, len};
            run_case(&cases[k], "cut at", cut, arrivals, 2, 0);
        }
    }
}

static void test_table_one_byte_at_a_time(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t len = strlen(cases[k].in);
        size_t *arrivals = malloc((len + 1) * sizeof(*arrivals));
        assert_non_null(arrivals);
        for (size_t i = 0; i <= len; i++)
            arrivals[i] = i;
        run_case(&cases[k], "bytes", 0, arrivals, len + 1, 0);
        run_case(&cases[k], "bytes, stopping at every callback", 0, arrivals, len + 1, 1);
        free(arrivals);
    }
}

static void test_table_stopping_at_every_callback(void **state)
{
    (void)state;
    for (size_t k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        size_t len = strlen(cases[k].in);
        run_case(&cases[k], "whole, stopping at every callback", 0, &len, 1, 1);
        for (size_t cut = 0; cut <= len; cut++) {
            size_t arrivals[2] = {cut, len};
            run_case(&cases[k], "stopping at every callback, cut at", cut, arrivals, 2, 1);
        }
    }
}

/* ------------------------------------------------------------ stopping */

static void test_stop_in_on_body_then_go_on(void **state)
{
    (void)state;
    const char *in = "HTTP/1.1 200 OK\r\n" TE "\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    size_t len = strlen(in);
    size_t head = strlen("HTTP/1.1 200 OK\r\n" TE "\r\n");
    rec_t rec = {0};
    rec.stop_on_body = 2; /* once */
    telex_http1_response_t r;
    telex_http1_response_init(&r);
    size_t used;
    assert_int_equal(parse_copy(&r, in, len, &used, &rec), TELEX_HTTP1_PAUSED);
    /* the two chunks of this feed come in one call; stopped right after
     * it: their bytes and the framing between are consumed, nothing more */
    assert_int_equal(used, head + 3 + 5 + 5 + 6);
    assert_int_equal(rec.body_len, 11);
    assert_int_equal(rec.callbacks, 2);
    size_t more;
    assert_int_equal(parse_copy(&r, in + used, len - used, &more, &rec), TELEX_HTTP1_DONE);
    assert_int_equal(used + more, len);
    assert_int_equal(rec.body_len, 11);
    assert_memory_equal(rec.body, "hello world", 11);
    free(rec.body);
}

/* Consecutive chunks in one feed are handed on in one call (their data moved
 * together over the framing); a chunk cut by the end of the feed ends the
 * call; a chunk extension, or the last chunk, ends the run too. */
static void test_chunks_of_one_feed_come_in_one_call(void **state)
{
    (void)state;
    const char *head = "HTTP/1.1 200 OK\r\n" TE "\r\n";
    const char *body = "3\r\nabc\r\n1\r\nd\r\n10\r\nefghijklmnopqrst\r\n2;x=y\r\nuv\r\n4\r\nwxyz\r\n0\r\n\r\n";
    char in[256];
    snprintf(in, sizeof(in), "%s%s", head, body);
    size_t len = strlen(in);
    rec_t rec = {0};
    telex_http1_response_t r;
    telex_http1_response_init(&r);
    size_t used;
    assert_int_equal(parse_copy(&r, in, len, &used, &rec), TELEX_HTTP1_DONE);
    assert_int_equal(used, len);
    assert_int_equal(rec.body_len, 26);
    assert_memory_equal(rec.body, "abcdefghijklmnopqrstuvwxyz", 26);
    /* head, "abc…t" (three chunks; the extension ends the run), "uvwxyz" */
    assert_int_equal(rec.callbacks, 3);

    /* cut inside the third chunk: what is there comes in one call */
    free(rec.body);
    memset(&rec, 0, sizeof(rec));
    telex_http1_response_init(&r);
    size_t cut = strlen(head) + strlen("3\r\nabc\r\n1\r\nd\r\n10\r\nefgh");
    assert_int_equal(parse_copy(&r, in, cut, &used, &rec), TELEX_HTTP1_MORE);
    assert_int_equal(used, cut);
    assert_int_equal(rec.callbacks, 2);
    assert_int_equal(rec.body_len, 8);
    assert_memory_equal(rec.body, "abcdefgh", 8);
    size_t more;
    assert_int_equal(parse_copy(&r, in + used, len - used, &more, &rec), TELEX_HTTP1_DONE);
    assert_int_equal(rec.body_len, 26);
    assert_memory_equal(rec.body, "abcdefghijklmnopqrstuvwxyz", 26);
    free(rec.body);
}

static void test_stop_in_on_head(void **state)
{
    (void)state;
    /* with a body: PAUSED after the head, the body comes with the next call */
    const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    size_t len = strlen(in);
    rec_t rec = {0};
    rec.stop_on_head = 1;
    telex_http1_response_t r;
    telex_http1_response_init(&r);
    size_t used;
    assert_int_equal(parse_copy(&r, in, len, &used, &rec), TELEX_HTTP1_PAUSED);
    assert_int_equal(used, len - 3);
    assert_int_equal(rec.body_len, 0);
    assert_int_equal(r.phase, TELEX_HTTP1_BODY);
    size_t more;
    assert_int_equal(parse_copy(&r, in + used, 3, &more, &rec), TELEX_HTTP1_DONE);
    assert_int_equal(more, 3);
    assert_int_equal(rec.body_len, 3);
    free(rec.body);

    /* without a body: DONE wins */
    const char *empty = "HTTP/1.1 204 No Content\r\n\r\n";
    rec_t rec2 = {0};
    rec2.stop_on_head = 1;
    telex_http1_response_init(&r);
    assert_int_equal(parse_copy(&r, empty, strlen(empty), &used, &rec2), TELEX_HTTP1_DONE);
    assert_int_equal(used, strlen(empty));
    assert_int_equal(rec2.heads, 1);
}

static void test_stop_at_the_last_byte(void **state)
{
    (void)state;
    /* Content-Length: the last byte ends the response, DONE wins */
    const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc";
    size_t len = strlen(in);
    rec_t rec = {0};
    rec.stop_on_body = 1;
    telex_http1_response_t r;
    telex_http1_response_init(&r);
    size_t used;
    assert_int_equal(parse_copy(&r, in, len, &used, &rec), TELEX_HTTP1_DONE);
    assert_int_equal(used, len);
    free(rec.body);

    /* chunked: the terminating chunk is still to be read */
    const char *ch = "HTTP/1.1 200 OK\r\n" TE "\r\n3\r\nabc\r\n0\r\n\r\n";
    len = strlen(ch);
    rec_t rec2 = {0};
    rec2.stop_on_body = 1;
    telex_http1_response_init(&r);
    assert_int_equal(parse_copy(&r, ch, len, &used, &rec2), TELEX_HTTP1_PAUSED);
    assert_int_equal(used, len - 7);
    size_t more;
    assert_int_equal(parse_copy(&r, ch + used, len - used, &more, &rec2), TELEX_HTTP1_DONE);
    assert_int_equal(more, 7);
    free(rec2.body);

    /* until close: everything delivered, then PAUSED */
    const char *uc = "HTTP/1.1 200 OK\r\n\r\nabc";
    len = strlen(uc);
    rec_t rec3 = {0};
    rec3.stop_on_body = 1;
    telex_http1_response_init(&r);
    assert_int_equal(parse_copy(&r, uc, len, &used, &rec3), TELEX_HTTP1_PAUSED);
    assert_int_equal(used, len);
    assert_true(telex_http1_response_ends_at_close(&r));
    assert_int_equal(parse_copy(&r, uc + used, 0, &more, &rec3), TELEX_HTTP1_MORE);
    assert_int_equal(more, 0);
    free(rec3.body);
}

static void test_null_callbacks(void **state)
{
    (void)state;
    char in[] = "HTTP/1.1 200 OK\r\n" TE "\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n";
    telex_http1_response_t r;
    telex_http1_response_init(&r);
    const telex_http1_response_callbacks_t none = {NULL, NULL};
    size_t used;
    assert_int_equal(telex_http1_response_parse(&r, in, strlen(in), &used, &none, NULL), TELEX_HTTP1_DONE);
    assert_int_equal(used, strlen(in));
    assert_int_equal(r.status, 200);
}

/* ------------------------------------------------------------ after the end */

static void test_results_stay(void **state)
{
    (void)state;
    const char *in = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nho";
    size_t len = strlen(in);
    rec_t rec = {0};
    telex_http1_response_t r;
    telex_http1_response_init(&r);
    size_t used;
    assert_int_equal(parse_copy(&r, in, len, &used, &rec), TELEX_HTTP1_DONE);
    assert_int_equal(used, len / 2);
    /* the next response is not read: DONE again, nothing consumed, no callback */
    size_t again;
    assert_int_equal(parse_copy(&r, in + used, len - used, &again, &rec), TELEX_HTTP1_DONE);
    assert_int_equal(again, 0);
    assert_int_equal(rec.heads, 1);
    assert_int_equal(rec.body_len, 2);
    /* init makes it ready for the next one */
    telex_http1_response_init(&r);
    assert_int_equal(parse_copy(&r, in + used, len - used, &again, &rec), TELEX_HTTP1_DONE);
    assert_int_equal(again, len - used);
    assert_int_equal(rec.heads, 2);
    assert_memory_equal(rec.body, "hiho", 4);
    free(rec.body);

    const char *bad = "HTTP/1.1 200 OK\r\n" TE "\r\nzz\r\n";
    rec_t rec2 = {0};
    telex_http1_response_init(&r);
    assert_int_equal(parse_copy(&r, bad, strlen(bad), &used, &rec2), TELEX_HTTP1_ERROR);
    const char *msg = r.error;
    assert_int_equal(parse_copy(&r, bad + used, strlen(bad) - used, &again, &rec2), TELEX_HTTP1_ERROR);
    assert_int_equal(again, 0);
    assert_ptr_equal(r.error, msg);
}

static void test_ends_at_close(void **state)
{
    (void)state;
    telex_http1_response_t r;
    telex_http1_response_init(&r);
    assert_false(telex_http1_response_ends_at_close(&r));
    const char *chunked = "HTTP/1.1 200 OK\r\n" TE "\r\n";
    rec_t rec = {0};
    size_t used;
    assert_int_equal(parse_copy(&r, chunked, strlen(chunked), &used, &rec), TELEX_HTTP1_MORE);
    assert_false(telex_http1_response_ends_at_close(&r));
    const char *uc = "HTTP/1.1 200 OK\r\n\r\n";
    telex_http1_response_init(&r);
    assert_int_equal(parse_copy(&r, uc, strlen(uc), &used, &rec), TELEX_HTTP1_MORE);
    assert_true(telex_http1_response_ends_at_close(&r));
}

/* ------------------------------------------------------------ head size */

/* A head of exactly `size` bytes: one long header line, then the blank line. */
static char *make_head(size_t size, const char *body)
{
    const char *start = "HTTP/1.1 200 OK\r\nX-Long: ";
    const char *end = "\r\nContent-Length: 2\r\n\r\n";
    size_t fixed = strlen(start) + strlen(end);
    assert_true(size > fixed);
    char *s = malloc(size + strlen(body) + 1);
    assert_non_null(s);
    strcpy(s, start);
    memset(s + strlen(start), 'v', size - fixed);
    strcpy(s + size - strlen(end), end);
    strcat(s, body);
    assert_int_equal(strlen(s), size + strlen(body));
    return s;
}

static telex_http1_result_t feed_in_steps(const char *in, size_t len, size_t step, rec_t *rec,
                                          telex_http1_response_t *r, size_t *consumed)
{
    size_t n = len / step + 2;
    size_t *arrivals = malloc(n * sizeof(*arrivals));
    assert_non_null(arrivals);
    size_t k = 0;
    for (size_t at = step; at < len; at += step)
        arrivals[k++] = at;
    arrivals[k++] = len;
    telex_http1_response_init(r);
    telex_http1_result_t res = drive(r, in, arrivals, k, rec, consumed);
    free(arrivals);
    return res;
}

static void test_head_limit(void **state)
{
    (void)state;
    static const size_t steps[] = {997, 4096, 70000};
    for (size_t s = 0; s < sizeof(steps) / sizeof(steps[0]); s++) {
        /* 64 KiB exactly: fine */
        char *in = make_head(TELEX_HTTP1_MAX_HEAD, "ok");
        rec_t rec = {0};
        telex_http1_response_t r;
        size_t consumed;
        assert_int_equal(feed_in_steps(in, strlen(in), steps[s], &rec, &r, &consumed), TELEX_HTTP1_DONE);
        assert_int_equal(consumed, strlen(in));
        assert_int_equal(rec.body_len, 2);
        free(rec.body);
        free(in);

        /* one byte more: refused */
        in = make_head(TELEX_HTTP1_MAX_HEAD + 1, "ok");
        rec_t rec2 = {0};
        assert_int_equal(feed_in_steps(in, strlen(in), steps[s], &rec2, &r, &consumed), TELEX_HTTP1_ERROR);
        assert_string_equal(r.error, "the provider's response head is larger than 64 KiB");
        assert_int_equal(rec2.heads, 0);
        free(in);
    }

    /* refused before its end arrives, once more than 64 KiB wait */
    char *big = malloc(TELEX_HTTP1_MAX_HEAD + 2);
    assert_non_null(big);
    memcpy(big, "HTTP/1.1 200 OK\r\nX: ", 20);
    memset(big + 20, 'v', TELEX_HTTP1_MAX_HEAD + 2 - 20);
    rec_t rec = {0};
    telex_http1_response_t r;
    telex_http1_response_init(&r);
    size_t used;
    assert_int_equal(parse_copy(&r, big, TELEX_HTTP1_MAX_HEAD, &used, &rec), TELEX_HTTP1_MORE);
    assert_int_equal(used, 0);
    assert_int_equal(parse_copy(&r, big, TELEX_HTTP1_MAX_HEAD + 1, &used, &rec), TELEX_HTTP1_ERROR);
    assert_string_equal(r.error, "the provider's response head is larger than 64 KiB");
    free(big);

    /* the limit is per head: a 1xx head and the final one may each be near it */
    char *h1 = make_head(TELEX_HTTP1_MAX_HEAD - 100, "");
    memcpy(h1 + 9, "103", 3);
    char *h2 = make_head(TELEX_HTTP1_MAX_HEAD - 100, "ok");
    size_t l1 = strlen(h1), l2 = strlen(h2);
    char *both = malloc(l1 + l2 + 1);
    assert_non_null(both);
    memcpy(both, h1, l1);
    memcpy(both + l1, h2, l2 + 1);
    rec_t rec3 = {0};
    size_t consumed;
    assert_int_equal(feed_in_steps(both, l1 + l2, 4096, &rec3, &r, &consumed), TELEX_HTTP1_DONE);
    assert_int_equal(consumed, l1 + l2);
    assert_int_equal(rec3.heads, 1);
    free(rec3.body);
    free(h1);
    free(h2);
    free(both);
}

/* A head arriving a byte at a time is searched once, not again from the
 * start of its current line with every read (64 KiB in one line would be
 * some 2^31 steps). No copies here: the parser sees the growing prefix. */
static void test_head_in_tiny_reads_is_linear(void **state)
{
    (void)state;
    char *in = make_head(TELEX_HTTP1_MAX_HEAD, "ok");
    size_t len = strlen(in);
    rec_t rec = {0};
    telex_http1_response_t r;
    telex_http1_response_init(&r);
    size_t consumed = 0, used = 0;
    telex_http1_result_t res = TELEX_HTTP1_MORE;
    clock_t t0 = clock();
    for (size_t avail = 1; avail <= len && res == TELEX_HTTP1_MORE; avail++) {
        res = telex_http1_response_parse(&r, in + consumed, avail - consumed, &used, &callbacks, &rec);
        consumed += used;
    }
    double seconds = (double)(clock() - t0) / CLOCKS_PER_SEC;
    assert_int_equal(res, TELEX_HTTP1_DONE);
    assert_int_equal(consumed, len);
    assert_int_equal(rec.body_len, 2);
    if (seconds > 0.5)
        fail_msg("a 64 KiB head fed a byte at a time took %.2f s", seconds);
    free(rec.body);
    free(in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_whole),
        cmocka_unit_test(test_table_split_in_two_everywhere),
        cmocka_unit_test(test_table_one_byte_at_a_time),
        cmocka_unit_test(test_table_stopping_at_every_callback),
        cmocka_unit_test(test_stop_in_on_body_then_go_on),
        cmocka_unit_test(test_chunks_of_one_feed_come_in_one_call),
        cmocka_unit_test(test_stop_in_on_head),
        cmocka_unit_test(test_stop_at_the_last_byte),
        cmocka_unit_test(test_null_callbacks),
        cmocka_unit_test(test_results_stay),
        cmocka_unit_test(test_ends_at_close),
        cmocka_unit_test(test_head_limit),
        cmocka_unit_test(test_head_in_tiny_reads_is_linear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
