// UPnP-IGD, the port mapping most home routers offer: SSDP discovery (sent as
// unicast to the gateway, as Tailscale does, not multicast to the LAN), the
// device description over HTTP, then SOAP AddPortMapping / DeletePortMapping
// on its WANIPConnection (or WANPPPConnection) service. Everything the gateway
// says is bounded (sizes, timeouts) and every URL it names must point at the
// gateway itself: a LAN host answering SSDP cannot make us fetch or post
// anywhere else.
import { exchange } from './exchange.ts';
import type { PortMapError } from './portmapper.ts';

const SSDP_PORT = 1900;
const MAX_BODY = 64 * 1024;
const SERVICES = [
  'urn:schemas-upnp-org:service:WANIPConnection:2',
  'urn:schemas-upnp-org:service:WANIPConnection:1',
  'urn:schemas-upnp-org:service:WANPPPConnection:1',
];

export interface UpnpMapping {
  controlUrl: string;
  serviceType: string;
  externalPort: number;
}

export type UpnpResult =
  | { ok: true; externalIp: string; externalPort: number; lifetimeSec: number; mapping: UpnpMapping }
  | { ok: false; err: PortMapError; silent: boolean };

function err(
  message: string,
  silent: boolean,
  hint = 'enable UPnP-IGD (or PCP/NAT-PMP) on the router for direct paths behind symmetric NAT; the relay still works',
): UpnpResult {
  return { ok: false, err: { code: silent ? 'PORTMAP_NO_ANSWER' : 'PORTMAP_REFUSED', message: `UPnP: ${message}`, hint }, silent };
}

/** A URL on the gateway itself (http, the gateway's address), or undefined. */
function onGateway(url: string, base: string | undefined, gw: string): string | undefined {
  try {
    const u = new URL(url, base);
    return u.protocol === 'http:' && u.hostname === gw ? u.toString() : undefined;
  } catch {
    return undefined;
  }
}

async function boundedText(res: Response): Promise<string> {
  const reader = res.body?.getReader();
  if (!reader) return '';
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.length;
    if (size > MAX_BODY) {
      await reader.cancel();
      throw new Error(`answer larger than ${MAX_BODY} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

function xmlText(xml: string, tag: string): string | undefined {
  const m = new RegExp(`<(?:[A-Za-z0-9_]+:)?${tag}>([^<]*)</(?:[A-Za-z0-9_]+:)?${tag}>`).exec(xml);
  return m?.[1]?.trim();
}

async function soap(m: { controlUrl: string; serviceType: string }, action: string, args: Record<string, string | number>, timeoutMs: number): Promise<string> {
  const body =
    `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/">` +
    `<s:Body><u:${action} xmlns:u="${m.serviceType}">` +
    Object.entries(args)
      .map(([k, v]) => `<${k}>${v}</${k}>`)
      .join('') +
    `</u:${action}></s:Body></s:Envelope>`;
  const res = await fetch(m.controlUrl, {
    method: 'POST',
    headers: { 'content-type': 'text/xml; charset="utf-8"', soapaction: `"${m.serviceType}#${action}"` },
    body,
    redirect: 'error',
    signal: AbortSignal.timeout(timeoutMs),
  });
  const text = await boundedText(res);
  if (!res.ok)
    throw new Error(
      `${action}: HTTP ${res.status}${xmlText(text, 'errorCode') ? ` UPnP error ${xmlText(text, 'errorCode')} ${xmlText(text, 'errorDescription') ?? ''}` : ''}`,
    );
  return text;
}

export interface UpnpMapOptions {
  gateway: string;
  /** SSDP port of the gateway (tests); default 1900. */
  ssdpPort?: number;
  internalPort: number;
  externalPort: number;
  lifetimeSec: number;
  timeoutsMs: readonly number[];
  /** The service found last time (renewal skips discovery). */
  previous?: UpnpMapping | undefined;
}

export async function upnpMap(o: UpnpMapOptions): Promise<UpnpResult> {
  const httpTimeout = 2000;
  let localIp = '';
  let service = o.previous;
  if (!service) {
    const found = await exchange({
      gateway: o.gateway,
      port: o.ssdpPort ?? SSDP_PORT,
      timeoutsMs: o.timeoutsMs,
      request: (ip) => {
        localIp = ip;
        return Buffer.from(
          `M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nMAN: "ssdp:discover"\r\nMX: 1\r\n\r\n`,
        );
      },
      accept: (msg) => {
        const loc = /^location:\s*(\S+)/im.exec(msg.toString('latin1'))?.[1];
        return loc === undefined ? undefined : onGateway(loc, undefined, o.gateway);
      },
    });
    if (!found.ok) return err(`no SSDP answer from ${o.gateway}`, true);
    try {
      const res = await fetch(found.value, { redirect: 'error', signal: AbortSignal.timeout(httpTimeout) });
      const xml = await boundedText(res);
      for (const type of SERVICES) {
        const block = xml.split(/<service>/).find((b) => b.includes(`<serviceType>${type}</serviceType>`));
        const ctl = block ? xmlText(block, 'controlURL') : undefined;
        const url = ctl ? onGateway(ctl, xmlText(xml, 'URLBase') ?? found.value, o.gateway) : undefined;
        if (url) {
          service = { controlUrl: url, serviceType: type, externalPort: 0 };
          break;
        }
      }
    } catch (e) {
      return err(`device description from ${found.value}: ${(e as Error).message}`, false);
    }
    if (!service) return err(`${o.gateway} has no WANIPConnection service on the gateway itself`, false);
  }
  if (!localIp) localIp = await localAddressToward(o.gateway);
  try {
    const ipXml = await soap(service, 'GetExternalIPAddress', {}, httpTimeout);
    const externalIp = xmlText(ipXml, 'NewExternalIPAddress') ?? '';
    const args = {
      NewRemoteHost: '',
      NewExternalPort: o.externalPort,
      NewProtocol: 'UDP',
      NewInternalPort: o.internalPort,
      NewInternalClient: localIp,
      NewEnabled: 1,
      NewPortMappingDescription: 'pilot',
      NewLeaseDuration: o.lifetimeSec,
    };
    let port = o.externalPort;
    try {
      await soap(service, 'AddPortMapping', args, httpTimeout);
    } catch (first) {
      // The port is taken (718 ConflictInMappingEntry): IGDv2 picks a free one.
      if (!service.serviceType.endsWith(':2')) throw first;
      const any = await soap(service, 'AddAnyPortMapping', args, httpTimeout);
      port = Number(xmlText(any, 'NewReservedPort') ?? 0);
    }
    return { ok: true, externalIp, externalPort: port, lifetimeSec: o.lifetimeSec, mapping: { ...service, externalPort: port } };
  } catch (e) {
    return err(`${o.gateway}: ${(e as Error).message}`, false);
  }
}

export async function upnpDelete(m: UpnpMapping, timeoutsMs: readonly number[]): Promise<boolean> {
  try {
    await soap(
      m,
      'DeletePortMapping',
      { NewRemoteHost: '', NewExternalPort: m.externalPort, NewProtocol: 'UDP' },
      timeoutsMs.reduce((a, b) => a + b, 0),
    );
    return true;
  } catch {
    return false;
  }
}

/** Our address on the route to the gateway (a connected UDP socket sends nothing). */
async function localAddressToward(gw: string): Promise<string> {
  const dgram = await import('node:dgram');
  const s = dgram.createSocket('udp4');
  return new Promise((resolve) => {
    s.connect(9, gw, () => {
      const a = s.address().address;
      s.close();
      resolve(a);
    });
  });
}
