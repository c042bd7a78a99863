// The SDK as another project gets it: npm pack of this checkout (prepack builds
// dist/), `npm install <tgz>` into a fresh project, then
//  (a) a plain .mjs program imports 'pilot-overlay/sdk' from node_modules, runs
//      two embedded nodes against a real rendezvous, trusts, dials and echoes;
//  (b) tsc --strict type-checks a .ts consumer against the installed .d.ts files.
// Both would fail if the package shipped only .ts sources (Node does not strip
// types inside node_modules) or if dist/ were missing from the tarball.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, run, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { installInProject, npmEnv, packTarball } from '../helpers/package.ts';

const CONSUMER_MJS = `
import { startNode, PilotError } from 'pilot-overlay/sdk';
const [registry, dir] = process.argv.slice(2);
const opts = (n) => ({ home: dir + '/' + n, registry, email: n + '@example.com', hostname: 'consumer-' + n, listen: '127.0.0.1:0', logger: 'silent' });
const a = await startNode(opts('a'));
const b = await startNode(opts('b'));
await a.watch();
const approved = new Promise((r) => a.once('trust-approved', r));
await a.handshake(b.address, 'package consumer test');
await b.approve(a.address);
await approved;
const srv = await b.listen(7000, (s) => s.pipe(s));
const sock = await a.dial(b.address, 7000);
sock.end('hello from a package consumer');
let reply = '';
for await (const chunk of sock) reply += chunk;
let refused;
try {
  await a.dial(b.address, 7999);
} catch (err) {
  refused = err instanceof PilotError ? err.code : String(err);
}
console.log(JSON.stringify({ reply, from: sock.remoteAddress, b: b.address, refused }));
await srv.close();
await a.close();
await b.close();
`;

// Typed use of the public surface; the last line must be a type error (checked below).
const CONSUMER_TS = `
import { connect, startNode, PilotError, type PilotNode, type PilotSocket, type ErrorCode } from 'pilot-overlay/sdk';

async function echo(node: PilotNode, target: string): Promise<string> {
  const sock: PilotSocket = await node.dial(target, 7000, { timeoutMs: 5000 });
  sock.end('hi');
  let out = '';
  for await (const chunk of sock) out += String(chunk);
  return out;
}

export async function main(): Promise<void> {
  const node = process.env.EMBED ? await startNode({ home: './home', registry: 'rdv.example:9000', email: 'me@example.com' }) : await connect();
  try {
    console.log(await echo(node, 'agent-alpha'), node.address);
  } catch (err) {
    if (err instanceof PilotError) {
      const code: ErrorCode = err.code;
      console.error(code, err.hint);
    }
  }
  await node.close();
}
export const wrong: number = (await connect()).address; // TS2322: address is a string
`;

test('npm pack + npm install in another project: the SDK imports from node_modules, runs and type-checks', { timeout: 240_000 }, async () => {
  const work = tmpDir('pilot-consumer-');
  const home = path.join(work, 'home');
  const proj = path.join(work, 'project');
  fs.mkdirSync(home);
  const env = npmEnv(home);
  let rdv: Rendezvous | undefined;
  try {
    const t0 = Date.now();
    const tgz = packTarball(work, env);
    const t1 = Date.now();
    const typesNode = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).devDependencies['@types/node'] as string;
    installInProject(proj, [tgz, `@types/node@${typesNode}`], env);
    const t2 = Date.now();
    process.stdout.write(
      `# npm pack (with the prepack build): ${((t1 - t0) / 1000).toFixed(1)} s; npm install of the tarball: ${((t2 - t1) / 1000).toFixed(1)} s\n`,
    );
    const installed = path.join(proj, 'node_modules', 'pilot-overlay');
    assert.ok(fs.existsSync(path.join(installed, 'dist', 'sdk', 'index.js')), 'dist/ is in the tarball');
    assert.ok(fs.existsSync(path.join(installed, 'dist', 'sdk', 'index.d.ts')), 'declarations are in the tarball');

    // (a) plain JavaScript, from node_modules, with the Node running this test
    rdv = await startRendezvous();
    fs.writeFileSync(path.join(proj, 'consumer.mjs'), CONSUMER_MJS);
    const r = await run([process.execPath, path.join(proj, 'consumer.mjs'), rdv.addr, path.join(work, 'nodes')], {}, 60_000);
    assert.equal(r.code, 0, `consumer.mjs failed:\n${r.stdout}\n${r.stderr}`);
    assert.doesNotMatch(r.stderr, /ExperimentalWarning|strip/i, 'no type stripping involved');
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    assert.equal(out.reply, 'hello from a package consumer');
    assert.equal(out.from, out.b);
    assert.equal(out.refused, 'CONNECTION_REFUSED');
    const t3 = Date.now();

    // (b) TypeScript, strict, against the installed declarations only (skipLibCheck off: they must check too)
    fs.writeFileSync(path.join(proj, 'consumer.ts'), CONSUMER_TS);
    const tsconfig = {
      compilerOptions: { target: 'es2023', module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: false, types: ['node'] },
      files: ['consumer.ts'],
    };
    fs.writeFileSync(path.join(proj, 'tsconfig.json'), JSON.stringify(tsconfig));
    const tsc = await run([process.execPath, path.join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', path.join(proj, 'tsconfig.json')], {}, 60_000);
    const errors = tsc.stdout
      .trim()
      .split('\n')
      .filter((l) => /error TS/.test(l));
    // exactly the one planted error: the SDK's types resolved and are precise
    assert.equal(errors.length, 1, tsc.stdout);
    assert.match(errors[0]!, /consumer\.ts\(\d+,\d+\): error TS2322: Type 'string' is not assignable to type 'number'/);
    process.stdout.write(`# consumer.mjs dial/echo: ${((t3 - t2) / 1000).toFixed(1)} s; tsc: ${((Date.now() - t3) / 1000).toFixed(1)} s\n`);
  } finally {
    await rdv?.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
});
