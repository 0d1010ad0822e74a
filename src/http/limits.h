/*
 * limits.h - private to src/http: the guards that keep a few clients from
 * holding every HTTP connection (see limits.c).
 *
 * server.c owns one struct http_limits per daemon, hands its callbacks to
 * MHD (MHD_OPTION_NOTIFY_CONNECTION) and tells it where each request is:
 * http_limits_request_started / _received / _done from its access handler
 * and completion callback. server_tick runs http_limits_sweep. Loop thread
 * only, like everything that touches MHD.
 */
#ifndef SB_HTTP_LIMITS_H
#define SB_HTTP_LIMITS_H

#include <microhttpd.h>
#include <stdarg.h>
#include <stdint.h>

#include "core/err.h"

struct http_limits;

/* read_timeout_s: how long a request may take to arrive, headers and body,
 * however slowly its bytes trickle in. Caller frees with
 * http_limits_free() after MHD_stop_daemon(). NULL when out of memory. */
struct http_limits *http_limits_new(unsigned read_timeout_s);
void http_limits_free(struct http_limits *limits);

/* MHD_NotifyConnectionCallback; cls is the http_limits. */
void http_limits_on_connection(void *cls, struct MHD_Connection *mhd, void **socket_context,
                               enum MHD_ConnectionNotificationCode code);
/* The access handler's first call: the request's headers are in. */
void http_limits_request_started(struct MHD_Connection *mhd);
/* The access handler's final call: the whole request is in, the deadline
 * no longer applies (a deferred answer is MHD's idle timeout's business). */
void http_limits_request_received(struct MHD_Connection *mhd);
/* The request completed: the connection idles until its next request. */
void http_limits_request_done(struct MHD_Connection *mhd);

/* For MHD's logger: returns 1 when fmt is MHD's "connection limit
 * reached" line, counted here and summarised by the sweep instead of
 * written once per refused connection (a flood must not flood the log). */
int http_limits_take_log(struct http_limits *limits, const char *fmt);

/* Closes (shutdown) the connections past their read deadline and writes the
 * summary lines. Cheap when not due. Returns the ms until the next sweep is
 * due, or -1 when no connection is open. */
int64_t http_limits_sweep(struct http_limits *limits, uint64_t now_ms);

/* Raises RLIMIT_NOFILE's soft limit to the hard limit, and lowers
 * *connections (and *per_address, to at most half of it) when even that
 * leaves fewer than *connections + a reserve of fds for the rest of the
 * server; says so in the log. */
void http_limits_fit_fd_limit(unsigned *connections, unsigned *per_address);

#endif
