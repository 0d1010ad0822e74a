/*
 * async.h - running a handler's blocking part on the worker pool.
 *
 * api_run_async defers the request and queues job(req, arg) on a worker
 * thread; the job must complete the request (sb_request_complete_*) exactly
 * once. arg is freed with free_arg after the job (free_arg may be NULL).
 * If the job cannot be queued the request is answered 503 at once.
 */
#ifndef SB_API_ASYNC_H
#define SB_API_ASYNC_H

#include "http/request.h"

typedef void (*api_job_fn)(struct sb_request *req, void *arg);

void api_run_async(struct sb_request *req, api_job_fn job, void *arg, void (*free_arg)(void *));
/* The same for a request that is deferred already (a streamed body's sink
 * deferred it): queues the job without deferring again. Loop thread. */
void api_run_deferred(struct sb_request *req, api_job_fn job, void *arg, void (*free_arg)(void *));

#endif
