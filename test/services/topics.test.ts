// Pub/sub topic validation and wildcard matching.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { topicMatches, validatePattern, validateTopic } from '../../src/services/topics.ts';
import { Broker } from '../../src/services/pubsub.ts';

test('wildcards: * is one segment, a trailing * one or more, * alone everything', () => {
  const cases: Array<[string, string, boolean]> = [
    ['*', 'a', true],
    ['*', 'a.b.c', true],
    ['a.*', 'a', false],
    ['a.*', 'a.b', true],
    ['a.*', 'a.b.c', true],
    ['a.*', 'ab.c', false],
    ['a.*.c', 'a.b.c', true],
    ['a.*.c', 'a.b.d', false],
    ['a.*.c', 'a.b.x.c', false],
    ['*.c', 'a.c', true],
    ['*.c', 'c', false],
    ['a.b', 'a.b', true],
    ['a.b', 'a.b.c', false],
    ['a.b.c', 'a.b', false],
  ];
  for (const [p, t, want] of cases) assert.equal(topicMatches(p, t), want, `${p} ~ ${t}`);
});

test('invalid topics and patterns are refused with BAD_ARGUMENT', () => {
  for (const t of ['', 'a..b', '.a', 'a.', 'a b', 'a.*', '*', 'x'.repeat(257), 'ü']) {
    assert.throws(() => validateTopic(t), { code: 'BAD_ARGUMENT' }, JSON.stringify(t));
  }
  for (const p of ['', 'a..b', 'a.**', 'a*', '*x', 'a.*b']) {
    assert.throws(() => validatePattern(p), { code: 'BAD_ARGUMENT' }, JSON.stringify(p));
  }
  assert.equal(validatePattern('a.*.c'), 'a.*.c');
  assert.equal(validateTopic('svc/metrics:v1.cpu_load-1'), 'svc/metrics:v1.cpu_load-1');
});

test('the broker delivers to matching subscribers only and counts them', () => {
  const b = new Broker();
  const got: string[] = [];
  const off = b.subscribe('a.*', (ev) => {
    got.push(ev.topic);
    return true;
  });
  b.subscribe('x', () => false); // a slow subscriber: not counted
  assert.equal(b.publish('a.b', 'd', 'me'), 1);
  assert.equal(b.publish('x', 'd', 'me'), 0);
  off();
  assert.equal(b.publish('a.c', 'd', 'me'), 0);
  assert.deepEqual(got, ['a.b']);
  assert.throws(() => b.publish('a', 'x'.repeat(65 * 1024), 'me'), { code: 'FRAME_TOO_LARGE' });
});
