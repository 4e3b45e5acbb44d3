/*
 * gateway/services.h — everything the relay needs for keys, presets,
 * accounting and metrics, created once at start and shared read-mostly by
 * every worker thread.
 *
 *   telex_services_open    opens the store (store.path; created on first
 *                          start; a corrupted or unwritable file fails here
 *                          with one line), loads the keys, applies the
 *                          secure default (below), compiles the presets,
 *                          starts the ledger writer thread.
 *   telex_services_close   stops the writer after it wrote every queued
 *                          ledger row, closes the store. Call it after the
 *                          HTTP server returned (no worker records any more).
 *
 * Secure default. With no active key in the store, telex accepts requests
 * without a key only while it listens on loopback; listening on any other
 * address without keys, telex_services_open fails (-EPERM, with the fix in
 * the message) unless allow_anonymous is set (--allow-anonymous or
 * auth.allow_anonymous). Once a key exists, requests need one (unless
 * allow_anonymous).
 *
 * Keys created or changed by another process (`telex keys ...` next to a
 * running server, another node sharing a PostgreSQL store) take effect
 * within a second: a thread of the ledger polls the store's data version
 * 5 times a second (SQLite: PRAGMA data_version; PostgreSQL: NOTIFYs from
 * the keys/presets triggers) and reloads the keys when it changed. Changes made
 * through the admin API take effect at once.
 *
 * Layering. The services sit above the libraries they create and wire
 * together — the key set (keyset.h), limits.h, metrics.h, the live preset
 * set (presets_store.h), the store and its ledger — and below everything
 * that speaks HTTP or checks a request: the request checks (auth.h:
 * telex_auth_authenticate/admit/release/is_admin, which take the services
 * for the key set, the limits, the admin token and the anonymous rule),
 * the endpoints (endpoints.h: /admin, /v1/usage, /metrics, /v1/presets),
 * the relay (chat_*.c) and the router. Nothing here knows about requests
 * (a request's grant is the plain struct of grant.h); store work for a
 * request goes through off_loop.h, which tells the services a job is using
 * the store (telex_services_job_begin/end) so close waits for it. No edge
 * points back up.
 */
#ifndef TELEX_GATEWAY_SERVICES_H
#define TELEX_GATEWAY_SERVICES_H

#include <stdbool.h>
#include <stddef.h>

#include "config/config.h"

typedef struct telex_services telex_services_t;
struct telex_keyset;
struct telex_limits;
struct telex_metrics;
struct telex_presets;
struct telex_store;
struct telex_ledger;
struct telex_grant;
struct telex_usage_record;

typedef struct telex_services_options {
    bool allow_anonymous; /* --allow-anonymous (or'ed with auth.allow_anonymous) */
    bool no_ledger_thread; /* tests and CLI: no writer thread; records are written at close */
} telex_services_options_t;

/* cfg must outlive the services; its listen address must be final (apply
 * --listen before). Returns 0, or a negative errno with one line in err:
 * -EPERM (secure default), -EINVAL/-EIO/-EACCES... (the store), -ENOMEM. */
int telex_services_open(telex_services_t **out, const telex_config_t *cfg, const telex_services_options_t *options,
                        char *err, size_t errlen);

/* Flushes the ledger, stops its thread, closes the store, frees. Returns
 * the number of ledger rows that could not be written (0 normally). */
unsigned long long telex_services_close(telex_services_t *svc);

const telex_config_t *telex_services_config(const telex_services_t *svc);
struct telex_store *telex_services_store(telex_services_t *svc);
struct telex_keyset *telex_services_keyset(telex_services_t *svc);
struct telex_limits *telex_services_limits(telex_services_t *svc);
struct telex_metrics *telex_services_metrics(telex_services_t *svc);
const struct telex_presets *telex_services_presets(const telex_services_t *svc);
struct telex_ledger *telex_services_ledger(telex_services_t *svc); /* NULL with no_ledger_thread */

/* Reloads the keys from the store now (after a change through this
 * process's store). Not on an event loop. Returns 0 or a negative errno. */
int telex_services_reload_keys(telex_services_t *svc);
/* The same for the stored presets (gateway/presets_store.h). */
int telex_services_reload_presets(telex_services_t *svc);

/* May a request without a key be served right now? */
bool telex_services_anonymous_allowed(telex_services_t *svc);

/* Queues a request's ledger row (never blocks) and settles the key's
 * reservation and spend in the limits (usage.h: telex_usage_settle).
 * store.ledger: false writes no row (budgets still count in memory);
 * without the ledger thread (no_ledger_thread) the row is written to the
 * store at once. Returns 0, or a negative errno when the ledger refused
 * the row (queue full: it is counted and logged). The relay calls it once
 * per admitted request (usage.h has the whole sequence). */
int telex_usage_record(telex_services_t *svc, const struct telex_grant *grant, const struct telex_usage_record *rec);

/* A store user running off the event loop (off_loop.c) starts and ends:
 * telex_services_close waits (up to 5 s) until none runs before it closes
 * the store. Process-wide, safe from any thread. */
void telex_services_job_begin(void);
void telex_services_job_end(void);

#endif
