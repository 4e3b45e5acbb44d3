/*
 * cli/commands.h — the `telex` subcommands. Each takes the arguments after
 * its own name (argv[0] is the subcommand) and returns the process exit code.
 * Exit codes follow sysexits: 0 ok, 64 usage, 65 bad input data, 69/70
 * unavailable/internal, 78 bad configuration.
 */
#ifndef TELEX_CLI_COMMANDS_H
#define TELEX_CLI_COMMANDS_H

#define TELEX_EXIT_OK 0
#define TELEX_EXIT_USAGE 64
#define TELEX_EXIT_DATAERR 65
#define TELEX_EXIT_UNAVAILABLE 69
#define TELEX_EXIT_SOFTWARE 70
#define TELEX_EXIT_CONFIG 78

int telex_cmd_sse(int argc, char **argv);
int telex_cmd_serve(int argc, char **argv);
int telex_cmd_mock(int argc, char **argv);
int telex_cmd_keys(int argc, char **argv);
int telex_cmd_usage(int argc, char **argv);
int telex_cmd_presets(int argc, char **argv);

/* keys.c: opens the store for `telex keys` / `telex usage`: --db if given,
 * else $TELEX_DB, else the config's store.path (config_path, else
 * $TELEX_CONFIG, else the default path). Only the store settings are
 * required: unset provider keys or admin token do not matter
 * (TELEX_CONFIG_USE_STORE). Returns 0, or the exit code after printing
 * "telex CMD: <why>" on stderr. */
struct telex_store;
int telex_cli_open_store(const char *cmd, const char *config_path, const char *db, struct telex_store **out);

#endif
