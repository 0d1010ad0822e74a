/*
 * pty.h - pseudo-terminals for sandboxed processes, allocated in the
 * sandbox's own devpts instance (mounted newinstance at its /dev/pts), so
 * the process sees /dev/pts/N of its sandbox and no host terminal is ever
 * reachable from inside.
 *
 * The shim keeps the master; the process gets the slave as stdin, stdout
 * and stderr and makes it its controlling terminal (container_enter_and_exec,
 * after setsid). Output is one stream. Shim side only; never blocks.
 */
#ifndef SB_SHIM_PTY_H
#define SB_SHIM_PTY_H

#include <stdint.h>

#include "core/err.h"
#include "shim/container.h"

#define SB_PTY_MAX_DIM 4096             /* rows and cols: 1..this */

/* Opens a master in c's devpts (through /dev/pts/ptmx beneath its root, no
 * symlink followed out of it) and its slave (TIOCGPTPEER: no path lookup),
 * both O_CLOEXEC, the master non-blocking; sets the window size and gives the
 * slave to the process's user (host ids of uid, and the sandbox's tty group).
 * 500 with err on failure. */
int pty_open(const struct sb_container *c, uint32_t uid, uint16_t rows, uint16_t cols,
             int *master, int *slave, struct sb_err *err);

/* TIOCSWINSZ on the master: the kernel sends SIGWINCH to the foreground group. */
int pty_resize(int master, uint16_t rows, uint16_t cols, struct sb_err *err);

#endif
