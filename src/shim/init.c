/*
 * init.c - PID 1 of a sandbox: a zombie reaper and nothing else. It execs
 * the embedded static reaper (src/init/sandbox_init.c) when it can, and
 * otherwise reaps here, the same way.
 *
 * SIGCHLD with the default action is discarded at generation for a
 * namespace init, so it is blocked instead and collected with sigwaitinfo;
 * a child that dies between the last waitpid and sigwaitinfo leaves the
 * signal pending, so no exit is missed.
 *
 * Owns: nothing.  Never: returns, prints, or handles any other signal.
 */
#include "shim/init.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

/* The static reaper built from src/init/sandbox_init.c (CMakeLists.txt). */
extern const unsigned char sb_init_blob[];
extern const size_t sb_init_blob_len;

/* Execs the embedded reaper from a sealed memfd; returns only on failure. */
static void exec_embedded_init(void)
{
    int fd = memfd_create("sandbox-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
    if (fd < 0)
        return;
    size_t off = 0;
    while (off < sb_init_blob_len) {
        ssize_t n = write(fd, sb_init_blob + off, sb_init_blob_len - off);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    if (off == sb_init_blob_len &&
        fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) == 0) {
        char *const argv[] = {"sandbox-init", NULL};
        char *const envp[] = {NULL};
        syscall(SYS_execveat, fd, "", argv, envp, AT_EMPTY_PATH);
    }
    close(fd);
}

void init_reap_forever(void)
{
    exec_embedded_init();
    sigset_t chld;
    sigemptyset(&chld);
    sigaddset(&chld, SIGCHLD);
    sigprocmask(SIG_BLOCK, &chld, NULL);
    for (;;) {
        while (waitpid(-1, NULL, WNOHANG) > 0)
            ;
        sigwaitinfo(&chld, NULL);
    }
}
