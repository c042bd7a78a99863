// bin/launch.js picks the file a bin runs, in this process (never a second
// Node): an installed package runs its compiled dist/; a source checkout on a
// Node that strips types runs src/ (never a stale dist/ from an earlier pack).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

type EntryFile = (entry: string, opts?: { root?: string; canStrip?: boolean }) => string | undefined;
const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const { entryFile } = (await import(pathToFileURL(path.join(ROOT, 'bin', 'launch.js')).href)) as { entryFile: EntryFile };

function tree(root: string, files: string[]): string {
  for (const f of files) {
    fs.mkdirSync(path.dirname(path.join(root, f)), { recursive: true });
    fs.writeFileSync(path.join(root, f), '');
  }
  return root;
}

test('entryFile: dist/ inside node_modules, src/ in a checkout that can strip types, dist/ otherwise', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-launch-'));
  try {
    const both = ['src/cli/pilotctl.ts', 'dist/cli/pilotctl.js'];
    const installed = tree(path.join(dir, 'lib', 'node_modules', 'pilot-overlay'), both);
    assert.equal(entryFile('cli/pilotctl', { root: installed, canStrip: true }), path.join(installed, 'dist', 'cli', 'pilotctl.js'));
    const checkout = tree(path.join(dir, 'pilot'), both);
    assert.equal(entryFile('cli/pilotctl', { root: checkout, canStrip: true }), path.join(checkout, 'src', 'cli', 'pilotctl.ts'));
    assert.equal(entryFile('cli/pilotctl', { root: checkout, canStrip: false }), path.join(checkout, 'dist', 'cli', 'pilotctl.js'));
    const unbuilt = tree(path.join(dir, 'unbuilt'), ['src/cli/pilotctl.ts']);
    assert.equal(entryFile('cli/pilotctl', { root: unbuilt, canStrip: false }), undefined);
    assert.equal(entryFile('cli/pilotctl', { root: path.join(dir, 'lib', 'node_modules', 'empty') }), undefined);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the bins go through launch() with an extension-less entry that exists in src/', () => {
  for (const [bin, entry] of [
    ['pilotctl.js', 'cli/pilotctl'],
    ['pilot-rendezvous.js', 'rendezvous/main'],
  ]) {
    const text = fs.readFileSync(path.join(ROOT, 'bin', bin!), 'utf8');
    assert.match(text, /^#!\/usr\/bin\/env node\n/);
    assert.ok(text.includes(`launch('${entry}')`), `${bin} launches ${entry}`);
    assert.ok(fs.existsSync(path.join(ROOT, 'src', `${entry}.ts`)));
    assert.doesNotMatch(text, /spawn/);
  }
  assert.doesNotMatch(fs.readFileSync(path.join(ROOT, 'bin', 'launch.js'), 'utf8'), /child_process/, 'no second process');
});
