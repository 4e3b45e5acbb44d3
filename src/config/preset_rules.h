/*
 * config/preset_rules.h — what makes a preset valid, shared by telex.yaml's
 * presets: (config/config_presets.c) and presets stored through the admin
 * API (gateway/presets_store.c): the name, {{placeholders}}, and the types
 * and ranges of the request parameters a preset may set.
 *
 * Contract: pure checks, no allocation; each caller words its own message
 * from what these return (the file's and the API's messages differ).
 */
#ifndef TELEX_CONFIG_PRESET_RULES_H
#define TELEX_CONFIG_PRESET_RULES_H

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

#define TELEX_PRESET_RULES_NAME_MAX 64 /* = store.h's TELEX_PRESET_NAME_MAX */

/* 1 to 64 letters, digits, '.', '_' or '-'. */
bool telex_preset_name_valid(const char *s);

/* A {{placeholder}} or variable name: 1 to 64 letters, digits and '_', not
 * starting with a digit (s[0..n)). */
bool telex_preset_var_name_valid(const char *s, size_t n);

typedef enum telex_template_problem {
    TELEX_TEMPLATE_OK = 0,
    TELEX_TEMPLATE_UNTERMINATED, /* a "{{" without "}}" */
    TELEX_TEMPLATE_BAD_NAME,     /* {{ name }} whose name is not a variable name */
} telex_template_problem_t;

/* The first problem of template t; *at = its "{{" (unchanged when OK). */
telex_template_problem_t telex_preset_template_problem(const char *t, const char **at);

/* Why the value v of the request parameter `name` is wrong ("expected an
 * integer", "must be from 0 to 2", "expected true or false"; no final
 * period), or NULL. Covers max_tokens, max_completion_tokens, n,
 * temperature, top_p, presence_penalty, frequency_penalty, seed and stream;
 * others are accepted. model and messages are the caller's to refuse. */
const char *telex_preset_parameter_problem(const char *name, const json_t *v, char *buf, size_t len);

#endif
