/*
 * registry_procs.h - interactive processes in a live sandbox: started in
 * the background, streamed, fed stdin, signalled, resized, listed, waited
 * for, and attached to from stream offsets, all on the loop thread over the
 * sandbox's shim (shim_link.h). The REST routes (api/process_*.c) and, later,
 * the E2B process RPCs are thin layers over these calls.
 *
 * The sandbox is checked first as for every route (404 for other orgs and
 * stopped sandboxes; 409 paused for what needs the process to act: start,
 * stdin, signals, resize); a process is then named by a selector: its
 * processID (the decimal pid inside the sandbox) or its tag.
 *
 * Two kinds of call:
 * - one-shot calls (list, get, wait, signal, close stdin, resize, a piece of
 *   stdin, a background start): the answer goes to fn once, on the loop
 *   thread, never inside the call; -1 with err when it fails at once (fn is
 *   then not called). fn's arg must live until fn ran (a deferred request
 *   does: completing it after its client left is safe).
 * - attachments (struct registry_proc): a process's output, from offsets, on
 *   a shim link of the attachment's own, so the attachment can stop reading
 *   (registry_proc_pause) when its client is slow without holding up any
 *   other call of the sandbox: the shim stops reading the process's pipes
 *   and the process waits, losing nothing. Closing an attachment leaves the
 *   process running (E2B's semantics for streams).
 *
 * Loop thread only, every function.
 */
#ifndef SB_RUNTIME_REGISTRY_PROCS_H
#define SB_RUNTIME_REGISTRY_PROCS_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "runtime/registry.h"

#define REGISTRY_TAG_MAX 64

/* The answer to a one-shot call: the shim's {"ok": true, ...} object
 * (borrowed, valid during the call), or NULL with err (the shim's own
 * error, or 502/503/504 when the sandbox's runtime could not be reached or
 * did not answer in time). */
typedef void (*registry_reply_fn)(void *arg, json_t *reply, const struct sb_err *err);

/* A piece of a process's output: stream 1 stdout (a terminal's only
 * stream), 2 stderr; offset is the stream position of data[0]. */
enum { REGISTRY_STDOUT = 1, REGISTRY_STDERR = 2 };
struct registry_output {
    int stream;
    uint64_t offset;
    const uint8_t *data;
    size_t len;
};

/* 400 unless sel is a processID (1-10 decimal digits) or a tag (1 to
 * REGISTRY_TAG_MAX of [A-Za-z0-9_.:-], not all digits: an all-digit tag
 * would read as a processID). */
int registry_proc_selector_check(const char *sel, struct sb_err *err);
/* 400 unless tag may be given to a new process (the rules above). */
int registry_proc_tag_check(const char *tag, struct sb_err *err);

/* ---- one-shot calls; fn gets the shim's answer object (borrowed) ---- */

/* {processes: [...]} (shim list fields, see proto/proto.h). */
int registry_proc_list(struct sb_registry *reg, const char *org_id, const char *id, registry_reply_fn fn, void *arg,
                       struct sb_err *err);
/* op on the process sel names: "wait" (answered when it finishes, no
 * timeout), "signal" (fields {signal: N}), "close_stdin", "resize"
 * (fields {rows, cols}), "get" (the list entry of that process).
 * fields (may be NULL) is stolen. */
int registry_proc_op(struct sb_registry *reg, const char *org_id, const char *id, const char *sel, const char *op,
                     json_t *fields, registry_reply_fn fn, void *arg, struct sb_err *err);
/* Starts preq without attaching: fn gets {proc, pid, host_pid}. preq's
 * strings need only live during the call. */
int registry_proc_start_detached(struct sb_registry *reg, const char *org_id, const char *id,
                                 const struct sb_process_request *preq, registry_reply_fn fn, void *arg,
                                 struct sb_err *err);
/* Writes len bytes (any size) to the stdin of the process sel names, on a
 * link of its own (a full stdin queue makes the shim stop reading that
 * link, which must not be the sandbox's shared one); fn is answered once
 * they are all queued in the shim, or with the first error (409 stdin
 * closed or the process finished, 404). data is copied. */
int registry_proc_stdin(struct sb_registry *reg, const char *org_id, const char *id, const char *sel,
                        const void *data, size_t len, registry_reply_fn fn, void *arg, struct sb_err *err);

/* ---- attachments ---- */

struct registry_proc;

struct registry_proc_handlers {
    /* The process started (registry_proc_start: {proc, pid, host_pid}) or
     * the attachment is in place (registry_proc_attach: the process's list
     * entry with stdout_offset/stderr_offset, the offsets actually used,
     * raised to the oldest bytes the ring still holds). Borrowed. */
    void (*started)(void *arg, json_t *info);
    /* Output in order within each stream, exactly once from the offsets
     * given; chunk borrowed. */
    void (*output)(void *arg, const struct registry_output *chunk);
    /* The process finished and every byte up to its end was delivered:
     * the exit event (shim list fields). The attachment delivers nothing
     * more; close it. */
    void (*exit)(void *arg, json_t *event);
    /* The start or attach was refused, or the link failed: nothing more is
     * delivered; close it. */
    void (*failed)(void *arg, const struct sb_err *err);
    /* The answer to a control (registry_proc_control) or a stdin write;
     * err NULL when it was done. May be NULL. */
    void (*control_done)(void *arg, const char *op, const struct sb_err *err);
    void *arg;
};

/* Starts preq and attaches to its output from offset 0. */
struct registry_proc *registry_proc_start(struct sb_registry *reg, const char *org_id, const char *id,
                                          const struct sb_process_request *preq,
                                          const struct registry_proc_handlers *h, struct sb_err *err);
/* Attaches to the process sel names from the given stream offsets. */
struct registry_proc *registry_proc_attach(struct sb_registry *reg, const char *org_id, const char *id,
                                           const char *sel, uint64_t stdout_offset, uint64_t stderr_offset,
                                           const struct registry_proc_handlers *h, struct sb_err *err);
/* Stops (1) or restarts (0) delivering output; see the top comment. */
void registry_proc_pause(struct registry_proc *rp, int paused);
/* Queues stdin (any length, copied) behind what was queued before, on the
 * attachment's link; control_done("stdin") follows once per call. */
int registry_proc_write(struct registry_proc *rp, const void *data, size_t len, struct sb_err *err);
/* "close_stdin" (after the stdin queued before it), or "signal" / "resize"
 * with fields (stolen; may be NULL), which go on the sandbox's shared link
 * so they take effect at once even while the attachment is paused.
 * control_done(op) follows. */
int registry_proc_control(struct registry_proc *rp, const char *op, json_t *fields, struct sb_err *err);
/* Ends the attachment: no handler runs after this; the process runs on. */
void registry_proc_close(struct registry_proc *rp);

#endif
