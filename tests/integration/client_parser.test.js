// tests/integration/client_parser.test.js — createParser() of web/telex.js against the WHATWG
// "event stream interpretation" rules.
//
// Every case is a byte string and what a browser's EventSource would report for it: the events
// (type, data, lastEventId), the retry values, the comments, and the last event id at the end.
// Each case is fed whole, split in two at every byte, one byte at a time, in random pieces,
// and (decoded) as strings. A random-stream property test compares the incremental parser with
// a whole-input implementation written straight from the spec's wording.
import test from 'node:test';
import assert from 'node:assert/strict';
import { createParser } from '../../web/telex.js';

const enc = new TextEncoder();
const bytes = (...parts) =>
  Uint8Array.from(parts.flatMap((p) => (typeof p === 'string' ? [...enc.encode(p)] : p)));
const ev = (data, lastEventId = '', type = 'message') => ({ type, data, lastEventId });

// Feeds `chunks` to a fresh parser and records everything it reports.
function run(chunks, options = {}) {
  const out = { events: [], retries: [], comments: [] };
  const parser = createParser({
    ...options,
    onEvent: (e) => out.events.push({ type: e.type, data: e.data, lastEventId: e.lastEventId }),
    onRetry: (ms) => out.retries.push(ms),
    onComment: (c) => out.comments.push(c),
  });
  for (const c of chunks) parser.feed(c);
  out.lastEventId = parser.lastEventId;
  return out;
}

// Deterministic PRNG (mulberry32) so failures are reproducible.
function rng(seed) {
  return () => {
    seed |= 0;
    seed = (seed + 0x6d2b79f5) | 0;
    let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function* splits(input) {
  yield { how: 'whole', chunks: [input] };
  for (let i = 0; i <= input.length; i++) yield { how: `split at byte ${i}`, chunks: [input.slice(0, i), input.slice(i)] };
  yield { how: 'one byte at a time', chunks: [...input].map((b) => Uint8Array.of(b)) };
  const r = rng(input.length * 7919 + 1);
  for (let k = 0; k < 20; k++) {
    const chunks = [];
    for (let i = 0; i < input.length; ) {
      const n = 1 + Math.floor(r() * 9);
      chunks.push(input.slice(i, i + n));
      i += n;
    }
    yield { how: `random pieces #${k}`, chunks };
  }
}

const CASES = [
  { name: 'one event', input: bytes('data: hello\n\n'), events: [ev('hello')] },
  { name: 'no space after the colon', input: bytes('data:hello\n\n'), events: [ev('hello')] },
  { name: 'only one leading space is removed', input: bytes('data:  two spaces \n\n'), events: [ev(' two spaces ')] },
  { name: 'data lines are joined with LF', input: bytes('data: a\ndata: b\ndata: c\n\n'), events: [ev('a\nb\nc')] },
  { name: 'a bare "data" line is an empty data line', input: bytes('data\n\n'), events: [ev('')] },
  { name: '"data:" with nothing after it dispatches an empty event', input: bytes('data:\n\n'), events: [ev('')] },
  { name: 'leading empty data line is kept', input: bytes('data\ndata: x\n\n'), events: [ev('\nx')] },
  { name: 'trailing empty data line is kept', input: bytes('data: x\ndata:\n\n'), events: [ev('x\n')] },
  { name: 'two empty data lines are one LF', input: bytes('data\ndata\n\n'), events: [ev('\n')] },
  { name: 'colons in the value are kept', input: bytes('data: a:b: c\ndata::x\n\n'), events: [ev('a:b: c\n:x')] },
  {
    name: 'no data, no event; the event type is still cleared',
    input: bytes('event: add\n\ndata: x\n\n'),
    events: [ev('x')],
  },
  { name: 'blank lines alone dispatch nothing', input: bytes('\n\n\r\n\r\r'), events: [] },
  { name: 'event type', input: bytes('event: add\ndata: 1\n\ndata: 2\n\n'), events: [ev('1', '', 'add'), ev('2')] },
  { name: 'empty event type is "message"', input: bytes('event:\ndata: x\n\nevent\ndata: y\n\n'), events: [ev('x'), ev('y')] },
  { name: 'last event type field wins', input: bytes('event: a\nevent: b\ndata: x\n\n'), events: [ev('x', '', 'b')] },
  {
    name: 'id persists across events',
    input: bytes('id: 1\ndata: a\n\ndata: b\n\nid: 2\ndata: c\n\n'),
    events: [ev('a', '1'), ev('b', '1'), ev('c', '2')],
    lastEventId: '2',
  },
  {
    name: 'an id-only block sets the last event id without an event',
    input: bytes('id: 7\n\ndata: x\n\n'),
    events: [ev('x', '7')],
    lastEventId: '7',
  },
  {
    name: 'an empty id resets the last event id',
    input: bytes('id: 1\ndata: a\n\nid\ndata: b\n\nid: 3\ndata: c\n\nid:\ndata: d\n\n'),
    events: [ev('a', '1'), ev('b', ''), ev('c', '3'), ev('d', '')],
    lastEventId: '',
  },
  {
    name: 'an id containing NUL is ignored',
    input: bytes('id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\nid: \0\ndata: c\n\n'),
    events: [ev('a', '1'), ev('b', '1'), ev('c', '1')],
    lastEventId: '1',
  },
  { name: 'id is taken as is (spaces, colons, unicode)', input: bytes('id:  a:b é \ndata: x\n\n'), events: [ev('x', ' a:b é ')], lastEventId: ' a:b é ' },
  {
    name: 'an id is committed only by the blank line',
    input: bytes('id: 1\ndata: a\n\nid: 2\ndata: b'),
    events: [ev('a', '1')],
    lastEventId: '1',
  },
  {
    name: 'comments are reported and never dispatch',
    input: bytes(': hello\n:\n: \ndata: x\n: in between\n\n'),
    events: [ev('x')],
    comments: [' hello', '', ' ', ' in between'],
  },
  { name: 'unknown fields are ignored', input: bytes('foo: bar\nfoo\ndata: y\nbaz:\n\n'), events: [ev('y')] },
  { name: 'field names are case-sensitive', input: bytes('Data: x\nDATA: y\nEvent: e\nID: 1\n\n'), events: [], lastEventId: '' },
  { name: 'a space before the colon makes another field', input: bytes('data : x\n\ndata: y\n\n'), events: [ev('y')] },
  { name: 'retry: digits', input: bytes('retry: 1000\n\n'), events: [], retries: [1000] },
  { name: 'retry: no space', input: bytes('retry:250\ndata: x\n\n'), events: [ev('x')], retries: [250] },
  { name: 'retry: zero and leading zeros', input: bytes('retry: 0\nretry: 007\n\n'), events: [], retries: [0, 7] },
  {
    name: 'retry: anything but ASCII digits is ignored',
    input: bytes('retry: 1000x\nretry: -1\nretry: 1.5\nretry: +5\nretry: \nretry\nretry:  100\nretry: 1e3\nretry: ٣\nretry: 42\n\n'),
    events: [],
    retries: [42],
  },
  { name: 'retry too large to be exact is ignored', input: bytes('retry: 99999999999999999999\n\n'), events: [], retries: [] },
  {
    name: 'CRLF, lone CR and LF line endings; a blank line by CR',
    input: bytes('data: a\r\ndata: b\rdata: c\n\r\ndata: d\r\r'),
    events: [ev('a\nb\nc'), ev('d')],
  },
  { name: 'CR CR LF is a line end and a blank line', input: bytes('data: a\r\r\ndata: b\r\n\r\n'), events: [ev('a'), ev('b')] },
  { name: 'LF CR is two line ends', input: bytes('data: a\n\rdata: b\n\n'), events: [ev('a'), ev('b')] },
  { name: 'CRLF never counts as two line ends', input: bytes('data: a\r\ndata: b\r\n\r\n'), events: [ev('a\nb')] },
  { name: 'CR-only stream', input: bytes('id: 1\rdata: a\rdata: b\r\r'), events: [ev('a\nb', '1')], lastEventId: '1' },
  { name: 'a leading BOM is stripped', input: bytes([0xef, 0xbb, 0xbf], 'data: a\n\n'), events: [ev('a')] },
  {
    name: 'only one BOM is stripped (the second is part of the field name)',
    input: bytes([0xef, 0xbb, 0xbf, 0xef, 0xbb, 0xbf], 'data: a\n\ndata: b\n\n'),
    events: [ev('b')],
  },
  {
    name: 'a BOM later in the stream is not stripped',
    input: bytes('data: a\n\n', [0xef, 0xbb, 0xbf], 'data: b\n\ndata: c\n\n'),
    events: [ev('a'), ev('c')],
  },
  { name: 'a BOM inside a value is data', input: bytes('data: ', [0xef, 0xbb, 0xbf], 'x\n\n'), events: [ev('\ufeffx')] },
  { name: 'an unterminated final event is not dispatched', input: bytes('data: a\n\ndata: b\n'), events: [ev('a')] },
  { name: 'an unterminated final line is not dispatched', input: bytes('data: a\n\ndata: b'), events: [ev('a')] },
  { name: 'multi-byte UTF-8 across chunks', input: bytes('data: héllo wörld — 日本 😀\n\n'), events: [ev('héllo wörld — 日本 😀')] },
  {
    name: 'invalid UTF-8 becomes U+FFFD like a browser',
    input: bytes('data: a', [0xff], 'b', [0xc0, 0xaf], 'c', [0xed, 0xa0, 0x80], 'd', [0xe2, 0x82], 'e', [0xf0, 0x9f, 0x98], '\n\n'),
    events: [ev(new TextDecoder().decode(bytes('a', [0xff], 'b', [0xc0, 0xaf], 'c', [0xed, 0xa0, 0x80], 'd', [0xe2, 0x82], 'e', [0xf0, 0x9f, 0x98])))],
  },
  { name: 'NUL in data is data', input: bytes('data: a\0b\n\n'), events: [ev('a\0b')] },
  {
    name: 'a chat stream like telex sends it',
    input: bytes(
      'retry: 3000\nid: s1.0\ndata: {"choices":[{"delta":{"content":"Hel"}}]}\n\n',
      ': keepalive\n\n',
      'id: s1.1\ndata: {"choices":[{"delta":{"content":"lo"}}]}\n\n',
      'id: s1.2\ndata: [DONE]\n\n',
    ),
    events: [
      ev('{"choices":[{"delta":{"content":"Hel"}}]}', 's1.0'),
      ev('{"choices":[{"delta":{"content":"lo"}}]}', 's1.1'),
      ev('[DONE]', 's1.2'),
    ],
    retries: [3000],
    comments: [' keepalive'],
    lastEventId: 's1.2',
  },
];

for (const c of CASES) {
  test(`parser: ${c.name}`, () => {
    const want = {
      events: c.events,
      retries: c.retries ?? [],
      comments: c.comments ?? [],
      lastEventId: c.lastEventId ?? (c.events.length ? c.events[c.events.length - 1].lastEventId : ''),
    };
    for (const { how, chunks } of splits(c.input)) {
      assert.deepEqual(run(chunks), want, how);
    }
    // Strings (already decoded) fed whole and one UTF-16 unit at a time.
    const text = new TextDecoder('utf-8', { ignoreBOM: true }).decode(c.input);
    assert.deepEqual(run([text]), want, 'string, whole');
    assert.deepEqual(run([...text.split('')]), want, 'string, one unit at a time');
  });
}

test('parser: lastEventId option starts the id; reset() keeps it and strips a BOM again', () => {
  const events = [];
  const p = createParser({ lastEventId: 'L0', onEvent: (e) => events.push(e) });
  assert.equal(p.lastEventId, 'L0');
  p.feed(bytes('data: a\n\nid: 5\ndata: b\n\nid: 6\ndata: partial'));
  assert.equal(p.lastEventId, '5');
  p.reset(); // new connection: the partial event and its id are gone
  p.feed(bytes([0xef, 0xbb]));
  p.feed(bytes([0xbf], 'data: c\n\n'));
  assert.deepEqual(
    events.map((e) => [e.data, e.lastEventId]),
    [
      ['a', 'L0'],
      ['b', '5'],
      ['c', '5'],
    ],
  );
});

test('parser: reset() forgets a CR that ended the previous connection', () => {
  const events = [];
  const p = createParser({ onEvent: (e) => events.push(e.data) });
  p.feed(bytes('data: a\r'));
  p.reset();
  // The LF starts a new stream: it is a blank line there, which dispatches nothing.
  p.feed(bytes('\ndata: b\n\n'));
  assert.deepEqual(events, ['b']);
});

test('parser: a throwing callback leaves the rest of the chunk for the next feed', () => {
  const seen = [];
  let throwOnce = true;
  const p = createParser({
    onEvent(e) {
      seen.push(e.data);
      if (throwOnce) {
        throwOnce = false;
        throw new Error('boom');
      }
    },
  });
  assert.throws(() => p.feed(bytes('data: 1\n\ndata: 2\n\ndata: 3\n')), /boom/);
  assert.deepEqual(seen, ['1']);
  p.feed(bytes('\n'));
  assert.deepEqual(seen, ['1', '2', '3']);
});

test('parser: ArrayBuffer input and empty chunks', () => {
  const events = [];
  const p = createParser({ onEvent: (e) => events.push(e.data) });
  p.feed(new Uint8Array(0));
  p.feed(bytes('data: x\n').buffer);
  p.feed('');
  p.feed(bytes('\n'));
  assert.deepEqual(events, ['x']);
});

test('parser: a 1 MiB data line fed in 4 KiB pieces is linear and exact', () => {
  const big = 'x'.repeat(1 << 20);
  const input = bytes(`data: ${big}\r\ndata: end\r\n\r\n`);
  const events = [];
  const p = createParser({ onEvent: (e) => events.push(e.data) });
  // CPU time of this process, not wall time: other work on the machine does not count
  const t0 = process.cpuUsage();
  for (let i = 0; i < input.length; i += 4096) p.feed(input.subarray(i, i + 4096));
  const used = process.cpuUsage(t0);
  const ms = (used.user + used.system) / 1000;
  assert.equal(events.length, 1);
  assert.equal(events[0], `${big}\nend`);
  assert.ok(ms < 2000, `took ${ms} ms of CPU`);
});

test('parser: 100,000 small events one chunk each and in one chunk', () => {
  let text = '';
  for (let i = 0; i < 100000; i++) text += `id: ${i}\ndata: ${i}\n\n`;
  const input = bytes(text);
  const got = [];
  const p = createParser({ onEvent: (e) => got.push(e) });
  p.feed(input);
  assert.equal(got.length, 100000);
  assert.equal(got[99999].data, '99999');
  assert.equal(got[99999].lastEventId, '99999');
});

// The spec's algorithm, applied to the whole input at once: decode (BOM stripped once, U+FFFD
// for bad bytes), split into lines at CRLF | LF | CR, drop the text after the last line end,
// interpret line by line.
function reference(input) {
  const text = new TextDecoder('utf-8').decode(input);
  const lines = text.split(/\r\n|\r|\n/);
  lines.pop(); // the unterminated rest (or '' after a final line end)
  const out = { events: [], retries: [], comments: [], lastEventId: '' };
  let data = '';
  let type = '';
  let idBuffer = '';
  for (const line of lines) {
    if (line === '') {
      out.lastEventId = idBuffer;
      if (data !== '') {
        out.events.push({ type: type || 'message', data: data.endsWith('\n') ? data.slice(0, -1) : data, lastEventId: idBuffer });
      }
      data = '';
      type = '';
      continue;
    }
    if (line.startsWith(':')) {
      out.comments.push(line.slice(1));
      continue;
    }
    const i = line.indexOf(':');
    const name = i < 0 ? line : line.slice(0, i);
    let value = i < 0 ? '' : line.slice(i + 1);
    if (value.startsWith(' ')) value = value.slice(1);
    if (name === 'event') type = value;
    else if (name === 'data') data += value + '\n';
    else if (name === 'id' && !value.includes('\0')) idBuffer = value;
    else if (name === 'retry' && /^[0-9]+$/.test(value) && Number.isSafeInteger(Number(value))) out.retries.push(Number(value));
  }
  return out;
}

test('parser: 2,000 random streams equal the whole-input reference, in random pieces', () => {
  const r = rng(20240611);
  const pieces = [
    'data', 'data:', 'data: ', 'id', 'id: ', 'event', 'event: ', 'retry: ', 'retry:', ':', ': c', 'x', 'é', '😀',
    ' ', '12', '0', '\0', 'foo', '\n', '\n', '\r', '\r\n', '\r', '\n\n', '\r\n\r\n',
  ];
  const rawBytes = [[0xff], [0xef, 0xbb, 0xbf], [0xf0, 0x9f], [0xc3]];
  for (let s = 0; s < 2000; s++) {
    const parts = [];
    if (r() < 0.2) parts.push([0xef, 0xbb, 0xbf]);
    const n = 1 + Math.floor(r() * 40);
    for (let k = 0; k < n; k++) parts.push(r() < 0.05 ? rawBytes[Math.floor(r() * rawBytes.length)] : pieces[Math.floor(r() * pieces.length)]);
    const input = bytes(...parts);
    const want = reference(input);
    const chunks = [];
    for (let i = 0; i < input.length; ) {
      const len = Math.floor(r() * 6); // empty chunks too
      chunks.push(input.slice(i, i + len));
      i += len;
    }
    assert.deepEqual(run(chunks), want, `stream #${s}: ${JSON.stringify(new TextDecoder().decode(input))}`);
    assert.deepEqual(run([input]), want, `stream #${s} whole`);
  }
});

// The parser's work on one long line fed in small pieces must grow with the line, not with
// its square (issue 18: the partial line was one string, appended to and searched again on
// every feed). Work is counted, not timed: the length of every string the parser searches,
// slices or joins while it runs (String indexOf / slice, Array join) — appending to a long
// string and searching it again counts that string's whole length each time.
test('parser: a 4 MB data line in 1..64-byte pieces costs work linear in its length', () => {
  const MB4 = 4 * 1024 * 1024;
  const input = enc.encode(`data: ${'x'.repeat(MB4)}\n\n`);
  const r = rng(18);
  const chunks = [];
  for (let i = 0; i < input.length; ) {
    const len = 1 + Math.floor(r() * 64);
    chunks.push(input.subarray(i, i + len));
    i += len;
  }
  const events = [];
  const parser = createParser({ onEvent: (e) => events.push(e) });
  let work = 0;
  const saved = { indexOf: String.prototype.indexOf, slice: String.prototype.slice, join: Array.prototype.join };
  /* eslint-disable no-extend-native */
  String.prototype.indexOf = function (...a) {
    work += this.length;
    return saved.indexOf.apply(this, a);
  };
  String.prototype.slice = function (...a) {
    work += this.length;
    return saved.slice.apply(this, a);
  };
  Array.prototype.join = function (...a) {
    const out = saved.join.apply(this, a);
    work += out.length;
    return out;
  };
  try {
    for (const c of chunks) parser.feed(c);
  } finally {
    String.prototype.indexOf = saved.indexOf;
    String.prototype.slice = saved.slice;
    Array.prototype.join = saved.join;
  }
  /* eslint-enable no-extend-native */
  assert.equal(events.length, 1);
  assert.equal(events[0].data.length, MB4);
  // about 7 × the input: each piece searched for CR and for LF, then the whole line joined,
  // searched for its colon, its value sliced, the data sliced at dispatch. Bound: 16 ×. (The
  // quadratic parser measured 8,200 × for a 256 KiB line in 32-byte pieces.)
  assert.ok(work <= 16 * input.length, `work ${work} for ${input.length} bytes in ${chunks.length} pieces`);
});
