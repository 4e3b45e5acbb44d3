// tests/browser/lib/browser.js — Debian's Chromium, headless, driven by playwright-core.
//
// No browser is ever downloaded: the executable is /usr/bin/chromium (the `chromium` Debian
// package, installed by scripts/bootstrap), or $CHROMIUM_PATH. Every launch gets a fresh
// user-data-dir, removed on close.
//
// Exports:
//   CHROMIUM                       the executable path
//   launch(opts?) -> Promise<{ context, newPage(), close() }>
//        opts: { viewport, colorScheme }
//   sampleText(page, selector, { count, everyMs }) -> Promise<string[]>
//   OUTPUT_DIR                     test-output/ at the repository root (gitignored)
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const CHROMIUM = process.env.CHROMIUM_PATH || '/usr/bin/chromium';
export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');
export const OUTPUT_DIR = join(REPO, 'test-output');

const FLAGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-quic',
];

export async function launch({ viewport = { width: 1100, height: 760 }, colorScheme = 'light' } = {}) {
  if (!existsSync(CHROMIUM)) {
    throw new Error(`${CHROMIUM} is missing: install Debian's chromium (scripts/bootstrap does) or set CHROMIUM_PATH`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'telex-chromium-'));
  let context;
  try {
    context = await chromium.launchPersistentContext(dir, {
      executablePath: CHROMIUM,
      args: FLAGS,
      headless: true,
      viewport,
      colorScheme,
      reducedMotion: 'no-preference',
      timeout: 30000,
    });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const pageErrors = [];
  context.on('page', (p) => p.on('pageerror', (e) => pageErrors.push(e)));
  for (const p of context.pages()) p.on('pageerror', (e) => pageErrors.push(e));
  return {
    context,
    pageErrors,
    async newPage() {
      const blank = context.pages().find((p) => p.url() === 'about:blank');
      return blank ?? context.newPage();
    },
    async close() {
      await context.close().catch(() => {});
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Reads the text of `selector` every `everyMs` ms, `count` times.
export async function sampleText(page, selector, { count = 6, everyMs = 150 } = {}) {
  const out = [];
  for (let i = 0; i < count; i++) {
    out.push(await page.locator(selector).textContent());
    if (i + 1 < count) await page.waitForTimeout(everyMs);
  }
  return out;
}

export function outputPath(name) {
  mkdirSync(OUTPUT_DIR, { recursive: true });
  return join(OUTPUT_DIR, name);
}
