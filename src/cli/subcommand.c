/*
 * cli/subcommand.c — the shared parsing and output of `telex keys` and
 * `telex presets` (subcommand.h has the contract).
 */
#include "cli/subcommand.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"

#define FIRST_LONG 256 /* getopt_long's val for flags without a short name: FIRST_LONG + index */

static int pick_command(const telex_cli_group_t *g, int argc, char **argv, const char **cmd)
{
    if (argc < 2) {
        g->usage(stderr);
        return TELEX_EXIT_USAGE;
    }
    *cmd = argv[1];
    if (strcmp(*cmd, "-h") == 0 || strcmp(*cmd, "--help") == 0 || strcmp(*cmd, "help") == 0) {
        g->usage(stdout);
        return TELEX_EXIT_OK;
    }
    for (const char *const *c = g->cmds; *c != NULL; c++)
        if (strcmp(*cmd, *c) == 0)
            return -1;
    fprintf(stderr, "telex %s: unknown command '%s' (", g->name, *cmd);
    for (const char *const *c = g->cmds; *c != NULL; c++)
        fprintf(stderr, "%s%s", c == g->cmds ? "" : ", ", *c);
    fputs(")\n\n", stderr);
    g->usage(stderr);
    return TELEX_EXIT_USAGE;
}

int telex_cli_parse(const telex_cli_group_t *g, int argc, char **argv, void *opts, const char **cmd)
{
    int code = pick_command(g, argc, argv, cmd);
    if (code >= 0)
        return code;
    struct option options[TELEX_CLI_MAX_FLAGS + 2];
    char shorts[2 * TELEX_CLI_MAX_FLAGS + 3] = ":";
    size_t n = 0, ns = 1;
    for (; g->flags[n].name != NULL && n < TELEX_CLI_MAX_FLAGS; n++) {
        const telex_cli_flag_t *f = &g->flags[n];
        options[n] = (struct option){f->name, f->has_value ? required_argument : no_argument, NULL,
                                     f->short_name ? f->short_name : FIRST_LONG + (int)n};
        if (f->short_name) {
            shorts[ns++] = f->short_name;
            if (f->has_value)
                shorts[ns++] = ':';
        }
    }
    options[n] = (struct option){"help", no_argument, NULL, 'h'};
    options[n + 1] = (struct option){NULL, 0, NULL, 0};
    shorts[ns++] = 'h';
    shorts[ns] = '\0';
    int opt;
    optind = 2;
    opterr = 0;
    while ((opt = getopt_long(argc, argv, shorts, options, NULL)) != -1) {
        if (opt == 'h') {
            g->usage(stdout);
            return TELEX_EXIT_OK;
        }
        if (opt == ':') {
            fprintf(stderr, "telex %s %s: %s needs a value\n", g->name, *cmd, argv[optind - 1]);
            return TELEX_EXIT_USAGE;
        }
        const telex_cli_flag_t *f = NULL;
        if (opt >= FIRST_LONG && (size_t)(opt - FIRST_LONG) < n)
            f = &g->flags[opt - FIRST_LONG];
        for (size_t i = 0; f == NULL && i < n; i++)
            if (g->flags[i].short_name == opt)
                f = &g->flags[i];
        if (f == NULL) {
            fprintf(stderr, "telex %s %s: unknown option '%s' (see telex %s --help)\n", g->name, *cmd,
                    argv[optind - 1], g->name);
            return TELEX_EXIT_USAGE;
        }
        if (f->has_value)
            *(const char **)((char *)opts + f->offset) = optarg;
        else
            *(int *)((char *)opts + f->offset) = 1;
    }
    return -1;
}

void telex_cli_print_json(json_t *j)
{
    char *text = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(15)) : NULL;
    if (text != NULL) {
        puts(text);
        free(text);
    }
}

int telex_cli_store_exit(int rc)
{
    return rc == -ENOENT || rc == -EEXIST || rc == -EINVAL ? TELEX_EXIT_DATAERR : TELEX_EXIT_UNAVAILABLE;
}
