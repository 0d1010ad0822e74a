/*
 * cgroup.h - one sandbox's cgroup, on cgroup v1 (legacy/hybrid hosts) or v2.
 *
 * Layout: a sandbox is the directory <hierarchy>/<parent>/<id> ("sandbase/
 * sbx_..."), holding the sandbox-wide limits; processes live in leaf
 * directories below it ("init" for PID 1, one per started process), so a
 * whole process tree can be frozen, killed and counted on its own while the
 * limits hold for the sum. v1 has the sandbox directory in every
 * controller's hierarchy (memory, pids, cpu, freezer) but leaves only under
 * freezer (v1 counts an OOM kill only in the victim's own memory cgroup, so
 * every process stays in the sandbox's memory cgroup); v2 has one tree.
 *
 * Every path comes from struct sb_cgroup_roots, never from a constant, so the
 * v2 file-writing layer can be tested against a directory that imitates a
 * cgroup2 tree. Files are opened without O_CREAT: writing to a file the
 * kernel does not provide is an error, as on the real filesystem.
 *
 * Owns: the directories it creates (removes them in cgroup_remove).
 * Never: kills by anything but the pids listed in its own directories, or
 * prints.
 */
#ifndef SB_SHIM_CGROUP_H
#define SB_SHIM_CGROUP_H

#include <stdint.h>
#include <sys/types.h>

#include "core/config.h"
#include "core/err.h"

enum sb_cgroup_mode { SB_CGROUP_LEGACY = 1, SB_CGROUP_HYBRID, SB_CGROUP_UNIFIED };

/* v1 controllers we use; on v2 only index 0 of the dirs below is used. */
enum sb_cgroup_ctl { SB_CG_MEMORY, SB_CG_PIDS, SB_CG_CPU, SB_CG_FREEZER, SB_CG_CTL_COUNT };

#define SB_CGROUP_NAME_MAX 64

struct sb_cgroup_roots {
    int v2;                                  /* 1: unified hierarchy */
    char unified[SB_PATH_MAX];               /* v2: where cgroup2 is mounted */
    char v1[SB_CG_CTL_COUNT][SB_PATH_MAX];   /* v1: each controller's mount point */
};

/* One sandbox's cgroup. Allocated by cgroup_create, freed by cgroup_free. */
struct sb_cgroup {
    int v2;
    int dir_count;                           /* 1 on v2, SB_CG_CTL_COUNT on v1 */
    char dirs[SB_CG_CTL_COUNT][SB_PATH_MAX]; /* the sandbox directory in each hierarchy */
    uint64_t oom_seen;                       /* oom_kill count at the last cgroup_oom_kills */
};

/* Finds the hierarchies like crun: statfs(fs_root) is cgroup2 = UNIFIED; a
 * tmpfs with a cgroup2 "unified" below = HYBRID (v1 controllers are used);
 * a tmpfs otherwise = LEGACY. v1 mount points come from mounts_file
 * ("/proc/self/mounts"). 500 when a needed controller is missing. */
int cgroup_detect(const char *fs_root, const char *mounts_file, struct sb_cgroup_roots *out,
                  enum sb_cgroup_mode *mode, struct sb_err *err);
/* cgroup_detect("/sys/fs/cgroup", "/proc/self/mounts"), computed once per process. */
int cgroup_default_roots(const struct sb_cgroup_roots **out, struct sb_err *err);

/* Valid leaf/id names: 1-63 chars of [A-Za-z0-9_.-], not "." or "..". */
int cgroup_name_valid(const char *name);

/* Creates <parent>/<id> in every hierarchy (v2: enables +memory +pids +cpu
 * for the parents first). An existing directory is reused. On success *out
 * is owned by the caller (cgroup_free). */
int cgroup_create(const struct sb_cgroup_roots *roots, const char *parent, const char *id,
                  struct sb_cgroup **out, struct sb_err *err);
/* Writes the sandbox-wide limits; a 0 field means "no limit". */
int cgroup_set_limits(struct sb_cgroup *cg, const struct sb_limits *limits, struct sb_err *err);

/* leaf NULL means the sandbox directory itself in the calls below. */
int cgroup_leaf_create(struct sb_cgroup *cg, const char *leaf, struct sb_err *err);
/* Moves pid (0 = the caller) into the leaf (v1: the freezer leaf and the
 * sandbox directory of the other hierarchies). Allocates
 * nothing, so it is safe in a freshly forked child. */
int cgroup_enter(const struct sb_cgroup *cg, const char *leaf, pid_t pid, struct sb_err *err);
/* Freezes (waits until frozen, bounded) or thaws. */
int cgroup_freeze(struct sb_cgroup *cg, const char *leaf, int frozen, struct sb_err *err);
/* SIGKILLs every process in the leaf and below (v2: cgroup.kill; otherwise
 * freeze, kill each listed pid, thaw) and waits, bounded, until it is empty.
 * v1 only: a leaf of a frozen sandbox is not waited for; its processes die
 * when the sandbox is thawed. */
int cgroup_kill(struct sb_cgroup *cg, const char *leaf, struct sb_err *err);
/* Processes in the leaf and below; -1 on error. */
int cgroup_count(const struct sb_cgroup *cg, const char *leaf);
/* Removes the leaf (and any sub-leaves); retries briefly on EBUSY. */
int cgroup_leaf_remove(struct sb_cgroup *cg, const char *leaf, struct sb_err *err);
/* *count = OOM kills recorded for the sandbox; returns 1 if it grew since
 * the last call, 0 if not, -1 on error. */
int cgroup_oom_kills(struct sb_cgroup *cg, uint64_t *count, struct sb_err *err);
/* Removes every leaf and the sandbox directory. Processes must be gone. */
int cgroup_remove(struct sb_cgroup *cg, struct sb_err *err);

/* What the sandbox uses now: memory (bytes, page cache included, and the
 * cache alone) and CPU time (ns: v2's usage_usec; on v1 the sum of its live
 * processes' user and system time, since cpuacct may not be ours). */
struct sb_cgroup_usage {
    uint64_t mem_used, mem_cache, cpu_ns;
};
int cgroup_usage(const struct sb_cgroup *cg, struct sb_cgroup_usage *out, struct sb_err *err);
void cgroup_free(struct sb_cgroup *cg);

#endif
