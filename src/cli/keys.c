/*
 * cli/keys.c — `telex keys create|list|show|revoke|update`: manage API keys
 * in the store (the same SQLite file `telex serve` uses: --db, else
 * TELEX_DB, else store.path of the config).
 *
 * `create` prints the new key once, alone on stdout (so
 * KEY=$(telex keys create --name ci) works) and what it did on stderr; only
 * its SHA-256 is stored. Nothing else ever prints a key. Running servers
 * notice changes within a second (they poll 5 times a second; with
 * PostgreSQL every node is notified); `revoke` waits that second before it
 * says requests now get 401. The database may be a file or a
 * postgresql:// URL (store/store.h). Exit codes as in commands.h: 64
 * usage, 65 bad value or no such key, 69 the database cannot be used,
 * 78 bad configuration.
 */
#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "cli/commands.h"
#include "cli/subcommand.h"
#include "config/config.h"
#include "gateway/keys.h"
#include "store/store.h"
#include "util/money.h"

/* How long `revoke` waits before saying the key is refused: servers poll
 * every 200 ms (gateway/services.c), a reload takes milliseconds. */
#define REVOKE_SETTLE_MS 1000

static void usage(FILE *out)
{
    fprintf(out,
            "usage: telex keys create --name NAME [--budget-usd X] [--rpm N] [--tpm N]\n"
            "                         [--max-concurrent N] [--models a,b] [--expires WHEN] [--json]\n"
            "       telex keys list [--json]\n"
            "       telex keys show ID|NAME [--json]\n"
            "       telex keys revoke ID|NAME\n"
            "       telex keys update ID|NAME [--name NAME] [--budget-usd X|none] [--rpm N]\n"
            "                         [--tpm N] [--max-concurrent N] [--models a,b|all]\n"
            "                         [--expires WHEN|never]\n"
            "\n"
            "Manages the API keys clients send as `Authorization: Bearer tlx_...`.\n"
            "`create` prints the key once; telex keeps only its SHA-256.\n"
            "\n"
            "  --name NAME         a label for the key's owner (unique among active keys)\n"
            "  --budget-usd X      lifetime spend limit in US dollars; then 402 (default none)\n"
            "  --rpm N             requests per minute; then 429 (default 0 = unlimited)\n"
            "  --tpm N             tokens per minute; then 429 (default 0 = unlimited)\n"
            "  --max-concurrent N  requests running at once; then 429 (default 0 = unlimited)\n"
            "  --models a,b        models the key may use: names, prefixes ending in *,\n"
            "                      preset:NAME (default all)\n"
            "  --expires WHEN      2026-01-31 (00:00 UTC), 2026-01-31T12:00:00Z, 90m, 12h,\n"
            "                      30d or 2w (default never)\n"
            "  --json              machine-readable output\n"
            "  -c, --config FILE   telex.yaml whose store.path to use (default $TELEX_CONFIG)\n"
            "      --db PATH|URL   the database file or postgresql:// URL (default: $TELEX_DB, else the\n"
            "                      config's store.path, else $XDG_STATE_HOME/telex/telex.db)\n"
            "  -h, --help          this help\n"
            "\nSee docs/keys.md.\n");
}

typedef struct opts {
    const char *config, *db;
    const char *name, *budget, *rpm, *tpm, *max_concurrent, *models, *expires;
    int json;
} opts_t;

static int fail_value(const char *flag, const char *why)
{
    fprintf(stderr, "telex keys: %s: %s\n", flag, why);
    return TELEX_EXIT_DATAERR;
}

/* Applies the value flags to *row; *set gets TELEX_KEY_SET_* bits. */
static int apply_flags(const opts_t *o, telex_key_row_t *row, unsigned *set)
{
    char err[256];
    *set = 0;
    if (o->name) {
        if (telex_key_check_name(o->name, err, sizeof err) != 0)
            return fail_value("--name", err);
        snprintf(row->name, sizeof row->name, "%s", o->name);
        *set |= TELEX_KEY_SET_NAME;
    }
    if (o->budget) {
        if (strcmp(o->budget, "none") == 0) {
            row->budget_usd = -1;
        } else {
            char *end;
            double v = strtod(o->budget, &end);
            if (*o->budget == '\0' || *end != '\0' || telex_key_check_budget(v, err, sizeof err) != 0)
                return fail_value("--budget-usd", "expected a number of US dollars from 0 to 1000000000 (or none)");
            row->budget_usd = v;
        }
        *set |= TELEX_KEY_SET_BUDGET;
    }
    const char *rates[3] = {o->rpm, o->tpm, o->max_concurrent};
    static const char *const flags[3] = {"--rpm", "--tpm", "--max-concurrent"};
    int64_t *fields[3] = {&row->rpm, &row->tpm, &row->max_concurrent};
    static const unsigned bits[3] = {TELEX_KEY_SET_RPM, TELEX_KEY_SET_TPM, TELEX_KEY_SET_MAX_CONCURRENT};
    for (int i = 0; i < 3; i++) {
        if (!rates[i])
            continue;
        char *end;
        errno = 0;
        long long v = strtoll(rates[i], &end, 10);
        if (*rates[i] == '\0' || *end != '\0' || errno != 0 || telex_key_check_rate(v, flags[i], err, sizeof err))
            return fail_value(flags[i], "expected a whole number from 0 (unlimited) to 1000000000");
        *fields[i] = v;
        *set |= bits[i];
    }
    if (o->models) {
        const char *items[1] = {o->models};
        size_t n = strcmp(o->models, "all") == 0 ? 0 : 1;
        if (telex_key_join_models(items, n, row->models, sizeof row->models, err, sizeof err) != 0)
            return fail_value("--models", err);
        *set |= TELEX_KEY_SET_MODELS;
    }
    if (o->expires) {
        if (telex_parse_expiry(o->expires, (int64_t)time(NULL), &row->expires_at, err, sizeof err) != 0)
            return fail_value("--expires", err);
        *set |= TELEX_KEY_SET_EXPIRES;
    }
    return 0;
}

static void format_day(int64_t t, char *buf, size_t n, const char *none)
{
    time_t tt = (time_t)t;
    struct tm tm;
    if (t == 0 || gmtime_r(&tt, &tm) == NULL || strftime(buf, n, "%Y-%m-%d %H:%M", &tm) == 0)
        snprintf(buf, n, "%s", none);
}

static const char *status_of(const telex_key_row_t *k, int64_t now)
{
    return k->revoked_at ? "revoked" : (k->expires_at && k->expires_at <= now) ? "expired" : "active";
}

static void print_key(const telex_key_row_t *k)
{
    char created[32], expires[32], revoked[32], used[32];
    int64_t now = (int64_t)time(NULL);
    format_day(k->created_at, created, sizeof created, "-");
    format_day(k->expires_at, expires, sizeof expires, "never");
    format_day(k->revoked_at, revoked, sizeof revoked, "-");
    format_day(k->last_used_at, used, sizeof used, "never");
    printf("id:         %lld\n", (long long)k->id);
    printf("name:       %s\n", k->name);
    printf("key:        %s... (only the start is kept in clear)\n", k->prefix);
    printf("status:     %s\n", status_of(k, now));
    printf("created:    %s UTC\n", created);
    printf("expires:    %s%s\n", expires, k->expires_at ? " UTC" : "");
    if (k->revoked_at)
        printf("revoked:    %s UTC\n", revoked);
    printf("last used:  %s%s\n", used, k->last_used_at ? " UTC" : "");
    char usd[TELEX_USD_LEN];
    if (k->budget_usd >= 0)
        printf("budget:     $%s (spent $%.6f, %.1f%%)\n", telex_format_usd(usd, sizeof usd, k->budget_usd),
               k->spent_usd, k->budget_usd > 0 ? 100 * k->spent_usd / k->budget_usd : 100.0);
    else
        printf("budget:     none (spent $%.6f)\n", k->spent_usd);
    printf("rpm:        %s", k->rpm ? "" : "unlimited\n");
    if (k->rpm)
        printf("%lld requests per minute\n", (long long)k->rpm);
    printf("tpm:        %s", k->tpm ? "" : "unlimited\n");
    if (k->tpm)
        printf("%lld tokens per minute\n", (long long)k->tpm);
    printf("concurrent: %s", k->max_concurrent ? "" : "unlimited\n");
    if (k->max_concurrent)
        printf("%lld requests at once\n", (long long)k->max_concurrent);
    printf("models:     %s\n", k->models[0] ? k->models : "all");
}

int telex_cli_open_store(const char *cmd, const char *config_path, const char *db, telex_store_t **out)
{
    char err[1024];
    telex_config_t *cfg = NULL;
    const char *path = db;
    *out = NULL;
    if (path == NULL) {
        /* Only store.path is used: provider keys, the admin token and TLS
         * files need not be there (telex_config_load_for). */
        if (telex_config_load_for(&cfg, telex_config_path(config_path), TELEX_CONFIG_USE_STORE, err, sizeof err) !=
            0) {
            fprintf(stderr, "telex %s: %s\n", cmd, err);
            return TELEX_EXIT_CONFIG;
        }
        path = cfg->store.path;
    }
    int rc = telex_store_open(out, path, err, sizeof err);
    telex_config_free(cfg);
    if (rc != 0) {
        fprintf(stderr, "telex %s: %s\n", cmd, err);
        return TELEX_EXIT_UNAVAILABLE;
    }
    return 0;
}

static int cmd_create(telex_store_t *s, const opts_t *o)
{
    if (!o->name) {
        fprintf(stderr, "telex keys create: --name is required (a label for the key's owner)\n");
        return TELEX_EXIT_USAGE;
    }
    telex_key_row_t fields;
    memset(&fields, 0, sizeof fields);
    fields.budget_usd = -1;
    unsigned set;
    int rc = apply_flags(o, &fields, &set);
    if (rc != 0)
        return rc;
    telex_key_row_t row;
    char key[TELEX_KEY_LEN + 1], err[512];
    if (telex_key_new_row(fields.name, &row, key) != 0) {
        fprintf(stderr, "telex keys: the kernel gave no randomness\n");
        return TELEX_EXIT_SOFTWARE;
    }
    row.budget_usd = fields.budget_usd;
    row.rpm = fields.rpm;
    row.tpm = fields.tpm;
    row.max_concurrent = fields.max_concurrent;
    row.expires_at = fields.expires_at;
    memcpy(row.models, fields.models, sizeof row.models);
    if ((rc = telex_store_key_insert(s, &row, err, sizeof err)) != 0) {
        fprintf(stderr, "telex keys create: %s\n", err);
        return telex_cli_store_exit(rc);
    }
    if (o->json) {
        json_t *j = telex_key_to_json(&row, 0, (int64_t)time(NULL));
        if (j != NULL)
            json_object_set_new(j, "key", json_string(key));
        telex_cli_print_json(j);
        json_decref(j);
    } else {
        printf("%s\n", key);
        fprintf(stderr,
                "telex keys: created key %lld \"%s\". The line above is the key: store it now, telex shows it "
                "only once.\n",
                (long long)row.id, row.name);
    }
    fflush(stdout);
    memset(key, 0, sizeof key);
    return TELEX_EXIT_OK;
}

static int cmd_list(telex_store_t *s, const opts_t *o)
{
    telex_key_row_t *rows = NULL;
    size_t n = 0;
    char err[512];
    int rc = telex_store_key_list(s, &rows, &n, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "telex keys list: %s\n", err);
        return telex_cli_store_exit(rc);
    }
    int64_t now = (int64_t)time(NULL);
    if (o->json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++)
            json_array_append_new(arr, telex_key_to_json(&rows[i], 0, now));
        telex_cli_print_json(arr);
        json_decref(arr);
    } else if (n == 0) {
        printf("No API keys. Create one with: telex keys create --name NAME\n");
    } else {
        printf("%-5s %-20s %-15s %-8s %-16s %-16s %12s %12s %7s %9s %10s  %s\n", "ID", "NAME", "KEY", "STATUS",
               "CREATED", "EXPIRES", "BUDGET_USD", "SPENT_USD", "RPM", "TPM", "CONCURRENT", "MODELS");
        for (size_t i = 0; i < n; i++) {
            const telex_key_row_t *k = &rows[i];
            char created[32], expires[32], budget[TELEX_USD_LEN], rpm[24], tpm[24], conc[24], prefix[20];
            format_day(k->created_at, created, sizeof created, "-");
            format_day(k->expires_at, expires, sizeof expires, "never");
            if (k->budget_usd >= 0)
                telex_format_usd(budget, sizeof budget, k->budget_usd);
            else
                snprintf(budget, sizeof budget, "none");
            snprintf(rpm, sizeof rpm, "%lld", (long long)k->rpm);
            snprintf(tpm, sizeof tpm, "%lld", (long long)k->tpm);
            snprintf(conc, sizeof conc, "%lld", (long long)k->max_concurrent);
            snprintf(prefix, sizeof prefix, "%s...", k->prefix);
            printf("%-5lld %-20s %-15s %-8s %-16s %-16s %12s %12.6f %7s %9s %10s  %s\n", (long long)k->id, k->name,
                   prefix, status_of(k, now), created, expires, budget, k->spent_usd, k->rpm ? rpm : "-",
                   k->tpm ? tpm : "-", k->max_concurrent ? conc : "-", k->models[0] ? k->models : "all");
        }
    }
    free(rows);
    return TELEX_EXIT_OK;
}

static int find(telex_store_t *s, const char *cmd, const char *ref, telex_key_row_t *row)
{
    char err[512];
    int rc = telex_store_key_find(s, ref, row, err, sizeof err);
    if (rc != 0) {
        fprintf(stderr, "telex keys %s: %s\n", cmd, err);
        return telex_cli_store_exit(rc);
    }
    return 0;
}

static int show(const telex_key_row_t *row, const opts_t *o)
{
    if (o->json) {
        json_t *j = telex_key_to_json(row, 0, (int64_t)time(NULL));
        telex_cli_print_json(j);
        json_decref(j);
    } else {
        print_key(row);
    }
    return TELEX_EXIT_OK;
}

static int cmd_on_key(telex_store_t *s, const char *cmd, const char *ref, const opts_t *o)
{
    telex_key_row_t row;
    char err[512];
    int rc = find(s, cmd, ref, &row);
    if (rc != 0)
        return rc;
    if (strcmp(cmd, "show") == 0)
        return show(&row, o);
    if (strcmp(cmd, "revoke") == 0) {
        if (row.revoked_at != 0) {
            fprintf(stderr, "telex keys revoke: key %lld \"%s\" was already revoked\n", (long long)row.id, row.name);
            return TELEX_EXIT_OK;
        }
        if ((rc = telex_store_key_revoke(s, row.id, (int64_t)time(NULL), err, sizeof err)) != 0) {
            fprintf(stderr, "telex keys revoke: %s\n", err);
            return telex_cli_store_exit(rc);
        }
        /* Running servers (this machine's or, with PostgreSQL, every node)
         * look for key changes 5 times a second and reload at once: by the
         * end of this wait the message below is true. */
        struct timespec wait = {REVOKE_SETTLE_MS / 1000, (REVOKE_SETTLE_MS % 1000) * 1000000L};
        nanosleep(&wait, NULL);
        fprintf(stderr, "telex keys: revoked key %lld \"%s\"; requests with it now get 401\n", (long long)row.id,
                row.name);
        return TELEX_EXIT_OK;
    }
    /* update */
    telex_key_row_t values = row;
    unsigned set;
    if ((rc = apply_flags(o, &values, &set)) != 0)
        return rc;
    if (set == 0) {
        fprintf(stderr, "telex keys update: nothing to change (give --name, --budget-usd, --rpm, --tpm, "
                        "--max-concurrent, --models or --expires)\n");
        return TELEX_EXIT_USAGE;
    }
    if ((rc = telex_store_key_update(s, row.id, set, &values, err, sizeof err)) != 0 ||
        (rc = telex_store_key_get(s, row.id, &row, err, sizeof err)) != 0) {
        fprintf(stderr, "telex keys update: %s\n", err);
        return telex_cli_store_exit(rc);
    }
    return show(&row, o);
}

int telex_cmd_keys(int argc, char **argv)
{
#define F(name, short_name, has_value, field) TELEX_CLI_FLAG(opts_t, name, short_name, has_value, field)
    static const telex_cli_flag_t flags[] = {
        F("config", 'c', 1, config), F("db", 0, 1, db),   F("name", 0, 1, name),
        F("budget-usd", 0, 1, budget), F("rpm", 0, 1, rpm), F("tpm", 0, 1, tpm),
        F("max-concurrent", 0, 1, max_concurrent), F("models", 0, 1, models), F("expires", 0, 1, expires),
        F("json", 0, 0, json),         {NULL, 0, 0, 0}};
#undef F
    static const char *const cmds[] = {"create", "list", "show", "revoke", "update", NULL};
    static const telex_cli_group_t group = {"keys", cmds, flags, usage};
    opts_t o = {0};
    const char *cmd;
    int code = telex_cli_parse(&group, argc, argv, &o, &cmd);
    if (code >= 0)
        return code;
    bool needs_ref = strcmp(cmd, "show") == 0 || strcmp(cmd, "revoke") == 0 || strcmp(cmd, "update") == 0;
    int positional = argc - optind;
    if (needs_ref ? positional != 1 : positional != 0) {
        if (needs_ref && positional == 0)
            fprintf(stderr, "telex keys %s: which key? give its id or name\n", cmd);
        else
            fprintf(stderr, "telex keys %s: unexpected argument '%s'\n", cmd, argv[optind + (needs_ref ? 1 : 0)]);
        return TELEX_EXIT_USAGE;
    }
    bool values = o.name || o.budget || o.rpm || o.tpm || o.max_concurrent || o.models || o.expires;
    if (values && strcmp(cmd, "create") != 0 && strcmp(cmd, "update") != 0) {
        fprintf(stderr, "telex keys %s: --name, --budget-usd, --rpm, --tpm, --max-concurrent, --models and --expires "
                        "are for create and update\n",
                cmd);
        return TELEX_EXIT_USAGE;
    }
    if (o.json && strcmp(cmd, "revoke") == 0) {
        fprintf(stderr, "telex keys revoke: --json is not used here\n");
        return TELEX_EXIT_USAGE;
    }
    telex_store_t *store = NULL;
    int rc = telex_cli_open_store("keys", o.config, o.db, &store);
    if (rc != 0)
        return rc;
    if (strcmp(cmd, "create") == 0)
        rc = cmd_create(store, &o);
    else if (strcmp(cmd, "list") == 0)
        rc = cmd_list(store, &o);
    else
        rc = cmd_on_key(store, cmd, argv[optind], &o);
    telex_store_close(store);
    return rc;
}
