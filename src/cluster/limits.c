/*
 * cluster/limits.c — rate limits and budgets across nodes. See limits.h.
 */
#include "cluster/limits.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster/cluster_internal.h"
#include "util/log.h"

/* KEYS[1] = telex:k:<id> (buckets and spend), KEYS[2] = telex:k:<id>:r (the budget
 * reservations of requests in flight: field "<node>:<n>" = USD); ARGV = rpm, tpm, budget (-1:
 * none), est_tokens, est_usd, seed_spent, the reservation's field. Reservations of a node whose
 * heartbeat key is gone are dropped (a node that died mid-request does not hold the budget).
 * Returns {verdict, retry_after_s}: 0 ok, 1 budget, 2 rpm, 3 tpm. */
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
    "return {0, 0}\n";

/* KEYS[1], KEYS[2] as above; ARGV = reserved_tokens, used_tokens, cost_usd, the reservation's field. */
const char telex_cluster_settle_lua[] =
    "local tt = redis.call('HGET', KEYS[1], 'tt')\n"
    "if tt then redis.call('HSET', KEYS[1], 'tt', tostring(tonumber(tt) + tonumber(ARGV[1]) - tonumber(ARGV[2]))) end\n"
    "local sp = tonumber(redis.call('HGET', KEYS[1], 'sp')) or 0\n"
    "redis.call('HSET', KEYS[1], 'sp', tostring(sp + tonumber(ARGV[3])))\n"
    "redis.call('HDEL', KEYS[2], ARGV[4])\n"
    "return 1\n";

static atomic_uint_least64_t reservations; /* this node's reservation numbers */

typedef struct hold {
    telex_cluster_worker_t *cw;
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
    if (h->req != NULL) {
        h2o_req_t *req = h->req;
        *h->link = NULL;
        cw->reentering = req;
        cw->verdict_for = req;
        cw->verdict = verdict;
        cw->verdict_retry = retry;
        cw->verdict_reservation = h->reservation;
        cw->redispatch(cw->ctx, req);
        cw->reentering = NULL;
        cw->verdict_for = NULL;
    }
    free(h);
}

int telex_cluster_admit(h2o_req_t *req, int64_t key_id, int64_t rpm, int64_t tpm, double budget_usd,
                        uint64_t est_tokens, double est_usd, double local_spent, unsigned *retry_after_s,
                        uint64_t *reservation)
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
    if (!telex_rconn_is_up(cw->cmd))
        return TELEX_CLUSTER_LOCAL;
    hold_t *h = calloc(1, sizeof *h);
    hold_t **link = h != NULL ? h2o_mem_alloc_shared(&req->pool, sizeof *link, on_disposed) : NULL;
    if (link == NULL) {
        free(h);
        return TELEX_CLUSTER_LOCAL;
    }
    *link = h;
    h->link = link;
    h->cw = cw;
    h->req = req;
    h->reservation = atomic_fetch_add(&reservations, 1) + 1;
    char key[KEY_MAX], rkey[KEY_MAX], a[7][64];
    snprintf(key, sizeof key, "telex:k:%lld", (long long)key_id);
    snprintf(rkey, sizeof rkey, "telex:k:%lld:r", (long long)key_id);
    snprintf(a[6], sizeof a[6], "%s:%llu", telex_cluster_g.node, (unsigned long long)h->reservation);
    snprintf(a[0], sizeof a[0], "%lld", (long long)(rpm > 0 ? rpm : 0));
    snprintf(a[1], sizeof a[1], "%lld", (long long)(tpm > 0 ? tpm : 0));
    snprintf(a[2], sizeof a[2], "%.17g", budget_usd);
    snprintf(a[3], sizeof a[3], "%llu", (unsigned long long)est_tokens);
    snprintf(a[4], sizeof a[4], "%.17g", est_usd > 0 ? est_usd : 0);
    snprintf(a[5], sizeof a[5], "%.17g", local_spent > 0 ? local_spent : 0);
    const char *argv[] = {"EVAL", telex_cluster_admit_lua, "2", key, rkey, a[0], a[1], a[2], a[3], a[4], a[5], a[6]};
    size_t len[12];
    for (int i = 0; i < 12; i++)
        len[i] = strlen(argv[i]);
    if (telex_rconn_cmd(cw->cmd, on_admit, h, 0, 12, argv, len) != 0) {
        *link = NULL;
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
    char key[KEY_MAX], rkey[KEY_MAX], a[4][64];
    snprintf(key, sizeof key, "telex:k:%lld", (long long)key_id);
    snprintf(rkey, sizeof rkey, "telex:k:%lld:r", (long long)key_id);
    snprintf(a[0], sizeof a[0], "%llu", (unsigned long long)reserved_tokens);
    snprintf(a[1], sizeof a[1], "%llu", (unsigned long long)used_tokens);
    snprintf(a[2], sizeof a[2], "%.17g", cost_usd > 0 ? cost_usd : 0);
    snprintf(a[3], sizeof a[3], "%s:%llu", telex_cluster_g.node, (unsigned long long)reservation);
    const char *argv[] = {"EVAL", telex_cluster_settle_lua, "2", key, rkey, a[0], a[1], a[2], a[3]};
    size_t len[9];
    for (int i = 0; i < 9; i++)
        len[i] = strlen(argv[i]);
    if (telex_rconn_cmd(cw->cmd, NULL, NULL, 0, 9, argv, len) != 0)
        telex_log_event("warn", "cluster: a request's cost could not be settled in Redis (unavailable)", NULL);
}
