/*
 * cli/subcommand.h — what `telex keys` and `telex presets` share: a group of
 * commands (`telex GROUP CMD [flags] [args]`) whose flags are a table, parsed
 * with one getopt_long loop and one set of usage messages; and two outputs.
 *
 * Contract: telex_cli_parse reads argv[1] as the command (one of g->cmds;
 * "-h", "--help" or "help" print g->usage on stdout), then the flags into
 * *opts, each at its offset: a `const char *` for a flag with a value, an
 * `int` set to 1 for one without. --help/-h are always there. It returns -1
 * with *cmd set and optind at the first positional argument, or the exit
 * code to end with (0 after help; 64 after "telex GROUP CMD: ..." or
 * "telex GROUP: ..." on stderr). Not reentrant (getopt's globals).
 */
#ifndef TELEX_CLI_SUBCOMMAND_H
#define TELEX_CLI_SUBCOMMAND_H

#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

typedef struct telex_cli_flag {
    const char *name; /* the long name, without "--" */
    char short_name;  /* a one-letter alias, or 0 */
    int has_value;    /* 1: takes a value (const char * at offset); 0: an int set to 1 */
    size_t offset;    /* offsetof(the command's options struct, field) */
} telex_cli_flag_t;

typedef struct telex_cli_group {
    const char *name;              /* "keys": messages read "telex keys CMD: ..." */
    const char *const *cmds;       /* its commands, NULL-terminated */
    const telex_cli_flag_t *flags; /* ends with {NULL}; at most TELEX_CLI_MAX_FLAGS */
    void (*usage)(FILE *out);
} telex_cli_group_t;

#define TELEX_CLI_MAX_FLAGS 24

/* One row of a flag table: TELEX_CLI_FLAG(opts_t, "db", 0, 1, db). */
#define TELEX_CLI_FLAG(type, name, short_name, has_value, field) {name, short_name, has_value, offsetof(type, field)}

int telex_cli_parse(const telex_cli_group_t *g, int argc, char **argv, void *opts, const char **cmd);

/* Prints j on stdout as indented JSON in insertion order (nothing for NULL). */
void telex_cli_print_json(json_t *j);

/* The exit code for a store error: 65 (no such row, exists, bad value) or 69. */
int telex_cli_store_exit(int rc);

#endif
