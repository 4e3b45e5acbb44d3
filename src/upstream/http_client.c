/*
 * upstream/http_client.c — curl multi on libuv. See http_client.h.
 *
 * The shape follows curl's multi-socket API: curl tells us which sockets to
 * watch (socket_cb) and when to wake it (timer_cb); we tell curl which socket
 * is ready (curl_multi_socket_action) and then collect finished transfers.
 * Cancelling from inside one of this call's own callbacks is deferred: the
 * call stops reporting at once, curl may go on reading the bytes it already
 * has (they are discarded), and the call is freed right after curl returns
 * to us. So when a provider's `data: [DONE]` and the end of its chunked body
 * arrive together, curl sees a complete response and keeps the connection
 * for the next call instead of closing it (a new TCP connection per answer
 * costs a handshake of latency and the CPU of a connect/accept/close on
 * both sides). A response that is not complete by then is aborted and its
 * connection closed, as before.
 *
 * Reuse has a price that grows with concurrency: to find an idle connection,
 * curl (7.88) walks every connection it holds to the host, idle or busy. With
 * thousands of streams in flight that walk costs more than a TCP handshake on
 * a fast network (at 9,900 streams, ~0.5 ms of CPU per new call, and the
 * time to first byte of a ramp-up grew to seconds). So above
 * TELEX_HTTP_REUSE_LIMIT calls in flight on a worker, new calls open a fresh
 * connection instead of looking, and close it when they end (so no more than
 * about that many idle connections, and their file descriptors, are kept).
 */
#include "upstream/http_client.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>

struct telex_http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    struct telex_http_call *calls; /* every call not yet freed */
    struct telex_http_call *doomed; /* cancelled inside a callback, freed by reap */
    size_t n_calls;                 /* calls not yet freed */
    size_t reuse_limit;             /* above this many, new calls do not look for a connection to reuse */
};

struct telex_http_call {
    telex_http_client_t *client;
    struct telex_http_call *prev, *next;
    CURL *easy;
    struct curl_slist *headers;
    telex_http_call_handlers_t handlers;
    void *user;
    long status;
    char content_type[128];
    char retry_after[32];
    char error[CURL_ERROR_SIZE];
    int responded;
    int in_callback;
    int cancelled;
    int paused;
    int doomed;
    struct telex_http_call *doomed_next;
};

typedef struct {
    uv_poll_t poll;
    curl_socket_t fd;
    telex_http_client_t *client;
} socket_watch_t;

static void free_call(telex_http_call_t *call)
{
    if (call->doomed) {
        telex_http_call_t **p = &call->client->doomed;
        while (*p != call)
            p = &(*p)->doomed_next;
        *p = call->doomed_next;
    }
    if (call->prev != NULL)
        call->prev->next = call->next;
    else
        call->client->calls = call->next;
    if (call->next != NULL)
        call->next->prev = call->prev;
    curl_multi_remove_handle(call->client->multi, call->easy);
    curl_easy_cleanup(call->easy);
    curl_slist_free_all(call->headers);
    call->client->n_calls--;
    free(call);
}

static void check_finished(telex_http_client_t *client)
{
    CURLMsg *msg;
    int left;
    while ((msg = curl_multi_info_read(client->multi, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        telex_http_call_t *call = NULL;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&call);
        CURLcode code = msg->data.result;
        curl_multi_remove_handle(client->multi, call->easy);
        if (!call->cancelled) {
            const char *error = NULL;
            if (code != CURLE_OK)
                error = call->error[0] != '\0' ? call->error : curl_easy_strerror(code);
            call->in_callback = 1; /* a cancel from on_complete must not free twice */
            call->handlers.on_complete(call->user, error, code == CURLE_OPERATION_TIMEDOUT);
        }
        free_call(call);
    }
}

/* Frees the calls cancelled inside their callbacks whose transfers curl did
 * not finish (finished ones were freed by check_finished, connection kept). */
static void reap(telex_http_client_t *client)
{
    while (client->doomed != NULL)
        free_call(client->doomed);
}

static void on_poll(uv_poll_t *handle, int status, int events)
{
    socket_watch_t *w = handle->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE)
        flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE)
        flags |= CURL_CSELECT_OUT;
    int running;
    telex_http_client_t *client = w->client; /* w may be freed during the action */
    curl_multi_socket_action(client->multi, w->fd, flags, &running);
    check_finished(client);
    reap(client);
}

static void on_watch_closed(uv_handle_t *handle)
{
    free(handle->data);
}

static int socket_cb(CURL *easy, curl_socket_t fd, int action, void *userp, void *socketp)
{
    telex_http_client_t *client = userp;
    socket_watch_t *w = socketp;
    if (action == CURL_POLL_REMOVE) {
        if (w != NULL) {
            uv_poll_stop(&w->poll);
            uv_close((uv_handle_t *)&w->poll, on_watch_closed);
            curl_multi_assign(client->multi, fd, NULL);
        }
        return 0;
    }
    if (w == NULL) {
        if ((w = calloc(1, sizeof(*w))) == NULL)
            return -1;
        w->fd = fd;
        w->client = client;
        w->poll.data = w;
        if (uv_poll_init_socket(client->loop, &w->poll, fd) != 0) {
            free(w);
            return -1;
        }
        curl_multi_assign(client->multi, fd, w);
    }
    int events = 0;
    if (action & CURL_POLL_IN)
        events |= UV_READABLE;
    if (action & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    uv_poll_start(&w->poll, events, on_poll);
    return 0;
}

static void on_timer(uv_timer_t *timer)
{
    telex_http_client_t *client = timer->data;
    int running;
    curl_multi_socket_action(client->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    check_finished(client);
    reap(client);
}

static int timer_cb(CURLM *multi, long timeout_ms, void *userp)
{
    telex_http_client_t *client = userp;
    if (timeout_ms < 0)
        uv_timer_stop(&client->timer);
    else
        uv_timer_start(&client->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

telex_http_client_t *telex_http_client_new(uv_loop_t *loop)
{
    telex_http_client_t *client = calloc(1, sizeof(*client));
    if (client == NULL)
        return NULL;
    client->loop = loop;
    client->reuse_limit = TELEX_HTTP_REUSE_LIMIT;
    if ((client->multi = curl_multi_init()) == NULL) {
        free(client);
        return NULL;
    }
    uv_timer_init(loop, &client->timer);
    client->timer.data = client;
    curl_multi_setopt(client->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
    curl_multi_setopt(client->multi, CURLMOPT_SOCKETDATA, client);
    curl_multi_setopt(client->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
    curl_multi_setopt(client->multi, CURLMOPT_TIMERDATA, client);
    return client;
}

void telex_http_client_set_reuse_limit(telex_http_client_t *client, size_t calls)
{
    client->reuse_limit = calls;
}

static void on_client_timer_closed(uv_handle_t *handle)
{
    telex_http_client_t *client = handle->data;
    curl_multi_cleanup(client->multi);
    free(client);
}

void telex_http_client_free(telex_http_client_t *client)
{
    if (client == NULL)
        return;
    while (client->calls != NULL)
        free_call(client->calls);
    uv_timer_stop(&client->timer);
    uv_close((uv_handle_t *)&client->timer, on_client_timer_closed);
}

/* Status line and headers. curl calls this for every response, including
 * 1xx and redirects; only the final response's blank line reports. */
static size_t header_cb(char *data, size_t size, size_t nitems, void *userp)
{
    telex_http_call_t *call = userp;
    size_t len = size * nitems;
    if (call->cancelled)
        return len; /* doomed: let curl read on, report nothing */
    if (len >= 5 && strncmp(data, "HTTP/", 5) == 0) {
        call->content_type[0] = '\0';
        call->retry_after[0] = '\0';
        const char *sp = memchr(data, ' ', len);
        call->status = sp != NULL ? strtol(sp + 1, NULL, 10) : 0;
        return len;
    }
    if (len <= 2 && (data[0] == '\r' || data[0] == '\n')) {
        if (call->status >= 200 && !call->responded) {
            call->responded = 1;
            call->in_callback = 1;
            call->handlers.on_response(call->user, call->status, call->content_type, call->retry_after);
            call->in_callback = 0;
        }
        return len;
    }
    const char *colon = memchr(data, ':', len);
    if (colon == NULL)
        return len;
    size_t name_len = (size_t)(colon - data);
    const char *value = colon + 1;
    const char *end = data + len;
    while (value < end && (*value == ' ' || *value == '\t'))
        value++;
    while (end > value && isspace((unsigned char)end[-1]))
        end--;
    size_t value_len = (size_t)(end - value);
    char *dst = NULL;
    size_t cap = 0;
    if (name_len == 12 && strncasecmp(data, "content-type", 12) == 0) {
        dst = call->content_type;
        cap = sizeof(call->content_type);
    } else if (name_len == 11 && strncasecmp(data, "retry-after", 11) == 0) {
        dst = call->retry_after;
        cap = sizeof(call->retry_after);
    }
    if (dst != NULL) {
        if (value_len >= cap)
            value_len = cap - 1;
        memcpy(dst, value, value_len);
        dst[value_len] = '\0';
    }
    return len;
}

static size_t write_cb(char *data, size_t size, size_t nmemb, void *userp)
{
    telex_http_call_t *call = userp;
    size_t len = size * nmemb;
    if (call->cancelled)
        return len; /* doomed: discarded */
    call->in_callback = 1;
    if (!call->responded) { /* a body without a final header block cannot happen, but be safe */
        call->responded = 1;
        call->handlers.on_response(call->user, call->status, call->content_type, call->retry_after);
    }
    if (!call->cancelled)
        call->handlers.on_body(call->user, data, len);
    call->in_callback = 0;
    return len;
}

telex_http_call_t *telex_http_call_start(telex_http_client_t *client, const telex_http_request_t *request,
                                         const telex_http_call_handlers_t *handlers, void *user)
{
    telex_http_call_t *call = calloc(1, sizeof(*call));
    if (call == NULL)
        return NULL;
    call->client = client;
    call->handlers = *handlers;
    call->user = user;
    if ((call->easy = curl_easy_init()) == NULL) {
        free(call);
        return NULL;
    }
    for (const char *const *h = request->headers; h != NULL && *h != NULL; h++) {
        struct curl_slist *next = curl_slist_append(call->headers, *h);
        if (next == NULL)
            goto fail;
        call->headers = next;
    }
    CURL *e = call->easy;
    curl_easy_setopt(e, CURLOPT_URL, request->url);
    curl_easy_setopt(e, CURLOPT_PRIVATE, call);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, call->headers);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, header_cb);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, call);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, call);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, call->error);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
    if (client->n_calls >= client->reuse_limit) {
        /* neither look for a connection nor keep this one: idle connections
         * then come only from calls below the limit, so there are at most
         * about reuse_limit of them (each holds a file descriptor) */
        curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, 1L);
        curl_easy_setopt(e, CURLOPT_FORBID_REUSE, 1L);
    }
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, request->connect_timeout_ms > 0 ? request->connect_timeout_ms : 10000L);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    if (request->body != NULL) {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)request->body_len);
        curl_easy_setopt(e, CURLOPT_COPYPOSTFIELDS, request->body);
    }
    if (curl_multi_add_handle(client->multi, e) != CURLM_OK)
        goto fail;
    client->n_calls++;
    call->next = client->calls;
    if (client->calls != NULL)
        client->calls->prev = call;
    client->calls = call;
    return call;
fail:
    curl_easy_cleanup(call->easy);
    curl_slist_free_all(call->headers);
    free(call);
    return NULL;
}

void telex_http_call_pause(telex_http_call_t *call)
{
    if (call->paused || call->cancelled)
        return;
    call->paused = 1;
    curl_easy_pause(call->easy, CURLPAUSE_RECV);
}

void telex_http_call_resume(telex_http_call_t *call)
{
    if (!call->paused || call->cancelled)
        return;
    call->paused = 0;
    /* May deliver buffered data at once, through write_cb (which may cancel
     * the call: it is then freed here, after curl returned). */
    telex_http_client_t *client = call->client;
    call->in_callback = 1;
    curl_easy_pause(call->easy, CURLPAUSE_CONT);
    call->in_callback = 0;
    check_finished(client);
    reap(client);
}

void telex_http_call_cancel(telex_http_call_t *call)
{
    if (call == NULL || call->cancelled)
        return;
    call->cancelled = 1;
    if (call->in_callback) {
        /* inside one of its callbacks: reap (or check_finished, if curl
         * completes the response meanwhile) frees it after curl returns */
        call->doomed = 1;
        call->doomed_next = call->client->doomed;
        call->client->doomed = call;
        return;
    }
    free_call(call);
}
