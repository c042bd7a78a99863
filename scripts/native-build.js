// Builds the optional addons (binding.gyp: native/udp_gso.c + udp_rx.c -> build/Release/pilot_udp_gso.node, the UDP
// batching; native/aead.c -> build/Release/pilot_aead.node, the data path's ChaCha20-Poly1305 through Node's OpenSSL)
// with node-gyp. Run by `npm test` and `npm run demo` when the addon is missing (`--if-missing`), by
// `npm run build` (so `npm pack` ships the built .node: node-api, one binary for every Node version)
// and by hand (`npm run build:native`). Not an npm install script on purpose: npm warns about a
// package's install scripts when users install it (test/package/install.test.ts keeps that quiet),
// and package.json sets "gypfile": false so npm does not add a `node-gyp rebuild` of its own.
// Linux only; a failed build is not an error: the daemon then sends and receives one packet per system call.
// Plain JavaScript, no dependencies.
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const outs = ['pilot_udp_gso.node', 'pilot_aead.node'].map((f) => path.join(root, 'build', 'Release', f));
const source = path.join(root, 'native', 'udp_gso.c');
/** Every input of the build: a changed one (udp_rx.c, binding.gyp) means rebuild, not only udp_gso.c. */
const inputs = [
  path.join(root, 'binding.gyp'),
  ...fs
    .readdirSync(path.join(root, 'native'))
    .filter((f) => f.endsWith('.c'))
    .map((f) => path.join(root, 'native', f)),
];

if (process.platform !== 'linux' || !fs.existsSync(source)) process.exit(0);
const fresh = (out) => fs.existsSync(out) && inputs.every((f) => !fs.existsSync(f) || fs.statSync(out).mtimeMs >= fs.statSync(f).mtimeMs);
if (process.argv.includes('--if-missing') && outs.every(fresh)) process.exit(0);

/** node-gyp: npm's own (npm puts it on PATH for scripts; else beside the npm on PATH), or one on PATH. */
function nodeGyp() {
  if (process.env.npm_config_node_gyp) return [process.execPath, process.env.npm_config_node_gyp];
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    if (dir && fs.existsSync(path.join(dir, 'node-gyp'))) return [path.join(dir, 'node-gyp')];
  }
  for (const dir of (process.env.PATH ?? '').split(path.delimiter)) {
    const npm = dir ? path.join(dir, 'npm') : '';
    if (!npm || !fs.existsSync(npm)) continue;
    const gyp = path.join(path.dirname(fs.realpathSync(npm)), '..', 'node_modules', 'node-gyp', 'bin', 'node-gyp.js');
    if (fs.existsSync(gyp)) return [process.execPath, gyp];
  }
  return undefined;
}

const gyp = nodeGyp();
const args = ['rebuild'];
// node-api headers are the same for every Node: a distribution's (Debian nodejs-dev) spares node-gyp a download
if (!process.env.npm_config_nodedir && fs.existsSync('/usr/include/node/node_api.h') && fs.existsSync('/usr/include/node/common.gypi'))
  args.push('--nodedir=/usr');
const r = gyp ? spawnSync(gyp[0], [...gyp.slice(1), ...args], { cwd: root, encoding: 'utf8', timeout: 180_000 }) : undefined;
if (r?.status !== 0) {
  const why = !r ? 'node-gyp not found' : r.error ? r.error.message : `${r.stderr ?? ''}`.trim().split('\n').slice(-3).join(' / ');
  console.log(`pilot: the optional native addons did not build (${why}); packets go out through dgram one by one, sealed by libsodium`);
}
