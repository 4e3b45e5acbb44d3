/*
 * upstream/model_list.c — GET a provider's model list and reduce it to
 * OpenAI's fields. See model_list.h.
 *
 * A fetch is one plain GET on the worker's HTTP client: the body is
 * collected (up to TELEX_MODEL_LIST_MAX_BYTES), then parsed with jansson. A
 * timer bounds the whole call (the client's own timeout covers only the
 * connect). The report always comes from the loop: a call the client
 * refuses to start is reported by the timer at 0 ms.
 */
#include "upstream/model_list.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>

#include "util/alloc.h"
#include "util/json_load.h"

int telex_model_list_supported(const telex_provider_t *provider)
{
    return provider != NULL && (provider->kind == TELEX_PROVIDER_OPENAI || provider->kind == TELEX_PROVIDER_ANTHROPIC);
}

void telex_model_list_free(telex_model_list_t *list)
{
    if (list == NULL)
        return;
    for (size_t i = 0; i < list->n; i++) {
        free(list->items[i].id);
        free(list->items[i].owned_by);
    }
    free(list->items);
    list->items = NULL;
    list->n = 0;
}

/* "2025-02-19T00:00:00Z" (fractions and offsets allowed) -> Unix seconds; 0 if unreadable. */
static int64_t rfc3339_seconds(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof tm);
    const char *rest = s != NULL ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
    if (rest == NULL)
        return 0;
    int64_t t = (int64_t)timegm(&tm);
    if (*rest == '.')
        while (*++rest >= '0' && *rest <= '9')
            ;
    int hh, mm;
    if ((*rest == '+' || *rest == '-') && sscanf(rest + 1, "%2d:%2d", &hh, &mm) == 2)
        t -= (*rest == '+' ? 1 : -1) * (int64_t)(hh * 3600 + mm * 60);
    return t > 0 ? t : 0;
}

static int has_id(const telex_model_list_t *list, const char *id)
{
    for (size_t i = 0; i < list->n; i++)
        if (strcmp(list->items[i].id, id) == 0)
            return 1;
    return 0;
}

int telex_model_list_parse(telex_provider_kind_t kind, const char *body, size_t len, const char *owner,
                           telex_model_list_t *out, char *err, size_t errlen)
{
    memset(out, 0, sizeof *out);
    json_error_t je;
    json_t *root = telex_json_loadb(body, len, 0, &je);
    json_t *data = json_object_get(root, "data");
    if (!json_is_array(data)) {
        snprintf(err, errlen, "the provider's model list is not JSON with a \"data\" list%s%s",
                 root == NULL ? ": " : "", root == NULL ? je.text : "");
        json_decref(root);
        return -1;
    }
    size_t cap = json_array_size(data);
    if (cap > TELEX_MODEL_LIST_MAX_MODELS)
        cap = TELEX_MODEL_LIST_MAX_MODELS;
    if (cap > 0)
        out->items = telex_xcalloc(cap, sizeof *out->items);
    /* The same id twice is rare and lists are short, but an answer of
     * thousands of ids would make the check quadratic: only the last 64
     * entries are compared beyond 512 (providers list each id once). */
    size_t i;
    json_t *m;
    json_array_foreach(data, i, m)
    {
        if (out->n == cap)
            break;
        const char *id = json_string_value(json_object_get(m, "id"));
        if (id == NULL || id[0] == '\0' || strlen(id) > 256)
            continue;
        if (out->n <= 512 ? has_id(out, id)
                          : has_id(&(telex_model_list_t){out->items + out->n - 64, 64}, id))
            continue;
        const char *own = json_string_value(json_object_get(m, "owned_by"));
        int64_t created = 0;
        if (kind == TELEX_PROVIDER_ANTHROPIC)
            created = rfc3339_seconds(json_string_value(json_object_get(m, "created_at")));
        else if (json_is_integer(json_object_get(m, "created")) && json_integer_value(json_object_get(m, "created")) > 0)
            created = json_integer_value(json_object_get(m, "created"));
        telex_model_info_t *info = &out->items[out->n];
        info->id = telex_xstrdup(id);
        info->owned_by = telex_xstrdup(own != NULL && own[0] != '\0' ? own : owner != NULL ? owner : "");
        info->created = created;
        out->n++;
    }
    json_decref(root);
    return 0;
}

/* ------------------------------------------------------------------ fetch */

struct telex_model_list_fetch {
    uv_timer_t timer; /* the deadline, or the report of a call that could not start */
    telex_http_call_t *call;
    const telex_provider_t *provider;
    telex_model_list_cb cb;
    void *user;
    long status;
    char *body;
    size_t len, cap;
    char error[200];
    int reported;
};

static void on_closed(uv_handle_t *h)
{
    telex_model_list_fetch_t *f = h->data;
    free(f->body);
    free(f);
}

static void finish(telex_model_list_fetch_t *f)
{
    if (f->reported)
        return;
    f->reported = 1;
    if (f->call != NULL) {
        telex_http_call_cancel(f->call);
        f->call = NULL;
    }
    uv_timer_stop(&f->timer);
    telex_model_list_t *list = NULL;
    if (f->error[0] == '\0') {
        list = telex_xmalloc(sizeof *list);
        if (telex_model_list_parse(f->provider->kind, f->body, f->len, f->provider->name, list, f->error,
                                   sizeof f->error) != 0) {
            free(list);
            list = NULL;
        }
    }
    f->cb(f->user, list, list != NULL ? NULL : f->error);
    uv_close((uv_handle_t *)&f->timer, on_closed);
}

static void on_response(void *user, long status, const char *content_type, const char *retry_after)
{
    (void)content_type;
    (void)retry_after;
    telex_model_list_fetch_t *f = user;
    f->status = status;
}

static void on_body(void *user, const char *data, size_t len)
{
    telex_model_list_fetch_t *f = user;
    if (f->reported)
        return;
    if (f->status < 200 || f->status >= 300) {
        return; /* an error body: only the status is reported */
    }
    if (len > TELEX_MODEL_LIST_MAX_BYTES - f->len) {
        snprintf(f->error, sizeof f->error, "the provider's model list is larger than %u bytes",
                 TELEX_MODEL_LIST_MAX_BYTES);
        finish(f);
        return;
    }
    if (f->len + len > f->cap) {
        size_t cap = f->cap ? f->cap : 16384;
        while (cap < f->len + len)
            cap *= 2;
        f->body = telex_xrealloc(f->body, cap);
        f->cap = cap;
    }
    memcpy(f->body + f->len, data, len);
    f->len += len;
}

static void on_complete(void *user, const char *error, int timed_out)
{
    telex_model_list_fetch_t *f = user;
    f->call = NULL; /* the client frees it after this callback */
    if (f->reported)
        return;
    if (error != NULL)
        snprintf(f->error, sizeof f->error, "%s%.150s", timed_out ? "connect timed out: " : "cannot reach the provider: ",
                 error);
    else if (f->status < 200 || f->status >= 300)
        snprintf(f->error, sizeof f->error, "the provider answered HTTP %ld", f->status);
    finish(f);
}

static void on_timer(uv_timer_t *t)
{
    telex_model_list_fetch_t *f = t->data;
    if (f->error[0] == '\0')
        snprintf(f->error, sizeof f->error, "no complete answer within the deadline");
    finish(f);
}

/* Writes "Name: prefixvalue" into a new string. */
static char *header(const char *name, const char *prefix, const char *value)
{
    size_t n = strlen(name) + strlen(prefix) + strlen(value) + 3;
    char *h = telex_xmalloc(n);
    snprintf(h, n, "%s: %s%s", name, prefix, value);
    return h;
}

#define MAX_HEADERS 40

telex_model_list_fetch_t *telex_model_list_fetch(uv_loop_t *loop, telex_http_client_t *http,
                                                 const telex_provider_t *provider, long timeout_ms,
                                                 telex_model_list_cb cb, void *user)
{
    if (!telex_model_list_supported(provider) || provider->base_url == NULL)
        return NULL;
    telex_model_list_fetch_t *f = telex_xcalloc(1, sizeof *f);
    f->provider = provider;
    f->cb = cb;
    f->user = user;
    uv_timer_init(loop, &f->timer);
    f->timer.data = f;
    uv_unref((uv_handle_t *)&f->timer); /* a pending list never holds a stopping worker */

    int anthropic = provider->kind == TELEX_PROVIDER_ANTHROPIC;
    char *owned[2 + MAX_HEADERS] = {0}; /* the strings built here, freed below */
    const char *headers[3 + MAX_HEADERS + 1];
    size_t n = 0, n_owned = 0;
    headers[n++] = "Accept: application/json";
    if (provider->api_key != NULL)
        headers[n++] = owned[n_owned++] = anthropic ? header("x-api-key", "", provider->api_key)
                                                    : header("Authorization", "Bearer ", provider->api_key);
    if (anthropic)
        headers[n++] = owned[n_owned++] = header(
            "anthropic-version", "", provider->anthropic_version != NULL ? provider->anthropic_version : "2023-06-01");
    for (size_t i = 0; i < provider->n_headers && i < MAX_HEADERS; i++)
        headers[n++] = owned[n_owned++] = header(provider->headers[i].name, "", provider->headers[i].value);
    headers[n] = NULL;

    size_t ul = strlen(provider->base_url) + 32;
    char *url = telex_xmalloc(ul);
    snprintf(url, ul, "%s%s", provider->base_url, anthropic ? "/v1/models?limit=1000" : "/models");
    telex_http_request_t req = {
        .url = url,
        .headers = headers,
        .connect_timeout_ms = (long)(provider->timeout_seconds * 1000),
        .http2 = (telex_http2_mode_t)provider->http2,
    };
    static const telex_http_call_handlers_t handlers = {on_response, on_body, on_complete};
    f->call = telex_http_call_start(http, &req, &handlers, f); /* reports from the loop, never from here */
    if (f->call == NULL)
        snprintf(f->error, sizeof f->error, "cannot start the request");
    for (size_t i = 0; i < n_owned; i++) {
        explicit_bzero(owned[i], strlen(owned[i])); /* may hold the key */
        free(owned[i]);
    }
    free(url);
    uv_timer_start(&f->timer, on_timer, f->call != NULL ? (uint64_t)(timeout_ms > 0 ? timeout_ms : 1) : 0, 0);
    return f;
}
