/*
 * webhook_delivery.c - the delivery thread of webhook_delivery.h.
 *
 * One iteration of the thread: (1) when woken, when a transfer finished or
 * when the next retry is due, claim due deliveries up to max_in_flight and
 * start a transfer for each, then ask the store when the next one is due;
 * (2) curl_multi_perform; (3) record every finished transfer; (4) sleep in
 * curl_multi_poll until a socket moves, curl's own timer, the next due
 * delivery (at most a second) or a wake-up.
 * Owns the multi handle, every easy handle and the transfers; touches the
 * store only through store/webhooks.h. Never runs on the loop thread.
 */
#include "runtime/webhook_delivery.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/id.h"
#include "core/log.h"
#include "runtime/events.h"
#include "runtime/webhook_sign.h"
#include "store/webhooks.h"

#define IDLE_WAIT_MS 1000       /* longest sleep: a safety net, wake-ups do the real work */
#define STORE_RETRY_MS 1000     /* after a store error */

struct sb_webhook_delivery {
    struct webhook_delivery_config cfg;
    pthread_t thread;
    CURLM *multi;
    atomic_int stopping;
    atomic_int poked;           /* set by wake: claim before sleeping again */
    int in_flight;              /* thread only, as is the list */
    struct transfer *transfers; /* in flight, newest first */
};

/* One attempt of one delivery; owned by the thread from start to finish. */
struct transfer {
    struct sb_webhook_delivery *d;
    struct sb_delivery_job job;         /* owns job.event.data_json */
    CURL *easy;
    struct curl_slist *headers;
    char *body;
    char errbuf[CURL_ERROR_SIZE];
    char refused[256];                  /* why webhook_dest_check refused an address */
    int64_t started_ms;
    struct transfer *prev, *next;
};

static void transfer_free(struct transfer *t)
{
    if (!t)
        return;
    if (t->prev)
        t->prev->next = t->next;
    else
        t->d->transfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    t->d->in_flight--;
    if (t->easy) {
        curl_multi_remove_handle(t->d->multi, t->easy);
        curl_easy_cleanup(t->easy);
    }
    curl_slist_free_all(t->headers);
    free(t->body);
    free(t->job.event.data_json);
    free(t);
}

/* curl's socket opener: the destination policy on the resolved address. */
static curl_socket_t open_socket(void *clientp, curlsocktype purpose, struct curl_sockaddr *address)
{
    struct transfer *t = clientp;
    if (webhook_dest_check(&t->d->cfg.dest, &address->addr, t->refused, sizeof t->refused) < 0)
        return CURL_SOCKET_BAD;
    return socket(address->family, address->socktype | SOCK_CLOEXEC, address->protocol);
}

static size_t discard_body(char *data, size_t size, size_t nmemb, void *arg)
{
    return size * nmemb;
}

static int add_header(struct curl_slist **list, const char *name, const char *value)
{
    char line[512];
    snprintf(line, sizeof line, "%s: %s", name, value);
    struct curl_slist *grown = curl_slist_append(*list, line);
    if (!grown)
        return -1;
    *list = grown;
    return 0;
}

/* The signed request: body, headers, and the options every attempt uses. */
static int transfer_prepare(struct transfer *t)
{
    t->body = event_payload(&t->job.event);
    t->easy = curl_easy_init();
    if (!t->body || !t->easy)
        return -1;
    size_t len = strlen(t->body);
    char hex[WEBHOOK_SIGNATURE_HEX_LEN], e2b[WEBHOOK_SIGNATURE_E2B_LEN];
    webhook_signature_hex(t->job.secret, t->body, len, hex);
    webhook_signature_e2b(t->job.secret, t->body, len, e2b);
    if (add_header(&t->headers, "Content-Type", "application/json") < 0 ||
        add_header(&t->headers, "X-Event-ID", t->job.event.id) < 0 ||
        add_header(&t->headers, "X-Signature", hex) < 0 ||
        add_header(&t->headers, "X-Delivery-ID", t->job.id) < 0 ||
        add_header(&t->headers, "e2b-webhook-id", t->job.webhook_id) < 0 ||
        add_header(&t->headers, "e2b-delivery-id", t->job.id) < 0 ||
        add_header(&t->headers, "e2b-signature-version", "v1") < 0 ||
        add_header(&t->headers, "e2b-signature", e2b) < 0 ||
        !(t->headers = curl_slist_append(t->headers, "Expect:")))     /* no 100-continue round trip */
        return -1;
    CURL *e = t->easy;
    curl_easy_setopt(e, CURLOPT_URL, t->job.url);
    curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");         /* no proxy from the environment: the */
    curl_easy_setopt(e, CURLOPT_NOPROXY, "*");      /* policy must see the real destination */
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)t->d->cfg.timeout_ms);
    curl_easy_setopt(e, CURLOPT_POST, 1L);
    curl_easy_setopt(e, CURLOPT_POSTFIELDS, t->body);
    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, (long)len);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, t->headers);
    curl_easy_setopt(e, CURLOPT_USERAGENT, "sandbase-webhooks/" SANDBASE_VERSION);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(e, CURLOPT_OPENSOCKETDATA, t);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, discard_body);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, t->errbuf);
    curl_easy_setopt(e, CURLOPT_PRIVATE, t);
    return 0;
}

/* What went wrong with a finished attempt, or "" when it was delivered. */
static void attempt_error(const struct transfer *t, CURLcode res, long code, char *out, size_t len)
{
    out[0] = '\0';
    if (t->refused[0])
        snprintf(out, len, "destination refused: %s", t->refused);
    else if (res != CURLE_OK)
        snprintf(out, len, "%s%s%s", curl_easy_strerror(res), t->errbuf[0] ? ": " : "", t->errbuf);
    else if (code >= 300 && code < 400)
        snprintf(out, len, "receiver answered HTTP %ld (redirects are not followed)", code);
    else if (code < 200 || code >= 300)
        snprintf(out, len, "receiver answered HTTP %ld", code);
}

static void transfer_finish(struct transfer *t, CURLcode res)
{
    struct sb_webhook_delivery *d = t->d;
    long code = 0;
    curl_easy_getinfo(t->easy, CURLINFO_RESPONSE_CODE, &code);
    char error[256];
    attempt_error(t, res, code, error, sizeof error);
    int64_t now = sb_wall_ms();
    int attempts = t->job.attempts + 1;
    struct sb_delivery_attempt a = {
        .status = SB_DELIVERY_DELIVERED, .attempted_at = t->started_ms, .status_code = (int)code,
        .duration_ms = now - t->started_ms, .error = error,
    };
    if (error[0]) {
        int64_t delay = webhook_retry_delay_ms(&d->cfg.retry, attempts, randombytes_random());
        a.status = delay < 0 ? SB_DELIVERY_FAILED : SB_DELIVERY_PENDING;
        a.next_attempt_at = delay < 0 ? 0 : now + delay;
        if (delay < 0)
            sb_warn("webhook %s: delivery %s of event %s failed after %d attempts: %s", t->job.webhook_id,
                    t->job.id, t->job.event.id, attempts, error);
        else
            sb_info("webhook %s: delivery %s of event %s, attempt %d: %s; next attempt in %lld ms",
                    t->job.webhook_id, t->job.id, t->job.event.id, attempts, error, (long long)delay);
    }
    struct sb_err err = {0};
    if (store_delivery_record(d->cfg.store, t->job.id, &a, &err) < 0)
        sb_warn("webhook %s: cannot record delivery %s: %s", t->job.webhook_id, t->job.id, err.msg);
    transfer_free(t);
}

/* Starts a transfer for job (taking its event data); a job that cannot even
 * be prepared is recorded as a failed attempt. */
static void transfer_start(struct sb_webhook_delivery *d, struct sb_delivery_job *job)
{
    struct transfer *t = calloc(1, sizeof *t);
    if (!t) {
        free(job->event.data_json);
        job->event.data_json = NULL;
        return;     /* stays `sending` until the next start-up; out of memory is the larger problem */
    }
    t->d = d;
    t->job = *job;
    job->event.data_json = NULL;
    t->started_ms = sb_wall_ms();
    t->next = d->transfers;
    if (t->next)
        t->next->prev = t;
    d->transfers = t;
    d->in_flight++;
    if (transfer_prepare(t) < 0 || curl_multi_add_handle(d->multi, t->easy) != CURLM_OK) {
        snprintf(t->errbuf, sizeof t->errbuf, "out of memory preparing the request");
        transfer_finish(t, CURLE_OUT_OF_MEMORY);
    }
}

/* Claims and starts what is due; returns when the next delivery is due. */
static int64_t claim_due(struct sb_webhook_delivery *d)
{
    struct sb_err err = {0};
    int64_t now = sb_wall_ms();
    struct sb_delivery_job *jobs = NULL;
    size_t count = 0;
    if (store_delivery_claim(d->cfg.store, now, d->cfg.max_in_flight - d->in_flight, &jobs, &count, &err) < 0) {
        sb_warn("webhooks: cannot claim deliveries: %s", err.msg);
        return now + STORE_RETRY_MS;
    }
    for (size_t i = 0; i < count; i++)
        transfer_start(d, &jobs[i]);
    store_delivery_jobs_free(jobs, count);
    int64_t next;
    if (store_delivery_next_due(d->cfg.store, &next, &err) < 0) {
        sb_warn("webhooks: cannot read the outbox: %s", err.msg);
        return now + STORE_RETRY_MS;
    }
    return next;
}

/* Records every transfer curl has finished; returns how many. */
static int reap_finished(struct sb_webhook_delivery *d)
{
    int done = 0, left;
    CURLMsg *msg;
    while ((msg = curl_multi_info_read(d->multi, &left))) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct transfer *t = NULL;
        CURLcode res = msg->data.result;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&t);
        transfer_finish(t, res);
        done++;
    }
    return done;
}

static void *delivery_main(void *arg)
{
    struct sb_webhook_delivery *d = arg;
    int64_t next_due = 0;
    int finished = 0;
    while (!atomic_load(&d->stopping)) {
        int64_t now = sb_wall_ms();
        if (atomic_exchange(&d->poked, 0) || finished || now >= next_due)
            next_due = d->in_flight < d->cfg.max_in_flight ? claim_due(d) : now + IDLE_WAIT_MS;
        int running;
        curl_multi_perform(d->multi, &running);
        finished = reap_finished(d);
        if (finished)
            continue;
        int64_t wait = next_due - sb_wall_ms();
        if (d->in_flight >= d->cfg.max_in_flight || wait > IDLE_WAIT_MS)
            wait = IDLE_WAIT_MS;    /* full: a finishing transfer wakes the poll */
        curl_multi_poll(d->multi, NULL, 0, wait > 0 ? (int)wait : 0, NULL);
    }
    return NULL;
}

struct sb_webhook_delivery *webhook_delivery_start(const struct webhook_delivery_config *cfg, struct sb_err *err)
{
    size_t reset = 0;
    if (store_delivery_reset_sending(cfg->store, &reset, err) < 0)
        return NULL;
    if (reset)
        sb_info("webhooks: %zu deliveries were being sent when the last server stopped; sending them again",
                reset);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        sb_err_set(err, 500, "cannot initialise libcurl");
        return NULL;
    }
    struct sb_webhook_delivery *d = calloc(1, sizeof *d);
    if (!d || !(d->multi = curl_multi_init())) {
        free(d);
        sb_err_set(err, 500, "out of memory starting webhook delivery");
        return NULL;
    }
    d->cfg = *cfg;
    int rc = pthread_create(&d->thread, NULL, delivery_main, d);
    if (rc != 0) {
        curl_multi_cleanup(d->multi);
        free(d);
        errno = rc;
        sb_err_sys(err, 500, "cannot start the webhook delivery thread");
        return NULL;
    }
    return d;
}

void webhook_delivery_wake(struct sb_webhook_delivery *d)
{
    if (!d)
        return;
    atomic_store(&d->poked, 1);
    curl_multi_wakeup(d->multi);
}

void webhook_delivery_on_event(void *d, const struct sb_event *ev)
{
    webhook_delivery_wake(d);
}

void webhook_delivery_stop(struct sb_webhook_delivery *d)
{
    if (!d)
        return;
    atomic_store(&d->stopping, 1);
    curl_multi_wakeup(d->multi);
    pthread_join(d->thread, NULL);
    /* Abandon what is in flight: the store makes it pending again. */
    while (d->transfers)
        transfer_free(d->transfers);
    struct sb_err err = {0};
    if (store_delivery_reset_sending(d->cfg.store, NULL, &err) < 0)
        sb_warn("webhooks: cannot reset deliveries in flight: %s", err.msg);
    curl_multi_cleanup(d->multi);
    free(d);
    curl_global_cleanup();
}
