/*
 * nft.c - libnftables in the caller's or another network namespace (see nft.h).
 */
#include "runtime/nft.h"

#include <errno.h>
#include <nftables/libnftables.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

struct nft_job {
    int netns_fd;
    const char *cmds;
    char *output;
    size_t output_len;
    int rc;
    struct sb_err err;
};

/* The first line of what nftables printed to its error buffer. */
static void first_line(const char *text, char *out, size_t len)
{
    snprintf(out, len, "%s", text && *text ? text : "(no message)");
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = '\0';
}

/* In the namespace the job is to run in: a context, the commands, the answer. */
static void run_here(struct nft_job *job)
{
    job->rc = -1;
    struct nft_ctx *ctx = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!ctx) {
        sb_err_set(&job->err, 500, "nftables: cannot create a libnftables context");
        return;
    }
    nft_ctx_buffer_output(ctx);
    nft_ctx_buffer_error(ctx);
    if (nft_run_cmd_from_buffer(ctx, job->cmds) != 0) {
        char msg[256];
        first_line(nft_ctx_get_error_buffer(ctx), msg, sizeof msg);
        sb_err_set(&job->err, 500, "nftables refused the rules: %s", msg);
    } else {
        job->rc = 0;
        if (job->output)
            snprintf(job->output, job->output_len, "%s", nft_ctx_get_output_buffer(ctx));
    }
    nft_ctx_free(ctx);
}

static void *run_in_thread(void *arg)
{
    struct nft_job *job = arg;
    if (setns(job->netns_fd, CLONE_NEWNET) < 0) {
        job->rc = -1;
        sb_err_sys(&job->err, 500, "nftables: joining the sandbox's network namespace");
    } else {
        run_here(job);      /* the context's netlink socket belongs to that namespace */
    }
    return NULL;            /* the thread, and its namespace, end here */
}

int nft_run(int netns_fd, const char *cmds, char *output, size_t output_len, struct sb_err *err)
{
    struct nft_job job = {.netns_fd = netns_fd, .cmds = cmds, .output = output, .output_len = output_len};
    if (netns_fd < 0) {
        run_here(&job);
    } else {
        pthread_t t;
        int rc = pthread_create(&t, NULL, run_in_thread, &job);
        if (rc != 0) {
            errno = rc;
            return sb_err_sys(err, 500, "nftables: starting a thread");
        }
        pthread_join(t, NULL);
    }
    if (job.rc < 0)
        *err = job.err;
    return job.rc;
}
