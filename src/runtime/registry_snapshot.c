/*
 * registry_snapshot.c - snapshots of live sandboxes (registry_snapshot):
 * the org check, the freeze around the copy, the bound and the disk
 * admission; the copy itself is template_snapshot.c.
 *
 * The sandbox's lock is held for the whole copy, so no pause, resume,
 * timeout or delete of it runs meanwhile (they wait); its processes are
 * frozen, so the tree holds still. Blocks (shim, disk): workers only.
 */
#include <stdio.h>
#include <string.h>

#include "core/id.h"
#include "runtime/disk_budget.h"
#include "runtime/pool.h"
#include "runtime/registry_internal.h"
#include "runtime/sandbox_files.h"
#include "runtime/sandbox_locks.h"

#define MIB (1024ull * 1024ull)

/* Bound, admission and copy, with the sandbox frozen and its lock held. */
static int snapshot_frozen(struct sb_registry *reg, const struct sb_sandbox_rec *rec, int root_fd,
                           const char *label, const char *name, struct sb_err *err)
{
    char rootfs[SB_PATH_MAX];
    uint64_t template_bytes = 0, need = 0;
    if (snprintf(rootfs, sizeof rootfs, "%s/templates/%s/rootfs", reg->cfg->data_dir, rec->template_id) >=
        (int)sizeof rootfs)
        return sb_err_set(err, 500, "path too long under the data dir");
    if (template_tree_bytes(rootfs, &template_bytes, err) < 0)
        return sb_err_set(err, 409, "the sandbox's template %s no longer exists; a snapshot needs it",
                          rec->template_id);
    uint64_t bound = template_bytes + (uint64_t)(rec->disk_mb > 0 ? rec->disk_mb : 0) * MIB;
    if (template_snapshot_measure(root_fd, bound, &need, err) < 0)
        return -1;
    int need_mb = (int)((need + MIB - 1) / MIB);
    struct sb_disk_budget *budget = pool_disk_budget(reg->pool);
    if (disk_budget_admit(budget, need_mb, 0, err) < 0)
        return sb_err_prefix(err, "snapshot of %d MB", need_mb);
    struct sb_snapshot_request sreq = {
        .root_fd = root_fd, .name = name, .source_template = rec->template_id, .org_id = rec->org_id,
        .sandbox_id = rec->id, .label = label, .uid_base = reg->cfg->uid_base, .max_bytes = need,
    };
    int rc = template_snapshot(reg->cfg->data_dir, &sreq, err);
    disk_budget_release(budget, need_mb, name);
    disk_budget_changed(budget);
    return rc;
}

int registry_snapshot(struct sb_registry *reg, const char *org_id, const char *id, const char *label,
                      char name_out[SB_TEMPLATE_NAME_MAX], struct sb_err *err)
{
    if (!sb_id_valid("sbx_", id))
        return sb_err_set(err, 400, "invalid sandbox id: %s", id);
    char name[SB_TEMPLATE_NAME_MAX];
    sb_id_new(SB_SNAPSHOT_PREFIX, name, sizeof name);
    if (sandbox_lock(reg->locks, id) < 0)
        return sb_err_set(err, 500, "out of memory");
    struct sb_sandbox_rec rec;
    struct sb_fs fs;
    memset(&fs, 0, sizeof fs);
    fs.root_fd = -1;
    int rc = load_live(reg, org_id, id, &rec, err);
    if (rc < 0)
        goto out;
    int frozen_here = 0;
    if (rec.status != SB_SANDBOX_RUNNING && rec.status != SB_SANDBOX_PAUSED)
        rc = sb_err_set(err, 409, "sandbox is not active (status %s)", sb_sandbox_status_name(rec.status));
    else if ((rc = registry_fs_open(reg, org_id, id, "root", &fs, err)) < 0)
        ;
    else if (rec.status == SB_SANDBOX_RUNNING) {
        /* No lost check here: that takes the lock this thread holds; the
         * shim's watch notices a dead shim. */
        rc = shim_pause(reg->cfg->run_dir, id, err);
        if (rc < 0)
            sb_err_prefix(err, "failed to freeze sandbox");
        frozen_here = rc == 0;
    }
    if (rc == 0)
        rc = snapshot_frozen(reg, &rec, fs.root_fd, label, name, err);
    if (frozen_here) {
        struct sb_err resume_err = {0};
        if (shim_resume(reg->cfg->run_dir, id, &resume_err) < 0 && rc == 0)
            rc = sb_err_set(err, 502, "snapshot taken, but the sandbox could not be thawed: %s", resume_err.msg);
    }
    store_sandbox_rec_clear(&rec);
out:
    sb_fs_close(&fs);
    sandbox_unlock(reg->locks, id);
    if (rc == 0)
        snprintf(name_out, SB_TEMPLATE_NAME_MAX, "%s", name);
    return rc;
}
