/*
 * common.c - helpers shared by the CLI verbs (see common.h).
 *
 * Owns nothing long-lived. Prints only in the functions whose contract says
 * so (cli_open_store, cli_fail); never prints a key itself, and never
 * creates a data dir (only `serve --bootstrap` does).
 */
#include "cli/common.h"

#include <errno.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

const char *cli_data_dir(const char *flag_value)
{
    if (flag_value && *flag_value)
        return flag_value;
    const char *env = getenv("SANDBASE_DATA_DIR");
    return env && *env ? env : CLI_DEFAULT_DATA_DIR;
}

int cli_fail(const struct sb_err *err)
{
    fprintf(stderr, "sandbase: %s\n", err->msg[0] ? err->msg : "unknown error");
    return 1;
}

int cli_check_data_dir(const char *data_dir, struct sb_err *err)
{
    struct stat st;
    if (stat(data_dir, &st) < 0) {
        if (errno == ENOENT)
            return sb_err_set(err, 404,
                              "data dir %s does not exist; create it with `sandbase serve --bootstrap "
                              "--data-dir %s` (what `make run` does), or point --data-dir or "
                              "SANDBASE_DATA_DIR at an existing one",
                              data_dir, data_dir);
        return sb_err_sys(err, 500, "cannot use data dir %s", data_dir);
    }
    if (!S_ISDIR(st.st_mode))
        return sb_err_set(err, 400, "data dir %s is not a directory; point --data-dir at the data dir", data_dir);
    return 0;
}

int cli_open_store(const char *data_dir, struct sb_store **out)
{
    struct sb_err err = {0};
    *out = NULL;
    if (cli_check_data_dir(data_dir, &err) < 0 || store_open(data_dir, out, &err) < 0) {
        cli_fail(&err);
        return -1;
    }
    return 0;
}

int cli_new_key(struct sb_store *store, const char *org_id, const char *label,
                char key_out[SB_APIKEY_MAX], struct sb_api_key *out, struct sb_err *err)
{
    char prefix[SB_APIKEY_PREFIX_MAX];
    unsigned char hash[SB_APIKEY_HASH_LEN];
    if (apikey_generate(key_out, prefix, hash) < 0)
        return sb_err_set(err, 500, "cannot generate an API key: libsodium failed to initialise");
    if (store_key_insert(store, org_id, prefix, hash, label, out, err) < 0) {
        sodium_memzero(key_out, SB_APIKEY_MAX);
        return -1;
    }
    return 0;
}

int store_bootstrap_default(struct sb_store *store, char key_out[SB_APIKEY_MAX], int *created,
                            struct sb_err *err)
{
    size_t orgs = 0;
    *created = 0;
    key_out[0] = '\0';
    if (store_org_count(store, &orgs, err) < 0)
        return sb_err_prefix(err, "bootstrap");
    if (orgs > 0)
        return 0;
    struct sb_org org;
    if (store_org_create(store, "default", &org, err) < 0 ||
        cli_new_key(store, org.id, "default", key_out, NULL, err) < 0)
        return sb_err_prefix(err, "bootstrap");
    *created = 1;
    return 0;
}
