/*
 * gateway/metrics.h — Prometheus metrics, counted lock-free from every
 * worker thread, rendered as text for GET /metrics (served by
 * endpoints.c). A plain library: it takes the metrics handle, and the
 * config for its label bounds; it knows nothing of the services or HTTP.
 *
 * Counters are relaxed atomics in series found through a lock-free
 * open-addressing table (a mutex is taken only to add a new series, once
 * per label combination). Label combinations are capped (2048): beyond
 * that, new ones are counted under the label value "_other_", so a client
 * inventing model names cannot grow memory without bound.
 *
 * Families:
 *   telex_requests_total{status,model,provider}          counter
 *   telex_active_streams                                 gauge
 *   telex_time_to_first_token_seconds{model,provider}    histogram
 *   telex_inter_token_latency_seconds{model,provider}    histogram
 *   telex_request_duration_seconds{model,provider}       histogram
 *   telex_tokens_total{model,provider,type}              counter (type: prompt, completion, cached, reasoning)
 *   telex_cost_usd_total{model,provider}                 counter
 *   telex_response_bytes_total{model,provider}           counter
 *   telex_upstream_errors_total{provider,kind}           counter
 *   telex_fallbacks_total{model,provider}                counter (provider: the route that failed)
 *   telex_resumes_total                                  counter
 * and, from the services' ledger and key set (telex_metrics_render_services):
 * telex_ledger_rows_written_total, telex_ledger_rows_dropped_total,
 * telex_ledger_rows_pending, telex_ledger_rows_spilled, telex_api_keys_active.
 *
 * Integration — the relay calls:
 *   telex_metrics_stream_started(m)   when a request takes a stream slot,
 *   telex_metrics_stream_ended(m)     when it gives it back;
 *   telex_metrics_inter_token(m, model, provider, gap_s)   for every chunk
 *                                     after the first (gap since the previous one);
 *                                     a stream looks its series up once with
 *                                     telex_metrics_inter_token_series and then
 *                                     calls telex_metrics_inter_token_in per chunk
 *                                     (gaps of 0 may be added n at a time:
 *                                     telex_metrics_inter_token_zeros);
 *   telex_metrics_upstream_error(m, provider, kind)  for each upstream failure
 *                                     (kind = telex_upstream_failure_name(...));
 *   telex_metrics_fallback(m, model, failed_provider)  when it tries the next route;
 *   telex_metrics_resume(m)           when a client resumes a stream (Last-Event-ID);
 *   telex_metrics_request_done(m, &r) once per request, whatever its status
 *                                     (also 4xx answered by the router), with
 *                                     ttft, duration, tokens, cost and bytes sent.
 * m = telex_services_metrics(svc). All are safe from any thread.
 */
#ifndef TELEX_GATEWAY_METRICS_H
#define TELEX_GATEWAY_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "config/config.h"
#include "util/buf.h"

struct telex_ledger_stats;

typedef struct telex_metrics telex_metrics_t;

typedef struct telex_metrics_request {
    int status;              /* HTTP status sent */
    const char *model;       /* NULL or "" when unknown */
    const char *provider;    /* NULL or "" when no provider was reached */
    double ttft_seconds;     /* < 0: no first token */
    double duration_seconds; /* < 0: not observed */
    uint64_t prompt_tokens;
    uint64_t completion_tokens;
    uint64_t cached_tokens;
    uint64_t reasoning_tokens;
    double cost_usd;
    uint64_t bytes_out;
} telex_metrics_request_t;

/* Never NULL (out of memory aborts: util/alloc.h). */
telex_metrics_t *telex_metrics_new(void);
void telex_metrics_free(telex_metrics_t *m);
/* Model labels are bounded by the configuration: a configured model or
 * preset keeps its name, the first 64 names served through the catch-all
 * keep theirs, anything else is counted as "_other_". Before any hook. */
void telex_metrics_set_config(telex_metrics_t *m, const telex_config_t *cfg);

void telex_metrics_request_done(telex_metrics_t *m, const telex_metrics_request_t *r);
void telex_metrics_stream_started(telex_metrics_t *m);
void telex_metrics_stream_ended(telex_metrics_t *m);
void telex_metrics_inter_token(telex_metrics_t *m, const char *model, const char *provider, double gap_seconds);
/* The inter-token histogram of (model, provider): valid as long as m (series
 * are never removed), so the per-chunk call skips the label lookup. */
typedef struct telex_metrics_hist telex_metrics_hist_t;
telex_metrics_hist_t *telex_metrics_inter_token_series(telex_metrics_t *m, const char *model, const char *provider);
void telex_metrics_inter_token_in(telex_metrics_hist_t *itl, double gap_seconds);
/* The same as n calls of telex_metrics_inter_token_in(itl, 0): chunks that
 * came in one read have no gap, and a flat-out provider sends dozens per
 * read (two atomic adds per read instead of three per chunk). */
void telex_metrics_inter_token_zeros(telex_metrics_hist_t *itl, uint64_t n);
void telex_metrics_upstream_error(telex_metrics_t *m, const char *provider, const char *kind);
void telex_metrics_fallback(telex_metrics_t *m, const char *model, const char *failed_provider);
void telex_metrics_resume(telex_metrics_t *m);

/* Appends the Prometheus text exposition (format 0.0.4) to out. Returns 0,
 * or -1 when out's limit or memory ran out. */
int telex_metrics_render(telex_metrics_t *m, telex_buf_t *out);

/* Appends the services' gauges: the ledger's rows (ledger NULL: none, as
 * without a ledger thread) and the active API keys. Returns 0, or -1 when
 * out's limit or memory ran out. */
int telex_metrics_render_services(telex_buf_t *out, const struct telex_ledger_stats *ledger, size_t api_keys_active);

#endif
