/*
 * bootstrap.h - what `make run` (serve --bootstrap) does on a first start:
 * make sure the built-in templates exist and that there is an org with a key,
 * and afterwards print how to call the server.
 */
#ifndef SB_CLI_BOOTSTRAP_H
#define SB_CLI_BOOTSTRAP_H

#include "core/apikey.h"
#include "core/config.h"
#include "core/err.h"
#include "store/store.h"

struct bootstrap_result {
    int key_created;                /* 1: key holds a key shown now and never again */
    char key[SB_APIKEY_MAX];
};

/* Builds `base` and `code_interpreter` from Debian if missing (falling back
 * to --from host templates under those names when the mirror cannot be
 * reached, or when SANDBASE_TEMPLATE_SOURCE=host), then creates org
 * "default" with a key if no org exists. Progress goes to stderr. */
int bootstrap_run(const struct sb_config *cfg, struct sb_store *store,
                  struct bootstrap_result *out, struct sb_err *err);
/* Prints the key (if new) and a curl line that works against this server. */
void bootstrap_print_welcome(const struct sb_config *cfg, unsigned port,
                             const struct bootstrap_result *res);

#endif
