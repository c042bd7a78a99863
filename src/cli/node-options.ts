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
  wss?: string;
  tlsCa?: string;
  proxy?: string;
  cc?: string;
  metrics?: string;
  invite?: string;
  ephemeral?: boolean;
  candidateInterfaces?: string;
  /** false: --no-portmap (commander sets true when the flag is absent). */
  portmap?: boolean;
}

/** Adds --registry … --uplink, --cc to `cmd`; `registryDefault` only for init (start keeps the saved one). */
export function addNodeOptions(cmd: Command, registryDefault?: string): Command {
  return cmd
    .option('--registry <host:port>', 'rendezvous server (registry + beacon + relay)', registryDefault)
    .option('--beacon <host:port>', 'beacon address (default: the registry address)')
    .option('--email <email>', 'email bound to this identity')
    .option('--hostname <name>', 'human-readable name for discovery')
    .option('--public', 'make this node findable and pingable by anyone')
    .option('--listen <host:port>', 'UDP address of the daemon socket (default 0.0.0.0:0; "none" = no UDP socket, everything over the uplink and the relay)')
    .option('--uplink <mode>', 'how to reach the rendezvous: auto (UDP, else TCP, else WebSocket, else wss), udp, tcp, websocket or wss')
    .option('--wss <url>', 'the rendezvous WebSocket-over-TLS URL (its --tls-listen), e.g. wss://rv.example.com/pilot: the last resort of --uplink auto')
    .option('--tls-ca <file>', 'PEM file of CA certificates to trust for the --wss certificate, on top of the system CAs')
    .option('--proxy <url>', 'HTTP proxy for --wss (CONNECT): http://[USER:PASSWORD@]HOST:PORT, or none (default: $HTTPS_PROXY/$ALL_PROXY minus $NO_PROXY)')
    .option('--cc <algorithm>', 'congestion control of peer connections: bbr (default), cubic or newreno')
    .option('--invite <token>', 'invitation token, for a rendezvous that admits new nodes by invitation only')
    .option(
      '--ephemeral',
      'ephemeral node (also $PILOT_EPHEMERAL=1): a clean stop removes it from the rendezvous, address and hostname released; so does 2 min of silence',
    )
    .option(
      '--candidate-interfaces <names>',
      'advertise these interfaces as direct-path candidates although they look like tunnels (comma-separated; tun/wg/nebula/point-to-point ones are left out by default)',
    )
    .option('--no-portmap', 'do not ask the router for a port mapping (PCP, NAT-PMP, UPnP-IGD); saved, undo with: pilotctl config --set portmap=true')
    .option('--metrics <host:port>', 'serve Prometheus /metrics on this HTTP address (a bare port listens on 127.0.0.1; off by default)');
}
