/*
 * main_shim.c - `sandbase-shim`: the shim as its own small executable, one
 * process per sandbox (started by serve's shim_spawn, runtime/shim_spawn.c).
 * It links only the shim, proto and core layers: no HTTP server, TLS or
 * SQLite is mapped into the process every sandbox pays for.
 */
#include "shim/shim.h"

int main(int argc, char **argv)
{
    return shim_main(argc, argv);
}
