/* council web page: the list of runs, a form to start one, and a run page
 * that follows a run's events (live, or replayed from the store when it
 * has ended) through GET /v1/runs/{id}/events.  Everything on the run page
 * is derived from the events, from seq 1, so a reload mid-run loses
 * nothing.  The stream is read with fetch (not EventSource) so that a
 * bearer token can be sent; a dropped stream resumes with ?after=<last
 * seq>.  No framework, no build step: served as is by council serve. */
'use strict';

const $ = (id) => document.getElementById(id);
let follow = null; /* the run being followed: {id, abort} */

function token() { return localStorage.getItem('council-token') || ''; }
function headers(extra) {
  const h = Object.assign({}, extra || {});
  if (token()) h['Authorization'] = 'Bearer ' + token();
  return h;
}
function status(text) { $('status').textContent = text || ''; }

async function api(method, path, body) {
  const init = { method, headers: headers(body ? { 'Content-Type': 'application/json' } : {}) };
  if (body) init.body = JSON.stringify(body);
  const res = await fetch(path, init);
  let json = null;
  try { json = await res.json(); } catch (e) { /* empty or not JSON */ }
  if (res.status === 401) { $('token-form').hidden = false; }
  if (!res.ok) {
    const msg = json && json.error ? json.error.message : res.status + ' ' + res.statusText;
    throw new Error(msg);
  }
  return json;
}

function el(tag, attrs, ...kids) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === 'class') e.className = v; else e.setAttribute(k, v);
  }
  for (const k of kids) e.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return e;
}

/* A time as the API gives it (RFC 3339 text, or micro/milliseconds) in ms. */
function toMs(v) {
  if (v === undefined || v === null || v === '' || v === 0) return null;
  if (typeof v === 'number') return v > 1e14 ? v / 1000 : v;
  const t = Date.parse(v);
  return isNaN(t) ? null : t;
}

function fmtTime(v) {
  if (v === undefined || v === null || v === '') return '–';
  const d = typeof v === 'number' ? new Date(v > 1e14 ? v / 1000 : v) : new Date(v);
  return isNaN(d) ? String(v) : d.toLocaleString();
}

/* ---------------------------------------------------------------- home */

async function showHome() {
  stopFollowing();
  $('run').hidden = true;
  $('home').hidden = false;
  document.title = 'council';
  try {
    const models = await api('GET', '/v1/models');
    const sel = $('council');
    const keep = sel.value;
    sel.replaceChildren();
    for (const m of (models && models.data) || []) {
      const name = String(m.id).replace(/^council\//, '');
      sel.append(el('option', { value: name }, name));
    }
    if (keep) sel.value = keep;
  } catch (e) { status('councils: ' + e.message); }
  try {
    const list = await api('GET', '/v1/runs');
    const runs = Array.isArray(list) ? list : (list.runs || list.data || []);
    const body = $('runs').tBodies[0];
    body.replaceChildren();
    for (const r of runs) {
      const id = r.id || r.run_id;
      const started = r.started_at || r.started_us || r.started;
      const ended = r.ended_at || r.ended_us || r.ended;
      let dur = '–';
      const t0 = toMs(started), t1 = toMs(ended);
      if (r.duration_ms !== undefined) dur = (r.duration_ms / 1000).toFixed(1) + ' s';
      else if (t0 !== null && t1 !== null && t1 >= t0) dur = ((t1 - t0) / 1000).toFixed(1) + ' s';
      const outcome = r.status || r.outcome || 'running';
      /* A record that lost events says so; a crash says why. */
      const shown = outcome + (r.incomplete ? ' (incomplete record)' : '');
      const tr = el('tr', { class: 'link', 'data-run': id },
        el('td', {}, fmtTime(started)), el('td', {}, r.council || '–'),
        el('td', { title: r.question || '' }, r.question || ''),
        el('td', { 'data-outcome': outcome, title: r.reason || '' }, shown), el('td', {}, dur));
      tr.addEventListener('click', () => { location.hash = '#/runs/' + id; });
      body.append(tr);
    }
    status('');
  } catch (e) { status('runs: ' + e.message); }
}

$('start-form').addEventListener('submit', async (ev) => {
  ev.preventDefault();
  $('start-error').textContent = '';
  const body = { council: $('council').value, input: $('question').value };
  if ($('deadline').value.trim()) body.deadline = $('deadline').value.trim();
  $('start').disabled = true;
  try {
    const run = await api('POST', '/v1/runs', body);
    location.hash = '#/runs/' + run.id;
  } catch (e) {
    $('start-error').textContent = e.message;
  } finally { $('start').disabled = false; }
});

$('token-form').addEventListener('submit', (ev) => {
  ev.preventDefault();
  localStorage.setItem('council-token', $('token').value);
  $('token-form').hidden = true;
  route();
});

/* ----------------------------------------------------------------- run */

function stopFollowing() {
  if (follow) { follow.abort.abort(); follow = null; }
}

/* The run page's state, rebuilt from events. */
function newView(id) {
  return { id, members: new Map(), count: 0, ended: false, synthText: '' };
}

function memberBox(view, name) {
  let m = view.members.get(name);
  if (!m) {
    const state = el('span', { class: 'state' }, 'waiting');
    const text = el('pre', { class: 'text' });
    const box = el('div', { class: 'member', 'data-member': name, 'data-state': 'waiting' },
      el('h4', {}, name, state), el('div', { class: 'muted model' }), text);
    $('members').append(box);
    m = { box, state, text, tokens: 0, stage: null };
    view.members.set(name, m);
  }
  return m;
}

function setMember(m, state, label) {
  m.box.dataset.state = state;
  m.state.textContent = label || state;
}

function apply(view, ev) {
  view.count++;
  $('event-count').textContent = String(view.count);
  const d = ev;
  switch (ev.type) {
  case 'run_started':
    $('run-question').textContent = d.question || '';
    $('run-council').textContent = d.council || '';
    $('run-strategy').textContent = d.strategy || '';
    document.title = 'council · ' + (d.question || '').slice(0, 60);
    for (const m of d.members || []) {
      const b = memberBox(view, m.name);
      b.box.querySelector('.model').textContent = m.model || '';
    }
    break;
  case 'stage_started':
    $('run-stage').textContent = ev.stage + (ev.round ? ' ' + ev.round : '');
    break;
  case 'member_started': {
    const m = memberBox(view, ev.member);
    if (ev.stage === 'answer' || ev.stage === 'debate') {
      m.text.textContent = ''; m.tokens = 0;
    }
    m.stage = ev.stage;
    setMember(m, 'streaming', ev.stage + (ev.round ? ' ' + ev.round : '') + ' …');
    break;
  }
  case 'member_delta': {
    const m = memberBox(view, ev.member);
    m.tokens++;
    if (ev.stage === 'answer' || ev.stage === 'debate') m.text.textContent += ev.delta || '';
    setMember(m, 'streaming', ev.stage + (ev.round ? ' ' + ev.round : '') + ' · ' + m.tokens + ' chunks');
    break;
  }
  case 'member_completed': {
    const m = memberBox(view, ev.member);
    m.text.textContent = ev.text || '';
    setMember(m, 'done', 'answered' + (ev.round ? ' (round ' + ev.round + ')' : ''));
    break;
  }
  case 'member_failed': {
    const m = memberBox(view, ev.member);
    const err = ev.error || {};
    setMember(m, 'failed', 'failed in ' + (ev.stage || '?') + ': ' + (err.kind || ''));
    m.box.append(el('p', { class: 'error' }, err.message || 'failed'));
    break;
  }
  case 'review_completed': {
    $('reviews-box').hidden = false;
    const m = memberBox(view, ev.member);
    setMember(m, 'done', ev.stage === 'vote' ? 'voted' : 'reviewed');
    let what;
    if (ev.stage === 'vote') what = 'votes for ' + (ev.vote === null || ev.vote === undefined ? '(unparsed)' : ev.vote);
    else what = ev.ranking ? 'ranks ' + ev.ranking.join(' > ') : 'ranking unparsed';
    $('reviews').append(el('p', { class: 'review' }, el('strong', {}, ev.member), ' ' + what));
    break;
  }
  case 'rankings_aggregated': {
    $('reviews-box').hidden = false;
    if (Array.isArray(ev.aggregate)) {
      const t = $('aggregate'); t.hidden = false;
      const body = t.tBodies[0]; body.replaceChildren();
      ev.aggregate.forEach((a, i) => body.append(el('tr', {},
        el('td', {}, i + 1), el('td', {}, a.member), el('td', {}, a.borda),
        el('td', {}, typeof a.mean_rank === 'number' ? a.mean_rank.toFixed(2) : '–'))));
    }
    if (ev.votes) {
      $('tally').textContent = 'Votes: ' + Object.entries(ev.votes).map(([k, v]) => k + ' ' + v).join(', ') +
        (ev.winner ? ' — winner ' + ev.winner : (ev.tie && ev.tie.length ? ' — tie: ' + ev.tie.join(', ') : ''));
    }
    break;
  }
  case 'synthesis_started':
    view.synthText = '';
    $('synthesis').textContent = '';
    $('synthesis-by').textContent = 'by ' + (ev.model || 'the chairman') + (ev.fallback ? ' (fallback ' + ev.fallback + ')' : '');
    $('run-stage').textContent = 'synthesis';
    break;
  case 'synthesis_delta':
    view.synthText += ev.delta || '';
    $('synthesis').textContent = view.synthText;
    break;
  case 'synthesis_completed':
    $('synthesis').textContent = ev.text || '';
    if (ev.fallback === 'top_member') $('synthesis-by').textContent = 'the top-ranked member\'s answer (' + ev.member + ')';
    break;
  case 'run_completed':
  case 'run_failed': {
    view.ended = true;
    const o = $('run-outcome');
    let outcome = ev.type === 'run_completed' ? 'ok' : 'error';
    if (ev.type === 'run_failed' && (ev.errors || []).some((e) => e.kind === 'cancelled')) outcome = 'cancelled';
    o.textContent = outcome === 'ok' ? 'completed' : outcome === 'cancelled' ? 'cancelled' : 'failed';
    o.dataset.outcome = outcome;
    $('run-stage').textContent = 'done';
    $('cancel').hidden = true;
    if (ev.type === 'run_completed' && ev.result && ev.result.answer) $('synthesis').textContent = ev.result.answer;
    for (const e of ev.errors || []) $('errors').append(el('p', {}, (e.kind || 'error') + ': ' + (e.message || '')));
    break;
  }
  }
}

/* How the run ended, from its record (GET /v1/runs/{id}): for a run whose
 * events end without a terminal one (crashed: its process was killed, the
 * server shut down), and to say when the stored record is incomplete.
 * Returns whether the run has ended. */
function applyRecord(view, rec) {
  if (!rec) return false;
  const kept = rec.stored || rec;
  if (kept.incomplete) {
    const n = kept.events, m = rec.events_emitted;
    $('run-note').textContent = 'The stored record is incomplete: ' + n +
      (typeof m === 'number' ? ' of ' + m : '') + ' events were kept (a full disk?).';
  }
  if (!rec.outcome || rec.outcome === 'running') return false;
  if (!view.ended) {
    view.ended = true;
    const o = $('run-outcome');
    o.textContent = rec.outcome === 'ok' ? 'completed' : rec.outcome;
    o.dataset.outcome = rec.outcome;
    $('run-stage').textContent = 'done';
    if (rec.outcome === 'crashed') $('errors').append(el('p', {}, 'crashed: ' + (rec.reason || 'no reason')));
  }
  $('cancel').hidden = true;
  return true;
}

async function fetchRecord(view) {
  try { return await api('GET', '/v1/runs/' + encodeURIComponent(view.id)); }
  catch (e) { return null; }
}

/* The run's event stream from seq `after` on; resumes after a drop. */
async function stream(view, signal) {
  let after = 0;
  let failures = 0;
  while (!view.ended && !signal.aborted) {
    try {
      const res = await fetch('/v1/runs/' + encodeURIComponent(view.id) + '/events?after=' + after,
        { headers: headers({ Accept: 'text/event-stream' }), signal });
      if (res.status === 401) { $('token-form').hidden = false; throw new Error('unauthorized'); }
      if (!res.ok) {
        let msg = res.status + ' ' + res.statusText;
        try { const j = await res.json(); if (j.error) msg = j.error.message; } catch (e) { /* not JSON */ }
        if (res.status === 404) { $('errors').textContent = msg; return; }
        throw new Error(msg);
      }
      status('live');
      const reader = res.body.getReader();
      const dec = new TextDecoder();
      let buf = '', data = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += dec.decode(value, { stream: true });
        let nl;
        while ((nl = buf.indexOf('\n')) >= 0) {
          let line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          if (line.endsWith('\r')) line = line.slice(0, -1);
          if (line === '') {
            if (data) {
              const ev = JSON.parse(data);
              if (typeof ev.seq === 'number' && ev.seq > after) { after = ev.seq; apply(view, ev); }
            }
            data = '';
          } else if (line.startsWith('data:')) {
            data += (data ? '\n' : '') + line.slice(line[5] === ' ' ? 6 : 5);
          }
        }
      }
      failures = 0;
      /* The stream ended without a terminal event: the run may have
       * crashed, or just this connection dropped.  The record says. */
      if (!view.ended && !signal.aborted && applyRecord(view, await fetchRecord(view)))
        break;
    } catch (e) {
      if (signal.aborted) return;
      failures++;
      status('reconnecting (' + e.message + ')');
    }
    if (!view.ended && !signal.aborted)
      await new Promise((r) => setTimeout(r, Math.min(5000, 250 * 2 ** Math.min(failures, 5))));
  }
  status('');
}

function showRun(id) {
  stopFollowing();
  $('home').hidden = true;
  $('run').hidden = false;
  for (const idn of ['members', 'reviews', 'errors', 'synthesis', 'tally', 'synthesis-by'])
    $(idn).replaceChildren();
  $('aggregate').hidden = true;
  $('aggregate').tBodies[0].replaceChildren();
  $('reviews-box').hidden = true;
  $('run-question').textContent = '';
  $('run-stage').textContent = '–';
  $('run-outcome').textContent = 'running';
  $('run-outcome').dataset.outcome = 'running';
  $('run-id').textContent = 'run ' + id;
  $('event-count').textContent = '0';
  $('run-note').textContent = '';
  /* Cancel is offered only for a run in flight (the record says). */
  $('cancel').hidden = true;
  const view = newView(id);
  const abort = new AbortController();
  follow = { id, abort };
  fetchRecord(view).then((rec) => {
    if (abort.signal.aborted) return;
    if (rec && rec.outcome === 'running' && !view.ended) $('cancel').hidden = false;
    else applyRecord(view, rec);
  });
  stream(view, abort.signal);
}

$('cancel').addEventListener('click', async () => {
  if (!follow) return;
  try { await api('DELETE', '/v1/runs/' + encodeURIComponent(follow.id)); }
  catch (e) {
    /* 409: it is not in flight (it ended, or runs elsewhere). */
    $('errors').textContent = 'cancel: ' + e.message;
    $('cancel').hidden = true;
  }
});

function route() {
  const m = location.hash.match(/^#\/runs\/([^/?#]+)/);
  if (m) showRun(decodeURIComponent(m[1])); else showHome();
}
window.addEventListener('hashchange', route);
route();
