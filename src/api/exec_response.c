/*
 * exec_response.c - the answer of a synchronous exec, encoded as it is sent
 * (see exec_response.h).
 *
 * The body is the scalar fields, then "stdout" and "stderr" as JSON strings
 * escaped piece by piece (pieces cut between UTF-8 sequences, invalid bytes
 * become U+FFFD as everywhere else), written to an HTTP stream only while
 * less than WINDOW bytes wait for the client: a 10 MiB output of NUL bytes
 * (60 MiB of JSON) never exists in memory as a whole, and what a slow
 * client has not read stays the raw output the budget already counts.
 *
 * Owns the result and the writer state until the stream closes.
 */
#include "api/exec_response.h"

#include <stdlib.h>
#include <string.h>

#include "core/log.h"
#include "core/utf8.h"
#include "http/stream.h"

#define PIECE (64u * 1024u)         /* output bytes escaped per write */
#define WINDOW (256u * 1024u)       /* queued bytes before waiting for the client */
#define LOW_WATER (64u * 1024u)

struct exec_writer {
    struct sb_registry *reg;
    struct sb_stream *stream;
    struct sb_exec_result res;
    int field;                      /* 0 stdout, 1 stderr, 2 done */
    size_t off;                     /* into the field being written */
};

static void writer_free(struct exec_writer *w)
{
    registry_exec_result_clear(w->reg, &w->res);
    free(w);
}

static void on_close(void *arg, enum sb_stream_end why)
{
    writer_free(arg);
}

/* Writes one escaped piece of bytes (no quotes). -1 when the stream is over. */
static int write_piece(struct sb_stream *s, const char *bytes, size_t len)
{
    json_t *str = sb_json_string_lossy(bytes, len);
    char *text = str ? json_dumps(str, JSON_ENCODE_ANY) : NULL;
    json_decref(str);
    if (!text)
        return -1;
    int rc = sb_stream_write(s, text + 1, strlen(text) - 2);
    free(text);
    return rc;
}

static void pump(struct sb_stream *s, void *arg)
{
    struct exec_writer *w = arg;
    while (w->field < 2 && sb_stream_queued(s) < WINDOW) {
        const char *buf = w->field == 0 ? w->res.out : w->res.err_out;
        size_t len = w->field == 0 ? w->res.out_len : w->res.err_len;
        if (w->off < len) {
            size_t n = sb_utf8_cut(buf + w->off, len - w->off, PIECE);
            if (write_piece(s, buf + w->off, n) < 0)
                return;             /* closing: on_close frees w */
            w->off += n;
            continue;
        }
        static const char *const after[] = {"\",\"stderr\":\"", "\"}"};
        if (sb_stream_write(s, after[w->field], strlen(after[w->field])) < 0)
            return;
        w->field++;
        w->off = 0;
    }
    if (w->field < 2)
        sb_stream_on_drain(s, LOW_WATER, pump, w);
    else
        sb_stream_end(s);
}

int api_exec_respond(struct sb_request *req, struct sb_registry *reg, int status, json_t *head,
                     struct sb_exec_result *res, struct sb_err *err)
{
    char *text = json_dumps(head, JSON_COMPACT);
    json_decref(head);
    struct exec_writer *w = text ? calloc(1, sizeof *w) : NULL;
    if (!w) {
        free(text);
        return sb_err_set(err, 500, "out of memory");
    }
    w->stream = sb_stream_open(req, status, "application/json", err);
    if (!w->stream) {
        free(w);
        free(text);
        return -1;
    }
    w->reg = reg;
    w->res = *res;
    memset(res, 0, sizeof *res);
    sb_stream_on_close(w->stream, on_close, w);
    size_t n = strlen(text);        /* "{...}": reopen it for the two strings */
    int rc = sb_stream_write(w->stream, text, n - 1);
    if (rc == 0)
        rc = sb_stream_write(w->stream, n > 2 ? ",\"stdout\":\"" : "\"stdout\":\"", n > 2 ? 11 : 10);
    free(text);
    if (rc == 0)
        pump(w->stream, w);
    return 0;                       /* answered, whatever happens to the stream now */
}
