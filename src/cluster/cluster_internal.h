/*
 * cluster/cluster_internal.h — what cluster.c, publish.c and mirror.c
 * share: the process's settings, the per-worker state, the Redis key names.
 * Not for use outside src/cluster.
 */
#ifndef TELEX_CLUSTER_INTERNAL_H
#define TELEX_CLUSTER_INTERNAL_H

#include <stdatomic.h>

#include <h2o/linklist.h>

#include "cluster/cluster.h"
#include "cluster/rconn.h"
#include "cluster/redis_url.h"

/* Every Redis call must answer within this (XREAD BLOCK adds its block time). */
#define CLUSTER_TIMEOUT_MS 1000
/* The heartbeat is refreshed this often and lives this long. */
#define HEARTBEAT_EVERY_MS 500
#define HEARTBEAT_TTL_MS 2000
/* A worker's woken streams are appended to Redis together this long after the first. */
#define PUBLISH_BATCH_MS 2
/* XREAD BLOCK's wait; a new mirror interrupts it (CLIENT UNBLOCK). */
#define XREAD_BLOCK_MS 2000
/* Entries per XRANGE page and per XREAD. */
#define XRANGE_PAGE 512
/* MAXLEN ~ of a stream's entries (a safety bound; time retention is EXPIRE). */
#define STREAM_MAXLEN 100000
/* A mirror nobody reads is dropped after this. */
#define MIRROR_LINGER_MS 3000
/* A live mirror whose node cannot reach Redis this long ends with an error event. */
#define MIRROR_REDIS_GRACE_MS 10000
#define CTL_CHANNEL "telex:ctl"
/* Waits for an unknown stream id's registration a client address may have
 * pending per worker (waits.c says why a concurrency bound, and why this). */
#define CLUSTER_WAITS_PER_CLIENT 8

struct pub;
struct mirror;
struct waiter;
struct held;
typedef struct cluster_wait_client cluster_wait_client_t;

struct telex_cluster_worker {
    uv_loop_t *loop;
    telex_waker_t *waker;
    int index;
    telex_rconn_t *cmd; /* commands: XADD, XRANGE, HGETALL, EXISTS, PUBLISH, SET */
    telex_rconn_t *blk; /* XREAD BLOCK for this worker's live mirrors */
    telex_rconn_t *sub; /* worker 0 only: SUBSCRIBE telex:ctl */
    long long blk_client_id; /* CLIENT ID of blk (-1: unknown) */
    int xread_inflight;
    int xread_stale; /* the live set changed while an XREAD was waiting */
    int unblocking;  /* a CLIENT UNBLOCK is on its way */
    uv_timer_t tick;
    uint64_t last_heartbeat_ms;
    uint64_t redis_down_since; /* uv_now() when cmd or blk went down (0: up) */
    h2o_linklist_t pubs;    /* of struct pub's link: this worker's publishers, the newest first (publish.c) */
    struct pub *dirty;      /* publishers woken since the last batch (publish.c) */
    uv_timer_t batch_timer; /* sends that batch */
    struct mirror *mirrors;
    cluster_wait_client_t **wait_clients; /* waits.c: clients with waits pending (hash buckets) */
    int stopping;                         /* shutting down: no new waits (mirror.c) */
    h2o_req_t *cut_short;                 /* a wait ended by the shutdown, handed back to be answered 503 */
    h2o_req_t *reentering; /* a held request being handled again */
    h2o_req_t *held_once;  /* the same, after waiting for its mirror to catch up (not held again) */
    struct held *held;     /* requests waiting for their mirror to catch up (cluster.c) */
    h2o_req_t *verdict_for; /* limits.c: the request whose Redis verdict is below */
    int verdict;
    unsigned verdict_retry;
    uint64_t verdict_reservation;
    struct cluster_lease *leases; /* limits.c: concurrency leases of this worker's requests in flight */
    size_t n_leases;
    uint64_t last_lease_refresh_ms;
    struct cluster_lost *lost; /* limits.c: admissions whose reply was lost, to give back at their end */
    int (*redispatch)(void *ctx, h2o_req_t *req);
    void *ctx;
};

typedef struct cluster_global {
    int enabled;
    telex_redis_url_t url;
    char node[33];
    const telex_config_t *cfg;
    void (*reload_keys)(void *);
    void *reload_ctx;
    atomic_int redis_up;
    atomic_int keys_dirty; /* key rows changed here: worker 0 announces it */
    atomic_uint_least64_t published;
    atomic_uint_least64_t mirrors_built;
    atomic_uint_least64_t reg_failed; /* registrations not acknowledged: served local-only (register.c) */
} cluster_global_t;

extern cluster_global_t telex_cluster_g;
extern __thread telex_cluster_worker_t *telex_cluster_current;

/* Key names ("telex:s:<id>:e" / ":m", "telex:node:<node>"). */
#define KEY_MAX 96
void cluster_key_events(char *out, const char *id);
void cluster_key_meta(char *out, const char *id);
void cluster_key_node(char *out, const char *node);

/* publish.c */
void cluster_pubs_on_up(telex_cluster_worker_t *cw);
void cluster_pubs_tick(telex_cluster_worker_t *cw);
void cluster_pubs_on_batch(uv_timer_t *t);

/* mirror.c */
int cluster_mirror_request(telex_cluster_worker_t *cw, h2o_req_t *req, const char *id);
void cluster_mirrors_on_blk_up(telex_cluster_worker_t *cw);
void cluster_mirrors_tick(telex_cluster_worker_t *cw);
void cluster_xread_kick(telex_cluster_worker_t *cw);
void cluster_mirrors_shutdown(telex_cluster_worker_t *cw);

/* waits.c: one of req's client's wait slots on this worker, or NULL (counted
 * in telex_cluster_lookup_waits_refused) when it has CLUSTER_WAITS_PER_CLIENT. */
cluster_wait_client_t *cluster_wait_take(telex_cluster_worker_t *cw, h2o_req_t *req);
void cluster_wait_give(telex_cluster_worker_t *cw, cluster_wait_client_t *cl);

/* limits.c: refreshes this worker's concurrency leases (every tick; sends at most once per refresh
 * period), and sends the give-backs of lost admissions whose requests ended (once Redis is up) */
void cluster_leases_tick(telex_cluster_worker_t *cw);

/* cluster.c: ctl messages */
void cluster_publish_ctl(telex_cluster_worker_t *cw, const char *verb, const char *arg);

#endif
