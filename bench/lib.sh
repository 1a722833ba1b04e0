# SPDX-License-Identifier: MIT
#
# lib.sh - what the benchmark sittings share (run_all.sh,
# isolation_bench.sh): logging, a quiet-machine wait, the peers' servers
# (the canned nginx and slow.mjs of ../shared/peers/node, copied to a
# temporary directory; shared/ is never written), and stopping every
# server started, on exit.  Sourced; the caller sets REPO, OUT, LOG, RAW,
# TMP and MAX_LOAD first.

PIDS=()
P_NGINX=18080 P_MOCK=18085 P_MOCKSLOW=18086 P_SLOWJS=18090

say() { echo "== $*" | tee -a "$LOG" >&2; }

cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || true
    done
    rm -rf "$TMP"
}

load1() { cut -d' ' -f1 /proc/loadavg; }

# Wait (up to ~5 min) for the 1-minute load to fall below MAX_LOAD.  Only
# before the sitting: the benchmarks themselves raise the load average; the
# others_cpu_pct of each result says how busy the rest of the machine was.
wait_quiet() {
    local i
    for i in $(seq 1 20); do
        if awk -v l="$(load1)" -v m="$MAX_LOAD" 'BEGIN{exit !(l < m)}'; then
            return 0
        fi
        say "load $(load1) >= $MAX_LOAD, waiting 15 s ($i/20)"
        sleep 15
    done
    say "WARNING: load still $(load1); measuring anyway"
}

wait_port() {
    local i
    for i in $(seq 1 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "port $1 did not open" >&2
    return 1
}

# One JSON line into RAW, with the scenario, the implementation, the load.
record() { # scenario impl json
    local j=$3
    [ -n "$j" ] || j='{"failed":true}'
    printf '{"scenario":"%s","impl":"%s","load1":%s,"result":%s}\n' \
        "$1" "$2" "$(load1)" "$j" | tee -a "$RAW" >&2
}

# The Node peer in TMP/node (npm ci), its canned nginx config on P_NGINX.
setup_node_peer() {
    local src=$REPO/../shared/peers/node
    [ -d "$src" ] || src=/work/shared/peers/node
    [ -d "$src" ] || { echo "no peers/node found" >&2; exit 2; }
    if ! command -v nginx > /dev/null || ! command -v wrk > /dev/null; then
        say "installing nginx wrk"
        apt-get install -y nginx wrk >> "$LOG" 2>&1
    fi
    say "peer: $src -> $TMP/node"
    cp -r "$src" "$TMP/node"
    rm -rf "$TMP/node/node_modules" "$TMP/node/run"
    (cd "$TMP/node" && timeout 300 npm ci --no-audit --no-fund >> "$LOG" 2>&1)
    (cd "$TMP/node" && node gen-configs.mjs $P_NGINX 1 >> "$LOG")
}

# nginx (canned) and slow.mjs (every call 2 s); sets NGINX_SSE, SLOWJS and
# NGINX_WORKERS.
start_peer_servers() {
    nginx -p "$TMP/node/run/" -c "$TMP/node/nginx.conf" \
          -e "$TMP/node/run/nginx-error.log" &
    PIDS+=($!)
    NGINX_MASTER=$!
    (cd "$TMP/node" && PORT=$P_SLOWJS SLOW_MS=2000 exec node slow.mjs \
          > "$TMP/slow.out") &
    PIDS+=($!)
    wait_port $P_NGINX
    wait_port $P_SLOWJS
    NGINX_WORKERS=$(pgrep -P "$NGINX_MASTER" | paste -sd, -)
    NGINX_SSE=http://127.0.0.1:$P_NGINX/sse/v1
    SLOWJS=http://127.0.0.1:$P_SLOWJS/v1
}
