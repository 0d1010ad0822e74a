/*
 * netpolicy.h - a sandbox's egress policy: what a create asks for
 * (`allow_internet_access`, `network {allowOut, denyOut, allowPublicTraffic}`),
 * checked and resolved against the template and the server config, and
 * stored with the sandbox as JSON.
 *
 * Pure data and text: no sockets, no nftables (network.c applies a policy).
 * Rule order, applied by network.c: always-blocked destinations, then
 * allowOut (CIDRs, IPs, and the addresses DNS gave for allowed names), then
 * denyOut, then the default (egress on: accept; off: no interface at all).
 */
#ifndef SB_RUNTIME_NETPOLICY_H
#define SB_RUNTIME_NETPOLICY_H

#include <jansson.h>

#include "core/cidr.h"
#include "core/config.h"
#include "core/err.h"

#define SB_NET_MAX_RULES 64
#define SB_NET_NAME_MAX 254

enum sb_net_rule_kind {
    SB_NET_RULE_CIDR,       /* an IP or CIDR */
    SB_NET_RULE_DOMAIN,     /* "example.com": that name only */
    SB_NET_RULE_WILDCARD,   /* "*.example.com": names below example.com, not itself */
};

struct sb_net_rule {
    enum sb_net_rule_kind kind;
    struct sb_cidr cidr;            /* CIDR rules */
    char name[SB_NET_NAME_MAX];     /* lower case, no trailing dot; without "*." for wildcards */
};

/* Plain data (no pointers): copy it freely. */
struct sb_net_policy {
    int internet;                   /* 1 egress, 0 none, -1 not said (resolve decides) */
    int allow_public_traffic;       /* stored and shown; 1 unless the create said false */
    int allow_count, deny_count;
    struct sb_net_rule allow[SB_NET_MAX_RULES];
    struct sb_net_rule deny[SB_NET_MAX_RULES];
    char address[16];               /* the sandbox's IPv4 address once attached, else "" */
    char traffic_token[64];         /* allowPublicTraffic false: what the port proxy asks for
                                       (e2b-traffic-access-token), set at create; else "" */
};

/* From a create body's fields (either may be NULL: not given). 400 naming
 * the bad entry or field; allowOut together with allow_internet_access
 * false is a 400 (false means no egress at all). */
int netpolicy_parse(json_t *allow_internet, json_t *network, struct sb_net_policy *out, struct sb_err *err);
/* An update of a sandbox's rules (PUT /sandboxes/:id/network): body
 * {allowOut?, denyOut?, allowInternetAccess? (or allow_internet_access)},
 * which replaces the rules whole: what is left out is cleared, so {} opens
 * everything. allowInternetAccess false is denyOut 0.0.0.0/0 added to the
 * given rules (allowOut still wins over it), as E2B has it; out->internet
 * is that flag (1 unless false). 400 naming the bad entry or field;
 * egressProxy and rules (E2B's) are 400s too. address and traffic_token
 * are left empty for the caller (they are the sandbox's, not the update's). */
int netpolicy_parse_update(json_t *body, struct sb_net_policy *out, struct sb_err *err);
/* Settles `internet`: the create's word, else the template's mode
 * (template_mode "" = none given), else cfg->default_mode. With no uplink
 * configured egress is off; a create that asked for it explicitly gets a
 * 400 saying the server has no egress. */
int netpolicy_resolve(struct sb_net_policy *p, const char *template_mode, const struct sb_net_config *cfg,
                      struct sb_err *err);
/* Stored form: {"allowInternetAccess", "allowOut", "denyOut",
 * "allowPublicTraffic", "address"?, "trafficAccessToken"?}. Caller frees; NULL when out of memory. */
char *netpolicy_to_text(const struct sb_net_policy *p);
/* Reads the stored form back; "" or NULL is a policy with egress off. */
int netpolicy_from_text(const char *text, struct sb_net_policy *out, struct sb_err *err);
/* From the stored form, only what the port proxy asks on every request:
 * whether public traffic is allowed (*allowed, 1 when text is "" or says
 * nothing) and the traffic token (into token, "" when none). -1 with err
 * when the text is not a JSON object. */
int netpolicy_traffic_from_text(const char *text, int *allowed, char *token, size_t token_len,
                                struct sb_err *err);
/* 1 when name (any case, trailing dot allowed) matches a domain rule of allowOut. */
int netpolicy_name_allowed(const struct sb_net_policy *p, const char *name);
/* 1 when denyOut holds 0.0.0.0/0: the sandbox may reach only what allowOut names
 * (its DNS then answers only allowed names, so DNS cannot carry data out). */
int netpolicy_denies_all(const struct sb_net_policy *p);
/* 1 when any allowOut rule is a name. */
int netpolicy_has_names(const struct sb_net_policy *p);

#endif
