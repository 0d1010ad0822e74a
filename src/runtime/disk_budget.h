/*
 * disk_budget.h - admission for sandbox disks. A sandbox's disk image is
 * sparse, so its quota (disk_mb) costs the host nothing until the sandbox
 * writes: without a check, one `dd` in enough sandboxes fills the data dir's
 * filesystem and the database with it. The quota is made a promise: a new
 * disk is admitted only while the free space of the data dir's filesystem
 * covers what every existing image may still grow by, what the builds in
 * flight were admitted for, the new disk, and cfg->disk_reserve_mb for the
 * database and logs.
 *
 * Writes inside a sandbox lower the free space and its image's remaining
 * growth by the same amount, so once admitted the reserve stays free, as
 * long as nothing else (template builds, other programs) writes there.
 *
 * Thread-safe. The admitted-but-not-yet-built disks are the only state.
 */
#ifndef SB_RUNTIME_DISK_BUDGET_H
#define SB_RUNTIME_DISK_BUDGET_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"

struct sb_disk_budget;

/* cfg must outlive the budget. NULL when out of memory. */
struct sb_disk_budget *disk_budget_new(const struct sb_config *cfg);
void disk_budget_free(struct sb_disk_budget *budget);

/* Admits a new disk of disk_mb, or answers 507 saying how much is free, how
 * much is promised and what to do. keep_mb more must stay unpromised after
 * it: a warm-pool refill passes its own size, so it never takes the last
 * room from the create that is waiting for it. After a 0, call
 * disk_budget_release once the build has ended (its image then counts by
 * itself) or failed. */
int disk_budget_admit(struct sb_disk_budget *budget, int disk_mb, int keep_mb, struct sb_err *err);
void disk_budget_release(struct sb_disk_budget *budget, int disk_mb, const char *id);
/* Images went away (a sandbox was destroyed) or appeared other than by a
 * build: the next admission reads every image again instead of its cached
 * sum (which is re-read at most once a second otherwise). */
void disk_budget_changed(struct sb_disk_budget *budget);

/* The figures one admission decides on, in bytes. */
struct sb_disk_figures {
    uint64_t free;              /* available on the data dir's filesystem (statvfs) */
    uint64_t promised;          /* what existing images may still grow by + admitted builds */
    size_t disks;               /* how many disks make up `promised` */
    uint64_t reserve;           /* disk_reserve_mb */
    uint64_t want;              /* the new disk */
    uint64_t keep;              /* left unpromised after it (a refill's headroom) */
};
/* The decision alone (pure): 0 when free covers promised + reserve + want + keep,
 * else 507 with the figures and the ways out; data_dir only names the place. */
int disk_budget_fits(const struct sb_disk_figures *f, const char *data_dir, struct sb_err *err);

/* What the disk images under <data_dir>/sandboxes/ may still grow by: each
 * image's size minus the blocks it already uses. */
int disk_budget_promised(const char *data_dir, uint64_t *bytes, size_t *disks, struct sb_err *err);

#endif
