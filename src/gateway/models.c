/*
 * gateway/models.c — GET /v1/models: configured models merged with the
 * lists of the providers the catch-all reaches, cached. See models.h.
 *
 * Shape: one telex_models_t per process and configuration (the sources — providers of "*"
 * routes that can list their models — with their last good list, and the
 * merged answer's text, all behind one mutex that is never held across
 * I/O), and one telex_models_worker_t per worker (its fetches in flight and
 * the requests waiting for them). A request waits only for a source that
 * has never answered and is not in its retry pause; everything else is
 * answered from the cached text at once.
 */
#include "gateway/models.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "gateway/apierror.h"
#include "gateway/access_log.h"
#include "gateway/auth.h"
#include "gateway/gateway.h"
#include "gateway/off_loop.h"
#include "http/respond.h"
#include "util/alloc.h"
#include "util/json_load.h"
#include "util/log.h"

typedef struct source {
    const telex_provider_t *provider;
    telex_model_list_t list; /* the last good answer */
    int have_list;
    uint64_t fetched_ms;     /* when list was fetched */
    int failed;              /* the last fetch failed ... */
    uint64_t failed_ms;      /* ... then */
} source_t;

typedef struct telex_models {
    pthread_mutex_t lock;
    const telex_config_t *cfg;
    source_t *sources;
    size_t n_sources;
    char *text; /* the answer, rebuilt when a list changes */
    size_t len;
    struct telex_models *next; /* the process's other caches (one per configuration) */
} telex_models_t;

typedef struct waiter {
    h2o_linklist_t link; /* in waiters, until answered or gone */
    struct telex_models_worker *mw;
    h2o_req_t *req;
    uint64_t started_ns;
} waiter_t;

typedef struct fetch_ref {
    struct telex_models_worker *mw;
    size_t source;
    uint64_t started_ms;
} fetch_ref_t;

struct telex_models_worker {
    telex_models_t *shared;
    gateway_worker_t *gw;
    telex_model_list_fetch_t **fetching; /* per source: this worker's fetch in flight */
    size_t n_fetching;
    h2o_linklist_t waiters; /* of waiter_t.link, newest first */
};

static uint64_t now_ms(void)
{
    return uv_hrtime() / 1000000;
}

/* ------------------------------------------------------------ rendering */

static int append_model(json_t *data, json_t *seen, const char *id, json_int_t created, const char *owner)
{
    if (json_object_get(seen, id) != NULL)
        return 0;
    json_t *m = json_pack("{s:s,s:s,s:I,s:s}", "id", id, "object", "model", "created", created, "owned_by", owner);
    if (m == NULL || json_array_append_new(data, m) != 0 || json_object_set_new(seen, id, json_true()) != 0)
        return -1;
    return 0;
}

char *telex_models_render(const telex_config_t *cfg, const telex_model_list_t *const *lists, size_t n_lists,
                          size_t *len)
{
    json_t *data = json_array(), *seen = json_object();
    int bad = data == NULL || seen == NULL;
    for (size_t i = 0; !bad && i < cfg->n_models; i++) {
        const telex_model_t *m = &cfg->models[i];
        if (!m->catch_all)
            bad = append_model(data, seen, m->name, 0, m->routes[0].provider->name) != 0;
    }
    for (size_t l = 0; !bad && l < n_lists; l++)
        for (size_t i = 0; !bad && lists[l] != NULL && i < lists[l]->n; i++)
            bad = append_model(data, seen, lists[l]->items[i].id, (json_int_t)lists[l]->items[i].created,
                               lists[l]->items[i].owned_by) != 0;
    json_decref(seen);
    json_t *root = bad ? NULL : json_pack("{s:s,s:o}", "object", "list", "data", data);
    if (root == NULL) {
        if (!bad)
            return NULL; /* json_pack released data */
        json_decref(data);
        return NULL;
    }
    char *text = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(root);
    if (text != NULL)
        *len = strlen(text);
    return text;
}

/* Rebuilds the answer's text from the sources. Under the lock. */
static void rebuild(telex_models_t *s)
{
    const telex_model_list_t *lists[64];
    size_t n = 0;
    for (size_t i = 0; i < s->n_sources && n < 64; i++)
        if (s->sources[i].have_list)
            lists[n++] = &s->sources[i].list;
    size_t len = 0;
    char *text = telex_models_render(s->cfg, lists, n, &len);
    if (text == NULL)
        return; /* a name jansson refused (models.h): the previous answer stays */
    free(s->text);
    s->text = text;
    s->len = len;
}

/* ----------------------------------------------------- the shared cache */

static int is_source(const telex_config_t *cfg, size_t r)
{
    const telex_route_t *route = &cfg->catch_all->routes[r];
    if (route->model != NULL || !telex_model_list_supported(route->provider))
        return 0; /* its own model: it sends every name as that one model; or a kind with no list */
    for (size_t k = 0; k < r; k++)
        if (cfg->catch_all->routes[k].provider == route->provider && cfg->catch_all->routes[k].model == NULL)
            return 0; /* listed once */
    return 1;
}

static telex_models_t *shared_new(const telex_config_t *cfg)
{
    telex_models_t *s = telex_xcalloc(1, sizeof *s);
    pthread_mutex_init(&s->lock, NULL);
    s->cfg = cfg;
    size_t n = cfg->catch_all != NULL ? cfg->catch_all->n_routes : 0;
    if (n > 0)
        s->sources = telex_xcalloc(n, sizeof *s->sources);
    for (size_t r = 0; r < n; r++)
        if (is_source(cfg, r))
            s->sources[s->n_sources++].provider = cfg->catch_all->routes[r].provider;
    rebuild(s);
    if (s->text == NULL) {
        free(s->sources);
        free(s);
        return NULL;
    }
    return s;
}

/* The caches of the process, one per configuration (a process serves one;
 * unit tests may load several). Reachable from here until exit: the workers
 * are abandoned at exit, not torn down (http/server.c), and so is this. */
static pthread_mutex_t create_lock = PTHREAD_MUTEX_INITIALIZER;
static telex_models_t *caches;

telex_models_worker_t *telex_models_worker_new(gateway_worker_t *gw)
{
    const telex_config_t *cfg = gw->gateway->config;
    pthread_mutex_lock(&create_lock);
    telex_models_t *s = caches;
    while (s != NULL && s->cfg != cfg)
        s = s->next;
    if (s == NULL && (s = shared_new(cfg)) != NULL) {
        s->next = caches;
        caches = s;
    }
    pthread_mutex_unlock(&create_lock);
    if (s == NULL)
        return NULL;
    telex_models_worker_t *mw = telex_xcalloc(1, sizeof *mw);
    mw->shared = s;
    mw->gw = gw;
    mw->n_fetching = s->n_sources;
    h2o_linklist_init_anchor(&mw->waiters);
    if (s->n_sources > 0)
        mw->fetching = telex_xcalloc(s->n_sources, sizeof *mw->fetching);
    return mw;
}

/* --------------------------------------------------------------- answers */

/* The OpenAI list text as Anthropic's model list (for a caller that sends
 * anthropic-version: Anthropic's SDKs and Claude Code); malloc'ed, or NULL. */
static char *anthropic_list(const char *text, size_t len, size_t *out_len)
{
    json_t *list = telex_json_loadb(text, len, 0, NULL);
    json_t *data = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(json_object_get(list, "data"), i, m)
    {
        time_t created = (time_t)json_integer_value(json_object_get(m, "created"));
        struct tm tm;
        char when[32];
        gmtime_r(&created, &tm);
        strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", &tm);
        json_t *id = json_object_get(m, "id");
        json_array_append_new(data, json_pack("{s:s,s:O,s:O,s:s}", "type", "model", "id", id, "display_name", id,
                                              "created_at", when));
    }
    size_t n = json_array_size(data);
    json_t *root = json_pack("{s:o,s:b,s:O,s:O}", "data", data, "has_more", 0, "first_id",
                             n ? json_object_get(json_array_get(data, 0), "id") : json_null(), "last_id",
                             n ? json_object_get(json_array_get(data, n - 1), "id") : json_null());
    json_decref(list);
    char *out = root != NULL ? json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(root);
    if (out != NULL)
        *out_len = strlen(out);
    return out;
}

static void respond(telex_models_worker_t *mw, h2o_req_t *req)
{
    telex_models_t *s = mw->shared;
    pthread_mutex_lock(&s->lock);
    char *copy = telex_xmalloc(s->len + 1);
    size_t len = s->len;
    memcpy(copy, s->text, len + 1);
    pthread_mutex_unlock(&s->lock);
    if (telex_req_header(req, "anthropic-version").base != NULL) {
        size_t alen = 0;
        char *a = anthropic_list(copy, len, &alen);
        if (a != NULL) {
            free(copy);
            copy = a;
            len = alen;
        }
    }
    telex_respond(req, 200, "application/json", copy, len);
    free(copy);
}

static void unlink_waiter(waiter_t *w)
{
    if (h2o_linklist_is_linked(&w->link))
        h2o_linklist_unlink(&w->link);
}

static void on_waiter_disposed(void *p)
{
    unlink_waiter(p); /* the client left before its answer */
}

static void answer_waiters(telex_models_worker_t *mw)
{
    while (!h2o_linklist_is_empty(&mw->waiters)) {
        /* lives in the request's pool: read it before answering */
        waiter_t *w = H2O_STRUCT_FROM_MEMBER(waiter_t, link, mw->waiters.next);
        h2o_req_t *req = w->req;
        uint64_t started_ns = w->started_ns;
        unlink_waiter(w);
        respond(mw, req);
        telex_access_log(req, NULL, started_ns);
    }
}

static size_t in_flight(const telex_models_worker_t *mw)
{
    size_t n = 0;
    for (size_t i = 0; i < mw->n_fetching; i++)
        n += mw->fetching[i] != NULL;
    return n;
}

static void log_fetch(const telex_provider_t *p, const telex_model_list_t *list, const char *error, uint64_t ms)
{
    json_t *line = error != NULL
                       ? json_pack("{s:s,s:s,s:s,s:s}", "level", "warn", "msg", "models fetch failed", "provider",
                                   p->name, "error", error)
                       : json_pack("{s:s,s:s,s:s,s:I,s:I}", "level", "info", "msg", "models fetched", "provider",
                                   p->name, "models", (json_int_t)list->n, "ms", (json_int_t)ms);
    if (line != NULL)
        telex_log_json(line);
}

static void on_fetched(void *user, telex_model_list_t *list, const char *error)
{
    fetch_ref_t *ref = user;
    telex_models_worker_t *mw = ref->mw;
    telex_models_t *s = mw->shared;
    source_t *src = &s->sources[ref->source];
    mw->fetching[ref->source] = NULL;
    log_fetch(src->provider, list, error, now_ms() - ref->started_ms);
    pthread_mutex_lock(&s->lock);
    if (list != NULL) {
        telex_model_list_t old = src->list;
        src->list = *list;
        src->have_list = 1;
        src->fetched_ms = now_ms();
        src->failed = 0;
        rebuild(s);
        telex_model_list_free(&old);
    } else {
        src->failed = 1;
        src->failed_ms = now_ms();
    }
    pthread_mutex_unlock(&s->lock);
    free(list);
    free(ref);
    if (in_flight(mw) == 0)
        answer_waiters(mw);
}

static void start_fetch(telex_models_worker_t *mw, size_t i)
{
    telex_models_t *s = mw->shared;
    fetch_ref_t *ref = telex_xmalloc(sizeof *ref);
    *ref = (fetch_ref_t){.mw = mw, .source = i, .started_ms = now_ms()};
    gateway_worker_t *gw = mw->gw;
    mw->fetching[i] = telex_model_list_fetch(&gw->worker->loop, gw->http, s->sources[i].provider,
                                             TELEX_MODELS_FETCH_TIMEOUT_MS, on_fetched, ref);
    if (mw->fetching[i] == NULL) {
        free(ref);
        log_fetch(s->sources[i].provider, NULL, "cannot start the request", 0);
        pthread_mutex_lock(&s->lock);
        s->sources[i].failed = 1;
        s->sources[i].failed_ms = now_ms();
        pthread_mutex_unlock(&s->lock);
    }
}

int telex_models_handle(telex_models_worker_t *mw, h2o_req_t *req, uint64_t started_ns)
{
    /* Once a key exists every request needs one (docs/configuration.md),
     * this one too, as OpenAI's; an Anthropic client sends x-api-key. */
    char bearer[256];
    h2o_iovec_t authz = telex_anthropic_authorization(req, bearer, sizeof bearer);
    telex_grant_t grant;
    telex_api_error_t denial;
    if (telex_auth_authenticate(mw->gw->gateway->services, authz.base, authz.len, &grant, &denial) != 0) {
        telex_api_error_respond(req, &denial);
        return TELEX_HANDLED;
    }
    telex_models_t *s = mw->shared;
    int wait = 0;
    if (!mw->gw->shutting_down) {
        uint64_t now = now_ms();
        char start[64] = {0};
        size_t n = s->n_sources < 64 ? s->n_sources : 64;
        pthread_mutex_lock(&s->lock);
        for (size_t i = 0; i < n; i++) {
            const source_t *src = &s->sources[i];
            int fresh = src->have_list && now - src->fetched_ms < TELEX_MODELS_TTL_MS;
            int pausing = src->failed && now - src->failed_ms < TELEX_MODELS_RETRY_MS;
            if (fresh || pausing)
                continue;
            start[i] = mw->fetching[i] == NULL;
            wait |= !src->have_list; /* never answered: worth waiting for */
        }
        pthread_mutex_unlock(&s->lock);
        for (size_t i = 0; i < n; i++)
            if (start[i])
                start_fetch(mw, i);
        wait = wait && in_flight(mw) > 0;
    }
    if (!wait) {
        respond(mw, req);
        return TELEX_HANDLED;
    }
    waiter_t *w = h2o_mem_alloc_shared(&req->pool, sizeof *w, on_waiter_disposed);
    *w = (waiter_t){.mw = mw, .req = req, .started_ns = started_ns};
    h2o_linklist_insert(mw->waiters.next, &w->link); /* first */
    return TELEX_DEFERRED;
}

void telex_models_worker_shutdown(telex_models_worker_t *mw)
{
    if (mw != NULL)
        answer_waiters(mw);
}
