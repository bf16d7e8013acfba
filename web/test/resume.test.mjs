// Resuming: a board survives a restart of its hub (drained or killed) without losing an event,
// pauses while its page is hidden and resumes from its last id, and re-snapshots after
// `herald.reset`.
//
// Hiding a page: headless Chromium keeps every page visible, and neither CDP's
// Page.setWebLifecycleState (frozen/active) nor Emulation.setFocusEmulationEnabled changes
// `document.visibilityState` (tried with Chromium 156), so the tests override the property and
// dispatch `visibilitychange`, which is exactly what the component listens to.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  ENGINE,
  Herald,
  argoApp,
  argoDelete,
  boardCards,
  boardConnection,
  launchBrowser,
  openPage,
  setVisibility,
  until,
} from './harness.mjs';

let browser;
before(async () => {
  browser = await launchBrowser();
});
after(async () => {
  await browser?.close();
});

const cardsByKey = async (page) => Object.fromEntries((await boardCards(page)).map((c) => [c.key, c]));

/** The `/events` requests the board made, newest last, as URLs. */
const boardStreams = (page) =>
  page.requests.filter((u) => u.includes('/events?') && u.includes('argocd')).map((u) => new URL(u));

for (const signal of ['SIGTERM', 'SIGKILL']) {
  test(`after a restart (${signal}) the board resumes from its last id and shows every event`, async (t) => {
    const herald = await Herald.start();
    t.after(() => herald.dispose());
    await herald.publish(argoApp('prod', 'one'));
    const page = await openPage(browser);
    await page.goto(herald.url);
    await until(async () => (await cardsByKey(page))['prod/one'], { what: 'the first card' });
    await herald.publish(argoApp('prod', 'two'));
    await until(async () => (await cardsByKey(page))['prod/two'], { what: 'the live card' });

    // Published just before the node goes away: whether or not the page saw it, it must show.
    await herald.publish(argoApp('prod', 'three', { healthStatus: 'Progressing' }));
    const how = await herald.stop(signal);
    if (signal === 'SIGTERM') assert.equal(how.code, 0, 'a drain exits 0');
    await until(async () => /Reconnecting|Stale/.test(await boardConnection(page)), { what: 'the board to notice' });

    // Keep the page off the network while the node restarts and takes new events, so they are
    // certainly published before the page reconnects; then let it back on.
    // (WebKit's classic WebDriver has no offline switch: there the page may come back before
    // these are published, and gets them live instead of by replay; it must show them either way.)
    if (ENGINE !== 'webkit') await page.context().setOffline(true);
    await herald.start();
    await herald.publish([
      argoApp('prod', 'four'),
      argoApp('prod', 'one', { healthStatus: 'Degraded', message: 'changed while away' }),
      argoDelete('prod', 'two'),
    ]);
    const before = boardStreams(page).length;
    if (ENGINE !== 'webkit') await page.context().setOffline(false);

    const cards = await until(async () => {
      const c = await cardsByKey(page);
      return c['prod/four'] && c['prod/one']?.health === 'Degraded' && !c['prod/two'] && c;
    }, { what: 'every event of the restart' });
    assert.deepEqual(Object.keys(cards).sort(), ['prod/four', 'prod/one', 'prod/three']);
    assert.equal(cards['prod/three'].health, 'Progressing');
    assert.equal(await boardConnection(page), 'Live');

    // It resumed (replay from its last id), it did not just take a new snapshot.
    const resumed = boardStreams(page).slice(before).at(-1);
    assert.ok(resumed?.searchParams.get('lastEventID'), `resumed with a last id: ${resumed}`);
    // Chromium logs the broken and refused connections itself; anything else is ours.
    const ours = page.errors.filter((e) => !/Failed to load resource: (net::ERR_|the server responded with a status of 503)/.test(e));
    assert.deepEqual(ours, []);
    await page.context().close();
  });
}

test('hidden: the stream is let go; visible again: it resumes from its last id', async (t) => {
  const herald = await Herald.start();
  t.after(() => herald.dispose());
  const [firstId] = await herald.publish(argoApp('prod', 'web'));
  const page = await openPage(browser);
  await page.goto(herald.url);
  await until(async () => (await cardsByKey(page))['prod/web'], { what: 'the card' });
  const [lastSeen] = await herald.publish(argoApp('prod', 'web', { revision: 'bbbb' }));
  await until(async () => (await cardsByKey(page))['prod/web']?.revision === 'bbbb', { what: 'the update' });
  assert.ok(lastSeen > firstId);
  await until(async () => (await herald.clients()) === 2, { what: 'board and inspector streams' });

  await setVisibility(page, 'hidden');
  await until(async () => (await herald.clients()) === 0, { what: 'the streams to close while hidden' });
  assert.equal(await boardConnection(page), 'Paused');
  await herald.publish([argoApp('prod', 'web', { revision: 'cccc' }), argoApp('prod', 'api')]);
  await new Promise((r) => setTimeout(r, 300));
  assert.equal((await cardsByKey(page))['prod/web'].revision, 'bbbb', 'nothing arrives while hidden');

  const before = boardStreams(page).length;
  await setVisibility(page, 'visible');
  await until(async () => {
    const c = await cardsByKey(page);
    return c['prod/web']?.revision === 'cccc' && c['prod/api'];
  }, { what: 'the events published while hidden' });
  const resumed = boardStreams(page).slice(before);
  assert.equal(resumed.length, 1, 'one new request');
  assert.equal(resumed[0].searchParams.get('lastEventID'), lastSeen, 'from the last id it saw');
  assert.equal(await boardConnection(page), 'Live');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});

test('herald.reset: a truncated last id gets a fresh snapshot, and cards gone from it go', async (t) => {
  // Retention keeps three events, so a few events while hidden push the page's id out of it.
  const herald = await Herald.start({ env: { HERALD_RETENTION_MAX_EVENTS: '3' } });
  t.after(() => herald.dispose());
  await herald.publish([argoApp('prod', 'a'), argoApp('prod', 'b'), argoApp('prod', 'c')]);
  const page = await openPage(browser);
  await page.goto(herald.url);
  await until(async () => (await boardCards(page)).length === 3, { what: 'three cards' });
  await page.locator('deployment-status-board').evaluate((board) => {
    window.resets = [];
    board.shadowRoot.querySelector('herald-stream').addEventListener('herald.reset', (e) => resets.push(e.detail));
  });

  await setVisibility(page, 'hidden');
  await until(async () => (await herald.clients()) === 0, { what: 'the streams to close' });
  // `a` is deleted, and its tombstone is then trimmed away with the page's last id: only the
  // snapshot can tell the page that `a` is gone.
  await herald.publish(argoDelete('prod', 'a'));
  for (let i = 1; i <= 4; i++) await herald.publish(argoApp('prod', 'b', { revision: `rev${i}` }));
  await setVisibility(page, 'visible');

  await until(async () => {
    const c = await cardsByKey(page);
    return !c['prod/a'] && c['prod/b']?.revision === 'rev4' && c['prod/c'];
  }, { what: 'the re-snapshot' });
  assert.deepEqual(await page.evaluate(() => window.resets), [{ reason: 'history_truncated' }]);
  assert.equal(await boardConnection(page), 'Live');
  assert.deepEqual(page.errors, []);
  await page.context().close();
});
