// Echo probes over a peer's encrypted session (its echo service, port 7): what
// `ping` and `traceroute`'s tunnel leg measure. One ephemeral port per run, a
// random tag per probe so a late or forged answer cannot count as another's.
import crypto from 'node:crypto';
import type { Daemon, Peer } from './daemon.ts';
import { ECHO_PORT } from './services/echo.ts';

export interface EchoProbeOptions {
  count: number;
  intervalMs: number;
  timeoutMs: number;
  /** Stop early (the IPC client left). */
  stopped?: () => boolean;
  onProbe?: (seq: number, rttMs: number | null) => void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** What echoProbe uses of the daemon. */
export type EchoProbeHost = { ports: Pick<Daemon['ports'], 'ephemeral' | 'onDatagram'> } & Pick<Daemon, 'sendDatagram'>;

/**
 * The RTT (ms) of each answered probe, in order sent. The clock stops when the answer is
 * delivered to us, not when the awaiting code resumes: the rest of that packet's receive path
 * and the promise hop are not the round trip (ICMP ping takes the kernel's receive time).
 */
export async function echoProbe(d: EchoProbeHost, peer: Pick<Peer, 'address'>, o: EchoProbeOptions): Promise<number[]> {
  const srcPort = d.ports.ephemeral();
  const waiting = new Map<number, { tag: Buffer; done: (at: bigint) => void }>();
  const off = d.ports.onDatagram(srcPort, (dg) => {
    if (dg.data.length < 16) return;
    const w = waiting.get(dg.data.readUInt32BE(0));
    if (w?.tag.equals(dg.data.subarray(4, 16))) w.done(process.hrtime.bigint());
  });
  const rtts: number[] = [];
  try {
    for (let seq = 1; seq <= o.count && !o.stopped?.(); seq++) {
      const payload = Buffer.alloc(16);
      payload.writeUInt32BE(seq, 0);
      crypto.randomFillSync(payload, 4);
      // The waiter is in place before the clock starts and the timeout is armed after the send (its
      // timer's setup runs while the probe is on the wire): the RTT spans the send and the answer only,
      // as ping(8) stamps a probe just before sendto().
      let at: bigint | null | undefined;
      let wake: (() => void) | undefined;
      waiting.set(seq, {
        tag: payload.subarray(4, 16),
        done: (t) => {
          at = t;
          wake?.();
        },
      });
      const t0 = process.hrtime.bigint();
      await d.sendDatagram(peer.address, srcPort, ECHO_PORT, payload);
      if (at === undefined)
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            at = null;
            resolve();
          }, o.timeoutMs);
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
      waiting.delete(seq);
      const rttMs = at === null || at === undefined ? null : Number(at - t0) / 1e6;
      if (rttMs !== null) rtts.push(rttMs);
      o.onProbe?.(seq, rttMs);
      if (seq < o.count && o.intervalMs > 0) await sleep(o.intervalMs);
    }
  } finally {
    off();
  }
  return rtts;
}

const r3 = (x: number | undefined): number | null => (x === undefined ? null : Math.round(x * 1000) / 1000);

/** min / avg / max of RTT samples (ms, 3 decimals), null when there are none. */
export function rttSummary(rtts: readonly number[]): { minMs: number | null; avgMs: number | null; maxMs: number | null } {
  const sorted = [...rtts].sort((a, b) => a - b);
  return {
    minMs: r3(sorted[0]),
    avgMs: r3(rtts.length ? rtts.reduce((a, b) => a + b, 0) / rtts.length : undefined),
    maxMs: r3(sorted[sorted.length - 1]),
  };
}
