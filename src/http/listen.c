/*
 * http/listen.c — the workers' listening sockets, exclusive to this process.
 * The idea and the two checks (a probe without SO_REUSEPORT before, the
 * kernel's listener table after) are explained in listen.h.
 */
#include "http/listen.h"

#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LISTEN_BACKLOG 4096

static const char in_use_hint[] =
    "address already in use by another process (another telex, or any other server); "
    "stop it, or choose another address with --listen";

static uint16_t port_of(const struct sockaddr_storage *a)
{
    return a->ss_family == AF_INET ? ntohs(((const struct sockaddr_in *)a)->sin_port)
                                   : ntohs(((const struct sockaddr_in6 *)a)->sin6_port);
}

/* A TCP socket for addr's family with SO_REUSEADDR (so TIME_WAIT left by an
 * earlier run never blocks), SO_REUSEPORT when asked, IPv6 only on IPv6. */
static int make_socket(const struct sockaddr_storage *addr, int reuseport)
{
    int fd = socket(addr->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    int on = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &on, sizeof(on));
    if (addr->ss_family == AF_INET6)
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
    return fd;
}

static int bind_and_listen(int fd, const struct sockaddr_storage *addr, socklen_t len)
{
    return bind(fd, (const struct sockaddr *)addr, len) == 0 && listen(fd, LISTEN_BACKLOG) == 0 ? 0 : -errno;
}

/* The kernel refuses to let a socket without SO_REUSEPORT listen where any
 * other socket listens, whatever options that one has, so the probe sees
 * every holder, whoever owns it. */
int telex_listen_probe(const struct sockaddr_storage *addr, socklen_t addrlen)
{
    int fd = make_socket(addr, 0);
    if (fd < 0)
        return -errno;
    int rc = bind_and_listen(fd, addr, addrlen);
    close(fd);
    return rc;
}

int telex_listen_join(struct sockaddr_storage *addr, socklen_t addrlen, int n, int *fds)
{
    int rc = 0, opened = 0;
    for (; opened < n; opened++) {
        int fd = make_socket(addr, 1);
        if (fd < 0) {
            rc = -errno;
            goto fail;
        }
        fds[opened] = fd;
        if ((rc = bind_and_listen(fd, addr, addrlen)) < 0) {
            opened++;
            goto fail;
        }
        /* With port 0 the first socket got a port; the others join it. */
        struct sockaddr_storage bound;
        socklen_t boundlen = sizeof(bound);
        if (opened == 0 && getsockname(fd, (struct sockaddr *)&bound, &boundlen) == 0)
            *addr = bound;
    }
    if (telex_listen_has_foreign(addr, fds, n)) {
        rc = -EADDRINUSE;
        goto fail;
    }
    return 0;
fail:
    for (int i = 0; i < opened; i++)
        close(fds[i]);
    return rc;
}

int telex_listen_open(struct sockaddr_storage *addr, socklen_t addrlen, int n, int *fds,
                      char *err, size_t errlen)
{
    int rc = port_of(addr) != 0 ? telex_listen_probe(addr, addrlen) : 0;
    if (rc == 0)
        rc = telex_listen_join(addr, addrlen, n, fds);
    if (rc == -EADDRINUSE)
        snprintf(err, errlen, "%s", in_use_hint);
    else if (rc < 0)
        snprintf(err, errlen, "%s", strerror(-rc));
    return rc;
}

/* ---------------------------------------------- the kernel's listener table */

/* "0100007F" (IPv4) or 32 hex digits (IPv6), as /proc/net/tcp{,6} prints an
 * address: each 32-bit word in the machine's byte order. */
static int parse_proc_addr(const char *hex, int family, unsigned char out[16])
{
    size_t words = family == AF_INET ? 1 : 4;
    if (strlen(hex) != words * 8)
        return -1;
    for (size_t i = 0; i < words; i++) {
        char part[9];
        memcpy(part, hex + 8 * i, 8);
        part[8] = '\0';
        uint32_t w = (uint32_t)strtoul(part, NULL, 16);
        memcpy(out + 4 * i, &w, 4);
    }
    return 0;
}

/* The address bytes of a (4 or 16) and whether it is the wildcard. */
static size_t addr_bytes(const struct sockaddr_storage *a, const unsigned char **bytes)
{
    if (a->ss_family == AF_INET) {
        *bytes = (const unsigned char *)&((const struct sockaddr_in *)a)->sin_addr;
        return 4;
    }
    *bytes = ((const struct sockaddr_in6 *)a)->sin6_addr.s6_addr;
    return 16;
}

static int all_zero(const unsigned char *b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (b[i])
            return 0;
    return 1;
}

static int is_ours(unsigned long inode, const int *fds, int n)
{
    for (int i = 0; i < n; i++) {
        struct stat st;
        if (fstat(fds[i], &st) == 0 && (unsigned long)st.st_ino == inode)
            return 1;
    }
    return 0;
}

int telex_listen_has_foreign(const struct sockaddr_storage *addr, const int *fds, int n)
{
    const unsigned char *ours;
    size_t len = addr_bytes(addr, &ours);
    unsigned port = port_of(addr);
    FILE *f = fopen(addr->ss_family == AF_INET ? "/proc/net/tcp" : "/proc/net/tcp6", "re");
    if (f == NULL)
        return 0;
    char line[512];
    int found = 0;
    if (fgets(line, sizeof(line), f) == NULL) /* the header */
        goto done;
    while (!found && fgets(line, sizeof(line), f) != NULL) {
        char hex[33];
        unsigned lport, state;
        unsigned long inode;
        unsigned char theirs[16];
        if (sscanf(line, " %*u: %32[0-9A-Fa-f]:%x %*[0-9A-Fa-f]:%*x %x %*x:%*x %*x:%*x %*x %*u %*u %lu",
                   hex, &lport, &state, &inode) != 4)
            continue;
        if (state != 0x0A /* TCP_LISTEN */ || lport != port || parse_proc_addr(hex, addr->ss_family, theirs) != 0)
            continue;
        if (memcmp(theirs, ours, len) != 0 && !all_zero(theirs, len) && !all_zero(ours, len))
            continue;
        found = !is_ours(inode, fds, n);
    }
done:
    fclose(f);
    return found;
}
