// A UDP-policed link (issue 19): a router polices UDP to 200 packets/s per
// address pair (iptables hashlimit in the router namespace, as some networks
// do). A direct Pilot stream then crawls; the daemon must notice (loss above a
// flat packet rate) and move the peer to the relay over the TCP uplink, which
// the policer does not touch. Figures, all from this run: the stream on the
// policed direct path (before the switch), after the switch, and kernel TCP
// between the same two hosts.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import readline from 'node:readline';
import { Agent, ROOT, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { NatLab, natLabSupport, RENDEZVOUS_IP, type Site } from '../helpers/natlab.ts';
import { trustPair } from './matrix.ts';

const support = natLabSupport();
const MiB = 1024 * 1024;
const BYTES = 6 * MiB;
const ECHO_SCRIPT = path.join(ROOT, 'test/helpers/echo-transfer.ts');
const POLICE_PPS = 200;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

// Kernel TCP on the same link: the server counts bytes and says how many when the client closes.
const TCP_SINK = `
const s = require('node:net').createServer((c) => { let n = 0; c.on('data', (d) => (n += d.length)); c.on('end', () => c.end(String(n))); });
s.listen(Number(process.argv[1]), '0.0.0.0', () => process.stdout.write('ready\\n'));`;
const TCP_SEND = `
const [host, port, total] = [process.argv[1], Number(process.argv[2]), Number(process.argv[3])];
const c = require('node:net').connect(port, host);
const block = Buffer.alloc(256 * 1024, 7);
const t0 = Date.now();
let sent = 0;
let back = '';
const pump = () => { while (sent < total) { sent += block.length; if (!c.write(block)) return c.once('drain', pump); } c.end(); };
c.on('connect', pump);
c.on('data', (d) => (back += d));
c.on('end', () => { process.stdout.write(JSON.stringify({ bytes: Number(back), seconds: (Date.now() - t0) / 1000 })); process.exit(0); });`;

describe('UDP-policed link', { skip: support.ok ? false : support.reason, timeout: 240_000 }, () => {
  let lab: NatLab;
  let rdv: Rendezvous;
  let work: string;
  let site: Site;
  let a: Agent;
  let b: Agent;

  const pathOf = async (from: Agent, to: Agent): Promise<string> => {
    const r = await from.ipc<{ peers: { address: string; path: string }[] }>('peers');
    return r.peers.find((x) => x.address === to.address)?.path ?? 'none';
  };

  before(async () => {
    lab = new NatLab();
    work = tmpDir('pilot-police-');
    site = lab.addSite('cone', 'pol1');
    const pub = lab.addSite('public', 'polp');
    rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:9000`, dataDir: path.join(work, 'rendezvous') });
    const agents: Agent[] = [];
    for (const h of [site.hosts[0]!, pub.hosts[0]!]) {
      const x = new Agent(h.name, work, h.ns);
      await x.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${h.name}@example.com`, '--hostname', h.name, '--listen', '0.0.0.0:0']);
      agents.push(x);
    }
    [a, b] = agents as [Agent, Agent];
    await trustPair(a, b);
  });

  after(async () => {
    await a?.stop();
    await b?.stop();
    await rdv?.kill();
    lab?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test(`policed to ${POLICE_PPS} packets/s per address pair: the stream moves to the TCP relay and moves more than on the direct path`, async () => {
    const router = site.routers[0]!;
    const [ha, hb] = [site.hosts[0]!, lab.sites[1]!.hosts[0]!];
    for (let i = 0; i < 50 && !(await pathOf(a, b)).startsWith('direct'); i++) {
      await a.ctl(['ping', b.address, '--count', '1', '--timeout', '1s']);
      await sleep(200);
    }
    assert.match(await pathOf(a, b), /^direct/, 'direct before the policer');

    // Kernel TCP between the same two hosts, through the same router (the policer only counts UDP).
    const sink = lab.spawn(hb.ns, [process.execPath, '-e', TCP_SINK, '5201']);
    await new Promise<void>((resolve) => sink.stdout!.once('data', () => resolve()));
    const tcp = JSON.parse(lab.exec(ha.ns, [process.execPath, '-e', TCP_SEND, hb.ip, '5201', String(64 * MiB)])) as { bytes: number; seconds: number };
    sink.kill();
    const tcpMBs = tcp.bytes / MiB / tcp.seconds;

    lab.sh(
      router.ns,
      `iptables -I FORWARD 1 -p udp -m hashlimit --hashlimit-above ${POLICE_PPS}/sec --hashlimit-burst ${POLICE_PPS} ` +
        `--hashlimit-mode srcip,dstip,srcport,dstport --hashlimit-name police -j DROP`,
    );

    // Echo BYTES; progress lines give the rate before and after the switch.
    const progress: { at: number; bytes: number }[] = [];
    const t0 = Date.now();
    let switchedAt: number | undefined;
    const watch = setInterval(() => {
      void pathOf(a, b).then((p) => {
        if (switchedAt === undefined && p.includes('relay (tcp)')) switchedAt = Date.now() - t0;
      });
    }, 250);
    const echo = await new Promise<{ code: number; out: string; err: string }>((resolve) => {
      const p = spawn('ip', ['netns', 'exec', a.netns!, process.execPath, ECHO_SCRIPT, a.socket, b.address, String(BYTES)], {
        env: { ...process.env, ECHO_PROGRESS_BYTES: String(MiB / 8) },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      let err = '';
      p.stdout.on('data', (c: Buffer) => (out += c.toString()));
      readline.createInterface({ input: p.stderr }).on('line', (l) => {
        const n = Number(/^progress (\d+)/.exec(l)?.[1] ?? NaN);
        if (Number.isFinite(n)) progress.push({ at: Date.now() - t0, bytes: n });
        else err += `${l}\n`;
      });
      const timer = setTimeout(() => p.kill('SIGKILL'), 150_000);
      p.on('close', (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, out, err });
      });
    });
    clearInterval(watch);
    const drops = Number(/^\s*(\d+)\s+\d+\s+DROP.*limit: above/m.exec(lab.exec(router.ns, ['iptables', '-L', 'FORWARD', '-v', '-x', '-n']))?.[1] ?? 0);
    const result = JSON.parse(echo.out.trim().split('\n').pop() || '{}') as { bytes?: number; sentHash?: string; echoHash?: string; seconds?: number };
    const at = (ms: number): number => progress.filter((p) => p.at <= ms).at(-1)?.bytes ?? 0;
    const before = switchedAt ?? Infinity;
    const directMBs = at(Math.min(before, progress.at(-1)?.at ?? 0)) / MiB / (Math.min(before, progress.at(-1)?.at ?? 1) / 1000);
    const end = progress.at(-1)!;
    const afterMBs = switchedAt === undefined ? 0 : (end.bytes - at(switchedAt)) / MiB / ((end.at - switchedAt) / 1000);
    console.log(
      `# UDP policed at ${POLICE_PPS} pps per address pair (router dropped ${drops}): echo ${BYTES / MiB} MiB in ${result.seconds} s; ` +
        `direct UDP ${directMBs.toFixed(2)} MB/s until the switch at ${switchedAt} ms, relay over TCP ${afterMBs.toFixed(2)} MB/s after; kernel TCP ${tcpMBs.toFixed(0)} MB/s`,
    );
    const why = `\n${echo.err}\n--- a\n${a
      .log()
      .split('\n')
      .filter((l) => /polic|relay|uplink|peer path/.test(l))
      .slice(-20)
      .join('\n')}`;
    assert.equal(echo.code, 0, why);
    assert.equal(result.bytes, BYTES, why);
    assert.equal(result.sentHash, result.echoHash, 'intact');
    assert.ok(drops > 100, `the policer really dropped packets (${drops})`);
    assert.ok(switchedAt !== undefined, `moved to the relay over TCP${why}`);
    assert.ok(afterMBs > 2 * directMBs, `the TCP relay moves more than the policed direct path (${afterMBs.toFixed(2)} vs ${directMBs.toFixed(2)} MB/s)${why}`);
  });
});
