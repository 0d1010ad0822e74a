/*
 * pool.h - warm pools: per template, a few sandboxes built ahead of demand so
 * that a create only has to claim one; claimed slots are refilled on worker
 * threads. Also the one place that builds a sandbox cold (pool_spawn), so
 * pooled and cold sandboxes are made the same way.
 *
 * Thread-safe. Pooled sandboxes have no store row until claimed; after a
 * restart the registry treats their shims as unowned and destroys them.
 */
#ifndef SB_RUNTIME_POOL_H
#define SB_RUNTIME_POOL_H

#include "core/config.h"
#include "core/err.h"
#include "core/worker.h"

struct sb_pool;

struct sb_pool *pool_new(const struct sb_config *cfg, struct sb_worker_pool *workers);
/* Waits for in-flight refills; destroys the pooled sandboxes if destroy is set. */
void pool_free(struct sb_pool *pool, int destroy);

/* Builds sandbox `id` of template_name now (blocking); writes the limits it
 * got to *limits (may be NULL). */
int pool_spawn(const struct sb_config *cfg, const char *template_name, const char *id,
               struct sb_limits *limits, struct sb_err *err);
/* Claims a ready sandbox: 0, its id and its limits, or -1 when none is
 * ready. Either way schedules a refill of that template's pool. Never
 * blocks beyond a mutex: safe on the HTTP loop. */
int pool_take(struct sb_pool *pool, const char *template_name, char id_out[32],
              struct sb_limits *limits);
/* Gives a claimed sandbox back (a create that failed after claiming). */
void pool_give_back(struct sb_pool *pool, const char *template_name, const char *id);
/* Schedules filling every installed template's pool up to cfg->pool_size. */
void pool_fill_all(struct sb_pool *pool);
/* 1 if id is a pooled (unclaimed) sandbox. */
int pool_owns(struct sb_pool *pool, const char *id);

#endif
