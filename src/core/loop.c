/*
 * loop.c - the epoll event loop (see loop.h).
 *
 * One epoll set holds every watched fd plus an eventfd ("wake fd") that other
 * threads write to after posting a callback or asking the loop to stop.
 * Timers live in a binary min-heap ordered by deadline; the epoll wait is cut
 * short to the nearest deadline (and to what the tick hook asks for).
 * Each iteration: tick hook -> epoll_wait -> fd callbacks -> due timers ->
 * posted callbacks (only when the wake fd fired).
 *
 * Owns: the epoll fd, the wake fd, the watcher records, timer heap and post
 * queue. Watchers removed during a dispatch round are freed only after the
 * round, so an event already fetched for a removed fd is skipped, never sent
 * to a freed record or to a new watcher that reused the fd number.
 * Must never: block in a callback of its own, or call user callbacks for
 * anything but their own events.
 */
#include "core/loop.h"

#include "core/id.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#define LOOP_MAX_EVENTS 128

struct loop_watch {
    int fd;
    uint32_t events;
    int dead;                   /* unwatched during the current round */
    sb_fd_cb cb;
    void *arg;
    struct loop_watch *next_dead;
};

struct loop_timer {
    uint64_t deadline_ms;
    uint64_t id;
    sb_cb cb;
    void *arg;
};

struct loop_post {
    sb_cb cb;
    void *arg;
    struct loop_post *next;
};

struct sb_loop {
    int epoll_fd;
    int wake_fd;
    atomic_int stop_requested;

    struct loop_watch **watches;    /* indexed by fd; NULL when not watched */
    size_t watch_cap;
    struct loop_watch *graveyard;   /* freed after the dispatch round */

    struct loop_timer *timers;      /* min-heap on (deadline_ms, id) */
    size_t timer_count, timer_cap;
    uint64_t next_timer_id;

    pthread_mutex_t post_lock;
    struct loop_post *post_head, *post_tail;

    sb_loop_tick_cb tick;
    void *tick_arg;
};

uint64_t sb_now_ms(void)
{
    return (uint64_t)sb_mono_ms();
}

/* Caller owns the result and frees it with sb_loop_free(). NULL on failure. */
struct sb_loop *sb_loop_new(void)
{
    struct sb_loop *loop = calloc(1, sizeof *loop);
    if (!loop)
        return NULL;
    loop->epoll_fd = epoll_create1(EPOLL_CLOEXEC);
    loop->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    pthread_mutex_init(&loop->post_lock, NULL);
    loop->next_timer_id = 1;
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = NULL};   /* NULL = wake fd */
    if (loop->epoll_fd < 0 || loop->wake_fd < 0 ||
        epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, loop->wake_fd, &ev) < 0) {
        sb_loop_free(loop);
        return NULL;
    }
    return loop;
}

static void run_posts(struct sb_loop *loop);

/* Runs callbacks still posted (so whatever they carry is released), then
 * frees everything. Threads must have stopped posting before this. */
void sb_loop_free(struct sb_loop *loop)
{
    if (!loop)
        return;
    for (;;) {
        pthread_mutex_lock(&loop->post_lock);
        int empty = loop->post_head == NULL;
        pthread_mutex_unlock(&loop->post_lock);
        if (empty)
            break;
        run_posts(loop);
    }
    for (size_t fd = 0; fd < loop->watch_cap; fd++)
        free(loop->watches[fd]);
    while (loop->graveyard) {
        struct loop_watch *w = loop->graveyard;
        loop->graveyard = w->next_dead;
        free(w);
    }
    free(loop->watches);
    free(loop->timers);
    pthread_mutex_destroy(&loop->post_lock);
    if (loop->epoll_fd >= 0)
        close(loop->epoll_fd);
    if (loop->wake_fd >= 0)
        close(loop->wake_fd);
    free(loop);
}

/* ---- fd watchers ---- */

static int watch_table_reserve(struct sb_loop *loop, int fd)
{
    if ((size_t)fd < loop->watch_cap)
        return 0;
    size_t cap = loop->watch_cap ? loop->watch_cap : 64;
    while (cap <= (size_t)fd)
        cap *= 2;
    struct loop_watch **grown = realloc(loop->watches, cap * sizeof *grown);
    if (!grown)
        return -1;
    memset(grown + loop->watch_cap, 0, (cap - loop->watch_cap) * sizeof *grown);
    loop->watches = grown;
    loop->watch_cap = cap;
    return 0;
}

int sb_loop_watch(struct sb_loop *loop, int fd, uint32_t events, sb_fd_cb cb, void *arg)
{
    if (fd < 0 || !cb) {
        errno = EINVAL;
        return -1;
    }
    if (watch_table_reserve(loop, fd) < 0)
        return -1;
    if (loop->watches[fd]) {
        errno = EEXIST;
        return -1;
    }
    struct loop_watch *w = calloc(1, sizeof *w);
    if (!w)
        return -1;
    *w = (struct loop_watch){.fd = fd, .events = events, .cb = cb, .arg = arg};
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0) {
        free(w);
        return -1;
    }
    loop->watches[fd] = w;
    return 0;
}

int sb_loop_modify(struct sb_loop *loop, int fd, uint32_t events)
{
    if (fd < 0 || (size_t)fd >= loop->watch_cap || !loop->watches[fd]) {
        errno = ENOENT;
        return -1;
    }
    struct loop_watch *w = loop->watches[fd];
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return -1;
    w->events = events;
    return 0;
}

int sb_loop_rebind(struct sb_loop *loop, int fd, uint32_t events, sb_fd_cb cb, void *arg)
{
    if (fd < 0 || (size_t)fd >= loop->watch_cap || !loop->watches[fd] || !cb) {
        errno = ENOENT;
        return -1;
    }
    struct loop_watch *w = loop->watches[fd];
    struct epoll_event ev = {.events = events, .data.ptr = w};
    if (w->events != events && epoll_ctl(loop->epoll_fd, EPOLL_CTL_MOD, fd, &ev) < 0)
        return -1;
    w->events = events;
    w->cb = cb;
    w->arg = arg;
    return 0;
}

/* The record is parked until the end of the dispatch round (see top). The
 * caller still owns fd and closes it after this call. */
void sb_loop_unwatch(struct sb_loop *loop, int fd)
{
    if (fd < 0 || (size_t)fd >= loop->watch_cap || !loop->watches[fd])
        return;
    struct loop_watch *w = loop->watches[fd];
    loop->watches[fd] = NULL;
    epoll_ctl(loop->epoll_fd, EPOLL_CTL_DEL, fd, NULL);
    w->dead = 1;
    w->next_dead = loop->graveyard;
    loop->graveyard = w;
}

/* ---- timers: a binary min-heap ---- */

static int timer_before(const struct loop_timer *a, const struct loop_timer *b)
{
    return a->deadline_ms < b->deadline_ms ||
           (a->deadline_ms == b->deadline_ms && a->id < b->id);
}

static void timer_swap(struct loop_timer *heap, size_t i, size_t j)
{
    struct loop_timer t = heap[i];
    heap[i] = heap[j];
    heap[j] = t;
}

static void timer_sift_up(struct loop_timer *heap, size_t i)
{
    while (i > 0 && timer_before(&heap[i], &heap[(i - 1) / 2])) {
        timer_swap(heap, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void timer_sift_down(struct loop_timer *heap, size_t count, size_t i)
{
    for (;;) {
        size_t smallest = i, l = 2 * i + 1, r = 2 * i + 2;
        if (l < count && timer_before(&heap[l], &heap[smallest]))
            smallest = l;
        if (r < count && timer_before(&heap[r], &heap[smallest]))
            smallest = r;
        if (smallest == i)
            return;
        timer_swap(heap, i, smallest);
        i = smallest;
    }
}

static void timer_remove_at(struct sb_loop *loop, size_t i)
{
    loop->timer_count--;
    if (i == loop->timer_count)
        return;
    loop->timers[i] = loop->timers[loop->timer_count];
    timer_sift_down(loop->timers, loop->timer_count, i);
    timer_sift_up(loop->timers, i);
}

/* Loop thread only. Returns 0 when out of memory. */
uint64_t sb_loop_timer(struct sb_loop *loop, uint64_t ms, sb_cb cb, void *arg)
{
    if (loop->timer_count == loop->timer_cap) {
        size_t cap = loop->timer_cap ? loop->timer_cap * 2 : 16;
        struct loop_timer *grown = realloc(loop->timers, cap * sizeof *grown);
        if (!grown)
            return 0;
        loop->timers = grown;
        loop->timer_cap = cap;
    }
    uint64_t id = loop->next_timer_id++;
    loop->timers[loop->timer_count] =
        (struct loop_timer){.deadline_ms = sb_now_ms() + ms, .id = id, .cb = cb, .arg = arg};
    timer_sift_up(loop->timers, loop->timer_count++);
    return id;
}

/* Loop thread only. Cancelling a timer that already fired is a no-op. */
void sb_loop_cancel(struct sb_loop *loop, uint64_t timer_id)
{
    for (size_t i = 0; i < loop->timer_count; i++) {
        if (loop->timers[i].id == timer_id) {
            timer_remove_at(loop, i);
            return;
        }
    }
}

/* Fires the timers due now. Timers added by these callbacks wait for the next
 * round, so a callback re-arming a 0 ms timer cannot starve the loop. */
static void run_timers(struct sb_loop *loop)
{
    uint64_t now = sb_now_ms(), first_new_id = loop->next_timer_id;
    while (loop->timer_count > 0 && loop->timers[0].deadline_ms <= now &&
           loop->timers[0].id < first_new_id) {
        struct loop_timer t = loop->timers[0];
        timer_remove_at(loop, 0);
        t.cb(loop, t.arg);
    }
}

/* ---- posting from other threads ---- */

int sb_loop_post(struct sb_loop *loop, sb_cb cb, void *arg)
{
    struct loop_post *p = malloc(sizeof *p);
    if (!p)
        return -1;
    *p = (struct loop_post){.cb = cb, .arg = arg};
    pthread_mutex_lock(&loop->post_lock);
    if (loop->post_tail)
        loop->post_tail->next = p;
    else
        loop->post_head = p;
    loop->post_tail = p;
    pthread_mutex_unlock(&loop->post_lock);
    uint64_t one = 1;
    ssize_t rc = write(loop->wake_fd, &one, sizeof one);
    (void)rc;   /* EAGAIN means the counter is already non-zero: the loop will wake */
    return 0;
}

/* Runs the callbacks queued so far, in order; ones they post run next time. */
static void run_posts(struct sb_loop *loop)
{
    pthread_mutex_lock(&loop->post_lock);
    struct loop_post *p = loop->post_head;
    loop->post_head = loop->post_tail = NULL;
    pthread_mutex_unlock(&loop->post_lock);
    while (p) {
        struct loop_post *next = p->next;
        p->cb(loop, p->arg);
        free(p);
        p = next;
    }
}

static void drain_wake_fd(struct sb_loop *loop)
{
    uint64_t count;
    ssize_t rc = read(loop->wake_fd, &count, sizeof count);
    (void)rc;
}

/* ---- running ---- */

void sb_loop_set_tick(struct sb_loop *loop, sb_loop_tick_cb cb, void *arg)
{
    loop->tick = cb;
    loop->tick_arg = arg;
}

/* Async-signal-safe: an atomic store and a write(2). */
void sb_loop_stop(struct sb_loop *loop)
{
    atomic_store(&loop->stop_requested, 1);
    uint64_t one = 1;
    ssize_t rc = write(loop->wake_fd, &one, sizeof one);
    (void)rc;
}

/* The epoll timeout: the nearest timer, shortened by the tick hook. */
static int next_wait_ms(struct sb_loop *loop)
{
    int64_t wait = -1;
    if (loop->timer_count > 0) {
        uint64_t now = sb_now_ms(), deadline = loop->timers[0].deadline_ms;
        wait = deadline > now ? (int64_t)(deadline - now) : 0;
    }
    if (loop->tick) {
        int64_t tick_wait = loop->tick(loop, loop->tick_arg);
        if (tick_wait >= 0 && (wait < 0 || tick_wait < wait))
            wait = tick_wait;
    }
    if (wait > 60 * 60 * 1000)
        wait = 60 * 60 * 1000;
    return (int)wait;
}

static void free_graveyard(struct sb_loop *loop)
{
    while (loop->graveyard) {
        struct loop_watch *w = loop->graveyard;
        loop->graveyard = w->next_dead;
        free(w);
    }
}

/* Returns 0 after sb_loop_stop(), -1 (errno set) if epoll_wait fails. The
 * stop request is consumed, so the loop may be run again. */
int sb_loop_run(struct sb_loop *loop)
{
    struct epoll_event events[LOOP_MAX_EVENTS];
    int rc = 0;
    while (!atomic_load(&loop->stop_requested)) {
        int wait = next_wait_ms(loop);
        if (atomic_load(&loop->stop_requested))
            break;
        int n = epoll_wait(loop->epoll_fd, events, LOOP_MAX_EVENTS, wait);
        if (n < 0 && errno != EINTR) {
            rc = -1;
            break;
        }
        int woken = 0;
        for (int i = 0; i < n; i++) {
            struct loop_watch *w = events[i].data.ptr;
            if (!w)
                woken = 1;
            else if (!w->dead)
                w->cb(loop, w->fd, events[i].events, w->arg);
        }
        free_graveyard(loop);
        run_timers(loop);
        if (woken) {
            drain_wake_fd(loop);
            run_posts(loop);
        }
    }
    atomic_store(&loop->stop_requested, 0);
    return rc;
}
