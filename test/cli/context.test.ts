// `pilotctl context` (what agents read to learn the CLI) lists the upstream-parity commands of
// issue 21 with their arguments, and every command docs/CLI.md's upstream table names as the
// Pilot equivalent exists: the table cannot point at a command that is not there.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { main } from '../../src/cli/main.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

interface Cmd {
  name: string;
  args: string[];
  options: string[];
}

async function context(): Promise<Cmd[]> {
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  process.stdout.write = ((chunk: string | Uint8Array) => {
    out += String(chunk);
    return true;
  }) as typeof process.stdout.write;
  try {
    assert.equal(await main(['--json', 'context']), 0);
  } finally {
    process.stdout.write = write;
  }
  return JSON.parse(out).data.commands;
}

test('context lists connections, disconnect, traceroute, broadcast and lookup with their arguments', async () => {
  const byName = new Map((await context()).map((c) => [c.name, c]));
  assert.deepEqual(byName.get('connections')?.args, []);
  assert.deepEqual(byName.get('disconnect')?.args, ['<id>']);
  assert.deepEqual(byName.get('traceroute')?.args, ['<target>']);
  assert.deepEqual(byName.get('traceroute')?.options, ['--count <n>', '--timeout <d>', '--json']);
  assert.deepEqual(byName.get('broadcast')?.args, ['<network>', '<port>']);
  assert.ok(byName.get('broadcast')?.options.includes('--data <text>'));
  assert.deepEqual(byName.get('lookup')?.args, ['<target>']);
});

test("every Pilot command in docs/CLI.md's upstream table exists", async () => {
  const names = new Set((await context()).map((c) => c.name));
  const doc = fs.readFileSync(path.join(ROOT, 'docs/CLI.md'), 'utf8');
  const table = doc.slice(doc.indexOf('## Upstream command table'));
  let rows = 0;
  for (const line of table.split('\n')) {
    const cells = line.split('|').map((c) => c.trim());
    if (cells.length < 4 || !cells[1]!.startsWith('`')) continue;
    rows++;
    const pilot = /^`([^`]+)`/.exec(cells[2]!)?.[1];
    if (pilot === undefined) {
      assert.equal(cells[2], 'none', line);
      assert.ok(cells[3]!.length > 0, `say why there is none: ${line}`);
      continue;
    }
    const words: string[] = [];
    for (const w of pilot.split(' ')) {
      if (/^[<[-]/.test(w)) break;
      words.push(w);
    }
    assert.ok(names.has(words.join(' ')), `${words.join(' ')} (from: ${line})`);
  }
  assert.ok(rows >= 55, `${rows} rows`);
});
