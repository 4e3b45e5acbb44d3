// tests/integration/client_esm.test.js — telex.js from a Node project whose package.json says
// "type": "commonjs" (npm's default), through the gateway's /telex.mjs.
//
//  - GET /telex.mjs is web/telex.js byte for byte, as JavaScript; /telex.d.mts its types;
//  - in a temp folder with {"type":"commonjs"}: telex.js saved under its own name cannot be
//    imported (the reason for telex.mjs); telex.mjs saved from the gateway streams a whole demo
//    answer from a real telex, both from an ES module (main.mjs: `import`) and from a CommonJS
//    script (index.js: `await import()`), run by real `node` processes.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startServe, stopProcess } from './lib/proc.js';
import { SANITIZER_ENV, tmpDir } from './lib/relay.js';

const REPO = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const QUESTION = 'What is a CommonJS package?';
let serve;
let project;

before(async () => {
  serve = await startServe([], { env: { TELEX_CONFIG: '', ...SANITIZER_ENV } }); // the demo model
  project = tmpDir('telex-cjs-');
  fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'cjs-app', version: '1.0.0', type: 'commonjs' }));
});
after(() => stopProcess(serve));

// Runs `node file` in the project folder; resolves {code, stdout, stderr}.
function runNode(file) {
  return new Promise((resolve) => {
    const p = spawn(process.execPath, [file], {
      cwd: project,
      env: { ...process.env, TELEX_URL: serve.url, QUESTION },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d) => (stdout += d));
    p.stderr.on('data', (d) => (stderr += d));
    p.on('exit', (code) => resolve({ code, stdout, stderr }));
  });
}

async function wholeAnswer() {
  const r = await fetch(`${serve.url}/v1/chat/completions`, {
    method: 'POST',
    body: JSON.stringify({ model: 'demo', messages: [{ role: 'user', content: QUESTION }] }),
  });
  return (await r.json()).choices[0].message.content;
}

test('GET /telex.mjs is web/telex.js, served as JavaScript; /telex.d.mts its types', async () => {
  const r = await fetch(`${serve.url}/telex.mjs`);
  assert.equal(r.status, 200);
  assert.equal(r.headers.get('content-type'), 'text/javascript; charset=utf-8');
  assert.equal(await r.text(), fs.readFileSync(path.join(REPO, 'web/telex.js'), 'utf8'));
  const t = await fetch(`${serve.url}/telex.d.mts`);
  assert.equal(t.status, 200);
  assert.equal(await t.text(), fs.readFileSync(path.join(REPO, 'web/telex.d.ts'), 'utf8'));
});

test('in a "type": "commonjs" project, telex.js cannot be imported: the reason for telex.mjs', async () => {
  fs.copyFileSync(path.join(REPO, 'web/telex.js'), path.join(project, 'telex.js'));
  fs.writeFileSync(path.join(project, 'plain.mjs'), "import { streamChat } from './telex.js';\nconsole.log(typeof streamChat);\n");
  const r = await runNode('plain.mjs');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /SyntaxError/);
});

test('telex.mjs saved from the gateway streams a whole answer, by import and from CommonJS', async () => {
  const mjs = await (await fetch(`${serve.url}/telex.mjs`)).text();
  fs.writeFileSync(path.join(project, 'telex.mjs'), mjs);
  const program = (load) => `${load}
  const chat = streamChat({
    baseUrl: process.env.TELEX_URL,
    body: { model: 'demo', messages: [{ role: 'user', content: process.env.QUESTION }] },
  });
  let text = '';
  let deltas = 0;
  for await (const d of chat) { text += d; deltas++; }
  const done = await chat.done;
  console.log(JSON.stringify({ text, deltas, usage: done.usage }));
`;
  fs.writeFileSync(path.join(project, 'main.mjs'), program("import { streamChat } from './telex.mjs';"));
  fs.writeFileSync(
    path.join(project, 'index.js'),
    `(async () => {\n${program("const { streamChat } = await import('./telex.mjs');")}\n})().catch((e) => { console.error(e); process.exit(1); });\n`,
  );
  const expected = await wholeAnswer();
  for (const file of ['main.mjs', 'index.js']) {
    const r = await runNode(file);
    assert.equal(r.code, 0, `${file}: ${r.stderr}`);
    const out = JSON.parse(r.stdout);
    assert.equal(out.text, expected, `${file}: the whole answer`);
    assert.ok(out.deltas > 5, `${file}: streamed in pieces`);
    assert.equal(out.usage.completion_tokens, out.deltas);
  }
});
