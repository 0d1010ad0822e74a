/*
 * event_bus.h - in-process fan-out of committed lifecycle events: the store
 * calls event_bus_publish after each commit (store_set_event_listener), and
 * every subscriber (the webhook delivery worker's wake-up, live event
 * streams) is called with the event.
 *
 * Threading: publish runs on whatever thread wrote the event (the loop
 * thread included), under the bus's mutex: a subscriber must return at once
 * (copy the event, post it, wake a thread) and must never subscribe,
 * unsubscribe or write an event from inside its callback. Subscribe and
 * unsubscribe from any thread; after unsubscribe returns the callback is
 * not running and will not run again.
 * Ownership: the creator frees the bus after every subscriber is gone.
 */
#ifndef SB_RUNTIME_EVENT_BUS_H
#define SB_RUNTIME_EVENT_BUS_H

#include <stdint.h>

#include "store/store.h"

struct sb_event_bus;

typedef void (*event_bus_fn)(void *arg, const struct sb_event *ev);

struct sb_event_bus *event_bus_new(void);
void event_bus_free(struct sb_event_bus *bus);
/* Returns a subscription id > 0, or 0 when out of memory. */
uint64_t event_bus_subscribe(struct sb_event_bus *bus, event_bus_fn fn, void *arg);
void event_bus_unsubscribe(struct sb_event_bus *bus, uint64_t id);
/* A store_event_listener_fn: arg is the bus. */
void event_bus_publish(void *bus, const struct sb_event *ev);

#endif
