// Port mapping against a real gateway: Debian's miniupnpd in a symmetric-NAT
// router namespace (test/helpers/miniupnpd.ts). Symmetric x symmetric pairs
// always relayed before: with one router mapping, the pair must go direct
// through the mapping (the router's conntrack shows the flow on the mapped
// address); the same pair of NAT kinds without miniupnpd relays (control); and
// a clean stop removes the mapping from miniupnpd's rules.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { NatLab, natLabSupport, RENDEZVOUS_IP, type Site } from '../../helpers/natlab.ts';
import { miniupnpdSupport, startMiniupnpd, type Miniupnpd } from '../../helpers/miniupnpd.ts';
import { Agent, ROOT, startRendezvous, tmpDir, type Rendezvous } from '../../helpers/cluster.ts';
import { trustPair } from '../matrix.ts';

const lab0 = natLabSupport();
const mu0 = miniupnpdSupport();
const skip = !lab0.ok ? lab0.reason : !mu0.ok ? mu0.reason : false;
const PORT = 9000;

// A lying gateway: answers every PCP MAP with success on a public address whose port forwards nothing.
const LIAR = `
const s = require('node:dgram').createSocket('udp4');
s.on('message', (q, r) => {
  if (q[0] !== 2 || q.length < 60) return;
  const b = Buffer.alloc(60);
  b[0] = 2; b[1] = 0x81; b.writeUInt32BE(q.readUInt32BE(4), 4); b.writeUInt32BE(1, 8);
  q.copy(b, 24, 24, 36); b[36] = 17; q.copy(b, 40, 40, 42); b.writeUInt16BE(31337, 42);
  b.writeUInt16BE(0xffff, 54); Buffer.from(process.argv[2].split('.').map(Number)).copy(b, 56);
  s.send(b, r.port, r.address);
});
s.bind(5351, process.argv[1], () => process.stdout.write('ready\\n'));`;

// One PortMapper on one protocol, in a namespace: prints its status once mapped, then stops (deleting it).
const MAP_ONCE = (protocol: string, port: number): string => `
import { PortMapper } from ${JSON.stringify(path.join(ROOT, 'src/nat/portmap/portmapper.ts'))};
const pm = new PortMapper({ internalPort: ${port}, protocols: [${JSON.stringify(protocol)}] });
pm.start();
const t0 = Date.now();
while (pm.status().state === 'probing' && Date.now() - t0 < 10000) await new Promise((r) => setTimeout(r, 20));
console.log(JSON.stringify(pm.status()));
await new Promise((r) => process.stdin.once('data', r));
await pm.stop();
console.log('stopped');
process.exit(0);`;

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

interface PeerRow {
  address: string;
  pathType: 'direct' | 'relay' | 'none';
  endpoint: string | null;
}

async function peerRow(from: Agent, to: Agent): Promise<PeerRow | undefined> {
  const r = await from.ctl(['peers']);
  return (r.json?.data?.peers as PeerRow[] | undefined)?.find((p) => p.address === to.address);
}

/** Ping once (a session, and traffic for the path manager), then wait until both sides say direct or the deadline passes. */
async function untilDirect(
  a: Agent,
  b: Agent,
  deadlineMs: number,
): Promise<{ direct: boolean; firstByteMs: number; directMs: number; ab?: PeerRow; ba?: PeerRow }> {
  const t0 = Date.now();
  const ping = await b.ctl(['ping', a.address, '--count', '1', '--timeout', '10s']);
  assert.equal(ping.code, 0, `ping: ${ping.stdout} ${ping.stderr}`);
  const firstByteMs = Date.now() - t0;
  for (;;) {
    const [ab, ba] = await Promise.all([peerRow(a, b), peerRow(b, a)]);
    if (ab?.pathType === 'direct' && ba?.pathType === 'direct') return { direct: true, firstByteMs, directMs: Date.now() - t0, ab, ba };
    if (Date.now() - t0 > deadlineMs) return { direct: false, firstByteMs, directMs: Date.now() - t0, ab, ba };
    await sleep(250);
  }
}

describe('port mapping through a real miniupnpd (symmetric x symmetric)', { skip, timeout: 180_000 }, () => {
  let lab: NatLab;
  let work: string;
  let rdv: Rendezvous;
  let mu: Miniupnpd;
  let mapped: Site;
  const agents: Agent[] = [];
  let a: Agent; // behind the mapping router
  let b: Agent;
  let c: Agent; // control pair: the same NAT kinds, no mapping
  let d: Agent;
  let e: Agent; // behind the lying gateway
  let f: Agent;

  before(async () => {
    lab = new NatLab();
    work = tmpDir('pilot-portmap-');
    mapped = lab.addSite('symmetric', 'sa');
    const others = ['sb', 'sc', 'sd', 'se', 'sf'].map((n) => lab.addSite('symmetric', n));
    mu = await startMiniupnpd(lab, mapped.routers[0]!);
    const liarRouter = others[3]!.routers[0]!;
    const liar = lab.spawn(liarRouter.ns, [process.execPath, '-e', LIAR, liarRouter.lanIp, '11.0.0.250']);
    await new Promise((r) => liar.stdout?.once('data', r));
    rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:${PORT}`, dataDir: path.join(work, 'rendezvous') });
    const hosts = [mapped, ...others].map((s) => s.hosts[0]!);
    [a, b, c, d, e, f] = hosts.map((h) => new Agent(h.name, work, h.ns)) as [Agent, Agent, Agent, Agent, Agent, Agent];
    agents.push(a, b, c, d, e, f);
    await Promise.all(
      agents.map((x) => x.start(['--registry', `${RENDEZVOUS_IP}:${PORT}`, '--email', `${x.name}@example.com`, '--hostname', x.name, '--listen', '0.0.0.0:0'])),
    );
  });

  after(async () => {
    await Promise.all(agents.map((x) => x.stop()));
    await mu?.stop();
    await rdv?.kill();
    lab?.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  });

  test('the daemon behind the mapping router gets a mapping of its own UDP port, shown by status', async () => {
    const t0 = Date.now();
    let pm: Record<string, unknown> | undefined;
    while (Date.now() - t0 < 15_000) {
      pm = (await a.ctl(['info'])).json?.data?.portmap;
      if (pm?.external) break;
      await sleep(200);
    }
    const port = Number((await a.ipc('info')).portmap.internalPort);
    assert.equal(pm?.state, 'mapped', `portmap status ${JSON.stringify(pm)}\n${mu.output().slice(-2000)}`);
    assert.match(String(pm?.external), new RegExp(`^${mu.externalIp.replaceAll('.', '\\.')}:\\d+$`));
    assert.ok(['pcp', 'pmp', 'upnp'].includes(String(pm?.protocol)));
    // miniupnpd really holds it: a DNAT of the external port to the daemon's socket.
    const ext = Number(String(pm?.external).split(':')[1]);
    assert.deepEqual(
      mu.mappings().filter((m) => m.externalPort === ext),
      [{ externalPort: ext, internal: `${a.netns ? mapped.hosts[0]!.ip : ''}:${port}` }],
    );
    // No gateway mapping service elsewhere: a coded error, and the daemon works anyway.
    const other = (await c.ctl(['info'])).json?.data?.portmap;
    assert.equal(other?.external ?? null, null);
    console.log(`# mapped ${pm?.external} by ${pm?.protocol} in ${Date.now() - t0} ms after start; control: ${other?.state} ${other?.error?.code ?? ''}`);
  });

  test('symmetric x symmetric goes DIRECT through the mapping; the same pair without one relays', async () => {
    await Promise.all([trustPair(b, a), trustPair(d, c)]);
    const [m, ctl] = await Promise.all([untilDirect(a, b, 30_000), untilDirect(c, d, 15_000)]);
    console.log(
      `# mapped pair: direct=${m.direct} first byte ${m.firstByteMs} ms, direct after ${m.directMs} ms (b sees a at ${m.ba?.endpoint}); control: ${ctl.ba?.pathType}`,
    );
    assert.ok(m.direct, `mapped pair not direct: a->b ${m.ab?.pathType}, b->a ${m.ba?.pathType}`);
    const ext = String((await a.ctl(['info'])).json.data.portmap.external);
    assert.equal(m.ba?.endpoint, ext, 'b reaches a at the mapped endpoint');
    // The router saw the flow on the mapped address: bytes in conntrack, original destination = the mapping.
    const flows = lab.exec(mapped.routers[0]!.ns, ['conntrack', '-L', '-p', 'udp', '--orig-dst', mu.externalIp]);
    assert.match(flows, new RegExp(`dport=${ext.split(':')[1]} .*bytes=\\d+`), `no conntrack flow through the mapping:\n${flows}`);
    // Control: still relayed after the mapped pair went direct, and still relayed now.
    assert.notEqual(ctl.direct, true, 'the control pair went direct without any mapping: the test proves nothing');
    assert.equal((await peerRow(d, c))?.pathType, 'relay');
  });

  test('a gateway that lies (grants a mapping that forwards nothing): advertised, tried, and the pair still connects over the relay', async () => {
    const pm = (await e.ctl(['info'])).json?.data?.portmap;
    assert.equal(pm?.external, '11.0.0.250:31337', `the lie is taken at its word (it looks valid): ${JSON.stringify(pm)}`);
    await trustPair(f, e);
    const t0 = Date.now();
    const r = await untilDirect(e, f, 6_000);
    const ping = await f.ctl(['ping', e.address, '--count', '3', '--interval', '200ms', '--timeout', '3s']);
    assert.equal(ping.json?.data?.received, 3, 'pings over the relay');
    assert.equal((await peerRow(f, e))?.pathType, 'relay');
    console.log(`# lying gateway: first byte ${r.firstByteMs} ms, still relay after ${Date.now() - t0} ms, pings 3/3`);
  });

  for (const protocol of ['pcp', 'pmp', 'upnp']) {
    test(`${protocol}: the client maps against miniupnpd, miniupnpd holds the DNAT to our port, and stop() removes it`, async () => {
      const port = 4555;
      const proc = lab.spawn(mapped.hosts[0]!.ns, [process.execPath, '--input-type=module', '-e', MAP_ONCE(protocol, port)]);
      let out = '';
      proc.stdout?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      proc.stderr?.on('data', (d: Buffer) => {
        out += d.toString();
      });
      const t0 = Date.now();
      while (!out.includes('\n') && Date.now() - t0 < 15_000) await sleep(20);
      const st = JSON.parse(out.split('\n')[0]!) as { state: string; protocol: string; external: string };
      assert.equal(st.state, 'mapped', out);
      assert.equal(st.protocol, protocol);
      const ext = Number(st.external.split(':')[1]);
      assert.equal(st.external, `${mu.externalIp}:${ext}`);
      assert.deepEqual(
        mu.mappings().filter((m) => m.externalPort === ext),
        [{ externalPort: ext, internal: `${mapped.hosts[0]!.ip}:${port}` }],
      );
      proc.stdin?.end('stop\n');
      await Promise.race([new Promise((r) => proc.once('exit', r)), sleep(10_000)]);
      assert.match(out, /stopped/);
      assert.deepEqual(
        mu.mappings().filter((m) => m.externalPort === ext),
        [],
        `${protocol} mapping left behind`,
      );
    });
  }

  test('a clean stop deletes the mapping at the gateway', async () => {
    const ext = Number(String((await a.ctl(['info'])).json.data.portmap.external).split(':')[1]);
    assert.equal(mu.mappings().filter((m) => m.externalPort === ext).length, 1);
    await a.stop();
    assert.deepEqual(
      mu.mappings().filter((m) => m.externalPort === ext),
      [],
      'mapping still in miniupnpd after the daemon stopped',
    );
    assert.match(a.log(), /port mapping deleted/);
  });
});
