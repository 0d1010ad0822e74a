/*
 * shim.h - the shim process's entry point (shim/main.c): what `sandbase
 * shim …` runs. The CLI's `shim` verb (cli/shim.c) hands argv here.
 */
#ifndef SB_SHIM_SHIM_H
#define SB_SHIM_SHIM_H

/* argv[0] is "shim". Returns the process exit code. */
int shim_main(int argc, char **argv);

#endif
