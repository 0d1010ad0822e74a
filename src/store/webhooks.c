/*
 * webhooks.c - webhooks and their delivery outbox on the store's connection
 * (store/webhooks.h): CRUD scoped by org, the outbox rows written inside an
 * event's transaction, and the claim/record cycle of the delivery worker.
 *
 * Invariants: a delivery row exists only with its event and its webhook
 * (foreign keys, ON DELETE CASCADE); only the worker moves a row to or from
 * `sending`, and start-up moves every `sending` row back to `pending`, so a
 * crash mid-send means a second attempt, never a lost one.
 */
#include "store/webhooks.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/id.h"
#include "store/store_internal.h"

#define WH_COLS "id, org_id, name, url, resource_type, events_json, enabled, secret, created_at, updated_at"
#define DLV_SELECT "SELECT d.id, d.webhook_id, e.id, e.type, d.sandbox_id, d.status, d.attempts, " \
                   "d.next_attempt_at, d.last_attempt_at, d.last_status_code, d.last_duration_ms, " \
                   "d.last_error, d.created_at FROM webhook_deliveries d JOIN events e ON e.seq = d.event_seq"
/* A pending delivery of an enabled webhook with no older unfinished one
 * of the same webhook and sandbox before it. */
#define DLV_CLAIMABLE " d.status = 'pending' AND w.enabled = 1 AND NOT EXISTS (" \
                      "SELECT 1 FROM webhook_deliveries p WHERE p.webhook_id = d.webhook_id" \
                      " AND p.sandbox_id = d.sandbox_id AND p.event_seq < d.event_seq" \
                      " AND p.status IN ('pending', 'sending'))"

static const char sql_wh_insert[] = "INSERT INTO webhooks (" WH_COLS ") VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";
static const char sql_wh_get[] = "SELECT " WH_COLS " FROM webhooks WHERE id = ?1 AND org_id = ?2";
static const char sql_wh_list[] = "SELECT " WH_COLS " FROM webhooks WHERE org_id = ?1 ORDER BY created_at, rowid";
static const char sql_wh_update[] = "UPDATE webhooks SET name = ?3, url = ?4, resource_type = ?5, events_json = ?6, "
                                    "enabled = ?7, updated_at = ?8 WHERE id = ?1 AND org_id = ?2";
static const char sql_wh_delete[] = "DELETE FROM webhooks WHERE id = ?1 AND org_id = ?2";
/* Every event is a sandbox event so far: resource_type 'sandbox'. */
static const char sql_outbox_append[] =
    "INSERT INTO webhook_deliveries (id, webhook_id, event_seq, sandbox_id, next_attempt_at, created_at) "
    "SELECT 'dlv_' || lower(hex(randomblob(10))), w.id, ?1, ?2, ?3, ?3 FROM webhooks w "
    "WHERE w.org_id = ?4 AND w.enabled = 1 AND w.resource_type = 'sandbox' "
    "AND (json_array_length(w.events_json) = 0 OR "
    "     EXISTS (SELECT 1 FROM json_each(w.events_json) j WHERE j.value = ?5))";
static const char sql_dlv_list[] = DLV_SELECT " WHERE d.webhook_id = ?1 ORDER BY d.event_seq DESC LIMIT ?2";
static const char sql_dlv_get[] = DLV_SELECT " WHERE d.id = ?1 AND d.webhook_id = ?2";
static const char sql_dlv_retry[] = "UPDATE webhook_deliveries SET status = 'pending', attempts = 0, "
                                    "next_attempt_at = ?3 WHERE id = ?1 AND webhook_id = ?2 AND status <> 'sending'";
static const char sql_dlv_due[] =
    "SELECT " "e.seq, e.id, e.org_id, e.sandbox_id, e.template_id, e.type, e.data_json, e.created_at, "
    "d.id, d.webhook_id, w.url, w.secret, d.attempts "
    "FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id JOIN events e ON e.seq = d.event_seq "
    "WHERE d.next_attempt_at <= ?1 AND" DLV_CLAIMABLE " ORDER BY d.event_seq LIMIT ?2";
static const char sql_dlv_mark_sending[] = "UPDATE webhook_deliveries SET status = 'sending' WHERE id = ?1";
static const char sql_dlv_next_due[] =
    "SELECT min(d.next_attempt_at) FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id "
    "WHERE" DLV_CLAIMABLE;
static const char sql_dlv_record[] =
    "UPDATE webhook_deliveries SET status = ?2, attempts = attempts + 1, last_attempt_at = ?3, "
    "next_attempt_at = ?4, last_status_code = ?5, last_duration_ms = ?6, last_error = ?7 "
    "WHERE id = ?1 AND status = 'sending'";
static const char sql_dlv_reset_sending[] =
    "UPDATE webhook_deliveries SET status = 'pending', next_attempt_at = ?1 WHERE status = 'sending'";

/* ---- webhooks ---- */

void store_webhook_clear(struct sb_webhook *wh)
{
    if (!wh)
        return;
    free(wh->events_json);
    wh->events_json = NULL;
}

static void webhook_elem_clear(void *elem)
{
    store_webhook_clear(elem);
}

void store_webhook_list_free(struct sb_webhook *list, size_t count)
{
    for (size_t i = 0; list && i < count; i++)
        store_webhook_clear(&list[i]);
    free(list);
}

static int read_webhook(sqlite3_stmt *st, void *elem)
{
    struct sb_webhook *wh = elem;
    column_copy(st, 0, wh->id, sizeof wh->id);
    column_copy(st, 1, wh->org_id, sizeof wh->org_id);
    column_copy(st, 2, wh->name, sizeof wh->name);
    column_copy(st, 3, wh->url, sizeof wh->url);
    column_copy(st, 4, wh->resource_type, sizeof wh->resource_type);
    wh->events_json = column_dup(st, 5);
    wh->enabled = sqlite3_column_int(st, 6);
    column_copy(st, 7, wh->secret, sizeof wh->secret);
    wh->created_at = sqlite3_column_int64(st, 8);
    wh->updated_at = sqlite3_column_int64(st, 9);
    return wh->events_json ? 0 : -1;
}

static int webhook_write_error(struct sb_store *store, const struct sb_webhook *wh, struct sb_err *err)
{
    switch (sqlite3_extended_errcode(store_db(store))) {
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return sb_err_set(err, 404, "org not found: %s", wh->org_id);
    case SQLITE_CONSTRAINT_CHECK:
    case SQLITE_CONSTRAINT_NOTNULL:
        return sb_err_set(err, 400, "invalid webhook (events must be a JSON array): %s",
                          sqlite3_errmsg(store_db(store)));
    default:
        return db_error(store, err, "writing webhook");
    }
}

static void bind_webhook_fields(sqlite3_stmt *st, const struct sb_webhook *wh)
{
    bind_text(st, 3, wh->name);
    bind_text(st, 4, wh->url);
    bind_text(st, 5, wh->resource_type[0] ? wh->resource_type : "sandbox");
    bind_text(st, 6, wh->events_json ? wh->events_json : "[]");
    sqlite3_bind_int(st, 7, wh->enabled ? 1 : 0);
}

int store_webhook_insert(struct sb_store *store, struct sb_webhook *wh, struct sb_err *err)
{
    if (check_text(wh->secret, sizeof wh->secret, 0, "webhook secret", err) < 0)
        return -1;
    sb_id_new("wh_", wh->id, sizeof wh->id);
    wh->created_at = wh->updated_at = sb_wall_ms();
    STORE_LOCKED(store);
    STMT(st) = store_stmt_extra(store, SX_WH_INSERT, sql_wh_insert, err);
    if (!st)
        return -1;
    bind_text(st, 1, wh->id);
    bind_text(st, 2, wh->org_id);
    bind_webhook_fields(st, wh);
    bind_text(st, 8, wh->secret);
    sqlite3_bind_int64(st, 9, wh->created_at);
    sqlite3_bind_int64(st, 10, wh->updated_at);
    if (sqlite3_step(st) != SQLITE_DONE)
        return webhook_write_error(store, wh, err);
    return 0;
}

int store_webhook_get(struct sb_store *store, const char *org_id, const char *id, struct sb_webhook *out,
                      struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    STORE_LOCKED(store);
    STMT(st) = store_stmt_extra(store, SX_WH_GET, sql_wh_get, err);
    if (!st)
        return -1;
    bind_text(st, 1, id);
    bind_text(st, 2, org_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return sb_err_set(err, 404, "webhook not found");
    if (rc != SQLITE_ROW)
        return db_error(store, err, "reading webhook");
    if (read_webhook(st, out) < 0) {
        store_webhook_clear(out);
        return sb_err_set(err, 500, "out of memory reading webhook");
    }
    return 0;
}

int store_webhook_list(struct sb_store *store, const char *org_id, struct sb_webhook **out, size_t *count,
                       struct sb_err *err)
{
    STORE_LOCKED(store);
    STMT(st) = store_stmt_extra(store, SX_WH_LIST, sql_wh_list, err);
    if (!st)
        return -1;
    bind_text(st, 1, org_id);
    void *rows;
    int rc = collect_rows(store, st, sizeof **out, read_webhook, webhook_elem_clear, &rows, count, err);
    *out = rows;
    return rc;
}

int store_webhook_update(struct sb_store *store, struct sb_webhook *wh, struct sb_err *err)
{
    wh->updated_at = sb_wall_ms();
    STORE_LOCKED(store);
    STMT(st) = store_stmt_extra(store, SX_WH_UPDATE, sql_wh_update, err);
    if (!st)
        return -1;
    bind_text(st, 1, wh->id);
    bind_text(st, 2, wh->org_id);
    bind_webhook_fields(st, wh);
    sqlite3_bind_int64(st, 8, wh->updated_at);
    if (sqlite3_step(st) != SQLITE_DONE)
        return webhook_write_error(store, wh, err);
    if (sqlite3_changes(store_db(store)) == 0)
        return sb_err_set(err, 404, "webhook not found");
    return 0;
}

int store_webhook_delete(struct sb_store *store, const char *org_id, const char *id, struct sb_err *err)
{
    STORE_LOCKED(store);
    STMT(st) = store_stmt_extra(store, SX_WH_DELETE, sql_wh_delete, err);
    if (!st)
        return -1;
    bind_text(st, 1, id);
    bind_text(st, 2, org_id);
    if (step_done(store, st, "deleting webhook", err) < 0)
        return -1;
    if (sqlite3_changes(store_db(store)) == 0)
        return sb_err_set(err, 404, "webhook not found");
    return 0;
}

/* ---- the outbox ---- */

int webhook_outbox_append_locked(struct sb_store *s, const struct sb_event *ev, struct sb_err *err)
{
    STMT(st) = store_stmt_extra(s, SX_OUTBOX_APPEND, sql_outbox_append, err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, ev->seq);
    bind_text(st, 2, ev->sandbox_id);
    sqlite3_bind_int64(st, 3, ev->created_at);
    bind_text(st, 4, ev->org_id);
    bind_text(st, 5, ev->type);
    return step_done(s, st, "queueing webhook deliveries", err);
}

/* ---- deliveries ---- */

/* The one table of delivery status names, as the `status` column and the
 * API spell them (the schema's CHECK and the SQL above use the same). */
static const char *const delivery_status_names[SB_DELIVERY_STATUS_COUNT] = {
    [SB_DELIVERY_PENDING] = "pending",
    [SB_DELIVERY_SENDING] = "sending",
    [SB_DELIVERY_DELIVERED] = "delivered",
    [SB_DELIVERY_FAILED] = "failed",
};

const char *sb_delivery_status_name(enum sb_delivery_status status)
{
    return (unsigned)status < SB_DELIVERY_STATUS_COUNT ? delivery_status_names[status] : "unknown";
}

static enum sb_delivery_status delivery_status_parse(const char *name)
{
    for (unsigned i = 0; name && i < SB_DELIVERY_STATUS_COUNT; i++)
        if (strcmp(name, delivery_status_names[i]) == 0)
            return (enum sb_delivery_status)i;
    return SB_DELIVERY_FAILED;      /* the CHECK admits no other word */
}

static int read_delivery(sqlite3_stmt *st, void *elem)
{
    struct sb_delivery *d = elem;
    column_copy(st, 0, d->id, sizeof d->id);
    column_copy(st, 1, d->webhook_id, sizeof d->webhook_id);
    column_copy(st, 2, d->event_id, sizeof d->event_id);
    column_copy(st, 3, d->event_type, sizeof d->event_type);
    column_copy(st, 4, d->sandbox_id, sizeof d->sandbox_id);
    d->status = delivery_status_parse((const char *)sqlite3_column_text(st, 5));
    d->attempts = sqlite3_column_int(st, 6);
    d->next_attempt_at = sqlite3_column_int64(st, 7);
    d->last_attempt_at = sqlite3_column_int64(st, 8);
    d->last_status_code = sqlite3_column_int(st, 9);
    d->last_duration_ms = sqlite3_column_int64(st, 10);
    column_copy(st, 11, d->last_error, sizeof d->last_error);
    d->created_at = sqlite3_column_int64(st, 12);
    return 0;
}

/* 404 "webhook not found" unless org_id owns webhook_id; lock held. */
static int webhook_owned_locked(struct sb_store *store, const char *org_id, const char *webhook_id,
                                struct sb_err *err)
{
    STMT(st) = store_stmt_extra(store, SX_WH_GET, sql_wh_get, err);
    if (!st)
        return -1;
    bind_text(st, 1, webhook_id);
    bind_text(st, 2, org_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return sb_err_set(err, 404, "webhook not found");
    return rc == SQLITE_ROW ? 0 : db_error(store, err, "reading webhook");
}

int store_delivery_list(struct sb_store *store, const char *org_id, const char *webhook_id, int limit,
                        struct sb_delivery **out, size_t *count, struct sb_err *err)
{
    *out = NULL;
    *count = 0;
    STORE_LOCKED(store);
    if (webhook_owned_locked(store, org_id, webhook_id, err) < 0)
        return -1;
    STMT(st) = store_stmt_extra(store, SX_DLV_LIST, sql_dlv_list, err);
    if (!st)
        return -1;
    bind_text(st, 1, webhook_id);
    sqlite3_bind_int(st, 2, limit > 0 ? limit : 100);
    void *rows;
    int rc = collect_rows(store, st, sizeof **out, read_delivery, NULL, &rows, count, err);
    *out = rows;
    return rc;
}

static int delivery_get_locked(struct sb_store *store, const char *webhook_id, const char *delivery_id,
                               struct sb_delivery *out, struct sb_err *err)
{
    STMT(st) = store_stmt_extra(store, SX_DLV_GET, sql_dlv_get, err);
    if (!st)
        return -1;
    bind_text(st, 1, delivery_id);
    bind_text(st, 2, webhook_id);
    int rc = sqlite3_step(st);
    if (rc == SQLITE_DONE)
        return sb_err_set(err, 404, "delivery not found");
    if (rc != SQLITE_ROW)
        return db_error(store, err, "reading delivery");
    memset(out, 0, sizeof *out);
    return read_delivery(st, out);
}

int store_delivery_retry(struct sb_store *store, const char *org_id, const char *webhook_id,
                         const char *delivery_id, struct sb_delivery *out, struct sb_err *err)
{
    struct sb_delivery d;
    STORE_LOCKED(store);
    if (webhook_owned_locked(store, org_id, webhook_id, err) < 0 ||
        delivery_get_locked(store, webhook_id, delivery_id, &d, err) < 0)
        return -1;
    if (d.status == SB_DELIVERY_SENDING)
        return sb_err_set(err, 409, "delivery %s is being sent right now; retry once it finishes", d.id);
    {
        STMT(st) = store_stmt_extra(store, SX_DLV_RETRY, sql_dlv_retry, err);
        if (!st)
            return -1;
        bind_text(st, 1, delivery_id);
        bind_text(st, 2, webhook_id);
        sqlite3_bind_int64(st, 3, sb_wall_ms());
        if (step_done(store, st, "retrying delivery", err) < 0)
            return -1;
    }
    return out ? delivery_get_locked(store, webhook_id, delivery_id, out, err) : 0;
}

void store_delivery_jobs_free(struct sb_delivery_job *jobs, size_t count)
{
    for (size_t i = 0; jobs && i < count; i++)
        store_event_clear(&jobs[i].event);
    free(jobs);
}

static int read_job(sqlite3_stmt *st, void *elem)
{
    struct sb_delivery_job *job = elem;
    if (store_read_event(st, &job->event) < 0)
        return -1;
    column_copy(st, 8, job->id, sizeof job->id);
    column_copy(st, 9, job->webhook_id, sizeof job->webhook_id);
    column_copy(st, 10, job->url, sizeof job->url);
    column_copy(st, 11, job->secret, sizeof job->secret);
    job->attempts = sqlite3_column_int(st, 12);
    return 0;
}

static void job_elem_clear(void *elem)
{
    struct sb_delivery_job *job = elem;
    store_event_clear(&job->event);
}

int store_delivery_claim(struct sb_store *store, int64_t now, int max, struct sb_delivery_job **out,
                         size_t *count, struct sb_err *err)
{
    *out = NULL;
    *count = 0;
    if (max <= 0)
        return 0;
    STORE_LOCKED(store);
    sqlite3 *db = store_db(store);
    if (sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL) != SQLITE_OK)
        return db_error(store, err, "starting a transaction");
    void *rows = NULL;
    int rc;
    {
        STMT(st) = store_stmt_extra(store, SX_DLV_DUE, sql_dlv_due, err);
        rc = st ? 0 : -1;
        if (rc == 0) {
            sqlite3_bind_int64(st, 1, now);
            sqlite3_bind_int(st, 2, max);
            rc = collect_rows(store, st, sizeof **out, read_job, job_elem_clear, &rows, count, err);
        }
    }
    struct sb_delivery_job *jobs = rows;
    for (size_t i = 0; rc == 0 && i < *count; i++) {
        STMT(st) = store_stmt_extra(store, SX_DLV_MARK_SENDING, sql_dlv_mark_sending, err);
        if (!st) {
            rc = -1;
            break;
        }
        bind_text(st, 1, jobs[i].id);
        rc = step_done(store, st, "claiming a delivery", err);
    }
    if (rc == 0 && sqlite3_exec(db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK)
        rc = db_error(store, err, "committing claimed deliveries");
    if (rc < 0) {
        sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
        store_delivery_jobs_free(jobs, *count);
        *count = 0;
        return -1;
    }
    *out = jobs;
    return 0;
}

int store_delivery_next_due(struct sb_store *store, int64_t *when, struct sb_err *err)
{
    *when = INT64_MAX;
    STORE_LOCKED(store);
    STMT(st) = store_stmt_extra(store, SX_DLV_NEXT_DUE, sql_dlv_next_due, err);
    if (!st)
        return -1;
    if (sqlite3_step(st) != SQLITE_ROW)
        return db_error(store, err, "finding the next delivery");
    if (sqlite3_column_type(st, 0) != SQLITE_NULL)
        *when = sqlite3_column_int64(st, 0);
    return 0;
}

int store_delivery_record(struct sb_store *store, const char *delivery_id, const struct sb_delivery_attempt *a,
                          struct sb_err *err)
{
    if (a->status == SB_DELIVERY_SENDING || (unsigned)a->status >= SB_DELIVERY_STATUS_COUNT)
        return sb_err_set(err, 400, "a delivery attempt ends delivered, pending or failed");
    STORE_LOCKED(store);
    STMT(st) = store_stmt_extra(store, SX_DLV_RECORD, sql_dlv_record, err);
    if (!st)
        return -1;
    bind_text(st, 1, delivery_id);
    bind_text(st, 2, sb_delivery_status_name(a->status));
    sqlite3_bind_int64(st, 3, a->attempted_at);
    sqlite3_bind_int64(st, 4, a->status == SB_DELIVERY_PENDING ? a->next_attempt_at : 0);
    sqlite3_bind_int(st, 5, a->status_code);
    sqlite3_bind_int64(st, 6, a->duration_ms);
    char error[sizeof ((struct sb_delivery *)0)->last_error];
    snprintf(error, sizeof error, "%s", a->error ? a->error : "");
    bind_text(st, 7, error);
    return step_done(store, st, "recording a delivery attempt", err);
}

int store_delivery_reset_sending(struct sb_store *store, size_t *reset, struct sb_err *err)
{
    STORE_LOCKED(store);
    STMT(st) = store_stmt_extra(store, SX_DLV_RESET_SENDING, sql_dlv_reset_sending, err);
    if (!st)
        return -1;
    sqlite3_bind_int64(st, 1, sb_wall_ms());
    if (step_done(store, st, "resetting deliveries", err) < 0)
        return -1;
    if (reset)
        *reset = (size_t)sqlite3_changes(store_db(store));
    return 0;
}
