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
 * subpart becomes one U+FFFD (WHATWG Encoding "decode", as TextDecoder does;
 * util/json_dump.h's escaper with TELEX_JSON_ESCAPE_REPLACE), so the output
 * is always valid JSON. encode reads JSON, which is UTF-8 by definition;
 * `\u0000` is allowed in data and comments.
 *
 * Exit codes (cli/commands.h): 0 ok, 64 bad command line, 65 bad input
 * (parse error, bad JSON, bad field), 70 internal error (decode: the parser
 * out of memory), 74 (sysexits EX_IOERR) when reading stdin or writing
 * stdout fails. Any other allocation that fails ends the process
 * (util/alloc.h; docs/architecture.md, "Errors and out of memory").
 *
 * Output is stdio's stdout, fully buffered (1 MiB); it is flushed before
 * every read that may block, so live streams are decoded/encoded without
 * delay while file-to-file use makes few write(2)s. decode reads stdin with
 * read(2), which returns what a pipe has (fread would wait to fill its
 * buffer); encode reads lines through stdio.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
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
#include "util/alloc.h"
#include "util/buf.h"
#include "util/json_dump.h"

#define EXIT_IOERR 74 /* sysexits EX_IOERR */

#define OUT_BUFFER_SIZE (1u << 20)          /* stdout's stdio buffer */
#define READ_BUFFER_SIZE (256u << 10)       /* decode: bytes per read(2) at least */
#define DEFAULT_CHUNK_SIZE 65536u           /* decode: bytes per parser feed */
#define MAX_CHUNK_SIZE (64u << 20)          /* decode: largest --chunk-size */
#define MAX_EVENT_SIZE_LIMIT (1024u << 20)  /* decode: largest --max-event-size */
#define ENCODE_MAX_LINE (16u << 20)         /* encode: longest JSON line */
#define ESCAPE_STEP (16u << 10)             /* decode: string bytes escaped per fwrite */

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
    "stderr gives the line number and what is wrong), 70 internal error,\n"
    "74 read/write error. Out of memory ends the command (abort).\n";

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

/* ---------------------------------------------------------------- stdout */

/* errno of the first failed write to stdout, or 0; after it, output is
 * dropped and the command ends with 74. */
static int write_errno;

static void out_bytes(const void *p, size_t n)
{
    if (write_errno == 0 && n > 0 && fwrite_unlocked(p, 1, n, stdout) != n) /* one thread: no lock per piece */
        write_errno = errno ? errno : EIO;
}

#define out_literal(s) out_bytes((s), sizeof(s) - 1)

static void out_flush(void)
{
    if (write_errno == 0 && fflush(stdout) != 0)
        write_errno = errno ? errno : EIO;
}

/* Writes s[0..n) as a quoted JSON string, invalid UTF-8 as U+FFFD. */
static void out_json_string(char *scratch, const char *s, size_t n)
{
    size_t pos = 0;
    out_literal("\"");
    while (pos < n)
        out_bytes(scratch, telex_json_escape(scratch, s, n, &pos, pos + ESCAPE_STEP, TELEX_JSON_ESCAPE_REPLACE));
    out_literal("\"");
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
    bool stats_only;
    char *scratch; /* TELEX_JSON_ESCAPE_BOUND(ESCAPE_STEP) bytes */
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
    out_literal("{\"type\":");
    out_json_string(d->scratch, ev->type, ev->type_len);
    out_literal(",\"data\":");
    out_json_string(d->scratch, ev->data, ev->data_len);
    out_literal(",\"lastEventId\":");
    out_json_string(d->scratch, ev->id, ev->id_len);
    out_literal("}\n");
    return write_errno != 0;
}

static int on_retry(void *user, uint64_t milliseconds)
{
    decoder_t *d = user;
    d->retries++;
    if (d->stats_only)
        return 0;
    if (write_errno == 0 && printf("{\"retry\":%" PRIu64 "}\n", milliseconds) < 0)
        write_errno = errno ? errno : EIO;
    return write_errno != 0;
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
    char *in = telex_xmalloc(read_cap);
    d.scratch = telex_xmalloc(TELEX_JSON_ESCAPE_BOUND(ESCAPE_STEP));
    telex_sse_parser_t *parser = telex_sse_parser_new(max_event_size, &callbacks, &d);
    if (!parser) { /* libtelex reports out of memory; the command says so (exit 70) */
        fputs("telex sse decode: out of memory\n", stderr);
        free(in);
        free(d.scratch);
        telex_sse_parser_free(parser);
        return TELEX_EXIT_SOFTWARE;
    }

    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    uint64_t offset = 0; /* input bytes fed so far */
    int status = TELEX_EXIT_OK;
    for (;;) {
        out_flush(); /* the read may block: show what we have */
        if (write_errno != 0)
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
            if (err == TELEX_SSE_ESTOPPED && write_errno != 0) {
                status = EXIT_IOERR; /* reported below */
            } else if (err == TELEX_SSE_ENOMEM) {
                fprintf(stderr, "telex sse decode: out of memory at input bytes %llu-%llu\n",
                        (unsigned long long)offset, (unsigned long long)(offset + n - 1));
                status = TELEX_EXIT_SOFTWARE;
            } else if (err != TELEX_SSE_OK) {
                out_flush(); /* everything before the error is valid */
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

    if (status == TELEX_EXIT_OK && stats_only && write_errno == 0 &&
        printf("{\"events\":%" PRIu64 ",\"retries\":%" PRIu64 ",\"comments\":%" PRIu64 ",\"bytes\":%" PRIu64
               ",\"seconds\":%.6f,\"mb_per_s\":%.1f}\n",
               d.events, d.retries, d.comments, offset, seconds,
               seconds > 0 ? (double)offset / 1e6 / seconds : 0.0) < 0)
        write_errno = errno ? errno : EIO;
    out_flush();
    if (write_errno != 0) {
        if (status == TELEX_EXIT_OK || status == EXIT_IOERR)
            fprintf(stderr, "telex sse decode: cannot write stdout: %s\n", strerror(write_errno));
        if (status == TELEX_EXIT_OK)
            status = EXIT_IOERR;
    }
    telex_sse_parser_free(parser);
    free(in);
    free(d.scratch);
    return status;
}

enum { OPT_CHUNK_SIZE = 256, OPT_MAX_EVENT_SIZE, OPT_STATS };

/* getopt_long over argv (argv[0] is the subcommand); no permutation, so
 * the first argument that is not an option ends the options. */
static int next_option(int argc, char **argv, const struct option *options)
{
    return getopt_long(argc, argv, "+:h", options, NULL);
}

static int cmd_decode(int argc, char **argv)
{
    static const struct option options[] = {
        {"chunk-size", required_argument, NULL, OPT_CHUNK_SIZE},
        {"max-event-size", required_argument, NULL, OPT_MAX_EVENT_SIZE},
        {"stats", no_argument, NULL, OPT_STATS},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    uint64_t chunk_size = DEFAULT_CHUNK_SIZE;
    uint64_t max_event_size = TELEX_SSE_DEFAULT_MAX_EVENT_SIZE;
    bool stats_only = false;
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = next_option(argc, argv, options)) != -1) {
        switch (opt) {
        case 'h':
            fputs(decode_help, stdout);
            return TELEX_EXIT_OK;
        case OPT_STATS:
            stats_only = true;
            break;
        case OPT_CHUNK_SIZE:
            if (!parse_size(optarg, 1, MAX_CHUNK_SIZE, &chunk_size))
                return usage_error("decode", decode_help, "bad --chunk-size '%s' (1 to 64M bytes)", optarg);
            break;
        case OPT_MAX_EVENT_SIZE:
            if (!parse_size(optarg, 1, MAX_EVENT_SIZE_LIMIT, &max_event_size))
                return usage_error("decode", decode_help, "bad --max-event-size '%s' (1 to 1G bytes)", optarg);
            break;
        case ':':
            return usage_error("decode", decode_help, "%s needs a value", argv[optind - 1]);
        default:
            return usage_error("decode", decode_help, "unknown option '%s'", argv[optind - 1]);
        }
    }
    if (optind < argc)
        return usage_error("decode", decode_help, "unexpected argument '%s' (input is read from stdin)",
                           argv[optind]);
    return decode_run((size_t)chunk_size, (size_t)max_event_size, stats_only);
}

/* ---------------------------------------------------------------- encode */

enum { LINE_OK = 1, LINE_EOF = 0, LINE_TOO_LONG = -1, LINE_READ_ERROR = -2 };

/* Bytes stdin's buffer holds already (gnulib's freadahead): none means the
 * next getc may block, so pending output is flushed first. */
static bool stdin_buffer_empty(void)
{
#ifdef __GLIBC__
    return stdin->_IO_read_ptr >= stdin->_IO_read_end;
#else
    return true; /* unknown: flush every time (cheap when nothing is pending) */
#endif
}

/* Reads one line of stdin (without its LF) into line (NUL-terminated), at
 * most max_line bytes: a longer one is LINE_TOO_LONG, found without reading
 * the rest of it. */
static int read_line(telex_buf_t *line, size_t max_line)
{
    line->len = 0;
    for (;;) {
        if (stdin_buffer_empty())
            out_flush();
        int c = getc_unlocked(stdin);
        if (c == EOF)
            return ferror(stdin) ? LINE_READ_ERROR : line->len > 0 ? LINE_OK : LINE_EOF;
        if (c == '\n')
            return LINE_OK;
        if (line->len == max_line)
            return LINE_TOO_LONG;
        if (line->len + 1 >= line->cap)
            telex_buf_reserve(line, 1); /* no limit: cannot fail; max_line bounds it */
        line->data[line->len++] = (char)c;
        line->data[line->len] = '\0';
    }
}

typedef struct {
    telex_buf_t record; /* one encoded record */
    char *last_id;      /* the id a decoder holds after what we wrote so far */
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
    size_t written = 0;
    e->record.len = 0;
    telex_buf_reserve(&e->record, bound); /* no limit: cannot fail (util/buf.h) */
    int err = encode(e->record.data, bound, arg, &written);
    if (err != TELEX_SSE_OK) {
        fprintf(stderr, "telex sse encode: line %zu: %s\n", e->line_no, telex_sse_strerror(err));
        return err == TELEX_SSE_EINVAL ? TELEX_EXIT_DATAERR : TELEX_EXIT_SOFTWARE;
    }
    out_bytes(e->record.data, written);
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

static void remember_id(encoder_t *e, const char *id, size_t len)
{
    char *copy = telex_xmalloc(len + 1);
    memcpy(copy, id, len);
    copy[len] = '\0';
    free(e->last_id);
    e->last_id = copy;
    e->last_id_len = len;
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
            if (write_errno == 0 && printf("retry: %" PRId64 "\n\n", ev.retry) < 0)
                write_errno = errno ? errno : EIO;
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
        remember_id(e, id, id_len);
        if (id_len == 0) /* the encoder omits empty ids; an empty id line resets the last event id */
            out_literal("id\n");
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
    telex_buf_t line = {0};
    int status = TELEX_EXIT_OK;
    while (status == TELEX_EXIT_OK && write_errno == 0) {
        int r = read_line(&line, ENCODE_MAX_LINE);
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
        } else if (!is_blank(line.data, line.len)) {
            json_error_t jerr;
            json_t *obj = json_loadb(line.data, line.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
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
    out_flush();
    if (write_errno != 0) {
        fprintf(stderr, "telex sse encode: cannot write stdout: %s\n", strerror(write_errno));
        if (status == TELEX_EXIT_OK)
            status = EXIT_IOERR;
    }
    telex_buf_free(&line);
    telex_buf_free(&e.record);
    free(e.last_id);
    return status;
}

static int cmd_encode(int argc, char **argv)
{
    static const struct option options[] = {
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int opt;
    optind = 1;
    opterr = 0;
    while ((opt = next_option(argc, argv, options)) != -1) {
        if (opt == 'h') {
            fputs(encode_help, stdout);
            return TELEX_EXIT_OK;
        }
        return usage_error("encode", encode_help, "unknown option '%s'", argv[optind - 1]);
    }
    if (optind < argc)
        return usage_error("encode", encode_help, "unexpected argument '%s' (input is read from stdin)",
                           argv[optind]);
    return encode_run();
}

/* ------------------------------------------------------------ dispatcher */

static bool is_help(const char *arg)
{
    return strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0;
}

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
    int (*cmd)(int, char **) = strcmp(argv[1], "decode") == 0   ? cmd_decode
                               : strcmp(argv[1], "encode") == 0 ? cmd_encode
                                                                : NULL;
    if (cmd == NULL) {
        fprintf(stderr, "telex sse: unknown command or option '%s'\n\n", argv[1]);
        print_sse_usage(stderr);
        return TELEX_EXIT_USAGE;
    }
    static char out_buffer[OUT_BUFFER_SIZE];
    setvbuf(stdout, out_buffer, _IOFBF, sizeof out_buffer); /* before any output */
    return cmd(argc - 1, argv + 1);
}
