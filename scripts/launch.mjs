// Starts a scripts/*.mts tool fast without ever running stale code. `make`/`npm ci` bundle each
// tool with esbuild into dist/<tool>.cjs and record every input file (lib/, scripts/, the
// node_modules files it pulled in) and the bundle itself with size, mtime and SHA-256. If every
// file still matches, the bundle runs: one file, no TypeScript compiler. If anything differs or is
// missing (an edit, a pull, a fresh clone before `make`), the .mts runs through tsx as in
// development. The installed package has neither sources nor bundle: it runs dist-lib/, the
// JavaScript that `npm pack` compiled (tsconfig.build.json). Plain JavaScript on purpose: it runs
// before any TypeScript loader exists.
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';
import { bundleState } from './bundle-state.mjs';

const [, , scriptArg, ...args] = process.argv;
const script = fs.realpathSync(scriptArg);
const root = path.resolve(path.dirname(script), '..');
const tool = path.basename(script).replace(/\.m?ts$/, '');
const debug = (line) => {
  if (process.env.RIVET_DEBUG) process.stderr.write(`${tool}: ${line}\n`);
};

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
  const cacheFile = path.join(
    root,
    'dist',
    `${tool}.${m.output.sha256.slice(0, 32)}.${process.version}-${process.arch}.codecache`,
  );
  // The hashbang becomes a comment of the same length; the wrapper is Node's CommonJS wrapper.
  const source = `(function (exports, require, module, __filename, __dirname) {${fs.readFileSync(file, 'utf8').replace(/^#!/, '//')}\n})`;
  let cachedData;
  try {
    cachedData = fs.readFileSync(cacheFile);
  } catch {
    /* first run of this bundle */
  }
  const compiled = new vm.Script(source, {
    filename: file,
    cachedData,
    importModuleDynamically: vm.constants?.USE_MAIN_CONTEXT_DEFAULT_LOADER,
  });
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
const state = process.env.RIVET_NO_BUNDLE === '1' ? { missing: true } : bundleState(root, tool);
const compiled = path.join(root, 'dist-lib', 'scripts', `${tool}.mjs`);
if (state.manifest) {
  runBundle(state.manifest);
} else if (!fs.existsSync(path.join(root, 'lib', 'index.ts')) && fs.existsSync(compiled)) {
  // The installed package (npm pack): compiled JavaScript only, no sources and no tsx to run them.
  debug(`running ${path.relative(root, compiled)} (installed package)`);
  await import(pathToFileURL(compiled).href);
} else {
  // A stale bundle costs every start the TypeScript compile (seconds per suite): said once, on
  // stderr, so it never costs silently. No build at all (a fresh clone, RIVET_NO_BUNDLE) is quiet.
  if (state.stale)
    process.stderr.write(
      `${tool}: note: dist/${tool}.cjs is stale (${state.stale}) — running from source through tsx, slower; \`make build\` rebuilds it\n`,
    );
  debug(
    `dist/ bundle missing or stale — running ${path.relative(root, script)} through tsx (\`make build\` speeds this up)`,
  );
  const { register } = await import(
    pathToFileURL(path.join(root, 'node_modules', 'tsx', 'dist', 'esm', 'api', 'index.mjs')).href
  );
  register();
  await import(pathToFileURL(script).href);
}
