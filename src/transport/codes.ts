// Application error codes carried by RESET_STREAM / STOP_SENDING, and the
// PilotError each side turns them into. Only REFUSED and TIMEOUT are told apart
// at the receiving end; everything else reads as CONNECTION_RESET there.
import { PilotError } from '../util/errors.ts';

export const AppCode = {
  /** Orderly: the reader went away without an error. */
  NoError: 0,
  /** Stream aborted (destroy() / an error on the other side). */
  Reset: 1,
  /** Nobody listens on the destination port (or too many streams). */
  Refused: 2,
  /** The other side's idle timer fired. */
  Timeout: 3,
  /** The connection is closing / being reset. */
  ConnectionGone: 4,
} as const;

/** Connection-level codes in CONNECTION_CLOSE. */
export const CloseCode = {
  NoError: 0,
  ProtocolViolation: 1,
} as const;

export function codeForError(err: Error | null | undefined): number {
  if (!err) return AppCode.Reset;
  const code = (err as { code?: unknown }).code;
  if (code === 'CONNECTION_REFUSED') return AppCode.Refused;
  if (code === 'TIMEOUT') return AppCode.Timeout;
  return AppCode.Reset;
}

/** What the local stream errors with when the peer reset it (RESET_STREAM) or stopped reading (STOP_SENDING). */
export function errorForCode(code: number, stopSending: boolean): PilotError {
  switch (code) {
    case AppCode.Refused:
      return new PilotError('CONNECTION_REFUSED', 'connection refused: nothing listens on that port', 'is the service running on the target, and is it listening on that port?');
    case AppCode.Timeout:
      return new PilotError('CONNECTION_RESET', 'stream reset by peer: its idle timer fired');
    case AppCode.ConnectionGone:
      return new PilotError('CONNECTION_RESET', 'stream reset: the peer closed the connection');
    default:
      return new PilotError('CONNECTION_RESET', stopSending ? `peer stopped reading the stream (code ${code})` : `stream reset by peer (code ${code})`);
  }
}
