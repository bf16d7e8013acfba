// Node's `eventsource` package (v4: the EventSource API on fetch) through compat/scenario.mjs,
// as a Node service would use it: no CORS, the same reconnects as a browser.

import { test } from 'node:test';
import { createRequire } from 'node:module';
import { EventSource } from 'eventsource';
import { runScenario, startHerald } from './scenario.mjs';

const version = createRequire(import.meta.url)('eventsource/package.json').version;

test(`eventsource ${version} (Node ${process.version}): named events, SIGTERM and kill -9 restarts`, async (t) => {
  const herald = await startHerald();
  t.after(() => herald.dispose());
  const seen = { received: [], shutdowns: 0, resets: 0 };
  let es = null;
  t.after(() => es?.close());
  const result = await runScenario(herald, {
    open: async (stream) => {
      es = new EventSource(stream);
      const keep = (e) => seen.received.push({ id: e.lastEventId, type: e.type, data: e.data });
      es.onmessage = keep;
      es.addEventListener('compat.tick', keep);
      es.addEventListener('herald.shutdown', () => seen.shutdowns++);
      es.addEventListener('herald.reset', () => seen.resets++);
    },
    state: async () => ({ ...seen, readyState: es.readyState }),
  });
  t.diagnostic(`eventsource ${version}: ${JSON.stringify(result)}`);
});
