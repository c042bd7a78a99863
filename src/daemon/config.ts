// The daemon's saved configuration: $PILOT_HOME/config.json. The first start
// needs --registry/--email; later starts read everything from here.
import fs from 'node:fs';
import * as v from 'valibot';
import { PilotError } from '../util/errors.ts';
import { int, issuesText, withMessages, type Issue } from '../util/schema.ts';
import { LEGACY_SOCKET, MAX_SOCKET_PATH } from '../ipc/socket-path.ts';
import { writeJsonAtomic } from '../util/atomic-file.ts';
import { configPath } from './config-file.ts';

// The schema-free half (paths, socket) lives in config-file.ts so pilotctl can use it without the schema library.
export { configPath, configSocket, pilotHome } from './config-file.ts';

/**
 * An email address, by the pattern the config has always taken (it admits
 * o'brien@example.com, which valibot's own email() would refuse).
 */
const EMAIL = /^(?:[A-Za-z0-9_'+-]+\.)*[A-Za-z0-9_'+-]*[A-Za-z0-9_+-]@(?:[A-Za-z0-9][A-Za-z0-9-]*\.)+[A-Za-z]{2,}$/;

/** Text of 1..max characters. */
const text = (max: number) => v.pipe(v.string(), v.minLength(1), v.maxLength(max));

/**
 * An optional whole number in min..max, also given as decimal text: `pilotctl
 * config --set` passes every value as text. Number() reads it, so ' 500 ' is 500
 * and 'abc' is refused as NaN.
 */
const count = (min: number, max: number) => v.optional(v.pipe(v.union([v.number(), v.string()]), v.transform(Number), int(min, max)));

export const DaemonConfigSchema = withMessages(
  v.object({
    registry: text(300),
    beacon: v.optional(text(300)),
    email: v.pipe(v.string(), v.regex(EMAIL, 'Invalid email address'), v.maxLength(254)),
    hostname: v.optional(v.pipe(v.string(), v.maxLength(63))),
    public: v.optional(v.boolean(), false),
    /** The IPC socket; absent = the private default (configSocket). */
    socket: v.optional(text(MAX_SOCKET_PATH)),
    /** UDP listen address of the daemon's single socket (port 0 = any). */
    listen: v.optional(v.string(), '0.0.0.0:0'),
    /**
     * How to reach the rendezvous: auto = UDP, falling back to TCP then WebSocket
     * (same port) when UDP gets no answer; or force one.
     */
    uplink: v.optional(v.picklist(['auto', 'udp', 'tcp', 'websocket', 'wss']), 'auto'),
    /** The rendezvous's WebSocket-over-TLS URL (its --tls-listen): tried last in auto mode, forced by uplink wss. */
    wss: v.optional(v.pipe(text(500), v.regex(/^wss:\/\/[^\s]+$/i, 'Invalid wss:// URL'))),
    /** A PEM file of extra CA certificates for the wss certificate (the system's are trusted too). */
    tlsCa: v.optional(text(4096)),
    /** HTTP proxy for wss (CONNECT): http://[user:pass@]host:port, or "none"; absent = $HTTPS_PROXY/$ALL_PROXY minus $NO_PROXY. */
    proxy: v.optional(v.pipe(text(2048), v.regex(/^(none|http:\/\/\S+)$/i, 'Invalid proxy URL'))),
    /** Congestion control of the peer connections: BBR (draft-ietf-ccwg-bbr), CUBIC (RFC 9438) or NewReno (RFC 9002); absent = bbr. */
    cc: v.optional(v.picklist(['bbr', 'cubic', 'newreno'])),
    /** Serve Prometheus /metrics on this HTTP address (HOST:PORT, or a bare port = 127.0.0.1); absent = off. */
    metrics: v.optional(text(300)),
    /** Invitation token for a rendezvous that admits new nodes by invitation only (sent with the first registration). */
    invite: v.optional(text(128)),
    /** Handshake (message 1) budgets, per second: all sources together, the rate that turns on cookies, one source. See docs/CONFIG.md. */
    handshakeRate: count(1, 100_000),
    handshakeLoadRate: count(1, 100_000),
    handshakeSourceRate: count(1, 100_000),
    /** Untrusted peers idle this long are forgotten (ms; issue 15 hole 7). */
    untrustedIdleMs: count(100, 86_400_000),
    /** Untrusted peers kept at once; a newcomer evicts the least recently active one. */
    maxUntrustedPeers: count(1, 1_000_000),
    /** Probe bytes toward addresses that have not answered yet, per peer per 30 s (hole 3). */
    probeBudgetPeer: count(0, 1 << 30),
    /** The same for the whole daemon. */
    probeBudgetTotal: count(0, 1 << 30),
    /**
     * Sessions rekey after this long (ms; WireGuard's REKEY_AFTER_TIME, default 120 s). Only lower:
     * a longer one would keep keys longer. Lab tests set it to run hours of idling in seconds.
     */
    rekeyAfterMs: count(5_000, 120_000),
    /** Registry server key pinned on first contact (base64). */
    serverKey: v.optional(v.string()),
    /**
     * Ephemeral node (issue 18; Tailscale's ephemeral nodes): a clean stop deregisters it and the
     * rendezvous removes it (address and hostname released); silent for 2 min, it is removed too.
     */
    ephemeral: v.optional(v.boolean()),
    /** Interfaces to advertise as direct-path candidates although they look like another overlay's tunnel (issue 19; src/daemon/local-interfaces.ts). */
    candidateInterfaces: v.optional(text(200)),
    /** Ask the gateway for a port mapping (PCP, NAT-PMP, UPnP-IGD; src/nat/portmap); absent = on, false = off (--no-portmap). */
    portmap: v.optional(v.boolean()),
  }),
);
export type DaemonConfig = v.InferOutput<typeof DaemonConfigSchema>;

/** What each field takes, for hints: the hint names the field that failed, not a fixed guess. */
const EXPECTS: Partial<Record<keyof DaemonConfig, string>> = {
  registry: 'HOST:PORT of the rendezvous, e.g. 127.0.0.1:9000',
  beacon: 'HOST:PORT of the beacon',
  email: 'an email address, e.g. you@example.com',
  hostname: 'a name of up to 63 letters, digits and hyphens',
  public: 'true or false',
  socket: `a socket path of at most ${MAX_SOCKET_PATH} bytes`,
  uplink: 'auto, udp, tcp, websocket or wss',
  wss: 'wss://HOST[:PORT][/PATH] of the rendezvous --tls-listen',
  tlsCa: 'a PEM file of CA certificates',
  proxy: 'http://[USER:PASSWORD@]HOST:PORT, or none',
  listen: 'the UDP HOST:PORT to bind, e.g. 0.0.0.0:4000 (port 0 = any), or none for no UDP socket',
  cc: 'bbr, cubic or newreno',
  ephemeral: 'true or false',
  candidateInterfaces: 'interface names, comma-separated, e.g. nebula1,wg0',
  portmap: 'true or false',
  metrics: 'HOST:PORT, or a bare port for 127.0.0.1',
  invite: 'the invitation token from the rendezvous operator (1-128 characters)',
  rekeyAfterMs: 'a whole number of ms from 5000 to 120000',
};

/** A failed check of DaemonConfigSchema as one error; `name` turns a field into how the user set it (--uplink, or uplink). */
export function configError(issues: readonly Issue[], name: (field: string) => string = (f) => f): PilotError {
  const field = (i: Issue): string | undefined => (i.path ? String(i.path[0].key) : undefined);
  const fields = [...new Set(issues.map((i) => field(i) ?? 'config'))];
  return new PilotError(
    'BAD_ARGUMENT',
    issues.map((i) => `${field(i) === undefined ? 'config' : name(field(i)!)}: ${i.message}`).join('; '),
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
  const parsed = v.safeParse(DaemonConfigSchema, raw);
  if (!parsed.success) throw new PilotError('BAD_ARGUMENT', `invalid config ${p}: ${issuesText(parsed.issues)}`, 'fix or delete the file');
  return parsed.output;
}

export function saveConfig(home: string, cfg: DaemonConfig): void {
  fs.mkdirSync(home, { recursive: true, mode: 0o700 });
  const p = configPath(home);
  writeJsonAtomic(p, cfg);
}
