/*
 * cluster/cluster.c — cluster mode's process settings, per-worker
 * connections, heartbeat, control channel and the router's hook. See
 * cluster.h; publish.c and mirror.c do the streams.
 *
 * Connections per worker: `cmd` (every ordinary command, pipelined) and
 * `blk` (one XREAD BLOCK at a time over all of the worker's live mirrors);
 * worker 0 also has `sub` (SUBSCRIBE telex:ctl) and refreshes the node's
 * heartbeat. One blocking reader per worker rather than one connection per
 * reader: a node with thousands of resumers holds workers x 2 connections to
 * Redis, not thousands, and one XREAD wakes for every mirror of the worker
 * that has news (a new mirror interrupts the wait with CLIENT UNBLOCK).
 */
#include "cluster/cluster_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "http/respond.h"
#include "stream/ids.h"
#include "util/alloc.h"
#include "util/log.h"

cluster_global_t telex_cluster_g;
__thread telex_cluster_worker_t *telex_cluster_current;

void cluster_key_events(char *out, const char *id)
{
    snprintf(out, KEY_MAX, "telex:s:%s:e", id);
}

void cluster_key_meta(char *out, const char *id)
{
    snprintf(out, KEY_MAX, "telex:s:%s:m", id);
}

void cluster_key_node(char *out, const char *node)
{
    snprintf(out, KEY_MAX, "telex:node:%s", node);
}

int telex_cluster_configure(const telex_config_t *cfg, void (*reload_keys)(void *), void *reload_ctx, char *err,
                            size_t errlen)
{
    memset(&telex_cluster_g, 0, sizeof telex_cluster_g);
    if (cfg->cluster.redis_url == NULL || cfg->cluster.redis_url[0] == '\0')
        return 0;
    char why[400];
    if (telex_redis_url_parse(cfg->cluster.redis_url, &telex_cluster_g.url, why, sizeof why) != 0) {
        snprintf(err, errlen, "cluster.redis_url / TELEX_REDIS_URL: %s", why);
        return -1;
    }
    const char *secret = getenv("TELEX_RESUME_SECRET");
    if (secret == NULL || secret[0] == '\0') {
        snprintf(err, errlen,
                 "cluster mode (TELEX_REDIS_URL) needs TELEX_RESUME_SECRET: the same secret on every node, so "
                 "that a resume token issued by one node verifies on the others (e.g. `openssl rand -hex 32`)");
        return -1;
    }
    if (!cfg->resume.enabled) {
        snprintf(err, errlen, "cluster mode (TELEX_REDIS_URL) needs resume.enabled: streams are shared as resumable logs");
        return -1;
    }
    unsigned char raw[8];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) {
        snprintf(err, errlen, "no randomness from the kernel for the node id");
        return -1;
    }
    for (size_t i = 0; i < sizeof raw; i++)
        snprintf(telex_cluster_g.node + 2 * i, 3, "%02x", raw[i]);
    telex_cluster_g.cfg = cfg;
    telex_cluster_g.reload_keys = reload_keys;
    telex_cluster_g.reload_ctx = reload_ctx;
    telex_cluster_g.enabled = 1;
    telex_log_event("notice", "cluster mode", "\"node\":\"%s\",\"redis\":\"%s:%d\"", telex_cluster_g.node,
                    telex_cluster_g.url.host, telex_cluster_g.url.port);
    return 0;
}

int telex_cluster_enabled(void)
{
    return telex_cluster_g.enabled;
}

const char *telex_cluster_node_id(void)
{
    return telex_cluster_g.node;
}

int telex_cluster_redis_up(void)
{
    return atomic_load(&telex_cluster_g.redis_up);
}

uint64_t telex_cluster_events_published(void)
{
    return atomic_load(&telex_cluster_g.published);
}

uint64_t telex_cluster_mirrors_built(void)
{
    return atomic_load(&telex_cluster_g.mirrors_built);
}

/* ------------------------------------------------------------ control channel */

void cluster_publish_ctl(telex_cluster_worker_t *cw, const char *verb, const char *arg)
{
    char msg[160];
    snprintf(msg, sizeof msg, "%s %s", verb, arg);
    if (telex_rconn_cmdf(cw->cmd, NULL, NULL, "PUBLISH %s %s", CTL_CHANNEL, msg) != 0)
        telex_log_event("warn", "redis unavailable: control message not sent", "\"verb\":\"%s\"", verb);
}

static void reload_work(uv_work_t *w)
{
    (void)w;
    telex_cluster_g.reload_keys(telex_cluster_g.reload_ctx);
}

static void reload_done(uv_work_t *w, int status)
{
    (void)status;
    free(w);
}

/* "cancel <node> <stream id>": DELETE reached a mirror on another node.
 * "keys <node>": that node changed key rows. */
static void on_ctl(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    (void)rc;
    telex_cluster_worker_t *cw = priv;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
        reply->element[0]->type != REDIS_REPLY_STRING || strcmp(reply->element[0]->str, "message") != 0 ||
        reply->element[2]->type != REDIS_REPLY_STRING)
        return;
    char verb[16], node[40], id[64];
    int n = sscanf(reply->element[2]->str, "%15s %39s %63s", verb, node, id);
    if (n >= 3 && strcmp(verb, "cancel") == 0 && strcmp(node, telex_cluster_g.node) == 0) {
        telex_stream_t *s = telex_registry_get(id);
        if (s != NULL) {
            if (!telex_log_finished(s->log)) {
                atomic_store(&s->cancel_requested, 1);
                telex_stream_poke_producer(s);
                telex_log_event("info", "stream cancelled from another node", NULL);
            }
            telex_stream_unref(s);
        }
    } else if (n >= 2 && strcmp(verb, "keys") == 0 && strcmp(node, telex_cluster_g.node) != 0 &&
               telex_cluster_g.reload_keys != NULL) {
        telex_log_event("info", "cluster: keys changed on another node; reloading", NULL);
        uv_work_t *w = telex_xmalloc(sizeof *w);
        if (uv_queue_work(cw->loop, w, reload_work, reload_done) != 0)
            free(w);
    }
}

void telex_cluster_keys_changed(void)
{
    /* any thread (the admin API writes keys on libuv's thread pool):
     * worker 0 announces it within its next tick (100 ms) */
    if (telex_cluster_g.enabled)
        atomic_store(&telex_cluster_g.keys_dirty, 1);
}

/* ------------------------------------------------------------ per worker */

static void heartbeat(telex_cluster_worker_t *cw)
{
    char key[KEY_MAX], ttl[16];
    cluster_key_node(key, telex_cluster_g.node);
    snprintf(ttl, sizeof ttl, "%d", HEARTBEAT_TTL_MS);
    if (telex_rconn_cmdf(cw->cmd, NULL, NULL, "SET %s 1 PX %s", key, ttl) == 0)
        cw->last_heartbeat_ms = uv_now(cw->loop);
}

static void check_held(telex_cluster_worker_t *cw);

static void on_tick(uv_timer_t *t)
{
    telex_cluster_worker_t *cw = t->data;
    if (cw->index == 0) {
        atomic_store(&telex_cluster_g.redis_up, telex_rconn_is_up(cw->cmd));
        if (uv_now(cw->loop) - cw->last_heartbeat_ms >= HEARTBEAT_EVERY_MS)
            heartbeat(cw);
        if (atomic_exchange(&telex_cluster_g.keys_dirty, 0))
            cluster_publish_ctl(cw, "keys", telex_cluster_g.node);
    }
    cluster_pubs_tick(cw);
    cluster_mirrors_tick(cw);
    cluster_leases_tick(cw);
    if (cw->held != NULL)
        check_held(cw);
}

static void on_cmd_up(telex_rconn_t *rc, void *user)
{
    (void)rc;
    telex_cluster_worker_t *cw = user;
    if (cw->index == 0) {
        heartbeat(cw);
        atomic_store(&telex_cluster_g.redis_up, 1);
    }
    cluster_pubs_on_up(cw);
}

static void on_cmd_down(telex_rconn_t *rc, void *user)
{
    (void)rc;
    telex_cluster_worker_t *cw = user;
    if (cw->index == 0)
        atomic_store(&telex_cluster_g.redis_up, 0);
}

static void on_client_id(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    (void)rc;
    telex_cluster_worker_t *cw = priv;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER)
        cw->blk_client_id = reply->integer;
}

static void on_blk_up(telex_rconn_t *rc, void *user)
{
    telex_cluster_worker_t *cw = user;
    cw->blk_client_id = -1;
    cw->xread_inflight = 0;
    telex_rconn_cmdf(rc, on_client_id, cw, "CLIENT ID");
    cluster_mirrors_on_blk_up(cw);
}

static void on_blk_down(telex_rconn_t *rc, void *user)
{
    (void)rc;
    telex_cluster_worker_t *cw = user;
    cw->blk_client_id = -1;
}

telex_cluster_worker_t *telex_cluster_worker_new(uv_loop_t *loop, telex_waker_t *waker, int index,
                                                 int (*redispatch)(void *ctx, h2o_req_t *req), void *ctx)
{
    if (!telex_cluster_g.enabled)
        return NULL;
    telex_cluster_worker_t *cw = telex_xcalloc(1, sizeof *cw);
    h2o_linklist_init_anchor(&cw->pubs);
    cw->loop = loop;
    cw->waker = waker;
    cw->index = index;
    cw->redispatch = redispatch;
    cw->ctx = ctx;
    cw->blk_client_id = -1;
    telex_rconn_hooks_t cmd_hooks = {on_cmd_up, on_cmd_down, cw}, blk_hooks = {on_blk_up, on_blk_down, cw};
    cw->cmd = telex_rconn_new(loop, &telex_cluster_g.url, "cmd", CLUSTER_TIMEOUT_MS, &cmd_hooks);
    cw->blk = telex_rconn_new(loop, &telex_cluster_g.url, "xread", CLUSTER_TIMEOUT_MS, &blk_hooks);
    if (index == 0)
        cw->sub = telex_rconn_new(loop, &telex_cluster_g.url, "subscribe", CLUSTER_TIMEOUT_MS, NULL);
    if (cw->cmd == NULL || cw->blk == NULL || (index == 0 && cw->sub == NULL)) {
        free(cw->cmd);
        free(cw->blk);
        free(cw->sub);
        free(cw);
        return NULL;
    }
    uv_timer_init(loop, &cw->tick);
    cw->tick.data = cw;
    uv_timer_init(loop, &cw->batch_timer);
    cw->batch_timer.data = cw;
    return cw;
}

void telex_cluster_worker_start(telex_cluster_worker_t *cw)
{
    if (cw == NULL)
        return;
    telex_cluster_current = cw;
    uv_timer_start(&cw->tick, on_tick, 100, 100);
    uv_unref((uv_handle_t *)&cw->tick);
    telex_rconn_use_quiet(cw->cmd); /* the tap's appends (publish.c) */
    telex_rconn_start(cw->cmd);
    telex_rconn_start(cw->blk);
    if (cw->sub != NULL) {
        telex_rconn_subscribe(cw->sub, CTL_CHANNEL, on_ctl, cw);
        telex_rconn_start(cw->sub);
    }
}

void telex_cluster_worker_shutdown(telex_cluster_worker_t *cw)
{
    if (cw != NULL)
        cluster_mirrors_shutdown(cw);
}

int telex_cluster_worker_idle(telex_cluster_worker_t *cw)
{
    if (cw == NULL || !telex_rconn_is_up(cw->cmd))
        return 1;
    return h2o_linklist_is_empty(&cw->pubs) && telex_rconn_flushed(cw->cmd);
}

/* ------------------------------------------------------------ the router's hook */

#define STREAMS_PREFIX "/v1/streams/"
#define RESPONSES_PREFIX "/v1/responses/resp_"
#define RESP_ID_LEN (TELEX_STREAM_ID_LEN - 3) /* the part after resp_ */

static int parse_count(h2o_iovec_t v, uint64_t *out)
{
    if (v.base == NULL || v.len == 0 || v.len > 18)
        return -1;
    uint64_t n = 0;
    for (size_t i = 0; i < v.len; i++) {
        if (v.base[i] < '0' || v.base[i] > '9')
            return -1;
        n = n * 10 + (uint64_t)(v.base[i] - '0');
    }
    *out = n;
    return 0;
}

/* How many events of the stream the request says its client already has
 * (Last-Event-ID, ?last_event_id=, ?after=N, ?starting_after=N); 0 when none. */
static uint64_t events_had(h2o_req_t *req)
{
    char other[TELEX_STREAM_ID_LEN + 1];
    uint64_t seq = 0;
    ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
    h2o_iovec_t v = i >= 0 ? req->headers.entries[i].value : telex_query_param(req, "last_event_id");
    if (v.base != NULL && telex_event_id_parse(v.base, v.len, other, &seq) == 0)
        return seq;
    if (parse_count(telex_query_param(req, "after"), &seq) == 0)
        return seq;
    if (parse_count(telex_query_param(req, "starting_after"), &seq) == 0)
        return seq + 1; /* sequence numbers count from 0 */
    return 0;
}

/* A request for a mirrored stream that names an event the mirror does not
 * have yet (its client got it from the producer a moment ago): held until
 * the mirror has it, it ends, or HOLD_MAX_MS passed; then handled again. */
typedef struct held {
    struct held *next;
    h2o_req_t *req; /* NULL once h2o disposed of it */
    struct held **link;
    telex_stream_t *stream;
    uint64_t events;
    uint64_t until_ms;
} held_t;

#define HOLD_MAX_MS 5000

static void on_held_disposed(void *p)
{
    held_t *h = *(held_t **)p;
    if (h != NULL)
        h->req = NULL;
}

static int hold_for_events(telex_cluster_worker_t *cw, h2o_req_t *req, telex_stream_t *s, uint64_t events)
{
    held_t *h = telex_xcalloc(1, sizeof *h);
    held_t **link = h2o_mem_alloc_shared(&req->pool, sizeof *link, on_held_disposed); /* aborts on OOM */
    *link = h;
    h->link = link;
    h->req = req;
    telex_stream_ref(s);
    h->stream = s;
    h->events = events;
    h->until_ms = uv_now(cw->loop) + HOLD_MAX_MS;
    h->next = cw->held;
    cw->held = h;
    return 1;
}

static void check_held(telex_cluster_worker_t *cw)
{
    uint64_t now = uv_now(cw->loop);
    for (held_t **pp = &cw->held; *pp != NULL;) {
        held_t *h = *pp;
        int ready = h->req == NULL || telex_log_finished(h->stream->log) ||
                    telex_log_events(h->stream->log) >= h->events || now >= h->until_ms;
        if (!ready) {
            pp = &h->next;
            continue;
        }
        *pp = h->next;
        if (h->req != NULL) {
            h2o_req_t *req = h->req;
            *h->link = NULL;
            cw->held_once = req;
            cw->reentering = req;
            cw->redispatch(cw->ctx, req);
            cw->reentering = NULL;
            cw->held_once = NULL;
        }
        telex_stream_unref(h->stream);
        free(h);
    }
}

/* The node is stopping: the client retries on a node that stays. */
static int answer_stopping(h2o_req_t *req)
{
    telex_add_header(req, "retry-after", "1");
    telex_respond_error(req, 503, "server_error", "shutting_down", NULL, "The gateway is shutting down.");
    return TELEX_CLUSTER_ANSWERED;
}

int telex_cluster_intercept(h2o_req_t *req)
{
    telex_cluster_worker_t *cw = telex_cluster_current;
    if (cw == NULL || cw->held_once == req)
        return 0;
    if (cw->cut_short == req) /* its wait for a registration ended with the shutdown (mirror.c) */
        return answer_stopping(req);
    char id[TELEX_STREAM_ID_LEN + 1];
    h2o_iovec_t p = req->path_normalized;
    size_t n = sizeof(STREAMS_PREFIX) - 1;
    int get_or_delete = h2o_memis(req->method.base, req->method.len, H2O_STRLIT("GET")) ||
                        h2o_memis(req->method.base, req->method.len, H2O_STRLIT("DELETE"));
    if (get_or_delete && p.len == n + TELEX_STREAM_ID_LEN && memcmp(p.base, STREAMS_PREFIX, n) == 0 &&
        telex_stream_id_valid(p.base + n, TELEX_STREAM_ID_LEN)) {
        memcpy(id, p.base + n, TELEX_STREAM_ID_LEN);
        id[TELEX_STREAM_ID_LEN] = '\0';
    } else if (h2o_memis(req->method.base, req->method.len, H2O_STRLIT("POST")) &&
               (h2o_memis(p.base, p.len, H2O_STRLIT("/v1/chat/completions")) ||
                h2o_memis(p.base, p.len, H2O_STRLIT("/chat/completions")))) {
        ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("last-event-id"), -1);
        uint64_t seq;
        if (i < 0 || telex_event_id_parse(req->headers.entries[i].value.base, req->headers.entries[i].value.len, id,
                                          &seq) != 0)
            return 0;
    } else if (p.len >= sizeof(RESPONSES_PREFIX) - 1 + RESP_ID_LEN &&
               memcmp(p.base, RESPONSES_PREFIX, sizeof(RESPONSES_PREFIX) - 1) == 0 &&
               (p.len == sizeof(RESPONSES_PREFIX) - 1 + RESP_ID_LEN ||
                h2o_memis(p.base + sizeof(RESPONSES_PREFIX) - 1 + RESP_ID_LEN,
                          p.len - (sizeof(RESPONSES_PREFIX) - 1 + RESP_ID_LEN), H2O_STRLIT("/cancel")))) {
        /* GET/DELETE /v1/responses/resp_X, POST .../cancel: the stream st_X */
        memcpy(id, "st_", 3);
        memcpy(id + 3, p.base + sizeof(RESPONSES_PREFIX) - 1, TELEX_STREAM_ID_LEN - 3);
        id[TELEX_STREAM_ID_LEN] = '\0';
        if (!telex_stream_id_valid(id, TELEX_STREAM_ID_LEN))
            return 0;
    } else {
        return 0;
    }
    telex_stream_t *s = telex_registry_get(id);
    if (s != NULL) { /* produced or mirrored here */
        uint64_t had = s->mirrored ? events_had(req) : 0;
        int held = had > 0 && !telex_log_finished(s->log) && telex_log_events(s->log) < had &&
                   hold_for_events(cw, req, s, had);
        telex_stream_unref(s);
        return held ? TELEX_CLUSTER_TAKEN : 0;
    }
    if (cw->reentering == req)
        return 0; /* Redis said there is no such stream */
    if (!telex_rconn_is_up(cw->cmd))
        return 0; /* Redis away: answer from what this node has */
    if (cw->stopping) /* no new waits for Redis */
        return answer_stopping(req);
    return cluster_mirror_request(cw, req, id) ? TELEX_CLUSTER_TAKEN : 0;
}
