#!/usr/bin/env bash
# bench/http.sh - what the HTTP layer of `sandbase serve` costs, measured
# against a bare libmicrohttpd responder driven the same way (external epoll).
#
# Runs wrk (loopback only, bounded: -t1 -c50 -d5s by default) against
#   (a) the baseline: a minimal MHD responder built here from the C below,
#   (b) `sandbase serve`  GET /health      (router, no auth),
#   (c) `sandbase serve`  GET /sandboxes   (router, API-key auth, store query),
# and prints req/s, p99 latency and the ratio to the baseline for each.
# The server gets a fresh temp data dir (warm pool off) with an org and a key
# made by `sandbase org create` / `sandbase key create`.
# Everything it starts is killed on exit, whatever happens.
#
# Usage: bench/http.sh            (SANDBASE=path/to/sandbase to pick a binary;
#                                  DURATION=5s CONNECTIONS=50 to change the load)
# Numbers are only comparable within one run on one machine: wrk shares the
# CPUs with the server.
set -euo pipefail

repo=$(cd "$(dirname "$0")/.." && pwd)
duration=${DURATION:-5s}
connections=${CONNECTIONS:-50}
sandbase=${SANDBASE:-$repo/build/sandbase}
tmp=$(mktemp -d /tmp/sandbase-bench-http.XXXXXX)
pids=()

cleanup() {
    for pid in "${pids[@]}"; do
        kill "$pid" 2>/dev/null || true
    done
    for pid in "${pids[@]}"; do
        wait "$pid" 2>/dev/null || true
    done
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

die() { echo "bench/http.sh: $*" >&2; exit 1; }

command -v wrk >/dev/null || die "wrk is not installed (apt-get install wrk)"
command -v curl >/dev/null || die "curl is not installed"
if [[ ! -x $sandbase ]]; then
    echo "building $sandbase (RelWithDebInfo)..." >&2
    cmake -S "$repo" -B "$repo/build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
    ninja -C "$repo/build" --quiet sandbase
fi

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# Waits up to 10 s for url to answer at all (any status).
wait_http() {
    local url=$1 i
    for i in $(seq 100); do
        curl -s -o /dev/null --max-time 1 "$url" && return 0
        sleep 0.1
    done
    return 1
}

# ---- (a) the baseline responder ----

cat >"$tmp/baseline.c" <<'EOF'
/* Minimal libmicrohttpd responder in external-epoll mode, as sandbase runs it:
 * one thread, epoll_wait on MHD's epoll fd, MHD_run, a small JSON answer
 * queued on the second access-handler call (keeps keep-alive working). */
#include <microhttpd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>

static enum MHD_Result answer(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *data,
                              size_t *size, void **state)
{
    static int first_call_marker;
    if (*state == NULL) {
        *state = &first_call_marker;
        return MHD_YES;
    }
    if (*size) {
        *size = 0;
        return MHD_YES;
    }
    static const char body[] = "{\"status\":\"ok\"}";
    struct MHD_Response *r = MHD_create_response_from_buffer(sizeof body - 1, (void *)body,
                                                             MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    enum MHD_Result rc = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    struct MHD_Daemon *d = MHD_start_daemon(
        MHD_USE_EPOLL | MHD_USE_ERROR_LOG, (uint16_t)atoi(argv[1]), NULL, NULL, answer, NULL,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 4096u, MHD_OPTION_CONNECTION_LIMIT, 4096u,
        MHD_OPTION_CONNECTION_TIMEOUT, 60u, MHD_OPTION_END);
    if (!d)
        return 1;
    int mhd_fd = MHD_get_daemon_info(d, MHD_DAEMON_INFO_EPOLL_FD)->epoll_fd;
    int ep = epoll_create1(0);
    struct epoll_event ev = {.events = EPOLLIN};
    epoll_ctl(ep, EPOLL_CTL_ADD, mhd_fd, &ev);
    for (;;) {
        MHD_run(d);
        MHD_UNSIGNED_LONG_LONG t;
        int wait = MHD_get_timeout(d, &t) == MHD_YES ? (int)(t > 60000 ? 60000 : t) : -1;
        epoll_wait(ep, &ev, 1, wait);
    }
}
EOF
cc -O2 -o "$tmp/baseline" "$tmp/baseline.c" $(pkg-config --cflags --libs libmicrohttpd) ||
    die "cannot build the baseline responder"

# ---- measuring ----

declare -A rps p99

# run_wrk NAME URL [HEADER...]: fills rps[NAME] and p99[NAME].
run_wrk() {
    local name=$1 url=$2 out
    shift 2
    local args=(-t1 -c"$connections" -d"$duration" --latency --timeout 2s)
    for h in "$@"; do
        args+=(-H "$h")
    done
    out=$(timeout 60 wrk "${args[@]}" "$url") || die "wrk failed on $name"
    if grep -q "Non-2xx" <<<"$out"; then
        echo "$out" >&2
        die "$name: some answers were not 2xx (see above)"
    fi
    rps[$name]=$(awk '/^Requests\/sec:/ {print $2}' <<<"$out")
    p99[$name]=$(awk '$1 == "99%" {print $2}' <<<"$out")
    [[ -n ${rps[$name]} ]] || die "$name: could not read wrk's output"
}

base_port=$(free_port)
"$tmp/baseline" "$base_port" &
pids+=($!)
wait_http "http://127.0.0.1:$base_port/" || die "the baseline did not start"
run_wrk baseline "http://127.0.0.1:$base_port/health"

# ---- (b) and (c): sandbase serve ----

data="$tmp/data"
mkdir -p "$data"
echo '{"pool_size": 0}' >"$data/config.json"     # no warm sandboxes: HTTP only
serve_port=$(free_port)
"$sandbase" serve --listen "127.0.0.1:$serve_port" --data-dir "$data" --log-format json \
    2>"$tmp/serve.log" &
pids+=($!)
wait_http "http://127.0.0.1:$serve_port/health" || {
    tail -n 20 "$tmp/serve.log" >&2
    die "sandbase serve did not start"
}
run_wrk health "http://127.0.0.1:$serve_port/health"

key=""
if "$sandbase" org create bench --data-dir "$data" >"$tmp/org.out" 2>&1 &&
    key=$("$sandbase" key create --org bench --data-dir "$data" 2>"$tmp/key.err" </dev/null) &&
    [[ -n $key ]]; then
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "X-API-Key: $key" \
        "http://127.0.0.1:$serve_port/sandboxes")
    [[ $status == 200 ]] || die "GET /sandboxes with the new key answered $status"
    run_wrk sandboxes "http://127.0.0.1:$serve_port/sandboxes" "X-API-Key: $key"
else
    echo "note: could not create an org and key, skipping (c):" >&2
    cat "$tmp/org.out" "$tmp/key.err" >&2 2>/dev/null || true
fi

# ---- report ----

printf '\nwrk -t1 -c%s -d%s, loopback, %s\n' "$connections" "$duration" "$(nproc) CPUs shared with wrk"
printf '%-34s %12s %10s %10s\n' "target" "req/s" "p99" "vs base"
row() {
    local name=$1 label=$2
    [[ -n ${rps[$name]:-} ]] || return 0
    printf '%-34s %12s %10s %9.2fx\n' "$label" "${rps[$name]}" "${p99[$name]}" \
        "$(awk -v a="${rps[$name]}" -v b="${rps[baseline]}" 'BEGIN {print a / b}')"
}
row baseline "(a) bare MHD responder"
row health "(b) sandbase GET /health"
row sandboxes "(c) sandbase GET /sandboxes (key)"
