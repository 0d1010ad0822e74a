/*
 * main.c - `sandbase`: one executable, many verbs. Parses only the verb and
 * hands the rest of argv to that verb's cli_* function.
 */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"

static void print_help(FILE *out)
{
    fprintf(out,
            "sandbase %s - self-hosted sandboxes for untrusted code\n"
            "\n"
            "usage: sandbase <command> [options]\n"
            "\n"
            "commands:\n"
            "  serve [--listen ADDR:PORT] [--data-dir DIR] [--config FILE] [--log-format text|json]\n"
            "                                   run the API server\n"
            "  org create NAME | org list       manage organisations\n"
            "  key create --org NAME [--name LABEL] | key list [--org NAME] | key revoke PREFIX\n"
            "                                   manage API keys\n"
            "  template build NAME --from host|debian [--packages p1,p2] | template list | template rm NAME\n"
            "                                   manage sandbox templates\n"
            "  help, --version\n"
            "\n"
            "Every command takes --data-dir DIR (default ./sandbase-data, env SANDBASE_DATA_DIR).\n",
            SANDBASE_VERSION);
}

struct verb {
    const char *name;
    int (*run)(int argc, char **argv);
};

static const struct verb verbs[] = {
    {"serve", cli_serve},
    {"org", cli_org},
    {"key", cli_key},
    {"template", cli_template},
    {"shim", cli_shim},
};

int main(int argc, char **argv)
{
    if (argc < 2) {
        print_help(stderr);
        return 2;
    }
    const char *verb = argv[1];
    if (strcmp(verb, "--version") == 0 || strcmp(verb, "version") == 0) {
        printf("sandbase %s\n", SANDBASE_VERSION);
        return 0;
    }
    if (strcmp(verb, "help") == 0 || strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
        print_help(stdout);
        return 0;
    }
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(verb, verbs[i].name) == 0)
            return verbs[i].run(argc - 1, argv + 1);
    fprintf(stderr, "sandbase: unknown command '%s' (try 'sandbase help')\n", verb);
    return 2;
}
