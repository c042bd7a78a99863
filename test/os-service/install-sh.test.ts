// install.sh: POSIX syntax, usage, and its refusals (the full run is in global-install.test.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, tmpDir } from '../helpers/cluster.ts';

const SCRIPT = path.join(ROOT, 'install.sh');
const sh = (args: string[], env: NodeJS.ProcessEnv = process.env) => spawnSync('sh', [SCRIPT, ...args], { env, encoding: 'utf8' });

test('install.sh parses with sh -n and dash -n', () => {
  for (const shell of ['sh', 'dash', 'bash']) {
    const r = spawnSync(shell, ['-n', SCRIPT], { encoding: 'utf8' });
    if (r.error) continue; // that shell is not installed
    assert.equal(r.status, 0, `${shell} -n: ${r.stderr}`);
  }
});

test('install.sh --help, bad options, missing node/npm', () => {
  const help = sh(['--help']);
  assert.equal(help.status, 0);
  assert.match(help.stdout, /sh install\.sh \[SOURCE\]/);
  const bad = sh(['--frobnicate']);
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /unknown option --frobnicate/);
  const noArg = sh(['--email']);
  assert.equal(noArg.status, 1);
  assert.match(noArg.stderr, /--email needs an address/);
  // A PATH with sh but no node: a clear refusal before anything is installed.
  const bin = tmpDir('pilot-nonode-');
  try {
    for (const tool of ['dirname', 'sh'])
      fs.symlinkSync(spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim(), path.join(bin, tool));
    const r = spawnSync(path.join(bin, 'sh'), [SCRIPT], { env: { PATH: bin }, encoding: 'utf8' });
    assert.equal(r.status, 1);
    assert.match(r.stderr, /node is not installed/);
  } finally {
    fs.rmSync(bin, { recursive: true, force: true });
  }
});
