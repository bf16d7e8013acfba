// <herald-node-stats>: this node's readiness, open streams and event rates.
//
//   <herald-node-stats interval="5"></herald-node-stats>
//
// It polls `/ready` (status, open SSE streams) and `/metrics` (Prometheus text). Rates are the
// change of the counters `herald_events_published_total` and `herald_events_delivered_total`
// between two polls, divided by the time between them; a counter that went down means the node
// restarted, and that interval shows no rate rather than a wrong one. Mean publish latency is the
// same over `herald_publish_duration_seconds` `_sum` / `_count`.

import { LitElement, html, css, svg, nothing } from 'lit';
import { theme } from './lib/theme.js';
import { counterRate, endpoint, formatRate, parseMetrics } from './lib/util.js';

/** Samples kept for the sparklines. */
const HISTORY = 40;

const STATUS_NOTES = {
  ready: 'accepting streams and publishes',
  starting: 'opening its event log',
  draining: 'shutting down: streams are told to reconnect',
};

export class HeraldNodeStats extends LitElement {
  static properties = {
    /** Base URL of the hub; empty means the hub that served this module. */
    url: { type: String },
    /** Seconds between polls. */
    interval: { type: Number },
    _ready: { state: true },
    _sample: { state: true },
    _history: { state: true },
    _error: { state: true },
  };

  #timer = 0;
  #previous = null;

  constructor() {
    super();
    this.url = '';
    this.interval = 5;
    this._ready = null;
    this._sample = null;
    this._history = [];
    this._error = null;
  }

  connectedCallback() {
    super.connectedCallback();
    document.addEventListener('visibilitychange', this.#onVisibility);
    this.#poll();
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    document.removeEventListener('visibilitychange', this.#onVisibility);
    clearTimeout(this.#timer);
  }

  // Nobody reads the numbers of a hidden page: stop polling, and start afresh when shown (a rate
  // over the hidden minutes would be an average nobody asked for).
  #onVisibility = () => {
    clearTimeout(this.#timer);
    this.#previous = null;
    if (document.visibilityState !== 'hidden') this.#poll();
  };

  #poll = async () => {
    clearTimeout(this.#timer);
    try {
      const [ready, metrics] = await Promise.all([
        fetch(endpoint(this.url, 'ready'), { cache: 'no-store' }).then(async (r) => ({
          ok: r.ok,
          ...(await r.json().catch(() => ({ status: `HTTP ${r.status}` }))),
        })),
        fetch(endpoint(this.url, 'metrics'), { cache: 'no-store' }).then((r) => {
          if (!r.ok) throw new Error(`/metrics answered ${r.status}`);
          return r.text();
        }),
      ]);
      this.#take(ready, parseMetrics(metrics), performance.now());
      this._error = null;
    } catch (e) {
      this._error = e instanceof TypeError ? 'The node does not answer.' : String(e.message ?? e);
      this._ready = null;
      this.#previous = null;
    }
    if (this.isConnected && document.visibilityState !== 'hidden') {
      this.#timer = setTimeout(this.#poll, Math.max(1, this.interval) * 1000);
    }
  };

  #take(ready, m, at) {
    const now = {
      at,
      published: m.get('herald_events_published_total'),
      delivered: m.get('herald_events_delivered_total'),
      latencySum: m.get('herald_publish_duration_seconds_sum'),
      latencyCount: m.get('herald_publish_duration_seconds_count'),
    };
    const before = this.#previous;
    const dt = before ? (at - before.at) / 1000 : 0;
    const sample = {
      ...now,
      publishRate: before ? counterRate(before.published, now.published, dt) : null,
      deliverRate: before ? counterRate(before.delivered, now.delivered, dt) : null,
      latencyMs: null,
    };
    if (before && now.latencyCount > before.latencyCount) {
      sample.latencyMs = ((now.latencySum - before.latencySum) / (now.latencyCount - before.latencyCount)) * 1000;
    }
    this.#previous = now;
    this._ready = ready;
    this._sample = sample;
    if (before) this._history = [...this._history, sample].slice(-HISTORY);
  }

  render() {
    const r = this._ready;
    const s = this._sample;
    const status = this._error ? 'unreachable' : r?.status ?? 'checking…';
    const tone = this._error ? 'bad' : r?.ok ? 'ok' : r ? 'warn' : 'muted';
    const warming = !s || s.publishRate == null;
    return html`
      <dl class="tiles">
        <div class="tile">
          <dt>Status</dt>
          <dd class="conn tone-${tone}" data-stat="status">
            <span class="dot" aria-hidden="true"></span>${status}
          </dd>
          <dd class="note">${this._error ?? STATUS_NOTES[r?.status] ?? ''}</dd>
        </div>
        <div class="tile">
          <dt>Open streams</dt>
          <dd class="big" data-stat="clients">${r?.clients ?? '—'}</dd>
          <dd class="note">SSE clients on this node, this page's included</dd>
        </div>
        ${this.#rateTile('Published', 'publishRate', s, warming, 'events/s appended to the log')}
        ${this.#rateTile('Delivered', 'deliverRate', s, warming, 'events/s written to streams')}
        <div class="tile">
          <dt>Publish latency</dt>
          <dd class="big" data-stat="latency">
            ${s?.latencyMs == null ? '—' : html`${s.latencyMs.toFixed(s.latencyMs < 10 ? 1 : 0)}<small> ms</small>`}
          </dd>
          <dd class="note">mean, request to durable answer</dd>
        </div>
      </dl>
      <p class="footnote">
        Every ${this.interval} s from <code>/ready</code> and <code>/metrics</code>${s?.published != null
          ? html`; totals: ${s.published.toLocaleString()} published, ${s.delivered.toLocaleString()} delivered`
          : nothing}.
      </p>
    `;
  }

  #rateTile(label, field, s, warming, note) {
    const points = this._history.map((h) => h[field]);
    return html`<div class="tile">
      <dt>${label}</dt>
      <dd class="big" data-stat=${field}>
        ${warming ? '—' : html`${formatRate(s[field])}<small> /s</small>`}
      </dd>
      <dd class="note">${warming ? 'measuring…' : note}</dd>
      ${points.length > 2 ? this.#sparkline(points) : nothing}
    </div>`;
  }

  /** A small line of the last rates; decoration only (the number above says it in words). */
  #sparkline(points) {
    const w = 120;
    const h = 28;
    const max = Math.max(1, ...points.map((p) => p ?? 0));
    const step = w / (points.length - 1);
    const coords = points.map((p, i) => `${(i * step).toFixed(1)},${(h - 2 - ((p ?? 0) / max) * (h - 4)).toFixed(1)}`);
    const first = coords[0].split(',')[0];
    const area = `${first},${h} ${coords.join(' ')} ${w},${h}`;
    return html`<svg class="spark" viewBox="0 0 ${w} ${h}" preserveAspectRatio="none" aria-hidden="true">
      ${svg`<polygon points=${area} fill="currentColor" opacity="0.12"/>
        <polyline points=${coords.join(' ')} fill="none" stroke="currentColor" stroke-width="1.6"
          vector-effect="non-scaling-stroke" stroke-linejoin="round"/>`}
    </svg>`;
  }

  static styles = [
    theme,
    css`
      :host {
        display: block;
      }
      .tiles {
        display: grid;
        grid-template-columns: repeat(auto-fit, minmax(min(100%, 9.5rem), 1fr));
        gap: 0.75rem;
        margin: 0;
      }
      .tile {
        position: relative;
        padding: 0.7rem 0.9rem;
        background: var(--_surface);
        border: 1px solid var(--_border);
        border-radius: var(--_radius);
        min-width: 0;
        overflow: hidden;
      }
      dt {
        font-size: 0.75rem;
        font-weight: 600;
        color: var(--_muted);
        text-transform: uppercase;
        letter-spacing: 0.04em;
      }
      dd {
        margin: 0;
      }
      .big {
        font-size: 1.6rem;
        font-weight: 700;
        line-height: 1.25;
        font-variant-numeric: tabular-nums;
      }
      .big small {
        font-size: 0.8125rem;
        font-weight: 600;
        color: var(--_muted);
      }
      dd.conn {
        font-size: 1.15rem;
        margin: 0.3rem 0 0.15rem;
        text-transform: capitalize;
      }
      .note {
        font-size: 0.75rem;
        color: var(--_muted);
      }
      .spark {
        display: block;
        width: 100%;
        height: 1.75rem;
        margin-top: 0.35rem;
        color: var(--_accent);
      }
      .footnote {
        margin: 0.6rem 0 0;
        font-size: 0.8125rem;
        color: var(--_muted);
      }
      code {
        font-family: var(--_mono);
      }
    `,
  ];
}
