// The browser's own EventSource (no library of ours) in Chromium, Firefox ESR and WebKit, on a
// page of another origin than the hub's (CORS with credentials), through compat/scenario.mjs:
// replay, named events, a SIGTERM drain and a kill -9, ending with exactly what was published.
//
// Firefox (ESR 153) closes an EventSource for good when a reconnect is refused (NS_ERROR_
// CONNECTION_REFUSED: nothing listens while a lone node restarts), where Chromium and WebKit keep
// retrying. Its page therefore reopens a closed EventSource with the last id in the URL, as the
// README tells users to; that it had to is reported, and its drain is still checked: a reconnect
// inside the drain must be told `herald.shutdown` (a 503 would not be).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ENGINES, launchEngine } from '../test/engines.mjs';
import { runScenario, servePage, startHerald } from './scenario.mjs';

for (const name of ENGINES) {
  test(`native EventSource in ${name}: cross-origin, named events, SIGTERM and kill -9 restarts`, async (t) => {
    const page = await servePage({ reopen: name === 'firefox' });
    t.after(() => page.close());
    const herald = await startHerald({ origin: page.origin });
    t.after(() => herald.dispose());
    const engine = await launchEngine(name);
    t.after(() => engine.close());
    let tab = null;
    const result = await runScenario(herald, {
      open: async (stream) => {
        tab = await engine.open(page.url(stream));
      },
      state: async () => {
        const seen = JSON.parse(await tab.value('window.compatState()'));
        if (seen.origin !== page.origin) throw new Error(`the page is at ${seen.origin}, not ${page.origin}`);
        return seen;
      },
    });
    const { reopens } = JSON.parse(await tab.value('window.compatState()'));
    if (name !== 'firefox') assert.equal(reopens, 0);
    t.diagnostic(`${engine.name} ${engine.version}: ${JSON.stringify({ ...result, reopens })}`);
  });
}
