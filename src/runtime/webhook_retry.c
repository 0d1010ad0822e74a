/*
 * webhook_retry.c - the backoff schedule of webhook_retry.h.
 */
#include "runtime/webhook_retry.h"

int64_t webhook_retry_delay_ms(const struct webhook_retry_policy *p, int attempts, uint32_t random)
{
    if (attempts < 1 || attempts >= p->max_attempts)
        return -1;
    int64_t delay = p->base_ms > 0 ? p->base_ms : 1;
    for (int i = 1; i < attempts && delay < p->max_delay_ms; i++)
        delay *= 2;
    if (p->max_delay_ms > 0 && delay > p->max_delay_ms)
        delay = p->max_delay_ms;
    /* x [0.8, 1.2): spreads the retries of many deliveries that failed
     * together (a receiver that was down) so they do not return together. */
    double factor = 0.8 + 0.4 * ((double)random / 4294967296.0);
    int64_t jittered = (int64_t)((double)delay * factor);
    return jittered > 0 ? jittered : 1;
}
