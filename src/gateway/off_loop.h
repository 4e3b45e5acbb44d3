/*
 * gateway/off_loop.h — a request's store work off the event loop: the
 * work runs on a thread of libuv's pool (it may block on SQLite or
 * PostgreSQL), the answer is sent back on the request's worker thread.
 *
 * Contract. telex_off_loop(req, job, work, respond, free_job): work(job)
 * runs on the pool; then, on the request's worker thread and only if the
 * client is still there, respond(req, job) (or a 503 when the pool
 * cancelled the work) followed by the request's access-log line
 * (access_log.h); finally free_job(job), always. Returns 0, or -1 when the
 * job could not be queued (then nothing ran and nothing was freed). While
 * work runs it counts as a store user (telex_services_job_begin/end), so
 * telex_services_close waits for it. A handler that queued a job returns
 * TELEX_DEFERRED: its caller must neither log the request nor answer it
 * (h2o still gets 0).
 */
#ifndef TELEX_GATEWAY_OFF_LOOP_H
#define TELEX_GATEWAY_OFF_LOOP_H

#include <h2o.h>

/* What a handler returns: answered now, or the answer comes later, from
 * the loop (after store work on the thread pool, or a provider's list). */
#define TELEX_HANDLED 0
#define TELEX_DEFERRED 1

int telex_off_loop(h2o_req_t *req, void *job, void (*work)(void *job), void (*respond)(h2o_req_t *req, void *job),
                   void (*free_job)(void *job));

/* Tests: called instead of the access log right after a deferred answer
 * was sent (NULL restores the access log). Set before serving. */
void telex_off_loop_set_answered_hook(void (*hook)(h2o_req_t *req, void *arg), void *arg);

#endif
