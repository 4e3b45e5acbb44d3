/*
 * tests/unit/test_front_door_deltas.c — the per-chunk delta events of the
 * Responses and Messages encoders (gateway/responses_stream.c,
 * gateway/messages_stream.c), which are written as text without a jansson
 * tree: every event must be exactly the bytes jansson writes for its own
 * values (parsed back and written again with JSON_COMPACT |
 * JSON_PRESERVE_ORDER: the same bytes), carry the right fields, and keep
 * the sequence numbers in step with the events written from trees — for
 * texts with every kind of byte the escaper treats differently, and ones
 * long enough to leave the writers' stack buffers.
 *
 * And the shortcut that spares most chunks a tree (telex_answer_plain_delta:
 * text, or a tool call's next arguments): whole answers fed to the encoders
 * through it wherever it answers give exactly the events of the same
 * answers fed as trees — OpenAI's real chunk shapes (where it must answer)
 * and 20,000 random answers (repeated keys, odd indexes, escapes, nulls,
 * tool calls of every shape).
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

#include "gateway/answer_model.h"
#include "gateway/messages_stream.h"
#include "gateway/responses_stream.h"
#include "util/json_load.h"
#include "util/json_scan.h"

#define MAX_EVENTS 512

typedef struct {
    int n;
    char *type[MAX_EVENTS];
    char *json[MAX_EVENTS];
} sink_t;

static int sink_emit(void *user, const char *type, const char *json, size_t len)
{
    sink_t *s = user;
    assert_true(s->n < MAX_EVENTS);
    assert_null(memchr(json, '\n', len)); /* one line */
    s->type[s->n] = strdup(type);
    s->json[s->n] = strndup(json, len);
    assert_int_equal(strlen(s->json[s->n]), len); /* no NUL inside */
    s->n++;
    return 0;
}

static void sink_free(sink_t *s)
{
    for (int i = 0; i < s->n; i++) {
        free(s->type[i]);
        free(s->json[i]);
    }
    s->n = 0;
}

/* The texts: plain, every escape jansson writes, bytes below 0x20, 0x7F,
 * '/', multi-byte UTF-8, and long ones (one of them all escapes). */
static char long_plain[3000], long_escapes[2000];

static const char *texts[] = {
    "hello",  " world",     "\"quoted\"", "back\\slash", "tab\there", "new\nline\r\n", "\b\f",
    "\x01\x1f", "del\x7f", "a/b</script>", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "{\"not\":\"json\"}",
    long_plain, long_escapes,
};
#define N_TEXTS (sizeof(texts) / sizeof(texts[0]))

static void fill_long_texts(void)
{
    for (size_t i = 0; i + 1 < sizeof(long_plain); i++)
        long_plain[i] = (char)('a' + i % 26);
    for (size_t i = 0; i + 1 < sizeof(long_escapes); i++)
        long_escapes[i] = "\"\\\n\x01"[i % 4];
}

/* {"choices":[{"index":0,"delta":{key:text}}]}, or a tool call's arguments */
static json_t *chunk_with(const char *key, const char *text)
{
    json_t *delta;
    if (strcmp(key, "tool") == 0)
        delta = json_pack("{s:[{s:i,s:s,s:s,s:{s:s,s:s}}]}", "tool_calls", "index", 0, "id", "call_1", "type", "function",
                          "function", "name", "lookup", "arguments", text);
    else
        delta = json_pack("{s:s}", key, text);
    json_t *chunk = json_pack("{s:[{s:i,s:o}]}", "choices", "index", 0, "delta", delta);
    assert_non_null(chunk);
    return chunk;
}

/* The event is jansson's own writing of its values, and its "type" (and
 * sequence_number, when expected >= 0) are as given. Returns it parsed. */
static json_t *canonical(const char *text, const char *type, int64_t seq)
{
    json_error_t err;
    json_t *j = json_loads(text, 0, &err);
    if (j == NULL)
        fail_msg("not JSON (%s): %.200s", err.text, text);
    char *again = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_non_null(again);
    if (strcmp(again, text) != 0)
        fail_msg("not jansson's bytes:\n  got  %.300s\n  want %.300s", text, again);
    free(again);
    assert_string_equal(json_string_value(json_object_get(j, "type")), type);
    if (seq >= 0)
        assert_int_equal(json_integer_value(json_object_get(j, "sequence_number")), seq);
    return j;
}

/* A Responses encoder into s, its start events sent. */
static telex_responses_enc_t *started_responses(sink_t *s)
{
    json_t *echo = json_object();
    telex_responses_enc_t *e = telex_responses_enc_new("resp_0123456789abcdef", "gpt-x", echo, 1700000000, sink_emit, s);
    json_decref(echo);
    assert_int_equal(telex_responses_enc_start(e), 0);
    return e;
}

static void test_responses_deltas(void **state)
{
    (void)state;
    static const struct {
        const char *key, *event;
    } kinds[] = {
        {"content", "response.output_text.delta"},
        {"refusal", "response.refusal.delta"},
        {"reasoning_content", "response.reasoning_text.delta"},
        {"tool", "response.function_call_arguments.delta"},
    };
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        sink_t s = {0};
        telex_responses_enc_t *e = started_responses(&s);
        int deltas = 0;
        for (size_t t = 0; t < N_TEXTS; t++) {
            json_t *chunk = chunk_with(kinds[k].key, texts[t]);
            int before = s.n;
            assert_int_equal(telex_responses_enc_chunk(e, chunk), 0);
            json_decref(chunk);
            /* the first chunk also opens the item (and part): tree-written events first */
            assert_true(s.n > before);
            int last = s.n - 1;
            assert_string_equal(s.type[last], kinds[k].event);
            json_t *ev = canonical(s.json[last], kinds[k].event, last);
            assert_string_equal(json_string_value(json_object_get(ev, "delta")), texts[t]);
            assert_true(json_is_string(json_object_get(ev, "item_id")));
            assert_true(json_is_integer(json_object_get(ev, "output_index")));
            int has_content_index = json_object_get(ev, "content_index") != NULL;
            assert_int_equal(has_content_index, strcmp(kinds[k].key, "tool") != 0);
            int has_logprobs = json_object_get(ev, "logprobs") != NULL;
            assert_int_equal(has_logprobs, strcmp(kinds[k].key, "content") == 0);
            json_decref(ev);
            deltas++;
        }
        assert_int_equal(deltas, (int)N_TEXTS);
        assert_int_equal(telex_responses_enc_finish(e), 0);
        /* every event, tree-written or not, is canonical and numbered in order */
        for (int i = 0; i < s.n; i++)
            json_decref(canonical(s.json[i], s.type[i], i));
        telex_responses_enc_free(e);
        sink_free(&s);
    }
}

static void test_messages_deltas(void **state)
{
    (void)state;
    static const struct {
        const char *key, *delta_type, *field;
    } kinds[] = {
        {"content", "text_delta", "text"},
        {"reasoning_content", "thinking_delta", "thinking"},
        {"tool", "input_json_delta", "partial_json"},
    };
    for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
        sink_t s = {0};
        telex_messages_enc_t *e = telex_messages_enc_new("msg_0123456789abcdef", "claude-x", 12, sink_emit, &s);
        assert_int_equal(telex_messages_enc_start(e), 0);
        for (size_t t = 0; t < N_TEXTS; t++) {
            json_t *chunk = chunk_with(kinds[k].key, texts[t]);
            assert_int_equal(telex_messages_enc_chunk(e, chunk), 0);
            json_decref(chunk);
            int last = s.n - 1;
            assert_string_equal(s.type[last], "content_block_delta");
            json_t *ev = canonical(s.json[last], "content_block_delta", -1);
            assert_int_equal(json_integer_value(json_object_get(ev, "index")), 0);
            json_t *d = json_object_get(ev, "delta");
            assert_int_equal(json_object_size(d), 2);
            assert_string_equal(json_string_value(json_object_get(d, "type")), kinds[k].delta_type);
            assert_string_equal(json_string_value(json_object_get(d, kinds[k].field)), texts[t]);
            json_decref(ev);
        }
        assert_int_equal(telex_messages_enc_finish(e), 0);
        for (int i = 0; i < s.n; i++)
            json_decref(canonical(s.json[i], s.type[i], -1));
        telex_messages_enc_free(e);
        sink_free(&s);
    }
}

static void check_final_event(telex_responses_enc_t *e, const sink_t *s);

/* The closing events of a message with one output_text part, written as
 * text around its text escaped once: exactly what the trees give (built
 * here as responses_stream.c built them before), for every kind of text,
 * completed and incomplete. */
static void test_text_message_closing_events(void **state)
{
    (void)state;
    static const char *const finishes[] = {"stop", "length"};
    for (int f = 0; f < 2; f++) {
        sink_t s = {0};
        telex_responses_enc_t *e = started_responses(&s);
        size_t total = 0;
        for (size_t t = 0; t < N_TEXTS; t++)
            total += strlen(texts[t]);
        char *all = malloc(total + 1), *a = all;
        for (size_t t = 0; t < N_TEXTS; t++) {
            json_t *chunk = chunk_with("content", texts[t]);
            assert_int_equal(telex_responses_enc_chunk(e, chunk), 0);
            json_decref(chunk);
            a = stpcpy(a, texts[t]);
        }
        json_t *last = json_pack("{s:[{s:i,s:{},s:s}]}", "choices", "index", 0, "delta", "finish_reason", finishes[f]);
        assert_int_equal(telex_responses_enc_chunk(e, last), 0);
        json_decref(last);
        assert_int_equal(telex_responses_enc_finish(e), 0);
        const char *status = f == 0 ? "completed" : "incomplete";
        char item_id[64] = "";
        int found = 0;
        for (int i = 0; i < s.n; i++) {
            json_t *ev = json_loads(s.json[i], 0, NULL);
            assert_non_null(ev);
            const char *type = json_string_value(json_object_get(ev, "type"));
            if (strcmp(type, "response.output_item.added") == 0)
                snprintf(item_id, sizeof item_id, "%s", json_string_value(json_object_get(json_object_get(ev, "item"), "id")));
            json_t *want = NULL;
            json_t *part = json_pack("{s:s,s:s,s:[],s:[]}", "type", "output_text", "text", all, "annotations", "logprobs");
            if (strcmp(type, "response.output_text.done") == 0)
                want = json_pack("{s:s,s:i,s:s,s:i,s:i,s:s,s:[]}", "type", type, "sequence_number", i, "item_id", item_id,
                                 "output_index", 0, "content_index", 0, "text", all, "logprobs");
            else if (strcmp(type, "response.content_part.done") == 0)
                want = json_pack("{s:s,s:i,s:s,s:i,s:i,s:O}", "type", type, "sequence_number", i, "item_id", item_id,
                                 "output_index", 0, "content_index", 0, "part", part);
            else if (strcmp(type, "response.output_item.done") == 0)
                want = json_pack("{s:s,s:i,s:i,s:{s:s,s:s,s:s,s:s,s:[O]}}", "type", type, "sequence_number", i,
                                 "output_index", 0, "item", "id", item_id, "type", "message", "status", status, "role",
                                 "assistant", "content", part);
            json_decref(part);
            if (want != NULL) {
                char *w = json_dumps(want, JSON_COMPACT | JSON_PRESERVE_ORDER);
                if (strcmp(w, s.json[i]) != 0)
                    fail_msg("%s:\n  got  %.300s\n  want %.300s", type, s.json[i], w);
                free(w);
                json_decref(want);
                found++;
            }
            json_decref(ev);
        }
        assert_int_equal(found, 3);
        check_final_event(e, &s);
        free(all);
        telex_responses_enc_free(e);
        sink_free(&s);
    }
}

/* The shortcut from the scan's choices_at (the relay's call) gives what the
 * whole walk gives; returns that. */
static int plain_both(const char *chunk, size_t len, const telex_json_facts_t *f, telex_answer_delta_t *d)
{
    if (f->choices_at != 0 && chunk[f->choices_at] != '[')
        fail_msg("choices_at %zu is not a '[' in %s", f->choices_at, chunk);
    telex_answer_delta_t whole;
    int a = telex_answer_plain_delta(chunk, len, &whole);
    int b = telex_answer_plain_delta_at(chunk, len, f->choices_at, d);
    if (a != b)
        fail_msg("whole walk %d, from choices_at %zu: %d, on %s", a, f->choices_at, b, chunk);
    if (a == 1 && (whole.text_len != d->text_len || memcmp(whole.text, d->text, d->text_len) != 0 ||
                   whole.has_tool != d->has_tool || whole.tool_index != d->tool_index ||
                   whole.args_len != d->args_len || (d->args_len && memcmp(whole.args, d->args, d->args_len) != 0)))
        fail_msg("whole walk and choices_at differ on %s", chunk);
    free(whole.scratch);
    if (b != 1)
        free(d->scratch);
    return b;
}

/* Two pairs of encoders, one fed every chunk as a tree, the other through
 * the shortcut whenever it answers (as chat_relay.c does: validated text
 * with nothing jansson refuses); returns how many chunks it answered. The
 * events of both pairs, to the end of the answer, must be the same. */
/* The terminal event, written around the final Response's text, is
 * jansson's writing of {"type","sequence_number","response"}, and the text
 * kept for the stored Response is jansson's writing of the final Response. */
static void check_final_event(telex_responses_enc_t *e, const sink_t *s)
{
    assert_true(s->n > 0);
    const char *last = s->json[s->n - 1];
    json_t *parsed = json_loads(last, 0, NULL);
    assert_non_null(parsed);
    json_decref(canonical(last, json_string_value(json_object_get(parsed, "type")), s->n - 1));
    json_decref(parsed);
    char *kept = telex_responses_enc_take_final_text(e);
    json_t *final = telex_responses_enc_final(e);
    char *again = json_dumps(final, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(kept, again);
    const char *r = strstr(last, ",\"response\":");
    assert_non_null(r);
    assert_int_equal(strlen(r + 12), strlen(kept) + 1);
    assert_memory_equal(r + 12, kept, strlen(kept));
    free(again);
    free(kept);
    json_decref(final);
    /* handed over once: the next call writes it again */
    kept = telex_responses_enc_take_final_text(e);
    final = telex_responses_enc_final(e);
    again = json_dumps(final, JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(kept, again);
    free(again);
    free(kept);
    json_decref(final);
}

static int memo_choices; /* chunks whose choices_at lies in the memo's prefix */
static int memo_unknown; /* chunks whose choices_at the memo did not know */

static int run_both(const char *const *chunks, size_t n)
{
    sink_t ra = {0}, rb = {0}, ma = {0}, mb = {0};
    json_t *echo = json_object();
    telex_responses_enc_t *rta = telex_responses_enc_new("resp_x", "m", echo, 1, sink_emit, &ra);
    telex_responses_enc_t *rtb = telex_responses_enc_new("resp_x", "m", echo, 1, sink_emit, &rb);
    json_decref(echo);
    telex_messages_enc_t *mta = telex_messages_enc_new("msg_x", "m", 1, sink_emit, &ma);
    telex_messages_enc_t *mtb = telex_messages_enc_new("msg_x", "m", 1, sink_emit, &mb);
    int answered = 0;
    telex_json_memo_t memo = {0}; /* as the OpenAI adapter scans */
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(chunks[i]);
        telex_json_facts_t f, whole;
        int scanned = telex_json_scan_object_memo(chunks[i], len, &f, &memo);
        json_t *tree = telex_json_loadb(chunks[i], len, 0, NULL);
        if (tree == NULL)
            continue; /* the relay drops it */
        assert_int_equal(scanned, 0);
        assert_int_equal(telex_json_scan_object(chunks[i], len, &whole), 0);
        if (f.choices_at != 0 && f.choices_at != whole.choices_at)
            fail_msg("choices_at %zu after the memo, %zu without, on %s", f.choices_at, whole.choices_at, chunks[i]);
        memo_choices += f.choices_at != 0 && f.choices_at < memo.len;
        memo_unknown += f.choices_at == 0 && whole.choices_at != 0;
        telex_answer_delta_t d;
        int plain = !f.finish_odd && plain_both(chunks[i], len, &f, &d) == 1;
        int a = telex_responses_enc_chunk(rta, tree), c = telex_messages_enc_chunk(mta, tree);
        int b, e;
        if (plain) {
            answered++;
            b = telex_responses_enc_plain(rtb, d.text, d.text_len, d.has_tool, d.tool_index, d.args, d.args_len);
            e = telex_messages_enc_plain(mtb, d.text, d.text_len, d.has_tool, d.tool_index, d.args, d.args_len);
            free(d.scratch);
        } else {
            b = telex_responses_enc_chunk(rtb, tree);
            e = telex_messages_enc_chunk(mtb, tree);
        }
        json_decref(tree);
        if (a != b || c != e)
            fail_msg("return codes differ on %s", chunks[i]);
    }
    telex_json_memo_clear(&memo);
    assert_int_equal(telex_responses_enc_finish(rta), telex_responses_enc_finish(rtb));
    check_final_event(rtb, &rb);
    assert_int_equal(telex_messages_enc_finish(mta), telex_messages_enc_finish(mtb));
    sink_t *pairs[2][2] = {{&ra, &rb}, {&ma, &mb}};
    for (int k = 0; k < 2; k++) {
        if (pairs[k][0]->n != pairs[k][1]->n)
            fail_msg("%d events from trees, %d through the shortcut; first chunk %s", pairs[k][0]->n, pairs[k][1]->n,
                     chunks[0]);
        for (int i = 0; i < pairs[k][0]->n; i++)
            if (strcmp(pairs[k][0]->json[i], pairs[k][1]->json[i]) != 0)
                fail_msg("event %d differs:\n  tree     %.300s\n  shortcut %.300s", i, pairs[k][0]->json[i],
                         pairs[k][1]->json[i]);
    }
    telex_responses_enc_free(rta);
    telex_responses_enc_free(rtb);
    telex_messages_enc_free(mta);
    telex_messages_enc_free(mtb);
    sink_free(&ra);
    sink_free(&rb);
    sink_free(&ma);
    sink_free(&mb);
    return answered;
}

static int answers(const char *chunk)
{
    telex_answer_delta_t d;
    size_t len = strlen(chunk);
    telex_json_facts_t f;
    assert_int_equal(telex_json_scan_object(chunk, len, &f), 0);
    if (f.finish_odd)
        return 0;
    int got = plain_both(chunk, len, &f, &d);
    if (got == 1)
        free(d.scratch);
    return got;
}

#define CHUNK(delta) "{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1700000000," \
                     "\"model\":\"gpt-4o\",\"choices\":[{\"index\":0,\"delta\":" delta ",\"logprobs\":null,"   \
                     "\"finish_reason\":null}],\"usage\":null,\"obfuscation\":\"abc\"}"

static void test_plain_delta_real_shapes(void **state)
{
    (void)state;
    static const char *answered[] = {
        CHUNK("{\"role\":\"assistant\",\"content\":\"\",\"refusal\":null}"),
        CHUNK("{\"content\":\"Hello\"}"),
        CHUNK("{\"content\":\"line\\nnext \\\"q\\\" \\u00e9 \\ud83d\\ude00 \\/\"}"),
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"cmd\\\":\"}}]}"),
        CHUNK("{\"tool_calls\":[{\"index\":1,\"type\":\"function\",\"function\":{\"arguments\":\"\\\"ls\\\"}\"}}]}"),
        CHUNK("{\"content\":\"both\",\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"x\"}}]}"),
        "{\"choices\":[{\"delta\":{\"content\":\"no index\"}}]}",
        "{\"choices\":[{\"index\":0,\"delta\":{\"reasoning_content\":null,\"content\":\"x\",\"tool_calls\":[]}}]}",
        "{ \"choices\" : [ { \"index\" : 0 , \"delta\" : { \"content\" : \"spaced\" } } ] }",
        "{\"choices\":[]}",
        "{\"id\":\"x\"}",
    };
    for (size_t i = 0; i < sizeof(answered) / sizeof(answered[0]); i++)
        if (answers(answered[i]) != 1)
            fail_msg("no answer for %s", answered[i]);
    static const char *declined[] = {
        "{\"choices\":[{\"index\":0,\"delta\":{\"content\":\"x\"},\"finish_reason\":\"stop\"}]}",
        CHUNK("{\"reasoning_content\":\"think\"}"),
        CHUNK("{\"refusal\":\"no\"}"),
        CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"call_1\",\"type\":\"function\",\"function\":{\"name\":\"sh\",\"arguments\":\"\"}}]}"),
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"a\"}},{\"index\":1,\"function\":{\"arguments\":\"b\"}}]}"),
        CHUNK("{\"tool_calls\":[{\"function\":{\"arguments\":\"no index\"}}]}"),
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"name\":\"late\",\"arguments\":\"x\"}}]}"),
        CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"call_2\",\"function\":{\"arguments\":\"x\"}}]}"),
        CHUNK("{\"content\":\"a\",\"content\":\"b\"}"),
        "{\"choices\":[{\"index\":0.0,\"delta\":{\"content\":\"x\"}}]}",
        "{\"choices\":[{\"ind\\u0065x\":1,\"delta\":{\"content\":\"x\"}}]}",
    };
    for (size_t i = 0; i < sizeof(declined) / sizeof(declined[0]); i++)
        if (answers(declined[i]) == 1)
            fail_msg("answered for %s", declined[i]);
    /* whole answers: a text, a tool call's deltas after its first, the finish */
    static const char *answer1[] = {
        CHUNK("{\"role\":\"assistant\",\"content\":\"\"}"), CHUNK("{\"content\":\"Let me \\\"look\\\"\\n\"}"),
        CHUNK("{\"tool_calls\":[{\"index\":0,\"id\":\"call_9\",\"type\":\"function\",\"function\":{\"name\":\"sh\",\"arguments\":\"\"}}]}"),
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"cmd\\\":\"}}]}"),
        CHUNK("{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"ls -l\\\"}\"}}]}"),
        "{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"tool_calls\"}]}",
    };
    assert_int_equal(run_both(answer1, sizeof(answer1) / sizeof(answer1[0])), 4);
}

/* A real answer's chunks share all but their text: after the first, the
 * scan's memo gives choices_at from its prefix (the walk starts there); a
 * top-level "content" before "choices" ends the prefix before it, and
 * choices_at is then not known after the memo (the whole walk). */
static void test_plain_delta_memo(void **state)
{
    (void)state;
    static char bufs[2][N_TEXTS][16384]; /* the long escapes twice: ~12 KB */
    const char *chunks[N_TEXTS];
    for (int shape = 0; shape < 2; shape++) {
        for (size_t t = 0; t < N_TEXTS; t++) {
            json_t *text = json_string(texts[t]);
            char *quoted = json_dumps(text, JSON_ENCODE_ANY);
            int n = snprintf(bufs[shape][t], sizeof(bufs[shape][t]),
                     shape == 0 ? CHUNK("{\"content\":%s}") : "{\"id\":\"c\",\"content\":%s,\"choices\":[{\"index\":0,"
                                                              "\"delta\":{\"content\":%s}}],\"obfuscation\":\"x\"}",
                     quoted, quoted);
            assert_true(n > 0 && (size_t)n < sizeof(bufs[shape][t]));
            free(quoted);
            json_decref(text);
            chunks[t] = bufs[shape][t];
        }
        memo_choices = memo_unknown = 0;
        assert_int_equal(run_both(chunks, N_TEXTS), N_TEXTS);
        if (shape == 0) {
            assert_int_equal(memo_choices, N_TEXTS); /* the prefix every chunk shares */
            assert_int_equal(memo_unknown, 0);
        } else {
            assert_int_equal(memo_choices, 0);
            assert_true(memo_unknown > 0); /* a tail like the memo's (texts too long for it are scanned) */
        }
    }
}


static void test_plain_delta_random_answers(void **state)
{
    (void)state;
    static const char *index_v[] = {"0", "1", "2", "\"0\"", "0.0", "null", "-1", "00", "1e0", "12345678901234567890"};
    static const char *text_v[] = {"\"\"", "\"hi\"", "null", "7", "\"a\\nb\"", "\"\\u00e9\\ud83d\\ude00\"", "\"\\u0000\"",
                                   "\"q\\\"\\\\\"", "[\"x\"]", "{\"t\":\"x\"}"};
    static const char *empty_v[] = {"null", "\"\"", "[]", "\"x\"", "[{}]", "{}", " [ ] "};
    static const char *tools_v[] = {
        "[]", "null", "[{\"index\":0,\"function\":{\"arguments\":\"x\"}}]", "[{\"index\":1,\"function\":{\"arguments\":\"{\\\"a\\\":\"}}]",
        "[{\"index\":0,\"id\":\"c1\",\"type\":\"function\",\"function\":{\"name\":\"f\",\"arguments\":\"\"}}]",
        "[{\"index\":0,\"id\":null,\"function\":{\"name\":null,\"arguments\":\"y\"}}]", "[{\"index\":0}]",
        "[{\"index\":0,\"type\":\"function\",\"function\":{\"arguments\":null}}]", "[{\"function\":{\"arguments\":\"z\"}}]",
        "[{\"index\":0,\"function\":{\"arguments\":\"a\"}},{\"index\":1,\"function\":{\"arguments\":\"b\"}}]",
        "[{\"index\":2,\"function\":{\"arguments\":\"\\\\n\\u00e9\"}}]", "[{\"index\":0,\"function\":{\"arguments\":\"a\",\"arguments\":\"b\"}}]",
        "[{\"index\":0,\"function\":{\"name\":\"late\",\"arguments\":\"x\"}}]", "[{\"index\":0,\"id\":\"c2\",\"function\":{\"arguments\":\"x\"}}]",
    };
    static const char *finish_v[] = {"null", "\"stop\"", "\"\"", "1", "\"tool_calls\""};
    static const char *delta_keys[] = {"content", "role", "refusal", "reasoning", "reasoning_content", "tool_calls", "extra"};
    static const char *choice_keys[] = {"index", "delta", "finish_reason", "logprobs"};
    uint64_t rng = 7;
#define NEXT(n) ((rng = rng * 6364136223846793005ULL + 1442695040888963407ULL), (size_t)((rng >> 33) % (n)))
    static char js[6][4096];
    const char *chunks[6];
    int answered = 0, total = 0;
    for (int iter = 0; iter < 20000; iter++) {
        size_t nchunks = 1 + NEXT(5);
        for (size_t q = 0; q < nchunks; q++) {
            char *b = js[q];
            size_t o = 0;
#define P(...) (o += (size_t)snprintf(b + o, sizeof(js[q]) - o, __VA_ARGS__))
            P("{");
            int top = 0;
            if (NEXT(4) == 0)
                P("%s\"id\":\"c\"", top++ ? "," : "");
            if (NEXT(8) == 0) /* the memo's prefix then ends before "choices" */
                P("%s\"content\":\"t%zu\"", top++ ? "," : "", NEXT(3));
            size_t nck = NEXT(8) == 0 ? 2 : 1;
            for (size_t ck = 0; ck < nck; ck++) {
                P("%s\"choices\":[", top++ ? "," : "");
                size_t nch = NEXT(6) == 0 ? 2 : 1;
                for (size_t c = 0; c < nch; c++) {
                    P("%s{", c ? "," : "");
                    size_t nk = 1 + NEXT(4);
                    for (size_t k = 0; k < nk; k++) {
                        const char *key = choice_keys[NEXT(4)];
                        P("%s\"%s\":", k ? "," : "", key);
                        if (strcmp(key, "index") == 0) {
                            P("%s", NEXT(3) ? "0" : index_v[NEXT(10)]);
                        } else if (strcmp(key, "finish_reason") == 0) {
                            P("%s", NEXT(3) ? "null" : finish_v[NEXT(5)]);
                        } else if (strcmp(key, "delta") == 0) {
                            P("{");
                            size_t nd = NEXT(4);
                            for (size_t d = 0; d < nd; d++) {
                                const char *dk = delta_keys[NEXT(7)];
                                const char *v = strcmp(dk, "content") == 0 || strcmp(dk, "role") == 0 ? text_v[NEXT(10)]
                                                : strcmp(dk, "tool_calls") == 0                       ? tools_v[NEXT(14)]
                                                                                                      : empty_v[NEXT(7)];
                                P("%s\"%s\":%s", d ? "," : "", dk, v);
                            }
                            P("}");
                        } else {
                            P("null");
                        }
                    }
                    P("}");
                }
                P("]");
            }
            if (NEXT(3) == 0)
                P("%s\"obfuscation\":\"%.*s\"", top++ ? "," : "", (int)NEXT(6), "abcdef");
            P("}");
#undef P
            chunks[q] = b;
        }
        answered += run_both(chunks, nchunks);
        total += (int)nchunks;
    }
#undef NEXT
    assert_true(answered > total / 5);
    assert_true(answered < total * 4 / 5);
}

int main(void)
{
    fill_long_texts();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_responses_deltas),
        cmocka_unit_test(test_messages_deltas),
        cmocka_unit_test(test_plain_delta_real_shapes),
        cmocka_unit_test(test_plain_delta_memo),
        cmocka_unit_test(test_text_message_closing_events),
        cmocka_unit_test(test_plain_delta_random_answers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
