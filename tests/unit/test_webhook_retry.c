/*
 * test_webhook_retry.c - the webhook backoff schedule
 * (runtime/webhook_retry.c): doubling from the base, the cap, the jitter's
 * bounds at both ends of the random range, the attempt limit, and the
 * defaults' promise (first retry within 10 s, about a day in all).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "core/config.h"
#include "runtime/webhook_retry.h"

#define MID (UINT32_MAX / 2 + 1)    /* factor 1.0 */

static void test_doubles_then_caps(void **state)
{
    struct webhook_retry_policy p = {.base_ms = 1000, .max_delay_ms = 10000, .max_attempts = 10};
    assert_int_equal(webhook_retry_delay_ms(&p, 1, MID), 1000);
    assert_int_equal(webhook_retry_delay_ms(&p, 2, MID), 2000);
    assert_int_equal(webhook_retry_delay_ms(&p, 3, MID), 4000);
    assert_int_equal(webhook_retry_delay_ms(&p, 4, MID), 8000);
    assert_int_equal(webhook_retry_delay_ms(&p, 5, MID), 10000);
    assert_int_equal(webhook_retry_delay_ms(&p, 9, MID), 10000);
}

static void test_attempt_limit(void **state)
{
    struct webhook_retry_policy p = {.base_ms = 1000, .max_delay_ms = 10000, .max_attempts = 3};
    assert_true(webhook_retry_delay_ms(&p, 2, MID) > 0);
    assert_int_equal(webhook_retry_delay_ms(&p, 3, MID), -1);
    assert_int_equal(webhook_retry_delay_ms(&p, 4, MID), -1);
    assert_int_equal(webhook_retry_delay_ms(&p, 0, MID), -1);
    p.max_attempts = 1;     /* one attempt, no retry */
    assert_int_equal(webhook_retry_delay_ms(&p, 1, MID), -1);
}

static void test_jitter_bounds(void **state)
{
    struct webhook_retry_policy p = {.base_ms = 10000, .max_delay_ms = 1000000, .max_attempts = 5};
    assert_int_equal(webhook_retry_delay_ms(&p, 1, 0), 8000);
    int64_t top = webhook_retry_delay_ms(&p, 1, UINT32_MAX);
    assert_true(top < 12000 && top >= 11999);
    int64_t a = webhook_retry_delay_ms(&p, 1, 12345), b = webhook_retry_delay_ms(&p, 1, 3000000000u);
    assert_true(a != b);
}

static void test_huge_attempts_do_not_overflow(void **state)
{
    struct webhook_retry_policy p = {.base_ms = 5000, .max_delay_ms = 43200000, .max_attempts = 100};
    for (int n = 1; n < 100; n++) {
        int64_t d = webhook_retry_delay_ms(&p, n, UINT32_MAX);
        assert_true(d > 0 && d <= 43200000 * 12 / 10);
    }
}

static void test_defaults_first_retry_soon_about_a_day_in_all(void **state)
{
    struct sb_config cfg;
    sb_config_defaults(&cfg);
    struct webhook_retry_policy p = {.base_ms = cfg.webhook.retry_base_ms,
                                     .max_delay_ms = (int64_t)cfg.webhook.retry_max_delay_s * 1000,
                                     .max_attempts = cfg.webhook.max_attempts};
    assert_true(webhook_retry_delay_ms(&p, 1, UINT32_MAX) < 10000);
    int64_t low = 0, high = 0;
    int retries = 0;
    for (int n = 1; webhook_retry_delay_ms(&p, n, 0) >= 0; n++, retries++) {
        low += webhook_retry_delay_ms(&p, n, 0);
        high += webhook_retry_delay_ms(&p, n, UINT32_MAX);
    }
    assert_int_equal(retries, cfg.webhook.max_attempts - 1);
    assert_true(low >= 18 * 3600 * 1000LL);     /* ~18.2 h at the least jitter */
    assert_true(high <= 28 * 3600 * 1000LL);    /* ~27.3 h at the most */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_doubles_then_caps),
        cmocka_unit_test(test_attempt_limit),
        cmocka_unit_test(test_jitter_bounds),
        cmocka_unit_test(test_huge_attempts_do_not_overflow),
        cmocka_unit_test(test_defaults_first_retry_soon_about_a_day_in_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
