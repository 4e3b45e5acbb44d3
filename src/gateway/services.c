/*
 * gateway/services.c — creation, the key-reload tick, shutdown, the
 * count of store jobs running off the loop, and where a request's ledger
 * row goes. See services.h.
 */
#include "gateway/services.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "gateway/keyset.h"
#include "gateway/limits.h"
#include "gateway/metrics.h"
#include "gateway/presets.h"
#include "gateway/presets_store.h"
#include "gateway/usage.h"
#include "store/ledger.h"
#include "store/store.h"
#include "util/alloc.h"
#include "util/log.h"

struct telex_services {
    const telex_config_t *cfg;
    telex_store_t *store;
    telex_ledger_t *ledger;
    telex_keyset_t *keyset;
    telex_limits_t *limits;
    telex_metrics_t *metrics;
    telex_presets_live_t *presets; /* the file's and the store's */
    bool loopback;
    bool allow_anonymous;
    pthread_mutex_t reload_lock; /* one key reload at a time */
    int64_t data_version;        /* under reload_lock */
    bool reload_failing;
    bool poll_failing; /* the last data-version poll failed (on_tick's thread only) */
};

/* Jobs whose work() may still be using the store: close waits for them. */
static atomic_int jobs_in_work;

const telex_config_t *telex_services_config(const telex_services_t *svc)
{
    return svc->cfg;
}
telex_store_t *telex_services_store(telex_services_t *svc)
{
    return svc->store;
}
telex_keyset_t *telex_services_keyset(telex_services_t *svc)
{
    return svc->keyset;
}
telex_limits_t *telex_services_limits(telex_services_t *svc)
{
    return svc->limits;
}
telex_metrics_t *telex_services_metrics(telex_services_t *svc)
{
    return svc->metrics;
}
const telex_presets_t *telex_services_presets(const telex_services_t *svc)
{
    return telex_presets_live_get(svc->presets);
}

int telex_services_reload_presets(telex_services_t *svc)
{
    return telex_presets_live_reload(svc->presets, svc->store);
}
telex_ledger_t *telex_services_ledger(telex_services_t *svc)
{
    return svc->ledger;
}

bool telex_services_anonymous_allowed(telex_services_t *svc)
{
    return svc->allow_anonymous || (svc->loopback && telex_keyset_active(svc->keyset) == 0);
}

int telex_services_reload_keys(telex_services_t *svc)
{
    char err[512];
    pthread_mutex_lock(&svc->reload_lock);
    int64_t v = 0;
    telex_store_data_version(svc->store, &v, NULL, 0);
    int rc = telex_keyset_load(svc->keyset, svc->store, svc->limits, err, sizeof err);
    if (rc == 0)
        svc->data_version = v;
    pthread_mutex_unlock(&svc->reload_lock);
    return rc;
}

/* On the ledger thread, every second: reload the keys when another process
 * (telex keys ...) changed the database. */
static void on_tick(void *arg)
{
    telex_services_t *svc = arg;
    int64_t v = 0;
    char err[512];
    if (telex_store_data_version(svc->store, &v, err, sizeof err) != 0) {
        if (!svc->poll_failing) { /* once per outage; the message never names a key or a password */
            json_t *line = json_pack("{s:s,s:s,s:s}", "level", "warn", "msg",
                                     "cannot reach the store; serving with the keys and presets last loaded",
                                     "error", err);
            if (line != NULL)
                telex_log_json(line);
        }
        svc->poll_failing = true;
        return;
    }
    if (svc->poll_failing)
        telex_log_event("notice", "the store is reachable again", NULL);
    svc->poll_failing = false;
    pthread_mutex_lock(&svc->reload_lock);
    bool changed = v != svc->data_version;
    pthread_mutex_unlock(&svc->reload_lock);
    if (!changed)
        return;
    int rc = telex_services_reload_keys(svc);
    if (rc == 0)
        rc = telex_services_reload_presets(svc);
    if (rc != 0 && !svc->reload_failing)
        telex_log_event("warn", "cannot reload API keys and presets; keeping the previous sets", NULL);
    else if (rc == 0)
        telex_log_event("info", "API keys reloaded", "\"active\":%zu", telex_keyset_active(svc->keyset));
    svc->reload_failing = rc != 0;
}

static void log_store(const telex_services_t *svc, size_t active, bool anonymous)
{
    json_t *line = json_pack("{s:s,s:s,s:s,s:s,s:I,s:b}", "level", "info", "msg", "store opened", "path",
                             telex_store_path(svc->store), "backend", telex_store_backend(svc->store), "api_keys",
                             (json_int_t)active, "anonymous", anonymous);
    if (line != NULL)
        telex_log_json(line);
}

int telex_services_open(telex_services_t **out, const telex_config_t *cfg, const telex_services_options_t *options,
                        char *err, size_t errlen)
{
    *out = NULL;
    telex_services_t *svc = telex_xcalloc(1, sizeof(*svc));
    pthread_mutex_init(&svc->reload_lock, NULL);
    svc->cfg = cfg;
    svc->loopback = telex_config_addr_is_loopback(&cfg->listen_addr);
    svc->allow_anonymous = (options && options->allow_anonymous) || cfg->auth.allow_anonymous;
    int rc;
    svc->limits = telex_limits_new();
    svc->keyset = telex_keyset_new();
    svc->metrics = telex_metrics_new();
    telex_metrics_set_config(svc->metrics, cfg); /* bounded model labels */
    if ((rc = telex_store_open(&svc->store, cfg->store.path, err, errlen)) != 0)
        goto fail;
    if ((rc = telex_presets_live_new(&svc->presets, cfg, svc->store, err, errlen)) != 0)
        goto fail;
    if ((rc = telex_services_reload_keys(svc)) != 0) {
        snprintf(err, errlen, "%s: cannot read the API keys", telex_store_path(svc->store));
        goto fail;
    }
    size_t active = telex_keyset_active(svc->keyset);
    if (active == 0 && !svc->loopback && !svc->allow_anonymous) {
        snprintf(err, errlen,
                 "telex listens on %s, which is not a loopback address, and has no API keys: anyone could use "
                 "it. Create a key (telex keys create --name NAME, with the same config/TELEX_DB), or start with "
                 "--allow-anonymous to serve without keys on purpose.",
                 cfg->listen);
        rc = -EPERM;
        goto fail;
    }
    if (!(options && options->no_ledger_thread)) {
        char spill[4096];
        if (cfg->store.spill_path == NULL &&
            telex_store_default_spill_path(cfg->store.path, spill, sizeof spill) != 0) {
            snprintf(err, errlen, "store.path is too long to derive store.spill_path from it; set store.spill_path");
            rc = -ENAMETOOLONG;
            goto fail;
        }
        telex_ledger_options_t lo = {
            .flush_interval_seconds = cfg->store.flush_interval_seconds,
            .max_pending = (size_t)cfg->store.max_pending,
            .tick_seconds = 0.2, /* key and preset changes from elsewhere: well within 1 s */
            .on_tick = on_tick,
            .tick_arg = svc,
            .spill_path = cfg->store.spill_path ? cfg->store.spill_path : spill,
            .spill_max_bytes = cfg->store.spill_max_bytes,
            .spill_path_default = cfg->store.spill_path == NULL,
        };
        if ((rc = telex_ledger_start(&svc->ledger, svc->store, &lo, err, errlen)) != 0)
            goto fail;
    }
    log_store(svc, active, telex_services_anonymous_allowed(svc));
    *out = svc;
    return 0;
fail:
    telex_services_close(svc);
    return rc;
}

unsigned long long telex_services_close(telex_services_t *svc)
{
    if (svc == NULL)
        return 0;
    unsigned long long lost = telex_ledger_stop(svc->ledger);
    /* a usage query or admin call may still run on the thread pool */
    for (int i = 0; i < 500 && atomic_load(&jobs_in_work) > 0; i++) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (atomic_load(&jobs_in_work) == 0)
        telex_store_close(svc->store);
    telex_presets_live_free(svc->presets);
    telex_metrics_free(svc->metrics);
    telex_keyset_free(svc->keyset);
    telex_limits_free(svc->limits);
    pthread_mutex_destroy(&svc->reload_lock);
    free(svc);
    return lost;
}

/* ---- usage rows and store jobs ------------------------------------------------------ */

int telex_usage_record(telex_services_t *svc, const telex_grant_t *grant, const telex_usage_record_t *rec)
{
    telex_usage_settle(svc->limits, grant, rec);
    if (!svc->cfg->store.ledger)
        return 0; /* store.ledger: false — no usage rows (budgets still count in memory) */
    if (svc->ledger != NULL)
        return telex_ledger_append(svc->ledger, rec);
    char err[256];
    return telex_store_ledger_append(svc->store, rec, 1, err, sizeof err);
}

void telex_services_job_begin(void)
{
    atomic_fetch_add(&jobs_in_work, 1);
}

void telex_services_job_end(void)
{
    atomic_fetch_sub(&jobs_in_work, 1);
}
