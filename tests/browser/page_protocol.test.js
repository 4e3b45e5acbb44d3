// tests/browser/page_protocol.test.js — the chat page's code paths for gateway features that are
// specified (issues 4 and 5) but not in the C gateway yet, against tests/browser/lib/fake_gateway.js
// which speaks that protocol: reload mid-answer reattaches by stream id and shows the exact
// answer; Stop DELETEs the stream; the API-key field after a 401, kept in localStorage; the
// preset picker from /v1/presets; cost_usd after the answer.
//
// "Mid-answer" is made to last: the fake gateway holds its answers after a few tokens
// (holdAfter) until the test releases them, instead of racing a timer.
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';

import { waitFor } from '../integration/lib/proc.js';
import { launch, outputPath } from './lib/browser.js';
import { startFakeGateway } from './lib/fake_gateway.js';

let browser;
before(async () => {
  browser = await launch();
});
after(() => browser?.close());

const LONG =
  'Reloading is safe.\n\nThe page keeps the **stream id** in sessionStorage and, after a reload, asks the gateway for the stream ' +
  'from its first event, so the answer is rebuilt exactly:\n\n```python\ndef resume(stream_id):\n    return get(f"/v1/streams/{stream_id}")\n```\n\n' +
  '- nothing lost\n- nothing twice\n\nThat is all there is to it — ünïcödé and emoji 😀 survive too.';

const lastAnswer = (page) => page.locator('.msg.assistant').last();
const state = (page) => lastAnswer(page).getAttribute('data-state');
const waitState = (page, states, timeout = 20000) =>
  page.waitForFunction((s) => s.includes(document.querySelector('.msg.assistant:last-child')?.dataset.state), states, { timeout });
const turns = (page) => page.evaluate(() => JSON.parse(sessionStorage.getItem('telex.conversation')).turns);

async function open(gw) {
  const page = await browser.context.newPage();
  await page.goto(gw.url);
  return page;
}

async function ask(page, text) {
  await page.waitForSelector('#model option', { state: 'attached' });
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
}

test('reload mid-answer reattaches by stream id and shows the exact answer', async (t) => {
  const gw = await startFakeGateway({ answer: () => LONG, delayMs: 25, holdAfter: 12 });
  t.after(() => gw.close());
  const page = await open(gw);
  await ask(page, 'What happens on reload?');
  const content = lastAnswer(page).locator('.content');
  await waitFor(async () => (await content.textContent()).length > 40, { message: 'some text' });
  const saved = await turns(page);
  assert.equal(saved[1].status, 'streaming');
  assert.match(saved[1].streamId, /^st_fake\d+$/, 'the stream id is in sessionStorage');
  const streamId = saved[1].streamId;
  assert.equal(await state(page), 'streaming');

  await page.reload();
  // the rest of the answer once the reloaded page has reattached
  await waitFor(() => gw.requests.some((r) => r.method === 'GET' && r.path === `/v1/streams/${streamId}`), {
    message: 'the reattach',
  });
  gw.release();
  await waitState(page, ['done', 'error']);
  assert.equal(await state(page), 'done', await lastAnswer(page).locator('.error').textContent());
  const after = await turns(page);
  assert.equal(after.length, 2);
  assert.equal(after[0].content, 'What happens on reload?');
  assert.equal(after[1].content, LONG, 'no text lost or repeated');
  assert.equal(after[1].streamId, undefined, 'forgotten once complete');
  assert.equal(await lastAnswer(page).locator('pre code').textContent(), 'def resume(stream_id):\n    return get(f"/v1/streams/{stream_id}")');
  const posts = gw.requests.filter((r) => r.method === 'POST');
  assert.equal(posts.length, 1, 'the reload did not start a second generation');
  const attach = gw.requests.filter((r) => r.method === 'GET' && r.path === `/v1/streams/${streamId}`);
  assert.equal(attach.length, 1);
  assert.equal(attach[0].headers['last-event-id'], undefined, 'replayed from the first event');
  assert.match(await lastAnswer(page).locator('.meta').textContent(), /\$0\.00042/);

  // A second reload after the end shows the finished conversation without any request.
  const before = gw.requests.length;
  await page.reload();
  await page.waitForSelector('.msg.assistant[data-state="done"]');
  assert.equal((await turns(page))[1].content, LONG);
  assert.equal(gw.requests.filter((r, i) => i >= before && r.path.startsWith('/v1/streams')).length, 0);
  await page.close();
});

test('reload when the stream has expired (204): a clear error, no repeat', async (t) => {
  const gw = await startFakeGateway({ answer: () => LONG, delayMs: 30, holdAfter: 3 }); // never ends
  t.after(() => gw.close());
  const page = await open(gw);
  await ask(page, 'x');
  await waitFor(async () => (await turns(page))[1]?.streamId, { message: 'stream id' });
  gw.streams.clear(); // the gateway forgot it
  await page.reload();
  await waitState(page, ['error']);
  assert.equal(await lastAnswer(page).locator('.error strong').textContent(), 'The connection to the gateway was lost.');
  assert.match(await lastAnswer(page).locator('.error .detail').textContent(), /could not be resumed/);
  await page.close();
});

test('Stop cancels the stream on the server (DELETE /v1/streams/{id})', async (t) => {
  const gw = await startFakeGateway({ answer: () => LONG.repeat(5), delayMs: 20 });
  t.after(() => gw.close());
  const page = await open(gw);
  await ask(page, 'long');
  await waitFor(async () => (await lastAnswer(page).locator('.content').textContent()).length > 30, { message: 'text' });
  await page.keyboard.press('Escape');
  await waitState(page, ['stopped']);
  const del = await waitFor(() => gw.requests.find((r) => r.method === 'DELETE'), { message: 'DELETE' });
  const [stream] = gw.streams.values();
  assert.equal(del.path, `/v1/streams/${stream.id}`);
  assert.equal(stream.cancelled, true);
  assert.equal(await page.locator('#send').isVisible(), true);
  await page.close();
});

test('401: the API-key field appears, the key is kept in localStorage and the request retried', async (t) => {
  const gw = await startFakeGateway({ apiKey: 'tlx_secret', answer: () => 'Authorized answer.', delayMs: 10 });
  t.after(() => gw.close());
  const page = await open(gw);
  // /v1/models already needs the key: the field opens by itself.
  await page.waitForSelector('#key-panel:not([hidden])');
  assert.match(await page.locator('#status').textContent(), /needs an API key/);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'api-key');
  await page.fill('#api-key', 'tlx_wrong');
  await page.press('#api-key', 'Enter');
  await page.waitForSelector('#key-panel:not([hidden])'); // the wrong key is refused again
  await page.fill('#api-key', 'tlx_secret');
  await page.press('#api-key', 'Enter');
  await page.waitForSelector('#model option', { state: 'attached' });
  assert.equal(await page.evaluate(() => localStorage.getItem('telex.apiKey')), 'tlx_secret');
  assert.equal(await page.locator('#key-panel').isHidden(), true);
  await ask(page, 'hello');
  await waitState(page, ['done']);
  assert.equal((await turns(page))[1].content, 'Authorized answer.');
  const post = gw.requests.find((r) => r.method === 'POST');
  assert.equal(post.headers.authorization, 'Bearer tlx_secret');

  // The key is revoked server-side: the chat request gets 401, the error says so in plain words,
  // and saving a good key retries the answer.
  await page.evaluate(() => localStorage.setItem('telex.apiKey', 'tlx_revoked'));
  await ask(page, 'again');
  await waitState(page, ['error']);
  assert.equal(await lastAnswer(page).locator('.error strong').textContent(), 'The gateway did not accept this API key. Check it above and try again.');
  assert.equal(await page.locator('#key-panel').isVisible(), true);
  await page.screenshot({ path: outputPath('chat-401.png') });
  await page.fill('#api-key', 'tlx_secret');
  await page.press('#api-key', 'Enter');
  await waitState(page, ['done']);
  assert.deepEqual((await turns(page)).map((t) => t.content), ['hello', 'Authorized answer.', 'again', 'Authorized answer.']);

  // A fresh page load keeps the key.
  await page.reload();
  await page.waitForSelector('#model option', { state: 'attached' });
  assert.equal(await page.locator('#key-toggle').isVisible(), true);
  assert.equal(await page.locator('#key-panel').isHidden(), true);
  await page.close();
});

test('presets: the picker lists /v1/presets; a preset is sent as model "preset:NAME" with its variables', async (t) => {
  const gw = await startFakeGateway({
    presets: [
      { id: 'summary', description: 'Summaries for busy people', variables: ['audience', 'style', 'content'], defaults: { audience: 'engineers' } },
      'translate-fr',
    ],
    models: ['fast', 'smart'],
    answer: (b) => `model was ${b.model}, variables ${JSON.stringify(b.variables ?? null)}`,
  });
  t.after(() => gw.close());
  const page = await open(gw);
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
  const gw = await startFakeGateway({ answer: () => 'Cheap.', costUsd: 0.0000123, delayMs: 5 });
  t.after(() => gw.close());
  const page = await open(gw);
  await ask(page, 'price?');
  await waitState(page, ['done']);
  assert.match(await lastAnswer(page).locator('.meta').textContent(), /^fake-model · 9 prompt \+ 1 completion tokens · \$0\.0000123 · \d+\.\d s$/);
  await page.click('#new-chat');
  assert.equal(await page.locator('.msg').count(), 0);
  assert.equal(await page.locator('#empty').isVisible(), true);
  assert.deepEqual(await turns(page), []);
  await page.close();
});
