#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# council serve's targets (issue 4), measured on this machine:
#   (1) GET /v1/runs/{id} answered from the SQLite store, with wrk
#       (target >= 20,000 requests/s): 50 runs are recorded, the server is
#       restarted (so no run is in its memory) and wrk asks for one of them;
#       the same again with the run in memory, for comparison;
#   (2) 1,000 SSE followers of one live run (bench_followers): each must get
#       every event in order; the server's RSS growth per follower (target
#       <= 20 KiB).
# usage: bench/serve_bench.sh [OUT_DIR]     (Release build in build-rel)
# Writes OUT_DIR/serve.jsonl and prints it.  Every server it starts is
# stopped on exit.
set -euo pipefail
REPO=$(cd "$(dirname "$0")/.." && pwd)
OUT=${1:-$(mktemp -d /tmp/council-serve-bench.XXXXXX)}
mkdir -p "$OUT"
RAW=$OUT/serve.jsonl
: >"$RAW"
TMP=$(mktemp -d /tmp/council-serve-bench.XXXXXX)
PIDS=()
cleanup() {
    local p
    for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && timeout 10 tail --pid="$p" -f /dev/null 2>/dev/null || true
    done
    rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

command -v wrk >/dev/null || apt-get install -y wrk >/dev/null
cmake -S "$REPO" -B "$REPO/build-rel" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCOUNCIL_SANITIZE= >/dev/null
ninja -C "$REPO/build-rel" -j2 council_cli bench_followers >/dev/null
BIN=$REPO/build-rel

wait_url() { # log pid
    local i url
    for i in $(seq 1 100); do
        url=$(sed -n 's/.* listening on \(http[^ ]*\).*/\1/p' "$1" | head -1)
        [ -n "$url" ] && { echo "$url"; return 0; }
        kill -0 "$2" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}
council_file() { # dir mock_url
    mkdir -p "$1"
    cat >"$1/demo.yaml" <<YAML
name: demo
strategy: rank
providers:
  mock: { kind: openai, base_url: $2 }
members:
  - { name: alpha, provider: mock, model: mock-a }
  - { name: beta,  provider: mock, model: mock-b }
  - { name: gamma, provider: mock, model: mock-c }
  - { name: delta, provider: mock, model: mock-d }
chairman: { provider: mock, model: mock-chair }
limits: { member_timeout: 60s, deadline: 300s, quorum: 3 }
YAML
}
serve() { # councils db -> sets SERVE_PID, SERVE_URL
    # Every follower comes from 127.0.0.1: no per-client limit.
    "$BIN/council" serve --listen 127.0.0.1:0 --councils "$1" --db "$2" \
        --max-streams 4096 --max-client-conns 0 >"$TMP/serve.log" 2>&1 &
    SERVE_PID=$!
    PIDS+=($SERVE_PID)
    SERVE_URL=$(wait_url "$TMP/serve.log" "$SERVE_PID")
}

# ---- (1) GET /v1/runs/{id} from the store -------------------------------
"$BIN/council" mock-llm --listen 127.0.0.1:0 >"$TMP/mock.log" 2>&1 &
PIDS+=($!)
MOCK=$(wait_url "$TMP/mock.log" "$!")
council_file "$TMP/fast" "$MOCK"
serve "$TMP/fast" "$TMP/runs.db"
for i in $(seq 1 50); do
    curl -sf "$SERVE_URL/v1/runs" -d '{"council":"demo","input":"Why is the sky blue?"}' \
        >"$TMP/post.json"
done
ID=$(sed -n 's/.*"id":"\([^"]*\)".*/\1/p' "$TMP/post.json")
for i in $(seq 1 100); do
    curl -sf "$SERVE_URL/v1/runs/$ID" | grep -q '"outcome":"ok"' && break
    sleep 0.1
done
wrk_rps() { # url
    wrk -t2 -c64 -d10s "$1" | sed -n 's/^Requests\/sec: *\([0-9.]*\).*/\1/p'
}
mem_rps=$(wrk_rps "$SERVE_URL/v1/runs/$ID")
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true
serve "$TMP/fast" "$TMP/runs.db" # a fresh process: the run is only in the store
store_rps=$(wrk_rps "$SERVE_URL/v1/runs/$ID")
bytes=$(curl -sf "$SERVE_URL/v1/runs/$ID" | wc -c)
printf '{"bench":"serve_get_run","from":"store","requests_per_s":%s,"body_bytes":%s,"load1":%s}\n' \
    "$store_rps" "$bytes" "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$RAW"
printf '{"bench":"serve_get_run","from":"memory","requests_per_s":%s,"body_bytes":%s,"load1":%s}\n' \
    "$mem_rps" "$bytes" "$(cut -d' ' -f1 /proc/loadavg)" | tee -a "$RAW"
kill "$SERVE_PID"; wait "$SERVE_PID" 2>/dev/null || true

# ---- (2) 1,000 followers of one live run --------------------------------
"$BIN/council" mock-llm --listen 127.0.0.1:0 --latency 500ms --tokens-per-sec 40 \
    >"$TMP/slow.log" 2>&1 &
PIDS+=($!)
SLOW=$(wait_url "$TMP/slow.log" "$!")
council_file "$TMP/slow" "$SLOW"
serve "$TMP/slow" "$TMP/runs2.db"
"$BIN/bench_followers" --url "$SERVE_URL" --council demo --followers 1000 \
    --server-pid "$SERVE_PID" | tee -a "$RAW"
