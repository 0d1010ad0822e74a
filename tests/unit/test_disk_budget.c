/*
 * test_disk_budget.c - sandbox disk admission (runtime/disk_budget.c): the
 * arithmetic of disk_budget_fits at its edges and the message of a refusal,
 * what disk_budget_promised counts for sparse and written images, that
 * admitted builds in flight count until released, and the disk_reserve_mb
 * config key.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "core/config.h"
#include "runtime/disk_budget.h"

#define MIB (1024ull * 1024ull)

static void test_fits_edges(void **state)
{
    (void)state;
    struct sb_err err = {0};
    struct sb_disk_figures f = {.free = 1000 * MIB, .promised = 300 * MIB, .disks = 3,
                                .reserve = 512 * MIB, .want = 188 * MIB};
    assert_int_equal(disk_budget_fits(&f, "/data", &err), 0);      /* exactly full */
    f.want++;
    assert_int_equal(disk_budget_fits(&f, "/data", &err), -1);
    assert_int_equal(err.status, 507);
    /* Promised beyond what is free (someone else wrote there): never wraps. */
    f = (struct sb_disk_figures){.free = 100 * MIB, .promised = 200 * MIB, .reserve = 0, .want = 1};
    assert_int_equal(disk_budget_fits(&f, "/data", &err), -1);
    f = (struct sb_disk_figures){.free = 100 * MIB, .promised = 0, .reserve = 200 * MIB, .want = 0};
    assert_int_equal(disk_budget_fits(&f, "/data", &err), -1);
    f = (struct sb_disk_figures){.free = 1000 * MIB, .promised = 300 * MIB, .reserve = 512 * MIB,
                                 .want = 100 * MIB, .keep = 88 * MIB};
    assert_int_equal(disk_budget_fits(&f, "/data", &err), 0);      /* headroom exactly kept */
    f.keep++;
    assert_int_equal(disk_budget_fits(&f, "/data", &err), -1);
    f = (struct sb_disk_figures){.free = UINT64_MAX, .promised = UINT64_MAX - 1, .reserve = 1, .want = 0};
    assert_int_equal(disk_budget_fits(&f, "/data", &err), 0);
    f.want = 1;
    assert_int_equal(disk_budget_fits(&f, "/data", &err), -1);
}

static void test_refusal_says_why(void **state)
{
    (void)state;
    struct sb_err err = {0};
    struct sb_disk_figures f = {.free = 300 * MIB, .promised = 256 * MIB, .disks = 2,
                                .reserve = 64 * MIB, .want = 128 * MIB};
    assert_int_equal(disk_budget_fits(&f, "/srv/sandbase", &err), -1);
    assert_int_equal(err.status, 507);
    static const char *const needles[] = {"128 MiB sandbox disk", "/srv/sandbase has 300 MiB free",
                                          "256 MiB of it promised to 2 sandbox disks", "64 MiB kept",
                                          "disk_reserve_mb", "delete sandboxes", "lower disk_mb"};
    for (size_t i = 0; i < sizeof needles / sizeof needles[0]; i++)
        if (!strstr(err.msg, needles[i]))
            fail_msg("refusal '%s' does not say '%s'", err.msg, needles[i]);
}

/* A temporary data dir with sandboxes/<name>/disk.img of size_mb, the first
 * written_mb of it written. */
static void make_image(const char *data_dir, const char *name, int size_mb, int written_mb)
{
    char path[512];
    snprintf(path, sizeof path, "%s/sandboxes", data_dir);
    mkdir(path, 0700);
    snprintf(path, sizeof path, "%s/sandboxes/%s", data_dir, name);
    assert_int_equal(mkdir(path, 0700), 0);
    snprintf(path, sizeof path, "%s/sandboxes/%s/disk.img", data_dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(ftruncate(fd, (off_t)size_mb * (off_t)MIB), 0);
    static char block[1 << 20];
    memset(block, 'x', sizeof block);
    for (int i = 0; i < written_mb; i++)
        assert_int_equal(write(fd, block, sizeof block), (ssize_t)sizeof block);
    assert_int_equal(fsync(fd), 0);
    close(fd);
}

static void remove_data_dir(const char *dir)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

static void test_promised_counts_what_images_may_grow_by(void **state)
{
    (void)state;
    char dir[] = "/tmp/test-disk-budget-XXXXXX";
    assert_non_null(mkdtemp(dir));
    uint64_t bytes = 1;
    size_t disks = 1;
    struct sb_err err = {0};
    assert_int_equal(disk_budget_promised(dir, &bytes, &disks, &err), 0);   /* no sandboxes dir */
    assert_true(bytes == 0 && disks == 0);
    make_image(dir, "sbx_a", 64, 0);
    make_image(dir, "sbx_b", 32, 8);
    make_image(dir, "sbx_c", 16, 16);           /* full: promises nothing more */
    char path[512];
    snprintf(path, sizeof path, "%s/sandboxes/sbx_building", dir);
    assert_int_equal(mkdir(path, 0700), 0);     /* no image yet: counted in flight, not here */
    assert_int_equal(disk_budget_promised(dir, &bytes, &disks, &err), 0);
    assert_int_equal(disks, 3);
    /* 64 + 24 + 0 MiB, give or take the host filesystem's block rounding. */
    assert_true(bytes <= 88 * MIB && bytes >= 87 * MIB);
    remove_data_dir(dir);
}

static void test_admit_counts_builds_in_flight(void **state)
{
    (void)state;
    char dir[] = "/tmp/test-disk-budget-XXXXXX";
    assert_non_null(mkdtemp(dir));
    struct statvfs vfs;
    assert_int_equal(statvfs(dir, &vfs), 0);
    uint64_t free_mb = (uint64_t)vfs.f_bavail * vfs.f_frsize / MIB;
    if (free_mb < 64)
        skip();
    struct sb_config cfg;
    sb_config_defaults(&cfg);
    snprintf(cfg.data_dir, sizeof cfg.data_dir, "%s", dir);
    /* Room for about one 16 MiB disk beyond the reserve, whatever else
     * writes to this filesystem meanwhile (a few MiB either way). */
    cfg.disk_reserve_mb = (int)(free_mb - 24);
    struct sb_disk_budget *budget = disk_budget_new(&cfg);
    assert_non_null(budget);
    struct sb_err err = {0};
    assert_int_equal(disk_budget_admit(budget, 16, 0, &err), 0);
    assert_int_equal(disk_budget_admit(budget, 16, 0, &err), -1);   /* the first is still building */
    assert_int_equal(err.status, 507);
    assert_non_null(strstr(err.msg, "promised to 1 sandbox disks"));
    disk_budget_release(budget, 16, "sbx_never_built");
    sb_err_clear(&err);
    assert_int_equal(disk_budget_admit(budget, 16, 0, &err), 0);
    disk_budget_release(budget, 16, "sbx_never_built");
    /* A refill must leave room for one more disk: there is not enough. */
    assert_int_equal(disk_budget_admit(budget, 16, 16, &err), -1);
    assert_non_null(strstr(err.msg, "16 MiB sandbox disk (and 16 MiB left for creates)"));
    /* A sparse image of that size now promises the room away: made by a
     * build (counted at its release, before any rescan) ... */
    assert_int_equal(disk_budget_admit(budget, 16, 0, &err), 0);
    make_image(dir, "sbx_a", 16, 0);
    disk_budget_release(budget, 16, "sbx_a");
    sb_err_clear(&err);
    assert_int_equal(disk_budget_admit(budget, 16, 0, &err), -1);
    assert_non_null(strstr(err.msg, "promised to 1 sandbox disks"));
    /* ... or, once it is gone and the budget told, the room is back. */
    char img[600];
    snprintf(img, sizeof img, "%s/sandboxes/sbx_a/disk.img", dir);
    assert_int_equal(unlink(img), 0);
    disk_budget_changed(budget);
    sb_err_clear(&err);
    assert_int_equal(disk_budget_admit(budget, 16, 0, &err), 0);
    disk_budget_release(budget, 16, "sbx_gone");
    disk_budget_free(budget);
    remove_data_dir(dir);
}

static void test_reserve_config_key(void **state)
{
    (void)state;
    struct sb_config cfg;
    struct sb_err err = {0};
    sb_config_defaults(&cfg);
    assert_int_equal(cfg.disk_reserve_mb, 512);
    assert_int_equal(sb_config_apply_json(&cfg, "{\"disk_reserve_mb\": 64}", &err), 0);
    assert_int_equal(cfg.disk_reserve_mb, 64);
    assert_int_equal(sb_config_finish(&cfg, &err), 0);
    assert_int_equal(sb_config_apply_json(&cfg, "{\"disk_reserve_mb\": -1}", &err), -1);
    assert_int_equal(err.status, 400);
    sb_config_defaults(&cfg);
    assert_int_equal(sb_config_apply_json(&cfg, "{\"disk_reserve_mb\": 2000000}", &err), 0);
    assert_int_equal(sb_config_finish(&cfg, &err), -1);
    assert_non_null(strstr(err.msg, "disk_reserve_mb must be between 0 and 1048576"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fits_edges),
        cmocka_unit_test(test_refusal_says_why),
        cmocka_unit_test(test_promised_counts_what_images_may_grow_by),
        cmocka_unit_test(test_admit_counts_builds_in_flight),
        cmocka_unit_test(test_reserve_config_key),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
