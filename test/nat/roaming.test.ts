// Streams that must survive what NATs do to them mid-transfer: a router that
// forgets its mappings (conntrack flush), a router whose public address changes
// (SNAT to a new address), and 5% random loss on a router.
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
const BYTES = 10 * MiB;
const ECHO_SCRIPT = path.join(ROOT, 'test/helpers/echo-transfer.ts');

interface Echo {
  code: number;
  bytes: number;
  intact: boolean;
  seconds: number;
  /** Bytes echoed back when `action` ran (undefined: it never ran). */
  actedAt: number | undefined;
  stderr: string;
}

/** Echo BYTES from `from` to `to`; run `action` once `atBytes` have come back. */
function echo(from: Agent, to: Agent, atBytes: number, action: () => void, timeoutMs: number): Promise<Echo> {
  return new Promise((resolve) => {
    const p = spawn('ip', ['netns', 'exec', from.netns!, process.execPath, ECHO_SCRIPT, from.socket, to.address, String(BYTES)], {
      env: { ...process.env, ECHO_PROGRESS_BYTES: String(MiB / 2) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    let actedAt: number | undefined;
    p.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    readline.createInterface({ input: p.stderr }).on('line', (l) => {
      stderr += `${l}\n`;
      const n = Number(/^progress (\d+)/.exec(l)?.[1] ?? NaN);
      if (actedAt === undefined && n >= atBytes) {
        actedAt = n;
        action();
      }
    });
    const timer = setTimeout(() => p.kill('SIGKILL'), timeoutMs);
    p.on('close', (code) => {
      clearTimeout(timer);
      let out = { bytes: 0, sentHash: '', echoHash: 'x', seconds: 0 };
      try {
        out = JSON.parse(stdout.trim().split('\n').pop() ?? '');
      } catch {
        /* no result line: failed */
      }
      resolve({ code: code ?? -1, bytes: out.bytes, intact: out.bytes === BYTES && out.sentHash === out.echoHash, seconds: out.seconds, actedAt, stderr });
    });
  });
}

describe('streams across NAT changes and loss', { skip: support.ok ? false : support.reason, timeout: 240_000 }, () => {
  let lab: NatLab;
  let rdv: Rendezvous;
  let work: string;
  let cone: Site;
  let cone2: Site;
  const agents: Record<string, Agent> = {};

  const peerView = async (a: Agent, b: Agent): Promise<string> => {
    const r = await a.ctl(['peers']);
    const p = (r.json?.data?.peers ?? []).find((x: { address: string }) => x.address === b.address);
    return p ? `${p.pathType}${p.endpoint ? ` ${p.endpoint}` : ''}` : 'none';
  };
  const why = (e: Echo, ...as: Agent[]): string =>
    `${e.stderr
      .split('\n')
      .filter((l) => !l.startsWith('progress'))
      .join('\n')}\n${as.map((a) => `--- ${a.name} log\n${a.log().slice(-2500)}`).join('\n')}`;

  before(async () => {
    lab = new NatLab();
    work = tmpDir('pilot-roam-');
    const pub = lab.addSite('public', 'pub');
    cone = lab.addSite('cone', 'cone1');
    cone2 = lab.addSite('cone', 'cone2');
    rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:9000`, dataDir: path.join(work, 'rendezvous') });
    for (const h of [pub.hosts[0]!, cone.hosts[0]!, cone2.hosts[0]!]) {
      const a = new Agent(h.name, work, h.ns);
      await a.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', `${h.name}@example.com`, '--hostname', h.name, '--listen', '0.0.0.0:0']);
      agents[h.name] = a;
    }
    await trustPair(agents.cone1!, agents.pub!);
    await trustPair(agents.cone1!, agents.cone2!);
  });

  after(async () => {
    for (const a of Object.values(agents)) await a.stop();
    await rdv?.kill();
    lab?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('a 10 MiB stream keeps going while the cone router forgets its mappings (conntrack flush)', async () => {
    const [a, b] = [agents.cone1!, agents.pub!];
    const router = cone.routers[0]!;
    const e = await echo(a, b, 3 * MiB, () => lab.flushConntrack(router), 90_000);
    const after = await peerView(b, a);
    console.log(
      `# conntrack flush after ${((e.actedAt ?? 0) / MiB).toFixed(1)} MiB: 10 MiB echoed in ${e.seconds}s, intact=${e.intact}; pub sees cone1 at ${after}`,
    );
    assert.ok(e.actedAt !== undefined && e.actedAt < BYTES, `the flush happened mid-transfer (at ${e.actedAt})`);
    assert.equal(e.code, 0, why(e, a, b));
    assert.equal(e.bytes, BYTES, why(e, a, b));
    assert.ok(e.intact, 'hashes equal');
  });

  test('a 10 MiB stream keeps going while the cone router moves to a new public address (SNAT)', async () => {
    const [a, b] = [agents.cone1!, agents.pub!];
    const router = cone.routers[0]!;
    let moved = '';
    const e = await echo(a, b, 3 * MiB, () => (moved = lab.changeSnat(router)), 90_000);
    const after = await peerView(b, a);
    console.log(
      `# public address ${router.wanIp} -> ${moved} after ${((e.actedAt ?? 0) / MiB).toFixed(1)} MiB: 10 MiB echoed in ${e.seconds}s, intact=${e.intact}; pub sees cone1 at ${after}`,
    );
    assert.ok(e.actedAt !== undefined && e.actedAt < BYTES, `the address changed mid-transfer (at ${e.actedAt})`);
    assert.equal(e.code, 0, why(e, a, b));
    assert.equal(e.bytes, BYTES, why(e, a, b));
    assert.ok(e.intact, 'hashes equal');
    // A direct path must follow the move: the old address no longer reaches cone1.
    if (after.startsWith('direct')) assert.ok(after.includes(moved), `direct path follows the new address ${moved}: ${after}`);
  });

  test('two cone agents deliver 10 MiB intact under 5% random loss on one router', async () => {
    const [a, b] = [agents.cone1!, agents.cone2!];
    const router = cone2.routers[0]!;
    lab.setLoss(router, 0.05);
    try {
      const e = await echo(a, b, Infinity, () => {}, 150_000);
      const drops = lab.lossDrops(router);
      const view = await peerView(a, b);
      console.log(`# 5% loss on ${cone2.name}'s router: 10 MiB echoed in ${e.seconds}s, intact=${e.intact}, router dropped ${drops} packets; path ${view}`);
      assert.equal(e.code, 0, why(e, a, b));
      assert.equal(e.bytes, BYTES, why(e, a, b));
      assert.ok(e.intact, 'hashes equal');
      assert.ok(drops > 200, `the router really dropped packets (${drops})`);
    } finally {
      lab.setLoss(router, 0);
    }
  });
  test('a direct path that dies falls back to the relay within seconds, and is direct again <= 5 s (TARGET) after it works again', async () => {
    const [a, b] = [agents.cone1!, agents.cone2!];
    const router = cone2.routers[0]!;
    const other = cone.routers[0]!.publicIp;
    const waitFor = async (want: string, limitMs: number): Promise<number> => {
      const t0 = Date.now();
      while (Date.now() - t0 < limitMs) {
        if ((await peerView(a, b)).startsWith(want)) return Date.now() - t0;
        await new Promise((r) => setTimeout(r, 100));
      }
      return Infinity;
    };
    // traffic both ways all along (a silent path is only checked every 25 s)
    const pinging = a.ctl(['ping', b.address, '--count', '150', '--interval', '0.1s', '--timeout', '0.5s'], 60_000);
    try {
      assert.ok((await waitFor('direct', 10_000)) < Infinity, 'direct to begin with');
      // Cut every UDP packet between the two NATs; the rendezvous (relay) stays reachable.
      lab.sh(router.ns, `iptables -I FORWARD 1 -p udp -s ${other} -j DROP; iptables -I FORWARD 1 -p udp -d ${other} -j DROP`);
      const toRelay = await waitFor('relay', 10_000);
      lab.sh(router.ns, `iptables -D FORWARD -p udp -s ${other} -j DROP; iptables -D FORWARD -p udp -d ${other} -j DROP`);
      const toDirect = await waitFor('direct', 10_000);
      console.log(`# direct path cut: on the relay after ${toRelay} ms; path back: direct again after ${toDirect} ms`);
      assert.ok(toRelay <= 5_000, `fell back to the relay after ${toRelay} ms`);
      assert.ok(toDirect <= 5_000, `TARGET relay -> direct upgrade <= 5 s, took ${toDirect} ms`);
    } finally {
      lab.sh(
        router.ns,
        `iptables -D FORWARD -p udp -s ${other} -j DROP 2>/dev/null || true; iptables -D FORWARD -p udp -d ${other} -j DROP 2>/dev/null || true`,
      );
      const r = await pinging;
      const lost = Number(r.json?.data?.lossPct ?? 100);
      console.log(`# ping through the cut: ${r.json?.data?.received}/${r.json?.data?.sent} answered`);
      assert.ok(lost < 50, `most pings answered through the cut (${lost}% lost)`);
    }
  });
});
