// From configuration (--wss URL, --tls-ca FILE, --proxy URL or the proxy
// environment) to the options of a wss TcpUplink. Read at each use, so a CA
// file replaced on disk is picked up by the next start without a restart of
// anything else.
import fs from 'node:fs';
import { PilotError } from '../util/errors.ts';
import { proxyFor } from './proxy-config.ts';
import type { TcpUplinkOptions } from './tcp-uplink.ts';
import { parseWssUrl } from './wss-url.ts';

export interface WssConfig {
  /** wss://host[:port][/path] of the rendezvous's --tls-listen. */
  url: string;
  /** A PEM file of extra CA certificates to trust (on top of the system's). */
  ca?: string;
  /** http://[user:pass@]host:port, "none" (never a proxy), or absent = $HTTPS_PROXY/$ALL_PROXY minus $NO_PROXY. */
  proxy?: string;
}

export function wssLinkOptions(cfg: WssConfig | undefined, env: NodeJS.ProcessEnv = process.env): TcpUplinkOptions {
  if (!cfg) throw new PilotError('BAD_ARGUMENT', 'uplink wss without a wss:// URL', 'set --wss wss://HOST[:PORT]/pilot (the rendezvous --tls-listen)');
  const t = parseWssUrl(cfg.url);
  let ca: Buffer | undefined;
  if (cfg.ca !== undefined) {
    try {
      ca = fs.readFileSync(cfg.ca);
    } catch (err) {
      throw new PilotError(
        'BAD_ARGUMENT',
        `cannot read --tls-ca ${cfg.ca}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        '--tls-ca takes a PEM file of CA certificates',
      );
    }
    if (!ca.includes('-----BEGIN CERTIFICATE-----'))
      throw new PilotError('BAD_ARGUMENT', `--tls-ca ${cfg.ca} holds no PEM certificate`, '--tls-ca takes a PEM file of CA certificates');
  }
  const proxy = proxyFor(t.host, t.port, cfg.proxy, env);
  return { host: t.host, port: t.port, path: t.path, mode: 'wss', ...(ca ? { ca } : {}), ...(proxy ? { proxy } : {}) };
}
