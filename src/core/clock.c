/*
 * clock.c - the clocks of id.h: wall and monotonic milliseconds and RFC 3339
 * text. Apart from id.c so that using a clock pulls in no random-id code
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
