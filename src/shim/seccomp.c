/*
 * seccomp.c - builds the sandbox's syscall filter with libseccomp and loads it.
 *
 * The filter is compiled once (seccomp_default) and exported to BPF in
 * memory; a forked child only calls prctl(PR_SET_SECCOMP) with the ready
 * program, which costs microseconds per exec. Syscalls libseccomp does not
 * know on this architecture (i386-only ones such as vm86 on x86_64) are
 * skipped: no such entry point exists, and any other ABI is killed by the
 * bad-architecture action anyway (libseccomp also rejects x32 numbers on
 * x86_64 with that action).
 *
 * Owns: the exported BPF of struct sb_seccomp.
 * Never: loads a filter into the process that builds it.
 */
#include "shim/seccomp.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/audit.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

/* Denied outright with EPERM (Docker's blocked set plus newer equivalents). */
static const char *const denied[] = {
    "acct", "add_key", "bpf", "clock_adjtime", "clock_settime", "create_module",
    "delete_module", "finit_module", "init_module", "get_kernel_syms", "query_module",
    "get_mempolicy", "set_mempolicy", "mbind", "move_pages", "ioperm", "iopl", "kcmp",
    "kexec_load", "kexec_file_load", "keyctl", "request_key", "lookup_dcookie",
    "mount", "umount", "umount2", "pivot_root", "nfsservctl", "open_by_handle_at", "name_to_handle_at", "perf_event_open",
    "process_vm_readv", "process_vm_writev", "process_madvise", "pidfd_getfd", "ptrace",
    "quotactl", "quotactl_fd", "reboot", "setns", "unshare", "settimeofday", "stime",
    "swapon", "swapoff", "sysfs", "_sysctl", "uselib", "userfaultfd", "ustat", "vm86",
    "vm86old", "fsopen", "fsconfig", "fsmount", "fspick", "move_mount", "open_tree",
    "mount_setattr", "syslog", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "vhangup",
};

/* clone() is denied when any of these flags is set in arg0 (x86_64/arm64 flag position). */
static const unsigned long clone_ns_flags[] = {
    CLONE_NEWNS, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET, CLONE_NEWCGROUP,
};

#if defined(__x86_64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_X86_64
#elif defined(__aarch64__)
#define NATIVE_AUDIT_ARCH AUDIT_ARCH_AARCH64
#else
#error "seccomp.c: add this architecture's AUDIT_ARCH"
#endif

#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
#define ARG0_LOW offsetof(struct seccomp_data, args[0])
#else
#define ARG0_LOW (offsetof(struct seccomp_data, args[0]) + 4)
#endif

/* arch != native -> ALLOW (the main filter kills it); nr != personality ->
 * ALLOW; low 32 bits of arg0 one of Docker's values (PER_LINUX 0, PER_LINUX32
 * 8, UNAME26 0x20000, UNAME26|PER_LINUX32, the 0xffffffff query) -> ALLOW;
 * else EPERM. */
static struct sock_filter personality_prog[] = {
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, arch)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, NATIVE_AUDIT_ARCH, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_personality, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    BPF_STMT(BPF_LD | BPF_W | BPF_ABS, ARG0_LOW),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x0, 5, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x8, 4, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x20000, 3, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0x20008, 2, 0),
    BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, 0xffffffff, 1, 0),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
    BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
};

static int add_rules(scmp_filter_ctx ctx, struct sb_err *err)
{
    int rc;
    for (size_t i = 0; i < sizeof(denied) / sizeof(denied[0]); i++) {
        int nr = seccomp_syscall_resolve_name(denied[i]);
        if (nr < 0) /* unknown here (__NR_SCMP_ERROR) or not a native syscall (pseudo number) */
            continue;
        if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0)) < 0)
            return sb_err_set(err, 500, "seccomp: rule for %s: %s", denied[i], strerror(-rc));
    }
    for (size_t i = 0; i < sizeof(clone_ns_flags) / sizeof(clone_ns_flags[0]); i++) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
                              SCMP_A0(SCMP_CMP_MASKED_EQ, clone_ns_flags[i], clone_ns_flags[i]));
        if (rc < 0)
            return sb_err_set(err, 500, "seccomp: clone rule: %s", strerror(-rc));
    }
    /* clone3's flags live in memory seccomp cannot read: make libc fall back to clone. */
    if ((rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0)) < 0)
        return sb_err_set(err, 500, "seccomp: clone3 rule: %s", strerror(-rc));
    /* Compare only the low 32 bits: the kernel ignores the rest (CVE-2019-10063). */
    const unsigned long ioctls[] = { TIOCSTI, TIOCLINUX };
    for (size_t i = 0; i < 2; i++) {
        rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(ioctl), 1,
                              SCMP_A1(SCMP_CMP_MASKED_EQ, 0xffffffffUL, ioctls[i]));
        if (rc < 0)
            return sb_err_set(err, 500, "seccomp: ioctl rule: %s", strerror(-rc));
    }
    /* vsock is not network-namespaced: it would reach the hypervisor host. */
    rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(socket), 1,
                          SCMP_A0(SCMP_CMP_MASKED_EQ, 0xffffffffUL, AF_VSOCK));
    if (rc < 0)
        return sb_err_set(err, 500, "seccomp: socket rule: %s", strerror(-rc));
    return 0;
}

/* libseccomp 2.5 exports only to an fd: go through a memfd. */
static int export_bpf(scmp_filter_ctx ctx, struct sock_fprog *prog, struct sb_err *err)
{
    int fd = memfd_create("sandbase-seccomp", MFD_CLOEXEC);
    if (fd < 0)
        return sb_err_sys(err, 500, "seccomp: memfd_create");
    int rc = seccomp_export_bpf(ctx, fd);
    off_t size = lseek(fd, 0, SEEK_END);
    if (rc < 0 || size <= 0 || size % sizeof(struct sock_filter) != 0) {
        close(fd);
        return sb_err_set(err, 500, "seccomp: exporting BPF failed (%s)", rc < 0 ? strerror(-rc) : "bad size");
    }
    struct sock_filter *filter = malloc((size_t)size);
    if (!filter || pread(fd, filter, (size_t)size, 0) != size) {
        free(filter);
        close(fd);
        return sb_err_sys(err, 500, "seccomp: reading exported BPF");
    }
    close(fd);
    prog->filter = filter;
    prog->len = (unsigned short)(size / sizeof(struct sock_filter));
    return 0;
}

int seccomp_build(struct sb_seccomp *out, struct sb_err *err)
{
    memset(out, 0, sizeof(*out));
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
    if (!ctx)
        return sb_err_set(err, 500, "seccomp: seccomp_init failed");
    int rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
    if (rc == 0)
        rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_NNP, 1);
    if (rc < 0) {
        seccomp_release(ctx);
        return sb_err_set(err, 500, "seccomp: setting attributes: %s", strerror(-rc));
    }
    if (add_rules(ctx, err) < 0 || export_bpf(ctx, &out->main, err) < 0) {
        seccomp_release(ctx);
        return -1;
    }
    seccomp_release(ctx);
    out->personality.filter = personality_prog;
    out->personality.len = sizeof(personality_prog) / sizeof(personality_prog[0]);
    return 0;
}

void seccomp_free(struct sb_seccomp *f)
{
    free(f->main.filter);
    memset(f, 0, sizeof(*f));
}

int seccomp_default(const struct sb_seccomp **out, struct sb_err *err)
{
    static struct sb_seccomp filter;
    static int ready;
    if (!ready) {
        if (seccomp_build(&filter, err) < 0)
            return -1;
        ready = 1;
    }
    *out = &filter;
    return 0;
}

int seccomp_apply(const struct sb_seccomp *f)
{
    if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &f->personality, 0, 0) < 0)
        return -1;
    return prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &f->main, 0, 0);
}
