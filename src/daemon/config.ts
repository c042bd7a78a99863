// The daemon's saved configuration: $PILOT_HOME/config.json. The first start
// needs --registry/--email; later starts read everything from here.
import fs from 'node:fs';
import { z } from 'zod';
import { PilotError } from '../util/errors.ts';
import { LEGACY_SOCKET, MAX_SOCKET_PATH } from '../ipc/socket-path.ts';
import { writeJsonAtomic } from '../util/atomic-file.ts';
import { configPath } from './config-file.ts';

// The schema-free half (paths, socket) lives in config-file.ts so pilotctl can use it without zod.
export { configPath, configSocket, pilotHome } from './config-file.ts';

export const DaemonConfigSchema = z.object({
  registry: z.string().min(1).max(300),
  beacon: z.string().min(1).max(300).optional(),
  email: z.string().email().max(254),
  hostname: z.string().max(63).optional(),
  public: z.boolean().default(false),
  /** The IPC socket; absent = the private default (configSocket). */
  socket: z.string().min(1).max(MAX_SOCKET_PATH).optional(),
  /** UDP listen address of the daemon's single socket (port 0 = any). */
  listen: z.string().default('0.0.0.0:0'),
  /**
   * How to reach the rendezvous: auto = UDP, falling back to TCP then WebSocket
   * (same port) when UDP gets no answer; or force one.
   */
  uplink: z.enum(['auto', 'udp', 'tcp', 'websocket']).default('auto'),
  /** Congestion control of the peer connections: CUBIC (RFC 9438) or NewReno (RFC 9002); absent = cubic. */
  cc: z.enum(['cubic', 'newreno']).optional(),
  /** Serve Prometheus /metrics on this HTTP address (HOST:PORT, or a bare port = 127.0.0.1); absent = off. */
  metrics: z.string().min(1).max(300).optional(),
  /** Invitation token for a rendezvous that admits new nodes by invitation only (sent with the first registration). */
  invite: z.string().min(1).max(128).optional(),
  /** Handshake (message 1) budgets, per second: all sources together, the rate that turns on cookies, one source. See docs/CONFIG.md. */
  handshakeRate: z.coerce.number().int().min(1).max(100_000).optional(),
  handshakeLoadRate: z.coerce.number().int().min(1).max(100_000).optional(),
  handshakeSourceRate: z.coerce.number().int().min(1).max(100_000).optional(),
  /** Untrusted peers idle this long are forgotten (ms; issue 15 hole 7). */
  untrustedIdleMs: z.coerce.number().int().min(100).max(86_400_000).optional(),
  /** Untrusted peers kept at once; a newcomer evicts the least recently active one. */
  maxUntrustedPeers: z.coerce.number().int().min(1).max(1_000_000).optional(),
  /** Probe bytes toward addresses that have not answered yet, per peer per 30 s (hole 3). */
  probeBudgetPeer: z.coerce
    .number()
    .int()
    .min(0)
    .max(1 << 30)
    .optional(),
  /** The same for the whole daemon. */
  probeBudgetTotal: z.coerce
    .number()
    .int()
    .min(0)
    .max(1 << 30)
    .optional(),
  /** Registry server key pinned on first contact (base64). */
  serverKey: z.string().optional(),
});
export type DaemonConfig = z.infer<typeof DaemonConfigSchema>;

/** What each field takes, for hints: the hint names the field that failed, not a fixed guess. */
const EXPECTS: Partial<Record<keyof DaemonConfig, string>> = {
  registry: 'HOST:PORT of the rendezvous, e.g. 127.0.0.1:9000',
  beacon: 'HOST:PORT of the beacon',
  email: 'an email address, e.g. you@example.com',
  hostname: 'a name of up to 63 letters, digits and hyphens',
  public: 'true or false',
  socket: `a socket path of at most ${MAX_SOCKET_PATH} bytes`,
  listen: 'the UDP HOST:PORT to bind, e.g. 0.0.0.0:4000 (port 0 = any)',
  uplink: 'auto, udp, tcp or websocket',
  cc: 'cubic or newreno',
  metrics: 'HOST:PORT, or a bare port for 127.0.0.1',
  invite: 'the invitation token from the rendezvous operator (1-128 characters)',
};

/** A zod failure of DaemonConfigSchema as one error; `name` turns a field into how the user set it (--uplink, or uplink). */
export function configError(issues: readonly z.core.$ZodIssue[], name: (field: string) => string = (f) => f): PilotError {
  const fields = [...new Set(issues.map((i) => String(i.path[0] ?? 'config')))];
  return new PilotError(
    'BAD_ARGUMENT',
    issues.map((i) => `${i.path.length ? name(String(i.path[0])) : 'config'}: ${i.message}`).join('; '),
    fields.map((f) => `${name(f)} takes ${EXPECTS[f as keyof DaemonConfig] ?? 'the value described in docs/CONFIG.md'}`).join('; '),
  );
}

export function loadConfig(home: string): DaemonConfig | undefined {
  const p = configPath(home);
  if (!fs.existsSync(p)) return undefined;
  let raw: unknown;
  try {
    raw = JSON.parse(fs.readFileSync(p, 'utf8'));
  } catch (err) {
    throw new PilotError('BAD_ARGUMENT', `cannot read ${p}: ${(err as Error).message}`, 'fix or delete the file, then start again with --registry and --email');
  }
  // Old versions saved their default /tmp/pilot.sock (world-writable /tmp: squattable) into
  // every config: such a config moves to the private default on its next start.
  if (typeof raw === 'object' && raw !== null && (raw as { socket?: unknown }).socket === LEGACY_SOCKET) delete (raw as { socket?: unknown }).socket;
  const parsed = DaemonConfigSchema.safeParse(raw);
  if (!parsed.success) {
    throw new PilotError(
      'BAD_ARGUMENT',
      `invalid config ${p}: ${parsed.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ')}`,
      'fix or delete the file',
    );
  }
  return parsed.data;
}

export function saveConfig(home: string, cfg: DaemonConfig): void {
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  const p = configPath(home);
  writeJsonAtomic(p, cfg);
}
