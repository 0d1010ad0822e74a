/*
 * netlink.h - the few netlink requests sandbox networking needs. rtnetlink
 * (rtnl_*): a veth pair whose peer is created inside another network
 * namespace, links up, point-to-point IPv4 addresses, a default route,
 * deleting a link. ctnetlink (ctnl_*): flushing a sandbox's conntrack
 * entries. Raw netlink, no library; each call sends one request and waits
 * for its acknowledgement, so errors carry the kernel's errno.
 *
 * Owns: the sockets it returns (caller closes). Never: keeps a thread in
 * another namespace (rtnl_open_in uses a short-lived thread of its own).
 */
#ifndef SB_RUNTIME_NETLINK_H
#define SB_RUNTIME_NETLINK_H

#include <stdint.h>

#include "core/err.h"

/* A NETLINK_ROUTE socket of the caller's network namespace. */
int rtnl_open(int *fd_out, struct sb_err *err);
/* A NETLINK_ROUTE socket bound to the namespace netns_fd (an open
 * /proc/PID/ns/net): opened on a thread that joins the namespace, opens the
 * socket and exits, so no thread of the caller ever changes namespace. */
int rtnl_open_in(int netns_fd, int *fd_out, struct sb_err *err);
/* Creates veth host_name in fd's namespace with its peer peer_name created
 * directly in namespace peer_netns_fd (both down). 409 when host_name exists. */
int rtnl_veth_create(int fd, const char *host_name, const char *peer_name, int peer_netns_fd, struct sb_err *err);
/* The index of link name in fd's namespace; 404 when there is none. */
int rtnl_link_index(int fd, const char *name, int *index, struct sb_err *err);
int rtnl_link_up(int fd, int index, struct sb_err *err);
/* Adds local/32 with peer/32 on link index (IPv4, host byte order): the
 * kernel adds the route to peer through the link. */
int rtnl_addr_add_p2p(int fd, int index, uint32_t local, uint32_t peer, struct sb_err *err);
/* default via gateway dev index (IPv4, host byte order). */
int rtnl_route_add_default(int fd, int index, uint32_t gateway, struct sb_err *err);
/* Deletes link name; 0 also when it does not exist (idempotent). */
int rtnl_link_delete(int fd, const char *name, struct sb_err *err);
/* Deletes every IPv4 conntrack entry of the caller's namespace whose
 * connection mark is mark (all 32 bits compared). */
int ctnl_flush_mark(uint32_t mark, struct sb_err *err);
/* Deletes every IPv4 conntrack entry of namespace netns_fd (its socket is
 * opened as rtnl_open_in's is). */
int ctnl_flush_in(int netns_fd, struct sb_err *err);

#endif
