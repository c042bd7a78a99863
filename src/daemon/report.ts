// What a daemon tells the rendezvous about itself in each heartbeat, for the
// operators' metrics and dashboard: its NAT class, how its peers are reached
// (direct / relay counts, no endpoints) and hole-punch counters.
import type { NatType } from '../nat/nat-type.ts';
import type { PathManager } from '../nat/path-manager.ts';
import type { NodeReport } from '../registry/protocol.ts';

/** Punches tried = probe rounds + birthday attempts; succeeded = upgrades from relay to a direct path. */
export function daemonReport(nat: NatType, paths: PathManager | undefined): NodeReport {
  const c = paths?.counters;
  return c && paths ? { nat, paths: paths.pathCounts(), punches: { tried: c.rounds + c.birthdayAttempts, succeeded: c.upgrades } } : { nat };
}
