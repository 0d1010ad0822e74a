/*
 * process_sse.c - process output as Server-Sent Events (see process_sse.h).
 *
 * One writer per request: deferred until the start or attach is answered,
 * then the SSE stream, fed from the attachment's output chunks, ended after
 * the "end" event. Owns the writer and closes its attachment when the
 * stream is over (or the request ends before it opened).
 */
#include "api/process_sse.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/process_json.h"
#include "core/base64.h"
#include "core/utf8.h"
#include "http/sse.h"
#include "runtime/registry_procs.h"

#define WINDOW (1024u * 1024u)      /* queued event bytes before the attachment pauses */
#define LOW_WATER (256u * 1024u)    /* resumed with this much left, so the socket never runs dry */

struct sse_writer {
    struct sb_request *req;         /* until the stream opens */
    struct sb_stream *stream;       /* NULL until then */
    struct registry_proc *rp;       /* NULL once closed */
    int streamed_start;             /* POST: a "start" event first */
    uint64_t want[2];               /* the offsets asked for (output) */
    uint64_t cursor[2];             /* where each stream stands after what was sent */
    uint8_t tail[2][4];             /* a UTF-8 sequence cut short, held back */
    size_t tail_len[2];
};

static const char *const stream_names[2] = {"stdout", "stderr"};

int api_process_event_id_parse(const char *id, uint64_t *stdout_offset, uint64_t *stderr_offset)
{
    char *end;
    if (!id || id[0] < '0' || id[0] > '9')
        return -1;
    unsigned long long o = strtoull(id, &end, 10);
    if (*end != '-' || end[1] < '0' || end[1] > '9')
        return -1;
    unsigned long long e = strtoull(end + 1, &end, 10);
    if (*end || o > INT64_MAX || e > INT64_MAX)
        return -1;
    *stdout_offset = o;
    *stderr_offset = e;
    return 0;
}

static void writer_free(struct sse_writer *w)
{
    if (w->rp)
        registry_proc_close(w->rp);
    free(w);
}

/* Writes one event of obj (stolen) with the current offsets as its id. */
static void write_event(struct sse_writer *w, const char *event, json_t *obj, int with_id)
{
    char id[48];
    snprintf(id, sizeof id, "%" PRIu64 "-%" PRIu64, w->cursor[0], w->cursor[1]);
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    if (text)
        sb_sse_event(w->stream, with_id ? id : NULL, event, text);
    free(text);
}

/* The data of a stdout/stderr event in one pass over the bytes:
 * {"offset":N,"data":"..."} escaped as JSON wants, or NULL when the bytes
 * are not valid UTF-8 (or out of memory). Caller frees. */
static char *text_event(uint64_t offset, const uint8_t *b, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    char *out = malloc(len * 6 + 64);       /* \u00XX is the longest escape */
    if (!out)
        return NULL;
    size_t o = (size_t)sprintf(out, "{\"offset\":%" PRIu64 ",\"data\":\"", offset);
    for (size_t i = 0; i < len;) {
        uint8_t c = b[i];
        if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
            out[o++] = (char)c;
            i++;
        } else if (c < 0x80) {
            out[o++] = '\\';
            switch (c) {
            case '"': out[o++] = '"'; break;
            case '\\': out[o++] = '\\'; break;
            case '\n': out[o++] = 'n'; break;
            case '\r': out[o++] = 'r'; break;
            case '\t': out[o++] = 't'; break;
            default:
                memcpy(out + o, "u00", 3);
                out[o + 3] = hex[c >> 4];
                out[o + 4] = hex[c & 15];
                o += 5;
                break;
            }
            i++;
        } else {
            size_t k = sb_utf8_sequence((const char *)b + i, len - i);
            if (k == 0) {
                free(out);
                return NULL;
            }
            memcpy(out + o, b + i, k);
            o += k;
            i += k;
        }
    }
    memcpy(out + o, "\"}", 3);
    return out;
}

/* One stdout/stderr event of bytes that start at w->cursor[idx]. */
static void write_output(struct sse_writer *w, int idx, const uint8_t *bytes, size_t len)
{
    char id[48];
    char *text = text_event(w->cursor[idx], bytes, len);
    if (!text) {                    /* not UTF-8: base64 */
        char *b64 = malloc(sb_base64_encoded_size(len) + 64);
        if (!b64)
            return;
        size_t n = (size_t)sprintf(b64, "{\"offset\":%" PRIu64 ",\"dataB64\":\"", w->cursor[idx]);
        n += sb_base64_encode(bytes, len, b64 + n);
        memcpy(b64 + n, "\"}", 3);
        text = b64;
    }
    w->cursor[idx] += len;
    snprintf(id, sizeof id, "%" PRIu64 "-%" PRIu64, w->cursor[0], w->cursor[1]);
    sb_sse_event(w->stream, id, stream_names[idx], text);
    free(text);
}

/* How many bytes at the end of b are the start of a UTF-8 sequence cut
 * short (0-3): held back for the next chunk. */
static size_t incomplete_tail(const uint8_t *b, size_t len)
{
    for (size_t k = 1; k <= 3 && k <= len; k++) {
        uint8_t c = b[len - k];
        if ((c & 0xC0) == 0x80)
            continue;               /* a continuation byte: the lead is further back */
        size_t need = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

static void flush_tail(struct sse_writer *w, int idx)
{
    if (w->tail_len[idx] == 0)
        return;
    size_t n = w->tail_len[idx];
    w->tail_len[idx] = 0;
    write_output(w, idx, w->tail[idx], n);
}

static void on_drained(struct sb_stream *s, void *arg)
{
    struct sse_writer *w = arg;
    if (w->rp)
        registry_proc_pause(w->rp, 0);
}

static void on_output(void *arg, const struct registry_output *ch)
{
    struct sse_writer *w = arg;
    if (ch->stream != REGISTRY_STDOUT && ch->stream != REGISTRY_STDERR)
        return;
    int idx = ch->stream - 1;
    if (ch->offset != w->cursor[idx] + w->tail_len[idx]) {     /* not contiguous: never split across it */
        flush_tail(w, idx);
        w->cursor[idx] = ch->offset;
    }
    size_t n = w->tail_len[idx] + ch->len;
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return;
    memcpy(buf, w->tail[idx], w->tail_len[idx]);
    memcpy(buf + w->tail_len[idx], ch->data, ch->len);
    size_t hold = incomplete_tail(buf, n);
    w->tail_len[idx] = hold;
    memcpy(w->tail[idx], buf + n - hold, hold);
    if (n > hold)
        write_output(w, idx, buf, n - hold);
    free(buf);
    if (sb_stream_queued(w->stream) > WINDOW) {
        registry_proc_pause(w->rp, 1);
        sb_stream_on_drain(w->stream, LOW_WATER, on_drained, w);
    }
}

static void on_exit_event(void *arg, json_t *ev)
{
    struct sse_writer *w = arg;
    flush_tail(w, 0);
    flush_tail(w, 1);
    write_event(w, "end", api_process_result(ev), 1);
    sb_stream_end(w->stream);
}

static void on_stream_close(void *arg, enum sb_stream_end why)
{
    writer_free(arg);               /* the process runs on if it still does */
}

/* Before the stream opened: the client left. */
static void on_gone(struct sb_request *req, void *arg)
{
    struct sse_writer *w = arg;
    struct sb_err e;
    sb_request_complete_error(req, (sb_err_set(&e, 499, "client closed the request"), &e));
    writer_free(w);
}

static void on_failed(void *arg, const struct sb_err *err)
{
    struct sse_writer *w = arg;
    if (!w->stream) {
        sb_request_on_gone(w->req, NULL, NULL);
        sb_request_complete_error(w->req, err);
        writer_free(w);
        return;
    }
    write_event(w, "error", json_pack("{s:i, s:s}", "code", err->status, "message", err->msg), 0);
    sb_stream_end(w->stream);
}

static void on_started(void *arg, json_t *info)
{
    struct sse_writer *w = arg;
    struct sb_err err = {0};
    sb_request_on_gone(w->req, NULL, NULL);
    w->stream = sb_sse_open(w->req, &err);
    if (!w->stream) {
        sb_request_complete_error(w->req, &err);
        writer_free(w);
        return;
    }
    sb_stream_on_close(w->stream, on_stream_close, w);
    w->req = NULL;
    char id[16];
    api_process_id(info, id);
    if (w->streamed_start) {
        write_event(w, "start", json_pack("{s:s, s:O}", "processID", id, "pid", json_object_get(info, "pid")), 1);
        return;
    }
    w->cursor[0] = (uint64_t)json_integer_value(json_object_get(info, "stdout_offset"));
    w->cursor[1] = (uint64_t)json_integer_value(json_object_get(info, "stderr_offset"));
    if (w->cursor[0] > w->want[0] || w->cursor[1] > w->want[1])
        write_event(w, "dropped", json_pack("{s:I, s:I}", "stdout", (json_int_t)(w->cursor[0] - w->want[0]),
                                            "stderr", (json_int_t)(w->cursor[1] - w->want[1])), 1);
}

static struct sse_writer *writer_new(struct sb_request *req, struct registry_proc_handlers *h, struct sb_err *err)
{
    struct sse_writer *w = calloc(1, sizeof *w);
    if (!w) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    w->req = req;
    *h = (struct registry_proc_handlers){.started = on_started, .output = on_output, .exit = on_exit_event,
                                         .failed = on_failed, .arg = w};
    return w;
}

static int writer_run(struct sse_writer *w, struct sb_err *err)
{
    if (!w->rp) {
        free(w);
        return -1;
    }
    sb_request_defer(w->req);
    sb_request_on_gone(w->req, on_gone, w);
    return 0;
}

int api_process_stream_start(struct sb_request *req, const struct sb_process_request *preq, struct sb_err *err)
{
    struct registry_proc_handlers h;
    struct sse_writer *w = writer_new(req, &h, err);
    if (!w)
        return -1;
    w->streamed_start = 1;
    w->rp = registry_proc_start(api_app(req)->registry, req->org_id, sb_request_param(req, "id"), preq, &h, err);
    return writer_run(w, err);
}

int api_process_stream_output(struct sb_request *req, const char *sel, uint64_t stdout_offset,
                              uint64_t stderr_offset, struct sb_err *err)
{
    struct registry_proc_handlers h;
    struct sse_writer *w = writer_new(req, &h, err);
    if (!w)
        return -1;
    w->want[0] = stdout_offset;
    w->want[1] = stderr_offset;
    w->rp = registry_proc_attach(api_app(req)->registry, req->org_id, sb_request_param(req, "id"), sel,
                                 stdout_offset, stderr_offset, &h, err);
    return writer_run(w, err);
}
