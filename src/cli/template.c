/*
 * template.c - `sandbase template build|list|rm`: building and managing
 * sandbox templates in the data dir (see runtime/template.h).
 *
 * Parses flags (before or after the positional NAME), resolves the data dir
 * (which must exist: only `serve --bootstrap` creates one) and uid_base
 * (<data-dir>/config.json when present, as `serve` does) and calls the
 * runtime. A wrong call names what was wrong, then prints the usage (exit
 * 2); --help prints it to stdout (exit 0). Progress and errors go to
 * stderr, results to stdout. Never builds anything itself: the runtime owns
 * the on-disk layout.
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
                    "[--mirror URL] [--force] [--data-dir DIR]"
#define USAGE_LIST "sandbase template list [--data-dir DIR]"
#define USAGE_RM "sandbase template rm NAME [--data-dir DIR]"
#define USAGE_ALL USAGE_BUILD "\n       " USAGE_LIST "\n       " USAGE_RM

/* Parsed command line; strings point into argv. */
struct template_args {
    const char *data_dir;
    const char *from;
    const char *packages;
    const char *mirror;
    int force;
    char **pos;
    int npos;
};

/* Prints the usage to stderr and returns 2, the usage exit code. */
static int usage(const char *line)
{
    fprintf(stderr, "usage: %s\n", line ? line : USAGE_ALL);
    return 2;
}

/* argv[0] is the subcommand; build_flags allows --from, --packages, --mirror
 * and --force. Returns 0, 1 after --help printed the usage to stdout, or 2
 * after printing what was wrong and the usage to stderr. */
static int parse_args(int argc, char **argv, int build_flags, const char *usage_line,
                      struct template_args *a)
{
    static const struct option options[] = {
        {"data-dir", required_argument, NULL, 'd'}, {"from", required_argument, NULL, 'f'},
        {"packages", required_argument, NULL, 'p'}, {"mirror", required_argument, NULL, 'm'},
        {"force", no_argument, NULL, 'F'},          {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    optind = 0; /* glibc: full re-initialisation, so verbs can be run twice in one process */
    opterr = 0;
    int c, index = 0;
    while ((c = getopt_long(argc, argv, ":", options, &index)) != -1) {
        const char *flag = argv[optind - 1];    /* the flag itself when it is wrong */
        switch (c) {
        case 'd': a->data_dir = optarg; continue;
        case 'h': printf("usage: %s\n", usage_line); return 1;
        case ':': fprintf(stderr, "sandbase: %s needs a value\n", flag); return usage(usage_line);
        case '?': fprintf(stderr, "sandbase: unknown option '%s'\n", flag); return usage(usage_line);
        }
        if (!build_flags) {
            fprintf(stderr, "sandbase: --%s is only for template build\n", options[index].name);
            return usage(usage_line);
        }
        switch (c) {
        case 'f': a->from = optarg; break;
        case 'p': a->packages = optarg; break;
        case 'm': a->mirror = optarg; break;
        case 'F': a->force = 1; break;
        }
    }
    a->pos = argv + optind;
    a->npos = argc - optind;
    return 0;
}

/* The data dir the flags name, or NULL after printing why it cannot be used. */
static const char *existing_data_dir(const struct template_args *a)
{
    const char *data_dir = cli_data_dir(a->data_dir);
    struct sb_err err = {0};
    if (cli_check_data_dir(data_dir, &err) < 0) {
        cli_fail(&err);
        return NULL;
    }
    return data_dir;
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
    if (!debian && strcmp(a->from, "host") != 0) {
        fprintf(stderr, "sandbase: unknown --from value '%s' (expected host or debian)\n", a->from);
        return usage(USAGE_BUILD);
    }
    if (!debian && (a->packages || a->mirror)) {
        fprintf(stderr, "sandbase: --packages and --mirror need --from debian\n");
        return usage(USAGE_BUILD);
    }
    const char *data_dir = existing_data_dir(a), *name = a->pos[0];
    uint32_t uid_base;
    if (!data_dir || load_uid_base(data_dir, &uid_base) != 0)
        return 1;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    struct sb_err err = {0};
    int rc;
    if (debian) {
        fprintf(stderr, "sandbase: building template %s from Debian bookworm (a few minutes)\n", name);
        rc = template_build_debian(data_dir, name, uid_base, a->packages, a->mirror, a->force, print_progress, NULL, &err);
    } else {
        rc = template_build_host(data_dir, name, uid_base, a->force, &err);
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
    const char *data_dir = existing_data_dir(a);
    if (!data_dir)
        return 1;
    struct sb_template *list;
    size_t count;
    struct sb_err err = {0};
    if (template_list(data_dir, &list, &count, &err) < 0)
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
    const char *data_dir = existing_data_dir(a);
    if (!data_dir)
        return 1;
    struct sb_err err = {0};
    if (template_remove(data_dir, a->pos[0], &err) < 0)
        return cli_fail(&err);
    printf("removed template %s\n", a->pos[0]);
    return 0;
}

/* One subcommand: its names, whether it takes the build flags, its usage. */
struct template_command {
    const char *name, *alias;
    int build_flags;
    const char *usage;
    int (*run)(const struct template_args *a);
};

static const struct template_command commands[] = {
    {"build", NULL, 1, USAGE_BUILD, run_build},
    {"list", "ls", 0, USAGE_LIST, run_list},
    {"rm", "remove", 0, USAGE_RM, run_remove},
};

int cli_template(int argc, char **argv)
{
    if (argc < 2)
        return usage(NULL);
    const char *sub = argv[1];
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        printf("usage: %s\n", USAGE_ALL);
        return 0;
    }
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
        const struct template_command *cmd = &commands[i];
        if (strcmp(sub, cmd->name) != 0 && !(cmd->alias && strcmp(sub, cmd->alias) == 0))
            continue;
        struct template_args a;
        int parsed = parse_args(argc - 1, argv + 1, cmd->build_flags, cmd->usage, &a);
        if (parsed != 0)
            return parsed == 1 ? 0 : 2;
        return cmd->run(&a);
    }
    fprintf(stderr, "sandbase: unknown template command '%s'\n", sub);
    return usage(NULL);
}
