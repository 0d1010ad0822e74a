/*
 * multipart.h - a streaming multipart/form-data parser (RFC 7578, RFC
 * 2046's framing) for request bodies that arrive piece by piece.
 *
 * It holds no part's content: bytes go to part_data as they are fed, in as
 * many pieces as it takes, so a 1 GiB upload costs the parser a few hundred
 * bytes (the boundary it is matching and one part's header block, at most
 * SB_MULTIPART_HEADER_MAX). Feed pieces of any size (one byte at a time
 * works); callbacks run inside sb_multipart_feed, and returning -1 from one
 * (with err set) stops the parse. Every malformation is a 400 that says
 * what was wrong: no boundary in the Content-Type, a header block too long
 * or without a Content-Disposition form-data name, bytes after a boundary
 * that are neither "--" nor a line end, or a body that ends before the
 * closing boundary. The preamble and epilogue are ignored, as RFC 2046
 * says. Knows nothing of files or sandboxes.
 */
#ifndef SB_HTTP_MULTIPART_H
#define SB_HTTP_MULTIPART_H

#include <stddef.h>

#include "core/err.h"

#define SB_MULTIPART_HEADER_MAX 8192
#define SB_MULTIPART_BOUNDARY_MAX 70

struct sb_multipart_callbacks {
    /* A part's headers are in: its form field name, its filename (NULL when
     * the part has none: a plain field) and its Content-Type (NULL: none).
     * Valid during the call only. */
    int (*part_begin)(void *arg, const char *name, const char *filename, const char *content_type,
                      struct sb_err *err);
    /* Some of the current part's content. */
    int (*part_data)(void *arg, const char *data, size_t len, struct sb_err *err);
    /* The current part is complete. */
    int (*part_end)(void *arg, struct sb_err *err);
};

struct sb_multipart;

/* A parser for a body whose Content-Type header is content_type; 400 when it
 * is not multipart/form-data with a valid boundary. Caller frees it with
 * sb_multipart_free. cbs and arg must outlive it. */
struct sb_multipart *sb_multipart_new(const char *content_type, const struct sb_multipart_callbacks *cbs,
                                      void *arg, struct sb_err *err);
/* Parses the next len bytes. -1 with err (400 malformed, or a callback's
 * error); after that every call fails the same way. */
int sb_multipart_feed(struct sb_multipart *mp, const char *data, size_t len, struct sb_err *err);
/* The body ended: 0 when the closing boundary was seen, else 400. */
int sb_multipart_finish(struct sb_multipart *mp, struct sb_err *err);
void sb_multipart_free(struct sb_multipart *mp);

/* 1 when content_type names multipart/form-data (parameters aside). */
int sb_multipart_is_form(const char *content_type);

#endif
