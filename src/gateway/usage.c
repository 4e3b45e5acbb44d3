/*
 * gateway/usage.c — usage parsing, cost, estimates, ledger rows, settling
 * a key's reservation, and the /v1/usage query and its JSON. See usage.h.
 */
#include "gateway/usage.h"
#include "cluster/limits.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/limits.h"
#include "util/hex.h"
#include "util/json_dump.h"
#include "util/log.h"

/* ---- usage and cost ------------------------------------------------------------- */

/* A count a provider reported: negative (or not an integer) is absent;
 * beyond TELEX_USAGE_TOKENS_MAX (no answer is that long: a provider bug,
 * or INT64_MAX) it is clamped and remembered in *absurd, so neither costs,
 * budgets nor the ledger's sums take it. */
static bool get_count(const json_t *obj, const char *key, uint64_t *out, uint64_t *absurd)
{
    const json_t *v = json_object_get(obj, key);
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return false;
    uint64_t n = (uint64_t)json_integer_value(v);
    if (n > TELEX_USAGE_TOKENS_MAX) {
        if (n > *absurd)
            *absurd = n;
        n = TELEX_USAGE_TOKENS_MAX;
    }
    *out = n;
    return true;
}

int telex_usage_parse(const json_t *usage, telex_usage_t *out)
{
    memset(out, 0, sizeof(*out));
    if (!json_is_object(usage))
        return -1;
    uint64_t *a = &out->absurd;
    bool p = get_count(usage, "prompt_tokens", &out->prompt_tokens, a);
    bool c = get_count(usage, "completion_tokens", &out->completion_tokens, a);
    if (!p && !c) {
        /* Anthropic-style names, from providers that pass them through */
        p = get_count(usage, "input_tokens", &out->prompt_tokens, a);
        c = get_count(usage, "output_tokens", &out->completion_tokens, a);
        if (!p && !c)
            return -1;
    }
    get_count(json_object_get(usage, "prompt_tokens_details"), "cached_tokens", &out->cached_tokens, a);
    get_count(json_object_get(usage, "completion_tokens_details"), "reasoning_tokens", &out->reasoning_tokens, a);
    if (out->cached_tokens > out->prompt_tokens)
        out->cached_tokens = out->prompt_tokens;
    if (out->reasoning_tokens > out->completion_tokens)
        out->reasoning_tokens = out->completion_tokens;
    return 0;
}

double telex_usage_cost(const telex_usage_t *u, const telex_route_t *route)
{
    if (route == NULL)
        return 0;
    double uncached = (double)(u->prompt_tokens - u->cached_tokens);
    double cost = uncached * route->input_price_per_mtok + (double)u->cached_tokens * route->cached_input_price_per_mtok +
                  (double)u->completion_tokens * route->output_price_per_mtok;
    cost /= 1e6;
    return round(cost * 1e10) / 1e10; /* whole 1e-10 USD: no float noise in sums */
}

int telex_usage_annotate(json_t *obj, const telex_route_t *route, telex_usage_t *u, double *cost)
{
    json_t *usage = json_object_get(obj, "usage");
    if (telex_usage_parse(usage, u) != 0)
        return 0;
    *cost = telex_usage_cost(u, route);
    json_object_set_new(usage, "cost_usd", json_real(*cost)); /* usage is an object, the cost finite */
    return 1;
}

char *telex_usage_dump(const json_t *obj)
{
    return telex_json_dumps(obj, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15));
}

/* ---- estimates ------------------------------------------------------------------- */

static uint64_t text_bytes(const json_t *content)
{
    if (json_is_string(content))
        return json_string_length(content);
    uint64_t n = 0;
    if (json_is_array(content)) { /* [{"type":"text","text":...}, ...] */
        size_t i;
        const json_t *part;
        json_array_foreach(content, i, part) n += json_string_length(json_object_get(part, "text"));
    }
    return n;
}

void telex_usage_estimator_begin(telex_usage_estimator_t *est, const json_t *body)
{
    memset(est, 0, sizeof(*est));
    size_t i;
    const json_t *m;
    json_array_foreach(json_object_get(body, "messages"), i, m)
    {
        est->prompt_messages++;
        est->prompt_bytes += text_bytes(json_object_get(m, "content"));
        const json_t *calls = json_object_get(m, "tool_calls");
        size_t j;
        const json_t *call;
        json_array_foreach(calls, j, call) est->prompt_bytes +=
            json_string_length(json_object_get(json_object_get(call, "function"), "arguments"));
    }
}

void telex_usage_estimator_chunk(telex_usage_estimator_t *est, const json_t *chunk)
{
    size_t i;
    const json_t *choice;
    json_array_foreach(json_object_get(chunk, "choices"), i, choice)
    {
        const json_t *d = json_object_get(choice, "delta");
        if (d == NULL)
            d = json_object_get(choice, "message"); /* a non-streamed answer */
        est->completion_bytes += json_string_length(json_object_get(d, "content"));
        est->completion_bytes += json_string_length(json_object_get(d, "refusal"));
        est->reasoning_bytes += json_string_length(json_object_get(d, "reasoning_content"));
        est->reasoning_bytes += json_string_length(json_object_get(d, "reasoning"));
        size_t j;
        const json_t *call;
        json_array_foreach(json_object_get(d, "tool_calls"), j, call) est->completion_bytes +=
            json_string_length(json_object_get(json_object_get(call, "function"), "arguments"));
    }
}

static uint64_t tokens_of(uint64_t bytes)
{
    return (bytes + 3) / 4;
}

void telex_usage_estimator_result(const telex_usage_estimator_t *est, telex_usage_t *out)
{
    memset(out, 0, sizeof(*out));
    out->prompt_tokens = tokens_of(est->prompt_bytes) + 4 * est->prompt_messages + 3;
    out->reasoning_tokens = tokens_of(est->reasoning_bytes);
    out->completion_tokens = tokens_of(est->completion_bytes) + out->reasoning_tokens;
    out->estimated = true;
}

uint64_t telex_usage_estimate_request_tokens(const json_t *body)
{
    telex_usage_estimator_t est;
    telex_usage_t u;
    telex_usage_estimator_begin(&est, body);
    telex_usage_estimator_result(&est, &u);
    return u.prompt_tokens;
}

double telex_usage_estimate_cost(const json_t *body, const telex_model_t *model, uint64_t prompt_tokens)
{
    if (model == NULL)
        return 0;
    double in = 0, out = 0;
    for (size_t i = 0; i < model->n_routes; i++) {
        if (model->routes[i].input_price_per_mtok > in)
            in = model->routes[i].input_price_per_mtok;
        if (model->routes[i].output_price_per_mtok > out)
            out = model->routes[i].output_price_per_mtok;
    }
    json_t *max = json_object_get(body, "max_completion_tokens");
    if (!json_is_integer(max) || json_integer_value(max) <= 0)
        max = json_object_get(body, "max_tokens");
    double output = json_is_integer(max) && json_integer_value(max) > 0 ? (double)json_integer_value(max)
                                                                         : TELEX_USAGE_DEFAULT_MAX_OUTPUT;
    json_t *n = json_object_get(body, "n");
    if (json_is_integer(n) && json_integer_value(n) > 1)
        output *= (double)json_integer_value(n);
    return ((double)prompt_tokens * in + output * out) / 1e6;
}

/* ---- the ledger row ----------------------------------------------------------------- */

void telex_usage_record_init(telex_usage_record_t *rec, const telex_grant_t *grant, const char *model,
                             const char *provider)
{
    memset(rec, 0, sizeof(*rec));
    rec->ts_ms = telex_store_now_ms();
    rec->key_id = grant != NULL ? grant->key_id : 0;
    snprintf(rec->model, sizeof rec->model, "%s", model ? model : "");
    snprintf(rec->provider, sizeof rec->provider, "%s", provider ? provider : "");
    rec->ttft_ms = -1;
    snprintf(rec->outcome, sizeof rec->outcome, "ok");
}

void telex_usage_record_set(telex_usage_record_t *rec, const telex_usage_t *u, double cost_usd)
{
    rec->prompt_tokens = u->prompt_tokens;
    rec->completion_tokens = u->completion_tokens;
    rec->cached_tokens = u->cached_tokens;
    rec->reasoning_tokens = u->reasoning_tokens;
    rec->estimated = u->estimated ? 1 : 0;
    rec->cost_usd = cost_usd;
    if (u->absurd > 0) {
        json_t *line = json_pack("{s:s,s:s,s:s,s:s,s:I,s:I}", "level", "warn", "msg",
                                 "provider reported an absurd token count; clamped before the ledger", "model",
                                 rec->model, "provider", rec->provider, "reported", (json_int_t)(u->absurd > INT64_MAX ? INT64_MAX : u->absurd),
                                 "clamped_to", (json_int_t)TELEX_USAGE_TOKENS_MAX);
        if (line != NULL)
            telex_log_json(line);
    }
}

void telex_usage_settle(telex_limits_t *limits, const telex_grant_t *grant, const telex_usage_record_t *rec)
{
    if (grant != NULL && grant->key_id > 0 && grant->cluster_decided) {
        /* cluster mode: Redis holds the reservation; the local count follows the spend (for when Redis is away) */
        telex_cluster_settle(grant->key_id, grant->cluster_reservation, grant->reserved_tokens,
                             rec->prompt_tokens + rec->completion_tokens, rec->cost_usd);
        telex_limits_settle_cost(limits, grant->key_id, 0, rec->prompt_tokens + rec->completion_tokens, 0,
                                 rec->cost_usd);
    } else if (grant != NULL && grant->key_id > 0) {
        telex_limits_settle_cost(limits, grant->key_id, grant->reserved_tokens,
                                 rec->prompt_tokens + rec->completion_tokens, grant->reserved_usd, rec->cost_usd);
    }
    if (grant != NULL && grant->key_id > 0 && grant->holds_slot)
        telex_limits_release_slot(limits, grant->key_id); /* its concurrency slot (the Redis lease went with the settle) */
    if (grant != NULL)
        telex_cluster_lease_end(grant->key_id, grant->cluster_lease, rec->cost_usd); /* decided locally: its lease */
}

/* ---- the /v1/usage query and answer -------------------------------------------------------------------- */

int telex_usage_parse_time(const char *s, size_t len, bool end_of_day, int64_t *ms_out)
{
    char buf[40];
    if (len == 0 || len >= sizeof buf)
        return -1;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (strspn(buf, "0123456789") == len) {
        if (len > 12)
            return -1;
        *ms_out = strtoll(buf, NULL, 10) * 1000;
        return 0;
    }
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = strptime(buf, "%Y-%m-%d", &tm);
    if (rest == NULL || tm.tm_year + 1900 > 9999 || tm.tm_year + 1900 < 1970)
        return -1;
    if (*rest == '\0' && len == 10) {
        *ms_out = ((int64_t)timegm(&tm) + (end_of_day ? 86400 : 0)) * 1000;
        return 0;
    }
    if (*rest != 'T')
        return -1;
    rest = strptime(rest + 1, "%H:%M:%S", &tm);
    if (rest == NULL || (strcmp(rest, "Z") != 0 && strcmp(rest, "+00:00") != 0))
        return -1;
    *ms_out = (int64_t)timegm(&tm) * 1000;
    return 0;
}

/* Decodes %XX and '+' of a query value into out (cap bytes). -1 if bad. */
static int url_decode(const char *s, size_t len, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        if (ch == '+') {
            ch = ' ';
        } else if (ch == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = telex_hexval(s[i + 1]), lo = telex_hexval(s[i + 2]);
            if (hi < 0 || lo < 0 || (hi == 0 && lo == 0))
                return -1;
            ch = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = ch;
    }
    out[o] = '\0';
    return 0;
}

int telex_usage_parse_query(const char *qs, size_t len, int64_t now_ms, telex_usage_query_t *q,
                            telex_api_error_t *e)
{
    q->from_ms = 0;
    q->to_ms = now_ms + 1;
    q->group = TELEX_USAGE_GROUP_NONE;
    q->key_id = -1;
    unsigned seen = 0;
    size_t i = 0;
    while (i < len) {
        size_t end = i;
        while (end < len && qs[end] != '&')
            end++;
        const char *pair = qs + i;
        size_t plen = end - i;
        i = end + 1;
        if (plen == 0)
            continue;
        const char *eq = memchr(pair, '=', plen);
        size_t klen = eq ? (size_t)(eq - pair) : plen;
        char value[64];
        if (url_decode(eq ? eq + 1 : "", eq ? plen - klen - 1 : 0, value, sizeof value) != 0)
            return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", NULL,
                                       "A query parameter is too long or badly encoded.");
        static const char *const names[] = {"from", "to", "group_by", "key"};
        int which = -1;
        for (int k = 0; k < 4; k++)
            if (strlen(names[k]) == klen && memcmp(names[k], pair, klen) == 0)
                which = k;
        if (which < 0) {
            char safe[48];
            telex_api_safe_text(safe, sizeof safe, pair, klen);
            return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", NULL,
                                       "Unknown query parameter '%s' (known: from, to, group_by, key).", safe);
        }
        if (seen & (1u << which))
            return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", names[which],
                                       "The query parameter %s is given twice.", names[which]);
        seen |= 1u << which;
        char safe[80];
        telex_api_safe_text(safe, sizeof safe, value, strlen(value));
        if (which <= 1) {
            int64_t *slot = which == 0 ? &q->from_ms : &q->to_ms;
            if (telex_usage_parse_time(value, strlen(value), which == 1, slot) != 0)
                return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", names[which],
                                           "%s='%s' is not a time: use 2026-01-31, 2026-01-31T12:00:00Z or unix "
                                           "seconds.",
                                           names[which], safe);
        } else if (which == 2) {
            if (strcmp(value, "key") == 0)
                q->group = TELEX_USAGE_GROUP_KEY;
            else if (strcmp(value, "model") == 0)
                q->group = TELEX_USAGE_GROUP_MODEL;
            else if (strcmp(value, "day") == 0)
                q->group = TELEX_USAGE_GROUP_DAY;
            else if (strcmp(value, "none") == 0 || value[0] == '\0')
                q->group = TELEX_USAGE_GROUP_NONE;
            else
                return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", "group_by",
                                           "group_by='%s' is not one of key, model, day.", safe);
        } else {
            size_t vl = strlen(value);
            if (vl == 0 || vl > 18 || strspn(value, "0123456789") != vl || strtoll(value, NULL, 10) <= 0)
                return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", "key",
                                           "key='%s' is not a key id (a positive integer).", safe);
            q->key_id = strtoll(value, NULL, 10);
        }
    }
    if (q->from_ms >= q->to_ms)
        return telex_api_error_set(e, 400, "invalid_request_error", "invalid_request", "from",
                                   "from must be before to.");
    return 0;
}

static void format_ms(int64_t ms, char *buf, size_t n)
{
    time_t t = (time_t)(ms / 1000);
    struct tm tm;
    if (gmtime_r(&t, &tm) == NULL || strftime(buf, n, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(buf, n, "%lld", (long long)(ms / 1000));
}

/* Totals are unsigned and saturate (PostgreSQL sums are numeric); JSON
 * integers are signed 64-bit. */
static json_int_t ji(uint64_t v)
{
    return v > (uint64_t)INT64_MAX ? (json_int_t)INT64_MAX : (json_int_t)v;
}

static uint64_t add_sat(uint64_t a, uint64_t b)
{
    return a + b < a ? UINT64_MAX : a + b;
}

static json_t *counters(const telex_usage_row_t *r)
{
    return json_pack("{s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:f}", "requests", ji(r->requests), "prompt_tokens",
                     ji(r->prompt_tokens), "completion_tokens", ji(r->completion_tokens), "cached_tokens",
                     ji(r->cached_tokens), "reasoning_tokens", ji(r->reasoning_tokens), "total_tokens",
                     ji(add_sat(r->prompt_tokens, r->completion_tokens)), "estimated_requests",
                     ji(r->estimated_requests), "failed_requests", ji(r->failed_requests), "cost_usd",
                     round(r->cost_usd * 1e10) / 1e10);
}

json_t *telex_usage_to_json(const telex_usage_query_t *q, const telex_usage_row_t *rows, size_t n, int truncated)
{
    static const char *const groups[] = {"none", "key", "model", "day"};
    char from[32], to[32];
    format_ms(q->from_ms, from, sizeof from);
    format_ms(q->to_ms, to, sizeof to);
    json_t *data = json_array();
    telex_usage_row_t total;
    memset(&total, 0, sizeof total);
    for (size_t i = 0; i < n; i++) {
        const telex_usage_row_t *r = &rows[i];
        json_t *item = counters(r);
        switch (q->group) {
        case TELEX_USAGE_GROUP_KEY:
            json_object_set_new(item, "key_id", r->key_id > 0 ? json_integer(r->key_id) : json_null());
            json_object_set_new(item, "key_name", r->key_name[0] ? json_string(r->key_name) : json_null());
            break;
        case TELEX_USAGE_GROUP_MODEL: {
            json_t *m = json_string(r->model);
            json_object_set_new(item, "model", m ? m : json_string("?"));
            break;
        }
        case TELEX_USAGE_GROUP_DAY:
            json_object_set_new(item, "day", json_string(r->day));
            break;
        default:
            break;
        }
        json_array_append_new(data, item);
        total.requests += r->requests;
        total.prompt_tokens = add_sat(total.prompt_tokens, r->prompt_tokens);
        total.completion_tokens = add_sat(total.completion_tokens, r->completion_tokens);
        total.cached_tokens = add_sat(total.cached_tokens, r->cached_tokens);
        total.reasoning_tokens = add_sat(total.reasoning_tokens, r->reasoning_tokens);
        total.estimated_requests += r->estimated_requests;
        total.failed_requests += r->failed_requests;
        total.cost_usd += r->cost_usd;
    }
    json_t *tot = counters(&total);
    json_t *out = json_pack("{s:s,s:s,s:s,s:s,s:o,s:o,s:b}", "object", "usage", "from", from, "to", to, "group_by",
                            groups[q->group], "data", data, "total", tot, "truncated", truncated);
    if (q->key_id >= 0)
        json_object_set_new(out, "key_id", q->key_id > 0 ? json_integer(q->key_id) : json_null());
    return out;
}
