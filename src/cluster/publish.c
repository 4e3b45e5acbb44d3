/*
 * cluster/publish.c — the producer's side: every event of a resumable
 * stream, appended to its Redis Stream.
 *
 * A publisher is the stream's tap (stream.h): woken by the same notify as
 * the subscribers, on the producer's own worker, after the loop turn's I/O
 * callbacks. The hot path (appending, local subscribers) has no Redis round
 * trip. The woken streams of a worker are published together
 * PUBLISH_BATCH_MS (2 ms) after the first of them: one pipelined write of
 * XADDs for every stream's events of those 2 ms, one read of the replies.
 * Batching per loop turn only was measured first: at 20 events/s per stream
 * a turn holds about one event, so that costs a Redis write plus a reply
 * wake-up per event, a large share of the producer's CPU per event
 * (bench/findings.md has the number); other nodes' readers get the events
 * up to 2 ms later instead. Entry ids are "0-<n>" for event n, so entries are in
 * order, an XADD that was already applied fails harmlessly, and a reader
 * on another node knows every event's number. Fields: d = the event's
 * bytes exactly as the log holds them (subscribers add ids themselves);
 * the last entry has `end` = done (the answer ended, whatever way the log
 * says) or lost (events could not be published: see below), and for a
 * Responses answer `resp` = its final Response object (the meta hash has
 * the object as it stood when the answer started).
 *
 * Keys: telex:s:{id}:e (the stream; MAXLEN ~ 100000 entries), telex:s:{id}:m
 * (node, owner, front door; first written by register.c when the stream is
 * created, written again here with the Responses object, and after a resync). While the answer runs both expire
 * retention + 60 s after the TTL was last renewed (every 10 s while events
 * flow; a dead producer's keys go away);
 * at the end, retention_seconds after it.
 *
 * Redis down: the tap stops holding the log (it acknowledges everything,
 * so the producer is never blocked by Redis). When the connection is back,
 * the publisher asks Redis for the stream's last entry and goes on from
 * there if the local log still holds the events after it, else it writes
 * `end` = lost so that readers elsewhere end with an error instead of
 * waiting for events that will never come.
 */
#include "cluster/cluster_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/decimal.h"
#include "util/log.h"

#define BATCH 32

enum { P_WAIT_REDIS, P_RESYNC, P_STREAMING };

typedef struct pub {
    h2o_linklist_t link; /* in cw->pubs until unlinked (gone) */
    struct pub *dirty_next; /* in the worker's pending batch */
    int dirty;
    telex_stream_sub_t tap;
    telex_cluster_worker_t *cw;
    telex_stream_t *stream;
    int front;
    int state;
    int meta_sent;
    int gone; /* freed when its wakeup is retired */
    uint64_t pos, seq; /* the next event to publish: its position and number */
    uint64_t finished_ms; /* uv_now() when the answer ended while Redis was away */
    uint64_t expire_set_ms; /* uv_now() when the live TTL was last renewed */
    char key_e[KEY_MAX], key_m[KEY_MAX];
    telex_rconn_prefix_t xadd; /* "XADD key_e MAXLEN ~ n" in RESP, made by the first append */
} pub_t;

static void pub_flush(pub_t *p);

static void pub_free(pub_t *p)
{
    telex_stream_unref(p->stream);
    free(p->xadd.bytes);
    free(p);
}

static void pub_unlink_free(pub_t *p)
{
    telex_cluster_worker_t *cw = p->cw;
    if (p->dirty) { /* out of the pending batch too */
        for (pub_t **pp = &cw->dirty; *pp != NULL; pp = &(*pp)->dirty_next) {
            if (*pp == p) {
                *pp = p->dirty_next;
                break;
            }
        }
        p->dirty = 0;
    }
    h2o_linklist_unlink(&p->link);
    telex_stream_set_tap(p->stream, NULL);
    p->gone = 1;
    if (telex_wakeup_retire(&p->tap.wake) == 0)
        pub_free(p);
}

static void on_retired(telex_wakeup_t *w)
{
    pub_free(H2O_STRUCT_FROM_MEMBER(pub_t, tap.wake, w));
}

/* Woken by the stream's notify: the stream joins the worker's batch, which
 * goes out PUBLISH_BATCH_MS after its first member (see the top). */
static void on_wake(telex_wakeup_t *w)
{
    pub_t *p = H2O_STRUCT_FROM_MEMBER(pub_t, tap.wake, w);
    telex_cluster_worker_t *cw = p->cw;
    if (p->gone || p->dirty)
        return;
    p->dirty = 1;
    p->dirty_next = cw->dirty;
    cw->dirty = p;
    if (!uv_is_active((uv_handle_t *)&cw->batch_timer))
        uv_timer_start(&cw->batch_timer, cluster_pubs_on_batch, PUBLISH_BATCH_MS, 0);
}

void cluster_pubs_on_batch(uv_timer_t *t)
{
    telex_cluster_worker_t *cw = t->data;
    while (cw->dirty != NULL) {
        pub_t *p = cw->dirty;
        cw->dirty = p->dirty_next;
        p->dirty = 0;
        if (!p->gone)
            pub_flush(p); /* (may free p) */
    }
    telex_rconn_quiet_submit(cw->cmd); /* the batch's appends, answered once */
}

static unsigned live_ttl_ms(void)
{
    return (unsigned)((telex_cluster_g.cfg->resume.retention_seconds + 60) * 1000);
}

static unsigned end_ttl_ms(void)
{
    double s = telex_cluster_g.cfg->resume.retention_seconds;
    return s < 1 ? 1000 : (unsigned)(s * 1000);
}

/* PEXPIRE key ms, a quiet command (nobody reads its reply). */
static void pexpire_quiet(telex_rconn_t *rc, const char *key, unsigned ms)
{
    char ttl[16];
    const char *argv[] = {"PEXPIRE", key, ttl};
    size_t len[] = {7, strlen(key), (size_t)snprintf(ttl, sizeof ttl, "%u", ms)};
    telex_rconn_cmd_quiet(rc, NULL, 0, 3, argv, len);
}

static int xadd_end(pub_t *p, const char *how)
{
    char id[32], maxlen[16];
    snprintf(id, sizeof id, "0-%llu", (unsigned long long)p->seq);
    snprintf(maxlen, sizeof maxlen, "%d", STREAM_MAXLEN);
    /* Responses: the final Response object travels with the end (GET /v1/responses/{id} elsewhere) */
    char *note = telex_stream_copy_note(p->stream, TELEX_NOTE_RESPONSE);
    const char *argv[] = {"XADD", p->key_e, "MAXLEN", "~", maxlen, id, "end", how, "resp", note};
    int argc = note != NULL ? 10 : 8;
    size_t len[10];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    int rc = telex_rconn_cmd(p->cw->cmd, NULL, NULL, 0, argc, argv, len);
    free(note);
    if (rc != 0)
        return -1;
    char ttl[16];
    snprintf(ttl, sizeof ttl, "%u", end_ttl_ms());
    telex_rconn_cmdf(p->cw->cmd, NULL, NULL, "PEXPIRE %s %s", p->key_e, ttl);
    telex_rconn_cmdf(p->cw->cmd, NULL, NULL, "PEXPIRE %s %s", p->key_m, ttl);
    return 0;
}

static void give_up_holding(pub_t *p)
{
    /* Redis is away: never hold the producer's log for it. */
    atomic_store(&p->tap.acked, UINT64_MAX);
}

static void pub_flush(pub_t *p)
{
    telex_cluster_worker_t *cw = p->cw;
    telex_log_t *log = p->stream->log;
    if (p->state != P_STREAMING)
        return;
    if (!telex_rconn_is_up(cw->cmd)) {
        p->state = P_WAIT_REDIS;
        give_up_holding(p);
        return;
    }
    if (!p->meta_sent) {
        char front[4];
        snprintf(front, sizeof front, "%d", p->front);
        char *note = telex_stream_copy_note(p->stream, TELEX_NOTE_RESPONSE); /* Responses: the object so far */
        const char *argv[] = {"HSET", p->key_m, "node", telex_cluster_g.node, "owner", p->stream->owner, "front", front,
                              "resp", note};
        int argc = note != NULL ? 10 : 8;
        size_t len[10];
        for (int i = 0; i < argc; i++)
            len[i] = strlen(argv[i]);
        telex_rconn_cmd_quiet(cw->cmd, NULL, 0, argc, argv, len);
        free(note);
        pexpire_quiet(cw->cmd, p->key_m, live_ttl_ms());
        p->meta_sent = 1;
    }
    int sent = 0, lost = 0;
    char maxlen[16];
    size_t maxlen_len = (size_t)snprintf(maxlen, sizeof maxlen, "%d", STREAM_MAXLEN);
    size_t key_e_len = strlen(p->key_e);
    for (;;) {
        struct iovec ev[BATCH];
        uint64_t to;
        int n = telex_log_read_events(log, p->pos, p->seq, ev, BATCH, &to);
        if (n < 0) {
            lost = 1;
            break;
        }
        if (n == 0)
            break;
        for (int i = 0; i < n; i++) {
            char id[2 + TELEX_U64_DIGITS] = "0-"; /* no printf per event */
            size_t id_len = (size_t)(telex_put_u64(id + 2, p->seq + (uint64_t)i) - id);
            const char *argv[] = {"XADD", p->key_e, "MAXLEN", "~", maxlen, id, "d", ev[i].iov_base};
            size_t len[] = {4, key_e_len, 6, 1, maxlen_len, id_len, 1, ev[i].iov_len};
            if (telex_rconn_cmd_quiet(cw->cmd, &p->xadd, 5, 8, argv, len) != 0) { /* XADD key MAXLEN ~ n: the same each time */
                p->state = P_WAIT_REDIS;
                give_up_holding(p);
                return;
            }
        }
        sent += n;
        p->seq += (uint64_t)n;
        p->pos = to;
    }
    if (sent > 0) {
        atomic_fetch_add(&telex_cluster_g.published, (uint64_t)sent);
        /* the live TTL (retention + 60 s) is renewed every 10 s, not per batch */
        uint64_t now = uv_now(cw->loop);
        if (p->expire_set_ms == 0 || now - p->expire_set_ms >= 10000) {
            pexpire_quiet(cw->cmd, p->key_e, live_ttl_ms());
            pexpire_quiet(cw->cmd, p->key_m, live_ttl_ms());
            p->expire_set_ms = now;
        }
    }
    atomic_store(&p->tap.acked, p->pos);
    if (lost) {
        telex_log_event("warn", "cluster: events of a stream could not be published (no longer kept)", NULL);
        if (xadd_end(p, "lost") == 0) {
            pub_unlink_free(p);
        } else {
            p->state = P_WAIT_REDIS; /* the resync writes the end once Redis is back */
            give_up_holding(p);
        }
        return;
    }
    if (telex_log_finished(log) && p->pos == telex_log_end(log)) {
        if (xadd_end(p, "done") == 0) {
            pub_unlink_free(p);
        } else {
            p->state = P_WAIT_REDIS;
            give_up_holding(p);
        }
    }
}

/* XREVRANGE's answer after a reconnection: the last entry Redis has. */
static void on_resync(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    (void)rc;
    pub_t *p = priv;
    if (p->gone || p->state != P_RESYNC)
        return;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        p->state = P_WAIT_REDIS;
        return;
    }
    uint64_t last = 0;
    if (reply->elements > 0) {
        redisReply *entry = reply->element[0];
        if (entry->type == REDIS_REPLY_ARRAY && entry->elements >= 1 && entry->element[0]->type == REDIS_REPLY_STRING) {
            const char *id = entry->element[0]->str;
            const char *dash = strchr(id, '-');
            last = dash != NULL ? strtoull(dash + 1, NULL, 10) : 0;
            redisReply *fields = entry->elements >= 2 ? entry->element[1] : NULL;
            if (fields != NULL && fields->type == REDIS_REPLY_ARRAY && fields->elements >= 1 &&
                fields->element[0]->type == REDIS_REPLY_STRING && strcmp(fields->element[0]->str, "end") == 0) {
                pub_unlink_free(p); /* already ended there */
                return;
            }
        }
    }
    uint64_t pos;
    p->state = P_STREAMING;
    p->meta_sent = 0; /* Redis may have lost it */
    p->expire_set_ms = 0;
    if (telex_log_position_after(p->stream->log, last, &pos) != 0) {
        /* the events after `last` are no longer kept here (or Redis has more than we do) */
        p->seq = last + 1;
        telex_log_event("warn", "cluster: a stream's events were lost while Redis was unavailable", NULL);
        if (xadd_end(p, "lost") == 0)
            pub_unlink_free(p);
        else
            p->state = P_WAIT_REDIS;
        return;
    }
    p->seq = last + 1;
    p->pos = pos;
    telex_rconn_t *cmd = p->cw->cmd;
    pub_flush(p); /* (may free p) */
    telex_rconn_quiet_submit(cmd);
}

static void pub_resync(pub_t *p)
{
    p->state = P_RESYNC;
    if (telex_rconn_cmdf(p->cw->cmd, on_resync, p, "XREVRANGE %s + - COUNT 1", p->key_e) != 0)
        p->state = P_WAIT_REDIS;
}

void cluster_pubs_on_up(telex_cluster_worker_t *cw)
{
    for (h2o_linklist_t *l = cw->pubs.next, *next; l != &cw->pubs; l = next) {
        next = l->next;
        pub_t *p = H2O_STRUCT_FROM_MEMBER(pub_t, link, l);
        if (p->state == P_WAIT_REDIS)
            pub_resync(p);
    }
}

void cluster_pubs_tick(telex_cluster_worker_t *cw)
{
    uint64_t now = uv_now(cw->loop);
    for (h2o_linklist_t *l = cw->pubs.next, *next; l != &cw->pubs; l = next) {
        next = l->next; /* p may be freed below */
        pub_t *p = H2O_STRUCT_FROM_MEMBER(pub_t, link, l);
        if (p->state != P_WAIT_REDIS)
            continue;
        if (telex_rconn_is_up(cw->cmd)) {
            pub_resync(p);
            continue;
        }
        if (!telex_log_finished(p->stream->log)) {
            p->finished_ms = 0;
        } else if (p->finished_ms == 0) {
            p->finished_ms = now;
        } else if (now - p->finished_ms > end_ttl_ms()) {
            pub_unlink_free(p); /* Redis stayed away past the retention: nothing left to share */
        }
    }
}

void telex_cluster_publish(telex_stream_t *stream, int front)
{
    telex_cluster_worker_t *cw = telex_cluster_current;
    if (!telex_cluster_g.enabled || cw == NULL || !stream->shared)
        return;
    pub_t *p = telex_xcalloc(1, sizeof *p);
    p->cw = cw;
    p->stream = stream;
    telex_stream_ref(stream);
    p->front = front;
    p->seq = 1;
    cluster_key_events(p->key_e, stream->id);
    cluster_key_meta(p->key_m, stream->id);
    p->state = P_STREAMING;
    atomic_init(&p->tap.acked, 0);
    telex_wakeup_init(&p->tap.wake, cw->waker, on_wake, on_retired);
    h2o_linklist_insert(cw->pubs.next, &p->link); /* first */
    if (!telex_rconn_is_up(cw->cmd)) {
        p->state = P_WAIT_REDIS;
        give_up_holding(p);
    }
    telex_stream_set_tap(stream, &p->tap);
    telex_wakeup_send(&p->tap.wake);
}
