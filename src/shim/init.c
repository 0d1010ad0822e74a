/*
 * init.c - PID 1 of a sandbox: a zombie reaper and nothing else.
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
#include <signal.h>
#include <sys/wait.h>

void init_reap_forever(void)
{
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
