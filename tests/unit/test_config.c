/*
 * test_config.c - server configuration (core/config.c): defaults, the JSON
 * file (known keys, unknown keys, wrong types, limits objects), environment
 * overrides and the final validation that derives run_dir.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"

static int clear_env(void **state)
{
    (void)state;
    unsetenv("SANDBASE_LISTEN");
    unsetenv("SANDBASE_DATA_DIR");
    unsetenv("SANDBASE_RUN_DIR");
    return 0;
}

/* Applies json to fresh defaults and expects a 400 whose message contains needle. */
static void expect_json_error(const char *json, const char *needle)
{
    struct sb_config cfg;
    struct sb_err err = {0};
    sb_config_defaults(&cfg);
    if (sb_config_apply_json(&cfg, json, &err) != -1)
        fail_msg("accepted %s", json);
    assert_int_equal(err.status, 400);
    if (!strstr(err.msg, needle))
        fail_msg("error for %s is '%s', expected it to mention '%s'", json, err.msg, needle);
}

/* Finishes cfg and expects a 400 whose message contains needle. */
static void expect_finish_error(struct sb_config *cfg, const char *needle)
{
    struct sb_err err = {0};
    assert_int_equal(sb_config_finish(cfg, &err), -1);
    assert_int_equal(err.status, 400);
    if (!strstr(err.msg, needle))
        fail_msg("finish error is '%s', expected it to mention '%s'", err.msg, needle);
}

static void test_defaults(void **state)
{
    (void)state;
    struct sb_config cfg;
    struct sb_err err = {0};
    sb_config_defaults(&cfg);
    assert_string_equal(cfg.listen, "127.0.0.1:3000");
    assert_string_equal(cfg.data_dir, "./sandbase-data");
    assert_string_equal(cfg.log_format, "auto");
    assert_int_equal(cfg.max_body, 1024 * 1024);
    assert_int_equal(cfg.pool_size, 2);
    assert_int_equal(cfg.org_sandbox_cap, 100);
    assert_int_equal(cfg.exec_output_cap, 10 * 1024 * 1024);
    assert_int_equal(cfg.default_timeout_s, 300);
    assert_int_equal(cfg.max_timeout_s, 86400);
    assert_int_equal(cfg.uid_base, 100000);
    assert_int_equal(cfg.defaults.cpu_count, 2);
    assert_int_equal(cfg.defaults.memory_mb, 512);
    assert_int_equal(cfg.defaults.pids, 512);
    assert_int_equal(cfg.defaults.disk_mb, 1024);
    assert_int_equal(cfg.maxima.cpu_count, 8);
    assert_int_equal(cfg.maxima.memory_mb, 8192);
    assert_int_equal(cfg.maxima.pids, 4096);
    assert_int_equal(cfg.maxima.disk_mb, 10240);
    /* The defaults are valid as they stand, and run_dir follows data_dir. */
    assert_int_equal(sb_config_finish(&cfg, &err), 0);
    char want[PATH_MAX + 32];
    assert_non_null(getcwd(want, PATH_MAX));
    strcat(want, "/sandbase-data/run");
    assert_string_equal(cfg.run_dir, want);
}

/* Relative paths from a flag, the environment or a config file all come out
 * absolute, against the directory serve was started from. */
static void test_relative_paths_made_absolute(void **state)
{
    (void)state;
    struct sb_config cfg;
    struct sb_err err = {0};
    char cwd[PATH_MAX], want[PATH_MAX + 64];
    assert_non_null(getcwd(cwd, sizeof cwd));

    sb_config_defaults(&cfg);
    setenv("SANDBASE_DATA_DIR", "./a/./b//c/../d/", 1);
    sb_config_apply_env(&cfg);
    assert_int_equal(sb_config_finish(&cfg, &err), 0);
    snprintf(want, sizeof want, "%s/a/b/d", cwd);
    assert_string_equal(cfg.data_dir, want);
    snprintf(want, sizeof want, "%s/a/b/d/run", cwd);
    assert_string_equal(cfg.run_dir, want);
    clear_env(NULL);

    sb_config_defaults(&cfg);
    assert_int_equal(sb_config_apply_json(&cfg, "{\"data_dir\": \"data\", \"run_dir\": \"../run\"}", &err), 0);
    assert_int_equal(sb_config_finish(&cfg, &err), 0);
    snprintf(want, sizeof want, "%s/data", cwd);
    assert_string_equal(cfg.data_dir, want);
    char parent[PATH_MAX];
    snprintf(parent, sizeof parent, "%s", cwd);
    *strrchr(parent, '/') = '\0';
    snprintf(want, sizeof want, "%s/run", parent[0] ? parent : "");
    assert_string_equal(cfg.run_dir, want);

    /* Absolute paths are only tidied. */
    sb_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "/srv//sb/");
    assert_int_equal(sb_config_finish(&cfg, &err), 0);
    assert_string_equal(cfg.data_dir, "/srv/sb");
    sb_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "/../..");
    assert_int_equal(sb_config_finish(&cfg, &err), 0);
    assert_string_equal(cfg.data_dir, "/");
}

static void test_json_apply(void **state)
{
    (void)state;
    struct sb_config cfg;
    struct sb_err err = {0};
    sb_config_defaults(&cfg);
    const char *json = "{\"listen\": \"0.0.0.0:8080\", \"data_dir\": \"/var/lib/sb\", \"log_format\": \"json\","
                       " \"max_body\": 2048, \"pool_size\": 0, \"org_sandbox_cap\": 7,"
                       " \"exec_output_cap\": 4096, \"default_timeout_s\": 60, \"max_timeout_s\": 600,"
                       " \"uid_base\": 200000,"
                       " \"defaults\": {\"cpu_count\": 1, \"memory_mb\": 256},"
                       " \"maxima\": {\"pids\": 1000, \"disk_mb\": 2048}}";
    assert_int_equal(sb_config_apply_json(&cfg, json, &err), 0);
    assert_string_equal(cfg.listen, "0.0.0.0:8080");
    assert_string_equal(cfg.data_dir, "/var/lib/sb");
    assert_string_equal(cfg.log_format, "json");
    assert_int_equal(cfg.max_body, 2048);
    assert_int_equal(cfg.pool_size, 0);
    assert_int_equal(cfg.org_sandbox_cap, 7);
    assert_int_equal(cfg.exec_output_cap, 4096);
    assert_int_equal(cfg.default_timeout_s, 60);
    assert_int_equal(cfg.max_timeout_s, 600);
    assert_int_equal(cfg.uid_base, 200000);
    /* Limits objects change only the keys they name. */
    assert_int_equal(cfg.defaults.cpu_count, 1);
    assert_int_equal(cfg.defaults.memory_mb, 256);
    assert_int_equal(cfg.defaults.pids, 512);
    assert_int_equal(cfg.defaults.disk_mb, 1024);
    assert_int_equal(cfg.maxima.cpu_count, 8);
    assert_int_equal(cfg.maxima.pids, 1000);
    assert_int_equal(cfg.maxima.disk_mb, 2048);
    assert_int_equal(sb_config_finish(&cfg, &err), 0);
    assert_string_equal(cfg.run_dir, "/var/lib/sb/run");

    /* An empty object changes nothing. */
    struct sb_config before;
    sb_config_defaults(&cfg);
    before = cfg;
    assert_int_equal(sb_config_apply_json(&cfg, "{}", &err), 0);
    assert_memory_equal(&cfg, &before, sizeof cfg);
}

static void test_json_errors(void **state)
{
    (void)state;
    expect_json_error("{\"listne\": \"x\"}", "listne");
    expect_json_error("{\"defaults\": {\"cpus\": 1}}", "defaults.cpus");
    expect_json_error("{\"listen\": 3000}", "listen");
    expect_json_error("{\"pool_size\": \"2\"}", "pool_size");
    expect_json_error("{\"pool_size\": 2.5}", "pool_size");
    expect_json_error("{\"max_body\": true}", "max_body");
    expect_json_error("{\"pool_size\": -1}", "pool_size");
    expect_json_error("{\"pool_size\": 4294967296}", "pool_size");
    expect_json_error("{\"defaults\": 4}", "defaults");
    expect_json_error("{\"maxima\": {\"memory_mb\": \"1G\"}}", "maxima.memory_mb");
    expect_json_error("{\"maxima\": {\"memory_mb\": 2147483647}}", "maxima.memory_mb");
    expect_json_error("[1, 2]", "object");
    expect_json_error("{\"listen\": ", "invalid JSON");
    expect_json_error("{\"pool_size\": 1, \"pool_size\": 2}", "invalid JSON");

    char long_listen[300];
    memset(long_listen, 'x', sizeof long_listen);
    char json[400];
    snprintf(json, sizeof json, "{\"listen\": \"%.*s\"}", 200, long_listen);
    expect_json_error(json, "listen");
}

static void test_load_file(void **state)
{
    (void)state;
    char path[] = "/tmp/sb-config-test-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char *text = "{\"pool_size\": 5}";
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);

    struct sb_config cfg;
    struct sb_err err = {0};
    sb_config_defaults(&cfg);
    assert_int_equal(sb_config_load_file(&cfg, path, &err), 0);
    assert_int_equal(cfg.pool_size, 5);

    /* A bad file: the error names the file and the key. */
    FILE *f = fopen(path, "w");
    fputs("{\"bogus\": 1}", f);
    fclose(f);
    assert_int_equal(sb_config_load_file(&cfg, path, &err), -1);
    assert_int_equal(err.status, 400);
    assert_non_null(strstr(err.msg, path));
    assert_non_null(strstr(err.msg, "bogus"));
    unlink(path);

    assert_int_equal(sb_config_load_file(&cfg, path, &err), -1);
    assert_int_equal(err.status, 400);
    assert_non_null(strstr(err.msg, path));
    assert_int_not_equal(err.sys_errno, 0);
}

static void test_env(void **state)
{
    (void)state;
    struct sb_config cfg;
    struct sb_err err = {0};
    sb_config_defaults(&cfg);
    setenv("SANDBASE_LISTEN", "127.0.0.1:4000", 1);
    setenv("SANDBASE_DATA_DIR", "/srv/sandbase", 1);
    sb_config_apply_env(&cfg);
    assert_string_equal(cfg.listen, "127.0.0.1:4000");
    assert_string_equal(cfg.data_dir, "/srv/sandbase");
    assert_int_equal(sb_config_finish(&cfg, &err), 0);
    assert_string_equal(cfg.run_dir, "/srv/sandbase/run");

    /* SANDBASE_RUN_DIR wins over the derived default; empty values are ignored. */
    sb_config_defaults(&cfg);
    setenv("SANDBASE_RUN_DIR", "/run/sandbase", 1);
    setenv("SANDBASE_LISTEN", "", 1);
    sb_config_apply_env(&cfg);
    assert_string_equal(cfg.listen, "127.0.0.1:3000");
    assert_int_equal(sb_config_finish(&cfg, &err), 0);
    assert_string_equal(cfg.run_dir, "/run/sandbase");
    clear_env(NULL);
}

/* The connection limits: defaults, the keys, and that one address can never
 * be allowed every connection. */
static void test_connection_limits(void **state)
{
    (void)state;
    struct sb_config cfg;
    struct sb_err err = {0};
    sb_config_defaults(&cfg);
    assert_int_equal(cfg.max_connections, 4096);
    assert_int_equal(cfg.max_connections_per_address, 256);
    assert_int_equal(cfg.request_read_timeout_s, 30);
    assert_int_equal(sb_config_apply_json(&cfg, "{\"max_connections\": 100, "
                                                "\"max_connections_per_address\": 50, "
                                                "\"request_read_timeout_s\": 5}", &err), 0);
    assert_int_equal(cfg.max_connections, 100);
    assert_int_equal(cfg.max_connections_per_address, 50);
    assert_int_equal(cfg.request_read_timeout_s, 5);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "/tmp/sb-config-test");
    assert_int_equal(sb_config_finish(&cfg, &err), 0);

    cfg.max_connections_per_address = 51;
    expect_finish_error(&cfg, "max_connections_per_address must be between 1 and half of max_connections (50)");
    cfg.max_connections_per_address = 0;
    expect_finish_error(&cfg, "max_connections_per_address");

    sb_config_defaults(&cfg);
    cfg.max_connections = 8;
    expect_finish_error(&cfg, "max_connections must be between 16 and 1000000");
    sb_config_defaults(&cfg);
    cfg.request_read_timeout_s = 0;
    expect_finish_error(&cfg, "request_read_timeout_s");
    cfg.request_read_timeout_s = 3601;
    expect_finish_error(&cfg, "request_read_timeout_s");
    expect_json_error("{\"request_read_timeout_s\": -1}", "request_read_timeout_s");
}

static void test_webhook_keys(void **state)
{
    (void)state;
    struct sb_config cfg;
    struct sb_err err = {0};
    sb_config_defaults(&cfg);
    assert_int_equal(cfg.webhook.allow_private, 0);
    assert_int_equal(cfg.webhook.timeout_s, 10);
    assert_int_equal(cfg.webhook.retry_base_ms, 5000);
    assert_int_equal(cfg.webhook.max_attempts, 15);
    assert_int_equal(sb_config_apply_json(&cfg, "{\"webhook_allow_private\": true, \"webhook_timeout_s\": 3, "
                                                "\"webhook_retry_base_ms\": 100, \"webhook_retry_max_delay_s\": 2, "
                                                "\"webhook_max_attempts\": 4, \"webhook_max_in_flight\": 8}", &err), 0);
    assert_int_equal(cfg.webhook.allow_private, 1);
    assert_int_equal(cfg.webhook.timeout_s, 3);
    assert_int_equal(cfg.webhook.retry_base_ms, 100);
    assert_int_equal(cfg.webhook.retry_max_delay_s, 2);
    assert_int_equal(cfg.webhook.max_attempts, 4);
    assert_int_equal(cfg.webhook.max_in_flight, 8);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "/tmp/sb-config-test");
    assert_int_equal(sb_config_finish(&cfg, &err), 0);
    expect_json_error("{\"webhook_allow_private\": 1}", "webhook_allow_private must be true or false");
    expect_json_error("{\"webhook_timeout_s\": \"10\"}", "webhook_timeout_s");
    expect_json_error("{\"webhook_colour\": 1}", "unknown key webhook_colour");
    cfg.webhook.timeout_s = 0;
    expect_finish_error(&cfg, "webhook_timeout_s");
    sb_config_defaults(&cfg);
    cfg.webhook.max_attempts = 0;
    expect_finish_error(&cfg, "webhook_max_attempts");
    sb_config_defaults(&cfg);
    cfg.webhook.max_in_flight = 0;
    expect_finish_error(&cfg, "webhook_max_in_flight");
}

static void test_finish_ranges(void **state)
{
    (void)state;
    struct sb_config cfg;

    sb_config_defaults(&cfg);
    cfg.data_dir[0] = '\0';
    expect_finish_error(&cfg, "data_dir");

    sb_config_defaults(&cfg);
    cfg.max_body = 100;
    expect_finish_error(&cfg, "max_body");

    sb_config_defaults(&cfg);
    cfg.default_timeout_s = 0;
    expect_finish_error(&cfg, "default_timeout_s");

    sb_config_defaults(&cfg);
    cfg.default_timeout_s = 1000;
    cfg.max_timeout_s = 999;
    expect_finish_error(&cfg, "default_timeout_s");

    sb_config_defaults(&cfg);
    cfg.defaults.memory_mb = 8;
    expect_finish_error(&cfg, "defaults");

    sb_config_defaults(&cfg);
    cfg.maxima.pids = 1;
    expect_finish_error(&cfg, "maxima");

    sb_config_defaults(&cfg);
    cfg.defaults.cpu_count = 16;    /* above maxima's 8 */
    expect_finish_error(&cfg, "exceed maxima");

    sb_config_defaults(&cfg);
    cfg.uid_base = 1000;
    expect_finish_error(&cfg, "uid_base");

    sb_config_defaults(&cfg);
    memset(cfg.data_dir, 'd', sizeof cfg.data_dir - 1);
    cfg.data_dir[sizeof cfg.data_dir - 1] = '\0';
    expect_finish_error(&cfg, "data_dir");
}

/* The network section: defaults are safe (no uplink), keys land, bad
 * values are 400s that name the key. */
static void test_network_section(void **state)
{
    (void)state;
    struct sb_config cfg;
    struct sb_err err = {0};
    sb_config_defaults(&cfg);
    assert_string_equal(cfg.network.uplink, "");
    assert_string_equal(cfg.network.default_mode, "internet");
    assert_string_equal(cfg.network.range, "10.200.0.0/16");
    assert_int_equal(sb_config_apply_json(&cfg, "{\"network\": {\"uplink\": \"eth1\", \"range\": \"10.9.0.0/24\", "
                                               "\"default\": \"none\", \"dns_upstream\": \"192.0.2.53:5353\", "
                                               "\"allow_private\": [\"10.1.0.0/16\"]}}", &err), 0);
    assert_string_equal(cfg.network.uplink, "eth1");
    assert_string_equal(cfg.network.default_mode, "none");
    assert_int_equal(cfg.network.allow_private_count, 1);
    assert_int_equal(sb_config_finish(&cfg, &err), 0);
    expect_json_error("{\"network\": {\"bridge\": \"x\"}}", "network.bridge");
    expect_json_error("{\"network\": {\"uplink\": 1}}", "network.uplink");
    expect_json_error("{\"network\": {\"uplink\": \"a-very-long-interface-name\"}}", "network.uplink");
    expect_json_error("{\"network\": {\"allow_private\": \"10.0.0.0/8\"}}", "network.allow_private");
    expect_json_error("{\"network\": 1}", "network");
    const char *bad[][2] = {
        {"{\"network\": {\"range\": \"10.0.0.0/30\"}}", "network.range"},
        {"{\"network\": {\"range\": \"fd00::/64\"}}", "network.range"},
        {"{\"network\": {\"range\": \"10.0.0.1/24\"}}", "network.range"},
        {"{\"network\": {\"default\": \"all\"}}", "network.default"},
        {"{\"network\": {\"allow_private\": [\"x\"]}}", "network.allow_private"},
        {"{\"network\": {\"dns_upstream\": \"dns.example\"}}", "network.dns_upstream"},
        {"{\"network\": {\"uplink\": \"../x\"}}", "network.uplink"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        sb_config_defaults(&cfg);
        assert_int_equal(sb_config_apply_json(&cfg, bad[i][0], &err), 0);
        expect_finish_error(&cfg, bad[i][1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_defaults, clear_env),
        cmocka_unit_test_setup(test_json_apply, clear_env),
        cmocka_unit_test_setup(test_json_errors, clear_env),
        cmocka_unit_test_setup(test_load_file, clear_env),
        cmocka_unit_test_setup(test_env, clear_env),
        cmocka_unit_test_setup(test_finish_ranges, clear_env),
        cmocka_unit_test_setup(test_connection_limits, clear_env),
        cmocka_unit_test_setup(test_webhook_keys, clear_env),
        cmocka_unit_test_setup(test_relative_paths_made_absolute, clear_env),
        cmocka_unit_test_setup(test_network_section, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
