/*
 * cluster/rconn.h — one asynchronous Redis connection on a worker's libuv
 * loop (hiredis' libuv adapter), with a timeout on every call and
 * reconnection by itself.
 *
 * Contract: telex_rconn_cmd sends a command when the connection is up and
 * returns -1 otherwise (the caller falls back to what it does without
 * Redis). Every command's callback runs exactly once on the loop's thread:
 * with the reply, or with NULL when the connection failed, was closed, or
 * the reply did not come within timeout_ms (+ extra_ms given per command,
 * for XREAD BLOCK). A command that times out takes the connection down
 * (Redis or the network is stuck): every pending callback gets NULL and the
 * connection is made again, with a back-off of 250 ms to 2 s. While no
 * reply is awaited, a PING each second notices a Redis that stopped
 * answering (so fire-and-forget commands, cb NULL, are covered too).
 * on_up runs after each (re)connection (AUTH and SELECT done); on_down once
 * per loss. Commands are written when the loop next polls the socket (one
 * write for everything given meanwhile), or at once with telex_rconn_flush.
 * For pub/sub, telex_rconn_subscribe sends SUBSCRIBE whose
 * callback runs per message (and with NULL when the connection is lost).
 */
#ifndef TELEX_CLUSTER_RCONN_H
#define TELEX_CLUSTER_RCONN_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>
#include <uv.h>

#include "cluster/redis_url.h"

typedef struct telex_rconn telex_rconn_t;
typedef void (*telex_rconn_cb)(telex_rconn_t *rc, redisReply *reply, void *priv);

typedef struct telex_rconn_hooks {
    void (*on_up)(telex_rconn_t *rc, void *user);
    void (*on_down)(telex_rconn_t *rc, void *user);
    void *user;
} telex_rconn_hooks_t;

telex_rconn_t *telex_rconn_new(uv_loop_t *loop, const telex_redis_url_t *url, const char *name, unsigned timeout_ms,
                               const telex_rconn_hooks_t *hooks);
/* Starts connecting, and keeps the connection up from then on. A
 * connection lives as long as its worker (the process exits with it). */
void telex_rconn_start(telex_rconn_t *rc);
int telex_rconn_is_up(const telex_rconn_t *rc);
/* uv_now() when the connection last came up (0: never). */
uint64_t telex_rconn_up_since(const telex_rconn_t *rc);
/* Commands sent and not answered yet. */
size_t telex_rconn_pending(const telex_rconn_t *rc);
/* 1 when everything given to the connection has been written to its
 * socket (or the connection is down: nothing more will be). */
int telex_rconn_flushed(const telex_rconn_t *rc);

int telex_rconn_cmd(telex_rconn_t *rc, telex_rconn_cb cb, void *priv, unsigned extra_ms, int argc, const char **argv,
                    const size_t *argvlen);
/* Before telex_rconn_start: this connection will carry quiet commands, so
 * each handshake probes CLIENT REPLY (without it quiet commands are sent as
 * usual). */
void telex_rconn_use_quiet(telex_rconn_t *rc);
/* The RESP bytes of a quiet command's first arguments, kept by its caller
 * for commands that start the same way every time (free bytes when done). */
typedef struct telex_rconn_prefix {
    char *bytes;
    size_t len;
} telex_rconn_prefix_t;

/* A command whose reply nobody reads (XADD and PEXPIRE of every event).
 * When this connection's Redis honours CLIENT REPLY (probed at each
 * connection: telex_rconn_use_quiet), it is appended to hiredis' output
 * after a CLIENT REPLY OFF opened by the first of them, and
 * telex_rconn_quiet_submit closes the section with CLIENT REPLY ON: Redis
 * answers once for the lot instead of once per command. Any other command,
 * and telex_rconn_flush, closes the section first (its reply must not be
 * swallowed). Without CLIENT REPLY it is sent as telex_rconn_cmd with no
 * callback. prefix (may be NULL): the first `fixed` arguments (and argc)
 * are the same on every call with it; formatted once into it. -1 when
 * down. */
int telex_rconn_cmd_quiet(telex_rconn_t *rc, telex_rconn_prefix_t *prefix, int fixed, int argc, const char **argv,
                          const size_t *argvlen);
/* Closes the open quiet section (written when the loop next polls, or by
 * telex_rconn_flush). Call it before leaving the loop turn that gave quiet
 * commands. */
void telex_rconn_quiet_submit(telex_rconn_t *rc);
/* The same with a printf-like hiredis format (%s, %b, %d ...). */
int telex_rconn_cmdf(telex_rconn_t *rc, telex_rconn_cb cb, void *priv, const char *fmt, ...);
/* Writes the commands given so far to the socket now (what the socket
 * takes; the rest goes out as usual), instead of when the loop next polls:
 * a command someone waits for does not wait for the rest of a long loop
 * turn first. No callback runs inside. */
void telex_rconn_flush(telex_rconn_t *rc);
/* SUBSCRIBE channel; cb runs for each reply of the subscription. */
int telex_rconn_subscribe(telex_rconn_t *rc, const char *channel, telex_rconn_cb cb, void *priv);

#endif
