// The part of playwright's Page API the dashboard tests use, for the engines playwright-core
// cannot drive from Debian's packages: Firefox ESR through puppeteer-core (WebDriver BiDi), and
// WebKit through WebKitWebDriver (W3C WebDriver classic). `harness.mjs` hands these out when
// BROWSER=firefox or BROWSER=webkit, so the same test files run in every engine.
//
// Locators are resolved in the page, through open shadow roots, as playwright's are: a CSS
// selector (its space-separated parts may cross shadow roots), `getByLabel` (the `aria-label` or
// the `<label>` of an input, select or textarea; substring, case-insensitive, or a RegExp) and
// `getByRole('button', {name})`.
//
// What an engine's driver cannot do is an error naming it, never a silent pass:
// - WebKit (classic WebDriver): no request interception (`route`), no offline switch, no
//   request events, no console. Errors are caught in the page from the first call after `goto`
//   on (an `error` and `unhandledrejection` listener and a wrapped `console.error`): errors while
//   the page loads are not seen. Requests are the page's resource timing entries, and its
//   `fetch` calls from then on (a stream shows in resource timing only once it ends).
// - Firefox (BiDi): everything here, except `setOffline` where the driver refuses it.

import { FIREFOX, newWebKitSession, startWebKitDriver } from './engines.mjs';
import { PATIENCE, sleep } from './harness.mjs';

/** Resolves a locator chain in the page: the first match of each step inside the previous one. */
const FIND = `function find(chain) {
  const deepAll = (root, selector) => {
    const out = [...root.querySelectorAll(selector)];
    for (const el of root.querySelectorAll('*')) if (el.shadowRoot) out.push(...deepAll(el.shadowRoot, selector));
    return out;
  };
  const inside = (el) => (el === document ? [document] : el.shadowRoot ? [el.shadowRoot, el] : [el]);
  const text = (s) => (s ?? '').replace(/\\s+/g, ' ').trim();
  const matches = (value, want) =>
    want.re ? new RegExp(want.re, want.flags).test(value) : value.toLowerCase().includes(want.text.toLowerCase());
  const labelOf = (el) => text(el.getAttribute('aria-label') ?? el.labels?.[0]?.textContent ?? '');
  const nameOf = (el) => text(el.getAttribute('aria-label') ?? el.textContent);
  let at = document;
  for (const step of chain) {
    let found = [];
    for (const root of inside(at)) {
      if (step.css) {
        let scopes = [root];
        for (const part of step.css.trim().split(/\\s+/)) {
          scopes = scopes.flatMap((s) => inside(s).flatMap((r) => deepAll(r, part)));
        }
        found.push(...scopes);
      } else if (step.label) {
        found.push(...deepAll(root, 'input, select, textarea').filter((el) => matches(labelOf(el), step.label)));
      } else if (step.role) {
        found.push(...deepAll(root, 'button, [role="button"]').filter((el) => matches(nameOf(el), step.name)));
      }
    }
    if (!found.length) return null;
    at = found[0];
  }
  return at;
}`;

const want = (value) => (value instanceof RegExp ? { re: value.source, flags: value.flags } : { text: String(value) });

/** A playwright-like locator over `page.run(source, args)`. */
class Locator {
  constructor(page, chain) {
    this.page = page;
    this.chain = chain;
  }

  locator(css) {
    return new Locator(this.page, [...this.chain, { css }]);
  }

  getByLabel(label) {
    return new Locator(this.page, [...this.chain, { label: want(label) }]);
  }

  getByRole(role, { name } = {}) {
    return new Locator(this.page, [...this.chain, { role, name: want(name ?? '') }]);
  }

  /** Runs `fn(element, arg)` in the page, waiting for the element like playwright does. */
  async evaluate(fn, arg) {
    const deadline = Date.now() + PATIENCE;
    for (;;) {
      const result = await this.page.run(
        `const el = (${FIND})(args[0]); if (!el) return { missing: true }; return { value: await (${fn})(el, args[1]) };`,
        [this.chain, arg ?? null],
      );
      if (!result.missing) return result.value;
      if (Date.now() > deadline) throw new Error(`no element for ${JSON.stringify(this.chain)}`);
      await sleep(50);
    }
  }

  waitFor() {
    return this.evaluate(() => true);
  }

  textContent() {
    return this.evaluate((el) => el.textContent);
  }

  getAttribute(name) {
    return this.evaluate((el, name) => el.getAttribute(name), name);
  }

  async fill(value) {
    await this.evaluate((el, value) => {
      el.focus();
      el.value = value;
      el.dispatchEvent(new Event('input', { bubbles: true, composed: true }));
      el.dispatchEvent(new Event('change', { bubbles: true, composed: true }));
    }, value);
  }

  selectOption(value) {
    return this.fill(value);
  }

  async press(key) {
    await this.evaluate((el) => el.focus());
    await this.page.keyboard.press(key);
  }

  async click() {
    await this.evaluate((el) => {
      el.scrollIntoView({ block: 'center' });
      el.click();
    });
  }
}

/** The page API the tests use, over an engine's `run(source, args)` (an async function body). */
class Page {
  errors = [];
  requests = [];

  locator(css) {
    return new Locator(this, [{ css }]);
  }

  async evaluate(fn, arg) {
    return this.run(`return await (${fn})(args[0]);`, [arg ?? null]);
  }
}

// ---- Firefox ESR: puppeteer-core over WebDriver BiDi ----

/** Firefox ESR with a playwright-like `newContext`-free API: `openPage` makes a context each. */
export async function launchFirefox() {
  const { default: puppeteer } = await import('puppeteer-core');
  // Reduced motion as a preference: puppeteer's emulateMediaFeatures needs CDP, which Firefox
  // does not speak (every page of the tests asks for it anyway).
  const browser = await puppeteer.launch({
    browser: 'firefox',
    executablePath: FIREFOX,
    headless: true,
    extraPrefsFirefox: { 'ui.prefersReducedMotion': 1 },
  });
  browser.engine = 'firefox';
  return browser;
}

class FirefoxPage extends Page {
  constructor(context, page) {
    super();
    this.pptr = page;
    this.ctx = context;
    this.keyboard = page.keyboard;
    this.routes = [];
    page.on('console', (m) => m.type() === 'error' && this.errors.push(`console: ${m.text()}`));
    page.on('pageerror', (e) => this.errors.push(`page: ${e.message}`));
    page.on('request', (r) => {
      this.requests.push(r.url());
      if (this.routes.length) this.#intercepted(r);
    });
  }

  run(body, args) {
    return this.pptr.evaluate(`(async (args) => { ${body} })(${JSON.stringify(args)})`);
  }

  goto(url) {
    return this.pptr.goto(url);
  }

  on(event, handler) {
    this.pptr.on(event, handler);
  }

  /** Playwright's `route(glob, handler)`, for globs ending in `**` or exact URLs. */
  async route(glob, handler) {
    if (!this.routes.length) await this.pptr.setRequestInterception(true);
    const prefix = glob.endsWith('**') ? glob.slice(0, -2) : null;
    this.routes.push({ test: (url) => (prefix ? url.startsWith(prefix) : url === glob), handler });
  }

  #intercepted(request) {
    const route = this.routes.find((r) => r.test(request.url()));
    if (!route) return request.continue();
    return route.handler({
      request: () => request,
      abort: () => request.abort(),
      continue: ({ url } = {}) => request.continue(url ? { url } : {}),
      fulfill: ({ contentType, body }) => request.respond({ status: 200, contentType, body }),
    });
  }

  context() {
    return {
      close: () => this.ctx.close(),
      setOffline: (offline) => this.pptr.setOfflineMode(offline),
    };
  }
}

async function openFirefoxPage(browser, { width, height, reducedMotion }) {
  if (reducedMotion !== 'reduce') throw new Error('Firefox: reduced motion is set for the whole browser');
  const context = await browser.createBrowserContext();
  const page = await context.newPage();
  await page.setViewport({ width, height });
  return new FirefoxPage(context, page);
}

// ---- WebKit: WebKitGTK's MiniBrowser through WebKitWebDriver ----

/** WebKitWebDriver under Xvfb; each page is a session of its own (a MiniBrowser). */
export async function launchWebKit() {
  const { driver, stop } = await startWebKitDriver();
  return { engine: 'webkit', base: driver.base, close: stop };
}

const KEYS = { Tab: '\uE004', Enter: '\uE007', Escape: '\uE00C' };

/** The smallest window WebKitGTK's MiniBrowser takes: it will not go narrower. */
export const WEBKIT_MIN_WIDTH = 447;

class WebKitPage extends Page {
  constructor(driver) {
    super();
    this.driver = driver;
    this.keyboard = {
      press: (key) =>
        driver.s('POST', '/actions', {
          actions: [
            {
              type: 'key',
              id: 'keyboard',
              actions: [
                { type: 'keyDown', value: KEYS[key] ?? key },
                { type: 'keyUp', value: KEYS[key] ?? key },
              ],
            },
          ],
        }),
    };
  }

  /**
   * Runs `body` (an async function body over `args`) in the page. Every call also collects
   * what the page caught since (errors, resource URLs), since the driver reports neither.
   */
  async run(body, args) {
    const script = `
      const done = arguments[arguments.length - 1];
      const args = arguments[0];
      if (!window.__herald_test) {
        const t = (window.__herald_test = { errors: [], fetched: [] });
        addEventListener('error', (e) => t.errors.push('page: ' + e.message));
        addEventListener('unhandledrejection', (e) => t.errors.push('page: ' + e.reason));
        const error = console.error.bind(console);
        console.error = (...a) => { t.errors.push('console: ' + a.join(' ')); error(...a); };
        // A stream's fetch shows in resource timing only once it ends: record fetches as made.
        const fetch = window.fetch;
        window.fetch = (input, init) => {
          t.fetched.push(String(input instanceof Request ? input.url : input));
          return fetch.call(window, input, init);
        };
      }
      const caught = () => ({
        errors: window.__herald_test.errors,
        requests: performance.getEntriesByType('navigation').concat(performance.getEntriesByType('resource'))
          .filter((e) => e.initiatorType !== 'fetch').map((e) => e.name).concat(window.__herald_test.fetched),
      });
      (async () => { ${body} })().then(
        (value) => done({ ok: true, value: value === undefined ? null : value, ...caught() }),
        (e) => done({ ok: false, error: String(e && e.stack || e), ...caught() }),
      );`;
    const result = await this.driver.s('POST', '/execute/async', { script, args: [args] });
    this.errors.splice(0, this.errors.length, ...result.errors);
    this.requests.splice(0, this.requests.length, ...result.requests);
    if (!result.ok) throw new Error(result.error);
    return result.value;
  }

  async goto(url) {
    await this.driver.s('POST', '/url', { url });
    await this.run('return null;', []);
  }

  on(event) {
    throw new Error(`WebKit: page.on('${event}') is not available (W3C WebDriver classic has no events)`);
  }

  route() {
    throw new Error('WebKit: route() is not available (W3C WebDriver classic cannot intercept requests)');
  }

  context() {
    return {
      close: () => this.driver.s('DELETE', ''),
      setOffline: () => {
        throw new Error('WebKit: setOffline() is not available (W3C WebDriver classic has no network control)');
      },
    };
  }
}

async function openWebKitPage(browser, { width, height }) {
  const { WebDriver } = await import('./engines.mjs');
  // One session at a time: a test that failed before closing its page leaves it open.
  await browser.current?.s('DELETE', '').catch(() => {});
  const driver = new WebDriver(browser.base);
  await newWebKitSession(driver);
  browser.current = driver;
  await driver.s('POST', '/window/rect', { width: Math.max(width, WEBKIT_MIN_WIDTH), height });
  return new WebKitPage(driver);
}

/** `openPage` of harness.mjs for a Firefox or WebKit browser. */
export function openEnginePage(browser, options) {
  return browser.engine === 'firefox' ? openFirefoxPage(browser, options) : openWebKitPage(browser, options);
}
