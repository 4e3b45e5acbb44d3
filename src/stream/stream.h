/*
 * stream/stream.h — one streamed answer shared by its subscribers, and the
 * process-wide table that finds it by id.
 *
 * The producer (the chat running the upstream call, on its worker thread)
 * appends encoded events to stream->log and calls telex_stream_notify; each
 * attached subscriber is woken on its own worker thread and sends from its
 * position in the log. Subscribers report how far their socket writer got
 * (acked) so the producer can drop log segments nobody needs and pause the
 * upstream when the log is full. Attach, detach and DELETE wake the
 * producer. A mutex guards the subscriber list; it is never held across I/O
 * or while a callback runs on the locking thread's behalf.
 *
 * Lifetime: reference counted. The registry holds one reference while the
 * stream can be resumed; the producer and every subscriber hold one each.
 */
#ifndef TELEX_STREAM_STREAM_H
#define TELEX_STREAM_STREAM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <h2o/linklist.h>

#include "stream/ids.h"
#include "stream/log.h"
#include "stream/wakeup.h"

typedef struct telex_stream_sub {
    h2o_linklist_t link;   /* in telex_stream_t.subs */
    telex_wakeup_t wake;   /* on the subscriber's worker: "the log has more" */
    _Atomic uint64_t acked; /* the socket writer is done with bytes below this */
} telex_stream_sub_t;

typedef struct telex_stream {
    char id[TELEX_STREAM_ID_LEN + 1];
    atomic_int refs;
    int shared;                 /* may be used by more than one thread (see telex_stream_new) */
    telex_log_t *log;
    pthread_mutex_t lock;       /* used only when shared */
    h2o_linklist_t subs;        /* of telex_stream_sub_t.link, newest first */
    int n_subs;
    uint64_t detached_at_ms;    /* monotonic ms when n_subs last became 0 */
    telex_wakeup_t *producer;   /* NULL once the producer is gone */
    atomic_int cancel_requested; /* DELETE /v1/streams/{id} */
    atomic_int wants_acks;       /* the producer waits for subscribers to advance */
    char owner[65];             /* who may resume without a token ("" = anyone with the id) */
    atomic_int deleted;          /* DELETE /v1/responses/{id}: looks unknown from now on */
    char *notes[2];              /* texts a front door keeps with the answer (under lock; see below) */
    telex_stream_sub_t *tap;     /* a reader that is not a response (cluster/publish.c): woken by notify,
                                    its acked position kept like a subscriber's, not counted in n_subs */
    int mirrored;                /* a copy of another node's stream (cluster/mirror.c) */
} telex_stream_t;

/* What a front door keeps with an answer for later requests: the Responses
 * API's Response object as it stands, and the conversation it continues
 * (previous_response_id). */
enum { TELEX_NOTE_RESPONSE = 0, TELEX_NOTE_CONVERSATION = 1 };
/* Replaces note `which` with text (taken: freed with the stream). */
void telex_stream_set_note(telex_stream_t *s, int which, char *text);
/* A malloc'ed copy of note `which`, or NULL (none). */
char *telex_stream_copy_note(telex_stream_t *s, int which);

/* A new stream with a fresh id and one reference. NULL when no random id
 * could be drawn (getrandom failed). shared = 0: a stream only its producer's thread will ever touch (it is
 * never registered, so no resumer or DELETE on another worker can find it);
 * it and its log then take no locks. telex_registry_put refuses it. */
telex_stream_t *telex_stream_new(size_t max_log_bytes, int shared);
void telex_stream_ref(telex_stream_t *s);
void telex_stream_unref(telex_stream_t *s);

void telex_stream_attach(telex_stream_t *s, telex_stream_sub_t *sub);
/* Attaches `sub` to send from log position `from` (its acked position),
 * unless that position has been dropped: -ENOENT then, and nothing changed.
 * Atomic with telex_stream_release_acked: a release either sees the new
 * subscriber's position or happened before the check. */
int telex_stream_attach_from(telex_stream_t *s, telex_stream_sub_t *sub, uint64_t from);
/* After detach no thread will wake `sub` again. */
void telex_stream_detach(telex_stream_t *s, telex_stream_sub_t *sub);
int telex_stream_subscribers(telex_stream_t *s, uint64_t *detached_at_ms);

/* Sets or clears the stream's tap (see above; under the stream's lock). */
void telex_stream_set_tap(telex_stream_t *s, telex_stream_sub_t *tap);

/* Wakes every subscriber and the tap (after an append or finish). */
void telex_stream_notify(telex_stream_t *s);
/* Wakes the producer (after attach, detach, ack, cancel request). */
void telex_stream_poke_producer(telex_stream_t *s);
/* Sets or clears the producer's wakeup (under the stream's lock). */
void telex_stream_set_producer(telex_stream_t *s, telex_wakeup_t *producer);
/* Smallest acked position over attached subscribers (UINT64_MAX if none). */
uint64_t telex_stream_min_acked(telex_stream_t *s);
/* Drops the log segments every attached subscriber has written (nothing
 * when none is attached), under the stream's lock, so that no subscriber
 * attaching at the same time loses its start (telex_stream_attach_from).
 * Producers should use this rather than min_acked + telex_log_release_before. */
void telex_stream_release_acked(telex_stream_t *s);
/* The same, but with nobody attached drops the whole history (a full log
 * that nobody is reading: a later resume gets 410). */
void telex_stream_release_acked_or_all(telex_stream_t *s);

/* The registry of resumable streams. */
int telex_registry_put(telex_stream_t *s);        /* takes its own reference */
telex_stream_t *telex_registry_get(const char *id); /* a new reference, or NULL */
void telex_registry_remove(telex_stream_t *s);     /* drops the registry's reference */
size_t telex_registry_size(void);

uint64_t telex_monotonic_ms(void);

#endif
