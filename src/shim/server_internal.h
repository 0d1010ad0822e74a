/*
 * server_internal.h - what the three files of the shim's server share:
 * server_clients.c (client output queues, attachments and their pumping,
 * the process table's callbacks), server_ops.c (the request handlers) and
 * server.c (reading requests, the epoll loop, set-up). Private to them.
 */
#ifndef SB_SHIM_SERVER_INTERNAL_H
#define SB_SHIM_SERVER_INTERNAL_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "proto/proto.h"
#include "shim/server.h"

struct sb_client {
    int fd;
    struct sb_shim_watch watch;
    uint32_t events;                /* currently registered epoll interest */
    struct sb_frame_reader in;
    uint8_t *out;                   /* owned: queued bytes out[out_off, out_len) */
    size_t out_off, out_len, out_cap;
    struct sb_attach *attaches;     /* owned */
    int stalled;                    /* a stdin frame waits for room: stop reading */
    int dead;                       /* dropped; freed at the end of the loop iteration */
    struct sb_client *next;
};

struct sb_wait {
    struct sb_client *client;
    json_int_t seq;
    uint32_t proc;
    struct sb_wait *next;
};

/* ---- server_clients.c ---- */

/* Bytes still queued for cl. */
size_t srv_out_queued(const struct sb_client *cl);
/* The one answer to request seq: ok with fields (stolen, may be NULL), or err. */
void srv_respond_ok(struct sb_shim_server *s, struct sb_client *cl, json_int_t seq, json_t *fields);
void srv_respond_err(struct sb_shim_server *s, struct sb_client *cl, json_int_t seq,
                     const struct sb_err *err);
/* Attachments of cl to p's output from the given offsets, and their end. */
struct sb_attach *srv_attach_new(struct sb_client *cl, struct sb_proc *p, uint64_t out_off, uint64_t err_off);
void srv_attach_unlink(struct sb_client *cl, struct sb_attach *a);
/* Writes what cl's socket takes, refilling from its attachments. */
void srv_client_flush(struct sb_shim_server *s, struct sb_client *cl);
/* Marks cl dead (freed by srv_free_dead_clients at the end of the iteration). */
void srv_client_drop(struct sb_shim_server *s, struct sb_client *cl);
void srv_free_dead_clients(struct sb_shim_server *s);
/* The process table's callbacks (arg is the server). */
void srv_on_proc_output(void *arg, struct sb_proc *p);
void srv_on_proc_finished(void *arg, struct sb_proc *p);

/* ---- server_ops.c ---- */

/* Parses and answers one JSON request frame. */
void srv_handle_request(struct sb_shim_server *s, struct sb_client *cl, const struct sb_frame *f);
/* Kills everything, removes the sandbox, answers requester (NULL: nobody)
 * and ends the loop. */
void srv_destroy_sandbox(struct sb_shim_server *s, struct sb_client *requester, json_int_t seq);

#endif
