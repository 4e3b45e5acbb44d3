/*
 * http/listen.h — the listening sockets of one telex process: shared among
 * its own worker threads, never with another process.
 *
 * Every worker has its own socket bound with SO_REUSEPORT to the same
 * address, so the kernel spreads connections over the workers. SO_REUSEPORT
 * alone would also let a second process of the same user (a second
 * `telex serve` on the same port) join the group, and the kernel would split
 * connections between the two without a word. telex_listen_open therefore
 * first proves the address free: it binds and listens on a probe socket
 * without SO_REUSEPORT (a bind the kernel refuses while anyone listens
 * there, reuseport or not), closes it, opens the workers' sockets, and then
 * checks that every listener on the port is one of its own (two processes
 * that start at the same instant could both pass the probe; this second
 * check catches that case, and both refuse). The probe sets SO_REUSEADDR, like
 * the real sockets, so connections of an earlier run in TIME_WAIT do not
 * block a restart.
 */
#ifndef TELEX_HTTP_LISTEN_H
#define TELEX_HTTP_LISTEN_H

#include <sys/socket.h>

/* Opens n listening sockets on *addr (non-blocking, close-on-exec,
 * SO_REUSEPORT among themselves) into fds[0..n). Port 0 lets the kernel
 * choose; *addr is updated with the bound address either way. Returns 0, or
 * -errno with a one-line reason in err and no socket left open:
 * -EADDRINUSE when another process listens there ("address already in use
 * by another process ..."). */
int telex_listen_open(struct sockaddr_storage *addr, socklen_t addrlen, int n, int *fds,
                      char *err, size_t errlen);

/* The two halves of telex_listen_open, for tests. probe: 0 when no socket
 * listens on *addr (its port is not 0), else -EADDRINUSE (or another
 * -errno). join: opens the n SO_REUSEPORT sockets without probing first,
 * then fails with -EADDRINUSE (closing them) if a foreign listener is on the
 * port (telex_listen_has_foreign). */
int telex_listen_probe(const struct sockaddr_storage *addr, socklen_t addrlen);
int telex_listen_join(struct sockaddr_storage *addr, socklen_t addrlen, int n, int *fds);

/* 1 when a socket other than fds[0..n) listens on the port of *addr at an
 * address that overlaps it (the same, or either is the wildcard), as the
 * kernel's table (/proc/net/tcp, tcp6) shows it; 0 when none does or the
 * table cannot be read. */
int telex_listen_has_foreign(const struct sockaddr_storage *addr, const int *fds, int n);

#endif
