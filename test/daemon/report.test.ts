// A real daemon (pilotctl daemon start) reports its NAT class and punch
// counters in heartbeats; the rendezvous's /metrics and admin API show them.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Agent, tmpDir } from '../helpers/cluster.ts';
import { startServer } from '../rendezvous/helpers.ts';
import { parsePromText, sampleValue } from '../helpers/prom-text.ts';

const TOKEN = 'daemon-report-token-0123456789';

test('a real daemon on loopback reports NAT class "none" and punch counters to the rendezvous', async (t) => {
  const s = await startServer({ http: { host: '127.0.0.1', port: 0, adminToken: TOKEN }, altPort: 0 });
  t.after(() => s.close());
  const a = new Agent('a', tmpDir());
  t.after(() => a.stop());
  await a.start(['--registry', `127.0.0.1:${s.port}`, '--email', 'a@example.com', '--hostname', 'metrics-a', '--listen', '127.0.0.1:0']);

  // The daemon classifies its NAT after registering, then heartbeats with the report.
  const deadline = Date.now() + 30_000;
  let nat = '';
  let node: { nat: string; punches: unknown; address: string } | undefined;
  while (Date.now() < deadline) {
    const r = await fetch(`http://127.0.0.1:${s.http!.port}/api/admin/nodes`, { headers: { authorization: `Bearer ${TOKEN}` } });
    node = ((await r.json()) as { nodes: { nat: string; punches: unknown; address: string }[] }).nodes.find((n) => n.address === a.address);
    nat = node?.nat ?? '';
    if (nat !== '' && nat !== 'unknown') break;
    await new Promise((r) => setTimeout(r, 200));
  }
  assert.equal(nat, 'none', `loopback has no NAT; admin view: ${JSON.stringify(node)}\n${a.log().slice(-2000)}`);
  assert.deepEqual(node?.punches, { tried: 0, succeeded: 0 });
  const m = parsePromText(await (await fetch(`http://127.0.0.1:${s.http!.port}/metrics`)).text());
  assert.equal(sampleValue(m, 'pilot_rendezvous_online_nodes_by_nat', { nat: 'none' }), 1);
});
