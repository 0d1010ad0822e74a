/*
 * common.h - what every CLI verb that touches the data dir shares: resolving
 * --data-dir, refusing a data dir that does not exist, opening the store
 * with a printed error, printing errors the one way ("sandbase: <message>"),
 * making API keys, and the first-start bootstrap used by `serve --bootstrap`.
 */
#ifndef SB_CLI_COMMON_H
#define SB_CLI_COMMON_H

#include "core/apikey.h"
#include "core/err.h"
#include "store/store.h"

#define CLI_DEFAULT_DATA_DIR "./sandbase-data"

/* The data dir to use: flag_value if given, else $SANDBASE_DATA_DIR if set
 * and non-empty, else ./sandbase-data. The result is not owned by the caller. */
const char *cli_data_dir(const char *flag_value);

/* 0 when data_dir is an existing directory. Otherwise -1 with err saying
 * what to do (404 "data dir DIR does not exist; create it with `sandbase
 * serve --bootstrap --data-dir DIR` ..."): the admin verbs never create a
 * data dir, so a mistyped path is an error, not a fresh empty database. */
int cli_check_data_dir(const char *data_dir, struct sb_err *err);

/* Opens (creating the database and migrating as needed) the store in
 * data_dir, which must exist (cli_check_data_dir). On failure prints
 * "sandbase: <message>" to stderr and returns -1. The caller owns *out and
 * closes it with store_close(). */
int cli_open_store(const char *data_dir, struct sb_store **out);

/* Prints "sandbase: <err->msg>" to stderr and returns 1 (the exit code). */
int cli_fail(const struct sb_err *err);

/* Generates a key for org_id, stores its hash and writes the key text (shown
 * once; the caller should wipe it) to key_out; out (may be NULL) gets the row. */
int cli_new_key(struct sb_store *store, const char *org_id, const char *label,
                char key_out[SB_APIKEY_MAX], struct sb_api_key *out, struct sb_err *err);

/* First start: if no org exists, creates org "default" with a key labelled
 * "default", writes the key text to key_out and sets *created = 1; otherwise
 * sets *created = 0 and leaves key_out empty. */
int store_bootstrap_default(struct sb_store *store, char key_out[SB_APIKEY_MAX], int *created,
                            struct sb_err *err);

#endif
