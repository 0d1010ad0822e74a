/*
 * main.c - `sandbase`: one executable, many verbs. Parses only what comes
 * before the verb (--version, help [TOPIC], and --data-dir, the one flag
 * every verb takes, which it moves after the verb's own arguments) and hands
 * the rest of argv to that verb's cli_* function.
 *
 * The usage lines below are the ones README.md's "The CLI" block shows;
 * tests/integration/test_cli.py checks that the two agree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

#define GLOBAL_DATA_DIR "--data-dir"

static void print_help(FILE *out)
{
    fprintf(out,
            "sandbase %s - self-hosted sandboxes for untrusted code\n"
            "\n"
            "usage:\n"
            "  sandbase serve [--listen ADDR:PORT] [--data-dir DIR] [--config FILE] [--log-format auto|text|json] [--bootstrap]\n"
            "  sandbase org create NAME | org list\n"
            "  sandbase key create --org NAME [--name LABEL] | key list [--org NAME] | key revoke PREFIX|KEY\n"
            "  sandbase template build NAME --from host|debian [--packages p1,p2,...] [--mirror URL] [--force] | template list | template rm NAME\n"
            "  sandbase sandbox create [--template T] | sandbox list | sandbox get ID | sandbox kill ID\n"
            "  sandbase exec [-i] [-t] SANDBOX -- CMD [ARGS...]\n"
            "  sandbase shell SANDBOX\n"
            "  sandbase help [serve|org|key|template|sandbox|exec|shell] | --version\n"
            "\n"
            "serve runs the API server; with --bootstrap it first creates what is missing: the data\n"
            "dir, the base and code_interpreter templates, and org `default` with a key (make run).\n"
            "org and key manage organisations and API keys; template manages sandbox templates.\n"
            "sandbox, exec and shell are clients of a running server: SANDBASE_URL (default\n"
            "http://127.0.0.1:3000) and SANDBASE_API_KEY say which and as whom.\n"
            "Every command takes --data-dir DIR, before or after it (default ./sandbase-data,\n"
            "env SANDBASE_DATA_DIR); only serve --bootstrap creates a data dir that does not exist.\n"
            "'sandbase help COMMAND' or 'sandbase COMMAND --help' shows one command's usage.\n",
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
    {"sandbox", cli_sandbox},
    {"exec", cli_exec},
    {"shell", cli_shell},
};
#define N_VERBS (sizeof verbs / sizeof verbs[0])

static const struct verb *find_verb(const char *name)
{
    for (size_t i = 0; i < N_VERBS; i++)
        if (strcmp(name, verbs[i].name) == 0)
            return &verbs[i];
    return NULL;
}

/* `sandbase help TOPIC` is `sandbase TOPIC --help`: each verb owns its usage. */
static int help(const char *topic)
{
    if (!topic) {
        print_help(stdout);
        return 0;
    }
    const struct verb *v = find_verb(topic);
    if (!v) {
        fprintf(stderr, "sandbase: unknown help topic '%s' (topics: serve, org, key, template, sandbox, exec, shell)\n", topic);
        return 2;
    }
    char *argv[] = {(char *)v->name, "--help", NULL};
    return v->run(2, argv);
}

/* How many argv entries from argv[i] on are one leading --data-dir flag
 * ("--data-dir DIR" or "--data-dir=DIR"); 0 if argv[i] is not one, -1 if
 * its value is missing. */
static int global_flag_len(int argc, char **argv, int i)
{
    size_t len = strlen(GLOBAL_DATA_DIR);
    if (strncmp(argv[i], GLOBAL_DATA_DIR, len) != 0)
        return 0;
    if (argv[i][len] == '=')
        return 1;
    if (argv[i][len] != '\0')
        return 0;
    return i + 1 < argc ? 2 : -1;
}

/* Rewrites `sandbase --data-dir DIR VERB ARGS...` to `VERB ARGS... --data-dir
 * DIR` (before a "--" in ARGS, so the flag stays a flag): the flag goes
 * after the verb's subcommand and positionals, where every verb parses it.
 * *out is a malloc'd array the caller frees (its strings are argv's).
 * Returns the new argc, 0 when no verb follows the flags, -1 on a missing
 * value (printed) or out of memory. */
static int move_global_flags(int argc, char **argv, char ***out)
{
    int first = 1;
    for (int n; first < argc && (n = global_flag_len(argc, argv, first)) != 0; first += n) {
        if (n < 0) {
            fprintf(stderr, "sandbase: %s needs a value\n", argv[first]);
            return -1;
        }
    }
    if (first >= argc)
        return 0;
    char **moved = calloc((size_t)argc, sizeof *moved);
    if (!moved) {
        fprintf(stderr, "sandbase: out of memory\n");
        return -1;
    }
    int end = first + 1;    /* the verb's own arguments are [first + 1, end) */
    while (end < argc && strcmp(argv[end], "--") != 0)
        end++;
    int n = 0;
    for (int i = first; i < end; i++)
        moved[n++] = argv[i];
    for (int i = 1; i < first; i++)
        moved[n++] = argv[i];
    for (int i = end; i < argc; i++)
        moved[n++] = argv[i];
    *out = moved;
    return n;
}

int main(int argc, char **argv)
{
    char **args;
    int nargs = move_global_flags(argc, argv, &args);
    if (nargs <= 0) {
        if (nargs == 0)
            print_help(stderr);
        return 2;
    }
    const char *verb = args[0];
    int rc;
    if (strcmp(verb, "--version") == 0 || strcmp(verb, "version") == 0) {
        printf("sandbase %s\n", SANDBASE_VERSION);
        rc = 0;
    } else if (strcmp(verb, "help") == 0) {
        rc = help(nargs > 1 ? args[1] : NULL);
    } else if (strcmp(verb, "--help") == 0 || strcmp(verb, "-h") == 0) {
        rc = help(NULL);
    } else if (find_verb(verb)) {
        rc = find_verb(verb)->run(nargs, args);
    } else {
        fprintf(stderr, "sandbase: unknown command '%s' (try 'sandbase help')\n", verb);
        rc = 2;
    }
    free(args);
    return rc;
}
