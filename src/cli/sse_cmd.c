/*
 * cli/sse_cmd.c — `telex sse`: the libtelex SSE parser and encoder as a
 * command-line filter (stdin to stdout).
 *
 *   telex sse decode   event stream in  -> one JSON object per line out:
 *                      {"type":"message","data":"...","lastEventId":"..."}
 *                      per dispatched event, {"retry":N} per valid retry
 *                      field, in stream order; comments are not printed.
 *                      --stats prints one line of counts instead.
 *   telex sse encode   JSON lines in (keys type, data, id, lastEventId,
 *                      retry, comment) -> event stream out.
 *
 * Text: the parser works on bytes; decode turns every string into JSON the
 * way a browser's UTF-8 decoder would read it: each maximal invalid UTF-8
 * subpart becomes one U+FFFD (WHATWG Encoding "decode", as TextDecoder does),
 * so the output is always valid JSON. encode reads JSON, which is UTF-8 by
 * definition; `\u0000` is allowed in data and comments.
 *
 * Exit codes (cli/commands.h): 0 ok, 64 bad command line, 65 bad input
 * (parse error, bad JSON, bad field), 70 out of memory / internal error,
 * 74 (sysexits EX_IOERR) when reading stdin or writing stdout fails.
 *
 * Output goes through one large buffer written with write(2); it is flushed
 * when full and before every read that may block, so live streams are
 * decoded/encoded without delay while file-to-file use makes few syscalls.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/commands.h"
#include "telex/sse.h"

#define EXIT_IOERR 74 /* sysexits EX_IOERR */

#define OUT_BUFFER_SIZE (1u << 20)          /* stdout buffer */
#define READ_BUFFER_SIZE (256u << 10)       /* decode: bytes per read(2) at least */
#define DEFAULT_CHUNK_SIZE 65536u           /* decode: bytes per parser feed */
#define MAX_CHUNK_SIZE (64u << 20)          /* decode: largest --chunk-size */
#define MAX_EVENT_SIZE_LIMIT (1024u << 20)  /* decode: largest --max-event-size */
#define ENCODE_MAX_LINE (16u << 20)         /* encode: longest JSON line */

/* ------------------------------------------------------------------ help */

static const char decode_help[] =
    "usage: telex sse decode [--chunk-size N] [--max-event-size BYTES] [--stats]\n"
    "\n"
    "Reads a text/event-stream on stdin and writes one JSON object per line to\n"
    "stdout, in stream order:\n"
    "  {\"type\":\"message\",\"data\":\"...\",\"lastEventId\":\"...\"}  per dispatched event\n"
    "  {\"retry\":3000}                                      per valid retry field\n"
    "Comments are not printed. An unterminated event at the end of input is not\n"
    "dispatched (as in a browser). Bytes that are not valid UTF-8 are shown as\n"
    "U+FFFD, one per maximal invalid sequence (as a browser's decoder does).\n"
    "\n"
    "options:\n"
    "  --chunk-size N          feed the parser at most N bytes at a time\n"
    "                          (default 65536, 1..64M)\n"
    "  --max-event-size BYTES  largest event (data + type + id) or line accepted\n"
    "                          (default 1M, 1..1G); a larger one is an error\n"
    "  --stats                 print only one line of counts:\n"
    "                          {\"events\":N,\"retries\":N,\"comments\":N,\"bytes\":N,\n"
    "                           \"seconds\":S,\"mb_per_s\":X}   (MB = 10^6 bytes)\n"
    "  -h, --help              this help\n"
    "Sizes are bytes, or a number followed by K, M or G (x1024, x1024^2, x1024^3).\n"
    "\n"
    "exit: 0 end of input, 64 bad command line, 65 parse error (the message on\n"
    "stderr names the error and the input bytes where it happened), 70 out of\n"
    "memory, 74 read/write error.\n";

static const char encode_help[] =
    "usage: telex sse encode\n"
    "\n"
    "Reads JSON objects, one per line, on stdin and writes a text/event-stream to\n"
    "stdout. Blank lines are skipped. Keys:\n"
    "  {\"comment\":\"text\"}      a comment line \": text\" (one per line of text);\n"
    "                          cannot be combined with other keys\n"
    "  {\"retry\":3000}          alone: a `retry: 3000` line (reconnection delay, ms)\n"
    "  otherwise an event; every key is optional:\n"
    "    \"data\": string        the data; CR, LF and CRLF split it into several\n"
    "                          data lines (it decodes back with LF line breaks);\n"
    "                          missing = empty data (the event still dispatches)\n"
    "    \"type\": string        the event type (`event:` line; empty = omitted)\n"
    "    \"id\": string          the event id (`id:` line; \"\" resets the last\n"
    "                          event id)\n"
    "    \"lastEventId\": string the id the decoder should hold after this event:\n"
    "                          an `id:` line is written only when it changes (so\n"
    "                          `telex sse decode | telex sse encode` round-trips)\n"
    "    \"retry\": integer >= 0 a `retry:` line in the event\n"
    "Strings are UTF-8 JSON strings; \\u0000 is allowed in data and comment only.\n"
    "type and id must not contain CR, LF or NUL. Lines longer than 16 MiB are\n"
    "rejected.\n"
    "\n"
    "options:\n"
    "  -h, --help              this help\n"
    "\n"
    "exit: 0 end of input, 64 bad command line, 65 bad input (the message on\n"
    "stderr gives the line number and what is wrong), 70 out of memory,\n"
    "74 read/write error.\n";

static void print_sse_usage(FILE *out)
{
    fputs("usage: telex sse decode [options]   event stream on stdin -> JSON lines on stdout\n"
          "       telex sse encode             JSON lines on stdin -> event stream on stdout\n"
          "\n"
          "The libtelex Server-Sent Events parser and encoder (WHATWG HTML event-stream\n"
          "format) as a command-line filter. `telex sse decode --help` and\n"
          "`telex sse encode --help` describe each; both are below.\n"
          "\n"
          "---- telex sse decode\n",
          out);
    fputs(decode_help, out);
    fputs("\n---- telex sse encode\n", out);
    fputs(encode_help, out);
}

static bool is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

/* ------------------------------------------------------- buffered output */

/* stdout through one big buffer. After the first failed write the stream is
 * marked failed and further output is dropped; callers check `failed`. */
typedef struct {
    int fd;
    char *buf;
    size_t len;
    size_t cap;
    int failed; /* errno of the first failed write, or 0 */
} output_t;

static int output_init(output_t *out, int fd)
{
    out->fd = fd;
    out->len = 0;
    out->cap = OUT_BUFFER_SIZE;
    out->failed = 0;
    out->buf = malloc(out->cap);
    return out->buf ? 0 : -1;
}

static void write_all(output_t *out, const char *p, size_t n)
{
    while (n > 0 && !out->failed) {
        ssize_t w = write(out->fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            out->failed = errno;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

static void output_flush(output_t *out)
{
    if (out->len > 0)
        write_all(out, out->buf, out->len);
    out->len = 0;
}

/* Makes room for n contiguous bytes (n <= cap). */
static inline char *output_reserve(output_t *out, size_t n)
{
    if (out->cap - out->len < n)
        output_flush(out);
    return out->buf + out->len;
}

static void output_bytes(output_t *out, const void *p, size_t n)
{
    if (out->cap - out->len < n) {
        output_flush(out);
        if (n >= out->cap / 2) { /* large: skip the copy */
            write_all(out, p, n);
            return;
        }
    }
    memcpy(out->buf + out->len, p, n);
    out->len += n;
}

static inline void output_literal_n(output_t *out, const char *s, size_t n)
{
    char *dst = output_reserve(out, n);
    memcpy(dst, s, n);
    out->len += n;
}
#define output_literal(out, s) output_literal_n((out), (s), sizeof(s) - 1)

static void output_u64(output_t *out, uint64_t v)
{
    char tmp[24];
    size_t n = 0;
    do {
        tmp[sizeof tmp - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v > 0);
    output_literal_n(out, tmp + sizeof tmp - n, n);
}

/* ------------------------------------------------- JSON string escaping */

/* A byte that can be copied into a JSON string as is: printable ASCII other
 * than '"' and '\\'. */
static inline bool is_plain_ascii(unsigned char c)
{
    return c >= 0x20 && c < 0x80 && c != '"' && c != '\\';
}

#define BYTES_ONES UINT64_C(0x0101010101010101)
#define BYTES_HIGHS UINT64_C(0x8080808080808080)

/* SWAR over 8 bytes: a mask with the high bit set in every byte of w that
 * is not plain ASCII (high bit set, below 0x20, '"' or '\\'). Bytes above
 * the lowest flagged one may be flagged wrongly (borrows), so only "is it
 * zero" and "which byte is the lowest flagged" are meaningful. */
static inline uint64_t word_special_mask(uint64_t w)
{
    uint64_t below_space = (w - BYTES_ONES * 0x20) & ~w;
    uint64_t q = w ^ (BYTES_ONES * '"');
    uint64_t is_quote = (q - BYTES_ONES) & ~q;
    uint64_t b = w ^ (BYTES_ONES * '\\');
    uint64_t is_backslash = (b - BYTES_ONES) & ~b;
    return (w | below_space | is_quote | is_backslash) & BYTES_HIGHS;
}

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define WORD_FIRST_SPECIAL(mask) ((size_t)__builtin_ctzll(mask) / 8) /* index of the lowest flagged byte */
#else
#define WORD_FIRST_SPECIAL(mask) ((void)(mask), (size_t)0) /* big endian: go byte by byte */
#endif

/* Checks the UTF-8 sequence at p[0..n), p[0] >= 0x80, with the WHATWG
 * decoder's rules (no overlongs, surrogates or values above U+10FFFF).
 * Returns its length when valid; otherwise minus the length of the maximal
 * invalid subpart that the decoder turns into one U+FFFD. */
static ptrdiff_t utf8_check(const unsigned char *p, size_t n)
{
    unsigned char c = p[0], lower = 0x80, upper = 0xBF;
    size_t needed;
    if (c >= 0xC2 && c <= 0xDF) {
        needed = 1;
    } else if (c >= 0xE0 && c <= 0xEF) {
        needed = 2;
        if (c == 0xE0)
            lower = 0xA0;
        else if (c == 0xED)
            upper = 0x9F;
    } else if (c >= 0xF0 && c <= 0xF4) {
        needed = 3;
        if (c == 0xF0)
            lower = 0x90;
        else if (c == 0xF4)
            upper = 0x8F;
    } else {
        return -1;
    }
    for (size_t k = 1; k <= needed; k++) {
        if (k >= n || p[k] < lower || p[k] > upper)
            return -(ptrdiff_t)k;
        lower = 0x80;
        upper = 0xBF;
    }
    return (ptrdiff_t)needed + 1;
}

/* Escapes s[*pos..) into dst until at least `end` is reached (a step may
 * go up to 8 bytes past it: a plain word, or a UTF-8 sequence), never past n.
 * dst needs 6 bytes per input byte consumed. Valid UTF-8 is copied, invalid
 * bytes become U+FFFD, '"', '\\' and control characters are escaped.
 * Returns the bytes written. */
static size_t json_escape_segment(char *dst, const unsigned char *s, size_t n, size_t *pos, size_t end)
{
    static const char hex[] = "0123456789abcdef";
    char *d = dst;
    size_t i = *pos;
    while (i < end) {
        if (i + 8 <= n) {
            uint64_t w;
            memcpy(&w, s + i, 8);
            uint64_t special = word_special_mask(w);
            size_t plain = special ? WORD_FIRST_SPECIAL(special) : 8;
            memcpy(d, &w, 8); /* the bytes after `plain` are overwritten below */
            d += plain;
            i += plain;
            if (plain == 8)
                continue;
        }
        unsigned char c = s[i];
        if (is_plain_ascii(c)) {
            *d++ = (char)c;
            i++;
            continue;
        }
        if (c >= 0x80) {
            ptrdiff_t len = utf8_check(s + i, n - i);
            if (len > 0) {
                memcpy(d, s + i, (size_t)len);
                d += len;
                i += (size_t)len;
            } else {
                memcpy(d, "\xEF\xBF\xBD", 3); /* U+FFFD */
                d += 3;
                i += (size_t)-len;
            }
            continue;
        }
        d[0] = '\\';
        switch (c) {
        case '"': d[1] = '"'; d += 2; break;
        case '\\': d[1] = '\\'; d += 2; break;
        case '\n': d[1] = 'n'; d += 2; break;
        case '\r': d[1] = 'r'; d += 2; break;
        case '\t': d[1] = 't'; d += 2; break;
        case '\b': d[1] = 'b'; d += 2; break;
        case '\f': d[1] = 'f'; d += 2; break;
        default:
            memcpy(d + 1, "u00", 3);
            d[4] = hex[c >> 4];
            d[5] = hex[c & 15];
            d += 6;
        }
        i++;
    }
    *pos = i;
    return (size_t)(d - dst);
}

/* Input bytes escaped per step, so that a step's worst case (6 output bytes
 * per input byte, plus overshoot) always fits the output buffer. */
#define ESCAPE_STEP (OUT_BUFFER_SIZE / 8)

/* Writes s[0..n) as a quoted JSON string (see json_escape_segment). */
static void output_json_string(output_t *out, const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    output_literal(out, "\"");
    while (i < n) {
        size_t step = n - i < ESCAPE_STEP ? n - i : ESCAPE_STEP;
        char *dst = output_reserve(out, 6 * (step + 8));
        out->len += json_escape_segment(dst, s, n, &i, i + step);
    }
    output_literal(out, "\"");
}

/* --------------------------------------------------------------- options */

/* Parses a size: digits, optionally followed by K, M or G (binary). */
static bool parse_size(const char *text, uint64_t min, uint64_t max, uint64_t *value)
{
    uint64_t v = 0;
    const char *p = text;
    if (*p < '0' || *p > '9')
        return false;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (UINT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    unsigned shift = 0;
    switch (*p) {
    case '\0': break;
    case 'k': case 'K': shift = 10; p++; break;
    case 'm': case 'M': shift = 20; p++; break;
    case 'g': case 'G': shift = 30; p++; break;
    default: return false;
    }
    if (*p != '\0' || v > (UINT64_MAX >> shift))
        return false;
    v <<= shift;
    if (v < min || v > max)
        return false;
    *value = v;
    return true;
}

/* Matches "--name VALUE" and "--name=VALUE" at argv[*i]. Returns 1 and the
 * value on a match, 0 when argv[*i] is another option, -1 when the value is
 * missing. */
static int option_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    size_t len = strlen(name);
    const char *arg = argv[*i];
    if (strncmp(arg, name, len) != 0)
        return 0;
    if (arg[len] == '=') {
        *value = arg + len + 1;
        return 1;
    }
    if (arg[len] != '\0')
        return 0;
    if (*i + 1 >= argc)
        return -1;
    *value = argv[++*i];
    return 1;
}

__attribute__((format(printf, 3, 4))) static int usage_error(const char *command, const char *help,
                                                            const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "telex sse %s: ", command);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\n\n", stderr);
    fputs(help, stderr);
    return TELEX_EXIT_USAGE;
}

/* ---------------------------------------------------------------- decode */

typedef struct {
    output_t out;
    bool stats_only;
    uint64_t events;
    uint64_t retries;
    uint64_t comments;
} decoder_t;

static int on_event(void *user, const telex_sse_event_t *ev)
{
    decoder_t *d = user;
    d->events++;
    if (d->stats_only)
        return 0;
    output_literal(&d->out, "{\"type\":");
    output_json_string(&d->out, ev->type, ev->type_len);
    output_literal(&d->out, ",\"data\":");
    output_json_string(&d->out, ev->data, ev->data_len);
    output_literal(&d->out, ",\"lastEventId\":");
    output_json_string(&d->out, ev->id, ev->id_len);
    output_literal(&d->out, "}\n");
    return d->out.failed ? 1 : 0;
}

static int on_retry(void *user, uint64_t milliseconds)
{
    decoder_t *d = user;
    d->retries++;
    if (d->stats_only)
        return 0;
    output_literal(&d->out, "{\"retry\":");
    output_u64(&d->out, milliseconds);
    output_literal(&d->out, "}\n");
    return d->out.failed ? 1 : 0;
}

static int on_comment(void *user, const char *text, size_t len)
{
    decoder_t *d = user;
    (void)text;
    (void)len;
    d->comments++;
    return 0;
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static int decode_run(size_t chunk_size, size_t max_event_size, bool stats_only)
{
    decoder_t d = {.stats_only = stats_only};
    const telex_sse_callbacks_t callbacks = {on_event, on_retry, on_comment};
    size_t read_cap = chunk_size > READ_BUFFER_SIZE ? chunk_size : READ_BUFFER_SIZE;
    char *in = malloc(read_cap);
    telex_sse_parser_t *parser = telex_sse_parser_new(max_event_size, &callbacks, &d);
    if (!in || !parser || output_init(&d.out, STDOUT_FILENO) != 0) {
        fputs("telex sse decode: out of memory\n", stderr);
        free(in);
        telex_sse_parser_free(parser);
        free(d.out.buf);
        return TELEX_EXIT_SOFTWARE;
    }

    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    uint64_t offset = 0; /* input bytes fed so far */
    int status = TELEX_EXIT_OK;
    for (;;) {
        output_flush(&d.out); /* the read may block: show what we have */
        if (d.out.failed)
            break;
        ssize_t got = read(STDIN_FILENO, in, read_cap);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "telex sse decode: cannot read stdin: %s\n", strerror(errno));
            status = EXIT_IOERR;
            break;
        }
        if (got == 0)
            break;
        for (size_t pos = 0; pos < (size_t)got && status == TELEX_EXIT_OK;) {
            size_t n = (size_t)got - pos < chunk_size ? (size_t)got - pos : chunk_size;
            int err = telex_sse_parser_feed(parser, in + pos, n);
            if (err == TELEX_SSE_ESTOPPED && d.out.failed) {
                status = EXIT_IOERR; /* reported below */
            } else if (err == TELEX_SSE_ENOMEM) {
                fprintf(stderr, "telex sse decode: out of memory at input bytes %llu-%llu\n",
                        (unsigned long long)offset, (unsigned long long)(offset + n - 1));
                status = TELEX_EXIT_SOFTWARE;
            } else if (err != TELEX_SSE_OK) {
                output_flush(&d.out); /* everything before the error is valid */
                fprintf(stderr,
                        "telex sse decode: parse error in input bytes %llu-%llu (the feed where it was "
                        "detected; %llu events before it): %s",
                        (unsigned long long)offset, (unsigned long long)(offset + n - 1),
                        (unsigned long long)d.events, telex_sse_strerror(err));
                if (err == TELEX_SSE_ETOOBIG)
                    fprintf(stderr, " (--max-event-size is %llu bytes)", (unsigned long long)max_event_size);
                fputc('\n', stderr);
                status = TELEX_EXIT_DATAERR;
            }
            pos += n;
            offset += n;
        }
        if (status != TELEX_EXIT_OK)
            break;
    }
    double seconds = seconds_since(&start);

    if (status == TELEX_EXIT_OK && stats_only) {
        char line[256];
        int len = snprintf(line, sizeof line,
                           "{\"events\":%llu,\"retries\":%llu,\"comments\":%llu,\"bytes\":%llu,"
                           "\"seconds\":%.6f,\"mb_per_s\":%.1f}\n",
                           (unsigned long long)d.events, (unsigned long long)d.retries,
                           (unsigned long long)d.comments, (unsigned long long)offset, seconds,
                           seconds > 0 ? (double)offset / 1e6 / seconds : 0.0);
        output_bytes(&d.out, line, (size_t)len);
    }
    output_flush(&d.out);
    if (d.out.failed) {
        if (status == TELEX_EXIT_OK || status == EXIT_IOERR)
            fprintf(stderr, "telex sse decode: cannot write stdout: %s\n", strerror(d.out.failed));
        if (status == TELEX_EXIT_OK)
            status = EXIT_IOERR;
    }
    telex_sse_parser_free(parser);
    free(in);
    free(d.out.buf);
    return status;
}

static int cmd_decode(int argc, char **argv)
{
    uint64_t chunk_size = DEFAULT_CHUNK_SIZE;
    uint64_t max_event_size = TELEX_SSE_DEFAULT_MAX_EVENT_SIZE;
    bool stats_only = false;
    for (int i = 1; i < argc; i++) {
        const char *value = NULL;
        int m;
        if (is_help(argv[i])) {
            fputs(decode_help, stdout);
            return TELEX_EXIT_OK;
        } else if (strcmp(argv[i], "--stats") == 0) {
            stats_only = true;
        } else if ((m = option_value(argc, argv, &i, "--chunk-size", &value)) != 0) {
            if (m < 0)
                return usage_error("decode", decode_help, "%s needs a value", "--chunk-size");
            if (!parse_size(value, 1, MAX_CHUNK_SIZE, &chunk_size))
                return usage_error("decode", decode_help, "bad --chunk-size '%s' (1 to 64M bytes)", value);
        } else if ((m = option_value(argc, argv, &i, "--max-event-size", &value)) != 0) {
            if (m < 0)
                return usage_error("decode", decode_help, "%s needs a value", "--max-event-size");
            if (!parse_size(value, 1, MAX_EVENT_SIZE_LIMIT, &max_event_size))
                return usage_error("decode", decode_help, "bad --max-event-size '%s' (1 to 1G bytes)", value);
        } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
            return usage_error("decode", decode_help, "unknown option '%s'", argv[i]);
        } else {
            return usage_error("decode", decode_help, "unexpected argument '%s' (input is read from stdin)",
                               argv[i]);
        }
    }
    return decode_run((size_t)chunk_size, (size_t)max_event_size, stats_only);
}

/* ---------------------------------------------------------------- encode */

/* Reads stdin line by line; a line may not exceed max_line bytes (without
 * its LF). Flushes `out` before every read so output never waits for input. */
typedef struct {
    char *buf;
    size_t cap, start, end, scanned;
    size_t max_line;
    bool eof;
    output_t *out;
} line_reader_t;

enum { LINE_OK = 1, LINE_EOF = 0, LINE_TOO_LONG = -1, LINE_READ_ERROR = -2, LINE_NOMEM = -3 };

static int line_reader_next(line_reader_t *r, char **line, size_t *len)
{
    for (;;) {
        char *nl = memchr(r->buf + r->scanned, '\n', r->end - r->scanned);
        if (nl) {
            *line = r->buf + r->start;
            *len = (size_t)(nl - *line);
            r->start = r->scanned = (size_t)(nl - r->buf) + 1;
            return *len > r->max_line ? LINE_TOO_LONG : LINE_OK;
        }
        r->scanned = r->end;
        if (r->end - r->start > r->max_line)
            return LINE_TOO_LONG;
        if (r->eof) {
            if (r->start == r->end)
                return LINE_EOF;
            *line = r->buf + r->start;
            *len = r->end - r->start;
            r->start = r->scanned = r->end;
            return LINE_OK;
        }
        if (r->start > 0) { /* keep the partial line at the front */
            memmove(r->buf, r->buf + r->start, r->end - r->start);
            r->end -= r->start;
            r->scanned = r->end;
            r->start = 0;
        }
        if (r->end == r->cap) {
            size_t cap = r->cap * 2 > r->max_line + 2 ? r->max_line + 2 : r->cap * 2;
            char *grown = realloc(r->buf, cap);
            if (!grown)
                return LINE_NOMEM;
            r->buf = grown;
            r->cap = cap;
        }
        output_flush(r->out);
        ssize_t got = read(STDIN_FILENO, r->buf + r->end, r->cap - r->end);
        if (got < 0) {
            if (errno == EINTR)
                continue;
            return LINE_READ_ERROR;
        }
        if (got == 0)
            r->eof = true;
        r->end += (size_t)got;
    }
}

typedef struct {
    output_t out;
    char *scratch; /* for records larger than the output buffer */
    size_t scratch_cap;
    char *last_id; /* the id a decoder holds after what we wrote so far */
    size_t last_id_len;
    size_t line_no;
} encoder_t;

static bool has_line_break_or_nul(const char *s, size_t n)
{
    return memchr(s, '\r', n) || memchr(s, '\n', n) || memchr(s, '\0', n);
}

/* Prints a JSON object key for an error message, escaped and shortened. */
static void print_key(const char *key)
{
    fputc('"', stderr);
    for (size_t i = 0; key[i] && i < 64; i++) {
        unsigned char c = (unsigned char)key[i];
        if (c == '"' || c == '\\')
            fprintf(stderr, "\\%c", c);
        else if (c < 0x20)
            fprintf(stderr, "\\u%04x", c);
        else
            fputc(c, stderr);
    }
    if (strlen(key) > 64)
        fputs("...", stderr);
    fputc('"', stderr);
}

static int encode_error(const encoder_t *e, const char *what)
{
    fprintf(stderr, "telex sse encode: line %zu: %s\n", e->line_no, what);
    return TELEX_EXIT_DATAERR;
}

/* Gets a string member; 0 if absent, 1 if present, -1 (reported) if not a string. */
static int get_string(const encoder_t *e, json_t *obj, const char *key, const char **s, size_t *n)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return 0;
    if (!json_is_string(v)) {
        fprintf(stderr, "telex sse encode: line %zu: \"%s\" must be a string\n", e->line_no, key);
        return -1;
    }
    *s = json_string_value(v);
    *n = json_string_length(v);
    return 1;
}

/* Writes one encoded record; `encode` is called with a buffer of `bound` bytes. */
typedef int (*encode_fn)(char *buf, size_t cap, const void *arg, size_t *written);

static int write_record(encoder_t *e, size_t bound, encode_fn encode, const void *arg)
{
    char *buf;
    size_t written = 0;
    bool direct = bound <= e->out.cap;
    if (direct) {
        buf = output_reserve(&e->out, bound);
    } else {
        if (e->scratch_cap < bound) {
            char *grown = realloc(e->scratch, bound);
            if (!grown) {
                fputs("telex sse encode: out of memory\n", stderr);
                return TELEX_EXIT_SOFTWARE;
            }
            e->scratch = grown;
            e->scratch_cap = bound;
        }
        buf = e->scratch;
    }
    int err = encode(buf, bound, arg, &written);
    if (err != TELEX_SSE_OK) {
        fprintf(stderr, "telex sse encode: line %zu: %s\n", e->line_no, telex_sse_strerror(err));
        return err == TELEX_SSE_EINVAL ? TELEX_EXIT_DATAERR : TELEX_EXIT_SOFTWARE;
    }
    if (direct)
        e->out.len += written;
    else
        output_bytes(&e->out, buf, written);
    return TELEX_EXIT_OK;
}

static int encode_event_fn(char *buf, size_t cap, const void *arg, size_t *written)
{
    return telex_sse_encode_event(buf, cap, arg, written);
}

typedef struct {
    const char *text;
    size_t len;
} comment_arg_t;

static int encode_comment_fn(char *buf, size_t cap, const void *arg, size_t *written)
{
    const comment_arg_t *c = arg;
    return telex_sse_encode_comment(buf, cap, c->text, c->len, written);
}

static int remember_id(encoder_t *e, const char *id, size_t len)
{
    char *copy = malloc(len + 1);
    if (!copy) {
        fputs("telex sse encode: out of memory\n", stderr);
        return TELEX_EXIT_SOFTWARE;
    }
    memcpy(copy, id, len);
    copy[len] = '\0';
    free(e->last_id);
    e->last_id = copy;
    e->last_id_len = len;
    return TELEX_EXIT_OK;
}

static int encode_object(encoder_t *e, json_t *obj)
{
    const char *key;
    json_t *value;
    json_object_foreach(obj, key, value)
    {
        if (strcmp(key, "type") && strcmp(key, "data") && strcmp(key, "id") && strcmp(key, "lastEventId") &&
            strcmp(key, "retry") && strcmp(key, "comment")) {
            fprintf(stderr, "telex sse encode: line %zu: unknown key ", e->line_no);
            print_key(key);
            fputs(" (expected type, data, id, lastEventId, retry or comment)\n", stderr);
            return TELEX_EXIT_DATAERR;
        }
    }

    comment_arg_t comment;
    int has = get_string(e, obj, "comment", &comment.text, &comment.len);
    if (has < 0)
        return TELEX_EXIT_DATAERR;
    if (has) {
        if (json_object_size(obj) != 1)
            return encode_error(e, "\"comment\" cannot be combined with type, data, id, lastEventId or retry");
        return write_record(e, telex_sse_encoded_comment_size(comment.len), encode_comment_fn, &comment);
    }

    telex_sse_out_event_t ev = {.retry = -1};
    json_t *retry = json_object_get(obj, "retry");
    if (retry) {
        if (!json_is_integer(retry) || json_integer_value(retry) < 0)
            return encode_error(e, "\"retry\" must be an integer >= 0 (milliseconds)");
        ev.retry = (int64_t)json_integer_value(retry);
        if (json_object_size(obj) == 1) { /* a retry line on its own */
            output_literal(&e->out, "retry: ");
            output_u64(&e->out, (uint64_t)ev.retry);
            output_literal(&e->out, "\n\n");
            return TELEX_EXIT_OK;
        }
    }
    if (get_string(e, obj, "data", &ev.data, &ev.data_len) < 0 ||
        get_string(e, obj, "type", &ev.type, &ev.type_len) < 0)
        return TELEX_EXIT_DATAERR;
    if (ev.type && has_line_break_or_nul(ev.type, ev.type_len))
        return encode_error(e, "\"type\" must not contain CR, LF or NUL");

    const char *id = NULL, *last = NULL;
    size_t id_len = 0, last_len = 0;
    int has_id = get_string(e, obj, "id", &id, &id_len);
    int has_last = get_string(e, obj, "lastEventId", &last, &last_len);
    if (has_id < 0 || has_last < 0)
        return TELEX_EXIT_DATAERR;
    if (has_id && has_last)
        return encode_error(e, "give either \"id\" or \"lastEventId\", not both");
    if (has_last && has_line_break_or_nul(last, last_len))
        return encode_error(e, "\"lastEventId\" must not contain CR, LF or NUL");
    if (has_last) {
        if (last_len != e->last_id_len || memcmp(last, e->last_id ? e->last_id : "", last_len) != 0) {
            id = last; /* changed: write it */
            id_len = last_len;
            has_id = 1;
        }
    }
    if (has_id) {
        if (has_line_break_or_nul(id, id_len))
            return encode_error(e, "\"id\" must not contain CR, LF or NUL");
        int status = remember_id(e, id, id_len);
        if (status != TELEX_EXIT_OK)
            return status;
        if (id_len == 0) /* the encoder omits empty ids; an empty id line resets the last event id */
            output_literal(&e->out, "id\n");
        else {
            ev.id = id;
            ev.id_len = id_len;
        }
    }
    return write_record(e, telex_sse_encoded_size(&ev), encode_event_fn, &ev);
}

static bool is_blank(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r')
            return false;
    return true;
}

static int encode_run(void)
{
    encoder_t e = {0};
    line_reader_t reader = {.cap = 64 * 1024, .max_line = ENCODE_MAX_LINE, .out = &e.out};
    reader.buf = malloc(reader.cap);
    if (!reader.buf || output_init(&e.out, STDOUT_FILENO) != 0) {
        fputs("telex sse encode: out of memory\n", stderr);
        free(reader.buf);
        free(e.out.buf);
        return TELEX_EXIT_SOFTWARE;
    }
    int status = TELEX_EXIT_OK;
    while (status == TELEX_EXIT_OK && !e.out.failed) {
        char *line;
        size_t len;
        int r = line_reader_next(&reader, &line, &len);
        if (r == LINE_EOF)
            break;
        e.line_no++;
        if (r == LINE_TOO_LONG) {
            fprintf(stderr, "telex sse encode: line %zu: longer than the limit of %u bytes (16 MiB)\n", e.line_no,
                    ENCODE_MAX_LINE);
            status = TELEX_EXIT_DATAERR;
        } else if (r == LINE_READ_ERROR) {
            fprintf(stderr, "telex sse encode: cannot read stdin: %s\n", strerror(errno));
            status = EXIT_IOERR;
        } else if (r == LINE_NOMEM) {
            fputs("telex sse encode: out of memory\n", stderr);
            status = TELEX_EXIT_SOFTWARE;
        } else if (!is_blank(line, len)) {
            json_error_t jerr;
            json_t *obj = json_loadb(line, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
            if (!obj) {
                fprintf(stderr, "telex sse encode: line %zu, column %d: invalid JSON: %s\n", e.line_no,
                        jerr.column, jerr.text);
                status = TELEX_EXIT_DATAERR;
            } else if (!json_is_object(obj)) {
                status = encode_error(&e, "expected a JSON object");
            } else {
                status = encode_object(&e, obj);
            }
            json_decref(obj);
        }
    }
    output_flush(&e.out);
    if (e.out.failed) {
        fprintf(stderr, "telex sse encode: cannot write stdout: %s\n", strerror(e.out.failed));
        if (status == TELEX_EXIT_OK)
            status = EXIT_IOERR;
    }
    free(reader.buf);
    free(e.out.buf);
    free(e.scratch);
    free(e.last_id);
    return status;
}

static int cmd_encode(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            fputs(encode_help, stdout);
            return TELEX_EXIT_OK;
        }
        if (argv[i][0] == '-' && argv[i][1] != '\0')
            return usage_error("encode", encode_help, "unknown option '%s'", argv[i]);
        return usage_error("encode", encode_help, "unexpected argument '%s' (input is read from stdin)", argv[i]);
    }
    return encode_run();
}

/* ------------------------------------------------------------ dispatcher */

int telex_cmd_sse(int argc, char **argv)
{
    if (argc < 2) {
        fputs("telex sse: missing command (decode or encode)\n\n", stderr);
        print_sse_usage(stderr);
        return TELEX_EXIT_USAGE;
    }
    if (is_help(argv[1]) || strcmp(argv[1], "help") == 0) {
        print_sse_usage(stdout);
        return TELEX_EXIT_OK;
    }
    if (strcmp(argv[1], "decode") == 0)
        return cmd_decode(argc - 1, argv + 1);
    if (strcmp(argv[1], "encode") == 0)
        return cmd_encode(argc - 1, argv + 1);
    fprintf(stderr, "telex sse: unknown command or option '%s'\n\n", argv[1]);
    print_sse_usage(stderr);
    return TELEX_EXIT_USAGE;
}
