/*
 * port_grants.h - the port proxy's short memory of sandboxes it found
 * running: the org, whether public traffic is allowed and the traffic
 * token, so that a stream of requests to one sandbox's port does not read
 * its row each time. Forgotten after PORT_GRANT_MS, and all at once on any
 * committed lifecycle event (a pause, a delete, a timeout, a create), so a
 * change of state is seen by the next request.
 *
 * port_grants_lookup and port_grants_remember: loop thread only;
 * port_grants_on_event: any thread (an event_bus subscriber).
 */
#ifndef SB_API_PORT_GRANTS_H
#define SB_API_PORT_GRANTS_H

#include <stddef.h>

struct sb_event;

struct port_grant {
    char org_id[64];
    int public_traffic;
    char token[80];
};

/* 1 and *out when id was found running within the grant's life and no
 * lifecycle event came since; else 0. */
int port_grants_lookup(const char *id, struct port_grant *out);
/* The epoch to remember a grant under: read before the row it is made
 * from, so an event committed in between makes it count for nothing. */
unsigned long long port_grants_epoch(void);
void port_grants_remember(const char *id, const struct port_grant *grant, unsigned long long epoch);
/* The event_bus_fn that forgets every grant (arg unused). */
void port_grants_on_event(void *arg, const struct sb_event *ev);

#endif
