// <deployment-status-board>: a live card per Argo CD Application (SPEC §9 data shape).
//
//   <deployment-status-board topics="argocd/applications/**"></deployment-status-board>
//
// It subscribes with `snapshot` (the latest state of every application first, then live changes)
// and `envelope` (so every event says its key and whether it is a tombstone). A card is keyed by
// the event's key (its topic when it has none). A tombstone removes the card; so does an event
// whose type ends in `.deleted`, for publishers that delete by type without a tombstone.
//
// After `herald.reset` (the hub could not resume from our last id) the hub sends the whole
// snapshot again: cards it no longer contains are removed once `herald.synced` arrives, so the
// board never flickers empty.

import { LitElement, html, css, nothing } from 'lit';
import { repeat } from 'lit/directives/repeat.js';
import { theme, connection } from './lib/theme.js';
import { health, sync, operation } from './lib/status.js';
import { timeAgo } from './lib/util.js';

const SORTS = {
  name: { label: 'Name', compare: (a, b) => cmp(a.name, b.name) || cmp(a.namespace, b.namespace) },
  namespace: { label: 'Namespace', compare: (a, b) => cmp(a.namespace, b.namespace) || cmp(a.name, b.name) },
  project: { label: 'Project', compare: (a, b) => cmp(a.project, b.project) || cmp(a.name, b.name) },
  health: {
    label: 'Health (worst first)',
    compare: (a, b) => health(a.healthStatus).rank - health(b.healthStatus).rank || cmp(a.name, b.name),
  },
  lastSync: {
    label: 'Last sync (newest first)',
    compare: (a, b) => (Date.parse(b.lastSync) || 0) - (Date.parse(a.lastSync) || 0) || cmp(a.name, b.name),
  },
};

function cmp(a, b) {
  return String(a ?? '').localeCompare(String(b ?? ''), undefined, { numeric: true });
}

/** An application as the board keeps it: the event's data, never trusted to be complete. */
function application(key, topic, data) {
  const d = data && typeof data === 'object' && !Array.isArray(data) ? data : {};
  const text = (v) => (v == null ? '' : String(v));
  const [ns, name] = key.includes('/') ? key.split('/', 2) : ['', key];
  return {
    key,
    topic,
    name: text(d.name) || name,
    namespace: text(d.namespace) || ns,
    project: text(d.project),
    syncStatus: text(d.syncStatus),
    healthStatus: text(d.healthStatus),
    revision: text(d.revision),
    operationPhase: text(d.operationPhase),
    message: text(d.message),
    lastSync: text(d.lastSync),
    // Set by `herald serve --demo` on its simulated applications: they must never pass for real.
    demo: d.demo === true,
  };
}

export class DeploymentStatusBoard extends LitElement {
  static properties = {
    /** Base URL of the hub; empty means the hub that served this module. */
    url: { type: String },
    /** Keyed topics whose data has the Argo CD application shape. */
    topics: { type: String },
    /** A JWT for the hub. */
    token: { type: String },
    /** Seconds without a connection before the board says its cards are stale. */
    staleAfter: { type: Number, attribute: 'stale-after' },
    _query: { state: true },
    _project: { state: true },
    _namespace: { state: true },
    _sort: { state: true },
    _conn: { state: true },
    _loaded: { state: true },
    _now: { state: true },
  };

  /** key → application. */
  #apps = new Map();
  /** key → the snapshot round that last saw it (see herald.reset above). */
  #seen = new Map();
  #round = 0;
  #sweep = false;
  /** Keys changed by a live event since the last render: their cards flash. */
  #changed = new Set();
  #ticker = 0;

  constructor() {
    super();
    this.url = '';
    this.topics = 'argocd/applications/**';
    this.token = '';
    this.staleAfter = 10;
    this._query = '';
    this._project = '';
    this._namespace = '';
    this._sort = 'name';
    this._conn = { state: 'idle' };
    this._loaded = false;
    this._now = Date.now();
  }

  /** The applications on the board, as `{key, name, namespace, ...}` objects (for scripts). */
  get applications() {
    return [...this.#apps.values()];
  }

  connectedCallback() {
    super.connectedCallback();
    this.#tick();
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    clearTimeout(this.#ticker);
  }

  /** Re-renders relative times: every second while disconnected (the counter), else every 15. */
  #tick = () => {
    this._now = Date.now();
    const fast = this._conn.state !== 'live';
    this.#ticker = setTimeout(this.#tick, fast ? 1000 : 15000);
  };

  willUpdate(changed) {
    if (changed.has('url') || changed.has('topics')) {
      this.#apps.clear();
      this.#seen.clear();
      this._loaded = false;
    }
  }

  #onEvent(e) {
    const { key, topic, tombstone, type, data } = e.detail;
    const id = key ?? topic;
    if (id == null) return;
    if (tombstone || type.endsWith('.deleted')) {
      this.#apps.delete(id);
      this.#seen.delete(id);
    } else {
      this.#apps.set(id, application(id, topic, data));
      this.#seen.set(id, this.#round);
      if (this._loaded) this.#changed.add(id);
    }
    this.requestUpdate();
  }

  #onReset() {
    this.#round++;
    this.#sweep = true;
  }

  #onSynced() {
    if (this.#sweep) {
      for (const [key, round] of this.#seen) {
        if (round < this.#round) {
          this.#seen.delete(key);
          this.#apps.delete(key);
        }
      }
      this.#sweep = false;
    }
    this._loaded = true;
  }

  #onState(e) {
    const wasLive = this._conn.state === 'live';
    this._conn = e.detail;
    // Switch the ticker's pace at once when the connection drops or comes back.
    if (wasLive !== (e.detail.state === 'live')) {
      clearTimeout(this.#ticker);
      this.#tick();
    }
  }

  #visible() {
    const q = this._query.trim().toLowerCase();
    const list = [...this.#apps.values()].filter(
      (a) =>
        (!this._project || a.project === this._project) &&
        (!this._namespace || a.namespace === this._namespace) &&
        (!q || [a.name, a.namespace, a.project].some((v) => v.toLowerCase().includes(q))),
    );
    return list.sort((SORTS[this._sort] ?? SORTS.name).compare);
  }

  render() {
    const apps = [...this.#apps.values()];
    const visible = this.#visible();
    const projects = [...new Set(apps.map((a) => a.project).filter(Boolean))].sort(cmp);
    const namespaces = [...new Set(apps.map((a) => a.namespace).filter(Boolean))].sort(cmp);
    const conn = connection(this._conn.state, { ...this._conn, now: this._now });
    const stale = ['stale', 'error'].includes(this._conn.state);
    return html`
      <herald-stream
        .url=${this.url}
        .topics=${this.topics}
        .token=${this.token}
        .staleAfter=${this.staleAfter}
        snapshot
        envelope
        @herald-event=${this.#onEvent}
        @herald-state=${this.#onState}
        @herald.reset=${this.#onReset}
        @herald.synced=${this.#onSynced}
      ></herald-stream>
      <div class="toolbar">
        <div class="field grow">
          <label for="filter">Filter</label>
          <input
            id="filter"
            type="search"
            placeholder="Name, namespace or project"
            .value=${this._query}
            @input=${(e) => (this._query = e.target.value)}
          />
        </div>
        ${this.#select('Project', this._project, projects, (v) => (this._project = v))}
        ${this.#select('Namespace', this._namespace, namespaces, (v) => (this._namespace = v))}
        <div class="field">
          <label for="sort">Sort by</label>
          <select id="sort" @change=${(e) => (this._sort = e.target.value)}>
            ${Object.entries(SORTS).map(
              ([value, { label }]) => html`<option value=${value} ?selected=${value === this._sort}>${label}</option>`,
            )}
          </select>
        </div>
      </div>
      <div class="statusbar">
        <span class="conn tone-${conn.tone}" role="status" title=${this._conn.error?.detail ?? ''}>
          <span class="dot" aria-hidden="true"></span>${conn.text}
        </span>
        ${this.#summary(apps, visible)}
      </div>
      ${apps.some((a) => a.demo)
        ? html`<p class="banner demo" role="note">
            <strong>Demo data.</strong> Cards marked “Simulated” come from
            <code>herald serve --demo</code>, not from a cluster.
          </p>`
        : nothing}
      ${stale && apps.length
        ? html`<p class="banner">
            Not connected to the hub: the cards show the last state received and may be out of date.
          </p>`
        : nothing}
      ${visible.length
        ? html`<ul class="cards ${stale ? 'stale' : ''}" aria-label="Applications">
            ${repeat(
              visible,
              (a) => a.key,
              (a) => html`<li>${this.#card(a)}</li>`,
            )}
          </ul>`
        : html`<p class="empty">${this.#emptyText(apps)}</p>`}
    `;
  }

  #select(label, value, options, set) {
    // The label stands beside the select, not around it: a wrapping label's text would take in
    // every option's.
    const id = label.toLowerCase();
    return html`<div class="field">
      <label for=${id}>${label}</label>
      <select id=${id} @change=${(e) => set(e.target.value)}>
        <option value="" ?selected=${!value}>All</option>
        ${options.map((o) => html`<option ?selected=${o === value}>${o}</option>`)}
      </select>
    </div>`;
  }

  #summary(apps, visible) {
    if (!apps.length) return nothing;
    const count = (pred) => apps.filter(pred).length;
    const degraded = count((a) => a.healthStatus === 'Degraded' || a.healthStatus === 'Missing');
    const progressing = count((a) => a.healthStatus === 'Progressing');
    const outOfSync = count((a) => a.syncStatus === 'OutOfSync');
    const shown = visible.length === apps.length ? `${apps.length}` : `${visible.length} of ${apps.length}`;
    return html`<span class="summary">
      <span>${shown} application${apps.length === 1 ? '' : 's'}</span>
      ${degraded ? html`<span class="tone-bad">${degraded} unhealthy</span>` : nothing}
      ${progressing ? html`<span class="tone-info">${progressing} progressing</span>` : nothing}
      ${outOfSync ? html`<span class="tone-warn">${outOfSync} out of sync</span>` : nothing}
    </span>`;
  }

  #emptyText(apps) {
    if (apps.length) return 'No application matches the filter.';
    if (!this._loaded) return this._conn.state === 'live' ? 'Loading applications…' : 'Waiting for the hub…';
    return `No applications on ${this.topics} yet.`;
  }

  #card(a) {
    const h = health(a.healthStatus);
    const s = sync(a.syncStatus);
    const op = operation(a.operationPhase);
    const shortRev = /^[0-9a-f]{12,}$/i.test(a.revision) ? a.revision.slice(0, 7) : a.revision;
    const when = Date.parse(a.lastSync);
    return html`<article
      class="card tone-${h.tone}"
      tabindex="0"
      data-key=${a.key}
      aria-label="${a.name} in ${a.namespace || 'no namespace'}: ${h.label}, ${s.label}"
    >
      <header>
        <h3>${a.name}</h3>
        <span class="badge tone-${h.tone}" data-health=${h.label} title="Health"
          >${h.icon}<span class="visually-hidden">Health: </span>${h.label}</span
        >
      </header>
      <p class="where">
        <span title="Namespace">${a.namespace || '—'}</span>
        ${a.project ? html`<span aria-hidden="true">·</span><span>project ${a.project}</span>` : nothing}
      </p>
      <div class="badges">
        <span class="badge tone-${s.tone}" data-sync=${a.syncStatus} title="Sync status"
          >${s.icon}<span class="visually-hidden">Sync: </span>${s.label}</span
        >
        ${a.demo ? html`<span class="badge tone-info" data-demo title="Simulated by herald serve --demo">Simulated</span>` : nothing}
        ${op
          ? html`<span class="badge tone-${op.tone}" data-operation=${op.label} title="Last operation"
              >${op.icon}<span class="visually-hidden">Last operation: </span>${op.label}</span
            >`
          : nothing}
      </div>
      <dl>
        <div>
          <dt>Revision</dt>
          <dd><code title=${a.revision}>${shortRev || '—'}</code></dd>
        </div>
        <div>
          <dt>Last sync</dt>
          <dd>
            ${Number.isFinite(when)
              ? html`<time datetime=${a.lastSync} title=${new Date(when).toLocaleString()}
                  >${timeAgo(when, this._now)}</time
                >`
              : 'never'}
          </dd>
        </div>
      </dl>
      ${a.message ? html`<p class="message" title=${a.message}>${a.message}</p>` : nothing}
    </article>`;
  }

  updated() {
    // Flash the cards a live event changed (not those of the first snapshot).
    if (!this.#changed.size) return;
    const still = matchMedia('(prefers-reduced-motion: reduce)').matches;
    for (const key of this.#changed) {
      const card = this.renderRoot.querySelector(`[data-key="${CSS.escape(key)}"]`);
      if (card && !still) {
        card.animate(
          [{ boxShadow: '0 0 0 3px color-mix(in srgb, var(--_accent) 55%, transparent)' }, { boxShadow: 'none' }],
          { duration: 1400, easing: 'ease-out' },
        );
      }
    }
    this.#changed.clear();
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
      .field {
        display: flex;
        flex-direction: column;
        gap: 0.2rem;
        min-width: 0;
      }
      .field label {
        font-size: 0.8125rem;
        font-weight: 600;
        color: var(--_muted);
      }
      .toolbar .field {
        flex: 1 1 8.5rem;
        max-width: 15rem;
      }
      .toolbar .grow {
        flex: 3 1 14rem;
        max-width: none;
      }
      .toolbar input,
      .toolbar select {
        width: 100%;
      }
      .statusbar {
        display: flex;
        flex-wrap: wrap;
        gap: 0.4rem 1rem;
        align-items: center;
        margin: 0.9rem 0 0.7rem;
      }
      .summary {
        display: inline-flex;
        flex-wrap: wrap;
        gap: 0.2rem 0.8rem;
        color: var(--_muted);
        font-size: 0.875rem;
      }
      .summary [class^='tone-'] {
        color: var(--_tone);
        font-weight: 600;
      }
      .banner {
        margin: 0 0 0.8rem;
        padding: 0.55rem 0.8rem;
        border-radius: 8px;
        border: 1px solid color-mix(in srgb, var(--_bad) 40%, transparent);
        background: color-mix(in srgb, var(--_bad) 8%, transparent);
        font-size: 0.875rem;
      }
      .banner.demo {
        border-color: color-mix(in srgb, var(--_info) 40%, transparent);
        background: color-mix(in srgb, var(--_info) 8%, transparent);
      }
      .cards {
        list-style: none;
        margin: 0;
        padding: 0;
        display: grid;
        grid-template-columns: repeat(auto-fill, minmax(min(100%, 17rem), 1fr));
        gap: 0.85rem;
      }
      .cards.stale .card {
        opacity: 0.62;
        filter: saturate(0.4);
      }
      .card {
        height: 100%;
        display: flex;
        flex-direction: column;
        gap: 0.45rem;
        padding: 0.8rem 0.95rem 0.85rem;
        background: var(--_surface);
        border: 1px solid var(--_border);
        border-left: 5px solid var(--_tone);
        border-radius: var(--_radius);
        box-shadow: 0 1px 2px rgb(0 0 0 / 0.05);
        min-width: 0;
      }
      .card header {
        display: flex;
        flex-wrap: wrap;
        align-items: start;
        justify-content: space-between;
        gap: 0.3rem 0.5rem;
      }
      h3 {
        margin: 0;
        font-size: 1.0625rem;
        line-height: 1.3;
        min-width: 0;
        overflow-wrap: break-word;
      }
      .where {
        margin: -0.25rem 0 0;
        display: flex;
        flex-wrap: wrap;
        gap: 0.35rem;
        color: var(--_muted);
        font-size: 0.8125rem;
        overflow-wrap: anywhere;
      }
      .badges {
        display: flex;
        flex-wrap: wrap;
        gap: 0.35rem;
      }
      dl {
        display: grid;
        grid-template-columns: 1fr 1fr;
        gap: 0.5rem;
        margin: 0.1rem 0 0;
      }
      dt {
        font-size: 0.75rem;
        color: var(--_muted);
        text-transform: uppercase;
        letter-spacing: 0.04em;
      }
      dd {
        margin: 0;
        font-size: 0.875rem;
        overflow-wrap: anywhere;
      }
      code {
        font-family: var(--_mono);
        font-size: 0.8125rem;
      }
      .message {
        margin: 0;
        padding-top: 0.45rem;
        border-top: 1px dashed var(--_border);
        font-size: 0.8125rem;
        color: var(--_muted);
        overflow-wrap: anywhere;
        display: -webkit-box;
        -webkit-line-clamp: 3;
        -webkit-box-orient: vertical;
        overflow: hidden;
      }
      .empty {
        margin: 0;
        padding: 1.5rem 1rem;
        text-align: center;
        color: var(--_muted);
        border: 1px dashed var(--_border);
        border-radius: var(--_radius);
      }
    `,
  ];
}
