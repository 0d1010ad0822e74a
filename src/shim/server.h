/*
 * server.h - the shim's event loop and the server side of the shim protocol.
 *
 * One single-threaded epoll loop serves <run-dir>/sandboxes/<id>/shim.sock:
 * client connections, the process table's pipes (shim/process.h) and a
 * signalfd for SIGCHLD/SIGTERM/SIGINT. It owns the listening socket, every
 * client connection and every attachment; the container (already built by
 * container_create) stays the caller's until destroy. It must never block on
 * a client or a pipe, and never die from anything a sandboxed process does.
 */
#ifndef SB_SHIM_SERVER_H
#define SB_SHIM_SERVER_H

#include "core/config.h"
#include "core/err.h"
#include "shim/container.h"
#include "shim/process.h"

#define SB_SHIM_CLIENT_SOFT_OUT (256u * 1024u)  /* queued bytes before a client counts as lagging */
#define SB_SHIM_CLIENT_HARD_OUT (16u * 1024u * 1024u)  /* beyond this the client is dropped */
#define SB_SHIM_MAX_CLIENTS 256

struct sb_client;
struct sb_wait;

struct sb_shim_server {
    struct sb_container *c;
    int epfd;
    int listen_fd;
    int signal_fd;
    struct sb_shim_watch listen_watch, signal_watch;
    struct sb_proc_table procs;
    struct sb_client *clients;      /* owned */
    int client_count;
    struct sb_wait *waits;          /* owned: deferred "wait" answers */
    int paused;
    int destroyed;                  /* container_destroy ran: leave the loop */
    char sandbox_run_dir[SB_PATH_MAX];
    char sock_path[108];
};

/* Creates the epoll set, the signalfd (blocking SIGCHLD, SIGTERM, SIGINT for
 * the calling process) and the listening socket <sandbox_run_dir>/shim.sock
 * (mode 0600). The signal mask is the caller's to restore; nothing else to
 * undo but shim_server_free. */
int shim_server_init(struct sb_shim_server *s, struct sb_container *c, const char *sandbox_run_dir,
                     struct sb_err *err);
/* Serves until a destroy request or SIGTERM/SIGINT has destroyed the
 * container. Returns 0 then, -1 if the loop itself failed. */
int shim_server_run(struct sb_shim_server *s);
/* Closes everything; removes the socket. Does not destroy the container. */
void shim_server_free(struct sb_shim_server *s);

#endif
