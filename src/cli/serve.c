/* serve.c - placeholder until the server lands (owner: lead). */
#include <stdio.h>
#include "cli/cli.h"
int cli_serve(int argc, char **argv) { (void)argc; (void)argv; fputs("serve: not built yet\n", stderr); return 1; }
