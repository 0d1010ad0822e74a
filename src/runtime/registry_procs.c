/*
 * registry_procs.c - interactive processes on the loop thread (see
 * registry_procs.h): the sandbox check, the selector, and the shim calls.
 *
 * One-shot calls go on the sandbox's shared link, except stdin, which gets
 * a link of its own per write (the shim stops reading a connection whose
 * stdin does not fit the process's queue). Attachments own a link each
 * (shim_link_open): the start or attach request, the output frames, the
 * exit event, stdin and close_stdin travel on it, in order; signal and
 * resize go on the shared link, answered at once even while the
 * attachment's link is paused, through a small record that outlives a
 * closed attachment (its answer is then dropped).
 *
 * Owns every registry_proc until registry_proc_close, and each stdin write
 * until its answer.
 */
#include "runtime/registry_procs.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "proto/proto.h"
#include "runtime/registry_internal.h"
#include "runtime/shim_link.h"

/* ---- selectors ---- */

static int all_digits(const char *s)
{
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

int registry_proc_tag_check(const char *tag, struct sb_err *err)
{
    size_t n = strlen(tag);
    if (n == 0 || n > REGISTRY_TAG_MAX || strspn(tag, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                      "0123456789_.:-") != n)
        return sb_err_set(err, 400, "tag must be 1 to %d characters of A-Z a-z 0-9 _ . : -", REGISTRY_TAG_MAX);
    if (all_digits(tag))
        return sb_err_set(err, 400, "tag must not be all digits (it would read as a processID)");
    return 0;
}

int registry_proc_selector_check(const char *sel, struct sb_err *err)
{
    if (sel[0] && all_digits(sel))
        return strlen(sel) <= 10 && strtoull(sel, NULL, 10) <= INT32_MAX
                   ? 0 : sb_err_set(err, 400, "invalid processID: %s", sel);
    struct sb_err tag_err;
    if (registry_proc_tag_check(sel, &tag_err) < 0)
        return sb_err_set(err, 400, "invalid process: expected a processID (digits) or a tag");
    return 0;
}

/* Adds what sel names to a shim request: "pid" or "tag". */
static void set_selector(json_t *req, const char *sel)
{
    if (all_digits(sel))
        json_object_set_new(req, "pid", json_integer(strtoll(sel, NULL, 10)));
    else
        json_object_set_new(req, "tag", json_string(sel));
}

/* The sandbox the call acts on, by org: 404 for another org's or a stopped
 * one; with need_running, 409 unless it is running. */
static int check_sandbox(struct sb_registry *reg, const char *org_id, const char *id, int need_running,
                         char out_id[32], struct sb_err *err)
{
    if (!reg->links)
        return sb_err_set(err, 500, "processes: the registry is not serving on a loop");
    struct sb_sandbox_rec rec;
    if (load_live(reg, org_id, id, &rec, err) < 0)
        return -1;
    int rc = 0;
    if (need_running && rec.status == SB_SANDBOX_PAUSED)
        rc = sb_err_set(err, 409, "sandbox is paused: resume it with POST /sandboxes/%s/connect", rec.id);
    else if (need_running && rec.status != SB_SANDBOX_RUNNING)
        rc = sb_err_set(err, 409, "sandbox is not running (status %s)", sb_sandbox_status_name(rec.status));
    snprintf(out_id, 32, "%s", rec.id);
    store_sandbox_rec_clear(&rec);
    return rc;
}

/* ---- one-shot calls ---- */

int registry_proc_list(struct sb_registry *reg, const char *org_id, const char *id, registry_reply_fn fn, void *arg,
                       struct sb_err *err)
{
    char sid[32];
    struct shim_link *link;
    if (check_sandbox(reg, org_id, id, 0, sid, err) < 0 || !(link = shim_link_get(reg->links, sid, err)))
        return -1;
    return shim_link_call(link, json_pack("{s:s}", "op", "list"), fn, arg, err);
}

int registry_proc_op(struct sb_registry *reg, const char *org_id, const char *id, const char *sel, const char *op,
                     json_t *fields, registry_reply_fn fn, void *arg, struct sb_err *err)
{
    char sid[32];
    int acts = strcmp(op, "wait") != 0 && strcmp(op, "get") != 0;
    struct shim_link *link;
    if (check_sandbox(reg, org_id, id, acts, sid, err) < 0 || !(link = shim_link_get(reg->links, sid, err))) {
        json_decref(fields);
        return -1;
    }
    json_t *req = fields ? fields : json_object();
    json_object_set_new(req, "op", json_string(op));
    set_selector(req, sel);
    return strcmp(op, "wait") == 0 ? shim_link_call_untimed(link, req, fn, arg, err)
                                   : shim_link_call(link, req, fn, arg, err);
}

/* The start request for preq (new reference), or NULL with err. */
static json_t *start_request(struct sb_registry *reg, const char *org_id, const char *id,
                             const struct sb_process_request *preq, int attach, char sid[32], struct sb_err *err)
{
    struct sb_sandbox_rec rec;
    if (!reg->links) {
        sb_err_set(err, 500, "processes: the registry is not serving on a loop");
        return NULL;
    }
    if (load_live(reg, org_id, id, &rec, err) < 0)
        return NULL;
    snprintf(sid, 32, "%s", rec.id);
    struct exec_prep prep = {0};
    struct sb_exec_request ereq;
    json_t *req = NULL;
    if (exec_prepare(reg, &rec, preq, &prep, &ereq, err) == 0 && !(req = shim_start_request(&ereq, attach)))
        sb_err_set(err, 500, "out of memory");
    exec_prep_clear(&prep);
    store_sandbox_rec_clear(&rec);
    return req;
}

int registry_proc_start_detached(struct sb_registry *reg, const char *org_id, const char *id,
                                 const struct sb_process_request *preq, registry_reply_fn fn, void *arg,
                                 struct sb_err *err)
{
    char sid[32];
    json_t *req = start_request(reg, org_id, id, preq, 0, sid, err);
    struct shim_link *link = req ? shim_link_get(reg->links, sid, err) : NULL;
    if (!link) {
        json_decref(req);
        return -1;
    }
    return shim_link_call(link, req, fn, arg, err);
}

/* One stdin write: the process is looked up on the write's own link, then
 * every chunk is sent with an acknowledgement; the caller hears once. */
struct stdin_write {
    struct shim_link *link;
    uint8_t *data;
    size_t len;
    int pending;                    /* answers still to come */
    int answered;                   /* fn ran */
    registry_reply_fn fn;
    void *arg;
};

static void stdin_write_step(struct stdin_write *w, json_t *reply, const struct sb_err *err)
{
    w->pending--;
    if (!w->answered && (err || w->pending == 0)) {
        w->answered = 1;
        w->fn(w->arg, err ? NULL : reply, err);
    }
    if (w->pending == 0) {
        if (w->link)
            shim_link_close(w->link);
        free(w->data);
        free(w);
    }
}

static void on_stdin_link_failed(void *arg)
{
    struct stdin_write *w = arg;
    w->link = NULL;                 /* every pending answer now fails with it */
}

static void on_stdin_ack(void *arg, json_t *reply, const struct sb_err *err)
{
    stdin_write_step(arg, reply, err);
}

static void on_stdin_target(void *arg, json_t *reply, const struct sb_err *err)
{
    struct stdin_write *w = arg;
    if (reply) {
        uint32_t proc = (uint32_t)json_integer_value(json_object_get(reply, "proc"));
        size_t off = 0;
        do {                        /* an empty write is one empty frame: 409 if stdin is closed */
            size_t n = w->len - off > SB_PROTO_CHUNK ? SB_PROTO_CHUNK : w->len - off;
            struct sb_err serr = {0};
            w->pending++;
            if (shim_link_send_stdin(w->link, proc, w->data + off, n, on_stdin_ack, w, &serr) < 0) {
                stdin_write_step(w, NULL, &serr);
                break;
            }
            off += n;
        } while (off < w->len);
    }
    stdin_write_step(w, reply, err);    /* the lookup's own step */
}

int registry_proc_stdin(struct sb_registry *reg, const char *org_id, const char *id, const char *sel,
                        const void *data, size_t len, registry_reply_fn fn, void *arg, struct sb_err *err)
{
    char sid[32];
    if (check_sandbox(reg, org_id, id, 1, sid, err) < 0)
        return -1;
    struct stdin_write *w = calloc(1, sizeof *w);
    if (!w || !(w->data = malloc(len ? len : 1))) {
        free(w);
        return sb_err_set(err, 500, "out of memory");
    }
    memcpy(w->data, data, len);
    w->len = len;
    w->fn = fn;
    w->arg = arg;
    json_t *req = json_pack("{s:s}", "op", "get");
    set_selector(req, sel);
    if (!(w->link = shim_link_open(reg->links, sid, err)) ||
        (shim_link_on_fail(w->link, on_stdin_link_failed, w), shim_link_call(w->link, req, on_stdin_target, w, err)) < 0) {
        if (w->link)
            shim_link_close(w->link);
        free(w->data);
        free(w);
        return -1;
    }
    w->pending = 1;
    return 0;
}

/* ---- attachments ---- */

/* A signal or resize on the shared link; rp is NULL once the attachment
 * closed (the answer is then dropped). */
struct proc_control {
    struct registry_proc *rp;
    char op[16];
    struct proc_control *next;
};

struct registry_proc {
    struct sb_registry *reg;
    char id[32];
    struct shim_link *link;         /* its own; NULL once failed */
    uint32_t proc;
    int watching;
    struct registry_proc_handlers h;
    struct proc_control *controls;  /* waiting for their answer */
};

static void rp_on_output(void *arg, const struct sb_output_chunk *ch)
{
    struct registry_proc *rp = arg;
    struct registry_output out = {.stream = ch->stream, .offset = ch->offset, .data = ch->data, .len = ch->len};
    rp->h.output(rp->h.arg, &out);
}

static void rp_on_exit(void *arg, json_t *ev)
{
    struct registry_proc *rp = arg;
    rp->watching = 0;               /* the link dropped the watch */
    rp->h.exit(rp->h.arg, ev);
}

static void rp_on_lost(void *arg, const struct sb_err *err)
{
    struct registry_proc *rp = arg;
    rp->watching = 0;
    rp->h.failed(rp->h.arg, err);
}

static void rp_on_link_failed(void *arg)
{
    struct registry_proc *rp = arg;
    rp->link = NULL;                /* its calls and watch fail next, with the reason */
}

static void rp_on_started(void *arg, json_t *reply, const struct sb_err *err)
{
    struct registry_proc *rp = arg;
    if (!reply) {
        rp->h.failed(rp->h.arg, err);
        return;
    }
    rp->proc = (uint32_t)json_integer_value(json_object_get(reply, "proc"));
    struct shim_proc_watch w = {.output = rp_on_output, .exit = rp_on_exit, .lost = rp_on_lost, .arg = rp};
    if (shim_link_watch(rp->link, rp->proc, &w) < 0) {
        struct sb_err e;
        rp->h.failed(rp->h.arg, (sb_err_set(&e, 500, "out of memory"), &e));
        return;
    }
    rp->watching = 1;
    rp->h.started(rp->h.arg, reply);
}

static struct registry_proc *rp_open(struct sb_registry *reg, const char *sid, json_t *req,
                                     const struct registry_proc_handlers *h, struct sb_err *err)
{
    struct registry_proc *rp = req ? calloc(1, sizeof *rp) : NULL;
    if (!rp) {
        json_decref(req);
        if (req)
            sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    rp->reg = reg;
    rp->h = *h;
    snprintf(rp->id, sizeof rp->id, "%s", sid);
    if (!(rp->link = shim_link_open(reg->links, sid, err)) ||
        (shim_link_on_fail(rp->link, rp_on_link_failed, rp), shim_link_call(rp->link, req, rp_on_started, rp, err)) < 0) {
        if (rp->link)
            shim_link_close(rp->link);
        free(rp);
        return NULL;
    }
    return rp;
}

struct registry_proc *registry_proc_start(struct sb_registry *reg, const char *org_id, const char *id,
                                          const struct sb_process_request *preq,
                                          const struct registry_proc_handlers *h, struct sb_err *err)
{
    char sid[32];
    json_t *req = start_request(reg, org_id, id, preq, 1, sid, err);
    return req ? rp_open(reg, sid, req, h, err) : NULL;
}

struct registry_proc *registry_proc_attach(struct sb_registry *reg, const char *org_id, const char *id,
                                           const char *sel, uint64_t stdout_offset, uint64_t stderr_offset,
                                           const struct registry_proc_handlers *h, struct sb_err *err)
{
    char sid[32];
    if (check_sandbox(reg, org_id, id, 0, sid, err) < 0)
        return NULL;
    json_t *req = json_pack("{s:s, s:I, s:I}", "op", "attach", "stdout_offset", (json_int_t)stdout_offset,
                            "stderr_offset", (json_int_t)stderr_offset);
    if (req)
        set_selector(req, sel);
    else
        sb_err_set(err, 500, "out of memory");
    return rp_open(reg, sid, req, h, err);
}

void registry_proc_pause(struct registry_proc *rp, int paused)
{
    if (rp->link)
        shim_link_pause_reading(rp->link, paused);
}

static void on_private_stdin_ack(void *arg, json_t *reply, const struct sb_err *err)
{
    struct registry_proc *rp = arg;
    if (rp->h.control_done)
        rp->h.control_done(rp->h.arg, "stdin", err);
}

static void on_private_close_ack(void *arg, json_t *reply, const struct sb_err *err)
{
    struct registry_proc *rp = arg;
    if (rp->h.control_done)
        rp->h.control_done(rp->h.arg, "close_stdin", err);
}

static int rp_ready(const struct registry_proc *rp, struct sb_err *err)
{
    if (!rp->link)
        return sb_err_set(err, 502, "sandbox runtime connection closed");
    if (!rp->watching)
        return sb_err_set(err, 409, "the process has finished");
    return 0;
}

int registry_proc_write(struct registry_proc *rp, const void *data, size_t len, struct sb_err *err)
{
    if (rp_ready(rp, err) < 0)
        return -1;
    const uint8_t *bytes = data;
    for (size_t off = 0; off < len;) {
        size_t n = len - off > SB_PROTO_CHUNK ? SB_PROTO_CHUNK : len - off;
        if (shim_link_send_stdin(rp->link, rp->proc, bytes + off, n, off + n == len ? on_private_stdin_ack : NULL,
                                 rp, err) < 0)
            return -1;
        off += n;
    }
    return 0;
}

static void on_shared_control(void *arg, json_t *reply, const struct sb_err *err)
{
    struct proc_control *c = arg;
    struct registry_proc *rp = c->rp;
    if (rp) {
        for (struct proc_control **pp = &rp->controls; *pp; pp = &(*pp)->next)
            if (*pp == c) {
                *pp = c->next;
                break;
            }
        if (rp->h.control_done)
            rp->h.control_done(rp->h.arg, c->op, err);
    }
    free(c);
}

int registry_proc_control(struct registry_proc *rp, const char *op, json_t *fields, struct sb_err *err)
{
    json_t *req = fields ? fields : json_object();
    if (rp_ready(rp, err) < 0) {
        json_decref(req);
        return -1;
    }
    json_object_set_new(req, "op", json_string(op));
    json_object_set_new(req, "proc", json_integer(rp->proc));
    if (strcmp(op, "close_stdin") == 0)
        return shim_link_call_untimed(rp->link, req, on_private_close_ack, rp, err);
    struct proc_control *c = calloc(1, sizeof *c);
    struct shim_link *shared = c ? shim_link_get(rp->reg->links, rp->id, err) : NULL;
    if (!shared) {
        if (!c)
            sb_err_set(err, 500, "out of memory");
        free(c);
        json_decref(req);
        return -1;
    }
    c->rp = rp;
    snprintf(c->op, sizeof c->op, "%s", op);
    if (shim_link_call(shared, req, on_shared_control, c, err) < 0) {
        free(c);
        return -1;
    }
    c->next = rp->controls;
    rp->controls = c;
    return 0;
}

void registry_proc_close(struct registry_proc *rp)
{
    for (struct proc_control *c = rp->controls; c; c = c->next)
        c->rp = NULL;
    if (rp->link) {
        shim_link_forget_calls(rp->link, rp);
        if (rp->watching)
            shim_link_unwatch(rp->link, rp->proc);
        shim_link_pause_reading(rp->link, 0);
        shim_link_close(rp->link);
    }
    free(rp);
}
