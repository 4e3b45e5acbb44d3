/*
 * cluster/rconn.c — an asynchronous Redis connection with timeouts and
 * reconnection. See rconn.h.
 *
 * Replies come in the order commands were sent, so the commands in flight
 * form a FIFO and only its head's deadline needs checking; a 100 ms timer
 * (unreferenced: it never keeps a loop alive) does that, connects again
 * after a loss, and sends the idle PING.
 */
#include "cluster/rconn.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <h2o/linklist.h>
#include <h2o/memory.h>
#include <hiredis/adapters/libuv.h>
#include <hiredis/async.h>
#include <hiredis/sds.h>

#include "util/alloc.h"
#include "util/decimal.h"
#include "util/log.h"

#define TICK_MS 100
#define PING_IDLE_MS 1000
#define BACKOFF_MIN_MS 250
#define BACKOFF_MAX_MS 2000
#define RESP_KEEP (64u << 10)   /* a larger command's buffer is freed once sent */

/* CLIENT REPLY OFF: Redis answers none of the commands that follow (not
 * even this one) until CLIENT REPLY ON, which it answers +OK. */
#define REPLY_OFF "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$3\r\nOFF\r\n"
#define REPLY_ON "*3\r\n$6\r\nCLIENT\r\n$5\r\nREPLY\r\n$2\r\nON\r\n"

enum {
    QUIET_UNUSED,  /* the connection's user sends no quiet commands (no probe) */
    QUIET_UNKNOWN, /* probe at the next handshake */
    QUIET_ON,      /* this connection's Redis honours CLIENT REPLY */
    QUIET_REFUSED, /* it refused it once: every quiet command is sent as usual, and answered */
};

enum { ST_DOWN, ST_CONNECTING, ST_HANDSHAKE, ST_UP };

typedef struct req {
    h2o_linklist_t link; /* in rc->reqs */
    telex_rconn_t *rc;
    telex_rconn_cb cb;
    void *priv;
    uint64_t deadline;
} req_t;

typedef struct sub {
    telex_rconn_t *rc;
    char channel[64];
    telex_rconn_cb cb;
    void *priv;
} sub_t;

struct telex_rconn {
    uv_loop_t *loop;
    telex_redis_url_t url;
    char name[24];
    unsigned timeout_ms;
    telex_rconn_hooks_t hooks;
    redisAsyncContext *ac;
    int state;
    int logged_down; /* the loss was logged (once per outage) */
    uint64_t deadline;     /* connecting / handshake */
    uint64_t next_attempt; /* while down */
    unsigned backoff;
    uint64_t up_since;
    uint64_t last_activity;
    uint64_t last_ping; /* a PING goes out every second while no reply is awaited */
    h2o_linklist_t reqs; /* of req_t.link: commands awaiting a reply, oldest first */
    size_t pending;
    sub_t sub; /* at most one subscription, renewed on every connection */
    int has_sub;
    uv_timer_t tick;
    char *resp; /* send_resp's scratch: the last command formatted (kept up to RESP_KEEP bytes) */
    size_t resp_cap;
    /* A CLIENT REPLY OFF is in hiredis' output buffer, followed by the
     * quiet commands given since, and its ON is not yet (quiet_submit). */
    int quiet_open;
    int quiet_mode; /* QUIET_*: does this Redis honour CLIENT REPLY (probed at each connection) */
};

static uint64_t now_ms(telex_rconn_t *rc)
{
    return uv_now(rc->loop);
}

/* A command awaiting its reply, at the end of the FIFO. */
static req_t *req_new(telex_rconn_t *rc, telex_rconn_cb cb, void *priv, uint64_t deadline)
{
    req_t *r = telex_xcalloc(1, sizeof(*r));
    r->rc = rc;
    r->cb = cb;
    r->priv = priv;
    r->deadline = deadline;
    h2o_linklist_insert(&rc->reqs, &r->link); /* last */
    rc->pending++;
    return r;
}

static void unlink_req(telex_rconn_t *rc, req_t *r)
{
    h2o_linklist_unlink(&r->link);
    rc->pending--;
}

static void on_reply(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    req_t *r = privdata;
    telex_rconn_t *rc = r->rc;
    unlink_req(rc, r);
    rc->last_activity = now_ms(rc);
    if (r->cb != NULL)
        r->cb(rc, reply, r->priv);
    free(r);
}

/* The command in Redis' protocol (RESP: "*<argc>\r\n", then "$<len>\r\n"
 * <bytes> "\r\n" per argument), formatted here and handed to hiredis as
 * already formatted (hiredis copies it into its output buffer). hiredis' own
 * argv formatter builds the same bytes with sdscatfmt, and cost more
 * instructions per appended event than relaying the event (bench/findings.md,
 * "The tap's cost per event"). */
static size_t resp_size(int argc, const size_t *argvlen)
{
    size_t need = 1 + TELEX_U64_DIGITS + 2;
    for (int i = 0; i < argc; i++)
        need += 1 + TELEX_U64_DIGITS + 2 + argvlen[i] + 2;
    return need;
}

static char *resp_args(char *p, int n, const char **argv, const size_t *argvlen)
{
    for (int i = 0; i < n; i++) {
        *p++ = '$';
        p = telex_put_u64(p, argvlen[i]);
        *p++ = '\r';
        *p++ = '\n';
        memcpy(p, argv[i], argvlen[i]);
        p += argvlen[i];
        *p++ = '\r';
        *p++ = '\n';
    }
    return p;
}

static char *resp_format(char *p, int argc, const char **argv, const size_t *argvlen)
{
    *p++ = '*';
    p = telex_put_u64(p, (uint64_t)argc);
    *p++ = '\r';
    *p++ = '\n';
    return resp_args(p, argc, argv, argvlen);
}

/* Closes the open quiet section with CLIENT REPLY ON, given to hiredis as
 * a command of its own (its one reply, +OK, is the section's only one; and
 * hiredis arms the socket's write, which the bytes appended to its buffer
 * by telex_rconn_cmd_quiet did not). */
static void quiet_submit(telex_rconn_t *rc)
{
    if (!rc->quiet_open)
        return;
    rc->quiet_open = 0;
    if (rc->ac != NULL && rc->state == ST_UP)
        redisAsyncFormattedCommand(rc->ac, NULL, NULL, REPLY_ON, sizeof REPLY_ON - 1);
}

static int send_resp(telex_rconn_t *rc, redisCallbackFn *fn, void *priv, int argc, const char **argv,
                     const size_t *argvlen)
{
    quiet_submit(rc); /* commands go out in the order they were given */
    size_t need = resp_size(argc, argvlen);
    if (need > rc->resp_cap) {
        free(rc->resp);
        rc->resp = telex_xmalloc(need);
        rc->resp_cap = need;
    }
    char *end = resp_format(rc->resp, argc, argv, argvlen);
    int ok = redisAsyncFormattedCommand(rc->ac, fn, priv, rc->resp, (size_t)(end - rc->resp));
    if (rc->resp_cap > RESP_KEEP) {
        free(rc->resp);
        rc->resp = NULL;
        rc->resp_cap = 0;
    }
    return ok;
}

static void go_down(telex_rconn_t *rc, const char *why, int free_context);
static void on_quiet_probe(telex_rconn_t *rc, redisReply *reply, void *priv);

static int send_argv(telex_rconn_t *rc, telex_rconn_cb cb, void *priv, unsigned extra_ms, int argc, const char **argv,
                     const size_t *argvlen)
{
    req_t *r = req_new(rc, cb, priv, now_ms(rc) + rc->timeout_ms + extra_ms);
    if (send_resp(rc, on_reply, r, argc, argv, argvlen) != REDIS_OK) {
        unlink_req(rc, r);
        free(r);
        return -1;
    }
    return 0;
}

/* The handshake's last step: CLIENT REPLY OFF and ON as one command for
 * hiredis, answered once (+OK) by a Redis that honours them. */
static void send_probe(telex_rconn_t *rc)
{
    static const char probe[] = REPLY_OFF REPLY_ON;
    req_t *r = req_new(rc, on_quiet_probe, rc, now_ms(rc) + rc->timeout_ms);
    if (redisAsyncFormattedCommand(rc->ac, on_reply, r, probe, sizeof probe - 1) != REDIS_OK) {
        unlink_req(rc, r);
        free(r);
        go_down(rc, "CLIENT REPLY not sent", 1);
    }
}

/* Takes the connection down (why: for the log); reconnects after a back-off. */
static void go_down(telex_rconn_t *rc, const char *why, int free_context)
{
    int was_up = rc->state == ST_UP;
    redisAsyncContext *ac = rc->ac;
    rc->quiet_open = 0; /* lost with the connection, like hiredis' unwritten output */
    rc->ac = NULL;
    rc->state = ST_DOWN;
    rc->next_attempt = now_ms(rc) + rc->backoff;
    rc->backoff = rc->backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : rc->backoff * 2;
    if (!rc->logged_down) {
        rc->logged_down = 1;
        telex_log_event("warn", "redis unavailable", "\"connection\":\"%s\",\"why\":\"%s\"", rc->name, why);
    }
    if (ac != NULL) {
        ac->data = NULL;
        if (free_context)
            redisAsyncFree(ac); /* every pending callback gets NULL */
    }
    if (was_up && rc->hooks.on_down != NULL)
        rc->hooks.on_down(rc, rc->hooks.user);
}

static void on_subscription(redisAsyncContext *ac, void *reply, void *privdata)
{
    (void)ac;
    sub_t *s = privdata;
    if (reply != NULL)
        s->rc->last_activity = now_ms(s->rc);
    s->cb(s->rc, reply, s->priv);
}

static void became_up(telex_rconn_t *rc)
{
    rc->state = ST_UP;
    rc->backoff = BACKOFF_MIN_MS;
    rc->up_since = rc->last_activity = now_ms(rc);
    if (rc->logged_down)
        telex_log_event("notice", "redis connected", "\"connection\":\"%s\"", rc->name);
    rc->logged_down = 0;
    if (rc->has_sub)
        redisAsyncCommand(rc->ac, on_subscription, &rc->sub, "SUBSCRIBE %s", rc->sub.channel);
    if (rc->hooks.on_up != NULL)
        rc->hooks.on_up(rc, rc->hooks.user);
}

static void on_handshake_reply(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    int last = priv != NULL;
    if (rc->state != ST_HANDSHAKE)
        return;
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        go_down(rc, reply == NULL ? "no answer to AUTH/SELECT" : "AUTH or SELECT refused", 1);
        return;
    }
    if (last)
        became_up(rc);
}

/* The probe's reply: +OK when Redis honoured CLIENT REPLY OFF … ON (one
 * reply for the two). An error (an old server, a proxy, an ACL without
 * CLIENT) means both were answered: the connection is made again without
 * the probe, and quiet commands are sent as usual from then on. */
static void on_quiet_probe(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    int last = priv != NULL;
    if (rc->state != ST_HANDSHAKE)
        return;
    if (reply == NULL) {
        go_down(rc, "no answer to CLIENT REPLY", 1);
        return;
    }
    if (reply->type != REDIS_REPLY_STATUS || strcmp(reply->str, "OK") != 0) {
        static atomic_int said; /* once per process, not per worker */
        rc->quiet_mode = QUIET_REFUSED;
        if (atomic_exchange(&said, 1) == 0)
            telex_log_event("notice", "redis refused CLIENT REPLY: every append is answered",
                            "\"connection\":\"%s\"", rc->name);
        rc->logged_down = 1; /* not "redis unavailable": it is there, and is connected to again at once */
        rc->next_attempt = 0;
        go_down(rc, "CLIENT REPLY refused", 1);
        rc->next_attempt = now_ms(rc);
        return;
    }
    rc->quiet_mode = QUIET_ON;
    if (last)
        became_up(rc);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
    telex_rconn_t *rc = ac->data;
    if (rc == NULL || rc->ac != ac)
        return;
    if (status != REDIS_OK) {
        go_down(rc, "connect failed", 0); /* hiredis frees the context itself */
        return;
    }
    rc->state = ST_HANDSHAKE;
    rc->deadline = now_ms(rc) + rc->timeout_ms;
    int probe = rc->quiet_mode == QUIET_UNKNOWN || rc->quiet_mode == QUIET_ON; /* (again: Redis may have changed) */
    int steps = (rc->url.password[0] != '\0') + (rc->url.db != 0) + probe;
    if (steps == 0) {
        became_up(rc);
        return;
    }
    if (rc->url.password[0] != '\0') {
        const char *argv[3] = {"AUTH", rc->url.user, rc->url.password};
        size_t len[3] = {4, strlen(rc->url.user), strlen(rc->url.password)};
        int with_user = rc->url.user[0] != '\0';
        if (!with_user) {
            argv[1] = rc->url.password;
            len[1] = len[2];
        }
        if (send_argv(rc, on_handshake_reply, rc->url.db == 0 && !probe ? rc : NULL, 0, with_user ? 3 : 2, argv, len) !=
            0)
            return go_down(rc, "out of memory", 1);
    }
    if (rc->url.db != 0) {
        char db[16];
        snprintf(db, sizeof db, "%d", rc->url.db);
        const char *argv[2] = {"SELECT", db};
        size_t len[2] = {6, strlen(db)};
        if (send_argv(rc, on_handshake_reply, probe ? NULL : rc, 0, 2, argv, len) != 0)
            return go_down(rc, "out of memory", 1);
    }
    if (probe)
        send_probe(rc);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    (void)status;
    telex_rconn_t *rc = ac->data;
    if (rc == NULL || rc->ac != ac)
        return; /* a context we already gave up on */
    go_down(rc, "connection closed", 0);
}

static void connect_now(telex_rconn_t *rc)
{
    redisAsyncContext *ac = redisAsyncConnect(rc->url.host, rc->url.port);
    if (ac == NULL) {
        go_down(rc, "out of memory", 0);
        return;
    }
    if (ac->err != 0) {
        redisAsyncFree(ac);
        go_down(rc, "connect failed", 0);
        return;
    }
    if (redisLibuvAttach(ac, rc->loop) != REDIS_OK) {
        redisAsyncFree(ac);
        go_down(rc, "libuv attach failed", 0);
        return;
    }
    ac->data = rc;
    rc->ac = ac;
    rc->state = ST_CONNECTING;
    rc->deadline = now_ms(rc) + rc->timeout_ms;
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
}

static void on_ping(telex_rconn_t *rc, redisReply *reply, void *priv)
{
    (void)rc, (void)reply, (void)priv; /* a NULL reply already took the connection down */
}

static void on_tick(uv_timer_t *t)
{
    telex_rconn_t *rc = t->data;
    uint64_t now = now_ms(rc);
    switch (rc->state) {
    case ST_DOWN:
        if (now >= rc->next_attempt)
            connect_now(rc);
        break;
    case ST_CONNECTING:
    case ST_HANDSHAKE:
        if (now >= rc->deadline)
            go_down(rc, "connect timed out", 1);
        break;
    case ST_UP:
        if (!h2o_linklist_is_empty(&rc->reqs) &&
            now >= H2O_STRUCT_FROM_MEMBER(req_t, link, rc->reqs.next)->deadline) { /* the oldest */
            go_down(rc, "a command timed out", 1);
        } else if (h2o_linklist_is_empty(&rc->reqs) && !rc->has_sub && now - rc->last_ping >= PING_IDLE_MS) {
            /* (not on a subscribed connection: hiredis 0.14 cannot match
             * a PING's reply there; a lost one is seen as a closed socket) */
            const char *argv[1] = {"PING"};
            size_t len[1] = {4};
            rc->last_ping = now;
            send_argv(rc, on_ping, NULL, 0, 1, argv, len);
        }
        break;
    }
}

telex_rconn_t *telex_rconn_new(uv_loop_t *loop, const telex_redis_url_t *url, const char *name, unsigned timeout_ms,
                               const telex_rconn_hooks_t *hooks)
{
    telex_rconn_t *rc = telex_xcalloc(1, sizeof(*rc));
    rc->loop = loop;
    rc->url = *url;
    snprintf(rc->name, sizeof rc->name, "%s", name);
    rc->timeout_ms = timeout_ms;
    if (hooks != NULL)
        rc->hooks = *hooks;
    rc->backoff = BACKOFF_MIN_MS;
    rc->state = ST_DOWN;
    h2o_linklist_init_anchor(&rc->reqs);
    uv_timer_init(loop, &rc->tick);
    rc->tick.data = rc;
    return rc;
}

void telex_rconn_use_quiet(telex_rconn_t *rc)
{
    if (rc->quiet_mode == QUIET_UNUSED)
        rc->quiet_mode = QUIET_UNKNOWN;
}

void telex_rconn_start(telex_rconn_t *rc)
{
    uv_timer_start(&rc->tick, on_tick, TICK_MS, TICK_MS);
    uv_unref((uv_handle_t *)&rc->tick);
    connect_now(rc);
}

int telex_rconn_is_up(const telex_rconn_t *rc)
{
    return rc != NULL && rc->state == ST_UP;
}

uint64_t telex_rconn_up_since(const telex_rconn_t *rc)
{
    return rc->up_since;
}

size_t telex_rconn_pending(const telex_rconn_t *rc)
{
    return rc->pending;
}

int telex_rconn_flushed(const telex_rconn_t *rc)
{
    return rc == NULL || rc->state != ST_UP || rc->ac == NULL || (!rc->quiet_open && sdslen(rc->ac->c.obuf) == 0);
}

void telex_rconn_flush(telex_rconn_t *rc)
{
    if (rc != NULL)
        quiet_submit(rc);
    if (rc == NULL || rc->state != ST_UP || rc->ac == NULL || sdslen(rc->ac->c.obuf) == 0)
        return;
    /* The synchronous half of hiredis' write: no callback runs here. A
     * failure stays in c.err, which the adapter's next poll turns into the
     * usual disconnection (every pending callback gets NULL then). */
    int done = 0;
    redisBufferWrite(&rc->ac->c, &done);
}

int telex_rconn_cmd(telex_rconn_t *rc, telex_rconn_cb cb, void *priv, unsigned extra_ms, int argc, const char **argv,
                    const size_t *argvlen)
{
    if (rc == NULL || rc->state != ST_UP)
        return -1;
    if (cb == NULL) {
        /* Fire and forget (XADD, PEXPIRE ...: one per event): no entry in the
         * FIFO of deadlines, which only callers waiting for a reply need; a
         * stuck connection is still found by those and by the idle PING. */
        return send_resp(rc, NULL, NULL, argc, argv, argvlen) == REDIS_OK ? 0 : -1;
    }
    return send_argv(rc, cb, priv, extra_ms, argc, argv, argvlen);
}

/* Room for n more bytes at the end of hiredis' output buffer
 * (redisContext.obuf, an sds string), where a quiet command is formatted in
 * place; obuf_grew then counts what was written. No copy of our own, and no
 * callback entry: Redis will not answer it. hiredis writes the buffer when
 * the socket is next writable, which quiet_submit's command arms. */
static char *obuf_room(telex_rconn_t *rc, size_t n)
{
    sds buf = sdsMakeRoomFor(rc->ac->c.obuf, n);
    if (buf == NULL)
        telex_out_of_memory(n);
    rc->ac->c.obuf = buf;
    return buf + sdslen(buf);
}

static void obuf_grew(telex_rconn_t *rc, const char *end)
{
    sds buf = rc->ac->c.obuf;
    sdsIncrLen(buf, (int)(end - (buf + sdslen(buf))));
}

int telex_rconn_cmd_quiet(telex_rconn_t *rc, telex_rconn_prefix_t *prefix, int fixed, int argc, const char **argv,
                          const size_t *argvlen)
{
    if (rc == NULL || rc->state != ST_UP)
        return -1;
    if (rc->quiet_mode != QUIET_ON)
        return send_resp(rc, NULL, NULL, argc, argv, argvlen) == REDIS_OK ? 0 : -1;
    if (prefix != NULL && prefix->bytes == NULL) {
        /* "*<argc>" and the first `fixed` arguments, the same on every call */
        prefix->bytes = telex_xmalloc(resp_size(fixed, argvlen));
        char *p = prefix->bytes;
        *p++ = '*';
        p = telex_put_u64(p, (uint64_t)argc);
        *p++ = '\r';
        *p++ = '\n';
        prefix->len = (size_t)(resp_args(p, fixed, argv, argvlen) - prefix->bytes);
    }
    size_t need = (rc->quiet_open ? 0 : sizeof REPLY_OFF - 1) + resp_size(argc, argvlen);
    char *p = obuf_room(rc, need);
    if (!rc->quiet_open) {
        memcpy(p, REPLY_OFF, sizeof REPLY_OFF - 1);
        p += sizeof REPLY_OFF - 1;
        rc->quiet_open = 1;
    }
    char *end;
    if (prefix != NULL) {
        memcpy(p, prefix->bytes, prefix->len);
        end = resp_args(p + prefix->len, argc - fixed, argv + fixed, argvlen + fixed);
    } else {
        end = resp_format(p, argc, argv, argvlen);
    }
    obuf_grew(rc, end);
    return 0;
}

void telex_rconn_quiet_submit(telex_rconn_t *rc)
{
    if (rc != NULL)
        quiet_submit(rc);
}

int telex_rconn_cmdf(telex_rconn_t *rc, telex_rconn_cb cb, void *priv, const char *fmt, ...)
{
    if (rc == NULL || rc->state != ST_UP)
        return -1;
    quiet_submit(rc); /* commands go out in the order they were given */
    req_t *r = req_new(rc, cb, priv, now_ms(rc) + rc->timeout_ms);
    va_list ap;
    va_start(ap, fmt);
    int ok = redisvAsyncCommand(rc->ac, on_reply, r, fmt, ap);
    va_end(ap);
    if (ok != REDIS_OK) {
        unlink_req(rc, r);
        free(r);
        return -1;
    }
    return 0;
}

int telex_rconn_subscribe(telex_rconn_t *rc, const char *channel, telex_rconn_cb cb, void *priv)
{
    if (rc->has_sub || strlen(channel) >= sizeof rc->sub.channel)
        return -1;
    rc->sub.rc = rc;
    snprintf(rc->sub.channel, sizeof rc->sub.channel, "%s", channel);
    rc->sub.cb = cb;
    rc->sub.priv = priv;
    rc->has_sub = 1;
    if (rc->state == ST_UP)
        redisAsyncCommand(rc->ac, on_subscription, &rc->sub, "SUBSCRIBE %s", rc->sub.channel);
    return 0;
}
