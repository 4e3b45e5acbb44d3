/*
 * cluster/limits.c — rate limits and budgets across nodes. See limits.h.
 */
#include "cluster/limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster_internal.h"
#include "util/alloc.h"
#include "util/log.h"

/* KEYS[1] = telex:k:<id> (buckets and spend), KEYS[2] = telex:k:<id>:r (the budget
 * reservations of requests in flight: field "<node>:<n>" = USD), KEYS[3] = telex:k:<id>:c (the
 * concurrency leases of requests in flight: sorted set, member "<node>:<n>", score = the lease's
 * expiry in Redis ms); ARGV = rpm, tpm, budget (-1: none), est_tokens, est_usd, seed_spent, the
 * reservation's field (also the lease's member), max_concurrent (0: none), the lease's TTL in ms.
 * Reservations of a node whose heartbeat key is gone are dropped (a node that died mid-request
 * does not hold the budget); expired leases are dropped before the leases are counted.
 * Returns {verdict, retry_after_s}: 0 ok, 1 budget, 2 rpm, 3 tpm, 4 concurrency. */
const char telex_cluster_admit_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local rpm, tpm, budget = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])\n"
    "local est_t, est_usd = tonumber(ARGV[4]), tonumber(ARGV[5])\n"
    "local h = redis.call('HMGET', KEYS[1], 'rt', 'ra', 'tt', 'ta', 'sp')\n"
    "local sp = tonumber(h[5]) or tonumber(ARGV[6])\n"
    "local rs, alive = 0, {}\n"
    "local res = redis.call('HGETALL', KEYS[2])\n"
    "for i = 1, #res, 2 do\n"
    "  local node = string.match(res[i], '^([^:]+):')\n"
    "  if alive[node] == nil then alive[node] = redis.call('EXISTS', 'telex:node:' .. node) == 1 end\n"
    "  if alive[node] then rs = rs + tonumber(res[i + 1]) else redis.call('HDEL', KEYS[2], res[i]) end\n"
    "end\n"
    "local function refill(tok, at, cap)\n"
    "  if tok == nil then return cap end\n"
    "  if now > at then tok = tok + (now - at) * cap / 60000 end\n"
    "  if tok > cap then tok = cap end\n"
    "  return tok\n"
    "end\n"
    "local function wait(tok, cap)\n"
    "  local s = math.ceil((1 - tok) * 60 / cap)\n"
    "  if s < 1 then s = 1 end\n"
    "  if s > 86400 then s = 86400 end\n"
    "  return s\n"
    "end\n"
    "redis.call('HSET', KEYS[1], 'sp', tostring(sp))\n"
    "if budget >= 0 and sp + rs >= budget then return {1, 0} end\n"
    "local conc, lease_ms = tonumber(ARGV[8]), tonumber(ARGV[9])\n"
    "if conc > 0 then\n"
    "  redis.call('ZREMRANGEBYSCORE', KEYS[3], '-inf', now)\n"
    "  if redis.call('ZCARD', KEYS[3]) >= conc then return {4, 1} end\n"
    "end\n"
    "local tt, rt\n"
    "if tpm > 0 then\n"
    "  tt = refill(tonumber(h[3]), tonumber(h[4]), tpm)\n"
    "  redis.call('HSET', KEYS[1], 'tt', tostring(tt), 'ta', now)\n"
    "  if tt <= 0 then return {3, wait(tt, tpm)} end\n"
    "end\n"
    "if rpm > 0 then\n"
    "  rt = refill(tonumber(h[1]), tonumber(h[2]), rpm)\n"
    "  redis.call('HSET', KEYS[1], 'rt', tostring(rt), 'ra', now)\n"
    "  if rt < 1 then return {2, wait(rt, rpm)} end\n"
    "  redis.call('HSET', KEYS[1], 'rt', tostring(rt - 1))\n"
    "end\n"
    "if tpm > 0 then redis.call('HSET', KEYS[1], 'tt', tostring(tt - est_t)) end\n"
    "if est_usd > 0 then redis.call('HSET', KEYS[2], ARGV[7], tostring(est_usd)) end\n"
    "if conc > 0 then\n"
    "  redis.call('ZADD', KEYS[3], now + lease_ms, ARGV[7])\n"
    "  redis.call('PEXPIRE', KEYS[3], lease_ms)\n"
    "end\n"
    "return {0, 0}\n";

/* KEYS[1], KEYS[2], KEYS[3] as above; ARGV = reserved_tokens, used_tokens, cost_usd, the reservation's
 * field (and lease member). */
const char telex_cluster_settle_lua[] =
    "local tt = redis.call('HGET', KEYS[1], 'tt')\n"
    "if tt then redis.call('HSET', KEYS[1], 'tt', tostring(tonumber(tt) + tonumber(ARGV[1]) - tonumber(ARGV[2]))) end\n"
    "local sp = tonumber(redis.call('HGET', KEYS[1], 'sp')) or 0\n"
    "redis.call('HSET', KEYS[1], 'sp', tostring(sp + tonumber(ARGV[3])))\n"
    "redis.call('HDEL', KEYS[2], ARGV[4])\n"
    "redis.call('ZREM', KEYS[3], ARGV[4])\n"
    "return 1\n";

/* KEYS = the leases' sorted sets, ARGV[1] = the TTL in ms, ARGV[i + 1] = the member in KEYS[i]: every
 * lease of this worker's requests in flight moves its expiry to now + TTL (a lease dropped while Redis
 * was away, or by a restarted Redis, is added again). */
const char telex_cluster_lease_refresh_lua[] =
    "local t = redis.call('TIME')\n"
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)\n"
    "local ttl = tonumber(ARGV[1])\n"
    "for i = 1, #KEYS do\n"
    "  redis.call('ZADD', KEYS[i], now + ttl, ARGV[i + 1])\n"
    "  redis.call('PEXPIRE', KEYS[i], ttl)\n"
    "end\n"
    "return #KEYS\n";

/* KEYS[1], KEYS[2], KEYS[3] as above; ARGV = the reservation's field (and lease member), cost_usd. The
 * end of a request whose admission reply was lost: the script may or may not have run, so whatever it
 * may have taken under that name is removed (nothing when it did not run), and the request's real cost
 * is added to the spend — only where Redis has one: otherwise the next admission seeds the spend from
 * the admitting node's own count, which already has it. Its token estimate, if the script took it,
 * stays taken from the tpm bucket (which refills). */
const char telex_cluster_give_back_lua[] =
    "redis.call('HDEL', KEYS[2], ARGV[1])\n"
    "redis.call('ZREM', KEYS[3], ARGV[1])\n"
    "local c = tonumber(ARGV[2])\n"
    "local sp = redis.call('HGET', KEYS[1], 'sp')\n"
    "if c > 0 and sp then redis.call('HSET', KEYS[1], 'sp', tostring(tonumber(sp) + c)) end\n"
    "return 1\n";

static atomic_uint_least64_t reservations; /* this node's reservation numbers */

static void key_names(char *key, char *rkey, char *ckey, int64_t key_id)
{
    snprintf(key, KEY_MAX, "telex:k:%lld", (long long)key_id);
    snprintf(rkey, KEY_MAX, "telex:k:%lld:r", (long long)key_id);
    snprintf(ckey, KEY_MAX, "telex:k:%lld:c", (long long)key_id);
}

/* A concurrency lease of a request in flight on this worker (refreshed by cluster_leases_tick). */
typedef struct cluster_lease {
    struct cluster_lease *next;
    int64_t key_id;
    uint64_t reservation;
} lease_t;

static void lease_key(char *out, int64_t key_id)
{
    snprintf(out, KEY_MAX, "telex:k:%lld:c", (long long)key_id);
}

static void lease_member(char *out, size_t cap, uint64_t reservation)
{
    snprintf(out, cap, "%s:%llu", telex_cluster_g.node, (unsigned long long)reservation);
}

/* Out of memory: the lease is not refreshed and lapses after its TTL (the request still runs). */
static void lease_add(telex_cluster_worker_t *cw, int64_t key_id, uint64_t reservation)
{
    lease_t *l = telex_xmalloc(sizeof *l);
    l->key_id = key_id;
    l->reservation = reservation;
    l->next = cw->leases;
    cw->leases = l;
    cw->n_leases++;
}

static void lease_drop(telex_cluster_worker_t *cw, int64_t key_id, uint64_t reservation)
{
    for (lease_t **p = &cw->leases; *p != NULL; p = &(*p)->next) {
        if ((*p)->key_id == key_id && (*p)->reservation == reservation) {
            lease_t *l = *p;
            *p = l->next;
            free(l);
            cw->n_leases--;
            return;
        }
    }
}

/* An admission of this worker whose reply was lost (Redis failed or was too slow): the script may
 * have run, and reserved budget and a lease under the name node:reservation. Kept while its request
 * runs (ended = 0); once it ended, the give-back script is sent as soon as the command connection is
 * up (at once, or from the tick), and the entry is freed when Redis answered it. */
typedef struct cluster_lost {
    struct cluster_lost *next;
    telex_cluster_worker_t *cw;
    int64_t key_id;
    uint64_t reservation;
    double cost_usd; /* the request's real cost, added to Redis' spend with the give-back */
    int ended;
} lost_t;

static lost_t *lost_add(telex_cluster_worker_t *cw, int64_t key_id, uint64_t reservation)
{
    lost_t *l = telex_xcalloc(1, sizeof *l);
    l->cw = cw;
    l->key_id = key_id;
    l->reservation = reservation;
    l->next = cw->lost;
    cw->lost = l;
    return l;
}

/* The give-back's reply. None (the connection failed: the script may or may not have run): sent again
 * once the connection is back, without the cost this time (the HDEL and ZREM may be repeated, an
 * addition to the spend may not), which Redis' count may then lack, as for a settle that failed. An
 * error (Redis refused the script: not retried, every tick) is logged. */
static void on_give_back(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    (void)rc;
    lost_t *l = priv;
    if (reply != NULL) {
        if (reply->type == REDIS_REPLY_ERROR)
            telex_log_event("warn", "cluster: a lost admission's reservation could not be given back", NULL);
        free(l);
        return;
    }
    l->cost_usd = 0;
    l->next = l->cw->lost;
    l->cw->lost = l;
}

static void lost_flush(telex_cluster_worker_t *cw)
{
    if (!telex_rconn_is_up(cw->cmd))
        return;
    for (lost_t **p = &cw->lost; *p != NULL;) {
        lost_t *l = *p;
        if (!l->ended) {
            p = &l->next;
            continue;
        }
        char key[KEY_MAX], rkey[KEY_MAX], ckey[KEY_MAX], member[64], cost[64];
        key_names(key, rkey, ckey, l->key_id);
        lease_member(member, sizeof member, l->reservation);
        snprintf(cost, sizeof cost, "%.17g", l->cost_usd > 0 ? l->cost_usd : 0);
        const char *argv[] = {"EVAL", telex_cluster_give_back_lua, "3", key, rkey, ckey, member, cost};
        size_t len[8];
        for (int i = 0; i < 8; i++)
            len[i] = strlen(argv[i]);
        *p = l->next; /* (back in the list if its reply is lost too: on_give_back) */
        if (telex_rconn_cmd(cw->cmd, on_give_back, l, 0, 8, argv, len) != 0) {
            l->next = *p;
            *p = l;
            return; /* Redis away again: the next tick tries again */
        }
    }
}

/* The request of a lost admission ended (cost_usd: its real cost); 0 when reservation is not one. */
static int lost_end(telex_cluster_worker_t *cw, int64_t key_id, uint64_t reservation, double cost_usd)
{
    for (lost_t *l = cw->lost; l != NULL; l = l->next) {
        if (l->key_id == key_id && l->reservation == reservation && !l->ended) {
            l->ended = 1;
            l->cost_usd = cost_usd;
            lost_flush(cw);
            return 1;
        }
    }
    return 0;
}

#define LEASES_PER_CALL 256

void cluster_leases_tick(telex_cluster_worker_t *cw)
{
    if (cw->lost != NULL)
        lost_flush(cw);
    uint64_t now = uv_now(cw->loop);
    if (cw->leases == NULL || now - cw->last_lease_refresh_ms < TELEX_CLUSTER_LEASE_REFRESH_MS ||
        !telex_rconn_is_up(cw->cmd))
        return;
    typedef struct {
        char keys[LEASES_PER_CALL][KEY_MAX], members[LEASES_PER_CALL][64];
        const char *argv[4 + 2 * LEASES_PER_CALL];
        size_t len[4 + 2 * LEASES_PER_CALL];
    } batch_t;
    batch_t *b = telex_xmalloc(sizeof *b); /* ~50 KB: not on a worker's stack */
    cw->last_lease_refresh_ms = now;
    char (*keys)[KEY_MAX] = b->keys, (*members)[64] = b->members;
    const char **argv = b->argv;
    size_t *len = b->len;
    char nkeys[16], ttl[16];
    snprintf(ttl, sizeof ttl, "%d", TELEX_CLUSTER_LEASE_TTL_MS);
    lease_t *l = cw->leases;
    while (l != NULL) {
        int n = 0;
        for (; l != NULL && n < LEASES_PER_CALL; l = l->next, n++) {
            lease_key(keys[n], l->key_id);
            lease_member(members[n], sizeof members[n], l->reservation);
        }
        snprintf(nkeys, sizeof nkeys, "%d", n);
        int argc = 0;
        argv[argc++] = "EVAL";
        argv[argc++] = telex_cluster_lease_refresh_lua;
        argv[argc++] = nkeys;
        for (int i = 0; i < n; i++)
            argv[argc++] = keys[i];
        argv[argc++] = ttl;
        for (int i = 0; i < n; i++)
            argv[argc++] = members[i];
        for (int i = 0; i < argc; i++)
            len[i] = strlen(argv[i]);
        if (telex_rconn_cmd(cw->cmd, NULL, NULL, 0, argc, argv, len) != 0)
            break; /* Redis away: the next refresh tries again */
    }
    free(b);
}

typedef struct hold {
    telex_cluster_worker_t *cw;
    int64_t key_id;
    int leased; /* max_concurrent > 0: an admitted request holds a lease */
    uint64_t est_tokens;
    uint64_t reservation;
    h2o_req_t *req; /* NULL once h2o disposed of it */
    struct hold **link;
} hold_t;

static void on_disposed(void *p)
{
    hold_t *h = *(hold_t **)p;
    if (h != NULL)
        h->req = NULL;
}

static void on_admit(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    (void)rc;
    hold_t *h = priv;
    telex_cluster_worker_t *cw = h->cw;
    int verdict = TELEX_CLUSTER_LOCAL;
    unsigned retry = 0;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
        reply->element[0]->type == REDIS_REPLY_INTEGER && reply->element[1]->type == REDIS_REPLY_INTEGER) {
        verdict = (int)reply->element[0]->integer;
        retry = (unsigned)reply->element[1]->integer;
    } else if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        telex_log_event("warn", "cluster: the limits script failed; deciding locally", NULL);
    }
    /* decided locally (Redis failed or was too slow): the node's own count decides, and the lease
     * is kept (refreshed into Redis, removed at the end: telex_cluster_lease_end) all the same. The
     * script may have run all the same (its reply lost with the connection): what it may have
     * reserved is given back at the request's end (telex_cluster_lease_end), or now when the
     * client already left */
    if ((verdict == TELEX_CLUSTER_ADMIT_OK || (verdict == TELEX_CLUSTER_LOCAL && h->req != NULL)) && h->leased)
        lease_add(cw, h->key_id, h->reservation);
    if (verdict == TELEX_CLUSTER_LOCAL) {
        lost_t *l = lost_add(cw, h->key_id, h->reservation);
        if (h->req == NULL)
            lost_end(cw, l->key_id, l->reservation, 0);
    }
    if (h->req == NULL && verdict == TELEX_CLUSTER_ADMIT_OK) {
        /* the client left while Redis decided: give back what the script took (on cw's thread) */
        telex_cluster_settle(h->key_id, h->reservation, h->est_tokens, 0, 0);
    }
    if (h->req != NULL) {
        h2o_req_t *req = h->req;
        *h->link = NULL;
        cw->reentering = req;
        cw->verdict_for = req;
        cw->verdict = verdict;
        cw->verdict_retry = retry;
        cw->verdict_reservation = h->reservation; /* LOCAL: its lease and what the lost script may have taken */
        cw->redispatch(cw->ctx, req);
        cw->reentering = NULL;
        if (cw->verdict_for == req) {
            /* not taken (the key was revoked, or its limits removed, meanwhile): nobody will settle
             * what the script reserved; given back now */
            if (verdict == TELEX_CLUSTER_ADMIT_OK)
                telex_cluster_settle(h->key_id, h->reservation, h->est_tokens, 0, 0);
            else if (verdict == TELEX_CLUSTER_LOCAL)
                telex_cluster_lease_end(h->key_id, h->reservation, 0);
        }
        cw->verdict_for = NULL;
    }
    free(h);
}

int telex_cluster_admit(h2o_req_t *req, int64_t key_id, int64_t rpm, int64_t tpm, double budget_usd,
                        int64_t max_concurrent, uint64_t est_tokens, double est_usd, double local_spent,
                        unsigned *retry_after_s, uint64_t *reservation)
{
    telex_cluster_worker_t *cw = telex_cluster_current;
    *retry_after_s = 0;
    *reservation = 0;
    if (!telex_cluster_g.enabled || cw == NULL || key_id <= 0)
        return TELEX_CLUSTER_LOCAL;
    if (cw->verdict_for == req) { /* the second time: Redis has answered */
        cw->verdict_for = NULL;
        *retry_after_s = cw->verdict_retry;
        *reservation = cw->verdict_reservation;
        return cw->verdict;
    }
    if (!telex_rconn_is_up(cw->cmd)) {
        if (max_concurrent > 0) {
            /* admitted (or not) by the node's own count; its lease reaches Redis with the next
             * refresh once Redis is back, so that the other nodes count this request too */
            *reservation = atomic_fetch_add(&reservations, 1) + 1;
            lease_add(cw, key_id, *reservation);
        }
        return TELEX_CLUSTER_LOCAL;
    }
    hold_t *h = telex_xcalloc(1, sizeof *h);
    hold_t **link = h2o_mem_alloc_shared(&req->pool, sizeof *link, on_disposed); /* aborts on OOM */
    *link = h;
    h->link = link;
    h->cw = cw;
    h->req = req;
    h->reservation = atomic_fetch_add(&reservations, 1) + 1;
    h->key_id = key_id;
    h->leased = max_concurrent > 0;
    h->est_tokens = est_tokens;
    char key[KEY_MAX], rkey[KEY_MAX], ckey[KEY_MAX], a[9][64];
    snprintf(key, sizeof key, "telex:k:%lld", (long long)key_id);
    snprintf(rkey, sizeof rkey, "telex:k:%lld:r", (long long)key_id);
    lease_key(ckey, key_id);
    lease_member(a[6], sizeof a[6], h->reservation);
    snprintf(a[7], sizeof a[7], "%lld", (long long)(max_concurrent > 0 ? max_concurrent : 0));
    snprintf(a[8], sizeof a[8], "%d", TELEX_CLUSTER_LEASE_TTL_MS);
    snprintf(a[0], sizeof a[0], "%lld", (long long)(rpm > 0 ? rpm : 0));
    snprintf(a[1], sizeof a[1], "%lld", (long long)(tpm > 0 ? tpm : 0));
    snprintf(a[2], sizeof a[2], "%.17g", budget_usd);
    snprintf(a[3], sizeof a[3], "%llu", (unsigned long long)est_tokens);
    snprintf(a[4], sizeof a[4], "%.17g", est_usd > 0 ? est_usd : 0);
    snprintf(a[5], sizeof a[5], "%.17g", local_spent > 0 ? local_spent : 0);
    const char *argv[] = {"EVAL", telex_cluster_admit_lua, "3",  key,  rkey, ckey, a[0], a[1],
                          a[2],   a[3],                    a[4], a[5], a[6], a[7], a[8]};
    size_t len[15];
    for (int i = 0; i < 15; i++)
        len[i] = strlen(argv[i]);
    if (telex_rconn_cmd(cw->cmd, on_admit, h, 0, 15, argv, len) != 0) {
        *link = NULL;
        if (h->leased) { /* as when Redis is away */
            *reservation = h->reservation;
            lease_add(cw, key_id, h->reservation);
        }
        free(h);
        return TELEX_CLUSTER_LOCAL;
    }
    return TELEX_CLUSTER_PENDING;
}

void telex_cluster_settle(int64_t key_id, uint64_t reservation, uint64_t reserved_tokens, uint64_t used_tokens,
                          double cost_usd)
{
    telex_cluster_worker_t *cw = telex_cluster_current;
    if (!telex_cluster_g.enabled || cw == NULL || key_id <= 0)
        return;
    lease_drop(cw, key_id, reservation); /* before the ZREM: a refresh cannot add it back */
    char key[KEY_MAX], rkey[KEY_MAX], ckey[KEY_MAX], a[4][64];
    snprintf(key, sizeof key, "telex:k:%lld", (long long)key_id);
    snprintf(rkey, sizeof rkey, "telex:k:%lld:r", (long long)key_id);
    lease_key(ckey, key_id);
    snprintf(a[0], sizeof a[0], "%llu", (unsigned long long)reserved_tokens);
    snprintf(a[1], sizeof a[1], "%llu", (unsigned long long)used_tokens);
    snprintf(a[2], sizeof a[2], "%.17g", cost_usd > 0 ? cost_usd : 0);
    lease_member(a[3], sizeof a[3], reservation);
    const char *argv[] = {"EVAL", telex_cluster_settle_lua, "3", key, rkey, ckey, a[0], a[1], a[2], a[3]};
    size_t len[10];
    for (int i = 0; i < 10; i++)
        len[i] = strlen(argv[i]);
    if (telex_rconn_cmd(cw->cmd, NULL, NULL, 0, 10, argv, len) != 0)
        telex_log_event("warn", "cluster: a request's cost could not be settled in Redis (unavailable)", NULL);
}

void telex_cluster_lease_end(int64_t key_id, uint64_t reservation, double cost_usd)
{
    telex_cluster_worker_t *cw = telex_cluster_current;
    if (!telex_cluster_g.enabled || cw == NULL || key_id <= 0 || reservation == 0)
        return;
    lease_drop(cw, key_id, reservation); /* before the ZREM: a refresh cannot add it back */
    if (lost_end(cw, key_id, reservation, cost_usd))
        return; /* its give-back removes the lease too (Redis away: the lease lapses meanwhile) */
    char ckey[KEY_MAX], member[64];
    lease_key(ckey, key_id);
    lease_member(member, sizeof member, reservation);
    telex_rconn_cmdf(cw->cmd, NULL, NULL, "ZREM %s %s", ckey, member); /* Redis away: it lapses with its TTL */
}
