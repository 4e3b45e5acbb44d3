/*
 * upstream/demo.c — the built-in `demo` model: no network, no key.
 *
 * Streams a readable, varied answer that responds to the last user message,
 * at the provider's tokens_per_second (default 30), so `make run` shows the
 * typewriter effect out of the box. The answer is deterministic for a given
 * prompt (seeded by its hash), honours max_tokens (finish_reason "length"),
 * and ends with a usage chunk like OpenAI's, so every gateway path — usage,
 * cost, resume — works with it. Tokens are words with their leading space;
 * prompt tokens are estimated at four bytes per token.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "upstream/provider.h"
#include "util/alloc.h"
#include "util/buf.h"
#include "util/json_dump.h"

#define MAX_TOPICS 3
#define ANSWER_LIMIT 16384

typedef struct {
    telex_upstream_t base;
    telex_upstream_sink_t sink;
    void *user;
    uv_timer_t *timer; /* malloc'd: freed in its close callback */
    telex_buf_t answer;
    size_t pos;               /* next byte of answer to send */
    int step;                 /* 0 = role chunk next, 1 = content, 2 = finish, 3 = usage, 4 = done */
    long max_tokens;          /* 0 = none */
    long completion_tokens;
    long prompt_tokens;
    int stream;
    int include_usage;
    int paused;
    int cancelled;
    int in_callback;
    uint64_t interval_ms;
    char id[40];
    char model[128];
    long created;
} demo_t;

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ULL;
    return h;
}

static uint32_t next_rand(uint64_t *state)
{
    *state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
    return (uint32_t)(*state >> 33);
}

/* The text of the last user message (string content or text parts). */
static void last_user_text(json_t *body, telex_buf_t *out, long *prompt_bytes)
{
    json_t *messages = json_object_get(body, "messages");
    size_t i;
    json_t *m;
    const char *last = "";
    *prompt_bytes = 0;
    json_array_foreach(messages, i, m)
    {
        json_t *content = json_object_get(m, "content");
        const char *text = json_string_value(content);
        if (json_is_array(content)) {
            size_t j;
            json_t *part;
            json_array_foreach(content, j, part)
            {
                const char *t = json_string_value(json_object_get(part, "text"));
                if (t != NULL) {
                    text = t;
                    *prompt_bytes += (long)strlen(t);
                }
            }
        } else if (text != NULL) {
            *prompt_bytes += (long)strlen(text);
        }
        const char *role = json_string_value(json_object_get(m, "role"));
        if (text != NULL && role != NULL && strcmp(role, "user") == 0)
            last = text;
    }
    telex_buf_append(out, last, strlen(last));
}

/* Up to MAX_TOPICS distinct words of 4+ letters from the prompt. */
static int pick_topics(const char *text, char topics[MAX_TOPICS][32])
{
    static const char *skip[] = {"what", "when", "where", "which", "would", "could", "should", "about", "there",
                                 "their", "this", "that", "with", "have", "from", "your", "please", "tell",
                                 "explain", "does", "into", "some", "write", "give", "make", NULL};
    int n = 0;
    const char *p = text;
    while (*p && n < MAX_TOPICS) {
        while (*p && !((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z')))
            p++;
        const char *start = p;
        while ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '-')
            p++;
        size_t len = (size_t)(p - start);
        if (len < 4 || len >= 32)
            continue;
        char word[32];
        for (size_t i = 0; i < len; i++)
            word[i] = (char)((start[i] >= 'A' && start[i] <= 'Z') ? start[i] + 32 : start[i]);
        word[len] = '\0';
        int dup = 0;
        for (int i = 0; skip[i] && !dup; i++)
            dup = strcmp(skip[i], word) == 0;
        for (int i = 0; i < n && !dup; i++)
            dup = strcmp(topics[i], word) == 0;
        if (!dup)
            memcpy(topics[n++], word, len + 1);
    }
    return n;
}

static void compose_answer(demo_t *d, json_t *body)
{
    static const char *openers[][2] = {
        {"Good question! Let me walk through ", " step by step."},
        {"Here is how I would think about ", "."},
        {"Short answer: ", " is easier than it looks. Longer answer below."},
        {"Let's break ", " down into a few clear ideas."},
    };
    static const char *middles[] = {
        "First, it helps to name what you want to achieve, because the right approach depends on it.",
        "A useful habit is to start small, measure what happens, and only then add complexity.",
        "Most problems here come from hidden assumptions, so write yours down before you begin.",
        "The details matter less than the feedback loop: try something, look at the result, adjust.",
        "Experienced people keep notes as they go, which makes the next attempt much faster.",
        "When something goes wrong, reduce it to the smallest case that still shows the problem.",
    };
    static const char *bullets[] = {
        "- **Clarity**: say exactly what done looks like.\n",
        "- **Speed**: prefer quick experiments over long plans.\n",
        "- **Safety**: keep a way back when a change does not work.\n",
        "- **Focus**: do one thing at a time and finish it.\n",
    };
    static const char *closers[] = {
        "I hope that helps. Ask me a follow-up question and I will go deeper.",
        "That is the gist of it; tell me which part you would like to explore next.",
        "This is a demo model built into telex, streaming at a steady pace so you can watch every token arrive.",
    };
    telex_buf_t prompt = {0};
    long prompt_bytes = 0;
    last_user_text(body, &prompt, &prompt_bytes);
    d->prompt_tokens = prompt_bytes / 4 + 1;
    uint64_t seed = hash_bytes(prompt.data ? prompt.data : "", prompt.len);
    char topics[MAX_TOPICS][32];
    int n = pick_topics(prompt.data ? prompt.data : "", topics);
    char subject[128];
    if (n == 0)
        snprintf(subject, sizeof(subject), "your question");
    else if (n == 1)
        snprintf(subject, sizeof(subject), "%s", topics[0]);
    else
        snprintf(subject, sizeof(subject), "%s and %s", topics[0], topics[1]);
    telex_buf_free(&prompt);

    char line[512];
    uint32_t o = next_rand(&seed) % 4;
    snprintf(line, sizeof(line), "%s%s%s", openers[o][0], subject, openers[o][1]);
    telex_buf_append(&d->answer, line, strlen(line));
    telex_buf_append(&d->answer, "\n\n", 2);
    for (int i = 0; i < 2; i++) {
        const char *m = middles[next_rand(&seed) % 6];
        telex_buf_append(&d->answer, m, strlen(m));
        telex_buf_append(&d->answer, " ", 1);
    }
    if (n > 0) {
        snprintf(line, sizeof(line), "In the case of %s, the same rule applies.", topics[n - 1]);
        telex_buf_append(&d->answer, line, strlen(line));
    }
    telex_buf_append(&d->answer, "\n\n", 2);
    int first = (int)(next_rand(&seed) % 4);
    for (int i = 0; i < 3; i++)
        telex_buf_append(&d->answer, bullets[(first + i) % 4], strlen(bullets[(first + i) % 4]));
    telex_buf_append(&d->answer, "\n", 1);
    const char *c = closers[next_rand(&seed) % 3];
    telex_buf_append(&d->answer, c, strlen(c));
}

/* Next token: leading whitespace plus one word (or one run of punctuation). */
static size_t next_token(const demo_t *d)
{
    const char *s = d->answer.data + d->pos;
    size_t n = 0, left = d->answer.len - d->pos;
    while (n < left && (s[n] == ' ' || s[n] == '\n'))
        n++;
    while (n < left && s[n] != ' ' && s[n] != '\n')
        n++;
    return n;
}

static void emit(demo_t *d, json_t *chunk)
{
    char *text = telex_json_dumps(chunk, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (text != NULL) {
        d->in_callback = 1;
        d->sink.on_chunk(d->user, text, strlen(text), chunk, NULL);
        d->in_callback = 0;
        free(text);
    }
    json_decref(chunk);
}

static json_t *new_chunk(demo_t *d, json_t *delta, const char *finish)
{
    json_t *choice = json_pack("{s:i,s:o,s:o}", "index", 0, "delta", delta, "finish_reason",
                               finish ? json_string(finish) : json_null());
    return json_pack("{s:s,s:s,s:i,s:s,s:[o]}", "id", d->id, "object", "chat.completion.chunk", "created",
                     (json_int_t)d->created, "model", d->model, "choices", choice);
}

static json_t *usage_object(demo_t *d)
{
    return json_pack("{s:I,s:I,s:I}", "prompt_tokens", (json_int_t)d->prompt_tokens, "completion_tokens",
                     (json_int_t)d->completion_tokens, "total_tokens",
                     (json_int_t)(d->prompt_tokens + d->completion_tokens));
}

static void on_timer_closed(uv_handle_t *h)
{
    free(h);
}

static void destroy(demo_t *d)
{
    uv_timer_stop(d->timer);
    uv_close((uv_handle_t *)d->timer, on_timer_closed);
    telex_buf_free(&d->answer);
    free(d);
}

static int at_limit(const demo_t *d)
{
    return d->max_tokens > 0 && d->completion_tokens >= d->max_tokens;
}

static void send_plain(demo_t *d)
{
    d->completion_tokens = 0;
    size_t end = 0;
    while (d->pos < d->answer.len && !at_limit(d)) {
        d->pos += next_token(d);
        d->completion_tokens++;
        end = d->pos;
    }
    json_t *message = json_pack("{s:s,s:s%}", "role", "assistant", "content", d->answer.data, end);
    json_t *choice = json_pack("{s:i,s:o,s:s}", "index", 0, "message", message, "finish_reason",
                               d->pos < d->answer.len ? "length" : "stop");
    json_t *resp = json_pack("{s:s,s:s,s:i,s:s,s:[o],s:o}", "id", d->id, "object", "chat.completion", "created",
                             (json_int_t)d->created, "model", d->model, "choices", choice, "usage",
                             usage_object(d));
    char *text = telex_json_dumps(resp, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(resp);
    d->in_callback = 1;
    if (text != NULL)
        d->sink.on_response(d->user, 200, text, strlen(text));
    d->in_callback = 0;
    free(text);
    d->step = 4;
}

static void on_tick(uv_timer_t *timer)
{
    demo_t *d = timer->data;
    if (!d->stream) {
        send_plain(d);
    } else if (d->step == 0) {
        emit(d, new_chunk(d, json_pack("{s:s,s:s}", "role", "assistant", "content", ""), NULL));
        d->step = 1;
    } else if (d->step == 1) {
        size_t n = next_token(d);
        emit(d, new_chunk(d, json_pack("{s:s%}", "content", d->answer.data + d->pos, n), NULL));
        d->pos += n;
        d->completion_tokens++;
        if (d->pos >= d->answer.len || at_limit(d))
            d->step = 2;
    } else if (d->step == 2) {
        emit(d, new_chunk(d, json_object(), d->pos >= d->answer.len ? "stop" : "length"));
        d->step = 3;
    } else if (d->step == 3) {
        json_t *usage = json_pack("{s:s,s:s,s:i,s:s,s:[],s:o}", "id", d->id, "object", "chat.completion.chunk",
                                  "created", (json_int_t)d->created, "model", d->model, "choices", "usage",
                                  usage_object(d));
        emit(d, usage);
        d->step = 4;
    }
    if (d->cancelled) {
        destroy(d);
        return;
    }
    if (d->step == 4) {
        if (d->stream) {
            d->in_callback = 1;
            d->sink.on_done(d->user);
            d->in_callback = 0;
        }
        destroy(d);
        return;
    }
    /* Role, finish and usage chunks follow at once; content is paced. */
    if (!d->paused)
        uv_timer_start(d->timer, on_tick, d->step == 1 && d->pos > 0 ? d->interval_ms : 0, 0);
}

static telex_upstream_t *demo_start(const telex_upstream_env_t *env, const telex_provider_t *provider, json_t *body,
                                    int stream, const telex_upstream_sink_t *sink, void *user)
{
    demo_t *d = telex_xcalloc(1, sizeof(*d));
    d->timer = telex_xmalloc(sizeof(*d->timer));
    d->base.ops = &telex_demo_ops;
    d->sink = *sink;
    d->user = user;
    d->stream = stream;
    d->answer.limit = ANSWER_LIMIT;
    double tps = provider->tokens_per_second > 0 ? provider->tokens_per_second : 30;
    d->interval_ms = (uint64_t)(1000.0 / tps);
    json_t *mt = json_object_get(body, "max_completion_tokens");
    if (!json_is_integer(mt))
        mt = json_object_get(body, "max_tokens");
    d->max_tokens = json_is_integer(mt) && json_integer_value(mt) > 0 ? (long)json_integer_value(mt) : 0;
    snprintf(d->model, sizeof(d->model), "%s", json_string_value(json_object_get(body, "model")) ?: "demo");
    d->created = (long)time(NULL);
    static const char digits[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    uint64_t seed = (uint64_t)uv_hrtime() ^ (uint64_t)(uintptr_t)d;
    memcpy(d->id, "chatcmpl-demo-", 14);
    for (int i = 0; i < 20; i++)
        d->id[14 + i] = digits[next_rand(&seed) % 62];
    d->id[34] = '\0';
    compose_answer(d, body);
    uv_timer_init(env->loop, d->timer);
    d->timer->data = d;
    uv_timer_start(d->timer, on_tick, 0, 0);
    return &d->base;
}

static void demo_pause(telex_upstream_t *u)
{
    demo_t *d = (demo_t *)u;
    d->paused = 1;
    uv_timer_stop(d->timer);
}

static void demo_resume(telex_upstream_t *u)
{
    demo_t *d = (demo_t *)u;
    if (!d->paused)
        return;
    d->paused = 0;
    if (!d->in_callback)
        uv_timer_start(d->timer, on_tick, 0, 0);
}

static void demo_cancel(telex_upstream_t *u)
{
    demo_t *d = (demo_t *)u;
    if (d->in_callback) {
        d->cancelled = 1; /* on_tick destroys it when the callback returns */
        return;
    }
    destroy(d);
}

const telex_provider_ops_t telex_demo_ops = {demo_start, demo_pause, demo_resume, demo_cancel};
