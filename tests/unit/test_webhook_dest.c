/*
 * test_webhook_dest.c - the webhook destination policy
 * (runtime/webhook_dest.c): which IPv4/IPv6 addresses are refused by
 * default and with webhook_allow_private, the server's own API port, and
 * URL checks (scheme, host, length, address literals and localhost).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

#include "runtime/webhook_dest.h"

static int check(const struct webhook_dest_policy *p, const char *ip, unsigned port, char *why, size_t len)
{
    struct sockaddr_storage ss = {0};
    struct sockaddr_in *in = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, ip, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
    } else {
        assert_int_equal(inet_pton(AF_INET6, ip, &in6->sin6_addr), 1);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
    }
    return webhook_dest_check(p, (struct sockaddr *)&ss, why, len);
}

static const char *const refused[] = {
    "127.0.0.1", "127.1.2.3", "10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.1.1",
    "169.254.169.254", "169.254.0.1", "0.0.0.0", "100.64.0.1", "224.0.0.1", "255.255.255.255", "198.18.0.1",
    "::1", "::", "fe80::1", "fc00::1", "fd00:ec2::254", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "::ffff:169.254.169.254", "64:ff9b::a00:1", NULL,
};
static const char *const allowed[] = {
    "8.8.8.8", "1.1.1.1", "172.32.0.1", "172.15.255.255", "192.169.0.1", "100.128.0.1", "11.0.0.1",
    "2001:4860:4860::8888", "::ffff:8.8.8.8", "2606:4700::1111", NULL,
};

static void test_default_policy(void **state)
{
    struct webhook_dest_policy p = {.allow_private = 0, .api_port = 3000};
    char why[256];
    for (size_t i = 0; refused[i]; i++) {
        why[0] = '\0';
        if (check(&p, refused[i], 443, why, sizeof why) != -1)
            fail_msg("%s was allowed", refused[i]);
        assert_non_null(strstr(why, "webhook_allow_private"));
    }
    for (size_t i = 0; allowed[i]; i++)
        if (check(&p, allowed[i], 443, why, sizeof why) != 0)
            fail_msg("%s was refused: %s", allowed[i], why);
    check(&p, "169.254.169.254", 80, why, sizeof why);
    assert_non_null(strstr(why, "metadata"));
    check(&p, "127.0.0.1", 80, why, sizeof why);
    assert_non_null(strstr(why, "loopback"));
}

static void test_allow_private_keeps_own_port_refused(void **state)
{
    struct webhook_dest_policy p = {.allow_private = 1, .api_port = 3000};
    char why[256];
    for (size_t i = 0; refused[i]; i++)
        if (check(&p, refused[i], 8080, why, sizeof why) != 0)
            fail_msg("%s was refused with webhook_allow_private: %s", refused[i], why);
    assert_int_equal(check(&p, "10.0.0.1", 443, why, sizeof why), 0);
    assert_int_equal(check(&p, "::1", 8080, why, sizeof why), 0);
    assert_int_equal(check(&p, "127.0.0.1", 3000, why, sizeof why), -1);
    assert_non_null(strstr(why, "own API"));
    assert_int_equal(check(&p, "::1", 3000, why, sizeof why), -1);
    assert_int_equal(check(&p, "0.0.0.0", 3000, why, sizeof why), -1);
    assert_int_equal(check(&p, "8.8.8.8", 3000, why, sizeof why), 0);   /* not this host */
}

static void test_url_check(void **state)
{
    struct webhook_dest_policy p = {.allow_private = 0, .api_port = 3000};
    struct sb_err err = {0};
    assert_int_equal(webhook_url_check(&p, "https://example.com/hook", 2048, &err), 0);
    assert_int_equal(webhook_url_check(&p, "http://example.com:8080/a?b=c", 2048, &err), 0);
    assert_int_equal(webhook_url_check(&p, "https://8.8.8.8/x", 2048, &err), 0);
    static const char *const bad[] = {
        "ftp://example.com/x", "file:///etc/passwd", "gopher://example.com", "example.com/hook", "http://",
        "", "https://", "http://127.0.0.1/x", "http://[::1]:9/x", "http://localhost/x", "http://LOCALHOST:1/x",
        "http://a.localhost/x", "http://10.0.0.1/x", "http://169.254.169.254/latest", "http://[fe80::1%25eth0]/",
        "http://[::ffff:192.168.0.1]/", "not a url", NULL,
    };
    for (size_t i = 0; bad[i]; i++) {
        sb_err_clear(&err);
        if (webhook_url_check(&p, bad[i], 2048, &err) != -1)
            fail_msg("%s was accepted", bad[i]);
        assert_int_equal(err.status, 400);
        assert_non_null(strstr(err.msg, "invalid webhook url"));
    }
    assert_int_equal(webhook_url_check(&p, NULL, 2048, &err), -1);
    char longest[64];
    memset(longest, 'a', sizeof longest);
    memcpy(longest, "https://x.io/", 13);
    longest[63] = '\0';
    assert_int_equal(webhook_url_check(&p, longest, 64, &err), 0);
    assert_int_equal(webhook_url_check(&p, longest, 63, &err), -1);
    p.allow_private = 1;
    assert_int_equal(webhook_url_check(&p, "http://127.0.0.1:8080/x", 2048, &err), 0);
    assert_int_equal(webhook_url_check(&p, "http://localhost:8080/x", 2048, &err), 0);
    assert_int_equal(webhook_url_check(&p, "http://127.0.0.1:3000/x", 2048, &err), -1);
    assert_non_null(strstr(err.msg, "own API"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_default_policy),
        cmocka_unit_test(test_allow_private_keeps_own_port_refused),
        cmocka_unit_test(test_url_check),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
