/*
 * pool.c - warm sandbox pools per template (see pool.h).
 *
 * State: a list of templates, each with an array of ready sandbox ids and a
 * count of refills in flight, all under one mutex. Refills run on the worker
 * pool; each builds one sandbox with pool_spawn and appends it. A refill that
 * fails (e.g. the template was removed) logs and stops that template's refill
 * until the next take, so a broken template cannot spin the workers.
 */
#include "runtime/pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/id.h"
#include "core/log.h"
#include "runtime/shim_client.h"
#include "runtime/template.h"

#define POOL_MAX_TEMPLATES 64
#define POOL_MAX_READY 64
#define POOL_REFILL_DELAY_US 20000

struct template_pool {
    char name[SB_TEMPLATE_NAME_MAX];
    char ready[POOL_MAX_READY][32];
    int ready_count;
    struct sb_limits limits;        /* what the ready sandboxes were built with */
    int in_flight;
};

struct sb_pool {
    const struct sb_config *cfg;
    struct sb_worker_pool *workers;
    pthread_mutex_t lock;
    pthread_cond_t idle;            /* signalled when a refill finishes */
    int stopping;
    int template_count;
    struct template_pool templates[POOL_MAX_TEMPLATES];
};

struct refill_job {
    struct sb_pool *pool;
    char name[SB_TEMPLATE_NAME_MAX];
};

struct sb_pool *pool_new(const struct sb_config *cfg, struct sb_worker_pool *workers)
{
    struct sb_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->cfg = cfg;
    pool->workers = workers;
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->idle, NULL);
    return pool;
}

int pool_spawn(const struct sb_config *cfg, const char *template_name, const char *id,
               struct sb_limits *limits, struct sb_err *err)
{
    struct sb_template tpl;
    if (template_load(cfg->data_dir, template_name, &tpl, err) < 0)
        return -1;
    struct sb_sandbox_spec spec = {.tpl = &tpl};
    snprintf(spec.id, sizeof spec.id, "%s", id);
    template_effective_limits(&tpl, cfg, &spec.limits);
    if (limits)
        *limits = spec.limits;
    int rc = shim_spawn(cfg, &spec, err);
    template_clear(&tpl);
    return rc;
}

/* Finds (or adds) the entry for name; caller holds the lock. */
static struct template_pool *find_template(struct sb_pool *pool, const char *name)
{
    for (int i = 0; i < pool->template_count; i++)
        if (strcmp(pool->templates[i].name, name) == 0)
            return &pool->templates[i];
    if (pool->template_count == POOL_MAX_TEMPLATES)
        return NULL;
    struct template_pool *tp = &pool->templates[pool->template_count++];
    memset(tp, 0, sizeof *tp);
    snprintf(tp->name, sizeof tp->name, "%s", name);
    return tp;
}

static void refill_one(void *arg);

/* Schedules enough refills to reach pool_size; caller holds the lock. */
static void schedule_refills(struct sb_pool *pool, struct template_pool *tp)
{
    int want = pool->cfg->pool_size;
    if (want > POOL_MAX_READY)
        want = POOL_MAX_READY;
    while (!pool->stopping && tp->ready_count + tp->in_flight < want) {
        struct refill_job *job = calloc(1, sizeof *job);
        if (!job)
            return;
        job->pool = pool;
        snprintf(job->name, sizeof job->name, "%s", tp->name);
        tp->in_flight++;
        if (sb_worker_submit(pool->workers, refill_one, job) < 0) {
            tp->in_flight--;
            free(job);
            return;
        }
    }
}

static void refill_one(void *arg)
{
    struct refill_job *job = arg;
    struct sb_pool *pool = job->pool;
    char id[32] = "";
    struct sb_limits limits;
    struct sb_err err = {0};
    int rc = -1;
    pthread_mutex_lock(&pool->lock);
    int stopping = pool->stopping;
    pthread_mutex_unlock(&pool->lock);
    if (!stopping) {
        /* Let the create that claimed the slot answer first: on a small
         * machine a refill started at once competes with it for the CPU. */
        usleep(POOL_REFILL_DELAY_US);
        sb_id_new("sbx_", id, sizeof id);
        rc = pool_spawn(pool->cfg, job->name, id, &limits, &err);
        if (rc < 0)
            sb_warn("pool: could not pre-build a sandbox of template %s: %s", job->name, err.msg);
    }
    pthread_mutex_lock(&pool->lock);
    struct template_pool *tp = find_template(pool, job->name);
    if (tp) {
        tp->in_flight--;
        if (rc == 0 && tp->ready_count < POOL_MAX_READY) {
            memcpy(tp->ready[tp->ready_count++], id, 32);
            tp->limits = limits;
        }
        else if (rc == 0)
            rc = -2;  /* no room: destroy below */
    }
    pthread_cond_broadcast(&pool->idle);
    pthread_mutex_unlock(&pool->lock);
    if (rc == -2 || (rc == 0 && !tp)) {
        struct sb_err derr = {0};
        shim_destroy(pool->cfg, id, &derr);
    }
    free(job);
}

int pool_take(struct sb_pool *pool, const char *template_name, char id_out[32],
              struct sb_limits *limits)
{
    int rc = -1;
    pthread_mutex_lock(&pool->lock);
    struct template_pool *tp = find_template(pool, template_name);
    if (tp) {
        if (tp->ready_count > 0) {
            memcpy(id_out, tp->ready[0], 32);
            *limits = tp->limits;
            memmove(tp->ready[0], tp->ready[1], (size_t)(tp->ready_count - 1) * 32);
            tp->ready_count--;
            rc = 0;
        }
        schedule_refills(pool, tp);
    }
    pthread_mutex_unlock(&pool->lock);
    return rc;
}

void pool_give_back(struct sb_pool *pool, const char *template_name, const char *id)
{
    int kept = 0;
    pthread_mutex_lock(&pool->lock);
    struct template_pool *tp = find_template(pool, template_name);
    if (tp && !pool->stopping && tp->ready_count < POOL_MAX_READY) {
        snprintf(tp->ready[tp->ready_count++], 32, "%s", id);
        kept = 1;
    }
    pthread_mutex_unlock(&pool->lock);
    if (!kept) {
        struct sb_err err = {0};
        shim_destroy(pool->cfg, id, &err);
    }
}

void pool_fill_all(struct sb_pool *pool)
{
    struct sb_template *list = NULL;
    size_t count = 0;
    struct sb_err err = {0};
    if (template_list(pool->cfg->data_dir, &list, &count, &err) < 0) {
        sb_warn("pool: cannot list templates: %s", err.msg);
        return;
    }
    pthread_mutex_lock(&pool->lock);
    for (size_t i = 0; i < count; i++) {
        struct template_pool *tp = find_template(pool, list[i].name);
        if (tp)
            schedule_refills(pool, tp);
    }
    pthread_mutex_unlock(&pool->lock);
    template_list_free(list, count);
}

int pool_owns(struct sb_pool *pool, const char *id)
{
    int found = 0;
    pthread_mutex_lock(&pool->lock);
    for (int i = 0; i < pool->template_count && !found; i++)
        for (int j = 0; j < pool->templates[i].ready_count; j++)
            if (strcmp(pool->templates[i].ready[j], id) == 0)
                found = 1;
    pthread_mutex_unlock(&pool->lock);
    return found;
}

void pool_free(struct sb_pool *pool, int destroy)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->lock);
    pool->stopping = 1;
    for (;;) {
        int busy = 0;
        for (int i = 0; i < pool->template_count; i++)
            busy += pool->templates[i].in_flight;
        if (!busy)
            break;
        pthread_cond_wait(&pool->idle, &pool->lock);
    }
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; destroy && i < pool->template_count; i++)
        for (int j = 0; j < pool->templates[i].ready_count; j++) {
            struct sb_err err = {0};
            shim_destroy(pool->cfg, pool->templates[i].ready[j], &err);
        }
    pthread_cond_destroy(&pool->idle);
    pthread_mutex_destroy(&pool->lock);
    free(pool);
}
