/*
 * worker.h - a fixed pool of threads for blocking work.
 *
 * The loop thread never blocks: sandbox creation, shim calls, large file I/O
 * and the like are submitted here and their result is handed back with
 * sb_loop_post() or sb_request_complete_*(). Jobs run in FIFO order on one of
 * n threads; the queue is unbounded. The pool knows nothing of HTTP or loops.
 */
#ifndef SB_CORE_WORKER_H
#define SB_CORE_WORKER_H

#define SB_WORKER_DEFAULT_THREADS 32

struct sb_worker_pool;

typedef void (*sb_worker_fn)(void *arg);

/* Starts n threads (n <= 0 means SB_WORKER_DEFAULT_THREADS). Caller owns the
 * pool and frees it with sb_worker_pool_free(). NULL on failure (errno set). */
struct sb_worker_pool *sb_worker_pool_new(int n);

/* Queues fn(arg) to run on a worker thread. Thread-safe. Returns -1 (and
 * runs nothing) when out of memory or once the pool is being freed. */
int sb_worker_submit(struct sb_worker_pool *pool, sb_worker_fn fn, void *arg);

/* Runs every job already queued, then joins the threads and frees the pool.
 * Must not be called from a worker thread. */
void sb_worker_pool_free(struct sb_worker_pool *pool);

#endif
