// tests/integration/cli_clients.test.js — the coding agents people point at a gateway, run for
// real against a real `telex serve` (the built-in demo model, no network):
//  - Codex CLI (`@openai/codex`, `codex exec`) with a custom model provider whose base URL is
//    telex and `wire_api = "responses"` (Codex no longer speaks chat completions to custom
//    providers): it sends its whole request (hosted tools, reasoning, include, store: false …),
//    telex answers on POST /v1/responses, and Codex prints the answer;
//  - Claude Code (`@anthropic-ai/claude-code`, `claude -p`) with ANTHROPIC_BASE_URL = telex and
//    its non-essential traffic off: it speaks POST /v1/messages (system messages inside
//    `messages`, adaptive thinking, context_management …) and prints the answer.
// Each CLI gets a HOME / CODEX_HOME of its own in a temp dir. The answer they print must be the
// one telex streamed (replayed afterwards from GET /v1/streams/{id}).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

import { startServe, stopProcess } from './lib/proc.js';
import { SANITIZER_ENV, tmpDir } from './lib/relay.js';
import { request } from './lib/resume.js';

const BIN = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../node_modules/.bin');

let serve;
before(async () => {
  serve = await startServe(['--listen', '127.0.0.1:0'], { env: { TELEX_LOG: '', ...SANITIZER_ENV } });
});
after(async () => {
  if (serve) await stopProcess(serve);
});

function run(cmd, args, env, timeoutMs = 120000) {
  return new Promise((resolve) => {
    const p = spawn(cmd, args, { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, out, err });
    });
  });
}

// The text of the answer telex streamed on `apiPath` (its last stream), from a replay.
async function streamedText(apiPath, deltaOf) {
  const line = await serve.waitForLog((l) => l.msg === 'request' && l.path === apiPath && l.status === 200 && l.stream_id);
  const replay = await request(`${serve.url}/v1/streams/${line.stream_id}`, { headers: { accept: 'text/event-stream' } });
  assert.equal(replay.status, 200);
  return replay.events.map((e) => deltaOf(JSON.parse(e.data)) ?? '').join('');
}

const squash = (s) => s.replace(/\s+/g, ' ').trim();

test('Codex CLI: codex exec through telex (Responses API)', async () => {
  const home = tmpDir('telex-codex-');
  fs.writeFileSync(
    path.join(home, 'config.toml'),
    [
      'model = "demo"',
      'model_provider = "telex"',
      '[model_providers.telex]',
      'name = "telex"',
      `base_url = "${serve.url}/v1"`,
      'wire_api = "responses"',
      '',
    ].join('\n'),
  );
  const r = await run(path.join(BIN, 'codex'), ['exec', '--skip-git-repo-check', 'Say hello'], { CODEX_HOME: home, HOME: home });
  assert.equal(r.code, 0, `${r.out}\n${r.err}`);
  const text = await streamedText('/v1/responses', (ev) => (ev.type === 'response.output_text.delta' ? ev.delta : null));
  assert.ok(text.length > 20, text);
  assert.ok(squash(r.out).includes(squash(text)), `codex printed:\n${r.out}\n--- telex streamed:\n${text}`);
});

test('Claude Code: claude -p through telex (Messages API)', async () => {
  const home = tmpDir('telex-claude-');
  const r = await run(path.join(BIN, 'claude'), ['-p', 'Say hello', '--model', 'demo'], {
    HOME: home,
    ANTHROPIC_BASE_URL: serve.url,
    ANTHROPIC_API_KEY: 'sk-ant-unused',
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: '1',
    DISABLE_AUTOUPDATER: '1',
  });
  assert.equal(r.code, 0, `${r.out}\n${r.err}`);
  const text = await streamedText('/v1/messages', (ev) => (ev.type === 'content_block_delta' ? ev.delta.text : null));
  assert.ok(text.length > 20, text);
  assert.ok(squash(r.out).includes(squash(text)), `claude printed:\n${r.out}\n--- telex streamed:\n${text}`);
});
