// The disk budget alone (src/services/quota.ts), against a fake statfs: what
// is reserved counts against the floor until written, a peer's usage counts
// against its quota, releases give room back, refusals are coded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DiskBudget, defaultFloor, defaultPeerQuota } from '../../src/services/quota.ts';
import { PilotError } from '../../src/util/errors.ts';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;

const code =
  (c: string) =>
  (err: unknown): boolean =>
    err instanceof PilotError && err.code === c;

test('defaults: floor 5% of the filesystem at most 1 GiB, quota half of it', () => {
  assert.equal(defaultFloor(100 * MiB), 5 * MiB);
  assert.equal(defaultFloor(1000 * GiB), GiB);
  assert.equal(defaultPeerQuota(100 * MiB), 50 * MiB);
});

test('reservations count against the floor until written, and against the quota until released', () => {
  const disk = { total: 100 * MiB, free: 100 * MiB };
  const onDisk = new Map<string, number>();
  const b = new DiskBudget({ dir: '/nowhere', statfs: () => disk });
  b.addUsage((peer) => onDisk.get(peer) ?? 0);
  const r1 = b.reserve('a', 45 * MiB, 'a file');
  // a's share: 45 + 10 > 50
  assert.throws(() => b.reserve('a', 10 * MiB, 'a file'), code('QUOTA_EXCEEDED'));
  // c: 45 MiB promised to a + 45 for c would leave 10 MiB, above the 5 MiB floor
  const r2 = b.reserve('c', 45 * MiB, 'a file');
  // d: only 10 MiB are not promised; 6 MiB would leave 4 < 5
  assert.throws(() => b.reserve('d', 6 * MiB, 'a file'), code('NO_SPACE'));
  // bytes written move from the reservation to statfs: the same answer
  r1.wrote(20 * MiB);
  disk.free -= 20 * MiB;
  assert.throws(() => b.reserve('d', 6 * MiB, 'a file'), code('NO_SPACE'));
  // a finished: its file is on disk (counted by its service), the reservation released
  r1.release();
  onDisk.set('a', 20 * MiB);
  assert.throws(() => b.reserve('a', 31 * MiB, 'a file'), code('QUOTA_EXCEEDED'));
  b.reserve('d', 6 * MiB, 'a file');
  r2.release();
  assert.equal(b.reserved, 6 * MiB);
  // never fits: a size problem, not a quota one
  assert.throws(() => b.check('e', 60 * MiB, 'a file'), code('FRAME_TOO_LARGE'));
});

test('a resumed partial counts once and needs no new room', () => {
  const disk = { total: 100 * MiB, free: 20 * MiB };
  const b = new DiskBudget({ dir: '/nowhere', statfs: () => disk, floorBytes: 0 });
  b.addUsage((peer) => (peer === 'a' ? 30 * MiB : 0)); // a 30 MiB partial of a 40 MiB file
  const r = b.reserve('a', 40 * MiB, 'a file', 30 * MiB);
  assert.equal(r.outstanding, 10 * MiB);
});
