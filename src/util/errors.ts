// Every error that crosses a boundary (CLI --json, SDK, IPC) carries a stable
// machine-readable code plus a human hint saying what to do about it.

export type ErrorCode =
  | 'BAD_ADDRESS'
  | 'BAD_ARGUMENT'
  | 'BAD_REQUEST'
  | 'BAD_SIGNATURE'
  | 'REPLAYED'
  | 'STALE_REQUEST'
  | 'NOT_FOUND'
  | 'HOSTNAME_TAKEN'
  | 'UNREACHABLE'
  | 'TIMEOUT'
  | 'NO_DAEMON'
  | 'DAEMON_RUNNING'
  /** A --listen, --metrics or --http address another process already holds. */
  | 'ADDRESS_IN_USE'
  | 'UNSAFE_SOCKET'
  | 'NOT_REGISTERED'
  | 'CONNECTION_RESET'
  | 'CONNECTION_REFUSED'
  | 'NOT_TRUSTED'
  | 'FRAME_TOO_LARGE'
  | 'RATE_LIMITED'
  | 'PERMISSION_DENIED'
  /** An optional package this feature needs is not installed (the hint has the npm command). */
  | 'MISSING_DEPENDENCY'
  /** A peer used up its share of this node (disk bytes, subscriptions, queued tasks or messages). */
  | 'QUOTA_EXCEEDED'
  /** The node's disk is at its free-space floor. */
  | 'NO_SPACE'
  /** The user stopped the command (Ctrl-C); pilotctl exits 130. */
  | 'INTERRUPTED'
  /** The key was replaced by pilotctl rotate-key: it no longer speaks for its address. */
  | 'KEY_ROTATED'
  /** An HTTP proxy wants credentials (407), or refused the ones given. */
  | 'PROXY_AUTH'
  /** An HTTP proxy refused to open the tunnel (403, 502, ...). */
  | 'PROXY_REFUSED'
  /** The rendezvous's TLS certificate did not verify (unknown CA, wrong name, expired). */
  | 'TLS_UNTRUSTED'
  | 'INTERNAL';

/**
 * Every code, as a value (the Python package's contract table is generated from it,
 * scripts/python-contract.ts). `satisfies` makes a code missing here, or one too many, a type error.
 */
export const ERROR_CODES = Object.keys({
  BAD_ADDRESS: true,
  BAD_ARGUMENT: true,
  BAD_REQUEST: true,
  BAD_SIGNATURE: true,
  REPLAYED: true,
  STALE_REQUEST: true,
  NOT_FOUND: true,
  HOSTNAME_TAKEN: true,
  UNREACHABLE: true,
  TIMEOUT: true,
  NO_DAEMON: true,
  DAEMON_RUNNING: true,
  ADDRESS_IN_USE: true,
  UNSAFE_SOCKET: true,
  NOT_REGISTERED: true,
  CONNECTION_RESET: true,
  CONNECTION_REFUSED: true,
  NOT_TRUSTED: true,
  FRAME_TOO_LARGE: true,
  RATE_LIMITED: true,
  PERMISSION_DENIED: true,
  MISSING_DEPENDENCY: true,
  QUOTA_EXCEEDED: true,
  NO_SPACE: true,
  INTERRUPTED: true,
  KEY_ROTATED: true,
  PROXY_AUTH: true,
  PROXY_REFUSED: true,
  TLS_UNTRUSTED: true,
  INTERNAL: true,
} satisfies Record<ErrorCode, true>) as ErrorCode[];

export class PilotError extends Error {
  readonly code: ErrorCode;
  readonly hint: string | undefined;
  constructor(code: ErrorCode, message: string, hint?: string) {
    super(message);
    this.name = 'PilotError';
    this.code = code;
    this.hint = hint;
  }
  toJSON(): { code: ErrorCode; message: string; hint?: string } {
    return this.hint === undefined ? { code: this.code, message: this.message } : { code: this.code, message: this.message, hint: this.hint };
  }
}

/** Normalise anything thrown into a PilotError (unknown errors become INTERNAL). */
export function asPilotError(err: unknown): PilotError {
  if (err instanceof PilotError) return err;
  const e = err as { code?: unknown; message?: unknown } | undefined;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (e?.code === 'ECONNREFUSED' || e?.code === 'ENOENT') {
    return new PilotError('NO_DAEMON', message, 'is the daemon running? start it with: pilotctl daemon start');
  }
  return new PilotError('INTERNAL', message);
}
