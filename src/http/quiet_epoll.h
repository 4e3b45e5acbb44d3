/*
 * http/quiet_epoll.h — drops libuv's epoll_ctl calls that change nothing.
 *
 * libuv (1.44, Linux) queues a socket's watcher for an epoll_ctl(MOD) at the
 * next poll whenever it stops watching for writability, even when it was not
 * watching for it: after every completed uv_write on a socket that is being
 * read. h2o reads HTTP/2 connections all the time, so each write to an HTTP/2
 * client (about one per event at a model's pace) and each request written to
 * a provider costs a system call that re-registers the same events
 * (bench/findings.md, "Syscalls per event at a model's pace").
 *
 * Contract: telex_quiet_epoll_start(loop, h) starts a prepare handle (not
 * referenced: it keeps no loop alive) that, just before each poll, takes off
 * libuv's queue every watcher whose registered events already equal the
 * wanted ones. libuv keeps `events` equal to what the kernel holds for a
 * watched descriptor (it skips the call itself when a start changes nothing),
 * so what is taken off is exactly the calls that would re-register the same
 * mask; watchers that are new (events 0) or whose mask changed still get
 * theirs. Only on Linux, where libuv polls with epoll; elsewhere it does
 * nothing. Call on the loop's thread. telex_quiet_epoll_skip does one pass
 * and returns how many calls it saved (for tests).
 */
#ifndef TELEX_HTTP_QUIET_EPOLL_H
#define TELEX_HTTP_QUIET_EPOLL_H

#include <stddef.h>

#include <uv.h>

void telex_quiet_epoll_start(uv_loop_t *loop, uv_prepare_t *handle);
size_t telex_quiet_epoll_skip(uv_loop_t *loop);

#endif
