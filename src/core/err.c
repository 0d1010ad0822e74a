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
    /* Build "prefix: old" piecewise; truncation at SB_ERR_MSG_MAX is intended. */
    size_t n = strlen(prefix);
    if (n > sizeof err->msg - 1)
        n = sizeof err->msg - 1;
    memcpy(err->msg, prefix, n);
    size_t room = sizeof err->msg - 1 - n;
    size_t sep = room < 2 ? room : 2;
    memcpy(err->msg + n, ": ", sep);
    n += sep;
    room -= sep;
    size_t old_len = strnlen(old, sizeof old - 1);
    if (old_len > room)
        old_len = room;
    memcpy(err->msg + n, old, old_len);
    err->msg[n + old_len] = '\0';
    if (err->status == 0)
        err->status = 500;
    return -1;
}

void sb_err_clear(struct sb_err *err)
{
    if (err)
        memset(err, 0, sizeof *err);
}
