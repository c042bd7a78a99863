// The trust + expose + gateway setup both gateway suites (one namespace, NAT lab) share.
import assert from 'node:assert/strict';
import type { Agent } from '../helpers/cluster.ts';

/** client handshakes, server approves, server exposes each [vport, target], client maps the server at 10.4.0.1. */
export async function trustExposeGateway(client: Agent, server: Agent, exposures: [string, string][]): Promise<void> {
  assert.equal((await client.ctl(['handshake', server.address, 'gateway test'])).code, 0);
  assert.equal((await server.ctl(['approve', client.address])).code, 0);
  for (const [vport, target] of exposures) {
    const r = await server.ctl(['expose', vport, target]);
    assert.equal(r.code, 0, r.stderr);
  }
  const gw = await client.ctl(['gateway', 'start', '--ports', exposures.map(([v]) => v).join(','), server.address]);
  assert.equal(gw.code, 0, gw.stderr);
  assert.equal(gw.json.data.mappings[0].ip, '10.4.0.1');
}
