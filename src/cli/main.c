/*
 * cli/main.c — `telex`: dispatches to one subcommand per file in src/cli/.
 * Before any subcommand runs, jansson allocates through util/alloc.h, so in
 * the telex process a json_* constructor never fails for lack of memory
 * (docs/architecture.md, "Errors and out of memory").
 */
#include <stdio.h>
#include <string.h>

#include <jansson.h>

#include "cli/commands.h"
#include "util/alloc.h"

typedef struct {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"serve", telex_cmd_serve, "run the streaming gateway (see `telex serve --help`)"},
    {"mock", telex_cmd_mock, "run an OpenAI-compatible fake upstream for tests and benchmarks"},
    {"sse", telex_cmd_sse, "decode or encode an SSE event stream (stdin to stdout)"},
    {"keys", telex_cmd_keys, "create, list, show, revoke and update API keys"},
    {"usage", telex_cmd_usage, "print token and cost totals from the usage ledger"},
    {"presets", telex_cmd_presets, "create, list, show, update and delete presets kept in the store"},
};

static void print_usage(FILE *out)
{
    fprintf(out, "telex %s — stream LLM answers token by token over Server-Sent Events\n\n"
                 "usage: telex <command> [options]\n\ncommands:\n",
            TELEX_VERSION);
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-7s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\noptions:\n  -h, --help     this help\n  -V, --version  print the version\n"
                 "\n`telex <command> --help` describes each command.\n");
}

int main(int argc, char **argv)
{
    /* out of memory inside jansson ends the process, as everywhere else in
     * it; a NULL from json_pack, json_string... then means bad input only */
    json_set_alloc_funcs(telex_xmalloc, free);
    if (argc < 2) {
        print_usage(stderr);
        return TELEX_EXIT_USAGE;
    }
    if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        print_usage(stdout);
        return TELEX_EXIT_OK;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0) {
        printf("telex %s\n", TELEX_VERSION);
        return TELEX_EXIT_OK;
    }
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(argv[1], commands[i].name) == 0)
            return commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "telex: unknown command '%s'\n\n", argv[1]);
    print_usage(stderr);
    return TELEX_EXIT_USAGE;
}
