// What every console test shares: a `steward serve` of its own (a fresh
// SQLite file in a fresh folder), the HTTP API as an admin and as a tenant,
// a webhook receiver, Debian's Chromium driven by playwright-core, a watch on
// every page for dialogs and console errors, axe-core, and screenshots.
//
// Nothing here sleeps for a fixed time: everything waits on a state (a line
// the server prints, an API answer, a selector), with a deadline that only
// guards against a hang.

import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const here = path.dirname(fileURLToPath(import.meta.url));
export const ROOT = path.resolve(here, '..', '..', '..');

export const STEWARD = process.env.STEWARD
  || path.join(process.env.CARGO_TARGET_DIR || path.join(ROOT, 'target'), 'debug', 'steward');
export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
/** Where screenshots go: the folder in STEWARD_SCREENSHOTS (docs/images to
 * refresh the docs), else this run's scratch folder. */
export const SHOTS = process.env.STEWARD_SCREENSHOTS
  ? path.resolve(ROOT, process.env.STEWARD_SCREENSHOTS)
  : null;
const SCRATCH = process.env.STEWARD_CONSOLE_TMP || os.tmpdir();

export const VIEWPORT = { width: 1280, height: 800 };
/** The deadline of a wait: only there so that a hang fails, never a timing. */
export const PATIENCE = 30_000;

/** The webhook secret the server signs with. */
const SECRET = 'whsec_' + Buffer.from('steward-console-e2e-secret-012345').toString('base64');

/** Waits until `check()` gives a truthy value, and returns it. */
export async function waitFor(what, check, timeout = PATIENCE) {
  const end = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await check();
      if (value) return value;
      last = value;
    } catch (e) {
      last = e;
    }
    if (Date.now() > end) {
      throw new Error(`gave up waiting for ${what} (last: ${last instanceof Error ? last.message : JSON.stringify(last)})`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** An RFC 3339 time `seconds` from now, to the second. */
export function at(seconds = 0) {
  return new Date(Math.floor(Date.now() / 1000) * 1000 + seconds * 1000).toISOString().replace('.000Z', 'Z');
}

// ---------------------------------------------------------------------------
// The server

/** A client of the HTTP API with one token. */
export class Api {
  constructor(base, token) {
    this.base = base;
    this.token = token;
  }

  async call(method, route, body) {
    const headers = { authorization: `Bearer ${this.token}` };
    if (body !== undefined) headers['content-type'] = 'application/json';
    const r = await fetch(this.base + route, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    let json = null;
    try { json = text ? JSON.parse(text) : null; } catch { json = text; }
    return { status: r.status, body: json };
  }

  async ok(method, route, body) {
    const r = await this.call(method, route, body);
    assert.ok(r.status >= 200 && r.status < 300, `${method} ${route}: ${r.status} ${JSON.stringify(r.body)}`);
    return r.body;
  }

  /** Deploys `files` as ruleset `name`. */
  deploy(name, files) {
    return this.ok('PUT', `/v1/rulesets/${encodeURIComponent(name)}`, { files });
  }

  /** Posts events, then waits until the engine has handled each. */
  async post(events) {
    await this.ok('POST', '/v1/events', events);
    for (const e of events) await this.processed(e.id);
  }

  /** Waits until event `id` is processed (or rejected), and returns it. */
  processed(id) {
    return waitFor(`event ${id} to be handled`, async () => {
      const { status, body } = await this.call('GET', `/v1/events/${encodeURIComponent(id)}`);
      return status === 200 && body.status !== 'pending' ? body : null;
    });
  }

  async list(route) {
    return (await this.ok('GET', route)).data;
  }
}

/** Waits for the binary (the other engineer's build may be replacing it). */
async function binary() {
  await waitFor(`the steward binary at ${STEWARD} (build it with cargo build -p steward-cli)`, () => {
    try {
      fs.accessSync(STEWARD, fs.constants.X_OK);
      return true;
    } catch {
      return false;
    }
  }, 300_000);
  return STEWARD;
}

/**
 * Starts `steward serve` on a fresh SQLite file and a free port: the API as
 * the admin (`admin`), `tenant(id, scopes)` to make a tenant and a token,
 * `stop()`.
 */
export async function serve(extra = []) {
  const dir = fs.mkdtempSync(path.join(SCRATCH, 'steward-console-'));
  const adminToken = 'admin-' + randomBytes(12).toString('hex');
  // The receivers are on the loopback, which only an operator opens.
  const env = {
    ...process.env, STEWARD_ADMIN_TOKEN: adminToken, STEWARD_WEBHOOK_SECRET: SECRET,
    STEWARD_WEBHOOK_ALLOW: '127.0.0.1/32',
  };
  delete env.DATABASE_URL;
  delete env.STEWARD_SMTP_URL;
  const args = ['serve', '--database', path.join(dir, 'steward.db'), '--listen', '127.0.0.1:0', '--poll', '100ms', ...extra];
  let child;
  let base;
  const log = fs.createWriteStream(path.join(dir, 'serve.log'));
  for (let tries = 0; ; tries++) {
    child = spawn(await binary(), args, { env, cwd: dir, stdio: ['ignore', 'pipe', 'pipe'] });
    base = await new Promise((resolve) => {
      let seen = '';
      const look = (chunk) => {
        log.write(chunk);
        seen += chunk.toString();
        const m = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(seen);
        if (m) resolve(m[1]);
      };
      child.stdout.on('data', look);
      child.stderr.on('data', look);
      child.on('exit', () => resolve(null));
      child.on('error', () => resolve(null));
    });
    if (base) break;
    // The binary was replaced while it started: once more.
    if (tries >= 2) throw new Error(`steward serve did not start; its output is in ${dir}/serve.log`);
  }
  const stop = () => {
    if (child.exitCode === null) child.kill('SIGTERM');
  };
  process.on('exit', stop);
  const admin = new Api(base, adminToken);
  return {
    base,
    dir,
    admin,
    adminToken,
    /** Makes tenant `id` (once) and a token with `scopes` for it. */
    async tenant(id, scopes) {
      const made = await admin.call('POST', '/v1/tenants', { id });
      assert.ok(made.status === 201 || made.status === 409, JSON.stringify(made));
      const token = await admin.ok('POST', `/v1/tenants/${id}/tokens`, scopes ? { scopes } : {});
      return new Api(base, token.token);
    },
    async stop() {
      stop();
      if (child.exitCode === null) await new Promise((r) => child.once('exit', r));
      log.end();
      if (!process.env.STEWARD_CONSOLE_KEEP) fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// ---------------------------------------------------------------------------
// A webhook receiver

/**
 * An HTTP server on 127.0.0.1 that records every request. A path answers
 * 200 unless `answer(path, status)` says otherwise.
 */
export async function receiver() {
  const requests = [];
  const answers = new Map();
  const pages = new Map();
  const server = http.createServer((req, res) => {
    if (req.method === 'GET' && pages.has(req.url)) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
      res.end(pages.get(req.url));
      return;
    }
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const text = Buffer.concat(chunks).toString();
      let body = text;
      try { body = JSON.parse(text); } catch { /* kept as text */ }
      const status = answers.get(req.url) ?? 200;
      requests.push({ method: req.method, path: req.url, headers: req.headers, body, status });
      res.writeHead(status, { 'content-type': 'text/plain' });
      res.end(status === 200 ? 'ok' : 'not now');
    });
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  const port = server.address().port;
  return {
    port,
    url: (p) => `http://127.0.0.1:${port}${p}`,
    requests,
    answer(p, status) { answers.set(p, status); },
    /** Serves `html` at `p` (a page of another origin). */
    page(p, html) { pages.set(p, html); },
    /** Waits for a request `pred` accepts (answered 200 unless `any`). */
    got(what, pred) {
      return waitFor(what, () => requests.find((r) => pred(r)));
    },
    close: () => new Promise((r) => { server.closeAllConnections?.(); server.close(r); }),
  };
}

// ---------------------------------------------------------------------------
// The browser

const ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

export function launch() {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
}

/**
 * A browser context with the console's CSP in force, each page watched:
 * a dialog, a console error or an uncaught exception is a problem that
 * `problems.check()` fails on. A console error about a URL given to
 * `problems.expect(url)` (a 403 or 404 the test asks for) is not.
 */
export async function context(browser) {
  const ctx = await browser.newContext({ viewport: VIEWPORT, timezoneId: 'UTC', locale: 'en-US' });
  const problems = {
    list: [],
    expected: new Set(),
    favicon: 0,
    expect(url) { this.expected.add(url); },
    check() {
      assert.deepEqual(this.list, [], `problems on the pages:\n${this.list.join('\n')}`);
    },
  };
  ctx.on('page', (page) => watch(page, problems));
  ctx.setDefaultTimeout(PATIENCE);
  return { ctx, problems };
}

function watch(page, problems) {
  page.on('dialog', async (d) => {
    problems.list.push(`a ${d.type()} dialog opened on ${page.url()}: ${d.message()}`);
    await d.dismiss().catch(() => {});
  });
  page.on('pageerror', (e) => problems.list.push(`uncaught on ${page.url()}: ${e.message}`));
  page.on('console', (m) => {
    if (m.type() !== 'error') return;
    const where = m.location()?.url || '';
    if ([...problems.expected].some((u) => where === u || where.startsWith(u))) return;
    problems.list.push(`console error on ${page.url()} (${where}): ${m.text()}`);
  });
}

/** Signs in at /sign-in with `token` and waits for the overview. */
export async function signIn(page, base, token) {
  await page.goto(`${base}/sign-in`);
  await page.getByLabel('Token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.waitForURL(`${base}/`);
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
}

/** The session's CSRF token, read from the sign-out form. */
export function csrfOf(page) {
  return page.locator('form[action="/sign-out"] input[name="csrf"]').inputValue();
}

/** Posts a form with the page's cookies, following no redirect. */
export function postForm(page, url, form, headers = {}) {
  return page.request.post(url, { form, headers, maxRedirects: 0, failOnStatusCode: false });
}

/** The text of a page's `main`. */
export function mainText(page) {
  return page.locator('main').innerText();
}

// ---------------------------------------------------------------------------
// Screenshots

/** Saves the viewport as console-NAME.png, in STEWARD_SCREENSHOTS if set. */
export async function shot(page, name, dir) {
  const folder = SHOTS || dir;
  if (!folder) return;
  fs.mkdirSync(folder, { recursive: true });
  // Times are shown in the viewer's zone by console.js: wait for it.
  await page.waitForFunction(() => [...document.querySelectorAll('time[datetime]')]
    .every((t) => t.textContent !== t.getAttribute('datetime')));
  await page.screenshot({ path: path.join(folder, `console-${name}.png`) });
}

// ---------------------------------------------------------------------------
// Accessibility

const AXE = fs.readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

/**
 * Violations already reported to the console's authors (docs/console.md,
 * "Testing the console"): printed as known, not failed on. Each matches the axe rule
 * and the element's selector; remove it when the page is fixed.
 */
/** Violations known and allowed (none now): `{ id, node: /selector/, why }`. */
export const KNOWN = [];

/** Every violation found, by page, for the summary. */
export const violations = [];

function known(id, target) {
  return KNOWN.find((k) => k.id === id && k.node.test(target));
}

/**
 * Runs axe-core on what `page` shows now: its HTML is served again, at the
 * same address, to a page of a context that bypasses the CSP (the CSP,
 * rightly, refuses axe's inline script), with the console's own stylesheet
 * and scripts. Prints every violation; returns those of serious or critical
 * impact not in KNOWN.
 */
export async function audit(browser, page, name) {
  const url = page.url();
  const html = await page.content();
  const ctx = await browser.newContext({ bypassCSP: true, viewport: VIEWPORT, timezoneId: 'UTC', locale: 'en-US' });
  try {
    const p = await ctx.newPage();
    await p.route((u) => u.href === url, (route) => route.fulfill({
      status: 200, contentType: 'text/html; charset=utf-8', body: html,
    }));
    await p.goto(url);
    await p.addScriptTag({ content: AXE });
    const result = await p.evaluate(() => globalThis.axe.run(document, {
      resultTypes: ['violations'],
    }));
    const bad = [];
    for (const v of result.violations) {
      const nodes = v.nodes.map((n) => ({
        target: n.target.join(' '),
        summary: n.failureSummary.replace(/\s+/g, ' '),
      }));
      const fresh = nodes.filter((n) => !known(v.id, n.target));
      const found = {
        page: name, url, id: v.id, impact: v.impact, help: v.help,
        nodes: nodes.map((n) => `${n.target}: ${n.summary}`),
        known: fresh.length === 0 ? known(v.id, nodes[0].target).why : null,
      };
      violations.push(found);
      if (process.env.STEWARD_CONSOLE_TMP) {
        fs.appendFileSync(path.join(process.env.STEWARD_CONSOLE_TMP, 'axe.jsonl'), `${JSON.stringify(found)}\n`);
      }
      const shown = nodes.slice(0, 3).map((n) => `${n.target}: ${n.summary}`);
      const more = nodes.length > 3 ? `\n  ... and ${nodes.length - 3} more` : '';
      const tag = found.known ? ' (known)' : '';
      console.log(`axe: ${name} (${url}): ${v.impact} ${v.id}${tag}: ${v.help}\n  ${shown.join('\n  ')}${more}`);
      if ((v.impact === 'serious' || v.impact === 'critical') && fresh.length > 0) {
        bad.push(`${v.id} (${v.impact}): ${fresh.map((n) => n.target).join(', ')}`);
      }
    }
    if (result.violations.length === 0) console.log(`axe: ${name}: no violation`);
    return bad;
  } finally {
    await ctx.close();
  }
}

/** Audits the page and fails on a serious or critical violation not known. */
export async function accessible(browser, page, name) {
  const bad = await audit(browser, page, name);
  assert.deepEqual(bad, [], `${name}: serious or critical accessibility violations`);
}

// ---------------------------------------------------------------------------
// The keyboard

/** What has the focus: a short description. */
export function focused(page) {
  return page.evaluate(() => {
    const e = document.activeElement;
    if (!e || e === document.body) return null;
    return {
      tag: e.tagName.toLowerCase(),
      text: (e.innerText || e.value || '').trim(),
      href: e.getAttribute('href'),
      name: e.getAttribute('name'),
      inNav: !!e.closest('nav[aria-label="Main"]'),
    };
  });
}

/**
 * Presses Tab from the top of the page until the focus comes back to
 * where it started (or `limit` presses): everything that took the focus.
 */
export async function tabThrough(page, limit = 150) {
  await page.evaluate(() => { document.activeElement?.blur(); window.scrollTo(0, 0); });
  const seen = [];
  for (let i = 0; i < limit; i++) {
    await page.keyboard.press('Tab');
    const f = await focused(page);
    if (!f) break;
    if (seen.length > 0 && JSON.stringify(f) === JSON.stringify(seen[0])) break;
    seen.push(f);
  }
  return seen;
}
