/*
 * sandbox_init.c - PID 1 of every sandbox, as its own tiny program.
 *
 * Built freestanding and static (no libc, a few KiB; see CMakeLists.txt),
 * embedded in the sandbase binary and exec'd from a memfd by the sandbox's
 * first process once set-up is done (shim/container.c). Until then PID 1 is
 * a copy-on-write clone of the shim; exec'ing this drops that copy, which
 * was about half of a sandbox's idle host memory.
 *
 * It only reaps: SIGCHLD is blocked and collected with rt_sigtimedwait, so
 * an exit between the last wait4 and the wait for the signal leaves the
 * signal pending and is never missed. It is not dumpable. Never: prints,
 * allocates, handles any other signal, or returns.
 */

#define NR_SIGCHLD 17
#define WNOHANG_FLAG 1
#define WALL_FLAG 0x40000000
#define SIG_BLOCK_HOW 0
#define PR_SET_DUMPABLE_OPT 4

#if defined(__x86_64__)
#define SYS_RT_SIGPROCMASK 14
#define SYS_WAIT4 61
#define SYS_RT_SIGTIMEDWAIT 128
#define SYS_PRCTL 157
#define SYS_EXIT 60

static long sys4(long n, long a, long b, long c, long d)
{
    long ret;
    register long r10 __asm__("r10") = d;
    __asm__ volatile("syscall" : "=a"(ret) : "a"(n), "D"(a), "S"(b), "d"(c), "r"(r10)
                     : "rcx", "r11", "memory");
    return ret;
}

__asm__(".text\n.global _start\n_start:\n xor %rbp, %rbp\n and $-16, %rsp\n call init_main\n hlt\n");

#elif defined(__aarch64__)
#define SYS_RT_SIGPROCMASK 135
#define SYS_WAIT4 260
#define SYS_RT_SIGTIMEDWAIT 137
#define SYS_PRCTL 167
#define SYS_EXIT 93

static long sys4(long n, long a, long b, long c, long d)
{
    register long x8 __asm__("x8") = n;
    register long x0 __asm__("x0") = a;
    register long x1 __asm__("x1") = b;
    register long x2 __asm__("x2") = c;
    register long x3 __asm__("x3") = d;
    __asm__ volatile("svc 0" : "+r"(x0) : "r"(x8), "r"(x1), "r"(x2), "r"(x3) : "memory");
    return x0;
}

__asm__(".text\n.global _start\n_start:\n mov x29, #0\n bl init_main\n");

#else
#error "sandbox_init.c: add this architecture's syscall numbers"
#endif

__attribute__((noreturn, used)) void init_main(void)
{
    unsigned long chld = 1UL << (NR_SIGCHLD - 1);
    sys4(SYS_PRCTL, PR_SET_DUMPABLE_OPT, 0, 0, 0);
    sys4(SYS_RT_SIGPROCMASK, SIG_BLOCK_HOW, (long)&chld, 0, sizeof chld);
    for (;;) {
        while (sys4(SYS_WAIT4, -1, 0, WNOHANG_FLAG | WALL_FLAG, 0) > 0)
            ;
        sys4(SYS_RT_SIGTIMEDWAIT, (long)&chld, 0, 0, sizeof chld);
    }
}
