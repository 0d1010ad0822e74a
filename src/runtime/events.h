/*
 * events.h - what a lifecycle event is to the outside: the names of the
 * event types and the one JSON shape every consumer gets (the events API,
 * webhook payloads and the live stream), so they never disagree.
 */
#ifndef SB_RUNTIME_EVENTS_H
#define SB_RUNTIME_EVENTS_H

#include <jansson.h>

#include "store/store.h"

/* The resource type of every event so far. */
#define SB_EVENT_RESOURCE_SANDBOX "sandbox"

/* The sandbox event types, NULL-terminated; "snapshotted" is reserved (a
 * webhook may ask for it, nothing emits it yet). */
extern const char *const sb_event_types[];
/* True when type is one of sb_event_types. */
int event_type_known(const char *type);
/* "a, b, c": the known types, for error messages. */
const char *event_types_text(void);

/* The event object (new reference, NULL on OOM): id, resourceType,
 * resourceID, type, sandboxID, data, createdAt (the Events API shape), and
 * the published aliases sandboxId, sandboxTemplateId, timestamp. */
json_t *event_json(const struct sb_event *ev);
/* The same object as compact JSON text: the body a webhook receives and
 * signs. malloc'd (caller frees), NULL on OOM. */
char *event_payload(const struct sb_event *ev);

#endif
