/*
 * cluster/limits.h — per-key rate limits and budgets shared by every node
 * (cluster mode), as atomic Lua scripts on one Redis hash per key
 * (telex:k:{key id}).
 *
 * Window semantics are the single node's (gateway/limits.h): requests per
 * minute and tokens per minute are token buckets of capacity rpm / tpm
 * refilled continuously at rpm/60 and tpm/60 per second — on Redis' clock
 * (TIME inside the script), so nodes with skewed clocks agree — the tpm
 * bucket may go negative (a request is admitted while it is positive,
 * reserves its prompt estimate, settles the real count at its end), and a
 * request is admitted only while spend + reserved cost < budget (it
 * reserves its estimated cost). One script checks and takes everything or
 * nothing, so N nodes admitting at once cannot pass a limit between them.
 * Reservations are kept per request (telex:k:{id}:r, field node:n), so the
 * budget held by a node that died mid-request is freed as soon as its
 * heartbeat key expires.
 *
 * Concurrency (a key's max_concurrent): each admitted request of such a
 * key holds a lease in the sorted set telex:k:{id}:c (member node:n, score
 * = the lease's expiry on Redis' clock, TELEX_CLUSTER_LEASE_TTL_MS ahead).
 * The admitting worker refreshes its leases every
 * TELEX_CLUSTER_LEASE_REFRESH_MS, with its ticks (the heartbeat's timer);
 * the settle at the request's end removes the lease. The admission script
 * drops expired leases, then counts, then adds — atomically — so the
 * leases of a node that died (or lost Redis for longer than the TTL) lapse
 * within the TTL instead of holding the key's slots forever.
 *
 * The spend starts, the first time a key is seen by Redis, from the
 * admitting node's own count (its database); after that Redis' count is
 * the budget's truth while Redis is up (the hash does not expire).
 *
 * telex_cluster_admit is asynchronous: it holds the request and hands it
 * back to the router once Redis answered (cluster.h, redispatch); the
 * second call for the same request returns the verdict. Redis away or
 * slow (no answer within the timeout): TELEX_CLUSTER_LOCAL, and the node
 * decides with its own limits.
 *
 * A lost reply (the call timed out or the connection failed after the
 * script was sent) does not say whether the script ran: Redis may run it
 * after the node gave up (a busy Redis, a slow network), and its budget
 * reservation and lease would then stay under the request's name while
 * the node is alive. Such a request (decided locally) gives back, at its
 * end, whatever the script may have taken (telex_cluster_lease_end: HDEL
 * of its field, ZREM of its lease — harmless when the script never ran)
 * and adds its real cost to Redis' spend (where Redis has one), in one
 * script, sent when the worker's connection is up again. A request that
 * did not take its verdict (its client left meanwhile, or the key was
 * revoked) gives back at once.
 */
#ifndef TELEX_CLUSTER_LIMITS_H
#define TELEX_CLUSTER_LIMITS_H

#include <stdint.h>

#include <h2o.h>

enum {
    TELEX_CLUSTER_ADMIT_OK = 0,
    TELEX_CLUSTER_ADMIT_BUDGET = 1,
    TELEX_CLUSTER_ADMIT_RPM = 2,
    TELEX_CLUSTER_ADMIT_TPM = 3,
    TELEX_CLUSTER_ADMIT_CONCURRENCY = 4,
    TELEX_CLUSTER_LOCAL = 10,   /* decide locally */
    TELEX_CLUSTER_PENDING = 11, /* the request is held; it will be handled again */
};

/* A concurrency lease lives this long unless refreshed; it is refreshed this often. */
#define TELEX_CLUSTER_LEASE_TTL_MS 5000
#define TELEX_CLUSTER_LEASE_REFRESH_MS 1000

/* rpm, tpm, max_concurrent: 0 = unlimited; budget_usd < 0 = none. local_spent seeds the
 * key's spend in Redis the first time. *retry_after_s for RPM/TPM;
 * *reservation names the request's budget reservation (for settling).
 * TELEX_CLUSTER_LOCAL with *reservation != 0 (Redis away or failing, a key
 * with max_concurrent; or the admission's reply was lost): the node decides
 * with its own count, and the request holds a concurrency lease all the
 * same — kept by this worker and refreshed into Redis as soon as Redis is
 * up, so that the other nodes count the requests a node admitted while
 * Redis was away — and/or has a reservation Redis may hold (see above);
 * the caller ends it with telex_cluster_lease_end when the request ends or
 * is refused. */
int telex_cluster_admit(h2o_req_t *req, int64_t key_id, int64_t rpm, int64_t tpm, double budget_usd,
                        int64_t max_concurrent, uint64_t est_tokens, double est_usd, double local_spent,
                        unsigned *retry_after_s, uint64_t *reservation);

/* The end of a request the cluster admitted: its real tokens and cost
 * replace the reservations and its concurrency lease is removed (fire and forget; call it on the worker that
 * admitted it; it does nothing elsewhere or while Redis is away). A
 * reservation never settled (its node died) is dropped by the next
 * admission of that key once the node's heartbeat key is gone. */
void telex_cluster_settle(int64_t key_id, uint64_t reservation, uint64_t reserved_tokens, uint64_t used_tokens,
                          double cost_usd);

/* The end of a request decided locally (TELEX_CLUSTER_LOCAL with a
 * reservation, see above), cost_usd its real cost (0 when refused or given
 * back): its lease is removed here and in Redis (fire and forget; on the
 * worker that admitted it). When its admission's reply was lost, what the
 * script may have reserved is given back as well, and cost_usd added to
 * Redis' spend (when Redis has one; else the next admission seeds it from
 * the node's own count) — at once, or once Redis is back. reservation 0:
 * nothing. */
void telex_cluster_lease_end(int64_t key_id, uint64_t reservation, double cost_usd);

/* The scripts' text (for tests and docs). */
extern const char telex_cluster_admit_lua[];
extern const char telex_cluster_settle_lua[];
extern const char telex_cluster_lease_refresh_lua[];
extern const char telex_cluster_give_back_lua[];

#endif
