// SessionTable (src/crypto/session-table.ts) on a controlled clock: which session is
// sent on, confirmation and rekey, restarts, the queue, key changes and the sweep.
// Sessions get random keys: nothing here encrypts across two sides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import { SessionTable, type PeerState } from '../../src/crypto/session-table.ts';
import { newSessionStats } from '../../src/crypto/session-stats.ts';
import type { HandshakeResult } from '../../src/crypto/handshake.ts';
import { addressKey } from '../../src/wire/address.ts';

const addr = { network: 0, node: 2 };
const key = crypto.randomBytes(32);
const boot1 = Buffer.alloc(8, 1);
const boot2 = Buffer.alloc(8, 2);

function keys(bootId = boot1): HandshakeResult {
  return { sendKey: crypto.randomBytes(32), recvKey: crypto.randomBytes(32), remoteStatic: key, address: addr, bootId, timestamp: 1 };
}

function rig() {
  const stats = newSessionStats();
  const keyChanges: number[] = [];
  const table = new SessionTable({ rejectAfterMs: 1000, graceMs: 300, youngMs: 100, maxQueue: 3, onKeyChange: (k) => keyChanges.push(k) }, stats);
  let index = 0;
  const add = (st: PeerState, role: 'initiator' | 'responder', now: number, bootId = boot1) => table.add(st, ++index, 1000 + index, role, keys(bootId), now);
  return { table, stats, keyChanges, add };
}

test('peerFor: one state per address, a copy of the address, 32-byte keys only', () => {
  const { table } = rig();
  const a: { network: number; node: number } = { ...addr };
  const st = table.peerFor(a, key);
  a.node = 99;
  assert.equal(st.key, addressKey(addr));
  assert.deepEqual(st.address, addr);
  assert.equal(table.peerFor(addr, Buffer.from(key)), st);
  assert.equal(table.get(addressKey(addr)), st);
  assert.throws(() => table.peerFor(addr, Buffer.alloc(31)), { code: 'BAD_ARGUMENT' });
});

test('an initiator session is sent on once confirmed; a young responder session is the best there is until then', () => {
  const { table, stats, add } = rig();
  const st = table.peerFor(addr, key);
  assert.equal(table.sendSession(st, 0), undefined);
  const u = add(st, 'responder', 0);
  table.addUnconfirmed(u);
  assert.equal(table.sendSession(st, 50), u, 'young: used');
  assert.equal(table.sendSession(st, 100), undefined, 'past youngMs: not any more');
  const s = add(st, 'initiator', 100);
  assert.equal(table.confirm(s, 100), false);
  assert.equal(st.current, s);
  assert.equal(stats.handshakesCompleted, 1);
  assert.equal(table.sendSession(st, 500), s);
  assert.equal(table.session(s.localIndex), s);
  assert.equal(table.sentWith(s.remoteIndex), s);
  assert.equal(table.sendSession(st, 100 + 1000), undefined, 'not after rejectAfterMs');
});

test('a young responder session revealing a restart is not sent on (the queue waits for the confirmation)', () => {
  const { table, add } = rig();
  const st = table.peerFor(addr, key);
  table.confirm(add(st, 'initiator', 0), 0); // boot1; can send until 1000
  const same = add(st, 'responder', 1010);
  table.addUnconfirmed(same);
  assert.equal(table.sendSession(st, 1020), same, 'the current one expired: a young responder session of the same life');
  const restarted = add(st, 'responder', 1030, boot2);
  table.addUnconfirmed(restarted);
  assert.equal(table.sendSession(st, 1040), same, 'the newest one is passed over: it reveals a restart');
  assert.equal(table.sendSession(st, 1115), undefined);
});

test('rekey: the old session is retired (still decrypts for graceMs, no longer found by its remote index), at most 3 kept', () => {
  const { table, stats, add } = rig();
  const st = table.peerFor(addr, key);
  const first = add(st, 'initiator', 0);
  table.confirm(first, 0);
  const second = add(st, 'initiator', 100);
  table.confirm(second, 100);
  assert.equal(st.current, second);
  assert.deepEqual(st.previous, [first]);
  assert.equal(first.recvUntil, 100 + 300);
  assert.equal(table.session(first.localIndex), first);
  assert.equal(table.sentWith(first.remoteIndex), undefined);
  assert.equal(stats.rekeys, 1);
  for (let i = 0; i < 3; i++) table.confirm(add(st, 'initiator', 200 + i), 200 + i);
  assert.equal(st.previous.length, 3);
  assert.equal(table.session(first.localIndex), undefined, 'the oldest was forgotten');
  assert.equal(st.rekeys, 4);
});

test('confirming a responder session drops the older unconfirmed ones and keeps newer ones; at most 8 wait', () => {
  const { table, add } = rig();
  const st = table.peerFor(addr, key);
  const u = Array.from({ length: 10 }, (_, i) => add(st, 'responder', i));
  for (const s of u) table.addUnconfirmed(s);
  assert.equal(st.unconfirmed.length, 8);
  assert.equal(table.session(u[0]!.localIndex), undefined);
  assert.equal(table.session(u[1]!.localIndex), undefined);
  table.confirm(u[5]!, 20);
  assert.ok(u[5]!.confirmed);
  assert.deepEqual(st.unconfirmed, u.slice(6));
  assert.equal(table.session(u[4]!.localIndex), undefined);
});

test('a changed boot id: sessions of the old life and the queue are dropped, once', () => {
  const { table, stats, add } = rig();
  const st = table.peerFor(addr, key);
  const old = add(st, 'initiator', 0);
  table.confirm(old, 0);
  table.enqueue(st, Buffer.from('x'));
  const fresh = add(st, 'initiator', 10, boot2);
  assert.equal(table.confirm(fresh, 10), true);
  assert.equal(st.current, fresh);
  assert.deepEqual(st.previous, [], 'the old life is not kept for its grace period');
  assert.equal(table.session(old.localIndex), undefined);
  assert.equal(st.queue.length, 0);
  assert.equal(stats.dropNoSession, 1);
  assert.equal(stats.peerRestarts, 1);
  assert.ok(st.bootId!.equals(boot2));
  assert.equal(table.noteBootId(st, fresh), false);
});

test('the queue: bounded (oldest dropped, counted), taken in order', () => {
  const { table, stats } = rig();
  const st = table.peerFor(addr, key);
  for (const m of ['a', 'b', 'c', 'd']) table.enqueue(st, Buffer.from(m));
  assert.equal(stats.dropQueueOverflow, 1);
  assert.deepEqual(table.takeQueue(st).map(String), ['b', 'c', 'd']);
  assert.equal(st.queue.length, 0);
});

test('another key for the address: the peer is reset, its boot id forgotten, and the owner told', () => {
  const { table, stats, keyChanges, add } = rig();
  const st = table.peerFor(addr, key);
  const s = add(st, 'initiator', 0);
  table.confirm(s, 0);
  table.enqueue(st, Buffer.from('q'));
  const other = crypto.randomBytes(32);
  assert.equal(table.peerFor(addr, other), st);
  assert.deepEqual(keyChanges, [st.key]);
  assert.ok(st.publicKey.equals(other));
  assert.equal(st.bootId, undefined);
  assert.equal(st.current, undefined);
  assert.equal(table.session(s.localIndex), undefined);
  assert.equal(stats.dropNoSession, 1);
});

test('sweep frees sessions past their receive deadline; info, remove and clear', () => {
  const { table, add } = rig();
  const st = table.peerFor(addr, key);
  const a = add(st, 'initiator', 0);
  table.confirm(a, 0);
  const b = add(st, 'initiator', 500);
  table.confirm(b, 500);
  const info = table.info(st, 600, true, 2);
  assert.equal(info.established, true);
  assert.equal(info.role, 'initiator');
  assert.equal(info.ageMs, 100);
  assert.equal(info.localIndex, b.localIndex);
  assert.equal(info.previousSessions, 1);
  assert.equal(info.handshaking, true);
  assert.equal(info.handshakeAttempts, 2);
  assert.equal(info.rekeys, 1);
  assert.equal(info.remoteBootId, boot1.toString('hex'));
  table.sweep(500 + 300); // a's grace is over (recvUntil 800)
  assert.deepEqual(st.previous, []);
  assert.equal(table.session(a.localIndex), undefined);
  table.sweep(500 + 1000 + 300);
  assert.equal(st.current, undefined, 'b too, past rejectAfterMs + graceMs');
  assert.equal(table.info(st, 2000, false, 0).established, false);

  const c = add(st, 'initiator', 2000);
  table.confirm(c, 2000);
  table.remove(st.key);
  assert.equal(table.get(st.key), undefined);
  assert.equal(table.session(c.localIndex), undefined);
  const st2 = table.peerFor(addr, key);
  const d = add(st2, 'initiator', 0);
  table.clear();
  assert.equal(table.get(st2.key), undefined);
  assert.equal(table.hasIndex(d.localIndex), false);
});
