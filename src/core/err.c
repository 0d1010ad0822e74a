/*
 * err.c - filling and extending struct sb_err (see err.h for the convention).
 */
#include "core/err.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

int sb_err_set(struct sb_err *err, int status, const char *fmt, ...)
{
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->status = status;
    err->sys_errno = 0;
    return -1;
}

int sb_err_sys(struct sb_err *err, int status, const char *fmt, ...)
{
    int saved = errno;
    if (!err)
        return -1;
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    if (n >= 0 && (size_t)n < sizeof err->msg)
        snprintf(err->msg + n, sizeof err->msg - (size_t)n, ": %s", strerror(saved));
    err->status = status;
    err->sys_errno = saved;
    errno = saved;
    return -1;
}

int sb_err_prefix(struct sb_err *err, const char *fmt, ...)
{
    if (!err)
        return -1;
    char prefix[SB_ERR_MSG_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    char old[SB_ERR_MSG_MAX];
    memcpy(old, err->msg, sizeof old);
    snprintf(err->msg, sizeof err->msg, "%s: %s", prefix, old);
    if (err->status == 0)
        err->status = 500;
    return -1;
}

void sb_err_clear(struct sb_err *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}
