/*
 * events.c - the event types and the event object's JSON (events.h).
 * The store holds events as rows; this file alone decides how they look.
 */
#include "runtime/events.h"

#include <string.h>

#include "core/id.h"

const char *const sb_event_types[] = {
    "sandbox.lifecycle.created", "sandbox.lifecycle.updated", "sandbox.lifecycle.paused",
    "sandbox.lifecycle.resumed", "sandbox.lifecycle.killed",  "sandbox.lifecycle.snapshotted",
    NULL,
};

int event_type_known(const char *type)
{
    for (size_t i = 0; type && sb_event_types[i]; i++)
        if (strcmp(type, sb_event_types[i]) == 0)
            return 1;
    return 0;
}

const char *event_types_text(void)
{
    return "sandbox.lifecycle.created, sandbox.lifecycle.updated, sandbox.lifecycle.paused, "
           "sandbox.lifecycle.resumed, sandbox.lifecycle.killed, sandbox.lifecycle.snapshotted";
}

json_t *event_json(const struct sb_event *ev)
{
    char created[32];
    sb_time_rfc3339(ev->created_at, created, sizeof created);
    json_t *data = ev->data_json ? json_loads(ev->data_json, 0, NULL) : NULL;
    if (!json_is_object(data)) {
        json_decref(data);
        data = json_object();
    }
    return json_pack("{s:s, s:s, s:s, s:s, s:s, s:o, s:s, s:s, s:s, s:s}", "id", ev->id, "resourceType",
                     SB_EVENT_RESOURCE_SANDBOX, "resourceID", ev->sandbox_id, "type", ev->type, "sandboxID",
                     ev->sandbox_id, "data", data, "createdAt", created, "sandboxId", ev->sandbox_id,
                     "sandboxTemplateId", ev->template_id, "timestamp", created);
}

char *event_payload(const struct sb_event *ev)
{
    json_t *obj = event_json(ev);
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return text;
}
