#!/usr/bin/env -S node --import tsx
// The layer rule of lib/ (docs/ARCHITECTURE.md): a folder imports only from itself and from the
// folders below it, and no chain of imports (type-only ones included) comes back to where it
// started. Run by `make check`; exits 1 listing every violation. `--root DIR` checks another tree
// (the test points it at a copy with a deliberate upward import).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Bottom to top. index.ts, the public facade, sits above them all. */
export const LAYERS = [
  'core',
  'x509',
  'sys',
  'mesh',
  'ca',
  'sign',
  'policy',
  'distribute',
  'ops',
  'service',
  'node',
  'mcp',
] as const;

type Edge = { from: string; to: string; line: number };

function layerOf(rel: string): number {
  const top = rel.split('/')[0];
  if (rel === 'index.ts' || rel === 'mcp.ts') return LAYERS.length;
  const i = (LAYERS as readonly string[]).indexOf(top);
  return i;
}

function sources(dir: string, base = dir): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p, base);
    return /\.m?ts$/.test(e.name) && !e.name.endsWith('.d.ts') ? [path.relative(base, p)] : [];
  });
}

const IMPORT = /(?:^|\n)\s*(?:import|export)\s[^;]*?from\s+'(\.{1,2}\/[^']+)'|import\(\s*'(\.{1,2}\/[^']+)'\s*\)/g;

export function edgesOf(lib: string): Edge[] {
  const edges: Edge[] = [];
  for (const rel of sources(lib)) {
    const text = fs.readFileSync(path.join(lib, rel), 'utf8');
    for (const m of text.matchAll(IMPORT)) {
      const spec = m[1] ?? m[2];
      const to = path.relative(lib, path.resolve(path.dirname(path.join(lib, rel)), spec));
      const line = text.slice(0, m.index).split('\n').length + (m[0].startsWith('\n') ? 1 : 0);
      edges.push({ from: rel, to, line });
    }
  }
  return edges;
}

export function problems(lib: string): string[] {
  const out: string[] = [];
  const edges = edgesOf(lib);
  for (const e of edges) {
    if (e.to.startsWith('..')) {
      out.push(`lib/${e.from}:${e.line} imports ${e.to}, outside lib/`);
      continue;
    }
    const [a, b] = [layerOf(e.from), layerOf(e.to)];
    if (a < 0) out.push(`lib/${e.from} is in no layer — put it in one of ${LAYERS.join(', ')}`);
    else if (b < 0) out.push(`lib/${e.from}:${e.line} imports lib/${e.to}, which is in no layer`);
    else if (b > a)
      out.push(
        `lib/${e.from}:${e.line} imports lib/${e.to}: ${LAYERS[a] ?? 'index'} may not import ${LAYERS[b] ?? 'index'} (a layer above it)`,
      );
  }
  // Cycles: depth-first search over the whole graph, one report per cycle found.
  const next = new Map<string, string[]>();
  for (const e of edges) next.set(e.from, [...(next.get(e.from) ?? []), e.to]);
  const state = new Map<string, 'open' | 'done'>();
  const stack: string[] = [];
  const visit = (n: string) => {
    state.set(n, 'open');
    stack.push(n);
    for (const m of next.get(n) ?? []) {
      if (state.get(m) === 'open')
        out.push(`import cycle: ${[...stack.slice(stack.indexOf(m)), m].map((f) => `lib/${f}`).join(' → ')}`);
      else if (!state.has(m)) visit(m);
    }
    stack.pop();
    state.set(n, 'done');
  };
  for (const n of [...next.keys()].sort()) if (!state.has(n)) visit(n);
  return out;
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const i = process.argv.indexOf('--root');
  const root =
    i > 0 ? path.resolve(process.argv[i + 1]) : path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
  const found = problems(path.join(root, 'lib'));
  for (const p of found) process.stderr.write(`check-imports: ${p}\n`);
  if (found.length) process.exit(1);
  process.stdout.write(
    `check-imports: ${sources(path.join(root, 'lib')).length} files in ${LAYERS.length} layers, no upward import, no cycle\n`,
  );
}
