// tests/browser/chat.test.js — the chat page served by a real `telex serve`, in Debian's
// Chromium (headless, playwright-core), with the demo model and a model routed to `telex mock`.
//
//  - typewriter: the answer grows over several samples before it completes, with a cursor;
//    token counts after it; the raw answer equals the gateway's non-streamed answer; a
//    screenshot mid-answer goes to test-output/chat-mid-answer.png
//  - markdown (headings, lists, code, tables, links) rendered as elements, cost after an
//    answer of a priced model; its mid-answer screenshot is test-output/chat-markdown.png,
//    copied to docs/screenshot.png when TELEX_UPDATE_SCREENSHOT=1
//  - keyboard: Shift+Enter is a new line, Enter sends; a second turn sends the history
//  - Stop: the text stops growing and the mock's request log says the client went away
//  - an answer with <img onerror> and <script> is shown as text and runs nothing
//  - presets from GET /v1/presets, with a field per variable; what reached the mock
//  - HTTP and mid-stream errors in plain words; phone width has no sideways scrolling
//  - telex.js in a module Web Worker
//  - reload mid-answer resumes with the exact text (skipped until the gateway has resumable
//    streams: it is detected by the X-Telex-Stream-Id response header)
//
// Timing: what the page shows is recorded in the page as it changes (a MutationObserver set up
// before the question is sent), and the tests wait for page states, not for fixed times. The
// reload and phone tests use "demo-slow" (10 tokens/s, ~10 s answers), so that "mid-answer"
// still holds however long the browser takes to look.
//
// Run: TELEX_BIN=/abs/path/telex node --test --test-concurrency=1 tests/browser/
import test, { after, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { SANITIZED, startMock, startServe, stopProcess, waitFor } from '../integration/lib/proc.js';
import { REPO, launch, outputPath } from './lib/browser.js';

const SLACK = SANITIZED ? 3 : 1;
const ANSWER = '.msg.assistant';

let mock;
let serve;
let browser;
let dir;

before(async () => {
  mock = await startMock(['--delay-ms', '30']);
  dir = mkdtempSync(join(tmpdir(), 'telex-browser-'));
  const cfg = join(dir, 'telex.yaml');
  writeFileSync(
    cfg,
    [
      'providers:',
      '  - name: demo',
      '    kind: demo',
      '    tokens_per_second: 50',
      '  - name: demo-slow',
      '    kind: demo',
      '    tokens_per_second: 10',
      '  - name: mock',
      '    kind: openai',
      `    base_url: ${mock.url}/v1`,
      'models:',
      '  - name: demo',
      '    providers: [demo]',
      '  - name: gpt-test',
      '    providers:',
      '      - provider: mock',
      '        input_price_per_mtok: 1',
      '        output_price_per_mtok: 2',
      '  - name: demo-slow',
      '    providers: [demo-slow]',
      'presets:',
      '  - name: explain',
      '    model: gpt-test',
      '    description: Explains things to an audience you choose',
      '    system: "You explain things to {{audience}}."',
      '    template: "In {{style}}: {{content}}"',
      '    variables: {style: one paragraph}',
      '',
    ].join('\n'),
  );
  serve = await startServe(['--config', cfg]);
  browser = await launch();
});

after(async () => {
  await browser?.close();
  await stopProcess(serve);
  await stopProcess(mock);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function openPage({ mockKnobs } = {}) {
  const page = await browser.context.newPage();
  await page.addInitScript(() => localStorage.removeItem('telex.preset')); // tests share one profile
  if (mockKnobs) {
    // The page sends plain OpenAI requests; add the mock's per-request knobs on the way out.
    await page.route('**/v1/chat/completions', async (route) => {
      const body = JSON.parse(route.request().postData());
      body.mock = typeof mockKnobs === 'function' ? mockKnobs(body) : mockKnobs;
      await route.continue({ postData: JSON.stringify(body) });
    });
  }
  await page.goto(serve.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  return page;
}

async function ask(page, text, model) {
  if (model) await page.selectOption('#model', model);
  await page.fill('#prompt', text);
  await page.press('#prompt', 'Enter');
}

const lastAnswer = (page) => page.locator(ANSWER).last();
const answerState = (page) => lastAnswer(page).getAttribute('data-state');
const waitState = (page, states, timeout = 20000 * SLACK) =>
  page.waitForFunction((s) => s.includes(document.querySelector('.msg.assistant:last-child')?.dataset.state), states, { timeout });
const sessionTurns = (page) => page.evaluate(() => JSON.parse(sessionStorage.getItem('telex.conversation')).turns);
const journal = async () => (await (await fetch(`${mock.url}/mock/requests`)).json()).requests;
// Waits until the last answer is streaming with more than `chars` characters of text.
const streamingPast = (page, chars, timeout = 20000 * SLACK) =>
  page.waitForFunction(
    (n) => {
      const a = document.querySelector('.msg.assistant:last-child');
      return a?.dataset.state === 'streaming' && (a.querySelector('.content')?.textContent.length ?? 0) > n;
    },
    chars,
    { timeout },
  );

async function nonStreamed(messages, model = 'demo') {
  const r = await fetch(`${serve.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify({ model, messages }) });
  return (await r.json()).choices[0].message.content;
}

test('typewriter: the answer grows token by token with a cursor, then shows token counts', async () => {
  const page = await openPage();
  const question = 'How do server-sent events work?';
  // every change of the conversation, recorded in the page as it happens (not sampled from here,
  // which a busy machine would make too slow to see the answer grow)
  await page.evaluate(() => {
    window.__samples = [];
    const record = () => {
      const a = document.querySelector('.msg.assistant:last-child');
      if (!a) return;
      window.__samples.push({
        len: a.querySelector('.content')?.textContent.length ?? 0,
        state: a.dataset.state,
        cursors: a.querySelectorAll('.cursor').length,
        stopVisible: document.querySelector('#stop').checkVisibility(),
      });
    };
    new MutationObserver(record).observe(document.querySelector('#messages'), {
      subtree: true,
      childList: true,
      characterData: true,
      attributes: true,
    });
  });
  await ask(page, question, 'demo');
  await streamingPast(page, 150); // the screenshot is taken mid-answer
  await page.screenshot({ path: outputPath('chat-mid-answer.png') });
  await waitState(page, ['done']);
  const samples = await page.evaluate(() => window.__samples);
  const streaming = samples.filter((s) => s.state === 'streaming');
  const lengths = [...new Set(streaming.map((s) => s.len))];
  assert.ok(lengths.length >= 5, `the text grew over several samples before completing: ${lengths}`);
  for (let i = 1; i < streaming.length; i++) assert.ok(streaming[i].len >= streaming[i - 1].len - 4, 'never shrinks (beyond markdown markers)');
  assert.ok(streaming.every((s) => s.cursors === 1 && s.stopVisible), 'a cursor and a Stop button while streaming');
  assert.equal(samples.at(-1).state, 'done');
  assert.equal(await lastAnswer(page).locator('.cursor').count(), 0, 'no cursor after the answer');
  assert.equal(await page.locator('#send').isVisible(), true);
  assert.equal(await page.locator('#stop').isVisible(), false);
  const meta = await lastAnswer(page).locator('.meta').textContent();
  assert.match(meta, /^demo · \d+ prompt \+ \d+ completion tokens( · \$0)? · \d+\.\d s$/, 'the demo model is free');
  const turns = await sessionTurns(page);
  assert.equal(turns[1].content, await nonStreamed([{ role: 'user', content: question }]), 'exactly the answer the gateway generates');
  const completion = Number(/\+ (\d+) completion/.exec(meta)[1]);
  assert.ok(completion > 20, meta);
  assert.deepEqual(browser.pageErrors, []);
  await page.close();
});

test('keyboard: Shift+Enter is a new line, Enter sends; the second turn sends the history', async () => {
  const page = await openPage();
  await page.selectOption('#model', 'demo');
  await page.focus('#prompt');
  await page.keyboard.type('first line');
  await page.keyboard.press('Shift+Enter');
  await page.keyboard.type('second line');
  assert.equal(await page.inputValue('#prompt'), 'first line\nsecond line');
  assert.equal(await page.locator('.msg').count(), 0, 'nothing sent yet');
  const sent = page.waitForRequest((r) => r.url().endsWith('/v1/chat/completions'));
  await page.keyboard.press('Enter');
  const first = JSON.parse((await sent).postData());
  assert.deepEqual(first.messages, [{ role: 'user', content: 'first line\nsecond line' }]);
  assert.equal(first.stream, true);
  assert.equal(first.stream_options.include_usage, true);
  assert.equal(await page.locator('.msg.user .bubble').textContent(), 'first line\nsecond line');
  assert.equal(await page.inputValue('#prompt'), '', 'the box is cleared');
  await waitState(page, ['done']);
  const answer1 = (await sessionTurns(page))[1].content;

  const sent2 = page.waitForRequest((r) => r.url().endsWith('/v1/chat/completions'));
  await page.keyboard.type('and a follow-up');
  await page.keyboard.press('Enter');
  const second = JSON.parse((await sent2).postData());
  assert.deepEqual(second.messages, [
    { role: 'user', content: 'first line\nsecond line' },
    { role: 'assistant', content: answer1 },
    { role: 'user', content: 'and a follow-up' },
  ]);
  await waitState(page, ['done']);
  assert.equal(await page.locator('.msg.assistant[data-state="done"]').count(), 2);
  await page.close();
});

test('Stop: the answer stops growing and the upstream (telex mock) sees the client leave', async () => {
  const page = await openPage({ mockKnobs: { tokens: 400, delay_ms: 25 } });
  const before = (await journal()).length;
  await ask(page, 'a long answer please', 'gpt-test');
  const content = lastAnswer(page).locator('.content');
  await waitFor(async () => (await content.textContent()).length > 40, { timeoutMs: 10000 * SLACK, message: 'some text' });
  await page.click('#stop');
  await waitState(page, ['stopped']);
  const a = await content.textContent();
  // a negative (nothing more arrives), so it waits; a slower machine cannot make text appear
  await page.waitForTimeout(400);
  const b = await content.textContent();
  assert.equal(b, a, 'no more text after Stop');
  assert.ok(a.length > 40);
  assert.equal(await page.locator('#send').isVisible(), true);
  assert.match(await lastAnswer(page).locator('.meta').textContent(), /stopped/);
  const entry = await waitFor(
    async () => {
      const e = (await journal())[before];
      return e && e.client_gone && e;
    },
    { timeoutMs: 5000 * SLACK, message: "the mock's journal saying client_gone" },
  );
  assert.equal(entry.completed, false);
  assert.ok(entry.content_events < 400, `the mock stopped after ${entry.content_events} tokens`);
  const turns = await sessionTurns(page);
  assert.equal(turns[1].status, 'stopped');
  await page.close();
});

test('an answer with <img onerror> and <script> is shown as text and runs nothing', async () => {
  const evil =
    'Look: <img src=x onerror="window.__pwned=1"> and <script>window.__pwned=2</script> and ' +
    '<a href="javascript:window.__pwned=3">click</a> [link](javascript:window.__pwned=4) **bold <b>x</b>**\n\n' +
    '```html\n<script>window.__pwned=5</script>\n    <img src=x onerror="window.__pwned=6">\n\tindented\n```\n';
  const page = await openPage({ mockKnobs: { text: evil, delay_ms: 2 } });
  await ask(page, 'show me html', 'gpt-test');
  await waitState(page, ['done']);
  const content = lastAnswer(page).locator('.content');
  const text = await content.textContent();
  assert.ok(text.includes('<img src=x onerror="window.__pwned=1">'), text);
  assert.ok(text.includes('<script>window.__pwned=2</script>'));
  assert.ok(text.includes('[link](javascript:window.__pwned=4)'), 'a javascript: link stays text');
  assert.equal(await content.locator('img, script, iframe, b').count(), 0, 'no element from the answer');
  assert.equal(await content.locator('a').count(), 0);
  assert.equal(await content.locator('strong').textContent(), 'bold <b>x</b>');
  assert.equal(
    await content.locator('pre code').textContent(),
    '<script>window.__pwned=5</script>\n    <img src=x onerror="window.__pwned=6">\n\tindented',
    'code keeps its whitespace',
  );
  // a negative (nothing ran): there is no element that could run anything (above); this only
  // leaves a stray handler time to fire
  await page.waitForTimeout(200);
  assert.equal(await page.evaluate(() => window.__pwned), undefined);
  assert.equal((await sessionTurns(page))[1].content, evil);
  await page.close();
});

test('markdown is rendered as elements: headings, lists, code, tables, links (screenshot)', async () => {
  const md = [
    '## Resuming a stream',
    '',
    'When the connection drops, the client reconnects with **`Last-Event-ID`** and the gateway replays everything after it — *no gap, no duplicate*. See [the SSE spec](https://html.spec.whatwg.org/multipage/server-sent-events.html).',
    '',
    '1. Read events as they arrive',
    '2. Remember the last `id:`',
    '3. On a cut, send it back:',
    '',
    '```js',
    "import { streamChat } from '/telex.js';",
    '',
    "for await (const delta of streamChat({ body: { model: 'demo', messages } })) {",
    '  out.textContent += delta;  // resumes by itself',
    '}',
    '```',
    '',
    '| event | meaning |',
    '|:------|--------:|',
    '| `id:` | position |',
    '| `retry:` | ms before reconnecting |',
    '',
    '> Tip: a 204 means the stream is gone.',
    '',
  ].join('\n');
  const intro =
    'telex is a streaming gateway: it relays every token from the model to you the moment it arrives, over server-sent events.';
  const page = await openPage({ mockKnobs: (body) => ({ text: body.messages.length === 1 ? intro : md, delay_ms: body.messages.length === 1 ? 5 : 30 }) });
  await ask(page, 'What is telex?', 'gpt-test');
  await waitState(page, ['done']);
  // gpt-test costs $1 per million prompt tokens and $2 per million completion tokens.
  const meta = await lastAnswer(page).locator('.meta').textContent();
  const [, p, c, cost] = /^gpt-test · (\d+) prompt \+ (\d+) completion tokens · \$([\d.]+) · \d+\.\d s$/.exec(meta) ?? [];
  assert.ok(cost, `meta with tokens and cost: ${meta}`);
  const want = (Number(p) * 1 + Number(c) * 2) / 1e6;
  assert.ok(Math.abs(Number(cost) - want) <= want * 0.01, `cost ${cost} for ${p} + ${c} tokens, expected ${want}`);
  await ask(page, 'How does it resume a broken stream?');
  const content = lastAnswer(page).locator('.content');
  await page.waitForFunction(() => (document.querySelector('.msg.assistant:last-child .content')?.textContent.length ?? 0) > 330);
  if ((await answerState(page)) === 'streaming') {
    await page.screenshot({ path: outputPath('chat-markdown.png') });
    if (process.env.TELEX_UPDATE_SCREENSHOT) copyFileSync(outputPath('chat-markdown.png'), join(REPO, 'docs', 'screenshot.png'));
  }
  await waitState(page, ['done']);
  assert.equal(await content.locator('h3').textContent(), 'Resuming a stream');
  assert.equal(await content.locator('strong code').textContent(), 'Last-Event-ID');
  assert.equal(await content.locator('em').textContent(), 'no gap, no duplicate');
  const link = content.locator('a');
  assert.equal(await link.textContent(), 'the SSE spec');
  assert.equal(await link.getAttribute('href'), 'https://html.spec.whatwg.org/multipage/server-sent-events.html');
  assert.equal(await link.getAttribute('rel'), 'noopener noreferrer nofollow');
  assert.deepEqual(await content.locator('ol > li').allTextContents(), ['Read events as they arrive', 'Remember the last id:', 'On a cut, send it back:']);
  assert.equal(await content.locator('.code-lang').textContent(), 'js');
  assert.equal(
    await content.locator('pre code').textContent(),
    "import { streamChat } from '/telex.js';\n\nfor await (const delta of streamChat({ body: { model: 'demo', messages } })) {\n  out.textContent += delta;  // resumes by itself\n}",
  );
  assert.deepEqual(await content.locator('th').allTextContents(), ['event', 'meaning']);
  assert.deepEqual(await content.locator('td').allTextContents(), ['id:', 'position', 'retry:', 'ms before reconnecting']);
  assert.equal(await content.locator('blockquote').textContent(), 'Tip: a 204 means the stream is gone.');
  const turns = await sessionTurns(page);
  assert.deepEqual(turns.map((t) => t.content), ['What is telex?', intro, 'How does it resume a broken stream?', md]);
  await page.close();
});

test('presets from the gateway: the picker, a variable field, and what reached the upstream', async () => {
  const page = await openPage();
  await page.waitForSelector('#preset-field:not([hidden])');
  assert.deepEqual(await page.locator('#preset option').allTextContents(), ['None', 'explain']);
  await page.selectOption('#preset', 'explain');
  assert.deepEqual(await page.locator('#preset-vars input').evaluateAll((l) => l.map((i) => [i.dataset.var, i.placeholder])), [
    ['audience', 'required'],
    ['style', 'one paragraph'],
  ]);
  await page.fill('#preset-vars input[data-var="audience"]', 'children');
  const before = (await journal()).length;
  await ask(page, 'What is SSE?');
  await waitState(page, ['done']);
  const upstream = await waitFor(async () => (await journal())[before], { message: 'the request at the mock' });
  assert.deepEqual(upstream.body.messages, [
    { role: 'system', content: 'You explain things to children.' },
    { role: 'user', content: 'In one paragraph: What is SSE?' },
  ]);
  assert.match(await lastAnswer(page).locator('.meta').textContent(), /^preset explain · gpt-test · \d+ prompt/);
  await page.close();
});

test('errors in plain words: 429 before the stream, a cut after it', async () => {
  const page = await openPage({ mockKnobs: { status: 429, retry_after: 3 } });
  await ask(page, 'x', 'gpt-test');
  await waitState(page, ['error']);
  const error = lastAnswer(page).locator('.error');
  assert.match(await error.locator('strong').textContent(), /^Too many requests right now\. Try again in 3 seconds\.$/);
  assert.equal(await error.locator('button.retry').isVisible(), true);
  await page.close();

  const cut = await openPage({ mockKnobs: { tokens: 30, cut_after: 5, delay_ms: 5 } });
  await ask(cut, 'x', 'gpt-test');
  await waitState(cut, ['error']);
  assert.equal(await lastAnswer(cut).locator('.error strong').textContent(), 'The answer broke off before it was complete.');
  assert.ok((await lastAnswer(cut).locator('.content').textContent()).length > 0, 'the text before the cut stays');
  await cut.close();
});

test('telex.js works in a module Web Worker (no document there)', async () => {
  const page = await browser.context.newPage();
  await page.goto(`${serve.url}/healthz`); // a same-origin document without the page's CSP
  const body = { model: 'demo', messages: [{ role: 'user', content: 'from a worker' }], max_tokens: 12 };
  const result = await page.evaluate(
    ({ base, body }) => {
      const src = `import { streamChat } from '${base}/telex.js';
        self.onmessage = async (e) => {
          try {
            const chat = streamChat({ baseUrl: '${base}', body: e.data });
            let text = '';
            let deltas = 0;
            for await (const d of chat) { text += d; deltas++; }
            const done = await chat.done;
            postMessage({ text, deltas, usage: done.usage, hasDocument: typeof document !== 'undefined' });
          } catch (err) {
            postMessage({ error: String(err) });
          }
        };`;
      const worker = new Worker(URL.createObjectURL(new Blob([src], { type: 'text/javascript' })), { type: 'module' });
      return new Promise((resolve) => {
        worker.onmessage = (e) => resolve(e.data);
        worker.onerror = (e) => resolve({ error: e.message || 'worker error' });
        worker.postMessage(body);
      });
    },
    { base: serve.url, body },
  );
  assert.equal(result.error, undefined);
  assert.equal(result.hasDocument, false);
  assert.equal(result.deltas, 12);
  assert.equal(result.usage.completion_tokens, 12);
  const whole = await fetch(`${serve.url}/v1/chat/completions`, { method: 'POST', body: JSON.stringify(body) });
  assert.equal(result.text, (await whole.json()).choices[0].message.content);
  await page.close();
});

test('phone width: everything fits without sideways scrolling', async () => {
  const page = await browser.context.newPage();
  await page.addInitScript(() => localStorage.removeItem('telex.preset'));
  await page.setViewportSize({ width: 375, height: 740 });
  await page.goto(serve.url);
  await page.waitForSelector('#model option', { state: 'attached' });
  // a slow answer: still streaming (Stop shown) while the layout is checked below
  await ask(page, 'Explain caching with a list', 'demo-slow');
  await streamingPast(page, 120);
  const { scrollWidth, clientWidth } = await page.evaluate(() => ({ scrollWidth: document.documentElement.scrollWidth, clientWidth: document.documentElement.clientWidth }));
  assert.ok(scrollWidth <= clientWidth, `page ${scrollWidth}px wide in a ${clientWidth}px viewport`);
  for (const sel of ['#prompt', '#stop', '#model', '#new-chat']) {
    const box = await page.locator(sel).boundingBox();
    assert.ok(box && box.x >= 0 && box.x + box.width <= 375, `${sel} inside the screen: ${JSON.stringify(box)}`);
  }
  await page.screenshot({ path: outputPath('chat-phone.png') });
  await page.click('#stop');
  await page.close();
});

test('reload mid-answer resumes with the exact text (real gateway)', async (t) => {
  const probe = await fetch(`${serve.url}/v1/chat/completions`, {
    method: 'POST',
    body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: 'probe' }], stream: true, max_tokens: 1 }),
  });
  const resumable = probe.headers.has('x-telex-stream-id');
  await probe.body?.cancel();
  if (!resumable) return t.skip('gateway has no resumable streams yet (issue 4)');
  const page = await openPage();
  const question = 'Tell me everything about reconnecting streams';
  await ask(page, question, 'demo-slow'); // ~10 s: the reload lands mid-answer
  await streamingPast(page, 60);
  await page.reload();
  await waitState(page, ['done', 'error'], 60000 * SLACK);
  assert.equal(await answerState(page), 'done', await lastAnswer(page).locator('.error').textContent());
  const turns = await sessionTurns(page);
  assert.equal(turns.length, 2);
  assert.equal(turns[1].content, await nonStreamed([{ role: 'user', content: question }], 'demo-slow'));
  await page.close();
});
