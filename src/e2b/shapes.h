/*
 * shapes.h - E2B's JSON for a sandbox, from the one sandbox record: the
 * Sandbox of create and connect, the SandboxDetail of GET, the
 * ListedSandbox of the lists; the SandboxMetric of the metrics routes. Private to src/e2b/.
 */
#ifndef SB_E2B_SHAPES_H
#define SB_E2B_SHAPES_H

#include <jansson.h>

#include "store/store.h"

/* E2B's word for the status: "running" or "paused"; NULL for a sandbox
 * E2B would not show (creating, stopped). */
const char *e2b_state_name(enum sb_sandbox_status status);

/* New references; NULL when out of memory. */
json_t *e2b_sandbox_shape(const struct sb_sandbox_rec *rec);
json_t *e2b_detail_shape(const struct sb_sandbox_rec *rec);
json_t *e2b_listed_shape(const struct sb_sandbox_rec *rec);

/* SandboxMetric (§2.7): timestamp, timestampUnix, cpuCount, cpuUsedPct,
 * memUsed, memTotal, memCache, diskUsed, diskTotal. */
struct sb_sandbox_metrics;
json_t *e2b_metric_shape(const struct sb_sandbox_metrics *m);

#endif
