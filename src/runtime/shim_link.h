/*
 * shim_link.h - serve's non-blocking connection to each shim, on the loop.
 *
 * One link per sandbox, opened on first use and kept: a non-blocking unix
 * socket to <run-dir>/sandboxes/<id>/shim.sock watched by the serve loop,
 * read with proto/'s incremental frame reader. Requests, their answers and
 * the output and exit events of attached processes are multiplexed on it:
 * answers are matched by seq, output frames and exit events by proc. No
 * thread waits on a shim; a thousand running execs are a thousand entries
 * in a table, not a thousand blocked workers.
 *
 * A call that gets no answer within the call timeout (config
 * shim_call_timeout_ms) means the shim is wedged: the link fails every
 * call and watch it carries with 504 and closes; the next use reconnects.
 * A shim that closes the connection (it exited, or destroyed its sandbox)
 * fails them with 502. Either way only that sandbox's calls fail.
 *
 * Loop thread only, every function. Callbacks run on the loop thread, never
 * inside the call that queued the request (answers and failures always come
 * from the loop), and may call back into this API, also on their own link.
 * Owns the sockets, their frame readers and write queues, the pending calls
 * and the proc watches.
 */
#ifndef SB_RUNTIME_SHIM_LINK_H
#define SB_RUNTIME_SHIM_LINK_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "core/loop.h"
#include "proto/proto.h"

struct shim_links;
struct shim_link;

/* The answer to a call: reply is the {"ok": true} object (borrowed: valid
 * during the callback), or NULL with err (the shim's own error, 502 link
 * closed, 504 no answer in time, 503 shutting down). */
typedef void (*shim_reply_fn)(void *arg, json_t *reply, const struct sb_err *err);

/* What an attached process's frames go to. lost: the link failed (err says
 * how) and the watch is gone; no other callback follows. */
struct shim_proc_watch {
    void (*output)(void *arg, const struct sb_output_chunk *chunk);
    void (*exit)(void *arg, json_t *event);     /* borrowed; the watch is gone after it */
    void (*lost)(void *arg, const struct sb_err *err);
    void *arg;
};

/* call_timeout_ms: how long a call may wait for its answer (> 0).
 * output_budget: bytes of process output all execs together may hold in
 * memory (see shim_links_budget_take). Caller owns the result; the loop must
 * outlive it. */
struct shim_links *shim_links_new(struct sb_loop *loop, const char *run_dir, int call_timeout_ms,
                                  size_t output_budget);
struct sb_loop *shim_links_loop(const struct shim_links *links);
/* Fails everything still pending with 503 and closes every link. */
void shim_links_free(struct shim_links *links);

/* id's link, connected now if it is not yet. 502 when no shim listens. */
struct shim_link *shim_link_get(struct shim_links *links, const char *id, struct sb_err *err);

/* A link of the caller's own to id's shim, not shared (for work that may
 * stall the connection, like stdin larger than the shim's queue). End it
 * with shim_link_close: it closes once what was queued has been written.
 * Pending calls and watches then fail with 502 like any closed link. */
struct shim_link *shim_link_open(struct shim_links *links, const char *id, struct sb_err *err);
void shim_link_close(struct shim_link *link);
/* fn(arg) runs once when link fails, before its calls and watches are
 * told: from then on the link must not be used (it is freed after them).
 * For the owner of a link of its own; shim_link_close cancels it. */
void shim_link_on_fail(struct shim_link *link, void (*fn)(void *arg), void *arg);

/* Sends req (steals the reference; "seq" is set here) and calls fn once
 * with the answer (fn may be NULL: the answer is dropped). -1 with err when
 * it cannot be queued (fn is not called). */
int shim_link_call(struct shim_link *link, json_t *req, shim_reply_fn fn, void *arg, struct sb_err *err);
/* The same without the call timeout: for answers that wait on the sandbox
 * (a "wait" for a process to finish), not on the shim. */
int shim_link_call_untimed(struct shim_link *link, json_t *req, shim_reply_fn fn, void *arg, struct sb_err *err);
/* Forgets every pending call of arg: their fn is never called. For an
 * owner that goes away before its answers come. */
void shim_link_forget_calls(struct shim_link *link, void *arg);

/* Routes proc's output frames and exit event to w (copied). One watch per
 * proc. -1 when out of memory. */
int shim_link_watch(struct shim_link *link, uint32_t proc, const struct shim_proc_watch *w);
void shim_link_unwatch(struct shim_link *link, uint32_t proc);

/* Queues a STDIN frame of len bytes (at most SB_PROTO_CHUNK) for proc. fn
 * (may be NULL: not reported) gets the acknowledgement, which the shim sends
 * once the bytes are in the process's stdin queue (it stops reading the
 * connection while they do not fit, so it has no timeout), or its error
 * (409 stdin closed, 404 no such process). */
int shim_link_send_stdin(struct shim_link *link, uint32_t proc, const void *data, size_t len,
                         shim_reply_fn fn, void *arg, struct sb_err *err);

/* Stops (paused 1) or restarts (0) reading link: frames already read are
 * held, not delivered, so nothing reaches its watches meanwhile; the shim,
 * whose queue for this connection then fills, stops reading the attached
 * processes' pipes, and they block writing: the back-pressure of a slow
 * consumer (an HTTP stream above its window), with no byte lost. Held
 * frames are delivered from the loop after the restart, never inside this
 * call. Pausing a shared link would stall every call of the sandbox: pause
 * only a link of your own (shim_link_open), and send calls that must be
 * answered meanwhile on another. */
void shim_link_pause_reading(struct shim_link *link, int paused);

/* The global output budget: takes up to want bytes of it and returns how
 * many it got; give them back when the output is freed. */
size_t shim_links_budget_take(struct shim_links *links, size_t want);
void shim_links_budget_give(struct shim_links *links, size_t n);

#endif
