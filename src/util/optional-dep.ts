// Packages only some roles need are optional peer dependencies, not
// dependencies: an SDK, CLI or daemon user does not download the rendezvous's
// stores (better-sqlite3, pg) or the MCP SDK. Code that needs one imports it
// here, lazily, and a missing one becomes a coded error whose hint is the exact
// npm command for where this package is installed (global, a project, a checkout).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { PilotError } from './errors.ts';

/** This package's root: src/util/ or dist/util/ are two levels down. */
const PACKAGE_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Was `err` a failure to find `pkg` itself (not a module inside it, not some other package)? */
export function isMissingPackage(err: unknown, pkg: string): boolean {
  const e = err as { code?: unknown; message?: unknown } | undefined;
  if (e?.code !== 'ERR_MODULE_NOT_FOUND' && e?.code !== 'MODULE_NOT_FOUND') return false;
  return typeof e.message === 'string' && (e.message.includes(`'${pkg}'`) || e.message.includes(`'${pkg}/`));
}

/** `pkg@MAJOR` from this package's peerDependencies range (`^13.2.0` -> `13`), else `pkg`. */
function spec(pkg: string, root: string): string {
  try {
    const range = (JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { peerDependencies?: Record<string, string> }).peerDependencies?.[
      pkg
    ];
    const major = /^\^?(\d+)\./.exec(range ?? '')?.[1];
    return major ? `${pkg}@${major}` : pkg;
  } catch {
    return pkg;
  }
}

/**
 * The command that installs `pkg` where this package will find it:
 * beside a global install (`<prefix>/lib/node_modules/pilot-overlay`), in the
 * project that depends on it, or a checkout's own devDependencies.
 */
export function installCommand(pkg: string, root = PACKAGE_ROOT, node = process.execPath): string {
  const modules = path.dirname(root);
  if (path.basename(modules) !== 'node_modules') return `npm install (in ${root})`;
  const owner = path.dirname(modules);
  const what = spec(pkg, root);
  if (path.basename(owner) === 'lib') {
    // npm's default global prefix is the directory above the running node's bin/.
    const prefix = path.dirname(owner);
    return prefix === path.dirname(path.dirname(node)) ? `npm i -g ${what}` : `npm i -g --prefix ${prefix} ${what}`;
  }
  return `npm i ${what} (in ${owner})`;
}

/**
 * `load()` (a dynamic import of `pkg` or of a module that imports it); when `pkg`
 * is not installed, a MISSING_DEPENDENCY error saying what needs it and how to install it.
 */
export async function importOptional<T>(pkg: string, usedFor: string, load: () => Promise<T>, alternative?: string): Promise<T> {
  try {
    return await load();
  } catch (err) {
    if (!isMissingPackage(err, pkg)) throw err;
    const hint = `install it: ${installCommand(pkg)}${alternative ? `; or ${alternative}` : ''}`;
    throw new PilotError('MISSING_DEPENDENCY', `${usedFor} needs the ${pkg} package, which is not installed`, hint);
  }
}
