// Issue 19, "candidates that are someone else's tunnel": the daemon must not
// advertise the addresses of another overlay's interfaces (tun/wireguard/nebula,
// point-to-point links) as direct-path candidates unless told to. The real part
// runs a daemon in a network namespace with a real tun interface (socat attaches
// to it, so it is up and running like Nebula's) and reads what it advertises.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { LocalInterfaces, parseInterfaceList } from '../../src/daemon/local-interfaces.ts';
import { Lab, netnsSupport } from '../helpers/netns.ts';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';

const eth = (address: string): os.NetworkInterfaceInfo => ({
  address,
  netmask: '255.255.255.0',
  family: 'IPv4',
  mac: '00:00:00:00:00:00',
  internal: false,
  cidr: `${address}/24`,
});

/** A fake /sys/class/net: name -> {type, flags, uevent}. */
function sysfs(entries: Record<string, { type: number; flags: number; uevent?: string }>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-sysfs-'));
  for (const [name, e] of Object.entries(entries)) {
    fs.mkdirSync(path.join(dir, name));
    fs.writeFileSync(path.join(dir, name, 'type'), `${e.type}\n`);
    fs.writeFileSync(path.join(dir, name, 'flags'), `0x${e.flags.toString(16)}\n`);
    fs.writeFileSync(path.join(dir, name, 'uevent'), e.uevent ?? '');
  }
  return dir;
}

test('tunnels are told apart by point-to-point flag, link type, wireguard devtype and name; configured ones stay', () => {
  const dir = sysfs({
    eth0: { type: 1, flags: 0x1003 },
    tun0: { type: 65534, flags: 0x1091 }, // a Nebula/OpenVPN tun: POINTOPOINT|NOARP|UP
    wg0: { type: 65534, flags: 0x91, uevent: 'DEVTYPE=wireguard\n' },
    gre1: { type: 778, flags: 0x1081 },
    mytun: { type: 1, flags: 0x1003, uevent: 'DEVTYPE=wireguard\n' },
    nebula1: { type: 1, flags: 0x1003 }, // no sysfs hints: the name decides
  });
  const list = () => ({
    eth0: [eth('10.1.0.2')],
    tun0: [eth('10.90.0.2')],
    wg0: [eth('10.91.0.2')],
    gre1: [eth('10.92.0.2')],
    mytun: [eth('10.93.0.2')],
    nebula1: [eth('10.94.0.2')],
  });
  const li = new LocalInterfaces({ sysfs: dir, list });
  assert.deepEqual(Object.keys(li.usable()), ['eth0']);
  const why = Object.fromEntries(li.excluded().map((x) => [x.name, x.reason]));
  assert.equal(why.tun0, 'point-to-point');
  assert.equal(why.gre1, 'gre tunnel');
  assert.equal(why.mytun, 'wireguard');
  assert.equal(why.nebula1, 'tunnel name');
  const opted = new LocalInterfaces({ sysfs: dir, list, include: ['nebula1', 'tun0'] });
  assert.deepEqual(Object.keys(opted.usable()).sort(), ['eth0', 'nebula1', 'tun0']);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('the interface a direct path leaves by: longest prefix of the IPv4 route table', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-route-'));
  const routes = path.join(dir, 'route');
  // /proc/net/route: little-endian hex. default via eth0; 10.90.0.0/24 on tun0; 10.90.0.128/25 on tun1.
  fs.writeFileSync(
    routes,
    [
      'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
      'eth0\t00000000\t0100010A\t0003\t0\t0\t0\t00000000\t0\t0\t0',
      'tun0\t00005A0A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
      'tun1\t80005A0A\t00000000\t0001\t0\t0\t0\t80FFFFFF\t0\t0\t0',
      'garbage line',
    ].join('\n'),
  );
  const li = new LocalInterfaces({ routes, list: () => ({ eth0: [eth('10.1.0.2')] }) });
  assert.equal(li.routeInterface('198.51.100.7'), 'eth0');
  assert.equal(li.routeInterface('127.0.0.1'), 'lo', 'loopback and our own addresses: the local table');
  assert.equal(li.routeInterface('10.1.0.2'), 'lo');
  assert.equal(li.routeInterface('10.90.0.9'), 'tun0');
  assert.equal(li.routeInterface('10.90.0.200'), 'tun1');
  assert.equal(li.routeInterface('not an ip'), undefined);
  assert.equal(new LocalInterfaces({ routes: path.join(dir, 'none'), list: () => ({}) }).routeInterface('10.0.0.1'), undefined);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('routeInterface: asked per ping probe and per listed peer, it reads the interface list at most once a second', () => {
  let reads = 0;
  const li = new LocalInterfaces({
    routes: path.join(os.tmpdir(), 'no-such-routes'),
    list: () => {
      reads++;
      return { eth0: [eth('10.1.0.2')] };
    },
  });
  for (let i = 0; i < 50; i++) assert.equal(li.routeInterface(i % 2 ? '10.1.0.2' : '198.51.100.7'), i % 2 ? 'lo' : undefined);
  assert.equal(reads, 1, `50 lookups read the interface list ${reads} times (a netlink dump each)`);
});

test('--candidate-interfaces: names checked, a bad one named in a coded error', () => {
  assert.deepEqual(parseInterfaceList(' nebula1, wg0 ,'), ['nebula1', 'wg0']);
  assert.deepEqual(parseInterfaceList(undefined), []);
  assert.throws(
    () => parseInterfaceList('eth0,bad name'),
    (e: Error & { code?: string; hint?: string }) => e.code === 'BAD_ARGUMENT' && /bad name/.test(e.message) && /nebula1,wg0/.test(e.hint ?? ''),
  );
});

const base = netnsSupport();
const socat = spawnSync('which', ['socat']).status === 0;
const skip = !base.ok ? base.reason : !socat ? 'needs socat to hold a tun interface up (apt-get install socat)' : false;

describe('a daemon next to a real tun interface', { skip, timeout: 120_000 }, () => {
  let lab: Lab;
  let ns: string;
  let work: string;
  let rdv: Rendezvous;
  let tun: ChildProcess;

  before(async () => {
    lab = new Lab();
    ns = lab.ns('tun');
    work = tmpDir('pilot-tun-');
    lab.sh(ns, 'ip link add eth0 type veth peer name eth1; ip addr add 10.77.0.2/24 dev eth0; ip link set eth0 up; ip link set eth1 up');
    // A real tun device, held up and running by socat, as Nebula or OpenVPN hold theirs.
    tun = spawn('ip', ['netns', 'exec', ns, 'socat', '-u', 'TUN:10.90.0.2/24,tun-type=tun,tun-name=nebula9,iff-up,iff-no-pi', '-'], {
      stdio: ['pipe', 'ignore', 'ignore'],
    });
    const t0 = Date.now();
    // socat creates the device a moment after it starts: "does not exist" until then.
    const up = (): boolean => {
      try {
        return /LOWER_UP/.test(lab.exec(ns, ['ip', 'link', 'show', 'nebula9']).toString());
      } catch {
        return false;
      }
    };
    while (!up()) {
      if (Date.now() - t0 > 5_000) throw new Error('the tun interface did not come up');
      await new Promise((r) => setTimeout(r, 50));
    }
    rdv = await startRendezvous({ netns: ns, listen: '127.0.0.1:9000', dataDir: path.join(work, 'rendezvous') });
  });

  after(async () => {
    await rdv?.kill();
    tun?.kill();
    lab?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  const info = async (name: string, extra: string[]): Promise<{ candidates: string[]; excludedInterfaces: Array<{ name: string; reason: string }> }> => {
    const a = new Agent(name, work, ns);
    await a.start(['--registry', '127.0.0.1:9000', '--email', `${name}@example.com`, '--listen', '0.0.0.0:0', ...extra]);
    try {
      const d = (await a.ctl(['info'])).json.data as { candidates: { endpoint: string }[]; excludedInterfaces: Array<{ name: string; reason: string }> };
      return { candidates: d.candidates.map((c) => c.endpoint), excludedInterfaces: d.excludedInterfaces };
    } finally {
      await a.stop();
    }
  };

  test('its address is left out of the candidates, and named with why', async () => {
    const i = await info('plain', []);
    console.log(`# candidates ${i.candidates.join(' ')}; left out ${JSON.stringify(i.excludedInterfaces)}`);
    assert.ok(
      i.candidates.some((c) => c.startsWith('10.77.0.2:')),
      `the veth address is a candidate: ${i.candidates}`,
    );
    assert.ok(!i.candidates.some((c) => c.startsWith('10.90.0.2:')), `the tun address is not: ${i.candidates}`);
    assert.deepEqual(
      i.excludedInterfaces.find((x) => x.name === 'nebula9'),
      { name: 'nebula9', reason: 'point-to-point' },
    );
  });

  test('--candidate-interfaces brings it back', async () => {
    const i = await info('optin', ['--candidate-interfaces', 'nebula9']);
    assert.ok(
      i.candidates.some((c) => c.startsWith('10.90.0.2:')),
      `the tun address is a candidate when configured: ${i.candidates}`,
    );
    assert.ok(i.candidates.some((c) => c.startsWith('10.77.0.2:')));
  });
});
