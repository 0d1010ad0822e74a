/*
 * sandbox.c - `sandbase sandbox create [--template T] | list | get ID |
 * kill ID`: the sandbox routes of a running server (cli/client.h), with
 * Docker's habits: create prints the new id alone, list a table, get the
 * JSON object, kill nothing. Exit 0, 1 when the server refused (its
 * message on stderr), 2 on a wrong call.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/common.h"

static const char usage[] =
    "usage: sandbase sandbox create [--template T] | sandbox list | sandbox get ID | sandbox kill ID\n"
    "  talks to the server at SANDBASE_URL (default " CLI_DEFAULT_URL ") with SANDBASE_API_KEY\n";

static int create(int argc, char **argv)
{
    static const struct option opts[] = {{"template", required_argument, NULL, 't'}, {"help", no_argument, NULL, 'h'},
                                         {0}};
    const char *tpl = "base";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "t:h", opts, NULL)) != -1) {
        if (c == 't') {
            tpl = optarg;
        } else {
            fputs(usage, c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind != argc) {
        fputs(usage, stderr);
        return 2;
    }
    struct sb_err err = {0};
    int status;
    json_t *out;
    json_t *body = json_pack("{s:s}", "templateID", tpl);
    int rc = cli_http("POST", "/sandboxes", body, &status, &out, &err);
    json_decref(body);
    if (rc < 0)
        return cli_fail(&err);
    printf("%s\n", json_string_value(json_object_get(out, "sandboxID")));
    json_decref(out);
    return 0;
}

static int list(void)
{
    struct sb_err err = {0};
    int status;
    json_t *out;
    if (cli_http("GET", "/sandboxes", NULL, &status, &out, &err) < 0)
        return cli_fail(&err);
    printf("%-26s %-18s %-9s %-21s %s\n", "SANDBOX", "TEMPLATE", "STATUS", "STARTED", "ENDS");
    size_t i;
    json_t *sb;
    json_array_foreach(out, i, sb)
        printf("%-26s %-18s %-9s %-21s %s\n", json_string_value(json_object_get(sb, "sandboxID")),
               json_string_value(json_object_get(sb, "templateID")), json_string_value(json_object_get(sb, "status")),
               json_string_value(json_object_get(sb, "startedAt")), json_string_value(json_object_get(sb, "endAt")));
    json_decref(out);
    return 0;
}

static int one(const char *method, const char *id)
{
    char path[128];
    if (strlen(id) > 64 || strpbrk(id, "/?#% ")) {
        fprintf(stderr, "sandbase: invalid sandbox id: %s\n", id);
        return 1;
    }
    snprintf(path, sizeof path, "/sandboxes/%s", id);
    struct sb_err err = {0};
    int status;
    json_t *out;
    if (cli_http(method, path, NULL, &status, &out, &err) < 0)
        return cli_fail(&err);
    if (out) {
        char *text = json_dumps(out, JSON_INDENT(2));
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(out);
    }
    return 0;
}

int cli_sandbox(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : NULL;
    if (sub && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0)) {
        fputs(usage, stdout);
        return 0;
    }
    if (sub && strcmp(sub, "create") == 0)
        return create(argc - 1, argv + 1);
    if (sub && strcmp(sub, "list") == 0 && argc == 2)
        return list();
    if (sub && strcmp(sub, "get") == 0 && argc == 3)
        return one("GET", argv[2]);
    if (sub && strcmp(sub, "kill") == 0 && argc == 3)
        return one("DELETE", argv[2]);
    fputs(usage, stderr);
    return 2;
}
