/*
 * worker.c - the thread pool (see worker.h).
 *
 * One mutex guards a singly linked FIFO of jobs and the stopping flag; one
 * condition variable wakes idle threads. Owns the threads and queued job
 * records (not the jobs' arguments). Never runs a job while holding the lock.
 */
#include "core/worker.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>

struct worker_job {
    sb_worker_fn fn;
    void *arg;
    struct worker_job *next;
};

struct sb_worker_pool {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct worker_job *head, *tail;
    int stopping;
    int thread_count;
    pthread_t *threads;
};

/* Takes the next job, waiting for one; NULL once stopping and drained. */
static struct worker_job *take_job(struct sb_worker_pool *pool)
{
    pthread_mutex_lock(&pool->lock);
    while (!pool->head && !pool->stopping)
        pthread_cond_wait(&pool->wake, &pool->lock);
    struct worker_job *job = pool->head;
    if (job) {
        pool->head = job->next;
        if (!pool->head)
            pool->tail = NULL;
    }
    pthread_mutex_unlock(&pool->lock);
    return job;
}

static void *worker_main(void *arg)
{
    struct sb_worker_pool *pool = arg;
    struct worker_job *job;
    while ((job = take_job(pool)) != NULL) {
        job->fn(job->arg);
        free(job);
    }
    return NULL;
}

/* Stops and joins the first `started` threads, then frees the pool. */
static void pool_teardown(struct sb_worker_pool *pool, int started)
{
    pthread_mutex_lock(&pool->lock);
    pool->stopping = 1;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < started; i++)
        pthread_join(pool->threads[i], NULL);
    pthread_cond_destroy(&pool->wake);
    pthread_mutex_destroy(&pool->lock);
    free(pool->threads);
    free(pool);
}

struct sb_worker_pool *sb_worker_pool_new(int n)
{
    if (n <= 0)
        n = SB_WORKER_DEFAULT_THREADS;
    struct sb_worker_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->threads = calloc((size_t)n, sizeof *pool->threads);
    if (!pool->threads) {
        free(pool);
        return NULL;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->wake, NULL);
    for (int i = 0; i < n; i++) {
        int rc = pthread_create(&pool->threads[i], NULL, worker_main, pool);
        if (rc != 0) {
            pool_teardown(pool, i);
            errno = rc;
            return NULL;
        }
    }
    pool->thread_count = n;
    return pool;
}

int sb_worker_submit(struct sb_worker_pool *pool, sb_worker_fn fn, void *arg)
{
    struct worker_job *job = malloc(sizeof *job);
    if (!job)
        return -1;
    *job = (struct worker_job){.fn = fn, .arg = arg};
    pthread_mutex_lock(&pool->lock);
    if (pool->stopping) {
        pthread_mutex_unlock(&pool->lock);
        free(job);
        errno = ESHUTDOWN;
        return -1;
    }
    if (pool->tail)
        pool->tail->next = job;
    else
        pool->head = job;
    pool->tail = job;
    pthread_cond_signal(&pool->wake);
    pthread_mutex_unlock(&pool->lock);
    return 0;
}

void sb_worker_pool_free(struct sb_worker_pool *pool)
{
    if (pool)
        pool_teardown(pool, pool->thread_count);
}
