/*
 * cluster/register.c — a resumable stream is announced to Redis when it is
 * created, so that every node can find it.
 *
 * The producer registers the stream when it creates it: HSET of its meta
 * hash telex:s:{id}:m (node, owner, front door; for the Responses API the
 * Response object as it starts, the stream's note) and a PEXPIRE with the live
 * TTL (retention + 60 s, the publisher renews it), on the worker's `cmd`
 * connection — the same pipelined connection the publisher's XADDs use
 * later, so Redis applies the registration before any event; written to
 * the socket at once (telex_rconn_flush), not when the loop next polls: in
 * a loop turn that takes many requests, waiting for the turn's end cost
 * tens of ms (bench/findings.md, "Cluster mode"). The chat does not wait
 * for the reply: its commit (headers with X-Telex-Stream-Id, first event)
 * may reach the client before Redis applied the registration (with an
 * instant provider it usually does). Another node asked for the stream
 * then may find no meta yet: it asks again for up to CLUSTER_TIMEOUT_MS
 * (mirror.c), then builds a mirror (possibly still empty), whose
 * lagging-reader hold waits for the events the client says it has. (Until
 * bench/findings.md "Cluster mode: the first-event hold", the chat held its
 * commit for the reply: a Redis round trip plus up to a loop turn on every
 * stream's first event.)
 *
 * Redis away at creation, or the reply not within CLUSTER_TIMEOUT_MS (the
 * connection's own timeout): local-only, as a stream produced while Redis
 * is down (other nodes answer as for an unknown stream until the publisher
 * got it into Redis), counted in reg_failed and logged. A stream that ends before it commits (it never
 * reached a client) has its registration deleted.
 */
#include "cluster/cluster_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util/alloc.h"
#include "util/log.h"

struct telex_cluster_reg {
    int settled; /* Redis answered (or the call failed): the handle may go */
    int ended; /* the chat gave the handle back: freed when the reply arrives */
    char key_m[KEY_MAX];
};

static void count_failed(const char *why)
{
    atomic_fetch_add(&telex_cluster_g.reg_failed, 1);
    telex_log_event("warn", "cluster: stream not registered in Redis in time; served from this node until published",
                    "\"why\":\"%s\"", why);
}

static void on_registered(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    (void)rc;
    telex_cluster_reg_t *r = priv;
    r->settled = 1;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR)
        count_failed(reply == NULL ? "redis_timeout_or_down" : "redis_error");
    if (r->ended)
        free(r);
}

telex_cluster_reg_t *telex_cluster_register(telex_stream_t *stream, int front)
{
    telex_cluster_worker_t *cw = telex_cluster_current;
    if (!telex_cluster_g.enabled || cw == NULL || !stream->shared)
        return NULL;
    if (!telex_rconn_is_up(cw->cmd)) {
        count_failed("redis_down");
        return NULL;
    }
    telex_cluster_reg_t *r = telex_xcalloc(1, sizeof *r);
    char *key = r->key_m, f[4], ttl[16];
    cluster_key_meta(key, stream->id);
    snprintf(f, sizeof f, "%d", front);
    snprintf(ttl, sizeof ttl, "%u", (unsigned)((telex_cluster_g.cfg->resume.retention_seconds + 60) * 1000));
    char *note = telex_stream_copy_note(stream, TELEX_NOTE_RESPONSE); /* Responses: the object as it starts */
    const char *argv[] = {"HSET", key, "node", telex_cluster_g.node, "owner", stream->owner, "front", f, "resp", note};
    int argc = note != NULL ? 10 : 8;
    size_t len[10];
    for (int i = 0; i < argc; i++)
        len[i] = strlen(argv[i]);
    int sent = telex_rconn_cmd(cw->cmd, NULL, NULL, 0, argc, argv, len);
    free(note);
    if (sent != 0 ||
        telex_rconn_cmdf(cw->cmd, on_registered, r, "PEXPIRE %s %s", key, ttl) != 0) {
        /* the connection went down between the two: on_registered never runs */
        free(r);
        count_failed("redis_down");
        return NULL;
    }
    telex_rconn_flush(cw->cmd); /* now, not after the rest of this loop turn */
    return r;
}

void telex_cluster_reg_end(telex_cluster_reg_t *reg, int drop)
{
    if (reg == NULL)
        return;
    telex_cluster_worker_t *cw = telex_cluster_current;
    if (drop && cw != NULL) /* never handed to a client: nobody can ask for it */
        telex_rconn_cmdf(cw->cmd, NULL, NULL, "DEL %s", reg->key_m);
    if (reg->settled)
        free(reg);
    else
        reg->ended = 1;
}

uint64_t telex_cluster_registrations_failed(void)
{
    return atomic_load(&telex_cluster_g.reg_failed);
}
