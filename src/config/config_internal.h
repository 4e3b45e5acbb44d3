/*
 * config/config_internal.h — shared between the files of src/config only.
 *
 * The arena owns every byte of a telex_config_t: allocations are linked in a
 * list and freed together. config_yaml.c fills a config from YAML text
 * (with config_read.c, config_sections.c, config_presets.c); config.c does
 * the environment, lookups and the public API.
 */
#ifndef TELEX_CONFIG_INTERNAL_H
#define TELEX_CONFIG_INTERNAL_H

#include "config/config.h"

#include <stdarg.h>

struct telex_config_arena;

/* Zeroed memory owned by the arena; NULL when out of memory. */
void *telex_config_alloc(struct telex_config_arena *a, size_t size);
/* A NUL-terminated copy of s[0..n); NULL when out of memory. */
char *telex_config_strndup(struct telex_config_arena *a, const char *s, size_t n);
char *telex_config_strdup(struct telex_config_arena *a, const char *s);

/* snprintf into err when err/errlen allow it. */
void telex_config_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The candidate closest to `word` when it is plausibly a typo of it
 * (edit distance <= 2 and less than the word's length), else NULL. */
const char *telex_config_suggest(const char *word, const char *const *candidates, size_t n);

/* The built-in defaults of every setting the sections' tables describe
 * (config_sections.c); everything else starts zeroed. */
void telex_config_set_defaults(telex_config_t *cfg);

/* Parses `text` (YAML, `len` bytes, from file `file`) into cfg, whose fields
 * already hold the built-in defaults for the scalar settings. Sets providers
 * and models if the file defines them (both, or neither: then they keep
 * whatever cfg had). `use` says what the caller needs (config.h): with
 * TELEX_CONFIG_USE_STORE secrets are not read and TLS files not opened.
 * Returns 0, -EINVAL or -ENOMEM with a message in err; unset secret
 * variables are reported together, after the rest of the file is valid. */
int telex_config_parse_yaml(telex_config_t *cfg, const char *file, const char *text,
                            size_t len, telex_config_use_t use, char *err, size_t errlen);

/* Validates a base URL (http:// or https:// with a host, no whitespace,
 * query or fragment) and returns an arena copy without trailing '/'.
 * On failure returns NULL and sets *why (static text) — or *why NULL for OOM. */
char *telex_config_base_url(struct telex_config_arena *a, const char *url, const char **why);

/* 0 when `path` can be opened for reading and is not a directory, else
 * a negative errno. */
int telex_config_check_readable(const char *path);

/* Tests only: the n-th allocation from now (0 = the next) fails, once;
 * n < 0 turns this off. Not thread-safe. */
void telex_config_test_fail_alloc(long n);

/* Why an admin token is unacceptable (static text that never quotes it),
 * or NULL when it is fine. */
#define TELEX_CONFIG_ADMIN_TOKEN_MIN 16
const char *telex_config_admin_token_problem(const char *token);

/* Defaults shared by the YAML and built-in paths. */
#define TELEX_CONFIG_OPENAI_BASE_URL "https://api.openai.com/v1"
#define TELEX_CONFIG_ANTHROPIC_BASE_URL "https://api.anthropic.com"
#define TELEX_CONFIG_ANTHROPIC_VERSION "2023-06-01"
#define TELEX_CONFIG_ANTHROPIC_MAX_TOKENS 4096
#define TELEX_CONFIG_AZURE_API_VERSION "2024-10-21"
#define TELEX_CONFIG_DEFAULT_TIMEOUT_SECONDS 10.0
#define TELEX_CONFIG_DEFAULT_TOKENS_PER_SECOND 30.0

#endif
