/*
 * nft.c - the process's libnftables context (see nft.h).
 */
#include "runtime/nft.h"

#include <nftables/libnftables.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

static pthread_mutex_t nft_lock = PTHREAD_MUTEX_INITIALIZER;
static struct nft_ctx *nft;     /* under nft_lock; made on first use */

/* Caller holds nft_lock. */
static struct nft_ctx *context(struct sb_err *err)
{
    if (nft)
        return nft;
    nft = nft_ctx_new(NFT_CTX_DEFAULT);
    if (!nft) {
        sb_err_set(err, 500, "nftables: cannot create a libnftables context");
        return NULL;
    }
    nft_ctx_buffer_output(nft);
    nft_ctx_buffer_error(nft);
    return nft;
}

/* The first line of what nftables printed to its error buffer. */
static void first_line(const char *text, char *out, size_t len)
{
    snprintf(out, len, "%s", text && *text ? text : "(no message)");
    char *nl = strchr(out, '\n');
    if (nl)
        *nl = '\0';
}

int nft_run(const char *cmds, struct sb_err *err)
{
    pthread_mutex_lock(&nft_lock);
    struct nft_ctx *ctx = context(err);
    int rc = -1;
    if (ctx) {
        rc = nft_run_cmd_from_buffer(ctx, cmds);
        if (rc != 0) {
            char msg[256];
            first_line(nft_ctx_get_error_buffer(ctx), msg, sizeof msg);
            sb_err_set(err, 500, "nftables refused the rules: %s", msg);
            rc = -1;
        }
        nft_ctx_get_output_buffer(ctx);     /* discard */
    }
    pthread_mutex_unlock(&nft_lock);
    return rc;
}

int nft_table_exists(const char *name, struct sb_err *err)
{
    char cmd[320];
    snprintf(cmd, sizeof cmd, "list tables inet");
    pthread_mutex_lock(&nft_lock);
    struct nft_ctx *ctx = context(err);
    int rc = -1;
    if (ctx && nft_run_cmd_from_buffer(ctx, cmd) == 0) {
        const char *out = nft_ctx_get_output_buffer(ctx);
        char want[300];
        snprintf(want, sizeof want, "table inet %s\n", name);
        rc = out && strstr(out, want) ? 1 : 0;
    } else if (ctx) {
        char msg[256];
        first_line(nft_ctx_get_error_buffer(ctx), msg, sizeof msg);
        sb_err_set(err, 500, "nftables: listing tables: %s", msg);
    }
    pthread_mutex_unlock(&nft_lock);
    return rc;
}

void nft_shutdown(void)
{
    pthread_mutex_lock(&nft_lock);
    if (nft)
        nft_ctx_free(nft);
    nft = NULL;
    pthread_mutex_unlock(&nft_lock);
}
