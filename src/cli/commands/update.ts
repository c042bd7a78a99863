// pilotctl update: ask the npm registry for the latest published version and
// say how to upgrade. It only checks; installing stays with npm.
import type { Command } from 'commander';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { VERSION } from '../../daemon/version.ts';
import { PilotError } from '../../util/errors.ts';
import { ok } from '../output.ts';
import type { RunWrapper } from '../action.ts';

export const DEFAULT_NPM_REGISTRY = 'https://registry.npmjs.org';
const PACKAGE_JSON = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..', 'package.json');

export function packageName(): string {
  return (JSON.parse(fs.readFileSync(PACKAGE_JSON, 'utf8')) as { name: string }).name;
}

/** -1, 0 or 1 for semver strings; a release sorts after its prereleases. */
export function compareVersions(a: string, b: string): number {
  const parse = (v: string): { nums: number[]; pre: string } => {
    const m = /^v?(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?/.exec(v.trim());
    if (!m) throw new PilotError('BAD_ARGUMENT', `not a version: ${JSON.stringify(v)}`);
    return { nums: [Number(m[1]), Number(m[2]), Number(m[3])], pre: m[4] ?? '' };
  };
  const x = parse(a);
  const y = parse(b);
  for (let i = 0; i < 3; i++) if (x.nums[i] !== y.nums[i]) return x.nums[i]! < y.nums[i]! ? -1 : 1;
  if (x.pre === y.pre) return 0;
  if (!x.pre) return 1;
  if (!y.pre) return -1;
  return x.pre < y.pre ? -1 : 1;
}

export interface UpdateCheck {
  package: string;
  current: string;
  latest: string;
  updateAvailable: boolean;
  command: string;
  registry: string;
}

export async function checkForUpdate(registry: string, name = packageName(), current = VERSION, timeoutMs = 5000): Promise<UpdateCheck> {
  const base = registry.replace(/\/+$/, '');
  const url = `${base}/${name.replace('/', '%2f')}/latest`;
  let res: Response;
  try {
    res = await fetch(url, { headers: { accept: 'application/json' }, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause = (err as { cause?: { code?: string; message?: string } }).cause;
    throw new PilotError(
      'UNREACHABLE',
      `cannot reach the npm registry ${base}: ${cause?.code ?? cause?.message ?? (err as Error).message}`,
      'are you offline? check the network or --registry-url / $PILOT_NPM_REGISTRY',
    );
  }
  if (res.status === 404) throw new PilotError('NOT_FOUND', `${name} is not published on ${base}`, 'install from a checkout or tarball: sh install.sh <path>');
  if (!res.ok) throw new PilotError('UNREACHABLE', `the npm registry answered HTTP ${res.status} for ${url}`, 'try again later');
  const body = (await res.json().catch(() => undefined)) as { version?: unknown } | undefined;
  if (typeof body?.version !== 'string')
    throw new PilotError('BAD_REQUEST', `no version in the registry answer from ${url}`, 'is --registry-url an npm registry?');
  const updateAvailable = compareVersions(body.version, current) > 0;
  return { package: name, current, latest: body.version, updateAvailable, command: `npm i -g ${name}@${body.version}`, registry: base };
}

export function registerUpdateCommand(program: Command, run: RunWrapper): void {
  program
    .command('update')
    .description('check the npm registry for a newer pilotctl and print how to upgrade')
    .option('--registry-url <url>', 'npm registry (default $PILOT_NPM_REGISTRY or https://registry.npmjs.org)')
    .action(
      run(async (_g, out, _c, f: { registryUrl?: string }) => {
        const r = await checkForUpdate(f.registryUrl ?? process.env.PILOT_NPM_REGISTRY ?? DEFAULT_NPM_REGISTRY);
        ok(out, r, () =>
          r.updateAvailable
            ? `${r.package} ${r.latest} is available (you have ${r.current})\nUpgrade: ${r.command}\nthen restart the daemon: pilotctl daemon stop && pilotctl daemon start`
            : `${r.package} ${r.current} is up to date (latest ${r.latest})`,
        );
      }),
    );
}
