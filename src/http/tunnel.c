/*
 * tunnel.c - raw upgrades (see tunnel.h): the upgrade response, the
 * hand-over of MHD's socket, and the server's list of open tunnels so that
 * stopping the daemon gives every socket back to MHD first (MHD_stop_daemon
 * must not find an upgraded socket still out).
 *
 * Life of one: accepted (pending on its conn until MHD upgrades it or the
 * request ends without it), open (the handler owns the socket), then
 * released by the handler or dropped by the server (on_close).
 *
 * Owns: the tunnel records. Never reads or writes the socket itself.
 * Loop thread only.
 */
#include "http/tunnel.h"

#include <fcntl.h>
#include <stdlib.h>
#include <strings.h>

#include "core/log.h"
#include "http/conn.h"

struct sb_tunnel {
    struct sb_tunnel **list;            /* the server's open tunnels */
    struct sb_tunnel *prev, *next;
    struct sb_http_conn *pending;       /* the conn, until on_upgrade */
    struct sb_tunnel_handlers handlers;
    void *arg;
    struct MHD_UpgradeResponseHandle *urh;  /* NULL until on_upgrade */
};

static void tunnel_unlink(struct sb_tunnel *t)
{
    if (!t->list)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        *t->list = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->list = NULL;
    t->prev = t->next = NULL;
}

static void tunnel_free(struct sb_tunnel *t)
{
    tunnel_unlink(t);
    if (t->pending)
        t->pending->tunnel = NULL;
    if (t->urh)
        MHD_upgrade_action(t->urh, MHD_UPGRADE_ACTION_CLOSE);
    free(t);
}

/* The server ends it: the handler hears of it first, so it unwatches the
 * socket before MHD closes it. */
static void tunnel_drop(struct sb_tunnel *t)
{
    tunnel_unlink(t);
    if (t->handlers.on_close)
        t->handlers.on_close(t->arg);
    tunnel_free(t);
}

static void on_upgrade(void *cls, struct MHD_Connection *connection, void *con_cls,
                       const char *extra_in, size_t extra_in_size, MHD_socket sock,
                       struct MHD_UpgradeResponseHandle *urh)
{
    struct sb_tunnel *t = cls;
    if (t->pending)
        t->pending->tunnel = NULL;
    t->pending = NULL;
    t->urh = urh;
    int flags = fcntl(sock, F_GETFL);
    if (flags < 0 || fcntl(sock, F_SETFL, flags | O_NONBLOCK) < 0) {
        sb_warn("http: cannot make an upgraded socket non-blocking");
        tunnel_drop(t);
        return;
    }
    t->handlers.on_open(t, t->arg, sock, extra_in, extra_in_size);
}

struct sb_tunnel *sb_tunnel_accept(struct sb_request *req, int status, const struct sb_header *headers,
                                   size_t count, const struct sb_tunnel_handlers *handlers, void *arg,
                                   struct sb_err *err)
{
    struct sb_http_conn *conn = req->conn;
    if (http_conn_can_stream(conn, err) < 0)
        return NULL;
    struct sb_tunnel *t = calloc(1, sizeof *t);
    struct MHD_Response *resp = t ? MHD_create_response_for_upgrade(on_upgrade, t) : NULL;
    for (size_t i = 0; resp && i < count; i++) {
        if (strcasecmp(headers[i].name, "Connection") == 0)
            continue;
        if (MHD_add_response_header(resp, headers[i].name, headers[i].value) != MHD_YES) {
            MHD_destroy_response(resp);
            free(t);
            return sb_err_set(err, 500, "the upgrade answer's header %.64s was refused", headers[i].name),
                   NULL;
        }
    }
    if (!resp) {
        free(t);
        return sb_err_set(err, 500, "out of memory accepting an upgrade"), NULL;
    }
    t->handlers = *handlers;
    t->arg = arg;
    t->pending = conn;
    t->list = http_conn_tunnel_list(conn);
    t->next = *t->list;
    if (t->next)
        t->next->prev = t;
    *t->list = t;
    conn->tunnel = t;
    http_conn_answer(conn, status, resp);
    return t;
}

void sb_tunnel_release(struct sb_tunnel *t) { tunnel_free(t); }

void http_tunnel_request_done(struct sb_tunnel *t, enum MHD_RequestTerminationCode toe)
{
    t->pending = NULL;
    if (toe != MHD_REQUEST_TERMINATED_COMPLETED_OK && !t->urh)
        tunnel_drop(t);         /* the 101 never got through */
}

void http_tunnel_drop_all(struct sb_tunnel **list)
{
    while (*list)
        tunnel_drop(*list);
}
