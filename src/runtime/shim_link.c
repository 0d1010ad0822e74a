/*
 * shim_link.c - serve's non-blocking, multiplexed connection to each shim
 * (see shim_link.h for the contract, proto/proto.h for the wire).
 *
 * A link is a socket watched on the loop (EPOLLIN always, EPOLLOUT while
 * its write queue is not empty), a frame reader, a FIFO of whole frames to
 * write, the calls waiting for an answer (each with a timer) and the
 * watched procs (a small hash by proc id). Links live in a hash by sandbox
 * id. A link that fails is taken out of the table and its socket closed
 * first, then everything it carried is told; it is freed once no callback
 * of its own is still on the stack (dispatch depth), so a callback may use
 * the link freely.
 */
#include "runtime/shim_link.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "core/config.h"
#include "core/log.h"

#define LINK_BUCKETS 1024
#define WATCH_BUCKETS 64
#define READ_ROUNDS 16          /* recv()s per readiness event, for fairness between links */

struct pending_call {
    json_int_t seq;
    shim_reply_fn fn;           /* NULL once forgotten */
    void *arg;
    uint64_t timer;
    struct shim_link *link;
    struct pending_call *next;
};

struct watch {
    uint32_t proc;
    struct shim_proc_watch w;
    struct watch *next;
};

struct out_frame {
    uint8_t *data;
    size_t len, off;
    struct out_frame *next;
};

struct shim_link {
    struct shim_links *links;
    char id[32];
    int fd;
    int dead;
    int closing;                /* shim_link_close: ends once the write queue is empty */
    int listed;                 /* in the table (shared); private links are not */
    int depth;                  /* callbacks of this link on the stack */
    int paused;                 /* shim_link_pause_reading: not read, frames held */
    void (*on_fail)(void *arg); /* shim_link_on_fail; cleared by shim_link_close */
    void *on_fail_arg;
    uint64_t resume_timer;      /* delivers the frames held while paused */
    uint32_t events;            /* what the loop watches */
    json_int_t seq;
    struct sb_frame_reader in;
    struct out_frame *out_head, *out_tail;
    struct pending_call *calls;
    struct watch *watches[WATCH_BUCKETS];
    struct shim_link *next;     /* in the bucket */
};

struct shim_links {
    struct sb_loop *loop;
    char run_dir[SB_PATH_MAX];
    int call_timeout_ms;
    size_t budget_left;
    struct shim_link *buckets[LINK_BUCKETS];
    struct shim_link *private_links;    /* shim_link_open's, linked by next */
};

static unsigned hash_id(const char *id)
{
    unsigned h = 2166136261u;
    for (; *id; id++)
        h = (h ^ (unsigned char)*id) * 16777619u;
    return h % LINK_BUCKETS;
}

/* ---- freeing and failing ---- */

static void link_free(struct shim_link *link)
{
    for (struct out_frame *f = link->out_head, *next; f; f = next) {
        next = f->next;
        free(f->data);
        free(f);
    }
    sb_frame_reader_free(&link->in);
    free(link);
}

static void table_remove(struct shim_link *link)
{
    struct shim_link **head = link->listed ? &link->links->buckets[hash_id(link->id)]
                                           : &link->links->private_links;
    for (struct shim_link **pp = head; *pp; pp = &(*pp)->next)
        if (*pp == link) {
            *pp = link->next;
            return;
        }
}

/* Ends the link: out of the table, socket closed, then every pending call
 * and watch is failed with err. Freed now or when the last callback of it
 * on the stack returns. */
static void link_fail(struct shim_link *link, const struct sb_err *err)
{
    if (link->dead)
        return;
    link->dead = 1;
    table_remove(link);
    sb_loop_cancel(link->links->loop, link->resume_timer);
    link->resume_timer = 0;
    sb_loop_unwatch(link->links->loop, link->fd);
    close(link->fd);
    link->fd = -1;
    link->depth++;
    if (link->on_fail)
        link->on_fail(link->on_fail_arg);
    struct pending_call *calls = link->calls;
    link->calls = NULL;
    for (struct pending_call *c = calls, *next; c; c = next) {
        next = c->next;
        sb_loop_cancel(link->links->loop, c->timer);
        if (c->fn)
            c->fn(c->arg, NULL, err);
        free(c);
    }
    for (int b = 0; b < WATCH_BUCKETS; b++) {
        struct watch *w = link->watches[b];
        link->watches[b] = NULL;
        for (struct watch *next; w; w = next) {
            next = w->next;
            if (w->w.lost)
                w->w.lost(w->w.arg, err);
            free(w);
        }
    }
    if (--link->depth == 0)
        link_free(link);
}

static void link_release(struct shim_link *link)
{
    if (--link->depth == 0 && link->dead)
        link_free(link);
}

/* ---- writing ---- */

static void link_set_events(struct shim_link *link)
{
    uint32_t want = (link->paused ? 0 : EPOLLIN) | (link->out_head ? EPOLLOUT : 0);
    if (want != link->events && sb_loop_modify(link->links->loop, link->fd, want) == 0)
        link->events = want;
}

/* Writes what the socket takes now. A send error fails the link when
 * fail_now is set (the loop's own event); otherwise (inside a caller's
 * request) the link waits for the loop, which sees the broken socket next,
 * so no callback ever runs inside the call that queued a frame. */
static void link_flush(struct shim_link *link, int fail_now)
{
    while (link->out_head) {
        struct out_frame *f = link->out_head;
        ssize_t n = send(link->fd, f->data + f->off, f->len - f->off, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n <= 0) {
            if (fail_now) {
                struct sb_err err;
                sb_err_sys(&err, 502, "sandbox runtime: send");
                link_fail(link, &err);
                return;
            }
            break;
        }
        f->off += (size_t)n;
        if (f->off < f->len)
            break;
        link->out_head = f->next;
        if (!link->out_head)
            link->out_tail = NULL;
        free(f->data);
        free(f);
    }
    if (!link->out_head && link->closing) {
        struct sb_err err;
        sb_err_set(&err, 502, "sandbox runtime connection closed");
        link_fail(link, &err);
        return;
    }
    link_set_events(link);
}

/* Queues a whole frame (takes data) and writes what it can. */
static int link_send(struct shim_link *link, uint8_t *data, size_t len, struct sb_err *err)
{
    struct out_frame *f = malloc(sizeof *f);
    if (!f) {
        free(data);
        return sb_err_set(err, 500, "out of memory");
    }
    *f = (struct out_frame){.data = data, .len = len};
    if (link->out_tail)
        link->out_tail->next = f;
    else
        link->out_head = f;
    link->out_tail = f;
    link_flush(link, 0);
    return 0;
}

/* ---- reading ---- */

static struct watch **watch_slot(struct shim_link *link, uint32_t proc)
{
    struct watch **pp = &link->watches[proc % WATCH_BUCKETS];
    while (*pp && (*pp)->proc != proc)
        pp = &(*pp)->next;
    return pp;
}

static void on_answer(struct shim_link *link, json_t *o)
{
    json_int_t seq = json_integer_value(json_object_get(o, "seq"));
    struct pending_call **pp = &link->calls;
    while (*pp && (*pp)->seq != seq)
        pp = &(*pp)->next;
    struct pending_call *c = *pp;
    if (!c)
        return;             /* a stdin acknowledgement, or a forgotten call */
    *pp = c->next;
    sb_loop_cancel(link->links->loop, c->timer);
    if (c->fn) {
        if (json_is_true(json_object_get(o, "ok"))) {
            c->fn(c->arg, o, NULL);
        } else {
            struct sb_err err;
            json_int_t status = json_integer_value(json_object_get(o, "status"));
            const char *msg = json_string_value(json_object_get(o, "error"));
            sb_err_set(&err, status ? (int)status : 502, "%s", msg ? msg : "sandbox runtime error");
            c->fn(c->arg, NULL, &err);
        }
    }
    free(c);
}

static void on_event(struct shim_link *link, json_t *o)
{
    const char *event = json_string_value(json_object_get(o, "event"));
    if (!event || strcmp(event, "exit") != 0)
        return;
    struct watch **pp = watch_slot(link, (uint32_t)json_integer_value(json_object_get(o, "proc")));
    struct watch *w = *pp;
    if (!w)
        return;
    *pp = w->next;
    if (w->w.exit)
        w->w.exit(w->w.arg, o);
    free(w);
}

/* One frame. -1 when the link failed. */
static int on_frame(struct shim_link *link, const struct sb_frame *f)
{
    struct sb_err err = {0};
    if (f->type == SB_FRAME_OUTPUT) {
        struct sb_output_chunk ch;
        if (sb_frame_parse_output(f, &ch, &err) < 0)
            goto bad;
        struct watch *w = *watch_slot(link, ch.proc);
        if (w && w->w.output)
            w->w.output(w->w.arg, &ch);
        return link->dead ? -1 : 0;
    }
    if (f->type != SB_FRAME_JSON)
        return 0;
    json_t *o = sb_frame_parse_json(f, &err);
    if (!o)
        goto bad;
    if (json_object_get(o, "event"))
        on_event(link, o);
    else
        on_answer(link, o);
    json_decref(o);
    return link->dead ? -1 : 0;
bad:
    sb_err_prefix(&err, "sandbox runtime sent a bad frame");
    link_fail(link, &err);
    return -1;
}

/* Delivers the whole frames the reader holds, until the link fails or is
 * paused. -1 when it failed. */
static int deliver_frames(struct shim_link *link)
{
    struct sb_frame f;
    int got;
    struct sb_err err = {0};
    while (!link->dead && !link->paused && (got = sb_frame_reader_next(&link->in, &f, &err)) != 0) {
        if (got < 0) {
            sb_err_prefix(&err, "sandbox runtime");
            link_fail(link, &err);
            return -1;
        }
        if (on_frame(link, &f) < 0)
            return -1;
    }
    return link->dead ? -1 : 0;
}

static void on_readable(struct shim_link *link)
{
    for (int round = 0; round < READ_ROUNDS && !link->dead && !link->paused; round++) {
        size_t room;
        uint8_t *dst = sb_frame_reader_space(&link->in, &room);
        ssize_t n = recv(link->fd, dst, room, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            return;
        if (n <= 0) {
            struct sb_err err;
            if (n == 0)
                sb_err_set(&err, 502, "sandbox runtime closed the connection");
            else
                sb_err_sys(&err, 502, "sandbox runtime: recv");
            link_fail(link, &err);
            return;
        }
        sb_frame_reader_commit(&link->in, (size_t)n);
        if (deliver_frames(link) < 0)
            return;
    }
}

static void on_link_io(struct sb_loop *loop, int fd, uint32_t events, void *arg)
{
    struct shim_link *link = arg;
    link->depth++;
    if ((events & (EPOLLHUP | EPOLLERR)) && link->paused) {
        /* reported even when not asked for: the shim is gone, and what it
         * sent last goes with it (its processes went with it too) */
        struct sb_err err;
        sb_err_set(&err, 502, "sandbox runtime closed the connection");
        link_fail(link, &err);
    } else if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        on_readable(link);
    }
    if (!link->dead && (events & EPOLLOUT))
        link_flush(link, 1);
    link_release(link);
}

/* ---- the table ---- */

struct shim_links *shim_links_new(struct sb_loop *loop, const char *run_dir, int call_timeout_ms,
                                  size_t output_budget)
{
    struct shim_links *links = calloc(1, sizeof *links);
    if (!links)
        return NULL;
    links->loop = loop;
    snprintf(links->run_dir, sizeof links->run_dir, "%s", run_dir);
    links->call_timeout_ms = call_timeout_ms > 0 ? call_timeout_ms : 10000;
    links->budget_left = output_budget;
    return links;
}

void shim_links_free(struct shim_links *links)
{
    if (!links)
        return;
    struct sb_err err;
    sb_err_set(&err, 503, "server is shutting down");
    for (int b = 0; b < LINK_BUCKETS; b++)
        while (links->buckets[b])
            link_fail(links->buckets[b], &err);
    while (links->private_links)
        link_fail(links->private_links, &err);
    free(links);
}

static int link_connect(struct shim_links *links, const char *id, struct sb_err *err)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (snprintf(addr.sun_path, sizeof addr.sun_path, "%s/sandboxes/%s/shim.sock", links->run_dir, id) >=
        (int)sizeof addr.sun_path)
        return sb_err_set(err, 502, "sandbox runtime unreachable: socket path too long");
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0)
        return sb_err_sys(err, 503, "sandbox runtime unreachable: socket");
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        if (errno == EAGAIN)
            sb_err_set(err, 503, "sandbox runtime busy (%s): its connection backlog is full, try again", id);
        else
            sb_err_sys(err, 502, "sandbox runtime unreachable (%s)", id);
        close(fd);
        return -1;
    }
    return fd;
}

/* A connected link, not yet in the table. */
static struct shim_link *link_new(struct shim_links *links, const char *id, struct sb_err *err)
{
    if (strlen(id) >= sizeof ((struct shim_link *)0)->id) {
        sb_err_set(err, 400, "invalid sandbox id");
        return NULL;
    }
    struct shim_link *link = calloc(1, sizeof *link);
    if (!link || sb_frame_reader_init(&link->in, err) < 0) {
        free(link);
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    link->links = links;
    snprintf(link->id, sizeof link->id, "%s", id);
    link->fd = link_connect(links, id, err);
    if (link->fd < 0) {
        link_free(link);
        return NULL;
    }
    link->events = EPOLLIN;
    if (sb_loop_watch(links->loop, link->fd, EPOLLIN, on_link_io, link) < 0) {
        sb_err_sys(err, 500, "cannot watch the sandbox runtime's socket");
        close(link->fd);
        link_free(link);
        return NULL;
    }
    return link;
}

struct shim_link *shim_link_get(struct shim_links *links, const char *id, struct sb_err *err)
{
    unsigned h = hash_id(id);
    for (struct shim_link *l = links->buckets[h]; l; l = l->next)
        if (strcmp(l->id, id) == 0)
            return l;
    struct shim_link *link = link_new(links, id, err);
    if (!link)
        return NULL;
    link->listed = 1;
    link->next = links->buckets[h];
    links->buckets[h] = link;
    return link;
}

struct shim_link *shim_link_open(struct shim_links *links, const char *id, struct sb_err *err)
{
    struct shim_link *link = link_new(links, id, err);
    if (link) {
        link->next = links->private_links;
        links->private_links = link;
    }
    return link;
}

void shim_link_on_fail(struct shim_link *link, void (*fn)(void *arg), void *arg)
{
    link->on_fail = fn;
    link->on_fail_arg = arg;
}

void shim_link_close(struct shim_link *link)
{
    link->on_fail = NULL;
    if (link->dead || link->closing)
        return;
    link->closing = 1;
    link->depth++;
    link_flush(link, 1);
    link_release(link);
}

/* ---- calls ---- */

static void on_call_timeout(struct sb_loop *loop, void *arg)
{
    struct pending_call *c = arg;
    struct shim_link *link = c->link;
    c->timer = 0;
    struct sb_err err;
    sb_err_set(&err, 504, "sandbox runtime did not answer within %d ms (its shim is stuck); "
               "other sandboxes are not affected", link->links->call_timeout_ms);
    sb_warn("sandbox %s: %s", link->id, err.msg);
    link_fail(link, &err);
}

static int link_call(struct shim_link *link, json_t *req, int timed, shim_reply_fn fn, void *arg,
                     struct sb_err *err)
{
    struct pending_call *c = calloc(1, sizeof *c);
    if (!req || !c) {
        json_decref(req);
        free(c);
        return sb_err_set(err, 500, "out of memory");
    }
    c->seq = ++link->seq;
    json_object_set_new(req, "seq", json_integer(c->seq));
    size_t len;
    uint8_t *frame = sb_frame_json(req, &len);
    json_decref(req);
    if (!frame) {
        free(c);
        return sb_err_set(err, 500, "shim request too large to encode");
    }
    c->fn = fn;
    c->arg = arg;
    c->link = link;
    if (timed)
        c->timer = sb_loop_timer(link->links->loop, (uint64_t)link->links->call_timeout_ms, on_call_timeout, c);
    if (link_send(link, frame, len, err) < 0) {
        sb_loop_cancel(link->links->loop, c->timer);
        free(c);
        return -1;
    }
    c->next = link->calls;
    link->calls = c;
    return 0;
}

int shim_link_call(struct shim_link *link, json_t *req, shim_reply_fn fn, void *arg, struct sb_err *err)
{
    return link_call(link, req, 1, fn, arg, err);
}

int shim_link_call_untimed(struct shim_link *link, json_t *req, shim_reply_fn fn, void *arg, struct sb_err *err)
{
    return link_call(link, req, 0, fn, arg, err);
}

void shim_link_forget_calls(struct shim_link *link, void *arg)
{
    for (struct pending_call *c = link->calls; c; c = c->next)
        if (c->arg == arg)
            c->fn = NULL;
}

/* ---- procs ---- */

int shim_link_watch(struct shim_link *link, uint32_t proc, const struct shim_proc_watch *w)
{
    struct watch **pp = watch_slot(link, proc);
    if (*pp) {
        (*pp)->w = *w;
        return 0;
    }
    struct watch *nw = calloc(1, sizeof *nw);
    if (!nw)
        return -1;
    nw->proc = proc;
    nw->w = *w;
    *pp = nw;
    return 0;
}

void shim_link_unwatch(struct shim_link *link, uint32_t proc)
{
    struct watch **pp = watch_slot(link, proc);
    struct watch *w = *pp;
    if (w) {
        *pp = w->next;
        free(w);
    }
}

int shim_link_send_stdin(struct shim_link *link, uint32_t proc, const void *data, size_t len,
                         shim_reply_fn fn, void *arg, struct sb_err *err)
{
    if (len > SB_PROTO_CHUNK)
        return sb_err_set(err, 500, "stdin chunk too large");
    size_t total = SB_PROTO_HEADER + SB_PROTO_STDIN_HEADER + len;
    uint8_t *frame = malloc(total);
    struct pending_call *c = fn ? calloc(1, sizeof *c) : NULL;
    if (!frame || (fn && !c)) {
        free(frame);
        return sb_err_set(err, 500, "out of memory");
    }
    json_int_t seq = ++link->seq;
    sb_frame_stdin_header(frame, (uint32_t)seq, proc, (uint32_t)len);
    memcpy(frame + SB_PROTO_HEADER + SB_PROTO_STDIN_HEADER, data, len);
    if (link_send(link, frame, total, err) < 0) {
        free(c);
        return -1;
    }
    if (c) {                    /* no timer: the shim acknowledges once the process's queue has room */
        *c = (struct pending_call){.seq = seq, .fn = fn, .arg = arg, .link = link, .next = link->calls};
        link->calls = c;
    }
    return 0;
}

/* ---- pausing ---- */

static void on_resume_timer(struct sb_loop *loop, void *arg)
{
    struct shim_link *link = arg;
    link->resume_timer = 0;
    link->depth++;
    if (!link->paused && deliver_frames(link) == 0)
        on_readable(link);
    link_release(link);
}

void shim_link_pause_reading(struct shim_link *link, int paused)
{
    if (link->dead || link->paused == !!paused)
        return;
    link->paused = !!paused;
    link_set_events(link);
    if (!link->paused && !link->resume_timer)
        link->resume_timer = sb_loop_timer(link->links->loop, 0, on_resume_timer, link);
}

struct sb_loop *shim_links_loop(const struct shim_links *links)
{
    return links->loop;
}

/* ---- the output budget ---- */

size_t shim_links_budget_take(struct shim_links *links, size_t want)
{
    size_t got = want < links->budget_left ? want : links->budget_left;
    links->budget_left -= got;
    return got;
}

void shim_links_budget_give(struct shim_links *links, size_t n)
{
    links->budget_left += n;
}
