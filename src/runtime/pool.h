/*
 * pool.h - warm pools: per template, a few sandboxes built ahead of demand so
 * that a create only has to claim one; claimed slots are refilled on worker
 * threads. Also the one place that builds a sandbox cold (pool_spawn), so
 * pooled and cold sandboxes are made the same way, and both are admitted by
 * the same disk budget.
 *
 * Thread-safe. Pooled sandboxes have no store row until claimed; after a
 * restart the registry treats their shims as unowned and destroys them.
 */
#ifndef SB_RUNTIME_POOL_H
#define SB_RUNTIME_POOL_H

#include <stdint.h>

#include "core/config.h"
#include "core/err.h"
#include "core/worker.h"

struct sb_pool;

struct sb_pool *pool_new(const struct sb_config *cfg, struct sb_worker_pool *workers);
/* Waits for in-flight refills; destroys the pooled sandboxes if destroy is set. */
void pool_free(struct sb_pool *pool, int destroy);

/* Builds sandbox `id` of template_name now (blocking); writes the limits it
 * got to *limits and the template version to *identity (each may be NULL).
 * 507 when the data dir cannot promise its disk (disk_budget.h). */
int pool_spawn(struct sb_pool *pool, const char *template_name, const char *id,
               struct sb_limits *limits, uint64_t *identity, struct sb_err *err);
/* Claims a ready sandbox: 0, its id, its limits and its shim's pidfd (the
 * caller owns it now), or -1 when none is ready. Ready sandboxes whose shim is gone or whose template was rebuilt or
 * removed are skipped and destroyed on a worker. Schedules a refill of the
 * template's pool if the template exists. Never blocks beyond a mutex, a
 * stat(2) and a non-blocking connect(2) per entry: safe on the HTTP loop. */
int pool_take(struct sb_pool *pool, const char *template_name, char id_out[32],
              struct sb_limits *limits, int *pidfd);
/* Destroys (on workers) ready sandboxes whose template was rebuilt or
 * removed, and refills those pools: the templates' files change under a
 * running server (the CLI), so the registry calls this periodically. One
 * stat(2) per template; blocks only on the mutex. */
void pool_drop_stale(struct sb_pool *pool);
/* A sandbox was destroyed: its disk's room is free for the next admission. */
void pool_disks_changed(struct sb_pool *pool);
/* Gives a claimed sandbox back (a create that failed after claiming),
 * with the pidfd pool_take gave out (the pool owns it again). */
void pool_give_back(struct sb_pool *pool, const char *template_name, const char *id,
                    const struct sb_limits *limits, int pidfd);
/* Schedules filling every installed template's pool up to cfg->pool_size. */
void pool_fill_all(struct sb_pool *pool);
/* The disk budget every new disk of this server is admitted by (owned by
 * the pool): snapshots take their copy's room from it too. */
struct sb_disk_budget *pool_disk_budget(struct sb_pool *pool);

#endif
