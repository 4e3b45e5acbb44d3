/*
 * config/config_listen.c — "HOST:PORT" → struct sockaddr_storage, shared by
 * the `listen` key, TELEX_LISTEN and the --listen flags of serve and mock.
 *
 * Literal addresses are parsed without any lookup; a host name goes through
 * getaddrinfo and its first address is used. IPv6 needs brackets so that the
 * port is unambiguous.
 */
#include "config/config_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool all_digits(const char *s, size_t n)
{
    if (n == 0)
        return false;
    for (size_t i = 0; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return false;
    return true;
}

int telex_config_parse_listen(const char *hostport, struct sockaddr_storage *addr,
                              socklen_t *addrlen, char *err, size_t errlen)
{
    const char *hp = hostport ? hostport : "";
    size_t len = strlen(hp);
    char host[256];
    const char *port;
    bool bracketed = false;

    if (len == 0) {
        telex_config_errf(err, errlen, "empty listen address (expected HOST:PORT, e.g. %s)",
                          TELEX_CONFIG_DEFAULT_LISTEN);
        return -EINVAL;
    }
    for (size_t i = 0; i < len; i++) {
        if ((unsigned char)hp[i] <= 0x20 || hp[i] == 0x7f) {
            telex_config_errf(err, errlen,
                              "invalid listen address: contains spaces or control characters");
            return -EINVAL;
        }
    }
    if (all_digits(hp, len)) { /* bare port */
        snprintf(host, sizeof host, "127.0.0.1");
        port = hp;
    } else if (hp[0] == '[') {
        const char *rb = strchr(hp, ']');
        if (!rb || rb[1] != ':') {
            telex_config_errf(err, errlen,
                              "invalid listen address \"%.100s\": expected [IPV6]:PORT", hp);
            return -EINVAL;
        }
        size_t hl = (size_t)(rb - hp - 1);
        if (hl == 0 || hl >= sizeof host) {
            telex_config_errf(err, errlen, "invalid listen address \"%.100s\": bad IPv6 address",
                              hp);
            return -EINVAL;
        }
        memcpy(host, hp + 1, hl);
        host[hl] = '\0';
        port = rb + 2;
        bracketed = true;
    } else {
        const char *colon = strrchr(hp, ':');
        if (!colon) {
            telex_config_errf(err, errlen,
                              "invalid listen address \"%.100s\": expected HOST:PORT, e.g. %s",
                              hp, TELEX_CONFIG_DEFAULT_LISTEN);
            return -EINVAL;
        }
        if (memchr(hp, ':', (size_t)(colon - hp))) {
            telex_config_errf(err, errlen,
                              "invalid listen address \"%.100s\": put an IPv6 address in "
                              "brackets, e.g. [::1]:8080", hp);
            return -EINVAL;
        }
        size_t hl = (size_t)(colon - hp);
        if (hl >= sizeof host) {
            telex_config_errf(err, errlen, "invalid listen address \"%.100s\": host too long", hp);
            return -EINVAL;
        }
        memcpy(host, hp, hl);
        host[hl] = '\0';
        if (hl == 0 || strcmp(host, "*") == 0)
            snprintf(host, sizeof host, "0.0.0.0");
        port = colon + 1;
    }

    size_t pl = strlen(port);
    if (!all_digits(port, pl) || pl > 5 || atol(port) > 65535) {
        telex_config_errf(err, errlen,
                          "invalid listen address \"%.100s\": port must be a number from 0 to "
                          "65535", hp);
        return -EINVAL;
    }
    unsigned short portnum = (unsigned short)atol(port);

    memset(addr, 0, sizeof *addr);
    struct sockaddr_in *sin = (struct sockaddr_in *)addr;
    if (!bracketed && inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons(portnum);
        *addrlen = sizeof *sin;
        return 0;
    }

    struct addrinfo hints = {.ai_family = bracketed ? AF_INET6 : AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = bracketed ? AI_NUMERICHOST : 0};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, NULL, &hints, &res);
    if (rc != 0 || !res) {
        if (rc == EAI_MEMORY) {
            telex_config_errf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        telex_config_errf(err, errlen, "invalid listen address \"%.100s\": %s%s", hp,
                          bracketed ? "bad IPv6 address: " : "cannot resolve host: ",
                          rc ? gai_strerror(rc) : "no address");
        return -EINVAL;
    }
    if (res->ai_addrlen > sizeof *addr ||
        (res->ai_family != AF_INET && res->ai_family != AF_INET6)) {
        freeaddrinfo(res);
        telex_config_errf(err, errlen, "invalid listen address \"%.100s\": not an IP address", hp);
        return -EINVAL;
    }
    memcpy(addr, res->ai_addr, res->ai_addrlen);
    *addrlen = (socklen_t)res->ai_addrlen;
    if (res->ai_family == AF_INET)
        ((struct sockaddr_in *)addr)->sin_port = htons(portnum);
    else
        ((struct sockaddr_in6 *)addr)->sin6_port = htons(portnum);
    freeaddrinfo(res);
    return 0;
}

int telex_config_addr_is_loopback(const struct sockaddr_storage *addr)
{
    if (addr->ss_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)addr;
        return (ntohl(sin->sin_addr.s_addr) >> 24) == 127;
    }
    if (addr->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)addr)->sin6_addr;
        if (IN6_IS_ADDR_LOOPBACK(a))
            return 1;
        return IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127;
    }
    return 0;
}
