/*
 * template.c - `sandbase template build|list|rm`: building and managing
 * sandbox templates in the data dir (see runtime/template.h).
 *
 * Parses flags (before or after the positional NAME), resolves the data dir
 * and uid_base (<data-dir>/config.json when present, as `serve` does) and
 * calls the runtime. Progress and errors go to stderr, results to stdout.
 * Never builds anything itself: the runtime owns the on-disk layout.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "core/config.h"
#include "runtime/template.h"

#define USAGE_BUILD "sandbase template build NAME --from host|debian [--packages p1,p2,...] " \
                    "[--mirror URL] [--data-dir DIR]"
#define USAGE_LIST "sandbase template list [--data-dir DIR]"
#define USAGE_RM "sandbase template rm NAME [--data-dir DIR]"

/* Parsed command line; strings point into argv. */
struct template_args {
    const char *data_dir;
    const char *from;
    const char *packages;
    const char *mirror;
    char **pos;
    int npos;
};

static int usage(const char *line)
{
    fprintf(stderr, "usage: %s\n", line ? line : USAGE_BUILD "\n       " USAGE_LIST "\n       " USAGE_RM);
    return 2;
}

/* argv[0] is the subcommand. Returns 0, or 2 after printing usage. */
static int parse_args(int argc, char **argv, int build_flags, const char *usage_line,
                      struct template_args *a)
{
    static const struct option options[] = {
        {"data-dir", required_argument, NULL, 'd'}, {"from", required_argument, NULL, 'f'},
        {"packages", required_argument, NULL, 'p'}, {"mirror", required_argument, NULL, 'm'},
        {"help", no_argument, NULL, 'h'},           {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    optind = 0; /* glibc: full re-initialisation, so verbs can be run twice in one process */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "", options, NULL)) != -1) {
        if (c == 'd')
            a->data_dir = optarg;
        else if (c == 'f' && build_flags)
            a->from = optarg;
        else if (c == 'p' && build_flags)
            a->packages = optarg;
        else if (c == 'm' && build_flags)
            a->mirror = optarg;
        else
            return usage(usage_line);
    }
    a->pos = argv + optind;
    a->npos = argc - optind;
    return 0;
}

/* uid_base comes from <data-dir>/config.json when present, so templates
 * match what `serve` maps sandboxes to. */
static int load_uid_base(const char *data_dir, uint32_t *uid_base)
{
    struct sb_config cfg;
    sb_config_defaults(&cfg);
    struct sb_err err = {0};
    if (sb_config_load_data_dir(&cfg, data_dir, &err) < 0)
        return cli_fail(&err);
    *uid_base = cfg.uid_base;
    return 0;
}

static double seconds_since(const struct timespec *start)
{
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)(now.tv_sec - start->tv_sec) + (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

static void print_progress(void *arg, const char *line)
{
    (void)arg;
    fprintf(stderr, "  %s\n", line);
}

static int run_build(const struct template_args *a)
{
    if (a->npos != 1 || !a->from)
        return usage(USAGE_BUILD);
    int debian = strcmp(a->from, "debian") == 0;
    if (!debian && strcmp(a->from, "host") != 0)
        return usage(USAGE_BUILD);
    if (!debian && (a->packages || a->mirror)) {
        fprintf(stderr, "sandbase: --packages and --mirror need --from debian\n");
        return usage(USAGE_BUILD);
    }
    const char *data_dir = cli_data_dir(a->data_dir), *name = a->pos[0];
    uint32_t uid_base;
    if (load_uid_base(data_dir, &uid_base) != 0)
        return 1;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct sb_err err = {0};
    int rc;
    if (debian) {
        fprintf(stderr, "sandbase: building template %s from Debian bookworm (a few minutes)\n", name);
        rc = template_build_debian(data_dir, name, uid_base, a->packages, a->mirror, print_progress, NULL, &err);
    } else {
        rc = template_build_host(data_dir, name, uid_base, &err);
    }
    if (rc < 0)
        return cli_fail(&err);
    printf("built template %s (%s) in %.2f s\n", name, a->from, seconds_since(&start));
    return 0;
}

static int run_list(const struct template_args *a)
{
    if (a->npos != 0)
        return usage(USAGE_LIST);
    struct sb_template *list;
    size_t count;
    struct sb_err err = {0};
    if (template_list(cli_data_dir(a->data_dir), &list, &count, &err) < 0)
        return cli_fail(&err);
    if (count == 0)
        fprintf(stderr, "no templates yet; build one with: sandbase template build NAME --from host\n");
    else
        printf("%-24s %-8s %-10s %s\n", "NAME", "KIND", "USER", "CREATED");
    for (size_t i = 0; i < count; i++)
        printf("%-24s %-8s %-10s %s\n", list[i].name, list[i].kind, list[i].user,
               list[i].created_at[0] ? list[i].created_at : "-");
    template_list_free(list, count);
    return 0;
}

static int run_remove(const struct template_args *a)
{
    if (a->npos != 1)
        return usage(USAGE_RM);
    struct sb_err err = {0};
    if (template_remove(cli_data_dir(a->data_dir), a->pos[0], &err) < 0)
        return cli_fail(&err);
    printf("removed template %s\n", a->pos[0]);
    return 0;
}

int cli_template(int argc, char **argv)
{
    if (argc < 2)
        return usage(NULL);
    const char *sub = argv[1];
    struct template_args a;
    if (strcmp(sub, "build") == 0)
        return parse_args(argc - 1, argv + 1, 1, USAGE_BUILD, &a) ? 2 : run_build(&a);
    if (strcmp(sub, "list") == 0 || strcmp(sub, "ls") == 0)
        return parse_args(argc - 1, argv + 1, 0, USAGE_LIST, &a) ? 2 : run_list(&a);
    if (strcmp(sub, "rm") == 0 || strcmp(sub, "remove") == 0)
        return parse_args(argc - 1, argv + 1, 0, USAGE_RM, &a) ? 2 : run_remove(&a);
    return usage(NULL);
}
