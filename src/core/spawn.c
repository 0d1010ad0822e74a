/*
 * spawn.c - a helper program with its output on a pipe (see spawn.h).
 */
#include "core/spawn.h"

#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <unistd.h>

int sb_spawn_captured(const char *path, char *const argv[], char *const envp[], pid_t *pid,
                      int *out_fd)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) < 0)
        return errno;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pipefd[1], 2);
    posix_spawn_file_actions_addclosefrom_np(&fa, 3);
    int rc = posix_spawn(pid, path, &fa, NULL, argv, envp);
    posix_spawn_file_actions_destroy(&fa);
    close(pipefd[1]);
    if (rc != 0) {
        close(pipefd[0]);
        return rc;
    }
    *out_fd = pipefd[0];
    return 0;
}
