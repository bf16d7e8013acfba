// <herald-stream> on a page of its own, as a portal would use it: DOM events per type, state
// changes, control events, errors, staleness and prompt reconnects after `herald.shutdown`.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ENGINE, Herald, launchBrowser, openPage, sleep, until } from './harness.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/**
 * Opens a page on the hub's origin with `body` in it, after the module; `window.log` records
 * every event the stream elements fire, in order.
 */
async function portal(herald, body) {
  const page = await openPage(browser);
  const html = `<!doctype html><meta charset="utf-8">
        <script>
          window.log = [];
          for (const type of ['herald-event', 'herald-state', 'item.created', 'message',
                              'herald.reset', 'herald.synced', 'herald.shutdown']) {
            document.addEventListener(type, (e) => log.push({ on: e.target.id, type, at: Date.now(), detail: e.detail }));
          }
        </script>
        <script type="module" src="/ui/herald.js"></script>
        ${body}`;
  if (ENGINE === 'webkit') {
    // WebKit's driver cannot serve a page of ours: open a page of the hub's origin that has no
    // CSP (the module's own text) and write the portal into it.
    await page.goto(`${herald.url}/ui/herald.js`);
    await page.evaluate((html) => {
      document.open();
      document.write(html);
      document.close();
    }, html);
    return page;
  }
  await page.route(`${herald.url}/portal.html`, (route) => route.fulfill({ contentType: 'text/html', body: html }));
  await page.goto(`${herald.url}/portal.html`);
  return page;
}

const log = (page, type) => page.evaluate((type) => window.log.filter((e) => !type || e.type === type), type);
const states = async (page, id) => (await log(page, 'herald-state')).filter((e) => e.on === id).map((e) => e.detail.state);

test('<herald-stream> fires herald-event and an event per type, and tells its state', async (t) => {
  const herald = await Herald.start();
  t.after(() => herald.dispose());
  const page = await portal(herald, '<herald-stream id="s" topics="items/*, orders/**"></herald-stream>');
  await until(async () => (await states(page, 's')).includes('live'), { what: 'live' });
  assert.deepEqual(await states(page, 's'), ['connecting', 'live']);

  const ids = await herald.publish([
    { topic: 'items/1', type: 'item.created', key: 'k1', data: { qty: 3 } },
    { topic: 'other/x', type: 'item.created', data: 'not for us' },
    { topic: 'orders/eu/7', data: 'plain text' },
  ]);
  const events = await until(async () => {
    const e = await log(page, 'herald-event');
    return e.length === 2 && e;
  }, { what: 'two events' });
  assert.deepEqual(
    events.map((e) => e.detail),
    [
      { id: ids[0], type: 'item.created', data: { qty: 3 }, text: '{"qty":3}' },
      { id: ids[2], type: 'message', data: 'plain text', text: 'plain text' },
    ],
  );
  assert.deepEqual((await log(page, 'item.created')).map((e) => e.detail.id), [ids[0]]);
  assert.deepEqual((await log(page, 'message')).map((e) => e.detail.id), [ids[2]]);
  assert.equal(await page.locator('#s').evaluate((s) => s.lastEventId), ids[2]);
  assert.equal(await page.locator('#s').getAttribute('state'), 'live');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('<herald-stream> with `envelope` tells topic, key and tombstone; `token` goes as access_token', async (t) => {
  const herald = await Herald.start();
  t.after(() => herald.dispose());
  const page = await portal(herald, '<herald-stream id="s" topics="items/**" envelope token="t0k.en"></herald-stream>');
  await until(async () => (await states(page, 's')).includes('live'), { what: 'live' });
  const stream = page.requests.find((u) => u.includes('/events?'));
  assert.equal(new URL(stream).searchParams.get('access_token'), 't0k.en');
  assert.equal(new URL(stream).searchParams.get('envelope'), 'true');

  const [id] = await herald.publish({ topic: 'items/a/b', type: 'item.deleted', key: 'ab', tombstone: true, data: null });
  const [event] = await until(() => log(page, 'herald-event').then((e) => e.length && e), { what: 'the event' });
  assert.deepEqual(event.detail, {
    id,
    type: 'item.deleted',
    topic: 'items/a/b',
    key: 'ab',
    tombstone: true,
    data: null,
    // The envelope as SPEC §2 orders it (the server embeds the stored payload bytes verbatim).
    text: '{"topic":"items/a/b","key":"ab","tombstone":true,"data":null}',
  });
  await page.context().close();
});

test('a refused subscription (400) is state `error` with the reason, and is not retried', async (t) => {
  const herald = await Herald.start();
  t.after(() => herald.dispose());
  const page = await portal(herald, '<herald-stream id="s" topics="a/**/b"></herald-stream>');
  await until(async () => (await states(page, 's')).includes('error'), { what: 'the error state' });
  const error = await page.locator('#s').evaluate((s) => s.error);
  assert.equal(error.status, 400);
  assert.equal(error.error, 'bad_request');
  assert.match(error.detail, /a\/\*\*\/b/);
  await sleep(2500);
  assert.equal(page.requests.filter((u) => u.includes('/events?')).length, 1, 'no retry');

  // A new attribute value is a new attempt.
  await page.locator('#s').evaluate((s) => (s.topics = 'a/**'));
  await until(async () => (await page.locator('#s').getAttribute('state')) === 'live', { what: 'live after the fix' });
  await page.context().close();
});

test('a hub gone for longer than stale-after makes the stream stale; it comes back live and resumes', async (t) => {
  const herald = await Herald.start();
  t.after(() => herald.dispose());
  const page = await portal(herald, '<herald-stream id="s" topics="items/*" stale-after="1"></herald-stream>');
  await until(async () => (await states(page, 's')).includes('live'), { what: 'live' });
  await herald.publish({ topic: 'items/1', data: 1 });
  await until(() => log(page, 'herald-event').then((e) => e.length === 1), { what: 'the first event' });

  await herald.stop('SIGKILL');
  await until(async () => (await states(page, 's')).includes('stale'), { what: 'stale', timeout: 5000 });
  assert.deepEqual((await states(page, 's')).slice(-2), ['reconnecting', 'stale']);
  const since = await page.locator('#s').evaluate((s) => s.disconnectedSince);
  assert.ok(Date.now() - since >= 1000, 'disconnected for over a second');

  await herald.start();
  await herald.publish({ topic: 'items/2', data: 2 });
  await until(() => log(page, 'herald-event').then((e) => e.length === 2), { what: 'the event published while away' });
  assert.equal((await states(page, 's')).at(-1), 'live');
  const resumed = page.requests.filter((u) => u.includes('/events?')).at(-1);
  assert.ok(new URL(resumed).searchParams.get('lastEventID'), 'resumed from its last id');
  await page.context().close();
});

// Timing each request needs request events, which WebKit's classic WebDriver does not give.
const requestEvents = ENGINE !== 'webkit' || 'webkit: its driver reports no request events to time';
test('herald.shutdown: the stream reconnects at once, not after a backoff', { skip: requestEvents !== true && requestEvents }, async (t) => {
  const herald = await Herald.start();
  t.after(() => herald.dispose());
  const page = await portal(herald, '<herald-stream id="s" topics="items/*"></herald-stream>');
  await until(async () => (await states(page, 's')).includes('live'), { what: 'live' });
  const attempts = [];
  page.on('request', (r) => r.url().includes('/events?') && attempts.push(Date.now()));
  await herald.stop('SIGTERM');
  const [shutdown] = await log(page, 'herald.shutdown');
  assert.ok(shutdown, 'herald.shutdown reached the page');
  await until(() => attempts.length > 0, { what: 'a reconnect attempt' });
  assert.ok(attempts[0] - shutdown.at < 1000, `reconnected ${attempts[0] - shutdown.at} ms after the shutdown`);
  await page.context().close();
});

test('an unknown last-event-id gets herald.reset, then the snapshot, then herald.synced', async (t) => {
  const herald = await Herald.start();
  t.after(() => herald.dispose());
  await herald.publish([
    { topic: 'items/1', key: '1', type: 'item.created', data: { v: 1 } },
    { topic: 'items/2', key: '2', type: 'item.created', data: { v: 2 } },
  ]);
  const page = await portal(herald, '<herald-stream id="s" topics="items/*" snapshot last-event-id="bogus"></herald-stream>');
  await until(() => log(page, 'herald.synced').then((e) => e.length), { what: 'herald.synced' });
  const sequence = (await log(page)).filter((e) => e.type !== 'herald-state' && e.type !== 'item.created');
  assert.deepEqual(
    sequence.map((e) => [e.type, e.detail?.data?.v ?? e.detail?.reason]),
    [
      ['herald.reset', 'unknown_id'],
      ['herald-event', 1],
      ['herald-event', 2],
      ['herald.synced', undefined],
    ],
  );
  assert.equal(new URL(page.requests.find((u) => u.includes('/events?'))).searchParams.get('lastEventID'), 'bogus');
  await page.context().close();
});
