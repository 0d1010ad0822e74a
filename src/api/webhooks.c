/*
 * webhooks.c - the webhook routes: POST/GET /events/webhooks, GET/PATCH/
 * DELETE /events/webhooks/:id, GET /events/webhooks/:id/deliveries, POST
 * /events/webhooks/:id/deliveries/:delivery/retry, and the older
 * POST /webhooks of the published Webhooks reference.
 *
 * The two create routes share one validation and differ where their
 * published variants differ: /events/webhooks requires `name`, takes an
 * empty or absent `events` as "every type" and answers the webhook object;
 * /webhooks requires a non-empty `events` ("events list cannot be empty"),
 * makes `name` optional and answers {"data": webhook}. The secret
 * (`signatureSecret`, generated as whsec_... when not given) is in the
 * create answer only. Another org's webhook is "404 webhook not found".
 * The store calls are short writes and indexed reads, on the loop thread.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/validate.h"
#include "core/id.h"
#include "runtime/events.h"
#include "runtime/webhook_delivery.h"
#include "runtime/webhook_dest.h"
#include "runtime/webhook_sign.h"
#include "store/webhooks.h"

#define DELIVERIES_LIMIT_MAX 1000
#define SECRET_MIN 8

static const char *const create_fields[] = {"name", "url", "resourceType", "events", "enabled",
                                            "signatureSecret", NULL};
static const char *const update_fields[] = {"name", "url", "resourceType", "events", "enabled", NULL};

/* Where the two create routes differ. */
struct webhook_variant {
    const char *route;
    int name_required;
    int events_required;    /* non-empty */
    int data_envelope;
};
static const struct webhook_variant events_api = {"POST /events/webhooks", 1, 0, 0};
static const struct webhook_variant legacy_api = {"POST /webhooks", 0, 1, 1};

static json_t *webhook_json(const struct sb_webhook *wh, int with_secret)
{
    char created[32], updated[32];
    sb_time_rfc3339(wh->created_at, created, sizeof created);
    sb_time_rfc3339(wh->updated_at, updated, sizeof updated);
    json_t *events = json_loads(wh->events_json ? wh->events_json : "[]", 0, NULL);
    if (!json_is_array(events)) {
        json_decref(events);
        events = json_array();
    }
    json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:o, s:b, s:s, s:s}", "id", wh->id, "name", wh->name, "url",
                            wh->url, "resourceType", wh->resource_type, "events", events, "enabled",
                            wh->enabled, "createdAt", created, "updatedAt", updated);
    if (obj && with_secret)
        json_object_set_new(obj, "signatureSecret", json_string(wh->secret));
    return obj;
}

static struct webhook_dest_policy dest_policy(const struct sb_request *req)
{
    const struct sb_app *app = api_app(req);
    return (struct webhook_dest_policy){.allow_private = app->cfg.webhook.allow_private,
                                        .api_port = app->server ? sb_server_port(app->server) : 0};
}

/* The fields of body that are present, checked and written into wh. */
static int apply_fields(struct sb_request *req, json_t *body, int name_required, struct sb_webhook *wh,
                        struct sb_err *err)
{
    const char *name = NULL, *url = NULL, *resource = NULL;
    if (api_field_string(body, "name", name_required, NULL, &name, err) < 0 ||
        api_field_string(body, "url", 0, NULL, &url, err) < 0 ||
        api_field_string(body, "resourceType", 0, NULL, &resource, err) < 0)
        return -1;
    if (name && (!name[0] || strlen(name) >= sizeof wh->name))
        return sb_err_set(err, 400, "name must be 1 to %zu characters", sizeof wh->name - 1);
    if (url) {
        struct webhook_dest_policy policy = dest_policy(req);
        if (webhook_url_check(&policy, url, sizeof wh->url, err) < 0)
            return -1;
    }
    if (resource && strcmp(resource, SB_EVENT_RESOURCE_SANDBOX) != 0)
        return sb_err_set(err, 400, "resourceType %.32s has no events on this server: use sandbox", resource);
    json_t *enabled = json_object_get(body, "enabled");
    if (enabled && !json_is_boolean(enabled))
        return sb_err_set(err, 400, "enabled must be true or false");
    json_t *events = json_object_get(body, "events");
    char *events_text = NULL;
    if (events) {
        if (!json_is_array(events))
            return sb_err_set(err, 400, "events must be an array of event types (empty: every sandbox event)");
        size_t i;
        json_t *v;
        json_array_foreach(events, i, v) {
            if (!json_is_string(v))
                return sb_err_set(err, 400, "events must be an array of event types (empty: every sandbox event)");
            if (!event_type_known(json_string_value(v)))
                return sb_err_set(err, 400, "unknown event type: %.64s (known: %s)", json_string_value(v),
                                  event_types_text());
        }
        if (!(events_text = json_dumps(events, JSON_COMPACT)))
            return sb_err_set(err, 500, "out of memory");
    }
    if (name)
        snprintf(wh->name, sizeof wh->name, "%s", name);
    if (url)
        snprintf(wh->url, sizeof wh->url, "%s", url);
    if (resource)
        snprintf(wh->resource_type, sizeof wh->resource_type, "%s", resource);
    if (enabled)
        wh->enabled = json_is_true(enabled);
    if (events_text) {
        free(wh->events_json);
        wh->events_json = events_text;
    }
    return 0;
}

static void webhook_create(struct sb_request *req, const struct webhook_variant *variant)
{
    struct sb_err err = {0};
    struct sb_webhook wh = {.enabled = 1};
    snprintf(wh.org_id, sizeof wh.org_id, "%.39s", req->org_id);
    snprintf(wh.resource_type, sizeof wh.resource_type, SB_EVENT_RESOURCE_SANDBOX);
    json_t *body = sb_request_json(req, 0, &err);
    const char *secret = NULL;
    if (!body || api_check_fields(body, create_fields, variant->route, &err) < 0)
        goto fail;
    json_t *events = json_object_get(body, "events");
    if (variant->events_required && (!events || (json_is_array(events) && json_array_size(events) == 0))) {
        sb_err_set(&err, 400, "events list cannot be empty");
        goto fail;
    }
    if (!json_object_get(body, "url")) {
        sb_err_set(&err, 400, "invalid webhook url: missing field url");
        goto fail;
    }
    if (apply_fields(req, body, variant->name_required, &wh, &err) < 0 ||
        api_field_string(body, "signatureSecret", 0, NULL, &secret, &err) < 0)
        goto fail;
    if (secret && (strlen(secret) < SECRET_MIN || strlen(secret) >= sizeof wh.secret)) {
        sb_err_set(&err, 400, "signatureSecret must be %d to %zu characters", SECRET_MIN, sizeof wh.secret - 1);
        goto fail;
    }
    if (secret)
        snprintf(wh.secret, sizeof wh.secret, "%s", secret);
    else
        webhook_secret_new(wh.secret);
    if (store_webhook_insert(api_app(req)->store, &wh, &err) < 0)
        goto fail;
    json_t *obj = webhook_json(&wh, 1);
    sb_respond_json(req, 200, variant->data_envelope ? json_pack("{s:o}", "data", obj) : obj);
    json_decref(body);
    store_webhook_clear(&wh);
    return;
fail:
    json_decref(body);
    store_webhook_clear(&wh);
    sb_respond_error(req, &err);
}

void api_webhook_create(struct sb_request *req)
{
    webhook_create(req, &events_api);
}

void api_webhook_create_legacy(struct sb_request *req)
{
    webhook_create(req, &legacy_api);
}

void api_webhook_list(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_webhook *list = NULL;
    size_t count = 0;
    if (store_webhook_list(api_app(req)->store, req->org_id, &list, &count, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < count; i++)
        json_array_append_new(arr, webhook_json(&list[i], 0));
    store_webhook_list_free(list, count);
    sb_respond_json(req, 200, arr);
}

/* The route's webhook of the caller's org; 404 "webhook not found" for a
 * malformed id too (ids are not guessable, and no other answer leaks). */
static int load_webhook(struct sb_request *req, struct sb_webhook *wh, struct sb_err *err)
{
    const char *id = sb_request_param(req, "id");
    memset(wh, 0, sizeof *wh);
    if (!id || !sb_id_valid("wh_", id))
        return sb_err_set(err, 404, "webhook not found");
    return store_webhook_get(api_app(req)->store, req->org_id, id, wh, err);
}

void api_webhook_get(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_webhook wh;
    if (load_webhook(req, &wh, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    sb_respond_json(req, 200, webhook_json(&wh, 0));
    store_webhook_clear(&wh);
}

void api_webhook_update(struct sb_request *req)
{
    struct sb_err err = {0};
    struct sb_webhook wh;
    json_t *body = NULL;
    if (load_webhook(req, &wh, &err) < 0 || !(body = sb_request_json(req, 0, &err)))
        goto out;
    if (json_object_get(body, "signatureSecret")) {
        sb_err_set(&err, 400, "signatureSecret cannot be changed: delete the webhook and create it again "
                              "for a new secret");
        goto out;
    }
    if (api_check_fields(body, update_fields, "PATCH /events/webhooks/:id", &err) < 0 ||
        apply_fields(req, body, 0, &wh, &err) < 0 || store_webhook_update(api_app(req)->store, &wh, &err) < 0)
        goto out;
    sb_respond_json(req, 200, webhook_json(&wh, 0));
out:
    if (err.status)
        sb_respond_error(req, &err);
    json_decref(body);
    store_webhook_clear(&wh);
}

void api_webhook_delete(struct sb_request *req)
{
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    if (!id || !sb_id_valid("wh_", id))
        sb_err_set(&err, 404, "webhook not found");
    if (err.status || store_webhook_delete(api_app(req)->store, req->org_id, id, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    sb_respond_empty(req, 204);
}

/* ---- deliveries ---- */

static json_t *time_or_null(int64_t ms)
{
    if (ms <= 0)
        return json_null();
    char text[32];
    sb_time_rfc3339(ms, text, sizeof text);
    return json_string(text);
}

static json_t *delivery_json(const struct sb_delivery *d)
{
    json_t *obj = json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:i, s:o, s:o, s:o, s:I, s:o, s:o}", "id", d->id,
                            "webhookID", d->webhook_id, "eventID", d->event_id, "eventType", d->event_type,
                            "sandboxID", d->sandbox_id, "status", sb_delivery_status_name(d->status), "attempts",
                            d->attempts, "lastAttemptAt", time_or_null(d->last_attempt_at), "lastStatusCode",
                            d->last_status_code ? json_integer(d->last_status_code) : json_null(),
                            "lastError", d->last_error[0] ? json_string(d->last_error) : json_null(),
                            "lastDurationMs", (json_int_t)d->last_duration_ms, "nextAttemptAt",
                            time_or_null(d->status == SB_DELIVERY_PENDING ? d->next_attempt_at : 0),
                            "createdAt", time_or_null(d->created_at));
    return obj;
}

void api_webhook_deliveries(struct sb_request *req)
{
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    const char *limit_text = sb_request_query(req, "limit");
    long limit = 100;
    if (limit_text) {
        char *end;
        limit = strtol(limit_text, &end, 10);
        if (!*limit_text || *end || limit < 1 || limit > DELIVERIES_LIMIT_MAX)
            sb_err_set(&err, 400, "limit must be an integer between 1 and %d", DELIVERIES_LIMIT_MAX);
    }
    if (!err.status && (!id || !sb_id_valid("wh_", id)))
        sb_err_set(&err, 404, "webhook not found");
    struct sb_delivery *list = NULL;
    size_t count = 0;
    if (err.status ||
        store_delivery_list(api_app(req)->store, req->org_id, id, (int)limit, &list, &count, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < count; i++)
        json_array_append_new(arr, delivery_json(&list[i]));
    free(list);
    sb_respond_json(req, 200, arr);
}

void api_webhook_delivery_retry(struct sb_request *req)
{
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    const char *delivery_id = sb_request_param(req, "delivery");
    struct sb_delivery d;
    if (!id || !sb_id_valid("wh_", id))
        sb_err_set(&err, 404, "webhook not found");
    if (err.status ||
        store_delivery_retry(api_app(req)->store, req->org_id, id, delivery_id ? delivery_id : "", &d, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    webhook_delivery_wake(api_app(req)->delivery);
    sb_respond_json(req, 200, delivery_json(&d));
}
