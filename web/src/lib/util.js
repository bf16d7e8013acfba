// Small pure helpers shared by the components; unit-tested in node (test/unit.test.mjs).

/** Splits a `topics` attribute ("a/*, b/**" or "a/* b/**") into patterns. */
export function parseTopics(text) {
  return String(text ?? '')
    .split(/[\s,]+/)
    .filter(Boolean);
}

/**
 * The hub that served this module: the bundle is its `/ui/herald.js`, one level below the hub's
 * root, also behind a proxy that mounts the hub at a path (`/herald/ui/herald.js`). Components
 * talk to it unless given a `url`: for the dashboard and same-origin pages that is this origin,
 * and a portal elsewhere that imports the module from the hub reaches that hub.
 */
export const MODULE_HUB = new URL('../', import.meta.url).href;

/** The URL of an endpoint of the hub at `base` ('' = MODULE_HUB); a base's path is kept. */
export function endpoint(base, path, params = []) {
  const root = new URL(base || MODULE_HUB, globalThis.location?.href);
  if (!root.pathname.endsWith('/')) root.pathname += '/';
  const url = new URL(path.replace(/^\//, ''), root);
  for (const [name, value] of params) url.searchParams.append(name, value);
  return url.href;
}

/** The delay before reconnect attempt `attempt` (0-based): exponential, capped, jittered. */
export function backoff(attempt, baseMs, capMs, random = Math.random) {
  const ceiling = Math.min(capMs, baseMs * 2 ** Math.min(attempt, 16));
  // Between half and all of the ceiling, so a fleet of dashboards does not reconnect in step.
  return Math.round(ceiling * (0.5 + random() / 2));
}

/** A payload as the hub sent it: parsed when it is JSON text, else the text itself. */
export function parsePayload(text) {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

const relative = new Intl.RelativeTimeFormat('en', { numeric: 'auto', style: 'long' });
const UNITS = [
  ['year', 365 * 24 * 3600],
  ['month', 30 * 24 * 3600],
  ['week', 7 * 24 * 3600],
  ['day', 24 * 3600],
  ['hour', 3600],
  ['minute', 60],
  ['second', 1],
];

/** "3 minutes ago" for a date `then` seen at `now` (ms); '' when `then` is not a date. */
export function timeAgo(then, now = Date.now()) {
  const ms = typeof then === 'number' ? then : Date.parse(then);
  if (!Number.isFinite(ms)) return '';
  const seconds = Math.round((ms - now) / 1000);
  if (Math.abs(seconds) < 10) return 'just now';
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === 'second') {
      return relative.format(Math.trunc(seconds / size), unit);
    }
  }
  return '';
}

/** "12 s", "4 min", "2 h": a short duration for status lines. */
export function shortDuration(ms) {
  const s = Math.max(0, Math.round(ms / 1000));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min`;
  return `${Math.floor(s / 3600)} h`;
}

/**
 * Reads Prometheus text into `Map(name → total)`, summing a metric's label sets (what a node-wide
 * rate needs). Histogram series keep their suffixed names (`_sum`, `_count`, `_bucket`).
 */
export function parseMetrics(text) {
  const totals = new Map();
  for (const line of String(text).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})?\s+(\S+)/.exec(line);
    if (!match) continue;
    const value = Number(match[3]);
    if (!Number.isFinite(value)) continue;
    totals.set(match[1], (totals.get(match[1]) ?? 0) + value);
  }
  return totals;
}

/** Per-second rate of a counter between two samples, or null across a reset (a restart). */
export function counterRate(before, after, seconds) {
  if (before == null || after == null || !(seconds > 0) || after < before) return null;
  return (after - before) / seconds;
}

/** "1.2k", "15", "0.4": a rate for a tile. */
export function formatRate(value) {
  if (value == null) return '—';
  if (value >= 10_000) return `${(value / 1000).toFixed(0)}k`;
  if (value >= 1000) return `${(value / 1000).toFixed(1)}k`;
  if (value >= 10) return value.toFixed(0);
  return value.toFixed(1);
}
