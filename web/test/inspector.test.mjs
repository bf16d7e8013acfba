// The dashboard's event inspector and node tiles in Chromium against a real herald.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { Herald, launchBrowser, openPage, sleep, until } from './harness.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

/** The inspector's rows, newest first. */
const rows = (page) =>
  page.locator('herald-inspector').evaluate((inspector) =>
    [...inspector.shadowRoot.querySelectorAll('.events li')].map((li) => ({
      type: li.querySelector('.type').textContent.trim(),
      topic: li.querySelector('.topic')?.textContent.trim() ?? null,
      key: li.querySelector('.key code')?.textContent.trim() ?? null,
      id: li.querySelector('.id code')?.textContent.trim() ?? null,
      tombstone: Boolean(li.querySelector('.badge')),
      payload: li.querySelector('.payload').textContent.trim(),
    })),
  );

test('the inspector shows type, topic, key, id and payload; it re-targets, pauses without loss and clears', async (t) => {
  const herald = await Herald.start();
  t.after(() => herald.dispose());
  const page = await openPage(browser);
  await page.goto(herald.url);
  const inspector = page.locator('herald-inspector');
  await until(async () => (await herald.clients()) === 2, { what: 'board and inspector streams' });

  const ids = await herald.publish([
    { topic: 'items/A01', type: 'item.created', key: 'A01', data: { qty: 3 } },
    { topic: 'orders/eu/1', data: 'plain text' },
    { topic: 'items/A01', type: 'item.deleted', key: 'A01', tombstone: true, data: null },
  ]);
  const shown = await until(async () => {
    const r = await rows(page);
    return r.length === 3 && r;
  }, { what: 'three rows' });
  assert.deepEqual(shown, [
    { type: 'item.deleted', topic: 'items/A01', key: 'A01', id: ids[2], tombstone: true, payload: 'null' },
    { type: 'message', topic: 'orders/eu/1', key: null, id: ids[1], tombstone: false, payload: 'plain text' },
    { type: 'item.created', topic: 'items/A01', key: 'A01', id: ids[0], tombstone: false, payload: '{ "qty": 3 }' },
  ]);

  // A new pattern, from the form: the list starts over with only what matches.
  await inspector.getByLabel('Pattern').fill('orders/**');
  await inspector.getByLabel('Pattern').press('Enter');
  await until(async () => (await rows(page)).length === 0, { what: 'the list to start over' });
  await until(() => page.requests.some((u) => u.includes('topic=orders%2F**')), { what: 'the new subscription' });
  await until(async () => (await herald.clients()) === 2, { what: 'the new stream' });
  await herald.publish([{ topic: 'items/x', data: 1 }, { topic: 'orders/us/2', type: 'order.placed', data: { n: 2 } }]);
  await until(async () => (await rows(page)).map((r) => r.topic).join() === 'orders/us/2', { what: 'only the match' });

  // Pause: the stream is let go, nothing shows; resume: what came meanwhile is replayed.
  await inspector.getByRole('button', { name: 'Pause' }).click();
  await until(async () => (await herald.clients()) === 1, { what: 'the inspector stream to close' });
  assert.equal(await inspector.getByRole('button', { name: 'Resume' }).getAttribute('aria-pressed'), 'true');
  await herald.publish([{ topic: 'orders/us/3', data: 3 }, { topic: 'orders/us/4', data: 4 }]);
  await sleep(300);
  assert.equal((await rows(page)).length, 1, 'nothing while paused');
  await inspector.getByRole('button', { name: 'Resume' }).click();
  await until(async () => (await rows(page)).map((r) => r.topic).join() === 'orders/us/4,orders/us/3,orders/us/2', {
    what: 'the events of the pause',
  });

  await inspector.getByRole('button', { name: 'Clear' }).click();
  assert.equal((await rows(page)).length, 0);
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('the node tiles show readiness, open streams and event rates from /ready and /metrics', async (t) => {
  const herald = await Herald.start();
  t.after(() => herald.dispose());
  const page = await openPage(browser);
  await page.goto(herald.url);
  const stats = page.locator('herald-node-stats');
  await stats.evaluate((s) => (s.interval = 1));
  const stat = (name) => stats.evaluate((s, name) => s.shadowRoot.querySelector(`[data-stat="${name}"]`).textContent.replace(/\s+/g, ' ').trim(), name);

  await until(async () => (await stat('status')) === 'ready', { what: 'ready' });
  await until(async () => (await stat('clients')) === String(await herald.clients()) && (await stat('clients')) === '2', {
    what: 'two open streams (board and inspector)',
  });

  // Publish steadily for a few polls: the published rate must show, and be about right.
  const started = Date.now();
  let published = 0;
  while (Date.now() - started < 3500) {
    await herald.publish(Array.from({ length: 5 }, (_, i) => ({ topic: `load/${i}`, data: i })));
    published += 5;
    await sleep(100);
  }
  const rate = Number((await stat('publishRate')).replace(/[^\d.]/g, ''));
  const actual = published / ((Date.now() - started) / 1000);
  assert.ok(rate > actual / 3 && rate < actual * 3, `shown ${rate}/s, published ${actual.toFixed(1)}/s`);
  // The inspector (on **) receives them all, so delivery is at least publication.
  const delivered = Number((await stat('deliverRate')).replace(/[^\d.]/g, ''));
  assert.ok(delivered > 0, `delivered ${delivered}/s`);
  assert.match(await stat('latency'), /ms$/);

  // The node goes away: the tiles say so.
  await herald.stop('SIGKILL');
  await until(async () => (await stat('status')) === 'unreachable', { what: 'unreachable' });
  assert.deepEqual(page.errors.filter((e) => !/Failed to load resource: net::ERR_/.test(e)), []);
  await page.context().close();
});
