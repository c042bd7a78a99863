// An agent whose only way out is an HTTP proxy (issue 19): in the NAT lab, the
// corp site's router forwards nothing from its LAN but TCP to the proxy's port
// (UDP and every other TCP dropped, as a corporate firewall does). A real
// tinyproxy (then squid) runs on a public host; the rendezvous serves wss on
// 443 with a certificate from a test CA made at test time. The agent is a
// plain `pilotctl daemon start` with --wss and --tls-ca and HTTPS_PROXY in its
// environment: its auto uplink falls through UDP, TCP and WebSocket to wss via
// the proxy, then it trusts a normal agent on a public host and streams 20 MiB
// to it and back through the relay, hashes checked.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Agent, ROOT, run, startRendezvous, tmpDir } from '../helpers/cluster.ts';
import { NatLab, natLabSupport, RENDEZVOUS_IP } from '../helpers/natlab.ts';
import { startSquid, startTinyproxy, whichProxy, type ProxyProcess } from '../helpers/proxy.ts';
import { hasOpenssl, makeTestCa } from '../helpers/test-ca.ts';
import { trustPair } from '../nat/matrix.ts';

const support = natLabSupport();
const skip = !support.ok ? support.reason : !hasOpenssl() ? 'needs openssl' : !whichProxy('tinyproxy') ? 'needs tinyproxy (apt-get install tinyproxy)' : false;
const ECHO = path.join(ROOT, 'test/helpers/echo-transfer.ts');
const BYTES = 20 * 1024 * 1024;
const PROXY_PORT = 3128;

test('proxy-only egress: an agent joins via wss through tinyproxy (and squid) and streams 20 MiB intact to a normal agent', {
  skip,
  timeout: 240_000,
}, async () => {
  const lab = new NatLab();
  const work = tmpDir('pilot-proxylab-');
  const ca = makeTestCa('pilot-lab-ca', fs.mkdtempSync(path.join(work, 'ca-')));
  const proxies: ProxyProcess[] = [];
  const agents: Agent[] = [];
  try {
    const pair = ca.issue('rv', ['rv.pilot.test', RENDEZVOUS_IP]);
    const rdv = await startRendezvous({
      netns: lab.rendezvous.ns,
      listen: `${RENDEZVOUS_IP}:9000`,
      dataDir: path.join(work, 'rdv'),
      // The relay's per-node rate limit (2 MB/s by default) lifted, so the figures compare the uplinks, not the limiter.
      args: ['--tls-listen', `${RENDEZVOUS_IP}:443`, '--tls-cert', pair.cert, '--tls-key', pair.key, '--relay-rate', '100000000'],
    });
    try {
      const proxyHost = lab.addSite('public', 'proxy').hosts[0]!;
      const peerHost = lab.addSite('public', 'peer').hosts[0]!;
      const corp = lab.addSite('cone', 'corp');
      const corpHost = corp.hosts[0]!;
      const router = corp.routers[0]!;
      // The corporate firewall: from the LAN only TCP to the proxy gets out.
      lab.sh(
        router.ns,
        `iptables -A FORWARD -i lan -p tcp -d ${proxyHost.ip} --dport ${PROXY_PORT} -j ACCEPT; iptables -A FORWARD -i lan -j DROP; iptables -A INPUT -i lan -j DROP`,
      );
      const tp = await startTinyproxy({ host: proxyHost.ip, port: PROXY_PORT, netns: proxyHost.ns });
      proxies.push(tp);

      const b = new Agent('b', work, peerHost.ns);
      agents.push(b);
      await b.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', 'b@example.com', '--listen', '0.0.0.0:0']);

      // Agent a: pilotctl daemon start with HTTPS_PROXY in its environment (the daemon inherits it).
      const a = new Agent('a', work, corpHost.ns);
      agents.push(a);
      let joinMs = 0;
      const startA = async (env: NodeJS.ProcessEnv, extra: string[] = []): Promise<void> => {
        const t0 = Date.now();
        const r = await run(
          ['ip', 'netns', 'exec', corpHost.ns, process.execPath, path.join(ROOT, 'src/cli/pilotctl.ts'), '--json', 'daemon', 'start', ...extra],
          { PILOT_HOME: a.home, PILOT_SOCKET: a.socket, ...env },
          60_000,
        );
        assert.equal(r.code, 0, `daemon start behind the proxy: ${r.stderr} ${r.stdout}\n${a.log().slice(-3000)}\n${tp.log().slice(-2000)}`);
        a.address = r.json.data.address;
        a.pid = r.json.data.pid;
        joinMs = Date.now() - t0;
      };
      await startA({ HTTPS_PROXY: tp.url() }, [
        '--registry',
        `${RENDEZVOUS_IP}:9000`,
        '--email',
        'a@example.com',
        '--wss',
        `wss://${RENDEZVOUS_IP}:443/pilot`,
        '--tls-ca',
        ca.caCert,
      ]);
      const info = await a.ipc('info');
      assert.equal(info.uplink, 'wss', 'fell through to wss');
      assert.match(tp.log(), /CONNECT|Established connection/i, 'tinyproxy carried the uplink');
      // Nothing else got out: the firewall dropped the UDP hellos and the direct TCP/WebSocket attempts.
      const drops = Number(
        /^\s*(\d+)\s+\d+\s+DROP\s+\S+\s+--\s+lan\s+\*\s/m.exec(lab.exec(router.ns, ['iptables', '-L', 'FORWARD', '-v', '-x', '-n']))?.[1] ?? 0,
      );
      assert.ok(drops >= 3, `the corp firewall dropped ${drops} packets`);

      await trustPair(a, b, 30_000);
      const stream = async (label: string, how: string, from: Agent = a, ns = corpHost.ns): Promise<void> => {
        const s = await run(['ip', 'netns', 'exec', ns, process.execPath, ECHO, from.socket, b.address, String(BYTES)], {}, 150_000);
        assert.equal(s.code, 0, `${label}: ${s.stderr.slice(-2000)}`);
        const out = JSON.parse(s.stdout.trim().split('\n').pop()!) as {
          bytes: number;
          sentHash: string;
          echoHash: string;
          seconds: number;
          firstByteMs: number;
        };
        assert.equal(out.bytes, BYTES, label);
        assert.equal(out.echoHash, out.sentHash, `${label}: 20 MiB echoed intact`);
        const peers = (await from.ipc('peers')).peers as { address: string; pathType: string; relay: string | null }[];
        const p = peers.find((x) => x.address === b.address);
        assert.equal(p?.pathType, 'relay', `${label}: through the relay (no UDP out of corp)`);
        assert.equal(p?.relay, from === a ? 'wss' : 'websocket');
        console.log(
          `# ${label}: ${from === a ? `daemon start ${(joinMs / 1000).toFixed(1)} s` : 'open egress'} (${how}); 20 MiB echoed intact in ${out.seconds.toFixed(1)} s (${((2 * BYTES) / out.seconds / 1e6).toFixed(2)} MB/s both ways), first byte ${out.firstByteMs} ms`,
        );
      };
      await stream('tinyproxy', 'auto: UDP, TCP and WebSocket dropped first, 5 s connect timeout each');

      // Same-run reference: a node with no UDP on an open public host, relayed over plain ws (no TLS, no proxy).
      const refHost = lab.addSite('public', 'ref').hosts[0]!;
      const c = new Agent('c', work, refHost.ns);
      agents.push(c);
      await c.start(['--registry', `${RENDEZVOUS_IP}:9000`, '--email', 'c@example.com', '--listen', 'none', '--uplink', 'websocket']);
      await trustPair(c, b, 30_000);
      await stream('reference', 'plain ws, no proxy, no TLS', c, refHost.ns);

      if (whichProxy('squid')) {
        // The same agent through squid instead, set by --proxy this time (config), with HTTPS_PROXY pointing nowhere useful.
        await a.stop();
        const sq = await startSquid({ host: proxyHost.ip, port: PROXY_PORT + 1, netns: proxyHost.ns });
        proxies.push(sq);
        lab.sh(router.ns, `iptables -I FORWARD 1 -i lan -p tcp -d ${proxyHost.ip} --dport ${PROXY_PORT + 1} -j ACCEPT`);
        await startA({ HTTPS_PROXY: 'http://192.0.2.1:9' }, ['--uplink', 'wss', '--proxy', sq.url()]);
        assert.equal((await a.ipc('info')).uplink, 'wss');
        await stream('squid', '--uplink wss');
      }
    } finally {
      for (const ag of agents) await ag.stop();
      await rdv.kill();
    }
  } finally {
    for (const p of proxies) await p.stop();
    lab.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }
});
