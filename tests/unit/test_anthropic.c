/*
 * tests/unit/test_anthropic.c — the OpenAI ↔ Anthropic mapping as tables, no
 * network: request translation (OpenAI request in, Anthropic body out, or
 * the exact 400), event normalization (a sequence of Anthropic SSE events in,
 * the OpenAI chunks they become and how the stream ends out), plain answers
 * and error bodies. Every row prints what it got when it fails, and the
 * tables run to the end so one run shows every mismatch.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "upstream/anthropic_map.h"

#define CREATED 1700000000

static json_t *parse(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, 0, &e);
    if (j == NULL)
        fail_msg("bad JSON in the test itself: %s: %s", e.text, text);
    return j;
}

static char *dump(json_t *j)
{
    return j != NULL ? json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS) : strdup("(null)");
}

/* ------------------------------------------------------------ requests */

static const struct {
    const char *name, *in, *out;
} request_ok[] = {
    {"system, user, defaults, sampling, stop string, stream_options dropped",
     "{\"model\":\"claude-x\",\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},"
     "{\"role\":\"user\",\"content\":\"Hi\"}],\"temperature\":0.5,\"top_p\":0.9,\"stop\":\"END\",\"stream\":true,"
     "\"stream_options\":{\"include_usage\":true}}",
     "{\"model\":\"claude-x\",\"system\":[{\"type\":\"text\",\"text\":\"Be brief.\"}],"
     "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"Hi\"}]}],"
     "\"temperature\":0.5,\"top_p\":0.9,\"stop_sequences\":[\"END\"],\"max_tokens\":4096,\"stream\":true}"},
    {"developer and late system messages are hoisted; max_completion_tokens wins; stop array",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"developer\",\"content\":[{\"type\":\"text\",\"text\":\"A\"}]},"
     "{\"role\":\"user\",\"content\":\"q\"},{\"role\":\"system\",\"content\":\"B\"}],\"max_tokens\":5,"
     "\"max_completion_tokens\":7,\"stop\":[\"x\",\"y\"]}",
     "{\"model\":\"m\",\"system\":[{\"type\":\"text\",\"text\":\"A\"},{\"type\":\"text\",\"text\":\"B\"}],"
     "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"q\"}]}],\"stop_sequences\":[\"x\","
     "\"y\"],\"max_tokens\":7}"},
    {"image parts: base64 data URL and https URL; cache_control kept on a text part",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\","
     "\"cache_control\":{\"type\":\"ephemeral\"}},{\"type\":\"image_url\",\"image_url\":{\"url\":"
     "\"data:image/png;base64,iVBORw0=\",\"detail\":\"low\"}},{\"type\":\"image_url\",\"image_url\":{\"url\":"
     "\"https://example.com/cat.jpg\"}}]}],\"max_tokens\":10}",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"look\","
     "\"cache_control\":{\"type\":\"ephemeral\"}},{\"type\":\"image\",\"source\":{\"type\":\"base64\","
     "\"media_type\":\"image/png\",\"data\":\"iVBORw0=\"}},{\"type\":\"image\",\"source\":{\"type\":\"url\","
     "\"url\":\"https://example.com/cat.jpg\"}}]}],\"max_tokens\":10}"},
    {"tools and tool_choice auto",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"weather?\"}],\"tools\":[{\"type\":\"function\","
     "\"function\":{\"name\":\"get_weather\",\"description\":\"Weather now\",\"parameters\":{\"type\":\"object\","
     "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]},\"strict\":true}},{\"type\":"
     "\"function\",\"function\":{\"name\":\"now\"}}],\"tool_choice\":\"auto\"}",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"weather?\"}]}],"
     "\"tools\":[{\"name\":\"get_weather\",\"description\":\"Weather now\",\"input_schema\":{\"type\":\"object\","
     "\"properties\":{\"city\":{\"type\":\"string\"}},\"required\":[\"city\"]}},{\"name\":\"now\",\"input_schema\":"
     "{\"type\":\"object\",\"properties\":{}}}],\"max_tokens\":4096,\"tool_choice\":{\"type\":\"auto\"}}"},
    {"tool_choice required → any, parallel_tool_calls false → disable_parallel_tool_use",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
     "\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"required\",\"parallel_tool_calls\":false}",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}],"
     "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\",\"properties\":{}}}],\"max_tokens\":4096,"
     "\"tool_choice\":{\"type\":\"any\",\"disable_parallel_tool_use\":true}}"},
    {"tool_choice none, and a named function",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
     "\"function\":{\"name\":\"f\"}}],\"tool_choice\":{\"type\":\"function\",\"function\":{\"name\":\"f\"}}}",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}],"
     "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\",\"properties\":{}}}],\"max_tokens\":4096,"
     "\"tool_choice\":{\"type\":\"tool\",\"name\":\"f\"}}"},
    {"tool_choice none",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"function\","
     "\"function\":{\"name\":\"f\"}}],\"tool_choice\":\"none\",\"parallel_tool_calls\":false}",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}],"
     "\"tools\":[{\"name\":\"f\",\"input_schema\":{\"type\":\"object\",\"properties\":{}}}],\"max_tokens\":4096,"
     "\"tool_choice\":{\"type\":\"none\"}}"},
    {"tool round trip: tool_calls → tool_use, tool messages → one user turn of tool_results (+ the next user text)",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"weather in Paris and Rome?\"},"
     "{\"role\":\"assistant\",\"content\":\"\",\"tool_calls\":[{\"id\":\"call_1\",\"type\":\"function\","
     "\"function\":{\"name\":\"get_weather\",\"arguments\":\"{\\\"city\\\":\\\"Paris\\\"}\"}},{\"id\":\"call_2\","
     "\"type\":\"function\",\"function\":{\"name\":\"get_weather\",\"arguments\":\"\"}}]},"
     "{\"role\":\"tool\",\"tool_call_id\":\"call_1\",\"content\":\"18C\"},{\"role\":\"tool\",\"tool_call_id\":"
     "\"call_2\",\"content\":[{\"type\":\"text\",\"text\":\"21C\"}]},{\"role\":\"user\",\"content\":\"thanks\"}]}",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"weather in Paris "
     "and Rome?\"}]},{\"role\":\"assistant\",\"content\":[{\"type\":\"tool_use\",\"id\":\"call_1\",\"name\":"
     "\"get_weather\",\"input\":{\"city\":\"Paris\"}},{\"type\":\"tool_use\",\"id\":\"call_2\",\"name\":"
     "\"get_weather\",\"input\":{}}]},{\"role\":\"user\",\"content\":[{\"type\":\"tool_result\",\"tool_use_id\":"
     "\"call_1\",\"content\":\"18C\"},{\"type\":\"tool_result\",\"tool_use_id\":\"call_2\",\"content\":[{\"type\":"
     "\"text\",\"text\":\"21C\"}]},{\"type\":\"text\",\"text\":\"thanks\"}]}],\"max_tokens\":4096}"},
    {"user → metadata.user_id; OpenAI-only knobs dropped; other parameters (thinking, top_k, mock) pass",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"user\":\"u-42\",\"seed\":7,"
     "\"frequency_penalty\":0.1,\"presence_penalty\":0.2,\"logit_bias\":{},\"n\":1,\"logprobs\":false,"
     "\"response_format\":{\"type\":\"text\"},\"metadata\":{\"a\":\"b\"},\"reasoning_effort\":\"low\","
     "\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024},\"top_k\":5,\"mock\":{\"tokens\":3}}",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"x\"}]}],"
     "\"metadata\":{\"user_id\":\"u-42\"},\"thinking\":{\"type\":\"enabled\",\"budget_tokens\":1024},\"top_k\":5,"
     "\"mock\":{\"tokens\":3},\"max_tokens\":4096}"},
    {"assistant text and a consecutive assistant turn are merged; null content skipped",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":"
     "\"b\"},{\"role\":\"assistant\",\"content\":null},{\"role\":\"assistant\",\"content\":[{\"type\":\"text\","
     "\"text\":\"c\"}]},{\"role\":\"user\",\"content\":\"d\"}],\"stream\":false}",
     "{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"a\"}]},"
     "{\"role\":\"assistant\",\"content\":[{\"type\":\"text\",\"text\":\"b\"},{\"type\":\"text\",\"text\":\"c\"}]},"
     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"d\"}]}],\"max_tokens\":4096}"},
};

static const struct {
    const char *in, *param, *code, *message;
} request_bad[] = {
    {"{\"model\":\"m\",\"messages\":[],\"n\":2}", "n", "unsupported_by_provider",
     "This model's provider (Anthropic) gives one choice per request: n must be 1."},
    {"{\"model\":\"m\",\"messages\":[],\"logprobs\":true}", "logprobs", "unsupported_by_provider",
     "This model's provider (Anthropic) does not return logprobs."},
    {"{\"model\":\"m\",\"messages\":[],\"response_format\":{\"type\":\"json_object\"}}", "response_format",
     "unsupported_by_provider",
     "response_format 'json_object' is not supported by this model's provider (Anthropic); describe the format in "
     "the prompt, or use a tool with an input schema."},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"input_audio\",\"input_audio\":{}}]}]}",
     "messages[0].content[0]", "unsupported_by_provider",
     "Content parts of type 'input_audio' are not supported by this model's provider (Anthropic)."},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"system\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
     "\"https://x/y.png\"}}]}]}",
     "messages[0].content[0]", "unsupported_by_provider",
     "Content parts of type 'image_url' are not supported by this model's provider (Anthropic)."},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
     "\"data:image/png,abc\"}}]}]}",
     "messages[0].content[0]", "invalid_request", "An image data URL must be data:<media type>;base64,<data>."},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"image_url\",\"image_url\":{\"url\":"
     "\"ftp://x\"}}]}]}",
     "messages[0].content[0]", "invalid_request", "An image URL must be an http(s) URL or a base64 data URL."},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}],\"tools\":[{\"type\":\"web_search\"}]}",
     "tools[0]", "unsupported_by_provider",
     "Only tools of type 'function' can be sent to this model's provider (Anthropic)."},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"assistant\",\"tool_calls\":[{\"id\":\"c\",\"type\":\"function\","
     "\"function\":{\"name\":\"f\",\"arguments\":\"[1]\"}}]}]}",
     "messages[0].tool_calls[0]", "invalid_request",
     "function.arguments must be a JSON object to be sent to Anthropic."},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"tool\",\"content\":\"x\"}]}", "messages[0].tool_call_id",
     "invalid_request", "A tool message needs a string tool_call_id."},
    {"{\"model\":\"m\",\"messages\":[{\"role\":\"function\",\"name\":\"f\",\"content\":\"x\"}]}", "messages[0]",
     "unsupported_by_provider",
     "Messages with role 'function' are not supported by this model's provider (Anthropic)."},
    {"{\"model\":\"m\",\"messages\":[],\"functions\":[]}", "functions", "unsupported_by_provider",
     "The legacy functions parameter is not supported with this model's provider (Anthropic); use tools."},
    {"{\"model\":\"m\",\"messages\":[],\"tools\":[{\"type\":\"function\",\"function\":{\"name\":\"f\"}}],"
     "\"tool_choice\":\"sometimes\"}",
     "tool_choice", "invalid_request", "tool_choice must be auto, none, required or a function."},
    {"{\"model\":\"m\",\"messages\":[],\"max_tokens\":0}", "max_tokens", "invalid_request",
     "max_tokens must be a positive integer."},
    {"{\"model\":\"m\",\"messages\":[],\"stop\":5}", "stop", "invalid_request",
     "stop must be a string or an array of strings."},
};

static void test_request_translation(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof(request_ok) / sizeof(request_ok[0]); i++) {
        json_t *in = parse(request_ok[i].in), *want = parse(request_ok[i].out);
        telex_anthropic_request_error_t err;
        int stream = json_is_true(json_object_get(in, "stream"));
        json_t *got = telex_anthropic_request(in, 4096, stream, &err);
        if (!json_equal(got, want)) {
            char *g = dump(got), *w = dump(want);
            print_error("request %zu (%s):\n  want %s\n  got  %s%s%s\n", i, request_ok[i].name, w, g,
                        got ? "" : "\n  error: ", got ? "" : err.message);
            free(g);
            free(w);
            failed++;
        }
        json_decref(in);
        json_decref(want);
        json_decref(got);
    }
    for (size_t i = 0; i < sizeof(request_bad) / sizeof(request_bad[0]); i++) {
        json_t *in = parse(request_bad[i].in);
        telex_anthropic_request_error_t err;
        json_t *got = telex_anthropic_request(in, 4096, 1, &err);
        if (got != NULL || strcmp(err.param, request_bad[i].param) != 0 || strcmp(err.code, request_bad[i].code) ||
            strcmp(err.message, request_bad[i].message) != 0 || err.oom) {
            print_error("bad request %zu: %s\n  want %s %s: %s\n  got  %s %s: %s\n", i, request_bad[i].in,
                        request_bad[i].param, request_bad[i].code, request_bad[i].message, err.param,
                        err.code ? err.code : "-", err.message);
            failed++;
        }
        json_decref(got);
        json_decref(in);
    }
    if (failed)
        fail_msg("%d request rows differ", failed);
}

static void test_request_error_body(void **state)
{
    (void)state;
    telex_anthropic_request_error_t err;
    json_t *in = parse("{\"model\":\"m\",\"messages\":[],\"n\":3}");
    assert_null(telex_anthropic_request(in, 10, 1, &err));
    char *body = telex_anthropic_request_error_body(&err);
    assert_string_equal(body, "{\"error\":{\"message\":\"This model's provider (Anthropic) gives one choice per "
                              "request: n must be 1.\",\"type\":\"invalid_request_error\",\"param\":\"n\","
                              "\"code\":\"unsupported_by_provider\"}}");
    free(body);
    json_decref(in);
}

/* ------------------------------------------------------------ streams */

/* A stream row: events as "name|data" lines ('\n'-separated; a name of "-"
 * means no event: field), the chunks expected as {delta, finish_reason} or
 * {usage} objects, one per line, then how it ends. */
typedef struct {
    const char *name;
    const char *events;
    const char *chunks;
    int rc;                              /* last event's result, or 2 = ended by eof, 3 = eof is a cut */
    telex_upstream_failure_kind_t kind; /* for FAILED */
    const char *message;                 /* for FAILED: exact */
} stream_row_t;

#define START                                                                                                    \
    "message_start|{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"type\":\"message\",\"role\":"     \
    "\"assistant\",\"content\":[],\"model\":\"claude-x\",\"stop_reason\":null,\"stop_sequence\":null,\"usage\":" \
    "{\"input_tokens\":12,\"output_tokens\":1}}}\n"
#define ROLE "{\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}\n"
#define TEXT_START "content_block_start|{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"\"}}\n"
#define DELTA(i, t) "content_block_delta|{\"type\":\"content_block_delta\",\"index\":" #i ",\"delta\":{\"type\":\"text_delta\",\"text\":\"" t "\"}}\n"
#define STOP(i) "content_block_stop|{\"type\":\"content_block_stop\",\"index\":" #i "}\n"
#define MDELTA(r, out)                                                                                           \
    "message_delta|{\"type\":\"message_delta\",\"delta\":{\"stop_reason\":\"" r "\",\"stop_sequence\":null},"    \
    "\"usage\":{\"output_tokens\":" #out "}}\n"
#define MSTOP "message_stop|{\"type\":\"message_stop\"}\n"
#define PING "ping|{\"type\": \"ping\"}\n"
#define CONTENT(t) "{\"delta\":{\"content\":\"" t "\"},\"finish_reason\":null}\n"
#define FINISH(r) "{\"delta\":{},\"finish_reason\":\"" r "\"}\n"
#define USAGE(p, c, cached)                                                                                      \
    "{\"usage\":{\"prompt_tokens\":" #p ",\"completion_tokens\":" #c ",\"total_tokens\":" #p "+" #c ","            \
    "\"prompt_tokens_details\":{\"cached_tokens\":" #cached "}}}\n"

static const stream_row_t stream_rows[] = {
    {"a text answer: role, content deltas, finish, usage; ping not forwarded",
     START TEXT_START PING DELTA(0, "Hel") DELTA(0, "lo") STOP(0) MDELTA("end_turn", 2) MSTOP,
     ROLE CONTENT("Hel") CONTENT("lo") FINISH("stop") USAGE(12, 2, 0), TELEX_ANTHROPIC_DONE, 0, NULL},
    {"stop_sequence → stop", START TEXT_START DELTA(0, "a") STOP(0) MDELTA("stop_sequence", 1) MSTOP,
     ROLE CONTENT("a") FINISH("stop") USAGE(12, 1, 0), TELEX_ANTHROPIC_DONE, 0, NULL},
    {"max_tokens → length", START TEXT_START DELTA(0, "a") STOP(0) MDELTA("max_tokens", 1) MSTOP,
     ROLE CONTENT("a") FINISH("length") USAGE(12, 1, 0), TELEX_ANTHROPIC_DONE, 0, NULL},
    {"refusal → content_filter; an unknown stop_reason → stop",
     START MDELTA("refusal", 0) MSTOP, ROLE FINISH("content_filter") USAGE(12, 0, 0), TELEX_ANTHROPIC_DONE, 0, NULL},
    {"unknown stop_reason", START MDELTA("something_new", 0) MSTOP, ROLE FINISH("stop") USAGE(12, 0, 0),
     TELEX_ANTHROPIC_DONE, 0, NULL},
    {"thinking → reasoning_content (signature_delta dropped), then text",
     START
     "content_block_start|{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"thinking\","
     "\"thinking\":\"\"}}\n"
     "content_block_delta|{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
     "\"thinking\":\"Let me\"}}\n"
     "content_block_delta|{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"thinking_delta\","
     "\"thinking\":\" think.\"}}\n"
     "content_block_delta|{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"signature_delta\","
     "\"signature\":\"EqQB\"}}\n" STOP(0)
     "content_block_start|{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"text\","
     "\"text\":\"\"}}\n" DELTA(1, "42") STOP(1) MDELTA("end_turn", 9) MSTOP,
     ROLE "{\"delta\":{\"reasoning_content\":\"Let me\"},\"finish_reason\":null}\n"
          "{\"delta\":{\"reasoning_content\":\" think.\"},\"finish_reason\":null}\n" CONTENT("42") FINISH("stop")
              USAGE(12, 9, 0),
     TELEX_ANTHROPIC_DONE, 0, NULL},
    {"tool_use blocks → tool_calls with their own index, arguments in fragments; tool_use → tool_calls",
     START TEXT_START DELTA(0, "Checking.") STOP(0)
     "content_block_start|{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":\"tool_use\","
     "\"id\":\"toolu_1\",\"name\":\"get_weather\",\"input\":{}}}\n"
     "content_block_delta|{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
     "\"partial_json\":\"\"}}\n"
     "content_block_delta|{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
     "\"partial_json\":\"{\\\"city\\\": \"}}\n"
     "content_block_delta|{\"type\":\"content_block_delta\",\"index\":1,\"delta\":{\"type\":\"input_json_delta\","
     "\"partial_json\":\"\\\"Paris\\\"}\"}}\n" STOP(1)
     "content_block_start|{\"type\":\"content_block_start\",\"index\":2,\"content_block\":{\"type\":\"tool_use\","
     "\"id\":\"toolu_2\",\"name\":\"now\",\"input\":{}}}\n"
     "content_block_delta|{\"type\":\"content_block_delta\",\"index\":2,\"delta\":{\"type\":\"input_json_delta\","
     "\"partial_json\":\"{}\"}}\n" STOP(2) MDELTA("tool_use", 30) MSTOP,
     ROLE CONTENT("Checking.")
     "{\"delta\":{\"tool_calls\":[{\"index\":0,\"id\":\"toolu_1\",\"type\":\"function\",\"function\":{\"name\":"
     "\"get_weather\",\"arguments\":\"\"}}]},\"finish_reason\":null}\n"
     "{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"{\\\"city\\\": \"}}]},"
     "\"finish_reason\":null}\n"
     "{\"delta\":{\"tool_calls\":[{\"index\":0,\"function\":{\"arguments\":\"\\\"Paris\\\"}\"}}]},"
     "\"finish_reason\":null}\n"
     "{\"delta\":{\"tool_calls\":[{\"index\":1,\"id\":\"toolu_2\",\"type\":\"function\",\"function\":{\"name\":"
     "\"now\",\"arguments\":\"\"}}]},\"finish_reason\":null}\n"
     "{\"delta\":{\"tool_calls\":[{\"index\":1,\"function\":{\"arguments\":\"{}\"}}]},\"finish_reason\":null}\n"
         FINISH("tool_calls") USAGE(12, 30, 0),
     TELEX_ANTHROPIC_DONE, 0, NULL},
    {"usage: cache reads and writes count as prompt tokens; reads are cached_tokens",
     "message_start|{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\",\"usage\":"
     "{\"input_tokens\":5,\"cache_read_input_tokens\":100,\"cache_creation_input_tokens\":20,\"output_tokens\":1}}}\n"
         MDELTA("end_turn", 3) MSTOP,
     ROLE FINISH("stop") USAGE(125, 3, 100), TELEX_ANTHROPIC_DONE, 0, NULL},
    {"message_stop without a stop_reason still ends with a finish_reason", START MSTOP,
     ROLE FINISH("stop") USAGE(12, 1, 0), TELEX_ANTHROPIC_DONE, 0, NULL},
    {"an event type this version does not know is skipped; so are unknown delta types",
     START "future_event|{\"type\":\"future_event\",\"x\":1}\n" TEXT_START
     "content_block_delta|{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"citations_delta\","
     "\"citation\":{}}}\n" DELTA(0, "ok") STOP(0)
     "content_block_start|{\"type\":\"content_block_start\",\"index\":1,\"content_block\":{\"type\":"
     "\"redacted_thinking\",\"data\":\"xyz\"}}\n" STOP(1) MDELTA("end_turn", 1) MSTOP,
     ROLE CONTENT("ok") FINISH("stop") USAGE(12, 1, 0), TELEX_ANTHROPIC_DONE, 0, NULL},
    {"no event: field; the data's type decides",
     "-|{\"type\":\"message_start\",\"message\":{\"id\":\"msg_1\",\"model\":\"claude-x\"}}\n"
     "-|{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"text\",\"text\":\"Hi\"}}\n",
     ROLE CONTENT("Hi"), TELEX_ANTHROPIC_CONTINUE, 0, NULL},
    {"a stream that ends after message_delta (no message_stop) is complete",
     START TEXT_START DELTA(0, "a") STOP(0) MDELTA("end_turn", 1), ROLE CONTENT("a") FINISH("stop") USAGE(12, 1, 0),
     2, 0, NULL},
    {"a stream that ends before any stop_reason is cut", START TEXT_START DELTA(0, "a"), ROLE CONTENT("a"), 3, 0,
     NULL},
    /* failures */
    {"an error event", START TEXT_START DELTA(0, "a")
     "error|{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}\n",
     ROLE CONTENT("a"), TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_ERROR_EVENT,
     "the provider reported an error: Overloaded (overloaded_error)"},
    {"an error event before anything else",
     "error|{\"type\":\"error\",\"error\":{\"message\":\"Internal server error\"}}\n", "", TELEX_ANTHROPIC_FAILED,
     TELEX_UPSTREAM_ERROR_EVENT, "the provider reported an error: Internal server error"},
    {"data that is not JSON", START "content_block_delta|{not json\n", ROLE, TELEX_ANTHROPIC_FAILED,
     TELEX_UPSTREAM_BAD_JSON, "the provider sent an event that is not a JSON object (string or '}' expected near 'not')"},
    {"data that is JSON but not an object", START "ping|[1]\n", ROLE, TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_BAD_JSON,
     "the provider sent an event that is not a JSON object (not an object)"},
    {"a delta before message_start", TEXT_START, "", TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_PROTOCOL,
     "the provider sent content_block_start before message_start"},
    {"message_start without a message", "message_start|{\"type\":\"message_start\"}\n", "", TELEX_ANTHROPIC_FAILED,
     TELEX_UPSTREAM_PROTOCOL, "the provider sent message_start without a message"},
    {"a second message_start", START START, ROLE, TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_PROTOCOL,
     "the provider sent a second message_start"},
    {"a delta for a block that was never started", START DELTA(3, "x"), ROLE, TELEX_ANTHROPIC_FAILED,
     TELEX_UPSTREAM_PROTOCOL, "the provider sent content_block_delta for content block 3, which is not open"},
    {"a delta after the block stopped", START TEXT_START STOP(0) DELTA(0, "x"), ROLE, TELEX_ANTHROPIC_FAILED,
     TELEX_UPSTREAM_PROTOCOL, "the provider sent content_block_delta for content block 0, which is not open"},
    {"input_json_delta into a text block", START TEXT_START
     "content_block_delta|{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"input_json_delta\","
     "\"partial_json\":\"{\"}}\n",
     ROLE, TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_PROTOCOL,
     "the provider sent a input_json_delta into a content block of another type"},
    {"a text_delta without text", START TEXT_START
     "content_block_delta|{\"type\":\"content_block_delta\",\"index\":0,\"delta\":{\"type\":\"text_delta\"}}\n",
     ROLE, TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_PROTOCOL, "the provider sent a text_delta without a string text"},
    {"a delta without a delta", START TEXT_START "content_block_delta|{\"type\":\"content_block_delta\",\"index\":0}\n",
     ROLE, TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_PROTOCOL,
     "the provider sent content_block_delta without a typed delta"},
    {"a block without an index", START "content_block_start|{\"type\":\"content_block_start\",\"content_block\":{}}\n",
     ROLE, TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_PROTOCOL,
     "the provider sent content_block_start without a valid content block index"},
    {"a tool_use block without a name", START
     "content_block_start|{\"type\":\"content_block_start\",\"index\":0,\"content_block\":{\"type\":\"tool_use\","
     "\"id\":\"t\"}}\n",
     ROLE, TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_PROTOCOL,
     "the provider sent a tool_use block without an id and a name"},
    {"a block started twice", START TEXT_START TEXT_START, ROLE, TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_PROTOCOL,
     "the provider started content block 0 twice"},
    {"message_delta without a delta", START "message_delta|{\"type\":\"message_delta\"}\n", ROLE,
     TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_PROTOCOL, "the provider sent message_delta without a delta"},
    {"the event: name and the data's type disagree", START "content_block_stop|{\"type\":\"message_stop\"}\n", ROLE,
     TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_PROTOCOL,
     "the provider sent an event 'content_block_stop' whose data is of type 'message_stop'"},
    {"no type anywhere", START "-|{\"index\":0}\n", ROLE, TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_PROTOCOL,
     "the provider sent an event without a type"},
    {"anything after message_stop", START MSTOP TEXT_START, ROLE FINISH("stop") USAGE(12, 1, 0),
     TELEX_ANTHROPIC_FAILED, TELEX_UPSTREAM_PROTOCOL, "the provider sent content_block_start after message_stop"},
};

/* What a chunk shows for comparison, after checking its common members. */
static json_t *essence(json_t *chunk, const char *row)
{
    const char *object = json_string_value(json_object_get(chunk, "object"));
    if (object == NULL || strcmp(object, "chat.completion.chunk") != 0 ||
        json_integer_value(json_object_get(chunk, "created")) != CREATED ||
        !json_is_string(json_object_get(chunk, "id")) || !json_is_string(json_object_get(chunk, "model")))
        fail_msg("%s: a chunk without id/object/created/model", row);
    json_t *choices = json_object_get(chunk, "choices");
    if (json_array_size(choices) == 0) {
        if (!json_is_array(choices))
            fail_msg("%s: a chunk without choices", row);
        return json_pack("{s:O}", "usage", json_object_get(chunk, "usage"));
    }
    json_t *c = json_array_get(choices, 0);
    if (json_array_size(choices) != 1 || json_integer_value(json_object_get(c, "index")) != 0 ||
        !json_is_null(json_object_get(c, "logprobs")) || json_object_get(chunk, "usage") != NULL)
        fail_msg("%s: a choice not shaped like OpenAI's", row);
    return json_pack("{s:O,s:O}", "delta", json_object_get(c, "delta"), "finish_reason",
                     json_object_get(c, "finish_reason"));
}

/* "p+c" in USAGE rows: computed here so the table stays readable. */
static json_t *parse_expected_chunk(const char *line)
{
    char buf[1024];
    snprintf(buf, sizeof(buf), "%s", line);
    char *plus = strstr(buf, "\"total_tokens\":");
    if (plus != NULL) {
        long a, b;
        char *p = plus + 15;
        if (sscanf(p, "%ld+%ld", &a, &b) == 2) {
            char *end = strchr(p, ',');
            char num[32];
            int n = snprintf(num, sizeof(num), "%ld", a + b);
            memmove(p + n, end, strlen(end) + 1);
            memcpy(p, num, (size_t)n);
        }
    }
    return parse(buf);
}

static int run_stream_row(const stream_row_t *row)
{
    telex_anthropic_stream_t s;
    telex_anthropic_stream_init(&s, CREATED);
    json_t *got = json_array(), *out = json_array();
    int rc = TELEX_ANTHROPIC_CONTINUE, ok = 1;
    telex_upstream_failure_kind_t kind = TELEX_UPSTREAM_CUT;
    char message[512] = "";
    const char *p = row->events;
    while (*p && rc != TELEX_ANTHROPIC_FAILED) { /* on after DONE: what comes next is refused */
        const char *bar = strchr(p, '|'), *nl = strchr(p, '\n');
        assert_non_null(bar);
        assert_non_null(nl);
        size_t type_len = (size_t)(bar - p);
        const char *type = p;
        if (type_len == 1 && *p == '-') {
            type = "message";
            type_len = 7;
        }
        rc = telex_anthropic_stream_event(&s, type, type_len, bar + 1, (size_t)(nl - bar - 1), out, &kind, message,
                                          sizeof(message));
        p = nl + 1;
    }
    int ended = rc;
    if (row->rc >= 2 && rc == TELEX_ANTHROPIC_CONTINUE)
        ended = telex_anthropic_stream_eof(&s, out) ? 2 : 3;
    size_t i;
    json_t *chunk;
    json_array_foreach(out, i, chunk)
    json_array_append_new(got, essence(chunk, row->name));
    json_t *want = json_array();
    for (const char *q = row->chunks; *q;) {
        const char *nl = strchr(q, '\n');
        char line[1024];
        snprintf(line, sizeof(line), "%.*s", (int)(nl - q), q);
        json_array_append_new(want, parse_expected_chunk(line));
        q = nl + 1;
    }
    if (!json_equal(got, want)) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_SORT_KEYS | JSON_INDENT(0));
        char *w = json_dumps(want, JSON_COMPACT | JSON_SORT_KEYS | JSON_INDENT(0));
        print_error("stream \"%s\": chunks differ\n  want %s\n  got  %s\n", row->name, w, g);
        free(g);
        free(w);
        ok = 0;
    }
    if (ended != row->rc) {
        print_error("stream \"%s\": ended with %d, want %d (%s)\n", row->name, ended, row->rc, message);
        ok = 0;
    } else if (row->rc == TELEX_ANTHROPIC_FAILED && (kind != row->kind || strcmp(message, row->message) != 0)) {
        print_error("stream \"%s\": failure\n  want %s: %s\n  got  %s: %s\n", row->name,
                    telex_upstream_failure_name(row->kind), row->message, telex_upstream_failure_name(kind), message);
        ok = 0;
    }
    json_decref(got);
    json_decref(want);
    json_decref(out);
    telex_anthropic_stream_free(&s);
    return ok;
}

static void test_stream_normalization(void **state)
{
    (void)state;
    int failed = 0;
    for (size_t i = 0; i < sizeof(stream_rows) / sizeof(stream_rows[0]); i++)
        failed += !run_stream_row(&stream_rows[i]);
    if (failed)
        fail_msg("%d stream rows differ", failed);
}

static void test_chunk_members(void **state)
{
    (void)state; /* id and model come from message_start; created from init */
    telex_anthropic_stream_t s;
    telex_anthropic_stream_init(&s, CREATED);
    json_t *out = json_array();
    telex_upstream_failure_kind_t kind;
    char msg[256];
    static const char ev[] = "{\"type\":\"message_start\",\"message\":{\"id\":\"msg_abc\",\"model\":\"claude-y\"}}";
    assert_int_equal(telex_anthropic_stream_event(&s, "message_start", 13, ev, strlen(ev), out, &kind, msg,
                                                  sizeof(msg)),
                     TELEX_ANTHROPIC_CONTINUE);
    char *text = json_dumps(json_array_get(out, 0), JSON_COMPACT | JSON_PRESERVE_ORDER);
    assert_string_equal(text, "{\"id\":\"msg_abc\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,"
                              "\"model\":\"claude-y\",\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\","
                              "\"content\":\"\"},\"logprobs\":null,\"finish_reason\":null}]}");
    free(text);
    json_decref(out);
    telex_anthropic_stream_free(&s);
}

/* Many blocks: the block table grows; indexes beyond the cap are refused. */
static void test_many_blocks(void **state)
{
    (void)state;
    telex_anthropic_stream_t s;
    telex_anthropic_stream_init(&s, CREATED);
    json_t *out = json_array();
    telex_upstream_failure_kind_t kind;
    char msg[256], ev[256];
    static const char start[] = "{\"type\":\"message_start\",\"message\":{\"id\":\"m\",\"model\":\"x\"}}";
    assert_int_equal(telex_anthropic_stream_event(&s, "message", 7, start, strlen(start), out, &kind, msg, sizeof msg),
                     0);
    for (int i = 0; i < 300; i++) {
        int n = snprintf(ev, sizeof ev,
                         "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{\"type\":\"tool_use\","
                         "\"id\":\"t%d\",\"name\":\"f\",\"input\":{\"i\":%d}}}",
                         i, i, i);
        assert_int_equal(telex_anthropic_stream_event(&s, "message", 7, ev, (size_t)n, out, &kind, msg, sizeof msg),
                         0);
    }
    /* role + 300 × (tool header + the initial input as arguments) */
    assert_int_equal(json_array_size(out), 601);
    json_t *choice = json_array_get(json_object_get(json_array_get(out, 600), "choices"), 0);
    json_t *last = json_object_get(json_object_get(choice, "delta"), "tool_calls");
    assert_int_equal(json_integer_value(json_object_get(json_array_get(last, 0), "index")), 299);
    assert_string_equal(
        json_string_value(json_object_get(json_object_get(json_array_get(last, 0), "function"), "arguments")),
        "{\"i\":299}");
    int n = snprintf(ev, sizeof ev,
                     "{\"type\":\"content_block_start\",\"index\":%d,\"content_block\":{\"type\":\"text\"}}",
                     TELEX_ANTHROPIC_MAX_BLOCKS);
    assert_int_equal(telex_anthropic_stream_event(&s, "message", 7, ev, (size_t)n, out, &kind, msg, sizeof msg),
                     TELEX_ANTHROPIC_FAILED);
    assert_int_equal(kind, TELEX_UPSTREAM_PROTOCOL);
    json_decref(out);
    telex_anthropic_stream_free(&s);
}

/* ------------------------------------------------------------ plain answers, errors */

static const char plain_body[] =
        "{\"id\":\"msg_9\",\"type\":\"message\",\"role\":\"assistant\",\"model\":\"claude-x\",\"content\":["
        "{\"type\":\"thinking\",\"thinking\":\"Hmm.\",\"signature\":\"sig\"},{\"type\":\"text\",\"text\":\"Hello \"},"
        "{\"type\":\"text\",\"text\":\"world\"},{\"type\":\"tool_use\",\"id\":\"toolu_1\",\"name\":\"f\",\"input\":"
        "{\"a\":1}}],\"stop_reason\":\"tool_use\",\"stop_sequence\":null,\"usage\":{\"input_tokens\":3,"
        "\"cache_read_input_tokens\":4,\"output_tokens\":5}}";
static const char plain_want[] =
        "{\"id\":\"msg_9\",\"object\":\"chat.completion\",\"created\":1700000000,\"model\":\"claude-x\",\"choices\":"
        "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"Hello world\",\"refusal\":null,"
        "\"reasoning_content\":\"Hmm.\",\"tool_calls\":[{\"id\":\"toolu_1\",\"type\":\"function\",\"function\":"
        "{\"name\":\"f\",\"arguments\":\"{\\\"a\\\":1}\"}}]},\"logprobs\":null,\"finish_reason\":\"tool_calls\"}],"
        "\"usage\":{\"prompt_tokens\":7,\"completion_tokens\":5,\"total_tokens\":12,\"prompt_tokens_details\":"
        "{\"cached_tokens\":4}}}";

static void test_plain_response(void **state)
{
    (void)state;
    char msg[256];
    json_t *in = parse(plain_body);
    json_t *got = telex_anthropic_response(in, CREATED, msg, sizeof msg);
    json_decref(in);
    json_t *want = parse(plain_want);
    if (!json_equal(got, want)) {
        char *g = dump(got);
        fail_msg("got %s", g);
    }
    json_decref(got);
    json_decref(want);

    static const char only_tool[] = "{\"id\":\"m\",\"model\":\"x\",\"content\":[{\"type\":\"tool_use\",\"id\":\"t\","
                                    "\"name\":\"f\",\"input\":{}}],\"stop_reason\":\"tool_use\"}";
    in = parse(only_tool);
    got = telex_anthropic_response(in, CREATED, msg, sizeof msg);
    json_decref(in);
    json_t *m = json_object_get(json_array_get(json_object_get(got, "choices"), 0), "message");
    assert_true(json_is_null(json_object_get(m, "content"))); /* like OpenAI: null content beside tool calls */
    assert_null(json_object_get(got, "usage"));
    json_decref(got);

    in = parse("{\"type\":\"message\"}");
    assert_null(telex_anthropic_response(in, CREATED, msg, sizeof msg));
    assert_string_equal(msg, "the provider's answer is not an Anthropic message (no content array)");
    json_decref(in);
}

static void test_error_bodies(void **state)
{
    (void)state;
    static const struct {
        int status;
        const char *in, *out;
    } rows[] = {
        {400, "{\"type\":\"error\",\"error\":{\"type\":\"invalid_request_error\",\"message\":\"max_tokens: Field required\"}}",
         "{\"error\":{\"message\":\"max_tokens: Field required\",\"type\":\"invalid_request_error\",\"param\":null,"
         "\"code\":null}}"},
        {401, "{\"type\":\"error\",\"error\":{\"type\":\"authentication_error\",\"message\":\"invalid x-api-key\"}}",
         "{\"error\":{\"message\":\"invalid x-api-key\",\"type\":\"authentication_error\",\"param\":null,\"code\":null}}"},
        {529, "{\"type\":\"error\",\"error\":{\"type\":\"overloaded_error\",\"message\":\"Overloaded\"}}",
         "{\"error\":{\"message\":\"Overloaded\",\"type\":\"overloaded_error\",\"param\":null,\"code\":null}}"},
        {502, "<html>bad gateway</html>",
         "{\"error\":{\"message\":\"the provider answered HTTP 502\",\"type\":\"api_error\",\"param\":null,"
         "\"code\":null}}"},
        {429, "", "{\"error\":{\"message\":\"the provider answered HTTP 429\",\"type\":\"rate_limit_error\","
                  "\"param\":null,\"code\":null}}"},
        {404, "{\"error\":{\"message\":\"no such model\"}}",
         "{\"error\":{\"message\":\"no such model\",\"type\":\"invalid_request_error\",\"param\":null,\"code\":null}}"},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        size_t len = 0;
        char *got = telex_anthropic_error_body(rows[i].status, rows[i].in, strlen(rows[i].in), &len);
        assert_non_null(got);
        assert_string_equal(got, rows[i].out);
        assert_int_equal(len, strlen(got));
        free(got);
    }
}

static void test_finish_reasons(void **state)
{
    (void)state;
    assert_string_equal(telex_anthropic_finish_reason("end_turn"), "stop");
    assert_string_equal(telex_anthropic_finish_reason("stop_sequence"), "stop");
    assert_string_equal(telex_anthropic_finish_reason("max_tokens"), "length");
    assert_string_equal(telex_anthropic_finish_reason("tool_use"), "tool_calls");
    assert_string_equal(telex_anthropic_finish_reason("refusal"), "content_filter");
    assert_string_equal(telex_anthropic_finish_reason("pause_turn"), "stop");
    assert_string_equal(telex_anthropic_finish_reason("model_context_window_exceeded"), "length");
    assert_string_equal(telex_anthropic_finish_reason(NULL), "stop");
}

/* ------------------------------------------------------------ out of memory */

/* jansson's allocations through a counter: the n-th one from now fails. */
static long fail_at = -1;
static void *counting_malloc(size_t n)
{
    if (fail_at == 0) {
        fail_at = -1;
        return NULL;
    }
    if (fail_at > 0)
        fail_at--;
    return malloc(n);
}

/* Every allocation, failed in turn: the translation fails cleanly (NULL, or
 * FAILED) or gives exactly the right answer — never a wrong one, never a
 * crash or a leak (the sanitizer build checks). */
static void test_out_of_memory_everywhere(void **state)
{
    (void)state;
    const char *in_text = request_ok[7].in; /* the tool round trip: every kind of block */
    json_t *in = parse(in_text), *want = parse(request_ok[7].out);
    json_set_alloc_funcs(counting_malloc, free);
    long n;
    for (n = 0; n < 100000; n++) {
        telex_anthropic_request_error_t err;
        fail_at = n;
        json_t *got = telex_anthropic_request(in, 4096, 0, &err);
        int failed = fail_at == -1;
        fail_at = -1;
        if (got == NULL) {
            assert_true(failed);
        } else if (!json_equal(got, want)) {
            fail_msg("allocation %ld failed and the translation is wrong", n);
        }
        json_decref(got);
        if (!failed)
            break;
    }
    assert_true(n > 20);

    const stream_row_t *row = &stream_rows[6]; /* text and two tool calls */
    for (n = 0; n < 100000; n++) {
        telex_anthropic_stream_t s;
        telex_anthropic_stream_init(&s, CREATED);
        json_t *out = json_array();
        telex_upstream_failure_kind_t kind;
        char message[256];
        int rc = TELEX_ANTHROPIC_CONTINUE;
        fail_at = n;
        for (const char *p = row->events; *p && rc == TELEX_ANTHROPIC_CONTINUE;) {
            const char *bar = strchr(p, '|'), *nl = strchr(p, '\n');
            rc = telex_anthropic_stream_event(&s, p, (size_t)(bar - p), bar + 1, (size_t)(nl - bar - 1), out, &kind,
                                              message, sizeof(message));
            p = nl + 1;
        }
        int failed = fail_at == -1;
        fail_at = -1;
        if (!failed) {
            assert_int_equal(rc, TELEX_ANTHROPIC_DONE);
            assert_int_equal(json_array_size(out), 9);
        } else {
            assert_true(rc == TELEX_ANTHROPIC_FAILED || rc == TELEX_ANTHROPIC_DONE);
        }
        json_decref(out);
        telex_anthropic_stream_free(&s);
        if (!failed)
            break;
    }
    assert_true(n > 20);

    json_set_alloc_funcs(malloc, free);
    json_t *plain_expected = parse(plain_want), *plain_in = parse(plain_body);
    json_set_alloc_funcs(counting_malloc, free);
    for (n = 0; n < 100000; n++) {
        char msg[256];
        fail_at = n;
        json_t *got = telex_anthropic_response(plain_in, CREATED, msg, sizeof msg);
        int failed = fail_at == -1;
        fail_at = -1;
        if (got != NULL && !json_equal(got, plain_expected))
            fail_msg("allocation %ld failed and the plain answer is wrong", n);
        assert_true(got != NULL || failed);
        json_decref(got);
        if (!failed)
            break;
    }
    assert_true(n > 20);
    json_decref(plain_expected);
    json_decref(plain_in);
    json_set_alloc_funcs(malloc, free);
    json_decref(in);
    json_decref(want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_translation), cmocka_unit_test(test_request_error_body),
        cmocka_unit_test(test_stream_normalization), cmocka_unit_test(test_chunk_members),
        cmocka_unit_test(test_many_blocks),         cmocka_unit_test(test_plain_response),
        cmocka_unit_test(test_error_bodies),        cmocka_unit_test(test_finish_reasons),
        cmocka_unit_test(test_out_of_memory_everywhere),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
