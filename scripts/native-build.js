// `npm ci` / `npm install` in a checkout, and `npm pack` (the `prepare` script): build the
// optional UDP GSO addon (binding.gyp, native/udp_gso.c) with the node-gyp npm brings. The
// packed tarball carries the built .node (node-api: one binary for every Node version), so a
// user's `npm i` runs no install script (npm warns about those; package.json has
// "gypfile": false so npm does not add a `node-gyp rebuild` of its own). Linux only; a failed
// build is not an error: the daemon then sends one packet per system call through dgram.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';

if (process.platform !== 'linux' || process.env.PILOT_GSO === '0') process.exit(0);
// npm puts its own node-gyp on PATH for install scripts; outside npm, `node-gyp` must be on PATH
const args = ['rebuild'];
// node-api headers are the same for every Node: a distribution's (Debian nodejs-dev) spares node-gyp a download
if (!process.env.npm_config_nodedir && fs.existsSync('/usr/include/node/node_api.h') && fs.existsSync('/usr/include/node/common.gypi'))
  args.push('--nodedir=/usr');
const r = spawnSync('node-gyp', args, { encoding: 'utf8', timeout: 180_000, shell: false });
if (r.status !== 0) {
  const why = r.error ? r.error.message : `${r.stderr ?? ''}`.trim().split('\n').slice(-3).join(' / ');
  console.log(`pilot: the optional UDP GSO addon did not build (${why}); packets go out through dgram one by one`);
}
