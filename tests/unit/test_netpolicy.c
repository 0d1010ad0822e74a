/*
 * test_netpolicy.c - egress policies (runtime/netpolicy.c) and the CIDR
 * parser under them (core/cidr.c): what a create may say, the 400 that
 * names a bad entry, how the template and config settle egress, name
 * matching for allowOut domains, and the stored form's round trip.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "core/cidr.h"
#include "runtime/netpolicy.h"

static void test_cidr_parse(void **state)
{
    (void)state;
    struct sb_cidr c;
    char text[64];
    assert_int_equal(sb_cidr_parse("10.0.0.0/8", &c), 0);
    assert_int_equal(c.family, AF_INET);
    assert_int_equal(c.prefix, 8);
    assert_int_equal(sb_cidr_v4(&c), 0x0a000000u);
    assert_int_equal(sb_cidr_parse("192.0.2.7", &c), 0);
    assert_int_equal(c.prefix, 32);
    sb_cidr_format(&c, text, sizeof text);
    assert_string_equal(text, "192.0.2.7/32");
    assert_int_equal(sb_cidr_parse("fc00::/7", &c), 0);
    assert_int_equal(c.family, AF_INET6);
    assert_int_equal(sb_cidr_parse("0.0.0.0/0", &c), 0);
    const char *bad[] = {"", "10.0.0.1/8", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8x",
                         "256.0.0.0", "example.com", "fc00::1/7", "10.0.0.0/ 8", "1.2.3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (sb_cidr_parse(bad[i], &c) == 0)
            fail_msg("accepted \"%s\"", bad[i]);
}

static void test_cidr_contains(void **state)
{
    (void)state;
    struct sb_cidr outer, inner;
    sb_cidr_parse("10.0.0.0/8", &outer);
    sb_cidr_parse("10.1.2.0/24", &inner);
    assert_true(sb_cidr_contains(&outer, &inner));
    assert_false(sb_cidr_contains(&inner, &outer));
    sb_cidr_parse("11.0.0.0/24", &inner);
    assert_false(sb_cidr_contains(&outer, &inner));
}

/* Parses a create body's allow_internet_access and network from JSON text. */
static int parse(const char *body, struct sb_net_policy *p, struct sb_err *err)
{
    json_t *obj = json_loads(body, JSON_ALLOW_NUL, NULL);
    assert_non_null(obj);
    int rc = netpolicy_parse(json_object_get(obj, "allow_internet_access"), json_object_get(obj, "network"), p, err);
    json_decref(obj);
    return rc;
}

static void expect_bad(const char *body, const char *needle)
{
    struct sb_net_policy *p = malloc(sizeof *p);
    struct sb_err err = {0};
    if (parse(body, p, &err) == 0)
        fail_msg("accepted %s", body);
    assert_int_equal(err.status, 400);
    if (!strstr(err.msg, needle))
        fail_msg("error for %s is '%s', expected it to name '%s'", body, err.msg, needle);
    free(p);
}

static void test_parse_good(void **state)
{
    (void)state;
    struct sb_net_policy *p = malloc(sizeof *p);
    struct sb_err err = {0};
    assert_int_equal(parse("{}", p, &err), 0);
    assert_int_equal(p->internet, -1);
    assert_int_equal(p->allow_public_traffic, 1);
    assert_int_equal(parse("{\"allow_internet_access\": false, \"network\": {\"denyOut\": [\"0.0.0.0/0\"], "
                           "\"allowPublicTraffic\": false}}", p, &err), 0);
    assert_int_equal(p->internet, 0);
    assert_int_equal(p->deny_count, 1);
    assert_int_equal(p->allow_public_traffic, 0);
    assert_int_equal(parse("{\"network\": {\"allowOut\": [\"PyPI.org.\", \"*.Example.com\", \"1.2.3.4\", "
                           "\"10.0.0.0/8\"], \"denyOut\": [\"2001:db8::/32\", \"::/0\"]}}", p, &err), 0);
    assert_int_equal(p->allow_count, 4);
    assert_int_equal(p->deny_count, 2);
    assert_int_equal(p->allow[0].kind, SB_NET_RULE_DOMAIN);
    assert_string_equal(p->allow[0].name, "pypi.org");
    assert_int_equal(p->allow[1].kind, SB_NET_RULE_WILDCARD);
    assert_string_equal(p->allow[1].name, "example.com");
    assert_int_equal(p->allow[2].kind, SB_NET_RULE_CIDR);
    assert_true(netpolicy_has_names(p));
    assert_false(netpolicy_denies_all(p));
    free(p);
}

static void test_parse_bad_names_the_entry(void **state)
{
    (void)state;
    expect_bad("{\"network\": {\"denyOut\": [\"nope\"]}}", "\"nope\"");
    expect_bad("{\"network\": {\"denyOut\": [\"example.com\"]}}", "names belong in allowOut");
    expect_bad("{\"network\": {\"allowOut\": [\"10.0.0.1/8\"]}}", "\"10.0.0.1/8\"");
    expect_bad("{\"network\": {\"allowOut\": [\"a..b\"]}}", "\"a..b\"");
    expect_bad("{\"network\": {\"allowOut\": [\"-a.com\"]}}", "\"-a.com\"");
    expect_bad("{\"network\": {\"allowOut\": [\"a-.com\"]}}", "\"a-.com\"");
    expect_bad("{\"network\": {\"allowOut\": [\"*.\"]}}", "\"*.\"");
    expect_bad("{\"network\": {\"allowOut\": [\"a.*.com\"]}}", "\"a.*.com\"");
    expect_bad("{\"network\": {\"allowOut\": [\"1.2.3.400\"]}}", "\"1.2.3.400\"");
    expect_bad("{\"network\": {\"allowOut\": [\"a b.com\"]}}", "\"a b.com\"");
    expect_bad("{\"network\": {\"allowOut\": [\"a\\u0000b.com\"]}}", "allowOut");
    expect_bad("{\"network\": {\"allowOut\": [7]}}", "allowOut[0]");
    expect_bad("{\"network\": {\"allowOut\": [\"2001:db8::1\"]}}", "no IPv6 egress");
    expect_bad("{\"network\": {\"allowOut\": \"x\"}}", "network.allowOut");
    expect_bad("{\"network\": {\"rules\": {}}}", "network.rules");
    expect_bad("{\"network\": {\"allowPublicTraffic\": 1}}", "allowPublicTraffic");
    expect_bad("{\"network\": 3}", "network");
    expect_bad("{\"allow_internet_access\": \"yes\"}", "allow_internet_access");
    expect_bad("{\"allow_internet_access\": false, \"network\": {\"allowOut\": [\"1.2.3.4\"]}}", "allowOut");
    char big[4096] = "{\"network\": {\"denyOut\": [";
    for (int i = 0; i <= SB_NET_MAX_RULES; i++)
        strcat(big, i ? ",\"1.1.1.1\"" : "\"1.1.1.1\"");
    strcat(big, "]}}");
    expect_bad(big, "at most 64");
}

static void test_resolve(void **state)
{
    (void)state;
    struct sb_net_config cfg = {.default_mode = "internet", .range = "10.200.0.0/16"};
    struct sb_net_policy *p = malloc(sizeof *p);
    struct sb_err err = {0};
    /* no uplink: nothing asked = off; asked = a 400 that says why */
    parse("{}", p, &err);
    assert_int_equal(netpolicy_resolve(p, "", &cfg, &err), 0);
    assert_int_equal(p->internet, 0);
    parse("{\"allow_internet_access\": true}", p, &err);
    assert_int_equal(netpolicy_resolve(p, "", &cfg, &err), -1);
    assert_non_null(strstr(err.msg, "network.uplink"));
    parse("{\"network\": {\"allowOut\": [\"a.com\"]}}", p, &err);
    assert_int_equal(netpolicy_resolve(p, "", &cfg, &err), -1);
    /* with an uplink: the create, then the template, then the config */
    snprintf(cfg.uplink, sizeof cfg.uplink, "eth9");
    parse("{}", p, &err);
    assert_int_equal(netpolicy_resolve(p, "", &cfg, &err), 0);
    assert_int_equal(p->internet, 1);
    parse("{}", p, &err);
    assert_int_equal(netpolicy_resolve(p, "none", &cfg, &err), 0);
    assert_int_equal(p->internet, 0);
    parse("{\"allow_internet_access\": true}", p, &err);
    assert_int_equal(netpolicy_resolve(p, "none", &cfg, &err), 0);
    assert_int_equal(p->internet, 1);
    snprintf(cfg.default_mode, sizeof cfg.default_mode, "none");
    parse("{}", p, &err);
    assert_int_equal(netpolicy_resolve(p, "", &cfg, &err), 0);
    assert_int_equal(p->internet, 0);
    parse("{}", p, &err);
    assert_int_equal(netpolicy_resolve(p, "internet", &cfg, &err), 0);
    assert_int_equal(p->internet, 1);
    parse("{\"network\": {\"allowOut\": [\"a.com\"]}}", p, &err);     /* allowOut implies egress */
    assert_int_equal(netpolicy_resolve(p, "", &cfg, &err), 0);
    assert_int_equal(p->internet, 1);
    free(p);
}

static void test_name_matching(void **state)
{
    (void)state;
    struct sb_net_policy *p = malloc(sizeof *p);
    struct sb_err err = {0};
    assert_int_equal(parse("{\"network\": {\"denyOut\": [\"0.0.0.0/0\"], \"allowOut\": [\"pypi.org\", "
                           "\"*.example.com\"]}}", p, &err), 0);
    assert_true(netpolicy_denies_all(p));
    assert_true(netpolicy_name_allowed(p, "pypi.org"));
    assert_true(netpolicy_name_allowed(p, "PyPI.ORG."));
    assert_false(netpolicy_name_allowed(p, "files.pypi.org"));     /* exact means exact */
    assert_false(netpolicy_name_allowed(p, "xpypi.org"));
    assert_true(netpolicy_name_allowed(p, "a.example.com"));
    assert_true(netpolicy_name_allowed(p, "b.a.example.com"));
    assert_false(netpolicy_name_allowed(p, "example.com"));        /* the wildcard is for names below */
    assert_false(netpolicy_name_allowed(p, "badexample.com"));
    assert_false(netpolicy_name_allowed(p, "example.com.evil.net"));
    assert_false(netpolicy_name_allowed(p, ""));
    assert_false(netpolicy_name_allowed(p, "pypi.org\n"));
    free(p);
}

static void test_stored_round_trip(void **state)
{
    (void)state;
    struct sb_net_policy *p = malloc(sizeof *p), *back = malloc(sizeof *back);
    struct sb_err err = {0};
    assert_int_equal(parse("{\"allow_internet_access\": true, \"network\": {\"allowOut\": [\"*.a.com\", "
                           "\"1.2.3.4\"], \"denyOut\": [\"10.0.0.0/8\"], \"allowPublicTraffic\": false}}",
                           p, &err), 0);
    snprintf(p->address, sizeof p->address, "10.200.0.2");
    char *text = netpolicy_to_text(p);
    assert_non_null(text);
    assert_string_equal(text, "{\"allowInternetAccess\":true,\"allowOut\":[\"*.a.com\",\"1.2.3.4\"],"
                              "\"denyOut\":[\"10.0.0.0/8\"],\"allowPublicTraffic\":false,\"address\":\"10.200.0.2\"}");
    assert_int_equal(netpolicy_from_text(text, back, &err), 0);
    assert_int_equal(back->internet, 1);
    assert_int_equal(back->allow_count, 2);
    assert_int_equal(back->deny_count, 1);
    assert_int_equal(back->allow_public_traffic, 0);
    assert_string_equal(back->address, "10.200.0.2");
    free(text);
    assert_int_equal(netpolicy_from_text("", back, &err), 0);       /* rows from before: loopback only */
    assert_int_equal(back->internet, 0);
    assert_string_equal(back->address, "");
    assert_int_equal(netpolicy_from_text("[1]", back, &err), -1);
    free(p);
    free(back);
}

static int parse_update(const char *body, struct sb_net_policy *p, struct sb_err *err)
{
    json_t *obj = json_loads(body, 0, NULL);
    assert_non_null(obj);
    int rc = netpolicy_parse_update(obj, p, err);
    json_decref(obj);
    return rc;
}

/* The stored form of an update's policy (what the row would hold). */
static void expect_update(const char *body, const char *stored)
{
    struct sb_net_policy *p = malloc(sizeof *p);
    struct sb_err err = {0};
    if (parse_update(body, p, &err) < 0)
        fail_msg("refused %s: %s", body, err.msg);
    char *text = netpolicy_to_text(p);
    assert_non_null(text);
    if (strcmp(text, stored) != 0)
        fail_msg("update %s stored as %s, expected %s", body, text, stored);
    free(text);
    free(p);
}

static void expect_update_bad(const char *body, const char *needle)
{
    struct sb_net_policy *p = malloc(sizeof *p);
    struct sb_err err = {0};
    if (parse_update(body, p, &err) == 0)
        fail_msg("accepted update %s", body);
    assert_int_equal(err.status, 400);
    if (!strstr(err.msg, needle))
        fail_msg("error for update %s is '%s', expected it to name '%s'", body, err.msg, needle);
    free(p);
}

static void test_parse_update(void **state)
{
    (void)state;
    /* what is left out is cleared: {} is everything open */
    expect_update("{}", "{\"allowInternetAccess\":true,\"allowOut\":[],\"denyOut\":[],\"allowPublicTraffic\":true}");
    expect_update("{\"denyOut\": [\"0.0.0.0/0\"], \"allowOut\": [\"Allowed.Test\", \"192.0.2.0/24\"]}",
                  "{\"allowInternetAccess\":true,\"allowOut\":[\"allowed.test\",\"192.0.2.0/24\"],"
                  "\"denyOut\":[\"0.0.0.0/0\"],\"allowPublicTraffic\":true}");
    /* false is denyOut 0.0.0.0/0 added (once), allowOut still taken, either spelling */
    expect_update("{\"allow_internet_access\": false, \"allowOut\": [\"1.2.3.4\"]}",
                  "{\"allowInternetAccess\":false,\"allowOut\":[\"1.2.3.4\"],\"denyOut\":[\"0.0.0.0/0\"],"
                  "\"allowPublicTraffic\":true}");
    expect_update("{\"allowInternetAccess\": false, \"denyOut\": [\"10.0.0.0/8\", \"0.0.0.0/0\"]}",
                  "{\"allowInternetAccess\":false,\"allowOut\":[],\"denyOut\":[\"10.0.0.0/8\",\"0.0.0.0/0\"],"
                  "\"allowPublicTraffic\":true}");
    expect_update("{\"allowInternetAccess\": true, \"denyOut\": [\"192.0.2.7\"]}",
                  "{\"allowInternetAccess\":true,\"allowOut\":[],\"denyOut\":[\"192.0.2.7\"],"
                  "\"allowPublicTraffic\":true}");

    expect_update_bad("[]", "JSON object");
    expect_update_bad("{\"denyOut\": [\"example.com\"]}", "example.com");
    expect_update_bad("{\"allowOut\": [\"ok.test\", \"10.0.0.1/8\"]}", "10.0.0.1/8");
    expect_update_bad("{\"allowOut\": [\"bad_name!\"]}", "bad_name!");
    expect_update_bad("{\"allowOut\": [\"2001:db8::1\"]}", "no IPv6 egress");
    expect_update_bad("{\"allowOut\": \"example.com\"}", "allowOut");
    expect_update_bad("{\"denyOut\": [7]}", "denyOut[0]");
    expect_update_bad("{\"egressProxy\": {\"address\": \"x:1\"}}", "egressProxy is not supported");
    expect_update_bad("{\"rules\": {}}", "rules is not supported");
    expect_update_bad("{\"allowPublicTraffic\": false}", "unsupported field allowPublicTraffic");
    expect_update_bad("{\"network\": {}}", "unsupported field network");
    expect_update_bad("{\"allow_internet_access\": \"no\"}", "allow_internet_access");
    expect_update_bad("{\"allowInternetAccess\": 0}", "allowInternetAccess");
    expect_update_bad("{\"allowInternetAccess\": true, \"allow_internet_access\": true}", "not both");

    /* 64 denies are the most; false needs room for its 0.0.0.0/0 */
    char body[4096];
    struct sb_net_policy *p = malloc(sizeof *p);
    struct sb_err err = {0};
    for (int count = SB_NET_MAX_RULES - 1; count <= SB_NET_MAX_RULES; count++) {
        size_t used = (size_t)snprintf(body, sizeof body, "{\"allowInternetAccess\": false, \"denyOut\": [");
        for (int i = 0; i < count; i++)
            used += (size_t)snprintf(body + used, sizeof body - used, "%s\"10.0.%d.0/24\"", i ? ", " : "", i);
        snprintf(body + used, sizeof body - used, "]}");
        if (count == SB_NET_MAX_RULES) {
            expect_update_bad(body, "at most 63");
        } else {
            assert_int_equal(parse_update(body, p, &err), 0);
            assert_int_equal(p->deny_count, SB_NET_MAX_RULES);
            assert_true(netpolicy_denies_all(p));
        }
    }
    free(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cidr_parse),
        cmocka_unit_test(test_cidr_contains),
        cmocka_unit_test(test_parse_good),
        cmocka_unit_test(test_parse_bad_names_the_entry),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_name_matching),
        cmocka_unit_test(test_stored_round_trip),
        cmocka_unit_test(test_parse_update),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
