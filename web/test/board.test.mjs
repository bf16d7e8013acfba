// The dashboard and <deployment-status-board> in Chromium, Firefox or WebKit (BROWSER) against a
// real herald: serving, live cards, removal, filters and sorting, keyboard reach, and phone width.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { WEBKIT_MIN_WIDTH } from './pages.mjs';
import { ENGINE, Herald, argoApp, argoDelete, boardCards, launchBrowser, openPage, until } from './harness.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** A fresh herald per test, disposed of at its end. */
async function withHerald(t, options) {
  const herald = await Herald.start(options);
  t.after(() => herald.dispose());
  return herald;
}

const cardsByKey = async (page) => Object.fromEntries((await boardCards(page)).map((c) => [c.key, c]));

test('GET / and /ui/herald.js: types, caching, 304, and the page loads nothing from elsewhere', async (t) => {
  const herald = await withHerald(t);
  const page = await fetch(`${herald.url}/`);
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(page.headers.get('cache-control'), 'no-cache');
  assert.match(page.headers.get('content-security-policy'), /connect-src 'self'/);
  assert.match(await page.text(), /<script type="module" src="ui\/herald.js"><\/script>/);

  const module = await fetch(`${herald.url}/ui/herald.js`);
  assert.equal(module.status, 200);
  assert.equal(module.headers.get('content-type'), 'text/javascript; charset=utf-8');
  const etag = module.headers.get('etag');
  assert.match(etag, /^"[0-9a-f]{16}"$/);
  const body = await module.text();
  assert.match(body, /customElements\.define/);
  const again = await fetch(`${herald.url}/ui/herald.js`, { headers: { 'if-none-match': etag } });
  assert.equal(again.status, 304);
  assert.equal((await fetch(`${herald.url}/ui/nope.js`)).status, 404);

  const tab = await openPage(browser);
  await tab.goto(herald.url);
  await until(async () => (await tab.locator('deployment-status-board').evaluate((b) => b.shadowRoot.textContent)).includes('No applications'), {
    what: 'the empty board',
  });
  const foreign = tab.requests.filter((u) => !u.startsWith(`${herald.url}/`) && !u.startsWith('data:'));
  assert.deepEqual(foreign, [], 'every request goes to the hub');
  assert.deepEqual(tab.errors, []);
  await tab.context().close();
});

test('a published application appears as a card and updates without a reload; deletions remove it', async (t) => {
  const herald = await withHerald(t);
  // Published before the page loads: it arrives with the snapshot.
  await herald.publish(argoApp('prod', 'web'));
  const page = await openPage(browser);
  await page.goto(herald.url);
  await page.evaluate(() => (window.sameDocument = true));
  await until(async () => (await cardsByKey(page))['prod/web'], { what: 'the snapshot card' });

  // Live: a new application, then a change to the first.
  await herald.publish(argoApp('staging', 'api', { project: 'payments', healthStatus: 'Progressing', syncStatus: 'OutOfSync', operationPhase: 'Running' }));
  const api = await until(async () => (await cardsByKey(page))['staging/api'], { what: 'the live card' });
  assert.deepEqual(
    { health: api.health, sync: api.sync, operation: api.operation },
    { health: 'Progressing', sync: 'OutOfSync', operation: 'Running' },
  );
  await herald.publish(
    argoApp('prod', 'web', { healthStatus: 'Degraded', operationPhase: 'Failed', revision: 'ffff0000aaaa', message: 'ImagePullBackOff' }),
  );
  const web = await until(async () => {
    const c = (await cardsByKey(page))['prod/web'];
    return c?.health === 'Degraded' && c;
  }, { what: 'the updated card' });
  assert.equal(web.revision, 'ffff0000aaaa');
  assert.equal(web.message, 'ImagePullBackOff');
  assert.equal(web.operation, 'Failed');

  // Badges carry words and an icon, not only a colour.
  const badge = await page.locator('deployment-status-board').evaluate((b) => {
    const el = b.shadowRoot.querySelector('[data-key="prod/web"] [data-health]');
    return { text: el.textContent.trim(), icon: Boolean(el.querySelector('svg')) };
  });
  assert.deepEqual(badge, { text: 'Health: Degraded', icon: true });

  // A tombstone removes a card; so does a `.deleted` type without one.
  await herald.publish(argoDelete('prod', 'web'));
  await until(async () => !(await cardsByKey(page))['prod/web'], { what: 'the tombstone to remove the card' });
  await herald.publish({ ...argoApp('staging', 'api'), type: 'application.deleted' });
  await until(async () => (await boardCards(page)).length === 0, { what: 'the .deleted event to remove the card' });

  assert.equal(await page.evaluate(() => window.sameDocument), true, 'no reload happened');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('herald serve --demo: simulated applications are labelled as such, real ones are not', async (t) => {
  const herald = await withHerald(t, { args: ['--demo'] });
  // A real application beside the simulated ones (the demo owns only its demo-* namespaces).
  await herald.publish(argoApp('prod', 'web'));
  const page = await openPage(browser);
  await page.goto(herald.url);
  const cards = await until(async () => {
    const c = await cardsByKey(page);
    return Object.keys(c).length >= 8 && c;
  }, { what: 'the seven demo applications and the real one' });
  const simulated = Object.values(cards).filter((c) => c.demo).map((c) => c.key).sort();
  assert.equal(simulated.length, 7, JSON.stringify(cards));
  assert.ok(simulated.every((k) => k.startsWith('demo-')), simulated.join());
  assert.equal(cards['prod/web'].demo, false, 'a real application is not marked');
  const banner = await page.locator('deployment-status-board').evaluate((b) => b.shadowRoot.querySelector('.banner.demo')?.textContent ?? '');
  assert.match(banner, /Demo data/);
  assert.match(banner, /herald serve --demo/);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('the board filters by name, project and namespace, and sorts', async (t) => {
  const herald = await withHerald(t);
  await herald.publish([
    argoApp('prod', 'checkout', { project: 'payments', healthStatus: 'Healthy' }),
    argoApp('prod', 'search', { project: 'storefront', healthStatus: 'Degraded' }),
    argoApp('staging', 'checkout', { project: 'payments', healthStatus: 'Progressing' }),
    argoApp('dev', 'batch', { project: 'platform', healthStatus: 'Missing' }),
  ]);
  const page = await openPage(browser);
  await page.goto(herald.url);
  const board = page.locator('deployment-status-board');
  await until(async () => (await boardCards(page)).length === 4, { what: 'four cards' });
  const keys = async () => (await boardCards(page)).map((c) => c.key);

  assert.deepEqual(await keys(), ['dev/batch', 'prod/checkout', 'staging/checkout', 'prod/search'], 'by name');
  await board.getByLabel('Filter').fill('check');
  await until(async () => (await keys()).join() === 'prod/checkout,staging/checkout', { what: 'the name filter' });
  await board.getByLabel('Filter').fill('');
  await board.getByLabel('Project').selectOption('storefront');
  await until(async () => (await keys()).join() === 'prod/search', { what: 'the project filter' });
  await board.getByLabel('Project').selectOption('');
  await board.getByLabel('Namespace').selectOption('prod');
  await until(async () => (await keys()).join() === 'prod/checkout,prod/search', { what: 'the namespace filter' });
  await board.getByLabel('Namespace').selectOption('');
  await board.getByLabel('Sort by').selectOption('health');
  await until(async () => (await keys()).join() === 'prod/search,dev/batch,staging/checkout,prod/checkout', {
    what: 'worst health first',
  });
  await board.getByLabel('Sort by').selectOption('namespace');
  await until(async () => (await keys())[0] === 'dev/batch', { what: 'by namespace' });
  assert.match(await board.locator('.summary').textContent(), /4 applications\s+2 unhealthy\s+1 progressing/);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

// The "proxy" rewrites each request's URL in the browser. Only Chromium's driver can: Firefox ESR
// 153 does not honour the URL given to BiDi's continueRequest (the page gets the path as it
// was), and WebKit's classic WebDriver intercepts nothing.
const rewrites = ENGINE === 'chromium' || `${ENGINE}: its driver cannot rewrite a request's URL`;
test('behind a proxy that mounts the hub at /herald/, the dashboard uses only that path', { skip: rewrites !== true && rewrites }, async (t) => {
  const herald = await withHerald(t);
  await herald.publish(argoApp('prod', 'web'));
  const page = await openPage(browser);
  // The "proxy": /herald/* goes to the hub's /*, and anything else fails.
  const direct = [];
  await page.route(`${herald.url}/**`, (route) => {
    const url = new URL(route.request().url());
    if (!url.pathname.startsWith('/herald/')) {
      direct.push(url.pathname);
      return route.abort();
    }
    url.pathname = url.pathname.slice('/herald'.length);
    return route.continue({ url: url.href });
  });
  await page.goto(`${herald.url}/herald/`);
  await until(async () => (await cardsByKey(page))['prod/web'], { what: 'the card through the proxy' });
  await herald.publish(argoApp('prod', 'api'));
  await until(async () => (await cardsByKey(page))['prod/api'], { what: 'a live card through the proxy' });
  await until(
    async () => (await page.locator('herald-node-stats').evaluate((s) => s.shadowRoot.querySelector('[data-stat="status"]').textContent)).includes('ready'),
    { what: 'node tiles through the proxy' },
  );
  assert.deepEqual(direct, [], 'no request bypassed the path');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('keyboard: Tab reaches the filter, the selects and every card', async (t) => {
  const herald = await withHerald(t);
  await herald.publish([argoApp('prod', 'a'), argoApp('prod', 'b'), argoApp('prod', 'c')]);
  const page = await openPage(browser);
  await page.goto(herald.url);
  await until(async () => (await boardCards(page)).length === 3, { what: 'three cards' });

  // The skip link comes first and jumps to the content.
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.textContent), 'Skip to content');

  const focused = () =>
    page.evaluate(() => {
      let el = document.activeElement;
      while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
      return el ? { tag: el.tagName.toLowerCase(), label: el.getAttribute('aria-label') ?? el.labels?.[0]?.textContent.trim() ?? el.textContent.trim() } : null;
    });
  const seen = [];
  for (let i = 0; i < 40; i++) {
    await page.keyboard.press('Tab');
    const f = await focused();
    seen.push(f);
    if (f?.label?.startsWith('c in prod')) break;
  }
  const labels = seen.map((f) => `${f.tag}:${f.label.split('\n')[0].trim()}`);
  const at = (pattern) => labels.findIndex((l) => pattern.test(l));
  const filter = at(/^input:Filter/);
  const sort = at(/^select:Sort by/);
  const cards = ['a', 'b', 'c'].map((n) => at(new RegExp(`^article:${n} in prod: Healthy, Synced`)));
  assert.ok(filter >= 0 && sort > filter, `filter then sort in ${labels}`);
  assert.ok(at(/^select:Project/) > filter && at(/^select:Namespace/) > filter, labels.join());
  assert.ok(cards.every((c, i) => c > sort && (i === 0 || c > cards[i - 1])), `cards in order: ${labels}`);

  // The focused card is visibly marked.
  const outline = await page.evaluate(() => {
    let el = document.activeElement;
    while (el?.shadowRoot?.activeElement) el = el.shadowRoot.activeElement;
    return getComputedStyle(el).outlineStyle;
  });
  assert.equal(outline, 'solid');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('at phone width (375 px) nothing scrolls sideways, even with long names and messages', async (t) => {
  const herald = await withHerald(t);
  await herald.publish([
    argoApp('a-very-long-namespace-name-for-testing', 'an-application-with-an-unreasonably-long-name-that-never-ends', {
      message: 'x'.repeat(300),
      revision: 'refs/heads/feature/some-extremely-long-branch-name-without-any-breaks-at-all',
    }),
    argoApp('prod', 'web'),
  ]);
  // WebKit cannot do 375 px: WebKitGTK's MiniBrowser will not make its window narrower than
  // 447 px, so there the test runs at the narrowest width it takes, and says so.
  const width = ENGINE === 'webkit' ? WEBKIT_MIN_WIDTH : 375;
  if (width !== 375) t.diagnostic(`${ENGINE}: run at ${width} px, the narrowest window it takes, not 375 px`);
  const page = await openPage(browser, { width, height: 800 });
  await page.goto(herald.url);
  await until(async () => (await boardCards(page)).length === 2, { what: 'two cards' });
  await herald.publish({ topic: `items/${'segment-'.repeat(20)}end`, type: 'item.created', data: { long: 'y'.repeat(500) } });
  await until(
    async () => (await page.locator('herald-inspector').evaluate((i) => i.shadowRoot.querySelectorAll('.events li').length)) > 0,
    { what: 'the inspector row' },
  );
  // The token field, open, too.
  await page.locator('herald-token-field summary').click();
  await page.locator('herald-token-field').getByLabel(/JWT/).waitFor();
  const widths = await page.evaluate(() => ({
    scroll: document.documentElement.scrollWidth,
    client: document.documentElement.clientWidth,
  }));
  assert.ok(widths.scroll <= widths.client, `page is ${widths.scroll}px wide in a ${widths.client}px viewport`);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
