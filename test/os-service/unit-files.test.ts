// The exact content of the systemd units and the launchd plist, and the daemon
// command they run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { DAEMON_MAIN, daemonArgv, daemonEnv, serviceNodeArgs } from '../../src/os-service/daemon-command.ts';
import { quoteWord, renderSystemdUnit, systemdUnitPath } from '../../src/os-service/systemd-unit.ts';
import { launchdPlistPath, renderLaunchdPlist } from '../../src/os-service/launchd-plist.ts';

const HOOK = ['--disable-warning=ExperimentalWarning', '--import', 'file:///opt/pilot/bin/strip-types.js'];

test("daemon argv: absolute node, the daemon's V8 flags, kept node flags, main.ts, --home", () => {
  assert.equal(path.isAbsolute(DAEMON_MAIN), true);
  assert.match(DAEMON_MAIN, /src\/daemon\/main\.ts$/);
  assert.deepEqual(serviceNodeArgs(['--test', '--inspect=9229', ...HOOK, '--experimental-foo']), [...HOOK, '--experimental-foo']);
  assert.deepEqual(daemonArgv('/home/a/.pilot', '/opt/node/bin/node', ['--test', ...HOOK]), [
    '/opt/node/bin/node',
    '--max-semi-space-size=1',
    '--single-threaded-gc',
    ...HOOK,
    DAEMON_MAIN,
    '--home',
    '/home/a/.pilot',
  ]);
  // A relative home would break under a service manager (cwd is /).
  assert.equal(daemonArgv('rel/home', '/n', [])[5], path.resolve('rel/home'));
});

test('systemd user unit: exact content', () => {
  const unit = renderSystemdUnit({
    argv: ['/opt/node/bin/node', '/opt/pilot/src/daemon/main.ts', '--home', '/home/a/.pilot'],
    home: '/home/a/.pilot',
    scope: 'user',
  });
  assert.equal(
    unit,
    [
      '[Unit]',
      'Description=Pilot overlay network daemon',
      'After=network-online.target',
      'Wants=network-online.target',
      '',
      '[Service]',
      'Type=simple',
      'ExecStart=/opt/node/bin/node /opt/pilot/src/daemon/main.ts --home /home/a/.pilot --log-stdout',
      'Environment=PILOT_HOME=/home/a/.pilot',
      'Environment="OPENSSL_ia32cap=:~0x210000"',
      'StandardOutput=journal',
      'SyslogIdentifier=pilot-daemon',
      'Restart=on-failure',
      'RestartSec=2',
      '',
      '[Install]',
      'WantedBy=default.target',
      '',
    ].join('\n'),
  );
  assert.doesNotMatch(unit, /^User=/m);
  assert.equal(systemdUnitPath('user', '/home/a'), '/home/a/.config/systemd/user/pilot-daemon.service');
});

test('systemd system unit: User= and multi-user.target', () => {
  const unit = renderSystemdUnit({ argv: ['/usr/bin/node', '/m.ts'], home: '/home/bob/.pilot', scope: 'system', user: 'bob' });
  assert.match(unit, /^User=bob$/m);
  assert.match(unit, /^WantedBy=multi-user\.target$/m);
  assert.match(unit, /^Restart=on-failure$/m);
  assert.match(unit, /^ExecStart=\/usr\/bin\/node \/m\.ts --log-stdout$/m);
  assert.equal(systemdUnitPath('system'), '/etc/systemd/system/pilot-daemon.service');
  assert.throws(() => renderSystemdUnit({ argv: ['/n'], home: '/h', scope: 'system' }));
});

test('systemd quoting: spaces, quotes, % and $ survive systemd parsing', () => {
  assert.equal(quoteWord('/plain/path-1.ts'), '/plain/path-1.ts');
  assert.equal(quoteWord('/My Home/x'), '"/My Home/x"');
  assert.equal(quoteWord('a"b\\c d'), '"a\\"b\\\\c d"');
  assert.equal(quoteWord('100%'), '100%%');
  assert.equal(quoteWord('$HOME'), '"$$HOME"');
  assert.equal(quoteWord('$HOME', false), '"$HOME"');
  const unit = renderSystemdUnit({ argv: ['/n', '/My Home/m.ts'], home: '/My Home/.pilot', scope: 'user' });
  assert.match(unit, /^ExecStart=\/n "\/My Home\/m\.ts" --log-stdout$/m);
  assert.match(unit, /^Environment="PILOT_HOME=\/My Home\/\.pilot"$/m);
});

test('launchd plist: exact content, escaped, restart only on failure', () => {
  const plist = renderLaunchdPlist({ argv: ['/opt/node', '/p/main.ts', '--home', '/Users/a&b/.pilot'], home: '/Users/a&b/.pilot' });
  assert.equal(
    plist,
    [
      '<?xml version="1.0" encoding="UTF-8"?>',
      '<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">',
      '<plist version="1.0">',
      '<dict>',
      '  <key>Label</key><string>network.pilot.daemon</string>',
      '  <key>ProgramArguments</key>',
      '  <array>',
      '    <string>/opt/node</string>',
      '    <string>/p/main.ts</string>',
      '    <string>--home</string>',
      '    <string>/Users/a&amp;b/.pilot</string>',
      '  </array>',
      '  <key>EnvironmentVariables</key>',
      '  <dict><key>PILOT_HOME</key><string>/Users/a&amp;b/.pilot</string></dict>',
      '  <key>RunAtLoad</key><true/>',
      '  <key>KeepAlive</key>',
      '  <dict><key>SuccessfulExit</key><false/></dict>',
      '  <key>StandardOutPath</key><string>/Users/a&amp;b/.pilot/launchd.out.log</string>',
      '  <key>StandardErrorPath</key><string>/Users/a&amp;b/.pilot/launchd.err.log</string>',
      '</dict>',
      '</plist>',
      '',
    ].join('\n'),
  );
  assert.equal(launchdPlistPath('/Users/a'), '/Users/a/Library/LaunchAgents/network.pilot.daemon.plist');
});

test("the daemon starts with OpenSSL's AVX-512 hidden, unless the user set OPENSSL_ia32cap", () => {
  assert.deepEqual(daemonEnv({}), { OPENSSL_ia32cap: ':~0x210000' });
  assert.deepEqual(daemonEnv({ OPENSSL_ia32cap: '~0x0' }), {}, "the user's value wins");
});
