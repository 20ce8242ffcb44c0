// Starts a scripts/*.mts tool fast without ever running stale code. `make`/`npm ci` bundle each
// tool with esbuild into dist/<tool>.cjs and record every input file (lib/, scripts/, the
// node_modules files it pulled in) and the bundle itself with size, mtime and SHA-256. If every
// file still matches, the bundle runs: one file, no TypeScript compiler. If anything differs or is
// missing (an edit, a pull, a fresh clone before `make`), the .mts runs through tsx as in
// development. Plain JavaScript on purpose: it runs before any TypeScript loader exists.
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { createHash } from 'node:crypto';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const [, , scriptArg, ...args] = process.argv;
const script = fs.realpathSync(scriptArg);
const root = path.resolve(path.dirname(script), '..');
const tool = path.basename(script).replace(/\.m?ts$/, '');
const manifest = path.join(root, 'dist', `${tool}.inputs.json`);
const debug = (line) => { if (process.env.RIVET_DEBUG) process.stderr.write(`${tool}: ${line}\n`); };

/** True when the file at root/rel (a normalized relative path from the build) is as recorded. */
function unchanged(rec) {
  // String concatenation, not path.join: ~260 path.join calls cost ~10 ms before V8 optimises them.
  const file = `${root}/${rec.path}`;
  const st = fs.statSync(file, { throwIfNoEntry: false });
  if (!st || st.size !== rec.size) return false;
  if (st.mtimeMs === rec.mtimeMs) return true;
  // Touched but maybe not changed (a checkout, a formatter): the content decides.
  return createHash('sha256').update(fs.readFileSync(file)).digest('hex') === rec.sha256;
}

/** The manifest when the bundle was built from exactly the files that are on disk now, else null. */
function fresh() {
  let m;
  try { m = JSON.parse(fs.readFileSync(manifest, 'utf8')); } catch { return null; }
  if (m.bundle !== tool || m.node !== process.versions.modules || !m.output || !unchanged(m.output)) return null;
  return m.inputs.every(unchanged) ? m : null;
}

/**
 * Runs the CommonJS bundle as Node's own loader would, but through vm.Script so that V8's code
 * cache can be used (Node 20 has no module.enableCompileCache). The cache is written after the
 * first run, so it holds every function that run compiled, not just the top level.
 *
 * V8 checks a cache only against its own version, flags and the source *length*: a cache for an
 * equally long but different bundle would be accepted, and old code would run. So the cache file
 * is named by the bundle's SHA-256 from the manifest (whose size and mtime were just checked) and
 * by the Node version; the build deletes the caches of older bundles.
 */
function runBundle(m) {
  const file = path.join(root, m.output.path);
  const cacheFile = path.join(root, 'dist', `${tool}.${m.output.sha256.slice(0, 32)}.${process.version}-${process.arch}.codecache`);
  // The hashbang becomes a comment of the same length; the wrapper is Node's CommonJS wrapper.
  const source = `(function (exports, require, module, __filename, __dirname) {${fs.readFileSync(file, 'utf8').replace(/^#!/, '//')}\n})`;
  let cachedData;
  try { cachedData = fs.readFileSync(cacheFile); } catch { /* first run of this bundle */ }
  const compiled = new vm.Script(source, { filename: file, cachedData, importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER });
  const hit = cachedData !== undefined && !compiled.cachedDataRejected;
  debug(`running ${m.output.path} (code cache ${hit ? 'used' : cachedData ? 'rejected, remade' : 'made'})`);
  if (!hit) {
    process.once('exit', () => {
      // Best effort: a read-only checkout or another user's dist/ just stays without a cache.
      const tmp = `${cacheFile}.${process.pid}.tmp`;
      try {
        fs.writeFileSync(tmp, compiled.createCachedData());
        fs.renameSync(tmp, cacheFile);
      } catch {
        fs.rmSync(tmp, { force: true });
      }
    });
  }
  const module = { exports: {} };
  compiled.runInThisContext()(module.exports, createRequire(file), module, file, path.dirname(file));
}

process.argv = [process.argv[0], script, ...args];
const built = process.env.RIVET_NO_BUNDLE === '1' ? null : fresh();
if (built) {
  runBundle(built);
} else {
  debug(`dist/ bundle missing or stale — running ${path.relative(root, script)} through tsx (\`make build\` speeds this up)`);
  const { register } = await import(pathToFileURL(path.join(root, 'node_modules', 'tsx', 'dist', 'esm', 'api', 'index.mjs')).href);
  register();
  await import(pathToFileURL(script).href);
}
