// Harness of the browser suite: a real `tessera serve` (TESSERA_BIN) on an ephemeral port
// with a fresh data directory, its admin CLI, a small relying party's redirect endpoint on
// 127.0.0.1 that records what it is sent, and headless Chromium (Debian's, driven by
// playwright-core) that saves a screenshot of every page, at desktop and phone size.

import { spawn, execFileSync } from 'node:child_process';
import { createHash, createHmac, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const REPO = resolve(import.meta.dirname, '../..');
export const BIN = process.env.TESSERA_BIN || join(REPO, 'target/debug/tessera');
export const SHOTS = process.env.BROWSER_E2E_OUT || join(REPO, 'target/browser-e2e');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

/** A running `tessera serve` and its CLI. */
export async function startTessera(env = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'tessera-browser-'));
  const data = join(dir, 'data');
  const childEnv = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('TESSERA_')));
  Object.assign(childEnv, { RUST_LOG: 'warn' }, env);
  const proc = spawn(BIN, ['serve', '--listen', '127.0.0.1:0', '--data-dir', data], {
    env: childEnv,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const base = await new Promise((ok, fail) => {
    let out = '';
    const timer = setTimeout(() => fail(new Error(`tessera did not start: ${out}`)), 60_000);
    proc.stdout.on('data', (chunk) => {
      out += chunk;
      const m = out.match(/^tessera listening on (http:\/\/\S+)$/m);
      if (m) {
        clearTimeout(timer);
        ok(m[1].replace(/\/$/, ''));
      }
    });
    proc.on('exit', (code) => fail(new Error(`tessera serve exited with ${code}: ${out}`)));
  });
  proc.stdout.resume();
  const cli = (args, input) =>
    execFileSync(BIN, [...args, '--data-dir', data], { env: childEnv, input, encoding: 'utf8' });
  return {
    base,
    cli,
    cliJson: (args, input) => JSON.parse(cli([...args, '--json'], input)),
    async stop() {
      const exited = new Promise((ok) => proc.on('exit', ok));
      proc.kill('SIGTERM');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The relying party's side: GET /cb and /bye are recorded and answered with a small page. */
export async function startReceiver() {
  const hits = [];
  const server = createServer((req, res) => {
    const url = new URL(req.url, 'http://127.0.0.1');
    if (url.pathname !== '/cb' && url.pathname !== '/bye') {
      res.writeHead(404).end(); // the browser's /favicon.ico
      return;
    }
    hits.push({ path: url.pathname, params: Object.fromEntries(url.searchParams), url: url.href });
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><meta name="viewport" content="width=device-width"><title>Back at the app</title>'
      + '<p style="font-family:system-ui;padding:2rem">The app received the answer.</p>');
  });
  await new Promise((ok) => server.listen(0, '127.0.0.1', ok));
  const origin = `http://127.0.0.1:${server.address().port}`;
  return {
    origin,
    hits,
    last: () => hits.at(-1),
    close: () => new Promise((ok) => server.close(ok)),
  };
}

/** Headless Chromium: Debian's binary, nothing fetched from outside. Playwright starts it
 * with a new empty user-data directory of its own; each scenario gets a new context (its own
 * cookie jar) with `fresh()`. */
export async function startChromium() {
  mkdirSync(SHOTS, { recursive: true });
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
  ];
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  return {
    fresh: () => browser.newContext({ viewport: { width: 1100, height: 760 } }),
    close: () => browser.close(),
  };
}

/** Save the page as `name`.png (desktop) and `name`-phone.png (390 x 844). */
export async function shot(page, name) {
  const size = page.viewportSize();
  await page.screenshot({ path: join(SHOTS, `${name}.png`), fullPage: true });
  await page.setViewportSize({ width: 390, height: 844 });
  await page.screenshot({ path: join(SHOTS, `${name}-phone.png`), fullPage: true });
  if (size) await page.setViewportSize(size);
}

/** PKCE (RFC 7636, S256). */
export function pkce() {
  const verifier = randomText(48);
  return { verifier, challenge: createHash('sha256').update(verifier).digest('base64url') };
}

export function randomText(bytes = 16) {
  return randomBytes(bytes).toString('base64url');
}

/** RFC 6238 TOTP (SHA-1, 30 s, 6 digits) of a base32 secret at `time` (seconds). */
export function totp(base32, time) {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = '';
  for (const ch of base32.replace(/=+$/, '').toUpperCase()) {
    bits += alphabet.indexOf(ch).toString(2).padStart(5, '0');
  }
  const key = Buffer.from(bits.match(/.{8}/g).map((b) => parseInt(b, 2)));
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(time / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const off = mac[mac.length - 1] & 0xf;
  const n = (mac.readUInt32BE(off) & 0x7fffffff) % 1_000_000;
  return String(n).padStart(6, '0');
}

/** The claims of a JWT (not verified: the test's own look; openid-client verifies). */
export function claims(jwt) {
  return JSON.parse(Buffer.from(jwt.split('.')[1], 'base64url').toString('utf8'));
}

/** A form POST. */
export async function postForm(url, form) {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams(form),
  });
  return { status: res.status, json: await res.json() };
}

export const sleep = (ms) => new Promise((ok) => setTimeout(ok, ms));
