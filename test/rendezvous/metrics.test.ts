// /metrics on the rendezvous's HTTP listener, against real nodes: registers,
// heartbeats with NAT/path/punch reports and relayed packets move the series.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as v from 'valibot';
import { ParamSchemas } from '../../src/registry/protocol.ts';
import { relaySend, makeTrust, sleep, startServer, udpPeer } from './helpers.ts';
import { parsePromText, sampleValue, type Sample } from '../helpers/prom-text.ts';

const TOKEN = 'test-admin-token-0123456789';

async function scrape(port: number): Promise<Sample[]> {
  const res = await fetch(`http://127.0.0.1:${port}/metrics`);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parsePromText(await res.text());
}

test('/metrics is valid Prometheus text and its series follow registrations, reports and relay traffic', async (t) => {
  const s = await startServer({ http: { host: '127.0.0.1', port: 0, adminToken: TOKEN } });
  t.after(() => s.close());
  const port = s.http!.port;
  const a = await udpPeer(s.port);
  const b = await udpPeer(s.port);
  t.after(() => Promise.all([a.close(), b.close()]));

  let m = await scrape(port);
  assert.equal(sampleValue(m, 'pilot_rendezvous_registrations_total'), 0);
  assert.equal(sampleValue(m, 'pilot_rendezvous_online_nodes'), 0);
  for (const nat of ['none', 'eim', 'edm', 'unknown']) {
    assert.equal(sampleValue(m, 'pilot_rendezvous_online_nodes_by_nat', { nat }), 0);
    assert.equal(sampleValue(m, 'pilot_rendezvous_punches_total', { nat, result: 'tried' }), 0);
  }
  assert.ok(
    m.some((x) => x.name === 'process_cpu_user_seconds_total'),
    'default process metrics are there',
  );

  const ra = await a.client.register({ email: 'a@example.com', hostname: 'alpha', public: true });
  const rb = await b.client.register({ email: 'b@example.com' });
  m = await scrape(port);
  assert.equal(sampleValue(m, 'pilot_rendezvous_registrations_total'), 2);
  assert.equal(sampleValue(m, 'pilot_rendezvous_online_nodes'), 2);
  assert.equal(sampleValue(m, 'pilot_rendezvous_online_nodes_by_nat', { nat: 'unknown' }), 2, 'no report yet');

  await a.client.heartbeat({ nat: 'eim', paths: { direct: 2, relay: 1 }, punches: { tried: 3, succeeded: 2 } });
  await b.client.heartbeat({ nat: 'edm', paths: { direct: 0, relay: 1 }, punches: { tried: 4, succeeded: 0 } });
  await a.client.heartbeat({ punches: { tried: 5, succeeded: 3 } }); // cumulative: +2 tried, +1 succeeded; NAT class kept
  m = await scrape(port);
  assert.equal(sampleValue(m, 'pilot_rendezvous_online_nodes_by_nat', { nat: 'eim' }), 1);
  assert.equal(sampleValue(m, 'pilot_rendezvous_online_nodes_by_nat', { nat: 'edm' }), 1);
  assert.equal(sampleValue(m, 'pilot_rendezvous_online_nodes_by_nat', { nat: 'unknown' }), 0);
  assert.equal(sampleValue(m, 'pilot_rendezvous_peer_paths', { kind: 'direct' }), 2);
  assert.equal(sampleValue(m, 'pilot_rendezvous_peer_paths', { kind: 'relay' }), 2);
  assert.equal(sampleValue(m, 'pilot_rendezvous_punches_total', { nat: 'eim', result: 'tried' }), 5);
  assert.equal(sampleValue(m, 'pilot_rendezvous_punches_total', { nat: 'eim', result: 'succeeded' }), 3);
  assert.equal(sampleValue(m, 'pilot_rendezvous_punches_total', { nat: 'edm', result: 'tried' }), 4);

  // A daemon restart counts from zero again: its new counts add, the counter never goes down.
  await b.client.heartbeat({ punches: { tried: 1, succeeded: 1 } });
  m = await scrape(port);
  assert.equal(sampleValue(m, 'pilot_rendezvous_punches_total', { nat: 'edm', result: 'tried' }), 5);
  assert.equal(sampleValue(m, 'pilot_rendezvous_punches_total', { nat: 'edm', result: 'succeeded' }), 1);

  // Relay: one refused (no trust pair, b private), then trust and one forwarded.
  const inner = Buffer.concat([Buffer.from([0x12]), Buffer.alloc(99, 0xab)]);
  a.sendRaw(relaySend(rb.address, inner));
  await sleep(100);
  m = await scrape(port);
  assert.equal(sampleValue(m, 'pilot_rendezvous_relay_dropped_total', { reason: 'not_trusted' }), 1);
  assert.equal(sampleValue(m, 'pilot_rendezvous_relay_packets_total'), 0);
  await makeTrust(a, ra.address, b, rb.address);
  a.sendRaw(relaySend(rb.address, inner));
  await b.nextPacket(0x21);
  m = await scrape(port);
  assert.equal(sampleValue(m, 'pilot_rendezvous_relay_packets_total'), 1);
  assert.equal(sampleValue(m, 'pilot_rendezvous_relay_bytes_total'), s.stats().relay.forwardedBytes);
  assert.ok(sampleValue(m, 'pilot_rendezvous_relay_bytes_total') >= 100);
  assert.ok(sampleValue(m, 'pilot_rendezvous_registry_requests_total') >= 9);
  assert.equal(sampleValue(m, 'pilot_rendezvous_packets_in_total', { transport: 'udp' }), s.stats().udpIn);
  // How the UDP sends left (the forward above and every answer): one system call per GSO batch or per plain packet.
  const out = s.stats().udpOut;
  assert.ok(out.plainPackets + out.onePackets + out.gsoPackets >= 10, `every UDP answer and the forward counted: ${JSON.stringify(out)}`);
  assert.equal(sampleValue(m, 'pilot_rendezvous_udp_sends_total', { kind: 'plain' }), out.plainPackets);
  assert.equal(sampleValue(m, 'pilot_rendezvous_udp_sends_total', { kind: 'one' }), out.onePackets);
  assert.equal(sampleValue(m, 'pilot_rendezvous_udp_sends_total', { kind: 'gso' }), out.gsoSends);
  assert.equal(sampleValue(m, 'pilot_rendezvous_udp_gso_packets_total'), out.gsoPackets);
});

test('heartbeat reports are validated; a refused report makes the client fall back to plain heartbeats', async (t) => {
  for (const bad of [
    { nat: 'cone' },
    { paths: { direct: -1, relay: 0 } },
    { punches: { tried: 1.5, succeeded: 0 } },
    { paths: { direct: 1 } },
    { nat: 'eim', extra: 1 },
  ]) {
    assert.equal(v.safeParse(ParamSchemas.heartbeat, bad).success, false, JSON.stringify(bad));
  }
  assert.equal(v.safeParse(ParamSchemas.heartbeat, {}).success, true, 'old clients send no report');
  const s = await startServer({ http: { host: '127.0.0.1', port: 0, adminToken: TOKEN } });
  t.after(() => s.close());
  const a = await udpPeer(s.port);
  t.after(() => a.close());
  await a.client.register({ email: 'a@example.com' });
  assert.ok((await a.client.heartbeat({ lanEndpoints: ['10.0.0.2:4000'] })).observed);
  // The server refuses the report (BAD_REQUEST), as a server older than the
  // report fields would: the client re-sends without it and keeps doing so.
  const hb = a.client.heartbeat.bind(a.client) as (p: object) => Promise<{ observed: string }>;
  assert.ok((await hb({ nat: 'eim', paths: { direct: -1, relay: 0 } })).observed);
  assert.ok((await a.client.heartbeat({ nat: 'eim', paths: { direct: 3, relay: 0 } })).observed);
  const m = parsePromText(await (await fetch(`http://127.0.0.1:${s.http!.port}/metrics`)).text());
  assert.equal(sampleValue(m, 'pilot_rendezvous_peer_paths', { kind: 'direct' }), 0, 'no report stored after the fallback');
  assert.equal(sampleValue(m, 'pilot_rendezvous_online_nodes_by_nat', { nat: 'unknown' }), 1);
  assert.equal(sampleValue(m, 'pilot_rendezvous_registry_errors_total'), 1, 'exactly the one refused heartbeat');
});
