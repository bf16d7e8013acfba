// Takes the dashboard screenshots in docs/ (desktop and phone width) against a real herald
// filled with simulated Argo CD applications: `npm run screenshots` (after `cargo build -p
// herald-cli`). Not part of the tests: the pictures change with every run (times, rates).

import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { Herald, ROOT, argoApp, argoDelete, launchBrowser, openPage, sleep } from '../test/harness.mjs';

const minutesAgo = (m) => new Date(Date.now() - m * 60_000).toISOString();

export const DEMO = [
  argoApp('prod', 'checkout', { project: 'payments', lastSync: minutesAgo(3) }),
  argoApp('prod', 'payments-api', {
    project: 'payments',
    healthStatus: 'Degraded',
    operationPhase: 'Failed',
    revision: '9f8e7d6c5b4a39281706f5e4d3c2b1a098765432',
    message: 'one or more synchronization tasks completed unsuccessfully: Deployment/payments-api: ImagePullBackOff',
    lastSync: minutesAgo(12),
  }),
  argoApp('prod', 'storefront', {
    project: 'storefront',
    syncStatus: 'OutOfSync',
    healthStatus: 'Progressing',
    operationPhase: 'Running',
    message: 'waiting for rollout to finish: 2 of 4 updated replicas are available',
    lastSync: minutesAgo(1),
  }),
  argoApp('prod', 'search', { project: 'storefront', lastSync: minutesAgo(47) }),
  argoApp('staging', 'checkout', { project: 'payments', revision: 'c0ffee1234567890abcdef1234567890abcdef12', lastSync: minutesAgo(8) }),
  argoApp('staging', 'recommendations', {
    project: 'storefront',
    healthStatus: 'Suspended',
    operationPhase: '',
    message: 'rollout paused by an operator',
    lastSync: minutesAgo(180),
  }),
  argoApp('platform', 'ingress-nginx', { project: 'platform', revision: 'v4.11.2', lastSync: minutesAgo(2 * 24 * 60) }),
  argoApp('platform', 'cert-manager', {
    project: 'platform',
    syncStatus: 'OutOfSync',
    healthStatus: 'Missing',
    operationPhase: '',
    message: 'Certificate/wildcard is missing',
    lastSync: minutesAgo(26),
  }),
  argoApp('dev', 'sandbox', { project: 'default', syncStatus: 'Unknown', healthStatus: 'Unknown', operationPhase: 'Error', message: 'repository not accessible: authentication required', lastSync: '' }),
];

if (import.meta.url === `file://${process.argv[1]}`) {
  const herald = await Herald.start();
  const browser = await launchBrowser();
  try {
    await herald.publish([...DEMO, argoApp('dev', 'old'), argoDelete('dev', 'old')]);
    await mkdir(join(ROOT, 'docs'), { recursive: true });
    for (const [name, width, height] of [
      ['dashboard-desktop.png', 1280, 1500],
      ['dashboard-phone.png', 375, 2400],
    ]) {
      const page = await openPage(browser, { width, height });
      await page.goto(herald.url);
      // Some traffic for the inspector and the rates (the node tiles poll every 3 s).
      for (let i = 0; i < 8; i++) {
        await herald.publish([
          { topic: `items/A01-000${i}`, type: 'item.updated', key: `A01-000${i}`, data: { qty: 3 + i, bin: 'B-12' } },
          { topic: 'orders/eu/1042', type: 'order.shipped', data: { order: 1042, carrier: 'DHL' } },
        ]);
        await sleep(900);
      }
      await herald.publish(argoApp('prod', 'checkout', { project: 'payments', revision: '77aa88bb99cc00dd11ee22ff33aa44bb55cc66dd', lastSync: minutesAgo(0) }));
      await sleep(1500);
      await page.screenshot({ path: join(ROOT, 'docs', name), fullPage: true });
      // For looking at a long page in pieces: SHOTS_PIECES=dir writes viewport-high slices.
      if (process.env.SHOTS_PIECES) {
        const total = await page.evaluate(() => document.documentElement.scrollHeight);
        for (let y = 0, i = 0; y < total; y += 900, i++) {
          const clip = { x: 0, y, width, height: Math.min(900, total - y) };
          await page.screenshot({ path: join(process.env.SHOTS_PIECES, `${name}-${i}.png`), clip, fullPage: true });
        }
      }
      console.log(`docs/${name}`);
      await page.context().close();
    }
  } finally {
    await browser.close();
    await herald.dispose();
  }
}
