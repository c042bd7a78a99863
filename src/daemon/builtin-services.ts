// Plugs the built-in services (src/services) into a daemon: adapts the daemon
// to the ServiceHost interface and turns daemon events ('peer-session',
// 'peer-lost', 'peer-path', 'push') into webhook events.
import type { Daemon, Peer } from './daemon.ts';
import { formatAddress, type Address } from '../wire/address.ts';
import type { ServiceHost } from '../services/host.ts';
import { loadServiceConfig } from '../services/service-config.ts';
import { startServices, type Services } from '../services/index.ts';

export type BuiltinServices = Services;

/** Daemon events (see daemon.ts) that webhooks report. */
const PUSH_EVENTS = new Set(['trust_request', 'trust_approved', 'trust_rejected', 'trust_revoked']);

export function startBuiltinServices(d: Daemon): BuiltinServices {
  const config = loadServiceConfig(d.home);
  let services: Services | undefined;
  const log = d.log.child({ svc: 'services' });
  const host: ServiceHost = {
    home: d.home,
    log,
    listen: (port, handler) => d.ports.listen(port, (stream, from) => handler(stream, formatAddress(from))),
    onDatagram: (port, handler) => d.ports.onDatagram(port, (dg) => handler(dg.data, formatAddress(dg.from))),
    dial: async (target, port) => {
      const peer = await d.peerFor(target);
      const stream = await d.dial(peer.address, port);
      return { stream, peer: formatAddress(peer.address) };
    },
    self: () => (d.address ? formatAddress(d.address) : ''),
    event: (event, data) => services?.webhook?.emit(event, data),
  };
  services = startServices(host, config);

  // Daemon-level events for webhooks. 'peer-session' fires on every new session
  // (rekeys too): a peer counts as connected again only after 'peer-lost'.
  const connected = new Set<string>();
  const onSession = (address: Address): void => {
    const peer = formatAddress(address);
    if (connected.has(peer)) return;
    connected.add(peer);
    host.event('peer_connected', { peer });
  };
  const onLost = (address: Address): void => {
    connected.delete(formatAddress(address));
  };
  const onPath = (peer: Peer, reason: string): void => {
    const info = d.pathInfo(peer);
    const data = { peer: formatAddress(peer.address), path: info.path, reason };
    if (info.pathType === 'relay') host.event('relay_activated', data);
    else if (info.pathType === 'direct') host.event('path_upgraded', data);
  };
  const onPush = (push: { event: string; data: Record<string, unknown> }): void => {
    if (PUSH_EVENTS.has(push.event)) host.event(push.event, push.data ?? {});
  };
  d.on('peer-session', onSession);
  d.on('peer-lost', onLost);
  d.on('peer-path', onPath);
  d.on('push', onPush);
  const inner = services;
  return {
    ...inner,
    stop: () => {
      d.off('peer-session', onSession);
      d.off('peer-lost', onLost);
      d.off('peer-path', onPath);
      d.off('push', onPush);
      inner.stop();
    },
  };
}
