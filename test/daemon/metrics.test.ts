// --metrics on real daemons (started by the real pilotctl) and a real
// rendezvous on loopback: /metrics is valid Prometheus text and its series move
// with a handshake, a ping and a stream.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, startRendezvous, tmpDir } from '../helpers/cluster.ts';
import { parsePromText, sampleValue, type Sample } from '../helpers/prom-text.ts';

async function scrape(url: string): Promise<Sample[]> {
  const res = await fetch(url);
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  return parsePromText(await res.text());
}

/** Starts the agent with --metrics and returns the endpoint the daemon reported. */
async function startWithMetrics(a: Agent, extra: string[]): Promise<string> {
  const r = await a.ctl(['daemon', 'start', ...extra, '--listen', '127.0.0.1:0', '--metrics', '127.0.0.1:0']);
  assert.equal(r.code, 0, `${r.stderr}\n${a.log().slice(-2000)}`);
  a.address = r.json.data.address;
  a.pid = r.json.data.pid;
  assert.match(r.json.data.metrics, /^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  return r.json.data.metrics as string;
}

async function eventually(what: string, check: () => Promise<boolean>, ms = 20_000): Promise<void> {
  const t0 = Date.now();
  while (!(await check())) {
    if (Date.now() - t0 > ms) assert.fail(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

test('daemon /metrics: sessions, handshakes, bytes, packets, paths and errors move with a ping and a stream', { timeout: 120_000 }, async (t) => {
  const work = tmpDir();
  const rdv = await startRendezvous();
  t.after(() => rdv.kill());
  const a = new Agent('alpha', work);
  const b = new Agent('beta', work);
  t.after(() => Promise.all([a.stop(), b.stop()]));
  const aUrl = await startWithMetrics(a, ['--registry', rdv.addr, '--email', 'a@example.com', '--hostname', 'metrics-alpha']);
  const bUrl = await startWithMetrics(b, ['--registry', rdv.addr, '--email', 'b@example.com', '--hostname', 'metrics-beta']);

  // Idle: no peer, registered, NAT classified as "none" on loopback once the check ran.
  let m = await scrape(bUrl);
  assert.equal(sampleValue(m, 'pilot_daemon_peers'), 0);
  assert.equal(sampleValue(m, 'pilot_daemon_sessions'), 0);
  assert.equal(sampleValue(m, 'pilot_daemon_handshakes_total', { result: 'ok' }), 0);
  assert.equal(sampleValue(m, 'pilot_daemon_session_bytes_total', { direction: 'out' }), 0);
  assert.equal(sampleValue(m, 'pilot_daemon_registry_online'), 1);
  assert.ok(
    m.some((s) => s.name === 'process_cpu_user_seconds_total'),
    'default process metrics are there',
  );
  await eventually('NAT class none', async () => sampleValue(await scrape(bUrl), 'pilot_daemon_nat_type', { nat: 'none' }) === 1);
  const udpOut0 = sampleValue(m, 'pilot_daemon_udp_packets_total', { direction: 'out' });

  assert.equal((await b.ctl(['handshake', a.address])).code, 0);
  assert.equal((await a.ctl(['approve', b.address])).code, 0);
  const ping = await b.ctl(['ping', 'metrics-alpha', '--count', '3', '--interval', '20ms']);
  assert.equal(ping.code, 0, ping.stderr);
  m = await scrape(bUrl);
  assert.equal(sampleValue(m, 'pilot_daemon_peers'), 1);
  assert.equal(sampleValue(m, 'pilot_daemon_sessions'), 1);
  assert.ok(sampleValue(m, 'pilot_daemon_handshakes_total', { result: 'ok' }) >= 1);
  assert.equal(sampleValue(m, 'pilot_daemon_handshakes_total', { result: 'failed' }), 0);
  assert.ok(sampleValue(m, 'pilot_daemon_handshakes_started_total', { role: 'initiator' }) >= 1);
  assert.ok(sampleValue(m, 'pilot_daemon_session_packets_total', { direction: 'out' }) >= 3);
  assert.ok(sampleValue(m, 'pilot_daemon_session_packets_total', { direction: 'in' }) >= 3);
  assert.ok(sampleValue(m, 'pilot_daemon_udp_packets_total', { direction: 'out' }) > udpOut0);
  assert.equal(sampleValue(m, 'pilot_daemon_peer_paths', { kind: 'direct' }) + sampleValue(m, 'pilot_daemon_peer_paths', { kind: 'relay' }), 1);
  assert.ok(sampleValue(m, 'pilot_daemon_session_dropped_total', { reason: 'auth' }) >= 0, 'drop reasons are listed');
  assert.equal(sampleValue(m, 'pilot_daemon_errors_total', { kind: 'internal' }), 0);
  assert.equal(sampleValue(m, 'pilot_daemon_punches_total', { result: 'succeeded' }), sampleValue(m, 'pilot_daemon_path_changes_total', { change: 'upgrade' }));
  const am = await scrape(aUrl);
  assert.ok(sampleValue(am, 'pilot_daemon_handshakes_started_total', { role: 'responder' }) >= 1);
  assert.equal(sampleValue(am, 'pilot_daemon_sessions'), 1);

  // A 6 MiB stream to a's sink (port 9): the byte counters follow, both ways.
  const before = sampleValue(m, 'pilot_daemon_session_bytes_total', { direction: 'out' });
  const aIn0 = sampleValue(am, 'pilot_daemon_session_bytes_total', { direction: 'in' });
  const bench = await b.ctl(['bench', 'metrics-alpha', '6'], 60_000);
  assert.equal(bench.code, 0, bench.stderr);
  m = await scrape(bUrl);
  assert.ok(sampleValue(m, 'pilot_daemon_session_bytes_total', { direction: 'out' }) - before >= 6 * 1024 * 1024);
  assert.ok(sampleValue(await scrape(aUrl), 'pilot_daemon_session_bytes_total', { direction: 'in' }) - aIn0 >= 6 * 1024 * 1024);
  assert.equal(sampleValue(m, 'pilot_daemon_streams_open'), 0, 'the bench stream is closed');
  // Its thousands of waits for 'drain' each took their listeners back.
  assert.doesNotMatch(fs.readFileSync(path.join(b.home, 'pilot.log'), 'utf8'), /MaxListenersExceeded/);

  // Only /metrics, only GET.
  const base = bUrl.replace(/\/metrics$/, '');
  assert.equal((await fetch(`${base}/`)).status, 404);
  assert.equal((await fetch(bUrl, { method: 'POST' })).status, 405);
});

test('--metrics: a bad address is refused before the daemon starts; a bare port means 127.0.0.1', async () => {
  const a = new Agent('gamma', tmpDir());
  const r = await a.ctl(['daemon', 'start', '--registry', '127.0.0.1:9', '--email', 'g@example.com', '--metrics', 'not an address']);
  assert.equal(r.code, 2, 'a value error: nothing was started');
  assert.equal(r.json.code, 'BAD_ARGUMENT');
  assert.match(r.json.hint, /127\.0\.0\.1/);
  const { parseMetricsAddress } = await import('../../src/metrics/metrics-http.ts');
  assert.deepEqual(parseMetricsAddress('9101'), { host: '127.0.0.1', port: 9101 });
  assert.deepEqual(parseMetricsAddress('0.0.0.0:9101'), { host: '0.0.0.0', port: 9101 });
  assert.throws(() => parseMetricsAddress('localhost'), /invalid metrics address/);
});
