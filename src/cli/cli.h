/*
 * cli.h - the subcommands of the one `sandbase` executable.
 *
 * Each verb parses its own flags (getopt_long), prints a one-line usage on a
 * wrong call and returns a process exit code (0 ok, 1 failure, 2 usage).
 * Verbs that need the data dir take --data-dir DIR (or SANDBASE_DATA_DIR);
 * the client verbs (sandbox, exec, shell) talk to a running server instead
 * (SANDBASE_URL, SANDBASE_API_KEY; cli/client.h).
 */
#ifndef SB_CLI_CLI_H
#define SB_CLI_CLI_H

int cli_serve(int argc, char **argv);      /* cli/serve.c */
int cli_org(int argc, char **argv);        /* cli/org_key.c */
int cli_key(int argc, char **argv);        /* cli/org_key.c */
int cli_template(int argc, char **argv);   /* cli/template.c */
int cli_sandbox(int argc, char **argv);    /* cli/sandbox.c: a server's sandboxes */
int cli_exec(int argc, char **argv);       /* cli/exec.c */
int cli_shell(int argc, char **argv);      /* cli/exec.c */

#endif
