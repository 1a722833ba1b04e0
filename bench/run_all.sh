#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# run_all.sh - every whole-run benchmark of council, side by side with the
# Node.js peer (../shared/peers/node), in one sitting.  Installs nginx and
# wrk if missing, copies the peer to a temporary directory (never writes into
# shared/), builds a Release tree (build-rel, no sanitizers), starts nginx
# (canned), council mock-llm (fast and 2 s), the peer's slow.mjs, runs each
# scenario REPS times alternating council and node, and prints a median
# table.  Every server it starts is stopped on exit.
#
#   bench/run_all.sh [OUT_DIR]        REPS=3 MAX_LOAD=1.0 to override
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
REPS=${REPS:-3}
MAX_LOAD=${MAX_LOAD:-1.0}
OUT=${1:-$(mktemp -d /tmp/council-bench-out.XXXXXX)}
mkdir -p "$OUT"
RAW=$OUT/raw.jsonl
: > "$RAW"
LOG=$OUT/log.txt
: > "$LOG"

TMP=$(mktemp -d /tmp/council-bench.XXXXXX)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
trap cleanup EXIT INT TERM

# ---- setup ---------------------------------------------------------------
setup_node_peer

say "building $REPO/build-rel (Release, no sanitizers)"
cmake -S "$REPO" -B "$REPO/build-rel" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCOUNCIL_SANITIZE= >> "$LOG"
ninja -C "$REPO/build-rel" -j1 council_cli bench_runs bench_fanout >> "$LOG"
BIN=$REPO/build-rel

start_peer_servers
"$BIN/council" mock-llm --listen 127.0.0.1:$P_MOCK > "$TMP/mock.out" &
PIDS+=($!)
MOCK_PID=$!
"$BIN/council" mock-llm --listen 127.0.0.1:$P_MOCKSLOW --latency 2s \
      > "$TMP/mockslow.out" &
PIDS+=($!)
for p in $P_MOCK $P_MOCKSLOW; do wait_port "$p"; done

MOCK=http://127.0.0.1:$P_MOCK/v1
MOCKSLOW=http://127.0.0.1:$P_MOCKSLOW/v1

council_tp() { # scenario base_url concurrency server_pids [extra args]
    local sc=$1 url=$2 c=$3 pids=$4 out
    shift 4
    # LOOPS: the engine's loop threads (COUNCIL_LOOP_THREADS); unset, the
    # default: one per CPU, at most 4.
    out=$(COUNCIL_LOOP_THREADS=${LOOPS:-} SERVER_PIDS=$pids timeout 300 "$BIN/bench_runs" --base-url "$url" \
          --runs 3000 --concurrency "$c" --warmup 100 --label "$sc" "$@" \
          2>> "$LOG") || say "FAILED: council $sc (exit $?)"
    record "$sc" council "$out"
}

node_tp() { # scenario base_url concurrency server_pids
    local out
    out=$(cd "$TMP/node" && COUNCIL_BASE_URL=$2 SERVER_PIDS=$4 timeout 600 \
          node bench.mjs --runs 2000 --concurrency "$3" --warmup 50 \
          --label "$1" 2>> "$LOG") || say "FAILED: node $1 (exit $?)"
    record "$1" node "$out"
}

council_hold() { # scenario base_url
    local out
    out=$(timeout 300 "$BIN/bench_runs" --base-url "$2" --hold \
          --concurrency 1000 --label "$1" 2>> "$LOG") ||
        say "FAILED: council $1 (exit $?)"
    record "$1" council "$out"
}

node_hold() { # scenario base_url
    local out
    out=$(cd "$TMP/node" && COUNCIL_BASE_URL=$2 timeout 600 \
          node bench.mjs --runs 2000 --concurrency 1000 --warmup 0 \
          --label "$1" 2>> "$LOG") || say "FAILED: node $1 (exit $?)"
    record "$1" node "$out"
}

# ---- the sitting ---------------------------------------------------------
say "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
say "start: $(uptime)"
wait_quiet

# Node's resident size with nothing in flight (one run), for the per-run
# memory difference.
out=$(cd "$TMP/node" && COUNCIL_BASE_URL=$NGINX_SSE timeout 60 \
      node bench.mjs --runs 1 --concurrency 1 --warmup 0 --label node-idle \
      2>> "$LOG") || true
record node-idle node "$out"

for rep in $(seq 1 "$REPS"); do
    say "rep $rep/$REPS: $(uptime)"
    council_tp nginx-c256 "$NGINX_SSE" 256 "$NGINX_WORKERS" --starters 8
    node_tp nginx-c256 "$NGINX_SSE" 256 "$NGINX_WORKERS"
    council_tp nginx-c16 "$NGINX_SSE" 16 "$NGINX_WORKERS" --starters 8
    node_tp nginx-c16 "$NGINX_SSE" 16 "$NGINX_WORKERS"
    council_tp nginx-c1 "$NGINX_SSE" 1 "$NGINX_WORKERS"
    LOOPS=1 council_tp nginx-c256-1loop "$NGINX_SSE" 256 "$NGINX_WORKERS"
    council_tp nginx-c256-s64 "$NGINX_SSE" 256 "$NGINX_WORKERS" --starters 64
    council_tp mockllm-c256 "$MOCK" 256 "$MOCK_PID"
    council_tp mockllm-c16 "$MOCK" 16 "$MOCK_PID"
    council_tp mockllm-c1 "$MOCK" 1 "$MOCK_PID"
    council_hold hold1000-slowjs "$SLOWJS"
    node_hold hold1000-slowjs "$SLOWJS"
    council_hold hold1000-mockllm2s "$MOCKSLOW"
done

say "fan-out (1M events, 5 reps each)"
for subs in 1 8; do
    timeout 300 "$BIN/bench_fanout" 1000000 "$subs" 5 2>> "$LOG" |
        while read -r line; do record "fanout-$subs" council "$line"; done
done

say "wrk against nginx (its own limit)"
wrk_out=$(cd "$TMP/node" && timeout 60 wrk -t2 -c64 -d10s \
          -s wrk/post-stream.lua "$NGINX_SSE/chat/completions" 2>&1) || true
echo "$wrk_out" >> "$LOG"
rps=$(echo "$wrk_out" | awk '/Requests\/sec/ {print $2}')
record wrk-nginx wrk "{\"requests_per_s\":${rps:-0}}"
say "end: $(uptime)"

python3 "$REPO/bench/summarize.py" "$RAW" | tee "$OUT/table.md"
echo "raw results: $RAW  log: $LOG" >&2
