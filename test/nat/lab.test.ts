// The NAT lab itself, checked with plain UDP/TCP (node:dgram/node:net in the
// namespaces, no Pilot code): if these fail, the matrix results mean nothing.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import readline from 'node:readline';
import { NatLab, natLabSupport, RENDEZVOUS_IP, RENDEZVOUS_IP2, type Host, type Site } from '../helpers/natlab.ts';

const support = natLabSupport();
const NODE = process.execPath;

// One UDP socket; stdin lines "host port text" are sent, every datagram received is a JSON line.
const PEER = `
const dgram = require('node:dgram');
const s = dgram.createSocket('udp4');
const out = (o) => process.stdout.write(JSON.stringify(o) + '\\n');
s.on('message', (m, r) => out({ ev: 'msg', from: r.address + ':' + r.port, data: m.toString() }));
s.bind(Number(process.argv[2] || 0), process.argv[1] || '0.0.0.0', () => out({ ev: 'ready', port: s.address().port }));
require('node:readline').createInterface({ input: process.stdin }).on('line', (l) => {
  const [host, port, ...rest] = l.split(' ');
  s.send(rest.join(' '), Number(port), host);
});`;

// STUN-like reflector: answers every UDP datagram ("obs <source> <its text>") and TCP
// connection ("obs <source>") with the source address it saw.
const REFLECTOR = `
const dgram = require('node:dgram');
const net = require('node:net');
const binds = process.argv.slice(1).map((b) => b.split(':'));
let left = binds.length + 1;
const up = () => { if (--left === 0) process.stdout.write('ready\\n'); };
for (const [host, port] of binds) {
  const s = dgram.createSocket('udp4');
  s.on('message', (m, r) => s.send('obs ' + r.address + ':' + r.port + ' ' + m, r.port, r.address));
  s.bind(Number(port), host, up);
}
const [th, tp] = binds[0];
net.createServer((c) => c.end('obs ' + c.remoteAddress + ':' + c.remotePort)).listen(Number(tp), th, up);`;

const TCP_PROBE = `
const c = require('node:net').connect(Number(process.argv[2]), process.argv[1]);
let data = '';
c.setTimeout(3000, () => { process.stdout.write(JSON.stringify({ ok: false, error: 'timeout' })); process.exit(0); });
c.on('data', (d) => (data += d));
c.on('end', () => { process.stdout.write(JSON.stringify({ ok: true, data })); process.exit(0); });
c.on('error', (e) => { process.stdout.write(JSON.stringify({ ok: false, error: e.code })); process.exit(0); });`;

const REFLECT = [`${RENDEZVOUS_IP}:3478`, `${RENDEZVOUS_IP}:3479`, `${RENDEZVOUS_IP2}:3478`];

interface Msg {
  from: string;
  data: string;
}

class UdpPeer {
  readonly proc: ChildProcess;
  readonly msgs: Msg[] = [];
  port = 0;
  private waiters = new Set<() => void>();

  private constructor(proc: ChildProcess) {
    this.proc = proc;
  }

  static async start(lab: NatLab, ns: string, bind = '0.0.0.0', port = 0): Promise<UdpPeer> {
    const p = new UdpPeer(lab.spawn(ns, [NODE, '-e', PEER, bind, String(port)]));
    let err = '';
    p.proc.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const ready = new Promise<void>((resolve, reject) => {
      p.proc.once('exit', (code) => reject(new Error(`udp peer exited (${code}): ${err}`)));
      readline.createInterface({ input: p.proc.stdout! }).on('line', (l) => {
        const m = JSON.parse(l) as { ev: string; port?: number } & Msg;
        if (m.ev === 'ready') {
          p.port = m.port!;
          resolve();
        } else {
          p.msgs.push({ from: m.from, data: m.data });
          for (const w of p.waiters) w();
        }
      });
    });
    await ready;
    return p;
  }

  send(to: string, text: string): void {
    const i = to.lastIndexOf(':');
    this.proc.stdin!.write(`${to.slice(0, i)} ${to.slice(i + 1)} ${text}\n`);
  }

  /** The first message matching `pred` within `ms`, or undefined. */
  waitFor(pred: (m: Msg) => boolean, ms: number): Promise<Msg | undefined> {
    const hit = this.msgs.find(pred);
    if (hit) return Promise.resolve(hit);
    return new Promise((resolve) => {
      const check = (): void => {
        const m = this.msgs.find(pred);
        if (m) done(m);
      };
      const timer = setTimeout(() => done(undefined), ms);
      const done = (m: Msg | undefined): void => {
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(m);
      };
      this.waiters.add(check);
    });
  }

  /** Ask the reflector at `server` what source it sees (retried: UDP); undefined if it never answers. */
  async observed(server: string, ms = 1500): Promise<string | undefined> {
    const tag = Math.random().toString(36).slice(2);
    for (let t = 0; t < ms; t += 250) {
      this.send(server, tag);
      const m = await this.waitFor((x) => x.from === server && x.data.startsWith('obs ') && x.data.endsWith(` ${tag}`), 250);
      if (m) return m.data.split(' ')[1];
    }
    return undefined;
  }

  stop(): void {
    this.proc.kill('SIGKILL');
  }
}

function tcpProbe(lab: NatLab, host: Host, server: string): { ok: boolean; data?: string; error?: string } {
  const i = server.lastIndexOf(':');
  return JSON.parse(lab.exec(host.ns, [NODE, '-e', TCP_PROBE, server.slice(0, i), server.slice(i + 1)]));
}

const ipOf = (ep: string): string => ep.slice(0, ep.lastIndexOf(':'));
const portOf = (ep: string): number => Number(ep.slice(ep.lastIndexOf(':') + 1));

describe('NAT lab (real netfilter NAT in network namespaces)', { skip: support.ok ? false : support.reason }, () => {
  let lab: NatLab;
  let reflector: ChildProcess;
  const site: Record<string, Site> = {};
  const peers: UdpPeer[] = [];
  const peer = async (h: Host, bind?: string, port?: number): Promise<UdpPeer> => {
    const p = await UdpPeer.start(lab, h.ns, bind, port);
    peers.push(p);
    return p;
  };

  before(async () => {
    lab = new NatLab();
    for (const [name, kind] of [
      ['pub', 'public'],
      ['cone1', 'cone'],
      ['cone2', 'cone'],
      ['sym1', 'symmetric'],
      ['sym2', 'symmetric'],
      ['dbl', 'double'],
      ['lan', 'lan'],
      ['blk', 'udp-blocked'],
    ] as const) {
      site[name] = lab.addSite(kind, name);
    }
    reflector = lab.spawn(lab.rendezvous.ns, [NODE, '-e', REFLECTOR, ...REFLECT]);
    await new Promise<void>((resolve, reject) => {
      reflector.stdout!.once('data', () => resolve());
      reflector.once('exit', (code) => reject(new Error(`reflector exited ${code}`)));
    });
  });

  after(() => {
    for (const p of peers) p.stop();
    reflector?.kill('SIGKILL');
    lab?.cleanup();
  });

  test('public host: the rendezvous sees its own address (no NAT)', async () => {
    const h = site.pub!.hosts[0]!;
    const p = await peer(h);
    assert.equal(await p.observed(REFLECT[0]!), `${h.ip}:${p.port}`);
  });

  test('cone: one public ip:port toward three destinations (endpoint-independent mapping)', async () => {
    const s = site.cone1!;
    const p = await peer(s.hosts[0]!);
    const seen = [];
    for (const r of REFLECT) seen.push(await p.observed(r));
    assert.ok(
      seen.every((x) => x !== undefined),
      `every reflector answered: ${seen.join(', ')}`,
    );
    assert.equal(ipOf(seen[0]!), s.routers[0]!.wanIp, 'mapped to the router WAN address');
    assert.deepEqual(new Set(seen).size, 1, `same mapping toward every destination: ${seen.join(', ')}`);
  });

  test('symmetric: a new public port for every destination (endpoint-dependent mapping)', async () => {
    const s = site.sym1!;
    const p = await peer(s.hosts[0]!);
    const seen = [];
    for (const r of REFLECT) seen.push(await p.observed(r));
    assert.ok(
      seen.every((x) => x !== undefined),
      `every reflector answered: ${seen.join(', ')}`,
    );
    assert.ok(
      seen.every((x) => ipOf(x!) === s.routers[0]!.wanIp),
      `mapped to the router WAN address: ${seen.join(', ')}`,
    );
    assert.equal(new Set(seen.map((x) => portOf(x!))).size, 3, `three different ports: ${seen.join(', ')}`);
  });

  test("double NAT: the rendezvous sees the outer router's address", async () => {
    const s = site.dbl!;
    const [inner, outer] = s.routers;
    const p = await peer(s.hosts[0]!);
    const a = await p.observed(REFLECT[0]!);
    const b = await p.observed(REFLECT[1]!);
    assert.equal(ipOf(a ?? ''), outer!.wanIp, `outer WAN address (inner WAN is ${inner!.wanIp}): ${a}`);
    assert.equal(a, b, 'two cone NATs in a row still map endpoint-independently');
  });

  test('udp-blocked: no UDP gets out, TCP connects (masqueraded)', async () => {
    const s = site.blk!;
    const p = await peer(s.hosts[0]!);
    assert.equal(await p.observed(REFLECT[0]!, 1500), undefined, 'no UDP answer');
    const t = tcpProbe(lab, s.hosts[0]!, REFLECT[0]!);
    assert.ok(t.ok, `TCP connect: ${t.error}`);
    assert.equal(ipOf(t.data!.slice(4)), s.routers[0]!.wanIp, 'TCP masqueraded to the router WAN address');
  });

  test('filtering: unsolicited packets to a router WAN address are dropped, replies pass', async () => {
    const s = site.cone2!;
    const router = s.routers[0]!;
    const inside = await peer(s.hosts[0]!);
    const server = await peer(lab.rendezvous, RENDEZVOUS_IP, 3490);
    const sameIpOtherPort = await peer(lab.rendezvous, RENDEZVOUS_IP, 3491);
    const stranger = await peer(site.pub!.hosts[0]!);
    // Open a mapping toward the server only.
    inside.send(`${RENDEZVOUS_IP}:3490`, 'hello');
    const hello = await server.waitFor((m) => m.data === 'hello', 2000);
    assert.ok(hello, 'the server got the outbound packet');
    const mapped = hello.from;
    assert.equal(ipOf(mapped), router.wanIp);
    const dropsBefore = lab.wanDrops(router);
    stranger.send(mapped, 'unsolicited-stranger');
    sameIpOtherPort.send(mapped, 'unsolicited-other-port');
    stranger.send(`${router.wanIp}:4000`, 'unsolicited-closed-port');
    server.send(mapped, 'reply'); // control: the flow the host opened does come back
    assert.ok(await inside.waitFor((m) => m.data === 'reply', 2000), 'the reply to an open mapping passes');
    await new Promise((r) => setTimeout(r, 500));
    assert.deepEqual(
      inside.msgs.map((m) => m.data).filter((d) => d.startsWith('unsolicited')),
      [],
      'nothing unsolicited got in',
    );
    assert.ok(lab.wanDrops(router) - dropsBefore >= 3, `the router dropped them at its WAN input (${lab.wanDrops(router) - dropsBefore})`);
  });

  test('lan: two hosts on one LAN reach each other on their LAN addresses', async () => {
    const [a, b] = site.lan!.hosts;
    const pa = await peer(a!);
    const pb = await peer(b!);
    pa.send(`${b!.ip}:${pb.port}`, 'hi-lan');
    const m = await pb.waitFor((x) => x.data === 'hi-lan', 2000);
    assert.equal(m?.from, `${a!.ip}:${pa.port}`, 'straight across the LAN, not NATed');
  });

  /** Both sides learn their mapping from the reflector, then fire at each other's mapping. */
  async function simultaneousOpen(x: Site, y: Site): Promise<{ xGot: boolean; yGot: boolean }> {
    const px = await peer(x.hosts[0]!);
    const py = await peer(y.hosts[0]!);
    const ex = await px.observed(REFLECT[0]!);
    const ey = await py.observed(REFLECT[0]!);
    assert.ok(ex && ey, 'both learned their mapping');
    for (let i = 0; i < 10; i++) {
      px.send(ey, `punch-x-${i}`);
      py.send(ex, `punch-y-${i}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const [gx, gy] = await Promise.all([px.waitFor((m) => m.data.startsWith('punch-y'), 1000), py.waitFor((m) => m.data.startsWith('punch-x'), 1000)]);
    return { xGot: gx !== undefined, yGot: gy !== undefined };
  }

  test('simultaneous open between two cone sites punches through', async () => {
    const r = await simultaneousOpen(site.cone1!, site.cone2!);
    assert.deepEqual(r, { xGot: true, yGot: true });
  });

  test('simultaneous open between two symmetric sites does not (the lab is not too kind)', async () => {
    const r = await simultaneousOpen(site.sym1!, site.sym2!);
    assert.deepEqual(r, { xGot: false, yGot: false });
  });

  test('router controls: loss rule drops, SNAT change moves the mapping, flush forgets it', async () => {
    const s = site.cone1!;
    const router = s.routers[0]!;
    const p = await peer(s.hosts[0]!);
    const before = await p.observed(REFLECT[0]!);
    assert.equal(ipOf(before!), router.wanIp);
    const moved = lab.changeSnat(router);
    assert.notEqual(moved, router.wanIp);
    const after = await p.observed(REFLECT[0]!);
    assert.equal(after, `${moved}:${portOf(after!)}`, `the same socket now maps to ${moved}: ${after}`);
    lab.setLoss(router, 1);
    assert.equal(await p.observed(REFLECT[0]!, 750), undefined, '100% loss: nothing passes');
    assert.ok(lab.lossDrops(router) > 0);
    lab.setLoss(router, 0);
    assert.ok(await p.observed(REFLECT[0]!), 'loss removed: traffic passes again');

    // flush: the router forgets the mapping, so the far side's packets no longer get in
    const server = await peer(lab.rendezvous, RENDEZVOUS_IP, 3492);
    p.send(`${RENDEZVOUS_IP}:3492`, 'open');
    const mapped = (await server.waitFor((m) => m.data === 'open', 2000))?.from;
    assert.ok(mapped);
    server.send(mapped, 'before-flush');
    assert.ok(await p.waitFor((m) => m.data === 'before-flush', 2000), 'mapping open before the flush');
    lab.flushConntrack(router);
    server.send(mapped, 'after-flush');
    assert.equal(await p.waitFor((m) => m.data === 'after-flush', 700), undefined, 'mapping gone after the flush');
  });
});
