/*
 * gateway/cluster_admit.h — the relay's side of cluster-wide limits: asks
 * Redis (cluster/limits.h) to admit a keyed request before
 * telex_auth_admit, which then uses that verdict instead of the node's own
 * buckets.
 *
 * Contract: returns 1 when the request is held (the caller returns at once
 * and frees what it parsed; the router hands the request back once Redis
 * answered, and this returns 0 with grant->cluster_decided set). Returns 0
 * straight away — local limits — without cluster mode, for anonymous
 * callers, for keys without limits, and while Redis is away.
 */
#ifndef TELEX_GATEWAY_CLUSTER_ADMIT_H
#define TELEX_GATEWAY_CLUSTER_ADMIT_H

#include <h2o.h>

#include "gateway/auth.h"

int telex_cluster_admit_hold(telex_services_t *svc, h2o_req_t *req, telex_grant_t *grant, uint64_t est_tokens);

#endif
