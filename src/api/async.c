/*
 * async.c - hands a deferred request to the worker pool (see async.h).
 */
#include "api/async.h"

#include <stdlib.h>

#include "api/app.h"

struct async_job {
    struct sb_request *req;
    api_job_fn job;
    void *arg;
    void (*free_arg)(void *);
};

static void run_job(void *p)
{
    struct async_job *aj = p;
    aj->job(aj->req, aj->arg);
    if (aj->free_arg)
        aj->free_arg(aj->arg);
    free(aj);
}

static void submit(struct sb_request *req, api_job_fn job, void *arg, void (*free_arg)(void *), int defer)
{
    struct sb_err err = {0};
    struct async_job *aj = malloc(sizeof *aj);
    if (!aj) {
        if (free_arg)
            free_arg(arg);
        sb_respond_error(req, (sb_err_set(&err, 503, "server busy: out of memory"), &err));
        return;
    }
    *aj = (struct async_job){.req = req, .job = job, .arg = arg, .free_arg = free_arg};
    if (defer)
        sb_request_defer(req);
    if (sb_worker_submit(api_app(req)->workers, run_job, aj) < 0) {
        free(aj);
        if (free_arg)
            free_arg(arg);
        sb_err_set(&err, 503, "server busy: cannot queue work, try again");
        sb_request_complete_error(req, &err);
    }
}

void api_run_async(struct sb_request *req, api_job_fn job, void *arg, void (*free_arg)(void *))
{
    submit(req, job, arg, free_arg, 1);
}

void api_run_deferred(struct sb_request *req, api_job_fn job, void *arg, void (*free_arg)(void *))
{
    submit(req, job, arg, free_arg, 0);
}
