/*
 * shim_conn.h - the connection to one shim, shared by shim_conn.c (connect,
 * framed I/O, calls), shim_exec.c and shim_spawn.c.
 *
 * Private to src/runtime/shim_*.c; everyone else uses runtime/shim_client.h.
 */
#ifndef SB_RUNTIME_SHIM_CONN_H
#define SB_RUNTIME_SHIM_CONN_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "proto/proto.h"

/* pause, resume, status, destroy's answer: shim_client_set_call_timeout */
#define CONTROL_TIMEOUT_MS shim_call_timeout_ms()
int shim_call_timeout_ms(void);

/* One connection to a shim, owned by the call that opened it (conn_close). */
struct conn {
    int fd;
    struct sb_frame_reader in;
    json_int_t seq;
};

/* Milliseconds left until deadline (-1 = none) for poll(). */
int left_ms(int64_t deadline);
/* <run-dir>/sandboxes/<id>; -1 when it does not fit. */
int sandbox_run_dir(char *out, size_t len, const char *run_dir, const char *id);

/* Connects to id's shim. On failure err is 502 "sandbox runtime unreachable". */
int conn_open(const char *run_dir, const char *id, struct conn *c, struct sb_err *err);
void conn_close(struct conn *c);
/* Reads whatever is available into the frame reader (waiting until deadline
 * for at least one byte). */
int conn_fill(struct conn *c, int64_t deadline, struct sb_err *err);
int conn_next_frame(struct conn *c, struct sb_frame *f, int64_t deadline, struct sb_err *err);
/* Sends req (steals the reference) with the next seq and returns the answer
 * with that seq in *resp (caller decrefs). Frames for other purposes are
 * skipped. An {"ok": false} answer becomes err. */
int conn_call(struct conn *c, json_t *req, json_t **resp, int64_t deadline, struct sb_err *err);

#endif
