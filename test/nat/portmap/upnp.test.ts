// The UPnP-IGD client against an IGD on loopback: real SSDP over UDP and real
// HTTP/SOAP, as a router would answer, and as a hostile LAN host or broken
// router would (URLs pointing elsewhere, oversized answers, SOAP faults). The
// honest case is also run against Debian's miniupnpd in the NAT lab (lab.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import dgram from 'node:dgram';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { upnpDelete, upnpMap } from '../../../src/nat/portmap/upnp.ts';

const SERVICE = 'urn:schemas-upnp-org:service:WANIPConnection:1';

interface Igd {
  ssdpPort: number;
  httpPort: number;
  soap: { action: string; body: string }[];
  described: number;
  close(): void;
}

/** An IGD: `location` and `control` may point anywhere (a liar's), `description` may be huge. */
async function igd(
  o: { location?: (httpPort: number) => string; control?: (httpPort: number) => string; description?: string; fault?: boolean } = {},
): Promise<Igd> {
  const soap: Igd['soap'] = [];
  let described = 0;
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => {
      body += c.toString();
    });
    req.on('end', () => {
      if (req.method === 'GET') {
        described++;
        res.end(
          o.description ??
            `<?xml version="1.0"?><root><device><serviceList><service><serviceType>${SERVICE}</serviceType><controlURL>${
              o.control?.(httpPort) ?? '/ctl/IPConn'
            }</controlURL></service></serviceList></device></root>`,
        );
        return;
      }
      const action = /#(\w+)"?$/.exec(String(req.headers.soapaction))?.[1] ?? '?';
      soap.push({ action, body });
      if (o.fault && action === 'AddPortMapping') {
        res.statusCode = 500;
        res.end(
          '<s:Envelope><s:Body><s:Fault><detail><UPnPError><errorCode>718</errorCode><errorDescription>ConflictInMappingEntry</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>',
        );
        return;
      }
      res.end(
        action === 'GetExternalIPAddress'
          ? '<s:Envelope><s:Body><u:GetExternalIPAddressResponse><NewExternalIPAddress>203.0.113.9</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>'
          : '<s:Envelope><s:Body/></s:Envelope>',
      );
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const httpPort = (server.address() as AddressInfo).port;
  const ssdp = dgram.createSocket('udp4');
  ssdp.on('message', (m, r) => {
    if (!m.toString().startsWith('M-SEARCH')) return;
    const loc = o.location?.(httpPort) ?? `http://127.0.0.1:${httpPort}/rootDesc.xml`;
    ssdp.send(`HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: ${loc}\r\n\r\n`, r.port, r.address);
  });
  await new Promise<void>((r) => ssdp.bind(0, '127.0.0.1', r));
  ssdp.unref();
  server.unref();
  return {
    ssdpPort: ssdp.address().port,
    httpPort,
    soap,
    get described() {
      return described;
    },
    close: () => {
      ssdp.close();
      server.close();
    },
  };
}

const opts = (g: Igd) => ({ gateway: '127.0.0.1', ssdpPort: g.ssdpPort, internalPort: 4000, externalPort: 4000, lifetimeSec: 7200, timeoutsMs: [100, 200] });

test('an honest IGD: discovery by unicast SSDP, AddPortMapping for our port and address, DeletePortMapping', async () => {
  const g = await igd();
  const r = await upnpMap(opts(g));
  assert.ok(r.ok, JSON.stringify(r));
  assert.equal(r.externalIp, '203.0.113.9');
  assert.equal(r.externalPort, 4000);
  const add = g.soap.find((s) => s.action === 'AddPortMapping')!;
  assert.match(add.body, /<NewInternalPort>4000<\/NewInternalPort>/);
  assert.match(add.body, /<NewInternalClient>127\.0\.0\.1<\/NewInternalClient>/);
  assert.match(add.body, /<NewProtocol>UDP<\/NewProtocol>/);
  assert.match(add.body, /<NewLeaseDuration>7200<\/NewLeaseDuration>/);
  assert.equal(await upnpDelete(r.mapping, [250]), true);
  assert.match(g.soap.at(-1)!.body, /DeletePortMapping[\s\S]*<NewExternalPort>4000<\/NewExternalPort>/);
  g.close();
});

test('a LOCATION on another host than the gateway is never fetched', async () => {
  let fetched = 0;
  const elsewhere = http.createServer((_q, res) => {
    fetched++;
    res.end('');
  });
  await new Promise<void>((r) => elsewhere.listen(0, '127.0.0.2', r));
  elsewhere.unref();
  const port = (elsewhere.address() as AddressInfo).port;
  const g = await igd({ location: () => `http://127.0.0.2:${port}/rootDesc.xml` });
  const r = await upnpMap(opts(g));
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.err.code, 'PORTMAP_NO_ANSWER');
  assert.equal(fetched, 0);
  g.close();
  elsewhere.close();
});

test('a control URL on another host (or not http) is refused: no SOAP leaves for it', async () => {
  for (const control of [(p: number) => `http://127.0.0.2:${p}/ctl`, () => 'file:///etc/passwd', (p: number) => `https://127.0.0.1:${p}/ctl`]) {
    const g = await igd({ control });
    const r = await upnpMap(opts(g));
    assert.equal(r.ok, false);
    if (!r.ok) assert.match(r.err.message, /no WANIPConnection service on the gateway itself/);
    assert.equal(g.soap.length, 0);
    g.close();
  }
});

test('an oversized device description is cut off at 64 KiB: a coded error, not memory', async () => {
  const g = await igd({ description: `<root>${'x'.repeat(200 * 1024)}</root>` });
  const r = await upnpMap(opts(g));
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.err.code, 'PORTMAP_REFUSED');
    assert.match(r.err.message, /larger than 65536 bytes/);
  }
  g.close();
});

test('a SOAP fault (718 ConflictInMappingEntry on IGDv1) is a coded error naming the UPnP error', async () => {
  const g = await igd({ fault: true });
  const r = await upnpMap(opts(g));
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.err.code, 'PORTMAP_REFUSED');
    assert.match(r.err.message, /UPnP error 718 ConflictInMappingEntry/);
  }
  g.close();
});
