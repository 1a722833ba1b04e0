#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Writes the hand-made seed inputs of every fuzz target into
fuzz/corpus/<target>/seed-*.  Run from the repository root; the seeds are
committed with the minimized corpora, so this only needs running again
when the input layout of a target changes (see fuzz/README.md)."""
import json
import os
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
CORPUS = os.path.join(ROOT, "fuzz", "corpus")


def put(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, "seed-" + name), "wb") as f:
        f.write(data)


# ---- council_yaml --------------------------------------------------------
def council_yaml():
    for ex in ("demo.yaml", "openai.yaml"):
        with open(os.path.join(ROOT, "examples", ex), "rb") as f:
            put("council_yaml", ex, f.read())
    good = {
        "name": "j",
        "strategy": "rank",
        "providers": {"p": {"kind": "openai",
                            "base_url": "http://127.0.0.1:1/v1",
                            "api_key_env": "K", "max_parallel": 2}},
        "members": [{"name": "a", "provider": "p", "model": "m",
                     "system": "s"},
                    {"name": "b", "provider": "p", "model": "m"}],
        "chairman": {"provider": "p", "model": "c"},
        "limits": {"member_timeout": "250ms", "deadline": 5000,
                   "retries": 0, "quorum": 1, "max_tokens": 16},
    }
    put("council_yaml", "good.json", json.dumps(good))
    put("council_yaml", "good-compact.json",
        json.dumps(good, separators=(",", ":")))
    bad = dict(good, strategy="debatez")
    put("council_yaml", "bad-strategy.json", json.dumps(bad))
    bad = dict(good)
    del bad["chairman"]
    put("council_yaml", "no-chairman.json", json.dumps(bad))
    bad = dict(good, limits={"deadline": "5 fortnights"})
    put("council_yaml", "bad-duration.json", json.dumps(bad))
    bad = dict(good, providers={"p": {"kind": "anthropic"}})
    put("council_yaml", "anthropic.json", json.dumps(bad))
    bad = dict(good, members=[{"name": "m%d" % i, "provider": "p",
                               "model": "x"} for i in range(27)])
    put("council_yaml", "27-members.json", json.dumps(bad))
    bad = dict(good, members=[{"name": "a", "provider": "q",
                               "model": "x"}])
    put("council_yaml", "unknown-provider.json", json.dumps(bad))
    put("council_yaml", "truncated.json", json.dumps(good)[:100])
    put("council_yaml", "empty", "")
    put("council_yaml", "null", "~\n")
    put("council_yaml", "scalar", "just a string\n")
    put("council_yaml", "list", "- a\n- b\n")
    put("council_yaml", "tab-indent.yaml", "name: x\nproviders:\n\tp: 1\n")
    put("council_yaml", "unterminated.yaml", 'name: "abc\nstrategy: rank\n')
    put("council_yaml", "dup-key.yaml", "name: a\nname: b\n")
    put("council_yaml", "anchors.yaml",
        "providers:\n  p: &p { kind: openai, base_url: http://h/v1 }\n"
        "  q: *p\nname: x\nmembers:\n  - &m { name: a, provider: p, "
        "model: m }\n  - <<: *m\n    name: b\nchairman: *m\n")
    put("council_yaml", "tags.yaml",
        "name: !!str 12\nstrategy: !custom rank\nlimits: "
        "{ retries: !!int '3', quorum: 0x10, max_tokens: 1e3 }\n")
    put("council_yaml", "multi-doc.yaml", "name: a\n---\nname: b\n...\n")
    put("council_yaml", "deep.yaml", "a: " + "[" * 80 + "]" * 80 + "\n")
    put("council_yaml", "bom.yaml", b"\xef\xbb\xbfname: x\n")
    put("council_yaml", "bad-utf8.yaml", b"name: \xc3\x28\n")
    put("council_yaml", "ctrl.yaml", b"name: a\x01b\n")
    put("council_yaml", "block-scalars.yaml",
        "name: x\nmembers:\n  - name: a\n    system: |\n      line1\n"
        "      line2\n    model: >-\n      folded\n      text\n")
    put("council_yaml", "complex-key.yaml", "? [a, b]\n: c\n")
    put("council_yaml", "durations.yaml",
        "limits: { member_timeout: 1h, deadline: 18446744073709551616ms, "
        "retries: -1, quorum: 99999999999999999999 }\n")


# ---- sse: 3 bytes (chunk seed, chunk size|line cap, stop) + stream ------
def sse():
    streams = {
        "openai": 'data: {"choices":[{"delta":{"content":"Hi"}}]}\n\n'
                  "data: [DONE]\n\n",
        "crlf": "event: a\r\ndata: x\r\ndata: y\r\n\r\n",
        "cr": "data: 1\rdata:2\r\r: comment\rdata\r\r",
        "bom": "\ufeffdata: after bom\n\n",
        "fields": "id: 7\nretry: 100\nevent: ping\nunknown: x\n"
                  "data:  two spaces\n\n",
        "comments": ": keep-alive\n\n: x\ndata: y\n\n",
        "no-final-blank": "data: tail",
        "long-line": "data: " + "x" * 200 + "\n\n",
        "long-event": "".join("data: %s\n" % ("y" * 30)
                              for _ in range(6)) + "\n",
        "nul": "data: a\x00b\n\n",
        "empty-data": "data:\n\ndata\n\n",
    }
    for i, (name, s) in enumerate(sorted(streams.items())):
        for hdr in (bytes([i, 0x03 | 0x40 * (i % 4), 0]),
                    bytes([i * 7, 0xff, 1])):
            put("sse", "%s-%02x%02x" % (name, hdr[1], hdr[2]),
                hdr + s.encode())


# ---- openai_chunk: mode byte (0 sse, 1 sse broken, 2 json, 3 error) -----
def openai_chunk():
    def chunk(obj):
        return "data: " + json.dumps(obj) + "\n\n"
    delta = {"id": "c", "object": "chat.completion.chunk",
             "choices": [{"index": 0, "delta": {"content": "Hello"},
                          "finish_reason": None}]}
    fin = {"choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
    usage = {"choices": [], "usage": {"prompt_tokens": 9,
                                      "completion_tokens": 3,
                                      "total_tokens": 12, "cost": 0.0001}}
    done = "data: [DONE]\n\n"
    s = {
        "normal": chunk(delta) + chunk(fin) + chunk(usage) + done,
        "no-done": chunk(delta) + chunk(fin),
        "no-terminator": chunk(delta),
        "error-in-stream": chunk(delta) + chunk(
            {"error": {"message": "overloaded", "type": "server_error",
                       "code": 529}}),
        "error-string": chunk({"error": "boom"}),
        "malformed": "data: {\"choices\": [\n\n" + done,
        "not-object": "data: [1,2]\n\n",
        "neg-usage": chunk({"usage": {"prompt_tokens": -5,
                                      "completion_tokens": -1,
                                      "cost": -2.5}}) + done,
        "nul-content": 'data: {"choices":[{"delta":{"content":"a\\u0000b"}}'
                       ']}\n\n' + done,
        "after-done": done + chunk(delta),
        "reasoning": chunk({"choices": [{"index": 0, "delta": {
            "reasoning_content": "Hmm."}}]}) + chunk({"choices": [{
                "index": 0, "delta": {"reasoning": "So."}}]}) +
        ": keep-alive\n\n" + chunk(delta) + chunk(fin) + done,
        "huge-usage": chunk({"usage": {
            "prompt_tokens": 9223372036854775807,
            "completion_tokens": 1099511627777}}) + done,
    }
    for name, body in sorted(s.items()):
        put("openai_chunk", "sse-" + name, b"\x00" + body.encode())
        put("openai_chunk", "broken-" + name, b"\x01" + body.encode())
    whole = {"choices": [{"index": 0, "message": {"role": "assistant",
                                                  "content": "Hi"},
                          "finish_reason": "stop"}],
             "usage": {"prompt_tokens": 1, "completion_tokens": 2}}
    put("openai_chunk", "json-whole", b"\x02" + json.dumps(whole).encode())
    put("openai_chunk", "json-nochoice", b"\x02{}")
    put("openai_chunk", "json-error", b'\x02{"error":{"message":"x"}}')
    errs = {
        "openai": {"error": {"message": "Invalid API key", "type":
                             "invalid_request_error", "code": "bad_key"}},
        "code-int": {"error": {"message": "rate", "code": 429}},
        "top-message": {"message": "not found", "type": "nf"},
        "string": {"error": "plain"},
    }
    for name, e in sorted(errs.items()):
        put("openai_chunk", "err-" + name, b"\x03" + json.dumps(e).encode())
    put("openai_chunk", "err-html", b"\x03<html>502 Bad Gateway</html>\r\n")
    put("openai_chunk", "err-binary", b"\x03\xff\xfe\x00\x01garbage\xc3")


# ---- anthropic_event: mode byte (0 sse, 1 sse broken, 2 json, 3 error) ---
def anthropic_event():
    def ev(obj, name=None):
        name = name or obj.get("type", "x")
        return "event: " + name + "\n" + "data: " + json.dumps(obj) + "\n\n"
    start = ev({"type": "message_start", "message": {
        "id": "msg_1", "type": "message", "role": "assistant",
        "content": [], "model": "m", "stop_reason": None,
        "usage": {"input_tokens": 9, "output_tokens": 1,
                  "cache_read_input_tokens": 2}}})
    block = ev({"type": "content_block_start", "index": 0,
                "content_block": {"type": "text", "text": ""}})
    ping = ev({"type": "ping"})
    text = ev({"type": "content_block_delta", "index": 0,
               "delta": {"type": "text_delta", "text": "Hello"}})
    stop_block = ev({"type": "content_block_stop", "index": 0})
    delta = ev({"type": "message_delta",
                "delta": {"stop_reason": "end_turn", "stop_sequence": None},
                "usage": {"output_tokens": 3}})
    stop = ev({"type": "message_stop"})
    thinking = (
        ev({"type": "content_block_start", "index": 0,
            "content_block": {"type": "thinking", "thinking": ""}}) +
        ev({"type": "content_block_delta", "index": 0,
            "delta": {"type": "thinking_delta", "thinking": "Hmm."}}) +
        ev({"type": "content_block_delta", "index": 0,
            "delta": {"type": "signature_delta", "signature": "sig"}}) +
        ev({"type": "content_block_stop", "index": 0}) +
        ev({"type": "content_block_start", "index": 1,
            "content_block": {"type": "text", "text": ""}}) +
        ev({"type": "content_block_delta", "index": 1,
            "delta": {"type": "text_delta", "text": "Answer"}}))
    s = {
        "normal": start + block + ping + text + stop_block + delta + stop,
        "thinking": start + thinking + delta + stop,
        "no-stop": start + block + text + stop_block + delta,
        "no-usage": ev({"type": "message_start", "message": {}}) + text +
                    ev({"type": "message_delta",
                        "delta": {"stop_reason": "end_turn"}}) + stop,
        "error-in-stream": start + text + ev({"type": "error", "error": {
            "type": "overloaded_error", "message": "Overloaded"}}),
        "error-string": ev({"type": "error", "error": "boom"}),
        "type-from-event-name": "event: message_stop\ndata: {}\n\n",
        "malformed": start + "event: content_block_delta\ndata: {\"type\": "
                     "\"content_block_delta\", \"delta\": {\n\n" + stop,
        "not-object": "data: [1,2]\n\n",
        "neg-usage": ev({"type": "message_start", "message": {"usage": {
            "input_tokens": -5, "output_tokens": -1}}}) + stop,
        "big-usage": ev({"type": "message_start", "message": {"usage": {
            "input_tokens": 9223372036854775807,
            "cache_creation_input_tokens": 9223372036854775807,
            "cache_read_input_tokens": 9223372036854775807}}}) + stop,
        "nul-text": start + 'event: content_block_delta\ndata: {"type":'
                    '"content_block_delta","delta":{"type":"text_delta",'
                    '"text":"a\\u0000b"}}\n\n' + stop,
        "after-stop": stop + text,
        "unknown-type": ev({"type": "future_event", "x": 1}) + stop,
    }
    for name, body in sorted(s.items()):
        put("anthropic_event", "sse-" + name, b"\x00" + body.encode())
        put("anthropic_event", "broken-" + name, b"\x01" + body.encode())
    whole = {"id": "msg_1", "type": "message", "role": "assistant",
             "content": [{"type": "thinking", "thinking": "Hmm",
                          "signature": "s"},
                         {"type": "text", "text": "Hi"},
                         {"type": "tool_use", "id": "t", "name": "x",
                          "input": {}}],
             "stop_reason": "end_turn",
             "usage": {"input_tokens": 1, "output_tokens": 2}}
    put("anthropic_event", "json-whole",
        b"\x02" + json.dumps(whole).encode())
    put("anthropic_event", "json-nocontent", b"\x02{}")
    put("anthropic_event", "json-error",
        b'\x02{"type":"error","error":{"type":"api_error","message":"x"}}')
    errs = {
        "anthropic": {"type": "error", "error": {
            "type": "authentication_error", "message": "invalid x-api-key"}},
        "bare": {"type": "rate_limit_error", "message": "slow down"},
        "string": {"error": "plain"},
    }
    for name, e in sorted(errs.items()):
        put("anthropic_event", "err-" + name,
            b"\x03" + json.dumps(e).encode())
    put("anthropic_event", "err-html",
        b"\x03<html>529 Overloaded</html>\r\n")
    put("anthropic_event", "err-binary", b"\x03\xff\xfe\x00\x01garbage\xc3")


# ---- ranking: n byte + text ------------------------------------------------
def ranking():
    texts = {
        "strict3": (3, "Response A is good.\n\nFINAL RANKING:\n"
                       "1. Response C\n2. Response A\n3. Response B\n"),
        "strict1": (1, "FINAL RANKING:\n1. Response A\n"),
        "markdown": (3, "**FINAL RANKING:**\n1. **Response B**\n"
                        "2) Response A\n3 - Response C\n"),
        "tolerant": (3, "I think Response B is best, then Response C, "
                        "and Response A last."),
        "dup": (3, "FINAL RANKING:\n1. Response A\n2. Response A\n"
                   "3. Response B\n"),
        "partial": (4, "FINAL RANKING:\n1. Response D\n2. Response A\n"),
        "out-of-range": (2, "FINAL RANKING:\n1. Response C\n"
                            "2. Response A\n"),
        "twice": (2, "FINAL RANKING:\n1. Response A\n2. Response B\n"
                     "FINAL RANKING:\n1. Response B\n2. Response A\n"),
        "lower": (2, "final ranking:\n1. response b\n2. response a\n"),
        "z26": (26, "FINAL RANKING:\n" + "".join(
            "%d. Response %s\n" % (i + 1, chr(ord("Z") - i))
            for i in range(26))),
        "empty": (5, ""),
    }
    for name, (n, t) in sorted(texts.items()):
        put("ranking", name, bytes([n - 1]) + t.encode())


# ---- event_json: 19-byte header, stage, member, data JSON, text ----------
def event_json():
    def ev(typ, flags, stage, member, data, text, seq=1, rnd=0,
           ts=1764000000123456):
        d = data.encode()
        return (bytes([typ, flags, len(stage), len(member)]) +
                struct.pack("<HIBQ", len(d), seq, rnd, ts) +
                stage + member + d + text)
    put("event_json", "run-started",
        ev(1, 0x08, b"", b"", '{"council":"c","strategy":"rank",'
           '"seed":42,"members":[{"name":"a"}]}', b""))
    put("event_json", "delta",
        ev(5, 0x07, b"answer", b"alpha", "", "Hello, w\u00f6rld".encode()))
    put("event_json", "delta-bad-utf8",
        ev(5, 0x07, b"answer", b"alpha", "", b"\xff\xfe half \xe2\x82"))
    put("event_json", "completed",
        ev(6, 0x0f, b"answer", b"beta", '{"model":"m","usage":null}',
           b"The answer.\n\twith \"quotes\" and \\ and \x01"))
    put("event_json", "collide",
        ev(13, 0x1f, b"synthesis", b"", '{"type":"x","seq":-1,"run_id":1,'
           '"text":5,"stage":null,"round":"r","extra":[1.5,true]}',
           b"final", seq=7, rnd=3))
    put("event_json", "failed",
        ev(14, 0x48, b"", b"", '{"errors":[{"kind":"cancelled",'
           '"message":"c"}]}', b"", seq=0xffffffff))
    put("event_json", "bad-type", ev(0, 0x8c, b"", b"", "{}", b"t"))
    put("event_json", "member-utf8",
        ev(4, 0x03, b"review", "\u00e9\u00e8".encode(), "", b""))
    put("event_json", "member-bad",
        ev(4, 0x03, b"rev\xc0iew", b"a\xffb", "", b""))
    put("event_json", "ts-extreme",
        ev(2, 0x21, b"answer", b"", "", b"", ts=0x8000000000000000))
    put("event_json", "ts-negative",
        ev(2, 0x21, b"answer", b"", "", b"", ts=(1 << 64) - 1))
    put("event_json", "nul-data",
        ev(3, 0x08, b"", b"", '{"a\\u0000b":"c\\u0000d"}', b""))
    # Whole lines for the parser (the raw input is parsed too): events as
    # a demo run records them, and lines in other forms.
    rid = "01a22b7f-fb82-7000-a2e3-563a50456545"

    def line(typ, seq, **kw):
        o = {"type": typ, "run_id": rid, "seq": seq,
             "ts": "2026-11-30T08:08:57.479950Z"}
        o.update(kw)
        return json.dumps(o, separators=(",", ":"))
    put("event_json", "line-run-started",
        line("run_started", 1, council="demo", strategy="rank",
             question="Why?", messages=[{"role": "user", "content": "Why?"}],
             members=[{"name": "alpha", "provider": "mock",
                       "model": "mock-a"}],
             chairman={"provider": "mock", "model": "mock-chair"},
             seed=5699018434400331747))
    put("event_json", "line-delta",
        line("member_delta", 7, stage="answer", member="alpha",
             delta="Model \u00e9 \u0000"))
    put("event_json", "line-review",
        line("review_completed", 347, stage="review", member="alpha",
             text="FINAL RANKING:\n1. Response C", model="mock-a",
             labels={"A": "delta"}, seed=-7285384283182525089,
             ranking=["beta"], parse="strict", parse_ok=True))
    put("event_json", "line-aggregate",
        line("rankings_aggregated", 354, stage="review",
             aggregate=[{"member": "beta", "borda": 6.0,
                         "mean_rank": 1.6666666666666667, "votes": 3}],
             ballots=4))
    put("event_json", "line-debate-round",
        line("stage_completed", 9, stage="debate", round=2,
             similarity={"a": 0.5}, converged=False))
    put("event_json", "line-failed",
        line("run_failed", 20, errors=[{"kind": "cancelled",
                                         "message": "the run was cancelled"}],
             result={}))
    put("event_json", "line-sorted",
        json.dumps({"type": "member_delta", "run_id": "r", "seq": 2,
                    "ts": "2026-11-24T01:02:03Z", "stage": "answer",
                    "member": "a", "delta": "x"}, sort_keys=True))
    put("event_json", "line-odd-forms",
        '{"type":"member_started","run_id":"r","seq":3,'
        '"ts":"-1-12-31T23:59:59.9Z","model":"x","stage":"late",'
        '"round":0,"member":5}')


# ---- jsonl_read: stop byte + file -----------------------------------------
def jsonl_read():
    rid = "0192f3a4-5b6c-7d8e-9f00-112233445566"

    def e(seq, typ="member_delta", run=rid, **kw):
        o = {"type": typ, "run_id": run, "seq": seq,
             "ts": "2026-01-01T00:00:00.000000Z"}
        o.update(kw)
        return json.dumps(o, separators=(",", ":")) + "\n"
    ok = (e(1, "run_started", council="c") + e(2, stage="answer",
          member="a", delta="hi") + e(3, "run_completed", result={}) +
          '{"outcome":"ok","result":{}}\n')
    files = {
        "complete": ok,
        "torn": ok[:-10],
        "no-outcome": e(1) + e(2),
        "gap": e(1) + e(3) + '{"outcome":"ok"}\n',
        "after-outcome": e(1) + '{"outcome":"ok"}\n' + e(2),
        "other-run": e(1) + e(2, run="other") + '{"outcome":"error"}\n',
        "bad-json": e(1) + "{not json\n",
        "not-object": "[1]\n",
        "outcome-not-string": e(1) + '{"outcome":1}\n',
        "unknown-type": e(1, "nope") + '{"outcome":"ok"}\n',
        "seq-string": '{"type":"run_started","run_id":"r","seq":"1"}\n',
        "seq-zero": e(0) + '{"outcome":"ok"}\n',
        "seq-negative": e(-1) + '{"outcome":"ok"}\n',
        "long-runid": e(1, run="r" * 100) + e(2, run="r" * 80) +
        '{"outcome":"crashed","reason":"signal SIGKILL"}\n',
        "empty": "",
        "blank-line": "\n",
        "crlf": e(1).replace("\n", "\r\n") + '{"outcome":"ok"}\r\n',
        "outcome-only": '{"outcome":"cancelled"}\n',
    }
    for name, text in sorted(files.items()):
        put("jsonl_read", name, b"\x00" + text.encode())
    put("jsonl_read", "complete-stop2", b"\x02" + ok.encode())
    put("jsonl_read", "complete-stop4", b"\x04" + ok.encode())


# ---- run_reader: a whole file, a jsonl record or a SQLite store ----------
def run_reader():
    import sqlite3
    import tempfile
    rid = "0193-fuzz"

    def e(seq, typ, **kw):
        o = {"type": typ, "run_id": rid, "seq": seq,
             "ts": "2026-11-30T08:00:00.%06dZ" % seq}
        o.update(kw)
        return json.dumps(o, separators=(",", ":"))
    events = [
        e(1, "run_started", council="demo", strategy="rank", question="Why?",
          messages=[{"role": "user", "content": "Why?"}],
          members=[{"name": "a", "provider": "p", "model": "m"}],
          chairman={"provider": "p", "model": "c"}, seed=7),
        e(2, "stage_started", stage="answer"),
        e(3, "member_delta", stage="answer", member="a", delta="Blue"),
        e(4, "member_completed", stage="answer", member="a", text="Blue",
          model="m", usage={"prompt_tokens": 1, "completion_tokens": 1,
                            "total_tokens": 2}, latency_ms=5),
        e(5, "run_completed", result={"answer": "Blue", "answers": []}),
    ]
    outcome = '{"outcome":"ok","result":{"answer":"Blue","answers":[]}}'
    put("run_reader", "jsonl-complete", "\n".join(events + [outcome]) + "\n")
    put("run_reader", "jsonl-cut", "\n".join(events[:3]) + "\n" +
        events[3][:20])
    # The sqlite recorder's schema (src/recorder/sqlite.c), in rollback
    # journal mode (a memfd cannot have a -wal and -shm beside it).
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "runs.db")
        db = sqlite3.connect(path)
        db.executescript(
            "PRAGMA page_size=512;"
            "CREATE TABLE runs(run_id TEXT PRIMARY KEY, council TEXT,"
            " question TEXT, strategy TEXT, started_us INTEGER NOT NULL,"
            " ended_us INTEGER, outcome TEXT, reason TEXT, outcome_json TEXT,"
            " events INTEGER NOT NULL DEFAULT 0);"
            "CREATE TABLE events(run_id TEXT NOT NULL, seq INTEGER NOT NULL,"
            " type TEXT NOT NULL, ts_us INTEGER NOT NULL, json TEXT NOT NULL,"
            " PRIMARY KEY(run_id, seq)) WITHOUT ROWID;"
            "CREATE INDEX runs_started ON runs(started_us);"
            "PRAGMA application_id=1131307884; PRAGMA user_version=1;")
        db.execute("INSERT INTO runs VALUES(?,?,?,?,?,?,?,?,?,?)",
                   (rid, "demo", "Why?", "rank", 1796025600000000,
                    1796025600000005, "ok", None, outcome, len(events)))
        db.execute("INSERT INTO runs(run_id, started_us, events)"
                   " VALUES('0193-running', 1796025600000010, 0)")
        for i, ev in enumerate(events):
            db.execute("INSERT INTO events VALUES(?,?,?,?,?)",
                       (rid, i + 1, json.loads(ev)["type"],
                        1796025600000000 + i + 1, ev))
        db.commit()
        db.execute("VACUUM")
        db.close()
        with open(path, "rb") as f:
            put("run_reader", "sqlite-store", f.read())


# ---- http_request ----------------------------------------------------------
# Byte 0 picks the method (0 GET, 1 HEAD, 2 POST, 3 DELETE, 4 PUT,
# 5 OPTIONS, 6-7: the input's own up to a space); the rest is the target.
def http_request():
    rid = "01a22b87-ea99-7003-ab1c-01886dad173f"
    cases = [
        (0, "get-healthz", "/healthz"),
        (1, "head-healthz", "/healthz"),
        (0, "get-root", "/"),
        (0, "get-app", "/app.js"),
        (0, "get-metrics", "/metrics"),
        (0, "get-models", "/v1/models"),
        (2, "post-chat", "/v1/chat/completions"),
        (0, "get-chat-405", "/v1/chat/completions"),
        (2, "post-runs", "/v1/runs"),
        (0, "list-query", "/v1/runs?limit=10&council=demo&outcome=ok"
                          "&since=2026-11-24T00:00:00.5Z"),
        (0, "list-bad-limit", "/v1/runs/?limit=0"),
        (0, "list-plus", "/v1/runs?council=tr+io&council=x"),
        (0, "run", "/v1/runs/" + rid),
        (1, "head-run", "/v1/runs/" + rid),
        (3, "delete-purge", "/v1/runs/" + rid + "?purge=true"),
        (3, "delete-purge-bad", "/v1/runs/" + rid + "?purge"),
        (0, "events-after", "/v1/runs/" + rid + "/events?after=120"),
        (1, "head-events", "/v1/runs/" + rid + "/events"),
        (0, "nul-path", "/v1/runs/%00"),
        (0, "nul-id", "/v1/runs/" + rid + "%00/events"),
        (0, "nul-query", "/v1/runs?limit=5%00"),
        (0, "nul-key", "/v1/runs?x%00y=1"),
        (0, "not-nul", "/v1/runs/%2500"),
        (0, "bad-escapes", "/v1/runs/%zz%4"),
        (0, "space-id", "/v1/runs/a%20b"),
        (0, "long-id", "/v1/runs/" + "a" * 70),
        (0, "other", "/v1/runs/x/other"),
        (0, "many-args", "/v1/runs?" + "&".join("a%d=%d" % (i, i)
                                               for i in range(34))),
        (0, "empty-args", "/v1/runs?&&limit=3&"),
        (4, "put", "/v1/runs"),
        (5, "options", "/healthz"),
    ]
    for m, name, target in cases:
        put("http_request", name, bytes([m]) + target.encode())
    put("http_request", "own-method", b"\x06PATCH /v1/runs")
    put("http_request", "raw-nul", b"\x00/healthz\x00/x")


# ---- openai_compat_body ------------------------------------------------------
def openai_compat_body():
    user = {"role": "user", "content": "Why is the sky blue?"}
    bodies = {
        "minimal": {"model": "council/demo", "messages": [user]},
        "streamed": {"model": "council/demo", "stream": True,
                     "stream_options": {"include_usage": True},
                     "messages": [user]},
        "conversation": {"model": "council/demo", "n": 1,
                         "temperature": 0.2, "messages": [
                             {"role": "developer", "content": "Be brief."},
                             {"role": "system", "content": None},
                             {"role": "user", "content": "Hi"},
                             {"role": "assistant", "content": "Hello."},
                             {"role": "user", "content": [
                                 {"type": "text", "text": ""},
                                 {"type": "text", "text": "part one"},
                                 {"type": "text", "text": "part two"}]}]},
        "unicode": {"model": "council/d\u00e9mo \U0001f600",
                    "messages": [{"role": "user",
                                  "content": "caf\u00e9 \u2028 \u0001"}]},
        "not-council": {"model": "gpt-4o", "messages": [user]},
        "no-model": {"messages": [user]},
        "stream-string": {"model": "council/demo", "stream": "yes",
                          "messages": [user]},
        "bad-options": {"model": "council/demo",
                        "stream_options": {"include_usage": 1},
                        "messages": [user]},
        "n-two": {"model": "council/demo", "n": 2, "messages": [user]},
        "no-messages": {"model": "council/demo", "messages": []},
        "tool-role": {"model": "council/demo",
                      "messages": [{"role": "tool", "content": "x"}]},
        "image-part": {"model": "council/demo", "messages": [
            {"role": "user", "content": [{"type": "image_url"}]}]},
        "last-assistant": {"model": "council/demo", "messages": [
            user, {"role": "assistant", "content": "x"}]},
        "number-content": {"model": "council/demo",
                           "messages": [{"role": "user", "content": 7}]},
    }
    for name, b in bodies.items():
        put("openai_compat_body", name, json.dumps(b))
    put("openai_compat_body", "nul-escape",
        '{"model":"council/demo","messages":[{"role":"user",'
        '"content":"a\\u0000b"}]}')
    put("openai_compat_body", "malformed", '{"model":"council/demo",')
    put("openai_compat_body", "array", '[1,2]')
    put("openai_compat_body", "bad-utf8",
        b'{"model":"council/\xff","messages":[]}')


# ---- bus_record: renew count byte + RESP replies ---------------------------
def resp(v):
    """RESP2 encoding: str -> bulk, int -> integer, list -> array,
    None -> nil, ('+', s) status, ('-', s) error."""
    if v is None:
        return b"$-1\r\n"
    if isinstance(v, tuple):
        return v[0].encode() + v[1].encode() + b"\r\n"
    if isinstance(v, int):
        return b":%d\r\n" % v
    if isinstance(v, str):
        b = v.encode()
        return b"$%d\r\n" % len(b) + b + b"\r\n"
    return b"*%d\r\n" % len(v) + b"".join(resp(x) for x in v)


def bus_record():
    seeds = {
        "enqueue-created": (0, ["created", "queued"]),
        "enqueue-exists": (0, ["exists", "running"]),
        "claim": (0, ["claimed", 1, '{"spec":1}']),
        "claim-skip": (0, ["skip", "cancelled"]),
        "notfound": (0, ["notfound"]),
        "append-ok": (0, ["ok", 3]),
        "append-gap": (0, ["gap", 7]),
        "append-fenced": (0, ["fenced", 2, "crashed"]),
        "cancel-terminal": (0, ["terminal", "ok"]),
        "renew": (2, ["ok", 1, "fenced", 0]),
        "reap": (0, [["a", "b"], ["c"]]),
        "version": (0, 1),
        "error-oom": (0, ("-", "OOM command not allowed")),
        "error-nofn": (0, ("-", "ERR Function not found")),
        "xrange": (0, [["0-1", ["ev", "{}"]],
                       ["0-2", ["ev", "{}", "outcome", "ok", "reason", "",
                                "ts_ms", "1796407592783"]],
                       ["0-3", ["outcome", "crashed", "reason",
                                "worker lost", "ts_ms", "1"]]]),
        "hash": (0, ["state", "running", "gen", "1", "last_seq", "4",
                     "cancel", "0", "spec", "{}", "owner", "w1",
                     "created_ms", "1796407592546"]),
        "nil-inside": (0, ["ok", None]),
        "two-replies": (1, None),
    }
    for name, (n, v) in seeds.items():
        if name == "two-replies":
            data = resp(["ok", 0]) + resp(["claimed", 2, "{}"])
        else:
            data = resp(v)
        put("bus_record", name, bytes([n]) + data)


TARGETS = (council_yaml, sse, openai_chunk, anthropic_event, ranking,
           event_json, jsonl_read, run_reader, http_request,
           openai_compat_body, bus_record)

if __name__ == "__main__":
    # Names on the command line: only those targets' seeds.
    for fn in TARGETS:
        if len(sys.argv) < 2 or fn.__name__ in sys.argv[1:]:
            fn()
    sys.exit(0)
