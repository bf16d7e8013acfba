// The pure helpers, in node: the SSE parser, topic lists, URLs, backoff, times and metrics.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { SseParser } from '../src/lib/sse.js';
import {
  backoff,
  counterRate,
  endpoint,
  formatRate,
  parseMetrics,
  parsePayload,
  parseTopics,
  shortDuration,
  timeAgo,
} from '../src/lib/util.js';

function parse(chunks) {
  const events = [];
  const retries = [];
  const comments = [];
  const parser = new SseParser({
    onEvent: (e) => events.push(e),
    onRetry: (ms) => retries.push(ms),
    onComment: (c) => comments.push(c),
  });
  for (const chunk of chunks) parser.push(chunk);
  return { events, retries, comments, parser };
}

test('sse: frames of every shape Herald writes', () => {
  const { events, retries, comments } = parse([
    'retry: 2000\n\n',
    'id: 1-0\nevent: item.created\ndata: {"qty":3}\n\n',
    'id: 1-1\ndata: a\ndata: b\n\n',
    ': heartbeat\n\n',
    'event: herald.synced\ndata: {}\n\n',
  ]);
  assert.deepEqual(retries, [2000]);
  assert.deepEqual(comments, ['heartbeat']);
  assert.deepEqual(events, [
    { id: '1-0', type: 'item.created', data: '{"qty":3}' },
    { id: '1-1', type: 'message', data: 'a\nb' },
    // A control event has no id line: it keeps the last id, as the standard says.
    { id: '1-1', type: 'herald.synced', data: '{}' },
  ]);
});

test('sse: any chunking gives the same events, CRLF and CR included', () => {
  const text = 'id: 7-0\r\nevent: t\r\ndata: x\r\ndata:  y\r\n\r\nid: 8-0\rdata: z\r\r';
  const whole = parse([text]).events;
  assert.deepEqual(whole, [
    { id: '7-0', type: 't', data: 'x\n y' },
    { id: '8-0', type: 'message', data: 'z' },
  ]);
  for (let size = 1; size < text.length; size++) {
    const chunks = [];
    for (let i = 0; i < text.length; i += size) chunks.push(text.slice(i, i + size));
    assert.deepEqual(parse(chunks).events, whole, `chunks of ${size}`);
  }
});

test('sse: odd lines per the standard', () => {
  const { events } = parse([
    'data\n\n', // a field with no colon has an empty value
    'id: a\0b\ndata: nul ids are ignored\n\n',
    'retry: 12x\nfoo: bar\ndata:no space\n\n',
    '\n\n', // no data: nothing dispatched
    'data: cut off at the end',
  ]);
  assert.deepEqual(events, [
    { id: '', type: 'message', data: '' },
    { id: '', type: 'message', data: 'nul ids are ignored' },
    { id: '', type: 'message', data: 'no space' },
  ]);
});

test('topics: spaces and commas separate patterns', () => {
  assert.deepEqual(parseTopics('a/*, b/**  c'), ['a/*', 'b/**', 'c']);
  assert.deepEqual(parseTopics(''), []);
  assert.deepEqual(parseTopics(null), []);
});

test('endpoint: same origin by default, a base path is kept, parameters are encoded', () => {
  assert.equal(endpoint('http://h:1', 'events', [['topic', 'a/*']]), 'http://h:1/events?topic=a%2F*');
  assert.equal(endpoint('http://h:1/herald', 'ready'), 'http://h:1/herald/ready');
  assert.equal(endpoint('http://h:1/herald/', '/ready'), 'http://h:1/herald/ready');
  assert.equal(
    endpoint('https://h', 'events', [['topic', 'a'], ['topic', 'b'], ['access_token', 'x.y+z']]),
    'https://h/events?topic=a&topic=b&access_token=x.y%2Bz',
  );
});

test('backoff: grows, is capped, and is jittered between half and all', () => {
  assert.equal(backoff(0, 2000, 30000, () => 1), 2000);
  assert.equal(backoff(0, 2000, 30000, () => 0), 1000);
  assert.equal(backoff(3, 2000, 30000, () => 1), 16000);
  assert.equal(backoff(10, 2000, 30000, () => 1), 30000);
  assert.equal(backoff(1000, 2000, 30000, () => 0), 15000);
});

test('payloads: JSON is parsed, other text stays text', () => {
  assert.deepEqual(parsePayload('{"a":[1]}'), { a: [1] });
  assert.equal(parsePayload('hello'), 'hello');
  assert.equal(parsePayload(''), '');
});

test('times: relative and short', () => {
  const now = Date.parse('2026-01-01T12:00:00Z');
  assert.equal(timeAgo('2026-01-01T11:57:00Z', now), '3 minutes ago');
  assert.equal(timeAgo('2026-01-01T11:59:58Z', now), 'just now');
  assert.equal(timeAgo('2025-12-30T12:00:00Z', now), '2 days ago');
  assert.equal(timeAgo('', now), '');
  assert.equal(timeAgo('garbage', now), '');
  assert.equal(shortDuration(12_400), '12 s');
  assert.equal(shortDuration(4 * 60_000 + 10), '4 min');
});

test('metrics: label sets are summed, histograms keep their suffixes', () => {
  const m = parseMetrics(`# HELP herald_events_published_total Events
# TYPE herald_events_published_total counter
herald_events_published_total 42
herald_clients_disconnected_total{reason="lagged"} 2
herald_clients_disconnected_total{reason="client"} 5
herald_publish_duration_seconds_sum 0.5
herald_publish_duration_seconds_count 10
broken line
`);
  assert.equal(m.get('herald_events_published_total'), 42);
  assert.equal(m.get('herald_clients_disconnected_total'), 7);
  assert.equal(m.get('herald_publish_duration_seconds_count'), 10);
  assert.equal(m.size, 4);
});

test('rates: per second, and none across a counter reset', () => {
  assert.equal(counterRate(10, 40, 3), 10);
  assert.equal(counterRate(40, 3, 3), null);
  assert.equal(counterRate(undefined, 3, 3), null);
  assert.equal(formatRate(null), '—');
  assert.equal(formatRate(0.25), '0.3');
  assert.equal(formatRate(1234), '1.2k');
  assert.equal(formatRate(45678), '46k');
});
