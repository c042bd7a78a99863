// The node options `pilotctl daemon start` and `pilotctl init` share: one list,
// so the two commands cannot drift apart in names or help text.
import type { Command } from 'commander';

export interface NodeFlags {
  registry?: string;
  beacon?: string;
  email?: string;
  hostname?: string;
  public?: boolean;
  listen?: string;
  uplink?: string;
  cc?: string;
  metrics?: string;
  invite?: string;
  ephemeral?: boolean;
}

/** Adds --registry … --uplink, --cc to `cmd`; `registryDefault` only for init (start keeps the saved one). */
export function addNodeOptions(cmd: Command, registryDefault?: string): Command {
  return cmd
    .option('--registry <host:port>', 'rendezvous server (registry + beacon + relay)', registryDefault)
    .option('--beacon <host:port>', 'beacon address (default: the registry address)')
    .option('--email <email>', 'email bound to this identity')
    .option('--hostname <name>', 'human-readable name for discovery')
    .option('--public', 'make this node findable and pingable by anyone')
    .option('--listen <host:port>', 'UDP address of the daemon socket (default 0.0.0.0:0)')
    .option('--uplink <mode>', 'how to reach the rendezvous: auto (UDP, else TCP, else WebSocket), udp, tcp or websocket')
    .option('--cc <algorithm>', 'congestion control of peer connections: bbr (default), cubic or newreno')
    .option('--invite <token>', 'invitation token, for a rendezvous that admits new nodes by invitation only')
    .option(
      '--ephemeral',
      'ephemeral node (also $PILOT_EPHEMERAL=1): a clean stop removes it from the rendezvous, address and hostname released; so does 2 min of silence',
    )
    .option('--metrics <host:port>', 'serve Prometheus /metrics on this HTTP address (a bare port listens on 127.0.0.1; off by default)');
}
