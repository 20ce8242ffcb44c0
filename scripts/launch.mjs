// Starts a scripts/*.mts tool fast without ever running stale code. `make`/`npm ci` bundle each
// tool with esbuild into dist/<tool>.mjs and record every input file (lib/, scripts/, the
// node_modules files it pulled in) with its size, mtime and SHA-256. If every input still matches,
// the bundle runs: one file, no TypeScript compiler, ~0.3 s less per command. If anything differs
// or is missing (an edit, a pull, a fresh clone before `make`), the .mts runs through tsx as in
// development. Plain JavaScript on purpose: it runs before any TypeScript loader exists.
import fs from 'node:fs';
import path from 'node:path';
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';

const [, , scriptArg, ...args] = process.argv;
const script = fs.realpathSync(scriptArg);
const root = path.resolve(path.dirname(script), '..');
const tool = path.basename(script).replace(/\.m?ts$/, '');
const bundle = path.join(root, 'dist', `${tool}.mjs`);
const manifest = path.join(root, 'dist', `${tool}.inputs.json`);

/** True when the bundle was built from exactly the files that are on disk now. */
function fresh() {
  let m;
  try { m = JSON.parse(fs.readFileSync(manifest, 'utf8')); } catch { return false; }
  if (m.bundle !== tool || m.node !== process.versions.modules || !fs.existsSync(bundle)) return false;
  for (const input of m.inputs) {
    let st;
    try { st = fs.statSync(path.join(root, input.path)); } catch { return false; }
    if (st.size !== input.size) return false;
    if (st.mtimeMs === input.mtimeMs) continue;
    // Touched but maybe not changed (a checkout, a formatter): the content decides.
    const sha = createHash('sha256').update(fs.readFileSync(path.join(root, input.path))).digest('hex');
    if (sha !== input.sha256) return false;
  }
  return true;
}

process.argv = [process.argv[0], script, ...args];
if (process.env.RIVET_NO_BUNDLE !== '1' && fresh()) {
  await import(pathToFileURL(bundle).href);
} else {
  if (process.env.RIVET_DEBUG) process.stderr.write(`${tool}: dist/ bundle missing or stale — running ${path.relative(root, script)} through tsx (\`make build\` speeds this up)\n`);
  const { register } = await import(pathToFileURL(path.join(root, 'node_modules', 'tsx', 'dist', 'esm', 'api', 'index.mjs')).href);
  register();
  await import(pathToFileURL(script).href);
}
