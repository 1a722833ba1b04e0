// SPDX-License-Identifier: MIT
// The official `openai` npm package as a client of council serve's
// OpenAI-compatible endpoint (run by tests/web/run.sh sdk; BASE is the
// server's URL, argv[2] the node_modules the package was installed in).
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';

const require = createRequire(process.argv[2] + '/');
const openai = require('openai');
const OpenAI = openai.OpenAI || openai.default || openai;
const BASE = process.env.BASE;
const client = new OpenAI({ baseURL: BASE + '/v1', apiKey: 'not-needed', maxRetries: 0 });
const question = [{ role: 'user', content: 'Why is the sky blue?' }];

async function run(id) {
  const res = await fetch(BASE + '/v1/runs/' + id);
  assert.equal(res.status, 200, 'GET /v1/runs/' + id);
  return res.json();
}

async function ended(id, ms) {
  const t0 = Date.now();
  for (;;) {
    const r = await run(id);
    if (r.outcome !== 'running') return r;
    if (Date.now() - t0 > ms) throw new Error('run ' + id + ' still running after ' + ms + ' ms');
    await new Promise((ok) => setTimeout(ok, 50));
  }
}

// 1. The councils are models.
const models = [];
for await (const m of client.models.list()) models.push(m.id);
assert.ok(models.includes('council/demo'), 'models: ' + models.join(', '));

// 2. Not streamed: the answer is the run's final answer; usage its total.
{
  const { data, response } = await client.chat.completions
    .create({ model: 'council/demo', messages: question })
    .withResponse();
  assert.equal(data.object, 'chat.completion');
  assert.equal(data.model, 'council/demo');
  assert.equal(data.choices.length, 1);
  assert.equal(data.choices[0].message.role, 'assistant');
  assert.equal(data.choices[0].finish_reason, 'stop');
  const content = data.choices[0].message.content;
  assert.ok(content.length > 0, 'empty answer');
  assert.ok(data.usage.total_tokens > 0 && data.usage.total_tokens ===
            data.usage.prompt_tokens + data.usage.completion_tokens, JSON.stringify(data.usage));
  const id = response.headers.get('x-council-run-id');
  assert.ok(id, 'no x-council-run-id');
  const r = await ended(id, 10000);
  assert.equal(r.outcome, 'ok');
  assert.equal(r.result.answer, content);
  assert.equal(r.result.usage.total_tokens, data.usage.total_tokens);
  console.log('non-streamed: ok, run ' + id + ', ' + content.length + ' chars');
}

// 3. Streamed with include_usage: the deltas add up to the final answer;
//    the last chunk has the usage and no choices.
{
  const { data: stream, response } = await client.chat.completions
    .create({ model: 'council/demo', messages: question, stream: true,
              stream_options: { include_usage: true } })
    .withResponse();
  let text = '', usage = null, chunks = 0, finish = null, afterUsage = 0;
  for await (const chunk of stream) {
    chunks++;
    assert.equal(chunk.object, 'chat.completion.chunk');
    if (usage) afterUsage++;
    if (chunk.usage) {
      usage = chunk.usage;
      assert.equal(chunk.choices.length, 0, 'usage chunk with choices');
    }
    for (const c of chunk.choices) {
      text += c.delta.content || '';
      if (c.finish_reason) finish = c.finish_reason;
    }
  }
  assert.equal(afterUsage, 0, 'chunks after the usage chunk');
  assert.equal(finish, 'stop');
  assert.ok(usage && usage.total_tokens > 0, 'no usage chunk');
  const id = response.headers.get('x-council-run-id');
  const r = await ended(id, 10000);
  assert.equal(r.outcome, 'ok');
  assert.equal(text, r.result.answer, 'streamed text != the run\'s answer');
  assert.ok(chunks > 3, 'the synthesis came in ' + chunks + ' chunks');
  console.log('streamed: ok, run ' + id + ', ' + chunks + ' chunks');
}

// 4. A client that goes away cancels its run.
{
  const ac = new AbortController();
  const { response } = await client.chat.completions
    .create({ model: 'council/demo', messages: question, stream: true }, { signal: ac.signal })
    .withResponse();
  const id = response.headers.get('x-council-run-id');
  await new Promise((ok) => setTimeout(ok, 150));
  ac.abort();
  const r = await ended(id, 10000);
  assert.equal(r.outcome, 'cancelled', 'run after the client left: ' + r.outcome);
  console.log('aborted stream: run ' + id + ' cancelled');
}

// 5. Errors arrive as the SDK's typed errors, with the server's message.
await assert.rejects(
  client.chat.completions.create({ model: 'council/nope', messages: question }),
  (e) => e instanceof OpenAI.NotFoundError && /nope/.test(e.message));
await assert.rejects(
  client.chat.completions.create({ model: 'council/demo', messages: [] }),
  (e) => e instanceof OpenAI.BadRequestError);
console.log('errors: ok');
