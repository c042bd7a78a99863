// An emulated long, lossy, bandwidth-limited path for tests and benches
// (issue 20): namespaces A and B joined through a router R. A <-veth-> R, and
// R <-> B over a userspace delay line (test/helpers/delay-line.py: two TUN
// devices, this kernel has no sch_netem) that holds each packet delayMs each
// way. R shapes both ways with tbf (rateMbit, a queue of bufferBytes, about one
// BDP by default) and drops lossPct% of what it forwards each way with
// iptables -m statistic. The veth carries no GSO super-packets (gso_max_segs
// 1), so a drop is one packet for kernel TCP as for UDP. Addresses: A
// 203.0.113.1, B 192.0.2.2 (documentation ranges, public to Pilot, not on one
// subnet: peers go direct through R with remote-path packet sizes).
import { type ChildProcess, spawn } from 'node:child_process';
import type { Lab } from './netns.ts';

export const LONGPATH_IP_A = '203.0.113.1';
export const LONGPATH_IP_B = '192.0.2.2';
const IP_RA = '203.0.113.254';
const IP_RB = '192.0.2.1';
const DELAY_LINE = new URL('./delay-line.py', import.meta.url).pathname;

export interface LongPathOptions {
  /** one-way delay in ms (RTT = 2x), default 50 */
  delayMs?: number;
  /** bottleneck rate each way, default 8 */
  rateMbit?: number;
  /** tbf queue in bytes, default one BDP (rate x RTT) */
  bufferBytes?: number;
}

const lines = new Set<ChildProcess>();
process.on('exit', () => {
  for (const p of lines) p.kill('SIGKILL');
});

export class LongPath {
  private readonly lab: Lab;
  private line: ChildProcess | undefined;
  readonly a: string;
  readonly r: string;
  readonly b: string;
  readonly rttMs: number;
  readonly rateMbit: number;

  private constructor(lab: Lab, a: string, r: string, b: string, line: ChildProcess, rttMs: number, rateMbit: number) {
    this.lab = lab;
    this.a = a;
    this.r = r;
    this.b = b;
    this.line = line;
    this.rttMs = rttMs;
    this.rateMbit = rateMbit;
  }

  static async create(lab: Lab, opts: LongPathOptions = {}): Promise<LongPath> {
    const delayMs = opts.delayMs ?? 50;
    const rateMbit = opts.rateMbit ?? 8;
    const buffer = opts.bufferBytes ?? Math.round((rateMbit * 1e6 * 2 * delayMs) / 8e3);
    const a = lab.ns('a');
    const r = lab.ns('r');
    const b = lab.ns('b');
    const line = spawn('python3', [DELAY_LINE, String(delayMs), r, 'tr', b, 'tb'], { stdio: ['pipe', 'pipe', 'pipe'] });
    lines.add(line);
    line.on('exit', () => lines.delete(line));
    const path = new LongPath(lab, a, r, b, line, 2 * delayMs, rateMbit);
    try {
      await new Promise<void>((resolve, reject) => {
        let err = '';
        line.stderr!.on('data', (c: Buffer) => (err += c.toString()));
        line.stdout!.once('data', () => resolve());
        line.once('exit', (code) => reject(new Error(`delay line exited (${code}): ${err.trim() || 'no output'} (needs python3 and /dev/net/tun)`)));
      });
      lab.sh(a, `ip link add va type veth peer name ra netns ${r}; ip addr add ${LONGPATH_IP_A}/24 dev va; ip link set va gso_max_segs 1; ip link set va up`);
      lab.sh(a, `ip route add 192.0.2.0/24 via ${IP_RA}`);
      lab.sh(r, `ip addr add ${IP_RA}/24 dev ra; ip link set ra gso_max_segs 1; ip link set ra up`);
      lab.sh(r, `ip addr add ${IP_RB} peer ${LONGPATH_IP_B} dev tr; ip link set tr up; sysctl -qw net.ipv4.ip_forward=1`);
      lab.sh(b, `ip addr add ${LONGPATH_IP_B} peer ${IP_RB} dev tb; ip link set tb up; ip route add 203.0.113.0/24 dev tb`);
      // The bottleneck: tbf on R's way out, each direction. A burst of a few packets: a link, not a bucket.
      for (const dev of ['tr', 'ra']) lab.sh(r, `tc qdisc replace dev ${dev} root tbf rate ${rateMbit}mbit burst 6000 limit ${buffer}`);
    } catch (e) {
      path.close();
      throw e;
    }
    return path;
  }

  /** Drop lossPct% of the packets R forwards, each way; UDP to or from sparePorts (say, a registry) passes untouched. */
  setLoss(lossPct: number, sparePorts: number[] = []): void {
    const rules = ['iptables -F FORWARD'];
    for (const p of sparePorts) rules.push(`iptables -A FORWARD -p udp --sport ${p} -j ACCEPT`, `iptables -A FORWARD -p udp --dport ${p} -j ACCEPT`);
    if (lossPct > 0) rules.push(`iptables -A FORWARD -m statistic --mode random --probability ${lossPct / 100} -j DROP`);
    this.lab.sh(this.r, rules.join('; '));
  }

  /** Packets dropped by the loss rule so far (a check that the path really lost what it was told). */
  dropped(): number {
    const out = this.lab.sh(this.r, 'iptables -L FORWARD -v -x -n');
    const m = /^\s*(\d+)\s+\d+\s+DROP/m.exec(out);
    return m ? Number(m[1]) : 0;
  }

  /** What the delay line carried and how late packets left it (over 1 ms late = jitter beyond epoll's granularity). */
  async lineStats(): Promise<{ packets: number; dropped: number; lateMaxMs: number; lateOver1ms: number }> {
    const line = this.line;
    if (!line || line.exitCode !== null) throw new Error('the delay line is not running');
    const reply = new Promise<string>((resolve) => line.stdout!.once('data', (c: Buffer) => resolve(c.toString())));
    line.stdin!.write('stats\n');
    return JSON.parse(await reply);
  }

  /** Stops the delay line (its TUN devices go with it); the Lab's cleanup deletes the namespaces. */
  close(): void {
    this.line?.stdin?.end();
    this.line?.kill('SIGKILL');
    this.line = undefined;
  }
}
