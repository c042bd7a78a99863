// Hole 5: the gateway's addresses (10.4.0.x on lo) are local, and Linux
// delivers packets for a local address whatever interface they come in on. A
// LAN neighbour that routes 10.4.0.0/16 via this host must not reach the
// remote agent's services with this host's trust. Whole topology in namespaces
// we create: "host" (rendezvous, two daemons, the exposed TCP service, the
// gateway) and "lan" (a neighbour on a veth, routing 10.4.0.0/16 via host).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import { Agent, run, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { Lab, netnsSupport } from '../helpers/netns.ts';
import { trustExposeGateway } from '../gateway/setup.ts';

const support = netnsSupport();
const skip = support.ok ? false : support.reason;
const SECRET = 'localhost-only-secret';
const HOST_IP = '192.168.77.1';
const LAN_IP = '192.168.77.2';

let lab: Lab;
let hostNs: string;
let lanNs: string;
let rdv: Rendezvous;
let work: string;
let server: Agent;
let client: Agent;
let svc: ChildProcess | undefined;

/** One TCP connection from inside a namespace: what it read, or how it failed. */
async function tcpGet(ns: string, host: string, port: number): Promise<{ data: string; err: string }> {
  const script = `const s=require('net').connect({host:${JSON.stringify(host)},port:${port}});let d='';s.setTimeout(4000,()=>{console.log(JSON.stringify({data:d,err:'TIMEOUT'}));process.exit(0)});s.on('data',c=>d+=c);s.on('error',e=>{console.log(JSON.stringify({data:d,err:e.code||e.message}));process.exit(0)});s.on('end',()=>{console.log(JSON.stringify({data:d,err:''}));process.exit(0)});`;
  const r = await run(['ip', 'netns', 'exec', ns, process.execPath, '-e', script], {}, 20_000);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout.trim()) as { data: string; err: string };
}

before(async () => {
  if (skip) return;
  lab = new Lab();
  hostNs = lab.ns('host');
  lanNs = lab.ns('lan');
  const vh = `${lab.prefix}h`;
  const vl = `${lab.prefix}l`;
  execHost(['ip', 'link', 'add', vh, 'type', 'veth', 'peer', 'name', vl]);
  execHost(['ip', 'link', 'set', vl, 'netns', lanNs]);
  lab.sh(hostNs, `ip addr add ${HOST_IP}/24 dev ${vh}; ip link set ${vh} up; sysctl -qw net.ipv4.ip_forward=1`);
  lab.sh(lanNs, `ip addr add ${LAN_IP}/24 dev ${vl}; ip link set ${vl} up; ip route add 10.4.0.0/16 via ${HOST_IP}`);
  work = tmpDir('pilot-gwlan-');
  rdv = await startRendezvous({ netns: hostNs, listen: '127.0.0.1:0' });
  const agent = async (name: string): Promise<Agent> => {
    const a = new Agent(name, work, hostNs);
    await a.start(['--registry', rdv.addr, '--email', `${name}@example.com`, '--hostname', name, '--listen', '127.0.0.1:0']);
    return a;
  };
  server = await agent('lan-server');
  client = await agent('lan-gw');
  // The remote agent's localhost-only service: only its own host (and whom it trusts, via expose) may read it.
  svc = spawn(
    'ip',
    [
      'netns',
      'exec',
      hostNs,
      process.execPath,
      '-e',
      `const net=require('net');net.createServer(s=>s.end('open')).listen(9999,'0.0.0.0');net.createServer(s=>s.end(${JSON.stringify(SECRET)})).listen(8080,'127.0.0.1',()=>console.log('ready'))`,
    ],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('service not ready')), 15_000);
    svc!.stdout!.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  await trustExposeGateway(client, server, [['80', '127.0.0.1:8080']]);
});

function execHost(argv: string[]): void {
  // veth creation happens inside the host namespace, never in the root one
  lab.exec(hostNs, argv);
}

after(async () => {
  if (skip) return;
  svc?.kill('SIGKILL');
  for (const a of [server, client]) await a?.stop();
  await rdv?.kill();
  lab.cleanup();
  fs.rmSync(work, { recursive: true, force: true });
});

test('this host reaches the mapped agent through 10.4.0.1 (baseline)', { skip }, async () => {
  const r = await tcpGet(hostNs, '10.4.0.1', 80);
  assert.equal(r.data, SECRET, `from the host itself: ${JSON.stringify(r)}`);
});

test('a LAN neighbour that routes 10.4.0.0/16 via this host gets nothing from the gateway', { skip }, async () => {
  // the route works: an ordinary wildcard listener of the host answers the neighbour on 10.4.0.1
  assert.equal((await tcpGet(lanNs, '10.4.0.1', 9999)).data, 'open', 'the neighbour reaches 10.4.0.1 at all');
  for (let i = 0; i < 3; i++) {
    const r = await tcpGet(lanNs, '10.4.0.1', 80);
    assert.equal(r.data, '', `the neighbour read the remote agent's service: ${JSON.stringify(r)}`);
    assert.equal(r.err, 'ECONNRESET', `reset at once: ${JSON.stringify(r)}`);
  }
  const list = await client.ctl(['gateway', 'list']);
  const m = list.json.data.mappings[0];
  assert.equal(m.notLocal, 3, 'each neighbour connection counted as not local');
  assert.equal(m.refused, 0, 'the overlay was never dialled for them');
  // and the host keeps being served
  assert.equal((await tcpGet(hostNs, '10.4.0.1', 80)).data, SECRET);
});

test("a neighbour spoofing one of the host's own addresses as source (SNAT) gets nothing either", { skip }, async () => {
  lab.sh(lanNs, `iptables -t nat -A POSTROUTING -d 10.4.0.0/16 -p tcp -j SNAT --to-source ${HOST_IP}`);
  try {
    const r = await tcpGet(lanNs, '10.4.0.1', 80);
    assert.equal(r.data, '', `spoofed source got data: ${JSON.stringify(r)}`);
  } finally {
    lab.sh(lanNs, `iptables -t nat -D POSTROUTING -d 10.4.0.0/16 -p tcp -j SNAT --to-source ${HOST_IP}`);
  }
});
