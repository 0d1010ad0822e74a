/* org_key.c - placeholder until the store lands (owner: store helper). */
#include <stdio.h>
#include "cli/cli.h"
int cli_org(int argc, char **argv) { (void)argc; (void)argv; fputs("org: not built yet\n", stderr); return 1; }
int cli_key(int argc, char **argv) { (void)argc; (void)argv; fputs("key: not built yet\n", stderr); return 1; }
