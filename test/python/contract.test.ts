// The Python package's contract table (python/pilot/_contract.py) is what
// scripts/python-contract.ts writes from the TypeScript contract now: a method,
// parameter, event or error code added or renamed on the TypeScript side fails
// here until the table is regenerated (the Python client checks its calls
// against the table, so it cannot send what the daemon no longer takes).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { CONTRACT_FILE, contractTable, renderContract } from '../../scripts/python-contract.ts';

test('python/pilot/_contract.py matches the TypeScript IPC contract', () => {
  assert.equal(fs.readFileSync(CONTRACT_FILE, 'utf8'), renderContract(), 'out of date: run node scripts/python-contract.ts');
});

test('the table holds what the Python API uses', () => {
  const t = contractTable();
  assert.deepEqual(t.methods.sdk_dial, ['port', 'target', 'timeoutMs']);
  assert.deepEqual(t.methods.send, ['target', 'port', 'data', 'encoding', 'srcPort']);
  assert.deepEqual(t.events.sdk_listen, ['listening', 'connection', 'alive']);
  for (const code of ['NO_DAEMON', 'NOT_TRUSTED', 'CONNECTION_REFUSED', 'UNSAFE_SOCKET', 'TIMEOUT']) assert.ok(t.errors.includes(code), code);
});
