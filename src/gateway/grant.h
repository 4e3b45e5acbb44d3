/*
 * gateway/grant.h — who a request runs for and what its admission took:
 * filled by the checks (auth.h), kept by the request, settled once by the
 * accounting (usage.h, services.h: telex_usage_record) or given back
 * (auth.h: telex_auth_release). A plain struct, so the accounting below the
 * services does not depend on the checks above them.
 */
#ifndef TELEX_GATEWAY_GRANT_H
#define TELEX_GATEWAY_GRANT_H

#include <stdbool.h>
#include <stdint.h>

typedef struct telex_grant {
    int64_t key_id;           /* 0 = anonymous */
    char owner[32];           /* stream owner for resume: "key:<id>", "" anonymous */
    uint64_t reserved_tokens; /* reserved by telex_auth_admit; settled by telex_usage_record */
    double estimate_usd;      /* set by the caller before telex_auth_admit: the request's estimated cost */
    double reserved_usd;      /* reserved against the budget by telex_auth_admit; settled likewise */
    bool cluster_decided;     /* cluster mode: Redis decided the limits (gateway/cluster_admit.c) */
    int cluster_verdict;      /* its telex_limit_verdict_t */
    unsigned cluster_retry;   /* its Retry-After */
    uint64_t cluster_reservation; /* its budget reservation, settled with the request */
    uint64_t cluster_lease;   /* cluster mode, decided locally (Redis away or its reply lost): its concurrency lease and what
                                 Redis may have reserved (0: none), ended with the request (telex_cluster_lease_end) */
    bool admitted;            /* telex_auth_admit passed */
    bool holds_slot;          /* holds one of the key's in-flight slots on this node (gateway/limits.h) */
} telex_grant_t;

#endif
