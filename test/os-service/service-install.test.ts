// `pilotctl service install|status|uninstall` as a real process in a clean
// temp $HOME. This machine has no running systemd: the unit is written, the
// result says so, and nothing calls systemctl.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, run, tmpDir } from '../helpers/cluster.ts';
import { detectInitSystem } from '../../src/os-service/init-system.ts';
import { installService, uninstallService } from '../../src/os-service/service-manager.ts';
import { DAEMON_MAIN } from '../../src/os-service/daemon-command.ts';

const NODE = process.execPath;
const noSystemd = detectInitSystem() === 'none';

function ctl(home: string, args: string[]) {
  return run([NODE, path.join(ROOT, 'src/cli/pilotctl.ts'), '--json', ...args], {
    HOME: home,
    PILOT_HOME: path.join(home, '.pilot'),
    PILOT_SOCKET: path.join(home, 'none.sock'),
  });
}

test('service install/status/uninstall: user unit in a clean HOME', {
  skip: noSystemd ? false : 'systemd is running here: this test would touch the real user manager',
}, async () => {
  const home = tmpDir('pilot-svc-');
  try {
    const unit = path.join(home, '.config/systemd/user/pilot-daemon.service');
    const inst = await ctl(home, ['service', 'install']);
    assert.equal(inst.code, 0, inst.stderr);
    const d = inst.json.data;
    assert.equal(d.path, unit);
    assert.equal(d.managed, false);
    assert.equal(d.hasConfig, false);
    assert.match(d.message, /systemd is not running on this machine: wrote .*pilot-daemon\.service/);
    assert.deepEqual(d.steps, []);
    const text = fs.readFileSync(unit, 'utf8');
    assert.match(text, new RegExp(`^ExecStart=${NODE} --max-semi-space-size=1 --single-threaded-gc ${DAEMON_MAIN} --home ${home}/\\.pilot --log-stdout$`, 'm'));
    assert.match(text, new RegExp(`^Environment=PILOT_HOME=${home}/\\.pilot$`, 'm'));
    assert.match(text, /^Restart=on-failure$/m);

    const st = await ctl(home, ['service', 'status']);
    assert.equal(st.code, 0, st.stderr);
    assert.equal(st.json.data.installed, true);
    assert.equal(st.json.data.init, 'none');
    assert.equal(st.json.data.state, null);
    assert.equal(st.json.data.daemon.running, false);

    const un = await ctl(home, ['service', 'uninstall']);
    assert.equal(un.code, 0, un.stderr);
    assert.equal(fs.existsSync(unit), false);
    assert.match(un.json.data.message, /^removed /);
    const again = await ctl(home, ['service', 'uninstall']);
    assert.match(again.json.data.message, /nothing to remove/);
    const st2 = await ctl(home, ['service', 'status']);
    assert.equal(st2.json.data.installed, false);
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test('service install --launchd writes the plist into ~/Library/LaunchAgents', async () => {
  const home = tmpDir('pilot-svc-');
  try {
    const r = await ctl(home, ['service', 'install', '--launchd']);
    assert.equal(r.code, 0, r.stderr);
    const plist = path.join(home, 'Library/LaunchAgents/network.pilot.daemon.plist');
    assert.equal(r.json.data.path, plist);
    const text = fs.readFileSync(plist, 'utf8');
    assert.match(text, new RegExp(`<string>${DAEMON_MAIN}</string>`));
    assert.match(text, /<key>SuccessfulExit<\/key><false\/>/);
    if (process.platform !== 'darwin') assert.equal(r.json.data.managed, false);
    const bad = await ctl(home, ['service', 'install', '--launchd', '--systemd']);
    assert.equal(bad.code, 2);
    assert.equal(bad.json.code, 'BAD_ARGUMENT');
    const sys = await ctl(home, ['service', 'install', '--launchd', '--system']);
    assert.equal(sys.json.code, 'BAD_ARGUMENT');
  } finally {
    fs.rmSync(home, { recursive: true, force: true });
  }
});

test('system unit: written to the unit directory with User=, removed again', () => {
  const dir = tmpDir('pilot-sysunit-');
  try {
    const r = installService({ home: '/srv/pilot', scope: 'system', kind: 'systemd', runAs: 'pilot', systemDir: dir, init: 'none' }, true);
    const text = fs.readFileSync(r.path, 'utf8');
    assert.equal(r.path, path.join(dir, 'pilot-daemon.service'));
    assert.match(text, /^User=pilot$/m);
    assert.match(text, /^Environment=PILOT_HOME=\/srv\/pilot$/m);
    assert.match(text, /--home \/srv\/pilot --log-stdout$/m);
    assert.match(text, /^WantedBy=multi-user\.target$/m);
    uninstallService({ home: '/srv/pilot', scope: 'system', kind: 'systemd', systemDir: dir, init: 'none' });
    assert.equal(fs.existsSync(r.path), false);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
