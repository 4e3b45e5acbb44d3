/*
 * app.js — the telex chat page (served by `telex serve` at /).
 *
 * A conversation of several turns with the gateway's models (GET /v1/models; "Other…" in the
 * menu takes any name, for a gateway whose catch-all serves models it cannot list) and presets
 * (GET /v1/presets, when the gateway has them), answers streamed token by token through
 * telex.js with a cursor, a Stop button that aborts the request and cancels the stream on the
 * server, token counts and cost under each answer, and an API-key field (kept in localStorage)
 * once the gateway asks for a key. The conversation is kept in sessionStorage with the id of
 * the stream being answered, so a reload reattaches to the answer and replays it exactly.
 *
 * Model output is never parsed as HTML: the small Markdown renderer below builds DOM nodes
 * and puts all text in with textContent / text nodes; links are only http(s) and mailto.
 */
import { TelexConnectionError, TelexHTTPError, TelexStreamError, streamChat } from './telex.js';

const $ = (sel) => document.querySelector(sel);
const els = {
  model: $('#model'),
  modelName: $('#model-name'),
  modelIds: $('#model-ids'),
  presetField: $('#preset-field'),
  preset: $('#preset'),
  presetVars: $('#preset-vars'),
  keyToggle: $('#key-toggle'),
  keyPanel: $('#key-panel'),
  keyForm: $('#key-form'),
  keyInput: $('#api-key'),
  keyClear: $('#key-clear'),
  newChat: $('#new-chat'),
  chat: $('#chat'),
  empty: $('#empty'),
  messages: $('#messages'),
  composer: $('#composer'),
  prompt: $('#prompt'),
  send: $('#send'),
  stop: $('#stop'),
  status: $('#status'),
};

const KEY_STORE = 'telex.apiKey';
const MODEL_STORE = 'telex.model';
const MODEL_NAME_STORE = 'telex.modelName';
const PRESET_STORE = 'telex.preset';
const PRESET_VARS_STORE = 'telex.presetVariables';
const SESSION_STORE = 'telex.conversation';

/* --------------------------------------------------------------- storage */

function load(storage, key) {
  try {
    return storage.getItem(key);
  } catch {
    return null;
  }
}
function save(storage, key, value) {
  try {
    if (value === null || value === undefined || value === '') storage.removeItem(key);
    else storage.setItem(key, value);
  } catch {
    /* storage full or disabled: the page still works, it just forgets */
  }
}

const apiKey = () => load(localStorage, KEY_STORE) || '';

/*
 * turns: [{ role: 'user'|'assistant', content, status: 'done'|'streaming'|'stopped'|'error',
 *           meta?, error?: {title, detail}, model?, streamId?, resumeUrl?,
 *           startedAt? (Date.now() when the question was sent: kept across a reload, so the
 *           footer shows the answer's whole time), resumes? (resumes so far, reloads included) }]
 */
const state = {
  turns: [],
  active: null, // { turn, chat, li }
};

function saveSession() {
  save(sessionStorage, SESSION_STORE, JSON.stringify({ turns: state.turns }));
}

function loadSession() {
  try {
    const s = JSON.parse(load(sessionStorage, SESSION_STORE) || 'null');
    if (s && Array.isArray(s.turns)) return s.turns.filter((t) => t && (t.role === 'user' || t.role === 'assistant'));
  } catch {
    /* a damaged session starts over */
  }
  return [];
}

let saveTimer = 0;
function saveSessionSoon() {
  if (saveTimer) return;
  saveTimer = setTimeout(() => {
    saveTimer = 0;
    saveSession();
  }, 500);
}

/* ---------------------------------------------------------------- status */

function setStatus(text, kind = '') {
  els.status.textContent = text;
  els.status.dataset.kind = kind;
}

/* ---------------------------------------------------- markdown rendering */

const SAFE_PROTOCOLS = new Set(['http:', 'https:', 'mailto:']);

function safeUrl(href) {
  try {
    const url = new URL(href, location.href);
    return SAFE_PROTOCOLS.has(url.protocol) ? url.href : null;
  } catch {
    return null;
  }
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function link(text, href) {
  const url = safeUrl(href);
  if (!url) return null;
  const a = el('a');
  a.href = url;
  a.target = '_blank';
  a.rel = 'noopener noreferrer nofollow';
  inline(text, a);
  return a;
}

const ESCAPABLE = /[\\`*_{}[\]()#+\-.!~|>]/;
const WORD = /[\p{L}\p{N}]/u;

// Finds the closing delimiter `d` for an emphasis run opened at `from` (not across a newline pair).
function findClose(text, d, from) {
  let i = from;
  for (;;) {
    i = text.indexOf(d, i);
    if (i === -1) return -1;
    if (text[i - 1] === '\\') {
      i += d.length;
      continue;
    }
    if (i > from && !/\s/.test(text[i - 1])) return i;
    i += 1;
  }
}

// Renders inline Markdown (code spans, **strong**, *em*, ~~del~~, [links](url), bare URLs,
// hard line breaks) into parent, as text nodes and elements only.
function inline(text, parent) {
  let buf = '';
  const flush = () => {
    if (buf) parent.append(document.createTextNode(buf));
    buf = '';
  };
  let i = 0;
  while (i < text.length) {
    const c = text[i];
    if (c === '\\' && i + 1 < text.length && ESCAPABLE.test(text[i + 1])) {
      buf += text[i + 1];
      i += 2;
      continue;
    }
    if (c === '\n') {
      flush();
      parent.append(el('br'));
      i++;
      continue;
    }
    if (c === '`') {
      let n = 1;
      while (text[i + n] === '`') n++;
      const fence = '`'.repeat(n);
      const end = text.indexOf(fence, i + n);
      if (end !== -1) {
        flush();
        let code = text.slice(i + n, end).replace(/\n/g, ' ');
        if (code.length > 2 && code.startsWith(' ') && code.endsWith(' ')) code = code.slice(1, -1);
        parent.append(el('code', '', code));
        i = end + n;
        continue;
      }
      buf += fence;
      i += n;
      continue;
    }
    if ((c === '*' || c === '_' || c === '~') && text[i + 1] !== ' ' && text[i + 1] !== undefined) {
      const double = text[i + 1] === c;
      if (c === '~' && !double) {
        buf += c;
        i++;
        continue;
      }
      // '_' inside a word (snake_case) is not emphasis.
      if (c === '_' && i > 0 && WORD.test(text[i - 1])) {
        buf += c;
        i++;
        continue;
      }
      const d = double ? c + c : c;
      const start = i + d.length;
      if (text[start] !== ' ' && text[start] !== undefined && text[start] !== c) {
        const end = findClose(text, d, start);
        const after = text[end + d.length];
        if (end > start && !(c === '_' && after !== undefined && WORD.test(after))) {
          flush();
          const tag = c === '~' ? 'del' : double ? 'strong' : 'em';
          const node = el(tag);
          inline(text.slice(start, end), node);
          parent.append(node);
          i = end + d.length;
          continue;
        }
      }
      buf += d;
      i += d.length;
      continue;
    }
    if (c === '[' || (c === '!' && text[i + 1] === '[')) {
      const open = c === '!' ? i + 1 : i;
      const m = /^\[([^\]\n]{1,500})\]\(\s*<?([^)\s>]{1,2000})>?(?:\s+"[^"\n]*")?\s*\)/.exec(text.slice(open));
      if (m) {
        // Images are shown as links: a chat answer should not make the browser fetch anything.
        const a = link(c === '!' ? `🖼 ${m[1]}` : m[1], m[2]);
        if (a) {
          flush();
          parent.append(a);
          i = open + m[0].length;
          continue;
        }
      }
    }
    if ((c === 'h' || c === 'H') && (i === 0 || /[\s(<]/.test(text[i - 1]))) {
      const m = /^https?:\/\/[^\s<>"]+/i.exec(text.slice(i, i + 2100));
      if (m) {
        let url = m[0];
        while (/[.,;:!?)\]'*_]$/.test(url)) url = url.slice(0, -1);
        const a = link(url, url);
        if (a) {
          flush();
          parent.append(a);
          i += url.length;
          continue;
        }
      }
    }
    buf += c;
    i++;
  }
  flush();
}

const FENCE = /^ {0,3}(`{3,}|~{3,})\s*([^`\s]*)[^`]*$/;
const HEADING = /^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$/;
const HR = /^ {0,3}([-*_])(?:[ \t]*\1){2,}[ \t]*$/;
const BULLET = /^( {0,3})([-*+])[ \t]+(.*)$/;
const ORDERED = /^( {0,3})(\d{1,9})([.)])[ \t]+(.*)$/;
const QUOTE = /^ {0,3}> ?(.*)$/;
const TABLE_RULE = /^ {0,3}\|?(?:\s*:?-{3,}:?\s*\|)+\s*(?::?-{3,}:?\s*)?\|?\s*$|^ {0,3}\|?\s*:?-{3,}:?\s*(?:\|\s*:?-{3,}:?\s*)+\|?\s*$/;

const startsBlock = (line) =>
  FENCE.test(line) || HEADING.test(line) || HR.test(line) || BULLET.test(line) || ORDERED.test(line) || QUOTE.test(line);

function splitRow(line) {
  let s = line.trim();
  if (s.startsWith('|')) s = s.slice(1);
  if (s.endsWith('|') && !s.endsWith('\\|')) s = s.slice(0, -1);
  const cells = [];
  let cur = '';
  for (let i = 0; i < s.length; i++) {
    if (s[i] === '\\' && s[i + 1] === '|') {
      cur += '|';
      i++;
    } else if (s[i] === '|') {
      cells.push(cur.trim());
      cur = '';
    } else cur += s[i];
  }
  cells.push(cur.trim());
  return cells;
}

function codeBlock(code, lang) {
  const wrap = el('div', 'code');
  const head = el('div', 'code-head');
  head.append(el('span', 'code-lang', lang || 'text'));
  const copy = el('button', 'copy', 'Copy');
  copy.type = 'button';
  copy.addEventListener('click', async () => {
    try {
      await navigator.clipboard.writeText(code);
      copy.textContent = 'Copied';
    } catch {
      copy.textContent = 'Select and copy';
    }
    setTimeout(() => (copy.textContent = 'Copy'), 1500);
  });
  head.append(copy);
  const pre = el('pre');
  const c = el('code', '', code);
  if (lang) c.dataset.lang = lang;
  pre.append(c);
  wrap.append(head, pre);
  return wrap;
}

// Renders Markdown source into a DocumentFragment: fenced code (kept byte for byte), headings,
// paragraphs, lists (nested by indentation), block quotes, tables, rules.
function blocks(src, depth = 0) {
  const frag = document.createDocumentFragment();
  const lines = src.replace(/\r\n?/g, '\n').split('\n');
  let i = 0;
  while (i < lines.length) {
    const line = lines[i];
    if (/^\s*$/.test(line)) {
      i++;
      continue;
    }
    const fence = FENCE.exec(line);
    if (fence) {
      const marker = fence[1];
      const indent = line.length - line.trimStart().length;
      const body = [];
      i++;
      while (i < lines.length) {
        const l = lines[i];
        const close = l.trim();
        if (close.startsWith(marker[0].repeat(marker.length)) && /^(`+|~+)$/.test(close) && close[0] === marker[0]) {
          i++;
          break;
        }
        body.push(indent ? l.replace(new RegExp(`^ {0,${indent}}`), '') : l);
        i++;
      }
      frag.append(codeBlock(body.join('\n'), fence[2]));
      continue;
    }
    const heading = HEADING.exec(line);
    if (heading) {
      const h = el(`h${Math.min(6, heading[1].length + 1)}`);
      inline(heading[2] || '', h);
      frag.append(h);
      i++;
      continue;
    }
    if (HR.test(line)) {
      frag.append(el('hr'));
      i++;
      continue;
    }
    if (QUOTE.test(line)) {
      const body = [];
      while (i < lines.length && QUOTE.test(lines[i])) body.push(QUOTE.exec(lines[i++])[1]);
      const q = el('blockquote');
      q.append(depth < 8 ? blocks(body.join('\n'), depth + 1) : document.createTextNode(body.join('\n')));
      frag.append(q);
      continue;
    }
    const bullet = BULLET.exec(line);
    const ordered = !bullet && ORDERED.exec(line);
    if (bullet || ordered) {
      const list = el(bullet ? 'ul' : 'ol');
      if (ordered && ordered[2] !== '1') list.start = Number(ordered[2]);
      const same = bullet ? BULLET : ORDERED;
      while (i < lines.length) {
        const m = same.exec(lines[i]);
        if (!m) break;
        const text = [bullet ? m[3] : m[4]];
        const contIndent = m[1].length + 2;
        i++;
        // Continuation: indented lines (nested lists, wrapped text), blank lines inside the item.
        while (i < lines.length) {
          const l = lines[i];
          if (/^\s*$/.test(l)) {
            const next = lines[i + 1];
            if (next !== undefined && next.length - next.trimStart().length >= contIndent) {
              text.push('');
              i++;
              continue;
            }
            break;
          }
          const indent = l.length - l.trimStart().length;
          if (indent >= contIndent) text.push(l.slice(Math.min(indent, contIndent + 2)));
          else if (!startsBlock(l) && !same.test(l)) text.push(l.trimStart());
          else break;
          i++;
        }
        const li = el('li');
        const nested = text.slice(1).some((t) => startsBlock(t) || /^\s*$/.test(t));
        if (nested && depth < 8) li.append(blocks(text.join('\n'), depth + 1));
        else inline(text.join('\n'), li);
        list.append(li);
        while (i < lines.length && /^\s*$/.test(lines[i]) && lines[i + 1] !== undefined && same.test(lines[i + 1])) i++;
      }
      frag.append(list);
      continue;
    }
    if (line.includes('|') && i + 1 < lines.length && TABLE_RULE.test(lines[i + 1])) {
      const head = splitRow(line);
      const align = splitRow(lines[i + 1]).map((c) => (c.startsWith(':') && c.endsWith(':') ? 'center' : c.endsWith(':') ? 'right' : ''));
      const wrap = el('div', 'table');
      const table = el('table');
      const thead = el('thead');
      const tr = el('tr');
      head.forEach((cell, k) => {
        const th = el('th');
        if (align[k]) th.className = `align-${align[k]}`;
        inline(cell, th);
        tr.append(th);
      });
      thead.append(tr);
      table.append(thead);
      const tbody = el('tbody');
      i += 2;
      while (i < lines.length && lines[i].includes('|') && !/^\s*$/.test(lines[i])) {
        const row = el('tr');
        splitRow(lines[i]).forEach((cell, k) => {
          if (k >= head.length) return;
          const td = el('td');
          if (align[k]) td.className = `align-${align[k]}`;
          inline(cell, td);
          row.append(td);
        });
        tbody.append(row);
        i++;
      }
      table.append(tbody);
      wrap.append(table);
      frag.append(wrap);
      continue;
    }
    const para = [line];
    i++;
    while (i < lines.length && !/^\s*$/.test(lines[i]) && !startsBlock(lines[i])) para.push(lines[i++]);
    const p = el('p');
    inline(para.join('\n'), p);
    frag.append(p);
  }
  return frag;
}

// Where the typing cursor goes: the innermost last block that holds text.
function cursorHost(container) {
  let host = container;
  for (;;) {
    const last = host.lastElementChild;
    if (!last || !['UL', 'OL', 'LI', 'BLOCKQUOTE', 'DIV', 'PRE', 'TABLE', 'TBODY', 'THEAD', 'TR', 'P', 'H2', 'H3', 'H4', 'H5', 'H6', 'TD', 'TH', 'CODE'].includes(last.tagName)) return host;
    if (last.classList.contains('code-head')) return host;
    if (last.tagName === 'DIV' && last.classList.contains('code')) {
      host = last.querySelector('pre > code');
      return host;
    }
    host = last;
  }
}

function renderAnswer(container, text, streaming) {
  container.replaceChildren(blocks(text));
  if (streaming) {
    const cursor = el('span', 'cursor');
    cursor.setAttribute('aria-hidden', 'true');
    cursorHost(container).append(cursor);
  }
}

/* ------------------------------------------------------------- messages */

function formatCost(usd) {
  if (typeof usd !== 'number' || !Number.isFinite(usd)) return '';
  if (usd === 0) return '$0';
  if (usd >= 1) return `$${usd.toFixed(2)}`;
  // Three significant digits, without trailing zeros: $0.00042, $0.0000123, $0.05.
  const digits = Math.min(10, Math.ceil(-Math.log10(usd)) + 2);
  let text = usd.toFixed(digits).replace(/0+$/, '');
  while (text.length - text.indexOf('.') - 1 < 2) text += '0';
  return `$${text}`;
}

function metaText(turn) {
  const m = turn.meta || {};
  const parts = [];
  if (turn.preset) parts.push(`preset ${turn.preset}`);
  if (m.model) parts.push(m.model);
  if (m.usage) {
    const u = m.usage;
    if (typeof u.prompt_tokens === 'number' && typeof u.completion_tokens === 'number') {
      parts.push(`${u.prompt_tokens.toLocaleString('en-US')} prompt + ${u.completion_tokens.toLocaleString('en-US')} completion tokens`);
    } else if (typeof u.total_tokens === 'number') parts.push(`${u.total_tokens.toLocaleString('en-US')} tokens`);
    if (u.cost_usd !== undefined) parts.push(formatCost(u.cost_usd));
  }
  if (typeof m.seconds === 'number') parts.push(`${m.seconds.toFixed(1)} s`);
  if (turn.status === 'stopped') parts.push('stopped');
  if (m.finishReason === 'length') parts.push('cut at max tokens');
  if (m.resumes) parts.push(`resumed ${m.resumes}×`);
  return parts.join(' · ');
}

function turnElement(turn, index) {
  const li = el('li', `msg ${turn.role}`);
  li.dataset.index = String(index);
  if (turn.role === 'user') {
    li.append(el('div', 'bubble', turn.content));
    return li;
  }
  const avatar = el('div', 'avatar', 't');
  avatar.setAttribute('aria-hidden', 'true');
  const body = el('div', 'body');
  const content = el('div', 'content markdown');
  const meta = el('div', 'meta');
  const error = el('div', 'error');
  error.setAttribute('role', 'alert');
  body.append(content, error, meta);
  li.append(avatar, body);
  updateTurn(li, turn);
  return li;
}

function updateTurn(li, turn) {
  li.dataset.state = turn.status;
  const streaming = turn.status === 'streaming';
  li.setAttribute('aria-busy', streaming ? 'true' : 'false');
  renderAnswer(li.querySelector('.content'), turn.content, streaming);
  const error = li.querySelector('.error');
  error.replaceChildren();
  error.hidden = !turn.error;
  if (turn.error) {
    error.append(el('strong', '', turn.error.title));
    if (turn.error.detail) error.append(el('span', 'detail', turn.error.detail));
    if (turn.error.retry) {
      const b = el('button', 'retry', 'Try again');
      b.type = 'button';
      b.addEventListener('click', () => retry(turn));
      error.append(b);
    }
  }
  const meta = li.querySelector('.meta');
  meta.textContent = streaming || turn.status === 'error' ? '' : metaText(turn);
  meta.hidden = streaming || meta.textContent === '';
}

function renderAll() {
  els.messages.replaceChildren(...state.turns.map((t, i) => turnElement(t, i)));
  els.empty.hidden = state.turns.length > 0;
}

function nearBottom() {
  const c = els.chat;
  return c.scrollHeight - c.scrollTop - c.clientHeight < 120;
}
function scrollToBottom() {
  els.chat.scrollTop = els.chat.scrollHeight;
}

/* -------------------------------------------------------------- errors */

function describe(err) {
  if (err instanceof TelexHTTPError) {
    const detail = err.message;
    switch (err.status) {
      case 401:
        return apiKey()
          ? { title: 'The gateway did not accept this API key. Check it above and try again.', detail, key: true, retry: true }
          : { title: 'This gateway needs an API key. Enter it above and try again.', detail, key: true, retry: true };
      case 402:
        return { title: 'The budget of this API key is used up.', detail };
      case 403:
        return { title: 'This API key may not use this model.', detail };
      case 404:
        return { title: err.code === 'model_not_found' ? 'This gateway does not have that model.' : 'The gateway does not know this address.', detail };
      case 413:
        return { title: 'The conversation is too long for this gateway. Start a new chat.', detail };
      case 429: {
        const wait = err.retryAfter ? ` Try again in ${err.retryAfter} second${err.retryAfter === 1 ? '' : 's'}.` : ' Try again in a moment.';
        return { title: `Too many requests right now.${wait}`, detail, retry: true };
      }
      case 502:
      case 503:
      case 504:
        return { title: 'The model provider could not answer right now. Try again in a moment.', detail, retry: true };
      default:
        return { title: `The gateway refused the request (HTTP ${err.status}).`, detail, retry: err.status >= 500 };
    }
  }
  if (err instanceof TelexStreamError) {
    if (err.code === 'cancelled') return { title: 'The answer was cancelled.', detail: err.message };
    return { title: 'The answer broke off before it was complete.', detail: err.message, retry: true };
  }
  if (err instanceof TelexConnectionError) {
    return { title: 'The connection to the gateway was lost.', detail: err.message, retry: true };
  }
  return { title: 'Could not reach the gateway.', detail: err && err.message ? err.message : String(err), retry: true };
}

/* ------------------------------------------------------------ streaming */

function setBusy(busy) {
  els.send.hidden = busy;
  els.stop.hidden = !busy;
  els.composer.classList.toggle('busy', busy);
  els.chat.setAttribute('aria-busy', busy ? 'true' : 'false');
}

function requestMessages(uptoIndex) {
  const out = [];
  for (let i = 0; i < uptoIndex; i++) {
    const t = state.turns[i];
    if (t.role === 'user') out.push({ role: 'user', content: t.content });
    else if (t.content) out.push({ role: 'assistant', content: t.content });
  }
  return out;
}

// Streams `chat` into the assistant turn `turn`, whose element is li.
async function consume(turn, chat, li) {
  state.active = { turn, chat, li };
  setBusy(true);
  // Wall-clock time, not performance.now(): after a reload the answer started on another page.
  if (typeof turn.startedAt !== 'number') turn.startedAt = Date.now();
  const started = turn.startedAt;
  const resumedBefore = turn.resumes || 0;
  let pending = 0;
  const flush = () => {
    cancelAnimationFrame(pending);
    pending = 0;
    const stick = nearBottom();
    updateTurn(li, turn);
    if (stick) scrollToBottom();
  };
  const schedule = () => {
    if (!pending) pending = requestAnimationFrame(flush);
  };
  turn.content = '';
  turn.status = 'streaming';
  turn.error = null;
  updateTurn(li, turn);
  scrollToBottom();
  try {
    for await (const delta of chat) {
      turn.content += delta;
      turn.resumes = resumedBefore + chat.resumes;
      schedule();
      saveSessionSoon();
    }
    const done = await chat.done;
    turn.status = 'done';
    turn.meta = { model: done.model || turn.model, usage: done.usage, finishReason: done.finishReason, seconds: (Date.now() - started) / 1000, resumes: resumedBefore + done.resumes };
    setStatus('');
  } catch (err) {
    if (err && err.name === 'AbortError') {
      turn.status = 'stopped';
      turn.meta = { model: turn.model, seconds: (Date.now() - started) / 1000 };
    } else {
      turn.status = 'error';
      turn.error = describe(err);
      turn.meta = { model: turn.model };
      if (turn.error.key) showKeyPanel(true);
    }
  } finally {
    turn.streamId = undefined;
    turn.resumeUrl = undefined;
    turn.startedAt = undefined;
    turn.resumes = undefined;
    state.active = null;
    cancelAnimationFrame(pending);
    updateTurn(li, turn);
    setBusy(false);
    saveSession();
    if (nearBottom()) scrollToBottom();
  }
}

function startAnswer(turn, li) {
  const index = state.turns.indexOf(turn);
  const preset = els.preset.value;
  const model = preset ? `preset:${preset}` : chosenModel();
  turn.model = preset ? '' : model;
  turn.preset = preset || undefined;
  const body = { model, messages: requestMessages(index) };
  if (preset) {
    const variables = presetVariables();
    if (Object.keys(variables).length > 0) body.variables = variables;
  }
  const chat = streamChat({
    apiKey: apiKey(),
    body,
    onStreamId(streamId, resumeUrl) {
      turn.streamId = streamId;
      turn.resumeUrl = resumeUrl || undefined;
      saveSession();
    },
  });
  return consume(turn, chat, li);
}

function send() {
  const text = els.prompt.value.trim();
  if (!text || state.active) return;
  if (!chosenModel() && !els.preset.value) {
    setStatus(els.model.value === OTHER ? 'Type the name of a model to ask.' : 'No model to ask: the gateway listed none.', 'error');
    if (!els.modelName.hidden) els.modelName.focus();
    return;
  }
  els.prompt.value = '';
  autosize();
  const user = { role: 'user', content: text, status: 'done' };
  const answer = { role: 'assistant', content: '', status: 'streaming' };
  state.turns.push(user, answer);
  els.empty.hidden = true;
  els.messages.append(turnElement(user, state.turns.length - 2));
  const li = turnElement(answer, state.turns.length - 1);
  els.messages.append(li);
  saveSession();
  startAnswer(answer, li);
}

function retry(turn) {
  if (state.active) return;
  const index = state.turns.indexOf(turn);
  const li = els.messages.querySelector(`li[data-index="${index}"]`);
  if (index < 0 || !li) return;
  startAnswer(turn, li);
}

function stop() {
  const active = state.active;
  if (!active) return;
  active.chat.cancel(); // aborts the request and DELETEs the stream when the gateway named one
}

// After a reload: reattach to the answer that was streaming, by its stream id.
function reattach() {
  const index = state.turns.length - 1;
  const turn = state.turns[index];
  if (!turn || turn.role !== 'assistant' || turn.status !== 'streaming') return;
  const li = els.messages.querySelector(`li[data-index="${index}"]`);
  if (!turn.streamId && !turn.resumeUrl) {
    turn.status = 'error';
    turn.error = { title: 'The page was reloaded while this answer was streaming, and this gateway cannot resume it.', retry: true };
    updateTurn(li, turn);
    saveSession();
    return;
  }
  turn.resumes = (turn.resumes || 0) + 1; // the reload is a resume too; startedAt stays the question's
  const chat = streamChat({ apiKey: apiKey(), streamId: turn.streamId, resumeUrl: turn.resumeUrl });
  consume(turn, chat, li); // replays from the first event: the exact answer, nothing twice
}

/* -------------------------------------------------------- models, presets */

async function getJSON(path) {
  const headers = {};
  const key = apiKey();
  if (key) headers.authorization = `Bearer ${key}`;
  const res = await fetch(path, { headers });
  if (!res.ok) {
    const err = new Error(`HTTP ${res.status}`);
    err.status = res.status;
    throw err;
  }
  return res.json();
}

// The menu: the gateway's models, then "Other…", which shows a field for any model name (with
// the listed ones as suggestions). The choice and the typed name are kept in localStorage.
const OTHER = '\u2026other';

function chosenModel() {
  return els.model.value === OTHER ? els.modelName.value.trim() : els.model.value;
}

function modelChanged() {
  els.modelName.hidden = els.model.value !== OTHER || els.model.options.length === 0;
  els.modelName.disabled = els.model.disabled;
}

async function loadModels() {
  let ids = [];
  try {
    const list = await getJSON('/v1/models');
    ids = (Array.isArray(list.data) ? list.data : []).map((m) => m && m.id).filter((id) => typeof id === 'string');
    if (ids.length === 0) setStatus('The gateway lists no models: choose Other… and type the name of one.');
    else if (els.status.dataset.kind === 'error') setStatus('');
  } catch (err) {
    if (err.status === 401) {
      showKeyPanel(true);
      setStatus('This gateway needs an API key to list its models.', 'error');
      return;
    }
    setStatus('Could not load the list of models from the gateway: choose Other… and type a model name.', 'error');
  }
  const other = el('option', '', 'Other…');
  other.value = OTHER;
  els.model.replaceChildren(...ids.map((id) => el('option', '', id)), other);
  for (const o of els.model.options) if (o !== other) o.value = o.textContent;
  els.modelIds.replaceChildren(...ids.map((id) => Object.assign(el('option'), { value: id })));
  const saved = load(localStorage, MODEL_STORE);
  if (!els.modelName.value) els.modelName.value = load(localStorage, MODEL_NAME_STORE) || '';
  if (saved && (ids.includes(saved) || saved === OTHER)) els.model.value = saved;
  else if (ids.length === 0) els.model.value = OTHER;
  els.model.disabled = Boolean(els.preset.value);
  modelChanged();
}

// name -> { name, model, description, variables: [names], defaults: {name: value} }
const presets = new Map();

async function loadPresets() {
  presets.clear();
  try {
    const list = await getJSON('/v1/presets');
    const items = Array.isArray(list) ? list : Array.isArray(list.data) ? list.data : [];
    for (const p of items) {
      const name = typeof p === 'string' ? p : p && (p.id || p.name);
      if (typeof name !== 'string' || !name) continue;
      presets.set(name, {
        name,
        model: typeof p.model === 'string' ? p.model : '',
        description: typeof p.description === 'string' ? p.description : '',
        variables: Array.isArray(p.variables) ? p.variables.filter((v) => typeof v === 'string') : [],
        defaults: p.defaults && typeof p.defaults === 'object' ? p.defaults : {},
      });
    }
  } catch {
    /* 404: this gateway has no presets (yet); the picker stays hidden */
  }
  els.presetField.hidden = presets.size === 0;
  const none = el('option', '', 'None');
  none.value = '';
  els.preset.replaceChildren(
    none,
    ...[...presets.values()].map((p) => {
      const o = el('option', '', p.name);
      o.value = p.name;
      if (p.description) o.title = p.description;
      return o;
    }),
  );
  const saved = load(localStorage, PRESET_STORE);
  if (saved && presets.has(saved)) els.preset.value = saved;
  presetChanged();
}

// The chosen preset decides the model; its variables other than {{content}} (the message
// itself) get a field each, prefilled from what was typed last time.
function presetChanged() {
  const p = presets.get(els.preset.value);
  els.model.disabled = Boolean(p) || els.model.options.length === 0;
  modelChanged();
  els.preset.title = p ? p.description || `model ${p.model}` : '';
  const names = p ? p.variables.filter((v) => v !== 'content') : [];
  let saved = {};
  try {
    saved = JSON.parse(load(localStorage, PRESET_VARS_STORE) || '{}')[p ? p.name : ''] || {};
  } catch {
    /* ignore */
  }
  els.presetVars.replaceChildren(
    ...names.map((name) => {
      const label = el('label', 'var');
      const input = el('input');
      input.dataset.var = name;
      input.value = typeof saved[name] === 'string' ? saved[name] : '';
      const def = p.defaults[name];
      input.placeholder = def !== undefined && def !== null ? String(def) : 'required';
      input.autocomplete = 'off';
      input.addEventListener('input', savePresetVariables);
      label.append(el('span', '', name), input);
      return label;
    }),
  );
  if (p && p.description) els.presetVars.prepend(el('span', 'preset-about', p.description));
  els.presetVars.hidden = !p || (names.length === 0 && !p.description);
}

function presetVariables() {
  const out = {};
  for (const input of els.presetVars.querySelectorAll('input[data-var]')) {
    if (input.value !== '') out[input.dataset.var] = input.value;
  }
  return out;
}

function savePresetVariables() {
  let all = {};
  try {
    all = JSON.parse(load(localStorage, PRESET_VARS_STORE) || '{}') || {};
  } catch {
    /* start over */
  }
  all[els.preset.value] = presetVariables();
  save(localStorage, PRESET_VARS_STORE, JSON.stringify(all));
}

/* ----------------------------------------------------------------- keys */

function showKeyPanel(open) {
  els.keyToggle.hidden = false;
  els.keyPanel.hidden = !open;
  els.keyToggle.setAttribute('aria-expanded', open ? 'true' : 'false');
  if (open) {
    els.keyInput.value = apiKey();
    els.keyInput.focus();
  }
}

function keyChanged() {
  loadModels();
  loadPresets();
  const last = state.turns[state.turns.length - 1];
  if (last && last.status === 'error' && last.error && last.error.key) retry(last);
}

/* --------------------------------------------------------------- wiring */

function autosize() {
  const p = els.prompt;
  p.style.height = 'auto';
  p.style.height = `${Math.min(p.scrollHeight, 240)}px`;
}

function wire() {
  els.composer.addEventListener('submit', (e) => {
    e.preventDefault();
    send();
  });
  els.prompt.addEventListener('keydown', (e) => {
    if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
      e.preventDefault();
      send();
    } else if (e.key === 'Escape' && state.active) {
      e.preventDefault();
      stop();
    }
  });
  els.prompt.addEventListener('input', autosize);
  els.stop.addEventListener('click', () => {
    stop();
    els.prompt.focus();
  });
  document.addEventListener('keydown', (e) => {
    if (e.key === 'Escape' && state.active && e.target !== els.prompt) stop();
  });
  els.model.addEventListener('change', () => {
    save(localStorage, MODEL_STORE, els.model.value);
    modelChanged();
    if (els.model.value === OTHER) els.modelName.focus();
  });
  els.modelName.addEventListener('input', () => save(localStorage, MODEL_NAME_STORE, els.modelName.value.trim()));
  els.preset.addEventListener('change', () => {
    save(localStorage, PRESET_STORE, els.preset.value);
    presetChanged();
  });
  els.keyToggle.addEventListener('click', () => showKeyPanel(els.keyPanel.hidden));
  els.keyForm.addEventListener('submit', (e) => {
    e.preventDefault();
    save(localStorage, KEY_STORE, els.keyInput.value.trim());
    els.keyPanel.hidden = true;
    els.keyToggle.setAttribute('aria-expanded', 'false');
    setStatus(apiKey() ? 'API key saved in this browser.' : 'API key removed.');
    els.prompt.focus();
    keyChanged();
  });
  els.keyClear.addEventListener('click', () => {
    save(localStorage, KEY_STORE, '');
    els.keyInput.value = '';
    setStatus('API key removed from this browser.');
  });
  els.newChat.addEventListener('click', () => {
    if (state.active) state.active.chat.cancel();
    state.turns = [];
    saveSession();
    renderAll();
    setStatus('');
    els.prompt.focus();
  });
}

function main() {
  wire();
  if (apiKey()) els.keyToggle.hidden = false;
  state.turns = loadSession();
  renderAll();
  scrollToBottom();
  loadModels();
  loadPresets();
  reattach();
  els.prompt.focus();
}

main();
