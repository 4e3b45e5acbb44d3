/*
 * tests/unit/test_gateway_http.c — the HTTP handlers (admin API, GET
 * /v1/usage, GET /metrics, GET /v1/presets, CORS) over a real socket: a
 * real telex HTTP server (http/server.c, h2o on libuv) with telex's own
 * router (gateway/router.c: telex_gateway_on_request and the worker
 * callbacks, as `telex serve` sets them up), a real database in a mkdtemp
 * directory, and libcurl as the client. Store work runs on libuv's thread
 * pool; the answers arrive back on the event loop.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "config/config.h"
#include "gateway/access_log.h"
#include "gateway/admin.h"
#include "gateway/auth.h"
#include "gateway/keys.h"
#include "gateway/cors.h"
#include "gateway/gateway.h"
#include "gateway/metrics.h"
#include "gateway/off_loop.h"
#include "gateway/presets.h"
#include "gateway/services.h"
#include "gateway/usage.h"
#include "http/respond.h"
#include "http/server.h"
#include "store/ledger.h"
#include "stream/ids.h"

#define ADMIN "adm-0123456789abcdef"

static char dir[64], base_url[64];
static telex_config_t *cfg;
static telex_services_t *svc;
static telex_server_options_t so;
static telex_gateway_t gateway;
static pthread_t server_thread;

static int path_is(h2o_req_t *req, const char *p)
{
    return h2o_memis(req->path_normalized.base, req->path_normalized.len, p, strlen(p));
}

static atomic_int answered_now, answered_later; /* the router's request log lines */

/* The deferred-answer hook: what off_loop.c does by default (the request's
 * access-log line, telex_access_log), counted. */
static void on_deferred(h2o_req_t *req, void *arg)
{
    assert_ptr_equal(arg, &answered_later);
    assert_true(req->res.status >= 200); /* called after the answer was sent */
    atomic_fetch_add(&answered_later, 1);
    telex_access_log(req, NULL, uv_hrtime());
}

/* The router's worker setup, then the counting hook in place of the
 * access log that off_loop.c writes after a deferred answer. */
static int worker_init(telex_worker_t *w)
{
    int rc = telex_gateway_worker_init(w);
    telex_off_loop_set_answered_hook(on_deferred, &answered_later);
    return rc;
}

/* The router answers; a request it answered at once (a status is set when
 * it returns) is counted, but not setup's readiness probes. */
static int on_request(telex_worker_t *w, h2o_req_t *req)
{
    int rc = telex_gateway_on_request(w, req);
    if (req->res.status != 0 && !path_is(req, "/healthz"))
        atomic_fetch_add(&answered_now, 1);
    return rc;
}

static void *run_server(void *arg)
{
    (void)arg;
    telex_server_run(&so);
    return NULL;
}

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        return -1;
    close(fd);
    return ntohs(a.sin_port);
}

typedef struct resp {
    long status;
    char body[65536];
    size_t len;
    char headers[8192];
    size_t hlen;
} resp_t;

static size_t on_body(char *p, size_t size, size_t n, void *userdata)
{
    resp_t *r = userdata;
    size_t k = size * n;
    if (r->len + k < sizeof r->body) {
        memcpy(r->body + r->len, p, k);
        r->len += k;
        r->body[r->len] = '\0';
    }
    return k;
}

static size_t on_header(char *p, size_t size, size_t n, void *userdata)
{
    resp_t *r = userdata;
    size_t k = size * n;
    if (r->hlen + k < sizeof r->headers) {
        for (size_t i = 0; i < k; i++) /* lower-case names and values: simpler asserts */
            r->headers[r->hlen + i] = (char)((p[i] >= 'A' && p[i] <= 'Z') ? p[i] + 32 : p[i]);
        r->hlen += k;
        r->headers[r->hlen] = '\0';
    }
    return k;
}

/* One request; auth NULL = no Authorization; origin NULL = none. */
static resp_t *http(const char *method, const char *path, const char *auth, const char *body, const char *origin)
{
    static resp_t r;
    memset(&r, 0, sizeof r);
    char url[512], h1[256], h2[256];
    snprintf(url, sizeof url, "%s%s", base_url, path);
    CURL *c = curl_easy_init();
    struct curl_slist *hs = NULL;
    if (auth) {
        snprintf(h1, sizeof h1, "Authorization: Bearer %s", auth);
        hs = curl_slist_append(hs, h1);
    }
    if (origin) {
        snprintf(h2, sizeof h2, "Origin: %s", origin);
        hs = curl_slist_append(hs, h2);
    }
    if (strcmp(method, "OPTIONS") == 0)
        hs = curl_slist_append(hs, "Access-Control-Request-Method: POST");
    hs = curl_slist_append(hs, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hs);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, &r);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        fail_msg("%s %s: %s", method, path, curl_easy_strerror(rc));
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
    curl_slist_free_all(hs);
    curl_easy_cleanup(c);
    return &r;
}

static json_t *body_json(const resp_t *r)
{
    json_error_t e;
    json_t *j = json_loads(r->body, 0, &e);
    if (j == NULL)
        fail_msg("not JSON (%s): %s", e.text, r->body);
    return j;
}

static const char *error_code(const resp_t *r)
{
    static char code[64];
    json_t *j = body_json(r);
    snprintf(code, sizeof code, "%s", json_string_value(json_object_get(json_object_get(j, "error"), "code")));
    json_decref(j);
    return code;
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/telex-http-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    int port = free_port();
    char path[128], err[512];
    snprintf(path, sizeof path, "%s/telex.yaml", dir);
    FILE *f = fopen(path, "w");
    fprintf(f,
            "listen: \"127.0.0.1:%d\"\n"
            "store:\n  path: %s/telex.db\n  flush_interval_seconds: 0.05\n"
            "auth:\n  admin_token: " ADMIN "\n"
            "cors:\n  origins: [\"https://app.example.com\"]\n  max_age_seconds: 120\n"
            "providers:\n  - name: demo\n    kind: demo\n"
            "models:\n  - name: demo\n    providers:\n      - provider: demo\n        input_price_per_mtok: 1\n"
            "        output_price_per_mtok: 2\n"
            "presets:\n  - name: joke\n    model: demo\n    description: A joke\n    template: Tell a joke about "
            "{{topic}}.\n",
            port, dir);
    fclose(f);
    unsetenv("TELEX_DB");
    unsetenv("TELEX_ADMIN_TOKEN");
    unsetenv("TELEX_LISTEN");
    /* the server's main loop waits for SIGTERM with sigtimedwait: block it
     * before any thread starts, so every thread inherits the mask */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    if (telex_ids_init() != 0 || telex_config_load(&cfg, path, err, sizeof err) != 0 ||
        telex_services_open(&svc, cfg, &(telex_services_options_t){0}, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    gateway = (telex_gateway_t){.config = cfg, .services = svc};
    snprintf(base_url, sizeof base_url, "http://127.0.0.1:%d", port);
    so = (telex_server_options_t){
        .listen_addr = cfg->listen_addr,
        .listen_addrlen = cfg->listen_addrlen,
        .workers = 2,
        .max_request_body = 1 << 20,
        .max_connections = 100,
        .shutdown_grace = 1,
        .name = "test",
        .on_request = on_request,
        .worker_init = worker_init,
        .worker_start = telex_gateway_worker_start,
        .worker_dispose = telex_gateway_worker_dispose,
        .on_shutdown = telex_gateway_on_shutdown,
        .is_idle = telex_gateway_is_idle,
        .app = &gateway,
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_create(&server_thread, NULL, run_server, NULL);
    for (int i = 0; i < 200; i++) { /* wait until it answers */
        CURL *c = curl_easy_init();
        char url[128];
        snprintf(url, sizeof url, "%s/healthz", base_url);
        curl_easy_setopt(c, CURLOPT_URL, url);
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
        CURLcode rc = curl_easy_perform(c);
        curl_easy_cleanup(c);
        if (rc == CURLE_OK)
            return 0;
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

static int teardown(void **state)
{
    (void)state;
    kill(getpid(), SIGTERM);
    pthread_join(server_thread, NULL);
    telex_services_close(svc);
    telex_config_free(cfg);
    curl_global_cleanup();
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* ---- the admin API ------------------------------------------------------------ */

static char alice_key[64];

static void test_admin_api(void **state)
{
    (void)state;
    resp_t *r = http("GET", "/admin/keys", NULL, NULL, NULL);
    assert_int_equal(r->status, 401);
    assert_string_equal(error_code(r), "invalid_admin_token");
    r = http("GET", "/admin/keys", "not-the-token-0123456789", NULL, NULL);
    assert_int_equal(r->status, 401);

    r = http("GET", "/admin/keys", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "{\"object\":\"list\",\"data\":[]}");

    r = http("POST", "/admin/keys", ADMIN,
             "{\"name\":\"alice\",\"budget_usd\":5,\"rpm\":60,\"models\":[\"demo\",\"preset:joke\"],\"expires\":\"30d\"}",
             NULL);
    assert_int_equal(r->status, 201);
    json_t *j = body_json(r);
    const char *key = json_string_value(json_object_get(j, "key"));
    assert_non_null(key);
    assert_true(telex_key_well_formed(key, strlen(key)));
    snprintf(alice_key, sizeof alice_key, "%s", key);
    assert_int_equal(json_integer_value(json_object_get(j, "id")), 1);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "active");
    assert_true(json_real_value(json_object_get(j, "budget_usd")) == 5);
    assert_int_equal(json_integer_value(json_object_get(j, "rpm")), 60);
    assert_int_equal(json_array_size(json_object_get(j, "models")), 2);
    assert_non_null(json_string_value(json_object_get(j, "expires_at")));
    char prefix[16];
    snprintf(prefix, sizeof prefix, "%.12s", key);
    assert_string_equal(json_string_value(json_object_get(j, "prefix")), prefix);
    json_decref(j);

    /* the key is shown once: never in a listing or a lookup */
    r = http("GET", "/admin/keys", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_null(strstr(r->body, alice_key));
    assert_null(strstr(r->body, "\"key\""));
    assert_non_null(strstr(r->body, "\"name\":\"alice\""));
    r = http("GET", "/admin/keys/alice", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_null(strstr(r->body, alice_key));
    r = http("GET", "/admin/keys/1", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "\"spent_usd\":0"));

    /* mistakes */
    r = http("POST", "/admin/keys", ADMIN, "{\"name\":\"alice\"}", NULL);
    assert_int_equal(r->status, 409);
    assert_string_equal(error_code(r), "name_taken");
    r = http("POST", "/admin/keys", ADMIN, "{\"name\":\"bob\",\"rpm\":-1}", NULL);
    assert_int_equal(r->status, 400);
    r = http("POST", "/admin/keys", ADMIN, "{\"nmae\":\"bob\"}", NULL);
    assert_int_equal(r->status, 400);
    assert_non_null(strstr(r->body, "Unknown field 'nmae'"));
    r = http("POST", "/admin/keys", ADMIN, "{\"name\":\"bob\",\"expires\":\"2000-01-01\"}", NULL);
    assert_int_equal(r->status, 400);
    assert_non_null(strstr(r->body, "expires: is in the past"));
    r = http("POST", "/admin/keys", ADMIN, "not json", NULL);
    assert_int_equal(r->status, 400);
    r = http("GET", "/admin/keys/nobody", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 404);
    assert_string_equal(error_code(r), "key_not_found");
    r = http("PUT", "/admin/keys", ADMIN, "{}", NULL);
    assert_int_equal(r->status, 405);
    assert_non_null(strstr(r->headers, "allow: get, post"));
    r = http("GET", "/admin/users", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 404);

    /* update */
    r = http("PATCH", "/admin/keys/alice", ADMIN, "{\"budget_usd\":null,\"tpm\":1000,\"models\":[]}", NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "\"budget_usd\":null"));
    assert_non_null(strstr(r->body, "\"tpm\":1000"));
    assert_non_null(strstr(r->body, "\"models\":[]"));
    assert_non_null(strstr(r->body, "\"rpm\":60")); /* untouched */

    /* a second key, then revoke it both ways */
    r = http("POST", "/admin/keys", ADMIN, "{\"name\":\"carol smith\"}", NULL);
    assert_int_equal(r->status, 201);
    r = http("POST", "/admin/keys/carol%20smith/revoke", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "\"status\":\"revoked\""));
    r = http("DELETE", "/admin/keys/2", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "\"status\":\"revoked\""));
    r = http("GET", "/admin/keys/2/revoke", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 405);
    /* the store calls were answered later, each followed by the hook (which
     * runs just after the answer left: give the last one a moment); the
     * token checks were answered at once */
    for (int i = 0; i < 100 && atomic_load(&answered_later) < 18; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    assert_int_equal(atomic_load(&answered_later), 18);
    assert_int_equal(atomic_load(&answered_now), 2);
}

/* ---- usage ---------------------------------------------------------------------- */

static void test_usage_endpoint(void **state)
{
    (void)state;
    /* a row for alice (key 1) and one anonymous row, written through the ledger */
    telex_grant_t g = {.key_id = 1}, anon = {0};
    telex_usage_record_t rec;
    telex_usage_t u = {.prompt_tokens = 100, .completion_tokens = 50, .cached_tokens = 10};
    telex_usage_record_init(&rec, &g, "demo", "demo");
    telex_usage_record_set(&rec, &u, 0.0002);
    assert_int_equal(telex_usage_record(svc, &g, &rec), 0);
    telex_usage_record_init(&rec, &anon, "other", "demo");
    u.estimated = true;
    telex_usage_record_set(&rec, &u, 0.0002);
    assert_int_equal(telex_usage_record(svc, &anon, &rec), 0);
    assert_int_equal(telex_ledger_flush(telex_services_ledger(svc), 5), 0);

    resp_t *r = http("GET", "/v1/usage?group_by=model", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 200);
    json_t *j = body_json(r);
    assert_string_equal(json_string_value(json_object_get(j, "group_by")), "model");
    assert_int_equal(json_array_size(json_object_get(j, "data")), 2);
    json_t *total = json_object_get(j, "total");
    assert_int_equal(json_integer_value(json_object_get(total, "requests")), 2);
    assert_int_equal(json_integer_value(json_object_get(total, "estimated_requests")), 1);
    assert_true(json_real_value(json_object_get(total, "cost_usd")) == 0.0004);
    json_decref(j);

    /* a key sees only itself */
    r = http("GET", "/v1/usage", alice_key, NULL, NULL);
    assert_int_equal(r->status, 200);
    j = body_json(r);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(j, "total"), "requests")), 1);
    assert_int_equal(json_integer_value(json_object_get(j, "key_id")), 1);
    json_decref(j);
    r = http("GET", "/v1/usage?key=2", alice_key, NULL, NULL);
    assert_int_equal(r->status, 403);
    r = http("GET", "/v1/usage?group_by=key", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "\"key_id\":1,\"key_name\":\"alice\""));
    assert_non_null(strstr(r->body, "\"key_id\":null,\"key_name\":null"));
    r = http("GET", "/v1/usage?group_by=day&from=2000-01-01&to=2000-01-31", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->body, "\"data\":[]"));
    r = http("GET", "/v1/usage?group_by=hour", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 400);
    /* keys exist now: no anonymous reading */
    r = http("GET", "/v1/usage", NULL, NULL, NULL);
    assert_int_equal(r->status, 401);
    assert_string_equal(error_code(r), "missing_api_key");
    r = http("POST", "/v1/usage", ADMIN, "{}", NULL);
    assert_int_equal(r->status, 405);
}

/* ---- metrics, presets, CORS ---------------------------------------------------------- */

static void test_metrics_presets_cors(void **state)
{
    (void)state;
    telex_metrics_request_done(telex_services_metrics(svc),
                               &(telex_metrics_request_t){.status = 200, .model = "demo", .provider = "demo",
                                                          .ttft_seconds = 0.1, .duration_seconds = 1});
    /* keys exist: /metrics and the lists are not for anonymous callers (issue 18) */
    resp_t *r = http("GET", "/metrics", NULL, NULL, NULL);
    assert_int_equal(r->status, 401);
    r = http("GET", "/v1/presets", NULL, NULL, NULL);
    assert_int_equal(r->status, 401);
    r = http("GET", "/metrics", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->headers, "content-type: text/plain; version=0.0.4; charset=utf-8"));
    assert_non_null(strstr(r->body, "telex_requests_total{status=\"200\",model=\"demo\",provider=\"demo\"} 1\n"));
    assert_non_null(strstr(r->body, "telex_api_keys_active 1\n"));
    assert_non_null(strstr(r->body, "telex_ledger_rows_written_total 2\n"));
    assert_non_null(strstr(r->body, "telex_ledger_rows_dropped_total 0\n"));

    r = http("GET", "/v1/presets", ADMIN, NULL, NULL);
    assert_int_equal(r->status, 200);
    assert_string_equal(r->body, "{\"object\":\"list\",\"data\":[{\"id\":\"joke\",\"object\":\"preset\",\"model\":"
                                 "\"demo\",\"description\":\"A joke\",\"variables\":[\"topic\"],\"defaults\":{}}]}");

    /* CORS: an allowed origin's preflight and request */
    r = http("OPTIONS", "/v1/chat/completions", NULL, NULL, "https://app.example.com");
    assert_int_equal(r->status, 204);
    assert_non_null(strstr(r->headers, "access-control-allow-origin: https://app.example.com"));
    assert_non_null(strstr(r->headers, "access-control-allow-headers: authorization, content-type, last-event-id"));
    assert_non_null(strstr(r->headers, "access-control-allow-methods: get, post"));
    assert_non_null(strstr(r->headers, "access-control-max-age: 120"));
    assert_non_null(strstr(r->headers, "vary: origin"));
    assert_null(strstr(r->headers, "access-control-allow-credentials"));
    r = http("GET", "/v1/presets", ADMIN, NULL, "https://app.example.com");
    assert_int_equal(r->status, 200);
    assert_non_null(strstr(r->headers, "access-control-allow-origin: https://app.example.com"));
    assert_non_null(strstr(r->headers, "access-control-expose-headers: retry-after"));
    /* any other origin: no CORS headers; its preflight is refused */
    r = http("OPTIONS", "/v1/chat/completions", NULL, NULL, "https://evil.example");
    assert_int_equal(r->status, 403);
    assert_null(strstr(r->headers, "access-control-allow-origin"));
    r = http("GET", "/v1/presets", ADMIN, NULL, "https://evil.example");
    assert_int_equal(r->status, 200);
    assert_null(strstr(r->headers, "access-control-allow-origin"));
}

/* LeakSanitizer (sanitized builds): http/server.c hands h2o's configuration
 * and its per-thread memory-pool recycle bins over to the exit instead of
 * tearing them down (see telex_server_run); they are not leaks of ours. */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
    return "leak:h2o_mem_alloc_recycle\nleak:h2o_configurator_create\nleak:h2o_vector__expand\n";
}

int main(void)
{
    /* order matters: the usage test uses the key the admin test created */
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admin_api),
        cmocka_unit_test(test_usage_endpoint),
        cmocka_unit_test(test_metrics_presets_cors),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
