// Issue 15, hole 3: a public daemon as an amplifier. An untrusted peer opens a
// session with a public daemon (echo, which anyone may) and announces a victim's
// addresses as its candidates with nat "edm": the daemon probed them and sprayed
// ~1,536 birthday probes at random ports of the victim every 30 s. Now nothing
// untrusted peers announce is probed. Real rendezvous, real daemon, real
// attacker process, in a namespace with the victim one veth away; the kernel's counters (OUTPUT
// at the daemon, INPUT at the victim) say what was sent toward it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { Lab, netnsSupport } from '../helpers/netns.ts';
import { Agent, ROOT, run, startRendezvous, tmpDir } from '../helpers/cluster.ts';

const support = netnsSupport();
const VICTIM = '203.0.113.99';
const RDV = '198.51.100.1';
const TARGET = '198.51.100.10';
const ATTACKER = '198.51.100.20';
const ATTACK_SECONDS = 8;

function counter(lab: Lab, ns: string, match: string, chain = 'OUTPUT'): { packets: number; bytes: number } {
  const out = lab.exec(ns, ['iptables', '-L', chain, '-v', '-n', '-x']);
  for (const line of out.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (line.includes(match)) return { packets: Number(f[0]), bytes: Number(f[1]) };
  }
  throw new Error(`no counter for ${match}:\n${out}`);
}

test('an untrusted peer announcing a victim with nat edm makes a public daemon send nothing toward it', {
  skip: support.ok ? false : support.reason,
  timeout: 90_000,
}, async () => {
  const lab = new Lab();
  const work = tmpDir('pilot-amp-');
  try {
    const ns = lab.ns('amp');
    const victimNs = lab.ns('victim');
    lab.sh(
      ns,
      [
        `ip addr add ${RDV}/32 dev lo`,
        `ip addr add ${TARGET}/32 dev lo`,
        `ip addr add ${ATTACKER}/32 dev lo`,
        // the victim's network, one veth away
        `ip link add v0 type veth peer name v1 netns ${victimNs}`,
        'ip addr add 203.0.113.1/24 dev v0',
        'ip link set v0 up',
        `iptables -A OUTPUT -d ${VICTIM}/32 -p udp -m comment --comment victim`,
        `iptables -A OUTPUT -s ${ATTACKER}/32 -p udp -m comment --comment attacker`,
        // the attacker reaches the target only through the relay (as from behind a firewall):
        // its session then stays on the relay, where the target punches toward the candidates
        `iptables -A OUTPUT -s ${ATTACKER}/32 -d ${TARGET}/32 -j DROP`,
      ].join('; '),
    );
    lab.sh(victimNs, [`ip addr add ${VICTIM}/24 dev v1`, 'ip link set v1 up', 'iptables -A INPUT -p udp -m comment --comment victim'].join('; '));
    const rdv = await startRendezvous({ netns: ns, listen: `${RDV}:9000` });
    const target = new Agent('amp-target', work, ns);
    try {
      await target.start(['--registry', `${RDV}:9000`, '--email', 'target@example.com', '--hostname', 'amp-target', '--public', '--listen', `${TARGET}:0`]);
      const attack = await run(
        [
          'ip',
          'netns',
          'exec',
          ns,
          process.execPath,
          path.join(ROOT, 'test/helpers/forged-candidates.ts'),
          path.join(work, 'attacker'),
          `${RDV}:9000`,
          `${ATTACKER}:0`,
          target.address,
          VICTIM,
          String(ATTACK_SECONDS),
        ],
        {},
        60_000,
      );
      assert.equal(attack.code, 0, attack.stderr);
      const a = JSON.parse(attack.stdout.trim().split('\n').pop()!) as { forged: number; echoes: number };
      assert.ok(a.forged >= ATTACK_SECONDS - 2 && a.echoes >= 1, `the attack ran inside a working session: ${attack.stdout}`);
      // birthday probing paces itself over ~1.6 s after a punching round: give it time
      await new Promise((r) => setTimeout(r, 2500));
      const toVictim = counter(lab, ns, '/* victim */');
      const atVictim = counter(lab, victimNs, '/* victim */', 'INPUT');
      const fromAttacker = counter(lab, ns, '/* attacker */');
      const stats = await target.ctl(['stats']);
      console.log(JSON.stringify({ toVictim, atVictim, fromAttacker, ratio: toVictim.bytes / fromAttacker.bytes }));
      assert.ok(fromAttacker.bytes > 0);
      assert.equal(atVictim.packets, 0, `the victim received ${atVictim.packets} packets (${atVictim.bytes} bytes)`);
      assert.equal(
        toVictim.packets,
        0,
        `packets toward the victim: ${toVictim.packets} (${toVictim.bytes} bytes, attacker sent ${fromAttacker.bytes}); target stats ${stats.stdout}`,
      );
    } finally {
      await target.stop();
      await rdv.kill();
    }
  } finally {
    lab.cleanup();
    fs.rmSync(work, { recursive: true, force: true });
  }
});
