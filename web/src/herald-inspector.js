// <herald-inspector>: watch the events of any pattern stream in, with id, type, topic and payload.
//
//   <herald-inspector topics="**"></herald-inspector>
//
// It subscribes with `envelope` so each event says its topic, key and tombstone. Pausing
// disconnects (the hub holds the events), and resuming reconnects from the last id: the hub
// replays what came meanwhile, so a pause loses nothing that retention keeps.

import { LitElement, html, css, nothing } from 'lit';
import { repeat } from 'lit/directives/repeat.js';
import { theme, connection } from './lib/theme.js';

/** Longest payload text shown in full; longer ones are cut with a note. */
const MAX_PAYLOAD_CHARS = 4000;

export class HeraldInspector extends LitElement {
  static properties = {
    /** Base URL of the hub; empty means the hub that served this module. */
    url: { type: String },
    /** The pattern(s) to watch; the form edits it. */
    topics: { type: String },
    /** A JWT for the hub. */
    token: { type: String },
    /** How many events the list keeps (the oldest go first). */
    max: { type: Number },
    _draft: { state: true },
    _snapshot: { state: true },
    _paused: { state: true },
    _events: { state: true },
    _conn: { state: true },
  };

  #seq = 0;

  constructor() {
    super();
    this.url = '';
    this.topics = '**';
    this.token = '';
    this.max = 200;
    this._draft = null;
    this._snapshot = false;
    this._paused = false;
    this._events = [];
    this._conn = { state: 'idle' };
  }

  /** Starts watching `topics` (separated by spaces or commas), from now on. */
  watch(topics, { snapshot = this._snapshot } = {}) {
    this.topics = topics;
    this._snapshot = snapshot;
    this._draft = null;
    this._events = [];
  }

  clear() {
    this._events = [];
  }

  #onEvent(e) {
    const d = e.detail;
    const entry = { ...d, seq: ++this.#seq, at: new Date() };
    // Newest first; keep at most `max`.
    this._events = [entry, ...this._events].slice(0, Math.max(1, this.max));
  }

  #onControl(e) {
    const entry = { seq: ++this.#seq, at: new Date(), type: e.type, control: true, data: e.detail };
    this._events = [entry, ...this._events].slice(0, Math.max(1, this.max));
  }

  #submit(e) {
    e.preventDefault();
    const form = new FormData(e.target);
    this.watch(String(form.get('pattern') ?? '').trim() || '**', { snapshot: form.get('snapshot') === 'on' });
  }

  render() {
    const conn = connection(this._conn.state, this._conn);
    const n = this._events.length;
    return html`
      <herald-stream
        .url=${this.url}
        .topics=${this.topics}
        .token=${this.token}
        .snapshot=${this._snapshot}
        .paused=${this._paused}
        envelope
        @herald-event=${this.#onEvent}
        @herald.reset=${this.#onControl}
        @herald.synced=${this.#onControl}
        @herald.shutdown=${this.#onControl}
        @herald.expired=${this.#onControl}
        @herald-state=${(e) => (this._conn = e.detail)}
      ></herald-stream>
      <form class="toolbar" @submit=${this.#submit}>
        <label class="grow">
          <span>Pattern</span>
          <input
            name="pattern"
            .value=${this._draft ?? this.topics}
            @input=${(e) => (this._draft = e.target.value)}
            placeholder="e.g. argocd/applications/** or items/*"
            autocomplete="off"
            spellcheck="false"
            required
          />
        </label>
        <label class="check">
          <input type="checkbox" name="snapshot" ?checked=${this._snapshot} />
          <span>Snapshot first</span>
        </label>
        <button class="primary" type="submit">Watch</button>
      </form>
      <div class="statusbar">
        <span class="conn tone-${conn.tone}" role="status">
          <span class="dot" aria-hidden="true"></span>${conn.text}
        </span>
        <span class="count">${n} event${n === 1 ? '' : 's'} on <code>${this.topics}</code></span>
        <span class="actions">
          <button type="button" aria-pressed=${this._paused} @click=${() => (this._paused = !this._paused)}>
            ${this._paused ? 'Resume' : 'Pause'}
          </button>
          <button type="button" @click=${this.clear} ?disabled=${!n}>Clear</button>
        </span>
      </div>
      ${n
        ? html`<ol class="events" aria-label="Events, newest first" tabindex="0">
            ${repeat(
              this._events,
              (ev) => ev.seq,
              (ev) => this.#row(ev),
            )}
          </ol>`
        : html`<p class="empty">
            ${this._paused ? 'Paused.' : 'Waiting for events…'} Publish to a topic matching
            <code>${this.topics}</code> and it shows here.
          </p>`}
    `;
  }

  #row(ev) {
    const time = ev.at.toLocaleTimeString([], { hour12: false });
    let payload = typeof ev.data === 'string' ? ev.data : JSON.stringify(ev.data, null, 1);
    payload = (payload ?? 'null').replace(/\n\s*/g, ' ');
    const cut = payload.length > MAX_PAYLOAD_CHARS;
    if (cut) payload = payload.slice(0, MAX_PAYLOAD_CHARS);
    return html`<li class=${ev.control ? 'control' : ev.tombstone ? 'tombstone' : ''}>
      <div class="meta">
        <time datetime=${ev.at.toISOString()}>${time}</time>
        <span class="type">${ev.type}</span>
        ${ev.topic ? html`<span class="topic">${ev.topic}</span>` : nothing}
        ${ev.key != null ? html`<span class="key">key <code>${ev.key}</code></span>` : nothing}
        ${ev.tombstone ? html`<span class="badge tone-bad">tombstone</span>` : nothing}
        ${ev.id ? html`<span class="id">id <code>${ev.id}</code></span>` : nothing}
      </div>
      <pre class="payload">${payload}${cut ? html`<span class="cut">… (cut)</span>` : nothing}</pre>
    </li>`;
  }

  static styles = [
    theme,
    css`
      :host {
        display: block;
      }
      .toolbar {
        display: flex;
        flex-wrap: wrap;
        gap: 0.75rem;
        align-items: end;
      }
      .toolbar label {
        display: flex;
        flex-direction: column;
        gap: 0.2rem;
        font-size: 0.8125rem;
        font-weight: 600;
        color: var(--_muted);
        min-width: 0;
      }
      .toolbar .grow {
        flex: 1 1 16rem;
      }
      .toolbar .grow input {
        width: 100%;
        font-family: var(--_mono);
      }
      .toolbar .check {
        flex-direction: row;
        align-items: center;
        gap: 0.4rem;
        min-height: 2.25rem;
        color: var(--_text);
        font-weight: 500;
      }
      .check input {
        min-height: 0;
        width: 1.1rem;
        height: 1.1rem;
      }
      .statusbar {
        display: flex;
        flex-wrap: wrap;
        align-items: center;
        gap: 0.5rem 1rem;
        margin: 0.9rem 0 0.7rem;
      }
      .count {
        color: var(--_muted);
        font-size: 0.875rem;
        overflow-wrap: anywhere;
      }
      .actions {
        display: flex;
        gap: 0.5rem;
        margin-left: auto;
      }
      button[aria-pressed='true'] {
        background: color-mix(in srgb, var(--_warn) 18%, var(--_surface));
        border-color: var(--_warn);
      }
      button:disabled {
        opacity: 0.5;
        cursor: default;
      }
      code,
      pre {
        font-family: var(--_mono);
        font-size: 0.8125rem;
      }
      .events {
        list-style: none;
        margin: 0;
        padding: 0;
        border: 1px solid var(--_border);
        border-radius: var(--_radius);
        background: var(--_surface);
        max-height: 32rem;
        overflow-y: auto;
      }
      .events li {
        padding: 0.5rem 0.8rem;
        border-top: 1px solid var(--_border);
        min-width: 0;
      }
      .events li:first-child {
        border-top: 0;
      }
      .events li.control {
        background: color-mix(in srgb, var(--_info) 7%, transparent);
      }
      .events li.tombstone {
        background: color-mix(in srgb, var(--_bad) 6%, transparent);
      }
      .meta {
        display: flex;
        flex-wrap: wrap;
        align-items: baseline;
        gap: 0.2rem 0.75rem;
        font-size: 0.8125rem;
        color: var(--_muted);
      }
      .type {
        font-weight: 700;
        color: var(--_accent);
      }
      .control .type {
        color: var(--_info);
      }
      .topic {
        font-family: var(--_mono);
        color: var(--_text);
        overflow-wrap: anywhere;
      }
      .key,
      .id {
        overflow-wrap: anywhere;
      }
      .payload {
        margin: 0.3rem 0 0;
        white-space: pre-wrap;
        overflow-wrap: anywhere;
      }
      .cut {
        color: var(--_muted);
      }
      .empty {
        margin: 0;
        padding: 1.5rem 1rem;
        text-align: center;
        color: var(--_muted);
        border: 1px dashed var(--_border);
        border-radius: var(--_radius);
        overflow-wrap: anywhere;
      }
    `,
  ];
}
