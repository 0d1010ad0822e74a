/*
 * log.h - the process-wide logger.
 *
 * Writes to stderr: human-readable text when stderr is a terminal (or
 * --log-format text), one JSON object per line otherwise (--log-format json).
 * Safe to call from any thread (one write(2) per line). Never allocates on
 * the caller's behalf beyond a stack buffer.
 */
#ifndef SB_CORE_LOG_H
#define SB_CORE_LOG_H

enum sb_log_level { SB_LOG_DEBUG, SB_LOG_INFO, SB_LOG_WARN, SB_LOG_ERROR };
enum sb_log_format { SB_LOG_AUTO, SB_LOG_TEXT, SB_LOG_JSON };

void sb_log_init(enum sb_log_format format, enum sb_log_level min_level);
/* Parses "text" | "json" | "auto"; returns -1 on anything else. */
int sb_log_format_parse(const char *s, enum sb_log_format *out);
int sb_log_is_json(void);

void sb_log(enum sb_log_level level, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The per-request access line: time, method, path, status, duration, org.
 * One thread only (serve's loop): lines are gathered and written together
 * by sb_log_flush (or when 64 KiB are waiting), one write per loop
 * iteration instead of one per request. */
void sb_log_request(const char *method, const char *path, int status,
                    double duration_ms, const char *org_id);
/* Writes the access lines gathered so far. The thread of sb_log_request. */
void sb_log_flush(void);

#define sb_debug(...) sb_log(SB_LOG_DEBUG, __VA_ARGS__)
#define sb_info(...)  sb_log(SB_LOG_INFO, __VA_ARGS__)
#define sb_warn(...)  sb_log(SB_LOG_WARN, __VA_ARGS__)
#define sb_error(...) sb_log(SB_LOG_ERROR, __VA_ARGS__)

#endif
