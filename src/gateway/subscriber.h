/*
 * gateway/subscriber.h — one HTTP response that streams a shared log.
 *
 * A subscriber is the original client of an answer, a client resuming it
 * (GET /v1/streams/{id} or a POST retried with Last-Event-ID), or a second
 * tab on the same answer. It is nothing but a position in the stream's log:
 * when woken (new events) or when h2o calls proceed (the last write is
 * done) it hands every byte from its position to the end to h2o in one
 * write, pointing straight into the log's segments. So all subscribers of
 * an answer send identical bytes, and a slow one costs no memory. (One
 * exception: a resumable response that starts after the first event opens
 * with "retry: <resume.retry_ms>\n\n", a block that dispatches no event, so
 * that an EventSource attached mid-answer reconnects at the configured pace.)
 *
 * It fills silence with ": keepalive" comments, ends the response when the
 * log is finished and drained, and detaches from the stream when h2o
 * disposes of the request (client gone, or response complete).
 */
#ifndef TELEX_GATEWAY_SUBSCRIBER_H
#define TELEX_GATEWAY_SUBSCRIBER_H

#include <h2o.h>

#include "stream/stream.h"

struct gateway_worker;

/* Starts the 200 text/event-stream response on `req` (adding `extra`
 * headers given as name/value pairs, NULL-terminated) and streams the log of
 * `stream` from byte position `from`. `release_as_acked`: drop log bytes as
 * soon as they are written (a non-resumable stream with one reader).
 * Returns 0; -ENOENT when `from` is no longer in the log (the producer
 * dropped it: answer 410); -1 when out of memory. Nothing was sent on
 * failure. */
int telex_subscriber_start(struct gateway_worker *gw, h2o_req_t *req, telex_stream_t *stream, uint64_t from,
                           int release_as_acked, const char *const *extra_headers);

/* HTTP/1 clients that left during silence (called by the worker's sweep). */
void telex_subscribers_sweep(struct gateway_worker *gw);

#endif
