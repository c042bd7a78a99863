// PortMapper against gateways on loopback: real UDP sockets speaking PCP and
// NAT-PMP as a router would, and as broken or lying routers do. (The honest
// gateway is also tested for real: Debian's miniupnpd in the NAT lab, lab.test.ts.)
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import { PortMapper, type PortMapStatus } from '../../../src/nat/portmap/portmapper.ts';
import { parseProcNetRoute } from '../../../src/nat/portmap/gateway.ts';

type Reply = (req: Buffer, from: { address: string; port: number }) => Buffer | Buffer[] | undefined;

/** A gateway on 127.0.0.1: `reply` answers each request (undefined: silence). Records what it got. */
async function gateway(reply: Reply): Promise<{ port: number; got: Buffer[]; send(b: Buffer, to: { address: string; port: number }): void; close(): void }> {
  const s = dgram.createSocket('udp4');
  const got: Buffer[] = [];
  s.on('message', (m, r) => {
    got.push(m);
    const out = reply(m, r);
    for (const b of out === undefined ? [] : Array.isArray(out) ? out : [out]) s.send(b, r.port, r.address);
  });
  await new Promise<void>((r) => s.bind(0, '127.0.0.1', r));
  s.unref(); // a failed assertion skips close(): the file must still end
  return { port: s.address().port, got, send: (b, to) => s.send(b, to.port, to.address), close: () => s.close() };
}

function pcpAnswer(req: Buffer, o: { result?: number; lifetime?: number; port?: number; ip?: number[]; nonce?: Buffer; internalPort?: number } = {}): Buffer {
  const b = Buffer.alloc(60);
  b[0] = 2;
  b[1] = 0x81;
  b[3] = o.result ?? 0;
  b.writeUInt32BE(o.lifetime ?? req.readUInt32BE(4), 4);
  b.writeUInt32BE(1234, 8);
  (o.nonce ?? req.subarray(24, 36)).copy(b, 24);
  b[36] = 17;
  b.writeUInt16BE(o.internalPort ?? req.readUInt16BE(40), 40);
  b.writeUInt16BE(o.port ?? 40001, 42);
  b.writeUInt16BE(0xffff, 54);
  Buffer.from(o.ip ?? [203, 0, 113, 7]).copy(b, 56);
  return b;
}

function pmpAnswer(req: Buffer, o: { result?: number; ip?: number[]; port?: number } = {}): Buffer {
  if (req[1] === 0) {
    const b = Buffer.alloc(12);
    b[1] = 128;
    b.writeUInt16BE(o.result ?? 0, 2);
    Buffer.from(o.ip ?? [203, 0, 113, 8]).copy(b, 8);
    return b;
  }
  const b = Buffer.alloc(16);
  b[1] = 129;
  b.writeUInt16BE(o.result ?? 0, 2);
  b.writeUInt16BE(req.readUInt16BE(4), 8);
  b.writeUInt16BE(o.port ?? 40002, 10);
  b.writeUInt32BE(req.readUInt32BE(8), 12);
  return b;
}

function mapper(port: number, extra: Partial<ConstructorParameters<typeof PortMapper>[0]> = {}): PortMapper {
  return new PortMapper({
    internalPort: 4000,
    gateway: () => '127.0.0.1',
    serverPort: port,
    timeoutsMs: [50, 100],
    protocols: ['pcp', 'pmp'],
    retryMs: 60_000,
    ...extra,
  });
}

async function settled(pm: PortMapper, ms = 5000): Promise<PortMapStatus> {
  const t0 = Date.now();
  while (pm.status().state === 'probing' && Date.now() - t0 < ms) await new Promise((r) => setTimeout(r, 10));
  return pm.status();
}

test('PCP: maps the given internal port, renews at half-life with the same nonce, deletes on stop (lifetime 0)', async () => {
  const gw = await gateway((req) => (req[0] === 2 ? pcpAnswer(req, { lifetime: Math.min(2, req.readUInt32BE(4)) }) : undefined));
  const pm = mapper(gw.port);
  const changes: (string | undefined)[] = [];
  pm.on('change', (e) => changes.push(e));
  pm.start();
  const st = await settled(pm);
  assert.equal(st.state, 'mapped');
  assert.equal(st.protocol, 'pcp');
  assert.equal(pm.external(), '203.0.113.7:40001');
  assert.deepEqual(changes, ['203.0.113.7:40001']);
  const first = gw.got[0]!;
  assert.equal(first.length, 60);
  assert.equal(first.readUInt16BE(40), 4000, 'internal port = the daemon socket port');
  assert.equal(first.subarray(8, 24).toString('hex'), '00000000000000000000ffff7f000001', 'client IP = our source address');
  // lifetime 2 s granted: renewed after ~1 s
  const t0 = Date.now();
  while (pm.status().renewals === 0 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 20));
  assert.equal(pm.status().renewals, 1);
  assert.ok(gw.got.at(-1)!.subarray(24, 36).equals(first.subarray(24, 36)), 'renewal repeats the nonce');
  await pm.stop();
  const del = gw.got.at(-1)!;
  assert.equal(del.readUInt32BE(4), 0, 'delete = lifetime 0');
  assert.ok(del.subarray(24, 36).equals(first.subarray(24, 36)), 'delete repeats the nonce');
  assert.equal(pm.external(), undefined);
  gw.close();
});

test('a NAT-PMP-only gateway (answers PCP with "unsupported version"): NAT-PMP maps; stop deletes with lifetime 0, port 0', async () => {
  const gw = await gateway((req) => {
    if (req[0] === 2) {
      const b = Buffer.alloc(8);
      b[1] = 0x81;
      b.writeUInt16BE(1, 2);
      return b;
    }
    return pmpAnswer(req);
  });
  const pm = mapper(gw.port);
  pm.start();
  const st = await settled(pm);
  assert.equal(st.protocol, 'pmp');
  assert.equal(pm.external(), '203.0.113.8:40002');
  await pm.stop();
  const del = gw.got.at(-1)!;
  assert.deepEqual([del[1], del.readUInt16BE(4), del.readUInt16BE(6), del.readUInt32BE(8)], [1, 4000, 0, 0]);
  gw.close();
});

test('a silent gateway: start() does not wait, the failure comes within the bounded retries, coded PORTMAP_NO_ANSWER', async () => {
  const gw = await gateway(() => undefined);
  const pm = mapper(gw.port);
  const t0 = Date.now();
  pm.start();
  assert.ok(Date.now() - t0 < 100, 'start() returned at once');
  assert.equal(pm.external(), undefined);
  const st = await settled(pm);
  const took = Date.now() - t0;
  assert.equal(st.state, 'failed');
  assert.equal(st.error?.code, 'PORTMAP_NO_ANSWER');
  assert.match(st.error!.hint, /PCP, NAT-PMP or UPnP/);
  // PCP (50+100 ms) + NAT-PMP address request (50+100 ms), and some slack for a loaded box
  assert.ok(took >= 280 && took < 2000, `took ${took} ms`);
  await pm.stop();
  gw.close();
});

test('nothing listens at the gateway (ICMP port unreachable): fails fast, NAT-PMP not tried on the same port', async () => {
  const gw = await gateway(() => undefined);
  const port = gw.port;
  gw.close(); // the port is now closed: the kernel answers port unreachable
  const pm = mapper(port, { timeoutsMs: [2000, 4000] });
  const t0 = Date.now();
  pm.start();
  const st = await settled(pm);
  assert.equal(st.error?.code, 'PORTMAP_NO_ANSWER');
  assert.match(st.error!.message, /refused/);
  assert.ok(Date.now() - t0 < 1500, `took ${Date.now() - t0} ms: waited for timeouts instead of the ICMP error`);
  await pm.stop();
});

test('a gateway that refuses (result code): PORTMAP_REFUSED naming the result, no candidate', async () => {
  const gw = await gateway((req) => (req[0] === 2 ? pcpAnswer(req, { result: 2 }) : pmpAnswer(req, { result: 2 })));
  const pm = mapper(gw.port);
  pm.start();
  const st = await settled(pm);
  assert.equal(st.error?.code, 'PORTMAP_REFUSED');
  assert.match(st.error!.message, /not authorized/);
  assert.equal(pm.external(), undefined);
  await pm.stop();
  gw.close();
});

test('a lying gateway: a private or loopback external address is PORTMAP_BAD_EXTERNAL and never advertised', async () => {
  for (const ip of [
    [10, 0, 0, 1],
    [192, 168, 1, 1],
    [100, 64, 0, 1],
    [127, 0, 0, 1],
  ]) {
    const gw = await gateway((req) => (req[0] === 2 ? pcpAnswer(req, { ip }) : pmpAnswer(req, { ip })));
    const pm = mapper(gw.port);
    pm.start();
    const st = await settled(pm);
    assert.equal(st.error?.code, 'PORTMAP_BAD_EXTERNAL', `${ip.join('.')}: ${JSON.stringify(st)}`);
    assert.equal(pm.external(), undefined);
    await pm.stop();
    gw.close();
  }
});

test('a broken gateway: port 0 or lifetime 0 granted is PORTMAP_BAD_RESPONSE', async () => {
  const gw = await gateway((req) => (req[0] === 2 ? pcpAnswer(req, { port: 0 }) : undefined));
  const pm = mapper(gw.port);
  pm.start();
  assert.equal((await settled(pm)).error?.code, 'PORTMAP_BAD_RESPONSE');
  await pm.stop();
  gw.close();
});

test('answers that are not ours (wrong nonce, wrong internal port, garbage) are ignored; the right one is taken', async () => {
  const gw = await gateway((req) =>
    req[0] === 2
      ? [Buffer.from('garbage'), pcpAnswer(req, { nonce: Buffer.alloc(12, 7), port: 1111 }), pcpAnswer(req, { internalPort: 4001, port: 2222 }), pcpAnswer(req)]
      : undefined,
  );
  const pm = mapper(gw.port);
  pm.start();
  const st = await settled(pm);
  assert.equal(pm.external(), '203.0.113.7:40001');
  assert.ok(st.ignored >= 3, `ignored ${st.ignored}`);
  await pm.stop();
  gw.close();
});

test('an answer from another port of the gateway is not believed', async () => {
  const liar = dgram.createSocket('udp4');
  await new Promise<void>((r) => liar.bind(0, '127.0.0.1', r));
  // The port asked stays silent; another socket on the gateway's address answers, well-formed.
  const gw = await gateway((req, from) => {
    liar.send(req[0] === 2 ? pcpAnswer(req) : pmpAnswer(req), from.port, from.address);
    return undefined;
  });
  const pm = mapper(gw.port);
  pm.start();
  const st = await settled(pm);
  assert.equal(st.state, 'failed');
  assert.equal(st.error?.code, 'PORTMAP_NO_ANSWER');
  assert.equal(pm.external(), undefined);
  await pm.stop();
  gw.close();
  liar.close();
});

test('stop() during a slow gateway is bounded, and a mapping granted after it returned is deleted all the same', async () => {
  let asker: { address: string; port: number } | undefined;
  const gw = await gateway((req, from) => {
    if (req[0] !== 2) return undefined;
    if (req.readUInt32BE(4) === 0) return pcpAnswer(req, { lifetime: 0 }); // the delete
    asker = from;
    return undefined; // the grant comes late, below
  });
  const pm = mapper(gw.port, { timeoutsMs: [3000] });
  pm.start();
  while (asker === undefined) await new Promise((r) => setTimeout(r, 5));
  const t0 = Date.now();
  await pm.stop();
  const took = Date.now() - t0;
  assert.ok(took < 1000, `stop took ${took} ms`);
  gw.send(pcpAnswer(gw.got[0]!), asker);
  const t1 = Date.now();
  while (!gw.got.some((b) => b.readUInt32BE(4) === 0) && Date.now() - t1 < 2000) await new Promise((r) => setTimeout(r, 10));
  const del = gw.got.find((b) => b.readUInt32BE(4) === 0);
  assert.ok(del, 'the late mapping was not deleted');
  assert.ok(del.subarray(24, 36).equals(gw.got[0]!.subarray(24, 36)), 'deleted with its nonce');
  gw.close();
});

test('a gateway restart (its epoch goes back) is noticed by the epoch check and the mapping is asked again at once', async () => {
  let bootAt = Date.now() - 1_000_000; // up for 1000 s
  const epoch = (): number => Math.floor((Date.now() - bootAt) / 1000);
  let maps = 0;
  const gw = await gateway((req) => {
    if (req[0] !== 2) return undefined;
    if (req[1] === 0) {
      const b = Buffer.alloc(24); // ANNOUNCE answer
      b[0] = 2;
      b[1] = 0x80;
      b.writeUInt32BE(epoch(), 8);
      return b;
    }
    maps++;
    const b = pcpAnswer(req, { lifetime: 3600 });
    b.writeUInt32BE(epoch(), 8);
    return b;
  });
  const pm = mapper(gw.port, { checkMs: 100 });
  pm.start();
  await settled(pm);
  assert.equal(maps, 1);
  // A steady gateway: several checks, no false alarm.
  await new Promise((r) => setTimeout(r, 450));
  assert.equal(pm.status().gatewayRestarts, 0);
  assert.equal(maps, 1);
  assert.ok(gw.got.filter((b) => b[1] === 0).length >= 2, 'epoch checks sent');
  // The router reboots: epoch 0, our mapping gone.
  bootAt = Date.now();
  const t0 = Date.now();
  while (maps < 2 && Date.now() - t0 < 3000) await new Promise((r) => setTimeout(r, 10));
  assert.equal(maps, 2, 'mapped again after the restart');
  assert.equal(pm.status().gatewayRestarts, 1);
  assert.equal(pm.external(), '203.0.113.7:40001');
  await pm.stop();
  gw.close();
});

test('no default route: PORTMAP_NO_GATEWAY, nothing sent', async () => {
  const pm = new PortMapper({ internalPort: 4000, gateway: () => undefined, retryMs: 60_000 });
  pm.start();
  const st = await settled(pm);
  assert.equal(st.error?.code, 'PORTMAP_NO_GATEWAY');
  await pm.stop();
});

test('/proc/net/route: the default route with the lowest metric, little-endian hex', () => {
  const text = [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth0\t0000A8C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
    'wlan0\t00000000\t0101A8C0\t0003\t0\t0\t600\t00000000\t0\t0\t0',
    'eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0',
    'tun0\t00000000\t00000000\t0001\t0\t0\t50\t00000000\t0\t0\t0',
  ].join('\n');
  assert.deepEqual(parseProcNetRoute(text), { iface: 'eth0', gateway: '10.0.0.1' });
  assert.equal(parseProcNetRoute(text.split('\n').slice(0, 2).join('\n')), undefined);
});
