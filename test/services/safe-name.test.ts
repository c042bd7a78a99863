// File names from the network: only a plain name inside the target directory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { numberedName, sanitizeFileName, MAX_NAME } from '../../src/services/safe-name.ts';

test('hostile names become plain names', () => {
  const cases: Array<[unknown, string]> = [
    ['report.pdf', 'report.pdf'],
    ['../../etc/passwd', 'passwd'],
    ['/etc/shadow', 'shadow'],
    ['..\\..\\windows\\win.ini', 'win.ini'],
    ['a/b/../../c.txt', 'c.txt'],
    ['dir/', 'dir'],
    ['.', 'file'],
    ['..', 'file'],
    ['...', 'file'],
    ['.hidden', 'hidden'],
    ['', 'file'],
    [null, 'file'],
    [42, 'file'],
    ['nul\u0000byte', 'nul_byte'],
    ['semi;colon $(rm -rf) `x`', 'semi_colon___rm_-rf___x_'],
    ['ünï.txt', '_n_.txt'],
    ['line\nbreak', 'line_break'],
  ];
  for (const [raw, want] of cases) assert.equal(sanitizeFileName(raw), want, JSON.stringify(raw));
});

test('every result is a single safe path component of bounded length', () => {
  const long = 'y'.repeat(10_000) + '.tar.gz';
  const n = sanitizeFileName(long);
  assert.equal(n.length, MAX_NAME);
  assert.ok(n.endsWith('.gz'));
  for (const raw of [long, '../'.repeat(1000), '\u0000'.repeat(50), '/'.repeat(10), 'a'.repeat(255) + '/..']) {
    const s = sanitizeFileName(raw);
    assert.ok(s.length >= 1 && s.length <= MAX_NAME);
    assert.match(s, /^[A-Za-z0-9_-][A-Za-z0-9._-]*$/);
    assert.equal(path.basename(s), s);
    assert.equal(path.resolve('/base', s), path.join('/base', s));
  }
});

test('numbered alternatives keep the extension', () => {
  assert.equal(numberedName('a.txt', 0), 'a.txt');
  assert.equal(numberedName('a.txt', 1), 'a-1.txt');
  assert.equal(numberedName('archive.tar.gz', 2), 'archive.tar-2.gz');
  assert.equal(numberedName('README', 3), 'README-3');
});
