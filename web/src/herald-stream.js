// <herald-stream>: one subscription to a Herald hub, as DOM events.
//
//   <herald-stream topics="items/*" snapshot></herald-stream>
//   el.addEventListener('herald-event', (e) => console.log(e.detail.id, e.detail.type, e.detail.data));
//
// Why fetch() and not EventSource: EventSource delivers an event whose `event:` line names a
// type only to listeners registered for that exact name, so a component that must show every
// type (the inspector, a board over any keyed topic) cannot use it. Reading the stream ourselves
// also lets us see the HTTP status (401 is not worth retrying, 503 asks us to wait) and put the
// current last id in the URL of every reconnect; with EventSource, a `lastEventID` query (which
// the hub prefers to the `Last-Event-ID` header) would stay frozen across its own retries and
// replay duplicates.

import { LitElement, html, css } from 'lit';
import { SseParser } from './lib/sse.js';
import { backoff, endpoint, parsePayload, parseTopics } from './lib/util.js';

/** The longest wait between two reconnect attempts. */
const MAX_BACKOFF_MS = 30_000;
/** Events this element fires itself; a published type of the same name is not re-fired. */
const OWN_EVENTS = new Set(['herald-event', 'herald-state']);

/**
 * Subscribes to `topics` on the hub at `url` and fires:
 * - `herald-event` for every published event, detail `{id, type, data, text}` (plus `topic`,
 *   `key`, `tombstone` with `envelope`), and the same detail again under the event's own type;
 * - `herald.reset`, `herald.synced`, `herald.shutdown`, `herald.expired` for control events;
 * - `herald-state` when the connection state changes: detail `{state, previous, since, error}`.
 *
 * States: `idle` (nothing to subscribe to), `connecting`, `live`, `reconnecting` (dropped, retrying
 * with backoff), `stale` (still retrying, and disconnected for over `stale-after` seconds),
 * `paused` (the page is hidden or `paused` is set), `error` (the hub refused: 4xx; retried only
 * when an attribute changes or the page is shown again).
 */
export class HeraldStream extends LitElement {
  static properties = {
    /** Base URL of the hub; empty means the hub that served this module. */
    url: { type: String },
    /** Topic patterns, separated by spaces or commas. */
    topics: { type: String },
    /** Ask for the latest keyed state first (then `herald.synced`). */
    snapshot: { type: Boolean },
    /** Ask for `{topic, key, tombstone, data}` envelopes; the detail is unwrapped. */
    envelope: { type: Boolean },
    /** A JWT, sent as the `access_token` query parameter. */
    token: { type: String },
    /** Where to resume: read at every (re)connect, updated as events arrive. */
    lastEventId: { attribute: 'last-event-id', noAccessor: true },
    /** Stay disconnected while set; resume from the last id when cleared. */
    paused: { type: Boolean, reflect: true },
    /** Seconds of disconnection after which `reconnecting` becomes `stale`. */
    staleAfter: { type: Number, attribute: 'stale-after' },
    /** The connection state (read it; reflected for CSS). */
    state: { type: String, reflect: true },
  };

  static styles = css`
    :host {
      display: contents;
    }
  `;

  /** The id to resume after; written on every event, so not a reactive property. */
  #lastId = '';
  /** The last id was set from outside since the last update: keep it across a topic change. */
  #explicitId = false;
  /** Aborts the open request; null when no request is open. */
  #abort = null;
  #parser = null;
  #retryTimer = 0;
  #staleTimer = 0;
  /** Failed attempts since the last successful open: drives the backoff. */
  #attempt = 0;
  /** The hub's `retry:` hint, the base of the backoff. */
  #retryMs = 2000;
  /** The hub said `herald.shutdown`: reconnect at once (elsewhere, or when it is back). */
  #shutdown = false;
  /**
   * Streams in a row that ended with `herald.shutdown` and nothing else worth keeping: a draining
   * node answers every new stream that way (SPEC §8), so only the first comes back at once.
   */
  #shutdownsInARow = 0;
  /** When the current stream opened, to tell a drain's instant answer from a stream that lived. */
  #openedAt = 0;
  /** When the connection was lost (ms since epoch), 0 while live. */
  #disconnectedAt = 0;
  #hidden = false;
  /** Bumped on every close: callbacks of an older request see it changed and stop. */
  #generation = 0;

  constructor() {
    super();
    this.url = '';
    this.topics = '';
    this.snapshot = false;
    this.envelope = false;
    this.token = '';
    this.paused = false;
    this.staleAfter = 10;
    this.state = 'idle';
    /** With state `error`: `{status, error, detail}` from the hub's answer. */
    this.error = null;
  }

  get lastEventId() {
    return this.#lastId;
  }

  set lastEventId(id) {
    this.#lastId = id ?? '';
    this.#explicitId = true;
  }

  /** When the connection was lost, or null while connected. */
  get disconnectedSince() {
    return this.#disconnectedAt || null;
  }

  /** Drops the connection (if any) and connects again now, from the last id. */
  reconnect() {
    this.#close();
    this.#attempt = 0;
    this.#sync();
  }

  render() {
    return html`<slot></slot>`;
  }

  connectedCallback() {
    super.connectedCallback();
    this.#hidden = document.visibilityState === 'hidden';
    document.addEventListener('visibilitychange', this.#onVisibility);
    window.addEventListener('online', this.#onOnline);
    // Moved in the DOM: updated() will not run again, so resume here.
    if (this.hasUpdated) this.#sync();
  }

  disconnectedCallback() {
    super.disconnectedCallback();
    document.removeEventListener('visibilitychange', this.#onVisibility);
    window.removeEventListener('online', this.#onOnline);
    this.#close();
    this.#setState('idle');
  }

  updated(changed) {
    const identity = ['url', 'topics', 'snapshot', 'envelope'].some((k) => changed.has(k));
    if (identity) {
      // A different subscription starts afresh, unless told where to start.
      if (!this.#explicitId) this.#lastId = '';
      this.#close();
      this.#attempt = 0;
    } else if (changed.has('token')) {
      this.#close();
      this.#attempt = 0;
    }
    this.#explicitId = false;
    if (identity || changed.has('token') || changed.has('paused')) this.#sync();
  }

  #onVisibility = () => {
    const hidden = document.visibilityState === 'hidden';
    if (hidden === this.#hidden) return;
    this.#hidden = hidden;
    // Hidden: let go of the connection (browsers allow few per origin, and nobody is looking);
    // shown again: resume from the last id, so nothing is missed.
    if (hidden) this.#close();
    this.#attempt = 0;
    this.#sync();
  };

  // The network is back (a laptop woke up, wifi returned): try now rather than at the end of a
  // backoff that grew while it was gone.
  #onOnline = () => {
    if (!this.#retryTimer) return;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = 0;
    this.#attempt = 0;
    this.#connect();
  };

  #wanted() {
    return this.isConnected && !this.paused && !this.#hidden && parseTopics(this.topics).length > 0;
  }

  /** Connects when we should be and are not; disconnects when we should not be. */
  #sync() {
    if (!this.#wanted()) {
      this.#close();
      this.#setState(this.isConnected && (this.paused || this.#hidden) ? 'paused' : 'idle');
      return;
    }
    if (!this.#abort && !this.#retryTimer) this.#connect();
  }

  #close() {
    this.#generation++;
    this.#abort?.abort();
    this.#abort = null;
    clearTimeout(this.#retryTimer);
    this.#retryTimer = 0;
    clearTimeout(this.#staleTimer);
    this.#staleTimer = 0;
    this.#disconnectedAt = 0;
  }

  #url() {
    const params = parseTopics(this.topics).map((t) => ['topic', t]);
    if (this.#lastId) params.push(['lastEventID', this.#lastId]);
    if (this.snapshot) params.push(['snapshot', 'true']);
    if (this.envelope) params.push(['envelope', 'true']);
    if (this.token) params.push(['access_token', this.token]);
    return endpoint(this.url, 'events', params);
  }

  async #connect() {
    const generation = ++this.#generation;
    const abort = new AbortController();
    this.#abort = abort;
    if (!this.#disconnectedAt) this.#setState('connecting');
    let response;
    try {
      response = await fetch(this.#url(), {
        headers: { accept: 'text/event-stream' },
        cache: 'no-store',
        signal: abort.signal,
      });
    } catch {
      if (generation === this.#generation) this.#dropped();
      return;
    }
    if (generation !== this.#generation) return;
    const type = response.headers.get('content-type') ?? '';
    if (!response.ok || !type.startsWith('text/event-stream')) {
      await this.#refused(response, generation);
      return;
    }

    this.#attempt = 0;
    this.#disconnectedAt = 0;
    this.#openedAt = Date.now();
    clearTimeout(this.#staleTimer);
    this.#setState('live');
    this.#parser = new SseParser({
      onEvent: (event) => generation === this.#generation && this.#onEvent(event),
      onRetry: (ms) => (this.#retryMs = ms),
    });
    this.#parser.lastEventId = this.#lastId;
    try {
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done || generation !== this.#generation) break;
        this.#parser.push(value);
      }
    } catch {
      // The connection broke (or we aborted it): handled below like an end of stream.
    }
    if (generation === this.#generation) this.#dropped();
  }

  /** The hub answered, but not with a stream. */
  async #refused(response, generation) {
    let body = null;
    if (response.ok) {
      // A 200 that is not an event stream (a proxy's page, say): do not read what may not end.
      this.#abort?.abort();
    } else {
      body = await response.json().catch(() => null); // not JSON: a proxy's error page
    }
    if (generation !== this.#generation) return;
    const status = response.status;
    if (status === 429 || status >= 500) {
      // Overloaded or draining: it will pass; wait at least as long as asked.
      const retryAfter = Number(response.headers.get('retry-after')) * 1000 || 0;
      this.#dropped(retryAfter);
      return;
    }
    // A 4xx (bad pattern, no or wrong token) will not fix itself: say so and stop.
    this.#abort = null;
    this.#disconnectedAt ||= Date.now();
    this.error = {
      status,
      error: body?.error ?? `http_${status}`,
      detail: body?.detail ?? (response.ok ? 'the answer was not an event stream' : response.statusText),
    };
    this.#setState('error', true);
  }

  /** The request failed or the stream ended: schedule the next attempt. */
  #dropped(atLeastMs = 0) {
    this.#abort = null;
    if (!this.#wanted()) return this.#sync();
    // A stream that lived a while before its `herald.shutdown` starts the count afresh.
    if (!this.#shutdown || Date.now() - this.#openedAt > 10_000) this.#shutdownsInARow = 0;
    if (this.#shutdown) this.#shutdownsInARow++;
    // The node is going away on purpose: come back at once, the first time. A draining node
    // answers the next stream with `herald.shutdown` again; knocking at once would repeat that
    // until its listener closes, so after that, the usual backoff.
    const delay = this.#shutdown && this.#shutdownsInARow === 1
      ? Math.random() * 250
      : Math.max(atLeastMs, backoff(this.#attempt++, this.#retryMs, MAX_BACKOFF_MS));
    this.#shutdown = false;
    if (!this.#disconnectedAt) {
      this.#disconnectedAt = Date.now();
      const staleMs = Math.max(0, this.staleAfter * 1000);
      this.#staleTimer = setTimeout(() => this.#setState('stale'), staleMs);
    }
    if (this.state !== 'stale') this.#setState('reconnecting');
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = 0;
      this.#connect();
    }, delay);
  }

  #onEvent({ id, type, data }) {
    if (type.startsWith('herald.')) return this.#control(type, data);
    this.#shutdownsInARow = 0;
    this.#lastId = id;
    let detail = { id, type, data: parsePayload(data), text: data };
    if (this.envelope && detail.data && typeof detail.data === 'object' && 'topic' in detail.data) {
      const { topic, key = null, tombstone = false, data: payload } = detail.data;
      detail = { id, type, topic, key, tombstone, data: payload, text: data };
    }
    this.dispatchEvent(new CustomEvent('herald-event', { detail, bubbles: true }));
    if (!OWN_EVENTS.has(type)) this.dispatchEvent(new CustomEvent(type, { detail, bubbles: true }));
  }

  #control(type, data) {
    if (type === 'herald.reset') {
      // Our id is of no use any more; what follows (the snapshot, with `snapshot`) brings new ones.
      this.#lastId = '';
      this.#parser.lastEventId = '';
    } else if (type === 'herald.shutdown') {
      this.#shutdown = true;
    }
    this.dispatchEvent(new CustomEvent(type, { detail: parsePayload(data), bubbles: true }));
  }

  #setState(state, force = false) {
    if (state === this.state && !force) return;
    const previous = this.state;
    this.state = state;
    if (state !== 'error') this.error = null;
    const detail = { state, previous, since: this.#disconnectedAt || null, error: this.error };
    this.dispatchEvent(new CustomEvent('herald-state', { detail, bubbles: true }));
  }
}
