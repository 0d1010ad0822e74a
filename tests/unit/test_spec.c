/*
 * test_spec.c - the resolved sandbox spec (proto/spec.h): every field
 * survives a round trip through JSON and through its file; the decoder
 * refuses what a shim must not build from (missing or mistyped keys,
 * relative paths, unsafe ids, ids outside the map, too many binds, unknown
 * versions, duplicate keys, non-string env); and serve's resolver
 * (runtime/sandbox_spec.c) fills it from a real host template; the pinned
 * exec values (runtime/sandbox_pins.c) come from memory once known, from
 * the spec file otherwise.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/config.h"
#include "core/fs.h"
#include "proto/spec.h"
#include "runtime/sandbox_pins.h"
#include "runtime/sandbox_spec.h"
#include "runtime/template.h"

static void sample(struct sb_spec *s)
{
    memset(s, 0, sizeof *s);
    snprintf(s->id, sizeof s->id, "sbx_abc123");
    snprintf(s->hostname, sizeof s->hostname, "sbx_abc123");
    snprintf(s->data_dir, sizeof s->data_dir, "/var/lib/sandbase");
    snprintf(s->run_dir, sizeof s->run_dir, "/run/sandbase");
    snprintf(s->template_name, sizeof s->template_name, "base");
    snprintf(s->template_dir, sizeof s->template_dir, "/var/lib/sandbase/templates/base");
    s->template_identity = 1234567890123ull;
    s->uid_map = s->gid_map = (struct sb_spec_idmap){0, 100000, 65536};
    snprintf(s->user, sizeof s->user, "user");
    s->uid = 1000;
    s->gid = 1001;
    snprintf(s->home, sizeof s->home, "/home/user");
    snprintf(s->workdir, sizeof s->workdir, "/home/user/work");
    s->env_json = strdup("{\"PATH\":\"/usr/bin:/bin\",\"LANG\":\"C.UTF-8\"}");
    s->bind_count = 2;
    snprintf(s->binds[0].source, sizeof s->binds[0].source, "/usr");
    snprintf(s->binds[0].target, sizeof s->binds[0].target, "/usr");
    s->binds[0].readonly = 1;
    snprintf(s->binds[1].source, sizeof s->binds[1].source, "/srv/data");
    snprintf(s->binds[1].target, sizeof s->binds[1].target, "/data");
    s->binds[1].readonly = 0;
    s->limits = (struct sb_limits){.cpu_count = 2, .memory_mb = 512, .pids = 300, .disk_mb = 1024};
    s->output_ring = 256 * 1024;
    s->sudo = 1;
}

static void assert_same(const struct sb_spec *a, const struct sb_spec *b)
{
    assert_string_equal(a->id, b->id);
    assert_string_equal(a->hostname, b->hostname);
    assert_string_equal(a->data_dir, b->data_dir);
    assert_string_equal(a->run_dir, b->run_dir);
    assert_string_equal(a->template_name, b->template_name);
    assert_string_equal(a->template_dir, b->template_dir);
    assert_true(a->template_identity == b->template_identity);
    assert_memory_equal(&a->uid_map, &b->uid_map, sizeof a->uid_map);
    assert_memory_equal(&a->gid_map, &b->gid_map, sizeof a->gid_map);
    assert_string_equal(a->user, b->user);
    assert_int_equal(a->uid, b->uid);
    assert_int_equal(a->gid, b->gid);
    assert_string_equal(a->home, b->home);
    assert_string_equal(a->workdir, b->workdir);
    json_t *ea = json_loads(a->env_json, 0, NULL), *eb = json_loads(b->env_json, 0, NULL);
    assert_true(json_equal(ea, eb));
    json_decref(ea);
    json_decref(eb);
    assert_int_equal(a->bind_count, b->bind_count);
    for (int i = 0; i < a->bind_count; i++) {
        assert_string_equal(a->binds[i].source, b->binds[i].source);
        assert_string_equal(a->binds[i].target, b->binds[i].target);
        assert_int_equal(a->binds[i].readonly, b->binds[i].readonly);
    }
    assert_memory_equal(&a->limits, &b->limits, sizeof a->limits);
    assert_int_equal(a->output_ring, b->output_ring);
    assert_int_equal(a->sudo, b->sudo);
}

static void test_round_trip(void **state)
{
    (void)state;
    struct sb_spec in, out;
    struct sb_err err = {0};
    char *text;
    sample(&in);
    assert_int_equal(sb_spec_to_json(&in, &text, &err), 0);
    assert_int_equal(sb_spec_from_json(text, &out, &err), 0);
    assert_same(&in, &out);
    free(text);
    sb_spec_clear(&out);

    char dir[] = "/tmp/test_spec.XXXXXX", path[64];
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/spec.json", dir);
    assert_int_equal(sb_spec_read_file(path, &out, &err), -1);
    assert_int_equal(err.status, 404);
    assert_int_equal(sb_spec_write_file(&in, path, &err), 0);
    assert_int_equal(sb_spec_read_file(path, &out, &err), 0);
    assert_same(&in, &out);
    sb_spec_clear(&out);
    assert_int_equal(sb_remove_tree(dir, &err), 0);
    sb_spec_clear(&in);
}

/* Encodes the sample, applies edit (a jansson path change) and decodes:
 * the decoder must refuse it with a 400 whose message names `names`. */
static void expect_refused(void (*edit)(json_t *root), const char *names)
{
    struct sb_spec in, out;
    struct sb_err err = {0};
    char *text;
    sample(&in);
    assert_int_equal(sb_spec_to_json(&in, &text, &err), 0);
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    edit(root);
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    int rc = sb_spec_from_json(text, &out, &err);
    if (rc == 0)
        fail_msg("accepted a spec with a bad %s: %s", names, text);
    assert_int_equal(err.status, 400);
    if (!strstr(err.msg, names))
        fail_msg("error \"%s\" does not name %s", err.msg, names);
    assert_null(out.env_json);
    free(text);
    sb_spec_clear(&in);
}

static json_t *obj(json_t *root, const char *key) { return json_object_get(root, key); }
static void no_id(json_t *r) { json_object_del(r, "id"); }
static void unsafe_id(json_t *r) { json_object_set_new(r, "id", json_string("../etc")); }
static void relative_data_dir(json_t *r) { json_object_set_new(r, "dataDir", json_string("data")); }
static void workdir_number(json_t *r) { json_object_set_new(r, "workdir", json_integer(3)); }
static void version_2(json_t *r) { json_object_set_new(r, "version", json_integer(2)); }
static void no_template_dir(json_t *r) { json_object_del(obj(r, "template"), "dir"); }
static void zero_identity(json_t *r) { json_object_set_new(obj(r, "template"), "identity", json_integer(0)); }
static void uid_outside_map(json_t *r) { json_object_set_new(obj(r, "user"), "uid", json_integer(65536)); }
static void negative_gid(json_t *r) { json_object_set_new(obj(r, "user"), "gid", json_integer(-1)); }
static void map_past_32_bits(json_t *r)
{
    json_object_set_new(obj(r, "uidMap"), "outside", json_integer(4294967295LL));
}
static void zero_memory(json_t *r) { json_object_set_new(obj(r, "limits"), "memory_mb", json_integer(0)); }
static void env_not_string(json_t *r) { json_object_set_new(obj(r, "env"), "N", json_integer(1)); }
static void env_name_with_equals(json_t *r) { json_object_set_new(obj(r, "env"), "A=B", json_string("x")); }
static void bind_relative(json_t *r)
{
    json_object_set_new(json_array_get(obj(r, "binds"), 0), "target", json_string("usr"));
}
static void bind_no_readonly(json_t *r) { json_object_del(json_array_get(obj(r, "binds"), 1), "readonly"); }
static void nine_binds(json_t *r)
{
    json_t *b = obj(r, "binds");
    while (json_array_size(b) < SB_SPEC_MAX_BINDS + 1)
        json_array_append(b, json_array_get(b, 0));
}
static void long_hostname(json_t *r)
{
    char name[80];
    memset(name, 'h', sizeof name - 1);
    name[sizeof name - 1] = '\0';
    json_object_set_new(r, "hostname", json_string(name));
}

static void tiny_ring(json_t *r) { json_object_set_new(r, "outputRing", json_integer(1024)); }
static void sudo_string(json_t *r) { json_object_set_new(r, "sudo", json_string("true")); }
static void sudo_number(json_t *r) { json_object_set_new(r, "sudo", json_integer(1)); }

/* "sudo" is written as a boolean; a spec from before it existed decodes as
 * false: such a sandbox keeps no_new_privs. */
static void test_sudo_written_and_defaults_off(void **state)
{
    (void)state;
    struct sb_spec in, out;
    struct sb_err err = {0};
    char *text;
    sample(&in);
    for (int sudo = 0; sudo <= 1; sudo++) {
        in.sudo = sudo;
        assert_int_equal(sb_spec_to_json(&in, &text, &err), 0);
        json_t *root = json_loads(text, 0, NULL);
        free(text);
        assert_true(json_is_boolean(json_object_get(root, "sudo")));
        assert_int_equal(json_is_true(json_object_get(root, "sudo")), sudo);
        if (sudo)
            json_object_del(root, "sudo");
        text = json_dumps(root, JSON_COMPACT);
        json_decref(root);
        assert_int_equal(sb_spec_from_json(text, &out, &err), 0);
        assert_int_equal(out.sudo, 0);
        free(text);
        sb_spec_clear(&out);
    }
    sb_spec_clear(&in);
}
static void ring_string(json_t *r) { json_object_set_new(r, "outputRing", json_string("1M")); }

/* A spec written before the ring size was in it still decodes: 1 MiB. */
static void test_ring_defaults_when_absent(void **state)
{
    (void)state;
    struct sb_spec in, out;
    struct sb_err err = {0};
    char *text;
    sample(&in);
    assert_int_equal(sb_spec_to_json(&in, &text, &err), 0);
    json_t *root = json_loads(text, 0, NULL);
    free(text);
    assert_int_equal(json_integer_value(json_object_get(root, "outputRing")), 256 * 1024);
    json_object_del(root, "outputRing");
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    assert_int_equal(sb_spec_from_json(text, &out, &err), 0);
    assert_int_equal(out.output_ring, SB_SPEC_DEFAULT_RING);
    free(text);
    sb_spec_clear(&out);
    sb_spec_clear(&in);
}

static void test_bad_specs_refused(void **state)
{
    expect_refused(tiny_ring, "outputRing");
    expect_refused(ring_string, "outputRing");
    expect_refused(sudo_string, "\"sudo\" must be a boolean");
    expect_refused(sudo_number, "\"sudo\" must be a boolean");
    (void)state;
    expect_refused(no_id, "\"id\"");
    expect_refused(unsafe_id, "sandbox id");
    expect_refused(relative_data_dir, "dataDir");
    expect_refused(workdir_number, "workdir");
    expect_refused(version_2, "version");
    expect_refused(no_template_dir, "dir");
    expect_refused(zero_identity, "identity");
    expect_refused(uid_outside_map, "uid");
    expect_refused(negative_gid, "gid");
    expect_refused(map_past_32_bits, "uidMap");
    expect_refused(zero_memory, "memory_mb");
    expect_refused(env_not_string, "env.N");
    expect_refused(env_name_with_equals, "env.A=B");
    expect_refused(bind_relative, "bind 0");
    expect_refused(bind_no_readonly, "readonly");
    expect_refused(nine_binds, "binds");
    expect_refused(long_hostname, "hostname");
}

static void test_not_json_or_duplicates_refused(void **state)
{
    (void)state;
    struct sb_spec out;
    struct sb_err err = {0};
    assert_int_equal(sb_spec_from_json("{\"version\":1", &out, &err), -1);
    assert_int_equal(err.status, 400);
    assert_int_equal(sb_spec_from_json("[]", &out, &err), -1);
    assert_int_equal(sb_spec_from_json("{\"version\":1,\"version\":1}", &out, &err), -1);
    assert_non_null(strstr(err.msg, "invalid JSON"));
}

/* The resolver against a real template: what the template says, the
 * server's uid range, the limits asked for, the template dir's inode. */
static void test_resolved_from_a_host_template(void **state)
{
    (void)state;
    if (geteuid() != 0)
        skip();     /* building a template chowns its tree */
    char dir[] = "/tmp/test_spec.XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct sb_config cfg;
    struct sb_err err = {0};
    sb_config_defaults(&cfg);
    cfg.uid_base = 300000;
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    assert_int_equal(sb_config_finish(&cfg, &err), 0);
    struct sb_template tpl;
    assert_int_equal(template_build_host(dir, "base", cfg.uid_base, 0, &err), 0);
    assert_int_equal(template_load(dir, "base", &tpl, &err), 0);
    uint64_t identity = 0;
    assert_int_equal(template_identity(dir, "base", &identity), 0);

    struct sb_limits lim = {.cpu_count = 1, .memory_mb = 128, .pids = 64, .disk_mb = 256};
    struct sb_spec spec;
    assert_int_equal(sandbox_spec_resolve(&cfg, &tpl, "sbx_resolved", &lim, &spec, &err), 0);
    assert_string_equal(spec.id, "sbx_resolved");
    assert_string_equal(spec.hostname, "sbx_resolved");
    assert_string_equal(spec.template_dir, tpl.dir);
    assert_true(spec.template_identity == identity);
    assert_int_equal(spec.uid_map.outside, 300000);
    assert_int_equal(spec.uid_map.count, SB_UID_RANGE);
    assert_int_equal(spec.gid_map.outside, 300000);
    assert_string_equal(spec.user, tpl.user);
    assert_int_equal(spec.uid, tpl.uid);
    assert_string_equal(spec.workdir, tpl.workdir);
    assert_int_equal(spec.bind_count, tpl.bind_count);
    assert_memory_equal(&spec.limits, &lim, sizeof lim);
    assert_non_null(strstr(spec.env_json, "PATH"));
    assert_int_equal(spec.sudo, 0);     /* a host template: no sudo */

    /* what serve writes the shim can read back, unchanged */
    char path[SB_PATH_MAX + 16];
    assert_int_equal(sb_mkdir_p(cfg.run_dir, 0700, &err), 0);
    snprintf(path, sizeof path, "%s/spec.json", cfg.run_dir);
    assert_int_equal(sb_spec_write_file(&spec, path, &err), 0);
    struct sb_spec back;
    assert_int_equal(sb_spec_read_file(path, &back, &err), 0);
    assert_same(&spec, &back);
    sb_spec_clear(&back);
    sb_spec_clear(&spec);

    /* a template whose template.json says "sudo": true resolves to a spec
     * that says so, and the file the shim reads back keeps it */
    char tpl_json[SB_PATH_MAX + 32];
    snprintf(tpl_json, sizeof tpl_json, "%s/template.json", tpl.dir);
    json_t *tj = json_load_file(tpl_json, 0, NULL);
    assert_non_null(tj);
    assert_true(json_is_false(json_object_get(tj, "sudo")));
    json_object_set_new(tj, "sudo", json_true());
    assert_int_equal(json_dump_file(tj, tpl_json, 0), 0);
    json_decref(tj);
    template_clear(&tpl);
    assert_int_equal(template_load(dir, "base", &tpl, &err), 0);
    assert_int_equal(tpl.sudo, 1);
    assert_int_equal(sandbox_spec_resolve(&cfg, &tpl, "sbx_sudo", &lim, &spec, &err), 0);
    assert_int_equal(spec.sudo, 1);
    assert_int_equal(sb_spec_write_file(&spec, path, &err), 0);
    assert_int_equal(sb_spec_read_file(path, &back, &err), 0);
    assert_int_equal(back.sudo, 1);
    assert_same(&spec, &back);
    sb_spec_clear(&back);
    sb_spec_clear(&spec);
    template_clear(&tpl);
    assert_int_equal(sb_remove_tree(dir, &err), 0);
}

static void assert_pin_is_sample(const struct sandbox_pin *pin)
{
    assert_string_equal(pin->template_name, "base");
    assert_string_equal(pin->user, "user");
    assert_int_equal(pin->uid, 1000);
    assert_int_equal(pin->gid, 1001);
    assert_string_equal(pin->home, "/home/user");
    assert_string_equal(pin->workdir, "/home/user/work");
    assert_non_null(strstr(pin->env_json, "\"LANG\":\"C.UTF-8\""));
}

/* Pinned values: remembered at spawn, or read once from the spec file;
 * either way later gets need no file (deleting it changes nothing); a
 * sandbox with neither is a 404. */
static void test_pins_come_from_memory_once_known(void **state)
{
    (void)state;
    char run[] = "/tmp/test_spec.XXXXXX", dir[96], path[128];
    assert_non_null(mkdtemp(run));
    struct sb_spec spec;
    struct sb_err err = {0};
    struct sandbox_pin pin;
    sample(&spec);

    /* remembered at spawn: no file at all */
    snprintf(spec.id, sizeof spec.id, "sbx_pinned_%d", (int)getpid());
    sandbox_pin_remember(&spec);
    assert_int_equal(sandbox_pin_get(run, spec.id, &pin, &err), 0);
    assert_pin_is_sample(&pin);
    sandbox_pin_clear(&pin);

    /* not remembered: read from its file once */
    snprintf(spec.id, sizeof spec.id, "sbx_fromfile_%d", (int)getpid());
    snprintf(dir, sizeof dir, "%s/sandboxes/%s", run, spec.id);
    assert_int_equal(sb_mkdir_p(dir, 0700, &err), 0);
    snprintf(path, sizeof path, "%s/spec.json", dir);
    assert_int_equal(sb_spec_write_file(&spec, path, &err), 0);
    assert_int_equal(sandbox_pin_get(run, spec.id, &pin, &err), 0);
    assert_pin_is_sample(&pin);
    sandbox_pin_clear(&pin);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(sandbox_pin_get(run, spec.id, &pin, &err), 0);
    assert_pin_is_sample(&pin);
    sandbox_pin_clear(&pin);

    /* neither */
    assert_int_equal(sandbox_pin_get(run, "sbx_unknown", &pin, &err), -1);
    assert_int_equal(err.status, 404);
    assert_null(pin.env_json);
    sb_spec_clear(&spec);
    assert_int_equal(sb_remove_tree(run, &err), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip),
        cmocka_unit_test(test_bad_specs_refused),
        cmocka_unit_test(test_ring_defaults_when_absent),
        cmocka_unit_test(test_sudo_written_and_defaults_off),
        cmocka_unit_test(test_not_json_or_duplicates_refused),
        cmocka_unit_test(test_resolved_from_a_host_template),
        cmocka_unit_test(test_pins_come_from_memory_once_known),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
