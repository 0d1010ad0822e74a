/*
 * http1.c - a strict reader of HTTP/1.1 response heads and chunked bodies
 * (see http1.h), for the port proxy's upstream side.
 *
 * Refused: a status line that is not "HTTP/1.x NNN ...", a header line
 * without a colon or with whitespace before it, a folded line, a control
 * byte (but tab) in a value, more than SB_HTTP1_MAX_HEADERS headers, a
 * Content-Length that is not digits or disagrees with another, chunk sizes
 * past 2^60, lines of size or trailer past CHUNK_LINE_MAX. Framing follows
 * RFC 9112 6.3: no body for HEAD, 1xx, 204 and 304; Transfer-Encoding wins
 * over Content-Length and means "until close" unless chunked is last.
 *
 * Owns nothing; pure.
 */
#include "http/http1.h"

#include <ctype.h>
#include <string.h>
#include <strings.h>

#define CHUNK_LINE_MAX 4096

size_t sb_http1_head_length(const char *buf, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (buf[i] != '\n')
            continue;
        if (buf[i + 1] == '\n')
            return i + 2;
        if (buf[i + 1] == '\r' && i + 2 < len && buf[i + 2] == '\n')
            return i + 3;
    }
    return 0;
}

static int is_tchar(unsigned char c)
{
    return isalnum(c) || (c && strchr("!#$%&'*+-.^_`|~", c));
}

int sb_http1_has_token(const char *value, const char *token)
{
    size_t n = strlen(token);
    for (const char *p = value; p && *p;) {
        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        const char *end = p;
        while (*end && *end != ',')
            end++;
        const char *last = end;
        while (last > p && (last[-1] == ' ' || last[-1] == '\t'))
            last--;
        if ((size_t)(last - p) == n && strncasecmp(p, token, n) == 0)
            return 1;
        p = end;
    }
    return 0;
}

/* The last coding of a Transfer-Encoding value is chunked. */
static int ends_chunked(const char *value)
{
    const char *comma = strrchr(value, ',');
    const char *p = comma ? comma + 1 : value;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t n = strlen(p);
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
        n--;
    return n == 7 && strncasecmp(p, "chunked", 7) == 0;
}

static int parse_length(const char *value, uint64_t *out)
{
    if (!*value || strlen(value) > 18)
        return -1;
    uint64_t n = 0;
    for (const char *p = value; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        n = n * 10 + (uint64_t)(*p - '0');
    }
    *out = n;
    return 0;
}

/* One "name: value" line (NUL-terminated, no line end) into head. */
static int parse_header_line(char *line, struct sb_http1_head *head, struct sb_err *err)
{
    if (*line == ' ' || *line == '\t')
        return sb_err_set(err, 502, "the sandbox's server sent a folded header line");
    char *colon = strchr(line, ':');
    if (!colon || colon == line)
        return sb_err_set(err, 502, "the sandbox's server sent a header line without a name");
    for (char *p = line; p < colon; p++)
        if (!is_tchar((unsigned char)*p))
            return sb_err_set(err, 502, "the sandbox's server sent a bad header name");
    *colon = '\0';
    char *value = colon + 1;
    while (*value == ' ' || *value == '\t')
        value++;
    size_t n = strlen(value);
    while (n > 0 && (value[n - 1] == ' ' || value[n - 1] == '\t'))
        value[--n] = '\0';
    for (const char *p = value; *p; p++)
        if ((unsigned char)*p < 0x20 && *p != '\t')
            return sb_err_set(err, 502, "the sandbox's server sent a control byte in header %.64s", line);
    if (head->header_count == SB_HTTP1_MAX_HEADERS)
        return sb_err_set(err, 502, "the sandbox's server sent more than %d headers", SB_HTTP1_MAX_HEADERS);
    head->headers[head->header_count++] = (struct sb_header){line, value};
    return 0;
}

static int settle_framing(struct sb_http1_head *head, int is_head, struct sb_err *err)
{
    const char *te = NULL, *connection = NULL;
    int have_length = 0;
    for (size_t i = 0; i < head->header_count; i++) {
        const struct sb_header *h = &head->headers[i];
        if (strcasecmp(h->name, "Transfer-Encoding") == 0) {
            te = h->value;
        } else if (strcasecmp(h->name, "Connection") == 0) {
            connection = h->value;
        } else if (strcasecmp(h->name, "Content-Length") == 0) {
            uint64_t n;
            if (parse_length(h->value, &n) < 0 || (have_length && n != head->length))
                return sb_err_set(err, 502, "the sandbox's server sent a bad Content-Length");
            head->length = n;
            have_length = 1;
        }
    }
    head->has_length = have_length;
    head->close = connection ? sb_http1_has_token(connection, "close")
                             : head->minor == 0;
    if (head->minor == 0 && !(connection && sb_http1_has_token(connection, "keep-alive")))
        head->close = 1;
    if (is_head || head->status < 200 || head->status == 204 || head->status == 304)
        head->framing = SB_HTTP1_NO_BODY;
    else if (te)
        head->framing = ends_chunked(te) ? SB_HTTP1_CHUNKED : SB_HTTP1_UNTIL_CLOSE;
    else if (have_length)
        head->framing = SB_HTTP1_LENGTH;
    else
        head->framing = SB_HTTP1_UNTIL_CLOSE;
    return 0;
}

int sb_http1_parse_response(char *buf, size_t len, int is_head, struct sb_http1_head *head,
                            struct sb_err *err)
{
    memset(head, 0, sizeof *head);
    if (len < 2 || buf[len - 1] != '\n')
        return sb_err_set(err, 502, "the sandbox's server sent an incomplete response head");
    for (size_t i = 0; i < len; i++)
        if (buf[i] == '\0')
            return sb_err_set(err, 502, "the sandbox's server sent a NUL byte in its response head");
    char *line = buf;
    int first = 1;
    while (line < buf + len) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        *nl = '\0';
        if (nl > line && nl[-1] == '\r')
            nl[-1] = '\0';
        if (!*line)
            break;      /* the empty line */
        if (first) {
            if (strncmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) || line[8] != ' ' ||
                !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) ||
                !isdigit((unsigned char)line[11]) || (line[12] != ' ' && line[12] != '\0'))
                return sb_err_set(err, 502, "the sandbox's server did not answer HTTP/1.x (status line '%.40s')",
                                  line);
            head->status = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
            head->minor = line[7] - '0';
            if (head->status < 100 || head->status > 599)
                return sb_err_set(err, 502, "the sandbox's server sent status %d", head->status);
            first = 0;
        } else if (parse_header_line(line, head, err) < 0) {
            return -1;
        }
        line = nl + 1;
    }
    if (first)
        return sb_err_set(err, 502, "the sandbox's server sent an empty response head");
    return settle_framing(head, is_head, err);
}

enum { CH_SIZE, CH_EXT, CH_DATA, CH_DATA_CR, CH_DATA_LF, CH_TRAILER, CH_DONE };

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

long sb_chunked_decode(struct sb_chunked *c, char *data, size_t len, int *done, struct sb_err *err)
{
    size_t out = 0, i = 0;
    *done = c->state == CH_DONE;
    for (i = 0; i < len && c->state != CH_DONE;) {
        char ch = data[i];
        switch (c->state) {
        case CH_SIZE:
            if (hex_value(ch) >= 0) {
                if (++c->digits > 15)
                    return sb_err_set(err, 502, "the sandbox's server sent a chunk too large"), -1;
                c->remaining = c->remaining * 16 + (uint64_t)hex_value(ch);
            } else if (c->digits == 0) {
                return sb_err_set(err, 502, "the sandbox's server sent a bad chunk size"), -1;
            } else if (ch == '\n') {
                c->state = c->remaining ? CH_DATA : CH_TRAILER;
                c->line = 0;
            } else if (ch == ';' || ch == ' ' || ch == '\t' || ch == '\r') {
                c->state = CH_EXT;
            } else {
                return sb_err_set(err, 502, "the sandbox's server sent a bad chunk size"), -1;
            }
            i++;
            break;
        case CH_EXT:
            if (ch == '\n') {
                c->state = c->remaining ? CH_DATA : CH_TRAILER;
                c->line = 0;
            } else if (++c->line > CHUNK_LINE_MAX) {
                return sb_err_set(err, 502, "the sandbox's server sent a chunk extension too long"), -1;
            }
            i++;
            break;
        case CH_DATA: {
            size_t n = len - i;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            memmove(data + out, data + i, n);
            out += n;
            i += n;
            c->remaining -= n;
            if (!c->remaining)
                c->state = CH_DATA_CR;
            break;
        }
        case CH_DATA_CR:
            if (ch == '\r') {
                c->state = CH_DATA_LF;
                i++;
                break;
            }
            /* a bare LF ends the chunk as well */
            __attribute__((fallthrough));
        case CH_DATA_LF:
            if (ch != '\n')
                return sb_err_set(err, 502, "the sandbox's server sent a chunk longer than its size"), -1;
            c->state = CH_SIZE;
            c->digits = 0;
            c->remaining = 0;
            i++;
            break;
        case CH_TRAILER:
            if (ch == '\n') {
                if (c->line == 0)
                    c->state = CH_DONE;
                c->line = 0;
            } else if (ch != '\r' || c->line > 0) {
                if (++c->line > CHUNK_LINE_MAX)
                    return sb_err_set(err, 502, "the sandbox's server sent a trailer too long"), -1;
            }
            i++;
            break;
        }
    }
    *done = c->state == CH_DONE;
    c->trailing = *done ? len - i : 0;
    return (long)out;
}
