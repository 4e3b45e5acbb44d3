/*
 * tests/unit/test_config.c — the configuration module as a user meets it:
 * built-in defaults, environment overrides, a full telex.yaml, and the exact
 * one-line message (FILE:LINE:COL: key.path: what) for each mistake.
 *
 * Every test writes its YAML into a fresh mkdtemp directory and clears the
 * environment variables telex reads, so the caller's environment (say, a
 * real OPENAI_API_KEY) cannot change the outcome.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>

#include "config/config.h"
#include "config/config_internal.h" /* telex_config_test_fail_alloc */

static char dir[64];
static char yaml_path[128];

static const char *const env_names[] = {
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "TELEX_LISTEN",   "TELEX_WORKERS",
    "TELEX_TLS_CERT", "TELEX_TLS_KEY",   "TELEX_CONFIG",   "TELEX_TEST_KEY",
    "TELEX_DB",       "TELEX_ADMIN_TOKEN", "XDG_STATE_HOME", "ANTHROPIC_API_KEY",
    "AZURE_OPENAI_API_KEY",
};

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/telex-config-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    snprintf(yaml_path, sizeof yaml_path, "%s/telex.yaml", dir);
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
        unsetenv(env_names[i]);
    return 0;
}

static const char *const made_files[] = {"telex.yaml", "cert.pem", "key.pem"};

static int teardown(void **state)
{
    (void)state;
    char p[160];
    for (size_t i = 0; i < sizeof made_files / sizeof made_files[0]; i++) {
        snprintf(p, sizeof p, "%s/%s", dir, made_files[i]);
        unlink(p);
    }
    rmdir(dir);
    return 0;
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Writes telex.yaml and loads it; asserts success. */
static telex_config_t *load_ok(const char *yaml)
{
    telex_config_t *cfg = NULL;
    char err[512] = "";
    write_file(yaml_path, yaml);
    int rc = telex_config_load(&cfg, yaml_path, err, sizeof err);
    if (rc != 0)
        fail_msg("load failed (%d): %s", rc, err);
    assert_non_null(cfg);
    return cfg;
}

/* Writes telex.yaml, loads it, expects -EINVAL and err == "<path>" + suffix.
 * Prints a mismatch and returns false, so one run shows every mismatch. */
static bool expect_error(const char *yaml, const char *suffix)
{
    telex_config_t *cfg = (telex_config_t *)1;
    char err[512] = "", want[700];
    write_file(yaml_path, yaml);
    int rc = telex_config_load(&cfg, yaml_path, err, sizeof err);
    snprintf(want, sizeof want, "%s%s", yaml_path, suffix);
    if (cfg != NULL || rc != -EINVAL || strcmp(err, want) != 0) {
        print_error("for YAML:\n%s\nwant (-EINVAL) %s\ngot  (%d) %s\n\n", yaml, want, rc, err);
        return false;
    }
    return true;
}

static const char *ip_of(const telex_config_t *cfg, char *buf, size_t n, unsigned *port)
{
    const struct sockaddr_storage *ss = &cfg->listen_addr;
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
        *port = ntohs(sin->sin_port);
        return inet_ntop(AF_INET, &sin->sin_addr, buf, (socklen_t)n);
    }
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    *port = ntohs(sin6->sin6_port);
    return inet_ntop(AF_INET6, &sin6->sin6_addr, buf, (socklen_t)n);
}

/* ---- built-in defaults ------------------------------------------------- */

static void test_defaults_without_file(void **state)
{
    (void)state;
    telex_config_t *cfg = NULL;
    char err[256] = "x";
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_null(cfg->path);
    assert_string_equal(cfg->listen, "127.0.0.1:8080");
    char ip[64];
    unsigned port;
    assert_string_equal(ip_of(cfg, ip, sizeof ip, &port), "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(cfg->listen_addrlen, sizeof(struct sockaddr_in));
    assert_int_equal(cfg->workers, 0);
    assert_null(cfg->tls_cert);
    assert_null(cfg->tls_key);

    assert_int_equal(cfg->n_providers, 1);
    assert_string_equal(cfg->providers[0].name, "demo");
    assert_int_equal(cfg->providers[0].kind, TELEX_PROVIDER_DEMO);
    assert_true(cfg->providers[0].tokens_per_second == 30.0);
    assert_int_equal(cfg->n_models, 1);
    assert_null(cfg->catch_all);

    const telex_model_t *m = telex_config_find_model(cfg, "demo");
    assert_non_null(m);
    assert_false(m->catch_all);
    assert_int_equal(m->n_routes, 1);
    assert_ptr_equal(m->routes[0].provider, telex_config_find_provider(cfg, "demo"));
    assert_string_equal(telex_route_upstream_model(&m->routes[0], "demo"), "demo");
    assert_null(telex_config_find_model(cfg, "gpt-4o"));
    assert_null(telex_config_find_provider(cfg, "openai"));

    assert_true(cfg->streaming.keepalive_seconds == 15);
    assert_true(cfg->streaming.commit_timeout_seconds == 5);
    assert_true(cfg->streaming.idle_timeout_seconds == 60);
    assert_true(cfg->streaming.shutdown_grace_seconds == 10);
    assert_int_equal(cfg->limits.max_body_bytes, 1 << 20);
    assert_int_equal(cfg->limits.max_header_bytes, 16 << 10);
    assert_int_equal(cfg->limits.max_connections, 10000);
    assert_int_equal(cfg->limits.max_concurrent_streams, 10000);
    assert_int_equal(cfg->limits.max_event_bytes, 1 << 20);
    assert_true(cfg->resume.enabled);
    assert_true(cfg->resume.retention_seconds == 300);
    assert_int_equal(cfg->resume.max_bytes, 8 << 20);
    assert_true(cfg->resume.grace_seconds == 10);
    assert_int_equal(cfg->resume.retry_ms, 3000);
    assert_int_equal(cfg->resume.max_total_bytes, 256 << 20);
    /* the rest of the defaults in config_sections.c's tables */
    assert_int_equal(cfg->workers, 0);
    assert_false(cfg->streaming.event_ids);
    assert_int_equal(cfg->limits.max_buffered_body_bytes, 64 << 20);
    assert_int_equal(cfg->limits.max_connections_per_client, 1024);
    assert_int_equal(cfg->limits.max_unfinished_requests_per_client, 256);
    assert_true(cfg->limits.header_timeout_seconds == 10);
    assert_true(cfg->limits.body_timeout_seconds == 60);
    assert_null(cfg->cluster.redis_url);
    assert_null(cfg->store.spill_path);
    assert_int_equal(cfg->store.spill_max_bytes, 0);
    assert_true(cfg->store.ledger);
    assert_null(cfg->metrics.token);
    telex_config_free(cfg);
}

static void test_openai_key_routes_every_other_model(void **state)
{
    (void)state;
    setenv("OPENAI_API_KEY", "sk-test-123", 1);
    telex_config_t *cfg = NULL;
    char err[256];
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), 0);
    const telex_provider_t *p = telex_config_find_provider(cfg, "openai");
    assert_non_null(p);
    assert_int_equal(p->kind, TELEX_PROVIDER_OPENAI);
    assert_string_equal(p->base_url, "https://api.openai.com/v1");
    assert_string_equal(p->api_key, "sk-test-123");
    assert_true(p->timeout_seconds == 10);

    /* demo still answers demo; anything else goes to openai under its own name */
    const telex_model_t *demo = telex_config_find_model(cfg, "demo");
    assert_non_null(demo);
    assert_string_equal(demo->routes[0].provider->name, "demo");
    const telex_model_t *m = telex_config_find_model(cfg, "gpt-4o-mini");
    assert_non_null(m);
    assert_true(m->catch_all);
    assert_ptr_equal(m, cfg->catch_all);
    assert_ptr_equal(m->routes[0].provider, p);
    assert_string_equal(telex_route_upstream_model(&m->routes[0], "gpt-4o-mini"), "gpt-4o-mini");
    assert_ptr_equal(telex_config_find_model(cfg, "anything-else"), m);
    assert_null(telex_config_find_model(cfg, ""));
    assert_null(telex_config_find_model(cfg, NULL));
    telex_config_free(cfg);
}

static void test_openai_base_url_without_key(void **state)
{
    (void)state; /* a local vLLM / Ollama server needs no key */
    setenv("OPENAI_BASE_URL", "http://localhost:11434/v1/", 1);
    telex_config_t *cfg = NULL;
    char err[256];
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), 0);
    const telex_provider_t *p = telex_config_find_provider(cfg, "openai");
    assert_non_null(p);
    assert_string_equal(p->base_url, "http://localhost:11434/v1");
    assert_null(p->api_key);
    assert_non_null(cfg->catch_all);
    telex_config_free(cfg);

    setenv("OPENAI_BASE_URL", "localhost:11434", 1);
    cfg = (telex_config_t *)1;
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), -EINVAL);
    assert_null(cfg);
    assert_string_equal(err, "OPENAI_BASE_URL: must start with http:// or https://");
}

static void test_openai_key_with_line_break_is_refused_unquoted(void **state)
{
    (void)state;
    setenv("OPENAI_API_KEY", "sk-SECRET\r\nX: y", 1);
    telex_config_t *cfg = NULL;
    char err[256];
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), -EINVAL);
    assert_string_equal(err, "OPENAI_API_KEY: contains control characters");
}

/* ---- files -------------------------------------------------------------- */

static void test_unreadable_file(void **state)
{
    (void)state;
    telex_config_t *cfg = (telex_config_t *)1;
    char err[256], want[256];
    char missing[160];
    snprintf(missing, sizeof missing, "%s/nope.yaml", dir);
    assert_int_equal(telex_config_load(&cfg, missing, err, sizeof err), -ENOENT);
    assert_null(cfg);
    snprintf(want, sizeof want, "cannot read %s: No such file or directory", missing);
    assert_string_equal(err, want);

    assert_int_equal(telex_config_load(&cfg, dir, err, sizeof err), -EISDIR);
    snprintf(want, sizeof want, "cannot read %s: Is a directory", dir);
    assert_string_equal(err, want);
}

static void test_empty_and_partial_files_keep_defaults(void **state)
{
    (void)state;
    telex_config_t *cfg = load_ok("");
    assert_string_equal(cfg->path, yaml_path);
    assert_int_equal(cfg->n_models, 1);
    assert_string_equal(cfg->models[0].name, "demo");
    telex_config_free(cfg);

    cfg = load_ok("# just a comment\n");
    assert_int_equal(cfg->n_models, 1);
    telex_config_free(cfg);

    /* settings without providers/models: the built-in routes stay */
    cfg = load_ok("streaming:\n  keepalive_seconds: 0.2\ntls:\nlimits: {}\n");
    assert_true(cfg->streaming.keepalive_seconds == 0.2);
    assert_true(cfg->streaming.idle_timeout_seconds == 60);
    assert_non_null(telex_config_find_model(cfg, "demo"));
    assert_null(cfg->tls_cert);
    telex_config_free(cfg);
}

static const char full_yaml[] =
    "# every key\n"
    "listen: \"[::1]:9090\"\n"
    "workers: 3\n"
    "tls:\n"
    "  cert: CERT\n"
    "  key: KEY\n"
    "providers:\n"
    "  - name: openai\n"
    "    kind: openai\n"
    "    api_key_env: TELEX_TEST_KEY\n"
    "    timeout_seconds: 2.5\n"
    "    headers:\n"
    "      OpenAI-Organization: org-1\n"
    "      X-Empty: \"\"\n"
    "  - name: local\n"
    "    kind: openai\n"
    "    base_url: http://127.0.0.1:8000/v1/\n"
    "  - name: lit\n"
    "    kind: openai\n"
    "    base_url: https://openrouter.ai/api/v1\n"
    "    api_key: sk-literal\n"
    "  - name: demo\n"
    "    kind: demo\n"
    "    tokens_per_second: 1000\n"
    "models:\n"
    "  - name: gpt-4o\n"
    "    providers:\n"
    "      - provider: openai\n"
    "        input_price_per_mtok: 2.5\n"
    "        output_price_per_mtok: 10\n"
    "      - provider: local\n"
    "        model: qwen2.5-7b-instruct\n"
    "      - lit\n"
    "  - name: demo\n"
    "    providers: [demo]\n"
    "  - name: \"*\"\n"
    "    providers:\n"
    "      - provider: local\n"
    "      - provider: lit\n"
    "        model: openai/gpt-4o-mini\n"
    "streaming:\n"
    "  keepalive_seconds: 0.25\n"
    "  commit_timeout_seconds: 1.5\n"
    "  idle_timeout_seconds: 2\n"
    "  shutdown_grace_seconds: 0\n"
    "limits:\n"
    "  max_body_bytes: 2MiB\n"
    "  max_header_bytes: 8 KiB\n"
    "  max_connections: 50\n"
    "  max_concurrent_streams: 40\n"
    "  max_event_bytes: 65536\n"
    "resume:\n"
    "  enabled: false\n"
    "  retention_seconds: 0\n"
    "  max_bytes: 1MB\n"
    "  grace_seconds: 0.5\n"
    "  retry_ms: 0\n"
    "  max_total_bytes: 64MiB\n"
    "store:\n"
    "  path: /var/lib/telex/t.db\n"
    "  flush_interval_seconds: 0.5\n"
    "  max_pending: 5000\n"
    "auth:\n"
    "  admin_token: adm-0123456789abcdef\n"
    "  allow_anonymous: true\n"
    "cors:\n"
    "  origins: [\"https://app.example.com\", \"http://localhost:3000\"]\n"
    "  max_age_seconds: 60\n"
    "metrics:\n"
    "  require_admin: true\n"
    "presets:\n"
    "  - name: summary\n"
    "    model: gpt-4o\n"
    "    description: Summarise a text\n"
    "    system: |\n"
    "      You summarise texts for {{ audience }}.\n"
    "      Be brief.\n"
    "    template: \"Summarise in {{style}}:\\n\\n{{content}}\"\n"
    "    parameters:\n"
    "      max_tokens: 200\n"
    "      temperature: 0.2\n"
    "      stop: [\"END\"]\n"
    "      user: \"42\"\n"
    "    variables:\n"
    "      style: three bullet points\n"
    "      audience: 7\n"
    "  - name: any-model\n"
    "    model: llama3\n";

/* full_yaml with CERT/KEY replaced by real files in the test directory. */
static const char *full_yaml_with_tls(char *buf, size_t n)
{
    char cert[160], key[160];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    write_file(cert, "cert\n");
    write_file(key, "key\n");
    const char *c = strstr(full_yaml, "CERT"), *k = strstr(full_yaml, "KEY");
    snprintf(buf, n, "%.*s%s%.*s%s%s", (int)(c - full_yaml), full_yaml, cert,
             (int)(k - (c + 4)), c + 4, key, k + 3);
    return buf;
}

static void test_full_file(void **state)
{
    (void)state;
    char yaml[4096];
    setenv("TELEX_TEST_KEY", "sk-from-env", 1);
    telex_config_t *cfg = load_ok(full_yaml_with_tls(yaml, sizeof yaml));

    char ip[64];
    unsigned port;
    assert_string_equal(cfg->listen, "[::1]:9090");
    assert_string_equal(ip_of(cfg, ip, sizeof ip, &port), "::1");
    assert_int_equal(port, 9090);
    assert_int_equal(cfg->workers, 3);
    assert_non_null(strstr(cfg->tls_cert, "/cert.pem"));
    assert_non_null(strstr(cfg->tls_key, "/key.pem"));

    assert_int_equal(cfg->n_providers, 4);
    const telex_provider_t *oa = &cfg->providers[0];
    assert_string_equal(oa->name, "openai");
    assert_string_equal(oa->base_url, "https://api.openai.com/v1");
    assert_string_equal(oa->api_key, "sk-from-env");
    assert_true(oa->timeout_seconds == 2.5);
    assert_int_equal(oa->n_headers, 2);
    assert_string_equal(oa->headers[0].name, "OpenAI-Organization");
    assert_string_equal(oa->headers[0].value, "org-1");
    assert_string_equal(oa->headers[1].name, "X-Empty");
    assert_string_equal(oa->headers[1].value, "");
    const telex_provider_t *local = telex_config_find_provider(cfg, "local");
    assert_string_equal(local->base_url, "http://127.0.0.1:8000/v1");
    assert_null(local->api_key);
    assert_true(local->timeout_seconds == 10);
    assert_int_equal(local->n_headers, 0);
    assert_string_equal(telex_config_find_provider(cfg, "lit")->api_key, "sk-literal");
    const telex_provider_t *demo = telex_config_find_provider(cfg, "demo");
    assert_int_equal(demo->kind, TELEX_PROVIDER_DEMO);
    assert_true(demo->tokens_per_second == 1000);

    assert_int_equal(cfg->n_models, 3);
    const telex_model_t *m = telex_config_find_model(cfg, "gpt-4o");
    assert_int_equal(m->n_routes, 3);
    assert_ptr_equal(m->routes[0].provider, oa);
    assert_string_equal(m->routes[0].model, "gpt-4o");
    assert_true(m->routes[0].input_price_per_mtok == 2.5);
    assert_true(m->routes[0].output_price_per_mtok == 10);
    assert_ptr_equal(m->routes[1].provider, local);
    assert_string_equal(m->routes[1].model, "qwen2.5-7b-instruct");
    assert_true(m->routes[1].input_price_per_mtok == 0);
    assert_string_equal(m->routes[2].provider->name, "lit");
    assert_string_equal(m->routes[2].model, "gpt-4o");

    const telex_model_t *any = telex_config_find_model(cfg, "llama3");
    assert_ptr_equal(any, cfg->catch_all);
    assert_string_equal(any->name, "*");
    assert_int_equal(any->n_routes, 2);
    assert_null(any->routes[0].model);
    assert_string_equal(telex_route_upstream_model(&any->routes[0], "llama3"), "llama3");
    assert_string_equal(telex_route_upstream_model(&any->routes[1], "llama3"),
                        "openai/gpt-4o-mini");
    assert_string_equal(telex_config_find_model(cfg, "demo")->routes[0].provider->name, "demo");

    assert_true(cfg->streaming.keepalive_seconds == 0.25);
    assert_true(cfg->streaming.commit_timeout_seconds == 1.5);
    assert_true(cfg->streaming.idle_timeout_seconds == 2);
    assert_true(cfg->streaming.shutdown_grace_seconds == 0);
    assert_int_equal(cfg->limits.max_body_bytes, 2 << 20);
    assert_int_equal(cfg->limits.max_header_bytes, 8 << 10);
    assert_int_equal(cfg->limits.max_connections, 50);
    assert_int_equal(cfg->limits.max_concurrent_streams, 40);
    assert_int_equal(cfg->limits.max_event_bytes, 65536);
    assert_false(cfg->resume.enabled);
    assert_true(cfg->resume.retention_seconds == 0);
    assert_int_equal(cfg->resume.max_bytes, 1000000);
    assert_true(cfg->resume.grace_seconds == 0.5);
    assert_int_equal(cfg->resume.retry_ms, 0);
    assert_int_equal(cfg->resume.max_total_bytes, 64 << 20);

    assert_true(m->routes[0].cached_input_price_per_mtok == 2.5); /* defaults to the input price */
    assert_string_equal(cfg->store.path, "/var/lib/telex/t.db");
    assert_true(cfg->store.flush_interval_seconds == 0.5);
    assert_int_equal(cfg->store.max_pending, 5000);
    assert_string_equal(cfg->auth.admin_token, "adm-0123456789abcdef");
    assert_true(cfg->auth.allow_anonymous);
    assert_int_equal(cfg->cors.n_origins, 2);
    assert_string_equal(cfg->cors.origins[1], "http://localhost:3000");
    assert_true(cfg->cors.max_age_seconds == 60);
    assert_true(cfg->metrics.require_admin);
    assert_int_equal(cfg->n_presets, 2);
    const telex_preset_t *p = telex_config_find_preset(cfg, "summary");
    assert_ptr_equal(p, &cfg->presets[0]);
    assert_string_equal(p->model, "gpt-4o");
    assert_string_equal(p->description, "Summarise a text");
    assert_string_equal(p->system, "You summarise texts for {{ audience }}.\nBe brief.\n");
    assert_string_equal(p->template, "Summarise in {{style}}:\n\n{{content}}");
    assert_string_equal(p->parameters, "{\"max_tokens\":200,\"temperature\":0.2,\"stop\":[\"END\"],\"user\":\"42\"}");
    assert_string_equal(p->variables, "{\"style\":\"three bullet points\",\"audience\":\"7\"}");
    const telex_preset_t *q = telex_config_find_preset(cfg, "any-model"); /* served by "*" */
    assert_null(q->system);
    assert_null(q->template);
    assert_null(q->description);
    assert_string_equal(q->parameters, "{}");
    assert_string_equal(q->variables, "{}");
    assert_null(telex_config_find_preset(cfg, "nope"));
    assert_null(telex_config_find_preset(cfg, NULL));
    telex_config_free(cfg);
}

/* ---- anthropic and azure ------------------------------------------------- */

/* The values are telex_http2_mode_t's (upstream/http_client.h): auto 0, on 1, off 2. */
static void test_provider_http2(void **state)
{
    (void)state;
    telex_config_t *cfg = load_ok("providers:\n"
                                  "  - {name: a, kind: openai}\n"
                                  "  - {name: b, kind: openai, http2: on}\n"
                                  "  - {name: c, kind: anthropic, http2: off}\n"
                                  "  - {name: d, kind: azure, endpoint: https://r.openai.azure.com, http2: auto}\n"
                                  "  - {name: e, kind: openai, http2: true}\n"
                                  "  - {name: f, kind: openai, http2: false}\n"
                                  "models:\n  - {name: m, providers: [a]}\n");
    assert_int_equal(cfg->n_providers, 6);
    static const int want[] = {0, 1, 2, 0, 1, 2};
    for (int i = 0; i < 6; i++)
        assert_int_equal(cfg->providers[i].http2, want[i]);
    telex_config_free(cfg);
}

static void test_anthropic_and_azure_providers(void **state)
{
    (void)state;
    setenv("TELEX_TEST_KEY", "sk-ant-from-env", 1);
    telex_config_t *cfg = load_ok("providers:\n"
                                  "  - name: claude\n"
                                  "    kind: anthropic\n"
                                  "    api_key_env: TELEX_TEST_KEY\n"
                                  "  - name: claude-proxy\n"
                                  "    kind: anthropic\n"
                                  "    base_url: http://127.0.0.1:9090/\n"
                                  "    anthropic_version: \"2024-01-01\"\n"
                                  "    max_tokens: 1024\n"
                                  "    timeout_seconds: 3\n"
                                  "    headers:\n"
                                  "      anthropic-beta: prompt-caching-2024-07-31\n"
                                  "  - name: az\n"
                                  "    kind: azure\n"
                                  "    endpoint: https://my-res.openai.azure.com/\n"
                                  "    api_key: az-literal\n"
                                  "  - name: az2\n"
                                  "    kind: azure\n"
                                  "    endpoint: http://127.0.0.1:9090\n"
                                  "    api_version: 2025-01-01-preview\n"
                                  "    headers:\n"
                                  "      Authorization: Bearer entra-token\n"
                                  "models:\n"
                                  "  - name: sonnet\n"
                                  "    providers:\n"
                                  "      - provider: claude\n"
                                  "        model: claude-sonnet-4-5\n"
                                  "      - provider: az\n"
                                  "        model: gpt-4o-deployment\n"
                                  "  - name: gpt-4o\n"
                                  "    providers: [az2, claude-proxy]\n"
                                  "  - name: \"*\"\n"
                                  "    providers: [az]\n");
    const telex_provider_t *claude = telex_config_find_provider(cfg, "claude");
    assert_int_equal(claude->kind, TELEX_PROVIDER_ANTHROPIC);
    assert_string_equal(claude->base_url, "https://api.anthropic.com");
    assert_string_equal(claude->api_key, "sk-ant-from-env");
    assert_string_equal(claude->anthropic_version, "2023-06-01");
    assert_int_equal(claude->max_tokens, 4096);
    assert_true(claude->timeout_seconds == 10);
    assert_null(claude->api_version);
    const telex_provider_t *proxy = telex_config_find_provider(cfg, "claude-proxy");
    assert_string_equal(proxy->base_url, "http://127.0.0.1:9090");
    assert_string_equal(proxy->anthropic_version, "2024-01-01");
    assert_int_equal(proxy->max_tokens, 1024);
    assert_true(proxy->timeout_seconds == 3);
    assert_null(proxy->api_key);
    assert_int_equal(proxy->n_headers, 1);
    assert_string_equal(proxy->headers[0].name, "anthropic-beta");
    const telex_provider_t *az = telex_config_find_provider(cfg, "az");
    assert_int_equal(az->kind, TELEX_PROVIDER_AZURE);
    assert_string_equal(az->base_url, "https://my-res.openai.azure.com");
    assert_string_equal(az->api_key, "az-literal");
    assert_string_equal(az->api_version, "2024-10-21");
    assert_null(az->anthropic_version);
    const telex_provider_t *az2 = telex_config_find_provider(cfg, "az2");
    assert_string_equal(az2->api_version, "2025-01-01-preview");
    assert_null(az2->api_key);
    assert_string_equal(az2->headers[0].value, "Bearer entra-token");
    const telex_model_t *m = telex_config_find_model(cfg, "sonnet");
    assert_string_equal(m->routes[0].model, "claude-sonnet-4-5");
    assert_string_equal(m->routes[1].model, "gpt-4o-deployment"); /* the deployment */
    assert_string_equal(telex_config_find_model(cfg, "gpt-4o")->routes[0].model, "gpt-4o");
    assert_null(cfg->catch_all->routes[0].model); /* the client's name, encoded at request time */
    telex_config_free(cfg);
}

/* ---- store path, admin token, loopback ---------------------------------- */

static void test_store_path_defaults_and_env(void **state)
{
    (void)state;
    char *home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;
    telex_config_t *cfg = NULL;
    char err[256];

    setenv("XDG_STATE_HOME", "/srv/state", 1);
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), 0);
    assert_string_equal(cfg->store.path, "/srv/state/telex/telex.db");
    assert_null(cfg->auth.admin_token); /* no token: the admin API is off */
    assert_false(cfg->auth.allow_anonymous);
    assert_int_equal(cfg->cors.n_origins, 0);
    assert_true(cfg->cors.max_age_seconds == 600);
    assert_false(cfg->metrics.require_admin);
    assert_true(cfg->store.flush_interval_seconds == 0.25);
    assert_int_equal(cfg->store.max_pending, 100000);
    assert_int_equal(cfg->n_presets, 0);
    telex_config_free(cfg);

    setenv("XDG_STATE_HOME", "relative/ignored", 1);
    setenv("HOME", "/home/ann", 1);
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), 0);
    assert_string_equal(cfg->store.path, "/home/ann/.local/state/telex/telex.db");
    telex_config_free(cfg);

    unsetenv("XDG_STATE_HOME");
    unsetenv("HOME");
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), 0);
    assert_string_equal(cfg->store.path, "telex.db");
    telex_config_free(cfg);

    /* cluster.redis_url: none by default; from the file; TELEX_REDIS_URL beats it */
    cfg = load_ok("workers: 1\n");
    assert_null(cfg->cluster.redis_url);
    telex_config_free(cfg);
    cfg = load_ok("cluster:\n  redis_url: redis://file:6379\n");
    assert_string_equal(cfg->cluster.redis_url, "redis://file:6379");
    telex_config_free(cfg);
    setenv("TELEX_REDIS_URL", "redis://env:6380/2", 1);
    cfg = load_ok("cluster:\n  redis_url: redis://file:6379\n");
    assert_string_equal(cfg->cluster.redis_url, "redis://env:6380/2");
    telex_config_free(cfg);
    unsetenv("TELEX_REDIS_URL");

    /* TELEX_DB beats the file; TELEX_ADMIN_TOKEN beats auth.admin_token */
    setenv("TELEX_DB", "/tmp/x/telex.db", 1);
    setenv("TELEX_ADMIN_TOKEN", "env-token-0123456789", 1);
    cfg = load_ok("store:\n  path: file.db\nauth:\n  admin_token: file-token-0123456789\n");
    assert_string_equal(cfg->store.path, "/tmp/x/telex.db");
    assert_string_equal(cfg->auth.admin_token, "env-token-0123456789");
    telex_config_free(cfg);
    unsetenv("TELEX_DB");
    cfg = load_ok("store:\n  path: rel/file.db\n");
    assert_string_equal(cfg->store.path, "rel/file.db");
    telex_config_free(cfg);

    setenv("TELEX_ADMIN_TOKEN", "short", 1);
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), -EINVAL);
    assert_string_equal(err, "TELEX_ADMIN_TOKEN: the token must be at least 16 characters (a long random string, "
                             "e.g. from `openssl rand -hex 32`)");
    setenv("TELEX_ADMIN_TOKEN", "0123456789abcdef\tSECRET", 1);
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), -EINVAL);
    assert_string_equal(err, "TELEX_ADMIN_TOKEN: the token must not contain spaces or control characters");
    unsetenv("TELEX_ADMIN_TOKEN");
    setenv("TELEX_DB", "a\nb", 1);
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), -EINVAL);
    assert_string_equal(err, "TELEX_DB: contains control characters");
    unsetenv("TELEX_DB");

    if (home)
        setenv("HOME", home, 1);
    free(home);
}

static void test_admin_token_never_in_messages(void **state)
{
    (void)state;
    telex_config_t *cfg = NULL;
    char err[512];
    static const char *const cases[] = {
        "auth:\n  admin_token: SECRETshort\n",
        "auth:\n  admin_token: \"SECRET with spaces 0123456789\"\n",
        "auth:\n  admin_token: [SECRET]\n",
        "auth:\n  admin_token_env: TELEX_TEST_KEY\n",
    };
    setenv("TELEX_TEST_KEY", "SECRET-short", 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(yaml_path, cases[i]);
        assert_int_equal(telex_config_load(&cfg, yaml_path, err, sizeof err), -EINVAL);
        if (strstr(err, "SECRET"))
            fail_msg("case %zu leaks the token: %s", i, err);
        assert_non_null(strstr(err, "auth.admin_token"));
    }
}

static void test_loopback_addresses(void **state)
{
    (void)state;
    static const struct {
        const char *listen;
        int loopback;
    } cases[] = {
        {"127.0.0.1:80", 1}, {"127.1.2.3:80", 1}, {"[::1]:80", 1},       {"[::ffff:127.0.0.1]:80", 1},
        {"0.0.0.0:80", 0},   {":80", 0},          {"10.0.0.1:80", 0},    {"[::]:80", 0},
        {"[::ffff:10.0.0.1]:80", 0}, {"8080", 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct sockaddr_storage ss;
        socklen_t len;
        char err[128];
        assert_int_equal(telex_config_parse_listen(cases[i].listen, &ss, &len, err, sizeof err), 0);
        if (telex_config_addr_is_loopback(&ss) != cases[i].loopback)
            fail_msg("%s: want loopback=%d", cases[i].listen, cases[i].loopback);
    }
}

static void test_example_file_loads(void **state)
{
    (void)state; /* config/telex.example.yaml must stay valid */
    char path[512]; /* CMake compiles with absolute paths: find the tree from __FILE__ */
    const char *me = __FILE__, *tail = strstr(me, "tests/unit/test_config.c");
    assert_non_null(tail);
    snprintf(path, sizeof path, "%.*sconfig/telex.example.yaml", (int)(tail - me), me);
    setenv("OPENAI_API_KEY", "sk-example", 1);
    setenv("ANTHROPIC_API_KEY", "sk-ant-example", 1);
    setenv("AZURE_OPENAI_API_KEY", "az-example", 1);
    telex_config_t *cfg = NULL;
    char err[512];
    int rc = telex_config_load(&cfg, path, err, sizeof err);
    if (rc != 0)
        fail_msg("%s", err);
    assert_non_null(telex_config_find_model(cfg, "demo"));
    const telex_preset_t *p = telex_config_find_preset(cfg, "summary");
    assert_non_null(p);
    assert_string_equal(p->template, "Summarise in {{style}}:\n\n{{content}}");
    const telex_model_t *claude = telex_config_find_model(cfg, "claude-sonnet");
    assert_non_null(claude);
    assert_int_equal(claude->routes[0].provider->kind, TELEX_PROVIDER_ANTHROPIC);
    assert_int_equal(claude->routes[1].provider->kind, TELEX_PROVIDER_AZURE);
    assert_string_equal(claude->routes[1].model, "gpt-4o");
    unsetenv("ANTHROPIC_API_KEY");
    unsetenv("AZURE_OPENAI_API_KEY");
    telex_config_free(cfg);
}

/* Every ```yaml block of docs/configuration.md loads. */
static void test_documented_examples_load(void **state)
{
    (void)state;
    char path[512];
    const char *me = __FILE__, *tail = strstr(me, "tests/unit/test_config.c");
    assert_non_null(tail);
    snprintf(path, sizeof path, "%.*sdocs/configuration.md", (int)(tail - me), me);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    static char doc[1 << 18];
    size_t n = fread(doc, 1, sizeof doc - 1, f);
    fclose(f);
    doc[n] = '\0';
    setenv("OPENAI_API_KEY", "sk-a", 1);
    setenv("OPENROUTER_API_KEY", "sk-b", 1);
    setenv("ANTHROPIC_API_KEY", "sk-ant-c", 1);
    setenv("AZURE_OPENAI_API_KEY", "az-d", 1);
    setenv("TELEX_ADMIN_TOKEN", "doc-admin-token-0123456789", 1);
    int blocks = 0;
    for (char *p = strstr(doc, "```yaml\n"); p; p = strstr(p, "```yaml\n")) {
        p += 8;
        char *end = strstr(p, "```");
        assert_non_null(end);
        *end = '\0';
        telex_config_t *cfg = NULL;
        char err[512];
        write_file(yaml_path, p);
        if (telex_config_load(&cfg, yaml_path, err, sizeof err) != 0)
            fail_msg("example %d of docs/configuration.md: %s\n%s", blocks + 1, err, p);
        telex_config_free(cfg);
        blocks++;
        p = end + 3;
    }
    unsetenv("OPENROUTER_API_KEY");
    unsetenv("ANTHROPIC_API_KEY");
    unsetenv("AZURE_OPENAI_API_KEY");
    unsetenv("TELEX_ADMIN_TOKEN");
    assert_true(n < sizeof doc - 1); /* read it all */
    assert_true(blocks >= 6);
}

static void test_yaml_anchors_and_flow_style(void **state)
{
    (void)state;
    telex_config_t *cfg = load_ok("providers:\n"
                                  "  - {name: a, kind: demo, tokens_per_second: 5}\n"
                                  "  - &b {name: b, kind: openai, base_url: 'http://h:1'}\n"
                                  "models:\n"
                                  "  - {name: x, providers: [a, b]}\n"
                                  "  - name: y\n"
                                  "    providers: &fallback\n"
                                  "      - b\n"
                                  "      - a\n"
                                  "  - name: z\n"
                                  "    providers: *fallback\n");
    assert_string_equal(telex_config_find_model(cfg, "z")->routes[0].provider->name, "b");
    assert_string_equal(telex_config_find_model(cfg, "z")->routes[0].model, "z");
    assert_string_equal(telex_config_find_model(cfg, "x")->routes[1].provider->base_url,
                        "http://h:1");
    assert_null(telex_config_find_model(cfg, "demo"));
    assert_null(cfg->catch_all);
    telex_config_free(cfg);
}

/* ---- environment overrides --------------------------------------------- */

static void test_env_overrides_file(void **state)
{
    (void)state;
    setenv("TELEX_LISTEN", "0.0.0.0:7000", 1);
    setenv("TELEX_WORKERS", "7", 1);
    telex_config_t *cfg = load_ok("listen: 127.0.0.1:1234\nworkers: 2\n");
    char ip[64];
    unsigned port;
    assert_string_equal(cfg->listen, "0.0.0.0:7000");
    assert_string_equal(ip_of(cfg, ip, sizeof ip, &port), "0.0.0.0");
    assert_int_equal(port, 7000);
    assert_int_equal(cfg->workers, 7);
    telex_config_free(cfg);

    /* and the command line overrides the environment */
    cfg = load_ok("");
    char err[256];
    assert_int_equal(telex_config_set_listen(cfg, "[::]:0", err, sizeof err), 0);
    assert_string_equal(cfg->listen, "[::]:0");
    assert_int_equal(cfg->listen_addr.ss_family, AF_INET6);
    assert_int_equal(telex_config_set_listen(cfg, "nope", err, sizeof err), -EINVAL);
    assert_string_equal(cfg->listen, "[::]:0"); /* unchanged */
    telex_config_free(cfg);
}

static void test_env_errors(void **state)
{
    (void)state;
    telex_config_t *cfg = (telex_config_t *)1;
    char err[256];

    setenv("TELEX_WORKERS", "-1", 1);
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), -EINVAL);
    assert_null(cfg);
    assert_string_equal(err, "TELEX_WORKERS: expected an integer from 0 to 1024 "
                             "(0 = one per core), got \"-1\"");
    setenv("TELEX_WORKERS", "2000", 1);
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), -EINVAL);
    unsetenv("TELEX_WORKERS");

    setenv("TELEX_LISTEN", "localhost", 1);
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), -EINVAL);
    assert_string_equal(err, "TELEX_LISTEN: invalid listen address \"localhost\": expected "
                             "HOST:PORT, e.g. 127.0.0.1:8080");
    unsetenv("TELEX_LISTEN");

    char cert[160];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    write_file(cert, "x");
    setenv("TELEX_TLS_CERT", cert, 1);
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), -EINVAL);
    assert_string_equal(err, "TELEX_TLS_CERT is set but TELEX_TLS_KEY is not (TLS needs both)");

    setenv("TELEX_TLS_KEY", "/nonexistent/key.pem", 1);
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), -EINVAL);
    assert_string_equal(err,
                        "TELEX_TLS_KEY: cannot read /nonexistent/key.pem: No such file or directory");

    setenv("TELEX_TLS_KEY", cert, 1);
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), 0);
    assert_string_equal(cfg->tls_cert, cert);
    assert_string_equal(cfg->tls_key, cert);
    telex_config_free(cfg);
}

static void test_config_path(void **state)
{
    (void)state;
    assert_null(telex_config_path(NULL));
    setenv("TELEX_CONFIG", "", 1);
    assert_null(telex_config_path(NULL));
    setenv("TELEX_CONFIG", "/etc/telex.yaml", 1);
    assert_string_equal(telex_config_path(NULL), "/etc/telex.yaml");
    assert_string_equal(telex_config_path("./mine.yaml"), "./mine.yaml");
}

/* ---- secrets ------------------------------------------------------------ */

static void test_secrets_never_in_messages(void **state)
{
    (void)state;
    telex_config_t *cfg = (telex_config_t *)1;
    char err[512];
    static const char *const cases[] = {
        "providers:\n  - name: p\n    kind: openai\n    api_key: \"sk-SECRET\\n\"\n"
        "models:\n  - name: m\n    providers: [p]\n",
        "providers:\n  - name: p\n    kind: openai\n    headers:\n      X-Key: \"SECRET\\r\\n\"\n"
        "models:\n  - name: m\n    providers: [p]\n",
        "providers:\n  - name: p\n    kind: openai\n    api_key_env: TELEX_TEST_KEY\n"
        "models:\n  - name: m\n    providers: [p]\n",
        "providers:\n  - name: p\n    kind: openai\n    api_key: sk-SECRET\n"
        "    api_key_env: TELEX_TEST_KEY\nmodels:\n  - name: m\n    providers: [p]\n",
        "providers:\n  - name: p\n    kind: openai\n    headers: \"X-Key: SECRET\"\n"
        "models:\n  - name: m\n    providers: [p]\n",
        "providers:\n  - name: p\n    kind: anthropic\n    api_key: \"sk-ant-SECRET\\n\"\n"
        "models:\n  - name: m\n    providers: [p]\n",
        "providers:\n  - name: p\n    kind: azure\n    endpoint: https://r\n    api_key_env: TELEX_TEST_KEY\n"
        "models:\n  - name: m\n    providers: [p]\n",
        "providers:\n  - name: p\n    kind: anthropic\n    api_key: SECRET\n    headers:\n      x-api-key: SECRET\n"
        "models:\n  - name: m\n    providers: [p]\n",
    };
    setenv("TELEX_TEST_KEY", "SECRET\x01", 1);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        write_file(yaml_path, cases[i]);
        assert_int_equal(telex_config_load(&cfg, yaml_path, err, sizeof err), -EINVAL);
        if (strstr(err, "SECRET"))
            fail_msg("case %zu leaks the secret: %s", i, err);
        assert_non_null(strstr(err, "api_key") ? err : strstr(err, "headers"));
    }
}

/* ---- what each command requires ---------------------------------------- */

/* Three providers, two of them on one variable, and the admin token: every
 * unset variable is named in one message, each once, in file order. */
static const char secrets_yaml[] =
    "providers:\n"
    "  - name: a\n    kind: openai\n    api_key_env: TELEX_TEST_UNSET_A\n"
    "  - name: b\n    kind: anthropic\n    api_key_env: TELEX_TEST_UNSET_B\n"
    "  - name: c\n    kind: openai\n    api_key_env: TELEX_TEST_UNSET_A\n"
    "  - name: d\n    kind: demo\n"
    "models:\n  - name: m\n    providers: [a, b, c, d]\n"
    "auth:\n  admin_token_env: TELEX_TEST_UNSET_C\n"
    "store:\n  path: /tmp/from-file.db\n";

static void test_unset_secrets_reported_together(void **state)
{
    (void)state;
    unsetenv("TELEX_TEST_UNSET_A");
    unsetenv("TELEX_TEST_UNSET_B");
    unsetenv("TELEX_TEST_UNSET_C");
    bool ok = expect_error(secrets_yaml,
                           ":4:18: 3 environment variables are not set: "
                           "\"TELEX_TEST_UNSET_A\" (providers[0].api_key_env, line 4), "
                           "\"TELEX_TEST_UNSET_B\" (providers[1].api_key_env, line 7), "
                           "\"TELEX_TEST_UNSET_C\" (auth.admin_token_env, line 17)");
    /* Set two: the one left is reported in the usual one-variable form. */
    setenv("TELEX_TEST_UNSET_A", "sk-a", 1);
    setenv("TELEX_TEST_UNSET_C", "admin-token-0123456789", 1);
    ok &= expect_error(secrets_yaml,
                       ":7:18: providers[1].api_key_env: environment variable \"TELEX_TEST_UNSET_B\" is not set");
    /* Another mistake in the file is reported first, whatever comes before it. */
    unsetenv("TELEX_TEST_UNSET_A");
    char bad[sizeof secrets_yaml + 64];
    snprintf(bad, sizeof bad, "%sworkers: many\n", secrets_yaml);
    ok &= expect_error(bad, ":20:10: workers: expected an integer, got \"many\"");
    unsetenv("TELEX_TEST_UNSET_C");
    assert_true(ok);
}

/* telex keys / telex usage use only store.*: no secret, no TLS file, no
 * serving override may stop them; the file itself must still be valid. */
static void test_store_use_needs_no_secrets(void **state)
{
    (void)state;
    unsetenv("TELEX_TEST_UNSET_A");
    unsetenv("TELEX_TEST_UNSET_B");
    unsetenv("TELEX_TEST_UNSET_C");
    char yaml[1024], err[512] = "";
    snprintf(yaml, sizeof yaml, "%stls:\n  cert: %s/missing-cert.pem\n  key: %s/missing-key.pem\n", secrets_yaml,
             dir, dir);
    write_file(yaml_path, yaml);
    setenv("TELEX_LISTEN", "nonsense", 1);
    setenv("TELEX_WORKERS", "-3", 1);
    setenv("TELEX_ADMIN_TOKEN", "short", 1);
    setenv("TELEX_TLS_CERT", "/nonexistent/cert.pem", 1);
    telex_config_t *cfg = NULL;
    assert_int_equal(telex_config_load(&cfg, yaml_path, err, sizeof err), -EINVAL); /* serve: refused */
    int rc = telex_config_load_for(&cfg, yaml_path, TELEX_CONFIG_USE_STORE, err, sizeof err);
    if (rc != 0)
        fail_msg("store use failed: %s", err);
    assert_string_equal(cfg->store.path, "/tmp/from-file.db");
    assert_null(cfg->providers[0].api_key);
    assert_null(cfg->auth.admin_token);
    telex_config_free(cfg);
    /* TELEX_DB still overrides the file (it is what these commands use). */
    setenv("TELEX_DB", "/tmp/from-env.db", 1);
    assert_int_equal(telex_config_load_for(&cfg, yaml_path, TELEX_CONFIG_USE_STORE, err, sizeof err), 0);
    assert_string_equal(cfg->store.path, "/tmp/from-env.db");
    telex_config_free(cfg);
    setenv("TELEX_DB", "a\nb", 1);
    assert_int_equal(telex_config_load_for(&cfg, yaml_path, TELEX_CONFIG_USE_STORE, err, sizeof err), -EINVAL);
    assert_string_equal(err, "TELEX_DB: contains control characters");
    unsetenv("TELEX_DB");
    /* A broken file is still an error. */
    write_file(yaml_path, "store:\n  path: [x]\n");
    assert_int_equal(telex_config_load_for(&cfg, yaml_path, TELEX_CONFIG_USE_STORE, err, sizeof err), -EINVAL);
    assert_null(cfg);
    /* Built-in defaults: OPENAI_API_KEY is not read (the catch-all model is still there). */
    setenv("OPENAI_API_KEY", "sk-with\nline-break", 1);
    setenv("OPENAI_BASE_URL", "not a url", 1);
    assert_int_equal(telex_config_load(&cfg, NULL, err, sizeof err), -EINVAL);
    assert_int_equal(telex_config_load_for(&cfg, NULL, TELEX_CONFIG_USE_STORE, err, sizeof err), 0);
    assert_non_null(cfg->catch_all);
    assert_null(cfg->catch_all->routes[0].provider->api_key);
    telex_config_free(cfg);
    for (size_t i = 0; i < sizeof env_names / sizeof env_names[0]; i++)
        unsetenv(env_names[i]);
}

/* ---- every mistake, with its exact message ------------------------------ */

#define P "providers:\n  - name: p\n    kind: openai\n"
#define M "models:\n  - name: m\n    providers: [p]\n"

static const struct {
    const char *yaml;
    const char *msg; /* after the file path */
} error_cases[] = {
    /* YAML itself */
    {"a: [\n", ":2:1: invalid YAML: did not find expected node content "
               "(while parsing a flow node at line 2)"},
    {"workers: 1\n\tlisten: x\n", ":2:1: invalid YAML: found a tab character that violates "
                                  "indentation (while scanning a plain scalar at line 1)"},
    {"streaming:\n\tkeepalive_seconds: 5\n", ":2:1: invalid YAML: found character that cannot start any token "
                                             "(while scanning for the next token at line 2); the character is a "
                                             "tab: YAML indents with spaces only"},
    {"workers: \xff\n", ":1:10: invalid YAML: invalid leading UTF-8 octet"},
    {"workers: 1\n---\nworkers: 2\n", ":3:1: a second YAML document; telex.yaml holds exactly one"},
    {"- listen\n", ":1:1: the top level must be a mapping (listen:, providers:, models:, ...), "
                   "got a list"},
    {"? [a]\n: 1\n", ":1:3: keys must be plain strings"},
    /* unknown and duplicate keys */
    {"wokers: 4\n", ":1:1: wokers: unknown key; did you mean \"workers\"?"},
    {"bogus: 4\n", ":1:1: bogus: unknown key (valid here: listen, workers, tls, providers, models, "
                   "streaming, limits, resume, store, auth, cors, metrics, presets, cluster)"},
    {"workers: 1\nworkers: 2\n", ":2:1: workers: duplicate key (first at line 1)"},
    {"cluster:\n  redis: redis://h:1\n", ":2:3: cluster.redis: unknown key (valid here: redis_url)"},
    {"cluster:\n  redis_url: [1]\n", ":2:14: cluster.redis_url: expected a string, got a list"},
    {"streaming:\n  keepalive_secnds: 1\n",
     ":2:3: streaming.keepalive_secnds: unknown key; did you mean \"keepalive_seconds\"?"},
    {"\"a\\nb\": 1\n", ":1:1: a?b: unknown key (valid here: listen, workers, tls, providers, "
                     "models, streaming, limits, resume, store, auth, cors, metrics, presets, cluster)"},
    /* listen, workers */
    {"listen: [1]\n", ":1:9: listen: expected a string, got a list"},
    {"listen:\n", ":1:8: listen: missing value (expected a string)"},
    {"listen: 1.2.3.4\n", ":1:9: listen: invalid listen address \"1.2.3.4\": expected HOST:PORT, "
                          "e.g. 127.0.0.1:8080"},
    {"listen: ::1:80\n", ":1:9: listen: invalid listen address \"::1:80\": put an IPv6 address "
                         "in brackets, e.g. [::1]:8080"},
    {"listen: 127.0.0.1:99999\n", ":1:9: listen: invalid listen address \"127.0.0.1:99999\": "
                                  "port must be a number from 0 to 65535"},
    {"workers: -1\n", ":1:10: workers: must be at least 0, got -1"},
    {"workers: 2000\n", ":1:10: workers: must be at most 1024, got 2000"},
    {"workers: four\n", ":1:10: workers: expected an integer, got \"four\""},
    {"workers: 1.5\n", ":1:10: workers: expected an integer, got \"1.5\""},
    {"workers: \"4\"\n", ":1:10: workers: expected an integer, got the quoted string \"4\" "
                         "(remove the quotes)"},
    {"workers: 99999999999999999999999\n",
     ":1:10: workers: must be at most 1024, got 99999999999999999999999"},
    /* tls */
    {"tls:\n  cert: /dev/null\n", ":2:3: tls: cert is set but key is not (give both, or neither)"},
    {"tls:\n  key: /dev/null\n", ":2:3: tls: key is set but cert is not (give both, or neither)"},
    {"tls:\n  cert: /nonexistent/c.pem\n  key: /dev/null\n",
     ":2:9: tls.cert: cannot read \"/nonexistent/c.pem\": No such file or directory"},
    {"tls:\n  cert: /dev/null\n  key: /\n", ":3:8: tls.key: cannot read \"/\": Is a directory"},
    {"tls: yes\n", ":1:6: tls: expected a mapping (cert: and key:), got \"yes\""},
    /* streaming, limits, resume */
    {"streaming: 5\n", ":1:12: streaming: expected a mapping (keepalive_seconds:, ...), got \"5\""},
    {"streaming:\n  keepalive_seconds: 0\n",
     ":2:22: streaming.keepalive_seconds: must be greater than 0, got 0"},
    {"streaming:\n  idle_timeout_seconds: -1\n",
     ":2:25: streaming.idle_timeout_seconds: must be greater than 0, got -1"},
    {"streaming:\n  commit_timeout_seconds: .nan\n",
     ":2:27: streaming.commit_timeout_seconds: expected a number, got \".nan\""},
    {"streaming:\n  commit_timeout_seconds: 1e400\n",
     ":2:27: streaming.commit_timeout_seconds: expected a number, got \"1e400\""},
    {"streaming:\n  shutdown_grace_seconds: -0.5\n",
     ":2:27: streaming.shutdown_grace_seconds: must be at least 0, got -0.5"},
    {"streaming:\n  keepalive_seconds: 1e7\n",
     ":2:22: streaming.keepalive_seconds: must be at most 1000000, got 1e7"},
    {"limits:\n  max_body_bytes: 0\n",
     ":2:19: limits.max_body_bytes: must be at least 1 bytes, got 0"},
    {"limits:\n  max_body_bytes: -5\n", ":2:19: limits.max_body_bytes: must be at least 1, got -5"},
    {"limits:\n  max_event_bytes: 32\n",
     ":2:20: limits.max_event_bytes: must be at least 64 bytes, got 32"},
    {"limits:\n  max_event_bytes: 10 parsecs\n",
     ":2:20: limits.max_event_bytes: expected a size in bytes (e.g. 1048576, 1MiB, 512KiB), "
     "got \"10 parsecs\""},
    {"limits:\n  max_header_bytes: 2000GiB\n",
     ":2:21: limits.max_header_bytes: must be at most 1099511627776 bytes, got 2000GiB"},
    {"limits:\n  max_connections: 0\n", ":2:20: limits.max_connections: must be at least 1, got 0"},
    {"limits:\n  max_concurrent_streams: many\n",
     ":2:27: limits.max_concurrent_streams: expected an integer, got \"many\""},
    {"resume:\n  enabled: yes\n", ":2:12: resume.enabled: expected true or false, got \"yes\""},
    {"resume:\n  retry_ms: -5\n", ":2:13: resume.retry_ms: must be at least 0, got -5"},
    {"resume:\n  max_bytes: 0\n", ":2:14: resume.max_bytes: must be at least 1 bytes, got 0"},
    {"resume:\n  retention_seconds: []\n",
     ":2:22: resume.retention_seconds: expected a number, got a list"},
    /* providers and models go together */
    {P, ":1:1: providers: given without models: a file that defines providers must define the "
        "models they serve"},
    {M, ":1:1: models: given without providers: a file that defines models must define the "
        "providers they use (the built-in demo provider is: - name: demo, kind: demo)"},
    {"providers: {}\n" M, ":1:12: providers: expected a list of providers (- name: ...), got a "
                          "mapping"},
    {"providers: []\n" M, ":1:12: providers: the list is empty; define at least one provider"},
    /* providers */
    {"providers:\n  - openai\n" M,
     ":2:5: providers[0]: expected a mapping (name:, kind:, ...), got \"openai\""},
    {"providers:\n  - kind: demo\n" M, ":2:5: providers[0]: missing required key \"name\""},
    {"providers:\n  - name: p\n" M,
     ":2:5: providers[0]: missing required key \"kind\" (one of: openai, demo, anthropic, azure)"},
    {"providers:\n  - name: p\n    kind: opnai\n" M,
     ":3:11: providers[0].kind: unknown provider kind \"opnai\"; did you mean \"openai\"?"},
    {"providers:\n  - name: p\n    kind: bedrock\n" M,
     ":3:11: providers[0].kind: unknown provider kind \"bedrock\" (known kinds: openai, demo, anthropic, azure)"},
    {"providers:\n  - name: p\n    kind: demo\n  - name: p\n    kind: openai\n" M,
     ":4:11: providers[1].name: duplicate provider name \"p\" (first at line 2)"},
    {"providers:\n  - name: \"\"\n    kind: demo\n" M,
     ":2:11: providers[0].name: must not be empty"},
    {"providers:\n  - name: p\n    kind: openai\n    tokens_per_second: 5\n" M,
     ":4:5: providers[0].tokens_per_second: not used by kind openai (only by: demo)"},
    {"providers:\n  - name: p\n    kind: demo\n    base_url: http://x\n" M,
     ":4:5: providers[0].base_url: not used by kind demo (only by: openai, anthropic)"},
    /* http2 */
    {P "    http2: maybe\n" M, ":4:12: providers[0].http2: expected auto, on or off, got \"maybe\""},
    {P "    http2: [on]\n" M, ":4:12: providers[0].http2: expected auto, on or off"},
    {"providers:\n  - name: p\n    kind: demo\n    http2: on\n" M,
     ":4:5: providers[0].http2: not used by kind demo (only by: openai, anthropic, azure)"},
    {P "    base_url: ftp://example.com\n" M,
     ":4:15: providers[0].base_url: must start with http:// or https:// "
     "(e.g. https://api.openai.com/v1)"},
    {P "    base_url: https://\n" M,
     ":4:15: providers[0].base_url: has no host (e.g. https://api.openai.com/v1)"},
    {P "    base_url: https://x:99999/v1\n" M,
     ":4:15: providers[0].base_url: has a bad host or port (e.g. https://api.openai.com/v1)"},
    {P "    base_url: \"https://[::1/v1\"\n" M,
     ":4:15: providers[0].base_url: has a bad host or port (e.g. https://api.openai.com/v1)"},
    {P "    base_url: https://x/v1?a=b\n" M,
     ":4:15: providers[0].base_url: must not contain a query (?) or fragment (#) "
     "(e.g. https://api.openai.com/v1)"},
    {P "    api_key: \"\"\n" M, ":4:14: providers[0].api_key: must not be empty"},
    {P "    api_key: [a]\n" M, ":4:14: providers[0].api_key: expected a string, got a list"},
    {P "    api_key: k\n    api_key_env: K\n" M,
     ":5:5: providers[0].api_key_env: give api_key or api_key_env, not both"},
    {P "    api_key_env: TELEX_TEST_UNSET_VAR\n" M,
     ":4:18: providers[0].api_key_env: environment variable \"TELEX_TEST_UNSET_VAR\" is not set"},
    {P "    api_key_env: [x]\n" M,
     ":4:18: providers[0].api_key_env: expected a string, got a list"},
    {P "    timeout_seconds: 0\n" M,
     ":4:22: providers[0].timeout_seconds: must be greater than 0, got 0"},
    {"providers:\n  - name: p\n    kind: demo\n    tokens_per_second: 0\n" M,
     ":4:24: providers[0].tokens_per_second: must be greater than 0, got 0"},
    {P "    headers: [a]\n" M,
     ":4:14: providers[0].headers: expected a mapping (Header-Name: value), got a list"},
    {P "    headers:\n      X Foo: 1\n" M,
     ":5:7: providers[0].headers.X Foo: not a valid HTTP header name"},
    {P "    headers:\n      X-A: 1\n      x-a: 2\n" M,
     ":6:7: providers[0].headers.x-a: duplicate header (header names ignore case)"},
    {P "    headers:\n      Content-Length: 1\n" M,
     ":5:7: providers[0].headers.Content-Length: telex sets this header itself; it cannot be "
     "configured"},
    {P "    api_key: k\n    headers:\n      authorization: Bearer x\n" M,
     ":6:7: providers[0].headers.authorization: conflicts with api_key/api_key_env (which sends "
     "Authorization: Bearer); use one or the other"},
    {P "    headers:\n      X-A: {b: c}\n" M,
     ":5:12: providers[0].headers.X-A: expected a string, got a mapping"},
    /* anthropic and azure */
#define PA "providers:\n  - name: p\n    kind: anthropic\n"
#define PZ "providers:\n  - name: p\n    kind: azure\n    endpoint: https://r.openai.azure.com\n"
    {"providers:\n  - name: p\n    kind: antropic\n" M,
     ":3:11: providers[0].kind: unknown provider kind \"antropic\"; did you mean \"anthropic\"?"},
    {"providers:\n  - name: p\n    kind: azur\n" M,
     ":3:11: providers[0].kind: unknown provider kind \"azur\"; did you mean \"azure\"?"},
    {PA "    endpoint: https://x\n" M, ":4:5: providers[0].endpoint: not used by kind anthropic (only by: azure)"},
    {PA "    api_version: x\n" M, ":4:5: providers[0].api_version: not used by kind anthropic (only by: azure)"},
    {PZ "    base_url: https://x\n" M,
     ":5:5: providers[0].base_url: not used by kind azure (only by: openai, anthropic)"},
    {P "    max_tokens: 5\n" M, ":4:5: providers[0].max_tokens: not used by kind openai (only by: anthropic)"},
    {"providers:\n  - name: p\n    kind: demo\n    api_key: k\n" M,
     ":4:5: providers[0].api_key: not used by kind demo (only by: openai, anthropic, azure)"},
    {P "    anthropic_version: x\n" M,
     ":4:5: providers[0].anthropic_version: not used by kind openai (only by: anthropic)"},
    {PA "    max_tokens: 0\n" M, ":4:17: providers[0].max_tokens: must be at least 1, got 0"},
    {PA "    max_tokens: \"100\"\n" M,
     ":4:17: providers[0].max_tokens: expected an integer, got the quoted string \"100\" (remove the quotes)"},
    {PA "    anthropic_version: \"\"\n" M, ":4:24: providers[0].anthropic_version: must not be empty"},
    {PA "    base_url: api.anthropic.com\n" M,
     ":4:15: providers[0].base_url: must start with http:// or https:// (e.g. https://api.anthropic.com)"},
    {PA "    api_key: k\n    headers:\n      X-API-Key: k2\n" M,
     ":6:7: providers[0].headers.X-API-Key: conflicts with api_key/api_key_env (which sends x-api-key); use one "
     "or the other"},
    {PA "    headers:\n      anthropic-version: \"2023-01-01\"\n" M,
     ":5:7: providers[0].headers.anthropic-version: set by the provider's anthropic_version key"},
    {"providers:\n  - name: p\n    kind: azure\n" M,
     ":2:5: providers[0]: missing required key \"endpoint\" (the resource's URL, e.g. "
     "https://my-resource.openai.azure.com)"},
    {"providers:\n  - name: p\n    kind: azure\n    endpoint: r.openai.azure.com\n" M,
     ":4:15: providers[0].endpoint: must start with http:// or https:// (e.g. "
     "https://my-resource.openai.azure.com)"},
    {"providers:\n  - name: p\n    kind: azure\n    endpoint: https://r/?x=1\n" M,
     ":4:15: providers[0].endpoint: must not contain a query (?) or fragment (#) (e.g. "
     "https://my-resource.openai.azure.com)"},
    {PZ "    api_version: \"2024 10\"\n" M,
     ":5:18: providers[0].api_version: \"2024 10\" is not an API version (e.g. 2024-10-21 or "
     "2025-01-01-preview)"},
    {PZ "    api_key: k\n    headers:\n      api-key: k2\n" M,
     ":7:7: providers[0].headers.api-key: conflicts with api_key/api_key_env (which sends api-key); use one or "
     "the other"},
    {PZ "models:\n  - name: m\n    providers:\n      - provider: p\n        model: \"my/deployment\"\n",
     ":9:16: models[0].providers[0].model: \"my/deployment\" is not an Azure deployment name (letters, digits, "
     "'.', '_' and '-')"},
    {PZ "models:\n  - name: \"gpt 4o\"\n    providers: [p]\n",
     ":7:17: models[0].providers[0]: the model name \"gpt 4o\" would be the Azure deployment name, which allows "
     "only letters, digits, '.', '_' and '-'; give the deployment with model:"},
    /* models */
    {P "models: m\n", ":4:9: models: expected a list of models (- name: ...), got \"m\""},
    {P "models: []\n", ":4:9: models: the list is empty; define at least one model"},
    {P "models:\n  - providers: [p]\n", ":5:5: models[0]: missing required key \"name\""},
    {P "models:\n  - name: m\n", ":5:5: models[0]: missing required key \"providers\" (the "
                                 "providers that serve this model, in fallback order)"},
    {P "models:\n  - name: m\n    providers: []\n",
     ":6:16: models[0].providers: the list is empty; give at least one provider"},
    {P "models:\n  - name: m\n    providers: p\n",
     ":6:16: models[0].providers: expected a list (- provider: ...), got \"p\""},
    {P "models:\n  - name: m\n    providers: [p]\n  - name: m\n    providers: [p]\n",
     ":7:11: models[1].name: duplicate model name \"m\" (first at line 5)"},
    {P "models:\n  - name: m\n    providers:\n      - provider: opnai\n",
     ":7:19: models[0].providers[0].provider: unknown provider \"opnai\" (defined providers: "
     "p)"},
    {"providers:\n  - name: openai\n    kind: openai\n"
     "models:\n  - name: m\n    providers:\n      - provider: local\n      - provider: opnai\n",
     ":7:19: models[0].providers[0].provider: unknown provider \"local\" (defined providers: "
     "openai)"},
    {"providers:\n  - name: openai\n    kind: openai\n"
     "models:\n  - name: m\n    providers:\n      - openai\n      - opnai\n",
     ":8:9: models[0].providers[1]: unknown provider \"opnai\"; did you mean \"openai\"?"},
    {P "models:\n  - name: m\n    providers:\n      - model: x\n",
     ":7:9: models[0].providers[0]: missing required key \"provider\""},
    {P "models:\n  - name: m\n    providers:\n      - provider: p\n        modle: x\n",
     ":8:9: models[0].providers[0].modle: unknown key; did you mean \"model\"?"},
    {P "models:\n  - name: m\n    providers:\n      - provider: p\n        model: \"\"\n",
     ":8:16: models[0].providers[0].model: must not be empty"},
    {P "models:\n  - name: m\n    providers:\n      - provider: p\n"
       "        output_price_per_mtok: -1\n",
     ":8:32: models[0].providers[0].output_price_per_mtok: must be at least 0, got -1"},
    {P "models:\n  - name: m\n    providers:\n      - [p]\n",
     ":7:9: models[0].providers[0]: expected a provider name or a mapping (provider:, model:), "
     "got a list"},
    {P "models:\n  - name: \"a\\tb\\nc\"\n    providers: [p]\n",
     ":5:11: models[0].name: must not contain line breaks or control characters"},
    {P "models:\n  - name: \"a\\0b\"\n    providers: [p]\n",
     ":5:11: models[0].name: must not contain NUL bytes"},
    {P "models:\n  - name: m\n    providers:\n      - provider: p\n"
       "        cached_input_price_per_mtok: -0.1\n",
     ":8:38: models[0].providers[0].cached_input_price_per_mtok: must be at least 0, got -0.1"},
    /* store, auth, cors, metrics */
    {"store: ./x.db\n", ":1:8: store: expected a mapping (path:, ...), got \"./x.db\""},
    {"store:\n  path: \"\"\n", ":2:9: store.path: must not be empty"},
    {"store:\n  pth: x\n", ":2:3: store.pth: unknown key; did you mean \"path\"?"},
    {"store:\n  flush_interval_seconds: 0\n",
     ":2:27: store.flush_interval_seconds: must be greater than 0, got 0"},
    {"store:\n  max_pending: 0\n", ":2:16: store.max_pending: must be at least 1, got 0"},
    {"auth:\n  admin_token: short\n",
     ":2:16: auth.admin_token: must be at least 16 characters (a long random string, e.g. from "
     "`openssl rand -hex 32`)"},
    {"auth:\n  admin_token: \"0123456789abcdef 0123\"\n",
     ":2:16: auth.admin_token: must not contain spaces or control characters"},
    {"auth:\n  admin_token_env: TELEX_TEST_UNSET_VAR\n",
     ":2:20: auth.admin_token_env: environment variable \"TELEX_TEST_UNSET_VAR\" is not set"},
    {"auth:\n  admin_token: 0123456789abcdef0\n  admin_token_env: X\n",
     ":3:3: auth.admin_token_env: give admin_token or admin_token_env, not both"},
    {"auth:\n  allow_anonymous: yes\n",
     ":2:20: auth.allow_anonymous: expected true or false, got \"yes\""},
    {"cors:\n  origins: https://a.example\n",
     ":2:12: cors.origins: expected a list of origins (- https://app.example.com), got "
     "\"https://a.example\""},
    {"cors:\n  origins: [\"https://a.example/\"]\n",
     ":2:13: cors.origins[0]: \"https://a.example/\" must not have a path (not even a trailing /): "
     "an origin is scheme://host[:port]"},
    {"cors:\n  origins: [a.example]\n",
     ":2:13: cors.origins[0]: \"a.example\" must be \"*\" or scheme://host[:port], e.g. "
     "https://app.example.com"},
    {"cors:\n  origins: [\"https://a.example\", \"https://A.example\"]\n",
     ":2:34: cors.origins[1]: duplicate origin \"https://A.example\""},
    {"cors:\n  max_age_seconds: 100000\n",
     ":2:20: cors.max_age_seconds: must be at most 86400, got 100000"},
    {"metrics:\n  require_admin: 1\n",
     ":2:18: metrics.require_admin: expected true or false, got \"1\""},
    /* presets */
    {"presets: {}\n", ":1:10: presets: expected a list of presets (- name: ...), got a mapping"},
    {"presets:\n  - model: demo\n", ":2:5: presets[0]: missing required key \"name\""},
    {"presets:\n  - name: s\n", ":2:5: presets[0]: missing required key \"model\" (the model the "
                                 "preset asks for)"},
    {"presets:\n  - name: \"a b\"\n    model: demo\n",
     ":2:11: presets[0].name: \"a b\": a preset name is 1 to 64 letters, digits, '.', '_' or '-'"},
    {"presets:\n  - name: s\n    model: demo\n  - name: s\n    model: demo\n",
     ":4:11: presets[1].name: duplicate preset name \"s\" (first at line 2)"},
    {"presets:\n  - name: s\n    model: dmeo\n",
     ":3:12: presets[0].model: unknown model \"dmeo\"; did you mean \"demo\"?"},
    {"presets:\n  - name: s\n    model: gpt-9\n",
     ":3:12: presets[0].model: unknown model \"gpt-9\" (defined models: demo)"},
    {"presets:\n  - name: s\n    model: preset:t\n",
     ":3:12: presets[0].model: a preset cannot use another preset"},
    {"presets:\n  - name: s\n    model: demo\n    templat: x\n",
     ":4:5: presets[0].templat: unknown key; did you mean \"template\"?"},
    {"presets:\n  - name: s\n    model: demo\n    template: \"Say {{style\"\n",
     ":4:15: presets[0].template: unterminated placeholder \"{{style\" (close it with }})"},
    {"presets:\n  - name: s\n    model: demo\n    system: \"Be {{ the style }}\"\n",
     ":4:13: presets[0].system: invalid placeholder \"{{ the style }}\": a placeholder is {{name}}, name "
     "made of letters, digits and _"},
    {"presets:\n  - name: s\n    model: demo\n    template: \"{{}}\"\n",
     ":4:15: presets[0].template: invalid placeholder \"{{}}\": a placeholder is {{name}}, name made of "
     "letters, digits and _"},
    {"presets:\n  - name: s\n    model: demo\n    system: \"a\\x01b\"\n",
     ":4:13: presets[0].system: must not contain control characters"},
    {"presets:\n  - name: s\n    model: demo\n    parameters: [1]\n",
     ":4:17: presets[0].parameters: expected a mapping, got a list"},
    {"presets:\n  - name: s\n    model: demo\n    parameters:\n      model: x\n",
     ":5:7: presets[0].parameters.model: set by the preset's own model: key"},
    {"presets:\n  - name: s\n    model: demo\n    parameters:\n      messages: []\n",
     ":5:7: presets[0].parameters.messages: built from the preset's system: and template: keys"},
    {"presets:\n  - name: s\n    model: demo\n    parameters:\n      temperature: 3\n",
     ":5:20: presets[0].parameters.temperature: must be from 0 to 2"},
    {"presets:\n  - name: s\n    model: demo\n    parameters:\n      max_tokens: 1.5\n",
     ":5:19: presets[0].parameters.max_tokens: expected an integer"},
    {"presets:\n  - name: s\n    model: demo\n    parameters:\n      max_tokens: \"10\"\n",
     ":5:19: presets[0].parameters.max_tokens: expected an integer"},
    {"presets:\n  - name: s\n    model: demo\n    parameters:\n      stream: 1\n",
     ":5:15: presets[0].parameters.stream: expected true or false"},
    {"presets:\n  - name: s\n    model: demo\n    parameters:\n      top_p: 1\n      top_p: 2\n",
     ":6:7: presets[0].parameters.top_p: duplicate key (first at line 5)"},
    {"presets:\n  - name: s\n    model: demo\n    variables:\n      2x: a\n",
     ":5:7: presets[0].variables.2x: a variable name is made of letters, digits and _"},
    {"presets:\n  - name: s\n    model: demo\n    variables:\n      x: [a]\n",
     ":5:10: presets[0].variables.x: expected a string, got a list"},
};

static void test_error_messages(void **state)
{
    (void)state;
    size_t failed = 0, n = sizeof error_cases / sizeof error_cases[0];
    for (size_t i = 0; i < n; i++)
        failed += !expect_error(error_cases[i].yaml, error_cases[i].msg);
    if (failed)
        fail_msg("%zu of %zu error cases gave another message", failed, n);
}

/* ---- HOST:PORT ---------------------------------------------------------- */

static void test_parse_listen(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        int family;
        const char *ip;
        unsigned port;
    } ok[] = {
        {"127.0.0.1:8080", AF_INET, "127.0.0.1", 8080},
        {"0.0.0.0:0", AF_INET, "0.0.0.0", 0},
        {":9000", AF_INET, "0.0.0.0", 9000},
        {"*:9000", AF_INET, "0.0.0.0", 9000},
        {"8081", AF_INET, "127.0.0.1", 8081},
        {"[::1]:8080", AF_INET6, "::1", 8080},
        {"[::]:65535", AF_INET6, "::", 65535},
        {"[::ffff:10.0.0.1]:1", AF_INET6, "::ffff:10.0.0.1", 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct sockaddr_storage ss;
        socklen_t len = 0;
        char err[256] = "", ip[64];
        int rc = telex_config_parse_listen(ok[i].in, &ss, &len, err, sizeof err);
        if (rc != 0)
            fail_msg("%s: %s", ok[i].in, err);
        assert_int_equal(ss.ss_family, ok[i].family);
        unsigned port;
        if (ok[i].family == AF_INET) {
            struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
            assert_int_equal(len, sizeof *sin);
            inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof ip);
            port = ntohs(sin->sin_port);
        } else {
            struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
            assert_int_equal(len, sizeof *sin6);
            inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof ip);
            port = ntohs(sin6->sin6_port);
        }
        assert_string_equal(ip, ok[i].ip);
        assert_int_equal(port, ok[i].port);
    }

    /* a name resolves (to whichever loopback address comes first) */
    struct sockaddr_storage ss;
    socklen_t len;
    char err[256];
    assert_int_equal(telex_config_parse_listen("localhost:80", &ss, &len, err, sizeof err), 0);
    assert_true(ss.ss_family == AF_INET || ss.ss_family == AF_INET6);

    static const struct {
        const char *in, *msg;
    } bad[] = {
        {"", "empty listen address (expected HOST:PORT, e.g. 127.0.0.1:8080)"},
        {"127.0.0.1", "invalid listen address \"127.0.0.1\": expected HOST:PORT, e.g. "
                      "127.0.0.1:8080"},
        {"127.0.0.1:", "invalid listen address \"127.0.0.1:\": port must be a number from 0 to "
                       "65535"},
        {"127.0.0.1:http", "invalid listen address \"127.0.0.1:http\": port must be a number "
                           "from 0 to 65535"},
        {"127.0.0.1:65536", "invalid listen address \"127.0.0.1:65536\": port must be a number "
                            "from 0 to 65535"},
        {"127.0.0.1:-1", "invalid listen address \"127.0.0.1:-1\": port must be a number from 0 "
                         "to 65535"},
        {"::1:8080", "invalid listen address \"::1:8080\": put an IPv6 address in brackets, e.g. "
                     "[::1]:8080"},
        {"[::1]8080", "invalid listen address \"[::1]8080\": expected [IPV6]:PORT"},
        {"[::1", "invalid listen address \"[::1\": expected [IPV6]:PORT"},
        {"[]:80", "invalid listen address \"[]:80\": bad IPv6 address"},
        {"127.0.0.1 :80", "invalid listen address: contains spaces or control characters"},
        {"1.2.3.4:80\n", "invalid listen address: contains spaces or control characters"},
        {"[127.0.0.1]:80", NULL}, /* getaddrinfo's wording varies: just fail */
        {"[::g]:80", NULL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        int rc = telex_config_parse_listen(bad[i].in, &ss, &len, err, sizeof err);
        if (rc != -EINVAL)
            fail_msg("%s: expected -EINVAL, got %d", bad[i].in, rc);
        if (bad[i].msg)
            assert_string_equal(err, bad[i].msg);
        else
            assert_non_null(strstr(err, "invalid listen address"));
    }
    assert_int_equal(telex_config_parse_listen(NULL, &ss, &len, NULL, 0), -EINVAL);
}

/* Every allocation, failed in turn: -ENOMEM and "out of memory", no crash,
 * no leak (the sanitizer build checks), until the load succeeds. */
static void test_out_of_memory_everywhere(void **state)
{
    (void)state;
    char yaml[4096], err[512];
    setenv("TELEX_TEST_KEY", "sk-from-env", 1);
    setenv("OPENAI_API_KEY", "sk-x", 1);
    setenv("TELEX_LISTEN", "127.0.0.1:9", 1);
    write_file(yaml_path, full_yaml_with_tls(yaml, sizeof yaml));
    for (int with_file = 0; with_file < 2; with_file++) {
        long n;
        for (n = 0; n < 100000; n++) {
            telex_config_t *cfg = (telex_config_t *)1;
            telex_config_test_fail_alloc(n);
            int rc = telex_config_load(&cfg, with_file ? yaml_path : NULL, err, sizeof err);
            telex_config_test_fail_alloc(-1);
            if (rc == 0) {
                telex_config_free(cfg);
                break;
            }
            if (rc != -ENOMEM || strcmp(err, "out of memory") != 0)
                fail_msg("allocation %ld failed: got %d \"%s\"", n, rc, err);
            assert_null(cfg);
        }
        if (n < (with_file ? 30 : 5)) /* the injection did reach the loader */
            fail_msg("only %ld allocations (file: %d)", n, with_file);
    }
}

static void test_kind_names(void **state)
{
    (void)state;
    assert_string_equal(telex_provider_kind_name(TELEX_PROVIDER_OPENAI), "openai");
    assert_string_equal(telex_provider_kind_name(TELEX_PROVIDER_DEMO), "demo");
    assert_string_equal(telex_provider_kind_name(TELEX_PROVIDER_ANTHROPIC), "anthropic");
    assert_string_equal(telex_provider_kind_name(TELEX_PROVIDER_AZURE), "azure");
    for (int k = 0; k < TELEX_PROVIDER_KIND_COUNT; k++)
        assert_non_null(telex_provider_kind_name((telex_provider_kind_t)k));
    assert_null(telex_provider_kind_name(TELEX_PROVIDER_KIND_COUNT));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_defaults_without_file),
        T(test_openai_key_routes_every_other_model),
        T(test_openai_base_url_without_key),
        T(test_openai_key_with_line_break_is_refused_unquoted),
        T(test_unreadable_file),
        T(test_empty_and_partial_files_keep_defaults),
        T(test_full_file),
        T(test_example_file_loads),
        T(test_documented_examples_load),
        T(test_yaml_anchors_and_flow_style),
        T(test_env_overrides_file),
        T(test_env_errors),
        T(test_config_path),
        T(test_secrets_never_in_messages),
        T(test_unset_secrets_reported_together),
        T(test_store_use_needs_no_secrets),
        T(test_error_messages),
        T(test_parse_listen),
        T(test_out_of_memory_everywhere),
        T(test_kind_names),
        T(test_store_path_defaults_and_env),
        T(test_admin_token_never_in_messages),
        T(test_loopback_addresses),
        T(test_provider_http2),
        T(test_anthropic_and_azure_providers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
