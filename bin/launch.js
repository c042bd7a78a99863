// Shared entry for the bin/ scripts: ONE process, on the Node that runs this
// file (the user's). The command is imported, never re-spawned, so the pid a
// shell ($!), a supervisor or `docker stop` holds is the server itself and its
// signals reach it.
//
// - An installed package (under node_modules, or any copy without a usable
//   src/ runner) runs the compiled dist/ that `npm pack` builds (prepack).
// - A source checkout on a Node that strips types (>= 22.18) runs src/*.ts,
//   so a developer never runs a stale dist/ left over from a pack.
import { existsSync } from 'node:fs';
import { dirname, join, sep } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/** Resolves `entry` (e.g. 'cli/pilotctl', no extension) to the file to run. */
export function entryFile(entry, opts = {}) {
  const dir = opts.root ?? root;
  const canStrip = opts.canStrip ?? Boolean(process.features?.typescript);
  const inNodeModules = dir.split(sep).includes('node_modules');
  const source = join(dir, 'src', `${entry}.ts`);
  const compiled = join(dir, 'dist', `${entry}.js`);
  if (!inNodeModules && canStrip && existsSync(source)) return source;
  if (existsSync(compiled)) return compiled;
  return undefined;
}

export async function launch(entry) {
  const file = entryFile(entry);
  if (!file) {
    // pilotctl's error format (src/cli/output.ts): this runs before any of it loads.
    process.stderr.write(
      `error [INTERNAL]: ${join(root, 'dist', `${entry}.js`)} is missing (a source checkout, not built)\n` +
        `hint: run it with a Node that strips types (>= 22.18; this is ${process.version}), or build it first: npm run build\n`,
    );
    process.exit(1);
  }
  await import(pathToFileURL(file).href);
}
