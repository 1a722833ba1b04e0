#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
#
# Interop: council against an OpenAI-compatible server nobody here wrote,
# @dwmkerr/mock-llm (pinned), installed with npm into a temporary directory
# and started on a free loopback port.  Its rules answer normally for most
# models, answer every review prompt (it holds "FINAL RANKING") with a valid
# FINAL RANKING block, and fail one model.  `council run --json` must
# complete, report usage as unknown (null: this server streams no usage
# chunk), record the failing member as member_failed of kind "provider"
# with the server's message (it arrives as a `data: {"error": ...}` event in
# a 200 stream, without [DONE]), and the stopped server must leave nothing
# running.
#
# usage: tests/interop/run.sh [COUNCIL_BIN]      (or $COUNCIL_BIN)
# exit: 0 passed, 1 failed, 77 skipped (node or npm is not installed)
set -euo pipefail

MOCK_LLM_VERSION=0.1.29   # as in /work/shared/peers/node/package-lock.json
HOST=127.0.0.1

say() { printf 'interop: %s\n' "$*" >&2; }
die() { say "FAIL: $*"; exit 1; }

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "SKIP: node and npm are needed to run @dwmkerr/mock-llm (not installed)"
    exit 77
fi
BIN=${1:-${COUNCIL_BIN:-}}
[ -n "$BIN" ] && [ -x "$BIN" ] || die "no council binary (pass it, or set COUNCIL_BIN)"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/council-interop.XXXXXX")
SERVER_PID=

stop_server() {
    local i
    [ -n "$SERVER_PID" ] || return 0
    if kill -0 "$SERVER_PID" 2>/dev/null; then
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for i in $(seq 1 50); do           # 5 s, then SIGKILL
            kill -0 "$SERVER_PID" 2>/dev/null || break
            sleep 0.1
        done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    wait "$SERVER_PID" 2>/dev/null || true
}

cleanup() {
    stop_server
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 1' INT TERM HUP

# ---- install (pinned) ---------------------------------------------------
say "installing @dwmkerr/mock-llm@$MOCK_LLM_VERSION into $WORK"
if ! timeout 300 npm install --prefix "$WORK" --no-audit --no-fund \
        --no-save --loglevel=error "@dwmkerr/mock-llm@$MOCK_LLM_VERSION" \
        >"$WORK/npm.log" 2>&1; then
    cat "$WORK/npm.log" >&2
    die "npm install @dwmkerr/mock-llm@$MOCK_LLM_VERSION failed"
fi
MAIN="$WORK/node_modules/@dwmkerr/mock-llm/dist/main.js"
[ -f "$MAIN" ] || die "no $MAIN after npm install"
got=$(node -p "require('$WORK/node_modules/@dwmkerr/mock-llm/package.json').version")
[ "$got" = "$MOCK_LLM_VERSION" ] || die "installed mock-llm $got, wanted $MOCK_LLM_VERSION"

# ---- the server's rules -------------------------------------------------
# The last matching rule wins.  Content is fixed (its echo template does not
# escape quotes or newlines); the model is echoed back.
cat >"$WORK/mock-llm.yaml" <<'EOF'
streaming:
  chunkSize: 16
  chunkIntervalMs: 1
rules:
  # (a) every model: a plain answer
  - path: "/v1/chat/completions"
    method: "POST"
    match: "@"
    response:
      status: 200
      content: |
        {
          "id": "chatcmpl-interop",
          "object": "chat.completion",
          "created": 1700000000,
          "model": "{{jmes request body.model}}",
          "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": "Rayleigh scattering: short (blue) wavelengths scatter most in the air, so the sky looks blue." },
            "finish_reason": "stop"
          }]
        }
  # (b) review prompts: a valid FINAL RANKING block (two answers shown)
  - path: "/v1/chat/completions"
    method: "POST"
    match: "contains(to_string(body.messages), 'FINAL RANKING')"
    response:
      status: 200
      content: |
        {
          "id": "chatcmpl-interop-rank",
          "object": "chat.completion",
          "created": 1700000000,
          "model": "{{jmes request body.model}}",
          "choices": [{
            "index": 0,
            "message": { "role": "assistant", "content": "Response A is more precise.\n\nFINAL RANKING:\n1. Response A\n2. Response B" },
            "finish_reason": "stop"
          }]
        }
  # (c) one model fails
  - path: "/v1/chat/completions"
    method: "POST"
    match: "body.model == 'interop-broken'"
    response:
      status: 503
      content: |
        { "error": { "message": "interop-broken is overloaded, try later", "type": "server_error", "code": "overloaded" } }
EOF

# ---- start on a free loopback port ---------------------------------------
free_port() {
    node -e 'const s=require("net").createServer();
             s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close();});'
}

started=0
for attempt in 1 2 3; do
    PORT=$(timeout 10 bash -c "$(declare -f free_port); free_port")
    [ -n "$PORT" ] || die "could not find a free port"
    HOST=$HOST PORT=$PORT node "$MAIN" --config "$WORK/mock-llm.yaml" \
        >"$WORK/server.log" 2>&1 &
    SERVER_PID=$!
    for i in $(seq 1 150); do            # 15 s
        if curl -fsS --max-time 1 "http://$HOST:$PORT/health" >/dev/null 2>&1; then
            started=1
            break
        fi
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    [ "$started" = 1 ] && break
    say "server did not start on port $PORT (attempt $attempt):"
    cat "$WORK/server.log" >&2
    stop_server
    SERVER_PID=
done
[ "$started" = 1 ] || die "mock-llm did not start"
say "mock-llm $MOCK_LLM_VERSION listening on $HOST:$PORT (pid $SERVER_PID)"

# ---- the council ------------------------------------------------------------
cat >"$WORK/council.yaml" <<EOF
name: interop
strategy: rank
providers:
  mock: { kind: openai, base_url: http://$HOST:$PORT/v1 }
members:
  - { name: alpha,  provider: mock, model: interop-a, system: "You are a careful analyst." }
  - { name: beta,   provider: mock, model: interop-b }
  - { name: gamma,  provider: mock, model: interop-c }
  - { name: broken, provider: mock, model: interop-broken }
chairman: { provider: mock, model: interop-chair }
limits: { member_timeout: 20s, deadline: 90s, retries: 0, quorum: 3, max_tokens: 256 }
EOF
"$BIN" validate "$WORK/council.yaml" >&2 || die "the generated council file is not valid"

set +e
timeout 120 "$BIN" run -c "$WORK/council.yaml" --json --no-record --seed 7 \
    "Why is the sky blue? Say \"briefly\",
in two lines." >"$WORK/events.jsonl" 2>"$WORK/run.err"
code=$?
set -e
if [ "$code" != 0 ]; then
    cat "$WORK/run.err" >&2
    tail -n 5 "$WORK/events.jsonl" >&2
    die "council run exited with $code (wanted 0)"
fi

# ---- checks (node reads the JSON lines) --------------------------------------
timeout 30 node - "$WORK/events.jsonl" <<'EOF'
const fs = require('fs');
const lines = fs.readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean);
const evs = lines.map((l) => JSON.parse(l));
const bad = [];
const check = (ok, what) => { if (!ok) bad.push(what); };

evs.forEach((e, i) => check(e.seq === i + 1, `seq ${e.seq} at line ${i + 1}`));
const last = evs[evs.length - 1];
check(last.type === 'run_completed', `last event is ${last.type}, not run_completed`);
check(typeof last.result?.answer === 'string' && last.result.answer.length > 0,
      'run_completed has an answer');

const done = evs.filter((e) => e.type === 'member_completed');
check(done.length === 3, `${done.length} member_completed events (wanted 3)`);
for (const e of done) {
    check(e.usage === null, `${e.member}: usage is ${JSON.stringify(e.usage)}, not null (unknown)`);
    check(e.text.includes('Rayleigh'), `${e.member}: answer text is the server's`);
}
const failed = evs.filter((e) => e.type === 'member_failed');
check(failed.length === 1, `${failed.length} member_failed events (wanted 1)`);
const f = failed[0] || {};
check(f.member === 'broken', `member_failed is for ${f.member}, not broken`);
check(f.error?.kind === 'provider', `member_failed kind is ${f.error?.kind}, not provider`);
check((f.error?.message || '').includes('interop-broken is overloaded, try later'),
      `member_failed message is the server's: ${f.error?.message}`);

const reviews = evs.filter((e) => e.type === 'review_completed');
check(reviews.length === 3, `${reviews.length} review_completed events (wanted 3)`);
for (const e of reviews) {
    check(e.parse_ok === true, `${e.member}: ranking parsed (parse_ok ${e.parse_ok})`);
    check(e.usage === null, `${e.member}: review usage is null`);
}
const synth = evs.find((e) => e.type === 'synthesis_completed');
check(synth && synth.usage === null, 'synthesis usage is null');
check(last.result?.usage === null || last.result?.usage?.complete === false,
      `run usage is unknown: ${JSON.stringify(last.result?.usage)}`);

if (bad.length) {
    console.error('interop: FAIL:\n  ' + bad.join('\n  '));
    process.exit(1);
}
console.error(`interop: ${evs.length} events checked; broken: ${f.error.kind}: ${f.error.message}; run usage ${JSON.stringify(last.result.usage)}`);
EOF

# ---- stop the server: nothing may be left ----------------------------------
stop_server
kill -0 "$SERVER_PID" 2>/dev/null && die "server pid $SERVER_PID still running"
if curl -fsS --max-time 1 "http://$HOST:$PORT/health" >/dev/null 2>&1; then
    die "something still answers on $HOST:$PORT"
fi
left=
for d in /proc/[0-9]*; do
    cmd=$(tr '\0' ' ' <"$d/cmdline" 2>/dev/null || true)
    case "$cmd" in
        *"$WORK"*) left="$left ${d#/proc/}:$cmd" ;;
    esac
done
[ -z "$left" ] || die "processes left running:$left"
SERVER_PID=
say "passed"
