// Argo CD's sync, health and operation statuses: how each is shown. Every status has a text and
// an icon of its own shape, so colour is never the only signal.

import { svg } from 'lit';

const icon = (body) => svg`<svg class="icon" viewBox="0 0 16 16" width="16" height="16"
  aria-hidden="true" focusable="false">${body}</svg>`;

export const ICONS = {
  check: icon(svg`<circle cx="8" cy="8" r="7" fill="currentColor"/>
    <path d="M4.5 8.2l2.3 2.3 4.7-4.9" fill="none" stroke="var(--herald-icon-ink, #fff)"
      stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/>`),
  heart: icon(svg`<path d="M8 14.2L2.2 8.6A3.4 3.4 0 0 1 8 3.9a3.4 3.4 0 0 1 5.8 4.7z"
    fill="currentColor"/>`),
  cross: icon(svg`<path d="M8 1.2l6.8 12.6H1.2z" fill="currentColor" stroke="currentColor"
      stroke-width="1.2" stroke-linejoin="round"/>
    <path d="M8 6v3.6" stroke="var(--herald-icon-ink, #fff)" stroke-width="1.8"
      stroke-linecap="round"/>
    <circle cx="8" cy="11.8" r="1" fill="var(--herald-icon-ink, #fff)"/>`),
  spinner: icon(svg`<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="2.2"
      opacity="0.3"/>
    <path class="spin" d="M8 2a6 6 0 0 1 6 6" fill="none" stroke="currentColor" stroke-width="2.2"
      stroke-linecap="round"/>`),
  pause: icon(svg`<rect x="3" y="2.5" width="3.6" height="11" rx="1" fill="currentColor"/>
    <rect x="9.4" y="2.5" width="3.6" height="11" rx="1" fill="currentColor"/>`),
  missing: icon(svg`<circle cx="8" cy="8" r="6" fill="none" stroke="currentColor" stroke-width="2"
    stroke-dasharray="3 2.3"/>`),
  unknown: icon(svg`<circle cx="8" cy="8" r="7" fill="currentColor"/>
    <path d="M6 6.2a2 2 0 1 1 2.8 1.8c-.6.3-.8.7-.8 1.3v.3" fill="none"
      stroke="var(--herald-icon-ink, #fff)" stroke-width="1.6" stroke-linecap="round"/>
    <circle cx="8" cy="11.8" r="0.95" fill="var(--herald-icon-ink, #fff)"/>`),
  outOfSync: icon(svg`<circle cx="8" cy="8" r="7" fill="currentColor"/>
    <path d="M8 11.6V4.8M5.2 7.4L8 4.6l2.8 2.8" fill="none" stroke="var(--herald-icon-ink, #fff)"
      stroke-width="1.8" stroke-linecap="round" stroke-linejoin="round"/>`),
  stop: icon(svg`<rect x="2.5" y="2.5" width="11" height="11" rx="2" fill="currentColor"/>
    <path d="M5.6 5.6l4.8 4.8M10.4 5.6l-4.8 4.8" stroke="var(--herald-icon-ink, #fff)"
      stroke-width="1.7" stroke-linecap="round"/>`),
};

/** `tone` names a colour of the theme; `rank` orders "worst first". */
const HEALTH = {
  Healthy: { tone: 'ok', icon: ICONS.heart, rank: 5 },
  Progressing: { tone: 'info', icon: ICONS.spinner, rank: 2 },
  Degraded: { tone: 'bad', icon: ICONS.cross, rank: 0 },
  Suspended: { tone: 'muted', icon: ICONS.pause, rank: 3 },
  Missing: { tone: 'warn', icon: ICONS.missing, rank: 1 },
  Unknown: { tone: 'muted', icon: ICONS.unknown, rank: 4 },
};

const SYNC = {
  Synced: { tone: 'ok', icon: ICONS.check, label: 'Synced' },
  OutOfSync: { tone: 'warn', icon: ICONS.outOfSync, label: 'Out of sync' },
  Unknown: { tone: 'muted', icon: ICONS.unknown, label: 'Sync unknown' },
};

const OPERATION = {
  Running: { tone: 'info', icon: ICONS.spinner },
  Terminating: { tone: 'warn', icon: ICONS.stop },
  Failed: { tone: 'bad', icon: ICONS.cross },
  Error: { tone: 'bad', icon: ICONS.cross },
  Succeeded: { tone: 'ok', icon: ICONS.check },
};

/** How to show a health status (anything unknown is shown as it came, with the unknown icon). */
export function health(value) {
  const known = HEALTH[value];
  return known ? { ...known, label: value } : { ...HEALTH.Unknown, label: value || 'Unknown' };
}

export function sync(value) {
  return SYNC[value] ?? { ...SYNC.Unknown, label: value || 'Sync unknown' };
}

export function operation(value) {
  if (!value) return null;
  return { tone: 'muted', icon: ICONS.unknown, ...OPERATION[value], label: value };
}
