/*
 * log.c - text or JSON-lines logging to stderr (see log.h).
 *
 * Every JSON line is valid JSON whatever the bytes logged: messages and
 * access-line fields that are not valid UTF-8 (a client's path) have each
 * invalid byte written as U+FFFD (core/utf8.h decides what is valid).
 */
#include "core/log.h"

#include "core/utf8.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

static int log_json;
static enum sb_log_level log_min = SB_LOG_INFO;

static const char *level_names[] = {"debug", "info", "warn", "error"};

void sb_log_init(enum sb_log_format format, enum sb_log_level min_level)
{
    log_min = min_level;
    if (format == SB_LOG_AUTO)
        log_json = !isatty(STDERR_FILENO);
    else
        log_json = (format == SB_LOG_JSON);
}

int sb_log_format_parse(const char *s, enum sb_log_format *out)
{
    if (strcmp(s, "text") == 0)
        *out = SB_LOG_TEXT;
    else if (strcmp(s, "json") == 0)
        *out = SB_LOG_JSON;
    else if (strcmp(s, "auto") == 0)
        *out = SB_LOG_AUTO;
    else
        return -1;
    return 0;
}

int sb_log_is_json(void) { return log_json; }

static void format_now(char *buf, size_t len)
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t n = strftime(buf, len, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, len - n, ".%03ldZ", (long)(tv.tv_usec / 1000));
}

/* Emits one finished line with a single write(2), so lines never interleave. */
static void emit(const char *line, size_t len)
{
    ssize_t rc = write(STDERR_FILENO, line, len);
    (void)rc;
}

/* Access lines waiting for sb_log_flush (one thread: see log.h). */
static char access_buf[64 * 1024];
static size_t access_len;

void sb_log_flush(void)
{
    if (access_len)
        emit(access_buf, access_len);
    access_len = 0;
}

static void emit_access(const char *line, size_t len)
{
    if (access_len + len > sizeof access_buf)
        sb_log_flush();
    if (len > sizeof access_buf) {
        emit(line, len);
        return;
    }
    memcpy(access_buf + access_len, line, len);
    access_len += len;
}

static void emit_json(json_t *obj)
{
    char *s = json_dumps(obj, JSON_COMPACT);
    if (s) {
        size_t n = strlen(s);
        char line[4096];
        if (n + 2 <= sizeof line) {
            memcpy(line, s, n);
            line[n] = '\n';
            emit(line, n + 1);
        }
        free(s);
    }
    json_decref(obj);
}

/* Appends s for a text line: control characters and bytes that are not
 * valid UTF-8 written as \xNN, so a client's bytes can never start a
 * line of their own or garble the terminal. Returns the new length. */
static size_t text_escape_into(char *out, size_t len, size_t used, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t left = strlen(s);
    while (left > 0 && used + 5 < len) {
        unsigned char c = (unsigned char)*s;
        size_t n = sb_utf8_sequence(s, left);
        if (n == 0 || c < 0x20 || c == 0x7f) {
            out[used++] = '\\';
            out[used++] = 'x';
            out[used++] = hex[c >> 4];
            out[used++] = hex[c & 15];
            n = 1;
        } else {
            memcpy(out + used, s, n);
            used += n;
        }
        s += n;
        left -= n;
    }
    return used;
}

void sb_log(enum sb_log_level level, const char *fmt, ...)
{
    if (level < log_min)
        return;
    char msg[2048], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    format_now(ts, sizeof ts);
    if (log_json) {
        emit_json(json_pack("{s:s, s:s, s:o}", "time", ts, "level", level_names[level], "msg",
                            sb_json_string_lossy(msg, strlen(msg))));
        return;
    }
    char line[8400];
    size_t used = (size_t)snprintf(line, sizeof line, "%s %-5s ", ts, level_names[level]);
    used = text_escape_into(line, sizeof line - 1, used, msg);
    line[used++] = '\n';
    emit(line, used);
}

/* Appends s to out as the body of a JSON string: quotes, backslashes and
 * control characters escaped, each byte that is not valid UTF-8 written as
 * U+FFFD; stops at the buffer's end. Returns the new length. */
static size_t json_escape_into(char *out, size_t len, size_t used, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t left = strlen(s);
    while (left > 0 && used + 7 < len) {
        unsigned char c = (unsigned char)*s;
        size_t n = sb_utf8_sequence(s, left);
        if (n == 0) {
            memcpy(out + used, "\\ufffd", 6);
            used += 6;
            n = 1;
        } else if (c == '"' || c == '\\') {
            out[used++] = '\\';
            out[used++] = (char)c;
        } else if (c < 0x20) {
            memcpy(out + used, "\\u00", 4);
            out[used + 4] = hex[c >> 4];
            out[used + 5] = hex[c & 15];
            used += 6;
        } else {
            memcpy(out + used, s, n);
            used += n;
        }
        s += n;
        left -= n;
    }
    return used;
}

/* The access line is on the hot path of every request: formatted by hand,
 * without building a JSON tree. */
void sb_log_request(const char *method, const char *path, int status,
                    double duration_ms, const char *org_id)
{
    char ts[40];
    format_now(ts, sizeof ts);
    char line[2400];
    int n;
    if (log_json) {
        size_t used = (size_t)snprintf(line, sizeof line, "{\"time\":\"%s\",\"level\":\"info\",\"method\":\"", ts);
        used = json_escape_into(line, sizeof line - 200, used, method);
        memcpy(line + used, "\",\"path\":\"", 10);
        used = json_escape_into(line, sizeof line - 200, used + 10, path);
        n = snprintf(line + used, sizeof line - used,
                     "\",\"status\":%d,\"duration_ms\":%.3f,\"org\":%s%s%s}\n", status,
                     duration_ms, org_id ? "\"" : "", org_id ? org_id : "null", org_id ? "\"" : "");
        if (n > 0)
            emit_access(line, used + (size_t)n < sizeof line ? used + (size_t)n : sizeof line - 1);
        return;
    }
    size_t used = (size_t)snprintf(line, sizeof line, "%s ", ts);
    used = text_escape_into(line, sizeof line - 200, used, method);
    line[used++] = ' ';
    used = text_escape_into(line, sizeof line - 200, used, path);
    n = snprintf(line + used, sizeof line - used, " %d %.3fms org=%s\n", status, duration_ms,
                 org_id ? org_id : "-");
    if (n > 0)
        emit_access(line, used + (size_t)n < sizeof line ? used + (size_t)n : sizeof line - 1);
}
