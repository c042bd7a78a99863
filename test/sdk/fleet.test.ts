// The member choice and fail-over of node.dialAny() (src/sdk/fleet.ts) with a
// fake dialer: sessions first by RTT bucket, random among equals, offline and
// duplicate members skipped, ourselves last; errors another member could fix
// move on, others stop at once; the final error lists every attempt.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DialAnyError, FailureMemory, dialFirst, orderMembers } from '../../src/sdk/fleet.ts';
import { PilotError } from '../../src/util/errors.ts';
import type { NetworkMemberInfo, PeerInfo } from '../../src/ipc/api-types.ts';

const member = (node: number, online = true): NetworkMemberInfo => ({
  address: `7:0007.0000.${node.toString(16).toUpperCase().padStart(4, '0')}`,
  hostname: `w${node}`,
  tags: ['worker'],
  online,
});
/** A peer as peers() shows it: its network-0 address. */
const peer = (node: number, rttMs: number): PeerInfo =>
  ({ address: `0:0000.0000.${node.toString(16).toUpperCase().padStart(4, '0')}`, hostname: null, rttMs }) as PeerInfo;
const names = (ms: NetworkMemberInfo[]) => ms.map((m) => m.hostname);
const target = { network: 'fleet', tag: 'worker', port: 80 };

test('members with a session come first, nearer first; offline, duplicates skipped; ourselves last', () => {
  const members = [member(1), member(2), member(3, false), member(4), member(5), member(2)];
  const order = orderMembers(members, [peer(4, 30), peer(2, 1)], '0:0000.0000.0001');
  assert.deepEqual(names(order), ['w2', 'w4', 'w5', 'w1']);
});

test('among equals (same RTT bucket, or no session) the order is random, so callers spread', () => {
  const members = [1, 2, 3, 4].map((n) => member(n));
  const peers = [peer(1, 0.4), peer(2, 3.9)]; // one 5 ms bucket: equal
  const firsts = new Map<string, number>();
  for (let i = 0; i < 400; i++) {
    const order = names(orderMembers(members, peers, undefined));
    assert.deepEqual(new Set(order.slice(0, 2)), new Set(['w1', 'w2'])); // sessions still first
    firsts.set(order[0]!, (firsts.get(order[0]!) ?? 0) + 1);
  }
  assert.ok(firsts.get('w1')! > 120 && firsts.get('w2')! > 120, `both picked first often: ${[...firsts]}`);
  // with a fixed random source the order is reproducible
  const seq = [0.9, 0.1, 0.5, 0.3];
  let i = 0;
  assert.deepEqual(names(orderMembers(members, [], undefined, () => seq[i++]!)), ['w2', 'w4', 'w3', 'w1']);
});

test('fail-over: unreachable, timeout, refused, PERMISSION_DENIED move on; the first that answers wins', async () => {
  const codes = new Map([
    ['w1', 'UNREACHABLE'],
    ['w2', 'TIMEOUT'],
    ['w3', 'CONNECTION_REFUSED'],
    ['w4', 'PERMISSION_DENIED'],
  ] as const);
  const tried: string[] = [];
  const r = await dialFirst(
    [1, 2, 3, 4, 5].map((n) => member(n)),
    async (m) => {
      tried.push(m.hostname!);
      const code = codes.get(m.hostname as 'w1');
      if (code) throw new PilotError(code, `${m.hostname} says ${code}`);
      return `socket to ${m.hostname}`;
    },
    target,
    5,
  );
  assert.equal(r.value, 'socket to w5');
  assert.equal(r.member.hostname, 'w5');
  assert.deepEqual(tried, ['w1', 'w2', 'w3', 'w4', 'w5']);
  assert.deepEqual(
    r.failed.map((f) => f.code),
    ['UNREACHABLE', 'TIMEOUT', 'CONNECTION_REFUSED', 'PERMISSION_DENIED'],
  );
});

test('an error no other member could fix is thrown at once', async () => {
  const tried: string[] = [];
  await assert.rejects(
    dialFirst(
      [member(1), member(2)],
      async (m) => {
        tried.push(m.hostname!);
        throw new PilotError('NO_DAEMON', 'the daemon went away');
      },
      target,
    ),
    (e: unknown) => e instanceof PilotError && !(e instanceof DialAnyError) && e.code === 'NO_DAEMON',
  );
  assert.deepEqual(tried, ['w1']);
});

test('when every attempt fails: one code for all keeps it, the error lists each, attempts bound the tries', async () => {
  const tried: string[] = [];
  const err = await dialFirst(
    [1, 2, 3, 4].map((n) => member(n)),
    async (m) => {
      tried.push(m.hostname!);
      throw new PilotError('PERMISSION_DENIED', `network 7 policy refuses port 80 on ${m.address}`);
    },
    target,
    3,
  ).catch((e: unknown) => e);
  assert.ok(err instanceof DialAnyError);
  assert.equal(err.code, 'PERMISSION_DENIED');
  assert.deepEqual(tried, ['w1', 'w2', 'w3']);
  assert.equal(err.attempts.length, 3);
  assert.match(err.message, /7:0007\.0000\.0001 \(w1\): PERMISSION_DENIED/);
  assert.match(err.message, /1 more online not tried/);
  assert.match(err.hint!, /policy of network fleet/);
  // mixed codes: UNREACHABLE, still listing each
  let n = 0;
  const mixed = await dialFirst(
    [member(1), member(2)],
    async () => {
      throw n++ === 0 ? new PilotError('TIMEOUT', 'slow') : new Error('socket gone');
    },
    target,
  ).catch((e: unknown) => e);
  // a plain Error becomes INTERNAL, which no other member can fix: thrown as is after the TIMEOUT
  assert.ok(mixed instanceof PilotError && mixed.code === 'INTERNAL');
  n = 0;
  const mixed2 = (await dialFirst(
    [member(1), member(2)],
    async () => {
      throw new PilotError(n++ === 0 ? 'TIMEOUT' : 'CONNECTION_REFUSED', 'no');
    },
    target,
  ).catch((e: unknown) => e)) as DialAnyError;
  assert.equal(mixed2.code, 'UNREACHABLE');
  assert.match(mixed2.hint!, /each member failed differently/);
  assert.deepEqual(
    mixed2.attempts.map((a) => a.code),
    ['TIMEOUT', 'CONNECTION_REFUSED'],
  );
});

test('every member NOT_FOUND (we are no member: the admin is not one by itself): the hint says to join', async () => {
  const err = (await dialFirst(
    [member(1), member(2)],
    async (m) => {
      throw new PilotError('NOT_FOUND', `${m.address}: not a member of network 7`);
    },
    target,
  ).catch((e: unknown) => e)) as DialAnyError;
  assert.equal(err.code, 'NOT_FOUND');
  assert.equal(err.attempts.length, 2);
  assert.match(err.hint!, /must be a member of network fleet .*networks\.join/);
});

test('no online member: NOT_FOUND with a hint naming the tag; attempts must be >= 1', async () => {
  const err = await dialFirst([], async () => 'x', target).catch((e: unknown) => e);
  assert.ok(err instanceof DialAnyError);
  assert.equal(err.code, 'NOT_FOUND');
  assert.match(err.message, /tag:worker in network fleet/);
  assert.match(err.hint!, /discover/);
  await assert.rejects(
    dialFirst([member(1)], async () => 'x', target, 0),
    (e: unknown) => e instanceof PilotError && e.code === 'BAD_ARGUMENT',
  );
});

test('members that just timed out or were unreachable are tried last for a while; bounded, expiring', async () => {
  const memory = new FailureMemory(1000, 3);
  const members = [1, 2, 3].map((n) => member(n));
  const peers = [peer(1, 1), peer(2, 1), peer(3, 40)];
  // w1 and w2 time out, w3 answers: remembered are w1 and w2 (not w3, which answered)
  const r = await dialFirst(
    orderMembers(members, peers, undefined, () => 0.5, memory),
    async (m) => {
      if (m.hostname !== 'w3') throw new PilotError(m.hostname === 'w1' ? 'TIMEOUT' : 'UNREACHABLE', 'gone');
      return m.hostname;
    },
    target,
    3,
    memory,
  );
  assert.equal(r.value, 'w3');
  assert.equal(memory.size, 2);
  // next time w3 comes first though its RTT is higher, then the two that failed
  assert.deepEqual(names(orderMembers(members, peers, undefined, () => 0.5, memory)), ['w3', 'w1', 'w2']);
  // a port-level refusal says nothing about the node: not remembered; an answer forgets the node
  memory.failed(member(3).address, 'CONNECTION_REFUSED');
  memory.failed(member(3).address, 'PERMISSION_DENIED');
  assert.equal(memory.size, 2);
  memory.answered(member(1).address);
  assert.deepEqual(names(orderMembers(members, peers, undefined, () => 0.5, memory)), ['w1', 'w3', 'w2']);
  // expiry, and the bound (oldest forgotten first)
  const now = Date.now();
  memory.failed(member(2).address, 'TIMEOUT', now); // again: remembered 1 s from now
  assert.equal(memory.has(2, now + 999), true);
  assert.equal(memory.has(2, now + 1000), false);
  for (const n of [4, 5, 6, 7]) memory.failed(member(n).address, 'TIMEOUT');
  assert.equal(memory.size, 3);
  assert.equal(memory.has(4), false);
  assert.equal(memory.has(7), true);
});
