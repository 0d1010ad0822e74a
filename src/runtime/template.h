/*
 * template.h - sandbox templates: a read-only root directory plus template.json.
 *
 * On disk: <data-dir>/templates/<name>/template.json and .../rootfs/.
 * rootfs is the overlay's lower layer. Its files are owned by *mapped* host
 * ids: sandbox uid u is host uid (uid_base + u), so the template's root-owned
 * files belong to host uid uid_base and `user` (1000) to uid_base + 1000.
 *
 * template.json:
 *   {"name": "base", "kind": "host" | "debian",
 *    "user": "user", "uid": 1000, "gid": 1000, "home": "/home/user",
 *    "workdir": "/home/user", "env": {"PATH": "..."},
 *    "binds": [{"source": "/usr", "target": "/usr", "readonly": true}],
 *    "limits": {"cpu_count": 2, "memory_mb": 512, "pids": 512, "disk_mb": 1024},
 *    "packages": ["python3", ...], "network": "internet" | "none",
 *    "sudo": true, "createdAt": "RFC 3339",
 *    "org": "org_...", "snapshot": {"sandboxID": "sbx_...", "template": "base", "name": "..."}}
 * `binds` are host directories bind-mounted read-only, nosuid, nodev into the
 * sandbox (the `host` kind uses them for /usr); `limits` (optional, each key
 * optional) override the server defaults within the server maxima;
 * `network` (optional) overrides config network.default for creates that
 * do not say allow_internet_access themselves. `sudo` (optional, false when
 * absent) lets the user become root with setuid programs, as E2B's
 * templates do: the sandbox's processes then run without no_new_privs and
 * its root is mounted without nosuid (proto/spec.h, docs/SECURITY.md).
 * Debian builds turn it on and write the user's NOPASSWD sudoers entry;
 * host builds leave it off (the host's /usr is nosuid and root-owned).
 *
 * `org` (optional) makes the template private to that org: snapshots of a
 * sandbox (template_snapshot, below) carry the org that made them, and
 * every API path treats such a template as unknown to any other org
 * (template_visible). Templates without it (built ones) are shared.
 * `snapshot` says where a snapshot came from.
 *
 * Building runs on the CLI or a worker thread, never on the HTTP loop.
 */
#ifndef SB_RUNTIME_TEMPLATE_H
#define SB_RUNTIME_TEMPLATE_H

#include <stddef.h>
#include <stdint.h>

#include "core/config.h"
#include "core/err.h"

#define SB_TEMPLATE_NAME_MAX 64
#define SB_TEMPLATE_MAX_BINDS 8

struct sb_template_bind {
    char source[SB_PATH_MAX];
    char target[256];
    int readonly;
};

struct sb_template {
    char name[SB_TEMPLATE_NAME_MAX];
    char kind[16];                  /* host | debian */
    char dir[SB_PATH_MAX];          /* <data-dir>/templates/<name> */
    char rootfs[SB_PATH_MAX];       /* dir + "/rootfs" */
    char user[32];
    uint32_t uid, gid;
    char home[256];
    char workdir[256];
    char *env_json;                 /* owned: JSON object text */
    int bind_count;
    struct sb_template_bind binds[SB_TEMPLATE_MAX_BINDS];
    struct sb_limits limits;        /* 0 = not overridden */
    char network[16];               /* "internet" | "none" | "" (server default) */
    int sudo;                       /* the user may become root through setuid sudo */
    char created_at[32];
    uint64_t identity;              /* template_identity() when loaded */
    char org_id[40];                /* "org": the owning org; "" = shared (built-in) */
    char snapshot_of[32];           /* snapshot.sandboxID; "" = not a snapshot */
    char snapshot_name[SB_TEMPLATE_NAME_MAX];   /* snapshot.name; "" = none given */
};

/* True when tpl is private to org_id (one of its snapshots). */
int template_owned_by(const struct sb_template *tpl, const char *org_id);
/* True when org_id may see and use tpl: shared templates and its own snapshots. */
int template_visible(const struct sb_template *tpl, const char *org_id);

/* Valid names: 1-63 chars of [a-z0-9_-], starting with a letter or digit. */
int template_name_valid(const char *name);
/* 400 "unknown template: NAME" when it does not exist. */
int template_load(const char *data_dir, const char *name, struct sb_template *out, struct sb_err *err);
void template_clear(struct sb_template *tpl);   /* frees env_json */
/* Every template, sorted by name; caller frees with template_list_free. */
int template_list(const char *data_dir, struct sb_template **out, size_t *count, struct sb_err *err);
void template_list_free(struct sb_template *list, size_t count);
/* Effective limits: server defaults, then the template's overrides, clamped to maxima. */
void template_effective_limits(const struct sb_template *tpl, const struct sb_config *cfg,
                               struct sb_limits *out);

/* Progress lines (e.g. debootstrap output) go to this callback; may be NULL. */
typedef void (*sb_progress_fn)(void *arg, const char *line);

/* Without force, a template that already exists is a 409 (checked before
 * the build starts and again when it is moved into place); with force it is
 * replaced and the old tree retired (running sandboxes keep it). */
int template_build_host(const char *data_dir, const char *name, uint32_t uid_base, int force,
                        struct sb_err *err);
/* packages: comma-separated extra Debian packages, or NULL. mirror NULL = deb.debian.org
 * (or $SANDBASE_DEBIAN_MIRROR). */
int template_build_debian(const char *data_dir, const char *name, uint32_t uid_base,
                          const char *packages, const char *mirror, int force,
                          sb_progress_fn progress, void *progress_arg, struct sb_err *err);
/* Retires the template (404 when unknown): new sandboxes cannot use it,
 * running ones keep their tree until they end. */
int template_remove(const char *data_dir, const char *name, struct sb_err *err);

/* Deletes retired trees (old versions of rebuilt or removed templates) that
 * no sandbox holds any more (a shim holds its tree with sb_dir_hold, core/fs.h). Blocks on the disk. */
int template_gc(const char *data_dir, struct sb_err *err);
/* An id of the template's current version (its directory's inode): it
 * changes when the template is rebuilt. -1 when there is no such template.
 * One stat(2): cheap enough for the HTTP loop. */
int template_identity(const char *data_dir, const char *name, uint64_t *out);

/* ---- snapshots (template_snapshot.c) */

/* Snapshot ids are template names: "snap-" + 20 lowercase base32 chars. */
#define SB_SNAPSHOT_PREFIX "snap-"

/* One snapshot to take: the live root of a sandbox (hostile: the sandbox's
 * root user controls every entry) copied into a new private template. */
struct sb_snapshot_request {
    int root_fd;                    /* the sandbox's / (any fd of it, O_PATH is enough); not owned */
    const char *name;               /* the new template's name (SB_SNAPSHOT_PREFIX + random) */
    const char *source_template;    /* the template the sandbox runs: its template.json is the base */
    const char *org_id;             /* the owner */
    const char *sandbox_id;
    const char *label;              /* the user's name for it, or NULL */
    uint32_t uid_base;              /* host id of sandbox id 0 */
    uint64_t max_bytes;             /* the copy's bound */
};
/* What a snapshot of req->root_fd would write: bytes of regular files plus
 * SB_SNAPSHOT_ENTRY_BYTES per entry, stopping (507) once past max_bytes. */
#define SB_SNAPSHOT_ENTRY_BYTES 1024
int template_snapshot_measure(int root_fd, uint64_t max_bytes, uint64_t *bytes, struct sb_err *err);
/* What a trusted tree (a template's rootfs) holds, counted as above. */
int template_tree_bytes(const char *path, uint64_t *bytes, struct sb_err *err);
/* Copies the tree into <data-dir>/templates/<req->name> (staged, committed
 * in one rename; nothing is left behind on failure). Blocks: workers only. */
int template_snapshot(const char *data_dir, const struct sb_snapshot_request *req, struct sb_err *err);

#endif
