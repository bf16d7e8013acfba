// Shared look of the components. Every colour is a custom property a portal may set on the page
// (`--herald-ok: #080`); the private `--_*` ones are what the components use. Light and dark
// follow the user's colour scheme.

import { css } from 'lit';

export const theme = css`
  :host {
    --_surface: var(--herald-surface, #ffffff);
    --_sunken: var(--herald-sunken, #f3f4f6);
    --_text: var(--herald-text, #1b1f24);
    --_muted: var(--herald-muted, #59636e);
    --_border: var(--herald-border, #d5dae0);
    --_ok: var(--herald-ok, #1a7f37);
    --_warn: var(--herald-warn, #9a6700);
    --_bad: var(--herald-bad, #cf222e);
    --_info: var(--herald-info, #0969da);
    --_accent: var(--herald-accent, #5a32c8);
    --_radius: var(--herald-radius, 10px);
    --_mono: var(--herald-mono, ui-monospace, 'SFMono-Regular', 'DejaVu Sans Mono', Menlo, monospace);
    --herald-icon-ink: var(--_surface);
    color: var(--_text);
    font-family: var(--herald-font, system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', sans-serif);
    font-size: 0.9375rem;
    line-height: 1.45;
  }
  @media (prefers-color-scheme: dark) {
    :host {
      --_surface: var(--herald-surface, #161b22);
      --_sunken: var(--herald-sunken, #0d1117);
      --_text: var(--herald-text, #e6edf3);
      --_muted: var(--herald-muted, #9ba4ae);
      --_border: var(--herald-border, #30363d);
      --_ok: var(--herald-ok, #3fb950);
      --_warn: var(--herald-warn, #d29922);
      --_bad: var(--herald-bad, #f85149);
      --_info: var(--herald-info, #58a6ff);
      --_accent: var(--herald-accent, #a48bff);
    }
  }
  *,
  *::before,
  *::after {
    box-sizing: border-box;
  }
  .icon {
    flex: none;
    width: 1em;
    height: 1em;
    vertical-align: -0.15em;
  }
  .spin {
    transform-origin: 8px 8px;
    animation: spin 1.1s linear infinite;
  }
  @keyframes spin {
    to {
      transform: rotate(360deg);
    }
  }
  @media (prefers-reduced-motion: reduce) {
    .spin {
      animation: none;
    }
  }
  .tone-ok { --_tone: var(--_ok); }
  .tone-warn { --_tone: var(--_warn); }
  .tone-bad { --_tone: var(--_bad); }
  .tone-info { --_tone: var(--_info); }
  .tone-muted { --_tone: var(--_muted); }
  .badge {
    display: inline-flex;
    align-items: center;
    gap: 0.35em;
    padding: 0.1em 0.55em 0.1em 0.4em;
    border-radius: 999px;
    font-size: 0.8125rem;
    font-weight: 600;
    white-space: nowrap;
    color: var(--_tone, var(--_muted));
    background: color-mix(in srgb, var(--_tone, var(--_muted)) 12%, transparent);
    border: 1px solid color-mix(in srgb, var(--_tone, var(--_muted)) 35%, transparent);
  }
  button,
  input,
  select {
    font: inherit;
    color: inherit;
  }
  input,
  select {
    min-height: 2.25rem;
    padding: 0.3rem 0.55rem;
    border: 1px solid var(--_border);
    border-radius: 8px;
    background: var(--_surface);
    max-width: 100%;
  }
  button {
    min-height: 2.25rem;
    padding: 0.3rem 0.85rem;
    border: 1px solid var(--_border);
    border-radius: 8px;
    background: var(--_sunken);
    cursor: pointer;
    font-weight: 600;
  }
  button.primary {
    background: var(--_accent);
    border-color: var(--_accent);
    color: var(--_surface);
  }
  button:hover {
    filter: brightness(0.96);
  }
  :focus-visible {
    outline: 3px solid color-mix(in srgb, var(--_accent) 70%, transparent);
    outline-offset: 2px;
  }
  .visually-hidden {
    position: absolute;
    width: 1px;
    height: 1px;
    overflow: hidden;
    clip-path: inset(50%);
    white-space: nowrap;
  }
  /* The connection pill every component shows. */
  .conn {
    display: inline-flex;
    align-items: center;
    gap: 0.45em;
    font-size: 0.8125rem;
    font-weight: 600;
    color: var(--_tone);
  }
  .conn .dot {
    width: 0.65em;
    height: 0.65em;
    border-radius: 50%;
    background: var(--_tone);
  }
  .conn.tone-ok .dot {
    box-shadow: 0 0 0 0.2em color-mix(in srgb, var(--_ok) 25%, transparent);
  }
  .conn.tone-warn .dot {
    background: transparent;
    border: 2px solid var(--_tone);
  }
  .conn.tone-bad .dot {
    border-radius: 2px;
  }
`;

/**
 * The connection pill's tone and words for a <herald-stream> state. The dot's shape changes too
 * (filled, ring, square), not only its colour.
 */
export function connection(state, { since = null, error = null, now = Date.now() } = {}) {
  const ago = since ? ` for ${Math.max(0, Math.round((now - since) / 1000))} s` : '';
  switch (state) {
    case 'live':
      return { tone: 'ok', text: 'Live' };
    case 'connecting':
      return { tone: 'info', text: 'Connecting…' };
    case 'reconnecting':
      return { tone: 'warn', text: 'Reconnecting…' };
    case 'stale':
      return { tone: 'bad', text: `Stale: disconnected${ago}` };
    case 'paused':
      return { tone: 'muted', text: 'Paused' };
    case 'error':
      return { tone: 'bad', text: `Refused: ${error?.status ?? ''} ${error?.detail ?? ''}`.trim() };
    default:
      return { tone: 'muted', text: 'Not subscribed' };
  }
}
