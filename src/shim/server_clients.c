/*
 * server_clients.c - the shim server's client connections: each one's output
 * queue, its attachments to processes and the pumping from a process's ring
 * into the queue (see server.c's top comment for the flow control), and the
 * process table's callbacks that drive it. Owns every client and attachment.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "core/log.h"
#include "shim/server_internal.h"

/* Reserves n bytes at the end of cl's output queue. NULL (and the client is
 * dropped) past the hard limit. */
static uint8_t *out_reserve(struct sb_shim_server *s, struct sb_client *cl, size_t n)
{
    if (cl->out_off > 0 && cl->out_off == cl->out_len)
        cl->out_off = cl->out_len = 0;
    if (cl->out_len + n > cl->out_cap && cl->out_off > 0) {
        memmove(cl->out, cl->out + cl->out_off, cl->out_len - cl->out_off);
        cl->out_len -= cl->out_off;
        cl->out_off = 0;
    }
    if (cl->out_len + n > cl->out_cap) {
        size_t cap = cl->out_cap ? cl->out_cap : 64 * 1024;
        while (cap < cl->out_len + n)
            cap *= 2;
        uint8_t *grown = cap <= SB_SHIM_CLIENT_HARD_OUT ? realloc(cl->out, cap) : NULL;
        if (!grown) {
            sb_warn("shim: client output queue over %u bytes: dropping the client", SB_SHIM_CLIENT_HARD_OUT);
            srv_client_drop(s, cl);
            return NULL;
        }
        cl->out = grown;
        cl->out_cap = cap;
    }
    uint8_t *p = cl->out + cl->out_len;
    cl->out_len += n;
    return p;
}

size_t srv_out_queued(const struct sb_client *cl)
{
    return cl->out_len - cl->out_off;
}

static void send_json(struct sb_shim_server *s, struct sb_client *cl, json_t *obj)
{
    size_t len;
    uint8_t *frame = sb_frame_json(obj, &len);
    json_decref(obj);
    if (!frame) {
        sb_error("shim: cannot encode an answer");
        return;
    }
    uint8_t *dst = cl->dead ? NULL : out_reserve(s, cl, len);
    if (dst)
        memcpy(dst, frame, len);
    free(frame);
}

void srv_respond_ok(struct sb_shim_server *s, struct sb_client *cl, json_int_t seq, json_t *fields)
{
    json_t *o = fields ? fields : json_object();
    json_object_set_new(o, "seq", json_integer(seq));
    json_object_set_new(o, "ok", json_true());
    send_json(s, cl, o);
}

void srv_respond_err(struct sb_shim_server *s, struct sb_client *cl, json_int_t seq,
                        const struct sb_err *err)
{
    send_json(s, cl, json_pack("{s:I, s:b, s:i, s:s}", "seq", seq, "ok", 0,
                               "status", err->status ? err->status : 500, "error", err->msg));
}

static void client_update_events(struct sb_shim_server *s, struct sb_client *cl)
{
    if (cl->dead)
        return;
    uint32_t want = 0;
    if (!cl->stalled && srv_out_queued(cl) < SB_SHIM_CLIENT_SOFT_OUT)
        want |= EPOLLIN;
    if (srv_out_queued(cl) > 0)
        want |= EPOLLOUT;
    if (want == cl->events)
        return;
    struct epoll_event ev = {.events = want, .data.ptr = &cl->watch};
    if (epoll_ctl(s->epfd, EPOLL_CTL_MOD, cl->fd, &ev) == 0)
        cl->events = want;
}

void srv_attach_unlink(struct sb_client *cl, struct sb_attach *a)
{
    for (struct sb_attach **pp = &a->proc->attached; *pp; pp = &(*pp)->next_in_proc)
        if (*pp == a) {
            *pp = a->next_in_proc;
            break;
        }
    for (struct sb_attach **pp = &cl->attaches; *pp; pp = &(*pp)->next_in_client)
        if (*pp == a) {
            *pp = a->next_in_client;
            break;
        }
}

static void send_exit_event(struct sb_shim_server *s, struct sb_client *cl, struct sb_proc *p)
{
    json_t *o = proc_describe(p);
    if (!o)
        return;
    json_object_set_new(o, "event", json_string("exit"));
    send_json(s, cl, o);
}

/* Moves one chunk of stream idx from the ring to cl's queue. 1 if it did. */
static int pump_chunk(struct sb_shim_server *s, struct sb_client *cl, struct sb_attach *a, int idx)
{
    struct sb_ring *r = &a->proc->ring[idx];
    uint64_t end = proc_stream_end(a->proc, idx);
    if (a->cursor[idx] < r->start)
        a->cursor[idx] = r->start;  /* bytes lost before this client attached */
    if (a->cursor[idx] >= end)
        return 0;
    size_t n = (size_t)(end - a->cursor[idx]);
    if (n > SB_PROTO_CHUNK)
        n = SB_PROTO_CHUNK;
    uint8_t *dst = out_reserve(s, cl, SB_PROTO_HEADER + SB_PROTO_OUTPUT_HEADER + n);
    if (!dst)
        return 0;
    uint64_t from;
    size_t got = sb_ring_copy(r, a->cursor[idx], dst + SB_PROTO_HEADER + SB_PROTO_OUTPUT_HEADER, n, &from);
    sb_frame_output_header(dst, a->proc->id, (uint8_t)(idx + 1), from, (uint32_t)got);
    a->cursor[idx] = from + got;
    return 1;
}

/* Fills cl's queue from its attachments (alternating streams) up to the soft
 * limit, ends attachments of finished processes with the exit event once
 * they reached the ends recorded at finish, and lets the processes read
 * their pipes again. */
static void pump_client(struct sb_shim_server *s, struct sb_client *cl)
{
    int progress = 1;
    while (progress && !cl->dead && srv_out_queued(cl) < SB_SHIM_CLIENT_SOFT_OUT) {
        progress = 0;
        for (struct sb_attach *a = cl->attaches; a; a = a->next_in_client)
            for (int idx = 0; idx < 2 && srv_out_queued(cl) < SB_SHIM_CLIENT_SOFT_OUT; idx++) {
                progress |= pump_chunk(s, cl, a, idx);
                if (cl->dead)       /* dropped: its attachments are gone */
                    return;
            }
    }
    for (struct sb_attach *a = cl->attaches, *next; a && !cl->dead; a = next) {
        next = a->next_in_client;
        struct sb_proc *p = a->proc;
        if (p->finished && a->cursor[0] >= proc_stream_end(p, 0) && a->cursor[1] >= proc_stream_end(p, 1)) {
            send_exit_event(s, cl, p);
            srv_attach_unlink(cl, a);
            free(a);
            proc_evict_finished(&s->procs);
            continue;
        }
        proc_update_interest(&s->procs, p);
    }
}

/* Writes what the socket takes, refilling from attachments as it drains. */
void srv_client_flush(struct sb_shim_server *s, struct sb_client *cl)
{
    for (;;) {
        pump_client(s, cl);
        if (cl->dead || srv_out_queued(cl) == 0)
            break;
        ssize_t n = send(cl->fd, cl->out + cl->out_off, srv_out_queued(cl), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            cl->out_off += (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        srv_client_drop(s, cl);         /* the peer is gone */
        return;
    }
    client_update_events(s, cl);
}

void srv_client_drop(struct sb_shim_server *s, struct sb_client *cl)
{
    if (cl->dead)
        return;
    cl->dead = 1;
    while (cl->attaches) {
        struct sb_attach *a = cl->attaches;
        struct sb_proc *p = a->proc;
        srv_attach_unlink(cl, a);
        free(a);
        proc_update_interest(&s->procs, p);
    }
    for (struct sb_wait **pp = &s->waits; *pp;) {
        struct sb_wait *w = *pp;
        if (w->client == cl) {
            *pp = w->next;
            free(w);
        } else {
            pp = &w->next;
        }
    }
    epoll_ctl(s->epfd, EPOLL_CTL_DEL, cl->fd, NULL);
    close(cl->fd);
    cl->fd = -1;
    proc_evict_finished(&s->procs);
}

void srv_free_dead_clients(struct sb_shim_server *s)
{
    for (struct sb_client **pp = &s->clients; *pp;) {
        struct sb_client *cl = *pp;
        if (!cl->dead) {
            pp = &cl->next;
            continue;
        }
        *pp = cl->next;
        sb_frame_reader_free(&cl->in);
        free(cl->out);
        free(cl);
        s->client_count--;
    }
}

/* ---- process table callbacks ---- */

void srv_on_proc_output(void *arg, struct sb_proc *p)
{
    struct sb_shim_server *s = arg;
    for (struct sb_attach *a = p->attached, *next; a; a = next) {
        next = a->next_in_proc;     /* flushing may end this attachment */
        srv_client_flush(s, a->client);
    }
}

void srv_on_proc_finished(void *arg, struct sb_proc *p)
{
    struct sb_shim_server *s = arg;
    struct sb_wait *due = NULL;     /* unlinked first: answering may drop a client */
    for (struct sb_wait **pp = &s->waits; *pp;) {
        struct sb_wait *w = *pp;
        if (w->proc != p->id) {
            pp = &w->next;
            continue;
        }
        *pp = w->next;
        w->next = due;
        due = w;
    }
    while (due) {
        struct sb_wait *w = due;
        due = w->next;
        if (!w->client->dead) {
            srv_respond_ok(s, w->client, w->seq, proc_describe(p));
            srv_client_flush(s, w->client);
        }
        free(w);
    }
    srv_on_proc_output(arg, p);         /* attached clients now get their exit events */
}


struct sb_attach *srv_attach_new(struct sb_client *cl, struct sb_proc *p, uint64_t out_off, uint64_t err_off)
{
    struct sb_attach *a = calloc(1, sizeof *a);
    if (!a)
        return NULL;
    a->proc = p;
    a->client = cl;
    a->cursor[0] = out_off < p->ring[0].start ? p->ring[0].start : out_off;
    a->cursor[1] = err_off < p->ring[1].start ? p->ring[1].start : err_off;
    a->next_in_proc = p->attached;
    p->attached = a;
    a->next_in_client = cl->attaches;
    cl->attaches = a;
    return a;
}