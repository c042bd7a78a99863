// session-stats.ts: every part of the session layer counts into one object.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { newSessionStats } from '../../src/crypto/session-stats.ts';

test('new stats: every counter at zero, a fresh object each time', () => {
  const a = newSessionStats();
  assert.ok(Object.keys(a).length >= 30);
  for (const [k, v] of Object.entries(a)) assert.equal(v, 0, k);
  a.dropAuth++;
  assert.equal(newSessionStats().dropAuth, 0);
});
