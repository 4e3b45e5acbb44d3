/*
 * gateway/metrics.c — atomic counters in a lock-free series table, and
 * their Prometheus rendering (GET /metrics itself is endpoints.c). See
 * metrics.h.
 *
 * A series is published into its slot with a release store after it is
 * fully built; readers load slots with acquire and never see a half-made
 * series. Series are never removed, so a pointer once read stays valid
 * until telex_metrics_free.
 */
#include "gateway/metrics.h"
#include "cluster/cluster.h"

#include <inttypes.h>
#include <stdarg.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gateway/apierror.h"
#include "http/guard.h"
#include "http/server.h"
#include "store/ledger.h"
#include "stream/log.h"
#include "util/alloc.h"

#define SLOTS 4096
#define MAX_SERIES 2048
#define LABEL_MAX 96
#define OTHER "_other_"
/* Model names that are not configured (served through the catch-all "*"
 * model) keep their own label for the first this many; later ones, and any
 * name a request failed with (an invented name: 404), are counted as OTHER,
 * so clients cannot grow the label set. */
#define CATCH_ALL_LABELS 64

enum kind { K_REQUESTS, K_MP, K_ERRORS, K_FALLBACKS };

static const double ttft_bounds[] = {0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60};
static const double itl_bounds[] = {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5};
static const double dur_bounds[] = {0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300};
#define NB 10

typedef struct telex_metrics_hist {
    _Atomic uint64_t buckets[NB + 1]; /* not cumulative; [NB] = above the last bound */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
} hist_t; /* = telex_metrics_hist_t */

typedef struct series {
    uint8_t kind;
    char labels[3][LABEL_MAX];
    _Atomic uint64_t count; /* requests, errors, fallbacks */
    /* K_MP: */
    hist_t ttft, itl, duration;
    _Atomic uint64_t tokens[4]; /* prompt, completion, cached, reasoning */
    _Atomic uint64_t cost_nusd; /* 1e-9 USD */
    _Atomic uint64_t bytes;
} series_t;

struct telex_metrics {
    _Atomic(series_t *) slots[SLOTS];
    pthread_mutex_t insert_lock;
    size_t n_series;
    series_t *other[4]; /* per kind, for overflow */
    _Atomic int64_t active_streams;
    _Atomic uint64_t resumes;
    const telex_config_t *cfg; /* for model_label; NULL = names as given */
    char *seen[CATCH_ALL_LABELS]; /* names served through the catch-all "*" model */
    size_t n_seen;
};

telex_metrics_t *telex_metrics_new(void)
{
    telex_metrics_t *m = telex_xcalloc(1, sizeof(*m));
    pthread_mutex_init(&m->insert_lock, NULL);
    for (int k = 0; k < 4; k++) {
        m->other[k] = telex_xcalloc(1, sizeof(series_t));
        m->other[k]->kind = (uint8_t)k;
        for (int l = 0; l < 3; l++)
            snprintf(m->other[k]->labels[l], LABEL_MAX, "%s", OTHER);
    }
    return m;
}

void telex_metrics_free(telex_metrics_t *m)
{
    if (m == NULL)
        return;
    for (size_t i = 0; i < SLOTS; i++)
        free(atomic_load(&m->slots[i]));
    for (int k = 0; k < 4; k++)
        free(m->other[k]);
    for (size_t i = 0; i < m->n_seen; i++)
        free(m->seen[i]);
    pthread_mutex_destroy(&m->insert_lock);
    free(m);
}

/* ---- series lookup --------------------------------------------------------- */

static void label_copy(char *dst, const char *src)
{
    src = src ? src : "";
    telex_api_safe_text(dst, LABEL_MAX, src, strlen(src));
}

static uint64_t hash_of(uint8_t kind, char labels[3][LABEL_MAX])
{
    uint64_t h = 1469598103934665603ull ^ kind;
    for (int l = 0; l < 3; l++) {
        for (const char *p = labels[l]; *p; p++)
            h = (h ^ (unsigned char)*p) * 1099511628211ull;
        h = (h ^ 0xff) * 1099511628211ull;
    }
    return h;
}

static bool same(const series_t *s, uint8_t kind, char labels[3][LABEL_MAX])
{
    return s->kind == kind && strcmp(s->labels[0], labels[0]) == 0 && strcmp(s->labels[1], labels[1]) == 0 &&
           strcmp(s->labels[2], labels[2]) == 0;
}

static series_t *series(telex_metrics_t *m, uint8_t kind, const char *a, const char *b, const char *c)
{
    char labels[3][LABEL_MAX];
    label_copy(labels[0], a);
    label_copy(labels[1], b);
    label_copy(labels[2], c);
    uint64_t h = hash_of(kind, labels);
    size_t i = (size_t)(h % SLOTS);
    for (size_t probe = 0; probe < SLOTS; probe++, i = (i + 1) % SLOTS) {
        series_t *s = atomic_load_explicit(&m->slots[i], memory_order_acquire);
        if (s == NULL)
            break;
        if (same(s, kind, labels))
            return s;
    }
    /* not there: add it under the lock (someone may have meanwhile) */
    pthread_mutex_lock(&m->insert_lock);
    series_t *found = NULL;
    i = (size_t)(h % SLOTS);
    for (size_t probe = 0; probe < SLOTS; probe++, i = (i + 1) % SLOTS) {
        series_t *s = atomic_load_explicit(&m->slots[i], memory_order_relaxed);
        if (s == NULL) {
            if (m->n_series >= MAX_SERIES)
                break;
            series_t *n = telex_xcalloc(1, sizeof(*n));
            n->kind = kind;
            memcpy(n->labels, labels, sizeof labels);
            atomic_store_explicit(&m->slots[i], n, memory_order_release);
            m->n_series++;
            found = n;
            break;
        }
        if (same(s, kind, labels)) {
            found = s;
            break;
        }
    }
    pthread_mutex_unlock(&m->insert_lock);
    return found != NULL ? found : m->other[kind];
}

static void observe(hist_t *h, const double *bounds, double seconds)
{
    if (!(seconds >= 0))
        return;
    int b = 0;
    while (b < NB && seconds > bounds[b])
        b++;
    atomic_fetch_add_explicit(&h->buckets[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
    double us = seconds * 1e6;
    atomic_fetch_add_explicit(&h->sum_us, us < 1.8e19 ? (uint64_t)us : UINT64_MAX / 2, memory_order_relaxed);
}

static const char *or_none(const char *s)
{
    return s != NULL && *s ? s : "none";
}

void telex_metrics_set_config(telex_metrics_t *m, const telex_config_t *cfg)
{
    m->cfg = cfg;
}

/* The label for a model name a client sent (see CATCH_ALL_LABELS). */
static const char *model_label(telex_metrics_t *m, const char *model, bool served)
{
    if (model == NULL || *model == '\0' || m->cfg == NULL)
        return model;
    const telex_config_t *cfg = m->cfg;
    for (size_t i = 0; i < cfg->n_models; i++)
        if (strcmp(cfg->models[i].name, "*") != 0 && strcmp(cfg->models[i].name, model) == 0)
            return model;
    if (strncmp(model, "preset:", 7) == 0)
        for (size_t i = 0; i < cfg->n_presets; i++)
            if (strcmp(cfg->presets[i].name, model + 7) == 0)
                return model;
    const char *label = OTHER;
    pthread_mutex_lock(&m->insert_lock);
    size_t i;
    for (i = 0; i < m->n_seen; i++)
        if (strcmp(m->seen[i], model) == 0)
            break;
    if (i < m->n_seen)
        label = m->seen[i];
    else if (served && cfg->catch_all != NULL && m->n_seen < CATCH_ALL_LABELS) {
        m->seen[m->n_seen] = telex_xstrndup(model, LABEL_MAX - 1);
        label = m->seen[m->n_seen++];
    }
    pthread_mutex_unlock(&m->insert_lock);
    return label;
}

/* ---- hooks ------------------------------------------------------------------ */

void telex_metrics_request_done(telex_metrics_t *m, const telex_metrics_request_t *r)
{
    char status[8];
    snprintf(status, sizeof status, "%d", r->status >= 100 && r->status <= 999 ? r->status : 0);
    const char *model = model_label(m, r->model, r->status < 400);
    series_t *rs = series(m, K_REQUESTS, status, or_none(model), or_none(r->provider));
    atomic_fetch_add_explicit(&rs->count, 1, memory_order_relaxed);
    series_t *s = series(m, K_MP, or_none(model), or_none(r->provider), "");
    if (r->ttft_seconds >= 0)
        observe(&s->ttft, ttft_bounds, r->ttft_seconds);
    if (r->duration_seconds >= 0)
        observe(&s->duration, dur_bounds, r->duration_seconds);
    uint64_t t[4] = {r->prompt_tokens, r->completion_tokens, r->cached_tokens, r->reasoning_tokens};
    for (int i = 0; i < 4; i++)
        if (t[i])
            atomic_fetch_add_explicit(&s->tokens[i], t[i], memory_order_relaxed);
    if (r->cost_usd > 0)
        atomic_fetch_add_explicit(&s->cost_nusd, (uint64_t)llround(r->cost_usd * 1e9), memory_order_relaxed);
    if (r->bytes_out)
        atomic_fetch_add_explicit(&s->bytes, r->bytes_out, memory_order_relaxed);
}

void telex_metrics_stream_started(telex_metrics_t *m)
{
    atomic_fetch_add_explicit(&m->active_streams, 1, memory_order_relaxed);
}

void telex_metrics_stream_ended(telex_metrics_t *m)
{
    atomic_fetch_sub_explicit(&m->active_streams, 1, memory_order_relaxed);
}

telex_metrics_hist_t *telex_metrics_inter_token_series(telex_metrics_t *m, const char *model, const char *provider)
{
    return &series(m, K_MP, or_none(model_label(m, model, true)), or_none(provider), "")->itl;
}

void telex_metrics_inter_token_in(telex_metrics_hist_t *itl, double gap_seconds)
{
    observe(itl, itl_bounds, gap_seconds);
}

void telex_metrics_inter_token_zeros(telex_metrics_hist_t *itl, uint64_t n)
{
    /* what n calls of observe(itl, itl_bounds, 0) add: the first bucket, the count, nothing to the sum */
    atomic_fetch_add_explicit(&itl->buckets[0], n, memory_order_relaxed);
    atomic_fetch_add_explicit(&itl->count, n, memory_order_relaxed);
}

void telex_metrics_inter_token(telex_metrics_t *m, const char *model, const char *provider, double gap_seconds)
{
    telex_metrics_inter_token_in(telex_metrics_inter_token_series(m, model, provider), gap_seconds);
}

void telex_metrics_upstream_error(telex_metrics_t *m, const char *provider, const char *kind)
{
    atomic_fetch_add_explicit(&series(m, K_ERRORS, or_none(provider), or_none(kind), "")->count, 1,
                              memory_order_relaxed);
}

void telex_metrics_fallback(telex_metrics_t *m, const char *model, const char *failed_provider)
{
    atomic_fetch_add_explicit(&series(m, K_FALLBACKS, or_none(model_label(m, model, true)), or_none(failed_provider), "")->count, 1,
                              memory_order_relaxed);
}

void telex_metrics_resume(telex_metrics_t *m)
{
    atomic_fetch_add_explicit(&m->resumes, 1, memory_order_relaxed);
}

/* ---- rendering ------------------------------------------------------------------- */

typedef struct out {
    telex_buf_t *b;
    int failed;
} out_t;

static void put(out_t *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(out_t *o, const char *fmt, ...)
{
    if (o->failed)
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof line || telex_buf_append(o->b, line, (size_t)n) != 0)
        o->failed = 1;
}

/* A label value escaped for the exposition format: \ " and newline. */
static const char *esc(char *buf, const char *s)
{
    size_t o = 0;
    for (; *s && o + 3 < LABEL_MAX * 2; s++) {
        if (*s == '\\' || *s == '"') {
            buf[o++] = '\\';
            buf[o++] = *s;
        } else if (*s == '\n') {
            buf[o++] = '\\';
            buf[o++] = 'n';
        } else {
            buf[o++] = *s;
        }
    }
    buf[o] = '\0';
    return buf;
}

typedef void (*emit_fn)(out_t *o, const series_t *s, const char *labels);

static void each(telex_metrics_t *m, out_t *o, uint8_t kind, const char *const names[3], emit_fn emit)
{
    for (size_t pass = 0; pass <= SLOTS; pass++) {
        const series_t *s = pass < SLOTS ? atomic_load_explicit(&m->slots[pass], memory_order_acquire)
                                         : m->other[kind];
        if (s == NULL || s->kind != kind)
            continue;
        if (pass == SLOTS && atomic_load(&s->count) == 0 && atomic_load(&s->ttft.count) == 0 &&
            atomic_load(&s->duration.count) == 0 && atomic_load(&s->itl.count) == 0)
            continue; /* the overflow series only when used */
        char labels[3 * (LABEL_MAX * 2 + 32)], e[LABEL_MAX * 2];
        size_t n = 0;
        labels[0] = '\0';
        for (int l = 0; l < 3 && names[l] != NULL; l++)
            n += (size_t)snprintf(labels + n, sizeof labels - n, "%s%s=\"%s\"", l ? "," : "", names[l],
                                  esc(e, s->labels[l]));
        emit(o, s, labels);
    }
}

static void emit_count(out_t *o, const series_t *s, const char *labels, const char *name)
{
    put(o, "%s{%s} %" PRIu64 "\n", name, labels, atomic_load_explicit(&s->count, memory_order_relaxed));
}

static void emit_requests(out_t *o, const series_t *s, const char *labels)
{
    emit_count(o, s, labels, "telex_requests_total");
}

static void emit_errors(out_t *o, const series_t *s, const char *labels)
{
    emit_count(o, s, labels, "telex_upstream_errors_total");
}

static void emit_fallbacks(out_t *o, const series_t *s, const char *labels)
{
    emit_count(o, s, labels, "telex_fallbacks_total");
}

static void emit_hist(out_t *o, const hist_t *h, const double *bounds, const char *name, const char *labels)
{
    uint64_t count = atomic_load_explicit(&h->count, memory_order_relaxed);
    if (count == 0)
        return;
    uint64_t cum = 0;
    for (int b = 0; b <= NB; b++) {
        cum += atomic_load_explicit(&h->buckets[b], memory_order_relaxed);
        if (b < NB)
            put(o, "%s_bucket{%s,le=\"%g\"} %" PRIu64 "\n", name, labels, bounds[b], cum);
        else
            put(o, "%s_bucket{%s,le=\"+Inf\"} %" PRIu64 "\n", name, labels, cum);
    }
    put(o, "%s_sum{%s} %.6f\n", name, labels, (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
    put(o, "%s_count{%s} %" PRIu64 "\n", name, labels, cum);
}

static void emit_ttft(out_t *o, const series_t *s, const char *labels)
{
    emit_hist(o, &s->ttft, ttft_bounds, "telex_time_to_first_token_seconds", labels);
}

static void emit_itl(out_t *o, const series_t *s, const char *labels)
{
    emit_hist(o, &s->itl, itl_bounds, "telex_inter_token_latency_seconds", labels);
}

static void emit_duration(out_t *o, const series_t *s, const char *labels)
{
    emit_hist(o, &s->duration, dur_bounds, "telex_request_duration_seconds", labels);
}

static void emit_tokens(out_t *o, const series_t *s, const char *labels)
{
    static const char *const types[4] = {"prompt", "completion", "cached", "reasoning"};
    for (int i = 0; i < 4; i++) {
        uint64_t v = atomic_load_explicit(&s->tokens[i], memory_order_relaxed);
        if (v)
            put(o, "telex_tokens_total{%s,type=\"%s\"} %" PRIu64 "\n", labels, types[i], v);
    }
}

static void emit_cost(out_t *o, const series_t *s, const char *labels)
{
    uint64_t v = atomic_load_explicit(&s->cost_nusd, memory_order_relaxed);
    if (v)
        put(o, "telex_cost_usd_total{%s} %.9f\n", labels, (double)v / 1e9);
}

static void emit_bytes(out_t *o, const series_t *s, const char *labels)
{
    uint64_t v = atomic_load_explicit(&s->bytes, memory_order_relaxed);
    if (v)
        put(o, "telex_response_bytes_total{%s} %" PRIu64 "\n", labels, v);
}

int telex_metrics_render(telex_metrics_t *m, telex_buf_t *b)
{
    static const char *const req_names[3] = {"status", "model", "provider"};
    static const char *const mp_names[3] = {"model", "provider", NULL};
    static const char *const err_names[3] = {"provider", "kind", NULL};
    static const struct {
        const char *name, *type, *help;
        uint8_t kind;
        const char *const *labels;
        emit_fn emit;
    } families[] = {
        {"telex_requests_total", "counter", "Requests answered, by HTTP status, model and provider.", K_REQUESTS,
         req_names, emit_requests},
        {"telex_time_to_first_token_seconds", "histogram", "Time from the request to the first upstream chunk.",
         K_MP, mp_names, emit_ttft},
        {"telex_inter_token_latency_seconds", "histogram", "Time between consecutive chunks of a stream.", K_MP,
         mp_names, emit_itl},
        {"telex_request_duration_seconds", "histogram", "Time from the request to its end.", K_MP, mp_names,
         emit_duration},
        {"telex_tokens_total", "counter", "Tokens counted (the provider's usage, else telex's estimate).", K_MP,
         mp_names, emit_tokens},
        {"telex_cost_usd_total", "counter", "Cost in US dollars at the configured prices.", K_MP, mp_names,
         emit_cost},
        {"telex_response_bytes_total", "counter", "Bytes sent to clients.", K_MP, mp_names, emit_bytes},
        {"telex_upstream_errors_total", "counter", "Upstream failures, by provider and kind.", K_ERRORS, err_names,
         emit_errors},
        {"telex_fallbacks_total", "counter", "Fallbacks to a model's next route, by the route that failed.",
         K_FALLBACKS, mp_names, emit_fallbacks},
    };
    out_t o = {b, 0};
    put(&o, "# HELP telex_active_streams Upstream requests running now.\n# TYPE telex_active_streams gauge\n");
    put(&o, "telex_active_streams %" PRId64 "\n", atomic_load_explicit(&m->active_streams, memory_order_relaxed));
    put(&o, "# HELP telex_stream_log_bytes Bytes all stream logs hold (resume.max_total_bytes bounds it).\n"
            "# TYPE telex_stream_log_bytes gauge\ntelex_stream_log_bytes %zu\n",
        telex_log_total_bytes());
    put(&o, "# HELP telex_resumes_total Streams resumed by a client (Last-Event-ID).\n"
            "# TYPE telex_resumes_total counter\n");
    put(&o, "telex_resumes_total %" PRIu64 "\n", atomic_load_explicit(&m->resumes, memory_order_relaxed));
    put(&o, "# HELP telex_connections_open Client connections open now.\n# TYPE telex_connections_open gauge\n"
            "telex_connections_open %zu\n",
        telex_server_connections());
    put(&o, "# HELP telex_request_body_bytes_in_flight Request bodies being received now (limits.max_buffered_body_bytes).\n"
            "# TYPE telex_request_body_bytes_in_flight gauge\ntelex_request_body_bytes_in_flight %" PRIu64 "\n",
        telex_guard_bodies_bytes());
    put(&o, "# HELP telex_guard_refusals_total Requests refused before their body was read, and connections closed "
            "by the per-client limits or the header timeout.\n# TYPE telex_guard_refusals_total counter\n"
            "telex_guard_refusals_total %" PRIu64 "\n",
        telex_guard_refused());
    if (telex_cluster_enabled()) /* cluster mode (src/cluster) */
        put(&o,
            "# HELP telex_cluster_redis_up 1 while the node's Redis connection is up (0: local-only, see docs).\n"
            "# TYPE telex_cluster_redis_up gauge\ntelex_cluster_redis_up %d\n"
            "# HELP telex_cluster_events_published_total Stream events appended to Redis.\n"
            "# TYPE telex_cluster_events_published_total counter\ntelex_cluster_events_published_total %" PRIu64 "\n"
            "# HELP telex_cluster_mirrors_total Streams of other nodes mirrored here for a reader.\n"
            "# TYPE telex_cluster_mirrors_total counter\ntelex_cluster_mirrors_total %" PRIu64 "\n"
            "# HELP telex_cluster_registrations_failed_total Streams handed to their client before Redis "
            "acknowledged them (Redis down or slower than its timeout).\n"
            "# TYPE telex_cluster_registrations_failed_total counter\ntelex_cluster_registrations_failed_total %" PRIu64
            "\n",
            telex_cluster_redis_up(), telex_cluster_events_published(), telex_cluster_mirrors_built(),
            telex_cluster_registrations_failed());
    if (telex_cluster_enabled())
        put(&o,
            "# HELP telex_cluster_lookup_waits_refused_total Requests for a stream id Redis did not know that were "
            "answered at once as unknown, without waiting for its registration: their client address had the most "
            "such waits pending.\n"
            "# TYPE telex_cluster_lookup_waits_refused_total counter\ntelex_cluster_lookup_waits_refused_total %" PRIu64
            "\n",
            telex_cluster_lookup_waits_refused());
    for (size_t f = 0; f < sizeof families / sizeof families[0]; f++) {
        put(&o, "# HELP %s %s\n# TYPE %s %s\n", families[f].name, families[f].help, families[f].name,
            families[f].type);
        each(m, &o, families[f].kind, families[f].labels, families[f].emit);
    }
    return o.failed ? -1 : 0;
}

int telex_metrics_render_services(telex_buf_t *b, const telex_ledger_stats_t *ledger, size_t api_keys_active)
{
    out_t o = {b, 0};
    if (ledger != NULL) {
        put(&o, "# HELP telex_ledger_rows_written_total Usage rows committed to the database.\n"
                "# TYPE telex_ledger_rows_written_total counter\ntelex_ledger_rows_written_total %" PRIu64 "\n",
            ledger->written);
        put(&o, "# HELP telex_ledger_rows_dropped_total Usage rows lost because the ledger queue was full.\n"
                "# TYPE telex_ledger_rows_dropped_total counter\ntelex_ledger_rows_dropped_total %" PRIu64 "\n",
            ledger->dropped);
        put(&o, "# HELP telex_ledger_rows_pending Usage rows waiting to be written.\n"
                "# TYPE telex_ledger_rows_pending gauge\ntelex_ledger_rows_pending %" PRIu64 "\n",
            ledger->pending);
        put(&o, "# HELP telex_ledger_rows_spilled Usage rows waiting in the spill file for the database.\n"
                "# TYPE telex_ledger_rows_spilled gauge\ntelex_ledger_rows_spilled %" PRIu64 "\n",
            ledger->spilled);
    }
    put(&o, "# HELP telex_api_keys_active API keys not revoked.\n# TYPE telex_api_keys_active gauge\n"
            "telex_api_keys_active %zu\n",
        api_keys_active);
    return o.failed ? -1 : 0;
}
