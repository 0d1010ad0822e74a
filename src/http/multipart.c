/*
 * multipart.c - see multipart.h.
 *
 * Framing: every part ends at the delimiter CRLF "--" boundary. The parser
 * keeps how many bytes of that delimiter the stream has matched so far
 * (`match`); bytes that turn out not to be a delimiter are handed on as
 * content. The boundary may not contain CR (RFC 2046's bchars), so on a
 * mismatch the only place a new match can start is the current byte: no
 * back-tracking is needed. The body's first boundary has no CRLF before
 * it, so the parser starts as if it had just read one (match = 2), inside
 * a preamble whose bytes are dropped.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http/multipart.h"

enum mp_state {
    MP_PREAMBLE,        /* before the first boundary: dropped */
    MP_AFTER_BOUNDARY,  /* "--" (the end) or padding and CRLF (a part) */
    MP_HEADERS,
    MP_BODY,
    MP_EPILOGUE,        /* after the closing boundary: dropped */
    MP_FAILED,
};

struct sb_multipart {
    const struct sb_multipart_callbacks *cbs;
    void *arg;
    enum mp_state state;
    char delim[4 + SB_MULTIPART_BOUNDARY_MAX + 1];  /* "\r\n--" boundary */
    size_t delim_len, match;
    char after[2];          /* MP_AFTER_BOUNDARY: bytes seen */
    size_t after_len;
    char headers[SB_MULTIPART_HEADER_MAX + 1];
    size_t headers_len;
    struct sb_err failure;  /* MP_FAILED: the error, repeated */
};

int sb_multipart_is_form(const char *ct)
{
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    return strncasecmp(ct, "multipart/form-data", 19) == 0 && (ct[19] == '\0' || ct[19] == ';' || ct[19] == ' ');
}

/* The value of parameter name in a header value ("a; name=v; x=\"q\"") into
 * out; quoted strings unescaped. 0 when absent. */
static int header_param(const char *value, const char *name, char *out, size_t len)
{
    size_t nlen = strlen(name);
    const char *p = strchr(value, ';');
    while (p) {
        p++;
        while (*p == ' ' || *p == '\t')
            p++;
        if (strncasecmp(p, name, nlen) == 0 && p[nlen] == '=') {
            const char *v = p + nlen + 1;
            size_t n = 0;
            if (*v == '"') {
                for (v++; *v && *v != '"' && n < len - 1; v++) {
                    if (*v == '\\' && v[1])
                        v++;
                    out[n++] = *v;
                }
            } else {
                while (*v && *v != ';' && *v != ' ' && *v != '\t' && n < len - 1)
                    out[n++] = *v++;
            }
            out[n] = '\0';
            return 1;
        }
        /* skip this parameter, minding quotes */
        int quoted = 0;
        for (; *p && (quoted || *p != ';'); p++) {
            if (*p == '\\' && quoted && p[1])
                p++;
            else if (*p == '"')
                quoted = !quoted;
        }
        p = *p ? p : NULL;
    }
    return 0;
}

struct sb_multipart *sb_multipart_new(const char *content_type, const struct sb_multipart_callbacks *cbs,
                                      void *arg, struct sb_err *err)
{
    char boundary[SB_MULTIPART_BOUNDARY_MAX + 2];
    if (!sb_multipart_is_form(content_type)) {
        sb_err_set(err, 400, "Content-Type must be multipart/form-data");
        return NULL;
    }
    if (!header_param(content_type, "boundary", boundary, sizeof boundary) || !boundary[0] ||
        strlen(boundary) > SB_MULTIPART_BOUNDARY_MAX || strpbrk(boundary, "\r\n")) {
        sb_err_set(err, 400, "multipart/form-data needs a boundary of 1-%d characters in its Content-Type",
                   SB_MULTIPART_BOUNDARY_MAX);
        return NULL;
    }
    struct sb_multipart *mp = calloc(1, sizeof *mp);
    if (!mp) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    mp->cbs = cbs;
    mp->arg = arg;
    mp->state = MP_PREAMBLE;
    mp->delim_len = (size_t)snprintf(mp->delim, sizeof mp->delim, "\r\n--%s", boundary);
    mp->match = 2;
    return mp;
}

void sb_multipart_free(struct sb_multipart *mp)
{
    free(mp);
}

static int fail(struct sb_multipart *mp, struct sb_err *err)
{
    mp->state = MP_FAILED;
    mp->failure = *err;
    return -1;
}

static int malformed(struct sb_multipart *mp, struct sb_err *err, const char *what)
{
    sb_err_set(err, 400, "malformed multipart body: %s", what);
    return fail(mp, err);
}

/* Content (or preamble) bytes. */
static int emit(struct sb_multipart *mp, const char *data, size_t len, struct sb_err *err)
{
    if (mp->state != MP_BODY || len == 0)
        return 0;
    if (mp->cbs->part_data(mp->arg, data, len, err) < 0)
        return fail(mp, err);
    return 0;
}

/* The header block is complete (without its blank line): find the part's
 * name, filename and type, and begin it. */
static int begin_part(struct sb_multipart *mp, struct sb_err *err)
{
    char name[256] = "", filename[SB_MULTIPART_HEADER_MAX] = "", type[256] = "";
    int have_disposition = 0, have_filename = 0, have_type = 0;
    char *line = mp->headers;
    mp->headers[mp->headers_len] = '\0';
    while (line && *line) {
        char *eol = strstr(line, "\r\n");
        if (eol)
            *eol = '\0';
        char *colon = strchr(line, ':');
        if (colon) {
            *colon = '\0';
            char *value = colon + 1;
            while (*value == ' ' || *value == '\t')
                value++;
            if (strcasecmp(line, "Content-Disposition") == 0) {
                if (strncasecmp(value, "form-data", 9) != 0)
                    return malformed(mp, err, "a part's Content-Disposition is not form-data");
                have_disposition = header_param(value, "name", name, sizeof name);
                have_filename = header_param(value, "filename", filename, sizeof filename);
            } else if (strcasecmp(line, "Content-Type") == 0) {
                snprintf(type, sizeof type, "%s", value);
                have_type = 1;
            }
        }
        line = eol ? eol + 2 : NULL;
    }
    if (!have_disposition)
        return malformed(mp, err, "a part has no Content-Disposition: form-data; name=\"...\"");
    mp->state = MP_BODY;
    if (mp->cbs->part_begin(mp->arg, name, have_filename ? filename : NULL, have_type ? type : NULL, err) < 0)
        return fail(mp, err);
    return 0;
}

/* MP_HEADERS: one byte at a time (header blocks are small). */
static int header_byte(struct sb_multipart *mp, char c, struct sb_err *err)
{
    if (mp->headers_len >= SB_MULTIPART_HEADER_MAX)
        return malformed(mp, err, "a part's headers are longer than 8192 bytes");
    mp->headers[mp->headers_len++] = c;
    size_t n = mp->headers_len;
    if (n == 2 && memcmp(mp->headers, "\r\n", 2) == 0) {
        mp->headers_len = 0;    /* no headers at all */
        return malformed(mp, err, "a part has no Content-Disposition: form-data; name=\"...\"");
    }
    if (n >= 4 && memcmp(mp->headers + n - 4, "\r\n\r\n", 4) == 0) {
        mp->headers_len = n - 4;
        int rc = begin_part(mp, err);
        mp->headers_len = 0;
        return rc;
    }
    return 0;
}

/* MP_AFTER_BOUNDARY: "--" ends the body; optional spaces then CRLF start a part. */
static int after_byte(struct sb_multipart *mp, char c, struct sb_err *err)
{
    if (mp->after_len == 0 && (c == ' ' || c == '\t'))
        return 0;
    mp->after[mp->after_len++] = c;
    if (mp->after_len < 2)
        return 0;
    mp->after_len = 0;
    if (memcmp(mp->after, "--", 2) == 0) {
        mp->state = MP_EPILOGUE;
        return 0;
    }
    if (memcmp(mp->after, "\r\n", 2) == 0) {
        mp->state = MP_HEADERS;
        return 0;
    }
    return malformed(mp, err, "a boundary is followed by something other than a line end or \"--\"");
}

/* MP_PREAMBLE / MP_BODY: the delimiter search over a run of bytes. The
 * bytes of a partial match are held back; they are always delim[0, match),
 * so when they turn out to be content they are emitted from delim, whichever
 * piece they came in. *used: bytes consumed (through a whole delimiter). */
static int scan(struct sb_multipart *mp, const char *data, size_t len, size_t *used, struct sb_err *err)
{
    size_t i = 0, start = 0;   /* data[start, i) is content not yet emitted */
    while (i < len) {
        if (data[i] == mp->delim[mp->match]) {
            if (mp->match == 0) {
                if (emit(mp, data + start, i - start, err) < 0)
                    return -1;
            }
            mp->match++;
            i++;
            start = i;
            if (mp->match == mp->delim_len) {
                mp->match = 0;
                if (mp->state == MP_BODY && mp->cbs->part_end(mp->arg, err) < 0)
                    return fail(mp, err);
                mp->state = MP_AFTER_BOUNDARY;
                *used = i;
                return 0;
            }
        } else if (mp->match > 0) {
            if (emit(mp, mp->delim, mp->match, err) < 0)
                return -1;
            mp->match = 0;
            start = i;          /* data[i] is tested again against delim[0] */
        } else {
            const char *cr = memchr(data + i + 1, '\r', len - i - 1);
            i = cr ? (size_t)(cr - data) : len;
        }
    }
    if (mp->match == 0 && emit(mp, data + start, len - start, err) < 0)
        return -1;
    *used = len;
    return 0;
}

int sb_multipart_feed(struct sb_multipart *mp, const char *data, size_t len, struct sb_err *err)
{
    size_t i = 0;
    while (i < len) {
        switch (mp->state) {
        case MP_FAILED:
            *err = mp->failure;
            return -1;
        case MP_EPILOGUE:
            return 0;
        case MP_HEADERS:
            if (header_byte(mp, data[i++], err) < 0)
                return -1;
            break;
        case MP_AFTER_BOUNDARY:
            if (after_byte(mp, data[i++], err) < 0)
                return -1;
            break;
        case MP_PREAMBLE:
        case MP_BODY: {
            size_t used = 0;
            if (scan(mp, data + i, len - i, &used, err) < 0)
                return -1;
            i += used;
            break;
        }
        }
    }
    if (mp->state == MP_FAILED) {
        *err = mp->failure;
        return -1;
    }
    return 0;
}

int sb_multipart_finish(struct sb_multipart *mp, struct sb_err *err)
{
    if (mp->state == MP_FAILED) {
        *err = mp->failure;
        return -1;
    }
    if (mp->state != MP_EPILOGUE)
        return malformed(mp, err, "it ended before the closing boundary");
    return 0;
}
