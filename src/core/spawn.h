/*
 * spawn.h - starting a helper program whose output the caller reads:
 * posix_spawn (no copy of the caller's address space) with stdin /dev/null,
 * stdout and stderr on one pipe, and no other fd of the caller.
 */
#ifndef SB_CORE_SPAWN_H
#define SB_CORE_SPAWN_H

#include <sys/types.h>

/* Starts path with argv and envp; *out_fd (O_CLOEXEC) reads its stdout and
 * stderr, and the caller closes it and reaps *pid. 0, or the errno value
 * why it could not start (nothing is left open then). */
int sb_spawn_captured(const char *path, char *const argv[], char *const envp[], pid_t *pid,
                      int *out_fd);

#endif
