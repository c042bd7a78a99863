// Debian's miniupnpd (nftables backend) as the port-mapping service of a NatLab
// router: NAT-PMP/PCP on 5351 and UPnP-IGD, its rules in the router's own
// namespace, its config and lease files in a temp dir. Nothing is simulated:
// the daemon asks the real miniupnpd, which writes real DNAT rules.
//
// miniupnpd refuses to map on a reserved external address, and the lab's
// Internet is TEST-NET-2 (198.51.100.0/24). So the mapping router gets a second,
// routable-looking WAN address in 11.0.0.0/24 (nothing here reaches the real
// 11/8: every namespace is isolated) and every namespace on the lab's Internet
// gets an on-link route to it. The router still masquerades to its TEST-NET
// address, as a router whose port-mapping address differs from its NAT address.
//
//   if (!miniupnpdSupport().ok) skip;
//   const mu = await startMiniupnpd(lab, site.routers[0]);   // after all sites are added
//   mu.mappings()   // the DNAT rules it holds now, e.g. [{ externalPort, internal: '10.1.0.10:4000' }]
//   await mu.stop();
import { spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { NatLab, Router } from './natlab.ts';

export const MINIUPNPD = '/usr/sbin/miniupnpd';
const TABLE = 'pmlab';

export function miniupnpdSupport(): { ok: true } | { ok: false; reason: string } {
  if (!fs.existsSync(MINIUPNPD)) return { ok: false, reason: 'needs miniupnpd (apt-get install miniupnpd miniupnpd-nftables)' };
  const v = spawnSync(MINIUPNPD, ['--version'], { encoding: 'utf8' });
  if (!/nftables/.test(`${v.stdout}${v.stderr}`)) return { ok: false, reason: 'needs the nftables build of miniupnpd (apt-get install miniupnpd-nftables)' };
  if (spawnSync('which', ['nft']).status !== 0) return { ok: false, reason: 'needs nft (apt-get install nftables)' };
  return { ok: true };
}

export interface Miniupnpd {
  readonly proc: ChildProcess;
  /** The external address miniupnpd hands out (11.0.0.x). */
  readonly externalIp: string;
  /** What it printed (debug aid for failures). */
  output(): string;
  /** UDP port mappings it holds now, from its DNAT chain in the router namespace. */
  mappings(): { externalPort: number; internal: string }[];
  stop(): Promise<void>;
}

export interface MiniupnpdOptions {
  natpmp?: boolean;
  upnp?: boolean;
}

let nextDir = 0;

export async function startMiniupnpd(lab: NatLab, router: Router, opts: MiniupnpdOptions = {}): Promise<Miniupnpd> {
  const last = Number(router.wanIp.split('.')[3]);
  const externalIp = `11.0.0.${last}`;
  // Reachable from the whole lab Internet: on-link routes on every namespace plugged into its bridge.
  lab.sh(router.ns, `ip addr add ${externalIp}/32 dev ${router.wan}`);
  const onBridge: { ns: string; dev: string }[] = [{ ns: lab.rendezvous.ns, dev: 'eth0' }];
  for (const s of lab.sites) {
    const outer = s.routers.at(-1);
    if (outer && outer !== router) onBridge.push({ ns: outer.ns, dev: outer.wan });
    if (!outer) onBridge.push(...s.hosts.map((h) => ({ ns: h.ns, dev: 'eth0' })));
  }
  for (const b of onBridge) lab.sh(b.ns, `ip route replace 11.0.0.0/24 dev ${b.dev}`);

  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `pilot-miniupnpd-${nextDir++}-`));
  // Its chains, in a table of their own; the router's iptables FORWARD accepts what a mapping DNATed.
  fs.writeFileSync(
    path.join(dir, 'rules.nft'),
    [
      `table inet ${TABLE} {`,
      '  chain forward { type filter hook forward priority -5; policy accept; jump miniupnpd; }',
      '  chain miniupnpd { }',
      '  chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }',
      '  chain postrouting { type nat hook postrouting priority 90; policy accept; jump postrouting_miniupnpd; }',
      '  chain prerouting_miniupnpd { }',
      '  chain postrouting_miniupnpd { }',
      '}',
      '',
    ].join('\n'),
  );
  lab.sh(router.ns, `nft -f ${dir}/rules.nft; iptables -I FORWARD 1 -i ${router.wan} -m conntrack --ctstate DNAT -j ACCEPT`);
  fs.writeFileSync(
    path.join(dir, 'miniupnpd.conf'),
    [
      `ext_ifname=${router.wan}`,
      `ext_ip=${externalIp}`,
      'listening_ip=lan',
      `enable_natpmp=${opts.natpmp === false ? 'no' : 'yes'}`,
      `enable_upnp=${opts.upnp === false ? 'no' : 'yes'}`,
      'secure_mode=yes',
      'system_uptime=yes',
      `lease_file=${dir}/leases`,
      'uuid=3a922ef1-4e87-46e9-9d66-34e334cc3ca4',
      `upnp_table_name=${TABLE}`,
      `upnp_nat_table_name=${TABLE}`,
      'upnp_forward_chain=miniupnpd',
      'upnp_nat_chain=prerouting_miniupnpd',
      'upnp_nat_postrouting_chain=postrouting_miniupnpd',
      'allow 1024-65535 10.0.0.0/8 1024-65535',
      'deny 0-65535 0.0.0.0/0 0-65535',
      '',
    ].join('\n'),
  );
  const proc = lab.spawn(router.ns, [MINIUPNPD, '-d', '-f', path.join(dir, 'miniupnpd.conf'), '-P', path.join(dir, 'pid')]);
  let out = '';
  proc.stdout?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  proc.stderr?.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const deadline = Date.now() + 10_000;
  while (!/Listening for NAT-PMP\/PCP traffic/.test(out) || (opts.upnp !== false && !/HTTP listening on port/.test(out))) {
    if (proc.exitCode !== null || Date.now() > deadline) throw new Error(`miniupnpd did not start (exit ${proc.exitCode}):\n${out}`);
    await new Promise((r) => setTimeout(r, 50));
  }
  const chain = (name: string): string => lab.exec(router.ns, ['nft', 'list', 'chain', 'inet', TABLE, name]);
  return {
    proc,
    externalIp,
    output: () => out,
    mappings: () =>
      // e.g. `iif "wan" @nh,72,8 0x11 th dport 4000 dnat ip to 10.1.0.10:4000` (0x11: UDP)
      [...chain('prerouting_miniupnpd').matchAll(/0x11 th dport (\d+) dnat (?:ip )?to ([\d.]+:\d+)/g)].map((m) => ({
        externalPort: Number(m[1]),
        internal: m[2]!,
      })),
    stop: async () => {
      if (proc.exitCode === null) {
        proc.kill('SIGTERM');
        await new Promise((r) => proc.once('exit', r));
      }
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
