// Optional peer dependencies (stores, MCP SDK, prom-client): a missing one is a
// MISSING_DEPENDENCY error whose hint is the npm command for where this package
// is installed; anything else a loader throws passes through unchanged.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { importOptional, installCommand, isMissingPackage } from '../../src/util/optional-dep.ts';
import { PilotError } from '../../src/util/errors.ts';

test('installCommand: beside a global install (default or --prefix), in a project, in a checkout', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'pilot-optdep-'));
  try {
    const pkg = path.join(dir, 'usr', 'lib', 'node_modules', 'pilot-overlay');
    fs.mkdirSync(pkg, { recursive: true });
    fs.writeFileSync(path.join(pkg, 'package.json'), JSON.stringify({ peerDependencies: { 'better-sqlite3': '^13.2.0', odd: '*' } }));
    // npm's default global prefix is the one above the running node's bin/
    assert.equal(installCommand('better-sqlite3', pkg, path.join(dir, 'usr', 'bin', 'node')), 'npm i -g better-sqlite3@13');
    assert.equal(installCommand('better-sqlite3', pkg, '/opt/node/bin/node'), `npm i -g --prefix ${path.join(dir, 'usr')} better-sqlite3@13`);
    assert.equal(installCommand('odd', pkg, '/opt/node/bin/node'), `npm i -g --prefix ${path.join(dir, 'usr')} odd`);
    assert.equal(installCommand('pg', '/srv/app/node_modules/pilot-overlay'), 'npm i pg (in /srv/app)');
    assert.equal(installCommand('pg', '/home/me/pilot'), 'npm install (in /home/me/pilot)');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('importOptional: a missing package is MISSING_DEPENDENCY with the install hint; other errors pass through', async () => {
  const missing = 'pilot-no-such-package-4f2a';
  await assert.rejects(
    importOptional(missing, 'the frobnicator', () => import(missing), 'use --no-frob'),
    (err: unknown) => {
      assert.ok(err instanceof PilotError);
      assert.equal(err.code, 'MISSING_DEPENDENCY');
      assert.equal(err.message, `the frobnicator needs the ${missing} package, which is not installed`);
      assert.match(err.hint ?? '', /^install it: npm .*; or use --no-frob$/);
      return true;
    },
  );
  // a module that fails for another reason, or another package missing: not this error
  const boom = new Error('boom');
  await assert.rejects(
    importOptional('pg', 'x', () => Promise.reject(boom)),
    (err) => err === boom,
  );
  await assert.rejects(
    importOptional('pg', 'x', () => import(missing)),
    (err: unknown) => !(err instanceof PilotError),
  );
  assert.equal(await importOptional('zod', 'x', async () => 42), 42);
});

test('isMissingPackage matches the package, not a longer name or another error', () => {
  const e = (message: string) => Object.assign(new Error(message), { code: 'ERR_MODULE_NOT_FOUND' });
  assert.equal(isMissingPackage(e("Cannot find package 'pg' imported from /x/y.js"), 'pg'), true);
  assert.equal(isMissingPackage(e("Cannot find package 'pg-pool' imported from /x/y.js"), 'pg'), false);
  assert.equal(isMissingPackage(e("Cannot find package '@modelcontextprotocol/sdk' imported from /x"), '@modelcontextprotocol/sdk'), true);
  assert.equal(isMissingPackage(new Error("Cannot find package 'pg'"), 'pg'), false);
});
