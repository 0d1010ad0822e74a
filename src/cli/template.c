/* template.c - placeholder until templates land (owner: template helper). */
#include <stdio.h>
#include "cli/cli.h"
int cli_template(int argc, char **argv) { (void)argc; (void)argv; fputs("template: not built yet\n", stderr); return 1; }
