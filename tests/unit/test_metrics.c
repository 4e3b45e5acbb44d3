/*
 * tests/unit/test_metrics.c — the Prometheus text a scraper reads after
 * known traffic: every family with HELP/TYPE, label escaping, cumulative
 * histogram buckets, the cardinality cap, and exact counts when many
 * threads count at once.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "gateway/metrics.h"

static char *render(telex_metrics_t *m)
{
    telex_buf_t b = {.limit = 64u << 20};
    assert_int_equal(telex_metrics_render(m, &b), 0);
    return b.data;
}

static void has(const char *text, const char *line)
{
    if (strstr(text, line) == NULL)
        fail_msg("missing line: %s\n--- in ---\n%s", line, text);
}

static void test_families_after_traffic(void **state)
{
    (void)state;
    telex_metrics_t *m = telex_metrics_new();
    telex_metrics_stream_started(m);
    telex_metrics_stream_started(m);
    telex_metrics_stream_ended(m);
    telex_metrics_request_done(m, &(telex_metrics_request_t){.status = 200, .model = "gpt-4o", .provider = "openai",
                                                             .ttft_seconds = 0.3, .duration_seconds = 2.0,
                                                             .prompt_tokens = 100, .completion_tokens = 50,
                                                             .cached_tokens = 20, .reasoning_tokens = 10,
                                                             .cost_usd = 0.00125, .bytes_out = 4096});
    telex_metrics_request_done(m, &(telex_metrics_request_t){.status = 200, .model = "gpt-4o", .provider = "openai",
                                                             .ttft_seconds = 0.04, .duration_seconds = 0.05,
                                                             .prompt_tokens = 1, .completion_tokens = 1,
                                                             .cost_usd = 0.00000125, .bytes_out = 10});
    telex_metrics_request_done(m, &(telex_metrics_request_t){.status = 401, .ttft_seconds = -1,
                                                             .duration_seconds = 0.001});
    telex_metrics_inter_token(m, "gpt-4o", "openai", 0.02);
    /* a stream's handle, looked up once, counts into the same series */
    telex_metrics_hist_t *itl = telex_metrics_inter_token_series(m, "gpt-4o", "openai");
    assert_ptr_equal(itl, telex_metrics_inter_token_series(m, "gpt-4o", "openai"));
    telex_metrics_inter_token_in(itl, 0.02);
    telex_metrics_inter_token_in(itl, 7);
    telex_metrics_upstream_error(m, "openai", "timeout");
    telex_metrics_upstream_error(m, "openai", "timeout");
    telex_metrics_fallback(m, "gpt-4o", "openai");
    telex_metrics_resume(m);
    char *t = render(m);
    has(t, "# TYPE telex_active_streams gauge\ntelex_active_streams 1\n");
    has(t, "# TYPE telex_resumes_total counter\ntelex_resumes_total 1\n");
    has(t, "# HELP telex_requests_total Requests answered, by HTTP status, model and provider.\n"
           "# TYPE telex_requests_total counter\n");
    has(t, "telex_requests_total{status=\"200\",model=\"gpt-4o\",provider=\"openai\"} 2\n");
    has(t, "telex_requests_total{status=\"401\",model=\"none\",provider=\"none\"} 1\n");
    has(t, "# TYPE telex_time_to_first_token_seconds histogram\n");
    has(t, "telex_time_to_first_token_seconds_bucket{model=\"gpt-4o\",provider=\"openai\",le=\"0.05\"} 1\n");
    has(t, "telex_time_to_first_token_seconds_bucket{model=\"gpt-4o\",provider=\"openai\",le=\"0.25\"} 1\n");
    has(t, "telex_time_to_first_token_seconds_bucket{model=\"gpt-4o\",provider=\"openai\",le=\"0.5\"} 2\n");
    has(t, "telex_time_to_first_token_seconds_bucket{model=\"gpt-4o\",provider=\"openai\",le=\"+Inf\"} 2\n");
    has(t, "telex_time_to_first_token_seconds_sum{model=\"gpt-4o\",provider=\"openai\"} 0.340000\n");
    has(t, "telex_time_to_first_token_seconds_count{model=\"gpt-4o\",provider=\"openai\"} 2\n");
    has(t, "telex_inter_token_latency_seconds_bucket{model=\"gpt-4o\",provider=\"openai\",le=\"0.025\"} 2\n");
    has(t, "telex_inter_token_latency_seconds_bucket{model=\"gpt-4o\",provider=\"openai\",le=\"5\"} 2\n");
    has(t, "telex_inter_token_latency_seconds_bucket{model=\"gpt-4o\",provider=\"openai\",le=\"+Inf\"} 3\n");
    has(t, "telex_request_duration_seconds_count{model=\"none\",provider=\"none\"} 1\n");
    has(t, "telex_tokens_total{model=\"gpt-4o\",provider=\"openai\",type=\"prompt\"} 101\n");
    has(t, "telex_tokens_total{model=\"gpt-4o\",provider=\"openai\",type=\"completion\"} 51\n");
    has(t, "telex_tokens_total{model=\"gpt-4o\",provider=\"openai\",type=\"cached\"} 20\n");
    has(t, "telex_tokens_total{model=\"gpt-4o\",provider=\"openai\",type=\"reasoning\"} 10\n");
    has(t, "telex_cost_usd_total{model=\"gpt-4o\",provider=\"openai\"} 0.001251250\n");
    has(t, "telex_response_bytes_total{model=\"gpt-4o\",provider=\"openai\"} 4106\n");
    has(t, "telex_upstream_errors_total{provider=\"openai\",kind=\"timeout\"} 2\n");
    has(t, "telex_fallbacks_total{model=\"gpt-4o\",provider=\"openai\"} 1\n");
    /* no ttft histogram for a series that never had a first token */
    assert_null(strstr(t, "telex_time_to_first_token_seconds_count{model=\"none\""));
    /* every line is a comment or "name{labels} value" / "name value" */
    for (char *line = t; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        assert_true(line[0] == '#' || strncmp(line, "telex_", 6) == 0);
        line = nl + 1;
    }
    free(t);
    telex_metrics_free(m);
}

static void test_label_escaping_and_cap(void **state)
{
    (void)state;
    telex_metrics_t *m = telex_metrics_new();
    telex_metrics_request_done(m, &(telex_metrics_request_t){.status = 200, .model = "we\"ird\\mo\ndel",
                                                             .provider = "p", .ttft_seconds = -1,
                                                             .duration_seconds = -1});
    char *t = render(m);
    has(t, "telex_requests_total{status=\"200\",model=\"we\\\"ird\\\\mo?del\",provider=\"p\"} 1\n");
    free(t);
    /* a client inventing model names cannot grow the table without bound */
    for (int i = 0; i < 5000; i++) {
        char model[32];
        snprintf(model, sizeof model, "model-%d", i);
        telex_metrics_request_done(m, &(telex_metrics_request_t){.status = 404, .model = model, .ttft_seconds = -1,
                                                                 .duration_seconds = -1});
    }
    t = render(m);
    has(t, "telex_requests_total{status=\"_other_\",model=\"_other_\",provider=\"_other_\"}");
    size_t series = 0;
    for (const char *p = strstr(t, "\ntelex_requests_total{"); p; p = strstr(p + 1, "\ntelex_requests_total{"))
        series++;
    assert_true(series <= 2049);
    /* counts are all there, split between named series and _other_ */
    unsigned long long total = 0;
    for (const char *p = strstr(t, "\ntelex_requests_total{"); p; p = strstr(p + 1, "\ntelex_requests_total{")) {
        const char *sp = strchr(p + 1, '}');
        total += strtoull(sp + 2, NULL, 10);
    }
    assert_int_equal(total, 5001);
    free(t);
    telex_metrics_free(m);
}

static telex_metrics_t *shared;

static void *count_many(void *arg)
{
    (void)arg;
    for (int i = 0; i < 20000; i++) {
        telex_metrics_request_done(shared, &(telex_metrics_request_t){.status = 200, .model = "m", .provider = "p",
                                                                      .ttft_seconds = 0.1, .duration_seconds = 1,
                                                                      .completion_tokens = 2, .cost_usd = 0.000001});
        telex_metrics_inter_token(shared, "m", i % 2 ? "p" : "q", 0.01);
    }
    return NULL;
}

static void test_counts_across_threads(void **state)
{
    (void)state;
    shared = telex_metrics_new();
    pthread_t th[8];
    for (int i = 0; i < 8; i++)
        pthread_create(&th[i], NULL, count_many, NULL);
    for (int i = 0; i < 8; i++)
        pthread_join(th[i], NULL);
    char *t = render(shared);
    has(t, "telex_requests_total{status=\"200\",model=\"m\",provider=\"p\"} 160000\n");
    has(t, "telex_tokens_total{model=\"m\",provider=\"p\",type=\"completion\"} 320000\n");
    has(t, "telex_cost_usd_total{model=\"m\",provider=\"p\"} 0.160000000\n");
    has(t, "telex_inter_token_latency_seconds_count{model=\"m\",provider=\"q\"} 80000\n");
    has(t, "telex_time_to_first_token_seconds_count{model=\"m\",provider=\"p\"} 160000\n");
    free(t);
    /* a buffer limit that is too small is an error, not a cut */
    telex_buf_t small = {.limit = 100};
    assert_int_equal(telex_metrics_render(shared, &small), -1);
    telex_buf_free(&small);
    telex_metrics_free(shared);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_families_after_traffic),
        cmocka_unit_test(test_label_escaping_and_cap),
        cmocka_unit_test(test_counts_across_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
