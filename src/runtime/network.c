/*
 * network.c - per-sandbox veth, addresses, NAT and nftables rules (see network.h).
 *
 * Rules live in two places, each decisive on its own (a drop in either
 * table is final), in the order they decide:
 *
 * The server's table in the host namespace, inet sandbase_<range>, written
 * once at start (replaced atomically, never removed: it also protects
 * sandboxes that outlive a stopped server). For packets from the range R
 * on a sandbox veth (sb*):
 *   input   (the host itself, any of its addresses, the API port included):
 *            only DNS to G:53/udp and replies to connections the host
 *            opened; the rest dropped.
 *   forward: out through the uplink U only (never another sandbox's veth or
 *            another host interface); never to the always-blocked
 *            destinations (0/8, 127/8, 169.254/16 with the metadata address,
 *            192.0.0/24, multicast and reserved, R itself); never to the
 *            private ranges (RFC 1918, 100.64/10) unless config
 *            network.allow_private lists them. Into a veth: replies only.
 *   IPv6 on sandbox veths is dropped; postrouting masquerades R out of U;
 *   new connections from or to a sandbox get conntrack mark = its address,
 *   so teardown can flush exactly its entries.
 *
 * The sandbox's table in its own namespace, inet sandbase (output hook):
 * loopback, DNS to G and established connections pass; then allowOut
 * (@allow4, and @dns4 for names) accepts, denyOut (@deny4) drops, the rest
 * is accepted. It is the sandbox's namespace, owned by the host's initial
 * user namespace, so sandboxed root cannot change it; it dies with the
 * sandbox. Keeping it there keeps every nftables call O(1): libnftables
 * reads the namespace's whole ruleset per transaction, and the host's
 * namespace holds one table per server instead of one per sandbox.
 *
 * Always-blocked and private destinations are dropped by the host's table
 * whatever the sandbox's table accepts, so no create can open them.
 */
#include "runtime/network.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/openat2.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "core/cidr.h"
#include "core/fs.h"
#include "core/log.h"
#include "runtime/dns_forward.h"
#include "runtime/netlink.h"
#include "runtime/nft.h"
#include "runtime/shim_client.h"

#define NET_MAX_SLOTS (1u << 20)
#define RULES_MAX (64 * 1024)

struct sb_network {
    const struct sb_config *cfg;
    uint32_t base;                  /* the range's first address (host order) */
    uint32_t slots;                 /* addresses in the range */
    uint32_t gateway;               /* base + 1 */
    char host_table[48];            /* sandbase_<base hex>_<prefix> */
    pthread_mutex_t lock;
    uint8_t *used;                  /* bitmap of slots; under lock */
    uint32_t cursor;                /* next slot to try, so a freed address is not reused at once */
    struct sb_dns_forward *dns;     /* NULL without uplink */
};

static int install_host_rules(const struct sb_network *net, struct sb_err *err);

struct sb_network *network_new(const struct sb_config *cfg, struct sb_err *err)
{
    struct sb_cidr range;
    if (sb_cidr_parse(cfg->network.range, &range) < 0 || range.family != AF_INET) {
        sb_err_set(err, 400, "config: network.range is not an IPv4 CIDR");
        return NULL;
    }
    struct sb_network *net = calloc(1, sizeof *net);
    if (!net) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    net->cfg = cfg;
    net->base = sb_cidr_v4(&range);
    uint64_t size = 1ull << (32 - range.prefix);
    net->slots = size > NET_MAX_SLOTS ? NET_MAX_SLOTS : (uint32_t)size;
    net->gateway = net->base + 1;
    net->cursor = 2;
    snprintf(net->host_table, sizeof net->host_table, "sandbase_%08x_%d", net->base, range.prefix);
    net->used = calloc(net->slots / 8 + 1, 1);
    pthread_mutex_init(&net->lock, NULL);
    if (!net->used) {
        network_free(net);
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    if (cfg->network.uplink[0]) {
        char path[64];
        snprintf(path, sizeof path, "/sys/class/net/%s", cfg->network.uplink);
        if (access(path, F_OK) != 0) {
            sb_err_set(err, 400, "config: network.uplink \"%s\" is not a network interface of this host",
                       cfg->network.uplink);
            network_free(net);
            return NULL;
        }
        if (install_host_rules(net, err) < 0) {
            network_free(net);
            return NULL;
        }
        net->dns = dns_forward_start(net->gateway, cfg->network.dns_upstream, err);
        if (!net->dns) {
            network_free(net);
            return NULL;
        }
        char gw[16];
        sb_ipv4_format(net->gateway, gw, sizeof gw);
        sb_info("network: egress through %s, sandboxes in %s, gateway and DNS on %s, default %s",
                cfg->network.uplink, cfg->network.range, gw, cfg->network.default_mode);
    } else {
        sb_info("network: no uplink configured (network.uplink): sandboxes have loopback only");
    }
    return net;
}

void network_free(struct sb_network *net)
{
    if (!net)
        return;
    dns_forward_stop(net->dns);
    pthread_mutex_destroy(&net->lock);
    free(net->used);
    free(net);
}

static void veth_name(uint32_t addr, char out[16])
{
    snprintf(out, 16, "sb%08x", addr);
}

/* p->address as a slot of the range; -1 when it is not one. */
static int slot_of(const struct sb_network *net, const char *address, uint32_t *addr, uint32_t *slot)
{
    struct sb_cidr c;
    if (sb_cidr_parse(address, &c) < 0 || c.family != AF_INET || c.prefix != 32)
        return -1;
    *addr = sb_cidr_v4(&c);
    if (*addr < net->base + 2 || *addr - net->base >= net->slots - 1)
        return -1;
    *slot = *addr - net->base;
    return 0;
}

#define BIT_SET(map, i) ((map)[(i) / 8] & (1u << ((i) % 8)))

int network_reserve(struct sb_network *net, struct sb_net_policy *p, struct sb_err *err)
{
    pthread_mutex_lock(&net->lock);
    uint32_t usable = net->slots - 3;   /* minus network, gateway, broadcast */
    int found = 0;
    for (uint32_t tries = 0; tries < usable && !found; tries++) {
        uint32_t slot = net->cursor;
        net->cursor = net->cursor + 1 >= net->slots - 1 ? 2 : net->cursor + 1;
        if (!BIT_SET(net->used, slot)) {
            net->used[slot / 8] |= (uint8_t)(1u << (slot % 8));
            sb_ipv4_format(net->base + slot, p->address, sizeof p->address);
            found = 1;
        }
    }
    pthread_mutex_unlock(&net->lock);
    if (!found)
        return sb_err_set(err, 503, "no free sandbox address left in network.range %s", net->cfg->network.range);
    return 0;
}

static void unreserve(struct sb_network *net, uint32_t slot)
{
    pthread_mutex_lock(&net->lock);
    net->used[slot / 8] &= (uint8_t)~(1u << (slot % 8));
    pthread_mutex_unlock(&net->lock);
}

/* Appends fmt to buf (RULES_MAX); 0, or -1 when it does not fit. */
__attribute__((format(printf, 3, 4))) static int emit(char *buf, size_t *used, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf + *used, RULES_MAX - *used, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= RULES_MAX - *used)
        return -1;
    *used += (size_t)n;
    return 0;
}

/* "set NAME { ... elements = { a, b }; }" of the IPv4 CIDR rules. */
static int emit_set(char *buf, size_t *used, const char *name, const struct sb_net_rule *rules, int count)
{
    int rc = emit(buf, used, "  set %s { type ipv4_addr; flags interval; auto-merge;", name);
    int first = 1;
    for (int i = 0; rc == 0 && i < count; i++) {
        if (rules[i].kind != SB_NET_RULE_CIDR || rules[i].cidr.family != AF_INET)
            continue;
        char text[64];
        sb_cidr_format(&rules[i].cidr, text, sizeof text);
        rc = emit(buf, used, "%s%s", first ? " elements = { " : ", ", text);
        first = 0;
    }
    if (rc == 0 && !first)
        rc = emit(buf, used, " };");
    return rc < 0 ? -1 : emit(buf, used, " }\n");
}

/* The server's table in the host namespace (see the top comment),
 * replacing any earlier version of it in one transaction. */
static int install_host_rules(const struct sb_network *net, struct sb_err *err)
{
    char *buf = malloc(RULES_MAX);
    if (!buf)
        return sb_err_set(err, 500, "out of memory");
    const struct sb_net_config *nc = &net->cfg->network;
    const char *t = net->host_table, *r = nc->range, *u = nc->uplink;
    char g[16];
    sb_ipv4_format(net->gateway, g, sizeof g);
    struct sb_net_rule ok[SB_NET_MAX_ALLOW_PRIVATE];
    int ok_count = 0;
    for (int i = 0; i < nc->allow_private_count; i++)
        if (sb_cidr_parse(nc->allow_private[i], &ok[ok_count].cidr) == 0) {
            ok[ok_count].kind = SB_NET_RULE_CIDR;
            ok_count++;
        }
    size_t used = 0;
    int rc = emit(buf, &used, "add table inet %s\ndelete table inet %s\ntable inet %s {\n", t, t, t);
    rc = rc < 0 ? -1 : emit_set(buf, &used, "private_ok4", ok, ok_count);
    rc = rc < 0 ? -1 : emit(buf, &used,
        "  chain input { type filter hook input priority filter - 5; policy accept;\n"
        "    iifname \"sb*\" meta nfproto ipv6 drop\n"
        "    iifname \"sb*\" ip saddr %s ip daddr %s udp dport 53 accept\n"
        "    iifname \"sb*\" ip saddr %s ct state established,related accept\n"
        "    iifname \"sb*\" ip saddr %s drop\n  }\n"
        "  chain forward { type filter hook forward priority filter - 5; policy accept;\n"
        "    iifname \"sb*\" meta nfproto ipv6 drop\n"
        "    iifname \"sb*\" ip saddr %s jump egress\n"
        "    oifname \"sb*\" ip daddr %s ct state established,related accept\n"
        "    oifname \"sb*\" ip daddr %s drop\n  }\n"
        "  chain egress {\n"
        "    oifname != \"%s\" drop\n"
        "    ip daddr { 0.0.0.0/8, 127.0.0.0/8, 169.254.0.0/16, 192.0.0.0/24, 224.0.0.0/3, %s } drop\n"
        "    ip daddr { 10.0.0.0/8, 100.64.0.0/10, 172.16.0.0/12, 192.168.0.0/16 } ip daddr != @private_ok4 drop\n"
        "  }\n"
        "  chain postrouting { type nat hook postrouting priority srcnat; policy accept;\n"
        "    oifname \"%s\" ip saddr %s masquerade\n  }\n"
        "  chain mark_in { type filter hook prerouting priority mangle; policy accept;\n"
        "    iifname \"sb*\" ip saddr %s ct state new ct mark set @nh,96,32\n  }\n"
        "  chain mark_out { type filter hook output priority mangle; policy accept;\n"
        "    oifname \"sb*\" ip daddr %s ct state new ct mark set @nh,128,32\n  }\n}\n",
        r, g, r, r, r, r, r, u, r, u, r, r, r);
    if (rc == 0)
        rc = nft_run(-1, buf, NULL, 0, err);
    else
        sb_err_set(err, 500, "network: the server's rules do not fit in %d bytes", RULES_MAX);
    free(buf);
    return rc < 0 ? sb_err_prefix(err, "network: installing table %s", t) : 0;
}

/* The sandbox's own table, in its namespace. A new sandbox (or one whose
 * table was removed) has none yet: no "delete table" first, which in one
 * batch with the new table costs ~10 ms more. With replace (an update), the
 * old table is deleted and the new one made in the same transaction, so
 * the sandbox never has no rules or a mix of old and new; the DNS grants
 * (dns4) go with the old table.
 *
 * Established connections pass in their original direction only: every
 * connection on eth0 is the sandbox's own (the host's table lets nothing
 * new in), so an entry whose original direction points at the sandbox can
 * only be conntrack picking a connection up mid-stream after an update
 * flushed the entries, and the sandbox's side of it is judged by the rules. */
static int install_sandbox_rules(const struct sb_network *net, int nsfd, const struct sb_net_policy *p,
                                 int replace, struct sb_err *err)
{
    char *buf = malloc(RULES_MAX);
    if (!buf)
        return sb_err_set(err, 500, "out of memory");
    char g[16];
    sb_ipv4_format(net->gateway, g, sizeof g);
    size_t used = 0;
    int rc = replace ? emit(buf, &used, "add table inet " SB_NET_SANDBOX_TABLE "\n"
                                        "delete table inet " SB_NET_SANDBOX_TABLE "\n") : 0;
    rc = rc < 0 ? -1 : emit(buf, &used, "table inet " SB_NET_SANDBOX_TABLE " {\n");
    rc = rc < 0 ? -1 : emit_set(buf, &used, "allow4", p->allow, p->allow_count);
    rc = rc < 0 ? -1 : emit_set(buf, &used, "deny4", p->deny, p->deny_count);
    rc = rc < 0 ? -1 : emit(buf, &used,
        "  set dns4 { type ipv4_addr; flags timeout; }\n"
        "  chain output { type filter hook output priority filter; policy accept;\n"
        "    oifname \"lo\" accept\n"
        "    meta nfproto ipv6 drop\n"
        "    ip daddr %s udp dport 53 accept\n"
        "    ct direction original ct state established accept\n"
        "    ct state related accept\n"
        "    ip daddr @allow4 accept\n"
        "    ip daddr @dns4 accept\n"
        "    ip daddr @deny4 drop\n  }\n}\n", g);
    if (rc == 0)
        rc = nft_run(nsfd, buf, NULL, 0, err);
    else
        sb_err_set(err, 500, "network: the sandbox's rules do not fit in %d bytes", RULES_MAX);
    free(buf);
    return rc;
}

/* /proc/sys/net/<family>/conf/<ifname>/<key> = value */
static int write_sysctl(const char *family, const char *ifname, const char *key, const char *value,
                        struct sb_err *err)
{
    char path[128];
    snprintf(path, sizeof path, "/proc/sys/net/%s/conf/%s/%s", family, ifname, key);
    if (sb_write_file(path, value) < 0)
        return sb_err_sys(err, 500, "network: writing %s to %s", value, path);
    return 0;
}

/* The sandbox's /etc/resolv.conf names the gateway's forwarder. /etc is
 * opened through /proc/<init>/root with every component resolved inside
 * that root, and the file is replaced (unlinked, then created anew), never
 * written through: whatever the template left there (a symlink into /run,
 * as systemd's stub resolver has it) cannot redirect the write. */
static int write_resolv_conf(pid_t init_pid, uint32_t gateway, uint32_t uid_base, struct sb_err *err)
{
    char root[64], gw[16], text[64];
    snprintf(root, sizeof root, "/proc/%d/root", (int)init_pid);
    sb_ipv4_format(gateway, gw, sizeof gw);
    int n = snprintf(text, sizeof text, "nameserver %s\n", gw);
    int rootfd = open(root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (rootfd < 0)
        return sb_err_sys(err, 500, "network: opening %s", root);
    struct open_how how = {.flags = O_PATH | O_DIRECTORY | O_CLOEXEC,
                           .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS | RESOLVE_NO_XDEV};
    int etc = (int)syscall(SYS_openat2, rootfd, "etc", &how, sizeof how);
    close(rootfd);
    if (etc < 0)
        return sb_err_sys(err, 500, "network: opening the sandbox's /etc");
    int fd = -1, rc = 0;
    if (unlinkat(etc, "resolv.conf", 0) < 0 && errno != ENOENT)
        rc = sb_err_sys(err, 500, "network: replacing the sandbox's /etc/resolv.conf");
    else if ((fd = openat(etc, "resolv.conf", O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0644)) < 0)
        rc = sb_err_sys(err, 500, "network: creating the sandbox's /etc/resolv.conf");
    else if (write(fd, text, (size_t)n) != n)
        rc = sb_err_sys(err, 500, "network: writing the sandbox's /etc/resolv.conf");
    else if (fchown(fd, uid_base, uid_base) < 0)   /* sandbox root's, as the rest of /etc */
        rc = sb_err_sys(err, 500, "network: chown of the sandbox's /etc/resolv.conf");
    if (fd >= 0)
        close(fd);
    close(etc);
    return rc;
}

/* The host side: veth with its peer in the sandbox, G peer S, up, forwarding. */
static int make_host_side(struct sb_network *net, int hostfd, int nsfd, const char *ifname, uint32_t addr,
                          struct sb_err *err)
{
    int index;
    const char *uplink = net->cfg->network.uplink;
    if (rtnl_veth_create(hostfd, ifname, "eth0", nsfd, err) < 0 || rtnl_link_index(hostfd, ifname, &index, err) < 0 ||
        write_sysctl("ipv6", ifname, "disable_ipv6", "1", err) < 0 ||
        write_sysctl("ipv4", ifname, "rp_filter", "1", err) < 0 ||     /* sources other than S: dropped */
        rtnl_addr_add_p2p(hostfd, index, net->gateway, addr, err) < 0 || rtnl_link_up(hostfd, index, err) < 0 ||
        write_sysctl("ipv4", ifname, "forwarding", "1", err) < 0)
        return -1;
    /* Replies come in on the uplink and are forwarded to the sandbox. */
    if (write_sysctl("ipv4", uplink, "forwarding", "1", err) < 0)
        return sb_err_prefix(err, "is network.uplink (%s) an interface of this host?", uplink);
    return 0;
}

/* Inside the sandbox: eth0 S peer G, up, default route via G. */
static int make_sandbox_side(struct sb_network *net, int nsfd, uint32_t addr, struct sb_err *err)
{
    int fd, index, rc = -1;
    if (rtnl_open_in(nsfd, &fd, err) < 0)
        return -1;
    if (rtnl_link_index(fd, "eth0", &index, err) == 0 && rtnl_addr_add_p2p(fd, index, addr, net->gateway, err) == 0 &&
        rtnl_link_up(fd, index, err) == 0 && rtnl_route_add_default(fd, index, net->gateway, err) == 0)
        rc = 0;
    close(fd);
    return rc;
}

/* Opens the network namespace of sandbox id (its PID 1's); *init_pid
 * gets that pid. 502 when its shim does not answer. */
static int open_netns(const struct sb_network *net, const char *id, pid_t *init_pid, int *nsfd, struct sb_err *err)
{
    struct sb_shim_status st;
    if (shim_status(net->cfg->run_dir, id, &st, err) < 0)
        return -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/ns/net", (int)st.init_pid);
    *nsfd = open(path, O_RDONLY | O_CLOEXEC);
    if (*nsfd < 0)
        return sb_err_sys(err, 502, "network: opening the network namespace of sandbox %s", id);
    *init_pid = st.init_pid;
    return 0;
}

static void delete_veth(const char *id, const char *ifname)
{
    struct sb_err err = {0};
    int fd;
    if (rtnl_open(&fd, &err) == 0) {
        if (rtnl_link_delete(fd, ifname, &err) < 0)
            sb_warn("network: sandbox %s: %s", id, err.msg);
        close(fd);
    }
}

int network_attach(struct sb_network *net, const char *id, const struct sb_net_policy *p, struct sb_err *err)
{
    uint32_t addr, slot;
    if (slot_of(net, p->address, &addr, &slot) < 0)
        return sb_err_set(err, 500, "network: sandbox %s has no address of the range", id);
    char ifname[16];
    veth_name(addr, ifname);
    pid_t init_pid;
    int nsfd, hostfd = -1, rc = -1;
    if (open_netns(net, id, &init_pid, &nsfd, err) < 0)
        return sb_err_prefix(err, "cannot attach the network of sandbox %s", id);
    if (rtnl_open(&hostfd, err) == 0 && make_host_side(net, hostfd, nsfd, ifname, addr, err) == 0 &&
        make_sandbox_side(net, nsfd, addr, err) == 0 && install_sandbox_rules(net, nsfd, p, 0, err) == 0 &&
        write_resolv_conf(init_pid, net->gateway, net->cfg->uid_base, err) == 0 &&
        (!net->dns || dns_forward_add(net->dns, addr, nsfd, p, err) == 0))
        rc = 0;
    if (hostfd >= 0)
        close(hostfd);
    close(nsfd);
    if (rc < 0) {
        sb_err_prefix(err, "cannot attach the network of sandbox %s", id);
        delete_veth(id, ifname);    /* the address stays reserved: the caller releases it */
    }
    return rc;
}

int network_adopt(struct sb_network *net, const char *id, const struct sb_net_policy *p, struct sb_err *err)
{
    uint32_t addr, slot;
    if (!p->address[0])
        return 0;       /* no egress: nothing to adopt */
    if (slot_of(net, p->address, &addr, &slot) < 0)
        return sb_err_set(err, 500, "network: sandbox %s has address %s, outside network.range %s (changed "
                                    "since it was created?)", id, p->address, net->cfg->network.range);
    pthread_mutex_lock(&net->lock);
    net->used[slot / 8] |= (uint8_t)(1u << (slot % 8));
    pthread_mutex_unlock(&net->lock);
    pid_t init_pid;
    int nsfd;
    if (open_netns(net, id, &init_pid, &nsfd, err) < 0)
        return -1;
    char tables[4096] = "";
    int rc = nft_run(nsfd, "list tables inet", tables, sizeof tables, err);
    int exists = rc == 0 && strstr(tables, "table inet " SB_NET_SANDBOX_TABLE "\n") != NULL;
    if (rc == 0 && !exists) {
        rc = install_sandbox_rules(net, nsfd, p, 0, err);
        if (rc == 0)
            sb_warn("network: sandbox %s had lost its rules; installed them again", id);
    }
    if (rc == 0 && net->dns)
        rc = dns_forward_add(net->dns, addr, nsfd, p, err);
    close(nsfd);
    return rc;
}

/* A sandbox that has its interface gets p's rules: the DNS registration
 * first (from then on no answer grants under old's rules), then the table
 * replaced in one transaction, then its conntrack entries flushed, so each
 * open connection is judged afresh by the new rules at its next packet (an
 * allowed one is picked up again, a forbidden one is dropped). A failing
 * table leaves old's registration and rules in place. */
static int update_attached(struct sb_network *net, const char *id, const struct sb_net_policy *old,
                           const struct sb_net_policy *p, struct sb_err *err)
{
    uint32_t addr, slot;
    if (slot_of(net, old->address, &addr, &slot) < 0)
        return sb_err_set(err, 500, "network: sandbox %s has address %s, outside network.range %s", id,
                          old->address, net->cfg->network.range);
    pid_t init_pid;
    int nsfd;
    if (open_netns(net, id, &init_pid, &nsfd, err) < 0)
        return -1;
    int rc = net->dns ? dns_forward_add(net->dns, addr, nsfd, p, err) : 0;
    if (rc == 0 && install_sandbox_rules(net, nsfd, p, 1, err) < 0) {
        struct sb_err derr = {0};
        if (net->dns && dns_forward_add(net->dns, addr, nsfd, old, &derr) < 0)
            sb_warn("network: sandbox %s: restoring its DNS registration: %s", id, derr.msg);
        rc = -1;
    }
    struct sb_err cerr = {0};
    if (rc == 0 && ctnl_flush_in(nsfd, &cerr) < 0 && cerr.sys_errno != ENOENT)
        sb_warn("network: sandbox %s: its open connections keep their old verdict: %s", id, cerr.msg);
    close(nsfd);
    return rc < 0 ? sb_err_prefix(err, "cannot update the network of sandbox %s", id) : 0;
}

int network_update(struct sb_network *net, const char *id, const struct sb_net_policy *old,
                   struct sb_net_policy *p, struct sb_err *err)
{
    if (old->address[0]) {
        snprintf(p->address, sizeof p->address, "%s", old->address);
        return update_attached(net, id, old, p, err);
    }
    p->address[0] = '\0';
    if (netpolicy_denies_all(p) && p->allow_count == 0)
        return 0;       /* nothing may go out: no interface needed */
    if (!net->cfg->network.uplink[0])
        return sb_err_set(err, 400, "this server has no egress for sandboxes (config network.uplink is not "
                                    "set): only denyOut [\"0.0.0.0/0\"] (or allow_internet_access false) "
                                    "without allowOut can be set");
    if (network_reserve(net, p, err) < 0)
        return -1;
    if (network_attach(net, id, p, err) < 0) {
        network_release(net, id, p);
        p->address[0] = '\0';
        return -1;
    }
    return 0;
}

void network_release(struct sb_network *net, const char *id, const struct sb_net_policy *p)
{
    uint32_t addr, slot;
    if (!p->address[0] || slot_of(net, p->address, &addr, &slot) < 0)
        return;
    if (net->dns)
        dns_forward_remove(net->dns, addr);     /* lets go of its namespace */
    char ifname[16];
    veth_name(addr, ifname);
    delete_veth(id, ifname);        /* its rules went with its namespace, or go with the last fd */
    /* After the veth is gone no new entry can appear. The mark rule copies
     * the address's bytes (network order) into the mark as they are, so the
     * mark's value is the address in network byte order. */
    struct sb_err err = {0};
    if (ctnl_flush_mark(htonl(addr), &err) < 0 && err.sys_errno != ENOENT)
        sb_warn("network: sandbox %s: %s", id, err.msg);
    unreserve(net, slot);
}

int network_may_attach(const struct sb_network *net, const struct sb_net_policy *requested)
{
    return net->cfg->network.uplink[0] && (!requested || requested->internet != 0);
}

int network_adopt_stored(struct sb_network *net, const char *id, const char *text, struct sb_err *err)
{
    if (!text || !*text)
        return 0;
    struct sb_net_policy *p = malloc(sizeof *p);
    if (!p)
        return sb_err_set(err, 500, "out of memory");
    int rc = netpolicy_from_text(text, p, err) < 0 ? -1 : network_adopt(net, id, p, err);
    free(p);
    return rc;
}

void network_release_stored(struct sb_network *net, const char *id, const char *text)
{
    if (!text || !*text)
        return;
    struct sb_net_policy *p = malloc(sizeof *p);
    struct sb_err err = {0};
    if (p && netpolicy_from_text(text, p, &err) == 0)
        network_release(net, id, p);
    else
        sb_warn("network: sandbox %s: cannot read its stored settings to remove them: %s", id,
                p ? err.msg : "out of memory");
    free(p);
}
