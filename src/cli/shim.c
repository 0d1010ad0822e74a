/*
 * shim.c - the internal `shim` verb: serve starts one `sandbase shim` per
 * sandbox (runtime/shim_client.c); the verb hands its argv to the shim's own
 * entry point, so the shim layer never includes the CLI's headers.
 */
#include "cli/cli.h"
#include "shim/shim.h"

int cli_shim(int argc, char **argv)
{
    return shim_main(argc, argv);
}
