// Shapes of what a PilotNode returns and emits: the daemon's IPC answers, as
// the IPC contract (src/ipc/api-types.ts) defines them, so the SDK, the daemon
// and pilotctl cannot drift apart.
import type { NodeEvents } from '../ipc/api-types.ts';

export type {
  NodeInfo,
  PathInfo,
  PeerInfo,
  FoundNode,
  PingResult,
  TrustAnswer,
  TrustedPeer,
  PendingTrust,
  ConnectionInfo,
  TraceLeg,
  TraceResult,
  BroadcastMember,
  BroadcastResult,
} from '../ipc/api-types.ts';

/** Events a PilotNode emits (after watch(), or as soon as a listener is added). */
export type PilotNodeEvents = { [K in keyof NodeEvents]: [e: NodeEvents[K]] } & {
  /** The event subscription ended because the daemon went away. */
  'events-lost': [error: Error];
};
