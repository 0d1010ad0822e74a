/*
 * loop.h - the one epoll event loop of `sandbase serve` (in core so that http/ and
 * runtime/ can both watch fds on it; it knows nothing of HTTP).
 *
 * Everything that touches HTTP connections runs on the loop thread: fd
 * watchers (MHD's epoll fd, shim sockets, pipes), timers, and callbacks posted
 * from other threads. Blocking work never runs here: it goes to a worker
 * thread (see worker.h) which posts its result back with sb_loop_post().
 * Ownership: the caller owns the loop and frees it with sb_loop_free() after
 * sb_loop_run() returns.
 */
#ifndef SB_CORE_LOOP_H
#define SB_CORE_LOOP_H

#include <stdint.h>

struct sb_loop;

/* events is a mask of EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP as returned by epoll. */
typedef void (*sb_fd_cb)(struct sb_loop *loop, int fd, uint32_t events, void *arg);
typedef void (*sb_cb)(struct sb_loop *loop, void *arg);

struct sb_loop *sb_loop_new(void);
void sb_loop_free(struct sb_loop *loop);

/* Everything below except sb_loop_post and sb_loop_stop is for the loop
 * thread only (or before sb_loop_run starts). */

/* Watch fd for the given EPOLL* events (level-triggered unless EPOLLET is
 * given); cb runs on the loop thread. One watcher per fd (EEXIST). After
 * sb_loop_unwatch no further callback runs for fd, even one already fetched
 * in the same round; the caller still owns and closes fd. */
int sb_loop_watch(struct sb_loop *loop, int fd, uint32_t events, sb_fd_cb cb, void *arg);
int sb_loop_modify(struct sb_loop *loop, int fd, uint32_t events);
void sb_loop_unwatch(struct sb_loop *loop, int fd);
/* Hands a watched fd to another owner: new events, callback and arg in one
 * epoll_ctl (instead of unwatch + watch). Call it outside that fd's own
 * dispatch round or from its own callback (an event already fetched for
 * fd in the round would otherwise reach the new owner). ENOENT if fd is
 * not watched. */
int sb_loop_rebind(struct sb_loop *loop, int fd, uint32_t events, sb_fd_cb cb, void *arg);

/* One-shot timer after ms milliseconds. Returns an id > 0 for sb_loop_cancel
 * (0 when out of memory). Cancelling a fired timer is a no-op. */
uint64_t sb_loop_timer(struct sb_loop *loop, uint64_t ms, sb_cb cb, void *arg);
void sb_loop_cancel(struct sb_loop *loop, uint64_t timer_id);

/* Thread-safe: queue cb(arg) to run on the loop thread soon, in FIFO order.
 * Callbacks still queued when the loop is freed run inside sb_loop_free. */
int sb_loop_post(struct sb_loop *loop, sb_cb cb, void *arg);

/* Runs until sb_loop_stop(). A hook called once per iteration with the time
 * until the next timer may shorten the wait (MHD's own timeout). */
typedef int64_t (*sb_loop_tick_cb)(struct sb_loop *loop, void *arg); /* returns max wait ms or -1 */
void sb_loop_set_tick(struct sb_loop *loop, sb_loop_tick_cb cb, void *arg);
int sb_loop_run(struct sb_loop *loop);     /* 0 after stop, -1 if epoll fails */
void sb_loop_stop(struct sb_loop *loop);   /* thread- and async-signal-safe */

uint64_t sb_now_ms(void);   /* CLOCK_MONOTONIC in ms */

#endif
