#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# isolation_bench.sh - the figures of the issue "Supervised for real", in
# one sitting, side by side:
#   - isolated runs/s at concurrency 256 against the canned nginx (runs of
#     milliseconds: the worst case for isolation), children reused and a
#     fresh child per run, beside in-process runs/s;
#   - in-process runs/s (c256, c16) and memory per in-flight run (1,000
#     runs on 2 s models) of this tree against BASE (default 408a387, main
#     before the child-process hosts), and fan-out: no regression;
#   - memory per isolated run in flight (child's private memory plus the
#     parent's share), 200 runs on 2 s models;
#   - from a child's SIGKILL, and from the moment its death is observable
#     (its pidfd readable), to handle_finalize (bench_crash), beside the
#     Elixir peer's kill -> finalize (../shared/peers/elixir, "crash");
#   - the run lifecycle on the peer's own scenarios: short runs one at a
#     time (10 events, one recorder, finalize) and memory per idle run with
#     its recorder (bench_lifecycle, the peer's "short" and "memory").
# Each scenario REPS times, alternating; medians in OUT_DIR/table.md
# (bench/summarize_isolation.py), raw lines in OUT_DIR/raw.jsonl.  Installs
# nginx, wrk and elixir if missing; builds build-rel (this tree) and
# build-base (BASE, in a temporary worktree).
#
#   bench/isolation_bench.sh [OUT_DIR]     REPS=3 MAX_LOAD=1.0 BASE=rev
set -euo pipefail

REPO=$(cd "$(dirname "$0")/.." && pwd)
REPS=${REPS:-3}
MAX_LOAD=${MAX_LOAD:-1.0}
BASE=${BASE:-408a387}
OUT=${1:-$(mktemp -d /tmp/council-iso-out.XXXXXX)}
mkdir -p "$OUT"
RAW=$OUT/raw.jsonl
: > "$RAW"
LOG=$OUT/log.txt
: > "$LOG"
TMP=$(mktemp -d /tmp/council-iso.XXXXXX)
# shellcheck source=bench/lib.sh
. "$REPO/bench/lib.sh"
base_tree=$TMP/base
done_() {
    git -C "$REPO" worktree remove --force "$base_tree" 2>/dev/null || true
    cleanup
}
trap done_ EXIT INT TERM

# ---- setup ---------------------------------------------------------------
setup_node_peer
if ! command -v elixir > /dev/null; then
    say "installing elixir"
    apt-get install -y elixir >> "$LOG" 2>&1
fi
ELIXIR_SRC=$REPO/../shared/peers/elixir
[ -d "$ELIXIR_SRC" ] || ELIXIR_SRC=/work/shared/peers/elixir
cp -r "$ELIXIR_SRC" "$TMP/elixir"

say "building $REPO/build-rel (Release) and BASE $BASE"
cmake -S "$REPO" -B "$REPO/build-rel" -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCOUNCIL_SANITIZE= >> "$LOG"
ninja -C "$REPO/build-rel" -j2 council_cli council_host bench_runs \
      bench_fanout bench_crash bench_lifecycle >> "$LOG"
git -C "$REPO" worktree add -f --detach "$base_tree" "$BASE" >> "$LOG" 2>&1
cmake -S "$base_tree" -B "$base_tree/build-rel" -G Ninja \
      -DCMAKE_BUILD_TYPE=Release -DCOUNCIL_SANITIZE= >> "$LOG"
ninja -C "$base_tree/build-rel" -j2 bench_runs bench_fanout >> "$LOG"
BIN=$REPO/build-rel
BASEBIN=$base_tree/build-rel
export COUNCIL_HOST_PROGRAM=$BIN/council-host
start_peer_servers

tp() { # scenario impl bin url concurrency [extra args]
    local sc=$1 impl=$2 bin=$3 url=$4 c=$5 out
    shift 5
    out=$(SERVER_PIDS=$NGINX_WORKERS timeout 600 "$bin/bench_runs" \
          --base-url "$url" --runs 3000 --concurrency "$c" --warmup 256 \
          --starters 8 --label "$sc" "$@" 2>> "$LOG") ||
        say "FAILED: $impl $sc (exit $?)"
    record "$sc" "$impl" "$out"
}

hold() { # scenario impl bin concurrency [extra args]
    local sc=$1 impl=$2 bin=$3 c=$4 out
    shift 4
    out=$(timeout 600 "$bin/bench_runs" --base-url "$SLOWJS" --hold \
          --concurrency "$c" --label "$sc" "$@" 2>> "$LOG") ||
        say "FAILED: $impl $sc (exit $?)"
    record "$sc" "$impl" "$out"
}

# The Elixir peer's RESULT lines as one JSON object.
elixir_json() {
    awk -F'\t' '$1 == "RESULT" { gsub(/"/, "", $3);
        v = ($4 == "true" || $4 == "false") ? $4 : ($4 + 0);
        printf "%s\"%s\":%s", (n++ ? "," : "{"), $3, v }
        END { print (n ? "}" : "{}") }'
}

peer() { # scenario args...
    local sc=$1 out
    shift
    out=$(cd "$TMP/elixir" && timeout 600 elixir --erl "+S 2" \
          bench/bench.exs "$@" 2>> "$LOG" | elixir_json) ||
        say "FAILED: elixir $sc"
    record "$sc" elixir "$out"
}

# ---- the sitting ---------------------------------------------------------
say "machine: $(nproc) cores, $(uname -r), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2)"
say "start: $(uptime); this tree $(git -C "$REPO" rev-parse --short HEAD), base $BASE"
wait_quiet

for rep in $(seq 1 "$REPS"); do
    say "rep $rep/$REPS: $(uptime)"
    tp nginx-c256 base "$BASEBIN" "$NGINX_SSE" 256
    tp nginx-c256 inproc "$BIN" "$NGINX_SSE" 256
    tp nginx-c256 isolated "$BIN" "$NGINX_SSE" 256 --isolation process
    tp nginx-c256 isolated-fresh "$BIN" "$NGINX_SSE" 256 \
        --isolation process --runs-per-child 1
    tp nginx-c16 base "$BASEBIN" "$NGINX_SSE" 16
    tp nginx-c16 inproc "$BIN" "$NGINX_SSE" 16
    hold hold1000-slowjs base "$BASEBIN" 1000
    hold hold1000-slowjs inproc "$BIN" 1000
    hold hold200-slowjs isolated "$BIN" 200 --isolation process
    record crash council "$(timeout 600 "$BIN/bench_crash" 200 2>> "$LOG")"
    peer crash crash 1000 synced
    record short council "$(timeout 600 "$BIN/bench_lifecycle" short 20000 \
        --loops 1 2>> "$LOG")"
    peer short short 1 20000 10
    record memory council "$(timeout 600 "$BIN/bench_lifecycle" memory 10000 \
        --loops 1 2>> "$LOG")"
    peer memory memory 10000
    for subs in 1 8; do
        for b in base:"$BASEBIN" inproc:"$BIN"; do
            timeout 300 "${b#*:}/bench_fanout" 1000000 "$subs" 1 2>> "$LOG" |
                while read -r line; do
                    record "fanout-$subs" "${b%%:*}" "$line"
                done
        done
    done
done
say "end: $(uptime)"

python3 "$REPO/bench/summarize_isolation.py" "$RAW" | tee "$OUT/table.md"
echo "raw results: $RAW  log: $LOG" >&2
