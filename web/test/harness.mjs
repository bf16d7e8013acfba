// Test harness: a real herald process (the debug binary cargo built) on a free loopback port,
// and a browser from Debian's packages: Chromium driven by playwright-core, or with
// BROWSER=firefox / BROWSER=webkit, Firefox ESR or WebKitGTK behind the same page API
// (pages.mjs). Nothing here skips: a missing binary or browser fails the test that needs it,
// with the command that fixes it; what an engine's driver cannot do fails naming it, and the
// tests say where an engine cannot run a step.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { launchFirefox, launchWebKit, openEnginePage } from './pages.mjs';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const HERALD_BIN =
  process.env.HERALD_BIN ?? join(process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target'), 'debug/herald');
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
/** The engine the browser tests run in: `chromium` (default), `firefox` or `webkit`. */
export const ENGINE = process.env.BROWSER ?? 'chromium';

/** How long a test waits for something that should happen at once. */
export const PATIENCE = 15_000;

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

/** A port nothing listens on right now. */
export async function freePort() {
  const server = createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Waits until `check()` returns a truthy value and returns it; fails after `timeout`. */
export async function until(check, { timeout = PATIENCE, what = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      last = await check();
      if (last) return last;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what} (last: ${last})`);
    await sleep(50);
  }
}

/**
 * This process's environment without its HERALD_* variables: the server reads every one as
 * configuration (HERALD_BIN, a test's own setting, would stop it as an unknown key).
 */
function serverEnv() {
  return Object.fromEntries(Object.entries(process.env).filter(([name]) => !name.startsWith('HERALD_')));
}

/** One herald process: `serve --listen 127.0.0.1:<port> --data-dir <dir>`. */
export class Herald {
  #child = null;
  #exited = null;
  log = '';

  constructor({ port, dataDir, env = {}, args = [] }) {
    this.port = port;
    this.dataDir = dataDir;
    this.env = env;
    this.args = args;
    this.url = `http://127.0.0.1:${port}`;
  }

  /** Starts a herald on a fresh data directory and a free port, and waits until it is ready. */
  static async start({ env = {}, args = [] } = {}) {
    const dataDir = await mkdtemp(join(tmpdir(), 'herald-web-test-'));
    const herald = new Herald({ port: await freePort(), dataDir, env, args });
    await herald.start();
    return herald;
  }

  /** (Re)starts the process on the same port and data directory. */
  async start(env = this.env) {
    if (!existsSync(HERALD_BIN)) {
      throw new Error(`no herald binary at ${HERALD_BIN}: run \`cargo build -p herald-cli\` first`);
    }
    const child = spawn(
      HERALD_BIN,
      ['serve', '--listen', `127.0.0.1:${this.port}`, '--data-dir', this.dataDir, ...this.args],
      { env: { ...serverEnv(), RUST_LOG: 'info', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    this.#child = child;
    child.stdout.on('data', (d) => (this.log += d));
    child.stderr.on('data', (d) => (this.log += d));
    this.#exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
    let gone = null;
    this.#exited.then((how) => (gone = how));
    await until(
      async () => {
        if (gone) throw new Error(`herald exited (${JSON.stringify(gone)}):\n${this.log}`);
        return (await fetch(`${this.url}/ready`)).ok;
      },
      { what: `herald ready on ${this.url}` },
    ).catch((e) => {
      throw new Error(`${e.message}\n--- herald log ---\n${this.log}`);
    });
  }

  /** Stops the process (SIGTERM drains; SIGKILL is a crash) and waits for it to exit. */
  async stop(signal = 'SIGTERM') {
    if (!this.#child) return null;
    const child = this.#child;
    this.#child = null;
    child.kill(signal);
    let timer;
    const how = await Promise.race([
      this.#exited,
      new Promise((resolve) => (timer = setTimeout(resolve, PATIENCE, null))),
    ]);
    clearTimeout(timer);
    if (!how) {
      child.kill('SIGKILL');
      throw new Error(`herald did not exit on ${signal}`);
    }
    return how;
  }

  /** Stops the process and removes its data. */
  async dispose() {
    await this.stop('SIGKILL').catch(() => {});
    await rm(this.dataDir, { recursive: true, force: true });
  }

  /** POST /publish one event or a batch; returns the ids. */
  async publish(events) {
    const response = await fetch(`${this.url}/publish`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(events),
    });
    const body = await response.json();
    if (!response.ok) throw new Error(`publish answered ${response.status}: ${JSON.stringify(body)}`);
    return body.ids;
  }

  /** Open SSE streams on this node, from /ready. */
  async clients() {
    return (await (await fetch(`${this.url}/ready`)).json()).clients;
  }
}

/** An Argo CD Application event as SPEC §9 shapes it. */
export function argoApp(ns, name, fields = {}) {
  return {
    topic: `argocd/applications/${ns}/${name}`,
    key: `${ns}/${name}`,
    type: 'application.updated',
    data: {
      name,
      namespace: ns,
      project: 'default',
      syncStatus: 'Synced',
      healthStatus: 'Healthy',
      revision: 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678',
      operationPhase: 'Succeeded',
      message: 'successfully synced (all tasks run)',
      lastSync: new Date(Date.now() - 5 * 60_000).toISOString(),
      ...fields,
    },
  };
}

/** The tombstone that removes an application. */
export function argoDelete(ns, name) {
  return {
    topic: `argocd/applications/${ns}/${name}`,
    key: `${ns}/${name}`,
    type: 'application.deleted',
    tombstone: true,
    data: null,
  };
}

/**
 * The browser of [`ENGINE`]: Debian's Chromium, headless, with a fresh profile (playwright makes
 * a new one per launch), or Firefox ESR or WebKit (pages.mjs).
 */
export async function launchBrowser() {
  if (ENGINE === 'firefox') return launchFirefox();
  if (ENGINE === 'webkit') return launchWebKit();
  if (!existsSync(CHROMIUM)) {
    throw new Error(
      `no Chromium at ${CHROMIUM}: apt-get install -y --no-install-recommends chromium (or set CHROMIUM)`,
    );
  }
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-quic',
      '--no-first-run',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}

/**
 * A new page that fails the test on any console error or uncaught exception, and records every
 * request so a test can check nothing left the hub's origin.
 */
export async function openPage(browser, { width = 1280, height = 900, reducedMotion = 'reduce' } = {}) {
  if (browser.engine) return openEnginePage(browser, { width, height, reducedMotion });
  const context = await browser.newContext({ viewport: { width, height }, reducedMotion });
  const page = await context.newPage();
  page.errors = [];
  page.requests = [];
  page.on('console', (m) => m.type() === 'error' && page.errors.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => page.errors.push(`page: ${e.message}`));
  page.on('request', (r) => page.requests.push(r.url()));
  return page;
}

/** Makes the page believe it was hidden or shown (see resume.test.mjs for why this way). */
export async function setVisibility(page, state) {
  await page.evaluate((state) => {
    Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => state });
    Object.defineProperty(document, 'hidden', { configurable: true, get: () => state === 'hidden' });
    document.dispatchEvent(new Event('visibilitychange'));
  }, state);
}

/** The cards on a board: `[{key, name, health, sync, operation, revision, message}]`. */
export async function boardCards(page, selector = 'deployment-status-board') {
  return page.locator(selector).evaluate((board) =>
    [...board.shadowRoot.querySelectorAll('article.card')].map((card) => ({
      key: card.dataset.key,
      name: card.querySelector('h3').textContent.trim(),
      health: card.querySelector('[data-health]').dataset.health,
      sync: card.querySelector('[data-sync]').dataset.sync,
      operation: card.querySelector('[data-operation]')?.dataset.operation ?? null,
      revision: card.querySelector('code').getAttribute('title'),
      message: card.querySelector('.message')?.textContent.trim() ?? '',
      demo: card.querySelector('[data-demo]') !== null,
    })),
  );
}

/** The board's connection pill text. */
export async function boardConnection(page, selector = 'deployment-status-board') {
  return page.locator(selector).evaluate((board) => board.shadowRoot.querySelector('.conn').textContent.trim());
}
