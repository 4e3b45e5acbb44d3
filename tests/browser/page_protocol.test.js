// tests/browser/page_protocol.test.js — the chat page's code paths for the gateway's own
// protocol, against a real `telex serve` with `telex mock` upstream, in Chromium: reload
// mid-answer reattaches by stream id and shows the exact answer; a stream the gateway forgot
// answers 204 and the page says so; Stop DELETEs the stream; the API-key field after a 401,
// kept in localStorage; the preset picker from /v1/presets; cost_usd after the answer.
//
// Each test starts its own telex with the configuration it needs (prices chosen so the cost is
// a known number, presets, a key, short resume times). The page sends plain OpenAI requests; the
// mock's per-request knobs (its answer text, its pace) are added on the way out by a route, and
// what the page itself sent is recorded from the browser's side (page.on('request')).
//
// "Mid-answer" is made to last by the mock's pace: the long answers take several seconds, and
// the tests wait for page states, not for fixed times.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { SANITIZED, SYNC_TIMEOUT_MS, TELEX_BIN, startMock, startServe, stopProcess, waitFor } from '../integration/lib/proc.js';
import { launch, outputPath } from './lib/browser.js';

const SLACK = SANITIZED ? 3 : 1;

let browser;
let mock;
before(async () => {
  mock = await startMock();
  browser = await launch();
});
after(async () => {
  await browser?.close();
  await stopProcess(mock);
});

const LONG =
  'Reloading is safe.\n\nThe page keeps the **stream id** in sessionStorage and, after a reload, asks the gateway for the stream ' +
  'from its first event, so the answer is rebuilt exactly:\n\n```python\ndef resume(stream_id):\n    return get(f"/v1/streams/{stream_id}")\n```\n\n' +
  '- nothing lost\n- nothing twice\n\nThat is all there is to it — ünïcödé and emoji 😀 survive too.';

const lastAnswer = (page) => page.locator('.msg.assistant').last();
const state = (page) => lastAnswer(page).getAttribute('data-state');
const waitState = (page, states, timeout = 20000 * SLACK) =>
  page.waitForFunction((s) => s.includes(document.querySelector('.msg.assistant:last-child')?.dataset.state), states, { timeout });
const turns = (page) => page.evaluate(() => JSON.parse(sessionStorage.getItem('telex.conversation')).turns);

async function ask(page, text) {
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
}

// A telex for one test: `models` [{name, input, output}] (USD per million tokens) routed to the
// mock, optional presets (YAML lines), resume times, and an API key in its database when `key`.
async function startTelex(t, { models = [{ name: 'fake-model', input: 0, output: 0 }], presets = [], resume = [], key = false } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'telex-page-'));
  const db = join(dir, 'telex.db');
  const cfg = join(dir, 'telex.yaml');
  const lines = ['providers:', '  - name: mock', '    kind: openai', `    base_url: ${mock.url}/v1`, 'models:'];
  for (const m of models)
    lines.push(`  - name: ${m.name}`, '    providers:', '      - provider: mock', `        input_price_per_mtok: ${m.input}`, `        output_price_per_mtok: ${m.output}`);
  if (presets.length > 0) lines.push('presets:', ...presets);
  if (resume.length > 0) lines.push('resume:', ...resume);
  writeFileSync(cfg, lines.join('\n') + '\n');
  let apiKey = null;
  if (key) {
    const r = spawnSync(TELEX_BIN, ['keys', 'create', '--name', 'page'], { env: { ...process.env, TELEX_DB: db }, encoding: 'utf8', timeout: SYNC_TIMEOUT_MS });
    assert.equal(r.status, 0, r.stderr);
    apiKey = r.stdout.trim();
  }
  const serve = await startServe(['--config', cfg], { env: { TELEX_DB: db } });
  t.after(async () => {
    await stopProcess(serve);
    rmSync(dir, { recursive: true, force: true });
  });
  return { serve, url: serve.url, apiKey };
}

// A page on telex that adds the mock's knobs to every chat request (knobs(body) -> object) and
// records what it asks for: [{ method, path, headers, body }].
async function open(gw, knobs = () => ({})) {
  const page = await browser.context.newPage();
  const requests = [];
  page.on('request', (r) => {
    const u = new URL(r.url());
    if (u.origin === new URL(gw.url).origin)
      requests.push({ method: r.method(), path: u.pathname, headers: r.headers(), body: r.postData() });
  });
  await page.route('**/v1/chat/completions', async (route) => {
    const body = JSON.parse(route.request().postData());
    body.mock = knobs(body);
    await route.continue({ postData: JSON.stringify(body) });
  });
  await page.goto(gw.url);
  page.requests = requests;
  return page;
}

const STREAM_ID = /^st_[A-Za-z0-9_-]{22}$/;
const streamGets = (page, id) => page.requests.filter((r) => r.method === 'GET' && r.path === `/v1/streams/${id}`);

test('reload mid-answer reattaches by stream id and shows the exact answer', async (t) => {
  // 4 prompt tokens ("What happens on reload?") at $105 per million: $0.00042
  const gw = await startTelex(t, { models: [{ name: 'fake-model', input: 105, output: 0 }] });
  const page = await open(gw, () => ({ text: LONG, delay_ms: 100 }));
  await ask(page, 'What happens on reload?');
  const content = lastAnswer(page).locator('.content');
  await waitFor(async () => (await content.textContent()).length > 40, { message: 'some text' });
  const saved = await turns(page);
  assert.equal(saved[1].status, 'streaming');
  assert.match(saved[1].streamId, STREAM_ID, 'the stream id is in sessionStorage');
  const streamId = saved[1].streamId;
  assert.equal(await state(page), 'streaming');

  await page.reload();
  // the rest of the answer once the reloaded page has reattached
  await waitFor(() => streamGets(page, streamId).length > 0, { message: 'the reattach' });
  await waitState(page, ['done', 'error']);
  assert.equal(await state(page), 'done', await lastAnswer(page).locator('.error').textContent());
  const after = await turns(page);
  assert.equal(after.length, 2);
  assert.equal(after[0].content, 'What happens on reload?');
  assert.equal(after[1].content, LONG, 'no text lost or repeated');
  assert.equal(after[1].streamId, undefined, 'forgotten once complete');
  assert.equal(await lastAnswer(page).locator('pre code').textContent(), 'def resume(stream_id):\n    return get(f"/v1/streams/{stream_id}")');
  const posts = page.requests.filter((r) => r.method === 'POST');
  assert.equal(posts.length, 1, 'the reload did not start a second generation');
  const attach = streamGets(page, streamId);
  assert.equal(attach.length, 1);
  assert.equal(attach[0].headers['last-event-id'], undefined, 'replayed from the first event');
  assert.match(await lastAnswer(page).locator('.meta').textContent(), /\$0\.00042/);

  // A second reload after the end shows the finished conversation without any request.
  const before = page.requests.length;
  await page.reload();
  await page.waitForSelector('.msg.assistant[data-state="done"]');
  assert.equal((await turns(page))[1].content, LONG);
  assert.equal(page.requests.filter((r, i) => i >= before && r.path.startsWith('/v1/streams')).length, 0);
  await page.close();
});

test('reload when the stream has expired (204): a clear error, no repeat', async (t) => {
  // no grace after the client leaves, no retention after the end: the stream is forgotten at once
  const gw = await startTelex(t, { resume: ['  grace_seconds: 0', '  retention_seconds: 0'] });
  const page = await open(gw, () => ({ text: LONG, delay_ms: 200 })); // ~14 s: it does not end by itself here
  await ask(page, 'x');
  const turn = await waitFor(async () => ((await turns(page))[1]?.resumeUrl ? (await turns(page))[1] : null), { message: 'stream id' });
  // The reloaded page's reattach waits until the gateway has forgotten the stream.
  let release;
  const forgotten = new Promise((resolve) => (release = resolve));
  await page.route('**/v1/streams/**', async (route) => {
    await forgotten;
    await route.continue();
  });
  await page.reload();
  // the answer ends once its client has gone (grace 0): its request line; then it is forgotten
  await gw.serve.waitForLog((l) => l.msg === 'request' && l.path === '/v1/chat/completions', { timeoutMs: 20000 * SLACK });
  await waitFor(async () => (await fetch(`${gw.url}${turn.resumeUrl}`, { method: 'DELETE' })).status === 404, {
    message: 'the stream forgotten',
  });
  release();
  await waitState(page, ['error']);
  assert.equal(await lastAnswer(page).locator('.error strong').textContent(), 'The connection to the gateway was lost.');
  assert.match(await lastAnswer(page).locator('.error .detail').textContent(), /could not be resumed/);
  assert.equal(page.requests.filter((r) => r.method === 'POST').length, 1, 'no repeat');
  await page.close();
});

test('Stop cancels the stream on the server (DELETE /v1/streams/{id})', async (t) => {
  const gw = await startTelex(t);
  const page = await open(gw, () => ({ text: LONG.repeat(5), delay_ms: 40 }));
  const posted = page.waitForResponse((r) => r.request().method() === 'POST');
  await ask(page, 'long');
  const streamId = (await posted).headers()['x-telex-stream-id'];
  assert.match(streamId, STREAM_ID);
  await waitFor(async () => (await lastAnswer(page).locator('.content').textContent()).length > 30, { message: 'text' });
  await page.keyboard.press('Escape');
  await waitState(page, ['stopped']);
  const del = await waitFor(() => page.requests.find((r) => r.method === 'DELETE'), { message: 'DELETE' });
  assert.equal(del.path, `/v1/streams/${streamId}`);
  // the answer's request line says how it ended: cancelled by the DELETE (not a client that left)
  const line = await gw.serve.waitForLog((l) => l.msg === 'request' && l.path === '/v1/chat/completions');
  assert.equal(line.outcome, 'cancelled', 'the stream was cancelled on the server');
  assert.equal(await page.locator('#send').isVisible(), true);
  await page.close();
});

test('401: the API-key field appears, the key is kept in localStorage and the request retried', async (t) => {
  const gw = await startTelex(t, { key: true });
  const key = gw.apiKey;
  const page = await open(gw, () => ({ text: 'Authorized answer.', delay_ms: 10 }));
  // /v1/models already needs the key: the field opens by itself.
  await page.waitForSelector('#key-panel:not([hidden])');
  assert.match(await page.locator('#status').textContent(), /needs an API key/);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'api-key');
  await page.fill('#api-key', 'tlx_wrong');
  await page.press('#api-key', 'Enter');
  await page.waitForSelector('#key-panel:not([hidden])'); // the wrong key is refused again
  await page.fill('#api-key', key);
  await page.press('#api-key', 'Enter');
  await page.waitForSelector('#model option', { state: 'attached' });
  assert.equal(await page.evaluate(() => localStorage.getItem('telex.apiKey')), key);
  assert.equal(await page.locator('#key-panel').isHidden(), true);
  await ask(page, 'hello');
  await waitState(page, ['done']);
  assert.equal((await turns(page))[1].content, 'Authorized answer.');
  const post = page.requests.find((r) => r.method === 'POST');
  assert.equal(post.headers.authorization, `Bearer ${key}`);

  // The key is revoked server-side: the chat request gets 401, the error says so in plain words,
  // and saving a good key retries the answer.
  await page.evaluate(() => localStorage.setItem('telex.apiKey', 'tlx_revoked'));
  await ask(page, 'again');
  await waitState(page, ['error']);
  assert.equal(await lastAnswer(page).locator('.error strong').textContent(), 'The gateway did not accept this API key. Check it above and try again.');
  assert.equal(await page.locator('#key-panel').isVisible(), true);
  await page.screenshot({ path: outputPath('chat-401.png') });
  await page.fill('#api-key', key);
  await page.press('#api-key', 'Enter');
  await waitState(page, ['done']);
  assert.deepEqual((await turns(page)).map((x) => x.content), ['hello', 'Authorized answer.', 'again', 'Authorized answer.']);

  // A fresh page load keeps the key.
  await page.reload();
  await page.waitForSelector('#model option', { state: 'attached' });
  assert.equal(await page.locator('#key-toggle').isVisible(), true);
  assert.equal(await page.locator('#key-panel').isHidden(), true);
  await page.close();
});

test('presets: the picker lists /v1/presets; a preset is sent as model "preset:NAME" with its variables', async (t) => {
  const gw = await startTelex(t, {
    models: [
      { name: 'fast', input: 0, output: 0 },
      { name: 'smart', input: 0, output: 0 },
    ],
    presets: [
      '  - name: summary',
      '    model: fast',
      '    description: Summaries for busy people',
      '    system: "You summarize for {{audience}}."',
      '    template: "In {{style}}: {{content}}"',
      '    variables: {audience: engineers}',
      '  - name: translate-fr',
      '    model: fast',
      '    template: "Translate to French: {{content}}"',
    ],
  });
  // The answer names what the page sent (the route sees the page's own request).
  const page = await open(gw, (b) => ({ text: `model was ${b.model}, variables ${JSON.stringify(b.variables ?? null)}`, delay_ms: 5 }));
  await page.waitForSelector('#preset-field:not([hidden])');
  assert.deepEqual(await page.locator('#preset option').allTextContents(), ['None', 'summary', 'translate-fr']);
  assert.deepEqual(await page.locator('#model option').allTextContents(), ['fast', 'smart', 'Other…']);
  assert.equal(await page.locator('#preset-vars').isHidden(), true);
  await page.selectOption('#model', 'smart');
  await page.selectOption('#preset', 'summary');
  assert.equal(await page.locator('#model').isDisabled(), true, 'the preset decides the model');
  // One field per variable but {{content}} (the message itself); defaults as placeholders.
  assert.deepEqual(await page.locator('#preset-vars input').evaluateAll((l) => l.map((i) => [i.dataset.var, i.placeholder])), [
    ['audience', 'engineers'],
    ['style', 'required'],
  ]);
  assert.equal(await page.locator('#preset-vars .preset-about').textContent(), 'Summaries for busy people');
  await page.fill('#preset-vars input[data-var="style"]', 'one line');
  await ask(page, 'Summarize this.');
  await waitState(page, ['done']);
  assert.equal((await turns(page))[1].content, 'model was preset:summary, variables {"style":"one line"}');
  await page.selectOption('#preset', 'translate-fr');
  assert.equal(await page.locator('#preset-vars').isHidden(), true, 'no variables, no description: no row');
  await page.selectOption('#preset', '');
  assert.equal(await page.locator('#model').isDisabled(), false);
  await ask(page, 'plain');
  await waitState(page, ['done']);
  assert.equal((await turns(page))[3].content, 'model was smart, variables null');
  // The choices are remembered, the typed variable too.
  await page.selectOption('#preset', 'summary');
  await page.reload();
  await page.waitForSelector('#preset-field:not([hidden])');
  assert.equal(await page.inputValue('#preset'), 'summary');
  assert.equal(await page.inputValue('#preset-vars input[data-var="style"]'), 'one line');
  assert.equal(await page.locator('#model').isDisabled(), true);
  await page.selectOption('#preset', '');
  assert.equal(await page.inputValue('#model'), 'smart');
  await page.close();
});

test('cost after each answer; New chat clears the conversation', async (t) => {
  // 1 completion token ("Cheap.") at $12.3 per million: $0.0000123; the question is 9 words
  const gw = await startTelex(t, { models: [{ name: 'fake-model', input: 0, output: 12.3 }] });
  const page = await open(gw, () => ({ text: 'Cheap.', delay_ms: 5 }));
  await ask(page, 'What is the price of one short answer here?');
  await waitState(page, ['done']);
  assert.match(await lastAnswer(page).locator('.meta').textContent(), /^fake-model · 9 prompt \+ 1 completion tokens · \$0\.0000123 · \d+\.\d s$/);
  await page.click('#new-chat');
  assert.equal(await page.locator('.msg').count(), 0);
  assert.equal(await page.locator('#empty').isVisible(), true);
  assert.deepEqual(await turns(page), []);
  await page.close();
});
