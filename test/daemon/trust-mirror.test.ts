// The daemon's trust mirror with a fake registry: pushes, sync (revocations the
// registry missed go first), requests, approvals by hostname, and a revocation
// that holds here while the registry is unreachable.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { TrustMirror, type TrustRegistry } from '../../src/daemon/trust-mirror.ts';
import { TrustBook } from '../../src/daemon/trust.ts';
import { formatAddress, makeAddress, parseAddress } from '../../src/wire/address.ts';
import { PilotError } from '../../src/util/errors.ts';
import { silentLogger } from '../../src/util/logger.ts';

const A = formatAddress(makeAddress(1, 0x2a));
const B = formatAddress(makeAddress(1, 0x2b));

function fakeRegistry() {
  const calls: string[] = [];
  const state = {
    trusted: [] as { peer: string; hostname: string | null; since: number; mutual: true }[],
    incoming: [] as { from: string; hostname: string | null; reason: string | null; created: number }[],
    down: false,
    requestStatus: 'pending',
  };
  const check = (what: string): void => {
    calls.push(what);
    if (state.down) throw new PilotError('TIMEOUT', 'registry unreachable');
  };
  const registry: TrustRegistry = {
    trustList: async () => (check('list'), { trusted: state.trusted }),
    trustPending: async () => (check('pending'), { incoming: state.incoming, outgoing: [] }),
    trustRequest: async (to: string) => (check(`request ${to}`), { status: state.requestStatus }) as never,
    trustApprove: async (from: string) => (check(`approve ${from}`), { status: 'trusted' }) as never,
    trustReject: async (from: string) => (check(`reject ${from}`), { status: 'rejected' }) as never,
    trustRevoke: async (peer: string) => (check(`revoke ${peer}`), { status: 'revoked' }) as never,
  };
  return { registry, calls, state };
}

function rig() {
  const home = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-trust-mirror-'));
  const book = new TrustBook(home);
  const reg = fakeRegistry();
  const revoked: string[] = [];
  book.on('revoked', (p: string) => revoked.push(p));
  const mirror = new TrustMirror(book, {
    log: silentLogger(),
    now: () => 1234,
    registry: () => reg.registry,
    network: () => 1,
    resolveHostname: async (h) => {
      if (h === 'beta') return parseAddress(B);
      throw new PilotError('NOT_FOUND', `no ${h}`);
    },
  });
  return { book, mirror, revoked, ...reg };
}

test('pushes: a request, its approval, a rejection and a revocation change the book at once', () => {
  const r = rig();
  r.mirror.onPush({ event: 'trust_request', data: { from: A, hostname: 'alpha', reason: 'hi' } });
  assert.deepEqual(r.book.listIncoming(), [{ from: A, hostname: 'alpha', reason: 'hi', created: 1234 }]);
  r.mirror.onPush({ event: 'trust_approved', data: { peer: B, hostname: 'beta' } });
  assert.equal(r.mirror.isTrusted(parseAddress(B)), true);
  r.mirror.onPush({ event: 'trust_revoked', data: { peer: B } });
  assert.equal(r.mirror.isTrusted(parseAddress(B)), false);
  assert.deepEqual(r.revoked, [B]);
  // Malformed pushes change nothing.
  r.mirror.onPush({ event: 'trust_approved', data: { peer: 42 } });
  r.mirror.onPush({ event: 'something_else', data: { peer: A } });
  assert.equal(r.book.listTrusted().length, 0);
});

test('approve and reject name a requester by the hostname it sent', async () => {
  const r = rig();
  r.mirror.onPush({ event: 'trust_request', data: { from: A, hostname: 'alpha', created: 5 } });
  assert.deepEqual(await r.mirror.approve('alpha'), { status: 'trusted', peer: A });
  assert.equal(r.book.listTrusted()[0]?.hostname, 'alpha');
  assert.deepEqual(r.calls, [`approve ${A}`]);
  r.mirror.onPush({ event: 'trust_request', data: { from: B } });
  assert.deepEqual(await r.mirror.reject('0x2b'), { status: 'rejected', peer: B });
  assert.deepEqual(r.book.listIncoming(), []);
  assert.throws(
    () => r.mirror.addressOfPending('nobody'),
    (e: PilotError) => e.code === 'NOT_FOUND',
  );
});

test('a request resolves a hostname, records the outgoing request and syncs', async () => {
  const r = rig();
  assert.deepEqual(await r.mirror.request('beta', 'please'), { status: 'pending', peer: B });
  assert.deepEqual(r.calls, [`request ${B}`, 'list', 'pending']);
  r.state.requestStatus = 'trusted'; // mutual requests auto-approve
  r.state.trusted = [{ peer: B, hostname: null, since: 1, mutual: true }];
  await r.mirror.request(B);
  assert.equal(r.mirror.isTrusted(parseAddress(B)), true);
});

test('a revocation holds while the registry is down, and is told on the next sync', async () => {
  const r = rig();
  r.state.trusted = [{ peer: A, hostname: 'alpha', since: 1, mutual: true }];
  await r.mirror.sync();
  assert.equal(r.mirror.isTrusted(parseAddress(A)), true);
  r.state.down = true;
  assert.deepEqual(await r.mirror.revoke('alpha'), { status: 'revoked-locally', peer: A });
  assert.equal(r.mirror.isTrusted(parseAddress(A)), false);
  assert.deepEqual(r.revoked, [A]);
  // The registry still lists A (it never heard): the pending revocation goes first, and A stays out.
  r.state.down = false;
  r.calls.length = 0;
  await r.mirror.sync();
  assert.deepEqual(r.calls, [`revoke ${A}`, 'list', 'pending']);
  assert.deepEqual(r.book.pendingRevocations(), []);
  r.state.trusted = [];
  await r.mirror.sync();
  assert.equal(r.mirror.isTrusted(parseAddress(A)), false);
});

test('a revocation pushed while a sync is in flight is not undone by the older list the sync fetched', async () => {
  const r = rig();
  r.state.trusted = [{ peer: B, hostname: 'beta', since: 1, mutual: true }];
  await r.mirror.sync();
  assert.equal(r.mirror.isTrusted(parseAddress(B)), true);
  // The registry answers the next list with the pair still in it, and pushes the revocation
  // before that answer is read: the list is older than the push.
  const slowList = r.registry.trustList;
  let first = true;
  r.registry.trustList = async () => {
    const answer = { trusted: [...r.state.trusted] };
    if (first) {
      first = false;
      r.state.trusted = [];
      r.mirror.onPush({ event: 'trust_revoked', data: { peer: B } });
    }
    return answer as never;
  };
  await r.mirror.sync();
  r.registry.trustList = slowList;
  assert.equal(r.mirror.isTrusted(parseAddress(B)), false, 'the revocation stands');
  assert.deepEqual(r.revoked, [B], 'revoked once, not re-trusted in between');
});
