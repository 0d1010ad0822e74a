/*
 * bootstrap.c - first-start set-up for `make run` (see bootstrap.h).
 */
#include "cli/bootstrap.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/common.h"
#include "runtime/template.h"

struct builtin_template {
    const char *name;
    const char *packages;
};

static const struct builtin_template builtins[] = {
    /* What E2B's base template gives the code written for it: python (Debian's
     * python-is-python3), git, curl, sudo (added to every debian build). */
    {"base", "bash,coreutils,python3,python-is-python3,ca-certificates,procps,curl,git"},
    {"code_interpreter",
     "bash,coreutils,python3,python-is-python3,ca-certificates,procps,curl,git,python3-numpy,python3-pandas,"
     "python3-matplotlib"},
};

static void print_progress(void *arg, const char *line)
{
    fprintf(stderr, "  [%s] %s\n", (const char *)arg, line);
}

static int ensure_template(const struct sb_config *cfg, const struct builtin_template *bt,
                           struct sb_err *err)
{
    struct sb_template tpl;
    struct sb_err lerr = {0};
    if (template_load(cfg->data_dir, bt->name, &tpl, &lerr) == 0) {
        template_clear(&tpl);
        return 0;
    }
    const char *source = getenv("SANDBASE_TEMPLATE_SOURCE");
    if (!source || strcmp(source, "host") != 0) {
        fprintf(stderr, "sandbase: building template %s from Debian bookworm (first start only; "
                        "takes a few minutes)\n", bt->name);
        struct sb_err berr = {0};
        if (template_build_debian(cfg->data_dir, bt->name, cfg->uid_base, bt->packages, NULL, 0,
                                  print_progress, (void *)bt->name, &berr) == 0)
            return 0;
        fprintf(stderr, "sandbase: could not build %s from Debian (%s)\n", bt->name, berr.msg);
    }
    fprintf(stderr, "sandbase: using a --from host template for %s instead (the host's /usr, "
                    "read-only); rebuild later with: sandbase template build %s --from debian\n",
            bt->name, bt->name);
    if (template_build_host(cfg->data_dir, bt->name, cfg->uid_base, 0, err) < 0)
        return sb_err_prefix(err, "template %s", bt->name);
    return 0;
}

int bootstrap_run(const struct sb_config *cfg, struct sb_store *store,
                  struct bootstrap_result *out, struct sb_err *err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < sizeof builtins / sizeof builtins[0]; i++)
        if (ensure_template(cfg, &builtins[i], err) < 0)
            return -1;
    return store_bootstrap_default(store, out->key, &out->key_created, err);
}

void bootstrap_print_welcome(const struct sb_config *cfg, unsigned port,
                             const struct bootstrap_result *res)
{
    char host[128];
    snprintf(host, sizeof host, "%s", cfg->listen);
    char *colon = strrchr(host, ':');
    if (colon)
        *colon = '\0';
    const char *key = res->key_created ? res->key : "$SANDBASE_API_KEY";
    printf("\n");
    if (res->key_created)
        printf("Created org \"default\" and an API key. Store it now; it is not shown again:\n\n"
               "  export SANDBASE_API_KEY=%s\n\n", res->key);
    else
        printf("Use an existing API key (set SANDBASE_API_KEY), or make one with:\n"
               "  build/sandbase key create --org default --data-dir %s\n\n", cfg->data_dir);
    printf("Try it:\n\n"
           "  curl -s -X POST http://%s:%u/sandboxes -H 'Authorization: Bearer %s' \\\n"
           "       -H 'Content-Type: application/json' -d '{\"templateID\":\"base\"}'\n\n",
           host, port, key);
    fflush(stdout);
}
