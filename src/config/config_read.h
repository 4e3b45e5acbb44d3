/*
 * config/config_read.h — shared by the files of src/config that walk
 * telex.yaml's node tree: the walk's context, its messages
 * ("FILE:LINE:COL: key.path: what is wrong"), node access, the typed scalar
 * readers, and the table-driven reader of scalar keys. cy_ = config YAML.
 *
 * Contract: every reader returns 0 or -EINVAL (message written through
 * cy_fail()) or -ENOMEM ("out of memory", through cy_oom()). Strings are copied
 * into the config's arena. Values that may be secret are never quoted.
 */
#ifndef TELEX_CONFIG_READ_H
#define TELEX_CONFIG_READ_H

#include "config/config_internal.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

enum { PATH_LEN = 256, QUOTE_LEN = 80, MAX_MISSING = 16 };

/* A secret's environment variable that is not set: collected while the
 * file is read, so one message can name them all. */
typedef struct missing_var {
    const char *var; /* an arena copy */
    char path[PATH_LEN];
    size_t line, column;
} missing_var_t;

typedef struct ctx {
    yaml_document_t *doc;
    const char *file;
    telex_config_t *cfg;
    struct telex_config_arena *arena;
    telex_config_use_t use;
    char *err;
    size_t errlen;
    missing_var_t missing[MAX_MISSING];
    size_t n_missing; /* distinct variables; only the first MAX_MISSING are kept */
} ctx_t;

/* ---- messages ---------------------------------------------------------- */

/* "FILE:LINE:COL: path: msg" at node `at`; returns -EINVAL. */
int cy_fail(ctx_t *c, const yaml_node_t *at, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "out of memory"; returns -ENOMEM. */
int cy_oom(ctx_t *c);
/* s as a double-quoted, escaped, truncated string, for messages. */
const char *cy_quote(char buf[QUOTE_LEN], const char *s);
/* base.key; control characters in a key become '?' (messages are one line). */
void cy_path_key(char out[PATH_LEN], const char *base, const char *key);
/* base[i] */
void cy_path_index(char out[PATH_LEN], const char *base, size_t i);
/* "a, b, c" into out (truncated with "..." if needed). */
const char *cy_join_list(char *out, size_t outlen, const char *const *items, size_t n);
/* Notes that the secret variable `var` (named at node `at`, key path
 * `path`) is not set; the load fails at the end, naming every such one. */
void cy_note_missing(ctx_t *c, const yaml_node_t *at, const char *path, const char *var);
/* The one message for every unset secret variable; returns -EINVAL. */
int cy_fail_missing(ctx_t *c);

/* ---- nodes ------------------------------------------------------------- */

yaml_node_t *cy_node_at(ctx_t *c, int index);
const char *cy_sval(const yaml_node_t *n);
/* A plain scalar that YAML reads as null ("", ~, null). */
bool cy_is_null(const yaml_node_t *n);
/* What the user wrote, for "expected X, got Y". Only for non-secret keys. */
const char *cy_describe(char buf[QUOTE_LEN], const yaml_node_t *n);
size_t cy_n_pairs(const yaml_node_t *map);
size_t cy_n_items(const yaml_node_t *seq);
/* Every key of `map` is a string, appears once, and is one of `keys`. */
int cy_check_keys(ctx_t *c, const yaml_node_t *map, const char *path, const char *const *keys, size_t nkeys);
/* The value of `key` in `map` (keys already checked unique), or NULL. */
yaml_node_t *cy_get(ctx_t *c, const yaml_node_t *map, const char *key);
/* The key node of `key` in `map`, for errors about the key itself. */
yaml_node_t *cy_get_key(ctx_t *c, const yaml_node_t *map, const char *key);
/* 1 when v is a mapping, 0 when absent or null (= not configured), <0 error. */
int cy_as_mapping(ctx_t *c, const yaml_node_t *v, const char *path, const char *hint);

/* A list of named mappings: providers, models, presets. */
typedef struct cy_named_list {
    const char *list; /* its key: "providers" */
    const char *what; /* "provider", as in "duplicate provider name" */
    const char *hint; /* as in "expected a mapping (HINT), got ..." */
    const char *const *keys; /* the keys an item may have */
    size_t n_keys;
} cy_named_list_t;

/* Item i of seq, the list l: a mapping of l's keys only, with a name: that
 * no item before it has. Sets base ("providers[i]"), *item, *name_node and
 * *name (an arena copy). */
int cy_named_item(ctx_t *c, const yaml_node_t *seq, size_t i, const cy_named_list_t *l, char base[PATH_LEN],
                  yaml_node_t **item, yaml_node_t **name_node, const char **name);

/* ---- typed scalars ----------------------------------------------------- */

enum { STR_ALLOW_EMPTY = 1, STR_MULTILINE = 2 };

#define SECONDS_MAX 1e6
#define BYTES_MAX (UINT64_C(1) << 40)
#define COUNT_MAX UINT64_C(100000000)

/* A string: any scalar without NUL or control characters except TAB (and,
 * with STR_MULTILINE, line breaks). With STR_ALLOW_EMPTY, null and "" give
 * "". Never quotes the value (it may be a secret). */
int cy_read_str(ctx_t *c, const yaml_node_t *v, const char *path, unsigned flags, const char **out);
/* A plain number in [min, max] (or (min, max] with min_exclusive). */
int cy_read_double(ctx_t *c, const yaml_node_t *v, const char *path, double min, bool min_exclusive, double max,
                   double *out);
int cy_read_uint(ctx_t *c, const yaml_node_t *v, const char *path, uint64_t min, uint64_t max, uint64_t *out);
/* A byte count: an integer, optionally followed by B, KB, MB, GB (powers of
 * 1000) or KiB, MiB, GiB (powers of 1024), e.g. 1048576, 1MiB, "512 KiB". */
int cy_read_bytes(ctx_t *c, const yaml_node_t *v, const char *path, uint64_t min, uint64_t max, uint64_t *out);
int cy_read_bool(ctx_t *c, const yaml_node_t *v, const char *path, bool *out);
/* The secret in the environment variable whose name is the string at env
 * (path): 1 and *var, *val (not copied) when it is set; 0 when the command
 * does not use secrets, or when it is not set (noted with cy_note_missing:
 * the load fails at the end, naming all of them). */
int cy_secret_env(ctx_t *c, const yaml_node_t *env, const char *path, const char **var, const char **val);

/* Reads `key` of `map` (path base.key) with reader(c, node, path, ...) when
 * the key is there; absent keeps the default. Returns from the caller on error. */
#define FIELD(map, key, base, reader, ...)                                                       \
    do {                                                                                         \
        yaml_node_t *v_ = cy_get(c, (map), (key));                                               \
        if (v_) {                                                                                \
            char p_[PATH_LEN];                                                                   \
            cy_path_key(p_, (base), (key));                                                      \
            int rc_ = reader(c, v_, p_, __VA_ARGS__);                                            \
            if (rc_ < 0)                                                                         \
                return rc_;                                                                      \
        }                                                                                        \
    } while (0)

/* ---- tables of scalar keys --------------------------------------------- */

typedef enum config_key_type {
    KEY_BOOL,    /* bool; true/True/TRUE, false/False/FALSE */
    KEY_UINT,    /* uint64_t in [min, max] */
    KEY_BYTES,   /* uint64_t, a byte count with an optional unit, in [min, max] */
    KEY_DOUBLE,  /* double (seconds, prices) in [min, max], or (min, max] with min_exclusive */
    KEY_STRING,  /* const char *, not empty, one line */
    KEY_OTHER,   /* a key of the section read by the section's own code */
} config_key_type_t;

/* One key of a mapping: the YAML name, how it is read, where it goes. */
typedef struct config_key {
    const char *name;
    config_key_type_t type;
    size_t offset;      /* of the field in the struct the table describes */
    double min, max;    /* bounds; KEY_UINT/KEY_BYTES: whole numbers below 2^53 */
    bool min_exclusive; /* KEY_DOUBLE: must be greater than min */
    union {
        bool b;
        uint64_t u;
        double d;
    } def;           /* the built-in default (zero when not given) */
    const char *doc; /* what it means, one line (docs/configuration.md has more) */
} config_key_t;

#define KEY_TABLE_MAX 16 /* keys in one table at most */

/* Every key of `map` (path `path`) is one of the table's: cy_check_keys
 * with the table's names, in its order (the "valid here:" list's). */
int cy_check_key_table(ctx_t *c, const yaml_node_t *map, const char *path, const config_key_t *keys, size_t n);
/* Reads every key of the table that `map` has and whose type is not
 * KEY_OTHER into (char *)obj + offset, in table order; absent keys keep
 * what obj has. */
int cy_read_key_values(ctx_t *c, const yaml_node_t *map, const char *path, const config_key_t *keys, size_t n,
                       void *obj);
/* Both, one after the other. */
int cy_read_keys(ctx_t *c, const yaml_node_t *map, const char *path, const config_key_t *keys, size_t n,
                 void *obj);

/* Writes every table's default (KEY_STRING: NULL; KEY_OTHER: untouched). */
void cy_set_key_defaults(const config_key_t *keys, size_t n, void *obj);

/* The sections of settings under `root` (config_sections.c): streaming,
 * limits, resume, cluster, store, auth, cors, metrics, in that order. */
int cy_read_sections(ctx_t *c, const yaml_node_t *root);

#endif
