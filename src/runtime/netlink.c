/*
 * netlink.c - minimal rtnetlink and ctnetlink requests (see netlink.h).
 *
 * A request is built in one buffer: nlmsghdr, the family header, then
 * attributes appended with add_attr (nested ones opened with nest_begin and
 * closed with nest_end). transact() sends it with NLM_F_ACK and reads until
 * the acknowledgement (or the error) for its sequence number.
 */
#include "runtime/netlink.h"

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_link.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netfilter/nfnetlink_conntrack.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <net/if.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define RTNL_BUF 4096

struct nl_req {
    union {
        struct nlmsghdr hdr;
        char buf[RTNL_BUF];
    };
};

static uint32_t next_seq(void)
{
    static uint32_t seq;
    return __atomic_add_fetch(&seq, 1, __ATOMIC_RELAXED);
}

static void *tail(struct nl_req *r)
{
    return r->buf + NLMSG_ALIGN(r->hdr.nlmsg_len);
}

static void add_attr(struct nl_req *r, unsigned short type, const void *data, size_t len)
{
    struct rtattr *a = tail(r);
    a->rta_type = type;
    a->rta_len = (unsigned short)RTA_LENGTH(len);
    if (len)
        memcpy(RTA_DATA(a), data, len);
    r->hdr.nlmsg_len = NLMSG_ALIGN(r->hdr.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

static struct rtattr *nest_begin(struct nl_req *r, unsigned short type)
{
    struct rtattr *a = tail(r);
    add_attr(r, type, NULL, 0);
    return a;
}

static void nest_end(struct nl_req *r, struct rtattr *a)
{
    a->rta_len = (unsigned short)((char *)tail(r) - (char *)a);
}

static void req_init(struct nl_req *r, uint16_t type, uint16_t flags, const void *family_hdr, size_t hdr_len)
{
    memset(r, 0, sizeof *r);
    r->hdr.nlmsg_len = NLMSG_LENGTH(hdr_len);
    r->hdr.nlmsg_type = type;
    r->hdr.nlmsg_flags = (uint16_t)(NLM_F_REQUEST | NLM_F_ACK | flags);
    r->hdr.nlmsg_seq = next_seq();
    memcpy(NLMSG_DATA(&r->hdr), family_hdr, hdr_len);
}

/* Sends r; waits for its ack. With reply set (a GET), copies the first
 * answer message for r into reply before the ack. */
static int transact(int fd, struct nl_req *r, struct nl_req *reply, const char *what, struct sb_err *err)
{
    struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
    if (sendto(fd, r->buf, r->hdr.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0)
        return sb_err_sys(err, 500, "netlink: sending %s", what);
    char buf[RTNL_BUF * 2];
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return sb_err_sys(err, 500, "netlink: reading the answer to %s", what);
        for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
            if (h->nlmsg_seq != r->hdr.nlmsg_seq)
                continue;
            if (h->nlmsg_type == NLMSG_ERROR) {
                struct nlmsgerr *e = NLMSG_DATA(h);
                if (e->error == 0)
                    return 0;
                errno = -e->error;
                int status = errno == EEXIST ? 409 : errno == ENODEV ? 404 : 500;
                return sb_err_sys(err, status, "netlink: %s", what);
            }
            if (reply && h->nlmsg_len <= sizeof reply->buf)
                memcpy(reply->buf, h, h->nlmsg_len);
        }
    }
}

static int netlink_open(int protocol, int *fd_out, struct sb_err *err)
{
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, protocol);
    if (fd < 0)
        return sb_err_sys(err, 500, "netlink: socket");
    struct sockaddr_nl local = {.nl_family = AF_NETLINK};
    if (bind(fd, (struct sockaddr *)&local, sizeof local) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return sb_err_sys(err, 500, "netlink: bind");
    }
    *fd_out = fd;
    return 0;
}

int rtnl_open(int *fd_out, struct sb_err *err)
{
    return netlink_open(NETLINK_ROUTE, fd_out, err);
}

struct open_in_job {
    int netns_fd;
    int protocol;
    int fd;
    struct sb_err err;
};

static void *open_in_thread(void *arg)
{
    struct open_in_job *job = arg;
    if (setns(job->netns_fd, CLONE_NEWNET) < 0)
        sb_err_sys(&job->err, 500, "netlink: joining the sandbox's network namespace");
    else
        netlink_open(job->protocol, &job->fd, &job->err);
    return NULL;    /* the thread, and its namespace, end here */
}

/* A netlink socket of protocol bound to namespace netns_fd (rtnl_open_in). */
static int netlink_open_in(int netns_fd, int protocol, int *fd_out, struct sb_err *err)
{
    struct open_in_job job = {.netns_fd = netns_fd, .protocol = protocol, .fd = -1};
    pthread_t t;
    int rc = pthread_create(&t, NULL, open_in_thread, &job);
    if (rc != 0) {
        errno = rc;
        return sb_err_sys(err, 500, "netlink: starting a thread");
    }
    pthread_join(t, NULL);
    if (job.fd < 0) {
        *err = job.err;
        return -1;
    }
    *fd_out = job.fd;
    return 0;
}

int rtnl_open_in(int netns_fd, int *fd_out, struct sb_err *err)
{
    return netlink_open_in(netns_fd, NETLINK_ROUTE, fd_out, err);
}

int rtnl_veth_create(int fd, const char *host_name, const char *peer_name, int peer_netns_fd, struct sb_err *err)
{
    struct nl_req r;
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
    req_init(&r, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL, &ifi, sizeof ifi);
    add_attr(&r, IFLA_IFNAME, host_name, strlen(host_name) + 1);
    struct rtattr *info = nest_begin(&r, IFLA_LINKINFO);
    add_attr(&r, IFLA_INFO_KIND, "veth", 4);
    struct rtattr *data = nest_begin(&r, IFLA_INFO_DATA);
    struct rtattr *peer = nest_begin(&r, VETH_INFO_PEER);
    /* The peer's attributes follow its own ifinfomsg. */
    struct ifinfomsg *pifi = tail(&r);
    memset(pifi, 0, sizeof *pifi);
    pifi->ifi_family = AF_UNSPEC;
    r.hdr.nlmsg_len = NLMSG_ALIGN(r.hdr.nlmsg_len) + (uint32_t)NLMSG_ALIGN(sizeof *pifi);
    add_attr(&r, IFLA_IFNAME, peer_name, strlen(peer_name) + 1);
    uint32_t nsfd = (uint32_t)peer_netns_fd;
    add_attr(&r, IFLA_NET_NS_FD, &nsfd, sizeof nsfd);
    nest_end(&r, peer);
    nest_end(&r, data);
    nest_end(&r, info);
    char what[64];
    snprintf(what, sizeof what, "creating veth %s", host_name);
    return transact(fd, &r, NULL, what, err);
}

int rtnl_link_index(int fd, const char *name, int *index, struct sb_err *err)
{
    struct nl_req r, reply;
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
    req_init(&r, RTM_GETLINK, 0, &ifi, sizeof ifi);
    add_attr(&r, IFLA_IFNAME, name, strlen(name) + 1);
    memset(&reply, 0, sizeof reply);
    char what[64];
    snprintf(what, sizeof what, "looking up link %s", name);
    if (transact(fd, &r, &reply, what, err) < 0)
        return -1;
    if (reply.hdr.nlmsg_type != RTM_NEWLINK)
        return sb_err_set(err, 404, "netlink: no link %s", name);
    *index = ((struct ifinfomsg *)NLMSG_DATA(&reply.hdr))->ifi_index;
    return 0;
}

int rtnl_link_up(int fd, int index, struct sb_err *err)
{
    struct nl_req r;
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC, .ifi_index = index, .ifi_flags = IFF_UP, .ifi_change = IFF_UP};
    req_init(&r, RTM_NEWLINK, 0, &ifi, sizeof ifi);
    return transact(fd, &r, NULL, "setting a link up", err);
}

int rtnl_addr_add_p2p(int fd, int index, uint32_t local, uint32_t peer, struct sb_err *err)
{
    struct nl_req r;
    struct ifaddrmsg ifa = {.ifa_family = AF_INET, .ifa_prefixlen = 32, .ifa_index = (unsigned)index,
                            .ifa_scope = RT_SCOPE_UNIVERSE};
    req_init(&r, RTM_NEWADDR, NLM_F_CREATE | NLM_F_EXCL, &ifa, sizeof ifa);
    uint32_t l = htonl(local), p = htonl(peer);
    add_attr(&r, IFA_LOCAL, &l, 4);
    add_attr(&r, IFA_ADDRESS, &p, 4);
    return transact(fd, &r, NULL, "adding an address", err);
}

int rtnl_route_add_default(int fd, int index, uint32_t gateway, struct sb_err *err)
{
    struct nl_req r;
    struct rtmsg rt = {.rtm_family = AF_INET, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_STATIC,
                       .rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST};
    req_init(&r, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, &rt, sizeof rt);
    uint32_t gw = htonl(gateway), oif = (uint32_t)index;
    add_attr(&r, RTA_GATEWAY, &gw, 4);
    add_attr(&r, RTA_OIF, &oif, 4);
    return transact(fd, &r, NULL, "adding the default route", err);
}

int rtnl_link_delete(int fd, const char *name, struct sb_err *err)
{
    struct nl_req r;
    struct ifinfomsg ifi = {.ifi_family = AF_UNSPEC};
    req_init(&r, RTM_DELLINK, 0, &ifi, sizeof ifi);
    add_attr(&r, IFLA_IFNAME, name, strlen(name) + 1);
    struct sb_err derr = {0};
    char what[64];
    snprintf(what, sizeof what, "deleting link %s", name);
    if (transact(fd, &r, NULL, what, &derr) == 0 || derr.sys_errno == ENODEV)
        return 0;
    *err = derr;
    return -1;
}

int ctnl_flush_mark(uint32_t mark, struct sb_err *err)
{
    int fd;
    if (netlink_open(NETLINK_NETFILTER, &fd, err) < 0)
        return -1;
    struct nl_req r;
    struct nfgenmsg nfg = {.nfgen_family = AF_INET, .version = NFNETLINK_V0};
    /* No tuple: the kernel deletes every entry the mark filter matches. */
    req_init(&r, (uint16_t)(NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE), 0, &nfg, sizeof nfg);
    uint32_t m = htonl(mark), all = 0xffffffffu;
    add_attr(&r, CTA_MARK, &m, 4);
    add_attr(&r, CTA_MARK_MASK, &all, 4);
    int rc = transact(fd, &r, NULL, "flushing conntrack entries", err);
    close(fd);
    return rc;
}

int ctnl_flush_in(int netns_fd, struct sb_err *err)
{
    int fd;
    if (netlink_open_in(netns_fd, NETLINK_NETFILTER, &fd, err) < 0)
        return -1;
    struct nl_req r;
    struct nfgenmsg nfg = {.nfgen_family = AF_INET, .version = NFNETLINK_V0};
    /* No tuple and no filter: every IPv4 entry of the namespace. */
    req_init(&r, (uint16_t)(NFNL_SUBSYS_CTNETLINK << 8 | IPCTNL_MSG_CT_DELETE), 0, &nfg, sizeof nfg);
    int rc = transact(fd, &r, NULL, "flushing the sandbox's conntrack entries", err);
    close(fd);
    return rc;
}
