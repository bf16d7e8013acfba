// The scenario every client of the compatibility suite goes through, against a real herald
// (the binary cargo built, default durable store) restarted twice under it:
//
// 1. e0 is published; the client opens `/events?topic=compat/*&lastEventID=<e0>` after e1 and
//    e2 were published (a replay), then e3 comes live. e1, e3, ... are named (`compat.tick`),
//    the others unnamed, so both `onmessage` and a named listener are needed.
// 2. SIGTERM: the node drains (the open stream gets `herald.shutdown`; a reconnect inside
//    `drain_grace_ms` must get 200 + `herald.shutdown`, never a 503, after which EventSource
//    gives up for good), exits 0 and comes back on the same port and data. Two events are
//    published at once after the restart, while the client is still away (replayed to it), one
//    more once it is back (live).
// 3. kill -9: the same, the node crashing instead of draining.
//
// The client must end with exactly e1..e9: no gap, no duplicate, in order. It reconnects with
// the newest id in `Last-Event-ID` while its URL still says `lastEventID=<e0>`: the header wins
// (SPEC §2), or it would get e1.. again.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Herald, freePort, until } from '../test/harness.mjs';

/** The `retry:` the compat node sends: short, so restarts cost little CI time. */
export const RETRY_MS = 250;
/** Long enough that a client retrying every RETRY_MS reconnects inside it at least twice. */
export const DRAIN_GRACE_MS = 1500;

/**
 * A herald for the suite: the default (durable, embedded) store, a short `retry:`, and CORS for
 * `origin` (the page's). Configured through a file, never through HERALD_* variables.
 */
export async function startHerald({ origin = null } = {}) {
  const dir = await mkdtemp(join(tmpdir(), 'herald-compat-'));
  const config = join(dir, 'herald.toml');
  const cors = origin ? `\n[cors]\nallowed_origins = [${JSON.stringify(origin)}]\n` : '';
  await writeFile(config, `retry_ms = ${RETRY_MS}\ndrain_grace_ms = ${DRAIN_GRACE_MS}\n${cors}`);
  const herald = await Herald.start({ args: ['--config', config] });
  const dispose = herald.dispose.bind(herald);
  herald.dispose = async () => {
    await dispose();
    await rm(dir, { recursive: true, force: true });
  };
  return herald;
}

/**
 * Serves compat/page.html on its own port: another origin than the hub's. With `reopen`, the
 * page reopens an EventSource the browser closed for good (see browsers.test.mjs).
 */
export async function servePage({ reopen = false } = {}) {
  const html = await readFile(new URL('./page.html', import.meta.url));
  const server = createServer((req, res) => {
    if (new URL(req.url, 'http://x').pathname !== '/page.html') {
      res.writeHead(404).end();
      return;
    }
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' }).end(html);
  });
  const port = await freePort();
  await new Promise((resolve) => server.listen(port, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${port}`;
  return {
    origin,
    url: (stream) => `${origin}/page.html?stream=${encodeURIComponent(stream)}${reopen ? '&reopen=1' : ''}`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** Event `n` of the scenario: odd ones named `compat.tick`, even ones unnamed. */
function event(n) {
  return n % 2 ? { topic: 'compat/odd', type: 'compat.tick', data: { n } } : { topic: 'compat/even', data: { n } };
}

/**
 * Runs the scenario. `open(streamUrl)` starts the client; `state()` returns what it saw:
 * `{ received: [{id, type, data}], shutdowns, resets, readyState? }` (`data` as the wire's text).
 */
export async function runScenario(herald, { open, state }) {
  const published = [];
  const publish = async (n) => {
    const [id] = await herald.publish(event(n));
    published.push({ id, type: event(n).type ?? 'message', data: JSON.stringify({ n }) });
  };
  const [e0] = await herald.publish(event(0));
  await publish(1);
  await publish(2);
  await open(`${herald.url}/events?topic=compat/*&lastEventID=${encodeURIComponent(e0)}`);
  const has = (n, what) =>
    until(async () => (await state()).received.length >= n, { what: `${n} events ${what}` }).catch(async (e) => {
      throw new Error(`${e.message}\nclient saw: ${JSON.stringify(await state())}`);
    });
  await has(2, 'replayed after e0');
  await publish(3);
  await has(3, 'live');

  const restarts = [];
  for (const signal of ['SIGTERM', 'SIGKILL']) {
    const before = (await state()).shutdowns;
    const how = await herald.stop(signal);
    if (signal === 'SIGTERM') assert.equal(how.code, 0, `a drain exits 0: ${JSON.stringify(how)}`);
    restarts.push({ signal, shutdowns: (await state()).shutdowns - before });
    await herald.start();
    // The client is still away (waiting to retry): these reach it by replay.
    await publish(published.length + 1);
    await publish(published.length + 1);
    await has(published.length, `after ${signal}, replayed`);
    await publish(published.length + 1);
    await has(published.length, `after ${signal}, live`);
  }

  const seen = await state();
  assert.deepEqual(seen.received, published, 'exactly the published sequence: no gap, no duplicate');
  assert.equal(seen.resets, 0, 'every id resumed');
  // The open stream's `herald.shutdown`, then at least one more: a reconnect inside the drain
  // grace, answered 200 + `herald.shutdown` rather than a 503 that would have ended the client.
  assert.ok(
    restarts[0].shutdowns >= 2,
    `a reconnect landed in the ${DRAIN_GRACE_MS} ms drain and was told herald.shutdown: ${JSON.stringify(restarts)}`,
  );
  if (seen.readyState !== undefined) assert.notEqual(seen.readyState, 2, 'the EventSource is not closed for good');
  return { published: published.length, restarts };
}
