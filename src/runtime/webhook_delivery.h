/*
 * webhook_delivery.h - the webhook delivery worker: one thread of its own
 * that sends the store's outbox (store/webhooks.h) with libcurl's multi
 * interface, many deliveries at once, and records every attempt.
 *
 * Why a thread and not the loop: every step of a delivery that can wait
 * (claiming and recording rows in SQLite, DNS, connect, TLS, a receiver
 * that takes its full 10 s) happens here, so nothing of it can ever delay
 * an API request; the multi handle still overlaps up to max_in_flight
 * transfers. The thread sleeps in curl_multi_poll until a transfer moves,
 * the next retry is due or webhook_delivery_wake is called (after each new
 * event and each retry request).
 *
 * Each attempt: POST of event_payload() with Content-Type application/json,
 * X-Event-ID, X-Signature (webhook_sign.h), X-Delivery-ID and E2B's
 * e2b-webhook-id, e2b-delivery-id, e2b-signature-version and e2b-signature;
 * a total deadline of timeout_ms, no redirects, no proxies, http(s) only,
 * and every address checked by webhook_dest_check right before connect.
 * A 2xx is delivered; anything else is retried per webhook_retry.h, then
 * failed. At-least-once: a crash mid-send sends that delivery again.
 */
#ifndef SB_RUNTIME_WEBHOOK_DELIVERY_H
#define SB_RUNTIME_WEBHOOK_DELIVERY_H

#include "core/err.h"
#include "runtime/webhook_dest.h"
#include "runtime/webhook_retry.h"
#include "store/store.h"

struct webhook_delivery_config {
    struct sb_store *store;
    struct webhook_dest_policy dest;
    struct webhook_retry_policy retry;
    int timeout_ms;
    int max_in_flight;
};

struct sb_webhook_delivery;

/* Makes every `sending` delivery pending again (a previous server died
 * mid-send) and starts the thread. NULL with err on failure. */
struct sb_webhook_delivery *webhook_delivery_start(const struct webhook_delivery_config *cfg, struct sb_err *err);
/* Any thread, never blocks: look at the outbox now. */
void webhook_delivery_wake(struct sb_webhook_delivery *d);
/* An event_bus_fn (arg: the worker): wakes it for each new event. */
void webhook_delivery_on_event(void *d, const struct sb_event *ev);
/* Stops and joins the thread; transfers in flight are abandoned and their
 * deliveries made pending again. NULL is a no-op. */
void webhook_delivery_stop(struct sb_webhook_delivery *d);

#endif
