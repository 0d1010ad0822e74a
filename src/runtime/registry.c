/*
 * registry.c - sandbox lifecycle over the store and the shims (see registry.h).
 *
 * Invariants:
 *  - A store row exists before a sandbox is announced; its status moves
 *    creating -> running <-> paused -> stopped. A create that fails deletes
 *    its `creating` row: it never was a sandbox.
 *  - A stopped row keeps stopped_at and stop_reason, and GET still shows it
 *    until cfg->retention_days pass (pruned by the reaper); every action on
 *    it answers 404.
 *  - While paused, end_at keeps the value it had at pause; resuming moves it
 *    forward by the paused time, so paused time never counts against the TTL.
 *  - `state_lock` serialises creates' cap check and insert only (never held
 *    across a shim call). Every other state transition (pause, resume,
 *    timeout, destroy, a dead shim's stop, a TTL kill) holds that sandbox's
 *    own lock (sandbox_locks.h) across its shim call, so two never race on
 *    one sandbox and a stuck shim holds up only its own sandbox. Exec takes
 *    neither (the shim answers 409 when paused).
 *  - Every running or paused sandbox's shim is watched (a pidfd handed to
 *    the watch function once the row says running: cold, claimed or
 *    re-adopted). A shim that exits while its row is live makes the
 *    sandbox stopped with reason "lost" (registry_shim_died, under
 *    the sandbox's lock, so a DELETE or TTL kill that ended it first keeps its own
 *    reason); a shim call that finds the shim gone does the same.
 */
#include "runtime/registry.h"

#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/env.h"
#include "core/id.h"
#include "core/log.h"
#include "runtime/network.h"
#include "runtime/pool.h"
#include "runtime/registry_internal.h"
#include "runtime/sandbox_locks.h"
#include "runtime/sandbox_pins.h"
#include "runtime/shim_link.h"
#include "runtime/template.h"

#define PRUNE_EVERY_MS 60000


struct sb_registry *registry_new(const struct sb_config *cfg, struct sb_store *store,
                                 struct sb_worker_pool *workers, struct sb_err *err)
{
    struct sb_registry *reg = calloc(1, sizeof *reg);
    if (!reg) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    reg->cfg = cfg;
    reg->store = store;
    reg->workers = workers;
    reg->pool = pool_new(cfg, workers);
    if (!reg->pool) {
        free(reg);
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    reg->locks = sandbox_locks_new();
    if (!reg->locks) {
        pool_free(reg->pool, 0);
        free(reg);
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    reg->net = network_new(cfg, err);
    if (!reg->net) {
        sandbox_locks_free(reg->locks);
        pool_free(reg->pool, 0);
        free(reg);
        return NULL;
    }
    pthread_mutex_init(&reg->state_lock, NULL);
    return reg;
}

void registry_watch_shims(struct sb_registry *reg, sb_shim_watch_fn fn, void *ctx)
{
    reg->watch = fn;
    reg->watch_ctx = ctx;
}

void registry_free(struct sb_registry *reg, int destroy_pool)
{
    if (!reg)
        return;
    shim_links_free(reg->links);
    pool_free(reg->pool, destroy_pool);
    network_free(reg->net);
    pthread_mutex_destroy(&reg->state_lock);
    sandbox_locks_free(reg->locks);
    free(reg);
}

/* Writes rec with its status set to status (rec->status keeps it) and,
 * unless what is NULL, appends the event sandbox.lifecycle.<what> in the
 * same transaction, so the row and its events never disagree. */
static int record_change(struct sb_registry *reg, struct sb_sandbox_rec *rec, int insert,
                         enum sb_sandbox_status status, const char *what, const char *data_json,
                         struct sb_err *err)
{
    rec->status = status;
    char type[64];
    if (what)
        snprintf(type, sizeof type, "sandbox.lifecycle.%s", what);
    return store_sandbox_write(reg->store, rec, insert, what ? type : NULL, data_json, err);
}

static int is_gone(const struct sb_sandbox_rec *rec)
{
    return rec->status == SB_SANDBOX_STOPPED || rec->status == SB_SANDBOX_ERROR;
}

/* The 404 every action on a stopped sandbox answers. */
static int stopped_error(const char *id, const char *reason, struct sb_err *err)
{
    return sb_err_set(err, 404, "sandbox not found: %s was stopped (reason: %s); create a new one", id,
                      reason);
}

/* Loads a sandbox the API may act on: 404 for other orgs and stopped ones
 * (the org's own stopped sandbox says so, and why). */
int load_live(struct sb_registry *reg, const char *org_id, const char *id,
                     struct sb_sandbox_rec *rec, struct sb_err *err)
{
    if (!sb_id_valid("sbx_", id))
        return sb_err_set(err, 400, "invalid sandbox id: %s", id);
    if (store_sandbox_get(reg->store, org_id, id, rec, err) < 0)
        return -1;
    if (is_gone(rec)) {
        char reason[sizeof rec->stop_reason];
        snprintf(reason, sizeof reason, "%s", rec->stop_reason[0] ? rec->stop_reason : "unknown");
        store_sandbox_rec_clear(rec);
        return stopped_error(id, reason, err);
    }
    return 0;
}

/* Marks rec stopped for reason and appends its killed event. */
static int record_stop(struct sb_registry *reg, struct sb_sandbox_rec *rec, const char *reason,
                       struct sb_err *err)
{
    pool_disks_changed(reg->pool);     /* its disk image is gone */
    rec->paused_at = 0;
    rec->stopped_at = sb_wall_ms();
    snprintf(rec->stop_reason, sizeof rec->stop_reason, "%s", reason);
    json_t *data = json_pack("{s:s}", "reason", reason);
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    int rc = record_change(reg, rec, 0, SB_SANDBOX_STOPPED, "killed", text, err);
    free(text);
    json_decref(data);
    return rc;
}

/* A sandbox ended: the retired template tree it may have held can go. */
static void collect_retired_templates(struct sb_registry *reg)
{
    struct sb_err err = {0};
    if (template_gc(reg->cfg->data_dir, &err) < 0)
        sb_warn("cannot clean up retired templates: %s", err.msg);
}

/* A live row whose shim is gone: its leftovers (cgroups, mounts, files)
 * are cleaned up at once and it is stopped with reason "lost". Caller
 * holds the sandbox's lock (or is start-up, alone). */
static int mark_lost_locked(struct sb_registry *reg, struct sb_sandbox_rec *rec, struct sb_err *err)
{
    struct sb_err derr = {0};
    if (shim_destroy(reg->cfg, rec->id, &derr) < 0)
        sb_warn("sandbox %s: cleaning up after its dead runtime: %s", rec->id, derr.msg);
    network_release_stored(reg->net, rec->id, rec->network_json);
    return record_stop(reg, rec, "lost", err);
}

/* mark_lost_locked for a sandbox found dead while serving: logs either way.
 * Returns 1 when it is now stopped. */
static int lose_locked(struct sb_registry *reg, struct sb_sandbox_rec *rec)
{
    struct sb_err err = {0};
    if (mark_lost_locked(reg, rec, &err) < 0) {
        sb_warn("sandbox %s: its runtime died but it cannot be marked stopped: %s", rec->id, err.msg);
        return 0;
    }
    sb_warn("sandbox %s lost: its runtime (shim) exited; marked stopped, reason lost", rec->id);
    return 1;
}

/* Hands pidfd (owned) of id's shim to the watch function, or closes it. */
static void watch_pidfd(struct sb_registry *reg, const char *id, int pidfd)
{
    if (reg->watch)
        reg->watch(reg->watch_ctx, id, pidfd);
    else
        close(pidfd);
}

/* Starts watching id's shim; one already gone makes the sandbox lost now.
 * Blocks (reads the run dir): workers and start-up only. */
static void watch_live(struct sb_registry *reg, const char *id)
{
    if (!reg->watch)
        return;
    int pidfd;
    struct sb_err err = {0};
    if (shim_pidfd_open(reg->cfg->run_dir, id, &pidfd, &err) == 0)
        watch_pidfd(reg, id, pidfd);
    else if (err.status == 404)
        registry_shim_died(reg, id);
    else
        sb_warn("sandbox %s: its runtime cannot be watched, so its death would go unnoticed: %s", id,
                err.msg);
}

void registry_shim_died(struct sb_registry *reg, const char *id)
{
    int lost = 0, alive = 0;
    sandbox_lock(reg->locks, id);
    struct sb_sandbox_rec rec;
    struct sb_err err = {0};
    /* A row stopped meanwhile was destroyed on purpose and keeps its reason;
     * a creating one is still being built and its create handles failure. */
    if (store_sandbox_get(reg->store, NULL, id, &rec, &err) == 0) {
        if (rec.status == SB_SANDBOX_RUNNING || rec.status == SB_SANDBOX_PAUSED) {
            alive = shim_alive(reg->cfg->run_dir, id);
            lost = !alive && lose_locked(reg, &rec);
        }
        store_sandbox_rec_clear(&rec);
    }
    sandbox_unlock(reg->locks, id);
    if (alive)      /* the pidfd outlived a false alarm: watch the shim afresh */
        watch_live(reg, id);
    if (lost)
        collect_retired_templates(reg);
}

/* After a shim call on a live sandbox failed with err: when its shim is
 * gone (the watch may not have run yet), the sandbox is lost now and err
 * becomes the 404 of a stopped sandbox. 1 if so, else 0 (err unchanged).
 * The _locked form is for callers holding the sandbox's lock with rec loaded. */
int check_lost(struct sb_registry *reg, const char *org_id, const char *id, struct sb_err *err)
{
    if (err->status != 502 || shim_alive(reg->cfg->run_dir, id))
        return 0;
    registry_shim_died(reg, id);
    struct sb_sandbox_rec rec;
    struct sb_err lerr = {0};
    if (load_live(reg, org_id, id, &rec, &lerr) == 0) {
        store_sandbox_rec_clear(&rec);
        return 0;
    }
    *err = lerr;        /* stopped: lost, or whatever stopped it first */
    return 1;
}

static int check_lost_locked(struct sb_registry *reg, struct sb_sandbox_rec *rec, struct sb_err *err)
{
    if (err->status != 502 || shim_alive(reg->cfg->run_dir, rec->id) || !lose_locked(reg, rec))
        return 0;
    stopped_error(rec->id, "lost", err);
    return 1;
}

int registry_reconcile(struct sb_registry *reg, struct sb_err *err)
{
    struct sb_sandbox_rec *list = NULL;
    size_t count = 0;
    /* No statuses (0): the creating, running and paused rows of every org. */
    if (store_sandbox_list(reg->store, NULL, 0, &list, &count, err) < 0)
        return sb_err_prefix(err, "reconcile");
    size_t adopted = 0, lost = 0, orphans = 0;
    for (size_t i = 0; i < count; i++) {
        struct sb_sandbox_rec *rec = &list[i];
        struct sb_shim_status st;
        struct sb_err serr = {0};
        if (rec->status != SB_SANDBOX_CREATING && shim_status(reg->cfg->run_dir, rec->id, &st, &serr) == 0) {
            /* The row is the truth: a crash between a pause/resume and its
             * row write leaves the shim apart from it, so re-apply it. */
            if (st.paused && rec->status == SB_SANDBOX_RUNNING)
                shim_resume(reg->cfg->run_dir, rec->id, &serr);
            else if (!st.paused && rec->status == SB_SANDBOX_PAUSED)
                shim_pause(reg->cfg->run_dir, rec->id, &serr);
            if (network_adopt_stored(reg->net, rec->id, rec->network_json, &serr) < 0)
                sb_warn("reconcile: sandbox %s: its network: %s", rec->id, serr.msg);
            watch_live(reg, rec->id);
            adopted++;
            continue;
        }
        if (rec->status == SB_SANDBOX_CREATING) {       /* a create cut short: never announced */
            shim_destroy(reg->cfg, rec->id, &serr);
            network_release_stored(reg->net, rec->id, rec->network_json);
            store_sandbox_delete_creating(reg->store, rec->id, &serr);
        } else {
            mark_lost_locked(reg, rec, &serr);
        }
        rec->status = SB_SANDBOX_STOPPED;
        lost++;
    }
    /* Shims with no live row: pooled sandboxes of the previous run, or leftovers. */
    char (*ids)[32] = NULL;
    size_t id_count = 0;
    struct sb_err lerr = {0};
    if (shim_list_ids(reg->cfg->run_dir, &ids, &id_count, &lerr) == 0) {
        for (size_t i = 0; i < id_count; i++) {
            int owned = 0;
            for (size_t j = 0; j < count && !owned; j++)
                owned = strcmp(list[j].id, ids[i]) == 0 && !is_gone(&list[j]);
            if (!owned) {
                struct sb_err derr = {0};
                shim_destroy(reg->cfg, ids[i], &derr);
                orphans++;
            }
        }
        free(ids);
    }
    store_sandbox_list_free(list, count);
    sb_info("reconcile: %zu sandboxes re-adopted, %zu lost, %zu orphan shims removed", adopted,
            lost, orphans);
    collect_retired_templates(reg);
    pool_fill_all(reg->pool);
    return 0;
}

/* A new `creating` record for creq; the caller fills id and limits. */
static int new_record(const struct sb_create_request *creq, struct sb_sandbox_rec *rec,
                      struct sb_err *err)
{
    memset(rec, 0, sizeof *rec);
    snprintf(rec->org_id, sizeof rec->org_id, "%s", creq->org_id);
    snprintf(rec->template_id, sizeof rec->template_id, "%s", creq->template_id);
    rec->status = SB_SANDBOX_CREATING;
    rec->metadata_json = strdup(creq->metadata_json ? creq->metadata_json : "{}");
    rec->env_json = strdup(creq->env_json ? creq->env_json : "{}");
    rec->e2b_json = strdup(creq->e2b_json ? creq->e2b_json : "");
    snprintf(rec->envd_token, sizeof rec->envd_token, "%s", creq->envd_token ? creq->envd_token : "");
    rec->pause_on_timeout = creq->pause_on_timeout;
    rec->started_at = sb_wall_ms();
    rec->end_at = rec->started_at + (int64_t)creq->timeout_s * 1000;
    if (!rec->metadata_json || !rec->env_json || !rec->e2b_json) {
        store_sandbox_rec_clear(rec);
        return sb_err_set(err, 500, "out of memory");
    }
    return 0;
}

static void set_limits(struct sb_sandbox_rec *rec, const struct sb_limits *limits)
{
    rec->cpu_count = limits->cpu_count;
    rec->memory_mb = limits->memory_mb;
    rec->disk_mb = limits->disk_mb;
}

/* Caller holds state_lock. Checks the per-org cap, claims a pooled sandbox
 * when one is ready (its id and limits replace rec's) and inserts the row,
 * which reserves the slot (as creating when needs_network: the caller
 * attaches it, then marks it running). A claimed sandbox is given back on failure; on
 * success its shim's pidfd is in *pidfd (caller owns). With pool_only,
 * returns 1 (and changes nothing) when none is ready. */
static int reserve_locked(struct sb_registry *reg, const struct sb_create_request *creq,
                          struct sb_sandbox_rec *rec, int pool_only, int needs_network, int *from_pool,
                          int *pidfd, struct sb_err *err)
{
    size_t live = 0;
    *from_pool = 0;
    if (store_sandbox_count_live(reg->store, creq->org_id, &live, err) < 0)
        return -1;
    if (live >= (size_t)reg->cfg->org_sandbox_cap)
        return sb_err_set(err, 429,
                          "sandbox limit reached: this org already has %zu live sandboxes (max %d); kill one first",
                          live, reg->cfg->org_sandbox_cap);
    struct sb_limits limits;
    *from_pool = pool_take(reg->pool, creq->template_id, rec->id, &limits, pidfd) == 0;
    if (*from_pool)
        set_limits(rec, &limits);
    else if (pool_only)
        return 1;
    /* A pooled sandbox already exists: its row starts out running, unless
     * its network is still to be attached. */
    int rc = *from_pool && !needs_network ? record_change(reg, rec, 1, SB_SANDBOX_RUNNING, "created", NULL, err)
                        : record_change(reg, rec, 1, SB_SANDBOX_CREATING, NULL, NULL, err);
    if (rc < 0) {
        if (*from_pool)
            pool_give_back(reg->pool, creq->template_id, rec->id, &limits, *pidfd);
        return -1;
    }
    return 0;
}

/* A cold-built sandbox exists: mark it running (its TTL counts from now)
 * and announce it. */
static int finish_create(struct sb_registry *reg, const struct sb_create_request *creq,
                         struct sb_sandbox_rec *rec, struct sb_err *err)
{
    rec->end_at = sb_wall_ms() + (int64_t)creq->timeout_s * 1000;
    if (record_change(reg, rec, 0, SB_SANDBOX_RUNNING, "created", NULL, err) < 0) {
        struct sb_err derr = {0};
        shim_destroy(reg->cfg, rec->id, &derr);
        store_sandbox_delete_creating(reg->store, rec->id, &derr);
        return -1;
    }
    return 0;
}

/* The create's network settings settled against the template (template_mode,
 * "" = none) and the config into a new *out (caller frees); egress gets an
 * address reserved, and rec->network_json the stored form. */
static int resolve_network(struct sb_registry *reg, const struct sb_create_request *creq, const char *template_mode,
                           struct sb_sandbox_rec *rec, struct sb_net_policy **out, struct sb_err *err)
{
    struct sb_net_policy *p = malloc(sizeof *p);
    if (!p)
        return sb_err_set(err, 500, "out of memory");
    if (creq->network)
        *p = *creq->network;
    else
        netpolicy_parse(NULL, NULL, p, err);
    int rc = netpolicy_resolve(p, template_mode, &reg->cfg->network, err);
    p->traffic_token[0] = '\0';
    if (rc == 0 && !p->allow_public_traffic) {
        /* the port proxy's credential: 200 random bits, compared in constant time */
        char a[25], b[25];
        sb_id_new("tat_", a, sizeof a);
        sb_id_new("tat_", b, sizeof b);
        snprintf(p->traffic_token, sizeof p->traffic_token, "%s%s", a, b + 4);
    }
    if (rc == 0 && p->internet)
        rc = network_reserve(reg->net, p, err);
    if (rc == 0 && !(rec->network_json = netpolicy_to_text(p))) {
        if (p->internet)
            network_release(reg->net, rec->id, p);
        rc = sb_err_set(err, 500, "out of memory");
    }
    if (rc < 0) {
        free(p);
        return -1;
    }
    *out = p;
    return 0;
}

int registry_try_create_pooled(struct sb_registry *reg, const struct sb_create_request *creq,
                               struct sb_sandbox_rec *out, struct sb_err *err)
{
    struct sb_sandbox_rec rec;
    int from_pool = 0, pidfd = -1;
    /* Attaching a network blocks (netlink, nftables): that is a worker's job. */
    if (network_may_attach(reg->net, creq->network))
        return 0;
    if (new_record(creq, &rec, err) < 0)
        return -1;
    struct sb_net_policy *net = NULL;
    if (resolve_network(reg, creq, "", &rec, &net, err) < 0) {
        store_sandbox_rec_clear(&rec);
        return -1;
    }
    free(net);      /* no egress: nothing to attach */
    /* Never wait on the lock here (the loop thread): another create may hold it. */
    if (pthread_mutex_trylock(&reg->state_lock) != 0) {
        store_sandbox_rec_clear(&rec);
        return 0;
    }
    int rc = reserve_locked(reg, creq, &rec, 1, 0, &from_pool, &pidfd, err);
    pthread_mutex_unlock(&reg->state_lock);
    if (rc == 1) {
        store_sandbox_rec_clear(&rec);
        return 0;
    }
    if (rc < 0) {
        store_sandbox_rec_clear(&rec);
        return -1;
    }
    watch_pidfd(reg, rec.id, pidfd);
    *out = rec;
    return 1;
}

int registry_create(struct sb_registry *reg, const struct sb_create_request *creq,
                    struct sb_sandbox_rec *out, struct sb_err *err)
{
    struct sb_template tpl;
    if (template_load(reg->cfg->data_dir, creq->template_id, &tpl, err) < 0)
        return -1;
    if (!template_visible(&tpl, creq->org_id)) {     /* another org's snapshot: as if missing */
        template_clear(&tpl);
        return sb_err_set(err, 400, "unknown template: %s", creq->template_id);
    }
    struct sb_limits limits;
    template_effective_limits(&tpl, reg->cfg, &limits);
    char template_network[sizeof tpl.network];
    memcpy(template_network, tpl.network, sizeof template_network);
    template_clear(&tpl);

    struct sb_sandbox_rec rec;
    if (new_record(creq, &rec, err) < 0)
        return -1;
    sb_id_new("sbx_", rec.id, sizeof rec.id);
    set_limits(&rec, &limits);
    struct sb_net_policy *net = NULL;
    if (resolve_network(reg, creq, template_network, &rec, &net, err) < 0) {
        store_sandbox_rec_clear(&rec);
        return -1;
    }
    int from_pool = 0, pidfd = -1, built = 0;
    pthread_mutex_lock(&reg->state_lock);
    int rc = reserve_locked(reg, creq, &rec, 0, net->internet, &from_pool, &pidfd, err);
    pthread_mutex_unlock(&reg->state_lock);
    if (rc == 0 && !from_pool && pool_spawn(reg->pool, creq->template_id, rec.id, NULL, NULL, err) < 0) {
        struct sb_err uerr = {0};
        store_sandbox_delete_creating(reg->store, rec.id, &uerr);
        sb_err_prefix(err, "failed to create sandbox");
        rc = -1;
    }
    built = rc == 0;
    if (rc == 0 && net->internet && network_attach(reg->net, rec.id, net, err) < 0) {
        sb_err_prefix(err, "failed to create sandbox");
        struct sb_err uerr = {0};
        shim_destroy(reg->cfg, rec.id, &uerr);     /* a claimed one too: its netns is half set up */
        store_sandbox_delete_creating(reg->store, rec.id, &uerr);
        rc = -1;
    }
    if (rc == 0 && (!from_pool || net->internet))
        rc = finish_create(reg, creq, &rec, err);
    if (rc < 0 && net->internet)
        network_release(reg->net, rec.id, net);
    free(net);
    if (rc < 0) {
        if (built && from_pool && pidfd >= 0)
            close(pidfd);
        store_sandbox_rec_clear(&rec);
        return -1;
    }
    if (from_pool)
        watch_pidfd(reg, rec.id, pidfd);
    else
        watch_live(reg, rec.id);
    *out = rec;
    return 0;
}

/* Destroys a loaded live sandbox; caller holds its lock. */
static int destroy_locked(struct sb_registry *reg, struct sb_sandbox_rec *rec, const char *reason,
                          struct sb_err *err)
{
    if (shim_destroy(reg->cfg, rec->id, err) < 0)
        return sb_err_prefix(err, "failed to destroy sandbox");
    network_release_stored(reg->net, rec->id, rec->network_json);
    return record_stop(reg, rec, reason, err);
}

int registry_destroy(struct sb_registry *reg, const char *org_id, const char *id,
                     const char *reason, struct sb_err *err)
{
    if (!sb_id_valid("sbx_", id))
        return sb_err_set(err, 400, "invalid sandbox id: %s", id);
    sandbox_lock(reg->locks, id);
    struct sb_sandbox_rec rec;
    int rc = load_live(reg, org_id, id, &rec, err);
    if (rc == 0) {
        rc = destroy_locked(reg, &rec, reason, err);
        store_sandbox_rec_clear(&rec);
    }
    sandbox_unlock(reg->locks, id);
    if (rc == 0)
        collect_retired_templates(reg);
    return rc;
}

/* Freezes the live sandbox rec (its lock held) and records it paused. */
static int pause_locked(struct sb_registry *reg, struct sb_sandbox_rec *rec, struct sb_err *err)
{
    if (rec->status == SB_SANDBOX_PAUSED)
        return sb_err_set(err, 409, "sandbox is already paused");
    if (rec->status != SB_SANDBOX_RUNNING)
        return sb_err_set(err, 409, "sandbox is not running (status %s)", sb_sandbox_status_name(rec->status));
    if (shim_pause(reg->cfg->run_dir, rec->id, err) < 0)
        return check_lost_locked(reg, rec, err) ? -1 : sb_err_prefix(err, "failed to pause sandbox");
    rec->paused_at = sb_wall_ms();
    return record_change(reg, rec, 0, SB_SANDBOX_PAUSED, "paused", NULL, err);
}

int registry_pause(struct sb_registry *reg, const char *org_id, const char *id, struct sb_err *err)
{
    if (!sb_id_valid("sbx_", id))
        return sb_err_set(err, 400, "invalid sandbox id: %s", id);
    sandbox_lock(reg->locks, id);
    struct sb_sandbox_rec rec;
    int rc = load_live(reg, org_id, id, &rec, err);
    if (rc == 0) {
        rc = pause_locked(reg, &rec, err);
        store_sandbox_rec_clear(&rec);
    }
    sandbox_unlock(reg->locks, id);
    return rc;
}

int registry_connect(struct sb_registry *reg, const char *org_id, const char *id, int timeout_s,
                     struct sb_sandbox_rec *out, int *resumed, struct sb_err *err)
{
    if (!sb_id_valid("sbx_", id))
        return sb_err_set(err, 400, "invalid sandbox id: %s", id);
    sandbox_lock(reg->locks, id);
    struct sb_sandbox_rec rec;
    int rc = load_live(reg, org_id, id, &rec, err);
    if (rc < 0)
        goto out;
    int64_t now = sb_wall_ms();
    int was_paused = rec.status == SB_SANDBOX_PAUSED;
    if (was_paused) {
        if (shim_resume(reg->cfg->run_dir, rec.id, err) < 0) {
            rc = check_lost_locked(reg, &rec, err) ? -1 : sb_err_prefix(err, "failed to resume sandbox");
            store_sandbox_rec_clear(&rec);
            goto out;
        }
        rec.end_at += now - rec.paused_at;
        rec.paused_at = 0;
        /* Paused by its timeout (pause_on_timeout), it had no time left:
         * a resume that sets none gives it the default timeout again. */
        if (timeout_s < 0 && rec.end_at <= now)
            rec.end_at = now + (int64_t)reg->cfg->default_timeout_s * 1000;
    } else if (rec.status != SB_SANDBOX_RUNNING) {
        rc = sb_err_set(err, 409, "sandbox is not active (status %s)", sb_sandbox_status_name(rec.status));
        store_sandbox_rec_clear(&rec);
        goto out;
    }
    if (timeout_s >= 0)
        rec.end_at = now + (int64_t)timeout_s * 1000;
    const char *what = was_paused ? "resumed" : timeout_s >= 0 ? "updated" : NULL;
    rc = record_change(reg, &rec, 0, SB_SANDBOX_RUNNING, what, NULL, err);
    if (rc == 0 && resumed)
        *resumed = was_paused;
    if (rc == 0)
        *out = rec;
    else
        store_sandbox_rec_clear(&rec);
out:
    sandbox_unlock(reg->locks, id);
    return rc;
}

int registry_set_timeout(struct sb_registry *reg, const char *org_id, const char *id,
                         int timeout_s, struct sb_err *err)
{
    if (!sb_id_valid("sbx_", id))
        return sb_err_set(err, 400, "invalid sandbox id: %s", id);
    sandbox_lock(reg->locks, id);
    struct sb_sandbox_rec rec;
    int rc = load_live(reg, org_id, id, &rec, err);
    if (rc < 0)
        goto out;
    if (rec.status != SB_SANDBOX_RUNNING) {
        rc = sb_err_set(err, 409, "sandbox is not active (status %s)", sb_sandbox_status_name(rec.status));
    } else {
        rec.end_at = sb_wall_ms() + (int64_t)timeout_s * 1000;
        rc = record_change(reg, &rec, 0, SB_SANDBOX_RUNNING, "updated", NULL, err);
    }
    store_sandbox_rec_clear(&rec);
out:
    sandbox_unlock(reg->locks, id);
    return rc;
}

/* The sandbox.lifecycle.updated event's data for a network update: the
 * rules as stored, without the sandbox's address and token. */
static char *network_event_data(const char *stored)
{
    json_t *net = json_loads(stored, 0, NULL);
    json_object_del(net, "address");
    json_object_del(net, "trafficAccessToken");
    json_t *data = json_pack("{s:o*}", "network", net);
    char *text = data ? json_dumps(data, JSON_COMPACT) : NULL;
    json_decref(data);
    return text;
}

/* Under the sandbox's lock: the new rules go into the sandbox first, then
 * the row (with its updated event); a row that cannot be written has the
 * old rules put back (or the new interface removed), so the row and the
 * sandbox never disagree for long and a restart re-adopts what the row says. */
static int update_network_locked(struct sb_registry *reg, struct sb_sandbox_rec *rec,
                                 const struct sb_net_policy *update, struct sb_err *err)
{
    if (rec->status != SB_SANDBOX_RUNNING && rec->status != SB_SANDBOX_PAUSED)
        return sb_err_set(err, 409, "sandbox is not active (status %s)", sb_sandbox_status_name(rec->status));
    struct sb_net_policy *old = malloc(sizeof *old), *p = malloc(sizeof *p);
    char *text = NULL, *data = NULL;
    int rc = old && p ? 0 : sb_err_set(err, 500, "out of memory");
    if (rc == 0)
        rc = netpolicy_from_text(rec->network_json, old, err);
    if (rc == 0) {
        *p = *update;
        p->allow_public_traffic = old->allow_public_traffic;    /* not the update's to change */
        memcpy(p->traffic_token, old->traffic_token, sizeof p->traffic_token);
        rc = network_update(reg->net, rec->id, old, p, err);
        if (rc < 0 && !check_lost_locked(reg, rec, err))
            sb_err_prefix(err, "failed to update the network of sandbox %s", rec->id);
    }
    if (rc == 0) {
        text = netpolicy_to_text(p);
        data = text ? network_event_data(text) : NULL;
        if (!text || !data)
            rc = sb_err_set(err, 500, "out of memory");
        if (rc == 0) {
            free(rec->network_json);
            rec->network_json = text;
            text = NULL;
            rc = record_change(reg, rec, 0, rec->status, "updated", data, err);
        }
        if (rc < 0 && !old->address[0]) {
            network_release(reg->net, rec->id, p);     /* attached just now */
        } else if (rc < 0) {
            struct sb_err rerr = {0};
            if (network_update(reg->net, rec->id, p, old, &rerr) < 0)
                sb_warn("sandbox %s: putting its old network rules back: %s", rec->id, rerr.msg);
        }
    }
    free(text);
    free(data);
    free(old);
    free(p);
    return rc;
}

int registry_update_network(struct sb_registry *reg, const char *org_id, const char *id,
                            const struct sb_net_policy *update, struct sb_err *err)
{
    if (!sb_id_valid("sbx_", id))
        return sb_err_set(err, 400, "invalid sandbox id: %s", id);
    sandbox_lock(reg->locks, id);
    struct sb_sandbox_rec rec;
    int rc = load_live(reg, org_id, id, &rec, err);
    if (rc == 0) {
        rc = update_network_locked(reg, &rec, update, err);
        store_sandbox_rec_clear(&rec);
    }
    sandbox_unlock(reg->locks, id);
    return rc;
}

/* Forgets stopped sandboxes and events older than the retention period, once a minute. */
static void prune_stopped(struct sb_registry *reg, int64_t now)
{
    if (now < reg->next_prune_ms)
        return;
    reg->next_prune_ms = now + PRUNE_EVERY_MS;
    size_t pruned = 0;
    struct sb_err err = {0};
    int64_t before = now - (int64_t)reg->cfg->retention_days * 86400 * 1000;
    if (store_sandbox_prune_stopped(reg->store, before, &pruned, &err) < 0)
        sb_warn("retention: cannot prune stopped sandboxes: %s", err.msg);
    else if (pruned)
        sb_info("retention: forgot %zu sandboxes stopped more than %d days ago", pruned,
                reg->cfg->retention_days);
    if (store_event_prune(reg->store, before, &pruned, &err) < 0)
        sb_warn("retention: cannot prune events: %s", err.msg);
    else if (pruned)
        sb_info("retention: forgot %zu events older than %d days", pruned, reg->cfg->retention_days);
}

void registry_reap_expired(struct sb_registry *reg)
{
    prune_stopped(reg, sb_wall_ms());
    pool_drop_stale(reg->pool);
    struct sb_sandbox_rec *list = NULL;
    size_t count = 0;
    struct sb_err err = {0};
    if (store_sandbox_list(reg->store, NULL, SB_SANDBOX_STATUS_BIT(SB_SANDBOX_RUNNING), &list, &count, &err) < 0) {
        sb_warn("ttl: cannot list sandboxes: %s", err.msg);
        return;
    }
    int64_t now = sb_wall_ms();
    size_t killed = 0;
    for (size_t i = 0; i < count; i++) {
        if (list[i].end_at > now)
            continue;
        sandbox_lock(reg->locks, list[i].id);
        /* Re-read under the lock: a connect or timeout may have moved end_at. */
        struct sb_sandbox_rec rec;
        struct sb_err rerr = {0};
        if (load_live(reg, list[i].org_id, list[i].id, &rec, &rerr) == 0) {
            int expired = rec.status == SB_SANDBOX_RUNNING && rec.end_at <= now;
            if (expired && !shim_alive(reg->cfg->run_dir, rec.id)) {   /* it died before */
                killed += (size_t)lose_locked(reg, &rec);
            } else if (expired && rec.pause_on_timeout) {
                if (pause_locked(reg, &rec, &rerr) < 0)
                    sb_warn("ttl: could not pause expired sandbox %s: %s", rec.id, rerr.msg);
                else
                    sb_info("ttl: sandbox %s expired and was paused (its timeout pauses it)", rec.id);
            } else if (expired && destroy_locked(reg, &rec, "timeout", &rerr) < 0) {
                sb_warn("ttl: could not kill expired sandbox %s: %s", rec.id, rerr.msg);
            } else if (expired) {
                killed++;
                sb_info("ttl: sandbox %s expired and was killed", rec.id);
            }
            store_sandbox_rec_clear(&rec);
        }
        sandbox_unlock(reg->locks, list[i].id);
    }
    store_sandbox_list_free(list, count);
    if (killed)
        collect_retired_templates(reg);
}

/* Merges the JSON object text src into env (later sources win). */
static void merge_env_text(json_t *env, const char *text)
{
    if (!text)
        return;
    json_t *obj = json_loads(text, 0, NULL);
    if (json_is_object(obj))
        json_object_update(env, obj);
    json_decref(obj);
}

/* The process environment: template env, the user's HOME/USER, the E2B
 * variables E2B's SDKs rely on, the sandbox's envVars, the request's
 * envVars. Returns a NULL-terminated malloc'd "K=V" array (free with
 * free_env), or NULL. */
char **build_env(const struct sb_template *tpl, const struct sb_sandbox_rec *rec,
                        const char *user, int pty, const char *request_env, size_t *count)
{
    json_t *env = json_object();
    if (!env)
        return NULL;
    merge_env_text(env, tpl->env_json);
    int root = strcmp(user, "root") == 0;
    json_object_set_new(env, "HOME", json_string(root ? "/root" : tpl->home));
    json_object_set_new(env, "USER", json_string(root ? "root" : tpl->user));
    json_object_set_new(env, "E2B_SANDBOX", json_string("true"));
    json_object_set_new(env, "E2B_SANDBOX_ID", json_string(rec->id));
    json_object_set_new(env, "E2B_TEMPLATE_ID", json_string(rec->template_id));
    if (pty)
        json_object_set_new(env, "TERM", json_string("xterm-256color"));
    merge_env_text(env, rec->env_json);
    merge_env_text(env, request_env);

    char **out = sb_env_strings(env, count);
    json_decref(env);
    return out;
}

void free_env(char **env)
{
    sb_env_free(env);
}

/* The template values the sandbox was pinned to at create (user, ids, home,
 * workdir, env): its resolved spec, remembered in memory since its shim
 * started (runtime/sandbox_pins.h), which a rebuild or removal of the
 * template since does not change. Fills only those fields of tpl (and its
 * name); caller clears it with template_clear. */
int load_sandbox_template(struct sb_registry *reg, const struct sb_sandbox_rec *rec,
                          struct sb_template *tpl, struct sb_err *err)
{
    struct sandbox_pin pin;
    memset(tpl, 0, sizeof *tpl);
    if (sandbox_pin_get(reg->cfg->run_dir, rec->id, &pin, err) < 0)
        return -1;
    snprintf(tpl->name, sizeof tpl->name, "%s", pin.template_name);
    snprintf(tpl->user, sizeof tpl->user, "%s", pin.user);
    tpl->uid = pin.uid;
    tpl->gid = pin.gid;
    snprintf(tpl->home, sizeof tpl->home, "%s", pin.home);
    snprintf(tpl->workdir, sizeof tpl->workdir, "%s", pin.workdir);
    tpl->env_json = pin.env_json;       /* moved: tpl owns it now */
    return 0;
}
