/*
 * cluster/waits.c — the per-client bound on waits for an unknown stream id
 * (mirror.c): a request naming an id Redis does not know (yet) waits up to
 * 1 s for its registration and costs ~20 lookups meanwhile; a client address
 * (an IPv6 client: its /64, as the connection guard counts clients) may have
 * at most CLUSTER_WAITS_PER_CLIENT such waits pending on a worker. Beyond
 * that its request is answered at once, as for an unknown stream.
 *
 * Why a concurrency bound and not a rate (token bucket): what a wait costs
 * lasts as long as the wait (a held request, a lookup every 64 ms), so a
 * bound on pending waits bounds both the held requests and the lookup rate
 * (≤ CLUSTER_WAITS_PER_CLIENT × ~20 per second per address and worker), with
 * no refill period to tune; and a legitimate wait ends as soon as the
 * producer's registration lands (milliseconds), so an honest client — even
 * many behind one address — seldom has more than one pending, while a
 * bucket sized for a burst of honest resumes would let a made-up id flood
 * through at the refill rate for ever.
 *
 * Per worker, on its loop thread: no lock. A client's entry exists while it
 * has a wait pending.
 */
#include "cluster/cluster_internal.h"

#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "util/alloc.h"

#define WAIT_BUCKETS 256

struct cluster_wait_client {
    struct cluster_wait_client *next;
    uint8_t key[16];
    unsigned waits;
};

static atomic_uint_least64_t cluster_waits_refused;

uint64_t telex_cluster_lookup_waits_refused(void)
{
    return atomic_load(&cluster_waits_refused);
}

/* IPv4 (also mapped into IPv6) by address, IPv6 by /64; 0 when h2o cannot say. */
static int client_key(h2o_req_t *req, uint8_t key[16])
{
    struct sockaddr_storage ss;
    memset(key, 0, 16);
    memset(&ss, 0, sizeof ss);
    if (req->conn == NULL || req->conn->callbacks->get_peername == NULL ||
        req->conn->callbacks->get_peername(req->conn, (struct sockaddr *)&ss) == 0)
        return 0;
    if (ss.ss_family == AF_INET) {
        key[10] = key[11] = 0xff;
        memcpy(key + 12, &((const struct sockaddr_in *)&ss)->sin_addr, 4);
    } else if (ss.ss_family == AF_INET6) {
        const uint8_t *b = ((const struct sockaddr_in6 *)&ss)->sin6_addr.s6_addr;
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        memcpy(key, b, memcmp(b, mapped, 12) == 0 ? 16 : 8);
    } else {
        return 0;
    }
    return 1;
}

static size_t bucket(const uint8_t key[16])
{
    uint64_t h = 1469598103934665603ull;
    for (int i = 0; i < 16; i++)
        h = (h ^ key[i]) * 1099511628211ull;
    return (size_t)(h % WAIT_BUCKETS);
}

cluster_wait_client_t *cluster_wait_take(telex_cluster_worker_t *cw, h2o_req_t *req)
{
    uint8_t key[16];
    client_key(req, key); /* unknown peer: all such requests share the zero key */
    if (cw->wait_clients == NULL)
        cw->wait_clients = telex_xcalloc(WAIT_BUCKETS, sizeof *cw->wait_clients);
    cluster_wait_client_t **b = &cw->wait_clients[bucket(key)], *cl;
    for (cl = *b; cl != NULL; cl = cl->next)
        if (memcmp(cl->key, key, 16) == 0)
            break;
    if (cl == NULL) {
        cl = telex_xcalloc(1, sizeof *cl);
        memcpy(cl->key, key, 16);
        cl->next = *b;
        *b = cl;
    }
    if (cl->waits >= CLUSTER_WAITS_PER_CLIENT) {
        atomic_fetch_add(&cluster_waits_refused, 1);
        return NULL;
    }
    cl->waits++;
    return cl;
}

void cluster_wait_give(telex_cluster_worker_t *cw, cluster_wait_client_t *cl)
{
    if (cl == NULL || --cl->waits > 0)
        return;
    cluster_wait_client_t **p = &cw->wait_clients[bucket(cl->key)];
    while (*p != cl)
        p = &(*p)->next;
    *p = cl->next;
    free(cl);
}
