/*
 * tests/unit/test_presets.c — presets from a real telex.yaml: the exact
 * chat body POST /v1/presets/{name} produces (system prompt, expanded
 * template, defaults, client overrides, stream default), "preset:NAME" on
 * chat requests (every user turn templated, conversation kept), and each
 * error a user can cause (404 unknown preset, 400 missing or unknown
 * variable, wrong types, messages/model sent, expansion past the body
 * limit).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config/config.h"
#include "gateway/presets.h"

static const char yaml[] =
    "providers:\n"
    "  - name: demo\n"
    "    kind: demo\n"
    "models:\n"
    "  - name: demo\n"
    "    providers: [demo]\n"
    "  - name: gpt-4o-mini\n"
    "    providers: [demo]\n"
    "presets:\n"
    "  - name: summary\n"
    "    model: gpt-4o-mini\n"
    "    description: Summarise a text\n"
    "    system: \"You summarise for {{ audience }}.\"\n"
    "    template: \"Summarise in {{style}}:\\n\\n{{content}}\"\n"
    "    parameters:\n"
    "      max_tokens: 200\n"
    "      temperature: 0.2\n"
    "    variables:\n"
    "      audience: engineers\n"
    "  - name: joke\n"
    "    model: demo\n"
    "    template: Tell a joke.\n"
    "  - name: plain\n"
    "    model: demo\n";

static char dir[64];
static telex_config_t *cfg;
static telex_presets_t *ps;

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/telex-presets-XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    char path[128], err[256];
    snprintf(path, sizeof path, "%s/telex.yaml", dir);
    FILE *f = fopen(path, "w");
    fputs(yaml, f);
    fclose(f);
    if (telex_config_load(&cfg, path, err, sizeof err) != 0) {
        fprintf(stderr, "%s\n", err);
        return -1;
    }
    unlink(path);
    rmdir(dir);
    return telex_presets_new(&ps, cfg, err, sizeof err);
}

static int teardown(void **state)
{
    (void)state;
    telex_presets_free(ps);
    telex_config_free(cfg);
    return 0;
}

static json_t *J(const char *text)
{
    json_error_t e;
    json_t *j = json_loads(text, JSON_DECODE_ANY, &e);
    if (j == NULL)
        fail_msg("bad test JSON: %s", e.text);
    return j;
}

static char *dump(const json_t *j)
{
    return json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
}

static void expand_ok(const char *name, const char *request, const char *want)
{
    json_t *req = J(request), *out = NULL;
    telex_api_error_t e;
    memset(&e, 0, sizeof e);
    int rc = telex_presets_expand(ps, name, strlen(name), req, 1 << 20, &out, &e);
    if (rc != 0)
        fail_msg("%s %s: %d %s", name, request, rc, e.message);
    char *text = dump(out);
    if (strcmp(text, want) != 0)
        fail_msg("%s %s:\nwant %s\ngot  %s", name, request, want, text);
    free(text);
    json_decref(out);
    json_decref(req);
}

static void expand_bad(const char *name, const char *request, size_t limit, int status, const char *code,
                       const char *param, const char *message)
{
    json_t *req = J(request), *out = (json_t *)1;
    telex_api_error_t e;
    memset(&e, 0, sizeof e);
    int rc = telex_presets_expand(ps, name, strlen(name), req, limit, &out, &e);
    json_decref(req);
    if (rc != status || e.status != status || strcmp(e.code, code) != 0 || (param == NULL) != (e.param == NULL) ||
        (param && strcmp(param, e.param) != 0) || strcmp(e.message, message) != 0)
        fail_msg("%s %s: got %d code %s param %s \"%s\"", name, request, rc, e.code, e.param ? e.param : "(null)",
                 e.message);
    assert_null(out);
}

static void test_expand(void **state)
{
    (void)state;
    expand_ok("summary", "{\"content\":\"The text.\",\"variables\":{\"style\":\"one line\"}}",
              "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":\"You summarise for "
              "engineers.\"},{\"role\":\"user\",\"content\":\"Summarise in one line:\\n\\nThe text.\"}],"
              "\"max_tokens\":200,\"temperature\":0.20000000000000001,\"stream\":true}");
    /* client variables beat defaults; client parameters beat the preset's; stream:false kept */
    expand_ok("summary",
              "{\"content\":\"x\",\"variables\":{\"style\":\"haiku\",\"audience\":\"kids\"},\"max_tokens\":50,"
              "\"stream\":false,\"user\":\"u1\"}",
              "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":\"You summarise for kids.\"},"
              "{\"role\":\"user\",\"content\":\"Summarise in haiku:\\n\\nx\"}],\"max_tokens\":50,"
              "\"temperature\":0.20000000000000001,\"stream\":false,\"user\":\"u1\"}");
    /* numbers and booleans as text; a value holding {{...}} is not expanded again */
    expand_ok("summary", "{\"content\":\"{{style}}\",\"variables\":{\"style\":3,\"audience\":true}}",
              "{\"model\":\"gpt-4o-mini\",\"messages\":[{\"role\":\"system\",\"content\":\"You summarise for true.\"},"
              "{\"role\":\"user\",\"content\":\"Summarise in 3:\\n\\n{{style}}\"}],\"max_tokens\":200,"
              "\"temperature\":0.20000000000000001,\"stream\":true}");
    /* a template without placeholders: no content needed, an empty body works */
    expand_ok("joke", "{}",
              "{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell a joke.\"}],\"stream\":true}");
    /* no template: the content is the user message */
    expand_ok("plain", "{\"content\":\"hello\",\"stream_options\":{\"include_usage\":true}}",
              "{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"hello\"}],"
              "\"stream_options\":{\"include_usage\":true},\"stream\":true}");
}

static void test_expand_errors(void **state)
{
    (void)state;
    expand_bad("nope", "{}", 1 << 20, 404, "preset_not_found", NULL,
               "The preset 'nope' does not exist on this gateway. GET /v1/presets lists the presets.");
    expand_bad("summary", "{\"variables\":{\"style\":\"s\"}}", 1 << 20, 400, "missing_variable", "content",
               "The preset 'summary' needs \"content\": the text to work on.");
    expand_bad("summary", "{\"content\":\"x\"}", 1 << 20, 400, "missing_variable", "variables",
               "The preset 'summary' needs the variable 'style': send it in \"variables\".");
    expand_bad("summary", "{\"content\":\"x\",\"variables\":{\"style\":\"s\",\"stlye\":\"t\"}}", 1 << 20, 400,
               "unknown_variable", "variables",
               "The preset 'summary' does not use the variable 'stlye' (it uses: audience, style, content).");
    expand_bad("summary", "{\"content\":\"x\",\"variables\":{\"style\":[1]}}", 1 << 20, 400, "invalid_request",
               "variables", "variables.style must be a string, a number or a boolean.");
    expand_bad("summary", "{\"content\":\"x\",\"variables\":[\"style\"]}", 1 << 20, 400, "invalid_request",
               "variables", "variables must be an object of name: value.");
    expand_bad("summary", "{\"content\":5}", 1 << 20, 400, "invalid_request", "content", "content must be a string.");
    expand_bad("summary", "[1]", 1 << 20, 400, "invalid_request", NULL,
               "The request body must be a JSON object: {\"content\": \"...\", \"variables\": {...}}.");
    expand_bad("summary", "{\"model\":\"gpt-4o\",\"content\":\"x\"}", 1 << 20, 400, "invalid_request", "model",
               "The preset 'summary' chooses the model; do not send \"model\".");
    expand_bad("summary", "{\"messages\":[]}", 1 << 20, 400, "invalid_request", "messages",
               "POST /v1/presets/summary builds the messages itself: send \"content\" (and \"variables\"). To "
               "continue a conversation, use /v1/chat/completions with \"model\": \"preset:summary\".");
    /* the expansion grows past the limit: a small body, a large result */
    expand_bad("summary", "{\"content\":\"0123456789012345678901234567890123456789\",\"variables\":{\"style\":\"s\"}}",
               100, 400, "preset_too_large", NULL,
               "The preset 'summary' expands to more than 100 bytes (limits.max_body_bytes).");
    /* each text fits but the whole body does not */
    expand_bad("plain", "{\"content\":\"0123456789012345678901234567890123456789\"}", 60, 400, "preset_too_large",
               NULL, "The preset 'plain' expands to more than 60 bytes (limits.max_body_bytes).");
}

static void test_wire_forms(void **state)
{
    (void)state;
    const char *name;
    size_t n;
    assert_int_equal(telex_presets_name_from_path("/v1/presets/summary", 19, &name, &n), 0);
    assert_int_equal(n, 7);
    assert_memory_equal(name, "summary", 7);
    assert_int_equal(telex_presets_name_from_path("/presets/joke", 13, &name, &n), 0);
    assert_int_equal(telex_presets_name_from_path("/v1/presets/", 12, &name, &n), -1);
    assert_int_equal(telex_presets_name_from_path("/v1/presets/a/b", 15, &name, &n), -1);
    assert_int_equal(telex_presets_name_from_path("/v1/models", 10, &name, &n), -1);

    telex_api_error_t e;
    size_t len = 0;
    const char *path = "/v1/presets/joke";
    char *text = telex_presets_expand_request(ps, path, strlen(path), "", 0, 1 << 20, &len, &e);
    assert_non_null(text);
    assert_string_equal(text, "{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell a joke.\"}],"
                              "\"stream\":true}");
    assert_int_equal(len, strlen(text));
    free(text);
    assert_null(telex_presets_expand_request(ps, path, strlen(path), "{\"a\":", 5, 1 << 20, &len, &e));
    assert_int_equal(e.status, 400);
    assert_non_null(strstr(e.message, "The request body is not valid JSON"));
    assert_null(telex_presets_expand_request(ps, path, strlen(path), "{\"a\":1,\"a\":2}", 13, 1 << 20, &len, &e));
    assert_int_equal(e.status, 400);
    assert_null(telex_presets_expand_request(ps, path, strlen(path), "{\"content\":\"xx\"}", 16, 10, &len, &e));
    assert_int_equal(e.status, 413);
    path = "/v1/presets/nope%0a";
    assert_null(telex_presets_expand_request(ps, path, strlen(path), "{}", 2, 1 << 20, &len, &e));
    assert_int_equal(e.status, 404);
    assert_string_equal(e.message,
                        "The preset 'nope%0a' does not exist on this gateway. GET /v1/presets lists the presets.");
}

static void test_preset_model_on_chat(void **state)
{
    (void)state;
    json_t *body = J("{\"model\":\"preset:summary\",\"variables\":{\"style\":\"bullets\"},\"temperature\":1,"
                     "\"messages\":[{\"role\":\"user\",\"content\":\"first text\"},"
                     "{\"role\":\"assistant\",\"content\":\"- a summary\"},"
                     "{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"parts stay\"}]},"
                     "{\"role\":\"user\",\"content\":\"second text\"}],\"stream\":true}");
    telex_api_error_t e;
    const char *name = NULL;
    assert_int_equal(telex_presets_apply(ps, body, 1 << 20, &name, &e), 0);
    assert_string_equal(name, "summary");
    char *text = dump(body);
    assert_string_equal(text, "{\"model\":\"gpt-4o-mini\",\"temperature\":1,\"messages\":[{\"role\":\"system\","
                              "\"content\":\"You summarise for engineers.\"},{\"role\":\"user\",\"content\":"
                              "\"Summarise in bullets:\\n\\nfirst text\"},{\"role\":\"assistant\",\"content\":\"- a "
                              "summary\"},{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":\"parts stay\"}]},"
                              "{\"role\":\"user\",\"content\":\"Summarise in bullets:\\n\\nsecond text\"}],"
                              "\"stream\":true,\"max_tokens\":200}");
    free(text);
    json_decref(body);

    /* not a preset: untouched */
    body = J("{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    assert_int_equal(telex_presets_apply(ps, body, 1 << 20, &name, &e), 0);
    assert_null(name);
    text = dump(body);
    assert_string_equal(text, "{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}");
    free(text);
    json_decref(body);

    /* errors leave the body as it was */
    static const char orig[] = "{\"model\":\"preset:summary\",\"messages\":[{\"role\":\"user\",\"content\":\"x\"}]}";
    body = J(orig);
    assert_int_equal(telex_presets_apply(ps, body, 1 << 20, &name, &e), 400);
    assert_string_equal(e.code, "missing_variable");
    text = dump(body);
    assert_string_equal(text, orig);
    free(text);
    json_decref(body);
    body = J("{\"model\":\"preset:nope\",\"messages\":[]}");
    assert_int_equal(telex_presets_apply(ps, body, 1 << 20, &name, &e), 404);
    assert_string_equal(e.param, "model");
    json_decref(body);

    /* the text form keeps the caller's body */
    body = J("{\"model\":\"preset:joke\",\"messages\":[{\"role\":\"user\",\"content\":\"ignored\"}],\"n\":1}");
    size_t len;
    text = telex_presets_apply_text(ps, body, 1 << 20, &len, &e);
    assert_string_equal(text, "{\"model\":\"demo\",\"messages\":[{\"role\":\"user\",\"content\":\"Tell a joke.\"}],"
                              "\"n\":1}");
    free(text);
    assert_string_equal(json_string_value(json_object_get(body, "model")), "preset:joke");
    json_decref(body);
}

static void test_list(void **state)
{
    (void)state;
    assert_int_equal(telex_presets_count(ps), 3);
    json_t *l = telex_presets_list(ps);
    char *text = dump(l);
    assert_string_equal(text, "{\"object\":\"list\",\"data\":[{\"id\":\"summary\",\"object\":\"preset\",\"model\":"
                              "\"gpt-4o-mini\",\"description\":\"Summarise a text\",\"variables\":[\"audience\","
                              "\"style\",\"content\"],\"defaults\":{\"audience\":\"engineers\"}},{\"id\":\"joke\","
                              "\"object\":\"preset\",\"model\":\"demo\",\"description\":null,\"variables\":[],"
                              "\"defaults\":{}},{\"id\":\"plain\",\"object\":\"preset\",\"model\":\"demo\","
                              "\"description\":null,\"variables\":[\"content\"],\"defaults\":{}}]}");
    assert_null(strstr(text, "You summarise")); /* prompts are not listed */
    free(text);
    json_decref(l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_expand_errors),
        cmocka_unit_test(test_wire_forms),
        cmocka_unit_test(test_preset_model_on_chat),
        cmocka_unit_test(test_list),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
