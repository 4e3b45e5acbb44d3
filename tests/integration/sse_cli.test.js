// tests/integration/sse_cli.test.js — `telex sse decode|encode` as a user runs it.
//
// Runs the binary at $TELEX_BIN (default build/telex) on stdin/stdout:
//  - decode of tricky WHATWG event streams (BOM, CR/LF/CRLF split across feeds,
//    comments, id persistence, retry, invalid UTF-8, unterminated events) at
//    chunk sizes 1, 2, 7 and 65536: byte-identical output, equal to what a
//    browser would dispatch;
//  - --stats counts, --max-event-size errors (exit 65), live streaming;
//  - encode -> decode round trips (fixed and random events), decode -> encode
//    -> decode identity, encode errors with line numbers (exit 65);
//  - --help texts and bad command lines (exit 64).
import test from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';

import { SYNC_TIMEOUT_MS } from './lib/proc.js';

const BIN = process.env.TELEX_BIN ?? 'build/telex';
const CHUNK_SIZES = [1, 2, 7, 65536];

function run(args, input = '') {
  const r = spawnSync(BIN, args, { input, maxBuffer: 512 << 20, timeout: SYNC_TIMEOUT_MS });
  // EPIPE: the command exited (e.g. on a parse error) before reading all of stdin.
  if (r.error && !(r.error.code === 'EPIPE' && r.status !== null)) throw r.error;
  return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr.toString() };
}

// Parses JSON-lines output; every line must be valid JSON.
function jsonLines(buf) {
  const text = buf.toString('utf8');
  if (text === '') return [];
  assert.ok(text.endsWith('\n'), 'output ends with a newline');
  return text.slice(0, -1).split('\n').map((line) => JSON.parse(line));
}

const ev = (data, lastEventId = '', type = 'message') => ({ type, data, lastEventId });
const bytes = (...parts) => Buffer.concat(parts.map((p) => (typeof p === 'string' ? Buffer.from(p, 'utf8') : Buffer.from(p))));
// What a browser's TextDecoder makes of these bytes (the reference for U+FFFD).
const browserText = (buf) => new TextDecoder('utf-8').decode(buf);

const INVALID_UTF8 = Buffer.from([
  0x61, 0xff, 0x62, // lone invalid byte
  0xc0, 0xaf, 0x63, // overlong
  0xed, 0xa0, 0x80, 0x64, // surrogate
  0xe2, 0x82, 0x65, // truncated 3-byte sequence
  0xf0, 0x9f, 0x98, 0x80, 0x66, // valid 4-byte (U+1F600)
  0xf4, 0x90, 0x80, 0x80, // above U+10FFFF
  0x80, 0xbf, // stray continuations
  0xf0, 0x9f, 0x98, // truncated at end of line
]);

const STREAMS = [
  { name: 'basic', input: 'data: hello\n\n', expect: [ev('hello')] },
  {
    name: 'CRLF, lone CR and LF line endings; blank line by CR',
    input: 'data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r',
    expect: [ev('a\nb\nc'), ev('d')],
  },
  {
    // A CR ending one feed and an LF starting the next is one line break, not two:
    // two breaks would make a blank line and dispatch "a" alone.
    name: 'CRLF never counts as two line breaks',
    input: 'data: a\r\ndata: b\r\n\r\ndata: c\r\n\r\n',
    expect: [ev('a\nb'), ev('c')],
  },
  { name: 'leading BOM stripped', input: bytes([0xef, 0xbb, 0xbf], 'data: bom\n\n'), expect: [ev('bom')] },
  {
    name: 'only the first BOM is stripped',
    input: bytes([0xef, 0xbb, 0xbf], 'data: 1\n\n', [0xef, 0xbb, 0xbf], 'data: 2\n\n'),
    expect: [ev('1')],
  },
  { name: 'partial BOM is not a BOM', input: bytes([0xef, 0xbb], 'data: x\n\n'), expect: [] },
  {
    name: 'comments, fields with and without colon, one leading space stripped',
    input: ': a comment\ndata:no-space\ndata:  two spaces\ndata\nevent: custom\nid: 42\nunknown: x\n:\n\n',
    expect: [ev('no-space\n two spaces\n', '42', 'custom')],
  },
  {
    name: 'last event id persists, NUL ids ignored, empty id resets',
    input: 'id: 1\ndata: a\n\ndata: b\n\nid: x\0y\ndata: c\n\nid\ndata: d\n\nid: 9\n\ndata: e\n\n',
    expect: [ev('a', '1'), ev('b', '1'), ev('c', '1'), ev('d', ''), ev('e', '9')],
  },
  {
    name: 'retry: ASCII digits only, in stream order',
    input: 'retry: 3000\nretry: 1a\nretry: 42 \nretry:  5\nretry: -1\nretry: 007\ndata: x\nretry: 20\n\n',
    expect: [{ retry: 3000 }, { retry: 7 }, { retry: 20 }, ev('x')],
  },
  {
    name: 'event type resets after each dispatch and after an empty event',
    input: 'event: e1\ndata: x\n\nevent: \ndata: y\n\nevent: t\n\ndata: z\n\ndata: w\n\n',
    expect: [ev('x', '', 'e1'), ev('y'), ev('z'), ev('w')],
  },
  { name: 'empty data still dispatches', input: 'data\n\ndata:\n\n\n\n\n', expect: [ev(''), ev('')] },
  { name: 'unterminated final event is not dispatched', input: 'data: a\n\ndata: b\n', expect: [ev('a')] },
  { name: 'unterminated final line is not processed', input: 'data: a\n\nretry: 5', expect: [ev('a')] },
  {
    name: 'multi-byte UTF-8 split across feeds',
    input: 'data: héllo 日本語 😀\n\nevent: ü\nid: é\ndata: ok\n\n',
    expect: [ev('héllo 日本語 😀'), ev('ok', 'é', 'ü')],
  },
  {
    name: 'invalid UTF-8 becomes U+FFFD as in a browser',
    input: bytes('data: ', INVALID_UTF8, '\nevent: ', [0xfe], '\nid: ', [0xc3], '\n\n'),
    expect: [ev(browserText(INVALID_UTF8), '\ufffd', '\ufffd')],
  },
  {
    name: 'control characters, quotes, backslashes and NUL are escaped',
    input: bytes('data: ', [0x01, 0x1f, 0x7f, 0x09, 0x22, 0x5c, 0x00, 0x08, 0x0c], ' </script>\n\n'),
    expect: [ev('\u0001\u001f\u007f\t"\\\u0000\b\f </script>')],
  },
  {
    name: 'a long line and many lines',
    input: `data: ${'x'.repeat(10000)}\n${'data: y\n'.repeat(300)}\n`,
    expect: [ev(`${'x'.repeat(10000)}${'\ny'.repeat(300)}`)],
  },
];

for (const stream of STREAMS) {
  test(`decode: ${stream.name} (chunk sizes ${CHUNK_SIZES.join(', ')})`, () => {
    let reference;
    for (const size of CHUNK_SIZES) {
      const r = run(['sse', 'decode', '--chunk-size', String(size)], stream.input);
      assert.equal(r.status, 0, `exit status at chunk size ${size}: ${r.stderr}`);
      assert.equal(r.stderr, '');
      assert.deepEqual(jsonLines(r.stdout), stream.expect, `chunk size ${size}`);
      if (reference === undefined) reference = r.stdout;
      else assert.ok(r.stdout.equals(reference), `chunk size ${size} gives the same bytes as size 1`);
    }
  });
}

test('decode: output lines have exactly the documented keys, in order', () => {
  const r = run(['sse', 'decode'], 'retry: 5\nid: i\nevent: t\ndata: d\n\n');
  assert.equal(r.status, 0);
  assert.equal(r.stdout.toString(), '{"retry":5}\n{"type":"t","data":"d","lastEventId":"i"}\n');
});

test('decode: --chunk-size=N form and default chunk size agree', () => {
  const input = STREAMS.map((s) => s.input.toString()).join('');
  const a = run(['sse', 'decode'], input);
  const b = run(['sse', 'decode', '--chunk-size=3'], input);
  assert.equal(a.status, 0);
  assert.equal(b.status, 0);
  assert.ok(a.stdout.equals(b.stdout));
  assert.ok(jsonLines(a.stdout).length > 10);
});

test('decode: events appear on stdout while the input is still open (live stream)', async () => {
  const child = spawn(BIN, ['sse', 'decode']);
  const exited = new Promise((resolve) => child.on('exit', (code) => resolve(code)));
  child.stdin.write('data: first\n\n');
  const firstLine = await new Promise((resolve, reject) => {
    // (the wrong behaviour is no output until stdin closes, i.e. never here)
    const timer = setTimeout(() => {
      child.kill();
      reject(new Error('no output within 20 s while stdin is open'));
    }, 20000);
    let got = '';
    child.stdout.on('data', (chunk) => {
      got += chunk;
      if (got.includes('\n')) {
        clearTimeout(timer);
        resolve(got);
      }
    });
  });
  assert.deepEqual(JSON.parse(firstLine), ev('first'));
  child.stdin.end('data: second\n\n');
  assert.equal(await exited, 0);
});

test('decode --stats: one line of counts instead of events', () => {
  const input = ': hi\nretry: 10\ndata: a\n\n: again\nid: 2\ndata: b\n\nretry: x\nretry: 20\ndata: c\n\ndata: unterminated\n';
  for (const size of [1, 65536]) {
    const r = run(['sse', 'decode', '--stats', '--chunk-size', String(size)], input);
    assert.equal(r.status, 0, r.stderr);
    const lines = jsonLines(r.stdout);
    assert.equal(lines.length, 1);
    const s = lines[0];
    assert.deepEqual(Object.keys(s), ['events', 'retries', 'comments', 'bytes', 'seconds', 'mb_per_s']);
    assert.equal(s.events, 3);
    assert.equal(s.retries, 2);
    assert.equal(s.comments, 2);
    assert.equal(s.bytes, Buffer.byteLength(input));
    assert.equal(typeof s.seconds, 'number');
    assert.ok(s.seconds >= 0);
    assert.equal(typeof s.mb_per_s, 'number');
  }
});

test('decode --stats agrees with the number of decoded events on a larger stream', () => {
  let input = '';
  for (let i = 0; i < 20000; i++) input += `id: ${i}\ndata: {"n":${i},"text":"token ${i % 97}"}\n\n`;
  const events = jsonLines(run(['sse', 'decode'], input).stdout);
  assert.equal(events.length, 20000);
  assert.deepEqual(events[19999], ev('{"n":19999,"text":"token 17"}', '19999'));
  const stats = jsonLines(run(['sse', 'decode', '--stats'], input).stdout)[0];
  assert.equal(stats.events, 20000);
  assert.equal(stats.bytes, input.length);
});

test('decode: an event over --max-event-size exits 65 with a clear message', () => {
  const input = `data: ok\n\ndata: ${'x'.repeat(2000)}\n\ndata: never\n\n`;
  for (const size of [1, 7, 65536]) {
    const r = run(['sse', 'decode', '--max-event-size', '1000', '--chunk-size', String(size)], input);
    assert.equal(r.status, 65, `chunk size ${size}`);
    assert.deepEqual(jsonLines(r.stdout), [ev('ok')], 'events before the error are printed');
    assert.match(r.stderr, /max/i);
    assert.match(r.stderr, /1000 bytes/);
    const [, from, to] = r.stderr.match(/bytes (\d+)-(\d+)/) ?? [];
    assert.ok(from !== undefined, `stderr names input byte offsets: ${r.stderr}`);
    // The limit is crossed inside the big event: bytes 11 .. 11 + 1000 + "data: ".length.
    assert.ok(Number(from) <= 1017 && Number(to) >= 11, `offsets ${from}-${to} around the big event`);
  }
  assert.equal(run(['sse', 'decode', '--max-event-size', '4K'], input).status, 0);
  assert.equal(run(['sse', 'decode', '--max-event-size=2048'], input).status, 0);
});

test('decode: the default limit is 1 MiB', () => {
  const big = `data: ${'y'.repeat(1536 * 1024)}\n\n`;
  const r = run(['sse', 'decode'], big);
  assert.equal(r.status, 65);
  assert.match(r.stderr, /1048576 bytes/);
  const ok = run(['sse', 'decode', '--max-event-size', '2M'], big);
  assert.equal(ok.status, 0);
  assert.equal(jsonLines(ok.stdout)[0].data.length, 1536 * 1024);
});

// ------------------------------------------------------------------ encode

// What a spec-conformant decoder dispatches for JSON-lines records given to encode.
function expectedDecode(records) {
  const out = [];
  let lastEventId = '';
  for (const r of records) {
    if ('comment' in r) continue;
    if ('retry' in r) out.push({ retry: r.retry });
    if (Object.keys(r).length === 1 && 'retry' in r) continue;
    if ('id' in r) lastEventId = r.id;
    if ('lastEventId' in r) lastEventId = r.lastEventId;
    const type = r.type ? r.type : 'message';
    out.push(ev((r.data ?? '').replace(/\r\n|\r/g, '\n'), lastEventId, type));
  }
  return out;
}

const toJsonLines = (records) => records.map((r) => JSON.stringify(r)).join('\n') + '\n';

test('encode -> decode round trip of tricky records', () => {
  const records = [
    { data: 'hello' },
    { type: 'update', id: '1', data: 'line1\nline2' },
    { data: 'crlf\r\nin\rdata\n' },
    { comment: 'keep-alive' },
    { comment: 'multi\nline\r\ncomment' },
    { retry: 2500 },
    { data: '' },
    {},
    { data: '   leading spaces' },
    { data: ': not a comment' },
    { data: 'data: nested field' },
    { data: '\n\nblank lines\n\n' },
    { data: 'emoji 😀 ü 日本' },
    { id: '', data: 'id reset' },
    { id: '7', retry: 0, type: 'with-retry', data: 'r' },
    { type: '', data: 'empty type is message' },
    { data: 'nul \u0000 inside' },
    { lastEventId: '7', data: 'same id, not rewritten' },
    { lastEventId: '8', data: 'new id' },
    { lastEventId: '', data: 'back to empty' },
  ];
  for (const size of [1, 65536]) {
    const enc = run(['sse', 'encode'], toJsonLines(records));
    assert.equal(enc.status, 0, enc.stderr);
    const dec = run(['sse', 'decode', '--chunk-size', String(size)], enc.stdout);
    assert.equal(dec.status, 0, dec.stderr);
    assert.deepEqual(jsonLines(dec.stdout), expectedDecode(records));
  }
});

test('encode writes the wire format a reader expects', () => {
  const enc = run(['sse', 'encode'], toJsonLines([{ comment: 'hi' }, { type: 't', id: '1', data: 'a\nb' }, { retry: 5 }]));
  assert.equal(enc.status, 0, enc.stderr);
  const text = enc.stdout.toString();
  assert.match(text, /^: ?hi\n/);
  assert.match(text, /event: ?t\n/);
  assert.match(text, /id: ?1\n/);
  assert.match(text, /data: ?a\ndata: ?b\n\n/);
  assert.match(text, /retry: ?5\n/);
  // lastEventId writes an id line only when the id changes.
  const ids = run(['sse', 'encode'], toJsonLines([{ lastEventId: '1', data: 'a' }, { lastEventId: '1', data: 'b' }, { lastEventId: '2', data: 'c' }]));
  assert.equal(ids.status, 0, ids.stderr);
  assert.deepEqual(ids.stdout.toString().match(/^id.*$/gm), ['id: 1', 'id: 2']);
});

// A small deterministic PRNG so failures reproduce.
function prng(seed) {
  let s = seed >>> 0;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 4294967296;
  };
}

test('encode -> decode round trip of 500 random events', () => {
  const rand = prng(20240611);
  const pieces = ['a', 'b', 'token', ' ', ':', '\n', '\r', '\r\n', 'é', '日', '😀', '"', '\\', '\t', '\u0000', '{"k":1}', 'data:', 'id:'];
  const pick = (list) => list[Math.floor(rand() * list.length)];
  const text = (n) => Array.from({ length: n }, () => pick(pieces)).join('');
  const safe = (n) => text(n).replace(/[\r\n\u0000]/g, '_');
  const records = [];
  for (let i = 0; i < 500; i++) {
    const r = {};
    const kind = rand();
    if (kind < 0.05) {
      records.push({ comment: text(Math.floor(rand() * 10)) });
      continue;
    }
    if (kind < 0.1) {
      records.push({ retry: Math.floor(rand() * 100000) });
      continue;
    }
    if (rand() < 0.5) r.data = text(Math.floor(rand() * 30));
    if (rand() < 0.3) r.type = safe(1 + Math.floor(rand() * 5));
    if (rand() < 0.3) r.id = safe(Math.floor(rand() * 5));
    if (rand() < 0.1) r.retry = Math.floor(rand() * 1000);
    records.push(r);
  }
  const enc = run(['sse', 'encode'], toJsonLines(records));
  assert.equal(enc.status, 0, enc.stderr);
  for (const size of [1, 7, 65536]) {
    const dec = run(['sse', 'decode', '--chunk-size', String(size)], enc.stdout);
    assert.equal(dec.status, 0, dec.stderr);
    assert.deepEqual(jsonLines(dec.stdout), expectedDecode(records), `chunk size ${size}`);
  }
});

test('decode -> encode -> decode is the identity on the tricky streams', () => {
  for (const stream of STREAMS) {
    const first = run(['sse', 'decode'], stream.input);
    const enc = run(['sse', 'encode'], first.stdout);
    assert.equal(enc.status, 0, `${stream.name}: ${enc.stderr}`);
    const second = run(['sse', 'decode'], enc.stdout);
    assert.equal(second.status, 0);
    assert.ok(second.stdout.equals(first.stdout), stream.name);
  }
});

test('encode: errors name the line and exit 65', () => {
  const cases = [
    { input: '{"data":"a"}\n{"data":"b"}\n{"data": nope}\n', line: 3, re: /invalid JSON/ },
    { input: '\n\n{"data":"a"\n', line: 3, re: /invalid JSON/ },
    { input: '[1,2]\n', line: 1, re: /object/ },
    { input: '{"data":"a"}\n"just a string"\n', line: 2, re: /./ },
    { input: '{"data":5}\n', line: 1, re: /"data" must be a string/ },
    { input: '{"type":["x"]}\n', line: 1, re: /"type" must be a string/ },
    { input: '{"data":"ok"}\n{"retry":-1}\n', line: 2, re: /retry/ },
    { input: '{"retry":1.5}\n', line: 1, re: /retry/ },
    { input: '{"retry":"5"}\n', line: 1, re: /retry/ },
    { input: '{"id":"a\\nb","data":"x"}\n', line: 1, re: /"id" must not contain CR, LF or NUL/ },
    { input: '{"id":"a\\u0000b"}\n', line: 1, re: /"id" must not contain CR, LF or NUL/ },
    { input: '{"type":"a\\rb"}\n', line: 1, re: /"type" must not contain CR, LF or NUL/ },
    { input: '{"lastEventId":"x\\n"}\n', line: 1, re: /"lastEventId" must not contain CR, LF or NUL/ },
    { input: '{"data":"x","foo":1}\n', line: 1, re: /unknown key "foo"/ },
    { input: '{"comment":"c","data":"d"}\n', line: 1, re: /comment/ },
    { input: '{"comment":7}\n', line: 1, re: /"comment" must be a string/ },
    { input: '{"data":"a","data":"b"}\n', line: 1, re: /duplicate/ },
    { input: '{"id":"1","lastEventId":"2"}\n', line: 1, re: /either/ },
    { input: Buffer.concat([Buffer.from('{"data":"'), Buffer.from([0xff]), Buffer.from('"}\n')]), line: 1, re: /UTF-8|invalid/i },
  ];
  for (const c of cases) {
    const r = run(['sse', 'encode'], c.input);
    assert.equal(r.status, 65, `${JSON.stringify(c.input.toString())}: ${r.stderr}`);
    assert.match(r.stderr, new RegExp(`line ${c.line}\\b`), `${JSON.stringify(c.input.toString())}: ${r.stderr}`);
    assert.match(r.stderr, c.re);
    assert.equal(r.stderr.trim().split('\n').length, 1, 'one clear line');
  }
  // Records before the bad line were written.
  const r = run(['sse', 'encode'], '{"data":"a"}\n{"data":"b"}\n{oops}\n');
  assert.deepEqual(jsonLines(run(['sse', 'decode'], r.stdout).stdout), [ev('a'), ev('b')]);
});

test('encode: lines are bounded at 16 MiB', () => {
  const limit = 16 * 1024 * 1024;
  const line = (len) => `{"data":"${'x'.repeat(len - 11)}"}`; // exactly len bytes
  assert.equal(line(100).length, 100);
  const r = run(['sse', 'encode'], `{"data":"first"}\n${line(limit + 1)}\n{"data":"after"}\n`);
  assert.equal(r.status, 65);
  assert.match(r.stderr, /line 2: .*longer than/);
  const far = run(['sse', 'encode'], `${line(limit + 4 * 1024 * 1024)}\n`);
  assert.equal(far.status, 65);
  assert.match(far.stderr, /line 1: .*longer than/);
  const ok = run(['sse', 'encode'], `${line(limit)}\n`);
  assert.equal(ok.status, 0, ok.stderr);
  assert.equal(ok.stdout.toString(), `data: ${'x'.repeat(limit - 11)}\n\n`);
});

test('encode accepts a final line without newline and CRLF line ends', () => {
  const r = run(['sse', 'encode'], '{"data":"a"}\r\n{"data":"b"}');
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(jsonLines(run(['sse', 'decode'], r.stdout).stdout), [ev('a'), ev('b')]);
});

// -------------------------------------------------------- help and usage

test('--help texts describe every option', () => {
  const all = run(['sse', '--help']);
  assert.equal(all.status, 0);
  const text = all.stdout.toString();
  for (const word of ['telex sse decode', 'telex sse encode', '--chunk-size', '--stats', '--max-event-size', 'lastEventId', 'retry', 'comment', 'U+FFFD', '65']) {
    assert.ok(text.includes(word), `telex sse --help mentions ${word}`);
  }
  const decode = run(['sse', 'decode', '--help']);
  assert.equal(decode.status, 0);
  assert.match(decode.stdout.toString(), /--chunk-size[\s\S]*--max-event-size[\s\S]*--stats/);
  const encode = run(['sse', 'encode', '-h']);
  assert.equal(encode.status, 0);
  assert.match(encode.stdout.toString(), /comment[\s\S]*retry/);
});

test('bad command lines print usage on stderr and exit 64', () => {
  const cases = [
    ['sse'],
    ['sse', 'frobnicate'],
    ['sse', '--bogus'],
    ['sse', 'decode', '--bogus'],
    ['sse', 'decode', '--chunk-size'],
    ['sse', 'decode', '--chunk-size', '0'],
    ['sse', 'decode', '--chunk-size', 'abc'],
    ['sse', 'decode', '--chunk-size', '-5'],
    ['sse', 'decode', '--chunk-size', '10X'],
    ['sse', 'decode', '--max-event-size', '0'],
    ['sse', 'decode', '--max-event-size'],
    ['sse', 'decode', 'file.txt'],
    ['sse', 'encode', '--bogus'],
    ['sse', 'encode', 'file.txt'],
  ];
  for (const args of cases) {
    const r = run(args, 'data: x\n\n');
    assert.equal(r.status, 64, args.join(' '));
    assert.equal(r.stdout.length, 0, `${args.join(' ')}: nothing on stdout`);
    assert.match(r.stderr, /usage: telex sse/, args.join(' '));
  }
});
