/*
 * gateway/access_log.h — the per-request access log: one `"msg":"request"`
 * line for a response telex answered in one piece itself, and the same
 * request counted in the metrics.
 *
 * Contract: call telex_access_log right after the response was sent (its
 * status and bytes are read from req), on the request's worker thread.
 * model may be NULL; started_ns is uv_hrtime() when the request arrived.
 * A relayed chat is not logged here: chat_relay.c writes its own, richer
 * line when the answer ends. Callers: router.c (paths it answers, and the
 * cluster hook's shutting_down answers), chat_start.c
 * (refusals before an answer starts), models.c and off_loop.c (answers
 * sent later). The line's fields and their order are fixed (tests read
 * them): level, msg, method, path, status, model, provider, stream,
 * ttft_ms, duration_ms, events, bytes, fallbacks, outcome.
 */
#ifndef TELEX_GATEWAY_ACCESS_LOG_H
#define TELEX_GATEWAY_ACCESS_LOG_H

#include <stdint.h>

#include <h2o.h>

void telex_access_log(h2o_req_t *req, const char *model, uint64_t started_ns);

#endif
