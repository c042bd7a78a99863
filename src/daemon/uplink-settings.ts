// The wss uplink settings (--wss, --proxy) checked when they are given, not
// when auto mode first falls through to wss: pilotctl init, config --set and
// daemon start call this (light: no node:http, no schema library).
import { parseProxyUrl, redactProxyUrl } from '../uplink/proxy-config.ts';
import { parseWssUrl } from '../uplink/wss-url.ts';

export function checkUplinkSettings(s: { wss?: string | undefined; proxy?: string | undefined }, flags = true): void {
  if (s.wss !== undefined) parseWssUrl(s.wss, flags ? '--wss' : 'wss');
  if (s.proxy !== undefined && s.proxy !== 'none') parseProxyUrl(s.proxy, flags ? '--proxy' : 'proxy');
}

export { redactProxyUrl };
