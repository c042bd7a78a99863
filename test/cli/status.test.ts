// pilotctl status as data and as a screen (pure: the daemon's answers are given).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { columns, formatStatus, statusView } from '../../src/cli/commands/status.ts';
import type { NodeInfo, PeerInfo, TrustedPeer } from '../../src/ipc/api.ts';

const info: NodeInfo = {
  address: '0:0000.0000.0001',
  hostname: 'alpha',
  email: 'a@example.com',
  public: false,
  publicKey: 'k',
  registry: '127.0.0.1:9000',
  registryOnline: true,
  observed: '203.0.113.5:4000',
  nat: 'port-restricted',
  uplink: 'udp',
  socket: '/s',
  home: '/h',
  pid: 42,
  version: '0.1.0',
  uptimeSec: 5,
  peers: 2,
};

function peer(address: string, hostname: string | null, path: Partial<PeerInfo>): PeerInfo {
  return {
    address,
    hostname,
    path: 'direct 192.0.2.7:4000',
    pathType: 'direct',
    endpoint: '192.0.2.7:4000',
    relay: null,
    rttMs: 1.234,
    bytesSent: 1,
    bytesReceived: 2,
    streams: 0,
    lastSeenMsAgo: 10,
    mtu: 1500,
    mtuState: 'done',
    ...path,
  };
}

const peers = [
  peer('0:0000.0000.0003', null, { path: 'relay (udp)', pathType: 'relay', endpoint: null, relay: 'udp', rttMs: 23.45 }),
  peer('0:0000.0000.0002', 'beta', {}),
];
const trusted: TrustedPeer[] = [
  { peer: '0:0000.0000.0002', hostname: 'beta', since: 1, mutual: true },
  { peer: '0:0000.0000.0004', hostname: 'delta', since: 1, mutual: false },
];

test('statusView: connected peers (named first), then trusted peers without a session', () => {
  const v = statusView(info, peers, trusted);
  assert.deepEqual(
    v.peers.map((p) => [p.address, p.hostname, p.connected, p.trusted, p.mutual]),
    [
      ['0:0000.0000.0002', 'beta', true, true, true],
      ['0:0000.0000.0003', null, true, false, null],
      ['0:0000.0000.0004', 'delta', false, true, false],
    ],
  );
  assert.equal(v.peers[2]!.rttMs, null);
  assert.equal(v.peers[2]!.path, '-');
  assert.deepEqual(v.registry, { address: '127.0.0.1:9000', online: true });
  assert.equal(v.self.nat, 'port-restricted');
});

test('formatStatus: one screen, columns aligned, the registry state at the end', () => {
  const text = formatStatus(statusView(info, peers, trusted));
  assert.equal(
    text,
    [
      '0:0000.0000.0001  alpha  this node                       private, NAT port-restricted, uplink udp, seen as 203.0.113.5:4000',
      '0:0000.0000.0002  beta   direct 192.0.2.7:4000  1.23 ms  trusted',
      '0:0000.0000.0003  -      relay (udp)            23.4 ms  not trusted',
      '0:0000.0000.0004  delta  idle (no session)      -        trusted (one way)',
      '',
      '# registry 127.0.0.1:9000: online',
    ].join('\n'),
  );
  const alone = formatStatus(statusView({ ...info, registryOnline: false, observed: null }, [], []));
  assert.match(alone, /# no peers yet: pilotctl handshake/);
  assert.match(alone, /# registry 127\.0\.0\.1:9000: unreachable \(sessions already up keep working/);
  assert.doesNotMatch(alone, /seen as/);
});

test('columns pads every cell but the last', () => {
  assert.equal(
    columns([
      ['a', 'bb', 'c'],
      ['ccc', 'd', 'e'],
    ]),
    'a    bb  c\nccc  d   e',
  );
});
