// The package as users get it: npm pack (test/helpers/package.ts), then
// install.sh with that tarball (`npm i -g` into a temp prefix) with a clean
// $HOME and the machine's npm on PATH, run by a supported Node (USER_PATH: the
// package runs its compiled dist/ on the user's Node). The installed pilotctl then starts a real
// daemon against a real rendezvous, and the unit file it writes is run by
// hand, the way systemd would run it, on this systemd-less machine.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { ROOT, run, startRendezvous, tmpDir, type Rendezvous } from '../helpers/cluster.ts';
import { npmEnv, packTarball, USER_PATH as PATH } from '../helpers/package.ts';

test('npm pack + npm i -g into a clean HOME: pilotctl and pilot-rendezvous work, the daemon runs', { timeout: 240_000 }, async () => {
  const work = tmpDir('pilot-gi-');
  const home = path.join(work, 'home');
  const prefix = path.join(work, 'prefix');
  const pilotHome = path.join(home, '.pilot');
  const socket = path.join(work, 'p.sock');
  fs.mkdirSync(home);
  const env: NodeJS.ProcessEnv = { HOME: home, PATH, PILOT_HOME: pilotHome, PILOT_SOCKET: socket, npm_config_update_notifier: 'false' };
  const clean = npmEnv(home);
  let rdv: Rendezvous | undefined;
  let unitDaemon: ReturnType<typeof spawn> | undefined;
  const t0 = Date.now();
  try {
    // install.sh = npm i -g --prefix of the tarball + pilotctl init + pilotctl service install
    // (given a checkout, install.sh runs the same npm pack itself).
    const tgz = packTarball(work, clean);
    const packMs = Date.now() - t0;
    rdv = await startRendezvous();
    const inst = spawnSync(
      'sh',
      [path.join(ROOT, 'install.sh'), tgz, '--prefix', prefix, '--registry', rdv.addr, '--email', 'gi@example.com', '--hostname', 'global-install'],
      { cwd: work, env: { ...process.env, ...clean, PILOT_HOME: pilotHome, PILOT_SOCKET: socket }, encoding: 'utf8', timeout: 180_000 },
    );
    assert.equal(inst.status, 0, `install.sh failed:\n${inst.stdout}\n${inst.stderr}`);
    assert.match(inst.stdout, /^installing .*\.tgz$/m);
    assert.match(inst.stdout, /Wrote .*config\.json/);
    assert.match(inst.stdout, /Wrote .*pilot-daemon\.service/);
    assert.match(inst.stdout, /systemd is not running on this machine/);
    assert.match(inst.stdout, /Next steps:/);
    const installMs = Date.now() - t0;
    process.stdout.write(
      `# npm pack (with the prepack build): ${(packMs / 1000).toFixed(1)} s; + install.sh (npm i -g, clean HOME, shared npm cache): ${(installMs / 1000).toFixed(1)} s\n`,
    );

    const pilotctl = path.join(prefix, 'bin', 'pilotctl');
    const rendezvousBin = path.join(prefix, 'bin', 'pilot-rendezvous');
    const sysNode = spawnSync('node', ['--version'], { env: { PATH }, encoding: 'utf8' }).stdout.trim();
    process.stdout.write(`# node on PATH: ${sysNode}\n`);

    const ver = await run([pilotctl, '--json', 'version'], env);
    assert.equal(ver.code, 0, ver.stderr);
    assert.equal(ver.json.data.version, JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')).version);
    assert.match(ver.json.data.node, /^v2[4-9]\./);
    assert.equal(ver.stderr, '', 'no warnings on stderr');
    const help = await run([pilotctl, '--help'], env);
    assert.equal(help.code, 0);
    assert.match(help.stdout, /service/);
    assert.match(help.stdout, /init/);
    const rhelp = await run([rendezvousBin, '--help'], env);
    assert.equal(rhelp.code, 0, rhelp.stderr);
    assert.match(rhelp.stdout, /Usage: pilot-rendezvous/);

    // 1. The installed pilotctl starts a detached daemon that registers.
    const start = await run([pilotctl, '--json', 'daemon', 'start'], env, 60_000);
    assert.equal(
      start.code,
      0,
      `daemon start: ${start.stderr}\n${fs.existsSync(path.join(pilotHome, 'pilot.log')) ? fs.readFileSync(path.join(pilotHome, 'pilot.log'), 'utf8').slice(-2000) : ''}`,
    );
    const address = start.json.data.address as string;
    assert.match(address, /^0:[0-9A-F]{4}\.[0-9A-F]{4}\.[0-9A-F]{4}$/);
    const info = await run([pilotctl, '--json', 'info'], env);
    assert.equal(info.code, 0, info.stderr);
    assert.equal(info.json.data.address, address);
    assert.equal(info.json.data.hostname, 'global-install');
    assert.equal(info.json.data.registryOnline, true);
    const stop = await run([pilotctl, '--json', 'daemon', 'stop'], env);
    assert.equal(stop.code, 0, stop.stderr);

    // 2. The unit the installed pilotctl writes points at the installed node and code.
    const svc = await run([pilotctl, '--json', 'service', 'status'], env);
    assert.equal(svc.code, 0, svc.stderr);
    assert.equal(svc.json.data.installed, true);
    const unitText = fs.readFileSync(path.join(home, '.config/systemd/user/pilot-daemon.service'), 'utf8');
    const pkgDir = fs.realpathSync(path.join(prefix, 'lib', 'node_modules', 'pilot-overlay'));
    const execStart = /^ExecStart=(.*)$/m.exec(unitText)![1]!.split(' ');
    // The user's node (the one on PATH that ran pilotctl) and the compiled entry: no second Node, no loader flags.
    assert.equal(execStart[0], fs.realpathSync(process.execPath));
    assert.deepEqual(execStart.slice(1), [
      '--max-semi-space-size=1',
      '--single-threaded-gc',
      path.join(pkgDir, 'dist', 'daemon', 'main.js'),
      '--home',
      pilotHome,
      '--log-stdout',
    ]);
    assert.match(unitText, new RegExp(`^Environment=PILOT_HOME=${pilotHome}$`, 'm'));

    // 3. Run ExecStart in the foreground as systemd would (no systemd here).
    unitDaemon = spawn(execStart[0]!, execStart.slice(1), { cwd: '/', env: { HOME: home, PATH, PILOT_HOME: pilotHome }, stdio: ['ignore', 'pipe', 'pipe'] });
    const ready = await new Promise<{ ready: boolean; address: string }>((resolve, reject) => {
      let buf = '';
      const timer = setTimeout(() => reject(new Error('unit daemon not ready in 20 s')), 20_000);
      // --log-stdout: the log records share stdout with the ready line (the journal takes both)
      unitDaemon!.stdout!.on('data', (c: Buffer) => {
        buf += c.toString();
        const line = buf.split('\n').find((l) => l.startsWith('{"ready"'));
        if (line) {
          clearTimeout(timer);
          resolve(JSON.parse(line));
        }
      });
      unitDaemon!.once('exit', (code) => reject(new Error(`unit daemon exited ${code}`)));
    });
    assert.equal(ready.ready, true);
    assert.equal(ready.address, address, 'same identity, same address');
    const info2 = await run([pilotctl, '--json', 'info'], env);
    assert.equal(info2.code, 0, info2.stderr);
    assert.equal(info2.json.data.registryOnline, true);
    const exited = new Promise<number | null>((resolve) => unitDaemon!.once('exit', (code) => resolve(code)));
    unitDaemon.kill('SIGTERM');
    assert.equal(await exited, 0, 'SIGTERM is a clean stop (Restart=on-failure leaves it stopped)');
    process.stdout.write(`# whole test: ${((Date.now() - t0) / 1000).toFixed(1)} s\n`);
  } finally {
    if (unitDaemon && unitDaemon.exitCode === null) unitDaemon.kill('SIGKILL');
    const pidFile = path.join(pilotHome, 'daemon.pid');
    if (fs.existsSync(pidFile)) {
      try {
        process.kill(Number(fs.readFileSync(pidFile, 'utf8')), 'SIGKILL');
      } catch {
        /* already gone */
      }
    }
    await rdv?.kill();
    fs.rmSync(work, { recursive: true, force: true });
  }
});
