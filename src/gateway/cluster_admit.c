/*
 * gateway/cluster_admit.c — cluster-wide limits before admission. See
 * cluster_admit.h.
 */
#include "gateway/cluster_admit.h"

#include "cluster/cluster.h"
#include "cluster/limits.h"
#include "gateway/limits.h"

int telex_cluster_admit_hold(telex_services_t *svc, h2o_req_t *req, telex_grant_t *grant, uint64_t est_tokens)
{
    if (!telex_cluster_enabled() || grant->key_id <= 0)
        return 0;
    telex_key_limits_t kl;
    if (telex_auth_key_limits(svc, grant->key_id, &kl) != 0)
        return 0; /* unknown or revoked: telex_auth_admit says so */
    if (kl.rpm <= 0 && kl.tpm <= 0 && kl.budget_usd < 0 && kl.max_concurrent <= 0)
        return 0;
    unsigned retry = 0;
    uint64_t reservation = 0;
    double est_usd = kl.budget_usd >= 0 ? grant->estimate_usd : 0;
    int v = telex_cluster_admit(req, grant->key_id, kl.rpm, kl.tpm, kl.budget_usd, kl.max_concurrent,
                                kl.tpm > 0 ? est_tokens : 0, est_usd, telex_limits_spent(telex_services_limits(svc), grant->key_id), &retry,
                                &reservation);
    if (v == TELEX_CLUSTER_PENDING)
        return 1;
    if (v == TELEX_CLUSTER_LOCAL)
        grant->cluster_lease = reservation; /* the node's own count decides; the request still holds a lease */
    if (v != TELEX_CLUSTER_LOCAL && v >= TELEX_CLUSTER_ADMIT_OK && v <= TELEX_CLUSTER_ADMIT_CONCURRENCY) {
        grant->cluster_decided = true;
        grant->cluster_verdict = v;
        grant->cluster_retry = retry;
        grant->cluster_reservation = reservation;
    }
    return 0;
}
