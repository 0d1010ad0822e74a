/*
 * disk_budget.c - sandbox disk admission (see disk_budget.h).
 *
 * An admission holds the budget's mutex while it reads the filesystem's free
 * space (statvfs) and what the images may still grow to, so two builds can
 * never both take the last room. Reading every image (one stat(2) each)
 * costs O(live sandboxes) per create, so the images' sum is scanned at most
 * once per SCAN_MS and reused in between. That only errs on the safe side:
 * an image's allocated blocks never shrink while it lives (no discard: the
 * sandbox cannot trim), so a sandbox writing since the scan lowers the free
 * space without lowering the cached promise, and an image deleted since
 * until disk_budget_changed (every destroy calls it, so room freed by a
 * delete is there for the next create). A build's disk is counted from its
 * admission until disk_budget_release, which then counts its image (one
 * stat) until the next scan sees it.
 *
 * The images are <data-dir>/sandboxes/<id>/disk.img (src/shim/container.c,
 * prepare_disk), each ftruncate'd to its disk_mb: st_size is the promise,
 * st_blocks what is already kept. Never runs on the HTTP loop (pool_spawn
 * calls it on workers).
 */
#include "runtime/disk_budget.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include "core/id.h"

#define MIB (1024ull * 1024ull)
#define SCAN_MS 1000

struct sb_disk_budget {
    const struct sb_config *cfg;
    pthread_mutex_t lock;
    uint64_t in_flight;             /* bytes admitted for builds not yet released */
    size_t in_flight_count;
    uint64_t settled;               /* released since the last scan (not in it yet) */
    size_t settled_count;
    uint64_t scanned;               /* the last scan's promise, and its disks */
    size_t scanned_disks;
    int64_t scanned_at_ms;          /* 0: never */
};

struct sb_disk_budget *disk_budget_new(const struct sb_config *cfg)
{
    struct sb_disk_budget *budget = calloc(1, sizeof *budget);
    if (!budget)
        return NULL;
    budget->cfg = cfg;
    pthread_mutex_init(&budget->lock, NULL);
    return budget;
}

void disk_budget_free(struct sb_disk_budget *budget)
{
    if (!budget)
        return;
    pthread_mutex_destroy(&budget->lock);
    free(budget);
}

int disk_budget_fits(const struct sb_disk_figures *f, const char *data_dir, struct sb_err *err)
{
    if (f->free >= f->promised && f->free - f->promised >= f->reserve &&
        f->free - f->promised - f->reserve >= f->want &&
        f->free - f->promised - f->reserve - f->want >= f->keep)
        return 0;
    char keep[96] = "";
    if (f->keep)
        snprintf(keep, sizeof keep, " (and %llu MiB left for creates)", (unsigned long long)(f->keep / MIB));
    return sb_err_set(err, 507,
                      "not enough disk for a %llu MiB sandbox disk%s: %s has %llu MiB free, %llu MiB of "
                      "it promised to %zu sandbox disks that may still grow and %llu MiB kept for the "
                      "database and logs (disk_reserve_mb); delete sandboxes, free space on that "
                      "filesystem, or lower disk_mb",
                      (unsigned long long)(f->want / MIB), keep, data_dir,
                      (unsigned long long)(f->free / MIB), (unsigned long long)(f->promised / MIB),
                      f->disks, (unsigned long long)(f->reserve / MIB));
}

int disk_budget_promised(const char *data_dir, uint64_t *bytes, size_t *disks, struct sb_err *err)
{
    *bytes = 0;
    *disks = 0;
    char dir[SB_PATH_MAX + 16];
    snprintf(dir, sizeof dir, "%s/sandboxes", data_dir);
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? 0 : sb_err_sys(err, 500, "disk budget: cannot list %s", dir);
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[SB_PATH_MAX + 320];
        snprintf(path, sizeof path, "%s/%s/disk.img", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;           /* being built (counted in flight) or being removed */
        uint64_t size = (uint64_t)st.st_size, used = (uint64_t)st.st_blocks * 512;
        *bytes += size > used ? size - used : 0;
        (*disks)++;
    }
    closedir(d);
    return 0;
}

int disk_budget_admit(struct sb_disk_budget *budget, int disk_mb, int keep_mb, struct sb_err *err)
{
    const char *data_dir = budget->cfg->data_dir;
    struct sb_disk_figures f = {.reserve = (uint64_t)budget->cfg->disk_reserve_mb * MIB,
                                .want = (uint64_t)disk_mb * MIB, .keep = (uint64_t)keep_mb * MIB};
    pthread_mutex_lock(&budget->lock);
    struct statvfs vfs;
    int rc = 0;
    if (statvfs(data_dir, &vfs) < 0)
        rc = sb_err_sys(err, 500, "disk budget: statvfs %s", data_dir);
    int64_t now = sb_mono_ms();
    if (rc == 0 && (!budget->scanned_at_ms || now - budget->scanned_at_ms >= SCAN_MS)) {
        rc = disk_budget_promised(data_dir, &budget->scanned, &budget->scanned_disks, err);
        budget->scanned_at_ms = rc == 0 ? now : 0;
        budget->settled = 0;
        budget->settled_count = 0;
    }
    if (rc == 0) {
        f.free = (uint64_t)vfs.f_bavail * vfs.f_frsize;
        f.promised = budget->scanned + budget->in_flight + budget->settled;
        f.disks = budget->scanned_disks + budget->in_flight_count + budget->settled_count;
        rc = disk_budget_fits(&f, data_dir, err);
    }
    if (rc == 0) {
        budget->in_flight += f.want;
        budget->in_flight_count++;
    }
    pthread_mutex_unlock(&budget->lock);
    return rc;
}

void disk_budget_release(struct sb_disk_budget *budget, int disk_mb, const char *id)
{
    char path[SB_PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/sandboxes/%s/disk.img", budget->cfg->data_dir, id);
    struct stat st;
    pthread_mutex_lock(&budget->lock);
    budget->in_flight -= (uint64_t)disk_mb * MIB;
    budget->in_flight_count--;
    if (budget->scanned_at_ms && stat(path, &st) == 0 && S_ISREG(st.st_mode)) {
        /* The image the build made, until the next scan sees it. */
        uint64_t size = (uint64_t)st.st_size, used = (uint64_t)st.st_blocks * 512;
        budget->settled += size > used ? size - used : 0;
        budget->settled_count++;
    }
    pthread_mutex_unlock(&budget->lock);
}

void disk_budget_changed(struct sb_disk_budget *budget)
{
    pthread_mutex_lock(&budget->lock);
    budget->scanned_at_ms = 0;
    pthread_mutex_unlock(&budget->lock);
}
