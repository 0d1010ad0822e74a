/*
 * netpolicy.c - parsing, resolving and storing sandbox egress policies
 * (see netpolicy.h). Every refusal names the entry that caused it.
 */
#include "runtime/netpolicy.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

/* A DNS name: labels of [a-z0-9-] (1-63, no leading or trailing '-'),
 * at most 253 characters, the last label not all digits (so a mistyped IP
 * is never taken for a name). Lower-cases into out; 0 or -1. */
static int parse_name(const char *text, char out[SB_NET_NAME_MAX])
{
    size_t len = strlen(text);
    if (len > 0 && text[len - 1] == '.')
        len--;
    if (len == 0 || len > 253)
        return -1;
    size_t label = 0;
    int last_all_digits = 1;
    for (size_t i = 0; i <= len; i++) {
        char c = i < len ? (char)tolower((unsigned char)text[i]) : '.';
        if (c == '.') {
            if (label == 0 || label > 63 || out[i - 1] == '-')
                return -1;
            label = 0;
            if (i < len) {
                out[i] = '.';
                last_all_digits = 1;
            }
            continue;
        }
        if (!(isalnum((unsigned char)c) || c == '-') || (label == 0 && c == '-'))
            return -1;
        if (!isdigit((unsigned char)c))
            last_all_digits = 0;
        out[i] = c;
        label++;
    }
    out[len] = '\0';
    return last_all_digits ? -1 : 0;
}

static int parse_rule(const char *text, int names_ok, struct sb_net_rule *rule)
{
    memset(rule, 0, sizeof *rule);
    if (sb_cidr_parse(text, &rule->cidr) == 0) {
        rule->kind = SB_NET_RULE_CIDR;
        return 0;
    }
    if (!names_ok)
        return -1;
    if (strncmp(text, "*.", 2) == 0) {
        rule->kind = SB_NET_RULE_WILDCARD;
        return parse_name(text + 2, rule->name);
    }
    rule->kind = SB_NET_RULE_DOMAIN;
    return parse_name(text, rule->name);
}

static int parse_rules(json_t *arr, const char *field, int names_ok, struct sb_net_rule *rules, int *count,
                       struct sb_err *err)
{
    *count = 0;
    if (!arr)
        return 0;
    if (!json_is_array(arr))
        return sb_err_set(err, 400, "invalid field network.%s: must be an array of strings", field);
    if (json_array_size(arr) > SB_NET_MAX_RULES)
        return sb_err_set(err, 400, "invalid field network.%s: at most %d entries", field, SB_NET_MAX_RULES);
    size_t i;
    json_t *item;
    json_array_foreach(arr, i, item) {
        if (!json_is_string(item))
            return sb_err_set(err, 400, "invalid network.%s[%zu]: must be a string", field, i);
        const char *text = json_string_value(item);
        if (strlen(text) != json_string_length(item) || parse_rule(text, names_ok, &rules[*count]) < 0)
            return sb_err_set(err, 400, "invalid network.%s entry \"%.100s\": %s", field, text,
                              names_ok ? "not an IP, a CIDR (host bits zero), a domain name or *.domain"
                                       : "not an IP or a CIDR (host bits zero); names belong in allowOut");
        /* Sandboxes have no IPv6 egress: such an allow could never match
         * (a deny is always true, so it is taken). */
        if (names_ok && rules[*count].kind == SB_NET_RULE_CIDR && rules[*count].cidr.family == AF_INET6)
            return sb_err_set(err, 400, "invalid network.%s entry \"%.100s\": sandboxes have no IPv6 egress, "
                                        "so an IPv6 allow can never match", field, text);
        (*count)++;
    }
    return 0;
}

int netpolicy_parse(json_t *allow_internet, json_t *network, struct sb_net_policy *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    out->internet = -1;
    out->allow_public_traffic = 1;
    if (allow_internet) {
        if (!json_is_boolean(allow_internet))
            return sb_err_set(err, 400, "invalid field allow_internet_access: must be a boolean");
        out->internet = json_is_true(allow_internet);
    }
    if (!network)
        return 0;
    if (!json_is_object(network))
        return sb_err_set(err, 400, "invalid field network: must be an object");
    const char *key;
    json_t *v;
    json_object_foreach(network, key, v) {
        if (strcmp(key, "allowOut") != 0 && strcmp(key, "denyOut") != 0 &&
            strcmp(key, "allowPublicTraffic") != 0)
            return sb_err_set(err, 400, "unsupported field network.%.64s (supported: allowOut, denyOut, "
                                        "allowPublicTraffic)", key);
    }
    json_t *pub = json_object_get(network, "allowPublicTraffic");
    if (pub && !json_is_boolean(pub))
        return sb_err_set(err, 400, "invalid field network.allowPublicTraffic: must be a boolean");
    if (pub)
        out->allow_public_traffic = json_is_true(pub);
    if (parse_rules(json_object_get(network, "allowOut"), "allowOut", 1, out->allow, &out->allow_count, err) < 0 ||
        parse_rules(json_object_get(network, "denyOut"), "denyOut", 0, out->deny, &out->deny_count, err) < 0)
        return -1;
    if (out->internet == 0 && out->allow_count > 0)
        return sb_err_set(err, 400, "network.allowOut cannot be used with allow_internet_access false (no egress "
                                    "at all); to allow only some destinations use denyOut [\"0.0.0.0/0\"] "
                                    "with allowOut");
    return 0;
}

int netpolicy_parse_update(json_t *body, struct sb_net_policy *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    out->allow_public_traffic = 1;
    if (!json_is_object(body))
        return sb_err_set(err, 400, "the body must be a JSON object {allowOut?, denyOut?, allowInternetAccess?}");
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v) {
        if (strcmp(key, "egressProxy") == 0 || strcmp(key, "rules") == 0)
            return sb_err_set(err, 400, "%s is not supported by sandbase (docs/E2B.md)", key);
        if (strcmp(key, "allowOut") != 0 && strcmp(key, "denyOut") != 0 &&
            strcmp(key, "allowInternetAccess") != 0 && strcmp(key, "allow_internet_access") != 0)
            return sb_err_set(err, 400, "unsupported field %.64s (supported: allowOut, denyOut, "
                                        "allowInternetAccess or allow_internet_access)", key);
    }
    json_t *snake = json_object_get(body, "allow_internet_access");
    json_t *camel = json_object_get(body, "allowInternetAccess");
    if (snake && camel)
        return sb_err_set(err, 400, "give allow_internet_access or allowInternetAccess, not both");
    json_t *internet = snake ? snake : camel;
    if (internet && !json_is_boolean(internet))
        return sb_err_set(err, 400, "invalid field %s: must be a boolean", snake ? "allow_internet_access"
                                                                                 : "allowInternetAccess");
    if (parse_rules(json_object_get(body, "allowOut"), "allowOut", 1, out->allow, &out->allow_count, err) < 0 ||
        parse_rules(json_object_get(body, "denyOut"), "denyOut", 0, out->deny, &out->deny_count, err) < 0)
        return -1;
    out->internet = !json_is_false(internet);
    if (out->internet || netpolicy_denies_all(out))
        return 0;
    if (out->deny_count == SB_NET_MAX_RULES)
        return sb_err_set(err, 400, "invalid field network.denyOut: at most %d entries, and "
                                    "allow_internet_access false adds 0.0.0.0/0", SB_NET_MAX_RULES - 1);
    struct sb_net_rule *all = &out->deny[out->deny_count++];
    memset(all, 0, sizeof *all);
    all->kind = SB_NET_RULE_CIDR;
    sb_cidr_parse("0.0.0.0/0", &all->cidr);
    return 0;
}

int netpolicy_resolve(struct sb_net_policy *p, const char *template_mode, const struct sb_net_config *cfg,
                      struct sb_err *err)
{
    int asked = p->internet == 1 || p->allow_count > 0;
    if (!cfg->uplink[0]) {
        if (asked)
            return sb_err_set(err, 400, "this server has no egress for sandboxes (config network.uplink is not "
                                        "set): create without allow_internet_access/allowOut, or ask the "
                                        "operator to configure an uplink");
        p->internet = 0;
        return 0;
    }
    if (p->internet < 0 && p->allow_count > 0)
        p->internet = 1;
    if (p->internet < 0) {
        const char *mode = template_mode && *template_mode ? template_mode : cfg->default_mode;
        p->internet = strcmp(mode, "internet") == 0;
    }
    return 0;
}

static json_t *rules_json(const struct sb_net_rule *rules, int count)
{
    json_t *arr = json_array();
    for (int i = 0; arr && i < count; i++) {
        char text[SB_NET_NAME_MAX + 2];
        if (rules[i].kind == SB_NET_RULE_CIDR) {
            int single = rules[i].cidr.prefix == (rules[i].cidr.family == AF_INET ? 32 : 128);
            sb_cidr_format(&rules[i].cidr, text, sizeof text);
            if (single)
                *strrchr(text, '/') = '\0';
        } else {
            snprintf(text, sizeof text, "%s%s", rules[i].kind == SB_NET_RULE_WILDCARD ? "*." : "",
                     rules[i].name);
        }
        json_array_append_new(arr, json_string(text));
    }
    return arr;
}

char *netpolicy_to_text(const struct sb_net_policy *p)
{
    json_t *obj = json_pack("{s:b, s:o, s:o, s:b}", "allowInternetAccess", p->internet == 1, "allowOut",
                            rules_json(p->allow, p->allow_count), "denyOut", rules_json(p->deny, p->deny_count),
                            "allowPublicTraffic", p->allow_public_traffic);
    if (obj && p->address[0])
        json_object_set_new(obj, "address", json_string(p->address));
    if (obj && p->traffic_token[0])
        json_object_set_new(obj, "trafficAccessToken", json_string(p->traffic_token));
    char *text = obj ? json_dumps(obj, JSON_COMPACT) : NULL;
    json_decref(obj);
    return text;
}

/* The stored form's object into *obj (NULL for "" or NULL text); -1 with
 * err when the text is not a JSON object. */
static int stored_object(const char *text, json_t **obj, struct sb_err *err)
{
    *obj = NULL;
    if (!text || !*text)
        return 0;
    *obj = json_loads(text, 0, NULL);
    if (json_is_object(*obj))
        return 0;
    json_decref(*obj);
    *obj = NULL;
    return sb_err_set(err, 500, "stored network settings are not a JSON object");
}

int netpolicy_from_text(const char *text, struct sb_net_policy *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    out->allow_public_traffic = 1;
    json_t *obj;
    if (stored_object(text, &obj, err) < 0)
        return -1;
    if (!obj)
        return 0;
    json_t *net = json_pack("{s:O*, s:O*, s:O*}", "allowOut", json_object_get(obj, "allowOut"), "denyOut",
                            json_object_get(obj, "denyOut"), "allowPublicTraffic",
                            json_object_get(obj, "allowPublicTraffic"));
    int rc = netpolicy_parse(NULL, net, out, err);
    out->internet = json_is_true(json_object_get(obj, "allowInternetAccess"));
    const char *addr = json_string_value(json_object_get(obj, "address"));
    if (addr)
        snprintf(out->address, sizeof out->address, "%s", addr);
    const char *token = json_string_value(json_object_get(obj, "trafficAccessToken"));
    if (token)
        snprintf(out->traffic_token, sizeof out->traffic_token, "%s", token);
    json_decref(net);
    json_decref(obj);
    return rc < 0 ? sb_err_prefix(err, "stored network settings") : 0;
}

int netpolicy_traffic_from_text(const char *text, int *allowed, char *token, size_t token_len,
                                struct sb_err *err)
{
    *allowed = 1;
    token[0] = '\0';
    json_t *obj;
    if (stored_object(text, &obj, err) < 0)
        return -1;
    if (!obj)
        return 0;
    *allowed = !json_is_false(json_object_get(obj, "allowPublicTraffic"));
    const char *t = json_string_value(json_object_get(obj, "trafficAccessToken"));
    if (t)
        snprintf(token, token_len, "%s", t);
    json_decref(obj);
    return 0;
}

int netpolicy_name_allowed(const struct sb_net_policy *p, const char *name)
{
    char norm[SB_NET_NAME_MAX];
    if (parse_name(name, norm) < 0)
        return 0;
    size_t len = strlen(norm);
    for (int i = 0; i < p->allow_count; i++) {
        const struct sb_net_rule *r = &p->allow[i];
        if (r->kind == SB_NET_RULE_DOMAIN && strcmp(r->name, norm) == 0)
            return 1;
        size_t rlen = strlen(r->name);
        if (r->kind == SB_NET_RULE_WILDCARD && len > rlen + 1 && norm[len - rlen - 1] == '.' &&
            strcmp(norm + len - rlen, r->name) == 0)
            return 1;
    }
    return 0;
}

int netpolicy_denies_all(const struct sb_net_policy *p)
{
    for (int i = 0; i < p->deny_count; i++)
        if (p->deny[i].cidr.family == AF_INET && p->deny[i].cidr.prefix == 0)
            return 1;
    return 0;
}

int netpolicy_has_names(const struct sb_net_policy *p)
{
    for (int i = 0; i < p->allow_count; i++)
        if (p->allow[i].kind != SB_NET_RULE_CIDR)
            return 1;
    return 0;
}
