// pilotctl init / config / config --set as real processes on a temp $PILOT_HOME.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, run, tmpDir } from '../helpers/cluster.ts';
import { CONFIG_KEYS } from '../../src/cli/commands/config.ts';

function ctl(home: string, args: string[]) {
  return run([process.execPath, path.join(ROOT, 'src/cli/pilotctl.ts'), '--json', ...args], { PILOT_HOME: home, PILOT_SOCKET: '' });
}

test('init writes a validated config; config prints it; --set changes and validates', async () => {
  const home = path.join(tmpDir('pilot-cfg-'), 'h');
  try {
    const none = await ctl(home, ['config']);
    assert.equal(none.code, 1);
    assert.equal(none.json.code, 'NOT_FOUND');
    assert.match(none.json.hint, /pilotctl init/);

    const noEmail = await ctl(home, ['init']);
    assert.equal(noEmail.json.code, 'BAD_ARGUMENT');
    assert.equal(noEmail.code, 2);
    const badEmail = await ctl(home, ['init', '--email', 'not-an-email']);
    assert.equal(badEmail.json.code, 'BAD_ARGUMENT');
    assert.match(badEmail.json.message, /email/);
    assert.equal(fs.existsSync(path.join(home, 'config.json')), false, 'nothing written on a bad value');

    const init = await ctl(home, ['init', '--registry', 'rdv.example:9000', '--email', 'me@example.com', '--hostname', 'Agent-One']);
    assert.equal(init.code, 0, init.stderr);
    const file = path.join(home, 'config.json');
    assert.equal(init.json.data.path, file);
    const saved = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.deepEqual(saved, {
      registry: 'rdv.example:9000',
      email: 'me@example.com',
      hostname: 'agent-one',
      public: false,
      listen: '0.0.0.0:0',
      uplink: 'auto',
    });
    assert.equal(fs.statSync(file).mode & 0o777, 0o600);

    const again = await ctl(home, ['init', '--email', 'x@example.com']);
    assert.equal(again.json.code, 'BAD_ARGUMENT');
    assert.match(again.json.hint, /config --set/);

    const show = await ctl(home, ['config']);
    assert.equal(show.code, 0);
    assert.deepEqual(show.json.data.config, saved);

    const set = await ctl(home, ['config', '--set', 'public=true', '--set', 'uplink=tcp', '--set', 'beacon=10.0.0.1:9001']);
    assert.equal(set.code, 0, set.stderr);
    assert.deepEqual(set.json.data.changed, ['public', 'uplink', 'beacon']);
    const after = JSON.parse(fs.readFileSync(file, 'utf8'));
    assert.equal(after.public, true);
    assert.equal(after.uplink, 'tcp');
    assert.equal(after.beacon, '10.0.0.1:9001');

    // issue 19: interfaces to advertise although they look like tunnels; a bad name is refused, naming itself
    const ifs = await ctl(home, ['config', '--set', 'candidateInterfaces=nebula1,wg0']);
    assert.equal(ifs.code, 0, ifs.stderr);
    const badIf = await ctl(home, ['config', '--set', 'candidateInterfaces=eth0,no such']);
    assert.equal(badIf.json.code, 'BAD_ARGUMENT');
    assert.match(badIf.json.message, /no such/);
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).candidateInterfaces, 'nebula1,wg0');
    await ctl(home, ['config', '--set', 'candidateInterfaces=']);

    const unset = await ctl(home, ['config', '--set', 'beacon=']);
    assert.equal(unset.code, 0);
    assert.equal('beacon' in JSON.parse(fs.readFileSync(file, 'utf8')), false);

    // Every bad input: coded error, hint, file unchanged.
    const before = fs.readFileSync(file, 'utf8');
    const cases: Array<[string, RegExp]> = [
      ['colour=blue', /unknown config key "colour"/],
      ['uplink=carrier-pigeon', /uplink/],
      ['public=maybe', /public: expected true or false/],
      ['registry=no-port-here:xx', /registry/],
      ['email=nope', /email/],
      ['email=', /email/],
      ['hostname=42', /invalid hostname/],
      ['justakey', /expected key=value/],
    ];
    for (const [arg, msg] of cases) {
      const r = await ctl(home, ['config', '--set', arg]);
      assert.equal(r.code, 2, arg); // a value error: nothing written
      assert.equal(r.json.code, 'BAD_ARGUMENT', arg);
      assert.match(r.json.message, msg, arg);
      assert.ok(r.json.hint, `hint for ${arg}`);
      assert.equal(fs.readFileSync(file, 'utf8'), before, `unchanged after ${arg}`);
    }

    const force = await ctl(home, ['init', '--force', '--email', 'new@example.com']);
    assert.equal(force.code, 0, force.stderr);
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).email, 'new@example.com');
  } finally {
    fs.rmSync(path.dirname(home), { recursive: true, force: true });
  }
});

test('--no-portmap is saved as portmap: false; config --set portmap=true turns it back on; a non-boolean is refused', async () => {
  const home = path.join(tmpDir('pilot-cfg-'), 'h');
  try {
    const init = await ctl(home, ['init', '--registry', 'rdv.example:9000', '--email', 'me@example.com', '--no-portmap']);
    assert.equal(init.code, 0, init.stderr);
    const file = path.join(home, 'config.json');
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).portmap, false);
    const on = await ctl(home, ['config', '--set', 'portmap=true']);
    assert.equal(on.code, 0, on.stderr);
    assert.equal(JSON.parse(fs.readFileSync(file, 'utf8')).portmap, true);
    const bad = await ctl(home, ['config', '--set', 'portmap=maybe']);
    assert.equal(bad.json.code, 'BAD_ARGUMENT');
    // Without the flag nothing is written: absent = on.
    const home2 = path.join(tmpDir('pilot-cfg-'), 'h');
    await ctl(home2, ['init', '--registry', 'rdv.example:9000', '--email', 'me@example.com']);
    assert.equal('portmap' in JSON.parse(fs.readFileSync(path.join(home2, 'config.json'), 'utf8')), false);
    fs.rmSync(path.dirname(home2), { recursive: true, force: true });
  } finally {
    fs.rmSync(path.dirname(home), { recursive: true, force: true });
  }
});

test('docs/CONFIG.md documents every config key', () => {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/CONFIG.md'), 'utf8');
  for (const k of CONFIG_KEYS) assert.match(doc, new RegExp(`^\\| \`${k}\` \\|`, 'm'), `docs/CONFIG.md lacks ${k}`);
});
