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

/* 429 when org_id has SB_SNAPSHOTS_PER_ORG_MAX snapshots already: they
 * outlive sandboxes, so without a cap one org could keep the data dir's
 * room that every org's new sandboxes need. */
static int check_snapshot_cap(struct sb_registry *reg, const char *org_id, struct sb_err *err)
{
    struct sb_template *list = NULL;
    size_t count = 0, mine = 0;
    if (template_list(reg->cfg->data_dir, &list, &count, err) < 0)
        return -1;
    for (size_t i = 0; i < count; i++)
        mine += template_owned_by(&list[i], org_id);
    template_list_free(list, count);
    if (mine >= SB_SNAPSHOTS_PER_ORG_MAX)
        return sb_err_set(err, 429, "this org has %zu snapshots, the most it may keep: delete some "
                                    "(DELETE /snapshots/:id) first", mine);
    return 0;
}

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

/* With rec loaded and its lock held: the cap, the root, the freeze, the
 * copy, the thaw. A thaw that fails undoes the snapshot, so an error
 * always means nothing was made. */
static int snapshot_locked(struct sb_registry *reg, const char *org_id, const struct sb_sandbox_rec *rec,
                           const char *label, const char *name, struct sb_err *err)
{
    if (rec->status != SB_SANDBOX_RUNNING && rec->status != SB_SANDBOX_PAUSED)
        return sb_err_set(err, 409, "sandbox is not active (status %s)", sb_sandbox_status_name(rec->status));
    if (check_snapshot_cap(reg, org_id, err) < 0)
        return -1;
    struct sb_fs fs;
    if (registry_fs_open(reg, org_id, rec->id, "root", &fs, err) < 0) {
        sb_fs_close(&fs);
        return -1;
    }
    /* A failed freeze gets no lost check here: that takes the lock this
     * thread holds; the shim's watch notices a dead shim. */
    int freeze = rec->status == SB_SANDBOX_RUNNING;
    if (freeze && shim_pause(reg->cfg->run_dir, rec->id, err) < 0) {
        sb_fs_close(&fs);
        return sb_err_prefix(err, "failed to freeze sandbox");
    }
    int rc = snapshot_frozen(reg, rec, fs.root_fd, label, name, err);
    sb_fs_close(&fs);
    struct sb_err thaw_err = {0};
    if (freeze && shim_resume(reg->cfg->run_dir, rec->id, &thaw_err) < 0) {
        if (rc == 0) {
            struct sb_err ignored;
            template_remove(reg->cfg->data_dir, name, &ignored);
            rc = sb_err_set(err, 502, "the sandbox could not be thawed after its snapshot (%s); "
                                      "the snapshot was dropped", thaw_err.msg);
        }
    }
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
    int rc = load_live(reg, org_id, id, &rec, err);
    if (rc == 0) {
        rc = snapshot_locked(reg, org_id, &rec, label, name, err);
        store_sandbox_rec_clear(&rec);
    }
    sandbox_unlock(reg->locks, id);
    if (rc == 0)
        snprintf(name_out, SB_TEMPLATE_NAME_MAX, "%s", name);
    return rc;
}
