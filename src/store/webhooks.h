/*
 * webhooks.h - the store's webhooks and their delivery outbox
 * (store/webhooks.c), on the same connection and lock as store.h.
 *
 * A webhook belongs to one org; every lookup takes the org, and another
 * org's webhook is "404 webhook not found". Deliveries are written by the
 * store itself, in the transaction of the event they carry (one per enabled
 * webhook of the org whose filter takes the event's type); the delivery
 * worker (runtime/webhook_delivery.c) claims due ones and records each
 * attempt. A delivery waits while an older delivery of the same webhook and
 * sandbox is pending or being sent, so one sandbox's events reach a
 * receiver in the order they happened.
 * Ownership: structs are filled by value except the malloc'd strings named
 * "owned", freed by the matching _clear / _free.
 */
#ifndef SB_STORE_WEBHOOKS_H
#define SB_STORE_WEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"
#include "store/store.h"

#define SB_WEBHOOK_NAME_MAX 256
#define SB_WEBHOOK_URL_MAX 2048
#define SB_WEBHOOK_SECRET_MAX 256

struct sb_webhook {
    char id[32];                        /* "wh_" + 20 base32 chars */
    char org_id[40];
    char name[SB_WEBHOOK_NAME_MAX];
    char url[SB_WEBHOOK_URL_MAX];
    char resource_type[16];             /* "sandbox" */
    char *events_json;                  /* owned: JSON array of event types, "[]" = all */
    int enabled;
    char secret[SB_WEBHOOK_SECRET_MAX]; /* the signing key; the API shows it once */
    int64_t created_at;
    int64_t updated_at;
};
void store_webhook_clear(struct sb_webhook *wh);
void store_webhook_list_free(struct sb_webhook *list, size_t count);

/* Inserts wh with a new id and created_at = updated_at = now (written back). */
int store_webhook_insert(struct sb_store *store, struct sb_webhook *wh, struct sb_err *err);
int store_webhook_get(struct sb_store *store, const char *org_id, const char *id, struct sb_webhook *out,
                      struct sb_err *err);
/* Oldest first. */
int store_webhook_list(struct sb_store *store, const char *org_id, struct sb_webhook **out, size_t *count,
                       struct sb_err *err);
/* Writes name, url, resource_type, events_json and enabled (updated_at =
 * now, written back); never the secret. 404 unless wh->org_id owns wh->id. */
int store_webhook_update(struct sb_store *store, struct sb_webhook *wh, struct sb_err *err);
/* Deletes the webhook and its deliveries. */
int store_webhook_delete(struct sb_store *store, const char *org_id, const char *id, struct sb_err *err);

/* ---- deliveries ---- */
enum sb_delivery_status {
    SB_DELIVERY_PENDING,        /* due at next_attempt_at */
    SB_DELIVERY_SENDING,        /* claimed by the worker; pending again at start-up */
    SB_DELIVERY_DELIVERED,
    SB_DELIVERY_FAILED,         /* every attempt failed */
    SB_DELIVERY_STATUS_COUNT
};
const char *sb_delivery_status_name(enum sb_delivery_status status);

struct sb_delivery {
    char id[32];                /* "dlv_" + 20 hex chars */
    char webhook_id[32];
    char event_id[32];
    char event_type[48];
    char sandbox_id[32];
    enum sb_delivery_status status;
    int attempts;
    int64_t next_attempt_at;    /* 0 unless pending */
    int64_t last_attempt_at;    /* 0 = never tried */
    int last_status_code;       /* the receiver's HTTP status; 0 = none (network error) */
    int64_t last_duration_ms;
    char last_error[256];       /* "" after a success */
    int64_t created_at;
};
/* A webhook's deliveries, newest event first, at most limit (<= 0: 100).
 * 404 "webhook not found" unless org_id owns webhook_id. */
int store_delivery_list(struct sb_store *store, const char *org_id, const char *webhook_id, int limit,
                        struct sb_delivery **out, size_t *count, struct sb_err *err);
/* Makes a delivery pending again, due now, with a fresh set of attempts.
 * 404 "webhook not found" / "delivery not found"; 409 while it is being
 * sent. out (may be NULL) gets the row as it is now. */
int store_delivery_retry(struct sb_store *store, const char *org_id, const char *webhook_id,
                         const char *delivery_id, struct sb_delivery *out, struct sb_err *err);

/* What the worker needs to send one delivery. */
struct sb_delivery_job {
    char id[32];
    char webhook_id[32];
    char url[SB_WEBHOOK_URL_MAX];
    char secret[SB_WEBHOOK_SECRET_MAX];
    int attempts;               /* made before this one */
    struct sb_event event;      /* owned data_json */
};
void store_delivery_jobs_free(struct sb_delivery_job *jobs, size_t count);
/* Claims up to max deliveries due at now (oldest event first, none behind
 * an older pending or sending delivery of the same webhook and sandbox) and
 * marks them sending. */
int store_delivery_claim(struct sb_store *store, int64_t now, int max, struct sb_delivery_job **out,
                         size_t *count, struct sb_err *err);
/* When the next claimable delivery is due (0 and *when = INT64_MAX when
 * none is pending). */
int store_delivery_next_due(struct sb_store *store, int64_t *when, struct sb_err *err);
/* Records one attempt of a sending delivery: status becomes delivered,
 * pending (due at next_attempt_at) or failed; attempts + 1. */
struct sb_delivery_attempt {
    enum sb_delivery_status status;
    int64_t attempted_at;
    int64_t next_attempt_at;
    int status_code;
    int64_t duration_ms;
    const char *error;          /* "" or NULL after a success */
};
int store_delivery_record(struct sb_store *store, const char *delivery_id, const struct sb_delivery_attempt *a,
                          struct sb_err *err);
/* Every sending delivery becomes pending, due now: for start-up (the
 * previous server may have died mid-send) and shutdown. */
int store_delivery_reset_sending(struct sb_store *store, size_t *reset, struct sb_err *err);

#endif
