/*
 * cluster/cluster.h — cluster mode: several telex nodes share streams,
 * cancellation, node liveness and key changes through one Redis.
 *
 * Contract. Without cluster.redis_url / TELEX_REDIS_URL nothing here runs
 * and every function is a cheap no-op. With it:
 *   - a resumable stream is registered in Redis when it is created
 *     (cluster/register.c); its id reaches the client with its first event
 *     without waiting for Redis' answer. Every node can still resume it from
 *     that event on: a node asked for an id that Redis does not know (yet)
 *     asks again for up to the call timeout (1 s) before it answers as for
 *     an unknown stream (cluster/mirror.c; a client address has at most
 *     CLUSTER_WAITS_PER_CLIENT such waits pending per worker, beyond that
 *     it is answered at once: cluster/waits.c). A registration that failed
 *     (Redis down or stuck past the call timeout) makes the stream
 *     local-only until the publisher gets it into Redis: other nodes answer
 *     as for an unknown stream, never with other bytes;
 *   - the producer of a resumable stream keeps serving its own subscribers
 *     from memory and appends every event to the Redis Stream
 *     telex:s:{id}:e (cluster/publish.c);
 *   - a request on another node that names a stream this node does not
 *     have (GET/DELETE /v1/streams/{id}, a POST with Last-Event-ID) is held
 *     while a local mirror of the stream is built from Redis, then handled
 *     again as if the stream were local (cluster/mirror.c): same bytes,
 *     same ids, same authorization;
 *   - DELETE on any node reaches the producer (pub/sub channel telex:ctl);
 *   - every node refreshes telex:node:{node} (a heartbeat with a short TTL);
 *     a mirror whose producer's heartbeat is gone ends with an error event;
 *   - key changes made through the admin API are announced so that every
 *     node reloads its key snapshot at once.
 * Redis down or slow: every call has a timeout, the node serves what it has
 * locally (streams it produces, its own limits) and reconnects by itself.
 * Threads: the per-worker functions run on that worker's loop thread.
 */
#ifndef TELEX_CLUSTER_CLUSTER_H
#define TELEX_CLUSTER_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include <h2o.h>
#include <uv.h>

#include "config/config.h"
#include "stream/stream.h"
#include "stream/wakeup.h"

/* Front doors, as gateway.h numbers them (the error event a mirror writes
 * when its producer is lost is in that front door's wire). */
#define TELEX_CLUSTER_FRONT_CHAT 0
#define TELEX_CLUSTER_FRONT_RESPONSES 1
#define TELEX_CLUSTER_FRONT_MESSAGES 2

/* Before the workers start: reads cfg->cluster.redis_url. Returns 0 (also
 * when there is no URL: single node), or -1 with a one-line reason in err:
 * a bad URL, rediss://, or no TELEX_RESUME_SECRET (resume tokens must
 * verify on every node). reload_keys runs on libuv's thread pool when
 * another node announced a key change. */
int telex_cluster_configure(const telex_config_t *cfg, void (*reload_keys)(void *), void *reload_ctx, char *err,
                            size_t errlen);
int telex_cluster_enabled(void);
/* This node's id in Redis (random per process). */
const char *telex_cluster_node_id(void);
/* 1 when worker 0's command connection is up (the /metrics gauge). */
int telex_cluster_redis_up(void);
/* Counters for /metrics: events appended to Redis, mirrors built, Redis
 * calls that failed or timed out. */
uint64_t telex_cluster_events_published(void);
uint64_t telex_cluster_mirrors_built(void);
/* Requests for an id Redis did not know that were answered at once, as for
 * an unknown stream, because their client address already had the most
 * waits for a registration pending on that worker (cluster/waits.c). */
uint64_t telex_cluster_lookup_waits_refused(void);

/* Per worker. redispatch handles a held request again (the router's entry
 * point); it is called on the worker's thread. */
typedef struct telex_cluster_worker telex_cluster_worker_t;
telex_cluster_worker_t *telex_cluster_worker_new(uv_loop_t *loop, telex_waker_t *waker, int index,
                                                 int (*redispatch)(void *ctx, h2o_req_t *req), void *ctx);
/* On the worker's thread, before its loop runs: connects. */
void telex_cluster_worker_start(telex_cluster_worker_t *cw);
/* On the worker's thread when it starts shutting down: requests waiting for
 * an unknown id's registration are answered 503 shutting_down at once (their
 * retry timers closed and freed); later ones for ids this node does not have
 * get the same. NULL: nothing. */
void telex_cluster_worker_shutdown(telex_cluster_worker_t *cw);

/* Shutdown: 1 when the worker has nothing left to hand to Redis (every
 * publisher has written its stream's end, and the bytes left the process),
 * or Redis is away. NULL (single node) is idle. */
int telex_cluster_worker_idle(telex_cluster_worker_t *cw);

/* The producer's hook (on its worker, when a resumable stream commits). */
void telex_cluster_publish(telex_stream_t *stream, int front);

/* Registration (cluster/register.c): the producer announces a resumable
 * stream in Redis (its meta hash: node, owner, front door) when it creates
 * it, so that every node can find the stream. The id is handed out without
 * waiting for Redis: a reader on another node waits for the registration up
 * to the call timeout (mirror.c). Returns NULL when there is nothing to
 * track (single node, not shared, or Redis away: local-only, counted); else
 * a handle that telex_cluster_reg_end gives back (drop = 1: the stream never
 * reached a client, its keys are deleted). */
typedef struct telex_cluster_reg telex_cluster_reg_t;
telex_cluster_reg_t *telex_cluster_register(telex_stream_t *stream, int front);
void telex_cluster_reg_end(telex_cluster_reg_t *reg, int drop);
/* Streams whose registration Redis did not acknowledge in time (/metrics). */
uint64_t telex_cluster_registrations_failed(void);

/* The router's hook, first thing for every request: TELEX_CLUSTER_TAKEN
 * when the request was taken (it names a stream this node does not have;
 * it is handled again once a mirror exists or Redis said there is none),
 * TELEX_CLUSTER_ANSWERED when it was answered here (503 shutting_down: the
 * node is stopping, so it begins no wait for Redis, and a wait pending at
 * the shutdown is handed back to the router to be answered so: the caller
 * writes its access-log line as for its own answers), 0 to go on. */
#define TELEX_CLUSTER_TAKEN 1
#define TELEX_CLUSTER_ANSWERED 2
int telex_cluster_intercept(h2o_req_t *req);

/* Key rows changed on this node (admin API): tell the other nodes. Any thread. */
void telex_cluster_keys_changed(void);

#endif
