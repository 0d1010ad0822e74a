/*
 * loop.h - the one epoll event loop that owns the network in `sandbase serve`.
 *
 * Everything that touches HTTP connections runs on the loop thread: fd
 * watchers (MHD's epoll fd, shim sockets, pipes), timers, and callbacks posted
 * from other threads. Blocking work never runs here: it goes to a worker
 * thread (see worker.h) which posts its result back with sb_loop_post().
 * Ownership: the caller owns the loop and frees it with sb_loop_free() after
 * sb_loop_run() returns.
 */
#ifndef SB_HTTP_LOOP_H
#define SB_HTTP_LOOP_H

#include <stdint.h>

struct sb_loop;

/* events is a mask of EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP as returned by epoll. */
typedef void (*sb_fd_cb)(struct sb_loop *loop, int fd, uint32_t events, void *arg);
typedef void (*sb_cb)(struct sb_loop *loop, void *arg);

struct sb_loop *sb_loop_new(void);
void sb_loop_free(struct sb_loop *loop);

/* Watch fd for the given EPOLL* events; cb runs on the loop thread. */
int sb_loop_watch(struct sb_loop *loop, int fd, uint32_t events, sb_fd_cb cb, void *arg);
int sb_loop_modify(struct sb_loop *loop, int fd, uint32_t events);
void sb_loop_unwatch(struct sb_loop *loop, int fd);

/* One-shot timer after ms milliseconds. Returns an id > 0 for sb_loop_cancel. */
uint64_t sb_loop_timer(struct sb_loop *loop, uint64_t ms, sb_cb cb, void *arg);
void sb_loop_cancel(struct sb_loop *loop, uint64_t timer_id);

/* Thread-safe: queue cb(arg) to run on the loop thread soon. */
int sb_loop_post(struct sb_loop *loop, sb_cb cb, void *arg);

/* Runs until sb_loop_stop(). A hook called once per iteration with the time
 * until the next timer may shorten the wait (MHD's own timeout). */
typedef int64_t (*sb_loop_tick_cb)(struct sb_loop *loop, void *arg); /* returns max wait ms or -1 */
void sb_loop_set_tick(struct sb_loop *loop, sb_loop_tick_cb cb, void *arg);
int sb_loop_run(struct sb_loop *loop);
void sb_loop_stop(struct sb_loop *loop);   /* thread- and signal-safe */

uint64_t sb_now_ms(void);   /* CLOCK_MONOTONIC in ms */

#endif
