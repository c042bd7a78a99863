// The layer rules of docs/ARCHITECTURE.md, enforced: every relative import in src/ that
// crosses folders must be allowed by the importing folder's row of the "may import"
// table, the folders' imports must not form a cycle, and every folder must have a row.
// The table is the one source of truth: this test parses it, so the document and the
// code cannot drift apart (Tailscale's depaware does the same for Go packages).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const SRC = path.join(ROOT, 'src');
/** Ambient declarations only (.d.ts for untyped packages): not a layer. */
const NOT_LAYERS = new Set(['types']);

/** folder -> folders it may import, from the table in docs/ARCHITECTURE.md. */
function allowedFromDoc(): Map<string, Set<string>> {
  const doc = fs.readFileSync(path.join(ROOT, 'docs/ARCHITECTURE.md'), 'utf8');
  const rules = new Map<string, Set<string>>();
  for (const line of doc.split('\n')) {
    const m = /^\| `src\/([a-z-]+)` \|.*\| ([^|]+) \|$/.exec(line);
    if (!m) continue;
    const list = m[2]!.trim();
    rules.set(m[1]!, new Set(list === '-' ? [] : list.split(',').map((x) => x.trim())));
  }
  return rules;
}

function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...tsFiles(p));
    else if (e.name.endsWith('.ts')) out.push(p);
  }
  return out;
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\b[^'"]*?from\s*['"](\.{1,2}\/[^'"]+)['"]|import\(\s*['"](\.{1,2}\/[^'"]+)['"]\s*\)/g;

interface Edge {
  from: string;
  to: string;
  file: string;
  spec: string;
}

/** Cross-folder imports of `files` (path -> source text, paths under SRC). */
export function folderEdges(files: Map<string, string>): Edge[] {
  const edges: Edge[] = [];
  for (const [file, text] of files) {
    const from = path.relative(SRC, file).split(path.sep)[0]!;
    for (const m of text.matchAll(IMPORT)) {
      const spec = (m[1] ?? m[2])!;
      const target = path.relative(SRC, path.resolve(path.dirname(file), spec));
      if (target.startsWith('..')) continue; // outside src (package.json): not a layer
      const to = target.split(path.sep)[0]!;
      if (to !== from && !target.startsWith(`${to}.`)) edges.push({ from, to, file: path.relative(ROOT, file), spec });
    }
  }
  return edges;
}

/** Every broken rule, as readable lines; empty = the tree obeys the table. */
export function violations(files: Map<string, string>, rules: Map<string, Set<string>>): string[] {
  const out: string[] = [];
  const folders = new Set([...files.keys()].map((f) => path.relative(SRC, f).split(path.sep)[0]!).filter((f) => !f.endsWith('.ts') && !NOT_LAYERS.has(f)));
  for (const f of folders) if (!rules.has(f)) out.push(`src/${f} has no row in the docs/ARCHITECTURE.md layer table`);
  const graph = new Map<string, Set<string>>();
  for (const e of folderEdges(files)) {
    if (NOT_LAYERS.has(e.to)) continue;
    if (!rules.get(e.from)?.has(e.to)) out.push(`${e.file} imports ${e.spec}: ${e.from} may not import ${e.to}`);
    if (!graph.has(e.from)) graph.set(e.from, new Set());
    graph.get(e.from)!.add(e.to);
  }
  // a cycle between folders, found by depth-first search
  const state = new Map<string, 'open' | 'done'>();
  const visit = (n: string, trail: string[]): void => {
    if (state.get(n) === 'done') return;
    if (state.get(n) === 'open') {
      out.push(`import cycle: ${[...trail.slice(trail.indexOf(n)), n].join(' -> ')}`);
      return;
    }
    state.set(n, 'open');
    for (const m of graph.get(n) ?? []) visit(m, [...trail, n]);
    state.set(n, 'done');
  };
  for (const n of graph.keys()) visit(n, []);
  return out;
}

const realTree = (): Map<string, string> => new Map(tsFiles(SRC).map((f) => [f, fs.readFileSync(f, 'utf8')]));

test('src/ obeys the layer table of docs/ARCHITECTURE.md: allowed imports only, no cycles, every folder listed', () => {
  const rules = allowedFromDoc();
  assert.ok(rules.size >= 15, `the layer table was not found (${rules.size} rows)`);
  assert.deepEqual(violations(realTree(), rules), []);
});

test('a planted upward import or cycle is caught', () => {
  const rules = allowedFromDoc();
  const tree = realTree();
  tree.set(path.join(SRC, 'wire', 'planted.ts'), "import { Daemon } from '../daemon/daemon.ts';\n");
  const v = violations(tree, rules);
  assert.ok(
    v.some((x) => /src\/wire\/planted\.ts imports \.\.\/daemon\/daemon\.ts: wire may not import daemon/.test(x)),
    v.join('\n'),
  );
  assert.ok(
    v.some((x) => x.startsWith('import cycle:') && x.includes('wire') && x.includes('daemon')),
    v.join('\n'),
  );
  const noRow = new Map(tree);
  noRow.set(path.join(SRC, 'newlayer', 'x.ts'), '');
  assert.ok(violations(noRow, rules).some((x) => x === 'src/newlayer has no row in the docs/ARCHITECTURE.md layer table'));
});
