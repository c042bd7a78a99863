// Picks and keeps the underlay path of every peer (ICE-like, inside the session):
// - a session starts wherever it can (relay, or a candidate that answered the handshake);
// - both sides swap candidates (CANDIDATES) and probe every candidate in rounds
//   (PROBE/PROBE_REPLY, encrypted in the session, so checks cannot be spoofed);
// - the first authenticated packet that arrives directly moves the peer there
//   (replying to the source works through any NAT: conntrack is symmetric);
// - cone x symmetric: birthday probing (the symmetric side opens many ports toward
//   the cone side's endpoint, the cone side probes random ports of its address);
// - a direct path that stops answering is detected in seconds and the peer
//   falls back to the relay while punching starts again;
// - idle direct paths get keepalives so NAT mappings stay open; every keepalive
//   is a consent check (RFC 7675): unanswered, the path is down at once, and
//   the interval is learned from the mappings that lapsed (keepalive-tuner.ts).
// Streams never notice: the Connection above is path-independent.
//
// A peer's candidates are its own claims: they must not turn us into a cannon
// (issue 15, hole 3). So: punching, candidate exchange and birthday probing
// only with trusted peers (the daemon says who; public echo needs no
// punching); private/LAN candidates only on a subnet we are attached to;
// birthday only toward the address the rendezvous observed for the peer; and
// every probe toward an address that has not answered yet is paid from a byte
// budget per peer and in total (src/nat/probe-budget.ts).
import crypto from 'node:crypto';
import { EventEmitter } from 'node:events';
import type { HostPort } from '../util/hostport.ts';
import { Inner, NONCE_BYTES, decodeCandidates, encodeCandidates, encodeProbe } from './inner.ts';
import type { NatType } from './nat-type.ts';
import { endpointText, parseEndpoint, pathKeyOf, samePath, type Path } from './path.ts';
import { isPublicIp, isPublicIPv4, probeable } from './ip-class.ts';
import { holdIpv6 } from './family-preference.ts';
import { ProbeBudget } from './probe-budget.ts';
import { CandidateSync, sameEndpoints } from './candidate-sync.ts'; // issue 19: candidates on a path that works, resent on every change
import { DEFAULT_KEEPALIVE_MS, KeepaliveTuner } from './keepalive-tuner.ts';

/** Gaps between punching rounds while no direct path works (ms); the last repeats. */
const ROUND_GAPS = [0, 100, 200, 400, 800, 1500, 3000];
/** Probe an idle direct path this often (keeps NAT mappings open, proves liveness); shortened per peer by the tuner. */
export const KEEPALIVE_MS = DEFAULT_KEEPALIVE_MS;
/** Sending but nothing back directly for this long: check the path. */
const SUSPECT_AFTER_MS = 1_500;
/** A liveness probe unanswered this long: the path is dead. */
const DEAD_AFTER_MS = 1_000;
/** Unanswered liveness probes are resent this often until DEAD_AFTER_MS (one lost packet is not a dead path). */
const LIVENESS_RETRY_MS = 300;
/** Birthday probing budget per attempt. */
export const BIRTHDAY_PORTS = 256;
const BIRTHDAY_RANDOM_PROBES = 1536;
const BIRTHDAY_PROBES_PER_TICK = 96;
/** Minimum gap between birthday attempts with one peer. */
const BIRTHDAY_EVERY_MS = 30_000;
const MAX_CANDIDATES = 8;

export interface PathHost {
  now(): number;
  /** Encrypt `msg` in the peer's session and send it on `path`; false: no session yet. */
  sendVia(peerKey: number, msg: Buffer, path: Path): boolean;
  /** Our candidates (LAN endpoints + mapped endpoint) and NAT type, as of now. */
  local(): { eps: string[]; nat: NatType };
  /** Open `n` extra UDP sockets for birthday probing; returns their socket ids. */
  openSprayPorts(n: number): number[];
  /** Close spray sockets no peer path uses any more. */
  releaseSprayPorts(): void;
  /** May we punch toward this peer (swap candidates, probe them, birthday)? Only for trusted peers. */
  mayPunch(peerKey: number): boolean;
  /** A private/LAN candidate we may probe (on a subnet we are attached to); default: ip-class's check. */
  probeable?(host: string): boolean;
  /** A direct path died: our own network may have changed under it, re-check it now (issue 19). */
  pathLost?(peerKey: number): void;
}

export interface PathOptions {
  /** Probe bytes toward unanswered addresses per peer, per 30 s (default 128 KiB). */
  probeBudgetPeer?: number;
  /** The same for the whole daemon (default 1 MiB). */
  probeBudgetTotal?: number;
}

interface PeerPathState {
  key: number;
  current: Path | undefined;
  /** The latest direct path that authenticated (kept for re-probing after a loss). */
  lastDirect: Path | undefined;
  lastDirectRecv: number;
  lastRecv: number;
  lastSent: number;
  directSince: number;
  /** From the registry; the first one is the endpoint the rendezvous observed (when it has one). */
  registryEps: HostPort[];
  /** From the peer's CANDIDATES message (fresher). */
  peerEps: HostPort[];
  remoteNat: NatType;
  sentCandidates: boolean;
  round: number;
  nextRoundAt: number;
  livenessSentAt: number;
  lastProbeSentAt: number;
  probes: Map<string, { path: Path; at: number }>;
  rttMs: number | undefined;
  birthdayAt: number;
  birthdayLeft: number;
  birthdayHosts: string[];
  hasSession: boolean;
  /** mayPunch() as of the last look: punching started for this peer. */
  punching: boolean;
  /** The running liveness check is an idle keepalive (a failure means a NAT mapping lapsed). */
  idleCheck: boolean;
  /**
   * The nonce of the idle keepalive's first probe until its reply comes (issue 19), and how long the
   * path had been idle then. Unanswered in time, the mapping had lapsed, even when the path works again
   * at once because the peer's own keepalive crossed ours (its probe got through the mapping ours opened).
   */
  checkNonce: string | undefined;
  checkIdleMs: number;
  lastKeepaliveAt: number;
  /** This keepalive's share of the interval, 0.75..1 (RFC 7675 §5.1: random, so both sides' never stay in step). */
  keepaliveJitter: number;
  /** Issue 19: kept on the relay until then (a UDP-policed direct path; src/daemon/policed-paths.ts). */
  pinnedUntil: number;
}

export interface PathEvents {
  change: [peerKey: number, path: Path | undefined, reason: string];
}

export class PathManager extends EventEmitter<PathEvents> {
  private readonly host: PathHost;
  private readonly peers = new Map<number, PeerPathState>();
  private readonly budget: ProbeBudget;
  private readonly sync = new CandidateSync();
  /** Keepalive interval per peer, learned from lapsed mappings (issue 19); the daemon also keeps the rendezvous mapping alive by it. */
  readonly tuner = new KeepaliveTuner();
  readonly counters = {
    probesSent: 0,
    probesAnswered: 0,
    rounds: 0,
    upgrades: 0,
    fallbacks: 0,
    moves: 0,
    birthdayAttempts: 0,
    birthdayProbes: 0,
    keepalives: 0,
    probesDenied: 0,
  };

  constructor(host: PathHost, opts: PathOptions = {}) {
    super();
    this.host = host;
    this.budget = new ProbeBudget({ peerBytes: opts.probeBudgetPeer, totalBytes: opts.probeBudgetTotal, now: host.now() });
  }

  private probeable(hostIp: string): boolean {
    return this.host.probeable ? isPublicIp(hostIp) || this.host.probeable(hostIp) : probeable(hostIp);
  }

  private state(key: number): PeerPathState {
    let st = this.peers.get(key);
    if (!st) {
      st = {
        key,
        current: undefined,
        lastDirect: undefined,
        lastDirectRecv: 0,
        lastRecv: 0,
        lastSent: 0,
        directSince: 0,
        registryEps: [],
        peerEps: [],
        remoteNat: 'unknown',
        sentCandidates: false,
        round: 0,
        nextRoundAt: 0,
        livenessSentAt: 0,
        lastProbeSentAt: 0,
        probes: new Map(),
        rttMs: undefined,
        birthdayAt: -Infinity,
        birthdayLeft: 0,
        birthdayHosts: [],
        hasSession: false,
        punching: false,
        idleCheck: false,
        checkNonce: undefined,
        checkIdleMs: 0,
        lastKeepaliveAt: 0,
        keepaliveJitter: 0.75 + Math.random() / 4,
        pinnedUntil: 0,
      };
      this.peers.set(key, st);
    }
    return st;
  }

  current(key: number): Path | undefined {
    return this.peers.get(key)?.current;
  }

  info(key: number): { path: Path | undefined; probeRttMs: number | undefined; directSince: number; remoteNat: NatType; candidates: string[] } | undefined {
    const st = this.peers.get(key);
    if (!st) return undefined;
    return {
      path: st.current,
      probeRttMs: st.rttMs,
      directSince: st.directSince,
      remoteNat: st.remoteNat,
      candidates: this.candidates(st).map((c) => endpointText(c.host, c.port)),
    };
  }

  /** Registry endpoints of the peer (fresh resolve). */
  setRegistryCandidates(key: number, eps: HostPort[]): void {
    this.state(key).registryEps = eps.slice(0, MAX_CANDIDATES);
  }

  /**
   * Every candidate to probe: the peer's own list first, then the registry's, then the last path that worked.
   * Private/LAN addresses only on a subnet we are attached to (anything else is not ours to probe).
   */
  candidates(st: PeerPathState): HostPort[] {
    const out: HostPort[] = [];
    const seen = new Set<string>();
    const add = (h: HostPort): void => {
      const k = `${h.host}:${h.port}`;
      if (!seen.has(k) && out.length < MAX_CANDIDATES && this.probeable(h.host)) {
        seen.add(k);
        out.push(h);
      }
    };
    st.peerEps.forEach(add);
    st.registryEps.forEach(add);
    if (st.lastDirect?.kind === 'direct' && st.lastDirect.sock === undefined) add(st.lastDirect);
    return out;
  }

  /**
   * Where to spray a handshake message besides the relay, before any session
   * exists. Trusted peers: every candidate, within the probe budget. Untrusted
   * peers: our own message 1 goes to the first registry endpoint only (the one
   * the rendezvous observed the peer at: the peer itself, not an address it
   * claims), and message 2 goes nowhere extra (it answers on the path message 1
   * came from, or through the relay): a stranger's candidates get nothing.
   */
  handshakeTargets(key: number, message: 'init' | 'resp' = 'init'): HostPort[] {
    const st = this.peers.get(key);
    if (!st) return [];
    const now = this.host.now();
    if (!this.host.mayPunch(key)) {
      const first = st.registryEps[0];
      return message === 'init' && first !== undefined && this.probeable(first.host) && this.spend(key, now) ? [first] : [];
    }
    return this.candidates(st).filter(() => this.spend(key, now));
  }

  forget(key: number): void {
    this.peers.delete(key);
    this.budget.forget(key);
    this.sync.forget(key);
    this.tuner.forget(key);
    this.host.releaseSprayPorts();
  }

  /** Peers with path state (bounded by the daemon's peer table). */
  get size(): number {
    return this.peers.size;
  }

  private spend(key: number, now: number): boolean {
    if (this.budget.take(key, now)) return true;
    this.counters.probesDenied++;
    return false;
  }

  /** We sent the peer something (data): dead-path detection compares with what comes back. */
  noteSent(key: number): void {
    const st = this.peers.get(key);
    if (st) st.lastSent = this.host.now();
  }

  /** A new session with the peer: swap candidates and start punching at once. */
  onSession(key: number): void {
    const st = this.state(key);
    st.hasSession = true;
    st.sentCandidates = false;
    if (st.current?.kind !== 'direct') this.restartRounds(st);
    // Untrusted: no candidates either way (tick() sends ours once trust arrives).
    st.punching = this.host.mayPunch(key);
    if (st.punching) this.sendCandidates(st, true);
  }

  /** Every authenticated packet from the peer, with the path it came on; `now`: when (the host's clock, read once per packet by the caller). */
  onAuthenticated(key: number, path: Path, now = this.host.now()): void {
    const st = this.state(key);
    st.lastRecv = now;
    if (path.kind === 'direct' && now < st.pinnedUntil) {
      st.lastDirectRecv = now; // pinned to the relay (policed path): no upgrade until the re-probe
    } else if (path.kind === 'direct') {
      if (holdIpv6(st.current, path, now - st.lastDirectRecv)) return;
      st.lastDirectRecv = now;
      st.livenessSentAt = 0;
      if (!samePath(st.current, path)) {
        const was = st.current;
        st.current = path;
        st.lastDirect = path;
        st.directSince = now;
        if (was?.kind === 'direct') this.counters.moves++;
        else this.counters.upgrades++;
        this.emit('change', key, path, was?.kind === 'direct' ? 'peer moved' : was ? 'upgraded to direct' : 'direct');
        this.host.releaseSprayPorts();
      }
    } else if (st.current === undefined) {
      st.current = path;
      this.emit('change', key, path, 'relay');
    } else if (st.current.kind === 'direct' && st.livenessSentAt === 0 && now - st.lastDirectRecv > 1_000) {
      // The peer talks to us through the relay: it has likely lost the direct path. Check ours now.
      st.livenessSentAt = now;
      st.idleCheck = false;
      this.probe(st, st.current);
    }
  }

  /** A path-layer message (first byte 0x01..0x03) from the peer. */
  onInner(key: number, msg: Buffer, path: Path): void {
    const st = this.state(key);
    switch (msg[0]) {
      case Inner.Probe:
        if (msg.length !== 1 + NONCE_BYTES) return;
        this.host.sendVia(key, encodeProbe(Inner.ProbeReply, msg.subarray(1)), path);
        if (samePath(path, st.current) && this.host.mayPunch(key)) {
          // The peer's keepalive refreshed this path's mappings: ours waits (issue 19; keepalive-tuner.ts).
          st.lastProbeSentAt = this.host.now();
          this.tuner.peerKept(key, st.lastProbeSentAt);
        }
        return;
      case Inner.ProbeReply: {
        if (msg.length !== 1 + NONCE_BYTES) return;
        const p = st.probes.get(msg.subarray(1).toString('hex'));
        if (p) {
          if (st.checkNonce === msg.subarray(1).toString('hex')) st.checkNonce = undefined; // the keepalive got through
          st.probes.delete(msg.subarray(1).toString('hex'));
          this.counters.probesAnswered++;
          st.rttMs = this.host.now() - p.at;
        }
        return;
      }
      case Inner.Candidates: {
        // An untrusted peer's endpoints are not ours to probe, and it gets none of ours.
        if (!this.host.mayPunch(key)) return;
        let m: ReturnType<typeof decodeCandidates>;
        try {
          m = decodeCandidates(msg.subarray(1));
        } catch {
          return;
        }
        const eps = m.eps.map(parseEndpoint).filter((e): e is HostPort => e !== undefined);
        const moved = st.peerEps.length > 0 && !sameEndpoints(eps, st.peerEps); // the first list is no move
        st.peerEps = eps;
        st.remoteNat = m.nat;
        if (m.reply) this.sync.answer(key, this.host.now());
        if (st.current?.kind !== 'direct') this.restartRounds(st);
        else if (moved) this.recheckDirect(st); // issue 19: the peer moved, our direct path may be dead
        return;
      }
    }
  }

  /** Our endpoints changed (new network, new mapping): tell every peer, ask for theirs, check the direct path, re-punch. */
  localChanged(): void {
    for (const st of this.peers.values()) {
      if (!st.hasSession || !this.host.mayPunch(st.key)) continue;
      this.sync.schedule(st.key, true);
      if (st.current?.kind !== 'direct') this.restartRounds(st);
      else this.recheckDirect(st);
    }
  }

  /** Issue 19: the relay always, the direct path too when there is one (it may be the dead one). */
  private sendCandidates(st: PeerPathState, wantReply: boolean): void {
    const local = this.host.local();
    const msg = encodeCandidates({ eps: local.eps, nat: local.nat, reply: wantReply });
    for (const via of CandidateSync.paths(st.current)) if (this.host.sendVia(st.key, msg, via)) st.sentCandidates = true;
  }

  /** Someone's network changed under a direct path: check it now (dead in 1 s) and try the fresh candidates at once. */
  private recheckDirect(st: PeerPathState): void {
    const now = this.host.now();
    if (st.livenessSentAt === 0 && st.current?.kind === 'direct') {
      st.livenessSentAt = now;
      this.probe(st, st.current);
    }
    this.restartRounds(st);
    this.tickPunch(st, now);
  }

  private restartRounds(st: PeerPathState): void {
    st.round = 0;
    st.nextRoundAt = this.host.now();
  }

  /** Returns the probe's nonce (hex). */
  private probe(st: PeerPathState, path: Path): string {
    const nonce = crypto.randomBytes(NONCE_BYTES);
    const now = this.host.now();
    // keep the nonce table small: only the latest probes can still be answered usefully
    if (st.probes.size > 64) st.probes.clear();
    st.probes.set(nonce.toString('hex'), { path, at: now });
    st.lastProbeSentAt = now;
    if (this.host.sendVia(st.key, encodeProbe(Inner.Probe, nonce), path)) this.counters.probesSent++;
    return nonce.toString('hex');
  }

  /** Drive timers: call every ~100 ms. */
  tick(): void {
    const now = this.host.now();
    for (const st of this.peers.values()) {
      if (!st.hasSession) continue;
      if (st.pinnedUntil > 0 && this.pinned(st, now)) continue; // issue 19: on the relay on purpose
      const trusted = this.host.mayPunch(st.key);
      if (trusted && !st.punching) {
        // Trusted since the session started: swap candidates and punch now.
        st.punching = true;
        this.sendCandidates(st, true);
        this.restartRounds(st);
      }
      const due = trusted ? this.sync.take(st.key) : undefined;
      if (due) this.sendCandidates(st, due.reply);
      if (st.current?.kind === 'direct') this.tickDirect(st, now, trusted);
      else if (trusted) this.tickPunch(st, now);
    }
  }

  /** `trusted` false: only notice a dead path we are sending into; no keepalives (an idle untrusted peer is let go). */
  private tickDirect(st: PeerPathState, now: number, trusted: boolean): void {
    const path = st.current!;
    if (st.checkNonce !== undefined && now - st.lastKeepaliveAt > Math.max(LIVENESS_RETRY_MS, 2 * (st.rttMs ?? 0))) {
      st.checkNonce = undefined;
      this.tuner.lapsed(st.key, st.checkIdleMs);
    }
    if (st.livenessSentAt > 0) {
      if (now - st.livenessSentAt > DEAD_AFTER_MS && st.lastDirectRecv < st.livenessSentAt) {
        // Dead: back to the relay (always there, still encrypted) and punch again.
        // Idle before: a NAT on the path forgot the mapping sooner than our keepalive came (issue 19; learned below).
        const lapsed = st.idleCheck ? this.tuner.interval(st.key) : undefined;
        st.current = { kind: 'relay' };
        st.livenessSentAt = 0;
        this.counters.fallbacks++;
        this.emit(
          'change',
          st.key,
          st.current,
          lapsed === undefined ? 'direct path stopped answering' : `direct path stopped answering (idle; keepalive now every ${lapsed} ms)`,
        );
        this.restartRounds(st);
        // Issue 19: our candidates again, by the relay, and theirs back; our own network may have moved.
        this.sync.schedule(st.key, true);
        this.host.pathLost?.(st.key);
      } else if (st.lastDirectRecv < st.livenessSentAt && now - st.lastProbeSentAt >= LIVENESS_RETRY_MS) this.probe(st, path);
      return;
    }
    const quiet = now - st.lastDirectRecv;
    const sendingIntoVoid = st.lastSent > st.lastDirectRecv + 500 && quiet > SUSPECT_AFTER_MS;
    const every = this.tuner.interval(st.key);
    if (sendingIntoVoid || (trusted && quiet > 2.5 * every)) {
      st.livenessSentAt = now;
      st.idleCheck = false;
      this.probe(st, path);
      return;
    }
    if (trusted && now - Math.max(st.lastSent, st.lastProbeSentAt) > every * st.keepaliveJitter) {
      // Each keepalive is a consent check (RFC 7675): never call a path direct that stopped answering.
      this.counters.keepalives++;
      st.livenessSentAt = now;
      st.idleCheck = quiet >= every / 2; // nothing came either: a failure is a lapsed mapping
      st.keepaliveJitter = 0.75 + Math.random() / 4;
      st.lastKeepaliveAt = now;
      const nonce = this.probe(st, path);
      if (st.idleCheck) {
        st.checkNonce = nonce;
        st.checkIdleMs = quiet;
      }
    }
  }

  private tickPunch(st: PeerPathState, now: number): void {
    const cands = this.candidates(st);
    if (now >= st.nextRoundAt && cands.length > 0) {
      this.counters.rounds++;
      for (const c of cands) if (this.spend(st.key, now)) this.probe(st, { kind: 'direct', host: c.host, port: c.port });
      st.round++;
      st.nextRoundAt = now + ROUND_GAPS[Math.min(st.round, ROUND_GAPS.length - 1)]!;
      this.maybeStartBirthday(st, cands, now);
    }
    if (st.birthdayLeft > 0) this.birthdayRandomPorts(st, now);
  }

  /**
   * Birthday probing for endpoint-dependent x endpoint-independent mapping:
   * - we are symmetric: open many ports, each probes the peer's public endpoint
   *   (each gets its own mapping; the peer's random probes hit one of them);
   * - the peer is symmetric: probe random ports of its public address from our one socket.
   * Never for symmetric x symmetric (hopeless), bounded per attempt and by the
   * probe budget, only with trusted peers (tickPunch runs for no other), and only
   * toward the endpoint the rendezvous observed for the peer: its NAT's public
   * address, not whatever the peer's CANDIDATES claim.
   */
  private maybeStartBirthday(st: PeerPathState, _cands: HostPort[], now: number): void {
    if (now - st.birthdayAt < BIRTHDAY_EVERY_MS) return;
    const local = this.host.local().nat;
    const remote = st.remoteNat;
    const observed = st.registryEps[0];
    const publicCands = observed !== undefined && isPublicIPv4(observed.host) ? [observed] : [];
    if (publicCands.length === 0) return;
    if (local === 'edm' && (remote === 'eim' || remote === 'none')) {
      st.birthdayAt = now;
      this.counters.birthdayAttempts++;
      const socks = this.host.openSprayPorts(BIRTHDAY_PORTS);
      for (const sock of socks) {
        for (const c of publicCands) {
          if (!this.spend(st.key, now)) continue;
          this.probe(st, { kind: 'direct', host: c.host, port: c.port, sock });
          this.counters.birthdayProbes++;
        }
      }
    } else if (remote === 'edm' && (local === 'eim' || local === 'none')) {
      st.birthdayAt = now;
      this.counters.birthdayAttempts++;
      st.birthdayLeft = BIRTHDAY_RANDOM_PROBES;
      st.birthdayHosts = [publicCands[0]!.host];
    }
  }

  private birthdayRandomPorts(st: PeerPathState, now: number): void {
    const n = Math.min(BIRTHDAY_PROBES_PER_TICK, st.birthdayLeft);
    st.birthdayLeft -= n;
    for (let i = 0; i < n; i++) {
      if (!this.spend(st.key, now)) {
        st.birthdayLeft = 0; // out of budget: this attempt is over
        return;
      }
      const host = st.birthdayHosts[i % st.birthdayHosts.length]!;
      const port = 1024 + crypto.randomInt(65536 - 1024);
      this.probe(st, { kind: 'direct', host, port });
      this.counters.birthdayProbes++;
    }
  }

  /**
   * Issue 19: keep the peer on the relay until `until` (its direct UDP path is policed and the
   * relay carries more); punching starts again after it (the re-probe), or at once with until = 0.
   */
  pinRelay(key: number, until: number, reason: string): void {
    const st = this.peers.get(key);
    if (st === undefined) return;
    st.pinnedUntil = until;
    if (until > this.host.now() && st.current?.kind === 'direct') {
      st.current = { kind: 'relay' };
      st.livenessSentAt = 0;
      this.emit('change', key, st.current, reason);
    }
  }

  /** Pinned to the relay now? Once the pin ran out, punching starts again (the re-probe). */
  private pinned(st: PeerPathState, now: number): boolean {
    if (now < st.pinnedUntil) return true;
    st.pinnedUntil = 0;
    this.restartRounds(st);
    return false;
  }

  /** How many peers (with a session) are reached directly / through the relay now. */
  pathCounts(): { direct: number; relay: number } {
    let direct = 0;
    let relay = 0;
    for (const st of this.peers.values()) {
      if (!st.hasSession || st.current === undefined) continue;
      if (st.current.kind === 'direct') direct++;
      else relay++;
    }
    return { direct, relay };
  }

  /** Paths that some peer uses now (spray sockets on them must stay open). */
  socketsInUse(): Set<number> {
    const out = new Set<number>();
    for (const st of this.peers.values()) {
      if (st.current?.kind === 'direct' && st.current.sock !== undefined) out.add(st.current.sock);
    }
    return out;
  }

  /** Birthday probing still running for some peer (keep spray sockets a while). */
  birthdayActive(now: number): boolean {
    for (const st of this.peers.values()) {
      if (st.current?.kind !== 'direct' && now - st.birthdayAt < 10_000) return true;
    }
    return false;
  }

  pathKey(p: Path): string {
    return pathKeyOf(p);
  }
}
