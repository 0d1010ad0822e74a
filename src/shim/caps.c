/*
 * caps.c - ids, capabilities, no_new_privs and rlimits for sandboxed processes.
 *
 * Capabilities go through the raw capget/capset syscalls (version 3, two
 * 32-bit words) so no library state is involved after fork. The bounding set
 * is cut first (it needs CAP_SETPCAP, which we still hold), then the
 * process sets are replaced in one capset. A sandboxed root (uid 0 in its
 * user namespace) regains exactly the bounding set at execve, so for root the
 * bounding set *is* the policy; for every other uid execve leaves nothing,
 * unless it execs a setuid-root file without no_new_privs (sudo templates),
 * and then it gets that same bounding set: root's.
 *
 * Owns: nothing.
 * Never: allocates, prints, or adds a capability outside the profile.
 */
#include "shim/caps.h"

#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Docker's default capability set. */
static const int root_default_caps[] = {
    CAP_CHOWN, CAP_DAC_OVERRIDE, CAP_FSETID, CAP_FOWNER, CAP_MKNOD, CAP_NET_RAW,
    CAP_SETGID, CAP_SETUID, CAP_SETFCAP, CAP_SETPCAP, CAP_NET_BIND_SERVICE,
    CAP_SYS_CHROOT, CAP_KILL, CAP_AUDIT_WRITE,
};

int caps_set_rlimits(void)
{
    const struct rlimit nofile = { 4096, 4096 };
    const struct rlimit core = { 0, 0 };
    if (setrlimit(RLIMIT_NOFILE, &nofile) < 0 || setrlimit(RLIMIT_CORE, &core) < 0)
        return -1;
    return 0;
}

int caps_set_ids(uid_t uid, gid_t gid)
{
    if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
        return -1;
    return 0;
}

static int last_cap(void)
{
    /* Probing with PR_CAPBSET_READ avoids depending on /proc being mounted. */
    int cap = CAP_LAST_CAP;
    while (prctl(PR_CAPBSET_READ, cap + 1, 0, 0, 0) >= 0)
        cap++;
    while (cap > 0 && prctl(PR_CAPBSET_READ, cap, 0, 0, 0) < 0)
        cap--;
    return cap;
}

static int is_root_default(int cap)
{
    for (size_t i = 0; i < sizeof(root_default_caps) / sizeof(root_default_caps[0]); i++)
        if (root_default_caps[i] == cap)
            return 1;
    return 0;
}

/* In the bounding set: what an exec may ever gain. */
static int in_bounding(enum sb_caps_profile profile, int cap)
{
    return profile != SB_CAPS_NONE && is_root_default(cap);
}

/* Held now (effective and permitted). */
static int in_profile(enum sb_caps_profile profile, int cap)
{
    return profile == SB_CAPS_ROOT_DEFAULT && is_root_default(cap);
}

int caps_apply(enum sb_caps_profile profile)
{
    int last = last_cap();
    struct __user_cap_header_struct hdr = { _LINUX_CAPABILITY_VERSION_3, 0 };
    struct __user_cap_data_struct data[2] = { { 0, 0, 0 }, { 0, 0, 0 } };
    for (int cap = 0; cap <= last; cap++) {
        if (in_profile(profile, cap)) {
            data[cap / 32].effective |= UINT32_C(1) << (cap % 32);
            data[cap / 32].permitted |= UINT32_C(1) << (cap % 32);
        }
        if (!in_bounding(profile, cap) && prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL)
            return -1;
    }
    if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
        return -1;
    return (int)syscall(SYS_capset, &hdr, data);
}

int caps_no_new_privs(void)
{
    return prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0);
}
