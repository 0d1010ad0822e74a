/*
 * exec.c - `sandbase exec [-i] [-t] SANDBOX -- CMD [ARGS...]` and
 * `sandbase shell SANDBOX`, Docker's habits over the REST API: the command
 * starts in the background (stdin open with -i, on a PTY of the local
 * terminal's size with -t), then the CLI attaches to it over the attach
 * WebSocket (docs/API.md), writes its output to stdout and stderr, forwards
 * stdin (-i), Ctrl-C as SIGINT (without -t; with -t the byte goes to the
 * PTY, whose line discipline makes it SIGINT), SIGTERM likewise, the
 * terminal's size on SIGWINCH (-t), and exits with the command's exit code
 * (128 + N when signal N killed it; 127 / 126 when it was not found / not
 * executable, as in a shell; 1 when the server failed).
 *
 * With -t and a terminal on stdin, the local terminal is put in raw mode
 * and restored on every way out: a normal end, an error, a terminating
 * signal (restored, then the signal re-raised) and exit() from anywhere
 * (atexit). One poll loop over the socket, stdin and a self-pipe the signal
 * handlers write to; wslay does the WebSocket framing.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <termios.h>
#include <unistd.h>
#include <wslay/wslay.h>

#include "cli/cli.h"
#include "cli/client.h"
#include "cli/common.h"
#include "core/fs.h"

static const char exec_usage[] =
    "usage: sandbase exec [-i] [-t] SANDBOX -- CMD [ARGS...]\n"
    "  -i  forward stdin to the command (its stdin closes at end of input)\n"
    "  -t  run it on a terminal of this terminal's size (raw mode, resized on SIGWINCH)\n"
    "  exits with the command's exit code (128+N when signal N killed it); Ctrl-C sends SIGINT\n"
    "  talks to the server at SANDBASE_URL (default " CLI_DEFAULT_URL ") with SANDBASE_API_KEY\n";
static const char shell_usage[] =
    "usage: sandbase shell SANDBOX\n"
    "  an interactive shell in the sandbox (bash if it has one): sandbase exec -i -t SANDBOX -- sh\n";

/* ---- the local terminal ---- */

static struct termios saved_tty;
static int tty_raw;                 /* saved_tty holds what to restore */
static int signal_pipe[2] = {-1, -1};

static void tty_restore(void)
{
    if (tty_raw) {
        tcsetattr(STDIN_FILENO, TCSADRAIN, &saved_tty);
        tty_raw = 0;
    }
}

static int tty_make_raw(void)
{
    if (tcgetattr(STDIN_FILENO, &saved_tty) < 0)
        return -1;
    struct termios raw = saved_tty;
    cfmakeraw(&raw);
    if (tcsetattr(STDIN_FILENO, TCSADRAIN, &raw) < 0)
        return -1;
    tty_raw = 1;
    atexit(tty_restore);
    return 0;
}

static void window_size(int *cols, int *rows)
{
    struct winsize ws;
    *cols = 80;
    *rows = 24;
    if ((ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 || ioctl(STDIN_FILENO, TIOCGWINSZ, &ws) == 0) &&
        ws.ws_col > 0 && ws.ws_row > 0) {
        *cols = ws.ws_col;
        *rows = ws.ws_row;
    }
}

static void on_signal(int sig)
{
    unsigned char b = (unsigned char)sig;
    int saved = errno;
    if (write(signal_pipe[1], &b, 1) < 0) {
        /* the pipe is full: that signal is already pending */
    }
    errno = saved;
}

/* ---- the WebSocket ---- */

struct session {
    int fd;
    char *extra;                    /* bytes that came with the handshake answer */
    size_t extra_len, extra_off;
    int pty;
    int exit_code;                  /* -1 until the exit frame */
    int closed;                     /* the server closed */
    int failed;                     /* an error frame ended it */
    wslay_event_context_ptr ctx;
};

static ssize_t ws_recv(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, int flags, void *user)
{
    struct session *s = user;
    if (s->extra_off < s->extra_len) {
        size_t n = s->extra_len - s->extra_off < len ? s->extra_len - s->extra_off : len;
        memcpy(buf, s->extra + s->extra_off, n);
        s->extra_off += n;
        return (ssize_t)n;
    }
    ssize_t n = recv(s->fd, buf, len, 0);
    if (n > 0)
        return n;
    wslay_event_set_error(ctx, n < 0 && (errno == EAGAIN || errno == EINTR) ? WSLAY_ERR_WOULDBLOCK
                                                                            : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static ssize_t ws_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user)
{
    struct session *s = user;
    ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL);
    if (n >= 0)
        return n;
    wslay_event_set_error(ctx, errno == EAGAIN || errno == EINTR ? WSLAY_ERR_WOULDBLOCK
                                                                 : WSLAY_ERR_CALLBACK_FAILURE);
    return -1;
}

static int ws_mask(wslay_event_context_ptr ctx, uint8_t *buf, size_t len, void *user)
{
    return getrandom(buf, len, 0) == (ssize_t)len ? 0 : -1;
}

static void on_text(struct session *s, const uint8_t *data, size_t len)
{
    json_t *msg = json_loadb((const char *)data, len, 0, NULL);
    json_t *exit_obj = json_object_get(msg, "exit"), *error = json_object_get(msg, "error");
    if (exit_obj) {
        json_t *sig = json_object_get(exit_obj, "signal");
        s->exit_code = json_is_integer(sig) ? 128 + (int)json_integer_value(sig)
                                            : (int)json_integer_value(json_object_get(exit_obj, "exitCode"));
    } else if (error) {
        tty_restore();
        fprintf(stderr, "sandbase: %s\n", json_string_value(json_object_get(error, "message")));
    }
    json_decref(msg);
}

static void ws_on_msg(wslay_event_context_ptr ctx, const struct wslay_event_on_msg_recv_arg *m, void *user)
{
    struct session *s = user;
    if (m->opcode == WSLAY_TEXT_FRAME) {
        on_text(s, m->msg, m->msg_length);
    } else if (m->opcode == WSLAY_BINARY_FRAME && s->pty) {
        (void)sb_write_all(STDOUT_FILENO, m->msg, m->msg_length);
    } else if (m->opcode == WSLAY_BINARY_FRAME && m->msg_length > 0) {
        (void)sb_write_all(m->msg[0] == 2 ? STDERR_FILENO : STDOUT_FILENO, m->msg + 1, m->msg_length - 1);
    } else if (m->opcode == WSLAY_CONNECTION_CLOSE) {
        s->closed = 1;
        if (m->status_code >= 4000)
            s->failed = 1;
    }
}

static void send_text(struct session *s, json_t *obj)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    if (!text)
        return;
    struct wslay_event_msg msg = {WSLAY_TEXT_FRAME, (const uint8_t *)text, strlen(text)};
    wslay_event_queue_msg(s->ctx, &msg);
    free(text);
}

static void send_resize(struct session *s)
{
    int cols, rows;
    window_size(&cols, &rows);
    send_text(s, json_pack("{s:{s:i, s:i}}", "resize", "cols", cols, "rows", rows));
}

/* The poll loop: until the server closed. Returns the exit code. */
static int run_session(struct session *s, int forward_stdin)
{
    struct wslay_event_callbacks cb = {.recv_callback = ws_recv, .send_callback = ws_send,
                                       .genmask_callback = ws_mask, .on_msg_recv_callback = ws_on_msg};
    if (wslay_event_context_client_init(&s->ctx, &cb, s) != 0) {
        fprintf(stderr, "sandbase: out of memory\n");
        return 1;
    }
    fcntl(s->fd, F_SETFL, fcntl(s->fd, F_GETFL) | O_NONBLOCK);
    int stdin_open = forward_stdin;
    uint8_t buf[16384];
    while (!s->closed) {
        if (wslay_event_recv(s->ctx) != 0 || wslay_event_send(s->ctx) != 0)
            break;
        if (!wslay_event_want_read(s->ctx) && !wslay_event_want_write(s->ctx))
            break;
        int throttled = wslay_event_get_queued_msg_length(s->ctx) > 256 * 1024;
        struct pollfd p[3] = {
            {s->fd, (short)(POLLIN | (wslay_event_want_write(s->ctx) ? POLLOUT : 0)), 0},
            {signal_pipe[0], POLLIN, 0},
            {stdin_open && !throttled ? STDIN_FILENO : -1, POLLIN, 0},
        };
        if (poll(p, 3, s->extra_off < s->extra_len ? 0 : -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents & POLLIN) {
            unsigned char sig;
            while (read(signal_pipe[0], &sig, 1) == 1) {
                if (sig == SIGWINCH && s->pty)
                    send_resize(s);
                else if (sig == SIGINT || sig == SIGTERM)
                    send_text(s, json_pack("{s:s}", "signal", sig == SIGINT ? "SIGINT" : "SIGTERM"));
                else if (sig == SIGHUP)
                    return 128 + SIGHUP;        /* the terminal went away: leave, the process runs on */
            }
        }
        if (p[2].revents & (POLLIN | POLLHUP)) {
            ssize_t n = read(STDIN_FILENO, buf, sizeof buf);
            if (n > 0) {
                struct wslay_event_msg msg = {WSLAY_BINARY_FRAME, buf, (size_t)n};
                wslay_event_queue_msg(s->ctx, &msg);
            } else if (n == 0 || (errno != EINTR && errno != EAGAIN)) {
                stdin_open = 0;
                send_text(s, json_pack("{s:b}", "closeStdin", 1));
            }
        }
    }
    if (s->closed)
        wslay_event_send(s->ctx);       /* the close reply wslay queued */
    wslay_event_context_free(s->ctx);
    if (s->exit_code < 0) {
        tty_restore();
        if (!s->failed)
            fprintf(stderr, "sandbase: the connection to the server ended before the command did\n");
        return 1;
    }
    return s->exit_code;
}

/* Starts argv in the background and returns its processID (malloc'd), or
 * NULL (printed) with the exit code to use: 127 command not found, 126 not
 * executable (as a shell says), 1 otherwise. */
static char *start_process(const char *sandbox, int argc, char **argv, int interactive, int tty,
                           int *start_failure)
{
    json_t *args = json_array();
    for (int i = 1; i < argc; i++)
        json_array_append_new(args, json_string(argv[i]));
    json_t *body = json_pack("{s:s, s:o, s:b, s:i}", "cmd", argv[0], "args", args, "background", 1, "timeout", 0);
    if (interactive && !tty)
        json_object_set_new(body, "stdin", json_true());
    if (tty) {
        int cols, rows;
        window_size(&cols, &rows);
        json_object_set_new(body, "pty", json_pack("{s:i, s:i}", "cols", cols, "rows", rows));
    }
    char path[128];
    snprintf(path, sizeof path, "/sandboxes/%s/processes", sandbox);
    struct sb_err err = {0};
    int status;
    json_t *out;
    int rc = cli_http("POST", path, body, &status, &out, &err);
    json_decref(body);
    if (rc < 0) {
        cli_fail(&err);
        /* a shell's codes for a command that cannot run */
        *start_failure = strncmp(err.msg, "command not found", 17) == 0 ? 127
                       : strncmp(err.msg, "permission denied", 17) == 0 ? 126 : 1;
        return NULL;
    }
    char *id = strdup(json_string_value(json_object_get(out, "processID")) ?: "");
    json_decref(out);
    return id;
}

static int exec_in(const char *sandbox, int argc, char **argv, int interactive, int tty)
{
    if (strlen(sandbox) > 64 || strpbrk(sandbox, "/?#% ")) {
        fprintf(stderr, "sandbase: invalid sandbox id: %s\n", sandbox);
        return 1;
    }
    int start_failure = 1;
    char *pid = start_process(sandbox, argc, argv, interactive, tty, &start_failure);
    if (!pid)
        return start_failure;
    char path[160];
    snprintf(path, sizeof path, "/sandboxes/%s/processes/%s/attach", sandbox, pid);
    free(pid);
    struct session s = {.pty = tty, .exit_code = -1};
    struct sb_err err = {0};
    if ((s.fd = cli_ws_connect(path, &s.extra, &s.extra_len, &err)) < 0)
        return cli_fail(&err);
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0) {
        close(s.fd);
        free(s.extra);
        return 1;
    }
    struct sigaction sa = {.sa_handler = on_signal};
    sigemptyset(&sa.sa_mask);
    int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGWINCH};
    for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++)
        sigaction(sigs[i], &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    if (tty && isatty(STDIN_FILENO))
        tty_make_raw();
    int rc = run_session(&s, interactive || tty);
    tty_restore();
    close(s.fd);
    free(s.extra);
    return rc;
}

int cli_exec(int argc, char **argv)
{
    static const struct option opts[] = {{"interactive", no_argument, NULL, 'i'}, {"tty", no_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'}, {0}};
    int interactive = 0, tty = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "+ith", opts, NULL)) != -1) {
        if (c == 'i')
            interactive = 1;
        else if (c == 't')
            tty = 1;
        else {
            fputs(exec_usage, c == 'h' ? stdout : stderr);
            return c == 'h' ? 0 : 2;
        }
    }
    if (optind >= argc) {
        fputs(exec_usage, stderr);
        return 2;
    }
    const char *sandbox = argv[optind++];
    if (optind < argc && strcmp(argv[optind], "--") == 0)
        optind++;
    if (optind >= argc) {
        fputs(exec_usage, stderr);
        return 2;
    }
    return exec_in(sandbox, argc - optind, argv + optind, interactive, tty);
}

int cli_shell(int argc, char **argv)
{
    if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        fputs(shell_usage, stdout);
        return 0;
    }
    if (argc != 2) {
        fputs(shell_usage, stderr);
        return 2;
    }
    char *cmd[] = {"/bin/sh", "-c", "if command -v bash >/dev/null; then exec bash -i; else exec sh -i; fi", NULL};
    return exec_in(argv[1], 3, cmd, 1, 1);
}
