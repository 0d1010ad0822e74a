/*
 * test_port_target.c - reading a sandbox port out of a Host header, a raw
 * request target and E2B's pieces: both spellings of the id, case, the
 * optional :port, and everything that must not be taken for a port request.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "api/port_target.h"

#define ID "sbx_abcdefghijklmnopqrst"
#define ID_DASH "sbx-abcdefghijklmnopqrst"

static void test_host_forms(void **state)
{
    char id[API_PORT_ID_MAX];
    unsigned port = 0;
    assert_int_equal(api_port_parse_host("8000-" ID ".localhost", "localhost", id, &port), 1);
    assert_string_equal(id, ID);
    assert_int_equal(port, 8000);
    assert_int_equal(api_port_parse_host("3000-" ID_DASH ".localhost:39411", "localhost", id, &port), 1);
    assert_string_equal(id, ID);
    assert_int_equal(port, 3000);
    assert_int_equal(api_port_parse_host("1-SBX-ABCDEFGHIJKLMNOPQRST.LocalHost.", "localhost", id, &port), 1);
    assert_string_equal(id, ID);
    assert_int_equal(port, 1);
    assert_int_equal(api_port_parse_host("65535-" ID ".sandbox.example.com", "sandbox.example.com", id, &port), 1);
    assert_int_equal(port, 65535);
}

static void test_host_not_ours(void **state)
{
    char id[API_PORT_ID_MAX];
    unsigned port;
    const char *hosts[] = {
        "localhost:3000", "127.0.0.1:3000", "8000-" ID ".example.com", "8000-" ID ".localhost.evil",
        "8000-" ID ".localhostx", "x8000-" ID ".localhost", "0-" ID ".localhost", "08000-" ID ".localhost",
        "65536-" ID ".localhost", "8000-" ID "x.localhost", "8000-sbx_short.localhost",
        "8000-org_abcdefghijklmnopqrst.localhost", "8000-" ID ".localhost:", "8000-" ID ".localhost:x",
        "8000-" ID, "-" ID ".localhost", "", NULL,
    };
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++)
        assert_int_equal(api_port_parse_host(hosts[i], "localhost", id, &port), 0);
    assert_int_equal(api_port_parse_host("8000-" ID ".localhost", "", id, &port), 0);
}

static void test_path_form(void **state)
{
    char id[API_PORT_ID_MAX];
    unsigned port;
    const char *rest;
    assert_int_equal(api_port_parse_path("/sandboxes/" ID "/ports/8000/a/b?c=d", id, &port, &rest), 1);
    assert_string_equal(id, ID);
    assert_int_equal(port, 8000);
    assert_string_equal(rest, "/a/b?c=d");
    assert_int_equal(api_port_parse_path("/sandboxes/" ID_DASH "/ports/80", id, &port, &rest), 1);
    assert_string_equal(rest, "");
    assert_int_equal(api_port_parse_path("/sandboxes/" ID "/ports/80?x", id, &port, &rest), 1);
    assert_string_equal(rest, "?x");
    /* the form, with a bad id or port: -1 (a 400), not another route */
    assert_int_equal(api_port_parse_path("/sandboxes/nope/ports/80/", id, &port, &rest), -1);
    assert_int_equal(api_port_parse_path("/sandboxes/" ID "/ports/0/", id, &port, &rest), -1);
    assert_int_equal(api_port_parse_path("/sandboxes/" ID "/ports//", id, &port, &rest), -1);
    assert_int_equal(api_port_parse_path("/sandboxes/" ID "/ports/", id, &port, &rest), -1);
    /* not the form: the API's own routes */
    assert_int_equal(api_port_parse_path("/sandboxes/" ID "/ports", id, &port, &rest), 0);
    assert_int_equal(api_port_parse_path("/sandboxes/" ID, id, &port, &rest), 0);
    assert_int_equal(api_port_parse_path("/sandboxes/" ID "/files/ports/80", id, &port, &rest), 0);
    assert_int_equal(api_port_parse_path("/v2/sandboxes/" ID "/ports/80", id, &port, &rest), 0);
    assert_int_equal(api_port_parse_path(NULL, id, &port, &rest), 0);
}

static void test_numbers_and_ids(void **state)
{
    unsigned port;
    char id[API_PORT_ID_MAX];
    assert_int_equal(api_port_number("49983", 5, &port), 0);
    assert_int_equal(port, 49983);
    assert_int_equal(api_port_number("123456", 6, &port), -1);
    assert_int_equal(api_port_number("", 0, &port), -1);
    assert_int_equal(api_port_number("+80", 3, &port), -1);
    assert_int_equal(api_port_id(ID_DASH, strlen(ID_DASH), id), 0);
    assert_string_equal(id, ID);
    assert_int_equal(api_port_id("sbx_abcdefghijklmnopqrs1", 24, id), -1);     /* '1' is no base32 */
    assert_int_equal(api_port_id("sbx_abcdefghijklmnopqrstu", 25, id), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_host_forms),
        cmocka_unit_test(test_host_not_ours),
        cmocka_unit_test(test_path_form),
        cmocka_unit_test(test_numbers_and_ids),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
