/*
 * clock.c - the clocks of id.h: wall and monotonic milliseconds and RFC 3339
 * text (and parsing it back). Apart from id.c so that using a clock pulls in no random-id code
 * (and no libsodium) at link time.
 */
#include "core/id.h"

#include <time.h>

static int64_t clock_ms(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t sb_wall_ms(void)
{
    return clock_ms(CLOCK_REALTIME);
}

int64_t sb_mono_ms(void)
{
    return clock_ms(CLOCK_MONOTONIC);
}

void sb_time_rfc3339(int64_t ms, char *out, size_t len)
{
    time_t secs = (time_t)(ms / 1000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Reads exactly n digits at *p into *out, advancing *p. */
static int read_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (**p < '0' || **p > '9')
            return -1;
        v = v * 10 + (**p - '0');
    }
    *out = v;
    return 0;
}

int sb_time_parse_rfc3339(const char *text, int64_t *ms)
{
    const char *p = text;
    int year, mon, day, hour, min, sec, frac_ms = 0;
    if (!p || read_digits(&p, 4, &year) < 0 || *p++ != '-' || read_digits(&p, 2, &mon) < 0 || *p++ != '-' ||
        read_digits(&p, 2, &day) < 0 || (*p != 'T' && *p != 't' && *p != ' ') || !*p++ ||
        read_digits(&p, 2, &hour) < 0 || *p++ != ':' || read_digits(&p, 2, &min) < 0 || *p++ != ':' ||
        read_digits(&p, 2, &sec) < 0)
        return -1;
    if (*p == '.') {
        p++;
        int scale = 100, digits = 0;
        for (; *p >= '0' && *p <= '9'; p++, digits++) {
            frac_ms += (*p - '0') * scale;
            scale /= 10;
        }
        if (digits == 0)
            return -1;
    }
    int offset_min = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p++ == '-' ? -1 : 1, oh, om;
        if (read_digits(&p, 2, &oh) < 0 || *p++ != ':' || read_digits(&p, 2, &om) < 0 || oh > 23 || om > 59)
            return -1;
        offset_min = sign * (oh * 60 + om);
    } else {
        return -1;
    }
    static const int days_in[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (*p || mon < 1 || mon > 12 || day < 1 || day > days_in[mon - 1] || hour > 23 || min > 59 || sec > 60)
        return -1;
    struct tm tm = {.tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day, .tm_hour = hour,
                    .tm_min = min, .tm_sec = sec > 59 ? 59 : sec};
    time_t secs = timegm(&tm);
    if (tm.tm_mday != day)      /* 31 April, 29 February of a common year */
        return -1;
    *ms = ((int64_t)secs - (int64_t)offset_min * 60) * 1000 + frac_ms;
    return 0;
}
