// Hole 9 figures: what one trusted peer's floods cost the receiving daemon
// (RSS, disk), next to the same daemon idle. Real daemons and rendezvous on
// loopback; the flooding peer speaks raw frames through dial pipes.
//   node bench/quota-floods.bench.ts [--subs N] [--events N] [--tasks N]
// Prints one JSON line per flood.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { startRendezvous, tmpDir, type Agent } from '../test/helpers/cluster.ts';
import { startAgent, trustEachOther } from '../test/services/helpers.ts';
import { ask, dirBytes, rssOf, type RawStream } from '../test/security/quota-helpers.ts';

const arg = (name: string, def: number): number => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : def;
};
const SUBS = arg('subs', 256);
const EVENTS = arg('events', 400);
const TASKS = arg('tasks', 2000);
const MB = (n: number): number => Math.round(n / 1e5) / 10;
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

async function settleRss(b: Agent): Promise<number> {
  await sleep(2000);
  return rssOf(b.pid);
}

const work = tmpDir('pilot-bench-quota-');
const rdv = await startRendezvous();
const agents: Agent[] = [];
try {
  const a = await startAgent(rdv, work, 'qb-alpha');
  agents.push(a);
  // a fresh receiver per flood, so each flood has its own idle baseline
  let b = await startAgent(rdv, work, 'qb-beta');
  agents.push(b);
  await trustEachOther(a, b);

  // ---- pub/sub: as many subscriptions as we get, never read; then 60 KiB events ----
  const idle = await settleRss(b);
  const open: RawStream[] = [];
  let subs = 0;
  let subRefusal = '';
  for (let i = 0; i < SUBS; i++) {
    const { answer, stream } = await ask(a, b, 1002, { op: 'subscribe', topic: 'flood.*' }, false);
    open.push(stream);
    if (answer.ok !== true) {
      subRefusal = String(answer.code);
      break;
    }
    subs++;
    stream.socket.pause(); // a subscriber that never reads
  }
  const data = crypto.randomBytes(45 * 1024).toString('base64'); // 60 KiB of text
  let peak = 0;
  for (let i = 0; i < EVENTS; i++) {
    await ask(a, b, 1002, { op: 'publish', topic: 'flood.x', data });
    if (i % 20 === 0) peak = Math.max(peak, rssOf(b.pid));
  }
  peak = Math.max(peak, await settleRss(b));
  console.log(
    JSON.stringify({
      flood: 'pubsub',
      subscriptions: subs,
      refusedWith: subRefusal || null,
      events: EVENTS,
      eventBytes: data.length,
      idleRssMB: MB(idle),
      floodRssMB: MB(peak),
    }),
  );
  for (const s of open) s.socket.destroy();
  await b.stop();
  b = await startAgent(rdv, work, 'qb-beta2');
  agents.push(b);
  await trustEachOther(a, b);

  // ---- tasks: 64 KiB descriptions until refused ----
  const idle2 = await settleRss(b);
  const disk0 = dirBytes(b.home);
  const description = 'x'.repeat(64 * 1024);
  let tasks = 0;
  let taskRefusal = '';
  let peak2 = 0;
  for (let i = 0; i < TASKS; i++) {
    const { answer } = await ask(a, b, 1003, { op: 'submit', id: crypto.randomUUID(), description });
    if (answer.ok !== true) {
      taskRefusal = String(answer.code);
      break;
    }
    tasks++;
    if (i % 50 === 0) peak2 = Math.max(peak2, rssOf(b.pid));
  }
  peak2 = Math.max(peak2, await settleRss(b));
  console.log(
    JSON.stringify({
      flood: 'tasks',
      tasks,
      refusedWith: taskRefusal || null,
      idleRssMB: MB(idle2),
      floodRssMB: MB(peak2),
      idleDiskMiB: Math.round((disk0 / 1048576) * 10) / 10,
      floodDiskMiB: Math.round((dirBytes(b.home) / 1048576) * 10) / 10,
    }),
  );
} finally {
  for (const x of agents) await x.stop();
  await rdv.kill();
  fs.rmSync(path.join(work), { recursive: true, force: true });
}
