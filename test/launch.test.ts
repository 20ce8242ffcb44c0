// scripts/launch.mjs on a copy of the checkout: the bundle and its V8 code cache run only while
// every input is as built, and a rebuild never reuses the code cache of an older bundle.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFileSync, spawnSync } from 'node:child_process';

const repo = path.resolve(import.meta.dirname ?? path.dirname(new URL(import.meta.url).pathname), '..');
let dir: string;

function rivet(...args: string[]) {
  return rivetWith({ RIVET_DEBUG: '1' }, ...args);
}
function rivetWith(env: Record<string, string>, ...args: string[]) {
  const r = spawnSync(path.join(dir, 'scripts', 'rivet-ca.mts'), args, {
    encoding: 'utf8',
    env: { ...process.env, RIVET_DEBUG: '', RIVET_NO_BUNDLE: '', ...env },
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}
function build() {
  execFileSync(path.join(repo, 'node_modules', '.bin', 'tsx'), ['scripts/build.mts'], { cwd: dir, stdio: 'pipe' });
}
/** Replaces text by text of the same length: V8 alone would take the old code cache for it. */
function sameLengthEdit(rel: string, from: string, to: string) {
  assert.is(from.length, to.length);
  const file = path.join(dir, rel);
  const text = fs.readFileSync(file, 'utf8');
  assert.ok(text.includes(from), `${rel} holds ${from}`);
  fs.writeFileSync(file, text.replace(from, to));
}

test.before(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'rivet-launch-'));
  for (const f of ['scripts', 'lib', 'templates', 'package.json', 'package-lock.json', 'tsconfig.json'])
    fs.cpSync(path.join(repo, f), path.join(dir, f), { recursive: true });
  fs.symlinkSync(path.join(repo, 'node_modules'), path.join(dir, 'node_modules'));
  build();
});
test.after(() => fs.rmSync(dir, { recursive: true, force: true }));

test('runs the bundle, makes its code cache once, then uses it', () => {
  const first = rivet('--help');
  assert.is(first.code, 0, first.stderr);
  assert.match(first.stderr, /running dist\/rivet-ca\.cjs \(code cache made\)/);
  assert.ok(
    fs.readdirSync(path.join(dir, 'dist')).some((f) => f.endsWith('.codecache')),
    'a code cache in dist/',
  );
  const second = rivet('--help');
  assert.match(second.stderr, /code cache used/);
  assert.is(second.stdout, first.stdout);
});

test('an edited input runs through tsx, with the edit', () => {
  sameLengthEdit('scripts/cli/authority.ts', 'create the root CA (once, ever)', 'create the ROOT CA (once, ever)');
  const r = rivet('--help');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /bundle missing or stale — running scripts\/rivet-ca\.mts through tsx/);
  assert.match(r.stdout, /create the ROOT CA/);
});

test('a stale bundle is said on stderr in one line, without RIVET_DEBUG too, naming the changed file', () => {
  const r = rivetWith({}, 'issue-agent', 'ct1', '--ca-dir', path.join(dir, 'no-ca'));
  assert.is(r.code, 2);
  assert.is(
    r.stderr,
    'rivet-ca: note: dist/rivet-ca.cjs is stale (scripts/cli/authority.ts changed) — running from source through tsx, slower; `make build` rebuilds it\n' +
      'rivet-ca: "ct1" is a node identity — this command wants <agent-id>@<node-id>\n',
  );
});

test('after a rebuild the old code cache is not used, even for a bundle of the same length', () => {
  build();
  const r = rivet('--help');
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /code cache made/);
  assert.match(r.stdout, /create the ROOT CA/);
  assert.is(
    fs.readdirSync(path.join(dir, 'dist')).filter((f) => f.endsWith('.codecache')).length,
    1,
    "only the new bundle's cache",
  );
});

test('a bundle changed after the build is not run', () => {
  const bundle = path.join(dir, 'dist', 'rivet-ca.cjs');
  fs.writeFileSync(bundle, fs.readFileSync(bundle, 'utf8').replace('create the ROOT CA', 'create the XXXX CA'));
  const r = rivet('--help');
  assert.match(r.stderr, /through tsx/);
  assert.match(r.stderr, /note: dist\/rivet-ca\.cjs is stale \(dist\/rivet-ca\.cjs changed after the build\)/);
  assert.match(r.stdout, /create the ROOT CA/);
});

test('no build at all (a fresh clone) runs through tsx quietly', () => {
  fs.rmSync(path.join(dir, 'dist'), { recursive: true, force: true });
  const r = rivetWith({}, 'issue-agent', 'ct1', '--ca-dir', path.join(dir, 'no-ca'));
  assert.is(r.code, 2);
  assert.is(r.stderr, 'rivet-ca: "ct1" is a node identity — this command wants <agent-id>@<node-id>\n');
});

test('usage errors keep exit 2 and one line from the bundle', () => {
  build();
  const r = rivet('issue-agent', 'ct1', '--ca-dir', path.join(dir, 'no-ca'));
  assert.is(r.code, 2);
  assert.match(r.stderr, /running dist\/rivet-ca\.cjs/);
  assert.match(r.stderr, /rivet-ca: "ct1" is a node identity — this command wants <agent-id>@<node-id>\n$/);
});

test.run();
