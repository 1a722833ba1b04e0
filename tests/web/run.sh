#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# council serve with real clients nobody here wrote:
#   sdk      the official `openai` npm package (pinned) calls a council through
#            /v1/chat/completions, streaming and not, lists /v1/models, and
#            aborts a stream (its run must end cancelled);
#   browser  Debian's Chromium, driven by playwright-core (pinned), opens the
#            web page, starts a run from the form, watches it complete live,
#            reloads a run page mid-run without losing anything, cancels a
#            run, and shows a run whose process was killed as crashed (no
#            Cancel button); screenshots are kept as test artifacts.
# Both start `council mock-llm` (slow enough to watch: 40 ms first byte,
# 400 tokens/s; 80 for the browser) and `council serve --councils DIR` with a fresh SQLite store,
# on free loopback ports, and stop them.
#
# usage: tests/web/run.sh sdk|browser [COUNCIL_BIN]     (or $COUNCIL_BIN)
# exit: 0 passed, 1 failed, 77 skipped (node/npm, or for browser Chromium,
#       not installed)
# Artifacts (screenshots): $COUNCIL_ARTIFACTS or build/test-artifacts.
set -euo pipefail

OPENAI_VERSION=6.49.0          # as in /work/shared/peers/node/package-lock.json
PLAYWRIGHT_VERSION=1.64.1
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}

MODE=${1:-}
BIN=${2:-${COUNCIL_BIN:-}}
HERE=$(cd "$(dirname "$0")" && pwd)

say() { printf 'web-%s: %s\n' "$MODE" "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }

case "$MODE" in
sdk) PKG="openai@$OPENAI_VERSION" ;;
browser) PKG="playwright-core@$PLAYWRIGHT_VERSION" ;;
*) echo "usage: $0 sdk|browser [COUNCIL_BIN]" >&2; exit 2 ;;
esac
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "SKIP: node and npm are needed (not installed)"
    exit 77
fi
if [ "$MODE" = browser ] && [ ! -x "$CHROMIUM" ]; then
    say "SKIP: no Chromium at $CHROMIUM (apt-get install chromium)"
    exit 77
fi
[ -n "$BIN" ] && [ -x "$BIN" ] || die "no council binary (pass it, or set COUNCIL_BIN)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/council-web.XXXXXX")
PIDS=()
cleanup() {
    local p i
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] && kill -TERM "$p" 2>/dev/null || true
    done
    for p in "${PIDS[@]:-}"; do
        [ -n "$p" ] || continue
        for i in $(seq 1 50); do
            kill -0 "$p" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$p" 2>/dev/null || true
        wait "$p" 2>/dev/null || true
    done
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# The URL a server prints on stderr when it listens ("... listening on URL").
wait_url() { # logfile pid
    local i url
    for i in $(seq 1 100); do
        url=$(sed -n 's/.* listening on \(http[^ ]*\).*/\1/p' "$1" | head -1)
        if [ -n "$url" ]; then echo "$url"; return 0; fi
        kill -0 "$2" 2>/dev/null || { cat "$1" >&2; return 1; }
        sleep 0.1
    done
    cat "$1" >&2
    return 1
}

say "installing $PKG into $WORK"
if ! timeout 300 npm install --prefix "$WORK" --no-audit --no-fund --no-save \
        --loglevel=error "$PKG" >"$WORK/npm.log" 2>&1; then
    cat "$WORK/npm.log" >&2
    die "npm install $PKG failed"
fi

# The browser test reloads a page mid-run: its runs must last seconds.
TPS=400
[ "$MODE" = browser ] && TPS=80
"$BIN" mock-llm --listen 127.0.0.1:0 --latency 40ms --tokens-per-sec "$TPS" \
    >"$WORK/mock.log" 2>&1 &
PIDS+=($!)
MOCK=$(wait_url "$WORK/mock.log" "$!") || die "mock-llm did not start"

mkdir "$WORK/councils"
cat >"$WORK/councils/demo.yaml" <<YAML
name: demo
strategy: rank
providers:
  mock: { kind: openai, base_url: $MOCK }
members:
  - { name: alpha, provider: mock, model: mock-a }
  - { name: beta,  provider: mock, model: mock-b }
  - { name: gamma, provider: mock, model: mock-c }
  - { name: delta, provider: mock, model: mock-d }
chairman: { provider: mock, model: mock-chair }
limits: { member_timeout: 30s, deadline: 120s, retries: 1, quorum: 3 }
YAML

if [ "$MODE" = browser ]; then
    # A run whose process is killed outright (SIGKILL: nothing recorded
    # after): the server closes it as crashed when it opens the store, and
    # its page must say so, with no Cancel button.
    "$BIN" run -q --record "sqlite:$WORK/runs.db" -c "$WORK/councils/demo.yaml" \
        --run-id killed-run "A run whose process is killed" \
        >/dev/null 2>"$WORK/killed.log" &
    KPID=$!
    for i in $(seq 1 100); do
        if "$BIN" runs list --db "$WORK/runs.db" --outcome running 2>/dev/null |
                grep -q killed-run; then
            break
        fi
        sleep 0.1
    done
    kill -KILL "$KPID" 2>/dev/null || true
    wait "$KPID" 2>/dev/null || true
    export KILLED_ID=killed-run
fi

"$BIN" serve --listen 127.0.0.1:0 --councils "$WORK/councils" \
    --db "$WORK/runs.db" >"$WORK/serve.log" 2>&1 &
PIDS+=($!)
BASE=$(wait_url "$WORK/serve.log" "$!") || die "council serve did not start"
say "council serve at $BASE, mock-llm at $MOCK"

ART=${COUNCIL_ARTIFACTS:-$HERE/../../build/test-artifacts}
mkdir -p "$ART"
export BASE ART CHROMIUM
export NODE_PATH="$WORK/node_modules"
if ! node "$HERE/$MODE.mjs" "$WORK/node_modules"; then
    say "council serve's log:"
    tail -n 40 "$WORK/serve.log" >&2
    die "$MODE.mjs failed"
fi
say "passed"
