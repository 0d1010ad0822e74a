/*
 * event_bus.c - the subscriber list of event_bus.h: a small array under one
 * mutex (a handful of subscribers: the delivery worker and the open live
 * streams), scanned in full on every publish.
 */
#include "runtime/event_bus.h"

#include <pthread.h>
#include <stdlib.h>

struct subscriber {
    uint64_t id;
    event_bus_fn fn;
    void *arg;
};

struct sb_event_bus {
    pthread_mutex_t lock;
    struct subscriber *subs;
    size_t count, cap;
    uint64_t next_id;
};

struct sb_event_bus *event_bus_new(void)
{
    struct sb_event_bus *bus = calloc(1, sizeof *bus);
    if (bus)
        pthread_mutex_init(&bus->lock, NULL);
    return bus;
}

void event_bus_free(struct sb_event_bus *bus)
{
    if (!bus)
        return;
    pthread_mutex_destroy(&bus->lock);
    free(bus->subs);
    free(bus);
}

uint64_t event_bus_subscribe(struct sb_event_bus *bus, event_bus_fn fn, void *arg)
{
    pthread_mutex_lock(&bus->lock);
    uint64_t id = 0;
    if (bus->count == bus->cap) {
        size_t cap = bus->cap ? bus->cap * 2 : 8;
        struct subscriber *grown = realloc(bus->subs, cap * sizeof *grown);
        if (!grown)
            goto out;
        bus->subs = grown;
        bus->cap = cap;
    }
    id = ++bus->next_id;
    bus->subs[bus->count++] = (struct subscriber){.id = id, .fn = fn, .arg = arg};
out:
    pthread_mutex_unlock(&bus->lock);
    return id;
}

void event_bus_unsubscribe(struct sb_event_bus *bus, uint64_t id)
{
    pthread_mutex_lock(&bus->lock);
    for (size_t i = 0; i < bus->count; i++) {
        if (bus->subs[i].id == id) {
            bus->subs[i] = bus->subs[--bus->count];
            break;
        }
    }
    pthread_mutex_unlock(&bus->lock);
}

void event_bus_publish(void *arg, const struct sb_event *ev)
{
    struct sb_event_bus *bus = arg;
    pthread_mutex_lock(&bus->lock);
    for (size_t i = 0; i < bus->count; i++)
        bus->subs[i].fn(bus->subs[i].arg, ev);
    pthread_mutex_unlock(&bus->lock);
}
