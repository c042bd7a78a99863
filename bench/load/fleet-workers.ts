// The fleet bench's workers in a process of their own (bench/fleet.bench.ts): in the generator's
// process they shared one event loop with the 1,000 agents and the churners, and under churn their
// sockets backed up (3-4 MB unread each), so the bench measured itself. Each worker joins with the
// token, listens on the port and answers each request with one line; "ready" once all are up.
//   node bench/load/fleet-workers.ts <json: { token, port, workers: [{ home, registry, listen, email, hostname }] }>
import { startNode, type PilotNode } from '../../src/sdk/index.ts';

interface Spec {
  token: string;
  port: number;
  workers: { home: string; registry: string; listen: string; email: string; hostname: string }[];
}

const spec = JSON.parse(process.argv[2] ?? '{}') as Spec;
const nodes: PilotNode[] = [];
for (const w of spec.workers) {
  const n = await startNode({ home: w.home, registry: w.registry, listen: w.listen, email: w.email, hostname: w.hostname, join: spec.token, logger: 'silent' });
  nodes.push(n);
  await n.listen(spec.port, (s) => {
    s.once('data', () => s.end('done\n'));
    s.on('error', () => {});
  });
}
process.stdout.write('ready\n');
const stop = async (): Promise<void> => {
  await Promise.all(nodes.map((n) => n.close().catch(() => {})));
  process.exit(0);
};
process.once('SIGTERM', () => void stop());
process.once('SIGINT', () => void stop());
