/*
 * webhook_retry.h - when a failed webhook delivery is tried again:
 * exponential backoff with jitter. After attempt n (1-based) fails, the next
 * waits base * 2^(n-1), capped at max_delay, times a random factor in
 * [0.8, 1.2); after max_attempts attempts the delivery has failed.
 *
 * The defaults (config.h: webhook_retry_base_ms 5000, webhook_max_attempts
 * 15, webhook_retry_max_delay_s 43200) retry first after 4-6 s and give up
 * after 14 retries spread over about 23 hours (5 s x (2^14 - 1)).
 * Pure: the caller supplies the randomness.
 */
#ifndef SB_RUNTIME_WEBHOOK_RETRY_H
#define SB_RUNTIME_WEBHOOK_RETRY_H

#include <stdint.h>

struct webhook_retry_policy {
    int64_t base_ms;        /* the first delay, before jitter */
    int64_t max_delay_ms;   /* no single delay is longer (before jitter) */
    int max_attempts;       /* attempts in all, the first one included */
};

/* The delay in ms before the next attempt, after `attempts` attempts (>= 1)
 * have failed, with jitter from random (uniform over uint32_t); -1 when
 * none is left. */
int64_t webhook_retry_delay_ms(const struct webhook_retry_policy *p, int attempts, uint32_t random);

#endif
