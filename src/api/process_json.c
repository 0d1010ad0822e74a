/*
 * process_json.c - the REST shapes of processes and the signal names (see
 * process_json.h).
 */
#include "api/process_json.h"

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "core/id.h"

void api_process_id(json_t *entry, char out[16])
{
    snprintf(out, 16, "%lld", (long long)json_integer_value(json_object_get(entry, "pid")));
}

static json_t *time_or_null(json_t *entry, const char *field)
{
    json_t *ms = json_object_get(entry, field);
    if (!json_is_integer(ms))
        return json_null();
    char text[40];
    sb_time_rfc3339(json_integer_value(ms), text, sizeof text);
    return json_string(text);
}

json_t *api_process_view(json_t *entry)
{
    char id[16];
    api_process_id(entry, id);
    json_t *argv = json_object_get(entry, "argv");
    json_t *args = json_array();
    for (size_t i = 1; i < json_array_size(argv); i++)
        json_array_append(args, json_array_get(argv, i));
    int running = json_is_true(json_object_get(entry, "running"));
    json_t *pty = json_object_get(entry, "pty");
    json_t *out = json_pack("{s:s, s:O, s:O, s:O, s:o, s:O, s:O, s:o, s:s}",
                            "processID", id, "pid", json_object_get(entry, "pid"),
                            "tag", json_object_get(entry, "tag") ? json_object_get(entry, "tag") : json_null(),
                            "cmd", json_array_size(argv) ? json_array_get(argv, 0) : json_null(), "args", args,
                            "cwd", json_object_get(entry, "cwd") ? json_object_get(entry, "cwd") : json_null(),
                            "user", json_object_get(entry, "user") ? json_object_get(entry, "user") : json_null(),
                            "pty", json_is_object(pty) ? json_deep_copy(pty) : json_null(),
                            "state", running ? "running" : "exited");
    if (!out)
        return NULL;
    json_object_set_new(out, "exitCode", running ? json_null() : json_integer(json_integer_value(
                                                                     json_object_get(entry, "exit_code"))));
    json_object_set_new(out, "startedAt", time_or_null(entry, "started_at_ms"));
    json_object_set_new(out, "endedAt", running ? json_null() : time_or_null(entry, "ended_at_ms"));
    return out;
}

json_t *api_process_result(json_t *entry)
{
    json_int_t sig = json_integer_value(json_object_get(entry, "signal"));
    return json_pack("{s:I, s:o, s:b, s:b, s:I}",
                     "exitCode", json_integer_value(json_object_get(entry, "exit_code")),
                     "signal", sig ? json_integer(sig) : json_null(),
                     "oomKilled", json_is_true(json_object_get(entry, "oom_killed")),
                     "timedOut", json_is_true(json_object_get(entry, "timed_out")),
                     "durationMs", json_integer_value(json_object_get(entry, "duration_ms")));
}

static const struct {
    const char *name;
    int sig;
} signals[] = {
    {"HUP", SIGHUP},   {"INT", SIGINT},   {"QUIT", SIGQUIT}, {"KILL", SIGKILL}, {"USR1", SIGUSR1},
    {"USR2", SIGUSR2}, {"PIPE", SIGPIPE}, {"ALRM", SIGALRM}, {"TERM", SIGTERM}, {"CONT", SIGCONT},
    {"STOP", SIGSTOP}, {"TSTP", SIGTSTP}, {"WINCH", SIGWINCH},
};

int api_signal_parse(json_t *v, int *sig, struct sb_err *err)
{
    if (json_is_integer(v)) {
        json_int_t n = json_integer_value(v);
        if (n < 1 || n > 64)
            return sb_err_set(err, 400, "signal must be a number from 1 to 64 or a name like \"SIGTERM\"");
        *sig = (int)n;
        return 0;
    }
    const char *name = json_string_value(v);
    if (!name)
        return sb_err_set(err, 400, "signal must be a name like \"SIGTERM\" or a number");
    const char *bare = strncasecmp(name, "SIG", 3) == 0 ? name + 3 : name;
    for (size_t i = 0; i < sizeof signals / sizeof signals[0]; i++)
        if (strcasecmp(bare, signals[i].name) == 0) {
            *sig = signals[i].sig;
            return 0;
        }
    return sb_err_set(err, 400, "unknown signal \"%.32s\" (use SIGHUP, SIGINT, SIGQUIT, SIGKILL, SIGUSR1, "
                      "SIGUSR2, SIGPIPE, SIGALRM, SIGTERM, SIGCONT, SIGSTOP, SIGTSTP, SIGWINCH or a number)", name);
}
