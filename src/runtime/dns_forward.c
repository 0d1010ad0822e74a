/*
 * dns_forward.c - the sandboxes' DNS forwarder (see dns_forward.h).
 *
 * One thread: poll on the listening socket (G:53), the upstream socket and
 * a stop eventfd. A query from a registered sandbox is either refused at
 * once or sent upstream under a fresh random id, remembered in `pending`
 * (fixed size; entries older than PENDING_TIMEOUT_MS are reused). An
 * upstream answer is accepted only from the upstream's address with an id
 * we sent; its A records are added to the sandbox's nftables set when the
 * name is allowed, then it goes back to the sandbox with the original id.
 * Only the question is parsed from the sandbox's bytes, with bounds checked
 * at each step; nothing from a packet is ever put into nftables syntax but
 * the 4 bytes of an A record's address, formatted by inet_ntop.
 */
#include "runtime/dns_forward.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "core/cidr.h"
#include "core/log.h"
#include "runtime/nft.h"

#define DNS_MAX_PACKET 4096
#define PENDING_MAX 256
#define PENDING_TIMEOUT_MS 5000
#define MIN_GRANT_S 300
#define MAX_GRANT_S 3600
#define RCODE_REFUSED 5

struct client {
    uint32_t ip;
    int netns_fd;                   /* owned: the sandbox's network namespace */
    struct sb_net_policy *policy;   /* owned */
    uint64_t generation;            /* which registration: a query asked under an older one grants nothing */
};

struct pending {
    int used;
    uint16_t our_id, their_id;
    struct sockaddr_in from;
    int grant;                      /* add the answer's addresses to the client's set */
    uint32_t client_ip;
    uint64_t generation;            /* the client's registration when it asked */
    int64_t sent_ms;
};

struct sb_dns_forward {
    int listen_fd, upstream_fd, stop_fd;
    struct sockaddr_in upstream;
    pthread_t thread;
    pthread_mutex_t lock;           /* guards clients and generations; held over a grant's nft call */
    struct client *clients;
    size_t count, cap;
    uint64_t generations;           /* the last one handed out */
    struct pending pending[PENDING_MAX];   /* forwarder thread only */
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* "IP" or "IP:port", or the first IPv4 nameserver of /etc/resolv.conf. */
static int parse_upstream(const char *text, struct sockaddr_in *out, struct sb_err *err)
{
    char host[64] = "";
    memset(out, 0, sizeof *out);
    out->sin_family = AF_INET;
    out->sin_port = htons(53);
    if (text && *text) {
        snprintf(host, sizeof host, "%s", text);
        char *colon = strchr(host, ':');
        if (colon) {
            *colon = '\0';
            int port = atoi(colon + 1);
            if (port < 1 || port > 65535)
                return sb_err_set(err, 400, "config: network.dns_upstream has a bad port");
            out->sin_port = htons((uint16_t)port);
        }
    } else {
        FILE *f = fopen("/etc/resolv.conf", "r");
        char line[256];
        while (f && !host[0] && fgets(line, sizeof line, f)) {
            char addr[64];
            struct in_addr a;
            if (sscanf(line, " nameserver %63s", addr) == 1 && inet_pton(AF_INET, addr, &a) == 1)
                snprintf(host, sizeof host, "%s", addr);
        }
        if (f)
            fclose(f);
        if (!host[0])
            return sb_err_set(err, 400, "network: no IPv4 nameserver in /etc/resolv.conf; set network.dns_upstream");
    }
    if (inet_pton(AF_INET, host, &out->sin_addr) != 1)
        return sb_err_set(err, 400, "config: network.dns_upstream is not an IPv4 address: %s", host);
    return 0;
}

/* Reads the name at *off (no compression: a question's own name) into
 * name as dotted text; advances *off. 0 or -1. */
static int read_qname(const uint8_t *pkt, size_t len, size_t *off, char *name, size_t name_len)
{
    size_t o = *off, used = 0;
    for (;;) {
        if (o >= len)
            return -1;
        uint8_t l = pkt[o++];
        if (l == 0)
            break;
        if (l > 63 || o + l > len || used + l + 2 > name_len)
            return -1;
        if (used)
            name[used++] = '.';
        memcpy(name + used, pkt + o, l);
        used += l;
        o += l;
    }
    name[used] = '\0';
    if (memchr(name, '\0', used))
        return -1;
    *off = o;
    return 0;
}

/* Skips a possibly compressed name at *off. */
static int skip_name(const uint8_t *pkt, size_t len, size_t *off)
{
    size_t o = *off;
    for (;;) {
        if (o >= len)
            return -1;
        uint8_t l = pkt[o];
        if ((l & 0xc0) == 0xc0) {
            o += 2;
            break;
        }
        o++;
        if (l == 0)
            break;
        o += l;
    }
    if (o > len)
        return -1;
    *off = o;
    return 0;
}

static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

/* Runs cmds in the namespace of the sandbox at ip if it is still
 * registered as generation. The lock is held over the nft call, so a
 * dns_forward_add that replaces the registration (an updated policy) waits
 * for a grant in flight, and none of the old policy starts after it: the
 * caller then replaces the sandbox's table, dns4 included. */
static void run_for_client(struct sb_dns_forward *fwd, uint32_t ip, uint64_t generation, const char *cmds)
{
    struct sb_err err = {0};
    pthread_mutex_lock(&fwd->lock);
    for (size_t i = 0; i < fwd->count; i++)
        if (fwd->clients[i].ip == ip && fwd->clients[i].generation == generation &&
            nft_run(fwd->clients[i].netns_fd, cmds, NULL, 0, &err) < 0)
            sb_warn("dns: cannot allow the addresses of an answer: %s", err.msg);
    pthread_mutex_unlock(&fwd->lock);
}

/* Adds the A records of an answer to the dns4 set of the sandbox at ip
 * (in its own namespace), each for its TTL clamped to
 * MIN_GRANT_S..MAX_GRANT_S. The add/delete/add sequence in one batch
 * refreshes an address already present. */
static void grant_answers(struct sb_dns_forward *fwd, const uint8_t *pkt, size_t len, uint32_t ip,
                          uint64_t generation)
{
    if (len < 12)
        return;
    size_t off = 12;
    unsigned qd = get16(pkt + 4), an = get16(pkt + 6);
    for (unsigned i = 0; i < qd; i++)
        if (skip_name(pkt, len, &off) < 0 || (off += 4) > len)
            return;
    char cmds[8192];
    size_t used = 0;
    for (unsigned i = 0; i < an && i < 64; i++) {
        if (skip_name(pkt, len, &off) < 0 || off + 10 > len)
            break;
        uint16_t type = get16(pkt + off), cls = get16(pkt + off + 2), rdlen = get16(pkt + off + 8);
        uint32_t ttl = (uint32_t)get16(pkt + off + 4) << 16 | get16(pkt + off + 6);
        off += 10;
        if (off + rdlen > len)
            break;
        if (type == 1 && cls == 1 && rdlen == 4) {
            char addr[INET_ADDRSTRLEN];
            inet_ntop(AF_INET, pkt + off, addr, sizeof addr);
            unsigned grant = ttl < MIN_GRANT_S ? MIN_GRANT_S : ttl > MAX_GRANT_S ? MAX_GRANT_S : ttl;
            int n = snprintf(cmds + used, sizeof cmds - used,
                             "add element inet " SB_NET_SANDBOX_TABLE " dns4 { %s timeout %us }\n"
                             "delete element inet " SB_NET_SANDBOX_TABLE " dns4 { %s }\n"
                             "add element inet " SB_NET_SANDBOX_TABLE " dns4 { %s timeout %us }\n",
                             addr, grant, addr, addr, grant);
            if (n < 0 || (size_t)n >= sizeof cmds - used)
                break;
            used += (size_t)n;
        }
        off += rdlen;
    }
    if (used)
        run_for_client(fwd, ip, generation, cmds);
}

/* The query turned into a REFUSED answer, sent back at once. */
static void refuse(struct sb_dns_forward *fwd, uint8_t *pkt, size_t qend, const struct sockaddr_in *from)
{
    pkt[2] = (uint8_t)(0x80 | (pkt[2] & 0x79));         /* QR, keep opcode and RD */
    pkt[3] = (uint8_t)(0x80 | RCODE_REFUSED);           /* RA */
    memset(pkt + 6, 0, 6);                              /* no answer, authority, additional */
    sendto(fwd->listen_fd, pkt, qend, 0, (const struct sockaddr *)from, sizeof *from);
}

static void on_query(struct sb_dns_forward *fwd)
{
    uint8_t pkt[DNS_MAX_PACKET];
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    ssize_t n = recvfrom(fwd->listen_fd, pkt, sizeof pkt, 0, (struct sockaddr *)&from, &flen);
    if (n < 12 || (pkt[2] & 0x80) || get16(pkt + 4) != 1)
        return;                     /* not a plain query of one question */
    size_t off = 12;
    char name[256];
    if (read_qname(pkt, (size_t)n, &off, name, sizeof name) < 0 || off + 4 > (size_t)n)
        return;
    off += 4;
    uint32_t ip = ntohl(from.sin_addr.s_addr);
    int known = 0, grant = 0, refused = 0;
    uint64_t generation = 0;
    pthread_mutex_lock(&fwd->lock);
    for (size_t i = 0; i < fwd->count && !known; i++) {
        if (fwd->clients[i].ip != ip)
            continue;
        known = 1;
        generation = fwd->clients[i].generation;
        grant = netpolicy_name_allowed(fwd->clients[i].policy, name);
        refused = !grant && netpolicy_denies_all(fwd->clients[i].policy);
    }
    pthread_mutex_unlock(&fwd->lock);
    if (!known)
        return;                     /* only sandboxes with egress ask here */
    if (refused) {
        refuse(fwd, pkt, off, &from);
        return;
    }
    int64_t now = now_ms();
    struct pending *slot = NULL;
    for (int i = 0; i < PENDING_MAX && !slot; i++)
        if (!fwd->pending[i].used || now - fwd->pending[i].sent_ms > PENDING_TIMEOUT_MS)
            slot = &fwd->pending[i];
    if (!slot)
        return;                     /* overloaded: the client retries */
    uint16_t id;
    int taken = 1;
    for (int tries = 0; taken && tries < 8; tries++) {     /* an id no live query uses */
        if (getrandom(&id, sizeof id, 0) != sizeof id)
            return;
        taken = 0;
        for (int i = 0; i < PENDING_MAX && !taken; i++)
            taken = fwd->pending[i].used && now - fwd->pending[i].sent_ms <= PENDING_TIMEOUT_MS &&
                    fwd->pending[i].our_id == id;
    }
    if (taken)
        return;
    *slot = (struct pending){.used = 1, .our_id = id, .their_id = get16(pkt), .from = from, .grant = grant,
                             .client_ip = ip, .generation = generation, .sent_ms = now};
    pkt[0] = (uint8_t)(id >> 8);
    pkt[1] = (uint8_t)id;
    sendto(fwd->upstream_fd, pkt, (size_t)n, 0, (struct sockaddr *)&fwd->upstream, sizeof fwd->upstream);
}

static void on_answer(struct sb_dns_forward *fwd)
{
    uint8_t pkt[DNS_MAX_PACKET];
    struct sockaddr_in from;
    socklen_t flen = sizeof from;
    ssize_t n = recvfrom(fwd->upstream_fd, pkt, sizeof pkt, 0, (struct sockaddr *)&from, &flen);
    if (n < 12 || from.sin_addr.s_addr != fwd->upstream.sin_addr.s_addr || from.sin_port != fwd->upstream.sin_port)
        return;
    uint16_t id = get16(pkt);
    for (int i = 0; i < PENDING_MAX; i++) {
        struct pending *p = &fwd->pending[i];
        if (!p->used || p->our_id != id)
            continue;
        p->used = 0;
        if (p->grant)
            grant_answers(fwd, pkt, (size_t)n, p->client_ip, p->generation);
        pkt[0] = (uint8_t)(p->their_id >> 8);
        pkt[1] = (uint8_t)p->their_id;
        sendto(fwd->listen_fd, pkt, (size_t)n, 0, (struct sockaddr *)&p->from, sizeof p->from);
        return;
    }
}

static void *forward_thread(void *arg)
{
    struct sb_dns_forward *fwd = arg;
    struct pollfd fds[3] = {{.fd = fwd->listen_fd, .events = POLLIN},
                            {.fd = fwd->upstream_fd, .events = POLLIN},
                            {.fd = fwd->stop_fd, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 3, -1) < 0 && errno != EINTR)
            break;
        if (fds[2].revents)
            break;
        if (fds[0].revents & POLLIN)
            on_query(fwd);
        if (fds[1].revents & POLLIN)
            on_answer(fwd);
    }
    return NULL;
}

struct sb_dns_forward *dns_forward_start(uint32_t listen_ip, const char *upstream, struct sb_err *err)
{
    struct sb_dns_forward *fwd = calloc(1, sizeof *fwd);
    if (!fwd) {
        sb_err_set(err, 500, "out of memory");
        return NULL;
    }
    fwd->listen_fd = fwd->upstream_fd = fwd->stop_fd = -1;
    pthread_mutex_init(&fwd->lock, NULL);
    if (parse_upstream(upstream, &fwd->upstream, err) < 0)
        goto fail;
    fwd->listen_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    fwd->upstream_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    fwd->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (fwd->listen_fd < 0 || fwd->upstream_fd < 0 || fwd->stop_fd < 0) {
        sb_err_sys(err, 500, "dns: sockets");
        goto fail;
    }
    int one = 1;
    setsockopt(fwd->listen_fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof one);
    struct sockaddr_in addr = {.sin_family = AF_INET, .sin_port = htons(53), .sin_addr.s_addr = htonl(listen_ip)};
    if (bind(fwd->listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        char ip[16];
        sb_ipv4_format(listen_ip, ip, sizeof ip);
        sb_err_sys(err, 500, "dns: cannot listen on %s:53 (another server using the same network.range?)", ip);
        goto fail;
    }
    int rc = pthread_create(&fwd->thread, NULL, forward_thread, fwd);
    if (rc != 0) {
        errno = rc;
        sb_err_sys(err, 500, "dns: starting the forwarder thread");
        goto fail;
    }
    return fwd;
fail:
    if (fwd->listen_fd >= 0)
        close(fwd->listen_fd);
    if (fwd->upstream_fd >= 0)
        close(fwd->upstream_fd);
    if (fwd->stop_fd >= 0)
        close(fwd->stop_fd);
    pthread_mutex_destroy(&fwd->lock);
    free(fwd);
    return NULL;
}

void dns_forward_stop(struct sb_dns_forward *fwd)
{
    if (!fwd)
        return;
    uint64_t one = 1;
    if (write(fwd->stop_fd, &one, sizeof one) == sizeof one)
        pthread_join(fwd->thread, NULL);
    close(fwd->listen_fd);
    close(fwd->upstream_fd);
    close(fwd->stop_fd);
    for (size_t i = 0; i < fwd->count; i++) {
        close(fwd->clients[i].netns_fd);
        free(fwd->clients[i].policy);
    }
    free(fwd->clients);
    pthread_mutex_destroy(&fwd->lock);
    free(fwd);
}

int dns_forward_add(struct sb_dns_forward *fwd, uint32_t sandbox_ip, int netns_fd,
                    const struct sb_net_policy *p, struct sb_err *err)
{
    struct sb_net_policy *copy = malloc(sizeof *copy);
    if (!copy)
        return sb_err_set(err, 500, "out of memory");
    *copy = *p;
    int fd = fcntl(netns_fd, F_DUPFD_CLOEXEC, 0);
    if (fd < 0) {
        free(copy);
        return sb_err_sys(err, 500, "dns: keeping the sandbox's namespace");
    }
    pthread_mutex_lock(&fwd->lock);
    for (size_t i = 0; i < fwd->count; i++) {
        if (fwd->clients[i].ip != sandbox_ip)
            continue;
        /* Replaced in place: no moment when the sandbox's queries go unanswered. */
        close(fwd->clients[i].netns_fd);
        free(fwd->clients[i].policy);
        fwd->clients[i].netns_fd = fd;
        fwd->clients[i].policy = copy;
        fwd->clients[i].generation = ++fwd->generations;
        pthread_mutex_unlock(&fwd->lock);
        return 0;
    }
    if (fwd->count == fwd->cap) {
        size_t cap = fwd->cap ? fwd->cap * 2 : 16;
        struct client *grown = realloc(fwd->clients, cap * sizeof *grown);
        if (!grown) {
            pthread_mutex_unlock(&fwd->lock);
            close(fd);
            free(copy);
            return sb_err_set(err, 500, "out of memory");
        }
        fwd->clients = grown;
        fwd->cap = cap;
    }
    struct client *c = &fwd->clients[fwd->count++];
    c->ip = sandbox_ip;
    c->netns_fd = fd;
    c->policy = copy;
    c->generation = ++fwd->generations;
    pthread_mutex_unlock(&fwd->lock);
    return 0;
}

void dns_forward_remove(struct sb_dns_forward *fwd, uint32_t sandbox_ip)
{
    pthread_mutex_lock(&fwd->lock);
    for (size_t i = 0; i < fwd->count; i++) {
        if (fwd->clients[i].ip != sandbox_ip)
            continue;
        close(fwd->clients[i].netns_fd);
        free(fwd->clients[i].policy);
        fwd->clients[i] = fwd->clients[--fwd->count];
        break;
    }
    pthread_mutex_unlock(&fwd->lock);
}
