/*
 * spec.h - the resolved sandbox spec: everything one shim needs to build and
 * run its sandbox, decided by serve at create time, as an OCI bundle's
 * config.json is to crun. serve (runtime/sandbox_spec.c) resolves the
 * template, the server's limits and uid range into it and writes it to
 * <run-dir>/sandboxes/<id>/spec.json before starting the shim
 * (`sandbase-shim --spec PATH`); the shim reads nothing else about the
 * sandbox, and serve reads the same file back for every exec, so a
 * template rebuilt or removed since changes nothing in a running sandbox.
 *
 * spec.json (every key required unless marked):
 *   {"version": 1, "id": "sbx_…", "hostname": "sbx_…",
 *    "dataDir": "/abs", "runDir": "/abs",
 *    "template": {"name": "base", "dir": "/abs/templates/base", "identity": N},
 *    "uidMap": {"inside": 0, "outside": 100000, "count": 65536},
 *    "gidMap": {"inside": 0, "outside": 100000, "count": 65536},
 *    "user": {"name": "user", "uid": 1000, "gid": 1000, "home": "/home/user"},
 *    "workdir": "/home/user", "env": {"PATH": "…"},
 *    "binds": [{"source": "/usr", "target": "/usr", "readonly": true}],  (optional)
 *    "limits": {"cpu_count": 2, "memory_mb": 512, "pids": 512, "disk_mb": 1024},
 *    "outputRing": 1048576, "sudo": false}
 *
 * The template dir: the shim mounts <dir>/rootfs as the overlay's lower
 * layer through a descriptor of <dir> on which it holds a shared flock for
 * the sandbox's whole life (sb_dir_hold, core/fs.h), after checking that
 * the directory's inode is still `identity` (else 409: the template was
 * rebuilt in between). serve's template_gc deletes a retired tree only once
 * it can take the lock exclusively, so no tree is deleted under a sandbox.
 * dataDir holds the sandbox's disk (dataDir/sandboxes/<id>) and the blank
 * image cache; runDir/sandboxes/<id>/ the shim's socket, pid and log.
 *
 * sudo (optional, false when absent): the template lets its user become
 * root with setuid programs (sudo), so the sandbox's processes run without
 * no_new_privs and its root filesystem is mounted without nosuid; the user
 * namespace, seccomp and the host-owned namespaces still confine that root
 * (docs/SECURITY.md).
 *
 * Codec only: plain data and its JSON form, no policy beyond validation.
 */
#ifndef SB_PROTO_SPEC_H
#define SB_PROTO_SPEC_H

#include <stdint.h>

#include "core/config.h"
#include "core/err.h"

#define SB_SPEC_VERSION 1
#define SB_SPEC_MAX_BINDS 8
#define SB_SPEC_DEFAULT_RING (1024u * 1024u)    /* output ring per stream when the spec names none */
#define SB_SPEC_MIN_RING (64u * 1024u)
#define SB_SPEC_MAX_RING (64u * 1024u * 1024u)

struct sb_spec_bind {
    char source[SB_PATH_MAX];           /* host path, absolute */
    char target[256];                   /* path inside the sandbox, absolute */
    int readonly;
};

/* One id range: sandbox ids [inside, inside+count) are host ids [outside, …). */
struct sb_spec_idmap {
    uint32_t inside, outside, count;
};

struct sb_spec {
    char id[32];                        /* sbx_…: cgroup and run dir name */
    char hostname[64];
    char data_dir[SB_PATH_MAX];
    char run_dir[SB_PATH_MAX];
    char template_name[64];
    char template_dir[SB_PATH_MAX];     /* rootfs is template_dir/rootfs */
    uint64_t template_identity;         /* the template dir's inode at resolve time */
    struct sb_spec_idmap uid_map, gid_map;
    char user[32];                      /* the default (non-root) user */
    uint32_t uid, gid;                  /* its ids inside the sandbox */
    char home[256];
    char workdir[256];                  /* default cwd of processes */
    char *env_json;                     /* owned: JSON object of strings, the base environment */
    int bind_count;
    struct sb_spec_bind binds[SB_SPEC_MAX_BINDS];
    struct sb_limits limits;            /* effective: every field > 0 */
    uint32_t output_ring;               /* bytes of replay ring per process stream
                                           ("outputRing"; absent in older specs: 1 MiB) */
    int sudo;                           /* setuid programs work: no no_new_privs, no nosuid root */
};

/* Sandbox ids name directories, sockets and cgroups: 1-31 chars of
 * [a-z0-9_-] (serve's are sbx_ + 20 base32 chars). */
int sb_spec_id_valid(const char *id);
/* Encodes spec as JSON text (compact). *text is malloc'd; caller frees. */
int sb_spec_to_json(const struct sb_spec *spec, char **text, struct sb_err *err);
/* Decodes and validates text into out (zeroed first). 400 naming the first
 * key that is missing, of the wrong type, too long or out of range. On
 * failure out holds nothing to free. */
int sb_spec_from_json(const char *text, struct sb_spec *out, struct sb_err *err);
/* Writes spec to path atomically (path.tmp, then rename), mode 0600. */
int sb_spec_write_file(const struct sb_spec *spec, const char *path, struct sb_err *err);
/* Reads and decodes path; 404 when it does not exist. */
int sb_spec_read_file(const char *path, struct sb_spec *out, struct sb_err *err);
/* Copies src into dst (dst owns its own env_json); 500 out of memory. */
int sb_spec_copy(struct sb_spec *dst, const struct sb_spec *src, struct sb_err *err);
void sb_spec_clear(struct sb_spec *spec);   /* frees env_json */

#endif
