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
 * Integration (the relay's side, in a few lines each) is described in
 * auth.h, usage.h, metrics.h, presets.h, admin.h and cors.h. Handlers that
 * read or write the store (admin, /v1/usage, /metrics) answer from the
 * loop after work on libuv's thread pool and return TELEX_DEFERRED; the
 * router then must not log the request itself (h2o must still get 0): set
 * telex_services_set_deferred_hook once, and log there.
 */
#ifndef TELEX_GATEWAY_SERVICES_H
#define TELEX_GATEWAY_SERVICES_H

#include <stdbool.h>
#include <stddef.h>

#include <h2o.h>

#include "config/config.h"

typedef struct telex_services telex_services_t;
struct telex_keyset;
struct telex_limits;
struct telex_metrics;
struct telex_presets;
struct telex_store;
struct telex_ledger;

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

/* What a handler returns (admin, usage, metrics): answered now, or the
 * answer comes later, from the loop, after store work on the thread pool. */
#define TELEX_HANDLED 0
#define TELEX_DEFERRED 1

/* Called on the request's worker thread right after a deferred answer was
 * sent (the router writes its request log line and counts metrics there).
 * Set once, before serving. */
void telex_services_set_deferred_hook(telex_services_t *svc, void (*hook)(h2o_req_t *req, void *arg), void *arg);

/*
 * Off-loop jobs for handlers that need the store: work(job) runs on a
 * thread of libuv's pool (it may block on SQLite), then respond(req, job)
 * runs back on the request's worker thread — unless the client left
 * meanwhile — then the deferred hook, and finally free_job(job). Returns
 * 0, or -1 when the job could not be queued (then nothing ran and nothing
 * was freed).
 */
int telex_services_off_loop(telex_services_t *svc, h2o_req_t *req, void *job, void (*work)(void *job),
                            void (*respond)(h2o_req_t *req, void *job), void (*free_job)(void *job));

#endif
