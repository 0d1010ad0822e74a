/*
 * events.h - what the two event route files share (defined in
 * api/events.c): the `type` query filter, which GET /events/sandboxes and
 * GET /events/stream both take.
 */
#ifndef SB_API_EVENTS_H
#define SB_API_EVENTS_H

#include <stddef.h>

#include "http/request.h"

/* A set of event types as the store takes it (",a,b,"), each known type at
 * most once; empty (used == 0) means every type. */
struct api_event_types {
    char text[512];
    size_t used;
    struct sb_err *err;     /* while parsing */
};

/* Reads every `type` value of the query (repeated or comma-separated) into
 * set; 400 for an unknown or empty name. Only while the handler runs. */
int api_event_types_parse(struct sb_request *req, struct api_event_types *set, struct sb_err *err);
/* True when type is in the set (or the set is empty). */
int api_event_types_match(const struct api_event_types *set, const char *type);

#endif
