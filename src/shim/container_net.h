/*
 * container_net.h - the sandbox's network namespace: loopback only, as the
 * shim builds it (serve adds eth0 to sandboxes with egress when a create
 * claims them: runtime/network.c).
 *
 * Runs in the sandbox's PID 1 while it is still host root inside its new
 * network namespace (which stays owned by the initial user namespace).
 *
 * Owns: nothing.  Never: touches an interface other than "lo".
 */
#ifndef SB_SHIM_CONTAINER_NET_H
#define SB_SHIM_CONTAINER_NET_H

#include <stdint.h>

#include "core/err.h"

/* Brings lo up, and since the namespace is owned by the initial user
 * namespace (so sandboxed root lacks CAP_NET_BIND_SERVICE/CAP_NET_RAW there),
 * sets ip_unprivileged_port_start=0 and lets the sandbox's gids use ICMP
 * echo sockets (ping_group_range = uid_base..uid_base+65535). Must run while
 * the host's /proc is still mounted: net sysctls apply to the writer's netns. */
int net_setup_loopback(uint32_t uid_base, struct sb_err *err);

#endif
