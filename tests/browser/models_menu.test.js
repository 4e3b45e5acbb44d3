// tests/browser/models_menu.test.js — the chat page's model menu and answer footer against a
// real `telex serve` whose catch-all "*" routes to `telex mock`, in Debian's Chromium.
//
//  - the menu lists the configured model and what the catch-all's provider lists (the mock's
//    --models), then "Other…"; a name typed there that no list has gets a streamed answer (the
//    mock's journal shows the name upstream); the choice and the name survive a reload;
//  - a gateway whose list cannot be fetched (the provider is down): the menu still offers
//    "Other…";
//  - reload mid-answer: the footer shows the answer's whole time (from the question, not from
//    the re-attach), its tokens, and the reload as a resume.
//
// Run: TELEX_BIN=/abs/path/telex node --test --test-concurrency=1 tests/browser/models_menu.test.js
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { SANITIZED, startMock, startServe, stopProcess } from '../integration/lib/proc.js';
import { launch } from './lib/browser.js';

const SLACK = SANITIZED ? 3 : 1;
const OTHER = '\u2026other';

let mock;
let serve;
let browser;
let dir;

function writeConfig(name, mockUrl) {
  const file = join(dir, name);
  writeFileSync(
    file,
    JSON.stringify({
      providers: [
        // slow enough that "late in the answer" lasts on a busy machine (the reload test)
        { name: 'demo', kind: 'demo', tokens_per_second: 10 },
        { name: 'up', kind: 'openai', base_url: `${mockUrl}/v1` },
      ],
      models: [
        { name: 'demo', providers: ['demo'] },
        { name: '*', providers: ['up'] },
      ],
    }),
  );
  return file;
}

before(async () => {
  mock = await startMock(['--models', 'listed-one,listed-two', '--delay-ms', '10']);
  dir = mkdtempSync(join(tmpdir(), 'telex-browser-models-'));
  serve = await startServe(['--config', writeConfig('telex.yaml', mock.url)]);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await stopProcess(serve);
  await stopProcess(mock);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const lastAnswer = (page) => page.locator('.msg.assistant').last();
const waitState = (page, states) =>
  page.waitForFunction((s) => s.includes(document.querySelector('.msg.assistant:last-child')?.dataset.state), states, {
    timeout: 20000 * SLACK,
  });
const journal = async () => (await (await fetch(`${mock.url}/mock/requests`)).json()).requests;

async function openPage(url = serve.url) {
  const page = await browser.context.newPage();
  await page.goto(url);
  await page.waitForSelector('#model option', { state: 'attached' });
  return page;
}

test('the menu lists the catch-all’s models; "Other…" asks for any name, and is remembered', async () => {
  const page = await openPage();
  assert.deepEqual(await page.locator('#model option').allTextContents(), ['demo', 'listed-one', 'listed-two', 'Other…']);
  assert.equal(await page.locator('#model-name').isHidden(), true, 'no name field until "Other…" is chosen');
  await page.selectOption('#model', OTHER);
  assert.equal(await page.locator('#model-name').isVisible(), true);
  assert.equal(await page.evaluate(() => document.activeElement.id), 'model-name');
  // The listed names are suggestions for the field.
  assert.deepEqual(await page.locator('#model-ids option').evaluateAll((l) => l.map((o) => o.value)), ['demo', 'listed-one', 'listed-two']);

  // Nothing typed yet: the page says what is missing and sends nothing.
  const before = (await journal()).length;
  await page.fill('#prompt', 'hello?');
  await page.press('#prompt', 'Enter');
  assert.match(await page.locator('#status').textContent(), /Type the name of a model/);
  assert.equal(await page.locator('.msg.assistant').count(), 0);

  await page.fill('#model-name', 'unlisted-model-7');
  await page.press('#prompt', 'Enter');
  await waitState(page, ['done', 'error']);
  assert.equal(await lastAnswer(page).getAttribute('data-state'), 'done', await lastAnswer(page).locator('.error').textContent());
  assert.ok((await lastAnswer(page).locator('.content').textContent()).length > 0);
  assert.match(await lastAnswer(page).locator('.meta').textContent(), /^unlisted-model-7 · /);
  const chats = (await journal()).slice(before).filter((e) => e.path === '/v1/chat/completions');
  assert.equal(chats.length, 1);
  assert.equal(chats[0].body.model, 'unlisted-model-7', 'the typed name went upstream through the catch-all');

  await page.reload();
  await page.waitForSelector('#model option', { state: 'attached' });
  assert.equal(await page.inputValue('#model'), OTHER);
  assert.equal(await page.inputValue('#model-name'), 'unlisted-model-7');
  await page.selectOption('#model', 'listed-two');
  assert.equal(await page.locator('#model-name').isHidden(), true);
  await page.close();
});

test('a gateway that cannot fetch the list still offers "Other…"', async () => {
  const gone = await startMock([]);
  const url = gone.url;
  await stopProcess(gone);
  const lonely = await startServe(['--config', writeConfig('down.yaml', url)]);
  try {
    const page = await openPage(lonely.url);
    assert.deepEqual(await page.locator('#model option').allTextContents(), ['demo', 'Other…']);
    await page.selectOption('#model', OTHER);
    assert.equal(await page.locator('#model-name').isVisible(), true);
    await page.close();
  } finally {
    await stopProcess(lonely);
  }
});

test('reload mid-answer: the footer shows the whole answer’s time, not the time since re-attach', async () => {
  const page = await openPage();
  // The page sends no max_tokens; add it so the demo answer lasts about 6 s at 10 tokens/s.
  await page.route('**/v1/chat/completions', (route) =>
    route.continue({ postData: JSON.stringify({ ...JSON.parse(route.request().postData()), max_tokens: 60 }) }),
  );
  const question = 'Explain how a reload keeps the stream';
  const whole = await fetch(`${serve.url}/v1/chat/completions`, {
    method: 'POST',
    body: JSON.stringify({ model: 'demo', max_tokens: 60, messages: [{ role: 'user', content: question }] }),
  });
  const full = (await whole.json()).choices[0].message.content;
  await page.selectOption('#model', 'demo');
  await page.fill('#prompt', question);
  await page.press('#prompt', 'Enter');
  const sent = Date.now(); // the page took its start time before this, in the same handler
  // Reload late in the answer: without the fix, the footer would show only the short rest.
  // Watched in the page (not polled from here): streaming, with 70 % of the text shown; the
  // last 30 % take about 1.8 s more.
  await page.waitForFunction(
    (n) => {
      const a = document.querySelector('.msg.assistant:last-child');
      return a?.dataset.state === 'streaming' && (a.querySelector('.content')?.textContent.length ?? 0) >= n;
    },
    full.length * 0.7,
    { timeout: 20000 * SLACK },
  );
  const beforeReload = (Date.now() - sent) / 1000;
  await page.reload();
  await waitState(page, ['done', 'error']);
  assert.equal(await lastAnswer(page).getAttribute('data-state'), 'done');
  const turns = await page.evaluate(() => JSON.parse(sessionStorage.getItem('telex.conversation')).turns);
  assert.equal(turns[1].content, full, 'the exact answer');
  const meta = await lastAnswer(page).locator('.meta').textContent();
  const m = /^demo · (\d+) prompt \+ (\d+) completion tokens(?: · \$0)? · (\d+\.\d) s · cut at max tokens · resumed 1×$/.exec(meta);
  assert.ok(m, `footer: ${meta}`);
  assert.equal(Number(m[2]), 60, 'the whole answer’s tokens');
  assert.ok(Number(m[3]) >= beforeReload - 0.1, `footer ${m[3]} s, but ${beforeReload.toFixed(2)} s had passed before the reload`);
  assert.equal(turns[1].startedAt, undefined, 'the start time is dropped once the answer is over');
  await page.close();
});
