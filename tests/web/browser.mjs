// SPDX-License-Identifier: MIT
// council serve's web page in a real browser: Debian's Chromium driven by
// playwright-core (run by tests/web/run.sh browser; BASE is the server's
// URL, ART the artifacts directory, argv[2] the node_modules).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(process.argv[2] + '/');
const { chromium } = require('playwright-core');
const { BASE, ART, CHROMIUM } = process.env;

async function api(path) {
  const res = await fetch(BASE + path);
  assert.equal(res.status, 200, path);
  return res.json();
}

const browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on('pageerror', (e) => errors.push(e.message));

  // Start a run from the form.
  await page.goto(BASE + '/');
  await page.waitForSelector('#council option[value="demo"]', { state: 'attached' });
  await page.fill('#question', 'Why is the sky blue?');
  await page.click('#start');
  await page.waitForURL(/#\/runs\//);
  const id = decodeURIComponent(page.url().split('#/runs/')[1]);

  // Live: members stream side by side.
  await page.waitForSelector('.member[data-state="streaming"]', { timeout: 20000 });
  await page.screenshot({ path: ART + '/web-live.png', fullPage: true });

  // Reload mid-run: the page rebuilds from seq 1 and goes on live.
  const before = await api('/v1/runs/' + id);
  assert.equal(before.outcome, 'running', 'the run ended before the reload');
  await page.reload();
  await page.waitForSelector('#run-outcome[data-outcome="ok"]', { timeout: 60000 });
  const run = await api('/v1/runs/' + id);
  assert.equal(run.outcome, 'ok');
  assert.equal((await page.textContent('#synthesis')).trim(), run.result.answer.trim());
  assert.equal(Number(await page.textContent('#event-count')), run.events,
               'events shown != events of the run');
  assert.equal(await page.locator('.member').count(), 4);
  for (const m of ['alpha', 'beta', 'gamma', 'delta']) {
    const t = await page.textContent(`.member[data-member="${m}"] pre`);
    assert.ok(t.trim().length > 0, m + ' shows no answer');
  }
  assert.ok(await page.locator('#aggregate tbody tr').count() === 4, 'no aggregate table');
  await page.screenshot({ path: ART + '/web-run.png', fullPage: true });

  // The list shows it.
  await page.goto(BASE + '/#/');
  await page.waitForSelector(`tr[data-run="${id}"]`);
  await page.screenshot({ path: ART + '/web-list.png', fullPage: true });

  // Cancel a run from its page.
  await page.fill('#question', 'A question to cancel');
  await page.click('#start');
  await page.waitForURL(/#\/runs\//);
  const id2 = decodeURIComponent(page.url().split('#/runs/')[1]);
  assert.notEqual(id2, id);
  await page.click('#cancel');
  await page.waitForSelector('#run-outcome[data-outcome="cancelled"]', { timeout: 20000 });
  const r2 = await api('/v1/runs/' + id2);
  assert.equal(r2.outcome, 'cancelled');
  // Cancelled: the button is gone, and the API says nothing is in flight.
  assert.ok(await page.locator('#cancel').isHidden(), 'Cancel offered for an ended run');

  // A run whose process was killed (run.sh): crashed, no Cancel button.
  const killed = process.env.KILLED_ID;
  await page.goto(BASE + '/#/runs/' + encodeURIComponent(killed));
  await page.waitForSelector('#run-outcome[data-outcome="crashed"]', { timeout: 20000 });
  assert.ok(await page.locator('#cancel').isHidden(), 'Cancel offered for a crashed run');
  assert.match(await page.textContent('#errors'), /process lost: pid \d+/);
  const k = await api('/v1/runs/' + encodeURIComponent(killed));
  assert.equal(k.outcome, 'crashed');
  const del = await fetch(BASE + '/v1/runs/' + encodeURIComponent(killed), { method: 'DELETE' });
  assert.equal(del.status, 409);
  assert.equal((await del.json()).error.outcome, 'crashed');
  await page.screenshot({ path: ART + '/web-crashed.png', fullPage: true });
  await page.goto(BASE + '/#/');
  await page.waitForSelector(`tr[data-run="${killed}"] td[data-outcome="crashed"]`);

  assert.deepEqual(errors, [], 'script errors on the page');
  console.log('browser: run ' + id + ' followed live across a reload; run ' + id2 +
              ' cancelled; run ' + killed + ' shown crashed');
} finally {
  await browser.close();
}
