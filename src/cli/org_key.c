/*
 * org_key.c - `sandbase org ...` and `sandbase key ...`: the admin verbs for
 * organisations and API keys, run directly against the store in the data dir.
 *
 * Both verbs share one flag parser and one table of subcommands (usage,
 * accepted flags, positional count, handler), so flags may come before or
 * after the positional arguments and every wrong call gets the same kind of
 * one-line usage (exit 2), after "unknown org command 'x'" for a mistyped
 * subcommand. A new key is printed exactly once, here, and never stored or
 * logged in clear; `key revoke` never echoes a whole key back. Org names
 * are checked by the store (sb_name_valid, the rule template names follow).
 */
#include <getopt.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/cli.h"
#include "cli/common.h"
#include "core/id.h"
#include "store/key_changes.h"

enum {
    F_DATA_DIR = 1 << 0,
    F_ORG = 1 << 1,
    F_NAME = 1 << 2,
};

/* Parsed command line; strings point into argv. */
struct args {
    const char *data_dir;
    const char *org;
    const char *name;
    int seen;               /* F_* flags given */
    char **pos;             /* positional arguments after the subcommand */
    int npos;
};

struct subcommand {
    const char *verb;
    const char *name;
    const char *usage;      /* after "usage: sandbase " */
    int allowed;            /* F_* flags accepted (--data-dir always is) */
    int required;           /* F_* flags that must be given */
    int npos;               /* exact number of positional arguments */
    int (*run)(struct sb_store *store, const struct args *a, struct sb_err *err);
};

/* ---- output helpers ---- */

static void format_time(int64_t ms, char *out, size_t len)
{
    if (ms == 0)
        snprintf(out, len, "never");
    else
        sb_time_rfc3339(ms, out, len);
}

static const char *or_dash(const char *s)
{
    return s && *s ? s : "-";
}

/* ---- org ---- */

static int org_create(struct sb_store *store, const struct args *a, struct sb_err *err)
{
    struct sb_org org;
    if (store_org_create(store, a->pos[0], &org, err) < 0)
        return -1;
    printf("%s %s\n", org.id, org.name);
    return 0;
}

static int org_list(struct sb_store *store, const struct args *a, struct sb_err *err)
{
    struct sb_org *orgs;
    size_t n;
    if (store_org_list(store, &orgs, &n, err) < 0)
        return -1;
    printf("%-24s  %-24s  %s\n", "ID", "NAME", "CREATED");
    for (size_t i = 0; i < n; i++) {
        char created[32];
        format_time(orgs[i].created_at, created, sizeof created);
        printf("%-24s  %-24s  %s\n", orgs[i].id, orgs[i].name, created);
    }
    free(orgs);
    return 0;
}

/* ---- key ---- */

static void print_new_key(const char *key, const struct sb_api_key *row)
{
    if (!isatty(STDOUT_FILENO)) {
        printf("%s\n", key);    /* the key alone, for scripts */
        return;
    }
    printf("New API key for org %s:\n\n"
           "    %s\n\n"
           "  prefix: %s\n"
           "  label:  %s\n"
           "  E2B clients may send the same secret as e2b_%s.\n\n"
           "Store it now: it is not shown again.\n",
           row->org_name, key, row->prefix, or_dash(row->label), key + strlen("sk-sb-"));
}

static int key_create(struct sb_store *store, const struct args *a, struct sb_err *err)
{
    struct sb_org org;
    if (store_org_get_by_name(store, a->org, &org, err) < 0)
        return -1;
    char key[SB_APIKEY_MAX];
    struct sb_api_key row;
    if (cli_new_key(store, org.id, a->name ? a->name : "", key, &row, err) < 0)
        return -1;
    print_new_key(key, &row);
    fflush(stdout);
    sodium_memzero(key, sizeof key);
    return 0;
}

static int key_list(struct sb_store *store, const struct args *a, struct sb_err *err)
{
    struct sb_org org;
    if (a->org && store_org_get_by_name(store, a->org, &org, err) < 0)
        return -1;
    struct sb_api_key *keys;
    size_t n;
    if (store_key_list(store, a->org ? org.id : NULL, &keys, &n, err) < 0)
        return -1;
    printf("%-16s  %-20s  %-20s  %-20s  %-20s  %s\n", "PREFIX", "LABEL", "ORG", "CREATED", "LAST USED", "STATUS");
    for (size_t i = 0; i < n; i++) {
        char created[32], used[32];
        format_time(keys[i].created_at, created, sizeof created);
        format_time(keys[i].last_used_at, used, sizeof used);
        printf("%-16s  %-20s  %-20s  %-20s  %-20s  %s\n", keys[i].prefix, or_dash(keys[i].label),
               keys[i].org_name, created, used, keys[i].revoked_at ? "revoked" : "active");
    }
    free(keys);
    return 0;
}

#define KEY_MARKER "sk-sb-"
#define E2B_MARKER "e2b_"
#define KEY_PREFIX_HEX 8    /* hex characters a stored prefix keeps (core/apikey.h) */

/* What `key revoke ARG` names: the whole key in either spelling (then
 * *hash_given = 1 and the store matches its hash), or a leading part of a
 * prefix as `key list` shows it, "sk-sb-" (or "e2b_") and 1 to 8 lowercase
 * hex characters. The error never repeats more of ARG than a prefix. */
static int revoke_target(const char *arg, char prefix[SB_APIKEY_PREFIX_MAX],
                         unsigned char hash[SB_APIKEY_HASH_LEN], int *hash_given, struct sb_err *err)
{
    struct sb_err not_a_key = {0};
    *hash_given = apikey_parse(arg, prefix, hash, &not_a_key) == 0;
    if (*hash_given)
        return 0;
    const char *hex = NULL;
    if (strncmp(arg, KEY_MARKER, strlen(KEY_MARKER)) == 0)
        hex = arg + strlen(KEY_MARKER);
    else if (strncmp(arg, E2B_MARKER, strlen(E2B_MARKER)) == 0)
        hex = arg + strlen(E2B_MARKER);
    size_t n = hex ? strspn(hex, "0123456789abcdef") : 0;
    if (!hex || n == 0 || n > KEY_PREFIX_HEX || hex[n] != '\0')
        return sb_err_set(err, 400,
                          "'%.*s%s' is neither a key prefix nor a whole API key: give " KEY_MARKER
                          " and 1 to %d hex characters, as `sandbase key list` shows them, or the whole key",
                          KEY_PREFIX_HEX + (int)strlen(KEY_MARKER), arg,
                          strlen(arg) > KEY_PREFIX_HEX + strlen(KEY_MARKER) ? "..." : "", KEY_PREFIX_HEX);
    snprintf(prefix, SB_APIKEY_PREFIX_MAX, KEY_MARKER "%.*s", (int)n, hex);
    return 0;
}

static int key_revoke(struct sb_store *store, const struct args *a, struct sb_err *err)
{
    char prefix[SB_APIKEY_PREFIX_MAX];
    unsigned char hash[SB_APIKEY_HASH_LEN];
    int hash_given;
    if (revoke_target(a->pos[0], prefix, hash, &hash_given, err) < 0)
        return -1;
    struct sb_api_key key;
    if (store_key_revoke(store, prefix, hash_given ? hash : NULL, &key, err) < 0)
        return -1;
    /* A running server caches keys it checked: this makes it drop them. */
    if (store_keys_changed_mark(cli_data_dir(a->data_dir), err) < 0)
        return sb_err_prefix(err, "key %s is revoked, but a running server may accept it until it "
                             "restarts", key.prefix);
    printf("revoked API key %s (label %s, org %s)\n", key.prefix, or_dash(key.label), key.org_name);
    return 0;
}

static const struct subcommand subcommands[] = {
    {"org", "create", "org create NAME [--data-dir DIR]", 0, 0, 1, org_create},
    {"org", "list", "org list [--data-dir DIR]", 0, 0, 0, org_list},
    {"key", "create", "key create --org NAME [--name LABEL] [--data-dir DIR]", F_ORG | F_NAME, F_ORG, 0,
     key_create},
    {"key", "list", "key list [--org NAME] [--data-dir DIR]", F_ORG, 0, 0, key_list},
    {"key", "revoke", "key revoke PREFIX|KEY [--data-dir DIR]", 0, 0, 1, key_revoke},
};
#define N_SUBCOMMANDS (sizeof subcommands / sizeof subcommands[0])

/* ---- parsing and dispatch ---- */

/* Prints the usage of one subcommand, or of every subcommand of verb, on one
 * line; returns the usage exit code. */
static int usage(FILE *out, const char *verb, const struct subcommand *sub)
{
    fputs("usage: sandbase ", out);
    if (sub) {
        fputs(sub->usage, out);
    } else {
        const char *sep = "";
        for (size_t i = 0; i < N_SUBCOMMANDS; i++) {
            if (strcmp(subcommands[i].verb, verb) != 0)
                continue;
            fprintf(out, "%s%s", sep, subcommands[i].usage);
            sep = " | ";
        }
    }
    fputc('\n', out);
    return 2;
}

/* Parses every flag wherever it appears (GNU getopt permutes argv). Returns
 * 0, 1 for --help, or -1 after printing what was wrong. */
static int parse_args(int argc, char **argv, struct args *a)
{
    static const struct option options[] = {
        {"data-dir", required_argument, NULL, 'd'},
        {"org", required_argument, NULL, 'o'},
        {"name", required_argument, NULL, 'n'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    memset(a, 0, sizeof *a);
    optind = 0;     /* 0, not 1: also resets GNU getopt's permutation state */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", options, NULL)) != -1) {
        switch (c) {
        case 'd': a->data_dir = optarg; a->seen |= F_DATA_DIR; break;
        case 'o': a->org = optarg; a->seen |= F_ORG; break;
        case 'n': a->name = optarg; a->seen |= F_NAME; break;
        case 'h': return 1;
        case ':':
            fprintf(stderr, "sandbase: %s needs a value\n", argv[optind - 1]);
            return -1;
        default:
            fprintf(stderr, "sandbase: unknown option '%s'\n", argv[optind - 1]);
            return -1;
        }
    }
    a->pos = argv + optind;
    a->npos = argc - optind;
    return 0;
}

static const struct subcommand *find_subcommand(const char *verb, const char *name)
{
    for (size_t i = 0; name && i < N_SUBCOMMANDS; i++)
        if (strcmp(subcommands[i].verb, verb) == 0 && strcmp(subcommands[i].name, name) == 0)
            return &subcommands[i];
    return NULL;
}

static int run_verb(const char *verb, int argc, char **argv)
{
    struct args a;
    int parsed = parse_args(argc, argv, &a);
    const struct subcommand *sub = find_subcommand(verb, a.npos > 0 ? a.pos[0] : NULL);
    if (parsed == 1) {
        usage(stdout, verb, sub);
        return 0;
    }
    if (parsed == 0 && !sub && a.npos > 0)
        fprintf(stderr, "sandbase: unknown %s command '%s'\n", verb, a.pos[0]);
    if (parsed < 0 || !sub)
        return usage(stderr, verb, sub);
    a.pos++;
    a.npos--;
    if (a.npos != sub->npos || (a.seen & ~(sub->allowed | F_DATA_DIR)) ||
        (a.seen & sub->required) != sub->required)
        return usage(stderr, verb, sub);

    struct sb_store *store;
    if (cli_open_store(cli_data_dir(a.data_dir), &store) < 0)
        return 1;
    struct sb_err err = {0};
    int rc = sub->run(store, &a, &err) < 0 ? cli_fail(&err) : 0;
    store_close(store);
    return rc;
}

int cli_org(int argc, char **argv)
{
    return run_verb("org", argc, argv);
}

int cli_key(int argc, char **argv)
{
    return run_verb("key", argc, argv);
}
