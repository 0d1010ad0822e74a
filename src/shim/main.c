/* main.c - placeholder until the shim lands (owner: shim helper). */
#include <stdio.h>
#include "cli/cli.h"
int cli_shim(int argc, char **argv) { (void)argc; (void)argv; fputs("shim: not built yet\n", stderr); return 1; }
