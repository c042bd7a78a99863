// Issue 18's acceptance in the NAT lab: an admin creates a network, a policy and two invites; 20
// daemons behind every kind of NAT (public, cone, symmetric, double, one LAN, UDP blocked) start
// with `--join <token>` and nothing else. Then, with no other command: planners reach every worker
// where the policy allows it and workers reach each other on echo (every pair, over whatever path
// the NATs allow: direct, relayed, TCP uplink), the reverse direction and unlisted ports are refused
// by the receiving daemon, a non-member reaches nobody, and a kicked member is refused within seconds.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { NatLab, RENDEZVOUS_IP, natLabSupport, type Host, type SiteKind } from '../helpers/natlab.ts';
import { Agent, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { targetsFor } from './matrix.ts';

const support = natLabSupport();
const PORT = 9000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** The same node as seen in network `n`: N:<node id>. */
const inNet = (n: number, address: string) => `${n}:${n.toString(16).toUpperCase().padStart(4, '0')}${address.slice(address.indexOf('.'))}`;

/** Run `fn` over `items`, at most `n` at a time. */
async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

/** 5 planners and 15 workers: every NAT kind on both sides. */
const PLANNERS: SiteKind[] = ['public', 'cone', 'symmetric', 'double', 'udp-blocked'];
const WORKERS: SiteKind[] = [
  'public',
  'public',
  'public',
  'cone',
  'cone',
  'cone',
  'symmetric',
  'symmetric',
  'symmetric',
  'double',
  'double',
  'udp-blocked',
  'udp-blocked',
];
// + the two hosts of one LAN site (workers 14 and 15)

/** What an IPC call ended with: 'OK' or the error code. */
async function outcome(p: Promise<unknown>): Promise<string> {
  try {
    await p;
    return 'OK';
  } catch (err) {
    return (err as { code?: string }).code ?? String(err);
  }
}

describe('fleet in the NAT lab: 20 daemons join with a token and nothing else', { skip: support.ok ? false : support.reason, timeout: 300_000 }, () => {
  let lab: NatLab;
  let work: string;
  let rdv: Rendezvous;
  let admin: Agent;
  let outsider: Agent;
  const planners: Agent[] = [];
  const workers: Agent[] = [];
  let net = 0;
  let joinSeconds = 0;
  /** Agent name -> the kind of NAT it sits behind. */
  const kindOf = new Map<string, SiteKind>();

  const agent = (h: Host): Agent => new Agent(h.name, work, h.ns);
  const nodeArgs = (name: string) => ['--registry', `${RENDEZVOUS_IP}:${PORT}`, '--email', `${name}@example.com`, '--hostname', name, '--listen', '0.0.0.0:0'];

  before(async () => {
    lab = new NatLab();
    work = tmpDir('pilot-fleet-');
    const hosts = (kinds: SiteKind[], prefix: string): Host[] => kinds.map((k, i) => lab.addSite(k, `${prefix}${i + 1}`).hosts[0]!);
    const plannerHosts = hosts(PLANNERS, 'p');
    const workerHosts = [...hosts(WORKERS, 'w'), ...lab.addSite('lan', 'wl').hosts];
    for (const h of [...plannerHosts, ...workerHosts]) kindOf.set(h.name, h.site.kind);
    const adminHost = lab.addSite('public', 'adm').hosts[0]!;
    const outsiderHost = lab.addSite('cone', 'out').hosts[0]!;
    rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:${PORT}`, dataDir: path.join(work, 'rendezvous') });

    admin = agent(adminHost);
    outsider = agent(outsiderHost);
    await Promise.all([admin.start(nodeArgs(admin.name)), outsider.start(nodeArgs(outsider.name))]);
    const c = await admin.ctl(['network', 'create', 'fleet']);
    assert.equal(c.code, 0, c.stderr + c.stdout);
    net = c.json.data.net;
    const policy = path.join(work, 'policy.json');
    fs.writeFileSync(
      policy,
      JSON.stringify(
        {
          rules: [
            { from: ['tag:planner'], to: ['tag:worker'], ports: [7, '1000-1003'] },
            { from: ['tag:worker'], to: ['tag:worker'], ports: [7] },
          ],
        },
        null,
        2,
      ),
    );
    const ps = await admin.ctl(['network', 'policy', 'fleet', '--set', policy]);
    assert.equal(ps.code, 0, ps.stderr + ps.stdout);
    const ip = await admin.ctl(['network', 'invite', 'fleet', '--tag', 'planner', '--uses', String(plannerHosts.length), '--expires', '1h']);
    const iw = await admin.ctl(['network', 'invite', 'fleet', '--tag', 'worker', '--uses', String(workerHosts.length - 1), '--expires', '1h']);
    // the last worker is an ephemeral agent (a container's): its address is released when it stops
    const ie = await admin.ctl(['network', 'invite', 'fleet', '--tag', 'worker', '--uses', '1', '--expires', '1h', '--ephemeral']);
    assert.equal(ie.code, 0, ie.stderr + ie.stdout);
    assert.equal(ip.code, 0, ip.stderr + ip.stdout);
    assert.equal(iw.code, 0, iw.stderr + iw.stdout);

    // The 20 start with the token and nothing else (no handshake, no approve).
    const t0 = Date.now();
    const joins = [
      ...plannerHosts.map((h) => [h, ip.json.data.token, planners] as const),
      ...workerHosts.map((h, i) => [h, i === workerHosts.length - 1 ? ie.json.data.token : iw.json.data.token, workers] as const),
    ];
    await pool(joins, 4, async ([h, token, into]) => {
      const a = agent(h);
      await a.start([...nodeArgs(h.name), '--join', token]);
      into.push(a);
    });
    joinSeconds = (Date.now() - t0) / 1000;
    console.log(`# 20 daemons started with --join in ${joinSeconds.toFixed(1)} s (4 at a time)`);
  });

  after(async () => {
    await pool([admin, outsider, ...planners, ...workers].filter(Boolean), 6, (a) => a.stop());
    await rdv?.kill();
    lab?.cleanup();
    if (work) fs.rmSync(work, { recursive: true, force: true });
  });

  test('the admin sees 20 online members with their tags', async () => {
    const m = await admin.ctl(['network', 'members', 'fleet']);
    assert.equal(m.code, 0, m.stderr);
    const members = m.json.data.members as { hostname: string; tags: string[]; online: boolean; address: string }[];
    assert.equal(members.length, 20);
    assert.ok(members.every((x) => x.online));
    assert.equal(members.filter((x) => x.tags.includes('planner')).length, 5);
    assert.equal(members.filter((x) => x.tags.includes('worker')).length, 15);
  });

  test('every planner reaches every worker on the stdio port (75 pairs), at its N: address', async () => {
    const pairs = planners.flatMap((p) => workers.map((w) => [p, w] as const));
    const bad: string[] = [];
    const t0 = Date.now();
    await pool(pairs, 6, async ([p, w]) => {
      // the first stream of a brand-new session: the membership proof must be there before it
      const r = await outcome(p.ipc('connect', { target: inNet(net, w.address), port: 1000, message: `plan for ${w.name}\n`, timeoutMs: 15_000 }));
      if (r !== 'OK') bad.push(`${p.name} -> ${w.name}: ${r}`);
    });
    console.log(`# 75 planner -> worker streams in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    assert.deepEqual(bad, []);
  });

  test('every worker pings every other worker (105 pairs): echo is allowed between workers', async () => {
    const pairs = workers.flatMap((a, i) => workers.slice(i + 1).map((b) => [a, b] as const));
    const bad: string[] = [];
    const paths = new Map<string, number>();
    await pool(pairs, 6, async ([a, b]) => {
      try {
        const r = await a.ipc('ping', { target: inNet(net, b.address), count: 2, intervalMs: 50, timeoutMs: 10_000 });
        if (r.received < 1) bad.push(`${a.name} -> ${b.name}: ${r.received}/2`);
        paths.set(r.pathType, (paths.get(r.pathType) ?? 0) + 1);
      } catch (err) {
        bad.push(`${a.name} -> ${b.name}: ${(err as { code?: string }).code}`);
      }
    });
    console.log(`# worker pairs by path: ${JSON.stringify(Object.fromEntries(paths))}`);
    assert.deepEqual(bad, []);
  });

  test('co-members go direct wherever one side maps endpoint-independently, as trusted peers do', async () => {
    // the pings above went out at first contact (over the relay at once); punching runs meanwhile
    const pairs = workers
      .flatMap((a, i) => workers.slice(i + 1).map((b) => [a, b] as const))
      .filter(([a, b]) => targetsFor(kindOf.get(a.name)!, kindOf.get(b.name)!).direct);
    const pathOf = async (from: Agent, to: Agent): Promise<string> =>
      ((await from.ipc('peers')).peers as { address: string; pathType: string }[]).find((p) => p.address === to.address)?.pathType ?? 'none';
    const deadline = Date.now() + 35_000; // one birthday period for the symmetric sides (as the matrix)
    let notDirect: string[] = [];
    do {
      notDirect = [];
      for (const [a, b] of pairs) if ((await pathOf(a, b)) !== 'direct' || (await pathOf(b, a)) !== 'direct') notDirect.push(`${a.name}-${b.name}`);
      if (notDirect.length > 0) await sleep(1000);
    } while (notDirect.length > 0 && Date.now() < deadline);
    console.log(`# ${pairs.length - notDirect.length}/${pairs.length} worker pairs that can go direct did`);
    assert.deepEqual(notDirect, []);
  });

  test('refused where the policy forbids: worker -> planner, planner -> an unlisted port; a non-member reaches nobody', async () => {
    const got: string[] = [];
    await pool(workers, 5, async (w) => {
      const p = planners[workers.indexOf(w) % planners.length]!;
      got.push(`${w.name}->${p.name}:1000 ${await outcome(w.ipc('connect', { target: inNet(net, p.address), port: 1000, message: 'hi', timeoutMs: 10_000 }))}`);
    });
    await pool(planners, 5, async (p) => {
      const w = workers[planners.indexOf(p)]!;
      got.push(`${p.name}->${w.name}:5000 ${await outcome(p.ipc('connect', { target: inNet(net, w.address), port: 5000, message: 'hi', timeoutMs: 10_000 }))}`);
    });
    const notDenied = got.filter((g) => !g.endsWith(' PERMISSION_DENIED'));
    assert.deepEqual(notDenied, []);
    for (const w of workers.slice(0, 3)) {
      const r = await outcome(outsider.ipc('connect', { target: w.address, port: 1000, message: 'hi', timeoutMs: 10_000 }));
      assert.equal(r, 'NOT_TRUSTED', `outsider -> ${w.name}`);
    }
  });

  test('a kicked planner is refused by the workers within seconds', async () => {
    const kicked = planners[0]!;
    const w = workers[0]!;
    assert.equal(await outcome(kicked.ipc('connect', { target: w.address, port: 1000, message: 'hi\n', timeoutMs: 10_000 })), 'OK');
    const k = await admin.ctl(['network', 'kick', 'fleet', kicked.address]);
    assert.equal(k.code, 0, k.stderr + k.stdout);
    const t0 = Date.now();
    let r = 'OK';
    while (r === 'OK' && Date.now() - t0 < 10_000) {
      r = await outcome(kicked.ipc('connect', { target: w.address, port: 1000, message: 'hi\n', timeoutMs: 3_000 }));
      if (r === 'OK') await sleep(200);
    }
    console.log(`# the kicked planner was refused (${r}) after ${Date.now() - t0} ms`);
    assert.notEqual(r, 'OK');
    assert.ok(Date.now() - t0 < 10_000);
    // and by every other worker too (the push reached them all), within the same seconds
    const still: string[] = [];
    await pool(workers.slice(1), 5, async (x) => {
      const o = await outcome(kicked.ipc('connect', { target: x.address, port: 1000, message: 'hi\n', timeoutMs: 3_000 }));
      if (o === 'OK') still.push(x.name);
    });
    assert.deepEqual(still, []);
    // the refusal is the workers' own (a kicked member need not cooperate): each dropped the planner's
    // proof and session on the admin's signed kick
    const holding = async (): Promise<string[]> => {
      const out: string[] = [];
      for (const x of workers) if (((await x.ipc('peers')).peers as { address: string }[]).some((p) => p.address === kicked.address)) out.push(x.name);
      return out;
    };
    let left = await holding();
    for (let i = 0; i < 20 && left.length > 0; i++) {
      await sleep(250);
      left = await holding();
    }
    assert.deepEqual(left, [], 'workers still holding a session with the kicked planner');
  });

  test('an ephemeral member that stops is gone: its address no longer resolves, its hostname is free', async () => {
    const eph = workers.find((w) => w.name === 'wlb')!;
    const t0 = Date.now();
    await eph.stop();
    const gone = await admin.ctl(['find', eph.address]);
    assert.equal(gone.json?.code, 'NOT_FOUND', gone.stdout);
    const taken = await outsider.ctl(['set-hostname', eph.name]);
    assert.equal(taken.code, 0, taken.stderr + taken.stdout);
    console.log(`# the ephemeral member's address was released and its hostname taken by another node ${Date.now() - t0} ms after its stop began`);
    const m = await admin.ctl(['network', 'members', 'fleet']);
    assert.ok(!(m.json.data.members as { hostname: string }[]).some((x) => x.hostname === eph.name));
  });
});
