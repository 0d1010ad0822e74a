/*
 * events.c - the Events API's read routes: GET /events/sandboxes (the
 * whole org) and GET /events/sandboxes/:id (one sandbox, also after it was
 * killed, until the retention period ends).
 *
 * Both answer a JSON array of event objects (runtime/events.h), newest
 * first, and take the same query: limit (1-1000, default 100), cursor (the
 * id of the last event of the previous page: the answer continues with the
 * events older than it), type (an event type; repeated or comma-separated
 * for several) and since (RFC 3339: events created at or after it). The
 * store calls are short indexed reads, done on the loop thread like the
 * sandbox reads. The live stream of the same events is events_stream.c.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api/app.h"
#include "api/events.h"
#include "api/validate.h"
#include "core/id.h"
#include "runtime/events.h"

#define EVENTS_LIMIT_MAX 1000

static int add_types(void *arg, const char *value)
{
    struct api_event_types *set = arg;
    char copy[512];
    snprintf(copy, sizeof copy, "%s", value);
    char *save = NULL;
    for (char *type = strtok_r(copy, ",", &save); type; type = strtok_r(NULL, ",", &save)) {
        if (!event_type_known(type)) {
            sb_err_set(set->err, 400, "unknown event type: %.64s (known: %s)", type, event_types_text());
            return -1;
        }
        if (set->used == 0)
            set->used = (size_t)snprintf(set->text, sizeof set->text, ",");
        if (api_event_types_match(set, type))
            continue;       /* named twice: the set holds each known type once, so it fits */
        set->used += (size_t)snprintf(set->text + set->used, sizeof set->text - set->used, "%s,", type);
    }
    if (set->used == 0) {
        sb_err_set(set->err, 400, "type must name an event type (known: %s)", event_types_text());
        return -1;
    }
    return 0;
}

int api_event_types_parse(struct sb_request *req, struct api_event_types *set, struct sb_err *err)
{
    memset(set, 0, sizeof *set);
    set->err = err;
    sb_request_query_each(req, "type", add_types, set);
    return err->status ? -1 : 0;
}

int api_event_types_match(const struct api_event_types *set, const char *type)
{
    if (set->used == 0)
        return 1;
    char item[64];
    snprintf(item, sizeof item, ",%s,", type);
    return strstr(set->text, item) != NULL;
}

/* Reads limit, cursor, type and since into q (types into set). */
static int parse_query(struct sb_request *req, struct sb_event_query *q, struct api_event_types *set,
                       struct sb_err *err)
{
    const char *limit = sb_request_query(req, "limit");
    if (limit) {
        char *end;
        long n = strtol(limit, &end, 10);
        if (!*limit || *end || n < 1 || n > EVENTS_LIMIT_MAX)
            return sb_err_set(err, 400, "limit must be an integer between 1 and %d", EVENTS_LIMIT_MAX);
        q->limit = (int)n;
    }
    const char *since = sb_request_query(req, "since");
    if (since && sb_time_parse_rfc3339(since, &q->since_ms) < 0)
        return sb_err_set(err, 400, "since must be an RFC 3339 time such as 2026-05-29T10:00:00Z");
    if (api_event_types_parse(req, set, err) < 0)
        return -1;
    q->types = set->used ? set->text : NULL;
    const char *cursor = sb_request_query(req, "cursor");
    if (cursor) {
        if (!sb_id_valid("evt_", cursor))
            return sb_err_set(err, 400, "invalid cursor: give the id (evt_...) of the last event of the previous page");
        if (store_event_seq(api_app(req)->store, req->org_id, cursor, &q->before_seq, err) < 0)
            return err->status == 404 ? sb_err_set(err, 400, "invalid cursor: no event %s in this org "
                                                             "(or it is older than the retention period)",
                                                   cursor)
                                      : -1;
    }
    return 0;
}

static void events_answer(struct sb_request *req, const char *sandbox_id)
{
    struct sb_err err = {0};
    struct sb_event_query q = {.org_id = req->org_id, .sandbox_id = sandbox_id, .limit = 100};
    struct api_event_types set;
    struct sb_event *list = NULL;
    size_t count = 0;
    if (parse_query(req, &q, &set, &err) < 0 || store_event_query(api_app(req)->store, &q, &list, &count, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < count; i++)
        json_array_append_new(arr, event_json(&list[i]));
    store_event_list_free(list, count);
    sb_respond_json(req, 200, arr);
}

void api_events_list(struct sb_request *req)
{
    events_answer(req, NULL);
}

void api_events_sandbox(struct sb_request *req)
{
    struct sb_err err = {0};
    const char *id = sb_request_param(req, "id");
    struct sb_sandbox_rec rec;
    /* The sandbox's row outlives it by the same retention as its events;
     * another org's sandbox is not found. */
    if (api_check_sandbox_id(id, &err) < 0 || store_sandbox_get(api_app(req)->store, req->org_id, id, &rec, &err) < 0) {
        sb_respond_error(req, &err);
        return;
    }
    store_sandbox_rec_clear(&rec);
    events_answer(req, id);
}
