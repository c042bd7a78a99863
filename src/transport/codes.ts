// Application error codes carried by RESET_STREAM / STOP_SENDING, and the
// PilotError each side turns them into. The code is derived from the local
// error's .code so the peer sees the same PilotError code (CONNECTION_REFUSED,
// TIMEOUT, ...); errors without a known code travel as a plain reset.
import { PilotError, type ErrorCode } from '../util/errors.ts';

export const AppCode = {
  /** Orderly: the reader went away without an error. */
  NoError: 0,
  /** Stream aborted (destroy() / an error without a known code on the other side): CONNECTION_RESET. */
  Reset: 1,
  /** Nobody listens on the destination port (or too many streams). */
  Refused: 2,
  /** The other side's idle timer fired. */
  Timeout: 3,
  /** The connection is closing / being reset, or the stream is unknown (the other side lost its state). */
  ConnectionGone: 4,
  /** Closed on purpose by the other side's operator (pilotctl disconnect). */
  Disconnected: 5,
} as const;

/**
 * What a stream closed by `pilotctl disconnect` fails with on this side; it travels to the peer
 * as AppCode.Disconnected, so both ends read the same cause instead of a bare reset.
 */
export class StreamDisconnected extends PilotError {
  constructor(id: number) {
    super(
      'CONNECTION_RESET',
      `stream ${id} closed by pilotctl disconnect on this node`,
      'the operator of this node ended the stream on purpose; open a new one if it is still wanted',
    );
  }
}

/** Connection-level codes in CONNECTION_CLOSE. */
export const CloseCode = {
  NoError: 0,
  ProtocolViolation: 1,
  /** Not a close: "my state for you is gone, drop yours" (Connection.restart); the receiver resets in place. */
  Restart: 2,
} as const;

/** Further PilotError codes that travel as themselves, as 16 + index (append only: the numbers are wire format). */
const OTHER_CODES: readonly ErrorCode[] = [
  'BAD_ADDRESS',
  'BAD_ARGUMENT',
  'BAD_REQUEST',
  'BAD_SIGNATURE',
  'REPLAYED',
  'STALE_REQUEST',
  'NOT_FOUND',
  'HOSTNAME_TAKEN',
  'UNREACHABLE',
  'NO_DAEMON',
  'DAEMON_RUNNING',
  'NOT_REGISTERED',
  'NOT_TRUSTED',
  'FRAME_TOO_LARGE',
  'RATE_LIMITED',
  'INTERNAL',
  'PERMISSION_DENIED',
];
const OTHER_BASE = 16;

export function codeForError(err: Error | null | undefined): number {
  if (!err) return AppCode.Reset;
  if (err instanceof StreamDisconnected) return AppCode.Disconnected;
  const code = (err as { code?: unknown }).code;
  if (code === 'CONNECTION_REFUSED') return AppCode.Refused;
  if (code === 'TIMEOUT') return AppCode.Timeout;
  if (typeof code === 'string') {
    const i = OTHER_CODES.indexOf(code as ErrorCode);
    if (i >= 0) return OTHER_BASE + i;
  }
  return AppCode.Reset;
}

/** What the local stream errors with when the peer reset it (RESET_STREAM) or stopped reading (STOP_SENDING). */
export function errorForCode(code: number, stopSending: boolean): PilotError {
  switch (code) {
    case AppCode.Refused:
      return new PilotError(
        'CONNECTION_REFUSED',
        'connection refused: nothing listens on that port',
        'is the service running on the target, and is it listening on that port?',
      );
    case AppCode.Timeout:
      return new PilotError('TIMEOUT', 'stream reset by peer: its idle timer fired', 'the stream saw no traffic for too long; retry');
    case AppCode.Disconnected:
      return new PilotError(
        'CONNECTION_RESET',
        'stream closed by the peer: its operator ran pilotctl disconnect',
        'the other side ended this stream on purpose; open a new one if it is still wanted',
      );
    case AppCode.ConnectionGone:
      return new PilotError('CONNECTION_RESET', 'stream reset: the peer closed the connection or lost its state');
    default: {
      const other = code >= OTHER_BASE ? OTHER_CODES[code - OTHER_BASE] : undefined;
      if (other !== undefined) return new PilotError(other, `stream reset by peer (${other})`);
      return new PilotError('CONNECTION_RESET', stopSending ? `peer stopped reading the stream (code ${code})` : `stream reset by peer (code ${code})`);
    }
  }
}
