// The three browser engines of SPEC §12, each from Debian's packages, behind one small interface:
// Chromium through playwright-core (CDP), Firefox ESR through puppeteer-core (WebDriver BiDi:
// playwright-core's own BiDi Firefox fails on `emulation.setMediaFeaturesOverride`), and WebKit
// (WebKitGTK's MiniBrowser) through WebKitWebDriver (W3C WebDriver classic, no BiDi) under Xvfb.
// Nothing is downloaded; a missing browser fails with the command that installs it.

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { PATIENCE, freePort, sleep, until } from './harness.mjs';

export const FIREFOX = process.env.FIREFOX ?? '/usr/bin/firefox-esr';
export const WEBKIT_DRIVER = process.env.WEBKIT_DRIVER ?? '/usr/bin/WebKitWebDriver';
export const MINIBROWSER = process.env.MINIBROWSER ?? '/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser';
export const XVFB_RUN = '/usr/bin/xvfb-run';

/** The engines, in the order the suites run them (one after another: 2 cores). */
export const ENGINES = ['chromium', 'firefox', 'webkit'];

function need(path, install) {
  if (!existsSync(path)) throw new Error(`no ${path}: apt-get install -y --no-install-recommends ${install}`);
}

/**
 * Launches `name` and returns `{ name, version, open(url) → tab, close() }`, where a tab has
 * `value(expression)` (the expression's value, which must be JSON-serialisable) and `close()`.
 */
export async function launchEngine(name) {
  if (name === 'chromium') return chromiumEngine();
  if (name === 'firefox') return firefoxEngine();
  if (name === 'webkit') return webkitEngine();
  throw new Error(`unknown engine ${name}`);
}

async function chromiumEngine() {
  const { launchBrowser } = await import('./harness.mjs');
  const browser = await launchBrowser();
  return {
    name: 'chromium',
    version: browser.version(),
    async open(url) {
      const context = await browser.newContext();
      const page = await context.newPage();
      await page.goto(url);
      return { value: (expression) => page.evaluate(expression), close: () => context.close() };
    },
    close: () => browser.close(),
  };
}

async function firefoxEngine() {
  need(FIREFOX, 'firefox-esr');
  const { default: puppeteer } = await import('puppeteer-core');
  const browser = await puppeteer.launch({ browser: 'firefox', executablePath: FIREFOX, headless: true });
  return {
    name: 'firefox',
    version: (await browser.version()).replace(/^firefox\//, ''),
    async open(url) {
      const page = await browser.newPage();
      await page.goto(url);
      return { value: (expression) => page.evaluate(expression), close: () => page.close() };
    },
    close: () => browser.close(),
  };
}

/** A W3C WebDriver (classic) session: JSON over HTTP, nothing more is needed here. */
export class WebDriver {
  constructor(base) {
    this.base = base;
    this.session = null;
  }

  async call(method, path, body) {
    const response = await fetch(`${this.base}${path}`, {
      method,
      headers: { 'content-type': 'application/json' },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(PATIENCE * 4),
    });
    const json = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(`WebDriver ${method} ${path}: ${response.status} ${JSON.stringify(json.value)}`);
    return json.value;
  }

  /** `path` under this session. */
  s(method, path, body) {
    return this.call(method, `/session/${this.session}${path}`, body);
  }

  /** Runs `script` (a function body) in the page with `args`; returns what it returns. */
  execute(script, args = []) {
    return this.s('POST', '/execute/sync', { script, args });
  }
}

/** WebKitWebDriver under `xvfb-run -a`, started for this run and stopped with it. */
export async function startWebKitDriver() {
  need(WEBKIT_DRIVER, 'webkit2gtk-driver');
  need(XVFB_RUN, 'xvfb xauth');
  need(MINIBROWSER, 'webkit2gtk-driver');
  const port = await freePort();
  // Its own process group, so the driver, Xvfb and MiniBrowser all go when it is stopped.
  const child = spawn(XVFB_RUN, ['-a', WEBKIT_DRIVER, `--port=${port}`], { detached: true, stdio: 'ignore' });
  const driver = new WebDriver(`http://127.0.0.1:${port}`);
  await until(async () => (await driver.call('GET', '/status')).ready, { what: 'WebKitWebDriver' });
  const stop = async () => {
    try {
      process.kill(-child.pid, 'SIGTERM');
    } catch {
      // Already gone.
    }
    await sleep(100);
  };
  return { driver, stop };
}

/** A new WebKit session: MiniBrowser needs `--automation`, or the session never starts. */
export async function newWebKitSession(driver) {
  const created = await driver.call('POST', '/session', {
    capabilities: {
      alwaysMatch: {
        'webkitgtk:browserOptions': { binary: MINIBROWSER, args: ['--automation'] },
      },
    },
  });
  driver.session = created.sessionId;
  return created.capabilities;
}

async function webkitEngine() {
  const { driver, stop } = await startWebKitDriver();
  let capabilities;
  try {
    capabilities = await newWebKitSession(driver);
  } catch (e) {
    await stop();
    throw e;
  }
  return {
    name: 'webkit',
    version: `WebKitGTK ${capabilities.browserVersion}`,
    async open(url) {
      // One window per session (MiniBrowser's new windows are not worth the trouble here).
      await driver.s('POST', '/url', { url });
      return { value: (expression) => driver.execute(`return (${expression});`), close: async () => {} };
    },
    async close() {
      await driver.s('DELETE', '').catch(() => {});
      await stop();
    },
  };
}
