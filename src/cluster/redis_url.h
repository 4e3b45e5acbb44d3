/*
 * cluster/redis_url.h — the Redis address of cluster mode.
 *
 * Contract: telex_redis_url_parse reads redis://[user:pass@]host:port[/db]
 * (also redis://host, port 6379; redis://:pass@host) into a struct of
 * fixed-size fields; pure, no I/O. rediss:// (TLS) is refused with a reason
 * that says why: Debian 12's hiredis 0.14.1 is built without TLS. Every
 * refusal writes one line to err and never quotes the password.
 */
#ifndef TELEX_CLUSTER_REDIS_URL_H
#define TELEX_CLUSTER_REDIS_URL_H

#include <stddef.h>

typedef struct telex_redis_url {
    char host[256];
    int port;
    char user[128];     /* "" = the default user */
    char password[256]; /* "" = no AUTH */
    int db;             /* SELECT db (0 = none) */
} telex_redis_url_t;

/* Returns 0, or -1 with a message in err. */
int telex_redis_url_parse(const char *url, telex_redis_url_t *out, char *err, size_t errlen);

#endif
