/*
 * cluster/mirror.c — the reading side: a stream produced on another node,
 * mirrored into a local stream so that the ordinary resume code serves it.
 *
 * A request that names a stream this node does not have is held (a waiter)
 * while the worker
 *   1. reads the stream's meta (HGETALL telex:s:{id}:m): none → asks again,
 *      2, 4 … 64 ms apart, for up to the call timeout (1 s), because the id
 *      may have reached its client before its registration reached Redis
 *      (register.c); still none → the held requests are handled again and
 *      answer as for an unknown stream (so an unknown id costs the asker
 *      1 s on a cluster node); Redis failing → at once, as before. Each
 *      waiting request takes a wait slot of its client address (waits.c:
 *      at most CLUSTER_WAITS_PER_CLIENT per worker); one whose client has
 *      none left is answered at once as for an unknown stream, so a flood
 *      of made-up ids costs Redis one HGETALL per id beyond the bound
 *      instead of ~20. The retries stop when every asker has gone, and at
 *      shutdown (the askers get 503 shutting_down, the timers are closed);
 *   2. builds a local stream with the same id and owner and appends the
 *      Redis entries to its log in order (XRANGE pages of 512) — the bytes
 *      the producer appended, so subscribers here write exactly what the
 *      producer's subscribers write, ids included (they are numbered by
 *      position, and entry 0-<n> is event n);
 *   3. registers it (unless another worker of this node got there first:
 *      then that one is used) and handles the held requests again: they now
 *      find the stream in the registry (resume.c: authorization, positions,
 *      410/204/400 exactly as on the producer);
 *   4. follows it live with the worker's one XREAD BLOCK (cluster.c) until
 *      the `end` entry.
 * DELETE reaches a mirror like a producer (cancel_requested + a poke); the
 * mirror sends "cancel <node> <id>" on telex:ctl and the producer's node
 * stops the answer, whose error event then arrives here like any other.
 * The producer's node is checked every second while the answer runs: when
 * its heartbeat key is gone (and this node's Redis connection has been up
 * longer than the heartbeat's TTL, so a restarted Redis is not mistaken
 * for a dead node), the mirror reads what Redis still has, then ends with
 * an error event (code node_lost) in the front door's wire — never [DONE].
 * A gap in the entries (Redis lost some) ends it the same way (events_lost),
 * and so does Redis staying unreachable from this node for 10 s
 * (cluster_unavailable): a reader is never left waiting without bound.
 * A mirror nobody has read for 3 s is dropped; a later request builds it
 * again. Mirrors hold their whole answer (up to resume.max_bytes, like a
 * producer's log).
 */
#include "cluster/cluster_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/respond.h"
#include "stream/ids.h"
#include "util/alloc.h"
#include "util/log.h"

enum { M_LOOKUP, M_CATCHUP, M_LIVE, M_ENDED };

typedef struct waiter {
    struct waiter *next;
    h2o_req_t *req; /* NULL once h2o disposed of it */
    struct waiter **link;
    telex_cluster_worker_t *cw;
    cluster_wait_client_t *slot; /* its client's wait slot while the registration is awaited (waits.c) */
} waiter_t;

struct lookup_timer;

typedef struct mirror {
    struct mirror *prev, *next;
    telex_cluster_worker_t *cw;
    char id[TELEX_STREAM_ID_LEN + 1];
    char key_e[KEY_MAX];
    int state;
    int refs; /* the list's, and one per command in flight */
    int unlinked;
    telex_stream_t *stream;
    telex_wakeup_t wake; /* the stream's "producer": attach, detach, DELETE */
    int wake_open;
    int registered;
    char node[40];
    int front;
    uint64_t seq; /* events appended */
    int cancel_sent;
    int checking; /* an EXISTS for the producer's heartbeat is in flight */
    int node_gone; /* the producer's node is gone: the next catch-up ends the mirror */
    uint64_t last_check_ms;
    uint64_t unread_since_ms;
    uint64_t lookup_since_ms; /* the first HGETALL (M_LOOKUP): the registration is awaited until + LOOKUP_WAIT_MS */
    unsigned lookup_gap_ms;   /* the next HGETALL this long after an empty one */
    int awaiting;             /* Redis did not know the id: its waiters hold wait slots */
    struct lookup_timer *timer; /* the next HGETALL's, while it is pending */
    waiter_t *waiters;
} mirror_t;

/* A stream id reaches its client without waiting for the registration
 * (register.c), so an id unknown to Redis may be one whose registration is
 * still on its way: the meta is asked for again, 2, 4, 8 … 64 ms apart, for
 * up to the call timeout (the longest a producer's registration may take
 * before it counts as failed). */
#define LOOKUP_WAIT_MS CLUSTER_TIMEOUT_MS
#define LOOKUP_FIRST_GAP_MS 2
#define LOOKUP_MAX_GAP_MS 64

static void mirror_catch_up(mirror_t *m);
static void cancel_lookup_timer(mirror_t *m);

static void mirror_unref(mirror_t *m)
{
    if (--m->refs > 0)
        return;
    if (m->stream != NULL)
        telex_stream_unref(m->stream);
    free(m);
}

static void on_wake_retired(telex_wakeup_t *w)
{
    mirror_t *m = H2O_STRUCT_FROM_MEMBER(mirror_t, wake, w);
    mirror_unref(m);
}

static void give_slot(waiter_t *w)
{
    cluster_wait_give(w->cw, w->slot);
    w->slot = NULL;
}

static void on_waiter_disposed(void *p)
{
    waiter_t *w = *(waiter_t **)p;
    if (w != NULL) {
        w->req = NULL;
        give_slot(w); /* its client went away: the wait no longer counts */
    }
}

/* Handles the held requests of the list w again (the stream is registered
 * now, or known not to exist, or the client may not wait) and frees it. */
static void redispatch_list(telex_cluster_worker_t *cw, waiter_t *w)
{
    while (w != NULL) {
        waiter_t *next = w->next;
        give_slot(w);
        if (w->req != NULL) {
            h2o_req_t *req = w->req;
            *w->link = NULL;
            cw->reentering = req;
            cw->redispatch(cw->ctx, req);
            cw->reentering = NULL;
        }
        free(w);
        w = next;
    }
}

static void release_waiters(mirror_t *m)
{
    waiter_t *w = m->waiters;
    m->waiters = NULL;
    redispatch_list(m->cw, w);
}

/* 1 when a held request is still there (its client has not gone). */
static int anyone_waiting(const mirror_t *m)
{
    for (const waiter_t *w = m->waiters; w != NULL; w = w->next)
        if (w->req != NULL)
            return 1;
    return 0;
}

/* Out of the worker's list (and the registry); freed when nothing refers to it. */
static void mirror_drop(mirror_t *m)
{
    if (m->unlinked)
        return;
    m->unlinked = 1;
    telex_cluster_worker_t *cw = m->cw;
    if (m->prev != NULL)
        m->prev->next = m->next;
    else
        cw->mirrors = m->next;
    if (m->next != NULL)
        m->next->prev = m->prev;
    cancel_lookup_timer(m);
    release_waiters(m);
    if (m->stream != NULL) {
        if (m->registered)
            telex_registry_remove(m->stream);
        telex_stream_set_producer(m->stream, NULL);
        if (!telex_log_finished(m->stream->log)) {
            telex_log_finish(m->stream->log);
            telex_stream_notify(m->stream);
        }
    }
    if (m->wake_open) {
        m->wake_open = 0;
        if (telex_wakeup_retire(&m->wake) != 0)
            return; /* on_wake_retired drops the list's reference */
    }
    mirror_unref(m);
}

/* ------------------------------------------------------------ the log */

static int append(mirror_t *m, const char *bytes, size_t len)
{
    int64_t rc = telex_log_append(m->stream->log, bytes, len);
    if (rc == -ENOSPC) {
        telex_stream_release_acked_or_all(m->stream);
        rc = telex_log_append(m->stream->log, bytes, len);
    }
    if (rc < 0)
        return -1;
    m->seq++;
    return 0;
}

/* The last event when the answer cannot go on: an error in the front door's wire. */
static void end_with_error(mirror_t *m, const char *code, const char *message)
{
    if (telex_log_finished(m->stream->log))
        return;
    char ev[512];
    int n;
    if (m->front == TELEX_CLUSTER_FRONT_RESPONSES)
        n = snprintf(ev, sizeof ev,
                     "event: error\ndata: {\"type\":\"error\",\"code\":\"%s\",\"message\":\"%s\",\"param\":null,"
                     "\"sequence_number\":%llu}\n\n",
                     code, message, (unsigned long long)m->seq);
    else if (m->front == TELEX_CLUSTER_FRONT_MESSAGES)
        n = snprintf(ev, sizeof ev,
                     "event: error\ndata: {\"type\":\"error\",\"error\":{\"type\":\"api_error\",\"message\":\"%s\"}}\n\n",
                     message);
    else
        n = snprintf(ev, sizeof ev, "data: {\"error\":{\"message\":\"%s\",\"type\":\"server_error\",\"code\":\"%s\"}}\n\n",
                     message, code);
    if (n > 0 && (size_t)n < sizeof ev)
        append(m, ev, (size_t)n);
    telex_log_finish(m->stream->log);
    telex_stream_notify(m->stream);
    m->state = M_ENDED;
    telex_log_event("warn", "cluster: a mirrored stream ended with an error", "\"code\":\"%s\"", code);
}

static void end_lost(mirror_t *m)
{
    end_with_error(m, "events_lost",
                   "part of this answer was lost while Redis was unavailable; it cannot be resumed past this point");
}

/* Appends XRANGE / XREAD entries in order. Returns how many were read. */
static size_t take_entries(mirror_t *m, redisReply *entries)
{
    if (entries == NULL || entries->type != REDIS_REPLY_ARRAY)
        return 0;
    size_t appended = 0;
    for (size_t i = 0; i < entries->elements && !telex_log_finished(m->stream->log); i++) {
        redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements < 2 || e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[1]->type != REDIS_REPLY_ARRAY || e->element[1]->elements < 2)
            continue;
        const char *dash = strchr(e->element[0]->str, '-');
        uint64_t n = dash != NULL ? strtoull(dash + 1, NULL, 10) : 0;
        if (n <= m->seq)
            continue; /* seen (catch-up and XREAD overlap) */
        if (n != m->seq + 1) {
            end_lost(m);
            break;
        }
        redisReply *k = e->element[1]->element[0], *v = e->element[1]->element[1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "d") == 0) {
            if (append(m, v->str, v->len) != 0) {
                end_with_error(m, "mirror_full", "this node cannot hold more of this answer (resume.max_bytes)");
                break;
            }
            appended++;
        } else if (strcmp(k->str, "end") == 0) {
            redisReply *f = e->element[1];
            if (f->elements >= 4 && f->element[2]->type == REDIS_REPLY_STRING &&
                strcmp(f->element[2]->str, "resp") == 0 && f->element[3]->type == REDIS_REPLY_STRING)
                telex_stream_set_note(m->stream, TELEX_NOTE_RESPONSE, telex_xstrdup(f->element[3]->str));
            if (strcmp(v->str, "done") == 0) {
                telex_log_finish(m->stream->log);
                m->state = M_ENDED;
            } else {
                end_lost(m);
            }
        }
    }
    if (appended > 0 || telex_log_finished(m->stream->log))
        telex_stream_notify(m->stream);
    return entries->elements;
}

/* ------------------------------------------------------------ building */

static void on_mirror_wake(telex_wakeup_t *w)
{
    mirror_t *m = H2O_STRUCT_FROM_MEMBER(mirror_t, wake, w);
    if (m->unlinked || m->stream == NULL)
        return;
    if (atomic_load(&m->stream->cancel_requested) && !m->cancel_sent && !telex_log_finished(m->stream->log)) {
        m->cancel_sent = 1;
        char arg[80];
        snprintf(arg, sizeof arg, "%s %s", m->node, m->id);
        cluster_publish_ctl(m->cw, "cancel", arg);
    }
}

/* Caught up for the first time: visible to this node's requests from now. */
static void go_live(mirror_t *m)
{
    telex_stream_t *other = telex_registry_get(m->id);
    if (other != NULL) {
        /* another worker of this node mirrored it meanwhile: use that one */
        telex_stream_unref(other);
        mirror_drop(m);
        return;
    }
    if (telex_registry_put(m->stream) != 0) {
        mirror_drop(m);
        return;
    }
    m->registered = 1;
    atomic_fetch_add(&telex_cluster_g.mirrors_built, 1);
    if (m->state != M_ENDED)
        m->state = M_LIVE;
    m->unread_since_ms = uv_now(m->cw->loop);
    release_waiters(m);
    if (m->state == M_LIVE) {
        m->cw->xread_stale = 1;
        cluster_xread_kick(m->cw);
    }
}

static void on_range(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    (void)rc;
    mirror_t *m = priv;
    if (m->unlinked) {
        mirror_unref(m);
        return;
    }
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        /* Redis failed mid catch-up: a held request is answered from this node alone */
        if (!m->registered)
            mirror_drop(m);
        mirror_unref(m);
        return;
    }
    size_t n = take_entries(m, reply);
    if (n >= XRANGE_PAGE && !telex_log_finished(m->stream->log)) {
        mirror_catch_up(m);
    } else {
        if (m->node_gone)
            end_with_error(m, "node_lost",
                           "the gateway node producing this answer stopped; the answer is incomplete");
        if (!m->registered)
            go_live(m);
    }
    mirror_unref(m);
}

static void mirror_catch_up(mirror_t *m)
{
    char start[32], count[16];
    if (m->seq == 0)
        snprintf(start, sizeof start, "-");
    else
        snprintf(start, sizeof start, "(0-%llu", (unsigned long long)m->seq);
    snprintf(count, sizeof count, "%d", XRANGE_PAGE);
    m->refs++;
    if (telex_rconn_cmdf(m->cw->cmd, on_range, m, "XRANGE %s %s + COUNT %s", m->key_e, start, count) != 0) {
        m->refs--;
        if (!m->registered)
            mirror_drop(m);
    }
}

static const char *field(redisReply *hash, const char *name)
{
    for (size_t i = 0; i + 1 < hash->elements; i += 2)
        if (hash->element[i]->type == REDIS_REPLY_STRING && strcmp(hash->element[i]->str, name) == 0 &&
            hash->element[i + 1]->type == REDIS_REPLY_STRING)
            return hash->element[i + 1]->str;
    return NULL;
}

static int send_lookup(mirror_t *m);

typedef struct lookup_timer {
    uv_timer_t t;
    mirror_t *m; /* holds a reference until the timer fired or was cancelled */
} lookup_timer_t;

static void on_lookup_timer_closed(uv_handle_t *h)
{
    lookup_timer_t *lt = H2O_STRUCT_FROM_MEMBER(lookup_timer_t, t, (uv_timer_t *)h);
    if (lt->m != NULL) /* cancelled before it fired */
        mirror_unref(lt->m);
    free(lt);
}

/* Stops and closes m's pending retry timer (freed, and m's reference given
 * back, in its close callback). */
static void cancel_lookup_timer(mirror_t *m)
{
    lookup_timer_t *lt = m->timer;
    if (lt == NULL)
        return;
    m->timer = NULL;
    uv_timer_stop(&lt->t);
    uv_close((uv_handle_t *)&lt->t, on_lookup_timer_closed);
}

static void on_lookup_timer(uv_timer_t *t)
{
    lookup_timer_t *lt = H2O_STRUCT_FROM_MEMBER(lookup_timer_t, t, t);
    mirror_t *m = lt->m;
    lt->m = NULL;
    m->timer = NULL;
    uv_close((uv_handle_t *)t, on_lookup_timer_closed);
    if (!m->unlinked && (!anyone_waiting(m) || send_lookup(m) != 0))
        mirror_drop(m); /* every asker went away, or Redis did meanwhile (answered from this node) */
    mirror_unref(m);
}

/* Redis does not know m's id (yet): every held request's client takes a wait
 * slot; one whose client has none left is answered at once, as for an
 * unknown stream. 1 when a request still waits. */
static int take_slots(mirror_t *m)
{
    m->awaiting = 1;
    waiter_t **pp = &m->waiters, *refused = NULL;
    while (*pp != NULL) {
        waiter_t *w = *pp;
        if (w->req == NULL || w->slot != NULL || (w->slot = cluster_wait_take(m->cw, w->req)) != NULL) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        w->next = refused;
        refused = w;
    }
    redispatch_list(m->cw, refused); /* (m->awaiting: a request on its way in joins without a lookup) */
    return anyone_waiting(m);
}

/* Redis answered that it does not know the stream (yet): 1 when another
 * HGETALL is scheduled, 0 when the wait is over (the id is unknown). */
static int lookup_again(mirror_t *m)
{
    uint64_t now = uv_now(m->cw->loop);
    if (now - m->lookup_since_ms >= LOOKUP_WAIT_MS)
        return 0;
    unsigned gap = m->lookup_gap_ms;
    if (now + gap > m->lookup_since_ms + LOOKUP_WAIT_MS)
        gap = (unsigned)(m->lookup_since_ms + LOOKUP_WAIT_MS - now);
    lookup_timer_t *lt = telex_xmalloc(sizeof *lt);
    if (uv_timer_init(m->cw->loop, &lt->t) != 0) {
        free(lt);
        return 0;
    }
    lt->m = m;
    m->refs++;
    m->timer = lt;
    uv_timer_start(&lt->t, on_lookup_timer, gap, 0);
    uv_unref((uv_handle_t *)&lt->t); /* never keeps a stopping loop alive */
    m->lookup_gap_ms = gap * 2 > LOOKUP_MAX_GAP_MS ? LOOKUP_MAX_GAP_MS : gap * 2;
    return 1;
}

static void on_meta(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    (void)rc;
    mirror_t *m = priv;
    if (m->unlinked) {
        mirror_unref(m);
        return;
    }
    const char *node = NULL, *owner = NULL, *front = NULL;
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY) {
        node = field(reply, "node");
        owner = field(reply, "owner");
        front = field(reply, "front");
    }
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 0 && !m->cw->stopping &&
        take_slots(m) && lookup_again(m)) {
        mirror_unref(m); /* not registered yet: asked again shortly, the requests wait on */
        return;
    }
    for (waiter_t *w = m->waiters; w != NULL; w = w->next)
        give_slot(w); /* the wait is over */
    const telex_config_t *cfg = telex_cluster_g.cfg;
    if (node == NULL || owner == NULL || front == NULL || strlen(node) >= sizeof m->node ||
        (m->stream = telex_stream_new(cfg->resume.max_bytes, 1)) == NULL) {
        mirror_drop(m); /* not in Redis after the wait (or Redis failed): answered from this node */
        mirror_unref(m);
        return;
    }
    memcpy(m->stream->id, m->id, sizeof m->id);
    m->stream->mirrored = 1;
    const char *resp = field(reply, "resp"); /* Responses: the Response object when the answer started */
    if (resp != NULL)
        telex_stream_set_note(m->stream, TELEX_NOTE_RESPONSE, telex_xstrdup(resp));
    snprintf(m->stream->owner, sizeof m->stream->owner, "%s", owner);
    snprintf(m->node, sizeof m->node, "%s", node);
    m->front = atoi(front);
    m->state = M_CATCHUP;
    telex_wakeup_init(&m->wake, m->cw->waker, on_mirror_wake, on_wake_retired);
    m->wake_open = 1;
    telex_stream_set_producer(m->stream, &m->wake);
    mirror_catch_up(m);
    mirror_unref(m);
}

static int send_lookup(mirror_t *m)
{
    char key[KEY_MAX];
    cluster_key_meta(key, m->id);
    m->refs++;
    if (telex_rconn_cmdf(m->cw->cmd, on_meta, m, "HGETALL %s", key) != 0) {
        m->refs--;
        return -1;
    }
    return 0;
}

int cluster_mirror_request(telex_cluster_worker_t *cw, h2o_req_t *req, const char *id)
{
    mirror_t *m;
    for (m = cw->mirrors; m != NULL; m = m->next)
        if (!m->registered && strcmp(m->id, id) == 0)
            break; /* being built: wait with the others */
    cluster_wait_client_t *slot = NULL;
    if (m != NULL && m->state == M_LOOKUP && m->awaiting && (slot = cluster_wait_take(cw, req)) == NULL)
        return 0; /* Redis did not know it a moment ago, and this client waits enough: unknown at once */
    int fresh = m == NULL;
    if (fresh) {
        m = telex_xcalloc(1, sizeof *m);
        m->cw = cw;
        m->refs = 1;
        snprintf(m->id, sizeof m->id, "%s", id);
        cluster_key_events(m->key_e, id);
    }
    waiter_t *w = telex_xcalloc(1, sizeof *w);
    waiter_t **link = h2o_mem_alloc_shared(&req->pool, sizeof *link, on_waiter_disposed); /* aborts on OOM */
    *link = w;
    w->link = link;
    w->req = req;
    w->cw = cw;
    w->slot = slot;
    if (fresh) {
        m->lookup_since_ms = uv_now(cw->loop);
        m->lookup_gap_ms = LOOKUP_FIRST_GAP_MS;
        if (send_lookup(m) != 0) {
            *link = NULL;
            free(w);
            free(m);
            return 0;
        }
        m->next = cw->mirrors;
        if (cw->mirrors != NULL)
            cw->mirrors->prev = m;
        cw->mirrors = m;
    }
    w->next = m->waiters;
    m->waiters = w;
    return 1;
}

/* Shutdown: a request waiting for an id's registration is answered 503
 * shutting_down now (its client retries, through the balancer, on a node
 * that stays), rather than when the wait is over or not at all — handed
 * back to the router, whose hook (telex_cluster_intercept) answers it, so
 * that it is in the access log like every answer; the retry timers are
 * closed, so that the mirrors and timers are freed before the loop stops.
 * New waits are not begun (cw->stopping). */
void cluster_mirrors_shutdown(telex_cluster_worker_t *cw)
{
    cw->stopping = 1;
    for (mirror_t *m = cw->mirrors, *next; m != NULL; m = next) {
        next = m->next;
        if (m->state != M_LOOKUP)
            continue;
        for (waiter_t *w = m->waiters; w != NULL; w = w->next) {
            give_slot(w);
            if (w->req != NULL) {
                h2o_req_t *req = w->req;
                *w->link = NULL;
                w->req = NULL;
                cw->cut_short = req;
                cw->redispatch(cw->ctx, req);
                cw->cut_short = NULL;
            }
        }
        mirror_drop(m); /* closes the retry timer; an HGETALL in flight finds m unlinked */
    }
}

/* ------------------------------------------------------------ live: XREAD */

static void on_xread(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    (void)rc;
    telex_cluster_worker_t *cw = priv;
    cw->xread_inflight = 0;
    if (reply == NULL)
        return; /* the connection is down: on_blk_up starts again */
    if (reply->type == REDIS_REPLY_ARRAY) {
        for (size_t i = 0; i < reply->elements; i++) {
            redisReply *s = reply->element[i];
            if (s->type != REDIS_REPLY_ARRAY || s->elements < 2 || s->element[0]->type != REDIS_REPLY_STRING)
                continue;
            for (mirror_t *m = cw->mirrors; m != NULL; m = m->next) {
                if (m->state == M_LIVE && strcmp(m->key_e, s->element[0]->str) == 0) {
                    take_entries(m, s->element[1]);
                    break;
                }
            }
        }
    }
    cluster_xread_kick(cw);
}

/* CLIENT UNBLOCK's answer: 0 when the XREAD had not blocked yet (it was
 * still on its way): then the next tick tries again, so a new mirror joins
 * the live reads within ~100 ms rather than after the 2 s block. */
static void on_unblock(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    (void)rc;
    telex_cluster_worker_t *cw = priv;
    cw->unblocking = 0;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer == 1)
        cw->xread_stale = 0;
}

void cluster_xread_kick(telex_cluster_worker_t *cw)
{
    if (!telex_rconn_is_up(cw->blk))
        return;
    if (cw->xread_inflight) {
        if (cw->xread_stale && cw->blk_client_id >= 0 && !cw->unblocking) {
            char id[24];
            snprintf(id, sizeof id, "%lld", cw->blk_client_id);
            if (telex_rconn_cmdf(cw->cmd, on_unblock, cw, "CLIENT UNBLOCK %s", id) == 0)
                cw->unblocking = 1;
        }
        return;
    }
    size_t n = 0;
    for (mirror_t *m = cw->mirrors; m != NULL; m = m->next)
        n += m->state == M_LIVE;
    if (n == 0)
        return;
    const char **argv = telex_xmalloc((6 + 2 * n) * sizeof *argv);
    size_t *len = telex_xmalloc((6 + 2 * n) * sizeof *len);
    char(*ids)[32] = telex_xmalloc(n * sizeof *ids);
    char block[16], count[16];
    snprintf(block, sizeof block, "%d", XREAD_BLOCK_MS);
    snprintf(count, sizeof count, "%d", XRANGE_PAGE);
    int argc = 0;
    argv[argc++] = "XREAD";
    argv[argc++] = "COUNT";
    argv[argc++] = count;
    argv[argc++] = "BLOCK";
    argv[argc++] = block;
    argv[argc++] = "STREAMS";
    size_t k = 0;
    for (mirror_t *m = cw->mirrors; m != NULL; m = m->next)
        if (m->state == M_LIVE)
            argv[argc++] = m->key_e;
    for (mirror_t *m = cw->mirrors; m != NULL; m = m->next) {
        if (m->state == M_LIVE) {
            snprintf(ids[k], sizeof ids[k], "0-%llu", (unsigned long long)m->seq);
            argv[argc++] = ids[k++];
        }
    }
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    cw->xread_stale = 0;
    if (telex_rconn_cmd(cw->blk, on_xread, cw, XREAD_BLOCK_MS, argc, argv, len) == 0)
        cw->xread_inflight = 1;
    free(argv), free(len), free(ids);
}

void cluster_mirrors_on_blk_up(telex_cluster_worker_t *cw)
{
    cluster_xread_kick(cw);
}

/* ------------------------------------------------------------ liveness, lingering */

static void on_exists(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    mirror_t *m = priv;
    m->checking = 0;
    if (!m->unlinked && m->state == M_LIVE && reply != NULL && reply->type == REDIS_REPLY_INTEGER &&
        reply->integer == 0 && uv_now(m->cw->loop) - telex_rconn_up_since(rc) > HEARTBEAT_TTL_MS) {
        /* the producer's node is gone: read what Redis has, then end */
        m->node_gone = 1;
        mirror_catch_up(m);
    }
    mirror_unref(m);
}

void cluster_mirrors_tick(telex_cluster_worker_t *cw)
{
    uint64_t now = uv_now(cw->loop);
    if (telex_rconn_is_up(cw->cmd) && telex_rconn_is_up(cw->blk))
        cw->redis_down_since = 0;
    else if (cw->redis_down_since == 0)
        cw->redis_down_since = now;
    for (mirror_t *m = cw->mirrors, *next; m != NULL; m = next) {
        next = m->next;
        if (!m->registered)
            continue;
        if (telex_stream_subscribers(m->stream, NULL) > 0) {
            m->unread_since_ms = 0;
        } else if (m->unread_since_ms == 0) {
            m->unread_since_ms = now;
        } else if (now - m->unread_since_ms >= MIRROR_LINGER_MS) {
            mirror_drop(m);
            continue;
        }
        if (m->state == M_LIVE && cw->redis_down_since != 0 && now - cw->redis_down_since >= MIRROR_REDIS_GRACE_MS) {
            /* the rest of the answer cannot reach this node: end rather than wait without bound */
            end_with_error(m, "cluster_unavailable",
                           "this gateway node lost its connection to the cluster; retry to reach the answer");
            continue;
        }
        if (m->state == M_LIVE && !m->checking && now - m->last_check_ms >= 1000) {
            char key[KEY_MAX];
            cluster_key_node(key, m->node);
            m->refs++;
            if (telex_rconn_cmdf(cw->cmd, on_exists, m, "EXISTS %s", key) == 0) {
                m->checking = 1;
                m->last_check_ms = now;
            } else {
                m->refs--;
            }
        }
    }
    cluster_xread_kick(cw); /* a new XREAD, or another CLIENT UNBLOCK for a new mirror */
}
