// pilotctl connections / disconnect / traceroute (issue 21, upstream parity) on real daemons and a
// real rendezvous: a stream is listed on both sides with the bytes that crossed it, disconnect
// closes it at both ends with a code saying why, and traceroute names the path and measures each
// leg for a direct pair and for a pair forced onto the relay (one side has no UDP socket).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { PilotNode } from '../../src/sdk/index.ts';
import { PilotError } from '../../src/util/errors.ts';
import path from 'node:path';
import { ROOT, run, type Agent } from '../helpers/cluster.ts';
import { startTrustedPair, stopTrustedPair, trustPair, type Net } from '../sdk/helpers.ts';

let net: Net;
let alpha: Agent;
let beta: Agent;
let na: PilotNode;
let nb: PilotNode;

before(async () => {
  ({ net, alpha, beta, na, nb } = await startTrustedPair('cx'));
});

after(() => stopTrustedPair({ net, na, nb }));

/** pilotctl without --json: the human text. */
async function plain(a: Agent, args: string[]): Promise<string> {
  const r = await run([process.execPath, path.join(ROOT, 'src/cli/pilotctl.ts'), ...args], { PILOT_HOME: a.home, PILOT_SOCKET: a.socket });
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

const until = async <T>(f: () => Promise<T | undefined>, what: string, ms = 5000): Promise<T> => {
  const end = Date.now() + ms;
  for (;;) {
    const v = await f();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
};

interface Row {
  id: number;
  peer: string;
  localPort: number;
  remotePort: number;
  direction: string;
  bytesIn: number;
  bytesOut: number;
  ageMs: number;
  pathType: string;
}

test('connections lists a stream on both sides with its bytes; disconnect resets both ends with a code', async () => {
  const SIZE = 100_000;
  const REPLY = 1234;
  let inbound: import('node:stream').Duplex | undefined;
  let got = 0;
  const srv = await na.listen(5100, (s) => {
    inbound = s;
    s.on('data', (c: Buffer) => {
      got += c.length;
      if (got === SIZE) s.write(Buffer.alloc(REPLY, 1));
    });
    s.on('error', () => {});
  });
  try {
    const out = await nb.dial('cx-alpha', 5100);
    let back = 0;
    out.on('data', (c: Buffer) => (back += c.length));
    out.write(Buffer.alloc(SIZE, 7));
    await until(async () => (back === REPLY ? true : undefined), 'the reply');

    const rowOn = async (a: Agent, dir: string): Promise<Row | undefined> => {
      const r = await a.ctl(['connections']);
      assert.equal(r.code, 0, r.stderr);
      return (r.json.data.connections as Row[]).find((c) => c.direction === dir && (dir === 'outgoing' ? c.remotePort : c.localPort) === 5100);
    };
    // acknowledged bytes lag the delivery by up to an ACK delay
    const b = await until(async () => {
      const x = await rowOn(beta, 'outgoing');
      return x?.bytesOut === SIZE && x.bytesIn === REPLY ? x : undefined;
    }, "beta's row with every byte");
    assert.equal(b.peer, alpha.address);
    assert.equal(b.pathType, 'direct');
    assert.ok(b.ageMs >= 0 && b.ageMs < 30_000, String(b.ageMs));
    const a = await until(async () => {
      const x = await rowOn(alpha, 'incoming');
      return x?.bytesIn === SIZE && x.bytesOut === REPLY ? x : undefined;
    }, "alpha's row with every byte");
    assert.equal(a.peer, beta.address);
    assert.equal(a.remotePort, b.localPort);
    // the SDK's view is the same list
    assert.deepEqual(
      (await na.connections()).filter((c) => c.id === a.id).map((c) => [c.direction, c.bytesIn]),
      [['incoming', SIZE]],
    );
    const human = await plain(beta, ['connections']);
    assert.match(human, new RegExp(`^${b.id} +${alpha.address} +cx-alpha +${b.localPort} +5100 +out +open +${REPLY} +${SIZE} `, 'm'));

    const outErr = new Promise<Error>((resolve) => out.once('error', resolve));
    const inErr = new Promise<Error>((resolve) => inbound!.once('error', resolve));
    const d = await beta.ctl(['disconnect', String(b.id)]);
    assert.equal(d.code, 0, d.stderr);
    assert.equal(d.json.data.id, b.id);
    const [eo, ei] = await Promise.all([outErr, inErr]);
    assert.ok(eo instanceof PilotError && ei instanceof PilotError, `${eo} / ${ei}`);
    assert.equal(eo.code, 'CONNECTION_RESET');
    assert.match(eo.message, /pilotctl disconnect on this node/);
    assert.equal(ei.code, 'CONNECTION_RESET');
    assert.match(ei.message, /closed by the peer: its operator ran pilotctl disconnect/);
    await until(async () => ((await rowOn(beta, 'outgoing')) === undefined ? true : undefined), 'the row gone at beta');
    await until(async () => ((await rowOn(alpha, 'incoming')) === undefined ? true : undefined), 'the row gone at alpha');

    const again = await beta.ctl(['disconnect', String(b.id)]);
    assert.equal(again.code, 1);
    assert.equal(again.json.code, 'NOT_FOUND');
    assert.match(again.json.hint, /pilotctl connections/);
    const bad = await beta.ctl(['disconnect', 'abc']);
    assert.equal(bad.code, 2);
    assert.equal(bad.json.code, 'BAD_ARGUMENT');
  } finally {
    await srv.close();
  }
});

test('traceroute: a direct pair names the endpoint and measures the tunnel and the rendezvous', async () => {
  const r = await beta.ctl(['traceroute', 'cx-alpha', '--count', '2']);
  assert.equal(r.code, 0, r.stderr);
  const t = r.json.data;
  assert.equal(t.target, alpha.address);
  assert.equal(t.pathType, 'direct');
  assert.match(t.endpoint, /^127\.0\.0\.1:\d+$/);
  assert.equal(t.rendezvous.address, net.rdv.addr);
  assert.equal(t.rendezvous.uplink, 'udp');
  const [tunnel, rv] = t.legs;
  assert.equal(tunnel.leg, 'tunnel');
  assert.equal(tunnel.endpoint, t.endpoint);
  assert.equal(tunnel.received, 2);
  assert.ok(tunnel.avgMs > 0 && tunnel.avgMs < 1000, JSON.stringify(tunnel));
  assert.equal(rv.leg, 'rendezvous');
  assert.equal(rv.received, 2);
  assert.ok(rv.avgMs > 0 && rv.avgMs < 1000, JSON.stringify(rv));
  assert.equal(t.peerLegMs, null);
  assert.deepEqual(
    t.hops.map((h: { hop: number; endpoint: string }) => [h.hop, h.endpoint]),
    [[1, t.endpoint]],
  );
  const human = await plain(beta, ['traceroute', 'cx-alpha', '--count', '1']);
  assert.match(human, /^traceroute to cx-alpha \(0:[0-9A-F.]+\): direct 127\.0\.0\.1:\d+\n/);
  assert.match(human, /^ {2}leg rendezvous /m);
  const sdk = await nb.traceroute('cx-alpha', { count: 1 });
  assert.equal(sdk.legs[0]?.received, 1);
});

test('traceroute: a pair on the relay names the relay and estimates the far leg', async () => {
  // no UDP socket at all: everything goes over the TCP uplink and the rendezvous's relay
  const gamma = await net.agent('cx-gamma', ['--listen', 'none', '--uplink', 'tcp']);
  await trustPair(alpha, gamma);
  const r = await gamma.ctl(['traceroute', 'cx-alpha', '--count', '3']);
  assert.equal(r.code, 0, r.stderr);
  const t = r.json.data;
  assert.equal(t.pathType, 'relay', JSON.stringify(t));
  assert.equal(t.relay, 'tcp');
  assert.equal(t.rendezvous.uplink, 'tcp');
  const [tunnel, rv] = t.legs;
  assert.equal(tunnel.endpoint, net.rdv.addr);
  assert.equal(tunnel.received, 3);
  assert.equal(rv.received, 3);
  assert.ok(t.peerLegMs !== null && t.peerLegMs >= 0, JSON.stringify(t));
  assert.deepEqual(
    t.hops.map((h: { hop: number; endpoint: string | null }) => [h.hop, h.endpoint]),
    [
      [1, net.rdv.addr],
      [2, null],
    ],
  );
  assert.match(t.hops[0].name, /^relay /);
  const x = await gamma.ctl(['traceroute', '0:0000.0000.FFFF', '--count', '1']);
  assert.equal(x.code, 1);
  assert.equal(x.json.code, 'NOT_FOUND');
});
