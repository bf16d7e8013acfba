// <herald-token-field>: where a person pastes a JWT when the hub requires one (SPEC §6).
//
//   <herald-token-field for="deployment-status-board, herald-inspector"></herald-token-field>
//
// The token is given to every element matching the `for` selector (their `token` property) and
// kept in sessionStorage, so it lasts as long as the tab and is never sent anywhere but the hub.

import { LitElement, html, css } from 'lit';
import { theme } from './lib/theme.js';

const STORAGE_KEY = 'herald.token';

export class HeraldTokenField extends LitElement {
  static properties = {
    /** A CSS selector of the elements that get the token. */
    for: { type: String },
    _has: { state: true },
  };

  constructor() {
    super();
    this.for = 'deployment-status-board, herald-inspector, herald-stream';
    this._has = false;
  }

  connectedCallback() {
    super.connectedCallback();
    const token = sessionStorage.getItem(STORAGE_KEY) ?? '';
    if (token) this.#apply(token);
  }

  #apply(token) {
    this._has = Boolean(token);
    for (const el of document.querySelectorAll(this.for)) el.token = token;
  }

  #submit(e) {
    e.preventDefault();
    const input = e.target.elements.token;
    const token = input.value.trim();
    if (token) sessionStorage.setItem(STORAGE_KEY, token);
    else sessionStorage.removeItem(STORAGE_KEY);
    input.value = '';
    this.#apply(token);
  }

  #forget() {
    sessionStorage.removeItem(STORAGE_KEY);
    this.#apply('');
  }

  render() {
    return html`<details>
      <summary>${this._has ? 'Access token set' : 'Access token'}</summary>
      <form @submit=${this.#submit}>
        <label>
          <span>JWT for the hub (kept for this tab only)</span>
          <input name="token" type="password" autocomplete="off" spellcheck="false" />
        </label>
        <div class="row">
          <button class="primary" type="submit">Use</button>
          <button type="button" @click=${this.#forget} ?disabled=${!this._has}>Forget</button>
        </div>
      </form>
    </details>`;
  }

  static styles = [
    theme,
    css`
      :host {
        display: inline-block;
        position: relative;
        color: inherit;
      }
      summary {
        cursor: pointer;
        font-size: 0.875rem;
        font-weight: 600;
        padding: 0.3rem 0.2rem;
      }
      form {
        position: absolute;
        right: 0;
        z-index: 2;
        width: min(22rem, calc(100vw - 2rem));
        margin-top: 0.4rem;
        padding: 0.8rem;
        display: grid;
        gap: 0.6rem;
        background: var(--_surface);
        color: var(--_text);
        border: 1px solid var(--_border);
        border-radius: var(--_radius);
        box-shadow: 0 8px 24px rgb(0 0 0 / 0.18);
      }
      label {
        display: grid;
        gap: 0.25rem;
        font-size: 0.8125rem;
        font-weight: 600;
        color: var(--_muted);
      }
      /* On a phone the header wraps and the field may sit anywhere: open in the flow instead. */
      @media (max-width: 40rem) {
        form {
          position: static;
          width: min(22rem, calc(100vw - 2rem));
        }
      }
      .row {
        display: flex;
        gap: 0.5rem;
      }
      button:disabled {
        opacity: 0.5;
      }
    `,
  ];
}
