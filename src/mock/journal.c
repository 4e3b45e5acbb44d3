/*
 * mock/journal.c — the recent requests, for GET /mock/requests.
 *
 * A fixed ring of `capacity` slots shared by all workers behind one mutex.
 * Each slot keeps the request's unchanging part (method, path, headers,
 * body) pre-serialised as JSON members when it is recorded, and the
 * progress counters that the exchange updates as it goes; no jansson object
 * is ever shared between threads. Holding the lock costs a few stores per
 * update; only a dump (rare, for tests) formats under it.
 *
 * Secrets are never stored: authorization and proxy-authorization keep
 * only their scheme ("Bearer [redacted]"), api-key, x-api-key, cookie are
 * "[redacted]" — so a test can see that a key was sent, never which.
 */
#include "mock/mock_internal.h"
#include "util/alloc.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#define MAX_STORED_BODY (256 * 1024) /* larger bodies: only their size */

typedef struct {
    uint64_t seq; /* 0 = empty */
    int64_t received_ms;
    char *fixed; /* "method":..,"path":..,"headers":{..},"body":.. */
    telex_mock_progress_t progress;
} slot_t;

struct telex_mock_journal {
    pthread_mutex_t lock;
    size_t capacity;
    slot_t *slots;
    atomic_uint_fast64_t next_seq;
};

int64_t telex_mock_unix_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

telex_mock_journal_t *telex_mock_journal_new(size_t capacity)
{
    telex_mock_journal_t *j = telex_xcalloc(1, sizeof(*j));
    j->capacity = capacity;
    if (capacity > 0)
        j->slots = telex_xcalloc(capacity, sizeof(slot_t));
    pthread_mutex_init(&j->lock, NULL);
    atomic_init(&j->next_seq, 1);
    return j;
}

static void clear_slots(telex_mock_journal_t *j)
{
    for (size_t i = 0; i < j->capacity; i++) {
        free(j->slots[i].fixed);
        memset(&j->slots[i], 0, sizeof(slot_t));
    }
}

void telex_mock_journal_free(telex_mock_journal_t *j)
{
    if (j == NULL)
        return;
    clear_slots(j);
    free(j->slots);
    pthread_mutex_destroy(&j->lock);
    free(j);
}

void telex_mock_journal_clear(telex_mock_journal_t *j)
{
    pthread_mutex_lock(&j->lock);
    clear_slots(j);
    pthread_mutex_unlock(&j->lock);
}

/* A JSON string from bytes that may not be UTF-8 (bytes >= 0x80 of an
 * invalid sequence become '?'). */
static json_t *lossy_string(const char *s, size_t len)
{
    json_t *v = json_stringn(s, len);
    if (v != NULL)
        return v;
    char *copy = telex_xmalloc(len + 1);
    for (size_t i = 0; i < len; i++)
        copy[i] = (unsigned char)s[i] >= 0x80 || s[i] == '\0' ? '?' : s[i];
    v = json_stringn(copy, len);
    free(copy);
    return v;
}

static int is_secret(const h2o_iovec_t *name)
{
    static const char *const secret[] = {"api-key", "x-api-key", "cookie", "set-cookie", "x-goog-api-key"};
    for (size_t i = 0; i < sizeof(secret) / sizeof(secret[0]); i++)
        if (h2o_lcstris(name->base, name->len, secret[i], strlen(secret[i])))
            return 1;
    return 0;
}

static json_t *redacted_value(const h2o_iovec_t *name, h2o_iovec_t value)
{
    if (h2o_lcstris(name->base, name->len, H2O_STRLIT("authorization")) ||
        h2o_lcstris(name->base, name->len, H2O_STRLIT("proxy-authorization"))) {
        /* keep the scheme only: "Bearer [redacted]" */
        size_t n = 0;
        while (n < value.len && value.base[n] != ' ' && n < 32)
            n++;
        if (n == value.len || n == 32 || n == 0)
            return json_string("[redacted]");
        char buf[64];
        memcpy(buf, value.base, n);
        memcpy(buf + n, " [redacted]", sizeof(" [redacted]"));
        return lossy_string(buf, strlen(buf));
    }
    if (is_secret(name))
        return json_string("[redacted]");
    return NULL;
}

static json_t *headers_json(h2o_req_t *req)
{
    json_t *obj = json_object();
    if (obj == NULL)
        return NULL;
    for (size_t i = 0; i < req->headers.size; i++) {
        const h2o_header_t *h = &req->headers.entries[i];
        char name[256];
        size_t nl = h->name->len < sizeof(name) - 1 ? h->name->len : sizeof(name) - 1;
        for (size_t k = 0; k < nl; k++) {
            char c = h->name->base[k];
            name[k] = (char)((c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : ((unsigned char)c >= 0x80 ? '?' : c));
        }
        name[nl] = '\0';
        json_t *v = redacted_value(h->name, h->value);
        if (v == NULL)
            v = lossy_string(h->value.base, h->value.len);
        if (v == NULL)
            goto fail;
        json_t *prev = json_object_get(obj, name);
        if (prev != NULL && !is_secret(h->name) && json_is_string(prev)) {
            /* repeated header: join with ", " as HTTP does */
            size_t pl = json_string_length(prev), vl = json_string_length(v);
            char *joined = telex_xmalloc(pl + 2 + vl);
            memcpy(joined, json_string_value(prev), pl);
            memcpy(joined + pl, ", ", 2);
            memcpy(joined + pl + 2, json_string_value(v), vl);
            json_decref(v);
            v = json_stringn(joined, pl + 2 + vl);
            free(joined);
            if (v == NULL)
                goto fail;
        }
        if (json_object_set_new(obj, name, v) != 0)
            goto fail;
    }
    return obj;
fail:
    json_decref(obj);
    return NULL;
}

/* The unchanging members of an entry, serialised without the braces. */
static char *fixed_part(h2o_req_t *req, json_t *body)
{
    json_t *o = json_object();
    if (o == NULL)
        return NULL;
    json_object_set_new(o, "method", lossy_string(req->method.base, req->method.len));
    json_object_set_new(o, "path", lossy_string(req->path.base, req->path.len));
    json_object_set_new(o, "authority", lossy_string(req->authority.base, req->authority.len));
    json_object_set_new(o, "http", json_string(req->version >= 0x200 ? "2" : req->version == 0x100 ? "1.0" : "1.1"));
    json_t *h = headers_json(req);
    if (h == NULL) {
        json_decref(o);
        return NULL;
    }
    json_object_set_new(o, "headers", h);
    json_object_set_new(o, "body_bytes", json_integer((json_int_t)req->entity.len));
    if (req->entity.len > MAX_STORED_BODY)
        json_object_set_new(o, "body", json_null());
    else if (body != NULL)
        json_object_set(o, "body", body);
    else if (req->entity.base != NULL)
        json_object_set_new(o, "body", lossy_string(req->entity.base, req->entity.len));
    else
        json_object_set_new(o, "body", json_null());
    char *s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    if (s == NULL)
        return NULL;
    size_t n = strlen(s);
    if (n < 2) {
        free(s);
        return NULL;
    }
    memmove(s, s + 1, n - 2); /* drop { } */
    s[n - 2] = '\0';
    return s;
}

uint64_t telex_mock_journal_add(telex_mock_journal_t *j, h2o_req_t *req, json_t *body)
{
    uint64_t seq = atomic_fetch_add(&j->next_seq, 1);
    if (j->capacity == 0)
        return seq;
    char *fixed = fixed_part(req, body);
    if (fixed == NULL)
        return seq; /* out of memory: not recorded, still served */
    pthread_mutex_lock(&j->lock);
    slot_t *s = &j->slots[(seq - 1) % j->capacity];
    char *old = s->fixed;
    if (s->seq > seq) { /* a later request already took the slot */
        old = fixed;
    } else {
        s->seq = seq;
        s->received_ms = telex_mock_unix_ms();
        s->fixed = fixed;
        memset(&s->progress, 0, sizeof(s->progress));
        s->progress.outcome = "in_progress";
    }
    pthread_mutex_unlock(&j->lock);
    free(old);
    return seq;
}

void telex_mock_journal_update(telex_mock_journal_t *j, uint64_t seq, const telex_mock_progress_t *p)
{
    if (j->capacity == 0)
        return;
    pthread_mutex_lock(&j->lock);
    slot_t *s = &j->slots[(seq - 1) % j->capacity];
    if (s->seq == seq)
        s->progress = *p;
    pthread_mutex_unlock(&j->lock);
}

typedef struct {
    char *buf;
    size_t len, cap;
} strbuf_t;

static void sb_append(strbuf_t *b, const char *s, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        b->buf = telex_xrealloc(b->buf, cap);
        b->cap = cap;
    }
    memcpy(b->buf + b->len, s, n);
    b->len += n;
    b->buf[b->len] = '\0';
}

static void append_slot(strbuf_t *b, const slot_t *s, int first)
{
    const telex_mock_progress_t *p = &s->progress;
    char head[128], tail[512];
    int hn = snprintf(head, sizeof(head), "%s{\"seq\":%llu,\"received_ms\":%lld,", first ? "" : ",",
                      (unsigned long long)s->seq, (long long)s->received_ms);
    char gone_at[32] = "null", ended[32] = "null";
    if (p->client_gone)
        snprintf(gone_at, sizeof(gone_at), "%lld", (long long)p->gone_at_ms);
    if (p->ended_ms != 0)
        snprintf(ended, sizeof(ended), "%lld", (long long)p->ended_ms);
    int tn = snprintf(tail, sizeof(tail),
                      ",\"status\":%d,\"events\":%lld,\"content_events\":%lld,\"completed\":%s,"
                      "\"client_gone\":%s,\"gone_at_ms\":%s,\"ended_ms\":%s,\"outcome\":\"%s\"}",
                      p->status, (long long)p->events, (long long)p->content_events,
                      p->completed ? "true" : "false", p->client_gone ? "true" : "false", gone_at, ended,
                      p->outcome ? p->outcome : "in_progress");
    sb_append(b, head, (size_t)hn);
    sb_append(b, s->fixed, strlen(s->fixed));
    sb_append(b, tail, (size_t)tn);
}

char *telex_mock_journal_dump(telex_mock_journal_t *j, uint64_t since, size_t *len)
{
    strbuf_t b = {0};
    sb_append(&b, "{\"requests\":[", 13);
    pthread_mutex_lock(&j->lock);
    uint64_t next = atomic_load(&j->next_seq);
    int first = 1;
    if (j->capacity > 0) {
        /* oldest first: start at the slot after the newest */
        size_t start = (size_t)((next - 1) % j->capacity);
        for (size_t k = 0; k < j->capacity; k++) {
            const slot_t *s = &j->slots[(start + k) % j->capacity];
            if (s->seq == 0 || s->seq <= since || s->fixed == NULL)
                continue;
            append_slot(&b, s, first);
            first = 0;
        }
    }
    pthread_mutex_unlock(&j->lock);
    char tail[64];
    int n = snprintf(tail, sizeof(tail), "],\"total\":%llu}", (unsigned long long)(next - 1));
    sb_append(&b, tail, (size_t)n);
    *len = b.len;
    return b.buf;
}
