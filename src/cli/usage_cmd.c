/*
 * cli/usage_cmd.c — `telex usage`: token and cost totals from the usage
 * ledger (the store `telex serve` writes), optionally per key, model or
 * UTC day, over a time range. --json prints what GET /v1/usage returns.
 * Rows still queued in a running server's memory (up to
 * store.flush_interval_seconds old) are not counted yet.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli/commands.h"
#include "gateway/usage.h"
#include "store/store.h"

static void usage(FILE *out)
{
    fprintf(out, "usage: telex usage [--from WHEN] [--to WHEN] [--group-by key|model|day]\n"
                 "                   [--key ID|NAME] [--json] [--config FILE | --db PATH]\n"
                 "\n"
                 "Prints requests, tokens (prompt, completion, cached, reasoning) and cost in US\n"
                 "dollars from the usage ledger.\n"
                 "\n"
                 "  --from WHEN        2026-01-31 (that day's start, UTC), 2026-01-31T12:00:00Z\n"
                 "                     or unix seconds (default: the first request)\n"
                 "  --to WHEN          the same; a date counts that whole day (default: now)\n"
                 "  --group-by G       key, model or day (default: one line of totals)\n"
                 "  --key ID|NAME      only this key's requests\n"
                 "  --json             the JSON of GET /v1/usage\n"
                 "  -c, --config FILE  telex.yaml whose store.path to use (default $TELEX_CONFIG)\n"
                 "      --db PATH|URL  the database: a file, or a postgresql:// URL\n"
                 "  -h, --help         this help\n"
                 "\nSee docs/accounting.md.\n");
}

enum { OPT_FROM = 256, OPT_TO, OPT_GROUP, OPT_KEY, OPT_JSON, OPT_DB };

static void row_label(const telex_usage_query_t *q, const telex_usage_row_t *r, char *out, size_t n)
{
    switch (q->group) {
    case TELEX_USAGE_GROUP_KEY:
        if (r->key_id == 0)
            snprintf(out, n, "(anonymous)");
        else
            snprintf(out, n, "%lld %s", (long long)r->key_id, r->key_name[0] ? r->key_name : "?");
        break;
    case TELEX_USAGE_GROUP_MODEL:
        snprintf(out, n, "%s", r->model);
        break;
    case TELEX_USAGE_GROUP_DAY:
        snprintf(out, n, "%s", r->day);
        break;
    default:
        snprintf(out, n, "all");
        break;
    }
}

static void print_row(const char *label, const telex_usage_row_t *r)
{
    printf("%-28s %9llu %12llu %12llu %10llu %10llu %14.6f", label, (unsigned long long)r->requests,
           (unsigned long long)r->prompt_tokens, (unsigned long long)r->completion_tokens,
           (unsigned long long)r->cached_tokens, (unsigned long long)r->reasoning_tokens, r->cost_usd);
    if (r->estimated_requests || r->failed_requests)
        printf("  (%llu estimated, %llu not ok)", (unsigned long long)r->estimated_requests,
               (unsigned long long)r->failed_requests);
    printf("\n");
}

int telex_cmd_usage(int argc, char **argv)
{
    static const struct option options[] = {
        {"config", required_argument, NULL, 'c'}, {"db", required_argument, NULL, OPT_DB},
        {"from", required_argument, NULL, OPT_FROM}, {"to", required_argument, NULL, OPT_TO},
        {"group-by", required_argument, NULL, OPT_GROUP}, {"key", required_argument, NULL, OPT_KEY},
        {"json", no_argument, NULL, OPT_JSON}, {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    const char *config = NULL, *db = NULL, *from = NULL, *to = NULL, *group = NULL, *key = NULL;
    int json = 0, opt;
    optind = 1;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, ":c:h", options, NULL)) != -1) {
        switch (opt) {
        case 'c': config = optarg; break;
        case OPT_DB: db = optarg; break;
        case OPT_FROM: from = optarg; break;
        case OPT_TO: to = optarg; break;
        case OPT_GROUP: group = optarg; break;
        case OPT_KEY: key = optarg; break;
        case OPT_JSON: json = 1; break;
        case 'h': usage(stdout); return TELEX_EXIT_OK;
        case ':':
            fprintf(stderr, "telex usage: %s needs a value\n", argv[optind - 1]);
            return TELEX_EXIT_USAGE;
        default:
            fprintf(stderr, "telex usage: unknown option '%s' (see telex usage --help)\n", argv[optind - 1]);
            return TELEX_EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "telex usage: unexpected argument '%s'\n", argv[optind]);
        return TELEX_EXIT_USAGE;
    }
    telex_usage_query_t q = {.from_ms = 0, .to_ms = telex_store_now_ms() + 1, .key_id = -1};
    if (from && telex_usage_parse_time(from, strlen(from), false, &q.from_ms) != 0) {
        fprintf(stderr, "telex usage: --from: expected 2026-01-31, 2026-01-31T12:00:00Z or unix seconds\n");
        return TELEX_EXIT_DATAERR;
    }
    if (to && telex_usage_parse_time(to, strlen(to), true, &q.to_ms) != 0) {
        fprintf(stderr, "telex usage: --to: expected 2026-01-31, 2026-01-31T12:00:00Z or unix seconds\n");
        return TELEX_EXIT_DATAERR;
    }
    if (q.from_ms >= q.to_ms) {
        fprintf(stderr, "telex usage: --from must be before --to\n");
        return TELEX_EXIT_DATAERR;
    }
    if (group) {
        if (strcmp(group, "key") == 0)
            q.group = TELEX_USAGE_GROUP_KEY;
        else if (strcmp(group, "model") == 0)
            q.group = TELEX_USAGE_GROUP_MODEL;
        else if (strcmp(group, "day") == 0)
            q.group = TELEX_USAGE_GROUP_DAY;
        else {
            fprintf(stderr, "telex usage: --group-by: expected key, model or day\n");
            return TELEX_EXIT_USAGE;
        }
    }
    telex_store_t *store = NULL;
    int rc = telex_cli_open_store("usage", config, db, &store);
    if (rc != 0)
        return rc;
    char err[512];
    if (key) {
        telex_key_row_t row;
        if ((rc = telex_store_key_find(store, key, &row, err, sizeof err)) != 0) {
            fprintf(stderr, "telex usage: --key: %s\n", err);
            telex_store_close(store);
            return rc == -ENOENT ? TELEX_EXIT_DATAERR : TELEX_EXIT_UNAVAILABLE;
        }
        q.key_id = row.id;
    }
    telex_usage_row_t *rows = NULL;
    size_t n = 0;
    int truncated = 0;
    rc = telex_store_usage(store, &q, &rows, &n, &truncated, err, sizeof err);
    telex_store_close(store);
    if (rc != 0) {
        fprintf(stderr, "telex usage: %s\n", err);
        return TELEX_EXIT_UNAVAILABLE;
    }
    if (json) {
        json_t *j = telex_usage_to_json(&q, rows, n, truncated);
        char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
        json_decref(j);
        if (text == NULL) {
            free(rows);
            fprintf(stderr, "telex usage: out of memory\n");
            return TELEX_EXIT_SOFTWARE;
        }
        puts(text);
        free(text);
        free(rows);
        return TELEX_EXIT_OK;
    }
    static const char *const heads[] = {"TOTAL", "KEY", "MODEL", "DAY"};
    printf("%-28s %9s %12s %12s %10s %10s %14s\n", heads[q.group], "REQUESTS", "PROMPT", "COMPLETION", "CACHED",
           "REASONING", "COST_USD");
    telex_usage_row_t total;
    memset(&total, 0, sizeof total);
    for (size_t i = 0; i < n; i++) {
        char label[160];
        row_label(&q, &rows[i], label, sizeof label);
        if (q.group != TELEX_USAGE_GROUP_NONE)
            print_row(label, &rows[i]);
        total.requests += rows[i].requests;
        total.prompt_tokens += rows[i].prompt_tokens;
        total.completion_tokens += rows[i].completion_tokens;
        total.cached_tokens += rows[i].cached_tokens;
        total.reasoning_tokens += rows[i].reasoning_tokens;
        total.estimated_requests += rows[i].estimated_requests;
        total.failed_requests += rows[i].failed_requests;
        total.cost_usd += rows[i].cost_usd;
    }
    print_row("total", &total);
    if (truncated)
        printf("(only the first %d groups are shown)\n", TELEX_USAGE_MAX_ROWS);
    free(rows);
    return TELEX_EXIT_OK;
}
