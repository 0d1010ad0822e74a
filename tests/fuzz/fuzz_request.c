/*
 * fuzz_request.c - a fuzz target for the request path: raw bytes (URL,
 * headers, JSON bodies, chunked framing) sent over a real socket to an
 * in-process server that is wired exactly like `sandbase serve` (real router
 * and handlers, SQLite store, registry, worker pool), but has no templates, so
 * nothing it accepts starts a sandbox.
 *
 * Each input gets its own connection (a batch of them in flight at once);
 * its answer must be a well-formed HTTP response, never a 500: input a
 * client controls gets a 4xx that says what is wrong. An incomplete request
 * (a body shorter than its Content-Length) may get no answer; the unmutated
 * seeds must. After every batch /health must still answer. A crash or an
 * ASan report fails the run.
 *
 * Built two ways:
 *  - by default (CTest, `make test` and `make test-asan`): its own main()
 *    mutates a seed corpus with a fixed-seed PRNG for SANDBASE_FUZZ_ITERATIONS
 *    inputs (default 2000), so a run is bounded and repeatable;
 *  - with -DSANDBASE_LIBFUZZER (clang -fsanitize=fuzzer): libFuzzer drives
 *    LLVMFuzzerTestOneInput instead.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api/app.h"
#include "core/apikey.h"
#include "core/fs.h"
#include "core/log.h"
#include "core/loop.h"
#include "runtime/registry.h"

#define ANSWER_IDLE_MS 300          /* silence on every connection of a batch ends it */
#define BATCH 64                    /* inputs in flight at once, each on its own connection */
#define MAX_INPUT (64 * 1024)

static struct sb_app app;
static pthread_t loop_thread;
static char api_key[SB_APIKEY_MAX];
static unsigned port;
static int started;
static unsigned long status_counts[600];
static unsigned long closed_without_answer;

/* ---- the server ---- */

static void *run_loop(void *arg)
{
    sb_loop_run(app.loop);
    return NULL;
}

static void die(const char *what, const struct sb_err *err)
{
    fprintf(stderr, "fuzz_request: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(1);
}

static void start_server(void)
{
    struct sb_err err = {0};
    char dir[] = "/tmp/sandbase-fuzz-XXXXXX";
    if (!mkdtemp(dir))
        die("mkdtemp", NULL);
    sb_config_defaults(&app.cfg);
    snprintf(app.cfg.data_dir, sizeof app.cfg.data_dir, "%s", dir);
    snprintf(app.cfg.listen, sizeof app.cfg.listen, "127.0.0.1:0");
    app.cfg.pool_size = 0;
    if (sb_config_finish(&app.cfg, &err) < 0 || store_open(app.cfg.data_dir, &app.store, &err) < 0)
        die("set-up", &err);
    struct sb_org org;
    char prefix[SB_APIKEY_PREFIX_MAX];
    unsigned char hash[SB_APIKEY_HASH_LEN];
    if (store_org_create(app.store, "fuzz", &org, &err) < 0 || apikey_generate(api_key, prefix, hash) < 0 ||
        store_key_insert(app.store, org.id, prefix, hash, "fuzz", NULL, &err) < 0)
        die("org and key", &err);
    sb_log_init(SB_LOG_TEXT, SB_LOG_ERROR);
    app.loop = sb_loop_new();
    app.router = sb_router_new();
    app.workers = sb_worker_pool_new(4);
    if (!app.loop || !app.router || !app.workers || api_register_routes(app.router) < 0)
        die("out of memory", NULL);
    app.registry = registry_new(&app.cfg, app.store, app.workers, &err);
    if (!app.registry || registry_serve_on(app.registry, app.loop, &err) < 0 ||
        registry_reconcile(app.registry, &err) < 0)
        die("registry", &err);
    struct sb_server_config scfg = {
        .listen = app.cfg.listen, .max_body = app.cfg.max_body, .auth = api_authenticate, .app_ctx = &app,
    };
    app.server = sb_server_new(app.loop, app.router, &scfg, &err);
    if (!app.server)
        die("server", &err);
    port = sb_server_port(app.server);
    signal(SIGPIPE, SIG_IGN);
    if (pthread_create(&loop_thread, NULL, run_loop, NULL) != 0)
        die("loop thread", NULL);
    started = 1;
}

/* ---- exchanges, a batch at a time ---- */

static int connect_server(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0)
        die("connect", NULL);
    return fd;
}

struct exchange {
    const uint8_t *data;
    size_t len;
    int fd;
    char head[64];          /* the first bytes of the answer */
    size_t got;
    int done;
};

/* The status of an answer: 100-599, 0 for none, -2 for bytes that are not
 * an HTTP response. */
static int answer_status(const struct exchange *x)
{
    int code = 0;
    char head[sizeof x->head + 1];
    memcpy(head, x->head, x->got);
    head[x->got] = '\0';
    if (x->got >= 12 && sscanf(head, "HTTP/1.%*1[01] %3d", &code) == 1 && code >= 100 && code < 600)
        return code;
    return x->got == 0 ? 0 : -2;
}

/* Sends every input on its own connection and reads answers until each
 * connection closed or all fell silent. A request that is
 * incomplete (a body shorter than its Content-Length) gets no answer, which
 * is right: those end up with got == 0. */
static void exchange_batch(struct exchange *xs, size_t n)
{
    struct pollfd pfds[BATCH];
    for (size_t i = 0; i < n; i++) {
        struct exchange *x = &xs[i];
        x->fd = connect_server();
        x->got = 0;
        x->done = 0;
        for (size_t off = 0; off < x->len;) {
            ssize_t sent = send(x->fd, x->data + off, x->len - off, MSG_NOSIGNAL);
            if (sent <= 0)
                break;      /* the server may close early (413, 400): fine */
            off += (size_t)sent;
        }
        /* No half-close: the server takes EOF for a client that left and
         * drops a deferred answer (499). */
    }
    uint64_t quiet_since = sb_now_ms();
    for (;;) {
        nfds_t count = 0;
        for (size_t i = 0; i < n; i++)
            if (!xs[i].done)
                pfds[count++] = (struct pollfd){.fd = xs[i].fd, .events = POLLIN};
        if (count == 0 || sb_now_ms() - quiet_since > ANSWER_IDLE_MS)
            break;
        if (poll(pfds, count, ANSWER_IDLE_MS) <= 0)
            continue;
        for (nfds_t k = 0; k < count; k++) {
            if (!pfds[k].revents)
                continue;
            for (size_t i = 0; i < n; i++) {
                struct exchange *x = &xs[i];
                if (x->done || x->fd != pfds[k].fd)
                    continue;
                char buf[4096];
                ssize_t r = recv(x->fd, buf, sizeof buf, 0);
                if (r <= 0) {
                    x->done = 1;
                    continue;
                }
                size_t keep = sizeof x->head - x->got;
                if (keep > (size_t)r)
                    keep = (size_t)r;
                memcpy(x->head + x->got, buf, keep);
                x->got += keep;
                quiet_since = sb_now_ms();
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        close(xs[i].fd);
}

/* Checks one answered exchange; -1 (after saying why) on a failure. */
static int check_answer(const struct exchange *x, int must_answer)
{
    int code = answer_status(x);
    const char *why = code == -2 ? "a malformed answer" : code == 500 ? "a 500 for client input"
                    : code == 0 && must_answer ? "no answer to a complete request" : NULL;
    if (why) {
        fprintf(stderr, "fuzz_request: %s; input:\n%.*s\n", why, (int)(x->len > 512 ? 512 : x->len),
                (const char *)x->data);
        return -1;
    }
    if (code == 0)
        closed_without_answer++;
    else
        status_counts[code]++;
    return 0;
}

static int health_ok(void)
{
    static const char req[] = "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    struct exchange x = {.data = (const uint8_t *)req, .len = sizeof req - 1};
    exchange_batch(&x, 1);
    return answer_status(&x) == 200;
}

/* ---- libFuzzer entry ---- */

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!started)
        start_server();
    struct exchange x = {.data = data, .len = size};
    exchange_batch(&x, 1);
    if (check_answer(&x, 0) < 0 || !health_ok())
        abort();
    return 0;
}

#ifndef SANDBASE_LIBFUZZER

/* ---- the bounded built-in driver ---- */

/* "{KEY}" becomes the API key, so inputs reach the handlers past auth;
 * "{LEN}" the body's length. */
static const char *const seeds[] = {
    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
    "GET /sandboxes?status=running&status=paused HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n",
    "GET /sandboxes/sbx_aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\nX-API-Key: {KEY}\r\n\r\n",
    "POST /sandboxes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nContent-Type: application/json\r\n"
    "Content-Length: {LEN}\r\n\r\n{\"templateID\":\"base\",\"timeout\":60,\"metadata\":{\"a\":\"b\"},\"envVars\":{\"K\":\"v\"}}",
    "POST /sandboxes/sbx_aaaaaaaaaaaaaaaaaaaa/processes HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
    "Content-Length: {LEN}\r\n\r\n{\"cmd\":\"sh\",\"args\":[\"-c\",\"echo hi\"],\"cwd\":\"/\",\"timeout\":5}",
    "POST /sandboxes/sbx_aaaaaaaaaaaaaaaaaaaa/timeout HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
    "Transfer-Encoding: chunked\r\n\r\n5\r\n{\"tim\r\n9\r\neout\":30}\r\n0\r\n\r\n",
    "DELETE /sandboxes/sbx_aaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n\r\n",
    "POST /sandboxes/sbx_aaaaaaaaaaaaaaaaaaaa/connect HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
    "Content-Length: {LEN}\r\n\r\n{}",
    "GET /templates HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\nConnection: keep-alive\r\n\r\n"
    "GET /health HTTP/1.1\r\nHost: x\r\n\r\n",
};

static const char *const tokens[] = {
    "%00", "\0", "%c0%ae", "%ed%a0%80", "%f4%90%80%80", "%ff", "\xc0\xae", "\r\n", "\n", " ", "/", "//",
    "/../", "?", "&", "=", "?a=b&a=c", "#", ":", "sbx_", "Content-Length: 99999999999\r\n",
    "Content-Length: -1\r\n", "Transfer-Encoding: chunked\r\n", "Expect: 100-continue\r\n",
    "Authorization: Bearer\r\n", "Authorization: sk-sb-\r\n", "{", "}", "[", "]", "\"", "\\u0000",
    "\\ud800", "1e999", "-0", "null", "true", ",", "\"templateID\":", "\"cmd\":", "\"args\":[",
    "\"envVars\":{\"A B\":\"x\"}", "0\r\n\r\n", "ffffffff\r\n", "HTTP/1.0", "HTTP/9.9",
};

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

static size_t rnd_below(size_t n)
{
    return n ? (size_t)(rnd() % n) : 0;
}

/* Expands {KEY} (the API key) and {LEN} (the length of the body after the
 * blank line) into buf; returns the length. */
static size_t expand_seed(const char *seed, uint8_t *buf, size_t cap)
{
    const char *blank = strstr(seed, "\r\n\r\n");
    char body_len[24];
    snprintf(body_len, sizeof body_len, "%zu", blank ? strlen(blank + 4) : (size_t)0);
    size_t len = 0;
    for (const char *p = seed; *p && len < cap;) {
        const char *value = strncmp(p, "{KEY}", 5) == 0 ? api_key : strncmp(p, "{LEN}", 5) == 0 ? body_len : NULL;
        if (value && len + strlen(value) < cap) {
            memcpy(buf + len, value, strlen(value));
            len += strlen(value);
            p += 5;
        } else {
            buf[len++] = (uint8_t)*p++;
        }
    }
    return len;
}

/* Inserts n bytes at pos if they fit. */
static size_t insert_bytes(uint8_t *buf, size_t len, size_t pos, const void *bytes, size_t n)
{
    if (len + n > MAX_INPUT)
        return len;
    memmove(buf + pos + n, buf + pos, len - pos);
    memcpy(buf + pos, bytes, n);
    return len + n;
}

/* One random edit of buf (length len); returns the new length. */
static size_t mutate(uint8_t *buf, size_t len)
{
    size_t pos = rnd_below(len + 1);
    switch (rnd_below(7)) {
    case 0:     /* flip a bit */
        if (len)
            buf[rnd_below(len)] ^= (uint8_t)(1u << rnd_below(8));
        return len;
    case 1:     /* a random byte */
        if (len)
            buf[rnd_below(len)] = (uint8_t)rnd();
        return len;
    case 2: {   /* an interesting token (a literal "\0" token inserts one NUL byte) */
        const char *t = tokens[rnd_below(sizeof tokens / sizeof tokens[0])];
        return insert_bytes(buf, len, pos, t, t[0] ? strlen(t) : 1);
    }
    case 3: {   /* delete a range */
        size_t n = rnd_below(len - (pos < len ? pos : len) + 1);
        if (pos < len) {
            memmove(buf + pos, buf + pos + n, len - pos - n);
            return len - n;
        }
        return len;
    }
    case 4: {   /* duplicate a range, sometimes many times (long headers, many params) */
        if (!len)
            return len;
        size_t from = rnd_below(len), n = 1 + rnd_below(len - from > 64 ? 64 : len - from);
        uint8_t copy[64];
        memcpy(copy, buf + from, n);
        size_t times = rnd_below(4) == 0 ? 1 + rnd_below(600) : 1;
        for (size_t i = 0; i < times; i++)
            len = insert_bytes(buf, len, pos, copy, n);
        return len;
    }
    case 5:     /* truncate */
        return pos;
    default: {  /* splice in part of another seed */
        uint8_t other[MAX_INPUT];
        size_t olen = expand_seed(seeds[rnd_below(sizeof seeds / sizeof seeds[0])], other, sizeof other);
        size_t from = rnd_below(olen), n = rnd_below(olen - from + 1);
        return insert_bytes(buf, len, pos, other + from, n);
    }
    }
}

static void shutdown_on_loop(struct sb_loop *loop, void *arg)
{
    sb_server_shutdown(app.server);
}

int main(void)
{
    const char *env = getenv("SANDBASE_FUZZ_ITERATIONS");
    long iterations = env ? strtol(env, NULL, 10) : 2000;
    const char *seed_env = getenv("SANDBASE_FUZZ_SEED");
    if (seed_env)
        rng_state = strtoull(seed_env, NULL, 0) | 1;
    start_server();
    static uint8_t bufs[BATCH][MAX_INPUT];
    struct exchange xs[BATCH];
    size_t seed_count = sizeof seeds / sizeof seeds[0];
    int failed = 0;
    for (long i = 0; i < iterations && !failed;) {
        size_t n = 0;
        for (; n < BATCH && i < iterations; n++, i++) {
            size_t len = expand_seed(seeds[(size_t)i % seed_count], bufs[n], MAX_INPUT);
            size_t edits = i < (long)seed_count ? 0 : 1 + rnd_below(6);     /* each seed once as is */
            for (size_t e = 0; e < edits; e++)
                len = mutate(bufs[n], len);
            xs[n] = (struct exchange){.data = bufs[n], .len = len};
        }
        exchange_batch(xs, n);
        for (size_t k = 0; k < n && !failed; k++)
            failed = check_answer(&xs[k], i - (long)n + (long)k < (long)seed_count) < 0;
        if (!failed && !health_ok()) {
            fprintf(stderr, "fuzz_request: /health stopped answering after %ld inputs\n", i);
            failed = 1;
        }
    }
    if (!failed && !health_ok())
        failed = 1;
    printf("fuzz_request: %ld inputs; answers:", iterations);
    for (int c = 100; c < 600; c++)
        if (status_counts[c])
            printf(" %d x%lu", c, status_counts[c]);
    printf("; no answer (incomplete request) x%lu\n", closed_without_answer);
    sb_loop_post(app.loop, shutdown_on_loop, NULL);
    pthread_join(loop_thread, NULL);
    sb_server_free(app.server);
    sb_worker_pool_free(app.workers);
    registry_free(app.registry, 1);
    sb_router_free(app.router);
    sb_loop_free(app.loop);
    store_close(app.store);
    struct sb_err ignored;
    sb_remove_tree(app.cfg.data_dir, &ignored);
    printf("%d passed, %d failed\n", failed ? 0 : 1, failed ? 1 : 0);
    return failed;
}

#endif
