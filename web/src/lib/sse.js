// An incremental `text/event-stream` parser, after the WHATWG HTML standard (§9.2.6
// "Interpreting an event stream"). <herald-stream> reads the stream with fetch() rather than
// EventSource because EventSource only delivers the event types one listens for by name, and a
// hub carries types nobody can list in advance (the inspector shows every one of them).

/**
 * Feeds decoded text in; calls `onEvent({id, type, data})` for each complete event, `onRetry(ms)`
 * for a `retry:` field and `onComment(text)` for a comment line (Herald's heartbeat).
 * An event that the stream ends in the middle of is dropped, as the standard says. (A leading
 * byte order mark is the decoder's business: TextDecoderStream strips it.)
 */
export class SseParser {
  #buffer = '';
  #data = [];
  #type = '';
  #afterCr = false;
  /** The standard's "last event ID buffer": an event without `id:` keeps the previous id. */
  lastEventId = '';

  constructor({ onEvent = () => {}, onRetry = () => {}, onComment = () => {} } = {}) {
    this.onEvent = onEvent;
    this.onRetry = onRetry;
    this.onComment = onComment;
  }

  /** Takes the next chunk of text. */
  push(text) {
    if (!text) return;
    // A CR ended the last chunk: if this one starts with LF, the two were one CRLF.
    if (this.#afterCr && text[0] === '\n') text = text.slice(1);
    const buffer = this.#buffer + text;
    const eol = /\r\n?|\n/g;
    let start = 0;
    for (let m = eol.exec(buffer); m; m = eol.exec(buffer)) {
      this.#line(buffer.slice(start, m.index));
      start = eol.lastIndex;
    }
    this.#afterCr = start > 0 && start === buffer.length && buffer.endsWith('\r');
    this.#buffer = buffer.slice(start);
  }

  #line(line) {
    if (line === '') return this.#dispatch();
    if (line[0] === ':') return this.onComment(line.slice(1).trimStart());
    const colon = line.indexOf(':');
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? '' : line.slice(colon + 1);
    if (value[0] === ' ') value = value.slice(1);
    switch (field) {
      case 'data':
        this.#data.push(value);
        break;
      case 'event':
        this.#type = value;
        break;
      case 'id':
        if (!value.includes('\0')) this.lastEventId = value;
        break;
      case 'retry':
        if (/^\d+$/.test(value)) this.onRetry(Number(value));
        break;
      default: // unknown fields are ignored
    }
  }

  #dispatch() {
    const data = this.#data;
    const type = this.#type || 'message';
    this.#data = [];
    this.#type = '';
    if (data.length === 0) return;
    this.onEvent({ id: this.lastEventId, type, data: data.join('\n') });
  }
}
