/*
 * stream/stream.c — shared streams and the registry. See stream.h.
 *
 * The registry is a chained hash table behind one mutex: it is touched when
 * a stream starts, when one is resumed and when one expires — never per
 * event — so one lock is no contention point.
 */
#include "stream/stream.h"
#include "util/alloc.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BUCKETS 16384

typedef struct entry {
    struct entry *next;
    telex_stream_t *stream;
} entry_t;

static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static entry_t *buckets[BUCKETS];
static size_t registry_count;

uint64_t telex_monotonic_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void lock(telex_stream_t *s)
{
    if (s->shared)
        pthread_mutex_lock(&s->lock);
}

static inline void unlock(telex_stream_t *s)
{
    if (s->shared)
        pthread_mutex_unlock(&s->lock);
}

telex_stream_t *telex_stream_new(size_t max_log_bytes, int shared)
{
    telex_stream_t *s = telex_xcalloc(1, sizeof(*s));
    s->shared = shared;
    h2o_linklist_init_anchor(&s->subs);
    if (telex_stream_id_new(s->id) != 0) {
        free(s);
        return NULL;
    }
    s->log = telex_log_new(max_log_bytes, shared);
    atomic_init(&s->refs, 1);
    pthread_mutex_init(&s->lock, NULL);
    s->detached_at_ms = telex_monotonic_ms();
    return s;
}

void telex_stream_ref(telex_stream_t *s)
{
    atomic_fetch_add(&s->refs, 1);
}

void telex_stream_unref(telex_stream_t *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    telex_log_free(s->log);
    free(s->notes[0]);
    free(s->notes[1]);
    pthread_mutex_destroy(&s->lock);
    free(s);
}

void telex_stream_set_note(telex_stream_t *s, int which, char *text)
{
    if (s->shared)
        pthread_mutex_lock(&s->lock);
    char *old = s->notes[which];
    s->notes[which] = text;
    if (s->shared)
        pthread_mutex_unlock(&s->lock);
    free(old);
}

char *telex_stream_copy_note(telex_stream_t *s, int which)
{
    if (s->shared)
        pthread_mutex_lock(&s->lock);
    char *copy = s->notes[which] != NULL ? telex_xstrdup(s->notes[which]) : NULL;
    if (s->shared)
        pthread_mutex_unlock(&s->lock);
    return copy;
}

static void link_sub(telex_stream_t *s, telex_stream_sub_t *sub)
{
    h2o_linklist_insert(s->subs.next, &sub->link); /* first */
    s->n_subs++;
}

static telex_stream_sub_t *sub_of(h2o_linklist_t *l)
{
    return H2O_STRUCT_FROM_MEMBER(telex_stream_sub_t, link, l);
}

void telex_stream_attach(telex_stream_t *s, telex_stream_sub_t *sub)
{
    lock(s);
    link_sub(s, sub);
    unlock(s);
    telex_stream_poke_producer(s);
}

int telex_stream_attach_from(telex_stream_t *s, telex_stream_sub_t *sub, uint64_t from)
{
    lock(s);
    /* The log's own lock nests inside the stream's (never the other way). */
    if (from < telex_log_start(s->log)) {
        unlock(s);
        return -ENOENT;
    }
    atomic_store(&sub->acked, from);
    link_sub(s, sub);
    unlock(s);
    telex_stream_poke_producer(s);
    return 0;
}

void telex_stream_detach(telex_stream_t *s, telex_stream_sub_t *sub)
{
    lock(s);
    h2o_linklist_unlink(&sub->link);
    if (--s->n_subs == 0)
        s->detached_at_ms = telex_monotonic_ms();
    unlock(s);
    telex_stream_poke_producer(s);
}

int telex_stream_subscribers(telex_stream_t *s, uint64_t *detached_at_ms)
{
    lock(s);
    int n = s->n_subs;
    if (detached_at_ms != NULL)
        *detached_at_ms = s->detached_at_ms;
    unlock(s);
    return n;
}

void telex_stream_notify(telex_stream_t *s)
{
    lock(s);
    /* Sends never run callbacks inline (see wakeup.h), so holding the lock
     * here cannot re-enter it. */
    for (h2o_linklist_t *l = s->subs.next; l != &s->subs; l = l->next)
        telex_wakeup_send(&sub_of(l)->wake);
    if (s->tap != NULL)
        telex_wakeup_send(&s->tap->wake);
    unlock(s);
}

void telex_stream_set_tap(telex_stream_t *s, telex_stream_sub_t *tap)
{
    lock(s);
    s->tap = tap;
    unlock(s);
}

void telex_stream_poke_producer(telex_stream_t *s)
{
    lock(s);
    if (s->producer != NULL)
        telex_wakeup_send(s->producer);
    unlock(s);
}

void telex_stream_set_producer(telex_stream_t *s, telex_wakeup_t *producer)
{
    lock(s);
    s->producer = producer;
    unlock(s);
}

uint64_t telex_stream_min_acked(telex_stream_t *s)
{
    uint64_t min = UINT64_MAX;
    lock(s);
    for (h2o_linklist_t *l = s->subs.next; l != &s->subs; l = l->next) {
        uint64_t a = atomic_load(&sub_of(l)->acked);
        if (a < min)
            min = a;
    }
    unlock(s);
    return min;
}

static void release(telex_stream_t *s, int all_if_unattached)
{
    lock(s);
    uint64_t min = UINT64_MAX;
    for (h2o_linklist_t *l = s->subs.next; l != &s->subs; l = l->next) {
        uint64_t a = atomic_load(&sub_of(l)->acked);
        if (a < min)
            min = a;
    }
    if (min == UINT64_MAX && all_if_unattached)
        min = telex_log_end(s->log);
    if (min != UINT64_MAX && s->tap != NULL && atomic_load(&s->tap->acked) < min)
        min = atomic_load(&s->tap->acked); /* not yet published */
    if (min != UINT64_MAX)
        telex_log_release_before(s->log, min);
    unlock(s);
}

void telex_stream_release_acked(telex_stream_t *s)
{
    release(s, 0);
}

void telex_stream_release_acked_or_all(telex_stream_t *s)
{
    release(s, 1);
}

/* ------------------------------------------------------------ registry */

static size_t bucket_of(const char *id)
{
    uint64_t h = 1469598103934665603ULL;
    for (const char *p = id; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return (size_t)(h % BUCKETS);
}

int telex_registry_put(telex_stream_t *s)
{
    if (!s->shared)
        return -1; /* other threads would find it: it must lock */
    entry_t *e = telex_xmalloc(sizeof(*e));
    telex_stream_ref(s);
    e->stream = s;
    size_t b = bucket_of(s->id);
    pthread_mutex_lock(&registry_lock);
    e->next = buckets[b];
    buckets[b] = e;
    registry_count++;
    pthread_mutex_unlock(&registry_lock);
    return 0;
}

telex_stream_t *telex_registry_get(const char *id)
{
    telex_stream_t *found = NULL;
    size_t b = bucket_of(id);
    pthread_mutex_lock(&registry_lock);
    for (entry_t *e = buckets[b]; e != NULL; e = e->next) {
        if (strcmp(e->stream->id, id) == 0) {
            found = e->stream;
            telex_stream_ref(found);
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    return found;
}

void telex_registry_remove(telex_stream_t *s)
{
    size_t b = bucket_of(s->id);
    entry_t *gone = NULL;
    pthread_mutex_lock(&registry_lock);
    for (entry_t **p = &buckets[b]; *p != NULL; p = &(*p)->next) {
        if ((*p)->stream == s) {
            gone = *p;
            *p = gone->next;
            registry_count--;
            break;
        }
    }
    pthread_mutex_unlock(&registry_lock);
    if (gone != NULL) {
        telex_stream_unref(s);
        free(gone);
    }
}

size_t telex_registry_size(void)
{
    pthread_mutex_lock(&registry_lock);
    size_t n = registry_count;
    pthread_mutex_unlock(&registry_lock);
    return n;
}
