/*
 * http1.h - the pieces of HTTP/1.1 a proxy reads from a server it does not
 * trust: a response head (status line and headers) and a chunked body.
 *
 * Pure functions over caller buffers: no sockets, no allocation. Strict by
 * design (RFC 9112): whatever is ambiguous (obs-fold, a space before the
 * colon, control bytes, conflicting Content-Lengths) is refused rather
 * than guessed at, since a lenient reading is how responses get smuggled.
 */
#ifndef SB_HTTP_HTTP1_H
#define SB_HTTP_HTTP1_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "http/request.h"

#define SB_HTTP1_MAX_HEADERS 100

/* How the body after a response head is delimited. */
enum sb_http1_framing {
    SB_HTTP1_NO_BODY,       /* 1xx, 204, 304, or an answer to HEAD */
    SB_HTTP1_LENGTH,        /* Content-Length */
    SB_HTTP1_CHUNKED,       /* Transfer-Encoding ending in chunked */
    SB_HTTP1_UNTIL_CLOSE,   /* neither: the body ends when the server closes */
};

struct sb_http1_head {
    int status;                     /* 100-599 */
    int minor;                      /* HTTP/1.<minor> */
    int close;                      /* Connection: close (or HTTP/1.0 without keep-alive) */
    size_t header_count;
    struct sb_header headers[SB_HTTP1_MAX_HEADERS];   /* point into the parsed buffer */
    enum sb_http1_framing framing;
    uint64_t length;                /* SB_HTTP1_LENGTH; also what a HEAD answer declared */
    int has_length;                 /* Content-Length was given */
};

/* The length of the head at the start of buf (through its empty line), or
 * 0 while it is not complete. */
size_t sb_http1_head_length(const char *buf, size_t len);

/* Parses the head buf[0..len) (len from sb_http1_head_length) in place
 * (NULs are written into buf; head's strings point into it). is_head: the
 * request was HEAD, so no body follows whatever the headers say. -1 with
 * err (502, naming what is wrong) for a malformed head. */
int sb_http1_parse_response(char *buf, size_t len, int is_head, struct sb_http1_head *head,
                            struct sb_err *err);

/* 1 when a header value holds token (comma-separated, case-insensitive). */
int sb_http1_has_token(const char *value, const char *token);

/* A chunked body's decoder; zero it to start. */
struct sb_chunked {
    int state;
    uint64_t remaining;             /* bytes left in the current chunk */
    size_t line;                    /* bytes of the current size or trailer line */
    int digits;
    size_t trailing;                /* bytes after the body's end in the last call */
};

/* Decodes data[0..len) in place: the body bytes are moved to the start of
 * data and their count returned; *done becomes 1 once the last chunk and
 * the trailers are in (bytes after it are ignored). -1 with err (502) for
 * a malformed body. */
long sb_chunked_decode(struct sb_chunked *c, char *data, size_t len, int *done, struct sb_err *err);

#endif
