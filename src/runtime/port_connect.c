/*
 * port_connect.c - sockets inside a sandbox's network namespace (see
 * port_connect.h).
 *
 * How: the calling worker thread joins the sandbox's namespace
 * (/proc/<init>/ns/net, from registry_netns_open), creates the socket,
 * and returns to serve's own namespace before it does anything else; a
 * socket keeps the namespace it was created in, so the connect and all the
 * traffic after it stay there. Network namespaces are per thread, so no
 * other thread of serve is affected meanwhile. If the way back failed the
 * thread would serve every later job from inside a sandbox: the process
 * aborts instead (it cannot fail while serve holds its own namespace's fd
 * and keeps CAP_SYS_ADMIN).
 *
 * What the sandbox cannot change: the destination is always 127.0.0.1 of
 * the namespace the socket was made in, which is the sandbox's own (its
 * loopback is its own, and no route or rule of the sandbox's can apply,
 * since sandboxed root has no capability over a namespace owned by the
 * initial user namespace). The port is the client's, checked 1-65535 above.
 *
 * Owns: serve's own namespace fd (opened once, never closed).
 */
#include "runtime/port_connect.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "runtime/registry.h"

static int own_netns = -1;
static pthread_once_t own_netns_once = PTHREAD_ONCE_INIT;

static void open_own_netns(void)
{
    own_netns = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
}

/* A TCP socket created in namespace netns_fd; -1 with err. */
static int socket_in(int netns_fd, struct sb_err *err)
{
    pthread_once(&own_netns_once, open_own_netns);
    if (own_netns < 0)
        return sb_err_sys(err, 500, "cannot open serve's own network namespace");
    if (setns(netns_fd, CLONE_NEWNET) < 0)
        return sb_err_sys(err, 502, "cannot enter the sandbox's network namespace");
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int saved = errno;
    if (setns(own_netns, CLONE_NEWNET) < 0) {
        sb_error("port proxy: cannot return to serve's network namespace (%s): stopping",
                 strerror(errno));
        abort();
    }
    if (fd < 0) {
        errno = saved;
        return sb_err_sys(err, 502, "cannot open a socket in the sandbox");
    }
    return fd;
}

int port_connect_error(struct sb_err *err, int e, const char *id, unsigned port)
{
    if (e == ECONNREFUSED)
        return sb_err_set(err, 502, "nothing listens on port %u in sandbox %s (connection refused): "
                          "start a server on 127.0.0.1:%u or 0.0.0.0:%u there", port, id, port, port);
    errno = e;
    return sb_err_sys(err, 502, "cannot connect to port %u in sandbox %s", port, id);
}

int port_connect(struct sb_registry *reg, const char *id, unsigned port, int *fd_out, int *pending,
                 struct sb_err *err)
{
    int netns;
    if (registry_netns_open(reg, id, &netns, err) < 0)
        return -1;
    int fd = socket_in(netns, err);
    close(netns);
    if (fd < 0)
        return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *pending = 0;
    if (connect(fd, (struct sockaddr *)&to, sizeof to) < 0) {
        if (errno != EINPROGRESS) {
            int e = errno;
            close(fd);
            return port_connect_error(err, e, id, port);
        }
        *pending = 1;
    }
    *fd_out = fd;
    return 0;
}
