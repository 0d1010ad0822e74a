/*
 * limits.c - connection guards around MHD (see limits.h): the request read
 * deadline, a summary of refused connections, and the fd limit.
 *
 * The per-address and global connection caps are MHD's own
 * (MHD_OPTION_PER_IP_CONNECTION_LIMIT, MHD_OPTION_CONNECTION_LIMIT); what
 * MHD lacks is a deadline: its connection timeout is an idle timer, so one
 * byte every few seconds holds a connection forever. Here every TCP
 * connection gets a record (its MHD socket context) in one of three phases:
 *   READING   since its first byte (for the first request: since it was
 *             accepted); closed once read_timeout_s has passed, however
 *             slowly it keeps sending.
 *   HANDLING  the whole request is in; the answer (deferred or not) and its
 *             sending are MHD's idle timeout's business.
 *   IDLE      keep-alive between requests, also MHD's idle timeout's. The
 *             next request's first byte is seen as the socket's received
 *             byte count (TCP_INFO) growing, or as its headers arriving.
 * The sweep (server_tick, every SWEEP_MS) shuts overdue sockets down with
 * shutdown(SHUT_RDWR): MHD then sees the end of the stream and closes the
 * connection itself, so nothing is closed behind MHD's back.
 *
 * Owns: the records (freed when MHD reports the connection closed). Loop
 * thread only. Never closes an fd: MHD owns them all.
 */
#include "http/limits.h"

#include <errno.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>

#include "core/log.h"
#include "core/loop.h"

#define SWEEP_MS 250
#define REPORT_MS 10000         /* at most one summary line per kind this often */
#define FD_RESERVE 1024         /* fds kept for the store, shims, workers, logs */
#define REFUSED_LINE "Server reached connection limit"

enum conn_phase { PHASE_READING, PHASE_HANDLING, PHASE_IDLE, PHASE_SHUT };

struct tracked_conn {
    int fd;
    enum conn_phase phase;
    uint64_t since_ms;          /* READING: when the request's first byte came */
    uint64_t bytes_at_done;     /* IDLE: the socket's received bytes then */
    struct tracked_conn *prev, *next;
};

struct http_limits {
    uint64_t read_timeout_ms;
    struct tracked_conn *conns;     /* doubly linked, newest first */
    uint64_t next_sweep_ms;
    unsigned refused, expired;      /* since the last summary line */
    uint64_t last_report_ms;
};

struct http_limits *http_limits_new(unsigned read_timeout_s)
{
    struct http_limits *limits = calloc(1, sizeof *limits);
    if (limits)
        limits->read_timeout_ms = (uint64_t)read_timeout_s * 1000;
    return limits;
}

/* Records left here were never reported closed; MHD_stop_daemon reports
 * every connection, so this is only a safety net. */
void http_limits_free(struct http_limits *limits)
{
    if (!limits)
        return;
    while (limits->conns) {
        struct tracked_conn *next = limits->conns->next;
        free(limits->conns);
        limits->conns = next;
    }
    free(limits);
}

/* The socket's received byte count, or 0 when the kernel will not say. */
static uint64_t socket_bytes_received(int fd)
{
    struct tcp_info info;
    socklen_t len = sizeof info;
    memset(&info, 0, sizeof info);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &info, &len) < 0)
        return 0;
    return info.tcpi_bytes_received;
}

static struct tracked_conn *conn_of(struct MHD_Connection *mhd)
{
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return info ? info->socket_context : NULL;
}

void http_limits_on_connection(void *cls, struct MHD_Connection *mhd, void **socket_context,
                               enum MHD_ConnectionNotificationCode code)
{
    struct http_limits *limits = cls;
    struct tracked_conn *conn = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        if (!conn)
            return;
        if (conn->prev)
            conn->prev->next = conn->next;
        else
            limits->conns = conn->next;
        if (conn->next)
            conn->next->prev = conn->prev;
        free(conn);
        *socket_context = NULL;
        return;
    }
    const union MHD_ConnectionInfo *info =
        MHD_get_connection_info(mhd, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!info || !(conn = calloc(1, sizeof *conn)))
        return;     /* untracked: only MHD's idle timeout applies to it */
    conn->fd = info->connect_fd;
    conn->phase = PHASE_READING;
    conn->since_ms = sb_now_ms();
    conn->next = limits->conns;
    if (limits->conns)
        limits->conns->prev = conn;
    limits->conns = conn;
    *socket_context = conn;
}

void http_limits_request_started(struct MHD_Connection *mhd)
{
    struct tracked_conn *conn = conn_of(mhd);
    if (conn && conn->phase == PHASE_IDLE) {    /* pipelined: no new byte was needed */
        conn->phase = PHASE_READING;
        conn->since_ms = sb_now_ms();
    }
}

void http_limits_request_received(struct MHD_Connection *mhd)
{
    struct tracked_conn *conn = conn_of(mhd);
    if (conn && conn->phase != PHASE_SHUT)
        conn->phase = PHASE_HANDLING;
}

void http_limits_request_done(struct MHD_Connection *mhd)
{
    struct tracked_conn *conn = conn_of(mhd);
    if (!conn || conn->phase == PHASE_SHUT)
        return;
    conn->phase = PHASE_IDLE;
    conn->bytes_at_done = socket_bytes_received(conn->fd);
}

int http_limits_take_log(struct http_limits *limits, const char *fmt)
{
    if (strncmp(fmt, REFUSED_LINE, strlen(REFUSED_LINE)) != 0)
        return 0;
    limits->refused++;
    return 1;
}

/* One line per kind of trouble at most every REPORT_MS, with the counts. */
static void sweep_report(struct http_limits *limits, uint64_t now_ms)
{
    if ((!limits->refused && !limits->expired) || now_ms - limits->last_report_ms < REPORT_MS)
        return;
    if (limits->refused)
        sb_warn("http: refused %u connection(s) over max_connections or "
                "max_connections_per_address", limits->refused);
    if (limits->expired)
        sb_warn("http: closed %u connection(s) that had not sent a whole request within "
                "request_read_timeout_s (%llus)", limits->expired,
                (unsigned long long)(limits->read_timeout_ms / 1000));
    limits->refused = limits->expired = 0;
    limits->last_report_ms = now_ms;
}

int64_t http_limits_sweep(struct http_limits *limits, uint64_t now_ms)
{
    if (now_ms < limits->next_sweep_ms)
        return (int64_t)(limits->next_sweep_ms - now_ms);
    limits->next_sweep_ms = now_ms + SWEEP_MS;
    for (struct tracked_conn *conn = limits->conns; conn; conn = conn->next) {
        if (conn->phase == PHASE_IDLE && socket_bytes_received(conn->fd) > conn->bytes_at_done) {
            conn->phase = PHASE_READING;    /* the next request's first bytes */
            conn->since_ms = now_ms;
        }
        if (conn->phase != PHASE_READING || now_ms - conn->since_ms < limits->read_timeout_ms)
            continue;
        shutdown(conn->fd, SHUT_RDWR);      /* MHD sees the end and closes it */
        conn->phase = PHASE_SHUT;
        limits->expired++;
    }
    sweep_report(limits, now_ms);
    if (!limits->conns && !limits->refused && !limits->expired)
        return -1;
    return SWEEP_MS;
}

void http_limits_fit_fd_limit(unsigned *connections, unsigned *per_address)
{
    struct rlimit lim;
    if (getrlimit(RLIMIT_NOFILE, &lim) < 0)
        return;
    if (lim.rlim_cur < lim.rlim_max) {
        rlim_t was = lim.rlim_cur;
        lim.rlim_cur = lim.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &lim) < 0) {
            sb_warn("http: cannot raise the open-file limit from %llu to %llu: %s",
                    (unsigned long long)was, (unsigned long long)lim.rlim_max, strerror(errno));
            lim.rlim_cur = was;
        }
    }
    if (lim.rlim_cur == RLIM_INFINITY || (uint64_t)*connections + FD_RESERVE <= lim.rlim_cur)
        return;
    unsigned fit = lim.rlim_cur > FD_RESERVE * 2 ? (unsigned)(lim.rlim_cur - FD_RESERVE)
                                                 : (unsigned)(lim.rlim_cur / 2);
    sb_warn("http: the open-file limit (%llu) leaves room for %u connections, not "
            "max_connections=%u: serving %u (raise `ulimit -Hn` for more)",
            (unsigned long long)lim.rlim_cur, fit, *connections, fit);
    *connections = fit;
    if (*per_address > fit / 2)
        *per_address = fit / 2 ? fit / 2 : 1;
}
