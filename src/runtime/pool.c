/*
 * pool.c - warm sandbox pools per template (see pool.h).
 *
 * State: a list of templates, each with an array of ready sandbox ids and a
 * count of refills in flight, all under one mutex. Refills run on the worker
 * pool; each builds one sandbox with pool_spawn and appends it. A refill that
 * fails (e.g. the template was removed) logs and stops that template's refill
 * until the next take, so a broken template cannot spin the workers.
 *
 * A claim never hands out a sandbox that cannot work: each ready entry
 * remembers the template version it was built from (template identity), and
 * pool_take skips, and destroys on a worker, entries whose shim no longer
 * listens or whose template was rebuilt or removed since. A template that
 * no longer exists is not refilled.
 *
 * Every ready entry holds a pidfd of its shim (opened on the worker that
 * built it), handed to the claimer with the id, so watching a claimed
 * sandbox for a dead shim costs the HTTP loop no file reads. Every build,
 * cold or pooled, is first admitted by the disk budget (disk_budget.h); a
 * refill also leaves one disk of room, so refills never starve creates.
 *
 * Snapshots (private templates, SB_SNAPSHOT_PREFIX names) are never pooled:
 * there may be many, each used a few times, and a warm pool per snapshot
 * would keep idle sandboxes (and a deleted snapshot's tree) alive.
 */
#include "runtime/pool.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/id.h"
#include "core/log.h"
#include "runtime/disk_budget.h"
#include "runtime/sandbox_spec.h"
#include "runtime/shim_client.h"
#include "runtime/template.h"

#define POOL_MAX_TEMPLATES 64
#define POOL_MAX_READY 64
#define POOL_REFILL_DELAY_US 20000

struct ready_sandbox {
    char id[32];
    uint64_t identity;              /* the template version it was built from */
    struct sb_limits limits;        /* what it was built with */
    int pidfd;                      /* owned: its shim's pidfd (shim_pidfd_open) */
};

struct template_pool {
    char name[SB_TEMPLATE_NAME_MAX];
    struct ready_sandbox ready[POOL_MAX_READY];
    int ready_count;
    int in_flight;
};

struct sb_pool {
    const struct sb_config *cfg;
    struct sb_worker_pool *workers;
    struct sb_disk_budget *disk;    /* owned */
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

/* A pooled sandbox that must not be handed out, destroyed on a worker. */
struct discard_job {
    struct sb_pool *pool;
    char id[32];
};

struct sb_pool *pool_new(const struct sb_config *cfg, struct sb_worker_pool *workers)
{
    struct sb_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->cfg = cfg;
    pool->workers = workers;
    pool->disk = disk_budget_new(cfg);
    if (!pool->disk) {
        free(pool);
        return NULL;
    }
    pthread_mutex_init(&pool->lock, NULL);
    pthread_cond_init(&pool->idle, NULL);
    return pool;
}

/* pool_spawn; a refill (for_pool) leaves room for one more disk of its
 * size, so the create that emptied the pool is not refused for the disk
 * its own refill took. */
static int spawn_admitted(struct sb_pool *pool, const char *template_name, const char *id, int for_pool,
                          struct sb_limits *limits, uint64_t *identity, struct sb_err *err)
{
    struct sb_template tpl;
    if (template_load(pool->cfg->data_dir, template_name, &tpl, err) < 0)
        return -1;
    if (identity)
        *identity = tpl.identity;
    struct sb_limits effective;
    struct sb_spec spec;
    template_effective_limits(&tpl, pool->cfg, &effective);
    int rc = sandbox_spec_resolve(pool->cfg, &tpl, id, &effective, &spec, err);
    template_clear(&tpl);
    if (rc < 0)
        return -1;
    if (limits)
        *limits = effective;
    int keep_mb = for_pool ? effective.disk_mb : 0;
    rc = disk_budget_admit(pool->disk, effective.disk_mb, keep_mb, err);
    if (rc == 0) {
        rc = shim_spawn(pool->cfg, &spec, err);
        disk_budget_release(pool->disk, effective.disk_mb, id);
    }
    sb_spec_clear(&spec);
    return rc;
}

int pool_spawn(struct sb_pool *pool, const char *template_name, const char *id,
               struct sb_limits *limits, uint64_t *identity, struct sb_err *err)
{
    return spawn_admitted(pool, template_name, id, 0, limits, identity, err);
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
    uint64_t identity = 0;
    struct sb_err err = {0};
    int rc = -1, pidfd = -1;
    pthread_mutex_lock(&pool->lock);
    int stopping = pool->stopping;
    pthread_mutex_unlock(&pool->lock);
    if (!stopping) {
        /* Let the create that claimed the slot answer first: on a small
         * machine a refill started at once competes with it for the CPU. */
        usleep(POOL_REFILL_DELAY_US);
        sb_id_new("sbx_", id, sizeof id);
        rc = spawn_admitted(pool, job->name, id, 1, &limits, &identity, &err);
        if (rc == 0 && (rc = shim_pidfd_open(pool->cfg->run_dir, id, &pidfd, &err)) < 0)
            rc = -2;    /* built, but cannot be watched once claimed: destroy below */
        if (rc < 0)
            sb_warn("pool: could not pre-build a sandbox of template %s: %s", job->name, err.msg);
    }
    pthread_mutex_lock(&pool->lock);
    struct template_pool *tp = find_template(pool, job->name);
    if (tp) {
        tp->in_flight--;
        if (rc == 0 && tp->ready_count < POOL_MAX_READY) {
            struct ready_sandbox *r = &tp->ready[tp->ready_count++];
            memcpy(r->id, id, sizeof r->id);
            r->identity = identity;
            r->limits = limits;
            r->pidfd = pidfd;
            pidfd = -1;
        }
        else if (rc == 0)
            rc = -2;  /* no room: destroy below */
    }
    pthread_cond_broadcast(&pool->idle);
    pthread_mutex_unlock(&pool->lock);
    if (pidfd >= 0)
        close(pidfd);
    if (rc == -2 || (rc == 0 && !tp)) {
        struct sb_err derr = {0};
        shim_destroy(pool->cfg, id, &derr);
        disk_budget_changed(pool->disk);
    }
    free(job);
}

static void discard_one(void *arg)
{
    struct discard_job *job = arg;
    struct sb_err err = {0};
    int rc = shim_destroy(job->pool->cfg, job->id, &err);
    disk_budget_changed(job->pool->disk);
    if (rc < 0)
        sb_warn("pool: could not destroy stale sandbox %s: %s", job->id, err.msg);
    else if (template_gc(job->pool->cfg->data_dir, &err) < 0)   /* it may have held a retired tree */
        sb_warn("pool: cannot clean up retired templates: %s", err.msg);
    free(job);
}

static void discard(struct sb_pool *pool, const char id[32])
{
    struct discard_job *job = calloc(1, sizeof *job);
    if (!job)
        return;     /* its shim is reaped at the next start's reconcile */
    job->pool = pool;
    memcpy(job->id, id, sizeof job->id);
    if (sb_worker_submit(pool->workers, discard_one, job) < 0)
        free(job);
}

/* Caller holds the lock. Moves the first usable ready entry to *out and
 * every unusable one before it to stale[]; returns 0 or -1 (none). */
static int claim_ready(struct sb_pool *pool, struct template_pool *tp, uint64_t identity,
                       struct ready_sandbox *out, char (*stale)[32], int *stale_count)
{
    int found = -1;
    while (tp->ready_count > 0 && found < 0) {
        struct ready_sandbox r = tp->ready[0];
        memmove(&tp->ready[0], &tp->ready[1], (size_t)(tp->ready_count - 1) * sizeof tp->ready[0]);
        tp->ready_count--;
        if (r.identity == identity && shim_alive(pool->cfg->run_dir, r.id)) {
            *out = r;
            found = 0;
        } else {
            close(r.pidfd);
            memcpy(stale[(*stale_count)++], r.id, 32);
        }
    }
    return found;
}

int pool_take(struct sb_pool *pool, const char *template_name, char id_out[32],
              struct sb_limits *limits, int *pidfd)
{
    if (strncmp(template_name, SB_SNAPSHOT_PREFIX, strlen(SB_SNAPSHOT_PREFIX)) == 0)
        return -1;      /* never pooled (see the top) */
    uint64_t identity = 0;
    int exists = template_identity(pool->cfg->data_dir, template_name, &identity) == 0;
    char stale[POOL_MAX_READY][32];
    int stale_count = 0, rc = -1;
    pthread_mutex_lock(&pool->lock);
    struct template_pool *tp = find_template(pool, template_name);
    if (tp && exists) {
        struct ready_sandbox r;
        if (claim_ready(pool, tp, identity, &r, stale, &stale_count) == 0) {
            memcpy(id_out, r.id, 32);
            *limits = r.limits;
            *pidfd = r.pidfd;
            rc = 0;
        }
        schedule_refills(pool, tp);
    } else if (tp) {
        for (int i = 0; i < tp->ready_count; i++) {  /* the template is gone */
            close(tp->ready[i].pidfd);
            memcpy(stale[stale_count++], tp->ready[i].id, 32);
        }
        tp->ready_count = 0;
    }
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < stale_count; i++) {
        sb_info("pool: dropping pooled sandbox %s (its shim is gone or its template changed)", stale[i]);
        discard(pool, stale[i]);
    }
    return rc;
}

void pool_drop_stale(struct sb_pool *pool)
{
    char stale[POOL_MAX_TEMPLATES][32];
    int stale_count = 0;
    pthread_mutex_lock(&pool->lock);
    for (int i = 0; i < pool->template_count; i++) {
        struct template_pool *tp = &pool->templates[i];
        uint64_t identity = 0;
        int exists = template_identity(pool->cfg->data_dir, tp->name, &identity) == 0;
        int keep = 0, before = tp->ready_count;
        for (int j = 0; j < tp->ready_count; j++) {
            if (exists && tp->ready[j].identity == identity)
                tp->ready[keep++] = tp->ready[j];
            else if (stale_count < POOL_MAX_TEMPLATES) {
                close(tp->ready[j].pidfd);
                memcpy(stale[stale_count++], tp->ready[j].id, 32);
            } else
                tp->ready[keep++] = tp->ready[j];      /* next sweep */
        }
        tp->ready_count = keep;
        if (exists && keep < before)    /* a rebuilt template: fill with the new version */
            schedule_refills(pool, tp);
    }
    pthread_mutex_unlock(&pool->lock);
    for (int i = 0; i < stale_count; i++) {
        sb_info("pool: dropping pooled sandbox %s (its template was rebuilt or removed)", stale[i]);
        discard(pool, stale[i]);
    }
}

void pool_give_back(struct sb_pool *pool, const char *template_name, const char *id,
                    const struct sb_limits *limits, int pidfd)
{
    int kept = 0;
    uint64_t identity = 0;
    int exists = template_identity(pool->cfg->data_dir, template_name, &identity) == 0;
    pthread_mutex_lock(&pool->lock);
    struct template_pool *tp = find_template(pool, template_name);
    if (tp && exists && !pool->stopping && tp->ready_count < POOL_MAX_READY) {
        struct ready_sandbox *r = &tp->ready[tp->ready_count++];
        snprintf(r->id, sizeof r->id, "%s", id);
        r->identity = identity;     /* it was claimed a moment ago: still current */
        r->limits = *limits;
        r->pidfd = pidfd;
        kept = 1;
    }
    pthread_mutex_unlock(&pool->lock);
    if (!kept) {
        close(pidfd);
        struct sb_err err = {0};
        shim_destroy(pool->cfg, id, &err);
        disk_budget_changed(pool->disk);
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
        if (list[i].org_id[0] || strncmp(list[i].name, SB_SNAPSHOT_PREFIX, strlen(SB_SNAPSHOT_PREFIX)) == 0)
            continue;   /* snapshots are never pooled */
        struct template_pool *tp = find_template(pool, list[i].name);
        if (tp)
            schedule_refills(pool, tp);
    }
    pthread_mutex_unlock(&pool->lock);
    template_list_free(list, count);
}

struct sb_disk_budget *pool_disk_budget(struct sb_pool *pool)
{
    return pool->disk;
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
            shim_destroy(pool->cfg, pool->templates[i].ready[j].id, &err);
        }
    for (int i = 0; i < pool->template_count; i++)
        for (int j = 0; j < pool->templates[i].ready_count; j++)
            close(pool->templates[i].ready[j].pidfd);
    pthread_cond_destroy(&pool->idle);
    pthread_mutex_destroy(&pool->lock);
    disk_budget_free(pool->disk);
    free(pool);
}

void pool_disks_changed(struct sb_pool *pool)
{
    disk_budget_changed(pool->disk);
}
