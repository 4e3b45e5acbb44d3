/*
 * cli/presets_cmd.c — `telex presets create|list|show|update|delete`:
 * presets kept in the store (the same database `telex serve` uses: --db,
 * else TELEX_DB, else store.path of the config), as the admin API's
 * /admin/presets does (gateway/presets_store.h). Presets written in
 * telex.yaml are not changed here; one there wins over a stored one of the
 * same name. Running servers pick changes up within a second.
 *
 * A preset is given as flags or as a JSON file (--file, "-" for stdin) in
 * the shape of a telex.yaml preset. With a config (--config/TELEX_CONFIG)
 * the model is checked against its models. Exit codes as in commands.h.
 */
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/commands.h"
#include "cli/subcommand.h"
#include "config/config.h"
#include "gateway/presets_store.h"
#include "store/store.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: telex presets create NAME --model MODEL [--system TEXT] [--template TEXT]\n"
            "                            [--description TEXT] [--parameters JSON] [--variables JSON]\n"
            "       telex presets create --file PRESET.json   (a telex.yaml preset as JSON; - = stdin)\n"
            "       telex presets list [--json]\n"
            "       telex presets show NAME\n"
            "       telex presets update NAME [--model ...] [--system ...] ... | --file PRESET.json\n"
            "       telex presets delete NAME\n"
            "\n"
            "Manages presets kept in the store (shared by every server using it). A preset\n"
            "of the same name in telex.yaml wins over a stored one.\n"
            "\n"
            "  --model MODEL       the model the preset asks for (required to create)\n"
            "  --system TEXT       system prompt with {{variables}} (\"\" removes it)\n"
            "  --template TEXT     the user message with {{variables}}; default {{content}}\n"
            "  --description TEXT  shown by GET /v1/presets\n"
            "  --parameters JSON   default request parameters, e.g. '{\"temperature\":0.2}'\n"
            "  --variables JSON    default variable values, e.g. '{\"style\":\"short\"}'\n"
            "  --file FILE         the whole preset as JSON (update: the fields to change)\n"
            "  --json              machine-readable output (list)\n"
            "  -c, --config FILE   telex.yaml whose store.path to use (default $TELEX_CONFIG)\n"
            "      --db PATH|URL   the database itself (default: $TELEX_DB, else the config's)\n"
            "  -h, --help          this help\n"
            "\nSee docs/configuration.md (presets).\n");
}

typedef struct opts {
    const char *config, *db, *file;
    const char *model, *system, *template, *description, *parameters, *variables;
    int json;
} opts_t;

static int fail(int code, const char *cmd, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int fail(int code, const char *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "telex presets %s: ", cmd);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return code;
}

static json_t *read_file(const char *cmd, const char *path, int *code)
{
    json_error_t jerr;
    json_t *j = strcmp(path, "-") == 0 ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &jerr)
                                       : json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(j)) {
        *code = fail(TELEX_EXIT_DATAERR, cmd, "%s: %s", path, j ? "expected a JSON object" : jerr.text);
        json_decref(j);
        return NULL;
    }
    return j;
}

/* The flags as a JSON object of changes ("" = null: remove). */
static json_t *flags_json(const char *cmd, const opts_t *o, int *code)
{
    json_t *j = json_object();
    const char *texts[][2] = {{"model", o->model},
                              {"system", o->system},
                              {"template", o->template},
                              {"description", o->description}};
    for (int i = 0; j && i < 4; i++)
        if (texts[i][1] != NULL)
            json_object_set_new(j, texts[i][0], *texts[i][1] ? json_string(texts[i][1]) : json_null());
    const char *objs[][2] = {{"parameters", o->parameters}, {"variables", o->variables}};
    for (int i = 0; j && i < 2; i++) {
        if (objs[i][1] == NULL)
            continue;
        if (*objs[i][1] == '\0') {
            json_object_set_new(j, objs[i][0], json_null());
            continue;
        }
        json_error_t jerr;
        json_t *v = json_loads(objs[i][1], JSON_REJECT_DUPLICATES, &jerr);
        if (!json_is_object(v)) {
            json_decref(v);
            json_decref(j);
            *code = fail(TELEX_EXIT_DATAERR, cmd, "--%s: expected a JSON object (%s)", objs[i][0],
                         jerr.text[0] ? jerr.text : "not an object");
            return NULL;
        }
        json_object_set_new(j, objs[i][0], v);
    }
    return j;
}

static bool in_config(const telex_config_t *cfg, const char *name)
{
    for (size_t i = 0; cfg && i < cfg->n_presets; i++)
        if (strcmp(cfg->presets[i].name, name) == 0)
            return true;
    return false;
}

/* Checks and stores; prints the result. */
static int store_preset(telex_store_t *s, const telex_config_t *cfg, const char *cmd, json_t *preset, int create)
{
    char *canon = NULL, param[96], msg[300], err[512];
    if (telex_preset_check(cfg, preset, &canon, param, sizeof param, msg, sizeof msg) != 0)
        return param[0] ? fail(TELEX_EXIT_DATAERR, cmd, "%s: %s", param, msg) : fail(TELEX_EXIT_DATAERR, cmd, "%s", msg);
    const char *name = json_string_value(json_object_get(preset, "name"));
    int rc = telex_store_preset_put(s, name, canon, create, err, sizeof err);
    free(canon);
    if (rc != 0)
        return fail(telex_cli_store_exit(rc), cmd, "%s", err);
    fprintf(stderr, "telex presets: %s preset \"%s\"; running servers use it within a second%s\n",
            create ? "stored" : "updated", name,
            in_config(cfg, name) ? " — but telex.yaml has a preset of that name, which wins" : "");
    return TELEX_EXIT_OK;
}

static int cmd_create(telex_store_t *s, const telex_config_t *cfg, const char *name, const opts_t *o)
{
    int code = 0;
    json_t *p = o->file ? read_file("create", o->file, &code) : flags_json("create", o, &code);
    if (p == NULL)
        return code;
    if (name != NULL) {
        const json_t *given = json_object_get(p, "name");
        if (given != NULL && !(json_is_string(given) && strcmp(json_string_value(given), name) == 0)) {
            json_decref(p);
            return fail(TELEX_EXIT_DATAERR, "create", "the file names the preset \"%s\", the command \"%s\"",
                        json_is_string(given) ? json_string_value(given) : "?", name);
        }
        json_object_set_new(p, "name", json_string(name));
    }
    int rc = store_preset(s, cfg, "create", p, 1);
    json_decref(p);
    return rc;
}

static int cmd_update(telex_store_t *s, const telex_config_t *cfg, const char *name, const opts_t *o)
{
    int code = 0;
    json_t *changes = o->file ? read_file("update", o->file, &code) : flags_json("update", o, &code);
    if (changes == NULL)
        return code;
    if (json_object_size(changes) == 0) {
        json_decref(changes);
        return fail(TELEX_EXIT_USAGE, "update", "nothing to change (give --model, --system, --template, "
                                                "--description, --parameters, --variables or --file)");
    }
    const json_t *given = json_object_get(changes, "name");
    if (given != NULL && !(json_is_string(given) && strcmp(json_string_value(given), name) == 0)) {
        json_decref(changes);
        return fail(TELEX_EXIT_DATAERR, "update", "a preset's name cannot change");
    }
    telex_preset_row_t row;
    char err[512];
    int rc = telex_store_preset_get(s, name, &row, err, sizeof err);
    if (rc != 0) {
        json_decref(changes);
        return fail(telex_cli_store_exit(rc), "update", "%s", err);
    }
    json_t *merged = telex_preset_merge(row.body, changes);
    free(row.body);
    json_decref(changes);
    rc = store_preset(s, cfg, "update", merged, 0);
    json_decref(merged);
    return rc;
}

static int cmd_list(telex_store_t *s, const telex_config_t *cfg, const opts_t *o)
{
    telex_preset_row_t *rows = NULL;
    size_t n = 0;
    char err[512];
    int rc = telex_store_preset_list(s, &rows, &n, err, sizeof err);
    if (rc != 0)
        return fail(telex_cli_store_exit(rc), "list", "%s", err);
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++) {
            json_t *p = json_loads(rows[i].body, 0, NULL);
            if (p == NULL)
                continue;
            json_object_set_new(p, "updated_at", json_integer(rows[i].updated_at));
            if (in_config(cfg, rows[i].name))
                json_object_set_new(p, "shadowed", json_true());
            json_array_append_new(arr, p);
        }
        telex_cli_print_json(arr);
        json_decref(arr);
    } else if (n == 0) {
        printf("No stored presets. Create one with: telex presets create NAME --model MODEL\n");
    } else {
        printf("%-24s %-24s %-16s  %s\n", "NAME", "MODEL", "UPDATED", "NOTE");
        for (size_t i = 0; i < n; i++) {
            json_t *p = json_loads(rows[i].body, 0, NULL);
            const char *model = json_string_value(json_object_get(p, "model"));
            char when[32] = "-";
            time_t t = (time_t)rows[i].updated_at;
            struct tm tm;
            if (gmtime_r(&t, &tm) != NULL)
                strftime(when, sizeof when, "%Y-%m-%d %H:%M", &tm);
            printf("%-24s %-24s %-16s  %s\n", rows[i].name, model ? model : "?", when,
                   in_config(cfg, rows[i].name) ? "telex.yaml has one of this name (it wins)" : "");
            json_decref(p);
        }
    }
    telex_store_preset_rows_free(rows, n);
    return TELEX_EXIT_OK;
}

int telex_cmd_presets(int argc, char **argv)
{
#define F(name, short_name, has_value, field) TELEX_CLI_FLAG(opts_t, name, short_name, has_value, field)
    static const telex_cli_flag_t flags[] = {
        F("config", 'c', 1, config),         F("db", 0, 1, db),
        F("model", 0, 1, model),             F("system", 0, 1, system),
        F("template", 0, 1, template),       F("description", 0, 1, description),
        F("parameters", 0, 1, parameters),   F("variables", 0, 1, variables),
        F("file", 0, 1, file),               F("json", 0, 0, json),
        {NULL, 0, 0, 0}};
#undef F
    static const char *const cmds[] = {"create", "list", "show", "update", "delete", NULL};
    static const telex_cli_group_t group = {"presets", cmds, flags, usage};
    opts_t o = {0};
    const char *cmd;
    int code = telex_cli_parse(&group, argc, argv, &o, &cmd);
    if (code >= 0)
        return code;
    bool create = strcmp(cmd, "create") == 0, update = strcmp(cmd, "update") == 0;
    bool needs_name = !create && strcmp(cmd, "list") != 0;
    int positional = argc - optind;
    const char *name = positional > 0 ? argv[optind] : NULL;
    if ((needs_name && positional != 1) || (!needs_name && positional > (create ? 1 : 0)))
        return positional == 0 ? fail(TELEX_EXIT_USAGE, cmd, "which preset? give its name")
                                : fail(TELEX_EXIT_USAGE, cmd, "unexpected argument '%s'", argv[argc - 1]);
    bool values = o.model || o.system || o.template || o.description || o.parameters || o.variables;
    if ((values || o.file) && !create && !update)
        return fail(TELEX_EXIT_USAGE, cmd, "--model, --system, --template, --description, --parameters, "
                                           "--variables and --file are for create and update");
    if (values && o.file)
        return fail(TELEX_EXIT_USAGE, cmd, "give the preset as flags or as --file, not both");
    if (create && !o.file && name == NULL)
        return fail(TELEX_EXIT_USAGE, cmd, "which preset? give its name (or --file)");
    /* the config, when there is one, for its models and presets */
    telex_config_t *cfg = NULL;
    char err[1024];
    const char *cfg_path = telex_config_path(o.config);
    if (cfg_path != NULL && telex_config_load_for(&cfg, cfg_path, TELEX_CONFIG_USE_STORE, err, sizeof err) != 0) {
        fprintf(stderr, "telex presets: %s\n", err);
        return TELEX_EXIT_CONFIG;
    }
    telex_store_t *store = NULL;
    int rc = telex_cli_open_store("presets", o.config, o.db, &store);
    if (rc != 0) {
        telex_config_free(cfg);
        return rc;
    }
    if (create) {
        rc = cmd_create(store, cfg, name, &o);
    } else if (update) {
        rc = cmd_update(store, cfg, name, &o);
    } else if (strcmp(cmd, "list") == 0) {
        rc = cmd_list(store, cfg, &o);
    } else if (strcmp(cmd, "show") == 0) {
        telex_preset_row_t row;
        if ((rc = telex_store_preset_get(store, name, &row, err, sizeof err)) != 0) {
            rc = fail(telex_cli_store_exit(rc), cmd, "%s", err);
        } else {
            json_t *p = json_loads(row.body, 0, NULL);
            if (p != NULL && in_config(cfg, name))
                json_object_set_new(p, "shadowed", json_true());
            telex_cli_print_json(p);
            json_decref(p);
            free(row.body);
            rc = TELEX_EXIT_OK;
        }
    } else { /* delete */
        if ((rc = telex_store_preset_delete(store, name, err, sizeof err)) != 0) {
            rc = fail(telex_cli_store_exit(rc), cmd, "%s", err);
        } else {
            fprintf(stderr, "telex presets: deleted preset \"%s\"; running servers drop it within a second\n", name);
            rc = TELEX_EXIT_OK;
        }
    }
    telex_store_close(store);
    telex_config_free(cfg);
    return rc;
}
