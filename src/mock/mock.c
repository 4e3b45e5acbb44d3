/*
 * mock/mock.c — the mock's front: routing, request validation and the
 * per-request `mock` object, the small endpoints (/healthz, /v1/models,
 * /mock/requests) and OpenAI-style error replies. Chat completions are
 * handed, fully resolved, to exchange.c. See mock.h for the contract and
 * docs/mock.md for the reference.
 */
#include "mock/mock_internal.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MAX_OVERSIZE (64 * 1024 * 1024)

/* ------------------------------------------------------------- replies */

static void reply_json(h2o_req_t *req, int status, const char *reason, const char *body, size_t len)
{
    req->res.status = status;
    req->res.reason = reason;
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-cache"));
    req->res.content_length = len;
    h2o_send_inline(req, body, len);
}

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 422: return "Unprocessable Entity";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 504: return "Gateway Timeout";
    default: return status < 500 ? "Client Error" : "Server Error";
    }
}

void telex_mock_reply_error(h2o_req_t *req, int status, const char *message, const char *type, const char *param,
                            const char *code, int64_t retry_after)
{
    json_t *o = json_pack("{s:{s:s,s:s,s:o,s:o}}", "error", "message", message, "type", type, "param",
                          param ? json_string(param) : json_null(), "code", code ? json_string(code) : json_null());
    char *body = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    if (retry_after >= 0) {
        char *v = h2o_mem_alloc_pool(&req->pool, 24);
        int n = snprintf(v, 24, "%lld", (long long)retry_after);
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v, (size_t)n);
    }
    if (body == NULL) {
        static const char fallback[] =
            "{\"error\":{\"message\":\"mock: out of memory\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
        reply_json(req, status, reason_of(status), fallback, sizeof(fallback) - 1);
        return;
    }
    reply_json(req, status, reason_of(status), body, strlen(body));
    free(body);
}

/* Records the end of a request answered here (not by an exchange). */
static void journal_done(telex_mock_t *m, uint64_t seq, int status)
{
    telex_mock_progress_t p = {0};
    p.status = status;
    p.completed = 1;
    p.ended_ms = telex_mock_unix_ms();
    p.outcome = status < 400 ? "completed" : "rejected";
    telex_mock_journal_update(m->journal, seq, &p);
}

static void reject(telex_mock_t *m, uint64_t seq, h2o_req_t *req, int status, const char *message, const char *param)
{
    const char *type = status == 404 ? "not_found_error" : "invalid_request_error";
    telex_mock_reply_error(req, status, message, type, param, NULL, -1);
    journal_done(m, seq, status);
}

static void method_not_allowed(telex_mock_t *m, uint64_t seq, h2o_req_t *req, const char *allow)
{
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, allow, strlen(allow));
    char msg[128];
    snprintf(msg, sizeof(msg), "mock: method not allowed here (allowed: %s)", allow);
    reject(m, seq, req, 405, msg, NULL);
}

/* -------------------------------------------------------- spec parsing */

void telex_mock_spec_free(telex_mock_spec_t *spec)
{
    free(spec->model);
    telex_mock_answer_free(&spec->answer);
    memset(spec, 0, sizeof(*spec));
}

typedef struct {
    char message[256];
    char param[64];
} bad_t;

__attribute__((format(printf, 3, 4))) static int bad(bad_t *b, const char *param, const char *fmt, ...)
{
    va_list ap;
    snprintf(b->param, sizeof(b->param), "%s", param);
    va_start(ap, fmt);
    vsnprintf(b->message, sizeof(b->message), fmt, ap);
    va_end(ap);
    return -1;
}

static int get_int(json_t *v, const char *param, int64_t min, int64_t max, int64_t *out, bad_t *b)
{
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        char detail[96];
        snprintf(detail, sizeof(detail), "an integer from %lld to %lld", (long long)min, (long long)max);
        return bad(b, param, "mock: this value must be %s", detail);
    }
    *out = json_integer_value(v);
    return 0;
}

static int get_bool(json_t *v, const char *param, int *out, bad_t *b)
{
    if (!json_is_boolean(v))
        return bad(b, param, "mock: this value must be %s", "true or false");
    *out = json_is_true(v);
    return 0;
}

static const char *const fault_keys[TELEX_MOCK_FAULT_COUNT] = {
    [TELEX_MOCK_FAULT_MALFORMED] = "malformed_after", [TELEX_MOCK_FAULT_INVALID_JSON] = "invalid_json_after",
    [TELEX_MOCK_FAULT_OVERSIZE] = "oversize_after",   [TELEX_MOCK_FAULT_STALL] = "stall_after",
    [TELEX_MOCK_FAULT_CUT] = "cut_after",
};

/* Applies the `mock` object over the defaults already in spec. */
static int parse_mock_object(json_t *mock, telex_mock_spec_t *spec, int64_t *tokens, int64_t *seed, int *has_seed,
                             const char **text, size_t *text_len, bad_t *b)
{
    if (!json_is_object(mock))
        return bad(b, "mock", "mock: %s must be an object", "'mock'");
    const char *key;
    json_t *v;
    json_object_foreach(mock, key, v)
    {
        char param[64];
        snprintf(param, sizeof(param), "mock.%s", key);
        int r = 0, found = 0;
        for (int f = 0; f < TELEX_MOCK_FAULT_COUNT; f++)
            if (strcmp(key, fault_keys[f]) == 0) {
                found = 1;
                if (!json_is_null(v))
                    r = get_int(v, param, 0, TELEX_MOCK_MAX_TOKENS, &spec->fault_at[f], b);
            }
        if (found) {
            if (r != 0)
                return r;
            continue;
        }
        if (strcmp(key, "tokens") == 0)
            r = get_int(v, param, 0, TELEX_MOCK_MAX_TOKENS, tokens, b);
        else if (strcmp(key, "delay_ms") == 0)
            r = get_int(v, param, 0, TELEX_MOCK_MAX_DELAY_MS, &spec->delay_ms, b);
        else if (strcmp(key, "ttft_ms") == 0)
            r = get_int(v, param, 0, TELEX_MOCK_MAX_DELAY_MS, &spec->ttft_ms, b);
        else if (strcmp(key, "stall_ms") == 0)
            r = get_int(v, param, 0, TELEX_MOCK_MAX_DELAY_MS, &spec->stall_ms, b);
        else if (strcmp(key, "status") == 0)
            r = get_int(v, param, 400, 599, &spec->status, b);
        else if (strcmp(key, "retry_after") == 0)
            r = get_int(v, param, 0, 86400, &spec->retry_after, b);
        else if (strcmp(key, "oversize_bytes") == 0)
            r = get_int(v, param, 64, MAX_OVERSIZE, &spec->oversize_bytes, b);
        else if (strcmp(key, "seed") == 0) {
            r = get_int(v, param, INT64_MIN, INT64_MAX, seed, b);
            *has_seed = 1;
        } else if (strcmp(key, "usage") == 0)
            r = get_bool(v, param, &spec->usage, b);
        else if (strcmp(key, "stamp") == 0)
            r = get_bool(v, param, &spec->stamp, b);
        else if (strcmp(key, "no_done") == 0)
            r = get_bool(v, param, &spec->no_done, b);
        else if (strcmp(key, "text") == 0) {
            if (!json_is_string(v))
                return bad(b, param, "mock: %s must be a string", param);
            *text = json_string_value(v);
            *text_len = json_string_length(v);
        } else
            return bad(b, param, "mock: unknown key '%s' (see docs/mock.md)", param);
        if (r != 0)
            return r;
    }
    return 0;
}

static int64_t count_words(const char *s, size_t len)
{
    int64_t n = 0;
    int in = 0;
    for (size_t i = 0; i < len; i++) {
        int space = s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r';
        if (!space && !in)
            n++;
        in = !space;
    }
    return n;
}

/* Validates the messages and counts their words (the mock's prompt_tokens). */
static int check_messages(json_t *messages, int64_t *words, bad_t *b)
{
    if (!json_is_array(messages) || json_array_size(messages) == 0)
        return bad(b, "messages", "mock: %s must be a non-empty array", "'messages'");
    size_t i;
    json_t *msg;
    json_array_foreach(messages, i, msg)
    {
        char param[48];
        snprintf(param, sizeof(param), "messages[%zu]", i);
        if (!json_is_object(msg) || !json_is_string(json_object_get(msg, "role")))
            return bad(b, param, "mock: %s must be an object with a string 'role'", param);
        json_t *c = json_object_get(msg, "content");
        if (json_is_string(c)) {
            *words += count_words(json_string_value(c), json_string_length(c));
        } else if (json_is_array(c)) {
            size_t k;
            json_t *part;
            json_array_foreach(c, k, part)
            {
                json_t *t = json_object_get(part, "text");
                if (json_is_string(t))
                    *words += count_words(json_string_value(t), json_string_length(t));
            }
        }
    }
    return 0;
}

/* Turns the body into a spec. 0, or -1 with *b filled (a 400). */
static int build_spec(telex_mock_t *m, json_t *body, const char *deployment, size_t deployment_len,
                      telex_mock_spec_t *spec, bad_t *b)
{
    memset(spec, 0, sizeof(*spec));
    spec->delay_ms = m->defaults.delay_ms;
    spec->ttft_ms = m->defaults.ttft_ms;
    spec->stall_ms = m->defaults.stall_ms;
    spec->retry_after = -1;
    spec->usage = 1;
    for (int f = 0; f < TELEX_MOCK_FAULT_COUNT; f++)
        spec->fault_at[f] = -1;
    int64_t tokens = m->defaults.tokens, seed = 0, words = 0;
    int has_seed = 0;
    const char *text = NULL;
    size_t text_len = 0;

    if (!json_is_object(body))
        return bad(b, "", "mock: the request body must be a JSON %s", "object");
    json_t *model = json_object_get(body, "model");
    if (model != NULL && !json_is_string(model))
        return bad(b, "model", "mock: %s must be a string", "'model'");
    if (model == NULL && deployment == NULL)
        return bad(b, "model", "you must provide a model parameter%s", "");
    if (check_messages(json_object_get(body, "messages"), &words, b) != 0)
        return -1;
    json_t *stream = json_object_get(body, "stream");
    if (stream != NULL && !json_is_null(stream) && get_bool(stream, "stream", &spec->stream, b) != 0)
        return -1;
    json_t *so = json_object_get(body, "stream_options");
    if (so != NULL && !json_is_null(so)) {
        if (!json_is_object(so))
            return bad(b, "stream_options", "mock: %s must be an object", "'stream_options'");
        json_t *iu = json_object_get(so, "include_usage");
        if (iu != NULL && get_bool(iu, "stream_options.include_usage", &spec->include_usage, b) != 0)
            return -1;
    }
    json_t *bs = json_object_get(body, "seed");
    if (bs != NULL && !json_is_null(bs)) {
        if (get_int(bs, "seed", INT64_MIN, INT64_MAX, &seed, b) != 0)
            return -1;
        has_seed = 1;
    }
    json_t *mock = json_object_get(body, "mock");
    if (mock != NULL && parse_mock_object(mock, spec, &tokens, &seed, &has_seed, &text, &text_len, b) != 0)
        return -1;
    if (spec->retry_after >= 0 && spec->status == 0)
        return bad(b, "mock.retry_after", "mock: %s needs mock.status", "mock.retry_after");

    uint64_t s;
    if (has_seed) {
        s = (uint64_t)seed;
    } else { /* the prompt decides */
        char *dump = json_dumps(json_object_get(body, "messages"), JSON_COMPACT | JSON_SORT_KEYS);
        if (dump == NULL)
            return bad(b, "", "mock: %s", "out of memory");
        s = telex_mock_hash(TELEX_MOCK_HASH_INIT, dump, strlen(dump));
        free(dump);
    }
    if (text != NULL) {
        if (telex_mock_answer_from_text(&spec->answer, text, text_len) != 0)
            return bad(b, "", "mock: %s", "out of memory");
    } else {
        telex_mock_answer_generate(&spec->answer, s, (size_t)tokens);
    }
    for (int f = 0; f < TELEX_MOCK_FAULT_COUNT; f++) /* "after more chunks than there are" = after the last */
        if (spec->fault_at[f] > (int64_t)spec->answer.count)
            spec->fault_at[f] = (int64_t)spec->answer.count;
    spec->prompt_tokens = words > 0 ? words : 1;
    spec->created = (int64_t)time(NULL);
    spec->model = model != NULL ? strdup(json_string_value(model)) : strndup(deployment, deployment_len);
    if (spec->model == NULL) {
        telex_mock_spec_free(spec);
        return bad(b, "", "mock: %s", "out of memory");
    }
    return 0;
}

/* ------------------------------------------------------------ handlers */

static void handle_chat(telex_mock_worker_t *w, h2o_req_t *req, const char *deployment, size_t deployment_len)
{
    telex_mock_t *m = w->mock;
    json_error_t jerr;
    json_t *body = NULL;
    if (req->entity.base != NULL)
        body = json_loadb(req->entity.base, req->entity.len, JSON_REJECT_DUPLICATES, &jerr);
    uint64_t seq = telex_mock_journal_add(m->journal, req, body);
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST"))) {
        json_decref(body);
        method_not_allowed(m, seq, req, "POST");
        return;
    }
    if (body == NULL) {
        char msg[256];
        if (req->entity.base == NULL)
            snprintf(msg, sizeof(msg), "mock: the request has no body; send a JSON object");
        else
            snprintf(msg, sizeof(msg), "mock: the body is not valid JSON (line %d, column %d: %s)", jerr.line,
                     jerr.column, jerr.text);
        reject(m, seq, req, 400, msg, NULL);
        return;
    }
    telex_mock_spec_t spec;
    bad_t b;
    int r = build_spec(m, body, deployment, deployment_len, &spec, &b);
    json_decref(body);
    if (r != 0) {
        reject(m, seq, req, 400, b.message, b.param[0] ? b.param : NULL);
        return;
    }
    spec.seq = seq;
    telex_mock_exchange_start(w, req, &spec);
}

static void handle_models(telex_mock_t *m, uint64_t seq, h2o_req_t *req)
{
    static const char body[] = "{\"object\":\"list\",\"data\":[{\"id\":\"mock\",\"object\":\"model\","
                               "\"created\":1700000000,\"owned_by\":\"telex-mock\"}]}";
    reply_json(req, 200, "OK", body, sizeof(body) - 1);
    journal_done(m, seq, 200);
}

static uint64_t query_since(h2o_req_t *req)
{
    if (req->query_at == SIZE_MAX)
        return 0;
    const char *q = req->path.base + req->query_at + 1;
    size_t len = req->path.len - req->query_at - 1;
    for (size_t i = 0; i + 6 <= len; i++) {
        if ((i == 0 || q[i - 1] == '&') && memcmp(q + i, "since=", 6) == 0) {
            uint64_t v = 0;
            for (size_t k = i + 6; k < len && q[k] >= '0' && q[k] <= '9' && v < UINT64_MAX / 10; k++)
                v = v * 10 + (uint64_t)(q[k] - '0');
            return v;
        }
    }
    return 0;
}

static void handle_journal(telex_mock_t *m, h2o_req_t *req)
{
    if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"))) {
        telex_mock_journal_clear(m->journal);
        reply_json(req, 200, "OK", H2O_STRLIT("{\"cleared\":true}"));
        return;
    }
    if (!h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET"))) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET, DELETE"));
        telex_mock_reply_error(req, 405, "mock: method not allowed here (allowed: GET, DELETE)",
                               "invalid_request_error", NULL, NULL, -1);
        return;
    }
    size_t len = 0;
    char *dump = telex_mock_journal_dump(m->journal, query_since(req), &len);
    if (dump == NULL) {
        telex_mock_reply_error(req, 500, "mock: out of memory", "server_error", NULL, NULL, -1);
        return;
    }
    reply_json(req, 200, "OK", dump, len);
    free(dump);
}

static int is_get(h2o_req_t *req)
{
    return h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
           h2o_memis(req->method.base, req->method.len, H2O_STRLIT("HEAD"));
}

/* "/openai/deployments/{name}/chat/completions" → name */
static int azure_deployment(h2o_iovec_t path, const char **name, size_t *len)
{
    static const char head[] = "/openai/deployments/", tail[] = "/chat/completions";
    size_t hl = sizeof(head) - 1, tl = sizeof(tail) - 1;
    if (path.len <= hl + tl || memcmp(path.base, head, hl) != 0 || memcmp(path.base + path.len - tl, tail, tl) != 0)
        return 0;
    *name = path.base + hl;
    *len = path.len - hl - tl;
    return memchr(*name, '/', *len) == NULL;
}

static int on_request(telex_worker_t *worker, h2o_req_t *req)
{
    telex_mock_worker_t *w = worker->app_worker;
    telex_mock_t *m = w->mock;
    h2o_iovec_t path = req->path_normalized;
    const char *dep = NULL;
    size_t dep_len = 0;

    if (h2o_memis(path.base, path.len, H2O_STRLIT("/healthz"))) {
        if (is_get(req))
            reply_json(req, 200, "OK", H2O_STRLIT("{\"status\":\"ok\"}"));
        else {
            h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_ALLOW, NULL, H2O_STRLIT("GET"));
            telex_mock_reply_error(req, 405, "mock: method not allowed here (allowed: GET)", "invalid_request_error",
                                   NULL, NULL, -1);
        }
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/mock/requests"))) {
        handle_journal(m, req);
        return 0;
    }
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/v1/chat/completions"))) {
        handle_chat(w, req, NULL, 0);
        return 0;
    }
    if (azure_deployment(path, &dep, &dep_len)) {
        handle_chat(w, req, dep, dep_len);
        return 0;
    }
    uint64_t seq = telex_mock_journal_add(m->journal, req, NULL);
    if (h2o_memis(path.base, path.len, H2O_STRLIT("/v1/models"))) {
        if (is_get(req))
            handle_models(m, seq, req);
        else
            method_not_allowed(m, seq, req, "GET");
        return 0;
    }
    char msg[160];
    snprintf(msg, sizeof(msg), "mock: no such endpoint (%.*s); see docs/mock.md",
             (int)(path.len > 80 ? 80 : path.len), path.base);
    reject(m, seq, req, 404, msg, NULL);
    return 0;
}

/* -------------------------------------------------------------- worker */

static int worker_init(telex_worker_t *worker)
{
    telex_mock_worker_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        return -1;
    w->mock = worker->options->app;
    w->loop = &worker->loop;
    worker->app_worker = w;
    return 0;
}

static void worker_dispose(telex_worker_t *worker)
{
    /* Exchanges still in flight (hard shutdown deadline) belong to a loop
     * that no longer runs; the process is exiting, so they stay. */
    telex_mock_worker_t *w = worker->app_worker;
    if (w != NULL && w->active == 0)
        free(w);
    worker->app_worker = NULL;
}

static void on_shutdown(telex_worker_t *worker)
{
    telex_mock_exchange_shutdown(worker->app_worker);
}

static int is_idle(telex_worker_t *worker)
{
    telex_mock_worker_t *w = worker->app_worker;
    return w->active == 0;
}

void telex_mock_defaults_init(telex_mock_defaults_t *d)
{
    d->tokens = 20;
    d->delay_ms = 20;
    d->ttft_ms = 0;
    d->stall_ms = 600000;
    d->journal_size = TELEX_MOCK_DEFAULT_JOURNAL;
}

telex_mock_t *telex_mock_create(const telex_mock_defaults_t *defaults)
{
    telex_mock_t *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return NULL;
    m->defaults = *defaults;
    if ((m->journal = telex_mock_journal_new(defaults->journal_size)) == NULL) {
        free(m);
        return NULL;
    }
    return m;
}

void telex_mock_destroy(telex_mock_t *m)
{
    if (m == NULL)
        return;
    telex_mock_journal_free(m->journal);
    free(m);
}

void telex_mock_server_options(telex_mock_t *m, telex_server_options_t *o)
{
    o->name = "mock";
    o->on_request = on_request;
    o->worker_init = worker_init;
    o->worker_dispose = worker_dispose;
    o->on_shutdown = on_shutdown;
    o->is_idle = is_idle;
    o->app = m;
}
