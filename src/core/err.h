/*
 * err.h - the error object every fallible function fills.
 *
 * Convention (crun-style): a fallible function returns int, 0 on success and
 * -1 on failure, and fills the caller's `struct sb_err` with an HTTP-ish status
 * (400, 404, 409, 500, 502, ...), the errno that caused it (0 if none) and a
 * message a user can act on. Callers add context with sb_err_prefix() and pass
 * it up; only the top (an HTTP handler or a CLI verb) prints or answers it.
 * The struct is plain data on the caller's stack: nothing to free.
 */
#ifndef SB_CORE_ERR_H
#define SB_CORE_ERR_H

#include <stdarg.h>

#define SB_ERR_MSG_MAX 512

struct sb_err {
    int status;                 /* HTTP status to answer with; 0 = no error */
    int sys_errno;              /* errno behind the failure, 0 if none */
    char msg[SB_ERR_MSG_MAX];   /* human-readable, no trailing newline */
};

/* Sets err (if non-NULL) and returns -1, so callers can `return sb_err_set(...)`. */
int sb_err_set(struct sb_err *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Same, appending ": strerror(errno)" and recording errno. */
int sb_err_sys(struct sb_err *err, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Prepends "context: " to an error already set. Returns -1. */
int sb_err_prefix(struct sb_err *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void sb_err_clear(struct sb_err *err);

#endif
