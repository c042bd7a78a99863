// The NAT matrix: real Pilot daemons in the NAT lab, one agent per site, every
// unordered pair of site kinds (a kind with itself uses two sites of it; lan x lan
// the two agents of one LAN). Per pair: trust, a cold 10 MiB echo stream (hashes
// compared, time to first byte), ping, and the path each side reports.
// Used by test/nat/matrix.test.ts and importable by benchmark scripts (runMatrix).
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir, type CtlResult } from '../helpers/cluster.ts';
import { NatLab, RENDEZVOUS_IP, type Host, type SiteKind } from '../helpers/natlab.ts';

export const MATRIX_KINDS: readonly SiteKind[] = ['public', 'cone', 'symmetric', 'double', 'lan', 'udp-blocked'];
const SHORT: Record<SiteKind, string> = { public: 'pub', cone: 'cone', symmetric: 'sym', double: 'dbl', lan: 'lan', 'udp-blocked': 'blk' };
/** Kinds whose mapping is endpoint-independent: a peer can reach them at the endpoint the rendezvous saw. */
export const EIM_KINDS: ReadonlySet<SiteKind> = new Set(['public', 'cone', 'double', 'lan']);
const RDV_PORT = 9000;
const ECHO_SCRIPT = path.join(ROOT, 'test/helpers/echo-transfer.ts');

export interface PairResult {
  a: SiteKind;
  b: SiteKind;
  /** Agent names (a dials b). */
  from: string;
  to: string;
  /** Connected and the whole stream came back intact. */
  ok: boolean;
  /** Where it failed: trust, stream, ping, peers, timeout. */
  failedAt?: string;
  error?: string;
  /** Path reported by each side after the stream and the ping. */
  pathA?: 'direct' | 'relay' | 'none';
  pathB?: 'direct' | 'relay' | 'none';
  /** a's direct endpoint for b (ip:port), if direct. */
  endpointA?: string | null;
  firstByteMs?: number;
  /** When both sides reported direct, ms from the pair's start (after the echo; see runPair). */
  directAfterMs?: number;
  streamSeconds?: number;
  bytes?: number;
  intact?: boolean;
  pingReceived?: number;
  pingAvgMs?: number | null;
  /**
   * UDP bytes the NAT router (of a NATed side) saw flowing straight between the two
   * sides' public addresses: the kernel's view of "direct", independent of the daemon.
   * Undefined for public x public and lan x lan (no router between them).
   */
  kernelDirectBytes?: number;
  seconds: number;
}

/** The product's targets for a pair (what the test asserts; the daemon must meet them). */
export interface PairTargets {
  /** The pair must end on a direct path (one side maps endpoint-independently, no UDP block). */
  direct: boolean;
  /** The direct path must be over the LAN (10.x) address. */
  lanAddress: boolean;
  /** Cold time to first byte limit, if any. */
  firstByteMaxMs?: number;
}

export function targetsFor(a: SiteKind, b: SiteKind): PairTargets {
  const blocked = a === 'udp-blocked' || b === 'udp-blocked';
  const t: PairTargets = { direct: !blocked && (EIM_KINDS.has(a) || EIM_KINDS.has(b)), lanAddress: a === 'lan' && b === 'lan' };
  if (a === 'cone' && b === 'cone') t.firstByteMaxMs = 1000;
  else if (blocked) t.firstByteMaxMs = 2000;
  return t;
}

/** Which targets a delivered pair misses (empty: all met). */
export function missedTargets(r: PairResult): string[] {
  if (!r.ok) return ['delivery'];
  const t = targetsFor(r.a, r.b);
  const miss: string[] = [];
  if (t.direct && (r.pathA !== 'direct' || r.pathB !== 'direct')) miss.push(`direct (got ${r.pathA}/${r.pathB})`);
  if (t.lanAddress && !(r.endpointA ?? '').startsWith('10.')) miss.push(`LAN address (got ${r.endpointA ?? r.pathA})`);
  if (t.firstByteMaxMs !== undefined && (r.firstByteMs ?? Infinity) > t.firstByteMaxMs)
    miss.push(`first byte <= ${t.firstByteMaxMs} ms (got ${r.firstByteMs} ms)`);
  return miss;
}

export interface MatrixOptions {
  kinds?: readonly SiteKind[];
  /** Stream size per pair (default 10 MiB). */
  bytes?: number;
  /** Pairs run at once (default 2: a 2-core machine). */
  concurrency?: number;
  /** Hard limit per pair; a hanging pair is reported as FAIL(timeout) (default 60 s). */
  pairTimeoutMs?: number;
  /** Progress lines. */
  log?: (line: string) => void;
  /** Called once the agents are up, before the pairs run (e.g. to add loss on a router). */
  prepare?: (lab: NatLab, hosts: ReadonlyMap<SiteKind, Host[]>) => void;
}

export interface MatrixRun {
  kinds: readonly SiteKind[];
  results: PairResult[];
  /** Lab + rendezvous + agents start-up. */
  setupSeconds: number;
  seconds: number;
}

export function pairsOf(kinds: readonly SiteKind[]): [SiteKind, SiteKind][] {
  const out: [SiteKind, SiteKind][] = [];
  for (let i = 0; i < kinds.length; i++) for (let j = i; j < kinds.length; j++) out.push([kinds[i]!, kinds[j]!]);
  return out;
}

/** Build the lab, start everything, run every pair, tear it all down. */
export async function runMatrix(opts: MatrixOptions = {}): Promise<MatrixRun> {
  const kinds = opts.kinds ?? MATRIX_KINDS;
  const bytes = opts.bytes ?? 10 * 1024 * 1024;
  const log = opts.log ?? (() => {});
  const t0 = Date.now();
  const lab = new NatLab();
  const work = tmpDir('pilot-matrix-');
  const agents = new Map<string, Agent>();
  try {
    // Two hosts per kind: two sites, or the two hosts of one LAN.
    const hosts = new Map<SiteKind, Host[]>();
    for (const kind of kinds) {
      if (kind === 'lan') hosts.set(kind, lab.addSite('lan', 'lan').hosts);
      else
        hosts.set(
          kind,
          [1, 2].map((i) => lab.addSite(kind, `${SHORT[kind]}${i}`).hosts[0]!),
        );
    }
    const rdv = await startRendezvous({ netns: lab.rendezvous.ns, listen: `${RENDEZVOUS_IP}:${RDV_PORT}`, dataDir: path.join(work, 'rendezvous') });
    try {
      const all = [...hosts.values()].flat();
      await pool(all, 3, async (h) => {
        const a = new Agent(h.name, work, h.ns);
        await a.start(['--registry', `${RENDEZVOUS_IP}:${RDV_PORT}`, '--email', `${h.name}@example.com`, '--hostname', h.name, '--listen', '0.0.0.0:0']);
        agents.set(h.name, a);
      });
      const setupSeconds = (Date.now() - t0) / 1000;
      log(`lab + rendezvous + ${agents.size} agents up in ${setupSeconds.toFixed(1)}s`);
      opts.prepare?.(lab, hosts);

      const pairs = pairsOf(kinds).map(([a, b]) => {
        const ha = hosts.get(a)!;
        const hb = hosts.get(b)!;
        const [fromHost, toHost] = [ha[0]!, a === b ? hb[1]! : hb[0]!];
        return { a, b, from: agents.get(fromHost.name)!, to: agents.get(toHost.name)!, direct: () => kernelDirect(lab, fromHost, toHost) };
      });
      const results: PairResult[] = [];
      // Pairs run side by side only when they share no daemon: a cell measures one pair, cold.
      // (A daemon already pushing another pair's 10 MiB echo holds a standing queue in its
      // socket receive buffer, 0.1-0.65 s here under CUBIC, and every packet to it waits there:
      // that is latency under load, measured on its own, not this pair's cold first byte.)
      await disjointPool(
        pairs,
        (p) => [p.from.name, p.to.name],
        opts.concurrency ?? 2,
        async (p) => {
          const r = await runPair(p.a, p.b, p.from, p.to, bytes, opts.pairTimeoutMs ?? 60_000);
          if (r.ok) r.kernelDirectBytes = p.direct();
          results.push(r);
          log(`${p.a} x ${p.b}: ${cell(r)}${r.ok ? '' : ` ${r.error ?? ''}`} (${r.seconds.toFixed(1)}s)`);
        },
      );
      results.sort((x, y) => pairIndex(kinds, x) - pairIndex(kinds, y));
      await pool([...agents.values()], 4, (a) => a.stop());
      return { kinds, results, setupSeconds, seconds: (Date.now() - t0) / 1000 };
    } finally {
      await rdv.kill();
    }
  } finally {
    lab.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

const publicIpOf = (h: Host): string => h.site.routers.at(-1)?.publicIp ?? h.ip;

/** Bytes between the two public addresses as counted by a router on the way (see PairResult). */
function kernelDirect(lab: NatLab, x: Host, y: Host): number | undefined {
  if (x.site === y.site) return undefined;
  const [near, far] = x.site.routers.length > 0 ? [x, y] : [y, x];
  const router = near.site.routers.at(-1);
  return router ? lab.udpBytesWith(router, publicIpOf(far)) : undefined;
}

function pairIndex(kinds: readonly SiteKind[], r: PairResult): number {
  return kinds.indexOf(r.a) * kinds.length + kinds.indexOf(r.b);
}

async function runPair(a: SiteKind, b: SiteKind, from: Agent, to: Agent, bytes: number, budgetMs: number): Promise<PairResult> {
  const t0 = Date.now();
  const r: PairResult = { a, b, from: from.name, to: to.name, ok: false, seconds: 0 };
  let stage = 'trust';
  const left = (): number => Math.max(1000, budgetMs - (Date.now() - t0));
  const body = async (): Promise<void> => {
    await trustPair(from, to, Math.min(left(), 15_000));

    // Cold: the first dial sets up the session and the path; first byte measured from the dial.
    stage = 'stream';
    const s = await run(['ip', 'netns', 'exec', from.netns!, process.execPath, ECHO_SCRIPT, from.socket, to.address, String(bytes)], {}, left());
    if (s.code !== 0) throw new Error(`echo-transfer exit ${s.code}: ${lastLine(s.stderr)}`);
    const out = JSON.parse(s.stdout.trim().split('\n').pop()!) as {
      bytes: number;
      sentHash: string;
      echoHash: string;
      seconds: number;
      firstByteMs: number | null;
    };
    r.bytes = out.bytes;
    r.intact = out.bytes === bytes && out.sentHash === out.echoHash;
    r.firstByteMs = out.firstByteMs ?? undefined;
    r.streamSeconds = out.seconds;
    if (!r.intact) throw new Error(`echoed ${out.bytes}/${bytes} bytes, hashes ${out.sentHash === out.echoHash ? 'equal' : 'differ'}`);

    stage = 'ping';
    const pg = must(await from.ctl(['ping', to.address, '--count', '3', '--interval', '200ms', '--timeout', '2s'], left()), 'ping');
    r.pingReceived = pg.json.data.received;
    r.pingAvgMs = pg.json.data.avgMs;
    if (r.pingReceived !== 3) throw new Error(`ping ${r.pingReceived}/3`);

    stage = 'peers';
    const find = (res: CtlResult, addr: string): { pathType: 'direct' | 'relay' | 'none'; endpoint: string | null } | undefined =>
      (must(res, 'peers').json.data.peers as { address: string; pathType: 'direct' | 'relay' | 'none'; endpoint: string | null }[]).find(
        (p) => p.address === addr,
      );
    // Where the pair must go direct, give the daemons one more birthday period (30 s) to get
    // there: on a loaded box the first attempt can miss (the 256 mappings of the symmetric side
    // not yet open when the cone side's probes arrive), and the daemon retries on its own. The
    // target stays "direct"; r.directAfterMs says how long it took.
    const mustGoDirect = targetsFor(a, b).direct;
    const waitUntil = Date.now() + (mustGoDirect ? Math.min(35_000, left() - 5_000) : 0);
    let va: ReturnType<typeof find>;
    let vb: ReturnType<typeof find>;
    let waited = false;
    for (;;) {
      const [pa, pb] = await Promise.all([from.ctl(['peers'], left()), to.ctl(['peers'], left())]);
      va = find(pa, to.address);
      vb = find(pb, from.address);
      if ((va?.pathType === 'direct' && vb?.pathType === 'direct') || Date.now() >= waitUntil) break;
      waited = true;
      await sleep(500);
    }
    if (va?.pathType === 'direct' && vb?.pathType === 'direct') {
      r.directAfterMs = Date.now() - t0;
      if (waited) {
        // went direct after the echo: send 2 MiB more so the router's counters see the direct path carry data
        stage = 'stream after direct';
        const again = await run(
          ['ip', 'netns', 'exec', from.netns!, process.execPath, ECHO_SCRIPT, from.socket, to.address, String(2 * 1024 * 1024)],
          {},
          left(),
        );
        if (again.code !== 0) throw new Error(`echo-transfer after direct exit ${again.code}: ${lastLine(again.stderr)}`);
      }
    }
    r.pathA = va?.pathType ?? 'none';
    r.pathB = vb?.pathType ?? 'none';
    r.endpointA = va?.endpoint ?? null;
    r.ok = true;
  };
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      body(),
      new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`no result after ${budgetMs / 1000}s`)), budgetMs))),
    ]);
  } catch (err) {
    r.ok = false;
    r.failedAt = Date.now() - t0 >= budgetMs ? `timeout in ${stage}` : stage;
    r.error = (err as Error).message.slice(0, 300);
  } finally {
    clearTimeout(timer);
  }
  r.seconds = (Date.now() - t0) / 1000;
  return r;
}

/** The seed sequence: `from` asks (handshake), `to` approves; resolves once `from` sees mutual trust. */
export async function trustPair(from: Agent, to: Agent, timeoutMs = 15_000): Promise<void> {
  const t0 = Date.now();
  const left = (): number => Math.max(1000, timeoutMs - (Date.now() - t0));
  must(await from.ctl(['handshake', to.address, 'nat lab'], left()), 'handshake');
  must(await to.ctl(['approve', from.address], left()), 'approve');
  for (;;) {
    const tr = must(await from.ctl(['trust'], left()), 'trust');
    if ((tr.json.data.trusted as { peer: string; mutual: boolean }[]).some((t) => t.peer === to.address && t.mutual)) return;
    if (Date.now() - t0 > timeoutMs) throw new Error(`trust not mutual after ${timeoutMs / 1000} s`);
    await sleep(200);
  }
}

function must(res: CtlResult, what: string): CtlResult {
  if (res.code !== 0) throw new Error(`${what}: ${res.json?.code ?? `exit ${res.code}`} ${res.json?.message ?? lastLine(res.stderr)}`);
  return res;
}

const lastLine = (s: string): string => s.trim().split('\n').pop() ?? '';
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Run `fn` over `items`, at most `n` at a time. */
async function pool<T>(items: readonly T[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++]!);
  };
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, worker));
}

/**
 * Run `fn` over `items`, at most `n` at a time, never two at once that share a key
 * (in order otherwise: an item waits only while one of its keys is busy).
 */
export async function disjointPool<T>(items: readonly T[], keys: (item: T) => string[], n: number, fn: (item: T) => Promise<void>): Promise<void> {
  const pending = [...items];
  const busy = new Set<string>();
  let running = 0;
  await new Promise<void>((resolve, reject) => {
    const startMore = (): void => {
      if (pending.length === 0 && running === 0) return resolve();
      for (let i = 0; i < pending.length && running < n; ) {
        const item = pending[i]!;
        const ks = keys(item);
        if (ks.some((k) => busy.has(k))) {
          i++;
          continue;
        }
        pending.splice(i, 1);
        for (const k of ks) busy.add(k);
        running++;
        fn(item).then(() => {
          for (const k of ks) busy.delete(k);
          running--;
          startMore();
        }, reject);
      }
    };
    startMore();
  });
}

/** One grid cell: "direct 0.21s", "relay 1.30s", "FAIL(stream)"; "*" marks a missed target. */
export function cell(r: PairResult): string {
  if (!r.ok) return `FAIL(${r.failedAt})`;
  const fb = r.firstByteMs === undefined ? '?' : `${(r.firstByteMs / 1000).toFixed(2)}s`;
  const path = r.pathA === r.pathB ? r.pathA! : `${r.pathA}/${r.pathB}`;
  return `${path} ${fb}${missedTargets(r).length ? '*' : ''}`;
}

/** The matrix as a grid (row kind dials column kind), each line prefixed with "# ". */
export function formatGrid(m: MatrixRun): string {
  const head = ['', ...m.kinds];
  const rows = m.kinds.map((a) => [
    a,
    ...m.kinds.map((b) => {
      const r = m.results.find((x) => x.a === a && x.b === b);
      return r ? cell(r) : '';
    }),
  ]);
  const widths = head.map((_, i) => Math.max(...[head, ...rows].map((row) => row[i]!.length)));
  const line = (row: string[]): string => `# | ${row.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  const out = [line(head), `# |${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...rows.map(line)];
  out.push('# cells: path (dialer/listener if they differ) + time from dial to first echoed byte; * = misses a target');
  for (const r of m.results) {
    const miss = missedTargets(r);
    const detail = r.ok
      ? `${r.from} -> ${r.to}: ${r.pathA}${r.endpointA ? ` ${r.endpointA}` : ''}, first byte ${r.firstByteMs} ms, ${((r.bytes ?? 0) / 1048576).toFixed(0)} MiB echo ${r.streamSeconds}s, ping ${r.pingAvgMs} ms, kernel direct ${r.kernelDirectBytes === undefined ? 'n/a' : `${(r.kernelDirectBytes / 1e6).toFixed(1)} MB`}`
      : `${r.from} -> ${r.to}: FAIL at ${r.failedAt}: ${r.error}`;
    out.push(`#   ${r.a} x ${r.b}: ${detail}${miss.length && r.ok ? ` | missed: ${miss.join('; ')}` : ''}`);
  }
  return out.join('\n');
}
