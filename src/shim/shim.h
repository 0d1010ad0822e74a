/*
 * shim.h - the shim process's entry point (shim/main.c): what
 * `sandbase-shim …` runs (src/main_shim.c hands it argv).
 */
#ifndef SB_SHIM_SHIM_H
#define SB_SHIM_SHIM_H

/* argv[0] is the program name. Returns the process exit code. */
int shim_main(int argc, char **argv);

#endif
